package payments

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// Redrive is an operator's request to execute a dead attempt again
// (payrail payments redrive).
type Redrive struct {
	Attempt store.AttemptRef
	// Actor is recorded on the transition, e.g. "operator:alice".
	Actor  string
	Reason string
	// Resolvers answer, per processor name, what became of the dead
	// attempt. A processor that can answer must be here: its dead attempt
	// is never executed again without asking (a charge that went through
	// would be charged twice). Only CANOPY_NACHA, which has no Resolver,
	// is judged from its own tables (no ACH entry was staged).
	Resolvers map[string]processors.Resolver
}

// Redrive actions.
const (
	// RedriveRecovered: the processor said what happened to the dead
	// attempt; that outcome is recorded and nothing is executed again.
	RedriveRecovered = "recovered"
	// RedriveRequeued: nothing happened at the processor; a new attempt
	// and its job were created.
	RedriveRequeued = "redriven"
)

// RedriveResult is what a redrive did.
type RedriveResult struct {
	Action        string
	DeadAttemptID string
	// Processor is what the processor answered (recovered, or not_found
	// before a requeue); empty for CANOPY_NACHA.
	Processor    processors.Result
	NewAttemptID string // RedriveRequeued only
	// WithoutCardCode: the new job charges a card whose CVV payrail never
	// stored, so the gateway checks no card code (as for every job the
	// relay publishes).
	WithoutCardCode bool
	LineItem        store.LineItem
}

// RefusedError is a redrive that was not done, and why. Nothing changed.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "redrive refused: " + e.Reason }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// Redrive executes r: what can be redriven, and how, is in docs/states.md
// (Operator redrive). In short: only a dead attempt of an INVALID line
// item (CheckRedrive); a processor with a Resolver is asked first and an
// answer that something happened (approved, declined, held) is recorded
// on the dead attempt instead; only "nothing happened" creates a new
// attempt with a new job through the outbox, as Submit does. The job is
// the dead attempt's sealed job when the outbox still holds it, else it
// is rebuilt from the account's stored payment method (payment_transfer);
// a guest payment whose job is gone cannot be rebuilt (payrail keeps no
// card or bank account number of a guest payment) and is refused.
func (s *Service) Redrive(ctx context.Context, r Redrive, now time.Time) (RedriveResult, error) {
	found, err := s.store.FindAttempts(ctx, r.Attempt.OrgID, r.Attempt.AttemptID)
	if err != nil {
		return RedriveResult{}, err
	}
	var a *store.OpsAttempt
	for i := range found {
		if found[i].AttemptID == r.Attempt.AttemptID && found[i].OrgID == r.Attempt.OrgID {
			a = &found[i]
		}
	}
	if a == nil {
		return RedriveResult{}, refused("org %s has no attempt %s (a redriven attempt is replaced by its new attempt; see the line item's transitions)",
			r.Attempt.OrgID, r.Attempt.AttemptID)
	}
	li, err := s.store.LineItem(ctx, a.OrgID, a.AccountID, a.LineItemID)
	if err != nil {
		return RedriveResult{}, err
	}
	if err := CheckRedrive(li); err != nil {
		return RedriveResult{}, refusal(err)
	}
	out := RedriveResult{DeadAttemptID: a.AttemptID}

	// 1. What happened at the processor?
	if res, ok := r.Resolvers[a.Processor]; ok {
		job := processors.Job{OrgID: a.OrgID, AccountID: a.AccountID, LineItemID: a.LineItemID, AttemptID: a.AttemptID,
			Processor: a.Processor, PaymentType: a.PaymentType, Origin: a.Origin, AmountCents: a.AmountCents,
			EffectiveAt: a.EffectiveAt, CreatedAt: a.CreatedAt, TransactionID: a.TransactionID}
		answer, err := res.Resolve(ctx, job)
		out.Processor = answer
		switch {
		case err == nil && (answer.Outcome == processors.Succeeded || answer.Outcome == processors.Declined ||
			answer.Outcome == processors.Held):
			return s.recover(ctx, r, a, answer, out)
		case err == nil && answer.Outcome == processors.Retryable && answer.Code == "not_found":
			// Nothing was charged: execute again below.
		default:
			why := answer.Message
			if err != nil {
				why = err.Error()
			}
			return out, refused("%s could not say what became of attempt %s (%s %s); nothing was changed, try again later",
				a.Processor, a.AttemptID, answer.Outcome, why)
		}
	} else if a.Processor == processors.CanopyNACHA {
		entry, err := s.store.AttemptNachaEntry(ctx, a.OrgID, a.AttemptID)
		if err != nil {
			return out, err
		}
		if entry != nil {
			return out, refused("attempt %s staged an ACH entry (status %s): it may still be debited, so it is not redriven; "+
				"see payrail nacha files", a.AttemptID, entry.Status)
		}
	} else {
		return out, refused("this command cannot ask %s what became of attempt %s (no resolver configured); "+
			"it is not executed again without asking", a.Processor, a.AttemptID)
	}

	// 2. The job of the new attempt.
	job, err := s.redriveJob(ctx, a, &li)
	if err != nil {
		return out, err
	}
	job.AttemptID, job.CreatedAt, job.Delivery, job.TransactionID = store.NewID("att_"), now.UTC(), 0, ""
	if job.Card != nil {
		card := *job.Card
		card.CVV = "" // never stored; a sealed job from the outbox has none either
		job.Card, out.WithoutCardCode = &card, true
	}
	msg, err := s.sealJob(job)
	if err != nil {
		return out, err
	}
	msg.FastPayload = nil
	in := instrumentOf(job)
	if in.Kind == "" && a.InstrumentKind != "" {
		in = processors.Instrument{Kind: a.InstrumentKind, Brand: a.InstrumentBrand, LastFour: a.InstrumentLastFour}
	}
	after, err := s.store.RedriveAttempt(ctx, store.Redrive{Dead: store.AttemptRef{OrgID: a.OrgID, AttemptID: a.AttemptID},
		NewAttemptID: job.AttemptID, PaymentType: job.PaymentType, InstrumentKind: in.Kind, InstrumentBrand: in.Brand,
		InstrumentLastFour: in.LastFour, Job: msg, Actor: r.Actor, Reason: r.Reason, Check: CheckRedrive})
	if errors.Is(err, store.ErrNotFound) {
		return out, refused("attempt %s changed while it was redriven (another operator?); nothing was changed", a.AttemptID)
	}
	if err != nil {
		return out, refusal(err)
	}
	out.Action, out.NewAttemptID, out.LineItem = RedriveRequeued, job.AttemptID, after
	return out, nil
}

