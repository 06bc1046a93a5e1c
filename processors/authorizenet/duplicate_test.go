package authorizenet

import (
	"context"
	"testing"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// The charge went through but its answer was lost, and on redelivery the
// reporting API fails every call (switched off, or down): the resend is
// answered as a duplicate carrying the original's transId and authCode,
// which says the original was approved. The payment resolves to that
// transaction instead of being retried until it dies INVALID while the
// money was taken.
func TestDuplicateAnswerResolvesWhenReportingFails(t *testing.T) {
	e := newEnv(t, envOptions{})
	job := cardJob(e, "att_dup_noreport", 4200, visa())
	inv := InvoiceNumber(job.AttemptID)
	e.sim.Inject("createTransactionRequest", anetsim.FaultDropAfter)
	e.proc.Process(context.Background(), job)
	if n := e.sim.Charges(inv); n != 1 {
		t.Fatalf("charges after the lost answer = %d, want 1", n)
	}
	down := []anetsim.Fault{anetsim.FaultStatus5xx, anetsim.FaultStatus5xx, anetsim.FaultStatus5xx, anetsim.FaultStatus5xx}
	for _, m := range []string{"getUnsettledTransactionListRequest", "getSettledBatchListRequest",
		"getTransactionListRequest", "getTransactionDetailsRequest"} {
		e.sim.Inject(m, down...)
	}

	res, err := e.proc.Process(context.Background(), redelivered(job, true))
	if err != nil || res.Outcome != processors.Succeeded || res.TransactionID == "" || res.TransactionID == "0" {
		t.Fatalf("redelivery with reporting down = %+v, %v; want Succeeded with the original transaction", res, err)
	}
	if n := e.sim.Charges(inv); n != 1 {
		t.Fatalf("charges = %d, want 1", n)
	}
}

// A duplicate without an authorization code (the original was declined or
// failed) is never taken for an approval.
func TestDuplicateWithoutAuthCodeIsNotApproval(t *testing.T) {
	d := Decision{Class: ClassDuplicate, TransID: "60001"}
	e := newEnv(t, envOptions{})
	job := cardJob(e, "att_dup_noauth", 4300, visa())
	for _, m := range []string{"getUnsettledTransactionListRequest", "getTransactionDetailsRequest"} {
		e.sim.Inject(m, anetsim.FaultStatus5xx, anetsim.FaultStatus5xx)
	}
	res, _ := e.proc.resolveDuplicate(context.Background(), job, InvoiceNumber(job.AttemptID), d, instrumentOf(job), e.proc.log)
	if res.Outcome == processors.Succeeded {
		t.Fatalf("a duplicate without authCode resolved as %+v", res)
	}
}
