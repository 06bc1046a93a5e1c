package nacha

import (
	"fmt"
	"io"

	"github.com/moov-io/ach"

	"github.com/payrail/payrail/processors/nacha/nachafile"
)

// sliceEntries is how many entries a fileWriter holds (and moov-io/ach
// validates) at a time.
const sliceEntries = 10_000

// fileWriter writes a NACHA file record by record as its batches and
// entries arrive — the file header, then each batch opened, its entries,
// and closed with its final totals, then the file control — so it holds
// one slice of a batch (sliceEntries), never the whole file, and its
// memory does not grow with the file. It reads no clock and no
// configuration: the same records give the same bytes, which are exactly
// what moov-io/ach's Writer writes for the same file
// (TestWriteACHEqualsMoovWriter). Every slice is created as an ach.Batch
// under moov-io/ach's default (strict) validation — entries, SEC rules,
// service class, ascending traces — and the slices of a batch are checked
// to ascend too; the batch and file control records are moov-io/ach's,
// filled with the totals of the validated slices, as ach.Batch and
// ach.File compute them. An entry that cannot be written is reported
// (badEntriesError, from close) with every other one in the file, and
// nothing written is usable then.
type fileWriter struct {
	rec           fileRecord
	offsetAccount string
	lw            lineWriter
	bad           []setAsideRow

	// The open batch.
	bh        *ach.BatchHeader
	slice     []*ach.EntryDetail
	ids       []int64 // entry ids in slice order, to name an entry moov-io/ach refuses
	count     int     // entries received, written or not
	amount    int64
	lastTrace string
	// The open batch's control totals over its validated slices
	// (ach.Batch.build).
	entryCount, hash, debitSum, creditSum int

	// File control totals (ach.File.Create).
	records, batches, entries, fileHash, debits, credits int
}

// newFileWriter writes rec's file header to w.
func newFileWriter(rec fileRecord, offsetAccount string, w io.Writer) (*fileWriter, error) {
	fh := fileHeader(rec)
	if err := fh.Validate(); err != nil {
		return nil, fmt.Errorf("nacha: file %s: %w", rec.FileID, nachafile.Redact(err))
	}
	fw := &fileWriter{rec: rec, offsetAccount: offsetAccount, lw: lineWriter{w: w}, records: 2}
	fw.lw.line(fh.String())
	return fw, nil
}

// openBatch starts batch b; only what batchHeader reads of it is needed
// yet.
func (fw *fileWriter) openBatch(b batchRecord) {
	fw.bh = batchHeader(fw.rec, b)
	if len(fw.bad) == 0 {
		fw.lw.line(fw.bh.String())
	}
	fw.slice, fw.ids = fw.slice[:0], fw.ids[:0]
	fw.count, fw.amount, fw.lastTrace = 0, 0, ""
	fw.entryCount, fw.hash, fw.debitSum, fw.creditSum = 0, 0, 0, 0
}

// entry adds an entry (its id, amount and record) to the open batch.
func (fw *fileWriter) entry(id, amount int64, ed *ach.EntryDetail) error {
	fw.count++
	fw.amount += amount
	if len(fw.slice) == sliceEntries {
		if err := fw.flush(); err != nil {
			return err
		}
	}
	fw.slice = append(fw.slice, ed)
	fw.ids = append(fw.ids, id)
	return nil
}

// badEntry counts an entry of the open batch that cannot be written, and
// why: the file is reported unwritable (close) with it.
func (fw *fileWriter) badEntry(id, amount int64, why string) {
	fw.count++
	fw.amount += amount
	fw.bad = append(fw.bad, setAsideRow{EntryID: id, Reason: why})
}

// flush validates the slice held and writes it.
func (fw *fileWriter) flush() error {
	slice, ids := fw.slice, fw.ids
	fw.slice, fw.ids = fw.slice[:0], fw.ids[:0]
	if len(fw.bad) > 0 || len(slice) == 0 {
		return nil
	}
	batch, err := ach.NewBatch(fw.bh)
	if err != nil {
		return fmt.Errorf("nacha: batch %d: %w", fw.bh.BatchNumber, nachafile.Redact(err))
	}
	for _, ed := range slice {
		batch.AddEntry(ed)
	}
	if err := batch.Create(); err != nil {
		// Name the entries moov-io/ach refuses on their own, so they can
		// be set aside; a batch failing for another reason fails the file
		// (README: recovering a file stuck in building).
		for i, ed := range slice[:len(ids)] { // not the offset
			if verr := ed.Validate(); verr != nil {
				fw.bad = append(fw.bad, setAsideRow{EntryID: ids[i], Reason: "fails NACHA validation: " + nachafile.RedactedText(verr)})
			}
		}
		if len(fw.bad) == 0 {
			return fmt.Errorf("nacha: batch %d of file %s fails NACHA validation: %w", fw.bh.BatchNumber, fw.rec.FileID,
				nachafile.Redact(err))
		}
		return nil
	}
	if fw.lastTrace != "" && slice[0].TraceNumber <= fw.lastTrace {
		return fmt.Errorf("nacha: batch %d of file %s: trace numbers do not ascend", fw.bh.BatchNumber, fw.rec.FileID)
	}
	fw.lastTrace = slice[len(slice)-1].TraceNumber
	c := batch.GetControl()
	fw.entryCount += c.EntryAddendaCount
	fw.hash += c.EntryHash
	fw.debitSum += c.TotalDebitEntryDollarAmount
	fw.creditSum += c.TotalCreditEntryDollarAmount
	for _, ed := range slice {
		fw.lw.line(ed.String())
	}
	return nil
}

