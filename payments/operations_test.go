package payments

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// CheckRedrive lets only a dead attempt of an INVALID executed payment out
// of its final state.
func TestCheckRedrive(t *testing.T) {
	t.Parallel()
	attempt := func(s store.AttemptStatus) *store.Attempt { return &store.Attempt{AttemptID: "att", Status: s} }
	for _, c := range []struct {
		name string
		li   store.LineItem
		ok   bool
	}{
		{"a dead attempt", store.LineItem{Status: store.StatusInvalid, Processor: processors.AuthorizeNet, Attempt: attempt(store.AttemptDead)}, true},
		{"a permanent failure", store.LineItem{Status: store.StatusInvalid, Processor: processors.AuthorizeNet, Attempt: attempt(store.AttemptFailed)}, false},
		{"a queued attempt", store.LineItem{Status: store.StatusPending, Processor: processors.AuthorizeNet, Attempt: attempt(store.AttemptQueued)}, false},
		{"a held attempt", store.LineItem{Status: store.StatusPending, Processor: processors.AuthorizeNet, Attempt: attempt(store.AttemptHeld)}, false},
		{"an approved payment", store.LineItem{Status: store.StatusValid, Processor: processors.AuthorizeNet, Attempt: attempt(store.AttemptSucceeded)}, false},
		{"a declined payment", store.LineItem{Status: store.StatusDeclined, Processor: processors.AuthorizeNet, Attempt: attempt(store.AttemptDeclined)}, false},
		{"an INVALID record", store.LineItem{Status: store.StatusInvalid}, false},
		{"a dead attempt of an edited line item", store.LineItem{Status: store.StatusVoid, Processor: processors.CanopyNACHA, Attempt: attempt(store.AttemptDead)}, false},
	} {
		err := CheckRedrive(c.li)
		var te *store.TransitionError
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case !c.ok && !errors.As(err, &te):
			t.Errorf("%s: err = %v, want a *store.TransitionError", c.name, err)
		}
	}
	// A manual edit still cannot do it.
	if err := CheckEdit(store.LineItem{Status: store.StatusInvalid, Processor: processors.AuthorizeNet,
		Attempt: attempt(store.AttemptDead)}, store.StatusPending, 0); err == nil {
		t.Error("a PUT moved a dead payment out of INVALID")
	}
}

type redriveFixture struct {
	svc     *Service
	fp      *fastPath
	org     string
	account string
	sim     *anetsim.Server
	anet    *authorizenet.Processor
}

