package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/payrail/payrail/intake"
	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/outbox"
	"github.com/payrail/payrail/processors"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	if os.Getenv(childWorkerEnv) != "" {
		os.Exit(runChildWorker()) // this binary re-executed as a worker process
	}
	os.Exit(testenv.Main(m, "worker", &env))
}

// Amounts (in cents, modulo 1000) that steer the test processor.
const (
	centsDecline   = 13
	centsPermanent = 14
	centsRetryable = 15 // retryable on every call: ends dead
	centsHeld      = 16 // held, then resolved as succeeded
)

// testProcessor is an idempotent processor: its effect (the "charge") is
// keyed by attempt id, so a second call for an attempt answers the same
// result without a second effect, as Authorize.Net's duplicate window and
// NACHA staging do. It counts calls and effects per attempt.
type testProcessor struct {
	name  string
	delay time.Duration

	mu      sync.Mutex
	running int // calls in progress
	peak    int // the most calls in progress at once
	calls   map[string]int
	effects map[string]int
	amounts map[string][]int64 // amounts asked for, per attempt
}

func newTestProcessor(name string) *testProcessor {
	return &testProcessor{name: name, calls: map[string]int{}, effects: map[string]int{}, amounts: map[string][]int64{}}
}

func (p *testProcessor) Name() string { return p.name }

func (p *testProcessor) Process(ctx context.Context, job processors.Job) (processors.Result, error) {
	p.mu.Lock()
	p.calls[job.AttemptID]++
	p.amounts[job.AttemptID] = append(p.amounts[job.AttemptID], job.AmountCents)
	if p.effects[job.AttemptID] == 0 {
		p.effects[job.AttemptID] = 1
	}
	p.running++
	p.peak = max(p.peak, p.running)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
	}()
	if p.delay > 0 {
		select {
		case <-time.After(p.delay):
		case <-ctx.Done():
			return processors.Result{}, ctx.Err()
		}
	}
	inst := processors.Instrument{Kind: "card", Brand: "Visa", LastFour: "1111"}
	switch job.AmountCents % 1000 {
	case centsDecline:
		return processors.Result{Outcome: processors.Declined, TransactionID: "tx-" + job.AttemptID, Code: "2",
			Message: "This transaction has been declined.", Instrument: inst}, nil
	case centsPermanent:
		return processors.Result{}, &processors.Error{Outcome: processors.Permanent, Code: "E00007", Message: "bad credentials"}
	case centsRetryable:
		return processors.Result{}, errors.New("connection reset by peer")
	case centsHeld:
		return processors.Result{Outcome: processors.Held, TransactionID: "tx-" + job.AttemptID, Instrument: inst}, nil
	}
	return processors.Result{Outcome: processors.Succeeded, TransactionID: "tx-" + job.AttemptID, Instrument: inst}, nil
}

// Resolve settles held attempts as approved and leaves the rest unknown.
func (p *testProcessor) Resolve(ctx context.Context, job processors.Job) (processors.Result, error) {
	if job.AmountCents%1000 == centsHeld {
		return processors.Result{Outcome: processors.Succeeded, TransactionID: job.TransactionID}, nil
	}
	return processors.Result{Outcome: processors.Retryable, Message: "unknown"}, nil
}

// amountsOf returns the amounts the processor was asked to charge for attempt.
func (p *testProcessor) amountsOf(attempt string) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.amounts[attempt]...)
}

// peakInFlight is the most calls the processor had in progress at once.
func (p *testProcessor) peakInFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

func (p *testProcessor) counts(attempt string) (calls, effects int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[attempt], p.effects[attempt]
}

// dropFastPath loses every row handed to it: a process that crashed right
// after its commit.
type dropFastPath struct{}

func (dropFastPath) Enqueue([]store.OutboxMessage) {}

