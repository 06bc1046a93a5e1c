package payments

import (
	"context"
	"fmt"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// Dead is the outcome of an attempt whose deliveries ran out (or whose job
// could not be read) without the processor deciding it.
const Dead processors.Outcome = "dead"

// Resolution is where an outcome leaves the attempt and its line item.
type Resolution struct {
	Attempt store.AttemptStatus
	// LineItem is the line item's new status; "" keeps it (the processor
	// has not decided yet).
	LineItem store.Status
	Reason   string
}

// Resolve maps an outcome to its resolution: the one table of what a
// processor's answer does to a payment (docs/states.md).
func Resolve(o processors.Outcome) (Resolution, error) {
	switch o {
	case processors.Succeeded:
		return Resolution{store.AttemptSucceeded, store.StatusValid, "processor outcome succeeded"}, nil
	case processors.Declined:
		return Resolution{store.AttemptDeclined, store.StatusDeclined, "processor outcome declined"}, nil
	case processors.Permanent:
		return Resolution{store.AttemptFailed, store.StatusInvalid, "processor outcome permanent"}, nil
	case processors.Held:
		return Resolution{store.AttemptHeld, "", "held for review by the processor"}, nil
	case processors.PendingSettlement:
		return Resolution{store.AttemptPendingSettlement, "", "accepted for settlement"}, nil
	case Dead:
		return Resolution{store.AttemptDead, store.StatusInvalid, "deliveries exhausted after retryable errors"}, nil
	}
	return Resolution{}, fmt.Errorf("payments: outcome %q decides nothing", o)
}

// Outcome is what Apply records for one attempt.
type Outcome struct {
	Attempt store.AttemptRef
	Result  processors.Result
	// Actor is who decided, e.g. "worker:AUTHORIZE_NET".
	Actor string
	// Reason overrides the resolution's reason when set.
	Reason string
	// TraceHeaders is the trace context of the work that decided (the
	// worker's delivery span), for the event's headers.
	TraceHeaders map[string]string
}

// Apply records o in one transaction: the attempt's status and result, the
// line item's status with its transition, and the event. An attempt that
// has a final result already is left alone (store.ErrAttemptClosed), so a
// duplicate delivery never applies a second result; a retryable outcome
// is not a result and is refused.
func (s *Service) Apply(ctx context.Context, o Outcome) (Resolution, error) {
	res, err := Resolve(o.Result.Outcome)
	if err != nil {
		return Resolution{}, err
	}
	if o.Reason != "" {
		res.Reason = o.Reason
	}
	_, err = s.store.CompleteAttempt(ctx, attemptResult(o, res))
	return res, err
}

// ApplyAll records many outcomes as Apply records each: res[i] and errs[i]
// are what Apply would have returned for os[i]. The outcomes that apply
// commit in one transaction (store.CompleteAttempts); one that cannot be
// recorded fails alone.
func (s *Service) ApplyAll(ctx context.Context, os []Outcome) (res []Resolution, errs []error) {
	res, errs = make([]Resolution, len(os)), make([]error, len(os))
	results := make([]store.AttemptResult, 0, len(os))
	index := make([]int, 0, len(os)) // results[j] is os[index[j]]
	for i, o := range os {
		r, err := Resolve(o.Result.Outcome)
		if err != nil {
			errs[i] = err
			continue
		}
		if o.Reason != "" {
			r.Reason = o.Reason
		}
		res[i] = r
		results = append(results, attemptResult(o, r))
		index = append(index, i)
	}
	for j, err := range s.store.CompleteAttempts(ctx, results) {
		errs[index[j]] = err
	}
	return res, errs
}

// attemptResult is what the store records for outcome o resolved as r.
func attemptResult(o Outcome, r Resolution) store.AttemptResult {
	p := o.Result
	return store.AttemptResult{
		AttemptRef: o.Attempt, From: resolvable, Status: r.Attempt, LineItemStatus: r.LineItem,
		TransactionID: p.TransactionID, ResultCode: p.Code, ResultMessage: p.Message,
		InstrumentKind: p.Instrument.Kind, InstrumentBrand: p.Instrument.Brand, InstrumentLastFour: p.Instrument.LastFour,
		Actor: o.Actor, Reason: r.Reason, TraceHeaders: o.TraceHeaders,
	}
}
