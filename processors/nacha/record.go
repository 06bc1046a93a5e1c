package nacha

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"time"
)

// StepRecordedChunk: one chunk of the file's entries is recorded dropped
// (entries marked, ledger told) and committed; the file is still building.
// The hook sees it after every chunk.
const StepRecordedChunk DropStep = "recorded_chunk"

// defaultRecordChunk is how many entries one recording transaction marks
// dropped and hands to the ledger: large enough that the per-statement cost
// vanishes, small enough that no transaction is held for more than a
// moment (about 2 s at 5,000 on the heavily loaded shared test machine).
const defaultRecordChunk = 5_000

// markWritten records the file durable and its entries dropped. It runs in
// chunks, each its own transaction: the chunk's entries go batched →
// dropped and the ledger hears of exactly those entries in the same
// transaction, so every entry is told to the ledger once, whatever crashes
// in between. The file stays building until the last chunk; a final
// transaction marks it written only once none of its entries is still
// batched. A drop interrupted mid-way leaves a building file whose
// remaining entries are still batched: the next drop rebuilds the same
// bytes (they depend only on the rows createFile fixed), finds the file
// already on disk identical, and records the rest here.
func (p *Processor) markWritten(ctx context.Context, rec fileRecord, sum []byte, size int64) error {
	now := p.clock()
	chunk := p.recordChunk
	if chunk <= 0 {
		chunk = defaultRecordChunk
	}
	// Keyset on the file index (batch, trace) so every chunk costs the
	// same; a re-run starts over and skips what is already dropped. No
	// row locks (FOR UPDATE writes every row once more): the drop lock
	// keeps other droppers and release-file away, and the UPDATE checks
	// the status again.
	lastBatch, lastTrace := 0, ""
	// Timers for the log: marking entries versus the whole chunk (the
	// rest is the ledger), and the longest chunk transaction.
	began := time.Now()
	var marking, longest time.Duration
	var chunks, recorded int
	for {
		var n int
		t0 := time.Now()
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `
				WITH next AS (
				    SELECT entry_id FROM nacha_entries
				     WHERE file_id = $1 AND (batch_number, trace_number) > ($2, $3) AND status = 'batched'
				     ORDER BY batch_number, trace_number LIMIT $4
				)
				UPDATE nacha_entries e SET status = 'dropped', dropped_at = $5
				  FROM next WHERE e.entry_id = next.entry_id AND e.status = 'batched'
				RETURNING e.org_id, e.account_id, e.line_item_id, e.attempt_id, e.batch_number, e.trace_number`,
				rec.FileID, lastBatch, lastTrace, chunk, now)
			if err != nil {
				return err
			}
			var batch int
			entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DroppedEntry, error) {
				d := DroppedEntry{FileID: rec.FileID, FileName: rec.FileName, DroppedAt: now}
				if err := r.Scan(&d.OrgID, &d.AccountID, &d.LineItemID, &d.AttemptID, &batch, &d.TraceNumber); err != nil {
					return d, err
				}
				if batch > lastBatch || (batch == lastBatch && d.TraceNumber > lastTrace) {
					lastBatch, lastTrace = batch, d.TraceNumber
				}
				return d, nil
			})
			if err != nil {
				return err
			}
			n = len(entries)
			if n == 0 {
				return nil
			}
			marking += time.Since(t0)
			if err := p.ledger.EntriesDropped(ctx, tx, entries); err != nil {
				return fmt.Errorf("ledger: %w", err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("nacha: record file %s written: %w", rec.FileName, err)
		}
		took := time.Since(t0)
		longest = max(longest, took)
		if n == 0 {
			break
		}
		chunks++
		recorded += n
		if err := p.step(StepRecordedChunk, rec.FileID); err != nil {
			return err
		}
	}
	tag, err := p.pool.Exec(ctx, `
		UPDATE nacha_files SET status = 'written', sha256 = $2, size_bytes = $3, written_at = $4, last_error = NULL
		 WHERE file_id = $1 AND status = 'building'
		   AND NOT EXISTS (SELECT 1 FROM nacha_entries WHERE file_id = $1 AND status = 'batched')`,
		rec.FileID, sum, size, now)
	if err != nil {
		return fmt.Errorf("nacha: record file %s written: %w", rec.FileName, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("nacha: record file %s written: it is no longer building, or entries are still batched",
			rec.FileName)
	}
	p.log.Info("NACHA file recorded", "org_id", rec.OrgID, "file_id", rec.FileID, "entries", recorded, "chunks", chunks,
		"took", time.Since(began), "marking_entries_took", marking, "ledger_took", time.Since(began)-marking,
		"longest_transaction", longest)
	return nil
}
