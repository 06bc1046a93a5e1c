package nacha

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// FileInfo is a NACHA file row as operators see it (payrail nacha files).
type FileInfo struct {
	FileID           string     `json:"file_id"`
	OrgID            string     `json:"org_id"`
	Status           string     `json:"status"` // building, written, uploaded, released
	FileName         string     `json:"file_name"`
	Path             string     `json:"path"`
	CutoffAt         time.Time  `json:"cutoff_at"`
	CreatedAt        time.Time  `json:"created_at"`
	Entries          int        `json:"entries"`
	Batches          int        `json:"batches"`
	DebitTotalCents  int64      `json:"debit_total_cents"`
	CreditTotalCents int64      `json:"credit_total_cents"`
	Balanced         bool       `json:"is_balanced"`
	OffsetPlacement  string     `json:"offset_placement,omitempty"`
	SHA256           string     `json:"sha256,omitempty"`
	SizeBytes        int64      `json:"size_bytes,omitempty"`
	WrittenAt        *time.Time `json:"written_at,omitempty"`
	// Upload: "not_required", "pending" or "uploaded".
	Upload     string     `json:"upload"`
	UploadedAt *time.Time `json:"uploaded_at,omitempty"`
	RemotePath string     `json:"remote_path,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
}

// FileQuery selects files for ListFiles.
type FileQuery struct {
	// Status, when set, keeps files of that status only.
	Status string
	// Since, when set, keeps files created at or after it.
	Since time.Time
	// Limit caps the list; <= 0 means 100.
	Limit int
}

// Files lists NACHA files, newest first, optionally only those of one
// status; limit <= 0 means 100.
func (p *Processor) Files(ctx context.Context, status string, limit int) ([]FileInfo, error) {
	return p.ListFiles(ctx, FileQuery{Status: status, Limit: limit})
}

// ListFiles lists the NACHA files q selects, newest first.
func (p *Processor) ListFiles(ctx context.Context, q FileQuery) ([]FileInfo, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	var since *time.Time
	if !q.Since.IsZero() {
		since = &q.Since
	}
	rows, err := p.pool.Query(ctx, `SELECT `+fileColumns+` FROM nacha_files
		 WHERE ($1 = '' OR status = $1) AND ($3::timestamptz IS NULL OR created_at >= $3)
		 ORDER BY created_at DESC, file_id DESC LIMIT $2`, q.Status, q.Limit, since)
	if err != nil {
		return nil, fmt.Errorf("nacha: list files: %w", err)
	}
	defer rows.Close()
	out := []FileInfo{}
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, fmt.Errorf("nacha: list files: %w", err)
		}
		out = append(out, fileInfo(f, p.dropDir))
	}
	return out, rows.Err()
}

func fileInfo(f fileRecord, dir string) FileInfo {
	i := FileInfo{FileID: f.FileID, OrgID: f.OrgID, Status: f.Status, FileName: f.FileName,
		Path: filepath.Join(dir, f.FileName), CutoffAt: f.CutoffAt, CreatedAt: f.CreatedAt, Entries: f.EntryCount,
		Batches: f.BatchCount, DebitTotalCents: f.DebitTotal, CreditTotalCents: f.CreditTotal, Balanced: f.Balanced,
		SHA256: hex.EncodeToString(f.SHA256), SizeBytes: f.Size, WrittenAt: f.WrittenAt, UploadedAt: f.UploadedAt,
		RemotePath: f.RemotePath, LastError: f.LastError, Upload: uploadState(f)}
	if f.Balanced {
		i.OffsetPlacement = f.OffsetPlacement
	}
	return i
}

// ErrNotBuilding: only a file still building can be released.
var ErrNotBuilding = errors.New("nacha: the file is not building")

// ReleaseFile is the way out for a file stuck in building (a bug, a
// change of limits, anything a drop cannot repair): it gives the file's
// entries back to the cutoff (status staged, no file, batch or trace) and
// marks the file released, in one transaction, under the drop lock so no
// drop is writing it meanwhile. The next drop cuts the entries into a new
// file with new trace numbers. A file whose final name already exists in
// the drop directory is never released (it may have been picked up; an
// operator must decide), and its temp file is removed.
func (p *Processor) ReleaseFile(ctx context.Context, fileID string) (FileInfo, error) {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return FileInfo{}, fmt.Errorf("nacha: acquire connection for the drop lock: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, dropLockKey).Scan(&locked); err != nil {
		return FileInfo{}, fmt.Errorf("nacha: take the drop lock: %w", err)
	}
	if !locked {
		return FileInfo{}, ErrDropInProgress
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, dropLockKey); uerr != nil {
			_ = conn.Conn().Close(uctx)
		}
	}()
	rec, err := p.loadFile(ctx, nil, fileID)
	if err != nil {
		return FileInfo{}, err
	}
	if rec.Status != fileBuilding {
		return fileInfo(rec, p.dropDir), fmt.Errorf("%w: %s is %s", ErrNotBuilding, fileID, rec.Status)
	}
	// Its entries go back to staged from their rows: apply its claims first.
	if err := p.materialize(ctx, fileID); err != nil {
		return fileInfo(rec, p.dropDir), err
	}
	if p.dropDir != "" {
		final := filepath.Join(p.dropDir, rec.FileName)
		if _, err := os.Lstat(final); err == nil {
			return fileInfo(rec, p.dropDir), fmt.Errorf("nacha: %s exists in the drop directory: it may have been "+
				"picked up; move it away only if you know it was not, then release again", final)
		}
	}
	now := p.clock()
	var released int64
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE nacha_files SET status = 'released', released_at = $2,
			       last_error = COALESCE(last_error || '; ', '') || 'released by an operator'
			 WHERE file_id = $1 AND status = 'building'`, fileID, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("%w: %s", ErrNotBuilding, fileID)
		}
		// Nothing of a building file has reached the ledger: a file is
		// announced only once it is written, and a written file is never
		// released.
		tag, err = tx.Exec(ctx, `
			UPDATE nacha_entries SET status = 'staged', file_id = NULL, batch_number = NULL, trace_number = NULL
			 WHERE file_id = $1 AND status = 'batched'`, fileID)
		released = tag.RowsAffected()
		return err
	})
	if err != nil {
		return fileInfo(rec, p.dropDir), fmt.Errorf("nacha: release file %s: %w", fileID, err)
	}
	if p.dropDir != "" {
		_ = os.Remove(filepath.Join(p.dropDir, "."+rec.FileName+".tmp"))
	}
	p.log.Warn("NACHA file released: its entries are staged again for the next drop", "file_id", fileID,
		"org_id", rec.OrgID, "entries", released)
	rec, err = p.loadFile(ctx, nil, fileID)
	return fileInfo(rec, p.dropDir), err
}
