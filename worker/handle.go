package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/tracing"
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
	ctx, span := w.startDelivery(ctx, proc, msg, delivery)
	defer span.End()
	job, err := w.openJob(ctx, proc, msg)
	switch {
	case errors.Is(err, processors.ErrBadJob):
		span.SetStatus(codes.Error, "rejected")
		w.reject(proc, msg, delivery, err, start)
		return
	case err != nil:
		// Shutdown gave up waiting for PostgreSQL to read a v1 job's
		// attempt: hand the job back.
		w.log.Warn("could not read the attempt of a v1 job before shutdown; handing it back", "processor", proc.Name(),
			"err", err)
		_ = msg.Nak()
		return
	}
	job.Delivery = delivery
	jobAttributes(span, job)
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
		began, err = w.claims.do(ctx, claim{ref: ref, delivery: delivery})
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
	callCtx, callSpan := w.startCall(callCtx, proc, "process", job)
	res, err := proc.Process(callCtx, job)
	cancel()
	outcome := classify(res, err)
	endWith(callSpan, outcome)
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
			span.SetAttributes(tracing.AttrOutcome.String(string(outcome.Outcome)))
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
		applied, err = w.completions.do(ctx, payments.Outcome{Attempt: ref, Result: outcome, Actor: w.actor(proc.Name()),
			TraceHeaders: tracing.Inject(ctx, nil)})
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
	span.SetAttributes(tracing.AttrOutcome.String(string(outcome.Outcome)),
		attribute.String("payrail.attempt_status", string(applied.Attempt)),
		attribute.String("payrail.line_item_status", string(applied.LineItem)))
	if applied.Attempt == store.AttemptDead {
		span.SetStatus(codes.Error, "dead")
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
		callCtx, callSpan := w.startCall(callCtx, proc, "resolve", job)
		res, err := r.Resolve(callCtx, job)
		cancel()
		res = classify(res, err)
		endWith(callSpan, res)
		if res.Outcome != processors.Retryable {
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

// openJob authenticates a delivery and returns its job. Nothing in the
// message is believed unless the keyring vouches for it: the body must
// open (AEAD over the whole job, bound to its org, attempt and processor),
// and the unauthenticated parts — the headers and the subject the message
// came on — must agree with what it sealed. Errors matching
// processors.ErrBadJob mean the message is to be rejected; any other error
// is PostgreSQL's (v1 jobs only) and passes.
func (w *Worker) openJob(ctx context.Context, proc processors.Processor, msg jetstream.Msg) (processors.Job, error) {
	job, err := processors.DecodeJob(w.ring, msg.Data())
	v1 := errors.Is(err, processors.ErrV1Job)
	if v1 {
		job, err = w.v1Job(ctx, msg, proc)
	}
	if err != nil {
		return processors.Job{}, err
	}
	h := msg.Headers()
	if h.Get(processors.HeaderOrgID) != job.OrgID || h.Get(processors.HeaderAttemptID) != job.AttemptID ||
		job.Processor != proc.Name() {
		// A genuine job replayed under another org's or attempt's headers,
		// or onto another processor's subject.
		return processors.Job{}, &processors.JobError{Reason: rejectMismatch, ClaimedOrg: job.OrgID,
			ClaimedAttempt: job.AttemptID}
	}
	if v1 {
		w.opts.Metrics.v1(job.Processor)
		w.log.Info("v1 job: executing the attempt as PostgreSQL recorded it", "processor", job.Processor,
			"org_id", job.OrgID, "attempt_id", job.AttemptID)
	}
	return job, nil
}

// Rejection reasons the worker adds to processors' (see
// payrail_jobs_rejected_total).
const (
	rejectMismatch       = "mismatch"        // headers or subject disagree with the sealed job
	rejectUnknownAttempt = "unknown_attempt" // a v1 job whose attempt PostgreSQL does not know
)

// v1Job rebuilds a job written in the v1 format, which sealed only the
// payment details (bound to job/<org>/<attempt>) and left the amount and
// the rest in clear. Those details are genuine for that attempt; every
// other value is taken from PostgreSQL's record of the attempt, never from
// the message, so a v1 message whose amount was changed on the way charges
// the amount the API accepted. This keeps the jobs in flight at the
// upgrade to v2 (written, or stored in the outbox, by the previous
// release); it goes once none can remain (docs/security.md#upgrading-from-v1-jobs).
func (w *Worker) v1Job(ctx context.Context, msg jetstream.Msg, proc processors.Processor) (processors.Job, error) {
	v1, err := processors.DecodeV1Job(w.ring, msg.Data())
	if err != nil {
		return processors.Job{}, err
	}
	var a store.AttemptJob
	stopWaiting := progress(msg, w.opts.AckWait/3)
	err = w.retryStore(ctx, w.log.With("processor", proc.Name(), "attempt_id", v1.AttemptID),
		"read the attempt of a v1 job", func() error {
			var err error
			a, err = w.store.AttemptJob(ctx, store.AttemptRef{OrgID: v1.OrgID, AttemptID: v1.AttemptID})
			return err
		}, store.ErrNotFound)
	stopWaiting()
	if errors.Is(err, store.ErrNotFound) {
		return processors.Job{}, &processors.JobError{Reason: rejectUnknownAttempt, ClaimedOrg: v1.OrgID,
			ClaimedAttempt: v1.AttemptID}
	}
	if err != nil {
		return processors.Job{}, err
	}
	return processors.Job{OrgID: a.OrgID, AccountID: a.AccountID, LineItemID: a.LineItemID, AttemptID: a.AttemptID,
		Processor: a.Processor, PaymentType: a.PaymentType, Origin: a.Origin, AmountCents: a.AmountCents,
		EffectiveAt: a.EffectiveAt, CreatedAt: a.CreatedAt, ACH: v1.ACH, Card: v1.Card, Profile: v1.Profile}, nil
}

// reject drops a message that is not an authentic job: not JSON, not
// sealed with a configured key, tampered with, forged, or replayed under
// other headers. It is logged (identifiers only, marked as claimed since
// nothing vouches for them), counted in payrail_jobs_rejected_total and
// terminated, and no payment is touched: its headers are as unauthenticated
// as its body, so they must not be able to mark an attempt dead.
//
// No genuine payment is lost by this. A publisher can only add messages to
// the stream; the genuine job of an attempt is another message (the same
// Nats-Msg-Id "job_<attempt>", so a copy published within the duplicate
// window is dropped by JetStream), and it is still in the stream or, until
// the attempt's result commits, in the outbox row it was published from
// (docs/security.md#job-integrity). A message sealed with a key id this
// worker does not hold may be genuine — a key being rolled out to the
// workers — so it is handed back with a delay until its last delivery, and
// only then dropped.
func (w *Worker) reject(proc processors.Processor, msg jetstream.Msg, delivery int, cause error, start time.Time) {
	reason := processors.RejectReason(cause)
	je := &processors.JobError{}
	errors.As(cause, &je)
	h := msg.Headers()
	log := w.log.With("processor", proc.Name(), "reason", reason, "delivery", delivery,
		"claimed_org_id", je.ClaimedOrg, "claimed_attempt_id", je.ClaimedAttempt,
		"header_org_id", bounded(h.Get(processors.HeaderOrgID)),
		"header_attempt_id", bounded(h.Get(processors.HeaderAttemptID)), "bytes", len(msg.Data()))
	if reason == processors.RejectUnknownKey && delivery < w.opts.MaxDeliver {
		log.Warn("job sealed with a key this worker does not hold; handing it back", "err", cause)
		_ = msg.NakWithDelay(w.backoff(delivery))
		return
	}
	log.Error("rejected a job message that is not authentic; dropping it, no payment changed", "err", cause)
	w.opts.Metrics.rejected(proc.Name(), reason)
	w.opts.Metrics.job(proc.Name(), "rejected", start)
	_ = msg.Term()
}

// bounded shortens an unauthenticated header value before it is logged.
func bounded(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
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
