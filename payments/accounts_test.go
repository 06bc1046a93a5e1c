package payments

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/processors"
)

// countingService is newService over a one-connection pool whose
// statements are counted.
func countingService(t *testing.T, customerName string) (*Service, *fastPath, *testenv.StatementCounter, string, string) {
	t.Helper()
	pool, c := env.CountingPool(t)
	st := store.New(pool, env.Ring, canopy.Events{})
	fp := &fastPath{}
	st.SetFastPath(fp)
	org := testenv.UniqueID("org_")
	if err := st.EnsureOrg(context.Background(), org, "t"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateAccount(context.Background(), org, store.NewAccount{AccountID: "acct", ProductID: "p",
		CustomerName: customerName, RequestHash: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	return New(st, env.Ring), fp, c, org, "acct"
}

// fastJob is the job the fast path got for attempt.
func fastJob(t *testing.T, fp *fastPath, attempt string) processors.Job {
	t.Helper()
	for _, m := range fp.msgs {
		if m.MsgID == "job_"+attempt {
			job, err := processors.DecodeJob(env.Ring, m.Body())
			if err != nil {
				t.Fatal(err)
			}
			return job
		}
	}
	t.Fatalf("no job for attempt %s on the fast path", attempt)
	return processors.Job{}
}

// A guest payment reads its account only the first time: the next ones
// on the account are one statement each, the write. What is remembered is
// checked by that write: when the account's customer name or product
// changed behind payrail's back, the payment is built again from the
// account as it is, never written with the old name or product.
func TestSubmitRemembersAccount(t *testing.T) {
	ctx := context.Background()
	svc, fp, count, org, account := countingService(t, "Ada Lovelace")
	submit := func(id string, statements int64) store.LineItem {
		t.Helper()
		before := count.Count()
		li, created, err := svc.Submit(ctx, cardPayment(org, account, id), time.Now())
		if err != nil || !created {
			t.Fatalf("%s: created %v, %v", id, created, err)
		}
		if got := count.Count() - before; got != statements {
			t.Errorf("%s: %d statements, want %d", id, got, statements)
		}
		return li
	}
	li := submit("pay-1", 2) // the account read, the write
	if name := fastJob(t, fp, li.Attempt.AttemptID).Card.Name; name != "Ada Lovelace" {
		t.Errorf("pay-1: holder name %q", name)
	}
	li = submit("pay-2", 1) // the write alone
	if name := fastJob(t, fp, li.Attempt.AttemptID).Card.Name; name != "Ada Lovelace" {
		t.Errorf("pay-2: holder name %q", name)
	}

	if _, err := env.Pool.Exec(ctx, `UPDATE accounts SET customer_name = 'Grace Hopper' WHERE org_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	li = submit("pay-3", 3) // the write refused, the account read, the write
	if name := fastJob(t, fp, li.Attempt.AttemptID).Card.Name; name != "Grace Hopper" {
		t.Errorf("pay-3 after the name changed: holder name %q, want Grace Hopper", name)
	}
	if _, err := env.Pool.Exec(ctx, `UPDATE accounts SET product_id = 'p2' WHERE org_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	li = submit("pay-4", 3)
	if li.ProductID != "p2" {
		t.Errorf("pay-4 after the product changed: product %q, want p2", li.ProductID)
	}
	stored, err := svc.store.LineItem(ctx, org, account, "pay-4")
	if err != nil || stored.ProductID != "p2" {
		t.Errorf("pay-4 stored with product %q (%v), want p2", stored.ProductID, err)
	}
	submit("pay-5", 1)

	// A replay is answered as before, and reads nothing.
	before := count.Count()
	again, created, err := svc.Submit(ctx, cardPayment(org, account, "pay-5"), time.Now())
	if err != nil || created || again.LineItemID != "pay-5" {
		t.Fatalf("replay: created %v, %v", created, err)
	}
	if got := count.Count() - before; got < 2 {
		t.Errorf("replay: %d statements; want the write and the general path's", got)
	}
}

// A refusal that rests on a remembered customer name is made only after a
// fresh read: an ACH guest payment without a holder name, refused while
// the account had no name, is accepted once it has one.
func TestSubmitRefusalRereadsAccount(t *testing.T) {
	ctx := context.Background()
	svc, fp, _, org, account := countingService(t, "")
	ach := func(id string) Payment {
		return Payment{OrgID: org, AccountID: account, LineItemID: id, Origin: OriginGuestPayment,
			PaymentType: processors.PaymentTypeACH, Processor: processors.CanopyNACHA,
			ACH: &processors.ACHDetails{RoutingNumber: "021000021", AccountNumber: "123456789", AccountType: "CHECKING",
				StandardEntryClass: "WEB"},
			AmountCents: 500, RequestHash: []byte("r"), ClientID: "cli"}
	}
	if _, _, err := svc.Submit(ctx, ach("ach-1"), time.Now()); !errors.Is(err, ErrHolderNameRequired) {
		t.Fatalf("no name anywhere: %v, want ErrHolderNameRequired", err)
	}
	if _, err := env.Pool.Exec(ctx, `UPDATE accounts SET customer_name = 'Ada Lovelace' WHERE org_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	li, created, err := svc.Submit(ctx, ach("ach-2"), time.Now())
	if err != nil || !created {
		t.Fatalf("after the account got a name: created %v, %v", created, err)
	}
	if name := fastJob(t, fp, li.Attempt.AttemptID).ACH.Name; name != "Ada Lovelace" {
		t.Errorf("holder name %q, want the account's", name)
	}
}

// What is remembered of an account belongs to its org: two orgs with an
// account of the same id each get their own, and an org without that
// account is refused whatever the others' payments left behind.
func TestSubmitRemembersAccountPerOrg(t *testing.T) {
	ctx := context.Background()
	svcA, fpA, _, orgA, account := countingService(t, "Ada Lovelace")
	st := svcA.store
	orgB, orgC := testenv.UniqueID("org_"), testenv.UniqueID("org_")
	for _, org := range []string{orgB, orgC} {
		if err := st.EnsureOrg(ctx, org, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.CreateAccount(ctx, orgB, store.NewAccount{AccountID: account, ProductID: "q",
		CustomerName: "Grace Hopper", RequestHash: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct{ org, name, product string }{
		{orgA, "Ada Lovelace", "p"}, {orgB, "Grace Hopper", "q"}, {orgA, "Ada Lovelace", "p"}, {orgB, "Grace Hopper", "q"},
	} {
		li, created, err := svcA.Submit(ctx, cardPayment(c.org, account, "pay-"+string(rune('a'+i))), time.Now())
		if err != nil || !created {
			t.Fatalf("payment %d: created %v, %v", i, created, err)
		}
		if name := fastJob(t, fpA, li.Attempt.AttemptID).Card.Name; name != c.name || li.ProductID != c.product {
			t.Errorf("payment %d of %s: holder %q, product %q; want %q, %q", i, c.org, name, li.ProductID, c.name, c.product)
		}
	}
	if _, _, err := svcA.Submit(ctx, cardPayment(orgC, account, "pay-c"), time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an org without the account: %v, want store.ErrNotFound", err)
	}
}

// jobFor writes the holder name it takes from the account into the job,
// not into the request: Submit builds the job again from the request when
// the account changed.
func TestJobForLeavesRequest(t *testing.T) {
	acct := store.Account{AccountID: "a", CustomerName: "Ada Lovelace"}
	p := cardPayment("o", "a", "id")
	job, err := jobFor(acct, p)
	if err != nil {
		t.Fatal(err)
	}
	if job.Card.Name != "Ada Lovelace" || p.Card.Name != "" {
		t.Errorf("job's name %q, request's %q: want the account's in the job only", job.Card.Name, p.Card.Name)
	}
	ach := Payment{Origin: OriginGuestPayment, ACH: &processors.ACHDetails{}}
	if job, err = jobFor(acct, ach); err != nil || job.ACH.Name != "Ada Lovelace" || ach.ACH.Name != "" {
		t.Errorf("ACH: job's name %q, request's %q, %v", job.ACH.Name, ach.ACH.Name, err)
	}
}

// The cache stays within its bound.
func TestAccountCacheBound(t *testing.T) {
	c := newAccountCache(3)
	for i := range 10 {
		c.put("o", string(rune('a'+i)), accountFacts{productID: "p"})
		if n := c.len(); n > 3 {
			t.Fatalf("%d entries, bound 3", n)
		}
	}
	if _, ok := c.get("o", "j"); !ok {
		t.Error("the latest entry is missing")
	}
	c.forget("o", "j")
	if _, ok := c.get("o", "j"); ok {
		t.Error("a forgotten entry is still there")
	}
}
