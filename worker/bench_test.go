package worker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/store"
)

// postAll posts n payments from clients goroutines.
func (f *fixture) postAll(prefix string, n, clients int) []string {
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ids[i] = fmt.Sprintf("%s-%06d", prefix, i)
				f.pay(ids[i], int64(1000*(i+1)))
			}
		}()
	}
	wg.Wait()
	return ids
}

// waitCount waits until n line items of the fixture's org have status.
func (f *fixture) waitCount(status store.Status, n int, within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		var got int
		if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM line_items WHERE org_id = $1 AND status = $2`,
			f.org, status).Scan(&got); err != nil {
			f.t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d of %d line items %s after %s", got, n, status, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkIntake is the baseline: accepting payments over HTTP (one
// transaction each, fast-path publish) with no worker running.
func BenchmarkIntake(b *testing.B) {
	f := newFixture(b, fixtureOpts{noWorker: true})
	b.ResetTimer()
	f.postAll("intake", b.N, 16)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
}

// BenchmarkEndToEnd measures payments from the HTTP request to VALID with
// the test processor: intake, outbox, JetStream, worker, result commit.
func BenchmarkEndToEnd(b *testing.B) {
	f := newFixture(b, fixtureOpts{})
	b.ResetTimer()
	f.postAll("e2e", b.N, 16)
	f.waitCount(store.StatusValid, b.N, 5*time.Minute)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
}

// BenchmarkWorkerBacklog measures the worker alone: b.N card payments are
// queued with no worker running, then one worker with the default
// settings works the backlog off, the test processor answering at once or
// after 250 ms. The timer runs from the worker's start to the last VALID.
func BenchmarkWorkerBacklog(b *testing.B) {
	for _, latency := range []time.Duration{0, 250 * time.Millisecond} {
		b.Run(fmt.Sprintf("latency=%s", latency), func(b *testing.B) {
			f := newFixture(b, fixtureOpts{noWorker: true, concurrency: -1, ackWait: 30 * time.Second})
			f.proc.delay = latency
			f.postAll(fmt.Sprintf("backlog%d", latency.Milliseconds()), b.N, 16)
			b.ResetTimer()
			f.startWorker()
			f.waitCount(store.StatusValid, b.N, 10*time.Minute)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
		})
	}
}

// With a backlog and a slow processor, a worker with the default settings
// keeps hundreds of payments in flight — what 1,500 payments/s take at
// 250 ms a call is about 375 — rather than a fixed few dozen, and commits
// their results in sets rather than a transaction each.
func TestInFlightFollowsTheLoad(t *testing.T) {
	const n = 600
	// AckWait well above the call: no job is redelivered while hundreds
	// start at once on a loaded machine.
	f := newFixture(t, fixtureOpts{noWorker: true, concurrency: -1, ackWait: 10 * time.Second})
	f.proc.delay = 2 * time.Second
	ids := f.postAll("load", n, 16)
	f.startWorker()
	for id, li := range f.waitSettled(ids, 3*time.Minute) {
		if li.Status != store.StatusValid {
			t.Errorf("%s ended %s", id, li.Status)
		}
	}
	if peak := f.proc.peakInFlight(); peak < 400 {
		t.Errorf("at most %d of %d queued payments were in flight at once, want at least 400", peak, n)
	}
	var writers int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(DISTINCT xmin::text) FROM payment_attempts WHERE org_id = $1`,
		f.org).Scan(&writers); err != nil {
		t.Fatal(err)
	}
	if writers > n/4 {
		t.Errorf("the %d results were committed by %d transactions, want at most %d", n, writers, n/4)
	}
	t.Logf("%d payments: at most %d in flight, results committed by %d transactions", n, f.proc.peakInFlight(), writers)
}
