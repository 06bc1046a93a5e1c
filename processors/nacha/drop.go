package nacha

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// DropStep names a point between the steps of a drop. The state recorded
// in PostgreSQL after each step is enough for the next run to finish the
// file, which is what the crash tests inject failures at.
type DropStep string

// Drop steps, in order.
const (
	// StepCreated: the file row, its batches and its claims exist.
	StepCreated DropStep = "created"
	// StepTempWritten: the bytes are in a fsynced temp file.
	StepTempWritten DropStep = "temp_written"
	// StepRenamed: the file has its final name and the directory is fsynced.
	StepRenamed DropStep = "renamed"
	// StepWritten: PostgreSQL records the file written, which makes its
	// entries dropped; the ledger has not heard of them yet (announce).
	StepWritten DropStep = "written"
	// StepUploaded: the SFTP copy is verified, not yet recorded.
	StepUploaded DropStep = "uploaded"
)

// dropLockKey is the PostgreSQL advisory lock every dropper takes
// (an arbitrary constant: "payrail nacha drop").
const dropLockKey int64 = 0x7061_7972_6e64_7270

// DropResult is what one drop did.
type DropResult struct {
	CutoffAt time.Time     `json:"cutoff_at"`
	Files    []FileSummary `json:"files"`
}

// FileSummary describes one NACHA file a drop wrote, finished or tried to:
// a file whose step failed is listed too, in the state it reached, with
// the error (Error).
type FileSummary struct {
	FileID   string `json:"file_id"`
	OrgID    string `json:"org_id"`
	FileName string `json:"file_name"`
	Path     string `json:"path"`
	Status   string `json:"status"`
	// Upload: "not_required", "pending" or "uploaded".
	Upload           string    `json:"upload"`
	CutoffAt         time.Time `json:"cutoff_at"`
	Entries          int       `json:"entries"`
	Batches          int       `json:"batches"`
	DebitTotalCents  int64     `json:"debit_total_cents"`
	CreditTotalCents int64     `json:"credit_total_cents"`
	SHA256           string    `json:"sha256"`
	SizeBytes        int64     `json:"size_bytes"`
	CreatedAt        time.Time `json:"created_at"`
	WrittenAt        time.Time `json:"written_at"`
	RemotePath       string    `json:"remote_path,omitempty"`
	// Recovered: the file was created by an earlier, interrupted drop.
	Recovered bool `json:"recovered"`
	// Error: the step that failed for this file (it stays in Status and
	// the next run retries it).
	Error string `json:"error,omitempty"`
}

// Drop runs one cutoff now: it finishes any file an earlier drop left
// unfinished, then cuts one file per org from the entries due by this
// cutoff, writes each durably into the drop directory and, when SFTP is
// configured, uploads and verifies it. Only one process drops at a time
// (ErrDropInProgress otherwise). A run that finds nothing due does
// nothing. Errors of one org do not stop the others; they are joined.
func (p *Processor) Drop(ctx context.Context) (DropResult, error) {
	return p.DropAt(ctx, p.clock())
}

// DropAt runs the cutoff at cutoffAt: entries staged before cutoffAt and
// planned for the effective date of the first cutoff window at or after
// cutoffAt are due. An entry staged at or after cutoffAt belongs to the
// next cutoff, so running a cutoff again (a retry, a catch-up) never takes
// payments accepted after it.
func (p *Processor) DropAt(ctx context.Context, cutoffAt time.Time) (res DropResult, err error) {
	return p.run(ctx, cutoffAt, true)
}

// Recover finishes what interrupted drops left behind — files still
// building or written and awaiting their upload, temp files in the drop
// directory — without cutting anything new. The scheduler runs it at
// start and whenever it finds unfinished files outside a cutoff's grace.
func (p *Processor) Recover(ctx context.Context) (DropResult, error) {
	return p.run(ctx, p.clock(), false)
}

