package payments

import (
	"errors"
	"testing"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// Which originals each reversal route takes, in which states, and what the
// reversal is (docs/states.md, Reversals).
func TestPlanReversal(t *testing.T) {
	t.Parallel()
	card := func(li store.LineItem, a store.AttemptStatus, txID string) store.LineItem {
		li.Processor = processors.AuthorizeNet
		li.Attempt = &store.Attempt{AttemptID: "att_1", Processor: processors.AuthorizeNet, Status: a, TransactionID: txID}
		return li
	}
	nacha := func(li store.LineItem) store.LineItem {
		li.Processor = processors.CanopyNACHA
		li.Attempt = &store.Attempt{AttemptID: "att_2", Processor: processors.CanopyNACHA, Status: store.AttemptSucceeded, TransactionID: "1"}
		return li
	}
	staged := func(li store.LineItem, file string) store.LineItem {
		li.Processor = processors.CanopyNACHA
		li.Attempt = &store.Attempt{AttemptID: "att_3", Processor: processors.CanopyNACHA, Status: store.AttemptPendingSettlement, NachaFileID: file}
		return li
	}
	queued := func(li store.LineItem) store.LineItem {
		li.Processor = processors.CanopyNACHA
		li.Attempt = &store.Attempt{AttemptID: "att_4", Processor: processors.CanopyNACHA, Status: store.AttemptQueued}
		return li
	}
	returned := func(li store.LineItem) store.LineItem {
		li.Processor = processors.CanopyNACHA
		li.Attempt = &store.Attempt{AttemptID: "att_5", Processor: processors.CanopyNACHA, Status: store.AttemptDeclined, TransactionID: "2"}
		return li
	}
	// A processor added without reversals (both of today's reverse).
	other := func(li store.LineItem) store.LineItem {
		li.Processor = "OTHER"
		li.Attempt = &store.Attempt{AttemptID: "att_6", Processor: "OTHER", Status: store.AttemptSucceeded, TransactionID: "3"}
		return li
	}
	item := func(typ string, st store.Status) store.LineItem {
		return store.LineItem{LineItemID: "li_1", Type: typ, Status: st, AmountCents: 500}
	}
	var transition *store.TransitionError
	var unsupported *UnsupportedReversalError
	for _, tc := range []struct {
		name       string
		kind       string
		orig       store.LineItem
		mayExecute bool
		wantType   string
		wantStatus store.Status
		executed   bool
		wantErr    any // nil, &transition, &unsupported or an error value
	}{
		{"payment record", ReversePayment, item(store.TypePayment, store.StatusValid), false, store.TypePaymentReversal, store.StatusValid, false, nil},
		{"debit offset", ReversePayment, item("DEBIT_OFFSET", store.StatusValid), false, store.TypePaymentReversal, store.StatusValid, false, nil},
		{"charge", ReverseCharge, item(store.TypeCharge, store.StatusValid), false, store.TypeChargeReversal, store.StatusValid, false, nil},
		{"card payment", ReversePayment, card(item(store.TypePayment, store.StatusValid), store.AttemptSucceeded, "60001"), true, store.TypePaymentReversal, store.StatusPending, true, nil},
		{"charge by payment route", ReversePayment, item(store.TypeCharge, store.StatusValid), true, "", "", false, &transition},
		{"payment by charge route", ReverseCharge, item(store.TypePayment, store.StatusValid), true, "", "", false, &transition},
		{"reversal of a reversal", ReversePayment, item(store.TypePaymentReversal, store.StatusValid), true, "", "", false, &transition},
		{"pending record", ReversePayment, item(store.TypePayment, store.StatusPending), true, "", "", false, &transition},
		{"executing card payment", ReversePayment, card(item(store.TypePayment, store.StatusPending), store.AttemptProcessing, ""), true, "", "", false, &transition},
		{"held card payment", ReversePayment, card(item(store.TypePayment, store.StatusPending), store.AttemptHeld, "60002"), true, "", "", false, &transition},
		{"declined card payment", ReversePayment, card(item(store.TypePayment, store.StatusDeclined), store.AttemptDeclined, "60003"), true, "", "", false, &transition},
		{"invalid card payment", ReversePayment, card(item(store.TypePayment, store.StatusInvalid), store.AttemptDead, ""), true, "", "", false, &transition},
		{"invalid charge", ReverseCharge, item(store.TypeCharge, store.StatusInvalid), true, "", "", false, &transition},
		{"card payment, caller may not execute", ReversePayment, card(item(store.TypePayment, store.StatusValid), store.AttemptSucceeded, "60004"), false, "", "", false, ErrReversalNotPermitted},
		{"settled ACH payment", ReversePayment, nacha(item(store.TypePayment, store.StatusValid)), true, store.TypePaymentReversal, store.StatusPending, true, nil},
		{"settled ACH payment, caller may not execute", ReversePayment, nacha(item(store.TypePayment, store.StatusValid)), false, "", "", false, ErrReversalNotPermitted},
		{"staged ACH payment", ReversePayment, staged(item(store.TypePayment, store.StatusPending), ""), true, store.TypePaymentReversal, store.StatusPending, true, nil},
		{"staged ACH payment, caller may not execute", ReversePayment, staged(item(store.TypePayment, store.StatusPending), ""), false, "", "", false, ErrReversalNotPermitted},
		{"dropped ACH payment", ReversePayment, staged(item(store.TypePayment, store.StatusPending), "file_1"), true, store.TypePaymentReversal, store.StatusPending, true, nil},
		{"dropped ACH payment, caller may not execute", ReversePayment, staged(item(store.TypePayment, store.StatusPending), "file_1"), false, "", "", false, ErrReversalNotPermitted},
		{"queued ACH payment", ReversePayment, queued(item(store.TypePayment, store.StatusPending)), true, "", "", false, &transition},
		{"returned ACH payment", ReversePayment, returned(item(store.TypePayment, store.StatusDeclined)), true, "", "", false, &transition},
		{"payment by a processor without reversals", ReversePayment, other(item(store.TypePayment, store.StatusValid)), true, "", "", false, &unsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanReversal(tc.kind, tc.orig, tc.mayExecute)
			switch want := tc.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if plan.Type != tc.wantType || plan.Status != tc.wantStatus || plan.executed != tc.executed || plan.Description == "" {
					t.Fatalf("plan %+v, want type %s status %s executed %v", plan, tc.wantType, tc.wantStatus, tc.executed)
				}
			case error:
				if !errors.Is(err, want) {
					t.Fatalf("err %v, want %v", err, want)
				}
			default:
				if err == nil || !errors.As(err, want) {
					t.Fatalf("err %v (%T), want %T", err, err, want)
				}
			}
		})
	}
}