// fixture is one pipeline: the HTTP API, publisher, relay and a worker
// over the package database and a NATS server, with streams of its own.
type fixture struct {
	t        testing.TB
	ctx      context.Context
	store    *store.Store
	topo     queue.Topology
	nc       *nats.Conn
	js       jetstream.JetStream
	api      *httptest.Server
	token    string
	org      string
	account  string
	proc     *testProcessor
	worker   *Worker
	metrics  *prometheus.Registry
	logs     *logBuffer
	stopWork context.CancelFunc
	workDone chan struct{}
	done     sync.WaitGroup
}

// The fixture's pools (docs/testing.md): the shared one, and the
// worker's own when workerDatabaseURL is set.
const (
	fixturePoolConns = 8
	workerPoolConns  = 4
)

type fixtureOpts struct {
	natsURL      string
	dropFastPath bool          // rows are left to the relay
	noRelay      bool          // nothing publishes missed rows
	noWorker     bool          // the test starts the worker itself
	ackWait      time.Duration // default 2s
	maxDeliver   int           // default 3
	concurrency  int           // default 16; negative: the worker's default
	hooks        hooks
	// processor replaces the test processor (f.proc stays unused).
	processor processors.Processor
	// poolConns sizes the shared pool; default fixturePoolConns.
	poolConns int32
	// workerDatabaseURL, when set, is the worker's own way to PostgreSQL
	// (through a dbProxy); the API and relay keep theirs.
	workerDatabaseURL string
	// reconcile runs the worker's reconciler (every 500ms, bound 3s). It
	// is off otherwise: the package's tests share one database, and a
	// reconciler would re-publish other tests' unfinished attempts into
	// this fixture's stream.
	reconcile bool
	// natsOptions are added to the fixture's connection (e.g. the roles'
	// queue.Keepalive); replicas sizes its streams (default 1).
	natsOptions []nats.Option
	replicas    int
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	if o.natsURL == "" {
		o.natsURL = env.NATSURL
	}
	if o.ackWait == 0 {
		o.ackWait = 2 * time.Second
	}
	if o.maxDeliver == 0 {
		o.maxDeliver = 3
	}
	ctx, cancel := context.WithCancel(context.Background())
	id := strings.TrimPrefix(testenv.UniqueID("t"), "t")
	f := &fixture{t: t, ctx: ctx, org: testenv.UniqueID("org_"), account: "acct_1", metrics: prometheus.NewRegistry(),
		logs: &logBuffer{}}
	// Every part logs everything (debug included) into the buffer, and
	// warnings and errors to the test output.
	log := slog.New(fanout{slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		testLogger().Handler()})
	f.topo = queue.Default()
	f.topo.SubjectRoot = env.Subject("p" + id)
	f.topo.Jobs = env.StreamName("JOBS_" + strings.ToUpper(id))
	f.topo.Events = env.StreamName("EVENTS_" + strings.ToUpper(id))
	f.topo.DuplicateWindow = time.Minute

	f.topo.Replicas = max(o.replicas, 1)

	nc, err := nats.Connect(o.natsURL, append([]nats.Option{nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond)}, o.natsOptions...)...)
	if err != nil {
		t.Fatal(err)
	}
	f.nc = nc
	if f.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	ensureCtx, cancelEnsure := context.WithTimeout(ctx, 10*time.Second)
	defer cancelEnsure()
	if err := queue.Ensure(ensureCtx, f.js, f.topo); err != nil {
		t.Fatal(err)
	}

	// The API, publisher, relay and worker share one pool, sized within
	// the package's connection budget (docs/testing.md): fixturePoolConns,
	// and one more for the relay's LISTEN connection.
	if o.poolConns == 0 {
		o.poolConns = fixturePoolConns
	}
	pool := env.NewPool(t, o.poolConns)
	f.store = store.New(pool, env.Ring, canopy.Events{})
	om, err := outbox.NewMetrics(f.metrics)
	if err != nil {
		t.Fatal(err)
	}
	pub := outbox.NewPublisher(f.js, f.topo, f.store, outbox.PublisherOptions{Metrics: om, Logger: log})
	if o.dropFastPath {
		f.store.SetFastPath(dropFastPath{})
	} else {
		f.store.SetFastPath(pub)
	}
	f.run(func() { _ = pub.Run(ctx) })
	if !o.noRelay {
		env.Reserve(t, 1, "the relay's LISTEN connection")
		relay := outbox.NewRelay(f.store, pool, f.js, f.topo, outbox.RelayOptions{
			Grace: 300 * time.Millisecond, Backstop: 200 * time.Millisecond, Metrics: om, Logger: log})
		f.run(func() { _ = relay.Run(ctx) })
	}

	f.proc = newTestProcessor(processors.AuthorizeNet)
	var proc processors.Processor = f.proc
	if o.processor != nil {
		proc = o.processor
	}
	if o.concurrency == 0 {
		o.concurrency = 16
	}
	o.concurrency = max(o.concurrency, 0)
	reg, err := processors.NewRegistry(proc)
	if err != nil {
		t.Fatal(err)
	}
	wm, err := NewMetrics(f.metrics)
	if err != nil {
		t.Fatal(err)
	}
	workerStore := f.store
	if o.workerDatabaseURL != "" {
		wpool := env.NewPoolURL(t, o.workerDatabaseURL, workerPoolConns)
		workerStore = store.New(wpool, env.Ring, canopy.Events{})
		workerStore.SetFastPath(pub)
	}
	reconcileEvery, reconcileAfter := -time.Duration(1), time.Duration(0)
	if o.reconcile {
		reconcileEvery, reconcileAfter = 500*time.Millisecond, 3*time.Second
	}
	f.worker = New(f.js, f.topo, workerStore, reg, env.Ring, Options{
		Concurrency: o.concurrency, AckWait: o.ackWait, CallTimeout: 3 * time.Second, MaxDeliver: o.maxDeliver, Backoff: []time.Duration{100 * time.Millisecond},
		HeldPoll: 300 * time.Millisecond, DrainTimeout: 5 * time.Second, Metrics: wm, Logger: log,
		ConsumerCheck: time.Second, ReconcileEvery: reconcileEvery, ReconcileAfter: reconcileAfter,
	})
	f.worker.hooks = o.hooks
	if !o.noWorker {
		f.startWorker()
	}

	signer, err := auth.NewSigner([]byte("0123456789abcdef0123456789abcdef"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	api, err := intake.New(intake.Config{Store: f.store, Ring: env.Ring, Signer: signer,
		Registry: prometheus.NewRegistry(), RateLimit: 1e6, RateBurst: 1e6, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	f.api = httptest.NewServer(api)
	if err := f.store.EnsureOrg(ctx, f.org, "worker test"); err != nil {
		t.Fatal(err)
	}
	// The API checks every token against its client's row.
	client := store.Client{ClientID: store.NewID("cli_"), OrgID: f.org, Name: "worker test", Role: auth.RoleAdmin, SecretHash: auth.DummyHash}
	if err := f.store.CreateClient(ctx, client); err != nil {
		t.Fatal(err)
	}
	if f.token, err = signer.Issue(auth.Claims{OrgID: f.org, ClientID: client.ClientID, Role: auth.RoleAdmin, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.store.CreateAccount(ctx, f.org, store.NewAccount{AccountID: f.account, ProductID: "p",
		CustomerName: "Pat Doe", RequestHash: []byte("x")}); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		// Pools keep their idle connections: the count now is what they
		// grew to.
		env.CheckConnections(t)
		f.api.Close()
		cancel()
		f.done.Wait()
		nc.Close()
		// Leave nothing for the next test's relay in the shared database.
		if _, err := env.Pool.Exec(context.Background(), `UPDATE outbox SET published_at = now() WHERE published_at IS NULL`); err != nil {
			t.Error(err)
		}
	})
	return f
}

// testLogger keeps test output to warnings and errors.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// logBuffer collects every log line of a fixture, so tests can search
// them (for card data that must never be there).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fanout sends each record to every handler that takes its level.
type fanout []slog.Handler

func (h fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, x := range h {
		if x.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (h fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, x := range h {
		if x.Enabled(ctx, r.Level) {
			if err := x.Handle(ctx, r.Clone()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(h))
	for i, x := range h {
		out[i] = x.WithAttrs(attrs)
	}
	return out
}

func (h fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(h))
	for i, x := range h {
		out[i] = x.WithGroup(name)
	}
	return out
}

func (f *fixture) run(fn func()) {
	f.done.Add(1)
	go func() { defer f.done.Done(); fn() }()
}

// startWorker runs the fixture's worker until the test ends or stopWorker.
func (f *fixture) startWorker() {
	ctx, cancel := context.WithCancel(f.ctx)
	f.stopWork = cancel
	f.workDone = make(chan struct{})
	f.run(func() {
		defer close(f.workDone)
		if err := f.worker.Run(ctx); err != nil {
			f.t.Errorf("worker: %v", err)
		}
	})
}

// pay posts a DEBIT guest payment with the test card and returns its
// attempt id.
func (f *fixture) pay(lineItemID string, cents int64) string {
	f.t.Helper()
	return f.payCard(lineItemID, cents, testPAN)
}

// payCard posts a DEBIT guest payment with the card pan.
func (f *fixture) payCard(lineItemID string, cents int64, pan string) string {
	f.t.Helper()
	return f.guestPayment(lineItemID, cents, fmt.Sprintf(`{"payment_type":"DEBIT","payment_processor_name":"AUTHORIZE_NET",`+
		`"card_number":%q,"expiration_date":"12/30","cvv":"123","zip":"46201","name":"Pat Doe"}`, pan))
}

// guestPayment posts a guest payment with the payment_details JSON
// details, requires 200 and returns the attempt id.
func (f *fixture) guestPayment(lineItemID string, cents int64, details string) string {
	f.t.Helper()
	body := fmt.Sprintf(`{"line_item_id":%q,"original_amount_cents":%d,"payment_details":%s}`, lineItemID, cents, details)
	req, _ := http.NewRequest("POST", f.api.URL+"/accounts/"+f.account+"/line_items/payments/guest_payment",
		strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		f.t.Fatalf("guest_payment %s: HTTP %d", lineItemID, res.StatusCode)
	}
	li, err := f.store.LineItem(f.ctx, f.org, f.account, lineItemID)
	if err != nil {
		f.t.Fatal(err)
	}
	return li.Attempt.AttemptID
}

// waitSettled waits until no line item among ids is PENDING with an open
// or held attempt, and returns them.
func (f *fixture) waitSettled(ids []string, within time.Duration) map[string]store.LineItem {
	f.t.Helper()
	deadline := time.Now().Add(within)
	out := map[string]store.LineItem{}
	for {
		pending := 0
		for _, id := range ids {
			li, err := f.store.LineItem(f.ctx, f.org, f.account, id)
			if err != nil {
				f.t.Fatal(err)
			}
			out[id] = li
			if li.Status == store.StatusPending {
				pending++
			}
		}
		if pending == 0 {
			return out
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d of %d payments still PENDING after %s", pending, len(ids), within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventCounts returns how many events the events stream holds per subject.
func (f *fixture) eventCounts() map[string]uint64 {
	f.t.Helper()
	s, err := f.js.Stream(f.ctx, f.topo.Events)
	if err != nil {
		f.t.Fatal(err)
	}
	info, err := s.Info(f.ctx, jetstream.WithSubjectFilter(f.topo.EventSubjects()))
	if err != nil {
		f.t.Fatal(err)
	}
	return info.State.Subjects
}
