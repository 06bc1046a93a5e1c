package authorizenet

import (
	"context"
	"testing"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// A held attempt is polled by the transaction id its answer gave (the
// worker passes it in Job.TransactionID): one getTransactionDetails call
// per poll, never a walk through the unsettled list and settled batches.
func TestResolveHeldByTransactionID(t *testing.T) {
	e := newEnv(t, envOptions{})
	card := visa()
	card.Number = anetsim.ErrorCard
	job := cardJob(e, "att_held_byid", 25200, card)
	res, err := e.proc.Process(context.Background(), job)
	if err != nil || res.Outcome != processors.Held || res.TransactionID == "" {
		t.Fatalf("Process = %+v, %v", res, err)
	}
	polled := job
	polled.Card = nil // the worker's Resolve job carries no card
	polled.TransactionID = res.TransactionID

	lists := func() int {
		return e.sim.Requests("getUnsettledTransactionListRequest") + e.sim.Requests("getSettledBatchListRequest") +
			e.sim.Requests("getTransactionListRequest")
	}
	details := e.sim.Requests("getTransactionDetailsRequest")
	before := lists()
	for range 3 {
		got, err := e.proc.Resolve(context.Background(), polled)
		if err != nil || got.Outcome != processors.Held || got.TransactionID != res.TransactionID {
			t.Fatalf("Resolve while held = %+v, %v", got, err)
		}
	}
	if err := e.sim.Review(res.TransactionID, true); err != nil {
		t.Fatal(err)
	}
	got, err := e.proc.Resolve(context.Background(), polled)
	if err != nil || got.Outcome != processors.Succeeded || got.TransactionID != res.TransactionID {
		t.Fatalf("Resolve after approval = %+v, %v", got, err)
	}
	if n := lists() - before; n != 0 {
		t.Errorf("Resolve with a transaction id sent %d list requests, want 0", n)
	}
	if n := e.sim.Requests("getTransactionDetailsRequest") - details; n != 4 {
		t.Errorf("getTransactionDetails calls = %d, want 4 (one per poll)", n)
	}
}

// Without a transaction id, or with one the gateway does not know, the
// attempt is still found by its invoice number.
func TestResolveFallsBackToInvoiceLookup(t *testing.T) {
	e := newEnv(t, envOptions{})
	job := cardJob(e, "att_resolve_fallback", 2600, visa())
	res, err := e.proc.Process(context.Background(), job)
	if err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("Process = %+v, %v", res, err)
	}
	for _, id := range []string{"", "99999999999"} {
		polled := job
		polled.TransactionID = id
		before := e.sim.Requests("getUnsettledTransactionListRequest")
		got, err := e.proc.Resolve(context.Background(), polled)
		if err != nil || got.Outcome != processors.Succeeded || got.TransactionID != res.TransactionID {
			t.Fatalf("Resolve (transaction id %q) = %+v, %v", id, got, err)
		}
		if e.sim.Requests("getUnsettledTransactionListRequest") == before {
			t.Errorf("Resolve (transaction id %q) did not look the invoice up", id)
		}
	}
}
