package tracing

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Without an endpoint there is no provider, no exporter and no tracer:
// the roles create no spans.
func TestNewWithoutEndpointCreatesNothing(t *testing.T) {
	for _, cfg := range []Config{{}, {ServiceName: "payrail-api", Sampler: "always_on", SamplerArg: "0.5"}} {
		p, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if p != nil || p.Tracer("intake") != nil || p.TracerProvider() != nil {
			t.Fatalf("config %+v made a provider; want none without an endpoint", cfg)
		}
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown of no provider: %v", err)
		}
	}
}

func TestNewRefusesBadSettings(t *testing.T) {
	for _, cfg := range []Config{
		{Endpoint: "http://127.0.0.1:4318", Sampler: "jaeger_remote"},
		{Endpoint: "http://127.0.0.1:4318", Sampler: "traceidratio", SamplerArg: "2"},
		{TracesEndpoint: "127.0.0.1:4318/v1/traces"},
	} {
		if p, err := New(context.Background(), cfg); err == nil {
			_ = p.Shutdown(context.Background())
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestTracesURL(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Endpoint: "http://collector:4318"}, "http://collector:4318/v1/traces"},
		{Config{Endpoint: "http://collector:4318/"}, "http://collector:4318/v1/traces"},
		{Config{Endpoint: "https://otel.example.com/otlp"}, "https://otel.example.com/otlp/v1/traces"},
		{Config{TracesEndpoint: "http://collector:4318/custom"}, "http://collector:4318/custom"},
		{Config{Endpoint: "http://a:4318", TracesEndpoint: "http://b:4318/v1/traces"}, "http://b:4318/v1/traces"},
	} {
		if got := tc.cfg.TracesURL(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.cfg, got, tc.want)
		}
		if got := tc.cfg.Enabled(); got != (tc.want != "") {
			t.Errorf("%+v: Enabled %v", tc.cfg, got)
		}
	}
}

func TestParseSampler(t *testing.T) {
	for _, tc := range []struct {
		name, arg string
		want      string // the sampler's Description, "" for an error
	}{
		{"", "", "ParentBased{root:AlwaysOnSampler"},
		{"parentbased_always_on", "", "ParentBased{root:AlwaysOnSampler"},
		{"always_on", "", "AlwaysOnSampler"},
		{"always_off", "", "AlwaysOffSampler"},
		{"traceidratio", "", "TraceIDRatioBased{1}"},
		{"traceidratio", "0.25", "TraceIDRatioBased{0.25}"},
		{"parentbased_traceidratio", "0.5", "ParentBased{root:TraceIDRatioBased{0.5}"},
		{"parentbased_always_off", "", "ParentBased{root:AlwaysOffSampler"},
		{"traceidratio", "-0.1", ""},
		{"traceidratio", "x", ""},
		{"xray", "", ""},
		{"ALWAYS_ON", "", ""},
	} {
		s, err := ParseSampler(tc.name, tc.arg)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%q %q accepted as %s", tc.name, tc.arg, s.Description())
		case tc.want != "" && err != nil:
			t.Errorf("%q %q: %v", tc.name, tc.arg, err)
		case tc.want != "" && !strings.HasPrefix(s.Description(), tc.want):
			t.Errorf("%q %q: %s, want %s…", tc.name, tc.arg, s.Description(), tc.want)
		}
	}
}

// Inject adds the span's W3C context in a new map, and nothing without a
// span; the context read back from a NATS message is the same span's.
func TestInjectAndExtract(t *testing.T) {
	headers := map[string]string{"Payrail-Org-Id": "org_1"}
	if got := Inject(context.Background(), headers); len(got) != 1 {
		t.Fatalf("Inject without a span: %v", got)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	got := Inject(ctx, headers)
	if len(headers) != 1 {
		t.Fatalf("Inject changed the caller's map: %v", headers)
	}
	if !Traced(got) || got["Payrail-Org-Id"] != "org_1" {
		t.Fatalf("Inject: %v", got)
	}
	sc := trace.SpanContextFromContext(ExtractMap(context.Background(), got))
	if sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() || !sc.IsRemote() {
		t.Fatalf("extracted %v, want the span %v", sc, span.SpanContext())
	}

	msg := nats.NewMsg("payrail.jobs.X")
	for k, v := range got {
		msg.Header.Set(k, v)
	}
	sc = trace.SpanContextFromContext(Propagator.Extract(context.Background(), NATSCarrier(msg.Header)))
	if sc.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("from NATS headers: %v, want %v", sc, span.SpanContext())
	}
	out := nats.NewMsg("payrail.jobs.X")
	Propagator.Inject(ctx, NATSCarrier(out.Header))
	if out.Header.Get(HeaderTraceparent) == "" {
		t.Fatalf("no lower-case traceparent on the NATS message: %v", out.Header)
	}
}
