package payments

import (
	"context"
	"errors"
	"time"

	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// What a reversal gives back: the route it came by.
const (
	// ReversePayment is POST .../payment_reversals/{id}: PAYMENT and
	// DEBIT_OFFSET line items.
	ReversePayment = "payment_reversals"
	// ReverseCharge is POST .../charge_reversals/{id}: CHARGE line items.
	ReverseCharge = "charge_reversals"
)

// typeDebitOffset is Canopy's DEBIT_OFFSET, which payment_reversals
// accepts as Canopy does; payrail creates none itself.
const typeDebitOffset = "DEBIT_OFFSET"

// Reversal asks for the reversal of one line item.
type Reversal struct {
	OrgID              string
	AccountID          string
	OriginalLineItemID string
	Kind               string // ReversePayment or ReverseCharge
	ExternalFields     []store.ExternalField
	// MayExecute says whether the caller may move money (auth.PermExecute):
	// reversing an executed payment refunds it through its processor.
	MayExecute     bool
	RequestHash    []byte
	ClientID       string
	IdempotencyKey string
}

// Refusals of Reverse a caller branches on; a *store.TransitionError
// (the original is not in a state that can be reversed), store.ErrNotFound
// and store.ErrIdempotencyKeyReused pass through.
var (
	// ErrReversalNotPermitted: the original was executed by a processor
	// and the caller may not execute payments.
	ErrReversalNotPermitted = errors.New("payments: reversing an executed payment moves money; the caller may not execute payments")
)

// UnsupportedReversalError: the original's processor cannot reverse it;
// nothing was recorded. AUTHORIZE_NET and CANOPY_NACHA both reverse, so
// this answers only for a processor added without reversals (reversibleBy).
type UnsupportedReversalError struct {
	Processor string
}

func (e *UnsupportedReversalError) Error() string {
	return "payments: " + e.Processor + " cannot reverse payments yet"
}

// reversibleBy lists the processors whose workers reverse a VALID payment
// they executed: AUTHORIZE_NET voids or refunds the transaction, and
// CANOPY_NACHA stages a refund credit entry to the same account
// (processors/nacha/README.md, "Reversals"). A processor missing here is
// answered with UnsupportedReversalError.
var reversibleBy = map[string]bool{processors.AuthorizeNet: true, processors.CanopyNACHA: true}

// pendingACH reports whether orig is an ACH payment whose entry is waiting
// for its settlement window: still staged, or in a file that is not
// settled yet. Its reversal cannot wait for VALID as a card's does, since
// the money may already be moving; the CANOPY_NACHA worker decides by the
// entry's real state under the drop's lock (the line item can lag: the
// drop stamps the attempt with its file only when the file is durable):
// a staged entry is withdrawn from the cutoff, an entry in a file gets a
// refund credit entry that is held until the debit settles.
func pendingACH(orig store.LineItem) bool {
	return orig.Processor == processors.CanopyNACHA && orig.Status == store.StatusPending && orig.Attempt != nil &&
		orig.Attempt.Status == store.AttemptPendingSettlement
}

// Reverse records the reversal of a line item (docs/states.md, Reversals).
// A ledger-only original (a payment record, a charge) is reversed at once:
// the reversal is VALID. An original a processor executed is reversed by
// that processor: the reversal is PENDING, with an attempt and a job that
// the worker executes like a payment's, and becomes VALID when the money
// is back (DECLINED or INVALID when the processor could not give it
// back). An original already reversed is answered with its reversal
// (created=false): nothing is recorded or executed again.
func (s *Service) Reverse(ctx context.Context, r Reversal, now time.Time) (store.LineItem, bool, error) {
	now = now.UTC()
	id := store.NewID("can_")
	return s.store.CreateReversal(ctx, r.OrgID, store.NewReversal{
		AccountID: r.AccountID, OriginalLineItemID: r.OriginalLineItemID, LineItemID: id,
		ExternalFields: r.ExternalFields, Origin: r.Kind, RequestHash: r.RequestHash, ClientID: r.ClientID,
		IdempotencyKey: r.IdempotencyKey,
		Accepts: func(orig store.LineItem) error {
			_, err := reversalType(r.Kind, orig)
			return err
		},
		Plan: func(orig store.LineItem) (store.ReversalPlan, error) {
			plan, err := PlanReversal(r.Kind, orig, r.MayExecute)
			if err != nil || !plan.executed {
				return plan.ReversalPlan, err
			}
			x, err := s.reversalJob(r, orig, id, now)
			plan.Execution = x
			return plan.ReversalPlan, err
		},
	})
}

// reversalPlan is a ReversalPlan and whether a processor executes it.
type reversalPlan struct {
	store.ReversalPlan
	executed bool
}

// PlanReversal judges the reversal of orig by route kind, under orig's row
// lock: which originals each route reverses, and in which states
// (docs/states.md). Only a VALID original is reversed, and an ACH payment
// waiting for settlement (pendingACH): any other PENDING one is still
// executing, and DECLINED, INVALID and the other final states moved no
// money to give back.
func PlanReversal(kind string, orig store.LineItem, mayExecute bool) (reversalPlan, error) {
	refuse := func(reason string) error {
		return &store.TransitionError{From: orig.Status, To: store.StatusReversed, Reason: reason}
	}
	var plan reversalPlan
	var err error
	if plan.Type, err = reversalType(kind, orig); err != nil {
		return plan, err
	}
	plan.Description = "Reversal of payment " + orig.LineItemID
	if plan.Type == store.TypeChargeReversal {
		plan.Description = "Reversal of charge " + orig.LineItemID
	}
	executed := orig.Processor != "" && orig.Attempt != nil
	switch {
	case pendingACH(orig) && !mayExecute:
		return plan, ErrReversalNotPermitted
	case pendingACH(orig):
		// Withdrawn from the cutoff, or refunded by a credit entry once
		// the debit settles: the worker decides (pendingACH).
		plan.Status, plan.executed = store.StatusPending, true
		return plan, nil
	case executed && orig.Status == store.StatusPending:
		return plan, refuse("the payment's execution by " + orig.Processor + " is still in flight (attempt " +
			string(orig.Attempt.Status) + "); reverse it once it is VALID")
	case orig.Status != store.StatusValid:
		return plan, refuse("only a VALID line item can be reversed; " + orig.LineItemID + " is " + string(orig.Status))
	case !executed:
		plan.Status = store.StatusValid
		return plan, nil
	case !mayExecute:
		return plan, ErrReversalNotPermitted
	case !reversibleBy[orig.Processor]:
		return plan, &UnsupportedReversalError{Processor: orig.Processor}
	case orig.Attempt.Status != store.AttemptSucceeded || orig.Attempt.TransactionID == "":
		return plan, refuse("the payment's attempt is " + string(orig.Attempt.Status) + " without a processor transaction to reverse")
	}
	plan.Status, plan.executed = store.StatusPending, true
	return plan, nil
}

// reversalJob builds the attempt and sealed job of an executed reversal.
// The job names the original and its processor transaction and carries
// no payment method (processors.ReversalDetails).
func (s *Service) reversalJob(r Reversal, orig store.LineItem, id string, now time.Time) (*store.ReversalExecution, error) {
	a := orig.Attempt
	job := processors.Job{
		OrgID: r.OrgID, AccountID: r.AccountID, LineItemID: id, AttemptID: store.NewID("att_"),
		Processor: a.Processor, PaymentType: a.PaymentType, Origin: r.Kind, AmountCents: orig.AmountCents,
		EffectiveAt: now, CreatedAt: now,
		Reversal: &processors.ReversalDetails{OriginalLineItemID: orig.LineItemID, OriginalAttemptID: a.AttemptID,
			OriginalTransactionID: a.TransactionID, OriginalCreatedAt: orig.CreatedAt},
	}
	body, err := processors.EncodeJob(s.ring, job)
	if err != nil {
		return nil, err
	}
	return &store.ReversalExecution{
		AttemptID: job.AttemptID, Processor: job.Processor, PaymentType: job.PaymentType,
		InstrumentKind: a.InstrumentKind, InstrumentBrand: a.InstrumentBrand, InstrumentLastFour: a.InstrumentLastFour,
		Job: store.OutboxMessage{
			MsgID: "job_" + job.AttemptID, Subject: queue.JobSubject(job.Processor), Payload: body,
			Headers: map[string]string{processors.HeaderOrgID: job.OrgID, processors.HeaderAttemptID: job.AttemptID},
		},
	}, nil
}

// reversalType is the reversal type a route makes of orig, or why the
// route does not reverse that type of line item.
func reversalType(kind string, orig store.LineItem) (string, error) {
	refuse := func(reason string) error {
		return &store.TransitionError{From: orig.Status, To: store.StatusReversed, Reason: reason}
	}
	switch {
	case kind == ReversePayment && (orig.Type == store.TypePayment || orig.Type == typeDebitOffset):
		return store.TypePaymentReversal, nil
	case kind == ReverseCharge && orig.Type == store.TypeCharge:
		return store.TypeChargeReversal, nil
	case kind == ReverseCharge:
		return "", refuse(orig.LineItemID + " is a " + orig.Type + ": charge_reversals reverses CHARGE line items")
	}
	return "", refuse(orig.LineItemID + " is a " + orig.Type + ": payment_reversals reverses PAYMENT and DEBIT_OFFSET line items")
}
