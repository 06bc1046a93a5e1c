package nacha

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// setAsideRow is an entry the drop cannot write, and why. Reasons never
// hold account numbers.
type setAsideRow struct {
	EntryID int64
	Reason  string
}

// setAsideEntries takes entries out of the cutoff inside tx: staged ones
// (fileID "") or ones assigned to the building file fileID. Each becomes
// set_aside (no file, no trace), its payment INVALID through the ledger
// (with an event); the rest of the cutoff goes on without them. It returns
// how many entries it set aside; the caller counts them in the metric
// once tx commits.
func (p *Processor) setAsideEntries(ctx context.Context, tx pgx.Tx, fileID string, bad []setAsideRow, now time.Time) (int, error) {
	ids, reasons := make([]int64, len(bad)), make([]string, len(bad))
	for i, b := range bad {
		ids[i], reasons[i] = b.EntryID, b.Reason
	}
	rows, err := tx.Query(ctx, `
		UPDATE nacha_entries e
		   SET status = 'set_aside', file_id = NULL, batch_number = NULL, trace_number = NULL,
		       set_aside_at = $3, set_aside_reason = u.reason
		  FROM unnest($1::bigint[], $2::text[]) AS u(id, reason)
		 WHERE e.entry_id = u.id
		   AND (($4 = '' AND e.status = 'staged') OR (e.file_id = $4 AND e.status = 'batched'))
		RETURNING e.org_id, e.account_id, e.line_item_id, e.attempt_id, e.set_aside_reason`, ids, reasons, now, fileID)
	if err != nil {
		return 0, fmt.Errorf("set entries aside: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SetAsideEntry, error) {
		e := SetAsideEntry{At: now}
		return e, r.Scan(&e.OrgID, &e.AccountID, &e.LineItemID, &e.AttemptID, &e.Reason)
	})
	if err != nil {
		return 0, fmt.Errorf("set entries aside: %w", err)
	}
	if err := p.ledger.EntriesSetAside(ctx, tx, out); err != nil {
		return 0, fmt.Errorf("ledger: set entries aside: %w", err)
	}
	for _, e := range out {
		p.log.Error("ACH entry cannot be written into a NACHA file: set aside, payment INVALID",
			"org_id", e.OrgID, "account_id", e.AccountID, "line_item_id", e.LineItemID, "file_id", fileID,
			"reason", e.Reason)
	}
	return len(out), nil
}

// badEntriesError is a file build that failed because of particular
// entries; finish sets them aside and builds the file again.
type badEntriesError struct {
	FileID  string
	Entries []setAsideRow
}

func (e *badEntriesError) Error() string {
	return fmt.Sprintf("nacha: %d entries of file %s cannot be written (first: entry %d: %s)", len(e.Entries), e.FileID,
		e.Entries[0].EntryID, e.Entries[0].Reason)
}

// removeFromFile sets bad entries of a building file aside and recomputes
// the file's batches and totals from the entries left, in one
// transaction, so the file can be rebuilt without them (the rows still
// decide the bytes). Batches left empty are deleted (batch numbers only
// need to ascend); a file left empty is released. It returns the file row
// as it now is.
func (p *Processor) removeFromFile(ctx context.Context, rec fileRecord, bad []setAsideRow) (fileRecord, error) {
	// The file's membership changes: it moves to its entries' rows first
	// (its claims would no longer describe it).
	if err := p.materialize(ctx, rec.FileID); err != nil {
		return rec, err
	}
	now := p.clock()
	var n int
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, `SELECT status FROM nacha_files WHERE file_id = $1 FOR UPDATE`, rec.FileID).Scan(&status); err != nil {
			return err
		}
		if status != fileBuilding {
			return fmt.Errorf("file %s is %s, not building", rec.FileID, status)
		}
		var err error
		if n, err = p.setAsideEntries(ctx, tx, rec.FileID, bad, now); err != nil {
			return err
		}
		return recomputeFile(ctx, tx, rec.FileID, now)
	})
	if err != nil {
		return rec, fmt.Errorf("nacha: set aside entries of file %s: %w", rec.FileID, err)
	}
	p.metrics.setAside.Add(float64(n))
	return p.loadFile(ctx, nil, rec.FileID)
}

// recomputeFile makes a building file's batch and file rows agree with its
// entries again after some left it.
func recomputeFile(ctx context.Context, tx pgx.Tx, fileID string, now time.Time) error {
	stmts := []string{
		// Debit batches: count and total of their entries.
		`UPDATE nacha_batches b SET entry_count = COALESCE(x.c, 0), debit_total_cents = COALESCE(x.d, 0)
		   FROM nacha_batches b2 LEFT JOIN (
		        SELECT batch_number, count(*)::int AS c, sum(amount_cents)::bigint AS d
		          FROM nacha_entries WHERE file_id = $1 GROUP BY batch_number) x ON x.batch_number = b2.batch_number
		  WHERE b.file_id = $1 AND b2.file_id = $1 AND b2.batch_number = b.batch_number AND NOT b.offset_only`,
		// Offsets: in the batch, or in the offset-only batch right after it.
		`UPDATE nacha_batches b SET credit_total_cents = b.debit_total_cents
		  WHERE b.file_id = $1 AND NOT b.offset_only AND b.credit_total_cents > 0`,
		`UPDATE nacha_batches b SET credit_total_cents = d.debit_total_cents
		   FROM nacha_batches d
		  WHERE b.file_id = $1 AND b.offset_only AND d.file_id = $1 AND d.batch_number = b.batch_number - 1`,
		`DELETE FROM nacha_batches WHERE file_id = $1 AND entry_count = 0 AND NOT offset_only`,
		`DELETE FROM nacha_batches WHERE file_id = $1 AND offset_only AND credit_total_cents = 0`,
		`UPDATE nacha_files f SET batch_count = x.b, entry_count = x.c, debit_total_cents = x.d, credit_total_cents = x.cr
		   FROM (SELECT count(*)::int AS b, COALESCE(sum(entry_count), 0)::int AS c,
		                COALESCE(sum(debit_total_cents), 0)::bigint AS d, COALESCE(sum(credit_total_cents), 0)::bigint AS cr
		           FROM nacha_batches WHERE file_id = $1) x
		  WHERE f.file_id = $1`,
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q, fileID); err != nil {
			return fmt.Errorf("recompute file %s: %w", fileID, err)
		}
	}
	_, err := tx.Exec(ctx, `
		UPDATE nacha_files SET status = 'released', released_at = $2,
		       last_error = 'every entry was set aside; nothing to write'
		 WHERE file_id = $1 AND entry_count = 0`, fileID, now)
	return err
}
