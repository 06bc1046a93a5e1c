package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
	"github.com/payrail/payrail/processors"
)

// handle processes one delivery. ctx ends only when shutdown gives up on
// the job; the job is then handed back with a nak.
func (w *Worker) handle(ctx context.Context, proc processors.Processor, msg jetstream.Msg) {
	start := time.Now()
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Error("job without JetStream metadata; terminating it", "processor", proc.Name(), "err", err)
		_ = msg.Term()
		return
	}
	delivery := int(meta.NumDelivered)
	job, err := processors.DecodeJob(w.ring, msg.Data())
	if err != nil {
		w.poison(ctx, proc, msg, err)
		return
	}
	job.Delivery = delivery
	log := w.log.With("processor", proc.Name(), "org_id", job.OrgID, "line_item_id", job.LineItemID,
		"attempt_id", job.AttemptID, "delivery", delivery)
	ref := store.AttemptRef{OrgID: job.OrgID, AttemptID: job.AttemptID}
	if h := w.hooks.received; h != nil && h(job) != nil {
		return
	}

	// While PostgreSQL is away the job is held (with progress signals)
	// rather than left to redeliver: redeliveries would use up MaxDeliver
	// without the attempt ever recording them, and nothing would then
	// finish the payment.
	stopWaiting := progress(msg, w.opts.AckWait/3)
	var began store.Delivery
	err = w.retryStore(ctx, log, "record the delivery", func() error {
		var err error
		began, err = w.store.BeginDeliveryState(ctx, ref, delivery, w.lease())
		return err
	}, store.ErrAttemptLeased, store.ErrNotFound)
	stopWaiting()
	before := began.Before
	switch {
	case errors.Is(err, store.ErrAttemptLeased):
		// Come back when the earlier delivery's lease ends, not a whole
		// lease later: after a worker died, JetStream redelivers about
		// AckWait after its delivery, which is often a few milliseconds
		// before that delivery's lease (measured from when it was
		// recorded) runs out.
		delay := leasedDelay(began.LeaseLeft)
		log.Warn("an earlier delivery may still be calling the processor; handing this one back",
			"lease_left", began.LeaseLeft, "retry_in", delay)
		w.opts.Metrics.job(proc.Name(), "leased", start)
		_ = msg.NakWithDelay(delay)
		return
	case errors.Is(err, store.ErrNotFound):
		log.Error("job names no attempt; terminating it")
		w.opts.Metrics.job(proc.Name(), "orphan", start)
		_ = msg.Term()
		return
	case err != nil:
		// Shutdown gave up waiting for the database: hand the job back.
		log.Warn("could not record the delivery before shutdown; handing the job back", "err", err)
		_ = msg.Nak()
		return
	case !payments.Open(before):
		log.Info("duplicate delivery of a finished attempt; acknowledging", "attempt_status", before)
		w.opts.Metrics.job(proc.Name(), "duplicate", start)
		_ = msg.Ack()
		return
	}
	// A job re-published from the outbox is delivery 1 of its copy, but
	// not of its attempt: the attempt's count is what processors and
	// retries go by.
	if began.Deliveries > delivery {
		delivery = began.Deliveries
		job.Delivery = delivery
		log = log.With("attempt_delivery", delivery)
	}

	stop := progress(msg, w.opts.AckWait/3)
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.CallTimeout)
	res, err := proc.Process(callCtx, job)
	cancel()
	outcome := classify(res, err)
	if h := w.hooks.afterProcess; h != nil && h(job) != nil {
		stop()
		return
	}

	if outcome.Outcome == processors.Retryable {
		if delivery < w.opts.MaxDeliver {
			stop()
			delay := w.backoff(delivery)
			if outcome.RetryAfter > delay {
				delay = outcome.RetryAfter
			}
			log.Warn("retryable processor outcome; will retry", "code", outcome.Code, "message", outcome.Message,
				"retry_in", delay)
			if err := w.store.RecordRetry(ctx, ref, outcome.Code, outcome.Message); err != nil {
				log.Warn("could not record retry", "err", err)
			}
			w.opts.Metrics.job(proc.Name(), string(processors.Retryable), start)
			_ = msg.NakWithDelay(delay)
			return
		}
		outcome = w.lastChance(ctx, proc, job, outcome)
	}

	// The processor has answered: keep trying to commit it (the progress
	// signals keep the job ours) rather than have a redelivery call the
	// processor again.
	var applied payments.Resolution
	err = w.retryStore(ctx, log, "commit the processor's result", func() error {
		var err error
		applied, err = w.payments.Apply(ctx, payments.Outcome{Attempt: ref, Result: outcome, Actor: w.actor(proc.Name())})
		return err
	}, store.ErrAttemptClosed, store.ErrNotFound)
	stop()
	switch {
	case errors.Is(err, store.ErrAttemptClosed):
		log.Info("attempt was finished by another delivery; acknowledging")
	case err != nil:
		// Not committed before shutdown: the job comes back and the
		// processor's idempotency turns the second call into the same
		// answer.
		log.Error("could not commit the processor's result before shutdown; handing the job back", "err", err,
			"outcome", outcome.Outcome)
		_ = msg.Nak()
		return
	}
	if h := w.hooks.afterCommit; h != nil && h(job) != nil {
		return
	}
	if applied.Attempt == store.AttemptDead {
		log.Error("attempt is dead: deliveries exhausted", "code", outcome.Code, "message", outcome.Message)
		w.opts.Metrics.dead(proc.Name())
		_ = msg.Term()
	} else {
		_ = msg.Ack()
	}
	log.Info("job done", "outcome", outcome.Outcome, "attempt_status", applied.Attempt,
		"line_item_status", applied.LineItem, "duration_ms", time.Since(start).Milliseconds())
	w.opts.Metrics.job(proc.Name(), string(outcome.Outcome), start)
}

