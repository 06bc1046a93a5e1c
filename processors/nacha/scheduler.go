package nacha

import (
	"context"
	"errors"
	"time"
)

// ScheduleOptions tune RunSchedule.
type ScheduleOptions struct {
	// Every is how often settlement and the inbound directory are
	// looked at, and how often the schedule looks for interrupted files
	// and missed cutoffs (so how soon a failed drop is tried again).
	// Default 1m.
	Every time.Duration
	// InboundDir, when set, is polled for return and NOC files.
	InboundDir string
	// Retain keeps sealed account numbers of finished entries this long
	// before purging them. Default 60 days (the window for unauthorized-
	// debit returns).
	Retain time.Duration
	// Grace is how long after a cutoff the schedule still runs it when it
	// was missed (no scheduler running at its instant, or its drop failed
	// or was killed). Zero, the default, means until the end of the
	// cutoff's day in the cutoff zone (midnight), and never past the next
	// cutoff window, which takes the entries anyway.
	Grace time.Duration
}

// RunSchedule runs the processor's clockwork until ctx ends: a drop at
// every cutoff of the calendar, and every opts.Every the settlement of
// entries whose window passed, the inbound directory and the purge of old
// account numbers. Every worker may run it: the drop's advisory lock lets
// one process drop, and settlement skips rows another process holds.
//
// At start and on every tick it also catches up (catchUp): a file an
// interrupted drop left building or awaiting its upload is finished, a
// missed cutoff is run within opts.Grace, and a cutoff missed past it is
// reported (ERROR log, payrail_nacha_cutoffs_missed_total,
// payrail_nacha_overdue_entries) while its entries wait for the next one.
func (p *Processor) RunSchedule(ctx context.Context, opts ScheduleOptions) error {
	if opts.Every <= 0 {
		opts.Every = time.Minute
	}
	if opts.Retain <= 0 {
		opts.Retain = 60 * 24 * time.Hour
	}
	tick := time.NewTicker(opts.Every)
	defer tick.Stop()
	c := &catchUpState{opts: opts}
	p.catchUp(ctx, c)
	next := p.cal.NextCutoff(p.clock())
	p.log.Info("NACHA schedule running", "next_cutoff", next, "inbound_dir", opts.InboundDir)
	for {
		wait := time.NewTimer(next.Sub(p.clock()))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-wait.C:
			// The cutoff is the instant it was scheduled for, whatever the
			// clock says now: entries staged after it wait for the next.
			// A failed drop is retried by the tick's catch-up, for this
			// same cutoff.
			p.scheduledDrop(ctx, next)
			now := p.clock()
			if now.Before(next) {
				now = next
			}
			next = p.cal.NextCutoff(now)
		case <-tick.C:
			wait.Stop()
			p.catchUp(ctx, c)
			p.periodic(ctx, opts)
		}
	}
}

// scheduledDrop runs the cutoff at its instant and reports whether it is
// done (by this process or another).
func (p *Processor) scheduledDrop(ctx context.Context, cutoff time.Time) bool {
	res, err := p.DropAt(ctx, cutoff)
	p.logDrop("NACHA cutoff", cutoff, res, err)
	return err == nil || errors.Is(err, ErrDropInProgress)
}

func (p *Processor) logDrop(what string, cutoff time.Time, res DropResult, err error) {
	for _, f := range res.Files {
		if f.Error != "" {
			continue // logged by the step that failed
		}
		p.log.Info("NACHA file dropped", "file_id", f.FileID, "file_name", f.FileName, "status", f.Status,
			"entries", f.Entries, "debit_total_cents", f.DebitTotalCents, "credit_total_cents", f.CreditTotalCents,
			"recovered", f.Recovered, "file_cutoff_at", f.CutoffAt)
	}
	switch {
	case errors.Is(err, ErrDropInProgress):
		p.log.Info(what+" is being dropped by another process", "cutoff_at", cutoff)
	case err != nil:
		p.log.Error(what+" failed; the schedule tries it again", "cutoff_at", cutoff, "err", err)
	}
}

