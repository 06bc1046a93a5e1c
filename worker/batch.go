package worker

import (
	"context"
	"sync"

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
// for a timer. River's batch completer is the model (it also completes
// many jobs in one set-based UPDATE); unlike it, a handler here is told
// its own outcome, and acknowledges its JetStream message only once that
// outcome committed.

// batchMax bounds one set: large enough that round trips stop mattering,
// small enough that a set's locks and statement stay short.
const batchMax = 256

// maxFlushers bounds how many sets of one kind may be written at once:
// one set's round trips overlap another's execution, and PostgreSQL runs
// sets on more than one core. Measured on 2 cores (docs/pipeline.md,
// "Batched writes"), 4 flushers per kind worked a backlog off about 30%
// faster than 2.
const maxFlushers = 4

// flushers is how many sets of one kind are written at once for a pool of
// poolConns connections: a quarter of the pool each, so deliveries and
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
	write    func(ctx context.Context, reqs []Req) []answer[Res]
}

func newBatcher[Req, Res any](flushers int, write func(ctx context.Context, reqs []Req) []answer[Res]) *batcher[Req, Res] {
	return &batcher[Req, Res]{in: make(chan batchCall[Req, Res]), flushers: flushers, write: write}
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

func (b *batcher[Req, Res]) flush(ctx context.Context) {
	calls := make([]batchCall[Req, Res], 0, batchMax)
	reqs := make([]Req, 0, batchMax)
	for {
		calls, reqs = calls[:0], reqs[:0]
		select {
		case c := <-b.in:
			calls = append(calls, c)
		case <-ctx.Done():
			return
		}
	more:
		for len(calls) < batchMax {
			select {
			case c := <-b.in:
				calls = append(calls, c)
			default:
				break more
			}
		}
		for _, c := range calls {
			reqs = append(reqs, c.req)
		}
		for i, a := range b.write(ctx, reqs) {
			calls[i].out <- a
		}
	}
}

// claim is a delivery to record (store.BeginDeliveries).
type claim struct {
	ref      store.AttemptRef
	delivery int
}

// claimBatcher records deliveries in sets.
func (w *Worker) claimBatcher() *batcher[claim, store.Delivery] {
	return newBatcher(flushers(w.store.Pool().Config().MaxConns), func(ctx context.Context, reqs []claim) []answer[store.Delivery] {
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
	return newBatcher(flushers(w.store.Pool().Config().MaxConns), func(ctx context.Context, reqs []payments.Outcome) []answer[payments.Resolution] {
		res, errs := w.payments.ApplyAll(ctx, reqs)
		out := make([]answer[payments.Resolution], len(reqs))
		for i := range out {
			out[i] = answer[payments.Resolution]{res[i], errs[i]}
		}
		return out
	})
}
