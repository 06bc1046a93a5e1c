package nacha

import (
	"fmt"
	"testing"
	"time"
)

func TestSettlementWindow(t *testing.T) {
	// Dropped Tuesday 2025-12-02 at 21:00, effective Wednesday 12-03:
	// two banking days later is Friday 12-05.
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	f.p.chunk = 3 // cross the chunk boundary with a handful of entries
	for i := 0; i < 7; i++ {
		f.stage(payment{lineItem: fmt.Sprintf("li_%d", i), amount: int64(100 + i)})
	}
	f.setNow(ny(t, 2025, 12, 2, 21, 0))
	f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
	// Staged after the drop, never dropped: never settles.
	f.setNow(ny(t, 2025, 12, 2, 22, 0))
	f.stage(payment{lineItem: "li_staged", amount: 100})

	for _, tc := range []struct {
		now     time.Time
		settled int
	}{
		{ny(t, 2025, 12, 3, 12, 0), 0}, // the effective date itself
		{ny(t, 2025, 12, 4, 23, 59), 0},
		{ny(t, 2025, 12, 5, 0, 1), 7}, // Friday in New York
		{ny(t, 2025, 12, 8, 9, 0), 0}, // nothing left
	} {
		f.setNow(tc.now)
		before := f.settledCount()
		res, err := f.p.Settle(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Settlement covers every org; other tests' dropped entries in the
		// package database may settle too, so count this org's.
		if got := f.settledCount() - before; got != tc.settled || res.Entries < got {
			t.Fatalf("Settle at %s settled %d of this org's entries (%d in all), want %d", tc.now, got, res.Entries, tc.settled)
		}
	}
	for i := 0; i < 7; i++ {
		li := fmt.Sprintf("li_%d", i)
		if s := f.lineItemStatus("acct_1", li); s != "VALID" {
			t.Errorf("%s is %s", li, s)
		}
		if ev := f.events(li); len(ev) != 2 || ev[1] != "settled" {
			t.Errorf("%s events = %v", li, ev)
		}
	}
	if e := f.entry("li_staged"); e.Status != entryStaged {
		t.Errorf("staged entry is %s", e.Status)
	}
	if got := counterValue(t, f.p.metrics.settled); got < 7 {
		t.Errorf("settled metric = %v", got)
	}

	// The account numbers of settled entries can be purged once the
	// return window has passed; the staged one keeps its number.
	f.setNow(ny(t, 2026, 3, 1, 9, 0))
	n, err := f.p.PurgeAccountNumbers(f.ctx, 60*24*time.Hour)
	if err != nil || n < 7 { // other tests' settled entries in the package database count too
		t.Fatalf("purge = %d, %v; want at least this org's 7", n, err)
	}
	var left int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM nacha_entries WHERE org_id = $1 AND account_number_enc IS NOT NULL`,
		f.org).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 1 {
		t.Errorf("%d entries keep an account number, want only the staged one", left)
	}
}

func TestSettlementAcrossThanksgiving(t *testing.T) {
	// Cut Wednesday 2025-11-26 (effective Friday 11-28): Thanksgiving and
	// the weekend push settlement to Tuesday 12-02.
	f := newFixture(t, ny(t, 2025, 11, 26, 10, 0), fixtureOpts{})
	f.stage(payment{lineItem: "li_1", amount: 100})
	f.setNow(ny(t, 2025, 11, 26, 21, 0))
	f.mustDrop(ny(t, 2025, 11, 26, 21, 0))
	for _, tc := range []struct {
		now  time.Time
		want string
	}{
		{ny(t, 2025, 12, 1, 23, 0), "PENDING"},
		{ny(t, 2025, 12, 2, 8, 0), "VALID"},
	} {
		f.setNow(tc.now)
		if _, err := f.p.Settle(f.ctx); err != nil {
			t.Fatal(err)
		}
		if s := f.lineItemStatus("acct_1", "li_1"); s != tc.want {
			t.Fatalf("at %s li_1 is %s, want %s", tc.now, s, tc.want)
		}
	}
}

func (f *fixture) settledCount() int {
	f.t.Helper()
	var n int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM nacha_entries WHERE org_id = $1 AND status = 'settled'`,
		f.org).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}
