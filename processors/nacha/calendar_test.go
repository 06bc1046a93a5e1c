package nacha

import (
	"testing"
	"time"
)

func date(y int, m time.Month, d int) time.Time { return civil(y, m, d) }

func mustCalendar(t *testing.T, tz string, windows ...string) *Calendar {
	t.Helper()
	c, err := NewCalendar(tz, windows)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBankingDays(t *testing.T) {
	c := mustCalendar(t, "")
	tests := []struct {
		name    string
		day     time.Time
		banking bool
	}{
		{"ordinary Tuesday", date(2025, 11, 25), true},
		{"Thanksgiving", date(2025, 11, 27), false},
		{"Friday after Thanksgiving is a Fed banking day", date(2025, 11, 28), true},
		{"Saturday", date(2025, 11, 29), false},
		{"Sunday", date(2025, 11, 30), false},
		{"Christmas on a Sunday", date(2022, 12, 25), false},
		{"observed Christmas, Monday", date(2022, 12, 26), false},
		{"Christmas on a Saturday: the Fed opens the Friday before", date(2021, 12, 24), true},
		{"New Year on a Saturday: Friday Dec 31 stays open", date(2021, 12, 31), true},
		{"Juneteenth on a Sunday, observed Monday", date(2022, 6, 20), false},
		{"Independence Day on a Tuesday", date(2023, 7, 4), false},
		{"Columbus Day", date(2025, 10, 13), false},
		{"Veterans Day", date(2025, 11, 11), false},
		{"MLK Day", date(2026, 1, 19), false},
		{"Christmas 2025, Thursday", date(2025, 12, 25), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.IsBankingDay(tt.day); got != tt.banking {
				t.Errorf("IsBankingDay(%s) = %v, want %v", tt.day.Format(time.DateOnly), got, tt.banking)
			}
		})
	}
}

func TestNextCutoffAndEffectiveDate(t *testing.T) {
	c := mustCalendar(t, "")
	tests := []struct {
		name      string
		at        time.Time
		cutoff    time.Time
		effective time.Time
	}{
		{"morning of a banking day", ny(t, 2025, 11, 25, 10, 0), ny(t, 2025, 11, 25, 21, 0), date(2025, 11, 26)},
		{"exactly at the window goes to the next one", ny(t, 2025, 11, 25, 21, 0), ny(t, 2025, 11, 26, 21, 0), date(2025, 11, 28)},
		{"eve of Thanksgiving: effective Friday", ny(t, 2025, 11, 26, 12, 0), ny(t, 2025, 11, 26, 21, 0), date(2025, 11, 28)},
		{"after the cutoff before Thanksgiving skips the holiday", ny(t, 2025, 11, 26, 21, 30), ny(t, 2025, 11, 28, 21, 0), date(2025, 12, 1)},
		{"Friday night rolls to Monday", ny(t, 2025, 11, 28, 22, 0), ny(t, 2025, 12, 1, 21, 0), date(2025, 12, 2)},
		{"weekend before an observed Christmas", ny(t, 2022, 12, 24, 9, 0), ny(t, 2022, 12, 27, 21, 0), date(2022, 12, 28)},
		{"Friday before an observed Christmas", ny(t, 2022, 12, 23, 15, 0), ny(t, 2022, 12, 23, 21, 0), date(2022, 12, 27)},
		{"New Year's Eve on a Friday with New Year on Saturday", ny(t, 2021, 12, 31, 8, 0), ny(t, 2021, 12, 31, 21, 0), date(2022, 1, 3)},
		{"across spring-forward DST", ny(t, 2025, 3, 7, 22, 0), ny(t, 2025, 3, 10, 21, 0), date(2025, 3, 11)},
		{"across fall-back DST", ny(t, 2025, 10, 31, 22, 0), ny(t, 2025, 11, 3, 21, 0), date(2025, 11, 4)},
		{"UTC instant after midnight UTC but before the NY cutoff", time.Date(2025, 11, 26, 1, 30, 0, 0, time.UTC),
			ny(t, 2025, 11, 25, 21, 0), date(2025, 11, 26)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.NextCutoff(tt.at)
			if !got.Equal(tt.cutoff) {
				t.Fatalf("NextCutoff(%s) = %s, want %s", tt.at, got.In(c.Location()), tt.cutoff)
			}
			if got.Location() != time.UTC {
				t.Errorf("NextCutoff returned %s, want UTC", got.Location())
			}
			if eff := c.EffectiveEntryDate(got); !eff.Equal(tt.effective) {
				t.Errorf("EffectiveEntryDate = %s, want %s", eff.Format(time.DateOnly), tt.effective.Format(time.DateOnly))
			}
		})
	}
}

