package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "webhooks", &env)) }

// receiver is a real HTTP endpoint on loopback that answers with the
// codes it is given in turn (the last repeats) and keeps what it got.
type receiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	codes []int
	got   []received
	ch    chan received
}

type received struct {
	header http.Header
	body   []byte
	code   int
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	r := &receiver{codes: codes, ch: make(chan received, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		code := r.codes[0]
		if len(r.codes) > 1 {
			r.codes = r.codes[1:]
		}
		got := received{header: req.Header.Clone(), body: body, code: code}
		r.got = append(r.got, got)
		r.mu.Unlock()
		if code == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(code)
		r.ch <- got
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setCodes(codes ...int) {
	r.mu.Lock()
	r.codes = codes
	r.mu.Unlock()
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case got := <-r.ch:
		return got
	case <-time.After(15 * time.Second):
		t.Fatal("no webhook arrived within 15s")
		return received{}
	}
}

// quiet checks nothing arrives for d.
func (r *receiver) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case got := <-r.ch:
		t.Fatalf("unexpected webhook: %s", got.body)
	case <-time.After(d):
	}
}

// harness: a store, the package's streams, one org subscribed to a
// receiver, and a running Service with short backoffs.
type harness struct {
	t       *testing.T
	store   *store.Store
	js      jetstream.JetStream
	topo    queue.Topology
	org     string
	secret  string
	metrics *Metrics
}

func topology() queue.Topology {
	t := queue.Default()
	t.SubjectRoot = env.Subject("payrail")
	t.Jobs, t.Events = env.StreamName("PAYRAIL_JOBS"), env.StreamName("PAYRAIL_EVENTS")
	return t
}

func newHarness(t *testing.T, url string, opts Options) *harness {
	t.Helper()
	ctx := context.Background()
	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	topo := topology()
	if err := queue.Ensure(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	st := store.New(env.Pool, env.Ring, canopy.Events{})
	h := &harness{t: t, store: st, js: js, topo: topo, org: testenv.UniqueID("org_")}
	if err := st.EnsureOrg(ctx, h.org, "webhooks test"); err != nil {
		t.Fatal(err)
	}
	_, h.secret, err = st.SubscribeWebhook(ctx, h.org, store.WebhookSubscription{URL: url})
	if err != nil || h.secret == "" {
		t.Fatalf("subscribe: %v (secret %q)", err, h.secret)
	}
	t.Cleanup(func() { _ = st.DeleteWebhookSubscription(context.Background(), h.org) })
	if opts.Durable == "" {
		opts.Durable = env.Name + "_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	}
	opts.AllowPrivate = true // the receiver is on loopback
	opts.FirstBackoff, opts.MaxBackoff = orDur(opts.FirstBackoff, 100*time.Millisecond), orDur(opts.MaxBackoff, 400*time.Millisecond)
	opts.Poll, opts.Timeout = 50*time.Millisecond, 3*time.Second
	opts.Sweep = orDur(opts.Sweep, 200*time.Millisecond)
	if h.metrics, err = NewMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	opts.Metrics = h.metrics
	svc := New(js, topo, st, opts)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = js.DeleteConsumer(context.Background(), topo.EventsStream(), opts.Durable)
	})
	return h
}

func orDur(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// publish announces a change of a line item of the harness's org on the
// events stream, exactly as the outbox would, and returns the event id.
func (h *harness) publish(lineItemID string, from, to store.Status) string {
	h.t.Helper()
	now := time.Now().UTC()
	li := store.LineItem{OrgID: h.org, AccountID: "acct_1", LineItemID: lineItemID, ProductID: "p", Type: store.TypePayment,
		Status: to, AmountCents: -500, EffectiveAt: now, CreatedAt: now, UpdatedAt: now}
	m, err := canopy.Events{}.Event(store.Change{LineItem: li, From: from, Actor: "cli_test", Reason: "test", At: now})
	if err != nil {
		h.t.Fatal(err)
	}
	msg := nats.NewMsg(h.topo.Subject(m.Subject))
	msg.Data = m.Payload
	for k, v := range m.Headers {
		msg.Header.Set(k, v)
	}
	msg.Header.Set(nats.MsgIdHdr, m.MsgID)
	if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
		h.t.Fatal(err)
	}
	return m.MsgID
}

