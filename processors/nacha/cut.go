package nacha

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moov-io/ach"

	"github.com/payrail/payrail/internal/store"
)

// maxTraceSequence is the last of the 7-digit trace sequence numbers.
const maxTraceSequence = 9_999_999

// dueEntriesSQL reads an org's due entries with everything a file needs of
// them, in file order (direction — debits first —, SEC code, effective
// date, entry id: the order of nacha_entries_due_idx, so PostgreSQL streams
// them without sorting). A refund credit comes with its original debit's
// status (looked up for credits only): it waits while the debit is
// unsettled (refundHeld).
const dueEntriesSQL = `
	SELECT e.entry_id, e.line_item_id, e.attempt_id, e.standard_entry_class, e.effective_entry_date,
	       e.amount_cents, e.rdfi_routing, e.individual_name, e.account_type, e.account_number_enc,
	       e.payment_type_code, e.direction = 'credit',
	       CASE WHEN e.reverses_entry_id IS NOT NULL THEN
	           (SELECT o.status FROM nacha_entries o WHERE o.entry_id = e.reverses_entry_id) END
	  FROM nacha_entries e
	 WHERE e.org_id = $1 AND e.status = 'staged' AND e.effective_entry_date <= $2 AND e.staged_at < $3
	 ORDER BY e.direction DESC, e.standard_entry_class, e.effective_entry_date, e.entry_id`

// createFile cuts a new file from the org's due staged entries in one pass
// over them, inside one transaction: it reads the entries in file order,
// plans their batches as they come (planner) and writes them (fileWriter)
// into the file's fsynced temp file, then records the file row (with its
// header snapshot), its batches and its claims — every entry's batch and
// trace sequence, set-wise (arrays of assignChunk entries a row) rather
// than on each entry — and commits. Entries that cannot be written into
// any file are set aside in the same transaction (their payments
// INVALID). A file takes as many entries as fit its limits; more says
// entries were left for another file. It returns ok=false when the org has
// nothing (writable) due.
//
// The drop's advisory lock keeps the entries read from changing before
// the commit (a reversal takes it too); refund credits are also locked
// before they are read, against a return of their debit. After the commit
// the file's content is fixed: the temp file holds it, and building it
// again from these rows (writeFile, after a crash) gives the same bytes.
// Each entry's own row is written later, off the path to a durable file
// (materialize); the org's files still unmaterialized are materialized
// first here, so no claimed entry is read as due.
func (p *Processor) createFile(ctx context.Context, orgID string, cutoffAt time.Time) (rec fileRecord, built builtFile, ok, more bool, err error) {
	now := p.clock()
	horizon := p.cal.EffectiveEntryDate(p.cal.NextCutoff(cutoffAt.Add(-time.Nanosecond)))
	earliest := p.cal.NextBankingDay(p.cal.DateOf(now))
	if err := p.releaseInterruptedCreations(ctx, orgID, now); err != nil {
		return rec, built, false, false, fmt.Errorf("nacha: create file for org %s: %w", orgID, err)
	}
	if err := p.materializePending(ctx, orgID, false); err != nil {
		return rec, built, false, false, fmt.Errorf("nacha: create file for org %s: %w", orgID, err)
	}
	due := dueQuery{org: orgID, earliest: earliest, horizon: horizon, cutoffAt: cutoffAt}
	var setAside int
	var temp string
	var recordBegan time.Time
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rec, built, ok, more, setAside, temp = fileRecord{}, builtFile{}, false, false, 0, ""
		// The due entries' scan is estimated costly enough for JIT
		// compilation, which takes longer (a quarter of a second) than
		// streaming 200,000 rows in index order.
		if _, err := tx.Exec(ctx, `SET LOCAL jit = off`); err != nil {
			return err
		}
		var any bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM nacha_entries
			 WHERE org_id = $1 AND status = 'staged' AND effective_entry_date <= $2 AND staged_at < $3)`,
			orgID, horizon, cutoffAt).Scan(&any); err != nil || !any {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM nacha_entries
			 WHERE org_id = $1 AND status = 'staged' AND direction = 'credit' AND effective_entry_date <= $2
			   AND staged_at < $3 FOR UPDATE`, orgID, horizon, cutoffAt); err != nil {
			return fmt.Errorf("lock due refund credits: %w", err)
		}
		var offsetAccount string
		var err error
		if rec, offsetAccount, err = p.newFileRecord(ctx, tx, orgID, cutoffAt, now); err != nil {
			return err
		}
		odfi := rec.Origin[:8]
		if rec.TraceBase, err = lockTraceCounter(ctx, tx, odfi); err != nil {
			return err
		}
		var pass passResult
		passBegan := time.Now()
		for tries := 0; ; tries++ {
			pass, err = p.writeNewFile(ctx, tx, rec, offsetAccount, due)
			temp = pass.temp
			var be *badEntriesError
			switch {
			case errors.As(err, &be) && tries < 3:
				// Entries moov-io/ach refuses on their own: set aside,
				// and the file is written again without them.
				n, err := p.setAsideEntries(ctx, tx, "", be.Entries, now)
				if err != nil {
					return err
				}
				setAside += n
				continue
			case err != nil:
				return err
			case rec.TraceBase > 0 && rec.TraceBase+pass.used > maxTraceSequence:
				// The sequence restarts at 1 rather than wrap inside the
				// file, so traces always ascend within it.
				rec.TraceBase = 0
				continue
			}
			break
		}
		if len(pass.bad) > 0 {
			n, err := p.setAsideEntries(ctx, tx, "", pass.bad, now)
			if err != nil {
				return err
			}
			setAside += n
		}
		if pass.entries == 0 {
			return nil
		}
		recordBegan = time.Now()
		built, more = builtFile{sum: pass.sum, size: pass.size, passTook: recordBegan.Sub(passBegan)}, pass.more
		rec.BatchCount = len(pass.batches)
		for _, b := range pass.batches {
			rec.EntryCount += b.EntryCount
			rec.DebitTotal += b.DebitTotal
			rec.CreditTotal += b.CreditTotal
		}
		if _, err := tx.Exec(ctx, `UPDATE nacha_trace_counters SET last_sequence = $2 WHERE odfi_identification = $1`,
			odfi, rec.TraceBase+pass.used); err != nil {
			return fmt.Errorf("advance the trace counter: %w", err)
		}
		if err := p.insertFile(ctx, tx, rec, pass); err != nil {
			return err
		}
		ok = true
		return nil
	})
	if err != nil || !ok {
		if temp != "" {
			_ = os.Remove(temp)
		}
	}
	if err != nil {
		return fileRecord{}, builtFile{}, false, false, fmt.Errorf("nacha: create file for org %s: %w", orgID, err)
	}
	if ok {
		built.recordTook = time.Since(recordBegan)
	}
	if setAside > 0 {
		p.metrics.setAside.Add(float64(setAside))
	}
	return rec, built, ok, more, nil
}

