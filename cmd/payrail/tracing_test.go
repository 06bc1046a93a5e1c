package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// exportedSpan is one span as an OTLP receiver got it.
type exportedSpan struct {
	service, name       string
	traceID, id, parent string
	kind                string
	attrs               map[string]string // span attributes, values as text
	texts               []string          // every string the span carried: resource, attributes, events, status
}

// otlpReceiver is an OTLP/HTTP traces endpoint that decodes the protobuf
// export requests the SDK's exporter posts, as a collector would.
type otlpReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	spans    []exportedSpan
	requests int
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" ||
			req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("OTLP receiver got %s %s (%s)", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
			http.Error(w, "want POST /v1/traces in protobuf", http.StatusBadRequest)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var export collectorpb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &export)
		}
		if err != nil {
			t.Errorf("OTLP receiver: undecodable export: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.add(&export)
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func anyText(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	}
	return v.String()
}

func (r *otlpReceiver) add(export *collectorpb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	for _, rs := range export.GetResourceSpans() {
		var service string
		var resTexts []string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = anyText(kv.GetValue())
			}
			resTexts = append(resTexts, kv.GetKey()+"="+anyText(kv.GetValue()))
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				e := exportedSpan{service: service, name: s.GetName(), traceID: hex.EncodeToString(s.GetTraceId()),
					id: hex.EncodeToString(s.GetSpanId()), parent: hex.EncodeToString(s.GetParentSpanId()),
					kind: s.GetKind().String(), attrs: map[string]string{}}
				e.texts = append(e.texts, resTexts...)
				e.texts = append(e.texts, s.GetName(), s.GetStatus().GetMessage(), s.GetTraceState())
				for _, kv := range s.GetAttributes() {
					e.attrs[kv.GetKey()] = anyText(kv.GetValue())
					e.texts = append(e.texts, kv.GetKey()+"="+anyText(kv.GetValue()))
				}
				for _, ev := range s.GetEvents() {
					e.texts = append(e.texts, ev.GetName())
					for _, kv := range ev.GetAttributes() {
						e.texts = append(e.texts, kv.GetKey()+"="+anyText(kv.GetValue()))
					}
				}
				r.spans = append(r.spans, e)
			}
		}
	}
}

func (r *otlpReceiver) all() []exportedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exportedSpan(nil), r.spans...)
}

func (r *otlpReceiver) dump() string {
	var b strings.Builder
	for _, s := range r.all() {
		fmt.Fprintf(&b, "%s %q trace=%s id=%s parent=%s %s %v\n", s.service, s.name, s.traceID, s.id, s.parent, s.kind, s.attrs)
	}
	return b.String()
}

// find returns the first span that ok accepts.
func (r *otlpReceiver) find(ok func(exportedSpan) bool) (exportedSpan, bool) {
	for _, s := range r.all() {
		if ok(s) {
			return s, true
		}
	}
	return exportedSpan{}, false
}

