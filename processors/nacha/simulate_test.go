package nacha

import (
	"bytes"
	"os"
	"testing"
)

// A simulated return of a dropped file's entry is ingested like a bank's:
// the payment it names is declined.
func TestSimulatedReturnIsIngested(t *testing.T) {
	f := droppedFixture(t, payment{lineItem: "li_x", amount: 1234}, payment{lineItem: "li_y", amount: 5678})
	e := f.entry("li_x")
	var path string
	if err := env.Pool.QueryRow(f.ctx, `SELECT file_name FROM nacha_files WHERE org_id = $1`, f.org).Scan(&path); err != nil {
		t.Fatal(err)
	}
	original, err := os.ReadFile(f.dir + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SimulateReturns(original, map[string]string{"999999999999999": "R01"}, f.clock.Load().Add(0)); err == nil {
		t.Error("a trace number the file lacks was accepted")
	}
	content, err := SimulateReturns(original, map[string]string{e.Trace: "R03"}, *f.clock.Load())
	if err != nil {
		t.Fatal(err)
	}
	f.setNow(ny(t, 2025, 12, 4, 6, 0))
	rep, err := f.p.IngestReturnFile(f.ctx, "simulated.ach", bytes.NewReader(content))
	if err != nil || !rep.Applied || len(rep.Returns) != 1 || rep.Returns[0].LineItemID != "li_x" {
		t.Fatalf("ingest: %+v, %v", rep, err)
	}
	if s := f.lineItemStatus("acct_1", "li_x"); s != "DECLINED" {
		t.Errorf("li_x is %s, want DECLINED", s)
	}
	if s := f.lineItemStatus("acct_1", "li_y"); s != "PENDING" {
		t.Errorf("li_y is %s, want PENDING", s)
	}
}