// dueQuery says which staged entries a cutoff takes.
type dueQuery struct {
	org               string
	earliest, horizon time.Time // the first possible effective date; the last one due
	cutoffAt          time.Time // staged before it
}

// newFileRecord is the row of a new file of the org: its header snapshot
// of the org's NACHA config (the offset account sealed to the file), its
// name and file ID modifier. It also returns the offset account number.
func (p *Processor) newFileRecord(ctx context.Context, tx pgx.Tx, orgID string, cutoffAt, now time.Time) (fileRecord, string, error) {
	cfg, offsetAccount, err := readNachaConfig(ctx, tx, p, orgID)
	if err != nil {
		return fileRecord{}, "", err
	}
	rec := fileRecord{
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
			return fileRecord{}, "", fmt.Errorf("org %s has a balanced NACHA config without an offset account", orgID)
		}
		rec.OffsetRouting, rec.OffsetType = cfg.Offset.RoutingNumber, cfg.Offset.AccountType
		if rec.OffsetAccountEnc, err = p.ring.Seal([]byte(offsetAccount), fileOffsetContext(rec.FileID)); err != nil {
			return fileRecord{}, "", fmt.Errorf("seal offset account: %w", err)
		}
	}
	if rec.Modifier, err = nextModifier(ctx, tx, rec.Destination, rec.CreationDate); err != nil {
		return fileRecord{}, "", err
	}
	rec.FileName = fmt.Sprintf("PAYRAIL_%s_%s_%s_%s_%s.ach", rec.CreationDate.Format("20060102"),
		rec.CreationTime, rec.Destination, rec.Modifier, rec.FileID)
	return rec, offsetAccount, nil
}

