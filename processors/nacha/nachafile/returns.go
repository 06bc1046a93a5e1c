// Package nachafile reads the NACHA files a bank sends back (returns and
// notifications of change) with github.com/moov-io/ach, and makes
// moov-io/ach's errors safe to log. It has no database and no state, so it
// can be fuzzed on its own.
package nachafile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moov-io/ach"
)

// Reasons a file is refused as a whole.
var (
	// ErrMalformed: the file cannot be parsed or fails strict validation.
	ErrMalformed = errors.New("nacha: malformed return file")
	// ErrUnsupported: the file holds entries that are neither returns nor
	// NOCs, or dishonored/contested returns and refused NOCs, which need an
	// operator.
	ErrUnsupported = errors.New("nacha: return file has entries payrail cannot apply")
)

// Item is one return or NOC as parsed, before it is matched to an entry.
// Exactly one of ReturnCode and ChangeCode is set.
type Item struct {
	// Trace is the original entry's trace number.
	Trace string
	// Amount is the original entry's amount (returns; 0 for NOCs).
	Amount int64
	// ReturnCode (e.g. R01) and Reason (from moov-io/ach's dictionary).
	ReturnCode string
	Reason     string
	// Addenda is the return's addenda information.
	Addenda string
	// ChangeCode (e.g. C01), Correction (the parsed corrected data) and
	// CorrectedData (the raw field) of a NOC. Correction may hold an
	// account number: never log it.
	ChangeCode    string
	Correction    *ach.CorrectedData
	CorrectedData string

	// What the return or NOC carries of the original entry, to check a
	// trace number match against (trace numbers restart per ODFI after
	// 9,999,999 entries). Account is the DFI account number (never log
	// it); IndividualID the identification number; OriginalDFI the first
	// 8 digits of the original RDFI's routing number (addenda 98/99);
	// OriginalEntryDate the original entry's effective date, when the
	// return batch header carries it as its company descriptive date
	// (YYMMDD; zero when absent or not a date).
	Account           string
	IndividualID      string
	OriginalDFI       string
	OriginalEntryDate time.Time
}

// Options relax the strict reading of a return file.
type Options struct {
	// PadShortRecords pads records shorter than 94 bytes with blanks, for
	// banks whose software strips trailing blanks. Off by default: a
	// short record is more often a record with a character lost, and a
	// lost digit shifts every field after it.
	PadShortRecords bool
}

// RecordLength is the length of every NACHA record.
const RecordLength = 94

// checkRecords checks that every record is exactly 94 bytes (line ends
// CRLF or LF; a file without line ends must be a multiple of 94 bytes) and
// returns the records joined by LF, padded when opts says so.
func checkRecords(data []byte, opts Options) ([]byte, []string) {
	if len(data) > 0 && !bytes.ContainsAny(data, "\r\n") {
		if len(data)%RecordLength != 0 {
			return nil, []string{fmt.Sprintf("the file has no line ends and its %d bytes are not a multiple of %d",
				len(data), RecordLength)}
		}
		return data, nil
	}
	lines := bytes.Split(data, []byte("\n"))
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1] // the final line end
	}
	var problems []string
	out := make([]byte, 0, len(lines)*(RecordLength+1))
	for i, l := range lines {
		l = bytes.TrimSuffix(l, []byte("\r"))
		switch {
		case len(l) == RecordLength:
		case len(l) < RecordLength && opts.PadShortRecords && len(l) > 0:
			l = append(append([]byte(nil), l...), bytes.Repeat([]byte(" "), RecordLength-len(l))...)
		default:
			problems = append(problems, fmt.Sprintf("line %d: record is %d bytes, must be exactly %d", i+1, len(l), RecordLength))
			if len(problems) == 10 {
				problems = append(problems, "(further lines not checked)")
				return nil, problems
			}
			continue
		}
		out = append(append(out, l...), '\n')
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return out, nil
}

// ParseReturns reads data strictly and sorts its entries into returns and
// NOCs. Anything else makes the whole file unusable: the error is
// ErrMalformed or ErrUnsupported and problems say why, without field
// values.
//
// Every record must be exactly 94 bytes (CRLF or LF line ends): moov-io/ach
// pads short records, which would apply a record that lost a digit.
func ParseReturns(data []byte) (items []Item, problems []string, err error) {
	return ParseReturnsWith(data, Options{})
}

// ParseReturnsWith is ParseReturns with opts.
func ParseReturnsWith(data []byte, opts Options) (items []Item, problems []string, err error) {
	// The file comes from outside; a parser panic on some input must
	// reject that file, not take the worker down.
	defer func() {
		if r := recover(); r != nil {
			items, problems, err = nil, []string{"the NACHA parser failed on this file"}, ErrMalformed
		}
	}()
	data, problems = checkRecords(data, opts)
	if problems != nil {
		return nil, problems, ErrMalformed
	}
	file, err := ach.NewReader(bytes.NewReader(data)).Read()
	if err != nil {
		return nil, []string{RedactedText(err)}, ErrMalformed
	}
	if err := file.Validate(); err != nil {
		return nil, []string{RedactedText(err)}, ErrMalformed
	}
	if len(file.IATBatches) > 0 {
		return nil, []string{"IAT batches are not supported"}, ErrUnsupported
	}
	for _, b := range file.Batches {
		var original time.Time
		if d := b.GetHeader().CompanyDescriptiveDate; len(d) == 6 {
			if t, err := time.Parse("060102", d); err == nil {
				original = t
			}
		}
		for _, e := range b.GetEntries() {
			from := Item{Account: strings.TrimSpace(e.DFIAccountNumber), IndividualID: strings.TrimSpace(e.IdentificationNumber),
				OriginalEntryDate: original}
			switch {
			case e.Addenda99 != nil:
				a := e.Addenda99
				it := from
				it.Trace, it.Amount, it.ReturnCode = a.OriginalTraceField(), int64(e.Amount), a.ReturnCode
				it.Addenda, it.OriginalDFI = strings.TrimSpace(a.AddendaInformation), strings.TrimSpace(a.OriginalDFI)
				if rc := a.ReturnCodeField(); rc != nil {
					it.Reason = rc.Reason
				}
				items = append(items, it)
			case e.Addenda98 != nil:
				a := e.Addenda98
				it := from
				it.Trace, it.ChangeCode, it.Correction = a.OriginalTraceField(), a.ChangeCode, a.ParseCorrectedData()
				it.CorrectedData, it.OriginalDFI = strings.TrimSpace(a.CorrectedData), strings.TrimSpace(a.OriginalDFI)
				if cc := a.ChangeCodeField(); cc != nil {
					it.Reason = cc.Reason
				}
				items = append(items, it)
			case e.Addenda99Dishonored != nil || e.Addenda99Contested != nil || e.Addenda98Refused != nil:
				problems = append(problems, fmt.Sprintf("batch %d: dishonored, contested or refused entry %s needs an operator",
					b.GetHeader().BatchNumber, e.TraceNumberField()))
			default:
				problems = append(problems, fmt.Sprintf("batch %d: entry %s is neither a return nor a NOC",
					b.GetHeader().BatchNumber, e.TraceNumberField()))
			}
		}
	}
	if len(problems) > 0 {
		return nil, problems, ErrUnsupported
	}
	if len(items) == 0 {
		return nil, []string{"the file holds no returns or NOCs"}, ErrMalformed
	}
	return items, nil, nil
}
