package authorizenet

import (
	"fmt"
	"regexp"
	"time"
)

// Class is what a response or failure means for the payment, in the
// outcome classes of docs/processors.md.
type Class int

const (
	// ClassApproved: responseCode 1, the card was charged.
	ClassApproved Class = iota + 1
	// ClassDeclined: responseCode 2, refused for good.
	ClassDeclined
	// ClassHeld: responseCode 4, held for review; poll the transaction.
	ClassHeld
	// ClassDuplicate: responseCode 3 with reason 11, an earlier identical
	// request exists inside the duplicate window. Never charge again: the
	// original's outcome is the answer.
	ClassDuplicate
	// ClassRetryable: transient; the same request may be sent again.
	ClassRetryable
	// ClassPermanent: cannot succeed (credentials, schema, bad data).
	ClassPermanent
)

var classNames = map[Class]string{
	ClassApproved: "approved", ClassDeclined: "declined", ClassHeld: "held",
	ClassDuplicate: "duplicate", ClassRetryable: "retryable", ClassPermanent: "permanent",
}

func (c Class) String() string {
	if n, ok := classNames[c]; ok {
		return n
	}
	return "unknown"
}

// Error is a failed API call. Text is the API's message with any digit
// run that could be a card, account or card code number masked, so the
// error is safe to log.
type Error struct {
	// Op is the API method, e.g. "createTransactionRequest".
	Op string
	// Class is ClassRetryable or ClassPermanent.
	Class Class
	// Code is the API's code ("E00007", a reason code such as "19") or a
	// transport condition ("http_503", "timeout", "transport", "decode").
	Code string
	Text string
	// OutcomeUnknown is set when the request may have been processed:
	// it was sent and no trustworthy answer came back (timeout, reset,
	// 5xx, garbled body). A charge in that state must be looked up or
	// re-sent inside the duplicate window, never re-sent blindly.
	OutcomeUnknown bool
	// RetryAfter suggests a delay before a retry (the API's "try again in
	// 5 minutes", an HTTP Retry-After); zero leaves it to the caller.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	s := "authorizenet: " + e.Op + ": " + e.Class.String()
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	if e.OutcomeUnknown {
		s += " (outcome unknown)"
	}
	if e.Err != nil {
		// Transport and decoding errors never quote the request or the
		// response body, so they are shown as they are.
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same request may be sent again.
func (e *Error) Retryable() bool { return e.Class == ClassRetryable }

// longDigits matches digit runs that could be a card number, a bank
// account number or a card code, possibly split by spaces or dashes.
var longDigits = regexp.MustCompile(`[0-9](?:[ -]?[0-9]){2,}`)

// redact masks every run of three or more digits in text taken from the
// API or the network. The API can echo request values (an E00003 facet
// message quotes the offending value); error and log text must never
// carry a PAN, CVV or account number, and a code or id the caller needs
// is carried in its own field.
func redact(s string) string {
	return longDigits.ReplaceAllStringFunc(s, func(m string) string {
		return fmt.Sprintf("[%d digits]", countDigits(m))
	})
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}
