package worker

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/payrail/payrail/internal/tracing"
	"github.com/payrail/payrail/processors"
)

// startDelivery starts the consumer span of one delivery, a child of the
// trace context the message carries (the publish span, or the API request
// that wrote the job), so a payment's trace runs from its HTTP request to
// its outcome. The trace headers are as unauthenticated as the others:
// they choose only where the span is filed. Without a tracer it returns
// ctx and a span that records nothing.
func (w *Worker) startDelivery(ctx context.Context, proc processors.Processor, msg jetstream.Msg, delivery int) (context.Context, trace.Span) {
	if w.opts.Tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx = tracing.Propagator.Extract(ctx, tracing.NATSCarrier(msg.Headers()))
	return w.opts.Tracer.Start(ctx, "process "+msg.Subject(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", msg.Subject()),
			tracing.AttrProcessor.String(proc.Name()),
			tracing.AttrDelivery.Int(delivery),
		))
}

// jobAttributes names the job on its delivery span once it is
// authenticated: identifiers only, never its payment details.
func jobAttributes(span trace.Span, job processors.Job) {
	span.SetAttributes(tracing.AttrOrgID.String(job.OrgID), tracing.AttrLineItemID.String(job.LineItemID),
		tracing.AttrAttemptID.String(job.AttemptID))
}

// startCall starts the span of one processor call (op is process or
// resolve), a child of the delivery's span.
func (w *Worker) startCall(ctx context.Context, proc processors.Processor, op string, job processors.Job) (context.Context, trace.Span) {
	if w.opts.Tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return w.opts.Tracer.Start(ctx, proc.Name()+" "+op, trace.WithAttributes(
		tracing.AttrProcessor.String(proc.Name()), tracing.AttrAttemptID.String(job.AttemptID),
		tracing.AttrDelivery.Int(job.Delivery)))
}

// endWith ends span with a processor's outcome: its class and code (the
// message is the gateway's text and stays in the logs).
func endWith(span trace.Span, res processors.Result) {
	span.SetAttributes(tracing.AttrOutcome.String(string(res.Outcome)))
	if res.Code != "" {
		span.SetAttributes(tracing.AttrCode.String(res.Code))
	}
	span.End()
}
