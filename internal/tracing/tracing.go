// Package tracing is payrail's optional OpenTelemetry tracing: the
// tracer provider that exports spans over OTLP/HTTP, built only when an
// OTLP endpoint is configured, and the W3C trace context that carries a
// payment's trace from the HTTP request through its outbox row and the
// NATS message to the worker (docs/observability.md).
//
// Without an endpoint New returns a nil *Provider, whose Tracer is nil:
// the roles then create no spans and write no trace headers, so tracing
// that is not configured costs nothing. No role reads a global: each takes
// its tracer through its options, and cmd/payrail alone sets the otel
// globals (provider, propagator, error handler) once.
//
// Spans carry identifiers (org, account, line item, attempt, request id,
// processor, outcome codes), never card numbers, CVVs, bank account
// numbers, credentials or request and response bodies.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config is the standard OpenTelemetry settings payrail reads
// (cmd/payrail/config.go declares them).
type Config struct {
	// Endpoint is OTEL_EXPORTER_OTLP_ENDPOINT: the collector's base URL;
	// spans go to its /v1/traces.
	Endpoint string
	// TracesEndpoint is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: the full URL
	// spans are posted to. It wins over Endpoint.
	TracesEndpoint string
	// ServiceName is OTEL_SERVICE_NAME, the service.name of every span.
	ServiceName string
	// Sampler and SamplerArg are OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG; "" is parentbased_always_on.
	Sampler    string
	SamplerArg string
	// Version is the service.version resource attribute.
	Version string
}

// Enabled reports whether spans are exported: an endpoint is configured.
func (c Config) Enabled() bool { return c.Endpoint != "" || c.TracesEndpoint != "" }

// TracesURL is the URL spans are posted to, or "" when tracing is off.
func (c Config) TracesURL() string {
	if c.TracesEndpoint != "" {
		return c.TracesEndpoint
	}
	if c.Endpoint == "" {
		return ""
	}
	return strings.TrimSuffix(c.Endpoint, "/") + "/v1/traces"
}

// Samplers lists the OTEL_TRACES_SAMPLER values payrail understands.
var Samplers = []string{"always_on", "always_off", "traceidratio",
	"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// ParseSampler returns the sampler that name and arg (OTEL_TRACES_SAMPLER
// and _ARG) describe. arg is the ratio of the traceidratio samplers, 0 to
// 1, default 1.
func ParseSampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if strings.HasSuffix(name, "traceidratio") && arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, errors.New("want a sampling ratio from 0 to 1 such as 0.25")
		}
		ratio = r
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("want one of %s", strings.Join(Samplers, ", "))
}

// CheckEndpoint is the check of an OTLP endpoint setting.
func CheckEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http or https URL such as http://127.0.0.1:4318")
	}
	return nil
}

// Provider exports the spans of one process. A nil *Provider is tracing
// turned off.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// New returns the provider cfg describes, or nil (and no exporter) when
// no endpoint is configured. The exporter posts protobuf over HTTP in
// batches; it also honours the OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
// _COMPRESSION and certificate variables and OTEL_BSP_* as the
// OpenTelemetry SDK reads them.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	sampler, err := ParseSampler(cfg.Sampler, cfg.SamplerArg)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER %q: %w", cfg.Sampler, err)
	}
	target := cfg.TracesURL()
	if err := CheckEndpoint(target); err != nil {
		return nil, fmt.Errorf("tracing: OTLP endpoint: %w", err)
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(target))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	name := cfg.ServiceName
	if name == "" {
		name = "payrail"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler))
	return &Provider{tp: tp}, nil
}

// TracerProvider is the SDK provider, or nil when tracing is off.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return nil
	}
	return p.tp
}

// Tracer returns the tracer a role records its spans with, named after
// the role's package, or nil when tracing is off.
func (p *Provider) Tracer(pkg string) trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tp.Tracer("github.com/payrail/payrail/" + pkg)
}

// Shutdown exports the spans still buffered, within ctx.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flush spans: %w", err)
	}
	return nil
}
