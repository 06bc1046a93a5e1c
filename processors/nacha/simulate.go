package nacha

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/moov-io/ach"
)

// SimulateReturns writes the return file a receiving bank would send back
// for entries of a dropped NACHA file: one return entry (with its
// Addenda99) per trace number in codes, carrying that return code. It is
// for testing and for payrail dev, where no bank sends returns; the file
// goes through the same ingestion as a real one.
func SimulateReturns(original []byte, codes map[string]string, now time.Time) ([]byte, error) {
	if len(codes) == 0 {
		return nil, fmt.Errorf("nacha: name at least one trace number to return")
	}
	orig, err := ach.NewReader(bytes.NewReader(original)).Read()
	if err != nil {
		return nil, fmt.Errorf("nacha: read the original file: %w", err)
	}
	// The header's date and time are written in now's zone: pass the
	// cutoff calendar's (payrail nacha simulate-return does), as drops do.
	fh := ach.NewFileHeader()
	fh.ImmediateDestination = orig.Header.ImmediateOrigin // back to the originating bank
	fh.ImmediateOrigin = orig.Header.ImmediateDestination
	fh.ImmediateDestinationName = orig.Header.ImmediateOriginName
	fh.ImmediateOriginName = orig.Header.ImmediateDestinationName
	fh.FileCreationDate = now.Format("060102")
	fh.FileCreationTime = now.Format("1504")
	fh.FileIDModifier = "R"
	out := ach.NewFile()
	out.SetHeader(fh)

	found := map[string]bool{}
	seq := 0
	for _, b := range orig.Batches {
		obh := b.GetHeader()
		var batch ach.Batcher
		for _, e := range b.GetEntries() {
			code, ok := codes[e.TraceNumber]
			if !ok {
				continue
			}
			found[e.TraceNumber] = true
			if batch == nil {
				bh := ach.NewBatchHeader()
				bh.ServiceClassCode = ach.MixedDebitsAndCredits
				bh.StandardEntryClassCode = obh.StandardEntryClassCode
				bh.CompanyName = obh.CompanyName
				bh.CompanyIdentification = obh.CompanyIdentification
				bh.CompanyEntryDescription = obh.CompanyEntryDescription
				bh.EffectiveEntryDate = now.Format("060102")
				// The original entry's date, which ingestion checks when
				// present (nachafile.Item.OriginalEntryDate).
				bh.CompanyDescriptiveDate = obh.EffectiveEntryDate
				bh.ODFIIdentification = e.RDFIIdentification // the returning bank
				if batch, err = ach.NewBatch(bh); err != nil {
					return nil, fmt.Errorf("nacha: return batch: %w", err)
				}
			}
			seq++
			r := ach.NewEntryDetail()
			r.TransactionCode = returnCode(e.TransactionCode)
			r.SetRDFI(obh.ODFIIdentification + checkDigit(obh.ODFIIdentification))
			r.DFIAccountNumber = e.DFIAccountNumber
			r.Amount = e.Amount
			r.IdentificationNumber = e.IdentificationNumber
			r.IndividualName = e.IndividualName
			r.DiscretionaryData = e.DiscretionaryData
			r.SetTraceNumber(e.RDFIIdentification, seq)
			r.AddendaRecordIndicator = 1
			a := ach.NewAddenda99()
			a.ReturnCode = code
			a.OriginalTrace = e.TraceNumber
			a.OriginalDFI = e.RDFIIdentification
			a.TraceNumber = r.TraceNumber
			r.Addenda99 = a
			r.Category = ach.CategoryReturn
			batch.AddEntry(r)
		}
		if batch != nil {
			if err := batch.Create(); err != nil {
				return nil, fmt.Errorf("nacha: return batch: %w", err)
			}
			out.AddBatch(batch)
		}
	}
	var missing []string
	for trace := range codes {
		if !found[trace] {
			missing = append(missing, trace)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("nacha: no entry with trace number %v in the original file", missing)
	}
	if err := out.Create(); err != nil {
		return nil, fmt.Errorf("nacha: return file: %w", err)
	}
	var buf bytes.Buffer
	if err := ach.NewWriter(&buf).Write(out); err != nil {
		return nil, fmt.Errorf("nacha: write the return file: %w", err)
	}
	return buf.Bytes(), nil
}

// returnCode is the transaction code of a return of an entry: a debit's
// return is a credit back to the originator's side (27 → 26, 37 → 36), a
// refund credit's a debit (22 → 21, 32 → 31).
func returnCode(original int) int {
	switch original {
	case ach.SavingsDebit:
		return ach.SavingsReturnNOCDebit
	case ach.CheckingCredit:
		return ach.CheckingReturnNOCCredit
	case ach.SavingsCredit:
		return ach.SavingsReturnNOCCredit
	default:
		return ach.CheckingReturnNOCDebit
	}
}

// checkDigit is the ABA check digit of an 8-digit routing prefix.
func checkDigit(eight string) string {
	weights := [8]int{3, 7, 1, 3, 7, 1, 3, 7}
	sum := 0
	for i := 0; i < 8 && i < len(eight); i++ {
		sum += int(eight[i]-'0') * weights[i]
	}
	return fmt.Sprint((10 - sum%10) % 10)
}
