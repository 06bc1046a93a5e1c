package nacha

import (
	"context"
	"errors"
	"testing"

	"github.com/payrail/payrail/processors"
)

// reversalJob is the job of a reversal of the fixture's payment lineItem,
// as payments.Reverse seals it, with the reversal's PENDING line item and
// attempt as the intake records them (a refund credit's row names them).
func (f *fixture) reversalJob(lineItem, reversalID string) processors.Job {
	f.t.Helper()
	now := *f.clock.Load()
	if _, err := env.Pool.Exec(f.ctx, `
		INSERT INTO line_items (org_id, account_id, line_item_id, line_item_type, status, original_amount_cents,
		    effective_at, created_at, updated_at, origin, processor, request_hash, client_id, related_line_item_id)
		SELECT org_id, account_id, $3, 'PAYMENT_REVERSAL', 'PENDING', original_amount_cents, $4, $4, $4,
		       'payment_reversals', 'CANOPY_NACHA', '\x00', 'test', line_item_id
		  FROM line_items WHERE org_id = $1 AND account_id = 'acct_1' AND line_item_id = $2
		ON CONFLICT DO NOTHING`, f.org, lineItem, reversalID, now); err != nil {
		f.t.Fatal(err)
	}
	if _, err := env.Pool.Exec(f.ctx, `
		INSERT INTO payment_attempts (attempt_id, org_id, account_id, line_item_id, processor, payment_type, status,
		    job_msg_id, created_at, updated_at)
		VALUES ($1, $2, 'acct_1', $3, 'CANOPY_NACHA', 'ACH', 'processing', 'job_'||$1, $4, $4)
		ON CONFLICT DO NOTHING`, "att_"+f.org+"_"+reversalID, f.org, reversalID, now); err != nil {
		f.t.Fatal(err)
	}
	var amount int64
	if err := env.Pool.QueryRow(f.ctx, `SELECT original_amount_cents FROM line_items WHERE org_id = $1 AND line_item_id = $2`,
		f.org, lineItem).Scan(&amount); err != nil {
		f.t.Fatal(err)
	}
	return processors.Job{OrgID: f.org, AccountID: "acct_1", LineItemID: reversalID, AttemptID: "att_" + f.org + "_" + reversalID,
		Processor: Name, PaymentType: processors.PaymentTypeACH, Origin: "payment_reversals", AmountCents: amount,
		Delivery: 1, Reversal: &processors.ReversalDetails{OriginalLineItemID: lineItem,
			OriginalAttemptID: "att_" + f.org + "_" + lineItem}}
}