type deliveryRow struct {
	status    string
	attempts  int
	code      *int
	lastError *string
}

func (h *harness) delivery(eventID string) deliveryRow {
	h.t.Helper()
	var d deliveryRow
	err := env.Pool.QueryRow(context.Background(), `SELECT status, attempts, last_status_code, last_error
		FROM webhook_deliveries WHERE org_id = $1 AND event_id = $2`, h.org, eventID).Scan(&d.status, &d.attempts, &d.code, &d.lastError)
	if err != nil {
		h.t.Fatalf("delivery of %s: %v", eventID, err)
	}
	return d
}

// waitStatus polls the delivery row until it reaches status.
func (h *harness) waitStatus(eventID, status string) deliveryRow {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var d deliveryRow
		err := env.Pool.QueryRow(context.Background(), `SELECT status, attempts, last_status_code, last_error
			FROM webhook_deliveries WHERE org_id = $1 AND event_id = $2`, h.org, eventID).Scan(&d.status, &d.attempts, &d.code, &d.lastError)
		if err == nil && d.status == status {
			return d
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("delivery of %s: status %q (err %v), want %q", eventID, d.status, err, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) count(outcome string) float64 {
	return testutil.ToFloat64(h.metrics.deliveries.WithLabelValues(outcome))
}

type envelopeJSON struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Signature string          `json:"hmac_signature"`
}

func decodeEnvelope(t *testing.T, body []byte) (envelopeJSON, map[string]any) {
	t.Helper()
	var env envelopeJSON
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("envelope %s: %v", body, err)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(body, &keys)
	if len(keys) != 3 {
		t.Fatalf("envelope has members %v, want event, data, hmac_signature", keys)
	}
	var data map[string]any
	if err := json.Unmarshal(env.Data, &data); err != nil {
		t.Fatal(err)
	}
	return env, data
}

func TestWebhookSignedEnvelope(t *testing.T) {
	rcv := newReceiver(t, 200)
	h := newHarness(t, rcv.srv.URL+"/hooks", Options{})
	id := h.publish("li_sig", "", store.StatusPending)
	got := rcv.next(t)
	if !Verify(h.secret, got.body) {
		t.Fatalf("signature does not verify with the subscription's secret: %s", got.body)
	}
	if Verify(h.secret+"x", got.body) {
		t.Fatal("signature verifies with another secret")
	}
	e, data := decodeEnvelope(t, got.body)
	if e.Event != EventLineItemCreate {
		t.Errorf("event %q, want %q", e.Event, EventLineItemCreate)
	}
	obj, _ := data["object"].(map[string]any)
	if obj["line_item_id"] != "li_sig" || data["changed_at"] == nil {
		t.Errorf("data %v", data)
	}
	if ov, _ := obj["line_item_overview"].(map[string]any); ov["line_item_status"] != "PENDING" {
		t.Errorf("object overview %v", obj["line_item_overview"])
	}
	if got.header.Get("Payrail-Event-Id") != id || got.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", got.header)
	}
	h.waitStatus(id, "delivered")

	// A status change gets its status's name.
	id2 := h.publish("li_sig", store.StatusPending, store.StatusDeclined)
	if e, _ := decodeEnvelope(t, rcv.next(t).body); e.Event != "line_item_declined" {
		t.Errorf("event %q, want line_item_declined", e.Event)
	}
	h.waitStatus(id2, "delivered")
	if h.count(OutcomeDelivered) != 2 {
		t.Errorf("delivered count %v", h.count(OutcomeDelivered))
	}
}

func TestWebhookRetriedUntilAcknowledged(t *testing.T) {
	rcv := newReceiver(t, 500, 503, 200)
	h := newHarness(t, rcv.srv.URL, Options{})
	id := h.publish("li_retry", "", store.StatusValid)
	first, second, third := rcv.next(t), rcv.next(t), rcv.next(t)
	if string(first.body) != string(third.body) || string(second.body) != string(third.body) {
		t.Error("a retry sent a different body")
	}
	if third.header.Get("Payrail-Delivery-Attempt") != "3" {
		t.Errorf("attempt header %q", third.header.Get("Payrail-Delivery-Attempt"))
	}
	d := h.waitStatus(id, "delivered")
	if d.attempts != 3 {
		t.Errorf("attempts %d, want 3", d.attempts)
	}
	rcv.quiet(t, time.Second) // acknowledged: never sent again
	if h.count(OutcomeRetried) != 2 || h.count(OutcomeDelivered) != 1 {
		t.Errorf("retried %v delivered %v", h.count(OutcomeRetried), h.count(OutcomeDelivered))
	}
}

