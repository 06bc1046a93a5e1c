package nacha

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moov-io/ach"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/nacha/nachafile"
)

// File statuses (nacha_files.status).
const (
	fileBuilding = "building"
	fileWritten  = "written"
	fileUploaded = "uploaded"
)

// fileIDModifiers is the order NACHA file ID modifiers are handed out in
// for one destination on one day.
const fileIDModifiers = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// fileRecord is a nacha_files row: everything the file's bytes depend on
// besides its entries.
type fileRecord struct {
	FileID, OrgID, Status, FileName string
	CutoffAt, CreatedAt             time.Time
	CreationDate                    time.Time
	CreationTime, Modifier          string
	Destination, DestinationName    string
	Origin, OriginName              string
	CompanyName, CompanyID          string
	EntryDescription                string
	Balanced, UploadRequired        bool
	OffsetRouting, OffsetType       string
	OffsetAccountEnc                []byte
	BatchCount, EntryCount          int
	DebitTotal, CreditTotal         int64
	SHA256                          []byte
	Size                            int64
	WrittenAt, UploadedAt           *time.Time
	RemotePath                      string
	OffsetPlacement                 string
	LastError                       string
	// TraceBase is the trace sequence before the file's first entry.
	TraceBase int64
	// Materialized: every entry's own row names the file (its claims are
	// applied); until then the file's claims say which entries it holds.
	Materialized bool
}

// batchRecord is a nacha_batches row.
type batchRecord struct {
	Number        int
	SEC           string
	EffectiveDate time.Time
	EntryCount    int
	DebitTotal    int64
	CreditTotal   int64
	OffsetTrace   string // balanced files: the offsetting entry's trace
	OffsetOnly    bool   // the batch holds only the offset of the batch before it
	// Credits: the batch's entries are refund credits (and its offset, or
	// the offset an OffsetOnly batch holds, a debit).
	Credits bool
	// sameBatchOffset (planning only): the batch carries its own offset.
	sameBatchOffset bool
}

// entryTotal is the total of the batch's own entries, without its offset.
func (b batchRecord) entryTotal() int64 {
	if b.Credits {
		return b.CreditTotal
	}
	return b.DebitTotal
}

// offsetTotal is the amount of the balancing entry the batch carries (0
// when it carries none): on the other side of its entries.
func (b batchRecord) offsetTotal() int64 {
	if b.Credits {
		return b.DebitTotal
	}
	return b.CreditTotal
}

func (b *batchRecord) setOffset(amount int64) {
	if b.Credits {
		b.DebitTotal = amount
	} else {
		b.CreditTotal = amount
	}
}

// entryRecord is one batched entry as the file builder reads it, with its
// account number opened.
type entryRecord struct {
	EntryID       int64
	LineItemID    string
	Batch         int
	Trace         string
	AmountCents   int64
	RDFI          string
	AccountType   string
	AccountNumber string
	Name          string
	PayType       string
	// Bad says why the entry cannot be written (its account number will
	// not open); the builder sets such entries aside.
	Bad string
}

const fileColumns = `file_id, org_id, status, file_name, cutoff_at, created_at, creation_date, creation_time,
	file_id_modifier, immediate_destination, immediate_destination_name, immediate_origin, immediate_origin_name,
	company_name, company_identification, company_entry_description, is_balanced, upload_required, COALESCE(offset_routing, ''),
	COALESCE(offset_account_type, ''), offset_account_enc, batch_count, entry_count, debit_total_cents,
	credit_total_cents, sha256, COALESCE(size_bytes, 0), written_at, uploaded_at, COALESCE(remote_path, ''),
	offset_placement, COALESCE(last_error, ''), COALESCE(trace_base, 0), materialized_at IS NOT NULL`

func scanFile(row pgx.Row) (fileRecord, error) {
	var f fileRecord
	err := row.Scan(&f.FileID, &f.OrgID, &f.Status, &f.FileName, &f.CutoffAt, &f.CreatedAt, &f.CreationDate,
		&f.CreationTime, &f.Modifier, &f.Destination, &f.DestinationName, &f.Origin, &f.OriginName,
		&f.CompanyName, &f.CompanyID, &f.EntryDescription, &f.Balanced, &f.UploadRequired, &f.OffsetRouting, &f.OffsetType,
		&f.OffsetAccountEnc, &f.BatchCount, &f.EntryCount, &f.DebitTotal, &f.CreditTotal, &f.SHA256, &f.Size,
		&f.WrittenAt, &f.UploadedAt, &f.RemotePath, &f.OffsetPlacement, &f.LastError, &f.TraceBase, &f.Materialized)
	f.CutoffAt, f.CreatedAt = f.CutoffAt.UTC(), f.CreatedAt.UTC()
	return f, err
}

func (p *Processor) loadFile(ctx context.Context, q pgx.Tx, fileID string) (fileRecord, error) {
	var row pgx.Row
	if q != nil {
		row = q.QueryRow(ctx, `SELECT `+fileColumns+` FROM nacha_files WHERE file_id = $1`, fileID)
	} else {
		row = p.pool.QueryRow(ctx, `SELECT `+fileColumns+` FROM nacha_files WHERE file_id = $1`, fileID)
	}
	f, err := scanFile(row)
	if err != nil {
		return fileRecord{}, fmt.Errorf("nacha: read file %s: %w", fileID, err)
	}
	return f, nil
}

