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
}

// ParseReturns reads data strictly and sorts its entries into returns and
// NOCs. Anything else makes the whole file unusable: the error is
// ErrMalformed or ErrUnsupported and problems say why, without field
// values.
func ParseReturns(data []byte) (items []Item, problems []string, err error) {
	// The file comes from outside; a parser panic on some input must
	// reject that file, not take the worker down.
	defer func() {
		if r := recover(); r != nil {
			items, problems, err = nil, []string{"the NACHA parser failed on this file"}, ErrMalformed
		}
	}()
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
		for _, e := range b.GetEntries() {
			switch {
			case e.Addenda99 != nil:
				a := e.Addenda99
				it := Item{Trace: a.OriginalTraceField(), Amount: int64(e.Amount), ReturnCode: a.ReturnCode,
					Addenda: strings.TrimSpace(a.AddendaInformation)}
				if rc := a.ReturnCodeField(); rc != nil {
					it.Reason = rc.Reason
				}
				items = append(items, it)
			case e.Addenda98 != nil:
				a := e.Addenda98
				it := Item{Trace: a.OriginalTraceField(), ChangeCode: a.ChangeCode,
					Correction: a.ParseCorrectedData(), CorrectedData: strings.TrimSpace(a.CorrectedData)}
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
