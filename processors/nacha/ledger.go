package nacha

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Ledger is how the NACHA processor changes line items, attempts and
// account configuration, which the store owns. Every method runs inside the
// transaction that also updates this package's tables (tx), so an entry's
// state and its line item's state never disagree; every method must also
// write its outbox event(s) through tx, so nothing is announced that did
// not commit. A method that returns an error makes the whole transaction
// roll back; it must not commit or roll back tx itself.
//
// The store satisfies it; tests also use a SQL-only implementation in
// ledger_test.go.
type Ledger interface {
	// EntriesDropped records that each entry's NACHA file is durable in the
	// drop directory. The line item stays PENDING; its attempt gains
	// nacha_file_id = FileID, trace_number = TraceNumber and
	// transaction_id = TraceNumber (attempt status stays
	// pending_settlement); one event per line item ("dropped"). Calls come
	// after the file is recorded written (its entries are dropped from that
	// commit on), in chunks of at most 5,000 entries of one file in trace
	// order, each in its own transaction, the one that moves the file's
	// announcement cursor past them; a drop interrupted between chunks has
	// told the ledger about some of the file's entries and the next drop,
	// settlement or return run tells it the rest first. A repeated call
	// for an entry already carrying the same file and trace must be a
	// no-op.
	EntriesDropped(ctx context.Context, tx pgx.Tx, entries []DroppedEntry) error

	// EntriesSettled moves each line item PENDING → VALID (valid_at =
	// SettledAt), records the transition (actor "CANOPY_NACHA", reason
	// "settlement window passed without a return"), sets the attempt to
	// succeeded and emits one event per line item. A line item that is not
	// PENDING is an error.
	EntriesSettled(ctx context.Context, tx pgx.Tx, entries []SettledEntry) error

	// EntryReturned applies a return that arrived before settlement: the
	// line item moves PENDING → DECLINED, the transition's reason names
	// the return code and reason, the attempt becomes declined with
	// result_code = ReturnCode and result_message = ReturnReason, and an
	// event is emitted. A line item that is not PENDING is an error.
	EntryReturned(ctx context.Context, tx pgx.Tx, r ReturnedEntry) error

	// PaymentReversed applies a return that arrived after the payment was
	// VALID: it creates line item ReversalLineItemID of type
	// PAYMENT_REVERSAL on the same account, status VALID, amount
	// AmountCents, related_line_item_id = LineItemID, description naming
	// the return code, with its creation transition and event; the
	// original stays VALID and its attempt becomes returned with the
	// return code and reason.
	PaymentReversed(ctx context.Context, tx pgx.Tx, r Reversal) error

	// BankDetailsCorrected applies a notification of change (C01 account
	// number, C02 routing number, C03 both) to the account's stored
	// canopy_nacha_config: only when the account's ACH processor is
	// CANOPY_NACHA and the stored routing and account number still equal
	// OriginalRoutingNumber and OriginalAccountNumber (a guest payment's
	// bank account is not the stored one). The new account number is
	// sealed like any stored one; an event is emitted when applied. It
	// reports whether the configuration changed. Nothing here may log or
	// emit an account number.
	BankDetailsCorrected(ctx context.Context, tx pgx.Tx, c Correction) (applied bool, err error)
	// EntriesSetAside applies entries that cannot be written into any
	// NACHA file: each line item moves PENDING → INVALID with Reason on
	// its transition, the attempt becomes failed with result_code
	// "nacha_entry_set_aside" and result_message = Reason, and one event
	// is emitted per line item. Rare: calls carry few entries.
	EntriesSetAside(ctx context.Context, tx pgx.Tx, entries []SetAsideEntry) error

	// RefundUnneeded completes a reversal whose refund credit is not sent
	// because the money came back another way (the original debit was
	// returned after it settled): the reversal's line item moves PENDING →
	// VALID with Reason on its transition, its attempt becomes succeeded,
	// and one event is emitted.
	RefundUnneeded(ctx context.Context, tx pgx.Tx, r UnneededRefund) error
}

// UnneededRefund is a reversal completed without its refund credit.
type UnneededRefund struct {
	LineItemRef // the reversal's line item and attempt
	Reason      string
	At          time.Time // UTC
}

// SetAsideEntry is an entry the drop could not write.
type SetAsideEntry struct {
	LineItemRef
	Reason string
	At     time.Time // UTC
}

// LineItemRef names the line item and attempt an entry executes.
type LineItemRef struct {
	OrgID      string
	AccountID  string
	LineItemID string
	AttemptID  string
}

// DroppedEntry is an entry written into a durable NACHA file.
type DroppedEntry struct {
	LineItemRef
	FileID      string
	FileName    string
	TraceNumber string
	DroppedAt   time.Time // UTC
}

// SettledEntry is an entry whose settlement window passed without return.
type SettledEntry struct {
	LineItemRef
	FileID      string
	TraceNumber string
	SettledAt   time.Time // UTC
}

// ReturnedEntry is an entry the RDFI returned before it settled.
type ReturnedEntry struct {
	LineItemRef
	TraceNumber  string
	ReturnCode   string // e.g. "R01"
	ReturnReason string // e.g. "Insufficient Funds"
	ReturnedAt   time.Time
}

// Reversal is a return of an entry that had already settled.
type Reversal struct {
	LineItemRef
	ReversalLineItemID string
	AmountCents        int64
	TraceNumber        string
	ReturnCode         string
	ReturnReason       string
	ReturnedAt         time.Time
}

// Correction is a notification of change for the bank account an entry
// debited. The corrected fields are empty when the change code does not
// carry them (C01 has no routing number, C02 no account number).
type Correction struct {
	LineItemRef
	TraceNumber            string
	ChangeCode             string // C01, C02 or C03
	OriginalRoutingNumber  string
	OriginalAccountNumber  string
	CorrectedRoutingNumber string
	CorrectedAccountNumber string
	ReceivedAt             time.Time
}
