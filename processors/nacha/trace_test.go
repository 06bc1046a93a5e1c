package nacha

import (
	"bytes"
	"errors"
	"testing"
)

// The 7-digit trace sequence of an ODFI restarts after 9,999,999 entries,
// so an old entry and a new one can share a trace number (and an amount).
// A return is applied only to the entry whose fields it carries.
func TestTraceWrapReturnMatchesOriginalEntry(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	odfi := f.origin[:8]
	f.stage(payment{lineItem: "old", amount: 500, number: "12345678901"})
	f.setNow(ny(t, 2025, 12, 2, 21, 0))
	f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
	old := f.entry("old")
	if old.Trace != odfi+"0000001" {
		t.Fatalf("old trace %s", old.Trace)
	}
	// The counter at the end of its cycle: the next file restarts at 1.
	if _, err := env.Pool.Exec(f.ctx, `UPDATE nacha_trace_counters SET last_sequence = 9999999 WHERE odfi_identification = $1`, odfi); err != nil {
		t.Fatal(err)
	}
	f.setNow(ny(t, 2025, 12, 3, 10, 0))
	f.stage(payment{lineItem: "new", amount: 500, number: "000123456789"})
	f.setNow(ny(t, 2025, 12, 3, 21, 0))
	f.mustDrop(ny(t, 2025, 12, 3, 21, 0))
	if nw := f.entry("new"); nw.Trace != old.Trace || nw.FileID == old.FileID {
		t.Fatalf("after the wrap: new %+v, old %+v", nw, old)
	}
	var last int64
	if err := env.Pool.QueryRow(f.ctx, `SELECT last_sequence FROM nacha_trace_counters WHERE odfi_identification = $1`, odfi).Scan(&last); err != nil || last != 1 {
		t.Fatalf("counter after the wrap = %d, %v", last, err)
	}

	// A return with the trace and amount of both but the account of
	// neither matches nothing: nothing is applied.
	bogus := buildInbound(t, f.origin, []inbound{{trace: old.Trace, amount: 500, returnCode: "R01", lineItem: "old", account: "99999999"}})
	if _, err := f.p.IngestReturnFile(f.ctx, "bogus.ach", bytes.NewReader(bogus)); !errors.Is(err, ErrUnmatched) {
		t.Fatalf("bogus return: %v", err)
	}
	// The return for the older entry declines the older payment, not the
	// newer one with the same trace number and amount.
	r := buildInbound(t, f.origin, []inbound{{trace: old.Trace, amount: 500, returnCode: "R01", lineItem: "old", account: "12345678901"}})
	rep, err := f.p.IngestReturnFile(f.ctx, "r.ach", bytes.NewReader(r))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Returns) != 1 || rep.Returns[0].LineItemID != "old" {
		t.Fatalf("report %+v", rep)
	}
	if s := f.lineItemStatus("acct_1", "old"); s != "DECLINED" {
		t.Errorf("old is %s, want DECLINED", s)
	}
	if s := f.lineItemStatus("acct_1", "new"); s != "PENDING" {
		t.Errorf("new is %s, want PENDING", s)
	}
	if e := f.entry("new"); e.Status != entryDropped {
		t.Errorf("new entry %+v", e)
	}
}