func (p *Processor) run(ctx context.Context, cutoffAt time.Time, cut bool) (res DropResult, err error) {
	res.CutoffAt = cutoffAt.UTC()
	if p.dropDir == "" {
		return res, errors.New("nacha: no drop directory configured")
	}
	if err := os.MkdirAll(p.dropDir, 0o750); err != nil {
		return res, fmt.Errorf("nacha: create drop directory: %w", err)
	}
	start := time.Now()
	defer func() { p.metrics.dropDuration.Observe(time.Since(start).Seconds()) }()

	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("nacha: acquire connection for the drop lock: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, dropLockKey).Scan(&locked); err != nil {
		return res, fmt.Errorf("nacha: take the drop lock: %w", err)
	}
	if !locked {
		return res, ErrDropInProgress
	}
	defer func() {
		// A fresh context: the lock must go even when ctx was cancelled.
		// If the unlock fails the connection is closed instead, which
		// releases a session lock just as well.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, dropLockKey); uerr != nil {
			_ = conn.Conn().Close(uctx)
		}
	}()

	// Under the lock no one else is writing into the drop directory: a
	// temp file there is what a killed drop left.
	p.removeStaleTemps()

	var errs []error
	// First finish what an interrupted drop left behind: its entries are
	// already claimed by those files and by no other.
	rows, err := p.pool.Query(ctx, `
		SELECT file_id FROM nacha_files
		 WHERE status = 'building' OR (status = 'written' AND upload_required)
		 ORDER BY created_at, file_id`)
	if err != nil {
		return res, fmt.Errorf("nacha: look for unfinished files: %w", err)
	}
	unfinished, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return res, fmt.Errorf("nacha: look for unfinished files: %w", err)
	}
	for _, id := range unfinished {
		rec, err := p.loadFile(ctx, nil, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.log.Warn("finishing a NACHA file an earlier drop left unfinished", "file_id", id, "status", rec.Status,
			"file_cutoff_at", rec.CutoffAt, "file_name", rec.FileName)
		if rec, err = p.refreshEffectiveDates(ctx, rec); err != nil {
			errs = append(errs, err)
			sum := summarize(rec, p.dropDir)
			sum.Recovered, sum.Error = true, err.Error()
			res.Files = append(res.Files, sum)
			continue
		}
		sum, err := p.finish(ctx, rec, nil)
		sum.Recovered = true
		if err != nil {
			sum.Error = err.Error()
			errs = append(errs, err)
		}
		res.Files = append(res.Files, sum)
	}
	if !cut {
		return res, errors.Join(append(errs, p.announcePending(ctx))...)
	}

	horizon := p.cal.EffectiveEntryDate(p.cal.NextCutoff(cutoffAt.Add(-time.Nanosecond)))
	// Orgs with entries due, and orgs with a file creation to undo (its
	// entries may be all it had). The orgs with staged entries are found by
	// skipping from one to the next in nacha_entries_due_idx (a loose
	// index scan: a few index probes per org), not by reading every staged
	// entry (0.6 s at a million).
	rows, err = p.pool.Query(ctx, `
		WITH RECURSIVE staged (org_id) AS (
		    SELECT min(org_id) FROM nacha_entries WHERE status = 'staged'
		  UNION ALL
		    SELECT (SELECT min(e.org_id) FROM nacha_entries e WHERE e.status = 'staged' AND e.org_id > s.org_id)
		      FROM staged s WHERE s.org_id IS NOT NULL)
		SELECT s.org_id FROM staged s
		 WHERE s.org_id IS NOT NULL AND EXISTS (
		       SELECT 1 FROM nacha_entries e
		        WHERE e.org_id = s.org_id AND e.status = 'staged' AND e.effective_entry_date <= $1 AND e.staged_at < $2)
		UNION
		SELECT org_id FROM nacha_files WHERE status = 'released' AND released_at IS NULL
		ORDER BY 1`, horizon, cutoffAt)
	if err != nil {
		return res, errors.Join(append(errs, fmt.Errorf("nacha: look for due entries: %w", err))...)
	}
	orgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return res, errors.Join(append(errs, fmt.Errorf("nacha: look for due entries: %w", err))...)
	}
	for _, org := range orgs {
		// One file per org and cutoff, unless the entries overflow one
		// file's limits: then as many files as they need.
		for {
			sum, ok, more, err := p.cutFile(ctx, org, cutoffAt)
			if err != nil {
				errs = append(errs, err)
				sum.Error = err.Error()
			}
			if ok {
				// Listed whatever happened to it: a file that failed a
				// later step is on disk or in PostgreSQL all the same.
				res.Files = append(res.Files, sum)
			}
			if !ok || !more {
				break
			}
		}
	}
	// The entries' own rows are written, and the ledger hears of them,
	// once every file is durable and uploaded: no file waits for another's
	// (or its own) per-entry writes.
	return res, errors.Join(append(errs, p.announcePending(ctx))...)
}