// retryStore runs fn until it succeeds, fails with one of final, or ctx
// ends (shutdown gave up on the job); it waits longer after each failure.
func (w *Worker) retryStore(ctx context.Context, log *slog.Logger, what string, fn func() error, final ...error) error {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		for _, f := range final {
			if errors.Is(err, f) {
				return err
			}
		}
		if ctx.Err() != nil {
			return err
		}
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("PostgreSQL unavailable; retrying", "action", what, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// lastChance is called when the last delivery ended retryable. A processor
// that can look up what really happened (an unknown outcome may have been
// a success) is asked first; otherwise the attempt is dead.
func (w *Worker) lastChance(ctx context.Context, proc processors.Processor, job processors.Job, last processors.Result) processors.Result {
	if r, ok := proc.(processors.Resolver); ok {
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.CallTimeout)
		res, err := r.Resolve(callCtx, job)
		cancel()
		if res := classify(res, err); res.Outcome != processors.Retryable {
			return res
		}
	}
	last.Outcome = payments.Dead
	return last
}

// classify folds an error into the result's outcome: a *processors.Error
// says what it is, any other error is retryable.
func classify(res processors.Result, err error) processors.Result {
	if err == nil {
		if res.Outcome == "" {
			res.Outcome = processors.Retryable
			res.Message = "processor returned no outcome"
		}
		return res
	}
	var pe *processors.Error
	if errors.As(err, &pe) && (pe.Outcome == processors.Permanent || pe.Outcome == processors.Retryable) {
		res.Outcome, res.Code, res.Message = pe.Outcome, pe.Code, pe.Message
		if res.Message == "" && pe.Err != nil {
			res.Message = pe.Err.Error()
		}
		return res
	}
	res.Outcome, res.Message = processors.Retryable, err.Error()
	return res
}

// poison ends a job that cannot be read. If its headers name an attempt,
// the attempt is marked dead so the payment does not stay PENDING.
func (w *Worker) poison(ctx context.Context, proc processors.Processor, msg jetstream.Msg, cause error) {
	org, attempt := msg.Headers().Get(processors.HeaderOrgID), msg.Headers().Get(processors.HeaderAttemptID)
	log := w.log.With("processor", proc.Name(), "org_id", org, "attempt_id", attempt)
	if org != "" && attempt != "" {
		_, err := w.payments.Apply(ctx, payments.Outcome{
			Attempt: store.AttemptRef{OrgID: org, AttemptID: attempt},
			Result:  processors.Result{Outcome: payments.Dead, Code: "unreadable_job", Message: "the job could not be read"},
			Actor:   w.actor(proc.Name()), Reason: "job could not be read",
		})
		if err != nil && !errors.Is(err, store.ErrAttemptClosed) && !errors.Is(err, store.ErrNotFound) {
			log.Error("could not mark the attempt of an unreadable job dead; will retry", "err", err)
			return // redelivered after AckWait
		}
	}
	log.Error("terminating unreadable job", "err", cause)
	w.opts.Metrics.dead(proc.Name())
	w.opts.Metrics.job(proc.Name(), "poison", time.Now())
	_ = msg.Term()
}

// progress tells JetStream every interval that the job is still being
// worked on, so a long processor call is not redelivered under it. The
// returned func stops it.
func progress(msg jetstream.Msg, every time.Duration) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return sync.OnceFunc(func() { close(done) })
}
