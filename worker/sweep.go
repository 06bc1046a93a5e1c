package worker

import (
	"context"
	"errors"
	"time"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
	"github.com/payrail/payrail/processors"
)

// pollHeld asks resolvers about held attempts until ctx ends. Several
// workers may poll the same attempt; CompleteAttempt applies one answer.
func (w *Worker) pollHeld(ctx context.Context) {
	t := time.NewTicker(w.opts.HeldPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stale, err := w.store.StaleAttempts(ctx, store.AttemptHeld, w.opts.HeldPoll, 0, 100)
		if err != nil {
			w.log.Warn("could not list held attempts", "err", err)
			continue
		}
		for _, a := range stale {
			w.resolve(ctx, a, false)
		}
	}
}

// sweepDead finds attempts whose last allowed delivery died with its
// worker: JetStream will not deliver them again, so nothing else would
// ever finish them. They are resolved if the processor can say what
// happened, and otherwise marked dead.
func (w *Worker) sweepDead(ctx context.Context) {
	t := time.NewTicker(w.opts.AckWait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stale, err := w.store.StaleAttempts(ctx, store.AttemptProcessing, 2*w.opts.AckWait, w.opts.MaxDeliver, 100)
		if err != nil {
			w.log.Warn("could not list stranded attempts", "err", err)
			continue
		}
		for _, a := range stale {
			w.resolve(ctx, a, true)
		}
	}
}

// resolve asks the attempt's processor what became of it; with orDead an
// unresolved attempt is marked dead.
func (w *Worker) resolve(ctx context.Context, a store.StaleAttempt, orDead bool) {
	proc, ok := w.registry.Lookup(a.Processor)
	if !ok {
		return // another worker deployment serves this processor
	}
	log := w.log.With("processor", a.Processor, "org_id", a.OrgID, "line_item_id", a.LineItemID, "attempt_id", a.AttemptID)
	job := processors.Job{OrgID: a.OrgID, AccountID: a.AccountID, LineItemID: a.LineItemID, AttemptID: a.AttemptID,
		Processor: a.Processor, PaymentType: a.PaymentType, AmountCents: a.AmountCents, EffectiveAt: a.EffectiveAt,
		CreatedAt: a.CreatedAt, TransactionID: a.TransactionID}
	if r := a.Reverses; r != nil {
		// Without it a reversal's attempt would be resolved as a charge.
		job.Reversal = &processors.ReversalDetails{OriginalLineItemID: r.LineItemID, OriginalAttemptID: r.AttemptID,
			OriginalTransactionID: r.TransactionID, OriginalCreatedAt: r.CreatedAt}
	}
	res := processors.Result{Outcome: processors.Held}
	if r, ok := proc.(processors.Resolver); ok {
		callCtx, cancel := context.WithTimeout(ctx, w.opts.CallTimeout)
		res = classify(r.Resolve(callCtx, job))
		cancel()
	}
	switch {
	case res.Outcome == processors.Held || res.Outcome == processors.Retryable || res.Outcome == processors.PendingSettlement:
		if !orDead {
			if err := w.store.TouchAttempt(ctx, a.AttemptRef); err != nil {
				log.Warn("could not touch held attempt", "err", err)
			}
			return
		}
		res.Outcome = payments.Dead
		if res.Message == "" {
			res.Message = "the last delivery was lost and the processor could not say what happened"
		}
	}
	applied, err := w.payments.Apply(ctx, payments.Outcome{Attempt: a.AttemptRef, Result: res, Actor: w.actor(a.Processor)})
	if err != nil && !errors.Is(err, store.ErrAttemptClosed) {
		log.Warn("could not apply resolved outcome", "err", err)
		return
	}
	if applied.Attempt == store.AttemptDead {
		w.opts.Metrics.dead(a.Processor)
	}
	log.Info("attempt resolved", "attempt_status", applied.Attempt, "line_item_status", applied.LineItem)
}