// cutFile creates one file of the org's due entries and finishes it. ok
// says a file was created, more that due entries were left for another.
func (p *Processor) cutFile(ctx context.Context, org string, cutoffAt time.Time) (FileSummary, bool, bool, error) {
	began := time.Now()
	rec, built, ok, more, err := p.createFile(ctx, org, cutoffAt)
	if err != nil {
		p.metrics.dropFailures.WithLabelValues("create").Inc()
		p.log.Error("NACHA file not created; its entries stay staged", "org_id", org, "err", err)
		return FileSummary{}, false, false, err
	}
	if !ok {
		return FileSummary{}, false, false, nil
	}
	p.log.Info("NACHA file created", "org_id", org, "file_id", rec.FileID, "file_name", rec.FileName,
		"entries", rec.EntryCount, "debit_total_cents", rec.DebitTotal, "took", time.Since(began),
		"read_and_write_took", built.passTook, "record_took", built.recordTook)
	if err := p.step(StepCreated, rec.FileID); err != nil {
		return FileSummary{}, false, false, err
	}
	sum, err := p.finish(ctx, rec, &built)
	if err != nil {
		// The file stays building and is retried first by the next
		// drop; this one moves on to the org's other entries.
		return sum, true, more, err
	}
	return sum, true, more, nil
}

// builtFile is a new file's bytes, fsynced in its temp file by the pass
// that created the file (cut.go): finish installs them instead of
// building the file from its rows.
type builtFile struct {
	sum  []byte
	size int64
	// How long the pass took (reading, planning, writing, fsync) and
	// recording the file's rows and committing.
	passTook, recordTook time.Duration
}

