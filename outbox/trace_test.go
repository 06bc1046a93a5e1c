package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/internal/tracing"
)

// A row that stores a trace is published under a producer span, a child
// of the stored context, and the message carries the publish span's
// context; without a tracer the message carries the stored context as
// it is; an untraced row gets no span and no trace header. Both the
// fast path and the relay.
func TestPublishContinuesTheRowsTrace(t *testing.T) {
	h := newHarness(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reqCtx, reqSpan := tp.Tracer("test").Start(context.Background(), "request")
	reqSpan.End()
	stored := tracing.Inject(reqCtx, map[string]string{"Payrail-Org-Id": "org_1"})

	for _, tc := range []struct {
		name   string
		path   string
		tracer trace.Tracer
		traced bool // the row stores a trace context
	}{
		{"fast path, traced row", pathFastPath, tp.Tracer("outbox"), true},
		{"relay, traced row", pathRelay, tp.Tracer("outbox"), true},
		{"relay without a tracer, traced row", pathRelay, nil, true},
		{"fast path, untraced row", pathFastPath, tp.Tracer("outbox"), false},
		{"relay, untraced row", pathRelay, tp.Tracer("outbox"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m := store.OutboxMessage{MsgID: testenv.UniqueID("evt_"), Subject: "events.line_item.valid",
				Headers: map[string]string{"Payrail-Org-Id": "org_1"}, Payload: []byte(`{}`)}
			if tc.traced {
				m.Headers = stored
			}
			before := len(rec.Ended())
			switch tc.path {
			case pathFastPath:
				p := NewPublisher(h.js, h.topo, h.st, PublisherOptions{Logger: quiet(), Tracer: tc.tracer})
				runCtx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { _ = p.Run(runCtx); close(done) }()
				p.Enqueue([]store.OutboxMessage{m})
				defer func() { stop(); <-done }()
			case pathRelay:
				r := NewRelay(h.st, env.Pool, h.js, h.topo, RelayOptions{Logger: quiet(), Tracer: tc.tracer})
				if _, err := r.publish(ctx, []store.OutboxMessage{m}); err != nil {
					t.Fatal(err)
				}
			}
			msg := h.published(ctx, m.MsgID)
			got := msg.Headers().Get(tracing.HeaderTraceparent)
			var spans []sdktrace.ReadOnlySpan
			deadline := time.Now().Add(5 * time.Second)
			for {
				spans = rec.Ended()[before:]
				if len(spans) > 0 || !tc.traced || tc.tracer == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			switch {
			case !tc.traced:
				if got != "" || len(spans) != 0 {
					t.Fatalf("untraced row: traceparent %q, %d spans; want none", got, len(spans))
				}
			case tc.tracer == nil:
				if got != stored[tracing.HeaderTraceparent] || len(spans) != 0 {
					t.Fatalf("traceparent %q and %d spans, want the stored %q and none", got, len(spans), stored[tracing.HeaderTraceparent])
				}
			default:
				if len(spans) != 1 {
					t.Fatalf("%d spans, want one publish span", len(spans))
				}
				s := spans[0]
				if s.Parent().SpanID() != reqSpan.SpanContext().SpanID() || s.SpanContext().TraceID() != reqSpan.SpanContext().TraceID() ||
					s.SpanKind() != trace.SpanKindProducer || s.Name() != "publish "+h.topo.Subject(m.Subject) {
					t.Fatalf("span %q %v under %s, want a producer span under the request %s", s.Name(), s.SpanKind(),
						s.Parent().SpanID(), reqSpan.SpanContext().SpanID())
				}
				if path := attr(s, tracing.AttrPath); path != tc.path {
					t.Errorf("payrail.outbox.path %q, want %q", path, tc.path)
				}
				want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
				if got != want {
					t.Fatalf("message traceparent %q, want the publish span's %q", got, want)
				}
			}
		})
	}
}

// published reads the message msgID from the events stream.
func (h *harness) published(ctx context.Context, msgID string) jetstream.Msg {
	h.t.Helper()
	cons, err := h.js.OrderedConsumer(ctx, h.topo.Events, jetstream.OrderedConsumerConfig{})
	if err != nil {
		h.t.Fatal(err)
	}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			h.t.Fatalf("message %s not in the stream: %v", msgID, err)
		}
		if msg.Headers().Get(jetstream.MsgIDHeader) == msgID {
			return msg
		}
	}
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}
