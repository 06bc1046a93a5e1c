package nacha

import (
	"context"
	"errors"
	"time"
)

// ScheduleOptions tune RunSchedule.
type ScheduleOptions struct {
	// Every is how often settlement and the inbound directory are
	// looked at, and how soon a failed drop is tried again. Default 1m.
	Every time.Duration
	// InboundDir, when set, is polled for return and NOC files.
	InboundDir string
	// Retain keeps sealed account numbers of finished entries this long
	// before purging them. Default 60 days (the window for unauthorized-
	// debit returns).
	Retain time.Duration
}

// RunSchedule runs the processor's clockwork until ctx ends: a drop at
// every cutoff of the calendar, and every opts.Every the settlement of
// entries whose window passed, the inbound directory and the purge of old
// account numbers. Every worker may run it: the drop's advisory lock lets
// one process drop, and settlement skips rows another process holds.
func (p *Processor) RunSchedule(ctx context.Context, opts ScheduleOptions) error {
	if opts.Every <= 0 {
		opts.Every = time.Minute
	}
	if opts.Retain <= 0 {
		opts.Retain = 60 * 24 * time.Hour
	}
	tick := time.NewTicker(opts.Every)
	defer tick.Stop()
	next := p.cal.NextCutoff(p.clock())
	p.log.Info("NACHA schedule running", "next_cutoff", next, "inbound_dir", opts.InboundDir)
	for {
		wait := time.NewTimer(next.Sub(p.clock()))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-wait.C:
			if p.scheduledDrop(ctx) {
				next = p.cal.NextCutoff(p.clock())
			} else {
				next = p.clock().Add(opts.Every) // try again soon, the cutoff is due
			}
		case <-tick.C:
			wait.Stop()
			p.periodic(ctx, opts)
		}
	}
}

// scheduledDrop runs the cutoff and reports whether it is done (by this
// process or another).
func (p *Processor) scheduledDrop(ctx context.Context) bool {
	res, err := p.Drop(ctx)
	switch {
	case errors.Is(err, ErrDropInProgress):
		p.log.Info("NACHA cutoff is being dropped by another process")
		return true
	case err != nil:
		p.log.Error("NACHA drop failed; trying again", "err", err)
		return false
	}
	for _, f := range res.Files {
		p.log.Info("NACHA file dropped", "file_id", f.FileID, "file_name", f.FileName, "entries", f.Entries,
			"debit_total_cents", f.DebitTotalCents, "credit_total_cents", f.CreditTotalCents)
	}
	return true
}

func (p *Processor) periodic(ctx context.Context, opts ScheduleOptions) {
	if res, err := p.Settle(ctx); err != nil {
		p.log.Error("NACHA settlement failed", "err", err)
	} else if res.Entries > 0 {
		p.log.Info("NACHA entries settled", "entries", res.Entries)
	}
	if opts.InboundDir != "" {
		if _, err := p.PollInbound(ctx, opts.InboundDir); err != nil {
			p.log.Error("NACHA inbound directory", "dir", opts.InboundDir, "err", err)
		}
	}
	if n, err := p.PurgeAccountNumbers(ctx, opts.Retain); err != nil {
		p.log.Error("NACHA account number purge failed", "err", err)
	} else if n > 0 {
		p.log.Info("purged sealed account numbers of finished entries", "entries", n)
	}
}