func TestWebhookRetryWindowEndsInDeadLetter(t *testing.T) {
	rcv := newReceiver(t, 429)
	h := newHarness(t, rcv.srv.URL, Options{RetryWindow: 700 * time.Millisecond, PauseAfter: 100})
	id := h.publish("li_window", "", store.StatusValid)
	d := h.waitStatus(id, "dead")
	if d.attempts < 3 || d.code == nil || *d.code != 429 {
		t.Errorf("dead after %d attempts, last code %v", d.attempts, d.code)
	}
	n := rcv.count()
	time.Sleep(500 * time.Millisecond)
	if rcv.count() != n {
		t.Error("a dead letter was attempted again")
	}
}

func TestWebhook404DeadLettersThenReplay(t *testing.T) {
	rcv := newReceiver(t, 404)
	h := newHarness(t, rcv.srv.URL, Options{})
	id := h.publish("li_404", "", store.StatusValid)
	rcv.next(t)
	d := h.waitStatus(id, "dead")
	if d.attempts != 1 || *d.code != 404 {
		t.Errorf("attempts %d code %v", d.attempts, *d.code)
	}
	rcv.quiet(t, 700*time.Millisecond) // not retried
	if h.count(OutcomeDeadLettered) != 1 {
		t.Errorf("dead_lettered count %v", h.count(OutcomeDeadLettered))
	}

	rcv.setCodes(200)
	n, err := h.store.ReplayWebhookDeadLetters(context.Background(), h.org)
	if err != nil || n != 1 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	got := rcv.next(t)
	if !Verify(h.secret, got.body) {
		t.Error("replayed webhook does not verify")
	}
	h.waitStatus(id, "delivered")
}