func (p *Processor) loadBatches(ctx context.Context, fileID string) ([]batchRecord, error) {
	rows, err := p.pool.Query(ctx, `
		SELECT batch_number, standard_entry_class, effective_entry_date, entry_count, debit_total_cents,
		       credit_total_cents, COALESCE(offset_trace_number, ''), offset_only, credits
		  FROM nacha_batches WHERE file_id = $1 ORDER BY batch_number`, fileID)
	if err != nil {
		return nil, fmt.Errorf("nacha: read batches of file %s: %w", fileID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (batchRecord, error) {
		var b batchRecord
		err := r.Scan(&b.Number, &b.SEC, &b.EffectiveDate, &b.EntryCount, &b.DebitTotal, &b.CreditTotal,
			&b.OffsetTrace, &b.OffsetOnly, &b.Credits)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("nacha: read batches of file %s: %w", fileID, err)
	}
	return out, nil
}

// createFile plans a new file from the org's due staged entries: the file
// row (with its header snapshot), its batches, and its claims — every
// entry's batch and trace sequence, recorded set-wise (arrays of
// assignChunk entries a row) rather than on each entry — in one
// transaction. Entries that cannot be written into any file are set aside
// first (their payments INVALID). A file takes as many entries as fit its
// limits (planFile); more says entries were left for another file. It
// returns ok=false when the org has nothing (writable) due. After it
// returns, the file's content is fixed: building it is a pure function of
// these rows, and it is built from the claims. Each entry's own row is
// written later, off the path to a durable file (materialize); the org's
// files still unmaterialized are materialized first here, so no claimed
// entry is planned twice.
func (p *Processor) createFile(ctx context.Context, orgID string, cutoffAt time.Time) (rec fileRecord, ok, more bool, err error) {
	now := p.clock()
	horizon := p.cal.EffectiveEntryDate(p.cal.NextCutoff(cutoffAt.Add(-time.Nanosecond)))
	earliest := p.cal.NextBankingDay(p.cal.DateOf(now))
	var setAside int
	if err := p.releaseInterruptedCreations(ctx, orgID, now); err != nil {
		return fileRecord{}, false, false, fmt.Errorf("nacha: create file for org %s: %w", orgID, err)
	}
	if err := p.materializePending(ctx, orgID, false); err != nil {
		return fileRecord{}, false, false, fmt.Errorf("nacha: create file for org %s: %w", orgID, err)
	}
	var due []dueEntry
	var odfi string
	var base int64
	planBegan := time.Now()
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rec, ok, setAside, due = fileRecord{}, false, 0, nil
		// A million due entries are held here while planning, so each is
		// kept small: the name comes back only when it fails the check
		// unwritable makes (non-empty printable ASCII of at most 22
		// bytes), and the short codes are shared constants. A refund
		// credit comes with its original debit's status (looked up for
		// credits only): it waits while the debit is unsettled
		// (refundHeld).
		rows, err := tx.Query(ctx, `
			SELECT e.entry_id, e.standard_entry_class, GREATEST(e.effective_entry_date, $2::date), e.amount_cents,
			       e.rdfi_routing, CASE WHEN e.individual_name ~ $4 THEN NULL ELSE e.individual_name END,
			       e.account_type, e.account_number_enc IS NULL, e.direction = 'credit',
			       CASE WHEN e.reverses_entry_id IS NOT NULL THEN
			           (SELECT o.status FROM nacha_entries o WHERE o.entry_id = e.reverses_entry_id) END,
			       count(*) OVER ()
			  FROM nacha_entries e
			 WHERE e.org_id = $1 AND e.status = 'staged' AND e.effective_entry_date <= $3 AND e.staged_at < $5
			 ORDER BY 9, 2, 3, 1`, orgID, earliest, horizon, fmt.Sprintf(`^[ -~]{1,%d}$`, processors.MaxACHNameChars), cutoffAt)
		if err != nil {
			return err
		}
		var bad []setAsideRow
		for rows.Next() {
			var e dueEntry
			var name, original *string
			var total int
			if err := rows.Scan(&e.ID, &e.SEC, &e.Effective, &e.Amount, &e.RDFI, &name, &e.AccountType, &e.Purged,
				&e.Credit, &original, &total); err != nil {
				rows.Close()
				return err
			}
			if due == nil {
				due = make([]dueEntry, 0, total)
			}
			e.Name = nameChecked
			if name != nil {
				e.Name = *name
			}
			e.SEC, e.AccountType = internCode(e.SEC), internCode(e.AccountType)
			if e.Credit {
				held, why := refundHeld(original)
				if why != "" {
					bad = append(bad, setAsideRow{EntryID: e.ID, Reason: why})
				}
				if held || why != "" {
					continue
				}
			}
			if why := e.unwritable(p.limits); why != "" {
				bad = append(bad, setAsideRow{EntryID: e.ID, Reason: why})
				continue
			}
			due = append(due, e)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if due, err = lockRefunds(ctx, tx, due); err != nil {
			return err
		}
		if len(bad) > 0 {
			if setAside, err = p.setAsideEntries(ctx, tx, "", bad, now); err != nil {
				return err
			}
		}
		if len(due) == 0 {
			return nil
		}
		cfg, offsetAccount, err := readNachaConfig(ctx, tx, p, orgID)
		if err != nil {
			return err
		}
		rec = fileRecord{
			FileID: store.NewID("nf_"), OrgID: orgID, Status: fileBuilding, CutoffAt: cutoffAt.UTC(), CreatedAt: now,
			Destination: cfg.DestinationRouting, DestinationName: nachaText(cfg.DestinationBankName, 23),
			Origin: cfg.OriginRouting, OriginName: nachaText(cfg.OriginBankName, 23),
			CompanyName: nachaText(cfg.CompanyName, 16), CompanyID: nachaText(cfg.CompanyIdentification, 10),
			EntryDescription: nachaText(cfg.EntryDescription, 10), Balanced: cfg.Balanced,
			UploadRequired: p.sftp != nil, OffsetPlacement: cfg.OffsetPlacement,
		}
		if rec.OffsetPlacement == "" {
			rec.OffsetPlacement = OffsetOwnBatch
		}
		local := now.In(p.cal.Location())
		rec.CreationDate = civil(local.Year(), local.Month(), local.Day())
		rec.CreationTime = local.Format("1504")
		if rec.Balanced {
			if cfg.Offset == nil || offsetAccount == "" {
				return fmt.Errorf("org %s has a balanced NACHA config without an offset account", orgID)
			}
			rec.OffsetRouting, rec.OffsetType = cfg.Offset.RoutingNumber, cfg.Offset.AccountType
			if rec.OffsetAccountEnc, err = p.ring.Seal([]byte(offsetAccount), fileOffsetContext(rec.FileID)); err != nil {
				return fmt.Errorf("seal offset account: %w", err)
			}
		}
		if rec.Modifier, err = nextModifier(ctx, tx, rec.Destination, rec.CreationDate); err != nil {
			return err
		}
		rec.FileName = fmt.Sprintf("PAYRAIL_%s_%s_%s_%s_%s.ach", rec.CreationDate.Format("20060102"),
			rec.CreationTime, rec.Destination, rec.Modifier, rec.FileID)

		batches, taken, err := planFile(due, rec.Balanced, rec.OffsetPlacement, p.limits)
		if err != nil {
			return err
		}
		more = taken < len(due)
		due = due[:taken]
		offsets := 0
		for _, b := range batches {
			if b.offsetTotal() > 0 {
				offsets++
			}
			rec.EntryCount += b.EntryCount
			rec.DebitTotal += b.DebitTotal
			rec.CreditTotal += b.CreditTotal
		}
		rec.BatchCount = len(batches)
		odfi = rec.Origin[:8]
		base, err = reserveTraces(ctx, tx, odfi, rec.EntryCount+offsets)
		if err != nil {
			return err
		}
		rec.TraceBase = base
		next := base + int64(rec.EntryCount)
		for i := range batches {
			if batches[i].offsetTotal() > 0 { // the batch carrying an offset
				next++
				batches[i].OffsetTrace = odfi + fmt.Sprintf("%07d", next)
			}
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO nacha_files (file_id, org_id, status, file_name, cutoff_at, created_at, creation_date,
			    creation_time, file_id_modifier, immediate_destination, immediate_destination_name, immediate_origin,
			    immediate_origin_name, company_name, company_identification, company_entry_description, is_balanced,
			    offset_routing, offset_account_enc, offset_account_type, batch_count, entry_count, debit_total_cents,
			    credit_total_cents, upload_required, offset_placement, trace_base)
			VALUES ($1, $2, 'building', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
			    NULLIF($17, ''), $18, NULLIF($19, ''), $20, $21, $22, $23, $24, $25, $26)`,
			rec.FileID, rec.OrgID, rec.FileName, rec.CutoffAt, rec.CreatedAt, rec.CreationDate, rec.CreationTime,
			rec.Modifier, rec.Destination, rec.DestinationName, rec.Origin, rec.OriginName, rec.CompanyName,
			rec.CompanyID, rec.EntryDescription, rec.Balanced, rec.OffsetRouting, rec.OffsetAccountEnc,
			rec.OffsetType, rec.BatchCount, rec.EntryCount, rec.DebitTotal, rec.CreditTotal, rec.UploadRequired,
			rec.OffsetPlacement, rec.TraceBase); err != nil {
			return fmt.Errorf("insert file row: %w", err)
		}
		var secs, traces []string
		var dates []time.Time
		var nums, counts []int32
		var debits, credits []int64
		var offsetOnly, creditBatches []bool
		for _, b := range batches {
			secs, dates, nums = append(secs, b.SEC), append(dates, b.EffectiveDate), append(nums, int32(b.Number))
			counts, debits, credits = append(counts, int32(b.EntryCount)), append(debits, b.DebitTotal), append(credits, b.CreditTotal)
			traces, offsetOnly = append(traces, b.OffsetTrace), append(offsetOnly, b.OffsetOnly)
			creditBatches = append(creditBatches, b.Credits)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO nacha_batches (file_id, batch_number, standard_entry_class, effective_entry_date,
			    entry_count, debit_total_cents, credit_total_cents, offset_trace_number, offset_only, credits)
			SELECT $1, n, sec, eff, c, d, cr, NULLIF(t, ''), oo, cb
			  FROM unnest($2::int[], $3::text[], $4::date[], $5::int[], $6::bigint[], $7::bigint[], $8::text[],
			              $9::bool[], $10::bool[]) AS b(n, sec, eff, c, d, cr, t, oo, cb)`,
			rec.FileID, nums, secs, dates, counts, debits, credits, traces, offsetOnly, creditBatches); err != nil {
			return fmt.Errorf("insert batches: %w", err)
		}
		// The claims: planFile numbered the entries in (SEC, date, entry
		// id) order, batch by batch, so traces ascend within every batch
		// as moov-io/ach's strict validation requires, and trace order is
		// file order.
		chunk := p.assignChunk
		if chunk <= 0 {
			chunk = defaultAssignChunk
		}
		for lo, n := 0, 0; lo < len(due); lo, n = lo+chunk, n+1 {
			hi := min(lo+chunk, len(due))
			ids, bnums, seqs := make([]int64, 0, hi-lo), make([]int32, 0, hi-lo), make([]int64, 0, hi-lo)
			for _, e := range due[lo:hi] {
				ids, bnums, seqs = append(ids, e.ID), append(bnums, e.Batch), append(seqs, e.Seq)
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO nacha_file_claims (file_id, chunk, entry_ids, batch_numbers, sequences)
				VALUES ($1, $2, $3, $4, $5)`, rec.FileID, n, ids, bnums, seqs); err != nil {
				return fmt.Errorf("insert claims: %w", err)
			}
		}
		ok = true
		return nil
	})
	if err != nil {
		return fileRecord{}, false, false, fmt.Errorf("nacha: create file for org %s: %w", orgID, err)
	}
	if setAside > 0 {
		p.metrics.setAside.Add(float64(setAside))
	}
	if !ok {
		return fileRecord{}, false, false, nil
	}
	n := len(due)
	if due = nil; n >= 100_000 {
		// The plan of a large file is garbage now; collect it before the
		// build, so the two never add up in memory.
		runtime.GC()
	}
	p.log.Info("NACHA file planned", "org_id", orgID, "file_id", rec.FileID, "entries", n,
		"plan_transaction_took", time.Since(planBegan))
	return rec, true, more, nil
}

// lockRefunds locks the refund credits among due entries and keeps those
// still staged whose debit is still settled, read after the locks: a
// return of the debit applied meanwhile (resolveRefundOnReturn, which
// locks the refund too) has withdrawn its refund, and a file must not
// claim it. Debits pass untouched; with no refunds due it costs nothing.
func lockRefunds(ctx context.Context, tx pgx.Tx, due []dueEntry) ([]dueEntry, error) {
	var ids []int64
	for _, e := range due {
		if e.Credit {
			ids = append(ids, e.ID)
		}
	}
	if len(ids) == 0 {
		return due, nil
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM nacha_entries WHERE entry_id = ANY ($1) ORDER BY entry_id FOR UPDATE`,
		ids); err != nil {
		return nil, fmt.Errorf("lock refund credits: %w", err)
	}
	rows, err := tx.Query(ctx, `
		SELECT r.entry_id FROM nacha_entries r JOIN nacha_entries o ON o.entry_id = r.reverses_entry_id
		 WHERE r.entry_id = ANY ($1) AND r.status = 'staged' AND o.status = 'settled'`, ids)
	if err != nil {
		return nil, fmt.Errorf("recheck refund credits: %w", err)
	}
	still, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("recheck refund credits: %w", err)
	}
	keep := make(map[int64]bool, len(still))
	for _, id := range still {
		keep[id] = true
	}
	out := due[:0]
	for _, e := range due {
		if !e.Credit || keep[e.ID] {
			out = append(out, e)
		}
	}
	return out, nil
}

// StepAssignedChunk: one claim of a file is applied to its entries' rows
// and committed (materialize). The hook sees it after every chunk.
const StepAssignedChunk DropStep = "assigned_chunk"

// defaultAssignChunk is how many entries one claim row holds, and so one
// materialization transaction writes.
const defaultAssignChunk = 20_000

// materializePending materializes every file of the org (every org when
// orgID is "") whose claims are not all applied yet, oldest first; with
// writtenOnly, only written and uploaded ones: a file still building is
// the drop's (under its lock), which may be building it from its claims.
func (p *Processor) materializePending(ctx context.Context, orgID string, writtenOnly bool) error {
	rows, err := p.pool.Query(ctx, `
		SELECT file_id FROM nacha_files
		 WHERE materialized_at IS NULL AND status <> 'released' AND ($1 = '' OR org_id = $1)
		   AND (NOT $2 OR status IN ('written', 'uploaded'))
		 ORDER BY created_at, file_id`, orgID, writtenOnly)
	if err != nil {
		return fmt.Errorf("nacha: look for files to materialize: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("nacha: look for files to materialize: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := p.materialize(ctx, id); err != nil {
			p.metrics.dropFailures.WithLabelValues("materialize").Inc()
			p.log.Error("NACHA file's claims not all applied to its entries; the next run continues", "file_id", id,
				"err", err)
			p.recordError(id, err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// materialize writes a file's membership into its entries' rows, one claim
// per transaction: the claim's entries go staged → batched with the file,
// batch, trace number and the batch's effective date, and the claim is
// marked applied in the same transaction, so a crash in between leaves
// every claim either wholly applied or not at all. The claims stay the
// file's membership (its bytes are built from them) until the last
// transaction deletes them and marks the file materialized. The drop lock keeps everything
// else that moves staged entries away, so a claimed entry is still staged:
// one that is not fails the file loudly.
func (p *Processor) materialize(ctx context.Context, fileID string) error {
	began := time.Now()
	var longest time.Duration
	var n int
	for {
		var done bool
		t0 := time.Now()
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			var origin string
			var base int64
			var materialized bool
			if err := tx.QueryRow(ctx, `
				SELECT immediate_origin, COALESCE(trace_base, 0), materialized_at IS NOT NULL FROM nacha_files
				 WHERE file_id = $1 FOR UPDATE`, fileID).Scan(&origin, &base, &materialized); err != nil {
				return fmt.Errorf("lock file row: %w", err)
			}
			if materialized {
				done = true
				return nil
			}
			var chunk int
			var ids []int64
			var bnums []int32
			var seqs []int64
			err := tx.QueryRow(ctx, `
				UPDATE nacha_file_claims SET applied = true
				 WHERE (file_id, chunk) = (SELECT file_id, chunk FROM nacha_file_claims WHERE file_id = $1 AND NOT applied
				                            ORDER BY chunk LIMIT 1)
				RETURNING chunk, entry_ids, batch_numbers, sequences`, fileID).Scan(&chunk, &ids, &bnums, &seqs)
			if errors.Is(err, pgx.ErrNoRows) {
				done = true
				if _, err := tx.Exec(ctx, `DELETE FROM nacha_file_claims WHERE file_id = $1`, fileID); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `UPDATE nacha_files SET materialized_at = $2 WHERE file_id = $1`, fileID, p.clock())
				return err
			}
			if err != nil {
				return fmt.Errorf("take a claim: %w", err)
			}
			tag, err := tx.Exec(ctx, `
				UPDATE nacha_entries e
				   SET status = 'batched', file_id = $1, batch_number = u.b, effective_entry_date = nb.effective_entry_date,
				       trace_number = $2 || lpad(($3::bigint + u.s)::text, 7, '0')
				  FROM unnest($4::bigint[], $5::int[], $6::bigint[]) AS u(id, b, s)
				  JOIN nacha_batches nb ON nb.file_id = $1 AND nb.batch_number = u.b
				 WHERE e.entry_id = u.id AND e.status = 'staged'`,
				fileID, origin[:8], base, ids, bnums, seqs)
			if err != nil {
				return fmt.Errorf("apply claim %d: %w", chunk, err)
			}
			if tag.RowsAffected() != int64(len(ids)) {
				return fmt.Errorf("claim %d: %d of its %d entries are no longer staged", chunk,
					int64(len(ids))-tag.RowsAffected(), len(ids))
			}
			n += len(ids)
			return nil
		})
		if err != nil {
			return fmt.Errorf("nacha: materialize file %s: %w", fileID, err)
		}
		longest = max(longest, time.Since(t0))
		if done {
			break
		}
		if err := p.step(StepAssignedChunk, fileID); err != nil {
			return err
		}
	}
	if n > 0 {
		p.log.Info("NACHA file materialized", "file_id", fileID, "entries", n, "took", time.Since(began),
			"longest_transaction", longest)
	}
	return nil
}

// releaseInterruptedCreations undoes the creations of the org's files that
// did not finish (released, no released_at): their entries go back to
// staged for the next file, and the file row stays as a record, released
// now, with no entries. One transaction.
func (p *Processor) releaseInterruptedCreations(ctx context.Context, orgID string, now time.Time) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			UPDATE nacha_files SET released_at = $2, batch_count = 0, entry_count = 0, debit_total_cents = 0,
			       credit_total_cents = 0, last_error = 'creation interrupted; its entries went back to the cutoff'
			 WHERE org_id = $1 AND status = 'released' AND released_at IS NULL
			RETURNING file_id`, orgID, now)
		if err != nil {
			return fmt.Errorf("release interrupted file creations: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		tag, err := tx.Exec(ctx, `
			UPDATE nacha_entries SET status = 'staged', file_id = NULL, batch_number = NULL, trace_number = NULL
			 WHERE file_id = ANY($1) AND status = 'batched'`, ids)
		if err != nil {
			return fmt.Errorf("release interrupted file creations: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM nacha_batches WHERE file_id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("release interrupted file creations: %w", err)
		}
		p.log.Warn("NACHA file creation was interrupted; its entries are staged again", "org_id", orgID,
			"file_ids", ids, "entries", tag.RowsAffected())
		return nil
	})
}

// nameChecked stands for a name PostgreSQL found writable when the due
// entries are read for planning (which needs no names).
const nameChecked = "-"

// internCode returns the shared constant for a SEC code or account type, so
// a million due entries do not each hold their own copy.
func internCode(s string) string {
	switch s {
	case ach.WEB:
		return ach.WEB
	case ach.PPD:
		return ach.PPD
	case ach.CCD:
		return ach.CCD
	case ach.TEL:
		return ach.TEL
	case "CHECKING":
		return "CHECKING"
	case "SAVINGS":
		return "SAVINGS"
	}
	return s
}

// reserveTraces reserves n consecutive trace sequence numbers of the ODFI
// and returns the one before the first. The 7-digit sequence restarts at 1
// rather than wrap inside a file, so traces always ascend within it. Trace
// numbers are therefore unique per ODFI within one cycle of 9,999,999
// entries, not forever: returns are matched on the trace number and the
// original entry's fields (matchEntry).
func reserveTraces(ctx context.Context, tx pgx.Tx, odfi string, n int) (int64, error) {
	const maxSeq = 9_999_999
	if n > maxSeq {
		return 0, fmt.Errorf("%d entries exceed the trace number space of one file", n)
	}
	var last int64
	err := tx.QueryRow(ctx, `
		INSERT INTO nacha_trace_counters (odfi_identification, last_sequence) VALUES ($1, 0)
		ON CONFLICT (odfi_identification) DO UPDATE SET last_sequence = nacha_trace_counters.last_sequence
		RETURNING last_sequence`, odfi).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("reserve trace numbers: %w", err)
	}
	if last+int64(n) > maxSeq {
		last = 0
	}
	if _, err := tx.Exec(ctx, `UPDATE nacha_trace_counters SET last_sequence = $2 WHERE odfi_identification = $1`,
		odfi, last+int64(n)); err != nil {
		return 0, fmt.Errorf("reserve trace numbers: %w", err)
	}
	return last, nil
}

// nextModifier picks the first file ID modifier not yet used for the
// destination on the date. The unique index backs it against a racing
// writer that is not holding the drop lock.
func nextModifier(ctx context.Context, tx pgx.Tx, destination string, date time.Time) (string, error) {
	var used []string
	err := tx.QueryRow(ctx, `
		SELECT COALESCE(array_agg(file_id_modifier), '{}') FROM nacha_files
		 WHERE immediate_destination = $1 AND creation_date = $2`, destination, date).Scan(&used)
	if err != nil {
		return "", fmt.Errorf("read file ID modifiers: %w", err)
	}
	for _, m := range fileIDModifiers {
		if !containsString(used, string(m)) {
			return string(m), nil
		}
	}
	return "", fmt.Errorf("all 36 file ID modifiers for destination %s on %s are used", destination,
		date.Format(time.DateOnly))
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// readNachaConfig reads the org's NACHA configuration inside tx, so the
// snapshot taken into the file row is consistent with the entries it
// covers, and opens the offset account number.
func readNachaConfig(ctx context.Context, tx pgx.Tx, p *Processor, orgID string) (store.NachaConfig, string, error) {
	var c store.NachaConfig
	var routing, acctType *string
	var sealed []byte
	err := tx.QueryRow(ctx, `
		SELECT destination_bank_name, destination_routing, origin_bank_name, origin_routing, company_name,
		       company_identification, company_entry_description, is_balanced, offset_routing,
		       offset_account_enc, offset_account_type, offset_placement
		  FROM org_nacha_configs WHERE org_id = $1`, orgID).Scan(&c.DestinationBankName, &c.DestinationRouting,
		&c.OriginBankName, &c.OriginRouting, &c.CompanyName, &c.CompanyIdentification, &c.EntryDescription,
		&c.Balanced, &routing, &sealed, &acctType, &c.OffsetPlacement)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, "", fmt.Errorf("org %s has staged ACH entries but no NACHA configuration", orgID)
	}
	if err != nil {
		return c, "", fmt.Errorf("read NACHA config: %w", err)
	}
	if len(c.OriginRouting) < 8 {
		return c, "", fmt.Errorf("org %s: origin routing number is not a routing number", orgID)
	}
	var account string
	if routing != nil && sealed != nil {
		c.Offset = &store.OffsetAccount{RoutingNumber: *routing, AccountType: "CHECKING"}
		if acctType != nil {
			c.Offset.AccountType = *acctType
		}
		plain, err := p.ring.Open(sealed, store.OffsetAccountContext(orgID))
		if err != nil {
			return c, "", fmt.Errorf("open the org's offset account number: %w", err)
		}
		account = string(plain)
		c.Offset.LastFour = lastFour(account)
	}
	return c, account, nil
}

// fileOffsetContext binds the file row's resealed offset account to it.
func fileOffsetContext(fileID string) []byte { return []byte("nacha_files/" + fileID + "/offset") }

// entrySource yields a file's entries in (batch, trace) order.
type entrySource func() (entryRecord, bool, error)

// streamEntries reads the file's entries from PostgreSQL one page at a time
// (keyset pagination on the unique (file_id, trace_number) index), opening
// each account number as it goes, so nothing beyond the page and
// moov-io/ach's own structures is held. Trace order is batch order:
// planFile numbers entries batch by batch and reserveTraces never wraps
// the sequence inside a file.
func (p *Processor) streamEntries(ctx context.Context, fileID, orgID string) entrySource {
	var page []entryRecord
	lastTrace := ""
	done := false
	return func() (entryRecord, bool, error) {
		if len(page) == 0 && !done {
			rows, err := p.pool.Query(ctx, `
				SELECT entry_id, line_item_id, attempt_id, batch_number, trace_number, amount_cents, rdfi_routing,
				       account_type, account_number_enc, individual_name, payment_type_code
				  FROM nacha_entries
				 WHERE file_id = $1 AND trace_number > $2
				 ORDER BY trace_number LIMIT $3`, fileID, lastTrace, p.pageSize)
			if err != nil {
				return entryRecord{}, false, fmt.Errorf("nacha: read entries of file %s: %w", fileID, err)
			}
			page, err = p.scanEntries(rows, orgID)
			if err != nil {
				return entryRecord{}, false, fmt.Errorf("nacha: read entries of file %s: %w", fileID, err)
			}
			if len(page) < p.pageSize {
				done = true
			}
			if len(page) > 0 {
				lastTrace = page[len(page)-1].Trace
			}
		}
		if len(page) == 0 {
			return entryRecord{}, false, nil
		}
		e := page[0]
		page[0] = entryRecord{} // let the opened account number go with the page slot
		page = page[1:]
		return e, true, nil
	}
}

// streamClaimedEntries reads the entries of a file not yet materialized
// through its claims, one claim (assignChunk entries) at a time, in claim
// order, which is trace order, computing the trace numbers as materialize
// writes them — whether or not a claim is applied yet, so the bytes are the
// same at every point of the materialization and after it (read from the
// entries' rows then).
func (p *Processor) streamClaimedEntries(ctx context.Context, rec fileRecord) entrySource {
	var page []entryRecord
	chunk := -1
	done := false
	odfi := rec.Origin[:8]
	return func() (entryRecord, bool, error) {
		for len(page) == 0 && !done {
			var next *int
			if err := p.pool.QueryRow(ctx, `SELECT min(chunk) FROM nacha_file_claims WHERE file_id = $1 AND chunk > $2`,
				rec.FileID, chunk).Scan(&next); err != nil {
				return entryRecord{}, false, fmt.Errorf("nacha: read claims of file %s: %w", rec.FileID, err)
			}
			if next == nil {
				done = true
				break
			}
			chunk = *next
			rows, err := p.pool.Query(ctx, `
				SELECT e.entry_id, e.line_item_id, e.attempt_id, u.b, $2 || lpad(($3::bigint + u.s)::text, 7, '0'),
				       e.amount_cents, e.rdfi_routing, e.account_type, e.account_number_enc, e.individual_name,
				       e.payment_type_code
				  FROM nacha_file_claims c
				 CROSS JOIN LATERAL unnest(c.entry_ids, c.batch_numbers, c.sequences) WITH ORDINALITY AS u(id, b, s, ord)
				  JOIN nacha_entries e ON e.entry_id = u.id
				 WHERE c.file_id = $1 AND c.chunk = $4
				 ORDER BY u.ord`, rec.FileID, odfi, rec.TraceBase, chunk)
			if err != nil {
				return entryRecord{}, false, fmt.Errorf("nacha: read entries of file %s: %w", rec.FileID, err)
			}
			page, err = p.scanEntries(rows, rec.OrgID)
			if err != nil {
				return entryRecord{}, false, fmt.Errorf("nacha: read entries of file %s: %w", rec.FileID, err)
			}
		}
		if len(page) == 0 {
			return entryRecord{}, false, nil
		}
		e := page[0]
		page[0] = entryRecord{} // let the opened account number go with the page slot
		page = page[1:]
		return e, true, nil
	}
}

// scanEntries reads entry rows (streamEntries' columns), opening each
// account number.
func (p *Processor) scanEntries(rows pgx.Rows, orgID string) ([]entryRecord, error) {
	defer rows.Close()
	var page []entryRecord
	for rows.Next() {
		var e entryRecord
		var attemptID string
		var sealed []byte
		if err := rows.Scan(&e.EntryID, &e.LineItemID, &attemptID, &e.Batch, &e.Trace, &e.AmountCents,
			&e.RDFI, &e.AccountType, &sealed, &e.Name, &e.PayType); err != nil {
			return nil, err
		}
		if sealed == nil {
			e.Bad = "the account number was purged"
		} else if plain, err := p.ring.Open(sealed, entryContext(orgID, attemptID)); err != nil {
			e.Bad = "the account number cannot be opened: " + err.Error()
		} else {
			e.AccountNumber = string(plain)
		}
		page = append(page, e)
	}
	return page, rows.Err()
}

// sliceEntries is how many entries writeACH holds (and moov-io/ach
// validates) at a time.
const sliceEntries = 10_000

// fileHeader is the file header record of rec.
func fileHeader(rec fileRecord) ach.FileHeader {
	fh := ach.NewFileHeader()
	fh.ImmediateDestination = rec.Destination
	fh.ImmediateDestinationName = rec.DestinationName
	fh.ImmediateOrigin = rec.Origin
	fh.ImmediateOriginName = rec.OriginName
	fh.FileCreationDate = rec.CreationDate.Format("060102")
	fh.FileCreationTime = rec.CreationTime
	fh.FileIDModifier = rec.Modifier
	return fh
}

// refundDescription is the Company Entry Description of a batch of
// refund credits (README.md, "Reversals": a refund, never a Reversing
// Entry, which would say REVERSAL).
const refundDescription = "REFUND"

// batchHeader is the batch header record of batch b of file rec; its
// service class follows what the batch holds (one side, or both when it
// carries its own offset).
func batchHeader(rec fileRecord, b batchRecord) *ach.BatchHeader {
	bh := ach.NewBatchHeader()
	bh.CompanyName = rec.CompanyName
	bh.CompanyIdentification = rec.CompanyID
	bh.StandardEntryClassCode = b.SEC
	bh.CompanyEntryDescription = rec.EntryDescription
	if b.Credits {
		bh.CompanyEntryDescription = refundDescription
	}
	bh.EffectiveEntryDate = b.EffectiveDate.Format("060102")
	bh.ODFIIdentification = rec.Origin[:8]
	bh.BatchNumber = b.Number
	switch {
	case b.DebitTotal > 0 && b.CreditTotal > 0:
		bh.ServiceClassCode = ach.MixedDebitsAndCredits
	case b.CreditTotal > 0:
		bh.ServiceClassCode = ach.CreditsOnly
	default:
		bh.ServiceClassCode = ach.DebitsOnly
	}
	return bh
}

// writeACH writes the NACHA file for a file row, its batches and its
// entries to w, entry by entry: it holds one slice of a batch
// (sliceEntries), never the whole file, so its memory does not grow with
// the file. It reads no clock and no configuration: the same rows give the
// same bytes, which are exactly what moov-io/ach's Writer writes for the
// same file (TestWriteACHEqualsMoovWriter). Every slice is created as an
// ach.Batch under moov-io/ach's default (strict) validation — entries,
// SEC rules, service class, ascending traces — and the slices of a batch
// are checked to ascend too; the batch and file control records are
// moov-io/ach's, filled with the totals of the validated slices, as
// ach.Batch and ach.File compute them. An entry that cannot be written is
// reported (badEntriesError) with every other one in the file, and
// nothing written is usable then.
func writeACH(rec fileRecord, offsetAccount string, batches []batchRecord, next entrySource, w io.Writer) error {
	fh := fileHeader(rec)
	if err := fh.Validate(); err != nil {
		return fmt.Errorf("nacha: file %s: %w", rec.FileID, nachafile.Redact(err))
	}
	lw := &lineWriter{w: w}
	lw.line(fh.String())

	pending, havePending, err := next()
	if err != nil {
		return err
	}
	var bad []setAsideRow
	// File control totals: records, entry hash, amounts (ach.File.Create).
	records, fileEntries, fileHash, fileDebits, fileCredits := 2, 0, 0, 0, 0
	for _, b := range batches {
		bh := batchHeader(rec, b)
		if len(bad) == 0 {
			lw.line(bh.String())
		}
		var count int
		var amount int64
		// Batch control totals over its slices (ach.Batch.build).
		entryCount, hash, debitSum, creditSum := 0, 0, 0, 0
		lastTrace := ""
		slice := make([]*ach.EntryDetail, 0, min(sliceEntries, b.EntryCount+1))
		ids := make([]int64, 0, cap(slice)) // entry ids in slice order, to name an entry moov-io/ach refuses
		for {
			slice, ids = slice[:0], ids[:0]
			for havePending && pending.Batch == b.Number && len(slice) < sliceEntries {
				if pending.Bad != "" {
					bad = append(bad, setAsideRow{EntryID: pending.EntryID, Reason: pending.Bad})
				} else {
					slice = append(slice, entryDetail(pending, b.Credits))
					ids = append(ids, pending.EntryID)
				}
				count++
				amount += pending.AmountCents
				if pending, havePending, err = next(); err != nil {
					return err
				}
			}
			last := !havePending || pending.Batch != b.Number
			if last && b.OffsetTrace != "" {
				slice = append(slice, offsetEntry(rec, offsetAccount, b))
			}
			if len(bad) == 0 && len(slice) > 0 {
				batch, err := ach.NewBatch(bh)
				if err != nil {
					return fmt.Errorf("nacha: batch %d: %w", b.Number, nachafile.Redact(err))
				}
				for _, ed := range slice {
					batch.AddEntry(ed)
				}
				if err := batch.Create(); err != nil {
					// Name the entries moov-io/ach refuses on their own, so
					// they can be set aside; a batch failing for another
					// reason fails the file (README: recovering a file
					// stuck in building).
					for i, ed := range slice[:len(ids)] {
						if verr := ed.Validate(); verr != nil {
							bad = append(bad, setAsideRow{EntryID: ids[i], Reason: "fails NACHA validation: " + nachafile.RedactedText(verr)})
						}
					}
					if len(bad) == 0 {
						return fmt.Errorf("nacha: batch %d of file %s fails NACHA validation: %w", b.Number, rec.FileID,
							nachafile.Redact(err))
					}
				} else {
					if lastTrace != "" && slice[0].TraceNumber <= lastTrace {
						return fmt.Errorf("nacha: batch %d of file %s: trace numbers do not ascend", b.Number, rec.FileID)
					}
					lastTrace = slice[len(slice)-1].TraceNumber
					c := batch.GetControl()
					entryCount += c.EntryAddendaCount
					hash += c.EntryHash
					debitSum += c.TotalDebitEntryDollarAmount
					creditSum += c.TotalCreditEntryDollarAmount
					for _, ed := range slice {
						lw.line(ed.String())
					}
				}
			}
			if last {
				break
			}
		}
		if count != b.EntryCount || amount != b.entryTotal() {
			return fmt.Errorf("nacha: batch %d of file %s has %d entries totalling %d, recorded %d totalling %d",
				b.Number, rec.FileID, count, amount, b.EntryCount, b.entryTotal())
		}
		if len(bad) > 0 {
			continue // the file is built again without them
		}
		if entryCount == 0 {
			return fmt.Errorf("nacha: batch %d of file %s has no entries", b.Number, rec.FileID)
		}
		bc := ach.NewBatchControl()
		bc.ServiceClassCode = bh.ServiceClassCode
		bc.CompanyIdentification = bh.CompanyIdentification
		bc.ODFIIdentification = bh.ODFIIdentification
		bc.BatchNumber = bh.BatchNumber
		bc.EntryAddendaCount = entryCount
		bc.EntryHash = hash % 10_000_000_000
		bc.TotalDebitEntryDollarAmount, bc.TotalCreditEntryDollarAmount = debitSum, creditSum
		if err := bc.Validate(); err != nil {
			return fmt.Errorf("nacha: batch %d of file %s: %w", b.Number, rec.FileID, nachafile.Redact(err))
		}
		lw.line(bc.String())
		records += 2 + entryCount
		fileEntries += entryCount
		fileHash += bc.EntryHash
		fileDebits += debitSum
		fileCredits += creditSum
	}
	if havePending {
		return fmt.Errorf("nacha: file %s has an entry in unknown batch %d", rec.FileID, pending.Batch)
	}
	if len(bad) > 0 {
		return &badEntriesError{FileID: rec.FileID, Entries: bad}
	}
	if len(batches) == 0 {
		return fmt.Errorf("nacha: file %s: %w", rec.FileID, ach.ErrFileNoBatches)
	}
	fc := ach.NewFileControl()
	fc.BatchCount = len(batches)
	fc.BlockCount = (records + 9) / 10
	fc.EntryAddendaCount = fileEntries
	fc.EntryHash = fileHash % 10_000_000_000
	fc.TotalDebitEntryDollarAmountInFile = fileDebits
	fc.TotalCreditEntryDollarAmountInFile = fileCredits
	if err := fc.Validate(); err != nil {
		return fmt.Errorf("nacha: file %s: %w", rec.FileID, nachafile.Redact(err))
	}
	lw.line(fc.String())
	// Blocks of ten records, the last one filled with lines of nines.
	for lw.n%10 != 0 {
		lw.line(paddingLine)
	}
	return lw.err
}

// paddingLine fills a file's last block (NACHA blocking factor 10).
var paddingLine = strings.Repeat("9", 94)

// lineWriter writes records, one a line, and keeps the first error.
type lineWriter struct {
	w   io.Writer
	n   int
	err error
}

func (l *lineWriter) line(s string) {
	if l.err != nil {
		return
	}
	if _, l.err = io.WriteString(l.w, s); l.err == nil {
		_, l.err = io.WriteString(l.w, "\n")
	}
	l.n++
}

// entryDetail is e's entry detail record: a debit, or a refund credit in a
// credit batch.
func entryDetail(e entryRecord, credit bool) *ach.EntryDetail {
	ed := ach.NewEntryDetail()
	ed.TransactionCode = debitCode(e.AccountType)
	if credit {
		ed.TransactionCode = creditCode(e.AccountType)
	}
	ed.SetRDFI(e.RDFI)
	ed.DFIAccountNumber = e.AccountNumber
	ed.Amount = int(e.AmountCents)
	ed.IdentificationNumber = identification(e.LineItemID)
	ed.IndividualName = e.Name
	ed.DiscretionaryData = e.PayType
	ed.TraceNumber = e.Trace
	ed.Category = ach.CategoryForward
	return ed
}

// offsetEntry is the balancing entry of a batch to the org's own account:
// a credit balancing debits, a debit balancing refund credits.
func offsetEntry(rec fileRecord, account string, b batchRecord) *ach.EntryDetail {
	ed := ach.NewEntryDetail()
	ed.TransactionCode = creditCode(rec.OffsetType)
	if b.Credits {
		ed.TransactionCode = debitCode(rec.OffsetType)
	}
	ed.SetRDFI(rec.OffsetRouting)
	ed.DFIAccountNumber = account
	ed.Amount = int(b.offsetTotal())
	ed.IdentificationNumber = "OFFSET"
	ed.IndividualName = nachaText(rec.CompanyName, 22)
	if b.SEC == ach.WEB {
		ed.DiscretionaryData = "S"
	}
	ed.TraceNumber = b.OffsetTrace
	ed.Category = ach.CategoryForward
	return ed
}

// identification is the entry's Identification Number: the line item id,
// which is what a servicer recognises on a return (truncated to the
// field's 15 characters).
func identification(lineItemID string) string {
	if len(lineItemID) > 15 {
		return lineItemID[:15]
	}
	return lineItemID
}

// writeFile builds the file for rec and writes it to w.
func (p *Processor) writeFile(ctx context.Context, rec fileRecord, w io.Writer) error {
	batches, err := p.loadBatches(ctx, rec.FileID)
	if err != nil {
		return err
	}
	var offsetAccount string
	if rec.Balanced {
		plain, err := p.ring.Open(rec.OffsetAccountEnc, fileOffsetContext(rec.FileID))
		if err != nil {
			return fmt.Errorf("nacha: open offset account of file %s: %w", rec.FileID, err)
		}
		offsetAccount = string(plain)
	}
	next := p.streamEntries(ctx, rec.FileID, rec.OrgID)
	if !rec.Materialized {
		next = p.streamClaimedEntries(ctx, rec)
	}
	if err := writeACH(rec, offsetAccount, batches, next, w); err != nil {
		return fmt.Errorf("nacha: write file %s: %w", rec.FileID, err)
	}
	return nil
}