// A payment posted to the real API (whose NATS is away, so the outbox
// keeps the job), published by a separate relay and executed by a worker,
// each exporting to a real OTLP/HTTP receiver, makes one trace: the HTTP
// request (with its request id) → the relay's publish → the worker's
// delivery → the processor call (→ the Authorize.Net HTTP call, or the
// NACHA staging), and the outcome's event publication is a child of the
// delivery. No exported span carries a card number, CVV, bank account
// number or secret.
func TestOneTraceFromRequestToProcessor(t *testing.T) {
	env := testServices(t)
	ctx := context.Background()
	otlp := newOTLPReceiver(t)
	sim, err := anetsim.New(anetsim.Options{AcceptAnyProfile: true})
	if err != nil {
		t.Fatal(err)
	}
	anet := httptest.NewServer(sim)
	t.Cleanup(anet.Close)

	natsAddr := freeAddr(t)
	startNATS(t, natsAddr)
	api := roleEnv(t, env, freeAddr(t), 4, "api") // its NATS never answers: only the relay publishes
	api["PAYRAIL_API_RELAY"] = "false"
	relay := roleEnv(t, env, natsAddr, 2, "relay")
	env.Reserve(t, 1, "the relay's LISTEN connection")
	worker := roleEnv(t, env, natsAddr, 4, "worker")
	worker["PAYRAIL_AUTHNET_ENDPOINT"] = anet.URL + anetsim.Path
	worker["PAYRAIL_AUTHNET_LOGIN_ID"] = anetsim.DefaultLoginID
	worker["PAYRAIL_AUTHNET_TRANSACTION_KEY"] = anetsim.DefaultTransactionKey
	for _, e := range []map[string]string{api, relay, worker} {
		for _, k := range []string{"PAYRAIL_SUBJECT_ROOT", "PAYRAIL_JOBS_STREAM", "PAYRAIL_EVENTS_STREAM"} {
			e[k] = api[k]
		}
		e["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.srv.URL
		e["OTEL_BSP_SCHEDULE_DELAY"] = "100" // ms: export within the test's patience
	}
	procs := map[string]*running{}
	for name, e := range map[string]map[string]string{"api": api, "relay": relay, "worker": worker} {
		procs[name] = startPayrail(t, e, name)
	}
	logs := func() string {
		return "api:\n" + procs["api"].out.String() + "\nrelay:\n" + procs["relay"].out.String() +
			"\nworker:\n" + procs["worker"].out.String() + "\nspans:\n" + otlp.dump()
	}
	base := "http://" + api["PAYRAIL_HTTP_ADDR"]
	waitUntil(t, 10*time.Second, "the API answers", func() bool {
		code, _ := httpGet(base + "/healthz")
		return code == 200
	}, logs)

	org := testenv.UniqueID("org_")
	st := store.New(env.Pool, nil, canopy.Events{})
	if err := st.EnsureOrg(ctx, org, org); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutNachaConfig(ctx, org, store.NachaConfig{
		DestinationBankName: "FEDERAL RESERVE BANK", DestinationRouting: "091000019",
		OriginBankName: "PAYRAIL TEST BANK", OriginRouting: "231380104",
		CompanyName: "PAYRAIL TEST", CompanyIdentification: "1234567890", EntryDescription: "PAYMENT",
	}); err != nil {
		t.Fatal(err)
	}
	creds, err := createClient(ctx, st, org, "tracing", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, token, requestID string, body any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if requestID != "" {
			req.Header.Set("X-Request-Id", requestID)
		}
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	code, tok := post("/auth/token", "", "", map[string]string{"client_id": creds.ClientID, "client_secret": creds.ClientSecret})
	token, _ := tok["access_token"].(string)
	if code != 200 || token == "" {
		t.Fatalf("token: %d %v", code, tok)
	}
	if code, body := post("/accounts", token, "", map[string]any{"account_id": "acct_1", "product_id": "p", "customer_name": "Pat Doe"}); code != 200 {
		t.Fatalf("create account: %d %v", code, body)
	}
	const pan, cvv, bankAccount = "4007000000027", "987", "7766554433221"
	expiry := time.Now().AddDate(2, 0, 0).Format("01/06")
	payments := []struct {
		requestID, processor string
		details              map[string]any
	}{
		{"trace-card-1", "AUTHORIZE_NET", map[string]any{"payment_type": "DEBIT", "payment_processor_name": "AUTHORIZE_NET",
			"card_number": pan, "expiration_date": expiry, "cvv": cvv, "zip": "12345"}},
		{"trace-ach-1", "CANOPY_NACHA", map[string]any{"payment_type": "ACH", "payment_processor_name": "CANOPY_NACHA",
			"bank_account_number": bankAccount, "bank_routing_number": "021000021", "standard_entry_class": "WEB", "name": "Pat Doe"}},
	}
	for i, p := range payments {
		code, li := post("/accounts/acct_1/line_items/payments/guest_payment", token, p.requestID, map[string]any{
			"line_item_id": fmt.Sprintf("traced-%d", i), "original_amount_cents": 1234 + i, "payment_details": p.details})
		if code != 200 {
			t.Fatalf("payment %s: %d %v", p.processor, code, li)
		}
	}

	for _, p := range payments {
		t.Run(p.processor, func(t *testing.T) {
			var req, pub, delivery, call exportedSpan
			waitUntil(t, 30*time.Second, "the spans of the "+p.processor+" payment", func() bool {
				var ok bool
				if req, ok = otlp.find(func(s exportedSpan) bool {
					return s.service == "payrail-api" && s.attrs["payrail.request_id"] == p.requestID
				}); !ok {
					return false
				}
				child := func(service, prefix, suffix string, parent exportedSpan) (exportedSpan, bool) {
					return otlp.find(func(s exportedSpan) bool {
						return s.service == service && s.parent == parent.id && s.traceID == parent.traceID &&
							strings.HasPrefix(s.name, prefix) && strings.HasSuffix(s.name, suffix)
					})
				}
				if pub, ok = child("payrail-relay", "publish ", ".jobs."+p.processor, req); !ok {
					return false
				}
				if delivery, ok = child("payrail-worker", "process ", ".jobs."+p.processor, pub); !ok {
					return false
				}
				call, ok = child("payrail-worker", p.processor+" process", "", delivery)
				return ok
			}, logs)
			if want := "POST /accounts/{account_id}/line_items/payments/guest_payment"; req.name != want || req.kind != "SPAN_KIND_SERVER" ||
				req.attrs["http.response.status_code"] != "200" {
				t.Errorf("request span %q %s %v, want %q, a server span answered 200", req.name, req.kind, req.attrs, want)
			}
			if pub.kind != "SPAN_KIND_PRODUCER" || pub.attrs["payrail.outbox.path"] != "relay" || pub.attrs["messaging.system"] != "nats" {
				t.Errorf("publish span %s %v, want a producer span of the relay", pub.kind, pub.attrs)
			}
			if delivery.kind != "SPAN_KIND_CONSUMER" || delivery.attrs["payrail.org_id"] != org || delivery.attrs["payrail.attempt_id"] == "" {
				t.Errorf("delivery span %s %v, want a consumer span naming the org and attempt", delivery.kind, delivery.attrs)
			}
			switch p.processor {
			case "AUTHORIZE_NET":
				if call.attrs["payrail.outcome"] != "succeeded" {
					t.Errorf("processor call %v, want outcome succeeded", call.attrs)
				}
				waitUntil(t, 10*time.Second, "the Authorize.Net HTTP span and the outcome's event publication", func() bool {
					_, http := otlp.find(func(s exportedSpan) bool {
						return s.parent == call.id && s.name == "authorizenet createTransactionRequest" && s.kind == "SPAN_KIND_CLIENT"
					})
					_, event := otlp.find(func(s exportedSpan) bool {
						return s.parent == delivery.id && s.traceID == delivery.traceID &&
							strings.HasSuffix(s.name, ".events.line_item.valid") && s.kind == "SPAN_KIND_PRODUCER"
					})
					return http && event
				}, logs)
			case "CANOPY_NACHA":
				if call.attrs["payrail.outcome"] != "pending_settlement" {
					t.Errorf("processor call %v, want outcome pending_settlement", call.attrs)
				}
			}
		})
	}

	// Nothing secret in any exported span, of any service.
	secrets := []string{pan, bankAccount, anetsim.DefaultTransactionKey, creds.ClientSecret, testJWT, testKey, natsPassword, token}
	spans := otlp.all()
	for _, s := range spans {
		for _, text := range s.texts {
			for _, secret := range secrets {
				if strings.Contains(text, secret) {
					t.Errorf("span %s %q carries a secret or card data: %s", s.service, s.name, text)
				}
			}
			key, value, _ := strings.Cut(text, "=")
			lk := strings.ToLower(key)
			if value == cvv || strings.Contains(lk, "cvv") || strings.Contains(lk, "card") || strings.Contains(lk, "account_number") ||
				strings.Contains(lk, "secret") || strings.Contains(lk, "password") || strings.Contains(lk, "authorization") {
				t.Errorf("span %s %q has attribute %s", s.service, s.name, text)
			}
		}
	}
	if len(spans) < 10 {
		t.Fatalf("%d spans exported; the check above proves nothing", len(spans))
	}
	for name, p := range procs {
		if code := p.stop(t, 30*time.Second); code != 0 {
			t.Errorf("%s exit %d after SIGTERM\n%s", name, code, p.out.String())
		}
	}
}

// Without an OTLP endpoint no provider or exporter is made, whatever else
// is set: the roles get nil tracers and the otel globals stay no-ops.
func TestNoTracingWithoutEndpoint(t *testing.T) {
	cl := newCmdline("api", roleAPI, lookupFrom(validEnv(map[string]string{
		"OTEL_SERVICE_NAME": "payrail-test", "OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "0.5",
	})))
	if err := cl.parse(nil); err != nil {
		t.Fatal(err)
	}
	s := &services{cfg: cl.cfg, log: slog.New(slog.DiscardHandler)}
	flush, err := s.startTracing(context.Background(), "api")
	if err != nil {
		t.Fatal(err)
	}
	defer flush()
	if s.tracing != nil || s.tracing.Tracer("intake") != nil {
		t.Fatalf("a tracer provider without an endpoint: %+v", s.tracing)
	}
	if _, sdk := otel.GetTracerProvider().(*sdktrace.TracerProvider); sdk {
		t.Fatal("the global tracer provider was set without an endpoint")
	}
}
