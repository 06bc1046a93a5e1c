package worker

import (
	"context"
	"sync"
	"time"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
)

// Jobs in flight write to PostgreSQL twice each: the delivery is recorded
// before the processor is called, and the processor's result is committed
// after. Written one job at a time, that is a round trip per delivery and
// a transaction of six per result, and at a few hundred jobs in flight
// PostgreSQL spends its time on round trips and commits, not on the rows.
// A batcher instead lets each handler hand its write over and wait for the
// answer, while a flusher writes whatever is queued as one set — taking
// what queued up while the previous set was written (group commit), so a
// set is one job at low load and grows with the load, and no job waits
// for a timer, only (for at most patience) for the set being written. River's batch completer is the model (it also completes
// many jobs in one set-based UPDATE); unlike it, a handler here is told
// its own outcome, and acknowledges its JetStream message only once that
// outcome committed.

// batchMax bounds one set: large enough that round trips stop mattering,
// small enough that a set's locks and statement stay short.
const batchMax = 256

// maxFlushers bounds how many sets of one kind may be written at once.
const maxFlushers = 4

// patience is how long a gathered set waits for the set of its kind being
// written before it is written beside it. One set at a time makes sets as
// large as the load allows, and PostgreSQL's cost here is per statement:
// measured on 2 cores (docs/pipeline.md, "Batched writes"), one set at a
// time moved 1,231–1,321 payments/s where four at once moved 953–960/s.
// But a set that hangs (a lock wait, a connection lost mid-statement) must
// not hold back every job of its kind, so after patience the next set
// goes beside it, up to the batcher's flushers at once. Well above a
// set's usual write (a few to tens of milliseconds), well below what a
// payment may wait.
const patience = 100 * time.Millisecond

// flushers is how many sets of one kind may be written at once for a pool
// of poolConns connections: a quarter of the pool each, so deliveries and
// results together never take more than half of a pool they share with
// the API (payrail dev) or the worker's pollers.
func flushers(poolConns int32) int { return int(max(1, min(maxFlushers, poolConns/4))) }

// answer is one request's outcome.
type answer[Res any] struct {
	res Res
	err error
}

type batchCall[Req, Res any] struct {
	req Req
	out chan answer[Res]
}

// batcher writes requests in sets. write answers every request of a set,
// in order.
type batcher[Req, Res any] struct {
	in       chan batchCall[Req, Res]
	flushers int
	patience time.Duration
	write    func(ctx context.Context, reqs []Req) []answer[Res]

	// gather is a token: one flusher at a time gathers a set, so the
	// requests that queue while a set is written go together.
	gather chan struct{}
	// written is signalled (without blocking) whenever a set has been
	// written, to wake the flusher gathering the next.
	written chan struct{}
	mu      sync.Mutex
	writing int // sets being written
}

func newBatcher[Req, Res any](flushers int, patience time.Duration, write func(ctx context.Context, reqs []Req) []answer[Res]) *batcher[Req, Res] {
	return &batcher[Req, Res]{in: make(chan batchCall[Req, Res]), flushers: flushers, patience: patience, write: write,
		gather: make(chan struct{}, 1), written: make(chan struct{}, 1)}
}

// do hands req to the next set and waits for its answer. An error is
// ctx's when ctx ends first: the request may still be written.
func (b *batcher[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	c := batchCall[Req, Res]{req: req, out: make(chan answer[Res], 1)}
	var zero Res
	select {
	case b.in <- c:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case a := <-c.out:
		return a.res, a.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// run writes sets until ctx ends, with b.flushers flushers.
func (b *batcher[Req, Res]) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range b.flushers {
		wg.Go(func() { b.flush(ctx) })
	}
	wg.Wait()
}

// flush gathers a set while holding the gather token, then writes it.
func (b *batcher[Req, Res]) flush(ctx context.Context) {
	calls := make([]batchCall[Req, Res], 0, batchMax)
	reqs := make([]Req, 0, batchMax)
	for {
		calls, reqs = calls[:0], reqs[:0]
		select {
		case b.gather <- struct{}{}:
		case <-ctx.Done():
			return
		}
		select {
		case c := <-b.in:
			calls = append(calls, c)
		case <-ctx.Done():
			<-b.gather
			return
		}
		calls = b.gatherSet(ctx, calls)
		b.mu.Lock()
		b.writing++
		b.mu.Unlock()
		<-b.gather
		for _, c := range calls {
			reqs = append(reqs, c.req)
		}
		for i, a := range b.write(ctx, reqs) {
			calls[i].out <- a
		}
		b.mu.Lock()
		b.writing--
		b.mu.Unlock()
		select {
		case b.written <- struct{}{}:
		default:
		}
	}
}

// gatherSet adds to calls what queues until no other set is being
// written, the set is full, or it has waited b.patience; then whatever is
// already queued, up to batchMax. At shutdown it stops waiting: the write
// answers the set with ctx's error.
func (b *batcher[Req, Res]) gatherSet(ctx context.Context, calls []batchCall[Req, Res]) []batchCall[Req, Res] {
	var timeout <-chan time.Time
wait:
	for len(calls) < batchMax && b.busy() {
		if timeout == nil {
			t := time.NewTimer(b.patience)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case c := <-b.in:
			calls = append(calls, c)
		case <-b.written:
		case <-timeout:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	for len(calls) < batchMax {
		select {
		case c := <-b.in:
			calls = append(calls, c)
		default:
			return calls
		}
	}
	return calls
}

func (b *batcher[Req, Res]) busy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.writing > 0
}

// claim is a delivery to record (store.BeginDeliveries).
type claim struct {
	ref      store.AttemptRef
	delivery int
}

// claimBatcher records deliveries in sets.
func (w *Worker) claimBatcher() *batcher[claim, store.Delivery] {
	return newBatcher(flushers(w.store.Pool().Config().MaxConns), patience, func(ctx context.Context, reqs []claim) []answer[store.Delivery] {
		claims := make([]store.DeliveryClaim, len(reqs))
		for i, r := range reqs {
			claims[i] = store.DeliveryClaim{AttemptRef: r.ref, Delivery: r.delivery}
		}
		out := make([]answer[store.Delivery], len(reqs))
		got, errs, err := w.store.BeginDeliveries(ctx, claims, w.lease())
		for i := range out {
			if err != nil {
				out[i].err = err
				continue
			}
			out[i] = answer[store.Delivery]{got[i], errs[i]}
		}
		return out
	})
}

// completionBatcher commits processors' results in sets.
func (w *Worker) completionBatcher() *batcher[payments.Outcome, payments.Resolution] {
	return newBatcher(flushers(w.store.Pool().Config().MaxConns), patience, func(ctx context.Context, reqs []payments.Outcome) []answer[payments.Resolution] {
		res, errs := w.payments.ApplyAll(ctx, reqs)
		out := make([]answer[payments.Resolution], len(reqs))
		for i := range out {
			out[i] = answer[payments.Resolution]{res[i], errs[i]}
		}
		return out
	})
}
