package worker

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// Every outcome class reaches the line item state docs/states.md gives it, with
// one event per transition.
func TestOutcomesReachTheirStates(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	cases := []struct {
		id       string
		cents    int64
		status   store.Status
		attempt  store.AttemptStatus
		minCalls int
	}{
		{"ok", 1000, store.StatusValid, store.AttemptSucceeded, 1},
		{"declined", 1000 + centsDecline, store.StatusDeclined, store.AttemptDeclined, 1},
		{"permanent", 1000 + centsPermanent, store.StatusInvalid, store.AttemptFailed, 1},
		{"retryable", 1000 + centsRetryable, store.StatusInvalid, store.AttemptDead, 3},
		{"held", 1000 + centsHeld, store.StatusValid, store.AttemptSucceeded, 1},
	}
	attempts := map[string]string{}
	var ids []string
	for _, c := range cases {
		attempts[c.id] = f.pay(c.id, c.cents)
		ids = append(ids, c.id)
	}
	got := f.waitSettled(ids, 20*time.Second)
	for _, c := range cases {
		li := got[c.id]
		if li.Status != c.status || li.Attempt.Status != c.attempt {
			t.Errorf("%s: line item %s attempt %s, want %s / %s", c.id, li.Status, li.Attempt.Status, c.status, c.attempt)
		}
		if calls, effects := f.proc.counts(attempts[c.id]); calls != c.minCalls || effects != 1 {
			t.Errorf("%s: processor called %d times with %d effects, want %d calls and 1 effect", c.id, calls, effects, c.minCalls)
		}
	}
	if li := got["declined"]; li.Attempt.ResultCode != "2" || li.Attempt.TransactionID == "" {
		t.Errorf("declined attempt keeps code %q and transaction %q", li.Attempt.ResultCode, li.Attempt.TransactionID)
	}
	if li := got["retryable"]; li.Attempt.Deliveries != 3 || li.Attempt.ResultMessage == "" {
		t.Errorf("dead attempt: %d deliveries, message %q", li.Attempt.Deliveries, li.Attempt.ResultMessage)
	}
	if dead := testutil.ToFloat64(f.worker.opts.Metrics.deadJobs.WithLabelValues(processors.AuthorizeNet)); dead != 1 {
		t.Errorf("dead metric = %v, want 1", dead)
	}
	// Events: 5 created PENDING and 1 held (still PENDING), then VALID ×2,
	// DECLINED, INVALID ×2.
	waitFor(t, 5*time.Second, func() bool {
		ev := f.eventCounts()
		return ev[f.topo.EventSubject("PENDING")] == 6 && ev[f.topo.EventSubject("VALID")] == 2 &&
			ev[f.topo.EventSubject("DECLINED")] == 1 && ev[f.topo.EventSubject("INVALID")] == 2
	}, func() string { return fmt.Sprint(f.eventCounts()) })
}

// A crash at each boundary of the pipeline ends with every payment in its
// terminal state, one effect per payment, and no second call for a
// payment whose call already succeeded and committed.
func TestCrashAtEachBoundary(t *testing.T) {
	firstDelivery := func(job processors.Job) error {
		if job.Delivery == 1 {
			return errCrashed
		}
		return nil
	}
	cases := []struct {
		name      string
		opts      fixtureOpts
		wantCalls int // per payment
	}{
		{"after the intake commit, before the publish", fixtureOpts{dropFastPath: true}, 1},
		{"after the publish, before the worker acts", fixtureOpts{hooks: hooks{received: firstDelivery}}, 1},
		{"after the processor answers, before the commit", fixtureOpts{hooks: hooks{afterProcess: firstDelivery}}, 2},
		{"after the commit, before the ack", fixtureOpts{hooks: hooks{afterCommit: firstDelivery}}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.ackWait = time.Second
			f := newFixture(t, c.opts)
			const n = 20
			var ids []string
			attempts := map[string]string{}
			for i := range n {
				id := fmt.Sprintf("crash-%d", i)
				attempts[id] = f.pay(id, int64(500+i*1000))
				ids = append(ids, id)
			}
			got := f.waitSettled(ids, 30*time.Second)
			for _, id := range ids {
				if got[id].Status != store.StatusValid {
					t.Errorf("%s ended %s, want VALID", id, got[id].Status)
				}
				calls, effects := f.proc.counts(attempts[id])
				if effects != 1 || calls != c.wantCalls {
					t.Errorf("%s: %d calls, %d effects; want %d calls, 1 effect", id, calls, effects, c.wantCalls)
				}
			}
			waitFor(t, 5*time.Second, func() bool {
				return f.eventCounts()[f.topo.EventSubject("VALID")] == n
			}, func() string { return fmt.Sprint(f.eventCounts()) })
		})
	}
}

