package payments

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/processors"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "payments", &env)) }

// fastPath records what the store hands to the fast path after commit.
type fastPath struct{ msgs []store.OutboxMessage }

func (f *fastPath) Enqueue(msgs []store.OutboxMessage) { f.msgs = append(f.msgs, msgs...) }

func newService(t *testing.T, customerName string) (*Service, *fastPath, string, string) {
	t.Helper()
	ctx := context.Background()
	st := store.New(env.Pool, env.Ring, canopy.Events{})
	fp := &fastPath{}
	st.SetFastPath(fp)
	org := testenv.UniqueID("org_")
	if err := st.EnsureOrg(ctx, org, "t"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateAccount(ctx, org, store.NewAccount{AccountID: "acct", ProductID: "p",
		CustomerName: customerName, RequestHash: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	return New(st, env.Ring), fp, org, "acct"
}

func cardPayment(org, account, id string) Payment {
	return Payment{OrgID: org, AccountID: account, LineItemID: id, Origin: OriginGuestPayment,
		PaymentType: processors.PaymentTypeDebit, Processor: processors.AuthorizeNet,
		Card:        &processors.CardDetails{Number: "5424000000000015", ExpirationDate: "12/39", CVV: "900", Zip: "46201"},
		AmountCents: 1900, RequestHash: []byte("r1"), ClientID: "cli"}
}

// A card payment is recorded PENDING with a queued attempt and its masked
// card; its job goes to the processor's subject, and only the fast path's
// copy carries the CVV (docs/security.md). A replay executes nothing.
func TestSubmitCard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, fp, org, account := newService(t, "Ada Lovelace")
	now := time.Now()
	li, created, err := svc.Submit(ctx, cardPayment(org, account, "pay-1"), now)
	if err != nil || !created {
		t.Fatalf("submit: created %v, %v", created, err)
	}
	a := li.Attempt
	if li.Status != store.StatusPending || a == nil || a.Status != store.AttemptQueued || a.Processor != processors.AuthorizeNet {
		t.Fatalf("line item %s, attempt %+v: want PENDING with a queued AUTHORIZE_NET attempt", li.Status, a)
	}
	if a.InstrumentKind != "card" || a.InstrumentBrand != "Mastercard" || a.InstrumentLastFour != "0015" {
		t.Errorf("instrument %s %s %s, want card Mastercard 0015", a.InstrumentKind, a.InstrumentBrand, a.InstrumentLastFour)
	}

	var job *store.OutboxMessage
	for i := range fp.msgs {
		if fp.msgs[i].MsgID == "job_"+a.AttemptID {
			job = &fp.msgs[i]
		}
	}
	if job == nil || job.Subject != "jobs."+processors.AuthorizeNet {
		t.Fatalf("fast path got %+v, want the job on jobs.AUTHORIZE_NET", fp.msgs)
	}
	fast, err := processors.DecodeJob(env.Ring, job.Body())
	if err != nil || fast.Card == nil || fast.Card.CVV != "900" || fast.Card.Name != "Ada Lovelace" {
		t.Fatalf("fast path job: %+v, %v; want the CVV and the account's name", fast.Card, err)
	}
	var stored []byte
	if err := env.Pool.QueryRow(ctx, `SELECT job FROM payment_attempts WHERE job_msg_id = $1`, job.MsgID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	kept, err := processors.DecodeJob(env.Ring, stored)
	if err != nil || kept.Card == nil || kept.Card.CVV != "" || kept.Card.Number != fast.Card.Number {
		t.Fatalf("stored job: %v; want the card without its CVV", err)
	}

	again, created, err := svc.Submit(ctx, cardPayment(org, account, "pay-1"), now)
	if err != nil || created || again.Attempt.AttemptID != a.AttemptID {
		t.Fatalf("replay: created %v, attempt %v, %v; want the first attempt back", created, again.Attempt, err)
	}
	other := cardPayment(org, account, "pay-1")
	other.RequestHash = []byte("r2")
	if _, _, err := svc.Submit(ctx, other, now); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same id, other request: %v, want store.ErrConflict", err)
	}
}

// What cannot be executed is refused before anything is written.
func TestSubmitRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, fp, org, account := newService(t, "")
	ach := Payment{OrgID: org, AccountID: account, Origin: OriginGuestPayment, PaymentType: processors.PaymentTypeACH,
		Processor: processors.CanopyNACHA, ACH: &processors.ACHDetails{RoutingNumber: "021000021",
			AccountNumber: "123456789", AccountType: "CHECKING", StandardEntryClass: "WEB"},
		AmountCents: 500, RequestHash: []byte("r"), ClientID: "cli"}
	if _, _, err := svc.Submit(ctx, ach, time.Now()); !errors.Is(err, ErrHolderNameRequired) {
		t.Errorf("ACH without any holder name: %v, want ErrHolderNameRequired", err)
	}
	transfer := Payment{OrgID: org, AccountID: account, Origin: OriginPaymentTransfer, AmountCents: 500,
		RequestHash: []byte("t"), ClientID: "cli"}
	var np *NoProcessorError
	if _, _, err := svc.Submit(ctx, transfer, time.Now()); !errors.As(err, &np) || np.AccountID != account {
		t.Errorf("transfer without a configured method: %v, want *NoProcessorError", err)
	}
	missing := cardPayment(org, "no-such-account", "")
	if _, _, err := svc.Submit(ctx, missing, time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown account: %v, want store.ErrNotFound", err)
	}
	if len(fp.msgs) != 0 {
		t.Errorf("refused payments published %d messages", len(fp.msgs))
	}
}

// Apply records an outcome once: a second result for a closed attempt is
// refused, so a duplicate delivery cannot change a decided payment.
func TestApplyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, org, account := newService(t, "Ada Lovelace")
	li, _, err := svc.Submit(ctx, cardPayment(org, account, "pay-apply"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ref := store.AttemptRef{OrgID: org, AttemptID: li.Attempt.AttemptID}
	res, err := svc.Apply(ctx, Outcome{Attempt: ref, Actor: "test",
		Result: processors.Result{Outcome: processors.Succeeded, TransactionID: "60001"}})
	if err != nil || res.Attempt != store.AttemptSucceeded || res.LineItem != store.StatusValid {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	_, err = svc.Apply(ctx, Outcome{Attempt: ref, Actor: "test", Result: processors.Result{Outcome: processors.Declined}})
	if !errors.Is(err, store.ErrAttemptClosed) {
		t.Fatalf("second result: %v, want store.ErrAttemptClosed", err)
	}
	got, err := svc.store.LineItem(ctx, org, account, "pay-apply")
	if err != nil || got.Status != store.StatusValid || got.Attempt.TransactionID != "60001" {
		t.Fatalf("after a second result: %s %+v, %v; want VALID with the first transaction", got.Status, got.Attempt, err)
	}
}
