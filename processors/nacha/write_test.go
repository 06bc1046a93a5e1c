package nacha

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/moov-io/ach"

	"github.com/payrail/payrail/processors/nacha/nachafile"
)

// moovFile is the reference writeACH is held to: the same file assembled
// whole as an ach.File (every batch created under moov-io/ach's default
// validation) and written by moov-io/ach's Writer.
func moovFile(rec fileRecord, offsetAccount string, batches []batchRecord, next entrySource) ([]byte, error) {
	f, err := buildFile(rec, offsetAccount, batches, next)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := ach.NewWriter(&buf).Write(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// buildFile assembles the ach.File for a file row (the reference build), its batches and its
// entries. It reads no clock and no configuration: the same rows give the
// same file. Every batch and the file are created under moov-io/ach's
// default (strict) validation.
func buildFile(rec fileRecord, offsetAccount string, batches []batchRecord, next entrySource) (*ach.File, error) {
	fh := fileHeader(rec)

	file := ach.NewFile()
	file.SetHeader(fh)

	pending, havePending, err := next()
	if err != nil {
		return nil, err
	}
	var bad []setAsideRow
	for _, b := range batches {
		bh := batchHeader(rec, b)
		batch, err := ach.NewBatch(bh)
		if err != nil {
			return nil, fmt.Errorf("nacha: batch %d: %w", b.Number, nachafile.Redact(err))
		}
		var count int
		var amount int64
		var ids []int64 // entry ids in batch order, to name an entry moov-io/ach refuses
		for havePending && pending.Batch == b.Number {
			if pending.Bad != "" {
				bad = append(bad, setAsideRow{EntryID: pending.EntryID, Reason: pending.Bad})
			} else {
				batch.AddEntry(entryDetail(pending, b.Credits))
				ids = append(ids, pending.EntryID)
			}
			count++
			amount += pending.AmountCents
			if pending, havePending, err = next(); err != nil {
				return nil, err
			}
		}
		if count != b.EntryCount || amount != b.entryTotal() {
			return nil, fmt.Errorf("nacha: batch %d of file %s has %d entries totalling %d, recorded %d totalling %d",
				b.Number, rec.FileID, count, amount, b.EntryCount, b.entryTotal())
		}
		if len(bad) > 0 {
			continue // the file is built again without them
		}
		if b.OffsetTrace != "" {
			batch.AddEntry(offsetEntry(rec, offsetAccount, b))
		}
		if err := batch.Create(); err != nil {
			// Name the entries moov-io/ach refuses on their own, so they
			// can be set aside; a batch failing for another reason fails
			// the file (README: recovering a file stuck in building).
			for i, ed := range batch.GetEntries()[:len(ids)] {
				if verr := ed.Validate(); verr != nil {
					bad = append(bad, setAsideRow{EntryID: ids[i], Reason: "fails NACHA validation: " + nachafile.RedactedText(verr)})
				}
			}
			if len(bad) > 0 {
				continue
			}
			return nil, fmt.Errorf("nacha: batch %d of file %s fails NACHA validation: %w", b.Number, rec.FileID, nachafile.Redact(err))
		}
		file.AddBatch(batch)
	}
	if havePending {
		return nil, fmt.Errorf("nacha: file %s has an entry in unknown batch %d", rec.FileID, pending.Batch)
	}
	if len(bad) > 0 {
		return nil, &badEntriesError{FileID: rec.FileID, Entries: bad}
	}
	if err := file.Create(); err != nil {
		return nil, fmt.Errorf("nacha: file %s: %w", rec.FileID, nachafile.Redact(err))
	}
	return file, nil
}

// memEntries serves entries from memory in order.
func memEntries(es []entryRecord) entrySource {
	i := 0
	return func() (entryRecord, bool, error) {
		if i == len(es) {
			return entryRecord{}, false, nil
		}
		i++
		return es[i-1], true, nil
	}
}

// writeACH writes, slice by slice, exactly the bytes moov-io/ach writes for
// the whole file — across slice boundaries, offsets in their own batch or
// the debit batch, several batches and SEC codes — and finds the same
// entries unwritable.
func TestWriteACHEqualsMoovWriter(t *testing.T) {
	rec := fileRecord{FileID: "nf_w", Destination: "231380104", DestinationName: "Dest Bank", Origin: "091000019",
		OriginName: "Origin Bank", CreationDate: civil(2025, 12, 2), CreationTime: "2100", Modifier: "B",
		CompanyName: "Payrail Lending", CompanyID: "1234567890", EntryDescription: "LOAN PMT", OffsetRouting: "121042882",
		OffsetType: "CHECKING"}
	type batchShape struct {
		sec     string
		entries int
		credits bool // refund credits
	}
	build := func(shapes []batchShape, balanced bool, placement string, badAt int) ([]batchRecord, []entryRecord) {
		var batches []batchRecord
		var es []entryRecord
		seq := 0
		for _, sh := range shapes {
			b := batchRecord{Number: len(batches) + 1, SEC: sh.sec, EffectiveDate: civil(2025, 12, 3), EntryCount: sh.entries,
				Credits: sh.credits}
			for i := 0; i < sh.entries; i++ {
				seq++
				e := entryRecord{EntryID: int64(seq), LineItemID: fmt.Sprintf("li-%d", seq), Batch: b.Number,
					Trace: fmt.Sprintf("09100001%07d", seq), AmountCents: int64(100 + seq%977),
					RDFI: []string{"231380104", "021000021", "011000015"}[seq%3], AccountType: []string{"CHECKING", "SAVINGS"}[seq%2],
					AccountNumber: fmt.Sprintf("%011d", 10_000_000_000+int64(seq)), Name: fmt.Sprintf("Borrower %d", seq%1000)}
				if sh.sec == ach.WEB {
					e.PayType = "S"
				}
				if seq == badAt {
					e.Bad = "the account number was purged"
				}
				if sh.credits {
					b.CreditTotal += e.AmountCents
				} else {
					b.DebitTotal += e.AmountCents
				}
				es = append(es, e)
			}
			batches = append(batches, b)
			if balanced {
				off := b
				off.setOffset(b.entryTotal())
				if placement == OffsetOwnBatch {
					own := batchRecord{Number: b.Number + 1, SEC: ach.CCD, EffectiveDate: b.EffectiveDate, Credits: sh.credits,
						OffsetOnly: true}
					own.setOffset(b.entryTotal())
					batches = append(batches, own)
				} else {
					batches[len(batches)-1] = off
				}
			}
		}
		// Offsets take the traces after every entry, as files created before
		// schema 012 numbered them: writeACH writes whatever traces the rows
		// hold (the planner's own numbering is in the golden files).
		for i := range batches {
			if batches[i].offsetTotal() > 0 {
				seq++
				batches[i].OffsetTrace = fmt.Sprintf("09100001%07d", seq)
			}
		}
		return batches, es
	}
	for _, tc := range []struct {
		name      string
		shapes    []batchShape
		balanced  bool
		placement string
		badAt     int
	}{
		{"unbalanced, slices and a remainder", []batchShape{{ach.WEB, 2*sliceEntries + 7, false}, {ach.PPD, 3, false}}, false, "", 0},
		{"one full slice", []batchShape{{ach.PPD, sliceEntries, false}}, false, "", 0},
		{"offset in the debit batch after full slices", []batchShape{{ach.WEB, 2 * sliceEntries, false}, {ach.CCD, 5, false}}, true,
			OffsetSameBatch, 0},
		{"offset in its own batch", []batchShape{{ach.WEB, sliceEntries + 1, false}, {ach.TEL, 4, false}}, true, OffsetOwnBatch, 0},
		{"refund credits after debits", []batchShape{{ach.WEB, 5, false}, {ach.PPD, sliceEntries + 2, true}, {ach.CCD, 2, true}},
			false, "", 0},
		{"refunds balanced in their own batch", []batchShape{{ach.PPD, 3, false}, {ach.PPD, 4, true}}, true, OffsetOwnBatch, 0},
		{"refunds balanced in the batch", []batchShape{{ach.WEB, 3, false}, {ach.CCD, 4, true}}, true, OffsetSameBatch, 0},
		{"an unwritable entry in a later slice", []batchShape{{ach.PPD, sliceEntries + 10, false}, {ach.WEB, 2, false}}, false, "",
			sliceEntries + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rec
			r.Balanced = tc.balanced
			batches, es := build(tc.shapes, tc.balanced, tc.placement, tc.badAt)
			want, wantErr := moovFile(r, "9988776655", batches, memEntries(es))
			var got bytes.Buffer
			err := writeACH(r, "9988776655", batches, memEntries(es), &got)
			if wantErr != nil || err != nil {
				var wb, gb *badEntriesError
				if !errors.As(wantErr, &wb) || !errors.As(err, &gb) || fmt.Sprint(wb.Entries) != fmt.Sprint(gb.Entries) {
					t.Fatalf("writeACH error %v, moov-io/ach build error %v: want the same entries refused", err, wantErr)
				}
				return
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("writeACH wrote %d bytes that differ from moov-io/ach's %d", got.Len(), len(want))
			}
			if _, err := ach.NewReader(bytes.NewReader(got.Bytes())).Read(); err != nil {
				t.Fatalf("the written file does not parse: %v", err)
			}
		})
	}
}
