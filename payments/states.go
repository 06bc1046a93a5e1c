package payments

import (
	"github.com/payrail/payrail/internal/store"
)

// Final reports whether a line item status can never change again.
func Final(s store.Status) bool {
	switch s {
	case store.StatusDeclined, store.StatusInvalid, store.StatusVoid, store.StatusReversed:
		return true
	}
	return false
}

// Open reports whether a worker may still act on an attempt in status s:
// a delivery of a job whose attempt is anything else is a duplicate and is
// acknowledged without calling the processor.
func Open(s store.AttemptStatus) bool {
	return s == store.AttemptQueued || s == store.AttemptProcessing
}

// openStatuses are the statuses Open accepts, for the store's guards.
var openStatuses = []store.AttemptStatus{store.AttemptQueued, store.AttemptProcessing}

// resolvable are the statuses in which a processor's answer may still be
// applied: open attempts, and held ones whose review ends later.
var resolvable = append([]store.AttemptStatus{store.AttemptHeld}, openStatuses...)

// Decided reports whether the processor has decided a payment, or parked
// it for later (held for review, staged for settlement): what a client
// waiting with Prefer: wait is waiting for. A line item that is not a
// pending executed payment is decided.
func Decided(li store.LineItem) bool {
	if li.Status != store.StatusPending || li.Attempt == nil {
		return true
	}
	return !Open(li.Attempt.Status)
}

// CheckEdit judges a manual change (PUT) of a line item to status to and
// amount amountCents; the store calls it under the line item's row lock.
// Final states never change. An executed payment belongs to its
// processor: while its execution is in flight nothing about it changes,
// and once the processor has decided, its status is the processor's
// recorded outcome and its amount what was executed. A client that edited
// an approved card payment to PENDING would freeze it for good, and one
// that edited it to DECLINED would contradict money that moved; giving
// money back is a reversal, not an edit.
func CheckEdit(cur store.LineItem, to store.Status, amountCents int64) error {
	refuse := func(reason string) error { return &store.TransitionError{From: cur.Status, To: to, Reason: reason} }
	switch {
	case Final(cur.Status):
		return refuse(string(cur.Status) + " is a final state")
	case store.IsReversal(cur.Type):
		return refuse("a reversal is part of the ledger's history and is never edited")
	case cur.RelatedLineItemID != "":
		return refuse("the line item was reversed by " + cur.RelatedLineItemID + "; a reversed line item is never edited")
	case cur.Processor != "" && cur.Status == store.StatusPending:
		return refuse("the payment's execution by " + cur.Processor + " is in flight")
	case cur.Processor != "" && amountCents != cur.AmountCents:
		return refuse("the amount of a payment executed by " + cur.Processor + " cannot change")
	case cur.Processor != "" && to != cur.Status:
		return refuse("the status of a payment executed by " + cur.Processor + " is the processor's outcome")
	}
	return nil
}

// CheckRedrive judges an operator's redrive of a line item's attempt
// (payrail payments redrive): the one way out of a final state. It is
// allowed only for an executed payment whose attempt is dead (deliveries
// exhausted without the processor deciding) and whose line item is
// therefore INVALID. The redrive then either records what the processor
// says happened (INVALID → VALID, DECLINED, or PENDING while held) or,
// when the processor says nothing happened, replaces the dead attempt
// with a new one (INVALID → PENDING). Every other INVALID line item —
// a permanent processor error, a client's edit — stays final.
func CheckRedrive(cur store.LineItem) error {
	to := store.StatusPending
	refuse := func(reason string) error { return &store.TransitionError{From: cur.Status, To: to, Reason: reason} }
	switch {
	case cur.Processor == "" || cur.Attempt == nil:
		return refuse("only an executed payment's dead attempt can be redriven; " + cur.LineItemID + " has no attempt")
	case store.IsReversal(cur.Type):
		// A redrive rebuilds a payment's job from the account: for a
		// reversal it would charge instead of giving back. Whether a dead
		// reversal moved the money is for an operator to find out at the
		// processor (docs/states.md, Reversals).
		return refuse(cur.LineItemID + " is a " + cur.Type + ": a dead reversal is not redriven")
	case cur.Attempt.Status != store.AttemptDead:
		return refuse("attempt " + cur.Attempt.AttemptID + " is " + string(cur.Attempt.Status) + ", not dead: only a dead attempt can be redriven")
	case cur.Status != store.StatusInvalid:
		return refuse("the line item of dead attempt " + cur.Attempt.AttemptID + " is " + string(cur.Status) + ", not INVALID")
	}
	return nil
}
