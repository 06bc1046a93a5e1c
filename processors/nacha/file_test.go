package nacha

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moov-io/ach"

	"github.com/payrail/payrail/internal/store"
)

// goldenPayments is one cutoff's worth of payments covering every SEC
// code, both account types, a name that needs folding, a payment dated
// for the future (not due at this cutoff) and one that is due on a later
// banking day than the cutoff's.
func goldenPayments(t testing.TB) []payment {
	return []payment{
		{account: "acct_a", lineItem: "li-web-1", amount: 10_000, sec: "WEB", name: "Jane Doe"},
		{account: "acct_b", lineItem: "li-web-2", amount: 2_550, sec: "WEB", accountType: "SAVINGS",
			routing: "021000021", number: "000123456789", name: "José Núñez"},
		{account: "acct_c", lineItem: "li-ppd-1", amount: 99_999, sec: "PPD", name: "Acme Borrower"},
		{account: "acct_a", lineItem: "li-ppd-2", amount: 1, sec: "PPD", accountType: "SAVINGS", name: "Jane Doe"},
		{account: "acct_d", lineItem: "li-ccd-1", amount: 500_000, sec: "CCD", routing: "011000015",
			number: "55500011122", name: "Widgets LLC"},
		{account: "acct_e", lineItem: "li-tel-1", amount: 4_200, sec: "TEL", name: "Phone Payer"},
		{account: "acct_e", lineItem: "li-web-friday", amount: 7_700, sec: "WEB", name: "Phone Payer",
			effectiveAt: ny(t, 2025, 11, 28, 9, 0)},
		{account: "acct_e", lineItem: "li-web-later", amount: 1_234, sec: "WEB", name: "Phone Payer",
			effectiveAt: ny(t, 2025, 12, 10, 9, 0)},
	}
}

func TestGoldenFiles(t *testing.T) {
	for _, tc := range []struct {
		name        string
		balanced    bool
		origin, dst string
		placement   string
	}{
		{"unbalanced", false, withCheckDigit("09100001"), withCheckDigit("07100001"), ""},
		// The offset in the debit batch (service class 200), as files were
		// before offset placement was an option.
		{"balanced", true, withCheckDigit("09100002"), withCheckDigit("07100002"), OffsetSameBatch},
		// The default: each offset in its own CCD credits-only batch.
		{"balanced_own_batch", true, withCheckDigit("09100003"), withCheckDigit("07100003"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forgetRouting(t, tc.origin, tc.dst)
			// Staged on the Wednesday before Thanksgiving, cut at 21:00.
			f := newFixture(t, ny(t, 2025, 11, 26, 10, 0), fixtureOpts{balanced: tc.balanced, origin: tc.origin,
				destination: tc.dst, placement: tc.placement})
			for _, pm := range goldenPayments(t) {
				f.stage(pm)
			}
			cutoff := ny(t, 2025, 11, 26, 21, 0)
			f.setNow(cutoff)
			res := f.mustDrop(cutoff)
			if len(res.Files) != 1 {
				t.Fatalf("drop made %d files, want 1", len(res.Files))
			}
			sum := res.Files[0]
			if sum.Entries != 7 || sum.DebitTotalCents != 624_450 {
				t.Errorf("summary = %d entries, %d cents; want 7 entries, 624450 cents", sum.Entries, sum.DebitTotalCents)
			}
			wantCredit := int64(0)
			if tc.balanced {
				wantCredit = 624_450
			}
			if sum.CreditTotalCents != wantCredit {
				t.Errorf("credit total = %d, want %d", sum.CreditTotalCents, wantCredit)
			}
			if e := f.entry("li-web-later"); e.Status != entryStaged {
				t.Errorf("a payment dated 2025-12-10 was cut on 2025-11-26: %+v", e)
			}
			got, err := os.ReadFile(sum.Path)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".ach")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\n%s", sum.FileName, golden, lineDiff(string(want), string(got)))
			}

			// Determinism: rebuilding from the rows gives the same bytes,
			// even after the org's configuration changed.
			if _, err := f.store.PutNachaConfig(f.ctx, f.org, store.NachaConfig{
				DestinationBankName: "Other Bank", DestinationRouting: randomRouting(t), OriginBankName: "Other",
				OriginRouting: randomRouting(t), CompanyName: "Renamed Co", CompanyIdentification: "9999999999",
				EntryDescription: "CHANGED"}); err != nil {
				t.Fatal(err)
			}
			rec, err := f.p.loadFile(f.ctx, nil, sum.FileID)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				var buf bytes.Buffer
				if err := f.p.writeFile(f.ctx, rec, &buf); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf.Bytes(), got) {
					t.Fatalf("rebuild %d differs from the dropped file:\n%s", i, lineDiff(string(got), buf.String()))
				}
			}

			roundTrip(t, f, got, sum, tc.balanced)
		})
	}
}

