package nacha

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SettleResult is what one settlement run did.
type SettleResult struct {
	// SettledBy is the latest effective entry date whose window passed.
	SettledBy time.Time `json:"settled_by"`
	Entries   int       `json:"entries"`
}

// Settle moves every dropped entry (in a written or uploaded file) whose settlement window (SettlementDays
// banking days after its effective entry date, default 2) has passed
// without a return to settled, and its line item to VALID. It works in
// chunks, each one transaction with its ledger changes, so a run over a
// large cutoff neither holds one huge transaction nor loses progress when
// interrupted; a return applied concurrently wins (the row is locked and
// no longer batched).
func (p *Processor) Settle(ctx context.Context) (SettleResult, error) {
	return p.settleBy(ctx, p.cal.DateOf(p.clock()))
}

// settleBy settles as of the civil date today.
func (p *Processor) settleBy(ctx context.Context, today time.Time) (SettleResult, error) {
	now := p.clock()
	by := p.cal.SettledBy(today, p.settlementDays)
	res := SettleResult{SettledBy: by}
	// A line item's "dropped" event comes before its settlement: files
	// whose entries are not all announced are announced first, and their
	// entries are left alone if that fails.
	if err := p.announcePending(ctx); err != nil {
		p.log.Warn("settling without the entries of files not yet announced", "err", err)
	}
	// Keyset over (effective date, entry id) so each chunk starts where
	// the last ended instead of rescanning what was just settled.
	var after settleKey
	for {
		n, next, err := p.settleChunk(ctx, by, now, after)
		if err != nil {
			return res, err
		}
		res.Entries += n
		if n == 0 {
			break
		}
		after = next
	}
	if res.Entries > 0 {
		p.log.Info("ACH entries settled", "entries", res.Entries, "effective_on_or_before", by.Format(time.DateOnly))
	}
	return res, nil
}

// settleKey is a position in (effective entry date, entry id) order.
type settleKey struct {
	date time.Time
	id   int64
}

func (p *Processor) settleChunk(ctx context.Context, by, now time.Time, after settleKey) (int, settleKey, error) {
	var n int
	var next settleKey
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// Rows a concurrent return holds are skipped (SKIP LOCKED) and
		// looked at again by the next run.
		rows, err := tx.Query(ctx, `
			WITH c AS (
			    SELECT e.entry_id FROM nacha_entries e
			      JOIN nacha_files nf ON nf.file_id = e.file_id
			     WHERE e.status = 'batched' AND e.effective_entry_date <= $1
			       AND (e.effective_entry_date, e.entry_id) > ($4::date, $5::bigint)
			       AND nf.status IN ('written', 'uploaded') AND nf.announced_at IS NOT NULL
			     ORDER BY e.effective_entry_date, e.entry_id LIMIT $3 FOR UPDATE OF e SKIP LOCKED
			)
			UPDATE nacha_entries e SET status = 'settled', settled_at = $2 FROM c WHERE e.entry_id = c.entry_id
			RETURNING e.org_id, e.account_id, e.line_item_id, e.attempt_id, e.file_id, e.trace_number,
			          e.effective_entry_date, e.entry_id`, by, now, p.chunk, after.date, after.id)
		if err != nil {
			return err
		}
		entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SettledEntry, error) {
			s := SettledEntry{SettledAt: now}
			var k settleKey
			if err := r.Scan(&s.OrgID, &s.AccountID, &s.LineItemID, &s.AttemptID, &s.FileID, &s.TraceNumber,
				&k.date, &k.id); err != nil {
				return s, err
			}
			if k.date.After(next.date) || (k.date.Equal(next.date) && k.id > next.id) {
				next = k
			}
			return s, nil
		})
		if err != nil {
			return err
		}
		n = len(entries)
		if n == 0 {
			return nil
		}
		if err := p.ledger.EntriesSettled(ctx, tx, entries); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, next, fmt.Errorf("nacha: settle entries effective on or before %s: %w", by.Format(time.DateOnly), err)
	}
	p.metrics.settled.Add(float64(n))
	return n, next, nil
}

// PurgeAccountNumbers forgets the sealed account numbers of entries that
// settled or were returned more than retain ago (docs/processors.md: bank account
// numbers can be purged after the return window; 60 days covers
// unauthorized-debit returns). Their files are final, so nothing needs the
// numbers again; the last four stay.
func (p *Processor) PurgeAccountNumbers(ctx context.Context, retain time.Duration) (int64, error) {
	before := p.clock().Add(-retain)
	tag, err := p.pool.Exec(ctx, `
		UPDATE nacha_entries SET account_number_enc = NULL, purged_at = $2
		 WHERE account_number_enc IS NOT NULL
		   AND ((status = 'settled' AND settled_at < $1) OR (status = 'returned' AND returned_at < $1))`,
		before, p.clock())
	if err != nil {
		return 0, fmt.Errorf("nacha: purge account numbers: %w", err)
	}
	return tag.RowsAffected(), nil
}
