package nacha

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrFutureDate: --as-of may name today or a past date, never a future one.
var ErrFutureDate = errors.New("nacha: the as-of date is in the future")

// lastCutoffOn is the last cutoff window on the civil date d (in the
// calendar's zone), or an error when d is not a banking day.
func (c *Calendar) lastCutoffOn(d time.Time) (time.Time, error) {
	d = civil(d.Year(), d.Month(), d.Day())
	if !c.IsBankingDay(d) {
		return time.Time{}, fmt.Errorf("nacha: %s is not a banking day: it has no cutoff", d.Format(time.DateOnly))
	}
	var last time.Time
	for _, w := range c.windows {
		if at := c.at(d, w); at.After(last) {
			last = at
		}
	}
	return last.UTC(), nil
}

// checkAsOf refuses a date after today in the calendar's zone.
func (p *Processor) checkAsOf(d time.Time) error {
	today := p.cal.DateOf(p.clock())
	if civil(d.Year(), d.Month(), d.Day()).After(today) {
		return fmt.Errorf("%w: %s is after today (%s, %s)", ErrFutureDate, d.Format(time.DateOnly),
			today.Format(time.DateOnly), p.cal.Location())
	}
	return nil
}

// DropAsOf runs the last cutoff of the banking day asOf (a civil date in
// the cutoff zone; today or earlier), e.g. to catch up a cutoff that was
// missed: entries due by that cutoff are cut. The file's creation date
// and time are still the drop's clock, and no effective date is in the
// past (createFile moves them to the next banking day at the earliest).
func (p *Processor) DropAsOf(ctx context.Context, asOf time.Time) (DropResult, error) {
	if err := p.checkAsOf(asOf); err != nil {
		return DropResult{}, err
	}
	cutoff, err := p.cal.lastCutoffOn(asOf)
	if err != nil {
		return DropResult{}, err
	}
	return p.DropAt(ctx, cutoff)
}

// SettleAsOf settles as if today were asOf (a civil date in the cutoff
// zone; today or earlier): entries whose settlement window had passed by
// then.
func (p *Processor) SettleAsOf(ctx context.Context, asOf time.Time) (SettleResult, error) {
	if err := p.checkAsOf(asOf); err != nil {
		return SettleResult{}, err
	}
	return p.settleBy(ctx, civil(asOf.Year(), asOf.Month(), asOf.Day()))
}
