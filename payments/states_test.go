package payments

import (
	"errors"
	"testing"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// Every outcome a processor or the worker can reach resolves to the
// attempt and line item statuses docs/states.md gives it; a retryable
// outcome decides nothing.
func TestResolve(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		outcome  processors.Outcome
		attempt  store.AttemptStatus
		lineItem store.Status
	}{
		{processors.Succeeded, store.AttemptSucceeded, store.StatusValid},
		{processors.Declined, store.AttemptDeclined, store.StatusDeclined},
		{processors.Permanent, store.AttemptFailed, store.StatusInvalid},
		{processors.Held, store.AttemptHeld, ""},
		{processors.PendingSettlement, store.AttemptPendingSettlement, ""},
		{Dead, store.AttemptDead, store.StatusInvalid},
	} {
		got, err := Resolve(c.outcome)
		if err != nil {
			t.Fatalf("%s: %v", c.outcome, err)
		}
		if got.Attempt != c.attempt || got.LineItem != c.lineItem || got.Reason == "" {
			t.Errorf("%s resolves to %+v, want attempt %s, line item %q and a reason", c.outcome, got, c.attempt, c.lineItem)
		}
		// A resolution never leaves the attempt open: a redelivery must
		// find it closed and not call the processor again.
		if Open(got.Attempt) {
			t.Errorf("%s leaves the attempt open (%s)", c.outcome, got.Attempt)
		}
	}
	if _, err := Resolve(processors.Retryable); err == nil {
		t.Error("a retryable outcome resolved; it must be retried, not recorded")
	}
}

func TestFinalAndOpen(t *testing.T) {
	t.Parallel()
	final := map[store.Status]bool{store.StatusDeclined: true, store.StatusInvalid: true, store.StatusVoid: true,
		store.StatusReversed: true}
	for _, s := range []store.Status{store.StatusValid, store.StatusInvalid, store.StatusPending, store.StatusAuthorized,
		store.StatusDeclined, store.StatusVoid, store.StatusPosted, store.StatusOffset, store.StatusReversed} {
		if Final(s) != final[s] {
			t.Errorf("Final(%s) = %v, want %v", s, Final(s), final[s])
		}
	}
	open := map[store.AttemptStatus]bool{store.AttemptQueued: true, store.AttemptProcessing: true}
	for _, s := range []store.AttemptStatus{store.AttemptQueued, store.AttemptProcessing, store.AttemptHeld,
		store.AttemptPendingSettlement, store.AttemptSucceeded, store.AttemptDeclined, store.AttemptFailed,
		store.AttemptDead, store.AttemptReturned} {
		if Open(s) != open[s] {
			t.Errorf("Open(%s) = %v, want %v", s, Open(s), open[s])
		}
	}
}

func TestDecided(t *testing.T) {
	t.Parallel()
	attempt := func(s store.AttemptStatus) *store.Attempt { return &store.Attempt{Status: s} }
	for _, c := range []struct {
		name string
		li   store.LineItem
		want bool
	}{
		{"a charge", store.LineItem{Status: store.StatusPending}, true},
		{"queued", store.LineItem{Status: store.StatusPending, Attempt: attempt(store.AttemptQueued)}, false},
		{"processing", store.LineItem{Status: store.StatusPending, Attempt: attempt(store.AttemptProcessing)}, false},
		{"held", store.LineItem{Status: store.StatusPending, Attempt: attempt(store.AttemptHeld)}, true},
		{"staged", store.LineItem{Status: store.StatusPending, Attempt: attempt(store.AttemptPendingSettlement)}, true},
		{"approved", store.LineItem{Status: store.StatusValid, Attempt: attempt(store.AttemptSucceeded)}, true},
	} {
		if got := Decided(c.li); got != c.want {
			t.Errorf("%s: Decided = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCheckEdit(t *testing.T) {
	t.Parallel()
	record := store.LineItem{Status: store.StatusValid, AmountCents: 100}
	pending := store.LineItem{Status: store.StatusPending, AmountCents: 100, Processor: processors.AuthorizeNet}
	approved := store.LineItem{Status: store.StatusValid, AmountCents: 100, Processor: processors.AuthorizeNet}
	declined := store.LineItem{Status: store.StatusDeclined, AmountCents: 100}
	for _, c := range []struct {
		name   string
		cur    store.LineItem
		to     store.Status
		amount int64
		ok     bool
	}{
		{"a record changes status", record, store.StatusPending, 100, true},
		{"a record changes amount", record, store.StatusValid, 250, true},
		{"a final state stays", declined, store.StatusValid, 100, false},
		{"a payment in flight is the processor's", pending, store.StatusValid, 100, false},
		{"an executed payment's amount stays", approved, store.StatusValid, 250, false},
		{"an approved payment cannot go back to PENDING", approved, store.StatusPending, 100, false},
		{"an approved payment cannot be declined", approved, store.StatusDeclined, 100, false},
		{"an approved payment cannot be voided by an edit", approved, store.StatusVoid, 100, false},
	} {
		err := CheckEdit(c.cur, c.to, c.amount)
		var te *store.TransitionError
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case !c.ok && !errors.As(err, &te):
			t.Errorf("%s: err = %v, want a *store.TransitionError", c.name, err)
		}
	}
}
