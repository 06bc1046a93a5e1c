package authorizenet

import "time"

// Classification tables, from the API's responseCodes.json and the
// worker classification in shared/reference/authorizenet.md §6.

// retryableAPICodes are top-level codes after which the same request may
// be sent again: unexpected system error, server busy, maintenance, and a
// database timeout.
var retryableAPICodes = map[string]time.Duration{
	"E00001": 0,
	"E00049": 0,
	"E00053": 30 * time.Second,
	"E00104": 5 * time.Minute,
}

// transientReasons are responseCode 3 reason codes that mean "an error
// occurred during processing, please try again" (most texts say "in 5
// minutes"): nothing was charged and the same request may be re-sent.
var transientReasons = map[string]bool{
	"19": true, "20": true, "21": true, "22": true, "23": true, "25": true, "26": true,
	"57": true, "58": true, "59": true, "60": true, "61": true, "62": true, "63": true,
	"261": true,
}

// transientRetryAfter is the delay the API's texts ask for after a
// transient processing error.
const transientRetryAfter = 5 * time.Minute

// reasonDuplicate is the response reason code of a duplicate transaction.
const reasonDuplicate = "11"

// Decision is what a transactionResponse means.
type Decision struct {
	Class Class
	// ReasonCode and ReasonText are the response reason: the first of
	// errors[] for responseCode 2 and 3, of messages[] otherwise.
	ReasonCode string
	ReasonText string
	// TransID is the transaction's id; for a duplicate, the original's
	// when the request carried duplicateWindow ("" or "0" otherwise).
	TransID string
	// AuthCode is the authorization code; a duplicate carries its
	// original's only when the original was approved.
	AuthCode   string
	RetryAfter time.Duration
}

// Decide classifies a transaction response by its responseCode, never by
// the top-level resultCode: "Ok" accompanies held transactions and
// "Error" accompanies declines.
func (r *TransactionResponse) Decide() Decision {
	d := Decision{TransID: string(r.TransID), AuthCode: r.AuthCode}
	if len(r.Errors) > 0 {
		d.ReasonCode, d.ReasonText = string(r.Errors[0].ErrorCode), r.Errors[0].ErrorText
	} else if len(r.Messages) > 0 {
		d.ReasonCode, d.ReasonText = string(r.Messages[0].Code), r.Messages[0].Description
	}
	d.ReasonText = redact(d.ReasonText)
	switch r.ResponseCode {
	case "1":
		d.Class = ClassApproved
	case "2":
		d.Class = ClassDeclined
	case "4":
		d.Class = ClassHeld
	case "3":
		switch {
		case d.ReasonCode == reasonDuplicate:
			d.Class = ClassDuplicate
		case transientReasons[d.ReasonCode]:
			d.Class, d.RetryAfter = ClassRetryable, transientRetryAfter
		default:
			d.Class = ClassPermanent
		}
	default:
		// Not one of the four documented codes: the request reached the
		// gateway and we cannot tell what it did.
		d.Class = ClassRetryable
	}
	return d
}

// apiError classifies a response that carries no transaction result,
// by its first top-level message code.
func apiError(op string, m Messages) *Error {
	first := m.First()
	code := string(first.Code)
	e := &Error{Op: op, Class: ClassPermanent, Code: code, Text: redact(first.Text)}
	if after, ok := retryableAPICodes[code]; ok {
		e.Class, e.RetryAfter = ClassRetryable, after
	}
	return e
}
