package nacha

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
	forEachPlacement(t, func(t *testing.T, f *fixture, _ string) {
		f.stageWebAndCCD()
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

// The due entries are decoded from raw row values, in whichever wire
// format the pool's query mode brings them: binary (the default statement
// cache) or text (simple protocol, as behind some poolers). Both decode to
// the same entry.
func TestDecodeDueBothWireFormats(t *testing.T) {
	bin := func(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }
	day := time.Date(2025, 12, 8, 0, 0, 0, 0, time.UTC)
	days := int32(day.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).Hours() / 24)
	text := func(s string) []byte { return []byte(s) }
	common := func(id, date, amount, sealed, credit []byte) [][]byte {
		return [][]byte{id, text("li_1"), text("att_1"), text("PPD"), date, amount, text("231380104"),
			text("Jane Doe"), text("SAVINGS"), sealed, text("S"), credit, text("settled")}
	}
	b, tx := int16(pgx.BinaryFormatCode), int16(pgx.TextFormatCode)
	for _, tc := range []struct {
		name    string
		raw     [][]byte
		formats []int16
	}{
		{"binary", common(bin(42), binary.BigEndian.AppendUint32(nil, uint32(days)), bin(1999), []byte{1, 2, 0xff}, []byte{1}),
			[]int16{b, tx, tx, tx, b, b, tx, tx, tx, b, tx, b, tx}},
		{"text", common(text("42"), text("2025-12-08"), text("1999"), text(`\x0102ff`), text("t")),
			[]int16{tx, tx, tx, tx, tx, tx, tx, tx, tx, tx, tx, tx, tx}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d dueEntry
			var e entryRecord
			attempt, sealed, original, err := decodeDue(tc.raw, tc.formats, &d, &e)
			if err != nil {
				t.Fatal(err)
			}
			want := dueEntry{ID: 42, SEC: "PPD", Effective: day, Amount: 1999, RDFI: "231380104", Name: "Jane Doe",
				AccountType: "SAVINGS", Credit: true}
			if d != want || e.LineItemID != "li_1" || e.PayType != "S" || string(attempt) != "att_1" ||
				!bytes.Equal(sealed, []byte{1, 2, 0xff}) || string(original) != "settled" {
				t.Fatalf("decoded %+v %+v %q %x %q", d, e, attempt, sealed, original)
			}
		})
	}
	var d dueEntry
	var e entryRecord
	bad := common(bin(1), []byte{0, 1}, bin(1), nil, []byte{0})
	if _, _, _, err := decodeDue(bad, []int16{b, tx, tx, tx, b, b, tx, tx, tx, b, tx, b, tx}, &d, &e); err == nil {
		t.Error("a 2-byte date decoded")
	}
}

// A drop through a pool in the simple protocol (text results, as a
// database URL with default_query_exec_mode=simple_protocol asks) writes
// the same file as one through the default pool.
func TestDropOverSimpleProtocol(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(env.Pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	files := map[string][]byte{}
	for _, mode := range []string{"default", "simple"} {
		f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{balanced: true, org: "org_wire_" + mode,
			origin: "091000051", destination: "071000013", mutate: func(c *Config) {
				if mode == "simple" {
					c.Pool = pool
				}
			}})
		f.stage(payment{lineItem: "li_a", amount: 1500, sec: ach.WEB})
		f.stage(payment{lineItem: "li_b", amount: 2500, sec: ach.CCD, accountType: "SAVINGS", number: "000123456789"})
		f.setNow(ny(t, 2025, 12, 2, 21, 0))
		// Both files take the same trace numbers (the ODFI's counter is
		// shared; this origin is this test's alone).
		if _, err := env.Pool.Exec(f.ctx, `DELETE FROM nacha_trace_counters WHERE odfi_identification = '09100005'`); err != nil {
			t.Fatal(err)
		}
		res := f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
		if len(res.Files) != 1 || res.Files[0].Entries != 2 {
			t.Fatalf("%s: files %+v", mode, res.Files)
		}
		readDropped(t, res.Files[0].Path)
		content, err := os.ReadFile(res.Files[0].Path)
		if err != nil {
			t.Fatal(err)
		}
		files[mode] = content
	}
	d, s := strings.Split(string(files["default"]), "\n"), strings.Split(string(files["simple"]), "\n")
	if len(d) != len(s) {
		t.Fatalf("%d lines over the default protocol, %d over the simple one", len(d), len(s))
	}
	for i := 1; i < len(d); i++ { // the file header's modifier may differ
		if d[i] != s[i] {
			t.Errorf("line %d: %q over the default protocol, %q over the simple one", i+1, d[i], s[i])
		}
	}
}