// forgetRouting removes what an earlier run (go test -count=N shares one
// database) left for the golden files' fixed routing numbers: their trace
// counter and their files, so traces restart at 1 and the modifier at A.
func forgetRouting(t *testing.T, origin, destination string) {
	t.Helper()
	ctx := context.Background()
	if _, err := env.Pool.Exec(ctx, `DELETE FROM nacha_trace_counters WHERE odfi_identification = left($1, 8)`, origin); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DELETE FROM nacha_entries WHERE file_id IN (SELECT file_id FROM nacha_files WHERE immediate_destination = $1)`,
		`DELETE FROM nacha_batches WHERE file_id IN (SELECT file_id FROM nacha_files WHERE immediate_destination = $1)`,
		`DELETE FROM nacha_files WHERE immediate_destination = $1`,
	} {
		if _, err := env.Pool.Exec(ctx, q, destination); err != nil {
			t.Fatal(err)
		}
	}
}

// roundTrip reads the dropped file back with moov-io/ach and checks it
// against what PostgreSQL recorded: entries, amounts, trace numbers and
// totals.
func roundTrip(t *testing.T, f *fixture, content []byte, sum FileSummary, balanced bool) {
	t.Helper()
	file, err := ach.NewReader(bytes.NewReader(content)).Read()
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := file.Validate(); err != nil {
		t.Fatalf("validate read-back file: %v", err)
	}
	if file.Header.ImmediateOrigin != f.origin || file.Header.ImmediateDestination != f.destination {
		t.Errorf("header origin/destination = %s/%s", file.Header.ImmediateOrigin, file.Header.ImmediateDestination)
	}
	if file.Header.FileCreationDate != "251126" || file.Header.FileCreationTime != "2100" || file.Header.FileIDModifier != "A" {
		t.Errorf("header date/time/modifier = %s %s %s", file.Header.FileCreationDate, file.Header.FileCreationTime,
			file.Header.FileIDModifier)
	}
	type dbEntry struct {
		amount int64
		line   string
		batch  int
	}
	rows, err := env.Pool.Query(f.ctx, `SELECT trace_number, amount_cents, line_item_id, batch_number FROM nacha_entries WHERE file_id = $1`, sum.FileID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]dbEntry{}
	for rows.Next() {
		var tr string
		var e dbEntry
		if err := rows.Scan(&tr, &e.amount, &e.line, &e.batch); err != nil {
			t.Fatal(err)
		}
		want[tr] = e
	}
	rows.Close()
	var debits, credits int64
	seen := map[string]bool{}
	var offsets int
	for _, b := range file.Batches {
		bh := b.GetHeader()
		for _, e := range b.GetEntries() {
			if seen[e.TraceNumber] {
				t.Errorf("trace %s twice in the file", e.TraceNumber)
			}
			seen[e.TraceNumber] = true
			switch e.TransactionCode {
			case ach.CheckingDebit, ach.SavingsDebit:
				debits += int64(e.Amount)
				w, ok := want[e.TraceNumber]
				if !ok {
					t.Errorf("file entry %s is not recorded in nacha_entries", e.TraceNumber)
					continue
				}
				if int64(e.Amount) != w.amount || bh.BatchNumber != w.batch || strings.TrimSpace(e.IdentificationNumber) != identification(w.line) {
					t.Errorf("entry %s = %d in batch %d (%s), recorded %+v", e.TraceNumber, e.Amount, bh.BatchNumber, e.IdentificationNumber, w)
				}
				if bh.StandardEntryClassCode == ach.WEB && strings.TrimSpace(e.DiscretionaryData) != "S" {
					t.Errorf("WEB entry %s payment type %q, want S", e.TraceNumber, e.DiscretionaryData)
				}
				delete(want, e.TraceNumber)
			case ach.CheckingCredit, ach.SavingsCredit:
				credits += int64(e.Amount)
				offsets++
				if !balanced {
					t.Errorf("credit %s in an unbalanced file", e.TraceNumber)
				}
				if strings.TrimSpace(e.DFIAccountNumber) != "9988776655" {
					t.Errorf("offset credit to the wrong account")
				}
			default:
				t.Errorf("unexpected transaction code %d", e.TransactionCode)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("recorded entries missing from the file: %v", want)
	}
	if debits != sum.DebitTotalCents || credits != sum.CreditTotalCents {
		t.Errorf("file totals %d/%d, recorded %d/%d", debits, credits, sum.DebitTotalCents, sum.CreditTotalCents)
	}
	if int64(file.Control.TotalDebitEntryDollarAmountInFile) != debits || int64(file.Control.TotalCreditEntryDollarAmountInFile) != credits {
		t.Errorf("file control totals disagree with the entries")
	}
	if balanced && credits != debits {
		t.Errorf("balanced file: credits %d != debits %d", credits, debits)
	}
}

// lineDiff shows the first differing lines of two NACHA files.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + "\n  want " + wl + "\n  got  " + gl + "\n")
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.String()
}
