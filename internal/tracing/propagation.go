package tracing

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Propagator is the W3C trace context (traceparent, tracestate): the
// format of the trace headers on HTTP requests, outbox rows and NATS
// messages.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Header names of the W3C trace context, as outbox rows and NATS
// messages carry them (lower case: NATS headers are case-sensitive).
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Inject returns headers with the trace context of ctx added, in a new
// map so a caller's map is never changed. Without a span in ctx (tracing
// off, or work no request started) it returns headers as they are.
func Inject(ctx context.Context, headers map[string]string) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return headers
	}
	out := make(map[string]string, len(headers)+2)
	for k, v := range headers {
		out[k] = v
	}
	Propagator.Inject(ctx, propagation.MapCarrier(out))
	return out
}

// Traced reports whether headers carry a trace context.
func Traced(headers map[string]string) bool { return headers[HeaderTraceparent] != "" }

// ExtractMap returns ctx with the remote span context headers carry.
func ExtractMap(ctx context.Context, headers map[string]string) context.Context {
	return Propagator.Extract(ctx, propagation.MapCarrier(headers))
}

// NATSCarrier reads and writes the trace context in a NATS message's
// headers, whose keys are case-sensitive (unlike http.Header's).
type NATSCarrier nats.Header

// Get implements propagation.TextMapCarrier.
func (c NATSCarrier) Get(key string) string { return nats.Header(c).Get(key) }

// Set implements propagation.TextMapCarrier.
func (c NATSCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

// Keys implements propagation.TextMapCarrier.
func (c NATSCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Span attribute keys payrail sets beside OpenTelemetry's semantic
// conventions. Identifiers only (see the package comment).
const (
	AttrRequestID  = attribute.Key("payrail.request_id")
	AttrOrgID      = attribute.Key("payrail.org_id")
	AttrLineItemID = attribute.Key("payrail.line_item_id")
	AttrAttemptID  = attribute.Key("payrail.attempt_id")
	AttrProcessor  = attribute.Key("payrail.processor")
	AttrDelivery   = attribute.Key("payrail.delivery")
	AttrOutcome    = attribute.Key("payrail.outcome")
	AttrCode       = attribute.Key("payrail.code")
	AttrPath       = attribute.Key("payrail.outbox.path") // fast_path or relay
)
