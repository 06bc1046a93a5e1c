package worker

import (
	"context"
	"time"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
)

// reconcile re-publishes the jobs of unfinished attempts that are no
// longer on their way to a worker, until ctx ends. The broker can lose
// jobs it acknowledged: its store wiped (disk loss, a fresh cluster), the
// jobs stream deleted by mistake. Their outbox rows were deleted when
// published, so the relay will not send them again, and their attempts
// stay queued with no delivery forever. Every ReconcileEvery the reconciler takes, for
// the processors this worker serves (store.RepublishStranded):
//
//   - attempts whose job was delivered or put back for a retry before the
//     jobs stream was created (the broker no longer holds it), once no
//     delivery holds a lease, and attempts queued before it and never
//     delivered while their consumer has nothing undelivered;
//   - queued attempts never delivered, queued longer than ReconcileAfter
//     ago and published, while their consumer has nothing undelivered;
//   - queued attempts waiting for a retry longer than the longest backoff
//     plus ReconcileAfter;
//   - processing attempts whose delivery started longer than lease +
//     AckWait + ReconcileAfter ago (the delivery died and JetStream did not
//     redeliver it).
//
// Several workers may run it: one pass at a time holds the lock, the
// others skip theirs. It also sets payrail_attempts_stale.
func (w *Worker) reconcile(ctx context.Context) {
	if w.opts.ReconcileEvery < 0 {
		return
	}
	t := time.NewTicker(w.opts.ReconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.reconcileOnce(ctx)
	}
}

func (w *Worker) reconcileOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(w.opts.ReconcileEvery, 10*time.Second))
	defer cancel()
	if n, err := w.store.CountStaleAttempts(ctx, w.opts.ReconcileAfter); err != nil {
		w.log.Warn("could not count stale attempts", "err", err)
	} else {
		w.opts.Metrics.staleAttempts(n)
	}
	stream, err := w.js.Stream(ctx, w.topo.Jobs)
	if err != nil {
		// Missing: the consumers' watch recreates it, and the next pass
		// sees its new creation time. NATS away: nothing to compare with.
		w.log.Debug("reconcile: jobs stream not available", "err", err)
		return
	}
	q := store.StrandedQuery{
		Processors:     w.registry.Names(),
		StreamCreated:  stream.CachedInfo().Created,
		NeverDelivered: w.opts.ReconcileAfter,
		RetryLost:      w.opts.Backoff[len(w.opts.Backoff)-1] + w.opts.ReconcileAfter,
		LeaseExpired:   w.lease() + w.opts.AckWait + w.opts.ReconcileAfter,
		Lease:          w.lease(),
		MaxDeliver:     w.opts.MaxDeliver,
		Limit:          500,
		Job: func(a store.Stranded) store.OutboxMessage {
			return payments.JobMessage(a.OrgID, a.AttemptID, a.Processor)
		},
	}
	for _, name := range q.Processors {
		cons, err := stream.Consumer(ctx, w.topo.WorkerConsumer(name))
		if err != nil {
			continue
		}
		if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
			q.IdleProcessors = append(q.IdleProcessors, name)
		}
	}
	stranded, err := w.store.RepublishStranded(ctx, q)
	if err != nil {
		w.log.Warn("could not re-publish stranded jobs", "err", err)
		return
	}
	for _, a := range stranded {
		w.log.Warn("job no longer on its way to a worker; re-published through the outbox", "processor", a.Processor,
			"org_id", a.OrgID, "attempt_id", a.AttemptID, "reason", a.Reason, "msg_id", a.MsgID)
		w.opts.Metrics.republish(a.Processor)
	}
}
