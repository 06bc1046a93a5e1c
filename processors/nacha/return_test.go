package nacha

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moov-io/ach"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// inbound is one entry of a return or NOC file a test builds.
type inbound struct {
	trace      string // the original entry's trace number
	amount     int64
	sec        string
	returnCode string // R01 …; empty for a NOC
	changeCode string // C01 …
	corrected  string
	// What the return carries of the original entry; empty: read from
	// the most recent entry with the trace number, as a real RDFI copies
	// them from the entry it returns.
	lineItem, account string
}

// original fills in what an RDFI copies from the original entry.
func original(t testing.TB, it inbound) inbound {
	t.Helper()
	if it.lineItem != "" && it.account != "" {
		return it
	}
	var org, li, attempt string
	var sealed []byte
	err := env.Pool.QueryRow(context.Background(), `
		SELECT org_id, line_item_id, attempt_id, account_number_enc FROM nacha_entries
		 WHERE trace_number = $1 ORDER BY entry_id DESC LIMIT 1`, it.trace).Scan(&org, &li, &attempt, &sealed)
	if err != nil {
		if it.account == "" {
			it.account = "12345678901"
		}
		return it
	}
	if it.lineItem == "" {
		it.lineItem = li
	}
	if it.account == "" && sealed != nil {
		plain, err := env.Ring.Open(sealed, entryContext(org, attempt))
		if err != nil {
			t.Fatal(err)
		}
		it.account = string(plain)
	}
	return it
}

const rdfi = "231380104"

