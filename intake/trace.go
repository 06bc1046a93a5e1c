package intake

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/payrail/payrail/internal/tracing"
)

// traced records a server span per request, continuing the caller's W3C
// trace context when it sends one. The span is named by the route
// pattern, so ids stay out of span names, and carries the request id; a
// payment written while serving the request stores the span's context
// with its job (internal/store, outbox rows), so the worker's spans join
// this trace. It never records bodies, queries or headers other than the
// request id: card and bank account numbers travel only in bodies.
// Probes (/healthz, /readyz) are not traced: a load balancer's every few
// seconds would bury the payments' traces.
func (s *Server) traced(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				tracing.AttrRequestID.String(RequestID(r.Context())),
			))
		defer span.End()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(ctx))
		_, pattern := s.mux.Handler(r)
		if pattern != "" {
			// The mux's pattern carries the method already: "POST /accounts/{account_id}/…".
			span.SetName(pattern)
			span.SetAttributes(attribute.String("http.route", pattern))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", rec.code))
		if rec.code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(rec.code))
		}
	})
}