// A staged entry whose payment is reversed is withdrawn: the reversal
// succeeds (again on a redelivery), the entry never goes into a file and
// its account number is purged at once. While a drop holds its lock the
// withdrawal waits; an entry a file took first cannot be withdrawn.
func TestReversalWithdrawsAStagedEntry(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	f.stage(payment{lineItem: "li_keep", amount: 500})
	f.stage(payment{lineItem: "li_back", amount: 500})

	// A drop in progress: retry later, nothing changed.
	conn, err := env.Pool.Acquire(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(f.ctx, `SELECT pg_advisory_lock($1)`, dropLockKey); err != nil {
		t.Fatal(err)
	}
	res, err := f.p.Process(f.ctx, f.reversalJob("li_back", "rev_back"))
	if err != nil || res.Outcome != processors.Retryable || res.Code != "drop_in_progress" {
		t.Fatalf("withdrawal during a drop: %+v %v", res, err)
	}
	if e := f.entry("li_back"); e.Status != entryStaged {
		t.Fatalf("entry %s after a refused withdrawal", e.Status)
	}
	if _, err := conn.Exec(f.ctx, `SELECT pg_advisory_unlock($1)`, dropLockKey); err != nil {
		t.Fatal(err)
	}

	for delivery := 1; delivery <= 2; delivery++ {
		job := f.reversalJob("li_back", "rev_back")
		job.Delivery = delivery
		res, err := f.p.Process(f.ctx, job)
		if err != nil || res.Outcome != processors.Succeeded || res.Code != "withdrawn" || res.Instrument.LastFour != "8901" {
			t.Fatalf("withdrawal, delivery %d: %+v %v", delivery, res, err)
		}
	}
	var purged bool
	var reversal string
	if err := env.Pool.QueryRow(f.ctx, `SELECT account_number_enc IS NULL AND purged_at IS NOT NULL, reversal_line_item_id
		FROM nacha_entries WHERE org_id = $1 AND line_item_id = 'li_back'`, f.org).Scan(&purged, &reversal); err != nil {
		t.Fatal(err)
	}
	if e := f.entry("li_back"); e.Status != entryWithdrawn || !purged || reversal != "rev_back" {
		t.Fatalf("withdrawn entry %+v, purged %v, reversal %q", e, purged, reversal)
	}

	res2 := f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
	if len(res2.Files) != 1 || res2.Files[0].Entries != 1 {
		t.Fatalf("drop after the withdrawal: %+v", res2.Files)
	}
	if e := f.entry("li_back"); e.Status != entryWithdrawn || e.FileID != "" {
		t.Fatalf("the drop took the withdrawn entry: %+v", e)
	}
	// The kept entry is in the file now: too late to withdraw it; a
	// refund credit gives it back instead (TestRefundCreditLifecycle).
	res, err = f.p.Process(f.ctx, f.reversalJob("li_keep", "rev_keep"))
	if err != nil || res.Outcome != processors.PendingSettlement || res.Code != "refund_staged" {
		t.Fatalf("reversal of a dropped entry: %+v %v", res, err)
	}
	if e := f.entry("li_keep"); e.Status != entryDropped {
		t.Fatalf("dropped entry became %s", e.Status)
	}
}

// A drop that died after writing its file but before applying the file's
// claims to the entries' rows leaves those rows staged: the entries are in
// the file all the same, and a reversal must not withdraw one (its debit
// is on its way to the bank): it stages a refund instead.
func TestReversalRefusesAClaimedEntry(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	f.p.assignChunk = 1
	for _, li := range []string{"li_a", "li_b", "li_c"} {
		f.stage(payment{lineItem: li, amount: 700})
	}
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff)
	ctx, cancel := context.WithCancel(f.ctx)
	f.p.hook = func(s DropStep, _ string) error {
		if s == StepAssignedChunk {
			cancel()
			return errCrash
		}
		return nil
	}
	if _, err := f.p.DropAt(ctx, cutoff); !errors.Is(err, errCrash) {
		t.Fatalf("drop with a crash while applying claims: %v", err)
	}
	cancel()
	f.p.hook = nil

	var staged int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM nacha_entries WHERE org_id = $1 AND status = 'staged'`,
		f.org).Scan(&staged); err != nil {
		t.Fatal(err)
	}
	if staged == 0 {
		t.Fatal("every entry's row was applied before the crash; the test needs a claimed entry still staged")
	}
	for _, li := range []string{"li_a", "li_b", "li_c"} {
		res, err := f.p.Process(f.ctx, f.reversalJob(li, "rev_"+li))
		if err != nil || res.Outcome != processors.PendingSettlement || res.Code != "refund_staged" {
			t.Fatalf("reversal of %s, in a written file: %+v %v", li, res, err)
		}
		if e := f.entry(li); e.Status == entryWithdrawn {
			t.Fatalf("%s withdrawn from a written file", li)
		}
	}
	// The next drop finishes applying the claims, every entry intact, and
	// holds the refunds back: their debits have not settled.
	f.mustDrop(cutoff)
	for _, li := range []string{"li_a", "li_b", "li_c"} {
		if e := f.entry(li); e.Status != entryDropped || e.FileID == "" {
			t.Fatalf("%s after the next drop: %+v", li, e)
		}
		if e := f.entry("rev_" + li); e.Status != entryStaged || e.FileID != "" {
			t.Fatalf("refund of %s after the next drop: %+v", li, e)
		}
	}
}