// buildInbound writes a return/NOC file the way an RDFI would send it,
// with moov-io/ach under strict validation.
func buildInbound(t testing.TB, origin string, items []inbound) []byte {
	t.Helper()
	fh := ach.NewFileHeader()
	fh.ImmediateDestination = origin
	fh.ImmediateOrigin = rdfi
	fh.FileCreationDate = "251210"
	fh.FileCreationTime = "0600"
	fh.FileIDModifier = "A"
	fh.ImmediateDestinationName = "Payrail Test Bank"
	fh.ImmediateOriginName = "Receiving Bank"
	file := ach.NewFile()
	file.SetHeader(fh)
	batches := map[string]ach.Batcher{}
	var order []string
	for i, it := range items {
		it = original(t, it)
		sec := it.sec
		if it.changeCode != "" {
			sec = ach.COR
		}
		if sec == "" {
			sec = ach.WEB
		}
		b, ok := batches[sec]
		if !ok {
			bh := ach.NewBatchHeader()
			bh.ServiceClassCode = ach.MixedDebitsAndCredits
			bh.StandardEntryClassCode = sec
			bh.CompanyName = "Payrail Lending"
			bh.CompanyIdentification = "1234567890"
			bh.CompanyEntryDescription = "LOAN PMT"
			bh.EffectiveEntryDate = "251210"
			bh.ODFIIdentification = rdfi[:8]
			var err error
			if b, err = ach.NewBatch(bh); err != nil {
				t.Fatal(err)
			}
			batches[sec] = b
			order = append(order, sec)
		}
		e := ach.NewEntryDetail()
		e.TransactionCode = ach.CheckingReturnNOCDebit
		e.SetRDFI(origin)
		e.DFIAccountNumber = it.account
		e.IdentificationNumber = identification(it.lineItem)
		e.Amount = int(it.amount)
		e.IndividualName = "Jane Doe"
		e.SetTraceNumber(rdfi[:8], i+1)
		e.AddendaRecordIndicator = 1
		if it.changeCode != "" {
			a := ach.NewAddenda98()
			a.ChangeCode = it.changeCode
			a.OriginalTrace = it.trace
			a.OriginalDFI = rdfi[:8]
			a.CorrectedData = it.corrected
			a.TraceNumber = e.TraceNumber
			e.Addenda98 = a
			e.Category = ach.CategoryNOC
		} else {
			if sec == ach.WEB {
				e.DiscretionaryData = "S"
			}
			a := ach.NewAddenda99()
			a.ReturnCode = it.returnCode
			a.OriginalTrace = it.trace
			a.OriginalDFI = rdfi[:8]
			a.TraceNumber = e.TraceNumber
			e.Addenda99 = a
			e.Category = ach.CategoryReturn
		}
		b.AddEntry(e)
	}
	for _, sec := range order {
		if err := batches[sec].Create(); err != nil {
			t.Fatalf("build %s batch: %v", sec, err)
		}
		file.AddBatch(batches[sec])
	}
	if err := file.Create(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ach.NewWriter(&buf).Write(file); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// droppedFixture stages the payments and drops them at 21:00 on
// 2025-12-02 (effective 2025-12-03).
func droppedFixture(t *testing.T, pms ...payment) *fixture {
	t.Helper()
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	for _, pm := range pms {
		f.stage(pm)
	}
	f.setNow(ny(t, 2025, 12, 2, 21, 0))
	f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
	return f
}

func TestReturnBeforeSettlementDeclines(t *testing.T) {
	f := droppedFixture(t, payment{lineItem: "li_a", amount: 1500}, payment{lineItem: "li_b", amount: 2500})
	a := f.entry("li_a")
	content := buildInbound(t, f.origin, []inbound{{trace: a.Trace, amount: 1500, returnCode: "R01"}})
	f.setNow(ny(t, 2025, 12, 4, 6, 0))
	rep, err := f.p.IngestReturnFile(f.ctx, "returns-1.ach", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Applied || len(rep.Returns) != 1 || rep.Returns[0].Outcome != "declined" ||
		rep.Returns[0].ReturnReason != "Insufficient Funds" || rep.Returns[0].LineItemID != "li_a" {
		t.Fatalf("report = %+v", rep)
	}
	if s := f.lineItemStatus("acct_1", "li_a"); s != "DECLINED" {
		t.Errorf("li_a is %s, want DECLINED", s)
	}
	if s := f.lineItemStatus("acct_1", "li_b"); s != "PENDING" {
		t.Errorf("li_b is %s, want PENDING", s)
	}
	var code, reason string
	if err := env.Pool.QueryRow(f.ctx, `SELECT return_code, return_reason FROM nacha_entries WHERE org_id = $1 AND line_item_id = 'li_a'`,
		f.org).Scan(&code, &reason); err != nil {
		t.Fatal(err)
	}
	if code != "R01" || reason != "Insufficient Funds" {
		t.Errorf("recorded return %s %q", code, reason)
	}
	if ev := f.events("li_a"); strings.Join(ev, ",") != "dropped,returned" {
		t.Errorf("events = %v", ev)
	}
	if got := counterValue(t, f.p.metrics.returned.WithLabelValues("R01", "declined")); got != 1 {
		t.Errorf("returned metric = %v", got)
	}

	// The same file again is a duplicate and applies nothing.
	rep, err = f.p.IngestReturnFile(f.ctx, "returns-1-again.ach", bytes.NewReader(content))
	if err != nil || !rep.Duplicate || rep.Applied {
		t.Fatalf("second ingest = %+v, %v", rep, err)
	}
	if ev := f.events("li_a"); len(ev) != 2 {
		t.Errorf("events after the duplicate = %v", ev)
	}

	// The settlement run never settles a returned entry.
	f.setNow(ny(t, 2025, 12, 10, 12, 0))
	if _, err := f.p.Settle(f.ctx); err != nil {
		t.Fatal(err)
	}
	if s := f.lineItemStatus("acct_1", "li_a"); s != "DECLINED" {
		t.Errorf("li_a is %s after settlement", s)
	}
	if s := f.lineItemStatus("acct_1", "li_b"); s != "VALID" {
		t.Errorf("li_b is %s after settlement, want VALID", s)
	}
}

func TestReturnAfterSettlementCreatesReversal(t *testing.T) {
	f := droppedFixture(t, payment{lineItem: "li_a", amount: 1500, sec: "PPD"})
	f.setNow(ny(t, 2025, 12, 5, 12, 0))
	if res, err := f.p.Settle(f.ctx); err != nil || res.Entries < 1 {
		t.Fatalf("settle = %+v, %v", res, err)
	}
	if s := f.lineItemStatus("acct_1", "li_a"); s != "VALID" {
		t.Fatalf("li_a is %s, want VALID", s)
	}
	a := f.entry("li_a")
	content := buildInbound(t, f.origin, []inbound{{trace: a.Trace, amount: 1500, sec: "PPD", returnCode: "R10"}})
	rep, err := f.p.IngestReturnFile(f.ctx, "late-return.ach", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Returns) != 1 || rep.Returns[0].Outcome != "reversed" || rep.Returns[0].ReversalLineItemID == "" {
		t.Fatalf("report = %+v", rep)
	}
	rev := rep.Returns[0].ReversalLineItemID
	var typ, status, related string
	var amount int64
	if err := env.Pool.QueryRow(f.ctx, `
		SELECT line_item_type, status, related_line_item_id, original_amount_cents FROM line_items
		 WHERE org_id = $1 AND account_id = 'acct_1' AND line_item_id = $2`, f.org, rev).Scan(&typ, &status, &related, &amount); err != nil {
		t.Fatal(err)
	}
	if typ != "PAYMENT_REVERSAL" || status != "VALID" || related != "li_a" || amount != 1500 {
		t.Errorf("reversal = %s %s related %s amount %d", typ, status, related, amount)
	}
	if s := f.lineItemStatus("acct_1", "li_a"); s != "VALID" {
		t.Errorf("original is %s; it stays VALID", s)
	}
	if e := f.entry("li_a"); e.Status != entryReturned {
		t.Errorf("entry is %s", e.Status)
	}
}

func TestNOCsCorrectStoredBankDetails(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	config := func(account, routing, number string) {
		f.ensureAccount(account)
		if _, err := f.store.PutProcessorConfig(f.ctx, f.org, account, store.ProcessorConfig{
			ACH: store.ACHConfig{Processor: processors.CanopyNACHA, RoutingNumber: routing, AccountNumber: number,
				AccountType: "CHECKING"}, Debit: store.DebitConfig{Processor: processors.NoProcessor}}); err != nil {
			t.Fatal(err)
		}
	}
	config("acct_c01", "231380104", "12345678901")
	config("acct_c02", "231380104", "12345678901")
	config("acct_c03", "231380104", "12345678901")
	config("acct_guest", "231380104", "999999999")
	for _, pm := range []payment{
		{account: "acct_c01", lineItem: "li_c01", amount: 100},
		{account: "acct_c02", lineItem: "li_c02", amount: 100},
		{account: "acct_c03", lineItem: "li_c03", amount: 100},
		// A guest payment from another bank account: its NOC must not
		// touch the account's stored configuration.
		{account: "acct_guest", lineItem: "li_guest", amount: 100},
		{account: "acct_c05", lineItem: "li_c05", amount: 100},
	} {
		f.stage(pm)
	}
	f.setNow(ny(t, 2025, 12, 2, 21, 0))
	f.mustDrop(ny(t, 2025, 12, 2, 21, 0))

	content := buildInbound(t, f.origin, []inbound{
		{trace: f.entry("li_c01").Trace, changeCode: "C01", corrected: "55500011122"},
		{trace: f.entry("li_c02").Trace, changeCode: "C02", corrected: "021000021"},
		{trace: f.entry("li_c03").Trace, changeCode: "C03", corrected: "011000015   55500011122"},
		{trace: f.entry("li_guest").Trace, changeCode: "C01", corrected: "55500011122"},
		{trace: f.entry("li_c05").Trace, changeCode: "C05", corrected: "32"},
	})
	rep, err := f.p.IngestReturnFile(f.ctx, "nocs.ach", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	applied := map[string]bool{}
	for _, n := range rep.NOCs {
		applied[n.LineItemID] = n.Applied
	}
	want := map[string]bool{"li_c01": true, "li_c02": true, "li_c03": true, "li_guest": false, "li_c05": false}
	for li, w := range want {
		if applied[li] != w {
			t.Errorf("NOC for %s applied = %v, want %v", li, applied[li], w)
		}
	}
	check := func(account, routing, last4 string) {
		t.Helper()
		a, err := f.store.Account(f.ctx, f.org, account)
		if err != nil {
			t.Fatal(err)
		}
		if a.Processors.ACH.RoutingNumber != routing || a.Processors.ACH.LastFour != last4 {
			t.Errorf("%s config = %s …%s, want %s …%s", account, a.Processors.ACH.RoutingNumber,
				a.Processors.ACH.LastFour, routing, last4)
		}
	}
	check("acct_c01", "231380104", "1122")
	check("acct_c02", "021000021", "8901")
	check("acct_c03", "011000015", "1122")
	check("acct_guest", "231380104", "9999")
	// Line items are untouched by NOCs.
	if s := f.lineItemStatus("acct_c01", "li_c01"); s != "PENDING" {
		t.Errorf("li_c01 is %s", s)
	}
	// Recorded without the corrected account numbers.
	rows, err := env.Pool.Query(f.ctx, `
		SELECT n.change_code, n.corrected_data, COALESCE(n.corrected_account_last_four, ''), n.applied
		  FROM nacha_notifications_of_change n JOIN nacha_entries e USING (entry_id) WHERE e.org_id = $1`, f.org)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var count int
	for rows.Next() {
		var code, data, last4 string
		var ok bool
		if err := rows.Scan(&code, &data, &last4, &ok); err != nil {
			t.Fatal(err)
		}
		count++
		if strings.Contains(data, "55500011122") {
			t.Errorf("NOC %s stored a full account number", code)
		}
	}
	if count != 5 {
		t.Errorf("%d NOCs recorded, want 5", count)
	}
}

func TestUnmatchedReturnFileAppliesNothing(t *testing.T) {
	f := droppedFixture(t, payment{lineItem: "li_a", amount: 1500}, payment{lineItem: "li_b", amount: 900})
	a, b := f.entry("li_a"), f.entry("li_b")
	for name, items := range map[string][]inbound{
		"unknown trace": {{trace: a.Trace, amount: 1500, returnCode: "R01"}, {trace: "999999990000001", amount: 1, returnCode: "R02"}},
		// A matching trace with another amount is not this entry.
		"amount mismatch": {{trace: a.Trace, amount: 1500, returnCode: "R01"}, {trace: b.Trace, amount: 901, returnCode: "R03"}},
	} {
		t.Run(name, func(t *testing.T) {
			rep, err := f.p.IngestReturnFile(f.ctx, "unmatched.ach", bytes.NewReader(buildInbound(t, f.origin, items)))
			if !errors.Is(err, ErrUnmatched) || len(rep.Unmatched) != 1 || rep.Applied || len(rep.Returns) != 0 {
				t.Fatalf("ingest = %+v, %v; want ErrUnmatched with one trace", rep, err)
			}
			if s := f.lineItemStatus("acct_1", "li_a"); s != "PENDING" {
				t.Errorf("li_a is %s: a rejected file applied its matched entry", s)
			}
			if e := f.entry("li_a"); e.Status != entryDropped {
				t.Errorf("entry li_a is %s", e.Status)
			}
		})
	}
	var n int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM nacha_inbound_files WHERE file_name = 'unmatched.ach'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("a rejected file was recorded as ingested")
	}
}

func TestMalformedReturnFilesApplyNothing(t *testing.T) {
	f := droppedFixture(t, payment{lineItem: "li_a", amount: 1500})
	a := f.entry("li_a")
	good := buildInbound(t, f.origin, []inbound{{trace: a.Trace, amount: 1500, returnCode: "R01"}})
	lines := strings.Split(strings.TrimRight(string(good), "\n"), "\n")
	var withoutControl []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "9") {
			withoutControl = append(withoutControl, l)
		}
	}
	badTotals := strings.Replace(string(good), lines[len(lines)-1], "", 1)
	own, err := os.ReadFile(filepath.Join(f.dir, mustGlob(t, f.dir)))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		content string
		kind    error
	}{
		"garbage":               {"this is not a NACHA file\n", ErrMalformedFile},
		"empty":                 {"", ErrMalformedFile},
		"missing file control":  {strings.Join(withoutControl, "\n") + "\n", ErrMalformedFile},
		"truncated":             {string(good[:len(good)/2]), ErrMalformedFile},
		"tampered amount":       {strings.Replace(badTotals, "0000001500", "0000001600", 1), ErrMalformedFile},
		"forward entries only":  {string(own), ErrUnsupportedEntry},
		"account number in bad": {strings.Replace(string(good), "12345678901", "1234567890\x01", 1), ErrMalformedFile},
	} {
		t.Run(name, func(t *testing.T) {
			rep, err := f.p.IngestReturnFile(f.ctx, name, strings.NewReader(tc.content))
			if !errors.Is(err, tc.kind) {
				t.Fatalf("ingest = %v, want %v", err, tc.kind)
			}
			if rep.Applied || len(rep.Problems) == 0 {
				t.Errorf("report = %+v; want problems and nothing applied", rep)
			}
			for _, p := range rep.Problems {
				if strings.Contains(p, "12345678901") || strings.Contains(p, "1234567890\x01") {
					t.Errorf("problem %q repeats an account number", p)
				}
			}
			if strings.Contains(err.Error(), "12345678901") {
				t.Errorf("error %q repeats an account number", err)
			}
		})
	}
	if s := f.lineItemStatus("acct_1", "li_a"); s != "PENDING" {
		t.Errorf("li_a is %s after malformed files", s)
	}
}