// finish takes a file from whatever state it is in to its final one;
// built, if not nil, holds the bytes of a file just created.
func (p *Processor) finish(ctx context.Context, rec fileRecord, built *builtFile) (FileSummary, error) {
	log := p.log.With("org_id", rec.OrgID, "file_id", rec.FileID, "file_name", rec.FileName)
	fail := func(step string, err error) (FileSummary, error) {
		p.metrics.dropFailures.WithLabelValues(step).Inc()
		log.Error("NACHA drop step failed; the next drop retries it", "step", step, "err", err)
		p.recordError(rec.FileID, err)
		return summarize(rec, p.dropDir), err
	}
	if rec.Status == fileBuilding {
		began := time.Now()
		var sum []byte
		var size int64
		var err error
		if built != nil {
			sum, size, err = built.sum, built.size, p.installTemp(rec, built.sum)
		} else {
			sum, size, err = p.writeLocal(ctx, rec)
		}
		// An entry that cannot be written is set aside (its payment
		// INVALID) and the file is built again without it, so one entry
		// never holds back the rest of the cutoff.
		for tries := 0; err != nil && tries < 3; tries++ {
			var be *badEntriesError
			if !errors.As(err, &be) {
				break
			}
			log.Error("NACHA file has entries that cannot be written; setting them aside", "entries", len(be.Entries))
			if rec, err = p.removeFromFile(ctx, rec, be.Entries); err != nil {
				return fail("set_aside", err)
			}
			if rec.Status != fileBuilding { // every entry was set aside
				return summarize(rec, p.dropDir), nil
			}
			sum, size, err = p.writeLocal(ctx, rec)
		}
		if err != nil {
			return fail("write", err)
		}
		wrote := time.Since(began)
		if err := p.markWritten(ctx, rec, sum, size); err != nil {
			return fail("record_written", err)
		}
		recorded := time.Since(began) - wrote
		if rec, err = p.loadFile(ctx, nil, rec.FileID); err != nil {
			return fail("record_written", err)
		}
		p.metrics.files.WithLabelValues(fileWritten).Inc()
		p.metrics.dropped.Add(float64(rec.EntryCount))
		log.Info("NACHA file written", "entries", rec.EntryCount, "debit_total_cents", rec.DebitTotal,
			"credit_total_cents", rec.CreditTotal, "sha256", hex.EncodeToString(rec.SHA256), "write_took", wrote,
			"record_took", recorded)
		if err := p.step(StepWritten, rec.FileID); err != nil {
			return summarize(rec, p.dropDir), err
		}
	}
	if rec.Status == fileWritten && rec.UploadRequired {
		if p.sftp == nil {
			return fail("upload", fmt.Errorf("nacha: file %s awaits upload but no SFTP server is configured", rec.FileName))
		}
		remote, err := p.upload(ctx, rec)
		if err != nil {
			return fail("upload", err)
		}
		if err := p.step(StepUploaded, rec.FileID); err != nil {
			return summarize(rec, p.dropDir), err
		}
		if _, err := p.pool.Exec(ctx, `
			UPDATE nacha_files SET status = 'uploaded', uploaded_at = $2, remote_path = $3, last_error = NULL
			 WHERE file_id = $1 AND status = 'written'`, rec.FileID, p.clock(), remote); err != nil {
			return fail("record_uploaded", fmt.Errorf("nacha: record upload of %s: %w", rec.FileName, err))
		}
		if rec, err = p.loadFile(ctx, nil, rec.FileID); err != nil {
			return fail("record_uploaded", err)
		}
		p.metrics.files.WithLabelValues(fileUploaded).Inc()
		log.Info("NACHA file uploaded and verified", "remote_path", remote)
	}
	return summarize(rec, p.dropDir), nil
}

func summarize(rec fileRecord, dir string) FileSummary {
	s := FileSummary{FileID: rec.FileID, OrgID: rec.OrgID, FileName: rec.FileName, Path: filepath.Join(dir, rec.FileName),
		Status: rec.Status, CutoffAt: rec.CutoffAt, Entries: rec.EntryCount, Batches: rec.BatchCount, DebitTotalCents: rec.DebitTotal,
		CreditTotalCents: rec.CreditTotal, SHA256: hex.EncodeToString(rec.SHA256), SizeBytes: rec.Size,
		CreatedAt: rec.CreatedAt, RemotePath: rec.RemotePath}
	if rec.WrittenAt != nil {
		s.WrittenAt = rec.WrittenAt.UTC()
	}
	s.Upload = uploadState(rec)
	return s
}

// uploadState is a file's SFTP state: not_required, pending or uploaded.
func uploadState(rec fileRecord) string {
	switch {
	case rec.UploadedAt != nil:
		return "uploaded"
	case rec.UploadRequired:
		return "pending"
	}
	return "not_required"
}

// recordError keeps the last failure on the file row for operators. It
// uses its own context: the drop's may be the thing that failed.
func (p *Processor) recordError(fileID string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, uerr := p.pool.Exec(ctx, `UPDATE nacha_files SET last_error = $2 WHERE file_id = $1`, fileID, err.Error()); uerr != nil {
		p.log.Warn("could not record a drop error", "file_id", fileID, "err", uerr)
	}
}

func (p *Processor) step(s DropStep, fileID string) error {
	if p.hook == nil {
		return nil
	}
	if err := p.hook(s, fileID); err != nil {
		return fmt.Errorf("nacha: drop interrupted after %s: %w", s, err)
	}
	return nil
}

