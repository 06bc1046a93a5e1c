package nacha

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/moov-io/ach"
)

// readDropped reads a dropped file back under strict validation and
// checks that no control field overflowed: every offset fits an entry's
// amount field and every control total its 12 digits.
func readDropped(t *testing.T, path string) *ach.File {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(content) == 0 || content[len(content)-1] != '\n' {
		t.Errorf("%s does not end with a line end", path)
	}
	file, err := ach.NewReader(bytes.NewReader(content)).Read()
	if err != nil {
		t.Fatalf("read back %s: %v", path, err)
	}
	if err := file.Validate(); err != nil {
		t.Fatalf("validate %s: %v", path, err)
	}
	for _, b := range file.Batches {
		c := b.GetControl()
		if int64(c.TotalDebitEntryDollarAmount) > nachaLimits.ControlTotal || int64(c.TotalCreditEntryDollarAmount) > nachaLimits.ControlTotal {
			t.Errorf("batch %d totals overflow: %+v", b.GetHeader().BatchNumber, c)
		}
		for _, e := range b.GetEntries() {
			if int64(e.Amount) > nachaLimits.EntryAmount {
				t.Errorf("entry %s amount %d overflows", e.TraceNumber, e.Amount)
			}
		}
	}
	return &file
}

// Two maximum-size guest payments and an honest one in a balanced org used
// to make every later drop fail ("FieldError: Amount: does not match
// formatted value"): the offset credit of the batch overflowed its 10
// digits. Now each batch's offset fits, and the file drops.
func TestBalancedMaximumAmountsSplitBatches(t *testing.T) {
	for _, placement := range []string{OffsetSameBatch, OffsetOwnBatch} {
		t.Run(placement, func(t *testing.T) {
			f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{balanced: true, placement: placement})
			f.stage(payment{lineItem: "max-1", amount: 9_999_999_999})
			f.stage(payment{lineItem: "max-2", amount: 9_999_999_999})
			f.stage(payment{lineItem: "honest", amount: 1_500})
			cutoff := ny(t, 2025, 12, 2, 21, 0)
			f.setNow(cutoff)
			res := f.mustDrop(cutoff)
			if len(res.Files) != 1 || res.Files[0].Status != fileWritten {
				t.Fatalf("files %+v", res.Files)
			}
			file := readDropped(t, res.Files[0].Path)
			debitBatches := 0
			for _, b := range file.Batches {
				if b.GetControl().TotalDebitEntryDollarAmount > 0 {
					debitBatches++
				}
				if d, c := b.GetControl().TotalDebitEntryDollarAmount, b.GetControl().TotalCreditEntryDollarAmount; placement == OffsetSameBatch && d != c {
					t.Errorf("batch %d unbalanced: debits %d credits %d", b.GetHeader().BatchNumber, d, c)
				}
			}
			if debitBatches != 3 {
				t.Errorf("%d debit batches, want 3 (no two of the entries fit under one 10-digit offset)", debitBatches)
			}
			if fc := file.Control; fc.TotalDebitEntryDollarAmountInFile != 2*9_999_999_999+1_500 || fc.TotalCreditEntryDollarAmountInFile != fc.TotalDebitEntryDollarAmountInFile {
				t.Errorf("file control %+v", fc)
			}
			for _, li := range []string{"max-1", "max-2", "honest"} {
				if e := f.entry(li); e.Status != entryDropped {
					t.Errorf("%s: %+v", li, e)
				}
			}
			// Nothing is left building; the next drop has nothing to do.
			if res := f.mustDrop(cutoff); len(res.Files) != 0 {
				t.Errorf("second drop made files %+v", res.Files)
			}
		})
	}
}

// 101 maximum-size entries overflow an unbalanced file's 12-digit debit
// total: they go into two files of the same cutoff.
func TestUnbalancedFileTotalSplitsFiles(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	for i := 0; i < 101; i++ {
		f.stage(payment{lineItem: fmt.Sprintf("max-%03d", i), amount: 9_999_999_999})
	}
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff)
	res := f.mustDrop(cutoff)
	if len(res.Files) != 2 {
		t.Fatalf("drop made %d files, want 2: %+v", len(res.Files), res.Files)
	}
	total := 0
	for _, s := range res.Files {
		file := readDropped(t, s.Path)
		if int64(file.Control.TotalDebitEntryDollarAmountInFile) > nachaLimits.ControlTotal {
			t.Errorf("file control debit total %d overflows", file.Control.TotalDebitEntryDollarAmountInFile)
		}
		total += s.Entries
	}
	if total != 101 || res.Files[0].FileName == res.Files[1].FileName {
		t.Errorf("entries %d in %s and %s", total, res.Files[0].FileName, res.Files[1].FileName)
	}
}

