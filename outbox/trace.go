package outbox

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/tracing"
)

// Publish paths, the payrail.outbox.path attribute of a publish span.
const (
	pathFastPath = "fast_path"
	pathRelay    = "relay"
)

// startPublish starts the producer span of a row that carries a trace
// (the request or delivery that wrote it was traced), as a child of that
// trace, and puts the span's context on msg so the worker's span is its
// child in turn. Without a tracer, or for an untraced row, it returns nil
// and msg keeps whatever trace context the row stored.
func startPublish(tracer trace.Tracer, path string, m store.OutboxMessage, msg *nats.Msg) trace.Span {
	if tracer == nil || !tracing.Traced(m.Headers) {
		return nil
	}
	ctx := tracing.ExtractMap(context.Background(), m.Headers)
	ctx, span := tracer.Start(ctx, "publish "+msg.Subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", msg.Subject),
			attribute.String("messaging.message.id", m.MsgID),
			tracing.AttrPath.String(path),
		))
	tracing.Propagator.Inject(ctx, tracing.NATSCarrier(msg.Header))
	return span
}

// endPublish ends a publish span with the publish's result; nil span is
// a no-op.
func endPublish(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
