package nacha

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/nacha/nachafile"
)

// Names are transliterated, not stripped; a name that cannot be written is
// refused, never silently replaced by the account's customer name; a
// routing number outside the Federal Reserve ranges is refused.
func TestStagingNamesAndRouting(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	f.stage(payment{lineItem: "nordic", amount: 100, name: "Bjørn Strauß Łukasz"})
	var name string
	if err := env.Pool.QueryRow(f.ctx, `SELECT individual_name FROM nacha_entries WHERE org_id = $1 AND line_item_id = 'nordic'`,
		f.org).Scan(&name); err != nil || name != "Bjorn Strauss Lukasz" {
		t.Errorf("staged name %q, %v", name, err)
	}
	for li, pm := range map[string]payment{
		"emoji":    {name: "😀😀"},
		"cyrillic": {name: "Иван Петров"},
		"routing":  {routing: "500000005"},
	} {
		pm.lineItem, pm.amount = li, 100
		_, err := f.tryStage(pm)
		var pe *processors.Error
		if !errors.As(err, &pe) || pe.Outcome != processors.Permanent || pe.Code != "invalid_ach_details" {
			t.Errorf("%s: %v, want permanent invalid_ach_details", li, err)
		}
	}
	if _, err := f.tryStage(payment{lineItem: "four", amount: 100, number: "1234"}); err != nil {
		t.Fatal(err)
	}
	var last4 string
	if err := env.Pool.QueryRow(f.ctx, `SELECT account_last_four FROM nacha_entries WHERE org_id = $1 AND line_item_id = 'four'`,
		f.org).Scan(&last4); err != nil || last4 != "" {
		t.Errorf("a 4-character account number shows %q as its last four, want nothing", last4)
	}
}

// simulate-return dates its header in the zone of the instant it is given
// (the cutoff zone), as drops do, not in UTC; and it carries the original
// entry's date, which ingestion checks.
func TestSimulatedReturnHeaderZone(t *testing.T) {
	original, err := os.ReadFile("testdata/unbalanced.ach")
	if err != nil {
		t.Fatal(err)
	}
	trace := string(original[95*2+79 : 95*2+94])
	at := ny(t, 2025, 12, 2, 20, 30) // 01:30 UTC on 2025-12-03
	out, err := SimulateReturns(original, map[string]string{trace: "R01"}, at)
	if err != nil {
		t.Fatal(err)
	}
	if header := string(out[:94]); header[23:33] != "2512022030" {
		t.Errorf("header date/time %q, want 2512022030 (New York)", header[23:33])
	}
	items, _, err := nachafile.ParseReturns(out)
	if err != nil || len(items) != 1 || items[0].OriginalEntryDate.Format("060102") != string(original[95+69:95+75]) {
		t.Errorf("items %+v, %v", items, err)
	}
}

// --as-of: never a future date.
func TestAsOfRefusesFutureDates(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	tomorrow := time.Date(2025, 12, 3, 0, 0, 0, 0, time.UTC)
	if _, err := f.p.DropAsOf(f.ctx, tomorrow); !errors.Is(err, ErrFutureDate) {
		t.Errorf("drop as of tomorrow: %v", err)
	}
	if _, err := f.p.SettleAsOf(f.ctx, tomorrow); !errors.Is(err, ErrFutureDate) {
		t.Errorf("settle as of tomorrow: %v", err)
	}
	f.stage(payment{lineItem: "late", amount: 100})
	// Staged today, the entry is due by today's cutoff, not yesterday's.
	res, err := f.drop(ny(t, 2025, 12, 1, 21, 0))
	if err != nil || len(res.Files) != 0 {
		t.Errorf("drop at yesterday's cutoff: %+v %v", res.Files, err)
	}
	if res, err := f.p.DropAsOf(f.ctx, time.Date(2025, 12, 2, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	} else if e := f.entry("late"); e.Status != entryDropped {
		t.Errorf("drop as of today: %+v, entry %+v", res.Files, e)
	}
	if _, err := f.p.SettleAsOf(f.ctx, time.Date(2025, 11, 29, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Errorf("settle as of a past Saturday: %v", err)
	}
}
