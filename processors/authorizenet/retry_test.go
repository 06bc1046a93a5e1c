package authorizenet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// These tests crash a charge at its most dangerous point (the gateway has
// charged, the worker never heard) and redeliver the job, proving exactly
// one charge per payment.

// TestCrashAfterChargeThenRedelivery: the connection drops (or hangs, or
// a proxy answers 5xx) after the simulator recorded the charge. The
// second delivery, without CVV as a relay-published job, finds the
// charge by invoice number and sends no second createTransactionRequest.
func TestCrashAfterChargeThenRedelivery(t *testing.T) {
	for _, fault := range []anetsim.Fault{anetsim.FaultDropAfter, anetsim.FaultHangAfter, anetsim.FaultStatus5xxAfter} {
		t.Run(fault.String(), func(t *testing.T) {
			e := newEnv(t, envOptions{timeout: time.Second})
			job := cardJob(e, "att_crash_"+fault.String(), 1999, visa())
			inv := InvoiceNumber(job.AttemptID)
			e.sim.Inject("createTransactionRequest", fault)

			res, err := e.proc.Process(context.Background(), job)
			var ae *Error
			if res.Outcome != processors.Retryable || !errors.As(err, &ae) || !ae.OutcomeUnknown {
				t.Fatalf("first delivery = %+v, %v; want Retryable with unknown outcome", res, err)
			}
			if n := e.sim.Charges(inv); n != 1 {
				t.Fatalf("charges after the fault = %d, want 1 (the fault strikes after the charge)", n)
			}

			again, err := e.proc.Process(context.Background(), redelivered(job, true))
			if err != nil || again.Outcome != processors.Succeeded || again.TransactionID == "" {
				t.Fatalf("second delivery = %+v, %v", again, err)
			}
			if again.Instrument.LastFour != "1111" || again.Instrument.Brand != "Visa" {
				t.Errorf("Instrument = %+v", again.Instrument)
			}
			if n := e.sim.Charges(inv); n != 1 {
				t.Fatalf("charges = %d, want 1", n)
			}
			if n := e.sim.Requests("createTransactionRequest"); n != 1 {
				t.Errorf("createTransactionRequest sent %d times, want 1 (the lookup found the charge)", n)
			}
		})
	}
}

// TestCrashThenRepublishedAsFirstDelivery: the job comes back as a first
// delivery (say the relay published it again after the stream's dedup
// window), so no lookup runs. The byte-identical request, without CVV,
// hits the duplicate window and resolves to the original.
func TestCrashThenRepublishedAsFirstDelivery(t *testing.T) {
	e := newEnv(t, envOptions{})
	job := cardJob(e, "att_republished", 2500, visa())
	inv := InvoiceNumber(job.AttemptID)
	e.sim.Inject("createTransactionRequest", anetsim.FaultDropAfter)
	if res, _ := e.proc.Process(context.Background(), job); res.Outcome != processors.Retryable {
		t.Fatalf("first = %+v", res)
	}
	orig := e.sim.Transactions()[0].TransID

	noCVV := redelivered(job, true)
	noCVV.Delivery = 1
	res, err := e.proc.Process(context.Background(), noCVV)
	if err != nil || res.Outcome != processors.Succeeded || res.TransactionID != orig {
		t.Fatalf("republished = %+v, %v; want Succeeded with transaction %s", res, err, orig)
	}
	if n := e.sim.Charges(inv); n != 1 {
		t.Fatalf("charges = %d, want 1", n)
	}
	if n := e.sim.Requests("createTransactionRequest"); n != 2 {
		t.Errorf("createTransactionRequest sent %d times, want 2 (the second answered reason 11)", n)
	}
}

// TestCrashAfterDeclineOrHold: the original's outcome is returned, not
// just "approved": a decline stays a decline, a hold stays a hold.
func TestCrashAfterDeclineOrHold(t *testing.T) {
	declined := visa()
	declined.Zip = anetsim.DeclineZip
	held := visa()
	held.Number = anetsim.ErrorCard
	for _, tc := range []struct {
		name    string
		card    processors.CardDetails
		cents   int64
		outcome processors.Outcome
		code    string
	}{
		{"declined", declined, 1000, processors.Declined, "2"},
		{"held", held, 25200, processors.Held, "252"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			job := cardJob(e, "att_crash_"+tc.name, tc.cents, tc.card)
			e.sim.Inject("createTransactionRequest", anetsim.FaultDropAfter)
			if res, _ := e.proc.Process(context.Background(), job); res.Outcome != processors.Retryable {
				t.Fatalf("first = %+v", res)
			}
			for _, next := range []processors.Job{redelivered(job, true), func() processors.Job { j := job; return j }()} {
				res, err := e.proc.Process(context.Background(), next)
				if err != nil || res.Outcome != tc.outcome || res.Code != tc.code {
					t.Fatalf("delivery %d = %+v, %v; want %s %s", next.Delivery, res, err, tc.outcome, tc.code)
				}
			}
			if n := len(e.sim.Transactions()); n != 1 {
				t.Fatalf("%d transactions recorded, want 1", n)
			}
		})
	}
}

