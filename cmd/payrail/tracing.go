package main

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/payrail/payrail/internal/tracing"
)

// startTracing builds the process's tracer provider when an OTLP endpoint
// is configured, and sets the otel globals once (for libraries that look
// there; payrail's roles get their tracers through their options). Without
// an endpoint it creates nothing: the roles get nil tracers. The returned
// func flushes buffered spans at shutdown.
func (s *services) startTracing(ctx context.Context, name string) (func(), error) {
	cfg := s.cfg.Tracing
	if cfg.ServiceName == "" {
		cfg.ServiceName = "payrail-" + name
	}
	cfg.Version = currentBuild().Version
	p, err := tracing.New(ctx, cfg)
	if err != nil || p == nil {
		return func() {}, err
	}
	s.tracing = p
	otel.SetTracerProvider(p.TracerProvider())
	otel.SetTextMapPropagator(tracing.Propagator)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		s.log.Warn("OpenTelemetry: could not export spans", "err", err)
	}))
	s.log.Info("tracing: exporting spans over OTLP/HTTP", "endpoint", redactPassword(cfg.TracesURL()),
		"service_name", cfg.ServiceName, "sampler", cfg.Sampler)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			s.log.Warn("tracing: spans lost at shutdown", "err", err)
		}
	}, nil
}