// Reversals and reversed line items are history: no edit, and a dead
// reversal is never redriven (a redrive would build a charge).
func TestReversalsAreNotEdited(t *testing.T) {
	t.Parallel()
	for _, li := range []store.LineItem{
		{LineItemID: "r1", Type: store.TypePaymentReversal, Status: store.StatusValid, AmountCents: 1},
		{LineItemID: "r2", Type: store.TypeChargeReversal, Status: store.StatusValid, AmountCents: 1},
		{LineItemID: "p1", Type: store.TypePayment, Status: store.StatusValid, AmountCents: 1, RelatedLineItemID: "r1"},
	} {
		var te *store.TransitionError
		if err := CheckEdit(li, store.StatusInvalid, li.AmountCents); !errors.As(err, &te) {
			t.Errorf("edit of %s allowed: %v", li.LineItemID, err)
		}
	}
	dead := store.LineItem{LineItemID: "r3", Type: store.TypePaymentReversal, Status: store.StatusInvalid,
		Processor: processors.AuthorizeNet, Attempt: &store.Attempt{AttemptID: "att_3", Status: store.AttemptDead}}
	var te *store.TransitionError
	if err := CheckRedrive(dead); !errors.As(err, &te) {
		t.Errorf("redrive of a dead reversal allowed: %v", err)
	}
}