// passResult is what one pass over the due entries wrote.
type passResult struct {
	temp      string // the temp file's path, once created
	sum       []byte
	size      int64
	batches   []batchRecord
	entries   int
	used      int64         // trace sequences used: entries and offsets
	bad       []setAsideRow // entries no file can take
	more      bool          // due entries are left for another file
	ids       []int64       // the claims: entry, batch, trace sequence
	batchNums []int32
	seqs      []int64
}

// writeNewFile reads the due entries in file order and writes as many as
// fit into rec's temp file, fsynced. Entries no file can take are
// returned (bad) instead, to be set aside. A file with no entries leaves
// no temp file.
//
// Reading and writing overlap: readDue decodes the rows, opens the
// account numbers and makes the entry records in a goroutine of its own,
// a page ahead of the planner and the writer, so the pass uses both cores
// (PostgreSQL streaming the rows uses a third share) rather than taking
// turns.
func (p *Processor) writeNewFile(ctx context.Context, tx pgx.Tx, rec fileRecord, offsetAccount string, due dueQuery) (res passResult, err error) {
	t, err := p.createTemp(rec)
	if err != nil {
		return res, err
	}
	res.temp = t.path
	defer func() {
		if err != nil || res.entries == 0 {
			t.abort()
			res.temp = ""
		}
	}()
	fw, err := newFileWriter(rec, offsetAccount, t)
	if err != nil {
		return res, err
	}
	pl := newPlanner(rec.Balanced, rec.OffsetPlacement, p.limits, rec.Origin[:8], rec.TraceBase)

	pages := make(chan []dueRow, 4)
	stop := make(chan struct{})
	var readErr error
	go func() {
		defer close(pages)
		readErr = p.readDue(ctx, tx, rec.OrgID, due, pages, stop)
	}()
	// Whatever ends the pass, the reader is stopped and waited for: the
	// transaction's connection is free again when pages is closed.
	stopped := false
	halt := func() {
		if !stopped {
			close(stop)
			stopped = true
		}
		for range pages {
		}
	}
	defer halt()
	for page := range pages {
		for i := range page {
			r := &page[i]
			if r.bad != "" {
				res.bad = append(res.bad, setAsideRow{EntryID: r.due.ID, Reason: r.bad})
				continue
			}
			fits, closed, opened := pl.add(&r.due)
			if !fits {
				if len(res.ids) == 0 {
					return res, fmt.Errorf("entry %d does not fit an empty file (limits %+v)", r.due.ID, p.limits)
				}
				res.more = true
				break
			}
			if err := closeBatches(fw, closed); err != nil {
				return res, err
			}
			if opened {
				fw.openBatch(*pl.current())
			}
			r.ed.TraceNumber = pl.trace(r.due.Seq)
			if err := fw.entry(r.due.ID, r.due.Amount, r.ed); err != nil {
				return res, err
			}
			res.ids = append(res.ids, r.due.ID)
			res.batchNums = append(res.batchNums, r.due.Batch)
			res.seqs = append(res.seqs, r.due.Seq)
		}
		if res.more {
			break
		}
	}
	halt()
	if readErr != nil {
		return res, fmt.Errorf("read due entries: %w", readErr)
	}
	if res.entries = len(res.ids); res.entries == 0 {
		return res, nil
	}
	if err := closeBatches(fw, pl.finish()); err != nil {
		return res, err
	}
	if err := fw.close(); err != nil {
		return res, err
	}
	if res.sum, res.size, err = t.commit(); err != nil {
		return res, err
	}
	res.batches, res.used = pl.batches, pl.seq
	return res, nil
}

// dueRow is a due entry as readDue hands it on: what planning needs, and
// its entry record (without a trace number yet), or why it cannot be
// written.
type dueRow struct {
	due dueEntry
	ed  *ach.EntryDetail
	bad string
}

// duePage is how many due rows readDue hands on at a time.
const duePage = 512