// With shrunken limits the planner's every boundary is crossed: entries
// per batch, records per file, and a balanced batch's offset.
func TestPlannerBoundaries(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{balanced: true})
	f.p.limits = limits{EntryAmount: 10_000, ControlTotal: 1_000_000, BatchEntries: 3, FileRecords: 20}
	amounts := []int64{10_000, 1, 9_999, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	var sum int64
	for i, a := range amounts {
		f.stage(payment{lineItem: fmt.Sprintf("li-%02d", i), amount: a})
		sum += a
	}
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff)
	res := f.mustDrop(cutoff)
	if len(res.Files) < 2 {
		t.Fatalf("drop made %d files, want several", len(res.Files))
	}
	var entries int
	var debits int64
	for _, s := range res.Files {
		file := readDropped(t, s.Path)
		records := 2
		for _, b := range file.Batches {
			records += 2 + len(b.GetEntries())
			if n := len(b.GetEntries()); n > 3 {
				t.Errorf("batch with %d entries", n)
			}
			if c := b.GetControl().TotalCreditEntryDollarAmount; c > 10_000 {
				t.Errorf("offset %d above the entry limit", c)
			}
		}
		if records > 20 {
			t.Errorf("%s has %d records", s.FileName, records)
		}
		entries += s.Entries
		debits += s.DebitTotalCents
	}
	if entries != len(amounts) || debits != sum {
		t.Errorf("dropped %d entries, %d cents; want %d, %d", entries, debits, len(amounts), sum)
	}
}

// An entry that cannot be written (here: an account number that no longer
// opens, and a routing number outside the Federal Reserve ranges staged
// before intake checked them) is set aside: its payment INVALID with the
// reason and an event, counted, and the rest of the cutoff drops.
func TestUnwritableEntriesAreSetAside(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{balanced: true})
	f.stage(payment{lineItem: "good", amount: 1_000})
	f.stage(payment{lineItem: "bad-routing", amount: 2_000})
	f.stage(payment{lineItem: "bad-sealed", amount: 3_000})
	if _, err := env.Pool.Exec(f.ctx, `UPDATE nacha_entries SET rdfi_routing = '500000005' WHERE org_id = $1 AND line_item_id = 'bad-routing'`, f.org); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(f.ctx, `UPDATE nacha_entries SET account_number_enc = '\x0001'::bytea WHERE org_id = $1 AND line_item_id = 'bad-sealed'`, f.org); err != nil {
		t.Fatal(err)
	}
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff)
	res := f.mustDrop(cutoff)
	if len(res.Files) != 1 || res.Files[0].Entries != 1 || res.Files[0].DebitTotalCents != 1_000 {
		t.Fatalf("files %+v", res.Files)
	}
	readDropped(t, res.Files[0].Path)
	for _, li := range []string{"bad-routing", "bad-sealed"} {
		if e := f.entry(li); e.Status != "set_aside" || e.FileID != "" || e.Trace != "" {
			t.Errorf("%s: %+v", li, e)
		}
		if s := f.lineItemStatus("acct_1", li); s != "INVALID" {
			t.Errorf("%s is %s, want INVALID", li, s)
		}
		if ev := f.events(li); len(ev) == 0 || ev[len(ev)-1] != "set_aside" {
			t.Errorf("%s events %v", li, ev)
		}
	}
	var reason string
	if err := env.Pool.QueryRow(f.ctx, `SELECT set_aside_reason FROM nacha_entries WHERE org_id = $1 AND line_item_id = 'bad-routing'`, f.org).Scan(&reason); err != nil || !strings.Contains(reason, "Federal Reserve") {
		t.Errorf("reason %q, %v", reason, err)
	}
	if got := counterValue(t, f.p.metrics.setAside); got != 2 {
		t.Errorf("set-aside metric = %v, want 2", got)
	}
	if e := f.entry("good"); e.Status != entryDropped {
		t.Errorf("good: %+v", e)
	}
}

// A file stuck in building (here: its rows say more than its entries
// hold, as a bug would leave them) fails every drop until an operator
// releases it; its entries then drop in a new file.
func TestReleaseStuckFile(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	f.stage(payment{lineItem: "a", amount: 1_000})
	f.stage(payment{lineItem: "b", amount: 2_000})
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff)
	// The rows go wrong after the file is created, and the process dies
	// before its bytes are installed: the next drop builds it from them.
	f.p.hook = func(s DropStep, id string) error {
		if s == StepCreated {
			if _, err := env.Pool.Exec(f.ctx, `UPDATE nacha_batches SET debit_total_cents = debit_total_cents + 1 WHERE file_id = $1`, id); err != nil {
				return err
			}
			return errCrash
		}
		return nil
	}
	if _, err := f.drop(cutoff); !errors.Is(err, errCrash) {
		t.Fatalf("drop with a crash after the file's creation: %v", err)
	}
	f.p.hook = nil
	stuck := f.entry("a").FileID
	if _, err := f.drop(cutoff); err == nil {
		t.Fatal("the stuck file did not fail the next drop")
	}
	files, err := f.p.Files(f.ctx, fileBuilding, 0)
	if err != nil {
		t.Fatal(err)
	}
	var listed *FileInfo
	for i := range files {
		if files[i].FileID == stuck {
			listed = &files[i]
		}
	}
	if listed == nil || listed.LastError == "" || listed.Entries != 2 || listed.Upload != "not_required" {
		t.Fatalf("files --status building: %+v", listed)
	}
	info, err := f.p.ReleaseFile(f.ctx, stuck)
	if err != nil || info.Status != "released" {
		t.Fatalf("release: %+v %v", info, err)
	}
	if _, err := f.p.ReleaseFile(f.ctx, stuck); err == nil {
		t.Error("a released file was released again")
	}
	if e := f.entry("a"); e.Status != entryStaged || e.FileID != "" {
		t.Fatalf("after release: %+v", e)
	}
	res := f.mustDrop(cutoff)
	if len(res.Files) != 1 || res.Files[0].Entries != 2 || res.Files[0].FileID == stuck {
		t.Fatalf("files %+v", res.Files)
	}
}
