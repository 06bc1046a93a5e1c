package nacha

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// removeStaleTemps deletes the temp files (".PAYRAIL_….ach.tmp") a killed
// drop left in the drop directory. It runs under the drop lock, when no
// drop is writing one; a file still building is rebuilt from its rows, so
// its temp file is never needed again.
func (p *Processor) removeStaleTemps() {
	names, err := filepath.Glob(filepath.Join(p.dropDir, ".PAYRAIL_*.ach.tmp"))
	if err != nil {
		return // only a malformed pattern fails
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil && !os.IsNotExist(err) {
			p.log.Warn("could not remove a temp file an interrupted drop left", "path", n, "err", err)
			continue
		}
		p.log.Warn("removed a temp file an interrupted drop left", "path", n,
			"file_name", strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), "."), ".tmp"))
	}
}

// refreshEffectiveDates keeps a file that is finished late from carrying
// an effective entry date that has become impossible. The README's rule
// for entries cut late applies: no effective date before the banking day
// after today (in the cutoff zone). A file still building whose bytes
// never reached the drop directory under their final name gets the
// passed dates of its batches and entries moved to that day, in one
// transaction, before it is built (its bytes stay a function of its rows).
// A file whose final name exists (it may have been picked up) or that was
// already written is never changed: it is finished as it is and the
// passed date is logged; the ACH Operator settles such entries on the next
// settlement day.
func (p *Processor) refreshEffectiveDates(ctx context.Context, rec fileRecord) (fileRecord, error) {
	earliest := p.cal.NextBankingDay(p.cal.DateOf(p.clock()))
	var oldest time.Time
	if err := p.pool.QueryRow(ctx, `SELECT COALESCE(min(effective_entry_date), $2::date) FROM nacha_batches WHERE file_id = $1`,
		rec.FileID, earliest).Scan(&oldest); err != nil {
		return rec, fmt.Errorf("nacha: read effective dates of file %s: %w", rec.FileName, err)
	}
	if !oldest.Before(earliest) {
		return rec, nil
	}
	log := p.log.With("org_id", rec.OrgID, "file_id", rec.FileID, "file_name", rec.FileName,
		"effective_entry_date", oldest.Format(time.DateOnly), "earliest_possible", earliest.Format(time.DateOnly))
	if rec.Status != fileBuilding {
		log.Warn("NACHA file finished after its effective entry date passed; its bytes are already recorded and are not changed")
		return rec, nil
	}
	if _, err := os.Lstat(filepath.Join(p.dropDir, rec.FileName)); err == nil {
		log.Warn("NACHA file finished after its effective entry date passed; it is already in the drop directory " +
			"(it may have been picked up), so it is finished byte for byte")
		return rec, nil
	}
	var batches, entries int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var st string
		if err := tx.QueryRow(ctx, `SELECT status FROM nacha_files WHERE file_id = $1 FOR UPDATE`, rec.FileID).Scan(&st); err != nil {
			return err
		}
		if st != fileBuilding {
			return fmt.Errorf("file %s is %s, no longer building", rec.FileID, st)
		}
		tag, err := tx.Exec(ctx, `UPDATE nacha_batches SET effective_entry_date = $2
			 WHERE file_id = $1 AND effective_entry_date < $2`, rec.FileID, earliest)
		if err != nil {
			return err
		}
		batches = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `UPDATE nacha_entries SET effective_entry_date = $2
			 WHERE file_id = $1 AND status = 'batched' AND effective_entry_date < $2`, rec.FileID, earliest)
		entries = tag.RowsAffected()
		return err
	})
	if err != nil {
		return rec, fmt.Errorf("nacha: move the passed effective dates of file %s: %w", rec.FileName, err)
	}
	log.Warn("NACHA file interrupted past its effective entry date: moved its batches to the earliest possible date",
		"batches", batches, "entries", entries)
	return rec, nil
}