// readDue streams the due entries (dueEntriesSQL) in pages to out until
// they end or stop is closed. Refund credits still held are left out;
// entries no file can take come with the reason. Rows are decoded from
// their raw values (decodeDue), without the per-column allocations of
// Scan: measured at 300,000 entries, the writer waited for the reader
// (313 of 586 pages) far more often than the reader for the writer (51).
func (p *Processor) readDue(ctx context.Context, tx pgx.Tx, orgID string, due dueQuery, out chan<- []dueRow, stop <-chan struct{}) error {
	rows, err := tx.Query(ctx, dueEntriesSQL, orgID, due.horizon, due.cutoffAt)
	if err != nil {
		return err
	}
	defer rows.Close()
	formats := make([]int16, 0, 13)
	for _, fd := range rows.FieldDescriptions() {
		formats = append(formats, fd.Format)
	}
	page := make([]dueRow, 0, duePage)
	send := func() bool {
		select {
		case out <- page:
			page = make([]dueRow, 0, duePage)
			return true
		case <-stop:
			return false
		}
	}
	aad := make([]byte, 0, 128) // the account number's additional data: entryContext
	for rows.Next() {
		var r dueRow
		var e entryRecord
		d := &r.due
		raw := rows.RawValues()
		if len(raw) != len(formats) {
			return fmt.Errorf("due entries: %d columns, want %d", len(raw), len(formats))
		}
		attemptID, sealed, original, err := decodeDue(raw, formats, d, &e)
		if err != nil {
			return fmt.Errorf("due entries: %w", err)
		}
		if d.Effective.Before(due.earliest) {
			d.Effective = due.earliest
		}
		d.Purged = sealed == nil
		if d.Credit {
			var status *string
			if original != nil {
				s := string(original)
				status = &s
			}
			held, why := refundHeld(status)
			if held && why == "" {
				continue
			}
			r.bad = why
		}
		if r.bad == "" {
			r.bad = d.unwritable(p.limits)
		}
		if r.bad == "" {
			aad = append(append(append(aad[:0], "nacha_entries/"...), orgID...), '/')
			plain, err := p.ring.Open(sealed, append(aad, attemptID...))
			if err != nil {
				r.bad = "the account number cannot be opened: " + err.Error()
			} else {
				e.AccountNumber = string(plain)
				e.AmountCents, e.RDFI, e.AccountType, e.Name = d.Amount, d.RDFI, d.AccountType, d.Name
				r.ed = entryDetail(e, d.Credit)
			}
		}
		if page = append(page, r); len(page) == duePage && !send() {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(page) > 0 {
		send()
	}
	return nil
}

// decodeDue decodes one row of dueEntriesSQL from its raw values (in the
// binary or the text wire format: the pool's query mode decides) into d
// and e. It returns what is only needed while the row is current: the
// attempt id, the sealed account number (nil when purged) and the refund's
// original debit status (nil when not a refund, or no debit).
func decodeDue(raw [][]byte, formats []int16, d *dueEntry, e *entryRecord) (attemptID, sealed, original []byte, err error) {
	if d.ID, err = rawInt8(raw[0], formats[0]); err != nil {
		return nil, nil, nil, fmt.Errorf("entry_id: %w", err)
	}
	e.LineItemID = string(raw[1])
	attemptID = raw[2]
	d.SEC = internCode(raw[3])
	if d.Effective, err = rawDate(raw[4], formats[4]); err != nil {
		return nil, nil, nil, fmt.Errorf("entry %d: effective_entry_date: %w", d.ID, err)
	}
	if d.Amount, err = rawInt8(raw[5], formats[5]); err != nil {
		return nil, nil, nil, fmt.Errorf("entry %d: amount_cents: %w", d.ID, err)
	}
	d.RDFI, d.Name = string(raw[6]), string(raw[7])
	d.AccountType = internCode(raw[8])
	sealed = raw[9]
	if formats[9] != pgx.BinaryFormatCode && sealed != nil {
		// bytea as text: \x and hex digits.
		if sealed, err = hexBytea(sealed); err != nil {
			return nil, nil, nil, fmt.Errorf("entry %d: account_number_enc: %w", d.ID, err)
		}
	}
	e.PayType = internCode(raw[10])
	if d.Credit, err = rawBool(raw[11], formats[11]); err != nil {
		return nil, nil, nil, fmt.Errorf("entry %d: direction: %w", d.ID, err)
	}
	return attemptID, sealed, raw[12], nil
}

// rawInt8 decodes a non-null bigint.
func rawInt8(src []byte, format int16) (int64, error) {
	if format == pgx.BinaryFormatCode {
		if len(src) != 8 {
			return 0, fmt.Errorf("%d bytes for a bigint", len(src))
		}
		return int64(binary.BigEndian.Uint64(src)), nil
	}
	return strconv.ParseInt(string(src), 10, 64)
}

// rawDate decodes a non-null date (UTC midnight, as pgx scans one).
func rawDate(src []byte, format int16) (time.Time, error) {
	if format == pgx.BinaryFormatCode {
		if len(src) != 4 {
			return time.Time{}, fmt.Errorf("%d bytes for a date", len(src))
		}
		days := int32(binary.BigEndian.Uint32(src)) // since 2000-01-01
		return time.Date(2000, 1, 1+int(days), 0, 0, 0, 0, time.UTC), nil
	}
	return time.Parse(time.DateOnly, string(src))
}

// rawBool decodes a non-null boolean.
func rawBool(src []byte, format int16) (bool, error) {
	if len(src) != 1 {
		return false, fmt.Errorf("%d bytes for a boolean", len(src))
	}
	if format == pgx.BinaryFormatCode {
		return src[0] == 1, nil
	}
	return src[0] == 't', nil
}

// hexBytea decodes a bytea in PostgreSQL's text (hex) format.
func hexBytea(src []byte) ([]byte, error) {
	if len(src) < 2 || src[0] != '\\' || src[1] != 'x' {
		return nil, errors.New("not in hex format")
	}
	out := make([]byte, hex.DecodedLen(len(src)-2))
	_, err := hex.Decode(out, src[2:])
	return out, err
}

// closeBatches closes the batches a planner closed, in order: an offset
// batch is opened and closed whole.
func closeBatches(fw *fileWriter, closed []batchRecord) error {
	for _, b := range closed {
		if b.OffsetOnly {
			fw.openBatch(b)
		}
		if err := fw.closeBatch(b); err != nil {
			return err
		}
	}
	return nil
}

// insertFile records a new file: its row (building), its batches and its
// claims, sent together.
func (p *Processor) insertFile(ctx context.Context, tx pgx.Tx, rec fileRecord, pass passResult) error {
	b := &pgx.Batch{}
	b.Queue(`
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
		rec.OffsetPlacement, rec.TraceBase)
	var secs, traces []string
	var dates []time.Time
	var nums, counts []int32
	var debits, credits []int64
	var offsetOnly, creditBatches []bool
	for _, b := range pass.batches {
		secs, dates, nums = append(secs, b.SEC), append(dates, b.EffectiveDate), append(nums, int32(b.Number))
		counts, debits, credits = append(counts, int32(b.EntryCount)), append(debits, b.DebitTotal), append(credits, b.CreditTotal)
		traces, offsetOnly = append(traces, b.OffsetTrace), append(offsetOnly, b.OffsetOnly)
		creditBatches = append(creditBatches, b.Credits)
	}
	b.Queue(`
		INSERT INTO nacha_batches (file_id, batch_number, standard_entry_class, effective_entry_date,
		    entry_count, debit_total_cents, credit_total_cents, offset_trace_number, offset_only, credits)
		SELECT $1, n, sec, eff, c, d, cr, NULLIF(t, ''), oo, cb
		  FROM unnest($2::int[], $3::text[], $4::date[], $5::int[], $6::bigint[], $7::bigint[], $8::text[],
		              $9::bool[], $10::bool[]) AS b(n, sec, eff, c, d, cr, t, oo, cb)`,
		rec.FileID, nums, secs, dates, counts, debits, credits, traces, offsetOnly, creditBatches)
	chunk := p.assignChunk
	if chunk <= 0 {
		chunk = defaultAssignChunk
	}
	for lo, n := 0, 0; lo < len(pass.ids); lo, n = lo+chunk, n+1 {
		hi := min(lo+chunk, len(pass.ids))
		b.Queue(`INSERT INTO nacha_file_claims (file_id, chunk, entry_ids, batch_numbers, sequences)
			VALUES ($1, $2, $3, $4, $5)`, rec.FileID, n, pass.ids[lo:hi], pass.batchNums[lo:hi], pass.seqs[lo:hi])
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record file %s: %w", rec.FileID, err)
	}
	return nil
}

// lockTraceCounter locks the ODFI's trace counter for the transaction and
// returns its last sequence used. Trace numbers are unique per ODFI
// within one cycle of 9,999,999 entries, not forever: returns are matched
// on the trace number and the original entry's fields (matchEntry).
func lockTraceCounter(ctx context.Context, tx pgx.Tx, odfi string) (int64, error) {
	var last int64
	err := tx.QueryRow(ctx, `
		INSERT INTO nacha_trace_counters (odfi_identification, last_sequence) VALUES ($1, 0)
		ON CONFLICT (odfi_identification) DO UPDATE SET last_sequence = nacha_trace_counters.last_sequence
		RETURNING last_sequence`, odfi).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("lock the trace counter: %w", err)
	}
	return last, nil
}