// With NATS stopped the API keeps accepting payments; when NATS returns
// they all complete, each executed once.
func TestNATSOutage(t *testing.T) {
	dir := t.TempDir()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "js"), NoSigs: true, NoLog: true}
	ns := startNATS(t, opts)
	opts.Port = ns.Addr().(*net.TCPAddr).Port
	f := newFixture(t, fixtureOpts{natsURL: ns.ClientURL()})

	f.pay("before-outage", 700)
	f.waitSettled([]string{"before-outage"}, 10*time.Second)

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, 5*time.Second, func() bool { return f.nc.Status() != nats.CONNECTED }, func() string { return f.nc.Status().String() })
	var ids []string
	attempts := map[string]string{}
	for i := range 20 {
		id := fmt.Sprintf("outage-%d", i)
		attempts[id] = f.pay(id, int64(800+i*1000)) // each answers 200 PENDING with NATS down
		ids = append(ids, id)
	}
	time.Sleep(500 * time.Millisecond)
	for _, id := range ids {
		if li, _ := f.store.LineItem(f.ctx, f.org, f.account, id); li.Status != store.StatusPending {
			t.Fatalf("%s is %s while NATS is down", id, li.Status)
		}
	}

	ns2 := startNATS(t, opts)
	defer ns2.Shutdown()
	got := f.waitSettled(ids, 30*time.Second)
	for _, id := range ids {
		calls, effects := f.proc.counts(attempts[id])
		if got[id].Status != store.StatusValid || calls != 1 || effects != 1 {
			t.Errorf("%s: %s after %d calls / %d effects", id, got[id].Status, calls, effects)
		}
	}
}

func startNATS(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	o := *opts
	ns, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// Shutdown drains: jobs in flight finish, commit and ack before Run returns.
func TestShutdownDrainsInFlightJobs(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.proc.delay = 300 * time.Millisecond
	var ids []string
	for i := range 8 {
		id := fmt.Sprintf("drain-%d", i)
		f.pay(id, int64(1000*i+200))
		ids = append(ids, id)
	}
	waitFor(t, 5*time.Second, func() bool {
		f.proc.mu.Lock()
		defer f.proc.mu.Unlock()
		return len(f.proc.calls) > 0
	}, func() string { return "no job started" })
	f.stopWork()
	<-f.workDone
	for _, id := range ids {
		li, err := f.store.LineItem(context.Background(), f.org, f.account, id)
		if err != nil {
			t.Fatal(err)
		}
		calls, _ := f.proc.counts(li.Attempt.AttemptID)
		if calls > 0 && li.Status != store.StatusValid {
			t.Errorf("%s was called but left %s at shutdown", id, li.Status)
		}
	}
}

func waitFor(t *testing.T, within time.Duration, ok func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", within, state())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The fast path publishes every row the pipeline writes (jobs and events)
// and marks each one, so with no relay running nothing is left behind.
func TestFastPathPublishesAndMarksEveryRow(t *testing.T) {
	f := newFixture(t, fixtureOpts{noRelay: true})
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("fast-%d", i)
		f.pay(id, int64(1000*i+300))
		ids = append(ids, id)
	}
	f.waitSettled(ids, 10*time.Second)
	waitFor(t, 5*time.Second, func() bool {
		var n int
		_ = env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n)
		return n == 0
	}, func() string { return "outbox rows left unmarked without a relay" })
	if got := f.eventCounts()[f.topo.EventSubject("VALID")]; got != 5 {
		t.Errorf("%d VALID events, want 5", got)
	}
}

// With PostgreSQL out of the worker's reach for longer than AckWait ×
// MaxDeliver, jobs are held, not redelivered into exhaustion: when the
// database returns, every payment completes with one processor call.
func TestDatabaseOutageStrandsNoPayment(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newDBProxy(t, net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
	proxied := strings.Replace(env.DatabaseURL, net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))), proxy.addr(), 1)
	f := newFixture(t, fixtureOpts{workerDatabaseURL: proxied, noWorker: true, ackWait: time.Second, maxDeliver: 3})

	var ids []string
	attempts := map[string]string{}
	for i := range 10 {
		id := fmt.Sprintf("dbdown-%d", i)
		attempts[id] = f.pay(id, int64(1000*i+400))
		ids = append(ids, id)
	}
	proxy.cut()
	f.startWorker()
	time.Sleep(5 * time.Second) // well past AckWait × MaxDeliver
	for _, id := range ids {
		if li, _ := f.store.LineItem(f.ctx, f.org, f.account, id); li.Status != store.StatusPending {
			t.Fatalf("%s is %s while the worker cannot reach the database", id, li.Status)
		}
	}
	proxy.restore()
	got := f.waitSettled(ids, 30*time.Second)
	for _, id := range ids {
		calls, effects := f.proc.counts(attempts[id])
		if got[id].Status != store.StatusValid || calls != 1 || effects != 1 {
			t.Errorf("%s: %s after %d calls / %d effects", id, got[id].Status, calls, effects)
		}
	}
}