func newRedriveFixture(t *testing.T) *redriveFixture {
	t.Helper()
	svc, fp, org, account := newService(t, "Ada Lovelace")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sim, err := anetsim.New(anetsim.Options{AcceptAnyProfile: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client, err := authorizenet.NewClient(authorizenet.Config{Endpoint: srv.URL + anetsim.Path,
		LoginID: anetsim.DefaultLoginID, TransactionKey: anetsim.DefaultTransactionKey, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &redriveFixture{svc: svc, fp: fp, org: org, account: account, sim: sim, anet: authorizenet.NewProcessor(client, quiet)}
}

func (f *redriveFixture) resolvers() map[string]processors.Resolver {
	return map[string]processors.Resolver{processors.AuthorizeNet: f.anet}
}

// kill marks the attempt dead the way the worker does when its deliveries
// run out.
func (f *redriveFixture) kill(t *testing.T, attemptID string) {
	t.Helper()
	_, err := f.svc.Apply(context.Background(), Outcome{Attempt: store.AttemptRef{OrgID: f.org, AttemptID: attemptID},
		Actor:  "worker:" + processors.AuthorizeNet,
		Result: processors.Result{Outcome: Dead, Code: "E00001", Message: "An error occurred during processing."}})
	if err != nil {
		t.Fatal(err)
	}
}

// fastJob is the job the intake's fast path would have published.
func (f *redriveFixture) fastJob(t *testing.T, attemptID string) processors.Job {
	t.Helper()
	for _, m := range f.fp.msgs {
		if m.MsgID == "job_"+attemptID {
			job, err := processors.DecodeJob(env.Ring, m.Body())
			if err != nil {
				t.Fatal(err)
			}
			job.Delivery = 1
			return job
		}
	}
	t.Fatalf("no job for %s on the fast path", attemptID)
	return processors.Job{}
}

func transitionsOf(t *testing.T, svc *Service, org, account, id string) []store.TransitionRecord {
	t.Helper()
	tr, err := svc.store.Transitions(context.Background(), org, account, id)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// A card charge that went through before its attempt died is recorded as
// approved by the redrive, and the card is not charged again.
func TestRedriveChargedCardRecovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRedriveFixture(t)
	li, _, err := f.svc.Submit(ctx, cardPayment(f.org, f.account, "pay-charged"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	att := li.Attempt.AttemptID
	// The gateway charged; the answer never reached the database.
	if res, err := f.anet.Process(ctx, f.fastJob(t, att)); err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("charge: %+v, %v", res, err)
	}
	f.kill(t, att)

	got, err := f.svc.Redrive(ctx, Redrive{Attempt: store.AttemptRef{OrgID: f.org, AttemptID: att}, Actor: "operator:test",
		Reason: "PAYRAIL-123", Resolvers: f.resolvers()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got.Action != RedriveRecovered || got.LineItem.Status != store.StatusValid || got.LineItem.Attempt.Status != store.AttemptSucceeded ||
		got.LineItem.Attempt.AttemptID != att || got.LineItem.Attempt.TransactionID == "" {
		t.Fatalf("redrive: %+v, attempt %+v; want the dead attempt recovered as succeeded and VALID", got, got.LineItem.Attempt)
	}
	if n := f.sim.Charges(authorizenet.InvoiceNumber(att)); n != 1 {
		t.Errorf("%d charges, want 1", n)
	}
	if n := len(f.sim.Transactions()); n != 1 {
		t.Errorf("%d transactions at the gateway, want 1", n)
	}
	tr := transitionsOf(t, f.svc, f.org, f.account, "pay-charged")
	last := tr[len(tr)-1]
	if last.From != store.StatusInvalid || last.To != store.StatusValid || last.Actor != "operator:test" ||
		!strings.Contains(last.Reason, "PAYRAIL-123") || !strings.Contains(last.Reason, att) {
		t.Errorf("last transition %+v", last)
	}
	// A second redrive finds nothing dead.
	var re *RefusedError
	if _, err := f.svc.Redrive(ctx, Redrive{Attempt: store.AttemptRef{OrgID: f.org, AttemptID: att}, Actor: "operator:test",
		Resolvers: f.resolvers()}, time.Now()); !errors.As(err, &re) || !strings.Contains(re.Reason, "not dead") {
		t.Errorf("second redrive: %v, want refused as not dead", err)
	}
}

// A dead transfer that charged nothing gets a new attempt and job (rebuilt
// from the account's card profile); executing that job charges once.
func TestRedriveNothingChargedRequeues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRedriveFixture(t)
	if _, err := f.svc.store.PutProcessorConfig(ctx, f.org, f.account, store.ProcessorConfig{ACH: store.ACHConfig{Processor: "NONE"},
		Debit: store.DebitConfig{Processor: processors.AuthorizeNet, CustomerProfileID: "900100", PaymentProfileID: "900200"}}); err != nil {
		t.Fatal(err)
	}
	li, _, err := f.svc.Submit(ctx, Payment{OrgID: f.org, AccountID: f.account, LineItemID: "pay-transfer",
		Origin: OriginPaymentTransfer, AmountCents: 4200, RequestHash: []byte("t"), ClientID: "cli"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dead := li.Attempt.AttemptID
	f.kill(t, dead)

	got, err := f.svc.Redrive(ctx, Redrive{Attempt: store.AttemptRef{OrgID: f.org, AttemptID: dead}, Actor: "operator:test",
		Reason: "gateway outage over", Resolvers: f.resolvers()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := got.LineItem.Attempt
	if got.Action != RedriveRequeued || got.Processor.Code != "not_found" || got.LineItem.Status != store.StatusPending ||
		a == nil || a.AttemptID != got.NewAttemptID || a.AttemptID == dead || a.Status != store.AttemptQueued || got.WithoutCardCode {
		t.Fatalf("redrive: %+v, attempt %+v; want a new queued attempt and PENDING", got, a)
	}
	// The new attempt holds the job, for the relay (no fast path in an
	// operator's process), with its own id.
	payload, err := f.svc.store.JobPayload(ctx, store.AttemptRef{OrgID: got.LineItem.OrgID, AttemptID: a.AttemptID})
	if err != nil || payload == nil {
		t.Fatalf("job row: %v, %v", payload, err)
	}
	job, err := processors.DecodeJob(env.Ring, payload)
	if err != nil || job.AttemptID != a.AttemptID || job.Profile == nil || job.Profile.CustomerProfileID != "900100" ||
		job.AmountCents != 4200 || job.LineItemID != "pay-transfer" {
		t.Fatalf("job %+v, %v", job, err)
	}
	tr := transitionsOf(t, f.svc, f.org, f.account, "pay-transfer")
	last := tr[len(tr)-1]
	if last.From != store.StatusInvalid || last.To != store.StatusPending || last.Actor != "operator:test" ||
		!strings.Contains(last.Reason, dead) || !strings.Contains(last.Reason, "E00001") || !strings.Contains(last.Reason, "gateway outage over") {
		t.Errorf("last transition %+v", last)
	}

	// The worker's turn: one charge, for the new attempt.
	job.Delivery = 1
	res, err := f.anet.Process(ctx, job)
	if err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("process: %+v, %v", res, err)
	}
	if _, err := f.svc.Apply(ctx, Outcome{Attempt: store.AttemptRef{OrgID: f.org, AttemptID: a.AttemptID}, Result: res,
		Actor: "worker:" + processors.AuthorizeNet}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.sim.Transactions()); n != 1 || f.sim.Charges(authorizenet.InvoiceNumber(a.AttemptID)) != 1 {
		t.Errorf("%d transactions, want one charge of the new attempt", n)
	}
	after, err := f.svc.store.LineItem(ctx, f.org, f.account, "pay-transfer")
	if err != nil || after.Status != store.StatusValid {
		t.Errorf("after the new attempt: %s, %v", after.Status, err)
	}
}

// What cannot be redriven is refused with a reason, and nothing changes.
func TestRedriveRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRedriveFixture(t)
	submit := func(id string) string {
		li, _, err := f.svc.Submit(ctx, cardPayment(f.org, f.account, id), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return li.Attempt.AttemptID
	}
	queued := submit("pay-queued")
	guest := submit("pay-guest")
	f.kill(t, guest)
	for _, c := range []struct {
		name      string
		org, att  string
		resolvers map[string]processors.Resolver
		want      string
	}{
		{"an attempt that is not dead", f.org, queued, f.resolvers(), "not dead"},
		{"a guest card whose job is gone", f.org, guest, f.resolvers(), "card number"},
		{"another org's attempt", "org_other", guest, f.resolvers(), "has no attempt"},
		{"an attempt that does not exist", f.org, "att_nope", f.resolvers(), "has no attempt"},
		{"a processor nobody can ask", f.org, guest, nil, "cannot ask AUTHORIZE_NET"},
	} {
		_, err := f.svc.Redrive(ctx, Redrive{Attempt: store.AttemptRef{OrgID: c.org, AttemptID: c.att}, Actor: "operator:test",
			Resolvers: c.resolvers}, time.Now())
		var re *RefusedError
		if !errors.As(err, &re) || !strings.Contains(re.Reason, c.want) {
			t.Errorf("%s: %v, want refused with %q", c.name, err, c.want)
		}
	}
	li, err := f.svc.store.LineItem(ctx, f.org, f.account, "pay-guest")
	if err != nil || li.Status != store.StatusInvalid || li.Attempt.AttemptID != guest || li.Attempt.Status != store.AttemptDead {
		t.Errorf("after refusals: %s %+v, %v; want it still INVALID and dead", li.Status, li.Attempt, err)
	}
	if n := len(f.sim.Transactions()); n != 0 {
		t.Errorf("refusals charged %d times", n)
	}
}