// TestLookupFailsInsideWindow: the reporting API is down on redelivery;
// the attempt is young, so the processor relies on the duplicate window.
func TestLookupFailsInsideWindow(t *testing.T) {
	e := newEnv(t, envOptions{})
	job := cardJob(e, "att_lookup_down", 3100, visa())
	e.sim.Inject("createTransactionRequest", anetsim.FaultDropAfter)
	e.proc.Process(context.Background(), job)
	e.sim.Inject("getUnsettledTransactionListRequest", anetsim.FaultStatus5xx)

	res, err := e.proc.Process(context.Background(), redelivered(job, true))
	if err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("redelivery = %+v, %v", res, err)
	}
	if n := e.sim.Charges(InvoiceNumber(job.AttemptID)); n != 1 {
		t.Fatalf("charges = %d, want 1", n)
	}
}

// TestLookupFailsOutsideWindow: nine hours later the duplicate window no
// longer protects, so without a working lookup the processor refuses to
// charge and asks for a retry.
func TestLookupFailsOutsideWindow(t *testing.T) {
	e := newEnv(t, envOptions{})
	job := cardJob(e, "att_lookup_down_late", 3100, visa())
	e.sim.Inject("createTransactionRequest", anetsim.FaultDropAfter)
	e.proc.Process(context.Background(), job)
	e.clock.Advance(9 * time.Hour)
	e.sim.Inject("getUnsettledTransactionListRequest", anetsim.FaultStatus5xx)

	res, err := e.proc.Process(context.Background(), redelivered(job, true))
	if res.Outcome != processors.Retryable || res.Code != "lookup_failed" || err == nil {
		t.Fatalf("redelivery = %+v, %v; want Retryable lookup_failed", res, err)
	}
	// A failed lookup is usually brief: the retry comes within 15 s (the
	// worker's own backoff takes over when it is longer), not a minute.
	if res.RetryAfter <= 0 || res.RetryAfter > 15*time.Second {
		t.Errorf("RetryAfter = %v after a failed lookup, want at most 15s", res.RetryAfter)
	}
	if n := e.sim.Requests("createTransactionRequest"); n != 1 {
		t.Fatalf("createTransactionRequest sent %d times, want 1", n)
	}
}

// TestRedeliveryAfterSettlementPastWindow: the original settled overnight
// and the duplicate window has passed; only the settled-batch search
// stands between the redelivery and a second charge.
func TestRedeliveryAfterSettlementPastWindow(t *testing.T) {
	e := newEnv(t, envOptions{})
	job := cardJob(e, "att_settled", 4000, visa())
	e.sim.Inject("createTransactionRequest", anetsim.FaultDropAfter)
	e.proc.Process(context.Background(), job)
	e.clock.Advance(3 * time.Hour)
	if e.sim.Settle() == "" {
		t.Fatal("nothing settled")
	}
	e.clock.Advance(7 * time.Hour)

	res, err := e.proc.Process(context.Background(), redelivered(job, true))
	if err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("redelivery = %+v, %v", res, err)
	}
	if n := e.sim.Charges(InvoiceNumber(job.AttemptID)); n != 1 {
		t.Fatalf("charges = %d, want 1", n)
	}
	if n := e.sim.Requests("createTransactionRequest"); n != 1 {
		t.Errorf("createTransactionRequest sent %d times, want 1", n)
	}
}

// TestTransientErrorRetriedSafely: a processing error (reason 19)
// charged nothing; the redelivery finds nothing and charges once.
func TestTransientErrorRetriedSafely(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.sim.Inject("createTransactionRequest", anetsim.FaultStatus5xx)
	job := cardJob(e, "att_transient", 1500, visa())
	if res, _ := e.proc.Process(context.Background(), job); res.Outcome != processors.Retryable {
		t.Fatalf("first = %+v", res)
	}
	res, err := e.proc.Process(context.Background(), redelivered(job, true))
	if err != nil || res.Outcome != processors.Succeeded || e.sim.Charges(InvoiceNumber(job.AttemptID)) != 1 {
		t.Fatalf("second = %+v, %v", res, err)
	}
}

