package nacha

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moov-io/ach"
)

// A new file is written in the same pass that plans it; its rows must
// describe exactly those bytes, because a drop that dies after the rows
// are committed and before the file is installed builds it again from
// them. For each offset placement, with debits of several SEC codes and
// dates, refund credits and an entry set aside, the file the pass wrote
// (its temp file at the crash) equals, byte for byte, the one the next
// drop rebuilds from the rows — which also checks the rebuild's own
// validation (writeACH against the recorded batches and totals).
func TestCreatedFileRebuildsByteForByte(t *testing.T) {
	for _, placement := range []string{"", OffsetOwnBatch, OffsetSameBatch} {
		name := placement
		if name == "" {
			name = "unbalanced"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{balanced: placement != "", placement: placement})
			f.stage(payment{lineItem: "li_web", amount: 1500, sec: ach.WEB})
			f.stage(payment{lineItem: "li_ccd", amount: 2500, sec: ach.CCD, accountType: "SAVINGS", number: "000123456789"})
			f.setNow(ny(t, 2025, 12, 2, 21, 0))
			f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
			f.setNow(ny(t, 2025, 12, 3, 9, 0))
			f.refund("li_web", "li_ccd")
			f.setNow(ny(t, 2025, 12, 5, 9, 0))
			if _, err := f.p.Settle(f.ctx); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 7; i++ {
				f.stage(payment{account: fmt.Sprintf("acct_%d", i%3), lineItem: fmt.Sprintf("li_%d", i),
					amount: int64(1000 + i), sec: []string{ach.WEB, ach.PPD, ach.TEL}[i%3]})
			}
			// Two entries whose date has passed: they go on the first
			// possible date, with the others of that date.
			if _, err := env.Pool.Exec(f.ctx, `UPDATE nacha_entries SET effective_entry_date = '2025-12-04'
				 WHERE org_id = $1 AND line_item_id IN ('li_3', 'li_4')`, f.org); err != nil {
				t.Fatal(err)
			}
			f.stage(payment{lineItem: "li_bad", amount: 900})
			// An account number that no longer opens: found as the pass reads it.
			if _, err := env.Pool.Exec(f.ctx, `UPDATE nacha_entries SET account_number_enc = '\x0001'::bytea
				 WHERE org_id = $1 AND line_item_id = 'li_bad'`, f.org); err != nil {
				t.Fatal(err)
			}

			cutoff := ny(t, 2025, 12, 5, 21, 0)
			f.setNow(cutoff)
			f.p.hook = crashOnce(StepCreated)
			if _, err := f.drop(cutoff); !errors.Is(err, errCrash) {
				t.Fatalf("drop with a crash after the file's creation: %v", err)
			}
			temps, _ := filepath.Glob(filepath.Join(f.dir, ".*.tmp"))
			if len(temps) != 1 {
				t.Fatalf("temp files at the crash: %v", temps)
			}
			written, err := os.ReadFile(temps[0])
			if err != nil {
				t.Fatal(err)
			}
			if e := f.entry("li_bad"); e.Status != "set_aside" {
				t.Errorf("li_bad is %s, want set aside with the file's creation", e.Status)
			}

			f.p.hook = nil
			res := f.mustDrop(cutoff)
			checkDropInvariants(t, f)
			if len(res.Files) != 1 || !res.Files[0].Recovered || res.Files[0].Entries != 9 {
				t.Fatalf("files %+v, want the interrupted one recovered with 7 debits and 2 refunds", res.Files)
			}
			rebuilt, err := os.ReadFile(res.Files[0].Path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rebuilt, written) {
				t.Fatalf("the file rebuilt from its rows differs from the one its creation wrote:\n%s\nvs\n%s", rebuilt, written)
			}
			file := readDropped(t, res.Files[0].Path)
			var credits int
			for _, b := range file.Batches {
				for _, e := range b.GetEntries() {
					if strings.HasPrefix(e.IdentificationNumber, "rev_") &&
						(e.TransactionCode == ach.CheckingCredit || e.TransactionCode == ach.SavingsCredit) {
						credits++
					}
				}
			}
			if credits != 2 {
				t.Errorf("%d refund credits in the file, want 2", credits)
			}
		})
	}
}