func TestMultipleWindowsAndZones(t *testing.T) {
	c := mustCalendar(t, "America/Chicago", "21:00", " 15:30", "15:30")
	if len(c.windows) != 2 {
		t.Fatalf("windows = %v, want two distinct sorted windows", c.windows)
	}
	chi, _ := time.LoadLocation("America/Chicago")
	at := time.Date(2025, 11, 25, 16, 0, 0, 0, chi)
	if got, want := c.NextCutoff(at), time.Date(2025, 11, 25, 21, 0, 0, 0, chi); !got.Equal(want) {
		t.Errorf("NextCutoff = %s, want %s", got, want)
	}
	at = time.Date(2025, 11, 25, 9, 0, 0, 0, chi)
	if got, want := c.NextCutoff(at), time.Date(2025, 11, 25, 15, 30, 0, 0, chi); !got.Equal(want) {
		t.Errorf("NextCutoff = %s, want %s", got, want)
	}
	for _, bad := range [][]string{{"25:00"}, {"9pm"}} {
		if _, err := NewCalendar("", bad); err == nil {
			t.Errorf("NewCalendar(%v) accepted a bad window", bad)
		}
	}
	if _, err := NewCalendar("Mars/Olympus", nil); err == nil {
		t.Error("NewCalendar accepted an unknown zone")
	}
}

func TestPlannedEffectiveDate(t *testing.T) {
	c := mustCalendar(t, "")
	now := ny(t, 2025, 11, 25, 10, 0)
	tests := []struct {
		name        string
		effectiveAt time.Time
		want        time.Time
	}{
		{"no date: next cutoff's", time.Time{}, date(2025, 11, 26)},
		{"today: next cutoff's", now, date(2025, 11, 26)},
		{"a past date never goes back", ny(t, 2025, 11, 20, 10, 0), date(2025, 11, 26)},
		{"a future banking day is kept", ny(t, 2025, 12, 3, 10, 0), date(2025, 12, 3)},
		{"a future holiday moves to the next banking day", ny(t, 2025, 12, 25, 10, 0), date(2025, 12, 26)},
		{"a future Saturday moves to Monday", ny(t, 2025, 12, 6, 10, 0), date(2025, 12, 8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.PlannedEffectiveDate(now, tt.effectiveAt); !got.Equal(tt.want) {
				t.Errorf("PlannedEffectiveDate = %s, want %s", got.Format(time.DateOnly), tt.want.Format(time.DateOnly))
			}
		})
	}
}

func TestSettledBy(t *testing.T) {
	c := mustCalendar(t, "")
	tests := []struct {
		name  string
		today time.Time
		days  int
		want  time.Time
	}{
		{"ordinary week", date(2025, 11, 20), 2, date(2025, 11, 18)},
		{"across Thanksgiving: Wednesday + 2 banking days is Monday", date(2025, 11, 28), 2, date(2025, 11, 25)},
		{"Monday after Thanksgiving week", date(2025, 12, 1), 2, date(2025, 11, 27)},
		{"on a Saturday nothing more settles than on Friday", date(2025, 11, 29), 2, date(2025, 11, 25)},
		{"zero days: effective today", date(2025, 11, 25), 0, date(2025, 11, 25)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.SettledBy(tt.today, tt.days)
			if !got.Equal(tt.want) {
				t.Errorf("SettledBy(%s, %d) = %s, want %s", tt.today.Format(time.DateOnly), tt.days,
					got.Format(time.DateOnly), tt.want.Format(time.DateOnly))
			}
			// The defining property: the next day would not have settled.
			if c.AddBankingDays(got, tt.days).After(tt.today) || !c.AddBankingDays(got.AddDate(0, 0, 1), tt.days).After(tt.today) {
				t.Errorf("SettledBy(%s) = %s is not the latest qualifying date", tt.today.Format(time.DateOnly), got.Format(time.DateOnly))
			}
		})
	}
}