func TestWebhook401PausesUntilResumed(t *testing.T) {
	rcv := newReceiver(t, 401)
	h := newHarness(t, rcv.srv.URL, Options{})
	ctx := context.Background()
	id := h.publish("li_401", "", store.StatusValid)
	rcv.next(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		sub, err := h.store.WebhookSubscription(ctx, h.org)
		if err != nil {
			t.Fatal(err)
		}
		if sub.PausedAt != nil {
			if !strings.Contains(sub.PausedReason, "401") {
				t.Errorf("paused reason %q", sub.PausedReason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("endpoint not paused after a 401")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := h.delivery(id); d.status != "pending" {
		t.Errorf("the 401'd delivery is %s, want pending until resumed", d.status)
	}
	// While paused, new events are recorded but not sent.
	id2 := h.publish("li_401b", "", store.StatusValid)
	rcv.quiet(t, time.Second)
	if d := h.delivery(id2); d.status != "pending" || d.attempts != 0 {
		t.Errorf("event while paused: %+v", d)
	}
	if got := testutil.ToFloat64(h.metrics.pausedNow); got < 1 {
		t.Errorf("paused gauge %v", got)
	}

	rcv.setCodes(200)
	if _, err := h.store.ResumeWebhook(ctx, h.org); err != nil {
		t.Fatal(err)
	}
	rcv.next(t)
	rcv.next(t)
	h.waitStatus(id, "delivered")
	h.waitStatus(id2, "delivered")
}

func TestWebhookPausedAfterConsecutiveFailures(t *testing.T) {
	rcv := newReceiver(t, 500)
	h := newHarness(t, rcv.srv.URL, Options{PauseAfter: 3, RetryWindow: time.Hour})
	h.publish("li_fail", "", store.StatusValid)
	for range 3 {
		rcv.next(t)
	}
	rcv.quiet(t, time.Second)
	sub, err := h.store.WebhookSubscription(context.Background(), h.org)
	if err != nil || sub.PausedAt == nil || sub.ConsecutiveFailures != 3 {
		t.Fatalf("subscription %+v, %v: want paused after 3 failures", sub, err)
	}
}

func TestWebhookRedirectNotFollowed(t *testing.T) {
	target := newReceiver(t, 200)
	rcv := newReceiver(t, 302)
	rcv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rcv.mu.Lock()
		rcv.got = append(rcv.got, received{})
		rcv.mu.Unlock()
		http.Redirect(w, r, target.srv.URL+"/stolen", http.StatusFound)
		rcv.ch <- received{code: 302}
	})
	h := newHarness(t, rcv.srv.URL, Options{})
	id := h.publish("li_redirect", "", store.StatusValid)
	rcv.next(t)
	d := h.waitStatus(id, "dead")
	if *d.code != 302 {
		t.Errorf("last code %v", *d.code)
	}
	target.quiet(t, 700*time.Millisecond)
}

func TestWebhookNotDeliveredWithoutSubscription(t *testing.T) {
	rcv := newReceiver(t, 200)
	h := newHarness(t, rcv.srv.URL, Options{})
	if err := h.store.DeleteWebhookSubscription(context.Background(), h.org); err != nil {
		t.Fatal(err)
	}
	h.publish("li_nosub", "", store.StatusValid)
	rcv.quiet(t, time.Second)
}

func TestGuardRefusesNonPublicAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the guard let a request through to loopback")
	}))
	defer srv.Close()
	c := NewClient(ClientOptions{Timeout: 2 * time.Second})
	for _, u := range []string{srv.URL, "http://10.1.2.3:80/", "http://169.254.169.254/latest/meta-data/",
		"http://[::1]:9/", "http://192.168.0.1/", "http://[::ffff:127.0.0.1]:9/", "http://localhost:9/"} {
		start := time.Now()
		resp, err := c.Post(u, "application/json", strings.NewReader("{}"))
		if resp != nil {
			resp.Body.Close()
		}
		if !errors.Is(err, ErrAddressNotAllowed) {
			t.Errorf("%s: %v, want ErrAddressNotAllowed", u, err)
		}
		if time.Since(start) > time.Second {
			t.Errorf("%s: refusal took %s (it should not connect)", u, time.Since(start))
		}
	}
	// Allowed explicitly, loopback is reached.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer ok.Close()
	resp, err := NewClient(ClientOptions{Timeout: 2 * time.Second, AllowPrivate: true}).Get(ok.URL)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("allowed loopback: %v", err)
	}
	resp.Body.Close()

	for _, a := range []string{"8.8.8.8", "2606:4700:4700::1111", "1.1.1.1"} {
		if !PublicAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s should be public", a)
		}
	}
	for _, a := range []string{"127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "::1", "fe80::1",
		"fc00::1", "100.64.0.1", "0.0.0.0", "::ffff:10.0.0.1", "224.0.0.1"} {
		if PublicAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s should not be public", a)
		}
	}
}

func TestValidateURL(t *testing.T) {
	for _, u := range []string{"https://hooks.example.com/payrail", "https://93.184.216.34:8443/x?y=1"} {
		if err := ValidateURL(u, false); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://hooks.example.com/", "https://127.0.0.1/", "https://10.0.0.1/", "https://169.254.169.254/",
		"https://[::1]/", "https://localhost/", "https://user:pw@example.com/", "ftp://example.com/", "/relative", "https://"} {
		if err := ValidateURL(u, false); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if err := ValidateURL("http://127.0.0.1:8099/hook", true); err != nil {
		t.Errorf("allowed private: %v", err)
	}
}

func TestEventNames(t *testing.T) {
	pending := "PENDING"
	for _, c := range []struct {
		typ  string
		prev *string
		to   string
		want string
	}{
		{canopy.TypeStatusChanged, nil, "PENDING", "line_item_create"},
		{canopy.TypeStatusChanged, &pending, "VALID", "line_item_valid"},
		{canopy.TypeStatusChanged, &pending, "DECLINED", "line_item_declined"},
		{canopy.TypeProcessingUpdated, &pending, "PENDING", "line_item_processing_update"},
	} {
		if got, err := EventName(c.typ, c.prev, c.to); err != nil || got != c.want {
			t.Errorf("%s %v→%s: %q %v, want %q", c.typ, c.prev, c.to, got, err, c.want)
		}
	}
}