// writeLocal builds the file from its rows into a temp file beside its
// final name and installs it (installTemp). It returns the SHA-256 and
// size of what it wrote.
func (p *Processor) writeLocal(ctx context.Context, rec fileRecord) ([]byte, int64, error) {
	t, err := p.createTemp(rec)
	if err != nil {
		return nil, 0, err
	}
	if err := p.writeFile(ctx, rec, t); err != nil {
		t.abort()
		return nil, 0, err
	}
	sum, size, err := t.commit()
	if err != nil {
		return nil, 0, err
	}
	if err := p.installTemp(rec, sum); err != nil {
		return nil, 0, err
	}
	return sum, size, nil
}

// tempFile is a file's bytes on their way to the drop directory: written
// beside the final name, hashed as they go.
type tempFile struct {
	path string
	f    *os.File
	h    hash.Hash
	cw   *countingWriter
	bw   *bufio.Writer
}

func (p *Processor) tempPath(rec fileRecord) string {
	return filepath.Join(p.dropDir, "."+rec.FileName+".tmp")
}

// createTemp creates (or truncates) rec's temp file.
func (p *Processor) createTemp(rec fileRecord) (*tempFile, error) {
	path := p.tempPath(rec)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("nacha: create %s: %w", path, err)
	}
	t := &tempFile{path: path, f: f, h: sha256.New()}
	t.cw = &countingWriter{w: io.MultiWriter(f, t.h)}
	t.bw = bufio.NewWriterSize(t.cw, 256<<10)
	return t, nil
}

func (t *tempFile) Write(b []byte) (int, error) { return t.bw.Write(b) }

// commit flushes and fsyncs the temp file and returns the SHA-256 and
// size of its bytes; on failure the temp file is gone.
func (t *tempFile) commit() ([]byte, int64, error) {
	if err := t.bw.Flush(); err != nil {
		t.abort()
		return nil, 0, fmt.Errorf("nacha: write %s: %w", t.path, err)
	}
	if err := t.f.Sync(); err != nil {
		t.abort()
		return nil, 0, fmt.Errorf("nacha: fsync %s: %w", t.path, err)
	}
	if err := t.f.Close(); err != nil {
		_ = os.Remove(t.path)
		return nil, 0, fmt.Errorf("nacha: close %s: %w", t.path, err)
	}
	return t.h.Sum(nil), t.cw.n, nil
}

// abort removes the temp file.
func (t *tempFile) abort() {
	_ = t.f.Close()
	_ = os.Remove(t.path)
}

// installTemp renames rec's fsynced temp file, whose SHA-256 is sum, to
// its final name and fsyncs the directory, so the name appears only with
// complete content and survives a power loss.
func (p *Processor) installTemp(rec fileRecord, sum []byte) error {
	if err := p.step(StepTempWritten, rec.FileID); err != nil {
		return err
	}
	final := filepath.Join(p.dropDir, rec.FileName)
	tmp := p.tempPath(rec)
	// A file already under the final name comes from an earlier run that
	// crashed after its rename. It must be byte-identical; if it is not,
	// it may already have been picked up, so it is never replaced silently.
	if existing, err := fileSHA256(final); err == nil {
		if !bytes.Equal(existing, sum) {
			_ = os.Remove(tmp)
			return fmt.Errorf("nacha: %s already exists with different content (sha256 %x, rebuilt %x); "+
				"an operator must decide which is right", final, existing, sum)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("nacha: check existing %s: %w", final, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("nacha: rename into %s: %w", final, err)
	}
	if err := syncDir(p.dropDir); err != nil {
		return err
	}
	return p.step(StepRenamed, rec.FileID)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return hashReader(sha256.New(), f)
}

func hashReader(h hash.Hash, r io.Reader) ([]byte, error) {
	if _, err := io.Copy(h, r); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("nacha: open %s to fsync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("nacha: fsync %s: %w", dir, err)
	}
	return nil
}