// closeBatch ends the open batch, which is b with its final totals and
// offset: it writes the offset entry (if b carries one) with the last
// slice, checks that the entries received are what b records, and writes
// the batch control.
func (fw *fileWriter) closeBatch(b batchRecord) error {
	if b.OffsetTrace != "" {
		fw.slice = append(fw.slice, offsetEntry(fw.rec, fw.offsetAccount, b))
	}
	if err := fw.flush(); err != nil {
		return err
	}
	if fw.count != b.EntryCount || fw.amount != b.entryTotal() {
		return fmt.Errorf("nacha: batch %d of file %s has %d entries totalling %d, recorded %d totalling %d",
			b.Number, fw.rec.FileID, fw.count, fw.amount, b.EntryCount, b.entryTotal())
	}
	fw.batches++
	if len(fw.bad) > 0 {
		return nil // the file is built again without them
	}
	if fw.entryCount == 0 {
		return fmt.Errorf("nacha: batch %d of file %s has no entries", b.Number, fw.rec.FileID)
	}
	bc := ach.NewBatchControl()
	bc.ServiceClassCode = fw.bh.ServiceClassCode
	bc.CompanyIdentification = fw.bh.CompanyIdentification
	bc.ODFIIdentification = fw.bh.ODFIIdentification
	bc.BatchNumber = fw.bh.BatchNumber
	bc.EntryAddendaCount = fw.entryCount
	bc.EntryHash = fw.hash % 10_000_000_000
	bc.TotalDebitEntryDollarAmount, bc.TotalCreditEntryDollarAmount = fw.debitSum, fw.creditSum
	if err := bc.Validate(); err != nil {
		return fmt.Errorf("nacha: batch %d of file %s: %w", b.Number, fw.rec.FileID, nachafile.Redact(err))
	}
	fw.lw.line(bc.String())
	fw.records += 2 + fw.entryCount
	fw.entries += fw.entryCount
	fw.fileHash += bc.EntryHash
	fw.debits += fw.debitSum
	fw.credits += fw.creditSum
	return nil
}

// close writes the file control and the last block's padding, or reports
// the entries that could not be written.
func (fw *fileWriter) close() error {
	if len(fw.bad) > 0 {
		return &badEntriesError{FileID: fw.rec.FileID, Entries: fw.bad}
	}
	if fw.batches == 0 {
		return fmt.Errorf("nacha: file %s: %w", fw.rec.FileID, ach.ErrFileNoBatches)
	}
	fc := ach.NewFileControl()
	fc.BatchCount = fw.batches
	fc.BlockCount = (fw.records + 9) / 10
	fc.EntryAddendaCount = fw.entries
	fc.EntryHash = fw.fileHash % 10_000_000_000
	fc.TotalDebitEntryDollarAmountInFile = fw.debits
	fc.TotalCreditEntryDollarAmountInFile = fw.credits
	if err := fc.Validate(); err != nil {
		return fmt.Errorf("nacha: file %s: %w", fw.rec.FileID, nachafile.Redact(err))
	}
	fw.lw.line(fc.String())
	// Blocks of ten records, the last one filled with lines of nines.
	for fw.lw.n%10 != 0 {
		fw.lw.line(paddingLine)
	}
	return fw.lw.err
}

// writeACH writes the NACHA file of a file row, its batches and its
// entries (in batch and trace order) to w: a file being rebuilt from its
// rows.
func writeACH(rec fileRecord, offsetAccount string, batches []batchRecord, next entrySource, w io.Writer) error {
	fw, err := newFileWriter(rec, offsetAccount, w)
	if err != nil {
		return err
	}
	pending, havePending, err := next()
	if err != nil {
		return err
	}
	for _, b := range batches {
		fw.openBatch(b)
		for havePending && pending.Batch == b.Number {
			if pending.Bad != "" {
				fw.badEntry(pending.EntryID, pending.AmountCents, pending.Bad)
			} else if err := fw.entry(pending.EntryID, pending.AmountCents, entryDetail(pending, b.Credits)); err != nil {
				return err
			}
			if pending, havePending, err = next(); err != nil {
				return err
			}
		}
		if err := fw.closeBatch(b); err != nil {
			return err
		}
	}
	if havePending {
		return fmt.Errorf("nacha: file %s has an entry in unknown batch %d", rec.FileID, pending.Batch)
	}
	return fw.close()
}
