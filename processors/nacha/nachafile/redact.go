package nachafile

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moov-io/ach"
	"github.com/moov-io/base"
)

// Redact turns a moov-io/ach error into one that names fields and rules
// but never the values: moov-io/ach prints field values (account numbers
// included) in its messages, and these errors reach logs and reports.
func Redact(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(RedactedText(err))
}

// RedactedText is Redact's message.
func RedactedText(err error) string {
	var list base.ErrorList
	if errors.As(err, &list) {
		parts := make([]string, 0, len(list))
		for i, e := range list {
			if i == 5 {
				parts = append(parts, fmt.Sprintf("and %d more", len(list)-i))
				break
			}
			parts = append(parts, RedactedText(e))
		}
		return strings.Join(parts, "; ")
	}
	var pe base.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("line %d (%s): %s", pe.Line, pe.Record, RedactedText(pe.Err))
	}
	var pep *base.ParseError
	if errors.As(err, &pep) {
		return fmt.Sprintf("line %d (%s): %s", pep.Line, pep.Record, RedactedText(pep.Err))
	}
	var be *ach.BatchError
	if errors.As(err, &be) {
		return fmt.Sprintf("batch #%d (%s) %s: %s", be.BatchNumber, be.BatchType, be.FieldName, RedactedText(be.Err))
	}
	var fe *ach.FieldError
	if errors.As(err, &fe) {
		return fmt.Sprintf("%s: %s", fe.FieldName, RedactedText(fe.Err))
	}
	var fle ach.FileError
	if errors.As(err, &fle) {
		return fmt.Sprintf("%s %s", fle.FieldName, fle.Msg)
	}
	if err == nil {
		return "invalid"
	}
	// Sentinels and rule errors (ErrValidCheckDigit, ErrBatchAscending …)
	// carry numbers and codes, never field contents.
	return err.Error()
}