// catchUpState is the scheduler's memory of what it reported.
type catchUpState struct {
	opts ScheduleOptions
	// reported is the last missed cutoff reported, so each is counted once.
	reported time.Time
}

// catchUp finishes interrupted files and runs or reports a missed cutoff.
// A cutoff is missed when entries due at it (staged before its instant,
// planned on or before its effective date) are still staged after it:
// nobody ran it, or its drop failed. Within the grace it is run (DropAt at
// its own instant, so nothing accepted after it comes along; effective
// dates that passed are moved forward by createFile and
// refreshEffectiveDates). Past the grace it is reported and its entries go
// out with the next cutoff, with recomputed effective dates; an operator
// can send them sooner with payrail nacha drop.
// unfinishedFiles selects the files a drop left to finish: still building,
// awaiting their upload, with claims not applied to their entries' rows,
// or with entries the ledger has not heard of.
const unfinishedFiles = `status = 'building' OR (status = 'written' AND upload_required)
	OR (status <> 'released' AND materialized_at IS NULL)
	OR (announced_at IS NULL AND status IN ('written', 'uploaded'))`

func (p *Processor) catchUp(ctx context.Context, c *catchUpState) {
	now := p.clock()
	last := p.cal.PreviousCutoff(now)
	horizon := p.cal.EffectiveEntryDate(last)
	var unfinished, overdue int
	var oldest *time.Time
	err := p.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM nacha_files WHERE `+unfinishedFiles+`),
		       count(*), min(staged_at)
		  FROM nacha_entries e WHERE status = 'staged' AND staged_at < $1 AND effective_entry_date <= $2
		   -- entries a file claims are staged until it is materialized
		   AND NOT EXISTS (SELECT 1 FROM nacha_files nf WHERE nf.org_id = e.org_id AND nf.materialized_at IS NULL
		                      AND nf.status <> 'released')`,
		last, horizon).Scan(&unfinished, &overdue, &oldest)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Error("NACHA catch-up: cannot look for interrupted files and missed cutoffs", "err", err)
		}
		return
	}
	p.metrics.unfinishedFiles.Set(float64(unfinished))
	p.metrics.overdueEntries.Set(float64(overdue))
	if unfinished == 0 && overdue == 0 {
		return
	}
	if overdue > 0 && p.withinGrace(last, now, c.opts.Grace) {
		p.log.Warn("NACHA cutoff missed or unfinished: running it now", "cutoff_at", last, "overdue_entries", overdue,
			"unfinished_files", unfinished)
		res, err := p.DropAt(ctx, last)
		p.logDrop("NACHA catch-up of the cutoff", last, res, err)
		if err == nil {
			p.metrics.cutoffsCaughtUp.Inc()
		}
		return
	}
	if unfinished > 0 {
		res, err := p.Recover(ctx)
		p.logDrop("NACHA recovery of interrupted files", last, res, err)
		var left int
		if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM nacha_files WHERE `+unfinishedFiles).Scan(&left); err == nil {
			p.metrics.unfinishedFiles.Set(float64(left))
		}
	}
	if overdue > 0 && !c.reported.Equal(last) {
		c.reported = last
		p.metrics.cutoffsMissed.Inc()
		p.log.Error("NACHA cutoff MISSED past its catch-up grace: its entries are still staged and go out with the next "+
			"cutoff (run `payrail nacha drop` to send them now)", "cutoff_at", last, "overdue_entries", overdue,
			"oldest_staged_at", oldest, "next_cutoff", p.cal.NextCutoff(now))
	}
}

// withinGrace says whether a cutoff missed at last may still be run at now.
func (p *Processor) withinGrace(last, now time.Time, grace time.Duration) bool {
	if !now.Before(p.cal.NextCutoff(last)) {
		return false
	}
	if grace > 0 {
		return now.Sub(last) <= grace
	}
	return p.cal.DateOf(now).Equal(p.cal.DateOf(last))
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