// TestConcurrentDeliveries: two workers hold the same job at once (an
// AckWait expired mid-call). Every one answers with the same transaction
// and the card is charged once.
func TestConcurrentDeliveries(t *testing.T) {
	e := newEnv(t, envOptions{})
	job := cardJob(e, "att_concurrent", 999, visa())
	const n = 8
	results := make([]processors.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := job
			j.Delivery = 1 + i%2
			results[i], _ = e.proc.Process(context.Background(), j)
		}()
	}
	wg.Wait()
	for i, r := range results {
		// A duplicate whose original is not listed yet is Retryable; it
		// must never be a second success with another id.
		if r.Outcome == processors.Succeeded && r.TransactionID != e.sim.Transactions()[0].TransID {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if c := e.sim.Charges(InvoiceNumber(job.AttemptID)); c != 1 {
		t.Fatalf("charges = %d, want 1", c)
	}
}

// TestRandomFaultsOneChargePerPayment runs payments through a simulator
// that misbehaves at random, redelivering each until it is final, and
// checks that no payment was charged twice and every success was
// charged exactly once.
func TestRandomFaultsOneChargePerPayment(t *testing.T) {
	e := newEnv(t, envOptions{
		timeout: 250 * time.Millisecond,
		sim:     anetsim.Options{Seed: 7, Faults: anetsim.Faults{ErrorRate: 0.2, DropRate: 0.2, HangRate: 0.05}},
	})
	const payments, maxDeliveries = 25, 12
	for i := range payments {
		job := cardJob(e, fmt.Sprintf("att_soak_%02d", i), int64(100+i), visa())
		var res processors.Result
		for d := 1; d <= maxDeliveries; d++ {
			job.Delivery = d
			if d > 1 {
				job.Card = &processors.CardDetails{Number: testPAN, ExpirationDate: "12/35", Zip: "46201", Name: "Ada King Lovelace"}
			}
			res, _ = e.proc.Process(context.Background(), job)
			if res.Outcome.Final() {
				break
			}
		}
		charges := e.sim.Charges(InvoiceNumber(job.AttemptID))
		if charges > 1 || (res.Outcome == processors.Succeeded && charges != 1) {
			t.Fatalf("payment %d: outcome %s, charges %d", i, res.Outcome, charges)
		}
	}
	if e.sim.TotalCharges() > payments {
		t.Fatalf("%d charges for %d payments", e.sim.TotalCharges(), payments)
	}
	if n := e.sim.Requests("createTransactionRequest"); n <= payments {
		t.Fatalf("only %d charge requests for %d payments: the faults did not strike", n, payments)
	}
}

// TestNoCardDataInLogsOrErrors runs failures and successes and checks
// that neither the logs nor the errors carry the card number or CVV.
func TestNoCardDataInLogsOrErrors(t *testing.T) {
	e := newEnv(t, envOptions{timeout: 200 * time.Millisecond})
	var errs []string
	run := func(job processors.Job, faults ...anetsim.Fault) {
		e.sim.Inject("", faults...)
		res, err := e.proc.Process(context.Background(), job)
		if err != nil {
			errs = append(errs, err.Error())
		}
		errs = append(errs, res.Message, fmt.Sprintf("%+v %#v", res, res))
	}
	expired := visa()
	expired.ExpirationDate = "01/20"
	run(cardJob(e, "att_log_1", 100, visa()), anetsim.FaultDropAfter)
	run(redelivered(cardJob(e, "att_log_1", 100, visa()), false))
	run(cardJob(e, "att_log_2", 100, expired))
	run(cardJob(e, "att_log_3", 100, visa()), anetsim.FaultHang)
	run(cardJob(e, "att_log_4", 100, visa()), anetsim.FaultStatus5xx)
	tr, _ := buildRequest(cardJob(e, "att_log_5", 100, visa()), "28800")
	errs = append(errs, fmt.Sprintf("%v %+v %#v", *tr.Payment.CreditCard, tr.Payment.CreditCard, *tr.Payment.CreditCard))
	e.proc.log.Info("request", "card", *tr.Payment.CreditCard, "auth", e.client.auth)

	all := e.logs.String() + strings.Join(errs, "\n")
	for _, secret := range []string{testPAN, testCVV, anetsim.DefaultTransactionKey} {
		if strings.Contains(all, secret) {
			t.Errorf("output contains %q:\n%s", secret, all)
		}
	}
}