// redriveJob is the job a new attempt of a's payment executes.
func (s *Service) redriveJob(ctx context.Context, a *store.OpsAttempt, li *store.LineItem) (processors.Job, error) {
	payload, err := s.store.JobPayload(ctx, store.AttemptRef{OrgID: a.OrgID, AttemptID: a.AttemptID})
	if err != nil {
		return processors.Job{}, err
	}
	if payload != nil {
		job, err := processors.DecodeJob(s.ring, payload)
		if err != nil {
			return processors.Job{}, refused("the stored job of attempt %s cannot be opened (%v)", a.AttemptID, err)
		}
		if job.OrgID != a.OrgID || job.LineItemID != a.LineItemID || job.Processor != a.Processor {
			return processors.Job{}, refused("the stored job of attempt %s is not this payment's", a.AttemptID)
		}
		return job, nil
	}
	if a.Origin != OriginPaymentTransfer {
		what := "card number"
		if a.PaymentType == processors.PaymentTypeACH {
			what = "bank account number"
		}
		return processors.Job{}, refused("attempt %s is a %s whose job was removed when it died, and payrail keeps no %s "+
			"of a guest payment: it cannot be executed again; the customer must pay again", a.AttemptID, a.Origin, what)
	}
	acct, err := s.store.PaymentMethods(ctx, a.OrgID, a.AccountID)
	if err != nil {
		return processors.Job{}, err
	}
	job, err := jobFor(acct, Payment{Origin: OriginPaymentTransfer, PaymentType: a.PaymentType})
	if err != nil {
		return processors.Job{}, refused("account %s cannot pay attempt %s's payment any more: %v", a.AccountID, a.AttemptID, err)
	}
	if job.Processor != a.Processor {
		return processors.Job{}, refused("account %s now pays %s payments with %s, not %s: not redriven",
			a.AccountID, a.PaymentType, job.Processor, a.Processor)
	}
	job.OrgID, job.AccountID, job.LineItemID = a.OrgID, a.AccountID, a.LineItemID
	job.AmountCents, job.Origin, job.EffectiveAt = li.AmountCents, OriginPaymentTransfer, li.EffectiveAt
	return job, nil
}

// recover records on the dead attempt what its processor says happened.
func (s *Service) recover(ctx context.Context, r Redrive, a *store.OpsAttempt, answer processors.Result, out RedriveResult) (RedriveResult, error) {
	res, err := Resolve(answer.Outcome)
	if err != nil {
		return out, err
	}
	to := res.LineItem
	if to == "" {
		to = store.StatusPending // held for review: the worker polls it again
	}
	reason := fmt.Sprintf("operator redrive: %s says dead attempt %s was %s", a.Processor, a.AttemptID, answer.Outcome)
	if answer.TransactionID != "" {
		reason += " (transaction " + answer.TransactionID + ")"
	}
	if r.Reason != "" {
		reason += ": " + r.Reason
	}
	after, err := s.store.CompleteAttempt(ctx, store.AttemptResult{
		AttemptRef: store.AttemptRef{OrgID: a.OrgID, AttemptID: a.AttemptID}, From: []store.AttemptStatus{store.AttemptDead},
		Status: res.Attempt, LineItemStatus: to, TransactionID: answer.TransactionID, ResultCode: answer.Code,
		ResultMessage: answer.Message, InstrumentKind: answer.Instrument.Kind, InstrumentBrand: answer.Instrument.Brand,
		InstrumentLastFour: answer.Instrument.LastFour, Actor: r.Actor, Reason: reason,
	})
	if errors.Is(err, store.ErrAttemptClosed) {
		return out, refused("attempt %s changed while it was redriven (another operator?); nothing was changed", a.AttemptID)
	}
	if err != nil {
		return out, err
	}
	out.Action, out.LineItem = RedriveRecovered, after
	return out, nil
}

// refusal turns a state rule's refusal into a RefusedError.
func refusal(err error) error {
	var te *store.TransitionError
	if errors.As(err, &te) {
		return &RefusedError{Reason: te.Reason}
	}
	return err
}
