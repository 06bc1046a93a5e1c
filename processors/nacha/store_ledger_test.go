package nacha

import (
	"bytes"
	"testing"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
)

// The NACHA processor over the real store ledger: a drop stamps each
// attempt with its file and trace and announces it; a return declines; the
// settlement window makes the rest VALID; a late return creates a
// reversal; every change is an event in the outbox, and a re-run adds
// none.
func TestStoreLedgerThroughDropReturnSettlementAndReversal(t *testing.T) {
	st := store.New(env.Pool, env.Ring, canopy.Events{})
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{mutate: func(c *Config) { c.Ledger = StoreLedger{Store: st} }})
	for _, pm := range []payment{{lineItem: "li_a", amount: 1500}, {lineItem: "li_b", amount: 2500}, {lineItem: "li_c", amount: 3500}} {
		f.stage(pm)
	}
	// events counts a line item's events; the attempt id in the payload
	// (or, for a reversal, its unique id) keeps other tests' li_a apart.
	events := func(subject, lineItem string, mark ...string) int {
		t.Helper()
		m := f.org
		if len(mark) > 0 {
			m = mark[0]
		}
		var n int
		if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM outbox WHERE subject = $1
			AND headers->>'Payrail-Line-Item-Id' = $2 AND convert_from(payload, 'UTF8') LIKE '%' || $3 || '%'`,
			subject, lineItem, m).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	f.setNow(ny(t, 2025, 12, 2, 21, 0))
	res := f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
	if len(res.Files) != 1 {
		t.Fatalf("drop = %+v", res)
	}
	for _, li := range []string{"li_a", "li_b", "li_c"} {
		got, err := st.LineItem(f.ctx, f.org, "acct_1", li)
		if err != nil {
			t.Fatal(err)
		}
		a := got.Attempt
		if got.Status != store.StatusPending || a.NachaFileID == "" || a.TraceNumber == "" || a.TransactionID != a.TraceNumber {
			t.Errorf("%s after the drop: %s, attempt %+v", li, got.Status, a)
		}
		if n := events("events.line_item.pending", li); n != 1 {
			t.Errorf("%s: %d dropped events, want 1", li, n)
		}
	}
	f.mustDrop(ny(t, 2025, 12, 2, 21, 5)) // a re-run announces nothing again
	if n := events("events.line_item.pending", "li_a"); n != 1 {
		t.Errorf("after a re-run: %d dropped events, want 1", n)
	}

	a := f.entry("li_a")
	f.setNow(ny(t, 2025, 12, 4, 6, 0))
	if _, err := f.p.IngestReturnFile(f.ctx, "r1.ach", bytes.NewReader(buildInbound(t, f.origin,
		[]inbound{{trace: a.Trace, amount: 1500, returnCode: "R01"}}))); err != nil {
		t.Fatal(err)
	}
	got, _ := st.LineItem(f.ctx, f.org, "acct_1", "li_a")
	if got.Status != store.StatusDeclined || got.Attempt.Status != store.AttemptDeclined || got.Attempt.ResultCode != "R01" ||
		got.Attempt.ResultMessage != "Insufficient Funds" || events("events.line_item.declined", "li_a") != 1 {
		t.Errorf("li_a after R01: %s, attempt %+v", got.Status, got.Attempt)
	}

	f.setNow(ny(t, 2025, 12, 10, 12, 0))
	if _, err := f.p.Settle(f.ctx); err != nil {
		t.Fatal(err)
	}
	for _, li := range []string{"li_b", "li_c"} {
		got, _ := st.LineItem(f.ctx, f.org, "acct_1", li)
		if got.Status != store.StatusValid || got.ValidAt == nil || got.Attempt.Status != store.AttemptSucceeded ||
			events("events.line_item.valid", li) != 1 {
			t.Errorf("%s after settlement: %s, attempt %+v", li, got.Status, got.Attempt)
		}
	}

	b := f.entry("li_b")
	f.setNow(ny(t, 2025, 12, 12, 6, 0))
	rep, err := f.p.IngestReturnFile(f.ctx, "r2.ach", bytes.NewReader(buildInbound(t, f.origin,
		[]inbound{{trace: b.Trace, amount: 2500, returnCode: "R10"}})))
	if err != nil || len(rep.Returns) != 1 {
		t.Fatalf("late return: %+v, %v", rep, err)
	}
	orig, _ := st.LineItem(f.ctx, f.org, "acct_1", "li_b")
	rev, err := st.LineItem(f.ctx, f.org, "acct_1", rep.Returns[0].ReversalLineItemID)
	if err != nil {
		t.Fatalf("reversal line item: %v", err)
	}
	if orig.Status != store.StatusValid || orig.Attempt.Status != store.AttemptReturned ||
		rev.Type != store.TypePaymentReversal || rev.Status != store.StatusValid || rev.AmountCents != 2500 ||
		rev.RelatedLineItemID != "li_b" || events("events.line_item.valid", rev.LineItemID, `"related_line_item_id":"li_b"`) != 1 {
		t.Errorf("after R10: original %s/%s, reversal %+v", orig.Status, orig.Attempt.Status, rev)
	}
}

// Refunds over the real store ledger: a refund that settles makes its
// reversal VALID; a debit returned after settlement while its refund is
// held completes its reversal (RefundUnneeded) without a second reversal
// line item; each with its attempt succeeded and its event.
func TestStoreLedgerRefunds(t *testing.T) {
	st := store.New(env.Pool, env.Ring, canopy.Events{})
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{mutate: func(c *Config) { c.Ledger = StoreLedger{Store: st} }})
	f.stage(payment{lineItem: "li_refunded", amount: 1500})
	f.stage(payment{lineItem: "li_returned", amount: 2500})
	f.setNow(ny(t, 2025, 12, 2, 21, 0))
	debits := f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
	f.setNow(ny(t, 2025, 12, 3, 9, 0))
	f.refund("li_refunded", "li_returned")
	f.setNow(ny(t, 2025, 12, 5, 9, 0))
	if _, err := f.p.Settle(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.setNow(ny(t, 2025, 12, 5, 15, 0))
	f.ingestReturns(debits.Files[0].Path, map[string]string{f.entry("li_returned").Trace: "R10"})
	f.setNow(ny(t, 2025, 12, 5, 21, 0))
	if res := f.mustDrop(ny(t, 2025, 12, 5, 21, 0)); len(res.Files) != 1 || res.Files[0].Entries != 1 {
		t.Fatalf("refund drop: %+v", res.Files)
	}
	f.setNow(ny(t, 2025, 12, 10, 9, 0))
	if _, err := f.p.Settle(f.ctx); err != nil {
		t.Fatal(err)
	}
	for _, li := range []string{"rev_li_refunded", "rev_li_returned"} {
		got, err := st.LineItem(f.ctx, f.org, "acct_1", li)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.StatusValid || got.Attempt == nil || got.Attempt.Status != store.AttemptSucceeded {
			t.Errorf("%s: %s, attempt %+v", li, got.Status, got.Attempt)
		}
		var n int
		if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM outbox WHERE subject = 'events.line_item.valid'
			AND headers->>'Payrail-Line-Item-Id' = $1 AND convert_from(payload, 'UTF8') LIKE '%' || $2 || '%'`,
			li, f.org).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%s: %d valid events, want 1", li, n)
		}
	}
	orig, err := st.LineItem(f.ctx, f.org, "acct_1", "li_returned")
	if err != nil {
		t.Fatal(err)
	}
	if orig.Status != store.StatusValid || orig.Attempt.Status != store.AttemptReturned {
		t.Errorf("returned debit: %s, attempt %s", orig.Status, orig.Attempt.Status)
	}
	var reversals int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM line_items WHERE org_id = $1 AND line_item_type = 'PAYMENT_REVERSAL'`,
		f.org).Scan(&reversals); err != nil || reversals != 2 {
		t.Fatalf("%d reversal line items (%v), want 2", reversals, err)
	}
}
