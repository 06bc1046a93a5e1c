package nacha

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moov-io/ach"

	"github.com/payrail/payrail/internal/store"
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

// internCode returns a SEC code, account type or payment type code read
// from a row as a shared constant when it is one of those, so a million
// due entries do not each allocate their own copy.
func internCode(b []byte) string {
	switch string(b) {
	case "":
		return ""
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
	case "S":
		return "S"
	case "R":
		return "R"
	}
	return string(b)
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
// moov-io/ach's own structures is held. Trace order is batch order: the
// planner numbers entries batch by batch, and a file's sequence never
// wraps inside it (createFile).
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
// carries its own offset), which is known when the batch opens, before
// its totals.
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
	case b.OffsetOnly && b.Credits: // the debit offsetting refund credits
		bh.ServiceClassCode = ach.DebitsOnly
	case b.OffsetOnly:
		bh.ServiceClassCode = ach.CreditsOnly
	case b.OffsetTrace != "" || b.sameBatchOffset: // entries and their offset
		bh.ServiceClassCode = ach.MixedDebitsAndCredits
	case b.Credits:
		bh.ServiceClassCode = ach.CreditsOnly
	default:
		bh.ServiceClassCode = ach.DebitsOnly
	}
	return bh
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
