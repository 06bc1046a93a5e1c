package nacha

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moov-io/base"
)

// Calendar knows when files are cut and which days are banking days. It
// holds the cutoff windows of one ODFI in its time zone; banking days are
// the Federal Reserve's (weekends and FRB holidays skipped, a Sunday holiday
// observed on Monday, a Saturday holiday not observed on Friday), as
// moov-io/base computes them.
//
// Dates are civil dates carried as time.Time at UTC midnight, which is how
// pgx reads and writes a PostgreSQL date.
type Calendar struct {
	loc     *time.Location
	windows []time.Duration // offsets from local midnight, ascending
}

// DefaultTimezone and DefaultWindows are the cutoff of docs/processors.md.
const DefaultTimezone = "America/New_York"

// DefaultWindows is one cutoff at 21:00.
var DefaultWindows = []string{"21:00"}

// NewCalendar builds a calendar from an IANA time zone and "HH:MM" windows.
// An empty zone or window list takes the default.
func NewCalendar(timezone string, windows []string) (*Calendar, error) {
	if timezone == "" {
		timezone = DefaultTimezone
	}
	if len(windows) == 0 {
		windows = DefaultWindows
	}
	loc, err := time.LoadLocation(timezone)
	if err != nil {
		return nil, fmt.Errorf("nacha: cutoff time zone %q: %w", timezone, err)
	}
	c := &Calendar{loc: loc}
	for _, w := range windows {
		t, err := time.Parse("15:04", strings.TrimSpace(w))
		if err != nil {
			return nil, fmt.Errorf("nacha: cutoff window %q is not HH:MM: %w", w, err)
		}
		d := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
		if !slices.Contains(c.windows, d) {
			c.windows = append(c.windows, d)
		}
	}
	slices.Sort(c.windows)
	return c, nil
}

// Location is the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// DateOf returns the civil date of instant t in the calendar's zone.
func (c *Calendar) DateOf(t time.Time) time.Time {
	l := t.In(c.loc)
	return civil(l.Year(), l.Month(), l.Day())
}

// IsBankingDay reports whether the civil date d is a Federal Reserve
// banking day.
func (c *Calendar) IsBankingDay(d time.Time) bool {
	// Noon keeps the check on the intended day whatever zone moov-io/base
	// looks at the value in.
	return base.NewTime(time.Date(d.Year(), d.Month(), d.Day(), 12, 0, 0, 0, time.UTC)).IsBankingDay()
}

// NextBankingDay returns the first banking day strictly after d.
func (c *Calendar) NextBankingDay(d time.Time) time.Time {
	return c.AddBankingDays(d, 1)
}

// OnOrAfterBankingDay returns d if it is a banking day, else the next one.
func (c *Calendar) OnOrAfterBankingDay(d time.Time) time.Time {
	d = civil(d.Year(), d.Month(), d.Day())
	for !c.IsBankingDay(d) {
		d = d.AddDate(0, 0, 1)
	}
	return d
}

// AddBankingDays returns the n-th banking day after d (n ≥ 0; 0 is d).
func (c *Calendar) AddBankingDays(d time.Time, n int) time.Time {
	d = civil(d.Year(), d.Month(), d.Day())
	for n > 0 {
		d = d.AddDate(0, 0, 1)
		if c.IsBankingDay(d) {
			n--
		}
	}
	return d
}

// NextCutoff returns the first cutoff window strictly after t on a banking
// day. A job staged exactly at a window belongs to the next one, like a
// file queued at achgateway's cutoff instant.
func (c *Calendar) NextCutoff(t time.Time) time.Time {
	day := c.DateOf(t)
	// A year of calendar days always holds a banking day; the bound only
	// guards against a misconfigured calendar looping forever.
	for i := 0; i < 366; i++ {
		if c.IsBankingDay(day) {
			for _, w := range c.windows {
				at := c.at(day, w)
				if at.After(t) {
					return at.UTC()
				}
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	panic("nacha: no banking day within a year") // unreachable with the FRB calendar
}

// PreviousCutoff returns the last cutoff window at or before t on a
// banking day: the cutoff a scheduler that was not running at t's moment
// may have missed.
func (c *Calendar) PreviousCutoff(t time.Time) time.Time {
	day := c.DateOf(t)
	for i := 0; i < 366; i++ {
		if c.IsBankingDay(day) {
			for j := len(c.windows) - 1; j >= 0; j-- {
				if at := c.at(day, c.windows[j]); !at.After(t) {
					return at.UTC()
				}
			}
		}
		day = day.AddDate(0, 0, -1)
	}
	panic("nacha: no banking day within a year") // unreachable with the FRB calendar
}

// EffectiveEntryDate is the date entries cut at the given cutoff settle on:
// the next banking day after the cutoff's local date (standard, not
// same-day, ACH).
func (c *Calendar) EffectiveEntryDate(cutoff time.Time) time.Time {
	return c.NextBankingDay(c.DateOf(cutoff))
}

// PlannedEffectiveDate is the effective entry date for a payment accepted
// at now that should take effect at effectiveAt: the next cutoff's date,
// or the payment's own date (moved to a banking day) when that is later.
func (c *Calendar) PlannedEffectiveDate(now, effectiveAt time.Time) time.Time {
	earliest := c.EffectiveEntryDate(c.NextCutoff(now))
	if effectiveAt.IsZero() {
		return earliest
	}
	wanted := c.OnOrAfterBankingDay(c.DateOf(effectiveAt))
	if wanted.After(earliest) {
		return wanted
	}
	return earliest
}

// SettledBy returns the latest effective entry date whose settlement
// window of n banking days has passed on the civil date today: an entry
// with effective date e settles on AddBankingDays(e, n).
func (c *Calendar) SettledBy(today time.Time, n int) time.Time {
	today = civil(today.Year(), today.Month(), today.Day())
	e := today
	// AddBankingDays is monotonic in e, so walking back finds the latest
	// date that qualifies; n banking days never span more than a few
	// weeks of calendar days.
	for c.AddBankingDays(e, n).After(today) {
		e = e.AddDate(0, 0, -1)
	}
	return e
}

func (c *Calendar) at(day time.Time, offset time.Duration) time.Time {
	h := int(offset / time.Hour)
	m := int((offset % time.Hour) / time.Minute)
	return time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, c.loc)
}

func civil(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
