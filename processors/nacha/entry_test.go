package nacha

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
)

func TestProcessStagesOnceAndAnswersRedeliveries(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 11, 25, 10, 0), fixtureOpts{})
	pm := payment{lineItem: "li_stage_1", amount: 12_345, sec: "WEB", number: "000123456789"}
	res := f.stage(pm)
	want := processors.Result{Outcome: processors.PendingSettlement,
		Instrument: processors.Instrument{Kind: "bank_account", LastFour: "6789"}}
	if res != want {
		t.Fatalf("Process = %+v, want %+v", res, want)
	}
	// A redelivery (even after the clock moved) stages nothing new.
	f.setNow(ny(t, 2025, 11, 26, 10, 0))
	if again := f.stage(pm); again != want {
		t.Fatalf("redelivery = %+v, want %+v", again, want)
	}
	var n int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM nacha_entries WHERE org_id = $1`, f.org).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d entries staged, want 1", n)
	}
	e := f.entry("li_stage_1")
	if e.Status != entryStaged || !e.Effective.Equal(date(2025, 11, 26)) {
		t.Errorf("entry = %+v, want staged for 2025-11-26", e)
	}
	if got := counterValue(t, f.p.metrics.staged); got != 1 {
		t.Errorf("staged metric = %v, want 1", got)
	}
	// The account number is sealed at rest, bound to its row.
	var sealed []byte
	var attempt string
	if err := env.Pool.QueryRow(f.ctx, `SELECT account_number_enc, attempt_id FROM nacha_entries WHERE org_id = $1`,
		f.org).Scan(&sealed, &attempt); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "000123456789") {
		t.Fatal("account number stored in clear")
	}
	if plain, err := env.Ring.Open(sealed, entryContext(f.org, attempt)); err != nil || string(plain) != "000123456789" {
		t.Fatalf("open sealed account number: %q, %v", plain, err)
	}
	if _, err := env.Ring.Open(sealed, entryContext(f.org, "another-attempt")); err == nil {
		t.Fatal("sealed account number opens under another row's context")
	}
}

func TestProcessRejectsWhatCouldNeverDrop(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 11, 25, 10, 0), fixtureOpts{})
	tests := []struct {
		name string
		pm   payment
		code string
	}{
		{"bad check digit", payment{routing: "231380105"}, "invalid_ach_details"},
		{"unknown SEC code", payment{sec: "IAT"}, "invalid_ach_details"},
		{"account number with a space", payment{number: "1234 5678"}, "invalid_ach_details"},
		{"account number too long", payment{number: strings.Repeat("1", 18)}, "invalid_ach_details"},
		{"too large for the NACHA amount field", payment{amount: 10_000_000_000}, "invalid_ach_details"},
		{"bad account type", payment{accountType: "GL"}, "invalid_ach_details"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm := tt.pm
			pm.lineItem = "li_bad_" + string(rune('a'+i))
			if pm.amount == 0 {
				pm.amount = 100
			}
			_, err := f.tryStage(pm)
			var pe *processors.Error
			if !errors.As(err, &pe) || pe.Outcome != processors.Permanent || pe.Code != tt.code {
				t.Fatalf("Process error = %v, want permanent %s", err, tt.code)
			}
			if strings.Contains(err.Error(), pm.number) && pm.number != "" {
				t.Fatalf("error %q repeats the account number", err)
			}
		})
	}
}

func TestValidateDetailsAmounts(t *testing.T) {
	d := processors.ACHDetails{RoutingNumber: "231380104", AccountNumber: "1234", AccountType: "CHECKING",
		StandardEntryClass: "PPD"}
	for _, amount := range []int64{0, -5, 10_000_000_000} {
		if err := validateDetails(amount, d); err == nil {
			t.Errorf("amount %d accepted", amount)
		}
	}
	if err := validateDetails(9_999_999_999, d); err != nil {
		t.Errorf("the largest NACHA amount refused: %v", err)
	}
}

func TestProcessNeedsOrgConfigAndAName(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 11, 25, 10, 0), fixtureOpts{})
	if _, err := env.Pool.Exec(f.ctx, `DELETE FROM org_nacha_configs WHERE org_id = $1`, f.org); err != nil {
		t.Fatal(err)
	}
	_, err := f.tryStage(payment{lineItem: "li_noconfig", amount: 100})
	var pe *processors.Error
	if !errors.As(err, &pe) || pe.Code != "nacha_config_missing" {
		t.Fatalf("without org config: %v, want nacha_config_missing", err)
	}

	g := newFixture(t, ny(t, 2025, 11, 25, 10, 0), fixtureOpts{})
	// No name in the payment: the account's customer name is used,
	// folded to what a NACHA field holds.
	g.ensureAccount("acct_1")
	if _, err := env.Pool.Exec(g.ctx, `UPDATE accounts SET customer_name = 'Zoë Ångström-Núñez' WHERE org_id = $1`, g.org); err != nil {
		t.Fatal(err)
	}
	pm := payment{lineItem: "li_noname", amount: 100, name: " "}
	if _, err := g.tryStage(pm); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := env.Pool.QueryRow(g.ctx, `SELECT individual_name FROM nacha_entries WHERE org_id = $1`, g.org).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if name != "Zoe Angstrom-Nunez" {
		t.Errorf("individual name = %q, want the ASCII-folded customer name", name)
	}
}

func TestNachaText(t *testing.T) {
	tests := map[string]string{
		"José  Núñez":                     "Jose Nunez",
		"  leading and trailing  ":        "leading and trailing",
		"名前 Name":                         "Name",
		"A very long name that overflows": "A very long name that",
		"tab\there":                       "tab here",
	}
	for in, want := range tests {
		if got := nachaText(in, 22); got != want {
			t.Errorf("nachaText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPlannedDateUsesPaymentEffectiveAt(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 11, 25, 22, 0), fixtureOpts{})
	f.stage(payment{lineItem: "li_late", amount: 100})
	f.stage(payment{lineItem: "li_future", amount: 100, effectiveAt: ny(t, 2025, 12, 25, 9, 0)})
	if e := f.entry("li_late"); !e.Effective.Equal(date(2025, 11, 28)) {
		t.Errorf("staged after Tuesday's cutoff: effective %s, want Friday 2025-11-28 (Thanksgiving skipped)",
			e.Effective.Format(time.DateOnly))
	}
	if e := f.entry("li_future"); !e.Effective.Equal(date(2025, 12, 26)) {
		t.Errorf("future-dated on Christmas: effective %s, want 2025-12-26", e.Effective.Format(time.DateOnly))
	}
}
