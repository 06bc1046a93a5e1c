package worker

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors/authorizenet"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// cardFixture is the pipeline with the real AUTHORIZE_NET processor
// charging the simulator.
func cardFixture(tb testing.TB, faults anetsim.Faults, concurrency int) (*fixture, *anetsim.Server) {
	tb.Helper()
	sim, err := anetsim.New(anetsim.Options{Faults: faults, Seed: 42, MaxHang: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	tb.Cleanup(srv.Close)
	client, err := authorizenet.NewClient(authorizenet.Config{Endpoint: srv.URL + anetsim.Path,
		LoginID: anetsim.DefaultLoginID, TransactionKey: anetsim.DefaultTransactionKey, Timeout: 2 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	f := newFixture(tb, fixtureOpts{processor: authorizenet.NewProcessor(client, testLogger()),
		ackWait: 10 * time.Second, maxDeliver: 10, concurrency: concurrency})
	return f, sim
}

// A few thousand card payments go through the whole pipeline while the
// simulator answers 5xx, hangs past the client's timeout and drops
// connections, before and after charging. Every payment ends with exactly
// one charge if it is VALID and none otherwise.
func TestCardPaymentsUnderFaultsChargeOnce(t *testing.T) {
	const n = 2000
	f, sim := cardFixture(t, anetsim.Faults{ErrorRate: 0.03, HangRate: 0.01, DropRate: 0.03}, 32)
	start := time.Now()
	ids := f.postAll("card", n, 16)
	got := f.waitSettled(ids, 5*time.Minute)
	elapsed := time.Since(start)

	var valid, charges, retried int
	for _, id := range ids {
		li := got[id]
		c := sim.Charges(authorizenet.InvoiceNumber(li.Attempt.AttemptID))
		charges += c
		if li.Attempt.Deliveries > 1 {
			retried++
		}
		switch {
		case li.Status == store.StatusValid && c == 1:
			valid++
		case li.Status == store.StatusValid:
			t.Errorf("%s is VALID with %d charges", id, c)
		case c != 0:
			t.Errorf("%s is %s (%s: %s) yet charged %d times", id, li.Status, li.Attempt.Status, li.Attempt.ResultMessage, c)
		default:
			t.Logf("%s ended %s without a charge: %s", id, li.Status, li.Attempt.ResultMessage)
		}
	}
	if valid < n*99/100 {
		t.Errorf("only %d of %d payments VALID", valid, n)
	}
	if charges != valid {
		t.Errorf("the simulator made %d charges for %d VALID payments", charges, valid)
	}
	if retried == 0 {
		t.Errorf("no payment needed a second delivery: the faults did not strike")
	}
	t.Logf("%d card payments, %d VALID with one charge each, %d charges in all, %d redelivered after faults; %.0f payments/s end to end",
		n, valid, charges, retried, float64(n)/elapsed.Seconds())
}

// BenchmarkCardPipeline is the card pipeline end to end (HTTP intake to
// VALID) against the simulator answering at once and after 250 ms, with
// the worker's default concurrency.
func BenchmarkCardPipeline(b *testing.B) {
	for _, latency := range []time.Duration{0, 250 * time.Millisecond} {
		b.Run(fmt.Sprintf("latency=%s", latency), func(b *testing.B) {
			f, _ := cardFixture(b, anetsim.Faults{Latency: latency}, -1)
			b.ResetTimer()
			f.postAll(fmt.Sprintf("bench%d", latency.Milliseconds()), b.N, 16)
			f.waitCount(store.StatusValid, b.N, 10*time.Minute)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
		})
	}
}

// A card held for review stays PENDING, with an event saying so, until the
// merchant decides; the worker polls the transaction and moves the payment
// to VALID (one charge) or DECLINED (none).
func TestHeldCardPaymentsArePolledUntilDecided(t *testing.T) {
	f, sim := cardFixture(t, anetsim.Faults{}, 8)
	for _, c := range []struct {
		id      string
		approve bool
		want    store.Status
		charges int // a declined review takes no money
	}{{"held-approved", true, store.StatusValid, 1}, {"held-declined", false, store.StatusDeclined, 0}} {
		// The sandbox's error-generation card holds $252.00 for review.
		attempt := f.payCard(c.id, 25200, anetsim.ErrorCard)
		var held store.LineItem
		waitFor(t, 10*time.Second, func() bool {
			held, _ = f.store.LineItem(f.ctx, f.org, f.account, c.id)
			return held.Attempt != nil && held.Attempt.Status == store.AttemptHeld
		}, func() string { return fmt.Sprintf("%s not held: %+v", c.id, held.Attempt) })
		if held.Status != store.StatusPending || held.Attempt.TransactionID == "" {
			t.Fatalf("%s while held: %s, transaction %q", c.id, held.Status, held.Attempt.TransactionID)
		}
		time.Sleep(time.Second) // polls find it still held and leave it
		if li, _ := f.store.LineItem(f.ctx, f.org, f.account, c.id); li.Status != store.StatusPending {
			t.Fatalf("%s left PENDING before the review: %s", c.id, li.Status)
		}
		if err := sim.Review(held.Attempt.TransactionID, c.approve); err != nil {
			t.Fatal(err)
		}
		got := f.waitSettled([]string{c.id}, 15*time.Second)[c.id]
		if got.Status != c.want || got.Attempt.TransactionID != held.Attempt.TransactionID {
			t.Errorf("%s after review: %s (transaction %s)", c.id, got.Status, got.Attempt.TransactionID)
		}
		if n := sim.Charges(authorizenet.InvoiceNumber(attempt)); n != c.charges {
			t.Errorf("%s: %d charges, want %d", c.id, n, c.charges)
		}
	}
	// Creation, held and decision: three events each.
	waitFor(t, 5*time.Second, func() bool {
		ev := f.eventCounts()
		return ev[f.topo.EventSubject("PENDING")] == 4 && ev[f.topo.EventSubject("VALID")] == 1 &&
			ev[f.topo.EventSubject("DECLINED")] == 1
	}, func() string { return fmt.Sprint(f.eventCounts()) })
}