func mustGlob(t *testing.T, dir string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.ach"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no dropped file in %s", dir)
	}
	return filepath.Base(names[0])
}

func TestPollInboundMovesFilesAside(t *testing.T) {
	f := droppedFixture(t, payment{lineItem: "li_a", amount: 1500}, payment{lineItem: "li_b", amount: 900})
	in := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(in, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	write("01-return.ach", buildInbound(t, f.origin, []inbound{{trace: f.entry("li_a").Trace, amount: 1500, returnCode: "R02"}}))
	write("02-garbage.ach", []byte("nonsense"))
	write("03-return.ach.part", []byte("still downloading"))
	write(".04-hidden.ach", []byte("being written"))

	reports, err := f.p.PollInbound(f.ctx, in)
	if !errors.Is(err, ErrMalformedFile) {
		t.Fatalf("poll error = %v, want the malformed file reported", err)
	}
	if len(reports) != 2 || !reports[0].Applied || reports[1].Applied {
		t.Fatalf("reports = %+v", reports)
	}
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(in, p)); return err == nil }
	for _, p := range []string{"processed/01-return.ach", "rejected/02-garbage.ach", "rejected/02-garbage.ach.error.txt",
		"03-return.ach.part", ".04-hidden.ach"} {
		if !exists(p) {
			t.Errorf("%s missing after the poll", p)
		}
	}
	for _, p := range []string{"01-return.ach", "02-garbage.ach"} {
		if exists(p) {
			t.Errorf("%s left in the inbound directory", p)
		}
	}
	if s := f.lineItemStatus("acct_1", "li_a"); s != "DECLINED" {
		t.Errorf("li_a is %s", s)
	}
	// A second poll finds nothing new to do.
	reports, err = f.p.PollInbound(f.ctx, in)
	if err != nil || len(reports) != 0 {
		t.Fatalf("second poll = %+v, %v", reports, err)
	}
	// The same file arriving again under another name is a duplicate,
	// applied nothing, and is moved to processed.
	write("05-return-again.ach", buildInbound(t, f.origin, []inbound{{trace: f.entry("li_a").Trace, amount: 1500, returnCode: "R02"}}))
	reports, err = f.p.PollInbound(f.ctx, in)
	if err != nil || len(reports) != 1 || !reports[0].Duplicate {
		t.Fatalf("duplicate poll = %+v, %v", reports, err)
	}
	if !exists("processed/05-return-again.ach") {
		t.Error("duplicate not moved aside")
	}
}
