package nacha

import (
	"errors"

	"github.com/payrail/payrail/processors/nacha/nachafile"
)

// Errors callers branch on.
var (
	// ErrDropInProgress: another process holds the drop lock.
	ErrDropInProgress = errors.New("nacha: another drop is in progress")
	// ErrMalformedFile: a return/NOC file could not be parsed or is not
	// a valid NACHA file; nothing was applied.
	ErrMalformedFile = nachafile.ErrMalformed
	// ErrUnmatched: a return/NOC file names entries payrail never
	// dropped; nothing was applied.
	ErrUnmatched = errors.New("nacha: return file has unmatched entries")
	// ErrUnsupportedEntry: a return/NOC file holds entries that are
	// neither returns nor NOCs (or are dishonored/contested returns,
	// which need an operator); nothing was applied.
	ErrUnsupportedEntry = nachafile.ErrUnsupported
)
