package intake

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/tracing"
)

// outboxHeaders returns the headers of every outbox row of a line item
// (its job and its creation event), by msg_id.
func outboxHeaders(t *testing.T, org, lineItemID string) map[string]map[string]string {
	t.Helper()
	rows, err := env.Pool.Query(context.Background(), `
		SELECT msg_id, headers FROM outbox
		 WHERE headers->>'Payrail-Org-Id' = $1
		   AND (headers->>'Payrail-Line-Item-Id' = $2
		        OR msg_id = (SELECT job_msg_id FROM payment_attempts WHERE org_id = $1 AND line_item_id = $2))`,
		org, lineItemID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]map[string]string{}
	for rows.Next() {
		var id string
		var h map[string]string
		if err := rows.Scan(&id, &h); err != nil {
			t.Fatal(err)
		}
		out[id] = h
	}
	if len(out) < 2 {
		t.Fatalf("%d outbox rows for %s, want its job and its event", len(out), lineItemID)
	}
	return out
}

// A traced request records one server span named by its route, with the
// request id and status, continuing the caller's trace; the job and the
// event it writes store the span's context, so the relay and the worker
// continue this trace. The span carries no payment details.
func TestTracedRequestStoresItsTraceWithTheJob(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := newHarness(t, func(c *Config) { c.Tracer = tp.Tracer("intake") })
	acct := h.account()

	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name, lineItem string
		details        map[string]any
		traceparent    string // the caller's
	}{
		{"card, new trace", "traced-card", debitMethod(), ""},
		{"ACH, the caller's trace", "traced-ach", achMethod(), "00-" + callerTrace + "-00f067aa0ba902b7-01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			headers := []string{HeaderRequestID, "rid-" + tc.lineItem}
			if tc.traceparent != "" {
				headers = append(headers, "traceparent", tc.traceparent)
			}
			h.do("POST", guestPath(acct), h.token, guestBody(tc.lineItem, tc.details), headers...).wantStatus(200)
			var span sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if attrOf(s, tracing.AttrRequestID) == "rid-"+tc.lineItem {
					span = s
				}
			}
			if span == nil {
				t.Fatalf("no span with request id rid-%s among %d", tc.lineItem, len(rec.Ended()))
			}
			if want := "POST /accounts/{account_id}/line_items/payments/guest_payment"; span.Name() != want ||
				span.SpanKind() != trace.SpanKindServer || attrOf(span, "http.response.status_code") != "200" ||
				attrOf(span, "http.route") != want {
				t.Errorf("span %q %v %v, want %q, a server span answered 200", span.Name(), span.SpanKind(), span.Attributes(), want)
			}
			if tc.traceparent != "" && (span.SpanContext().TraceID().String() != callerTrace || span.Parent().SpanID().String() != "00f067aa0ba902b7") {
				t.Errorf("span in trace %s under %s, want the caller's", span.SpanContext().TraceID(), span.Parent().SpanID())
			}
			want := "00-" + span.SpanContext().TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"
			for id, hs := range outboxHeaders(t, h.org, tc.lineItem) {
				if hs[tracing.HeaderTraceparent] != want {
					t.Errorf("outbox row %s has traceparent %q, want the request's %s", id, hs[tracing.HeaderTraceparent], want)
				}
			}
			for _, kv := range span.Attributes() {
				v := kv.Value.Emit()
				if strings.Contains(v, testPAN) || strings.Contains(v, testBankAccount) || v == testCVV {
					t.Errorf("span attribute %s carries payment details", kv.Key)
				}
			}
		})
	}

	t.Run("probes are not traced", func(t *testing.T) {
		before := len(rec.Ended())
		h.do("GET", "/healthz", "", nil).wantStatus(200)
		h.do("GET", "/readyz", "", nil).wantStatus(200)
		if n := len(rec.Ended()) - before; n != 0 {
			t.Fatalf("%d spans for probes, want none", n)
		}
	})
}

// Without a tracer nothing is traced: a caller's traceparent is not
// passed on, and no outbox row gets trace headers.
func TestUntracedRequestWritesNoTraceHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	h.do("POST", guestPath(acct), h.token, guestBody("untraced", debitMethod()),
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").wantStatus(200)
	for id, hs := range outboxHeaders(t, h.org, "untraced") {
		if _, ok := hs[tracing.HeaderTraceparent]; ok {
			t.Errorf("outbox row %s has trace headers without tracing: %v", id, hs)
		}
	}
}

func attrOf(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// BenchmarkTracingOverhead serves a request in process (an unknown route,
// answered 404 in JSON without PostgreSQL): "off" is the server without a
// tracer (what runs when no OTLP endpoint is set), "on" records a span per
// request into a discarding exporter.
func BenchmarkTracingOverhead(b *testing.B) {
	signer, err := auth.NewSigner(testSigningKey, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, bc := range []struct {
		name   string
		tracer trace.Tracer
	}{{"off", nil}, {"on", tp.Tracer("intake")}} {
		b.Run(bc.name, func(b *testing.B) {
			api, err := New(Config{Store: store.New(env.Pool, env.Ring, canopy.Events{}), Ring: env.Ring, Signer: signer,
				Registry: prometheus.NewRegistry(), RateLimit: 1000, RateBurst: 1000, Tracer: bc.tracer,
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/no/such/route", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				api.ServeHTTP(w, req)
				if w.Code != 404 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
