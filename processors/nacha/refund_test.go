package nacha

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/moov-io/ach"

	"github.com/payrail/payrail/processors"
)

// refundRow reads a refund credit's row.
func (f *fixture) refundRow(reversalID string) (direction, sec, reverses string, amount int64, account string) {
	f.t.Helper()
	var sealed []byte
	var attempt string
	if err := env.Pool.QueryRow(f.ctx, `
		SELECT r.direction, r.standard_entry_class, o.line_item_id, r.amount_cents, r.account_number_enc, r.attempt_id
		  FROM nacha_entries r JOIN nacha_entries o ON o.entry_id = r.reverses_entry_id
		 WHERE r.org_id = $1 AND r.line_item_id = $2`, f.org, reversalID).Scan(&direction, &sec, &reverses, &amount,
		&sealed, &attempt); err != nil {
		f.t.Fatal(err)
	}
	if sealed != nil {
		plain, err := env.Ring.Open(sealed, entryContext(f.org, attempt))
		if err != nil {
			f.t.Fatalf("open the refund's account number: %v", err)
		}
		account = string(plain)
	}
	return
}

// ingestReturns builds a return file from a dropped file (SimulateReturns)
// and applies it.
func (f *fixture) ingestReturns(path string, codes map[string]string) InboundReport {
	f.t.Helper()
	original, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	content, err := SimulateReturns(original, codes, *f.clock.Load())
	if err != nil {
		f.t.Fatal(err)
	}
	rep, err := f.p.IngestReturnFile(f.ctx, "returns-"+strings.Join(mapKeys(codes), "-")+".ach", bytes.NewReader(content))
	if err != nil || !rep.Applied {
		f.t.Fatalf("ingest returns: %+v %v", rep, err)
	}
	return rep
}

// refund runs the reversal job of each line item, whose debit is in a
// file: each stages a refund credit (reversal rev_<line item>).
func (f *fixture) refund(lineItems ...string) {
	f.t.Helper()
	for _, li := range lineItems {
		if res, err := f.p.Process(f.ctx, f.reversalJob(li, "rev_"+li)); err != nil || res.Outcome != processors.PendingSettlement {
			f.t.Fatalf("reversal of %s: %+v %v", li, res, err)
		}
	}
}

// settleAndDropRefunds settles debits dropped on 2025-12-02 (on Friday
// 12-05) and runs that evening's cutoff, which must write one file of n
// refunds.
func (f *fixture) settleAndDropRefunds(n int) DropResult {
	f.t.Helper()
	f.setNow(ny(f.t, 2025, 12, 5, 9, 0))
	if _, err := f.p.Settle(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	f.setNow(ny(f.t, 2025, 12, 5, 21, 0))
	res := f.mustDrop(ny(f.t, 2025, 12, 5, 21, 0))
	if len(res.Files) != 1 || res.Files[0].Entries != n {
		f.t.Fatalf("refund drop: %+v, want one file of %d refunds", res.Files, n)
	}
	return res
}

// forEachPlacement runs test on a fresh fixture (2 December 2025, 10:00
// New York) with an unbalanced NACHA config, then with a balanced one for
// each offset placement (named by placement; "" when unbalanced).
func forEachPlacement(t *testing.T, test func(t *testing.T, f *fixture, placement string)) {
	for _, placement := range []string{"", OffsetOwnBatch, OffsetSameBatch} {
		name := placement
		if name == "" {
			name = "unbalanced"
		}
		t.Run(name, func(t *testing.T) {
			test(t, newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{balanced: placement != "", placement: placement}),
				placement)
		})
	}
}

// stageWebAndCCD stages the two debits the refund tests give back: li_web
// (WEB, 1500 cents, checking) and li_ccd (CCD, 2500 cents, savings).
func (f *fixture) stageWebAndCCD() {
	f.t.Helper()
	f.stage(payment{lineItem: "li_web", amount: 1500, sec: ach.WEB})
	f.stage(payment{lineItem: "li_ccd", amount: 2500, sec: ach.CCD, accountType: "SAVINGS", number: "000123456789"})
}

// filePath is where a file of the fixture was dropped.
func (f *fixture) filePath(fileID string) string {
	f.t.Helper()
	var name string
	if err := env.Pool.QueryRow(f.ctx, `SELECT file_name FROM nacha_files WHERE file_id = $1`, fileID).Scan(&name); err != nil {
		f.t.Fatal(err)
	}
	return filepath.Join(f.dir, name)
}

func mapKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// A payment whose debit went into a file is given back by a refund
// credit: staged by the reversal job (once, whatever the redeliveries),
// held while the debit is unsettled, then written into the next file as a
// PPD (or, for a CCD debit, CCD) credit to the same account in a REFUND
// batch; the reversal is VALID when the credit settles, DECLINED when the
// credit is returned first. Balanced files offset the credits with a debit
// to the org's account.
func TestRefundCreditLifecycle(t *testing.T) {
	forEachPlacement(t, func(t *testing.T, f *fixture, placement string) {
		f.stageWebAndCCD()
		f.stage(payment{lineItem: "li_kept", amount: 700})
		f.setNow(ny(t, 2025, 12, 2, 21, 0))
		f.mustDrop(ny(t, 2025, 12, 2, 21, 0))

		f.setNow(ny(t, 2025, 12, 3, 9, 0))
		for _, li := range []string{"li_web", "li_ccd"} {
			for delivery := 1; delivery <= 2; delivery++ {
				job := f.reversalJob(li, "rev_"+li)
				job.Delivery = delivery
				res, err := f.p.Process(f.ctx, job)
				if err != nil || res.Outcome != processors.PendingSettlement || res.Code != "refund_staged" {
					t.Fatalf("reversal of %s, delivery %d: %+v %v", li, delivery, res, err)
				}
			}
		}
		var refunds int
		if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM nacha_entries WHERE org_id = $1 AND direction = 'credit'`,
			f.org).Scan(&refunds); err != nil {
			t.Fatal(err)
		}
		if refunds != 2 {
			t.Fatalf("%d refund credits staged for two reversals delivered twice each", refunds)
		}
		if dir, sec, orig, amount, acct := f.refundRow("rev_li_web"); dir != "credit" || sec != ach.PPD || orig != "li_web" ||
			amount != 1500 || acct != "12345678901" {
			t.Fatalf("refund of the WEB debit: %s %s of %s, %d cents", dir, sec, orig, amount)
		}
		if _, sec, _, _, acct := f.refundRow("rev_li_ccd"); sec != ach.CCD || acct != "000123456789" {
			t.Fatalf("refund of the CCD debit: %s", sec)
		}

		// The debits have not settled: the day's cutoff holds the refunds.
		f.setNow(ny(t, 2025, 12, 3, 21, 0))
		if res := f.mustDrop(ny(t, 2025, 12, 3, 21, 0)); len(res.Files) != 0 {
			t.Fatalf("refunds of unsettled debits dropped: %+v", res.Files)
		}
		res := f.settleAndDropRefunds(2)
		file := readDropped(t, res.Files[0].Path)
		var credits, offsets int
		for _, b := range file.Batches {
			bh := b.GetHeader()
			for _, e := range b.GetEntries() {
				switch e.IdentificationNumber = strings.TrimSpace(e.IdentificationNumber); {
				case e.IdentificationNumber == "OFFSET":
					offsets++
					if e.TransactionCode != ach.CheckingDebit || bh.CompanyEntryDescription != refundDescription {
						t.Errorf("offset of refunds: code %d in a %q batch", e.TransactionCode, bh.CompanyEntryDescription)
					}
				case e.IdentificationNumber == "rev_li_web":
					credits++
					if e.TransactionCode != ach.CheckingCredit || bh.StandardEntryClassCode != ach.PPD || e.Amount != 1500 ||
						bh.CompanyEntryDescription != refundDescription || strings.TrimSpace(e.DFIAccountNumber) != "12345678901" {
						t.Errorf("refund of the WEB debit: code %d, %s %q, %d", e.TransactionCode, bh.StandardEntryClassCode,
							bh.CompanyEntryDescription, e.Amount)
					}
				case e.IdentificationNumber == "rev_li_ccd":
					credits++
					if e.TransactionCode != ach.SavingsCredit || bh.StandardEntryClassCode != ach.CCD || e.Amount != 2500 {
						t.Errorf("refund of the CCD debit: code %d, %s, %d", e.TransactionCode, bh.StandardEntryClassCode, e.Amount)
					}
				default:
					t.Errorf("unexpected entry %s in the refund file", e.IdentificationNumber)
				}
			}
		}
		wantOffsets := 0
		if placement != "" {
			wantOffsets = 2 // one per credit batch (PPD, CCD)
		}
		if credits != 2 || offsets != wantOffsets || file.Control.TotalCreditEntryDollarAmountInFile < 4000 {
			t.Fatalf("%d refunds, %d offsets, file control %+v", credits, offsets, file.Control)
		}
		if placement != "" && file.Control.TotalDebitEntryDollarAmountInFile != 4000 {
			t.Fatalf("balanced refund file debits %d, want the offsets' 4000", file.Control.TotalDebitEntryDollarAmountInFile)
		}

		// The CCD refund is returned before it settles: its reversal is
		// DECLINED; the other settles: VALID.
		f.setNow(ny(t, 2025, 12, 8, 6, 0))
		rep := f.ingestReturns(res.Files[0].Path, map[string]string{f.entry("rev_li_ccd").Trace: "R03"})
		if len(rep.Returns) != 1 || rep.Returns[0].Outcome != "declined" || rep.Returns[0].LineItemID != "rev_li_ccd" {
			t.Fatalf("return of a refund: %+v", rep.Returns)
		}
		f.setNow(ny(t, 2025, 12, 10, 9, 0))
		if _, err := f.p.Settle(f.ctx); err != nil {
			t.Fatal(err)
		}
		for li, want := range map[string]string{"rev_li_web": "VALID", "rev_li_ccd": "DECLINED", "li_web": "VALID",
			"li_ccd": "VALID", "li_kept": "VALID"} {
			if got := f.lineItemStatus("acct_1", li); got != want {
				t.Errorf("%s is %s, want %s", li, got, want)
			}
		}
		if ev := f.events("rev_li_web"); strings.Join(ev, ",") != "dropped,settled" {
			t.Errorf("events of the refund = %v", ev)
		}
	})
}

// A debit returned while its refund is held: before settlement the payment
// is DECLINED and the refund is withdrawn, its reversal INVALID (nothing
// to give back); after settlement the return brought the money back, so
// the refund is withdrawn and the reversal VALID, with no second reversal.
// A reversal whose job comes after such a return succeeds without a
// refund; one of a debit returned before settlement fails.
func TestReturnOfARefundedDebit(t *testing.T) {
	f := droppedFixture(t, payment{lineItem: "li_early", amount: 1100}, payment{lineItem: "li_late", amount: 1200},
		payment{lineItem: "li_job_after", amount: 1300}, payment{lineItem: "li_declined", amount: 1400})
	path := f.filePath(f.entry("li_early").FileID)
	f.setNow(ny(t, 2025, 12, 3, 9, 0))
	f.refund("li_early", "li_late")
	jobAfter := f.reversalJob("li_job_after", "rev_li_job_after") // recorded, its job not run yet
	declinedJob := f.reversalJob("li_declined", "rev_li_declined")

	f.setNow(ny(t, 2025, 12, 4, 6, 0))
	f.ingestReturns(path, map[string]string{f.entry("li_early").Trace: "R01", f.entry("li_declined").Trace: "R01"})
	if got := f.lineItemStatus("acct_1", "li_early") + "/" + f.lineItemStatus("acct_1", "rev_li_early"); got != "DECLINED/INVALID" {
		t.Fatalf("debit/reversal after a return before settlement: %s", got)
	}
	if e := f.entry("rev_li_early"); e.Status != entryWithdrawn {
		t.Fatalf("refund of a debit returned before settlement: %+v", e)
	}
	res, err := f.p.Process(f.ctx, declinedJob)
	if err == nil || res.Outcome != processors.Permanent || res.Code != "original_returned" {
		t.Fatalf("reversal of a debit returned before settlement: %+v %v", res, err)
	}

	f.setNow(ny(t, 2025, 12, 5, 9, 0))
	if _, err := f.p.Settle(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.setNow(ny(t, 2025, 12, 5, 15, 0))
	rep := f.ingestReturns(path, map[string]string{f.entry("li_late").Trace: "R10", f.entry("li_job_after").Trace: "R10"})
	for _, r := range rep.Returns {
		if r.Outcome != "reversed" {
			t.Errorf("return after settlement of %s: %+v", r.LineItemID, r)
		}
		if r.LineItemID == "li_late" && r.ReversalLineItemID != "rev_li_late" {
			t.Errorf("the return of a reversed payment names reversal %s, want rev_li_late", r.ReversalLineItemID)
		}
	}
	if got := f.lineItemStatus("acct_1", "li_late") + "/" + f.lineItemStatus("acct_1", "rev_li_late"); got != "VALID/VALID" {
		t.Fatalf("debit/reversal after a return after settlement: %s", got)
	}
	if e := f.entry("rev_li_late"); e.Status != entryWithdrawn {
		t.Fatalf("refund of a debit returned after settlement: %+v", e)
	}
	res, err = f.p.Process(f.ctx, jobAfter)
	if err != nil || res.Outcome != processors.Succeeded || res.Code != "returned_after_settlement" {
		t.Fatalf("reversal whose job came after the return: %+v %v", res, err)
	}
	var reversals int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM line_items WHERE org_id = $1 AND line_item_type = 'PAYMENT_REVERSAL'`,
		f.org).Scan(&reversals); err != nil {
		t.Fatal(err)
	}
	if reversals != 4 {
		t.Fatalf("%d reversal line items, want the 4 the test made (no second reversal of a returned payment)", reversals)
	}
	// Nothing is left to refund.
	f.setNow(ny(t, 2025, 12, 5, 21, 0))
	if res := f.mustDrop(ny(t, 2025, 12, 5, 21, 0)); len(res.Files) != 0 {
		t.Fatalf("refunds dropped after their debits were returned: %+v", res.Files)
	}
}

// A refund that already went out when its debit is returned cannot be
// stopped: the return is applied and reported reversed_after_refund (the
// customer has the money twice), and a refund returned after it settled is
// reported refund_returned; both are logged at ERROR for an operator.
func TestReturnsAfterARefundWentOut(t *testing.T) {
	f := droppedFixture(t, payment{lineItem: "li_a", amount: 1500}, payment{lineItem: "li_b", amount: 1600})
	debits := f.filePath(f.entry("li_a").FileID)
	f.setNow(ny(t, 2025, 12, 3, 9, 0))
	f.refund("li_a", "li_b")
	res := f.settleAndDropRefunds(2)
	f.setNow(ny(t, 2025, 12, 8, 6, 0))
	rep := f.ingestReturns(debits, map[string]string{f.entry("li_a").Trace: "R10"})
	if len(rep.Returns) != 1 || rep.Returns[0].Outcome != "reversed_after_refund" || rep.Returns[0].ReversalLineItemID != "rev_li_a" {
		t.Fatalf("return of a debit whose refund went out: %+v", rep.Returns)
	}
	f.setNow(ny(t, 2025, 12, 10, 9, 0))
	if _, err := f.p.Settle(f.ctx); err != nil {
		t.Fatal(err)
	}
	if s := f.lineItemStatus("acct_1", "rev_li_b"); s != "VALID" {
		t.Fatalf("settled refund's reversal is %s", s)
	}
	rep = f.ingestReturns(res.Files[0].Path, map[string]string{f.entry("rev_li_b").Trace: "R03"})
	if len(rep.Returns) != 1 || rep.Returns[0].Outcome != "refund_returned" {
		t.Fatalf("return of a settled refund: %+v", rep.Returns)
	}
	if s := f.lineItemStatus("acct_1", "rev_li_b"); s != "VALID" {
		t.Fatalf("reversal of a refund returned after settlement is %s; the ledger is append-only", s)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "gets the money back twice") ||
		!strings.Contains(logs, "did not get the money back") {
		t.Fatalf("no ERROR for an operator:\n%s", logs)
	}
}

// A refund needs the debit's account number: once purged (retention after
// settlement) the reversal fails at once, naming why, and nothing is
// staged.
func TestRefundAfterPurgeFails(t *testing.T) {
	f := droppedFixture(t, payment{lineItem: "li_old", amount: 900})
	f.setNow(ny(t, 2025, 12, 5, 9, 0))
	if _, err := f.p.Settle(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(f.ctx, `UPDATE nacha_entries SET account_number_enc = NULL, purged_at = now()
		WHERE org_id = $1 AND line_item_id = 'li_old'`, f.org); err != nil {
		t.Fatal(err)
	}
	res, err := f.p.Process(f.ctx, f.reversalJob("li_old", "rev_old"))
	if err == nil || res.Outcome != processors.Permanent || res.Code != "account_number_purged" {
		t.Fatalf("reversal of a purged debit: %+v %v", res, err)
	}
	var n int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM nacha_entries WHERE org_id = $1 AND direction = 'credit'`,
		f.org).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d refunds staged (%v)", n, err)
	}
}
