package processors

import "time"

// Payment types of payment_details (docs/api.md).
const (
	PaymentTypeACH   = "ACH"
	PaymentTypeDebit = "DEBIT"
)

// Job is one payment attempt as a worker hands it to a processor. The
// payment details inside travel sealed (see Seal) and exist in clear text
// only in memory.
type Job struct {
	OrgID      string
	AccountID  string
	LineItemID string
	// AttemptID identifies this execution attempt; processors derive their
	// idempotency keys from it (NACHA entry key, Authorize.Net invoice
	// number and refId).
	AttemptID   string
	Processor   string
	PaymentType string // ACH or DEBIT
	// Origin is the route that asked for execution: guest_payment or
	// payment_transfer.
	Origin      string
	AmountCents int64
	EffectiveAt time.Time // UTC
	CreatedAt   time.Time // UTC, when the intake accepted the payment
	// Delivery is the 1-based delivery count of this job's message; 0 when
	// the job is rebuilt for Resolve.
	Delivery int
	// TransactionID is the processor's id from an earlier call, when one
	// is known (set for Resolve on held attempts).
	TransactionID string

	// Exactly one of these is set, matching PaymentType and Origin; none
	// on a reversal, which moves the original payment's money back.
	ACH     *ACHDetails
	Card    *CardDetails
	Profile *ProfileDetails

	// Reversal is set when the job gives back an earlier payment instead
	// of taking one: LineItemID and AttemptID are then the reversal's.
	Reversal *ReversalDetails
}

// ReversalDetails names the executed payment a reversal gives back. It
// carries no payment details: the processor finds the payment method from
// its own record of the original, so a worker that does not know
// reversals sees a job without a payment method and fails it (invalid
// job) rather than charging anything.
type ReversalDetails struct {
	OriginalLineItemID string
	OriginalAttemptID  string
	// OriginalTransactionID is the processor's id of the original payment
	// (Authorize.Net transId, NACHA trace number).
	OriginalTransactionID string
	// OriginalCreatedAt is when the original payment was accepted: how
	// far back a processor's lookups need to search.
	OriginalCreatedAt time.Time
}

// ACHDetails is a bank account to debit.
type ACHDetails struct {
	RoutingNumber      string // 9-digit ABA
	AccountNumber      string
	AccountType        string // CHECKING or SAVINGS
	StandardEntryClass string // WEB, PPD, CCD or TEL
	Name               string // account holder
}

// CardDetails is a card to charge (guest DEBIT). CVV is empty when the job
// was published by the relay rather than the intake's fast path: CVV is
// never written to PostgreSQL, even sealed (docs/security.md).
type CardDetails struct {
	Number         string
	ExpirationDate string // MM/YY
	CVV            string
	Zip            string
	Name           string
}

// ProfileDetails is an Authorize.Net customer payment profile (the
// account's debit config for payment_transfer): tokens, never a card.
type ProfileDetails struct {
	CustomerProfileID string
	PaymentProfileID  string
}
