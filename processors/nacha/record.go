package nacha

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// StepAnnouncedChunk: one chunk of a written file's entries is announced
// (attempts stamped, events written) and committed; the file's
// announcement cursor moved past it. The hook sees it after every chunk.
const StepAnnouncedChunk DropStep = "announced_chunk"

// defaultRecordChunk is how many entries one announcement transaction
// hands to the ledger: large enough that the per-statement cost vanishes,
// small enough that no transaction is held for more than a moment (about
// 2 s at 5,000 on the heavily loaded shared test machine).
const defaultRecordChunk = 5_000

// markWritten records the file durable: one row. Its entries are dropped
// from this commit on, because an entry's dropped state is its file's
// status (written or uploaded), not a column of its own; nothing is
// written per entry here. The ledger hears of the entries afterwards
// (announce), off the path between the cutoff and a durable, uploaded
// file.
func (p *Processor) markWritten(ctx context.Context, rec fileRecord, sum []byte, size int64) error {
	tag, err := p.pool.Exec(ctx, `
		UPDATE nacha_files SET status = 'written', sha256 = $2, size_bytes = $3, written_at = $4, last_error = NULL
		 WHERE file_id = $1 AND status = 'building'`,
		rec.FileID, sum, size, p.clock())
	if err != nil {
		return fmt.Errorf("nacha: record file %s written: %w", rec.FileName, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("nacha: record file %s written: it is no longer building", rec.FileName)
	}
	return nil
}

// announcePending announces every written file whose entries the ledger
// has not all heard of yet, oldest first. The drop runs it after its
// files are written and uploaded; settlement and return processing run
// it first, so a line item's "dropped" event always precedes its
// settlement or return.
func (p *Processor) announcePending(ctx context.Context) error {
	// The ledger reads the entries' own rows: claims are applied first.
	if err := p.materializePending(ctx, "", true); err != nil {
		return err
	}
	rows, err := p.pool.Query(ctx, `
		SELECT file_id FROM nacha_files
		 WHERE announced_at IS NULL AND status IN ('written', 'uploaded')
		 ORDER BY written_at, file_id`)
	if err != nil {
		return fmt.Errorf("nacha: look for files to announce: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("nacha: look for files to announce: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := p.announce(ctx, id); err != nil {
			p.metrics.dropFailures.WithLabelValues("announce").Inc()
			p.log.Error("NACHA file's entries not all announced; the next drop, settlement or return run continues",
				"file_id", id, "err", err)
			p.recordError(id, err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// announceErrorPrefix starts the error an announcement leaves on its
// file's last_error; a later complete announcement clears only that.
const announceErrorPrefix = "nacha: announce the entries of file"

// announce tells the ledger about a written file's entries in chunks, each
// its own transaction: the file row is locked, the chunk after the file's
// announcement cursor (trace order) goes to the ledger, and the cursor
// moves past it in the same transaction. Every entry is therefore told
// once, whatever crashes in between, and concurrent announcers of one file
// take turns; the ledger's own no-op for a repeat is a second guard. The
// last, empty chunk sets announced_at.
func (p *Processor) announce(ctx context.Context, fileID string) error {
	chunk := p.recordChunk
	if chunk <= 0 {
		chunk = defaultRecordChunk
	}
	began := time.Now()
	var longest time.Duration
	var chunks, told int
	var fileName string
	for {
		var done bool
		t0 := time.Now()
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			var cursor string
			var writtenAt time.Time
			var announcedAt *time.Time
			if err := tx.QueryRow(ctx, `
				SELECT file_name, COALESCE(announced_through, ''), written_at, announced_at FROM nacha_files
				 WHERE file_id = $1 AND status IN ('written', 'uploaded') FOR UPDATE`, fileID).Scan(&fileName, &cursor,
				&writtenAt, &announcedAt); err != nil {
				return fmt.Errorf("lock file row: %w", err)
			}
			if announcedAt != nil {
				done = true
				return nil
			}
			rows, err := tx.Query(ctx, `
				SELECT org_id, account_id, line_item_id, attempt_id, trace_number FROM nacha_entries
				 WHERE file_id = $1 AND trace_number > $2 ORDER BY trace_number LIMIT $3`, fileID, cursor, chunk)
			if err != nil {
				return err
			}
			at := writtenAt.UTC()
			entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DroppedEntry, error) {
				d := DroppedEntry{FileID: fileID, FileName: fileName, DroppedAt: at}
				return d, r.Scan(&d.OrgID, &d.AccountID, &d.LineItemID, &d.AttemptID, &d.TraceNumber)
			})
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				done = true
				_, err := tx.Exec(ctx, `
					UPDATE nacha_files SET announced_at = $2,
					       last_error = CASE WHEN last_error LIKE $3 THEN NULL ELSE last_error END
					 WHERE file_id = $1`, fileID, p.clock(), announceErrorPrefix+"%")
				return err
			}
			if err := p.ledger.EntriesDropped(ctx, tx, entries); err != nil {
				return fmt.Errorf("ledger: %w", err)
			}
			told += len(entries)
			_, err = tx.Exec(ctx, `UPDATE nacha_files SET announced_through = $2 WHERE file_id = $1`, fileID,
				entries[len(entries)-1].TraceNumber)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s %s: %w", announceErrorPrefix, fileID, err)
		}
		longest = max(longest, time.Since(t0))
		if done {
			break
		}
		chunks++
		if err := p.step(StepAnnouncedChunk, fileID); err != nil {
			return err
		}
	}
	if told > 0 {
		p.log.Info("NACHA file announced", "file_id", fileID, "file_name", fileName, "entries", told, "chunks", chunks,
			"took", time.Since(began), "longest_transaction", longest)
	}
	return nil
}
