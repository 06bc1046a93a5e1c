// Package canopy owns the wire shapes of Canopy Servicing's line item API
// that payrail speaks: the JSON a client receives from the HTTP API, and
// the events that announce every change of a line item (their JSON,
// subject and headers). Render and Events are the only ways a stored line
// item becomes JSON, so an event always shows a line item exactly as the
// API would.
package canopy

import (
	"encoding/json"
	"time"

	"github.com/payrail/payrail/internal/store"
)

// TimeFormat is RFC 3339 in UTC with PostgreSQL's microsecond precision.
const TimeFormat = "2006-01-02T15:04:05.999999Z07:00"

// FormatTime renders t in UTC with TimeFormat.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ExternalField relates a payrail record to an entity in another system.
type ExternalField = store.ExternalField

// LineItem is a line item as the API shows it.
type LineItem struct {
	AccountID              string             `json:"account_id"`
	LineItemID             string             `json:"line_item_id"`
	EffectiveAt            string             `json:"effective_at"`
	ValidAt                *string            `json:"valid_at,omitempty"`
	CreatedAt              string             `json:"created_at"`
	UpdatedAt              string             `json:"updated_at"`
	ProductID              string             `json:"product_id"`
	Overview               Overview           `json:"line_item_overview"`
	Summary                Summary            `json:"line_item_summary"`
	MerchantData           json.RawMessage    `json:"merchant_data"`
	IssuerProcessorDetails json.RawMessage    `json:"issuer_processor_details"`
	ExternalFields         []ExternalField    `json:"external_fields"`
	RelatedLineItemID      string             `json:"related_line_item_id,omitempty"`
	PaymentProcessing      *PaymentProcessing `json:"payment_processing,omitempty"`
}

// Overview is line_item_overview.
type Overview struct {
	Status      string `json:"line_item_status"`
	Type        string `json:"line_item_type"`
	Description string `json:"description"`
}

// Summary is line_item_summary. payrail keeps no interest engine, so
// balances follow the amount and the interest buckets are zero
// (docs/api.md).
type Summary struct {
	OriginalAmountCents          int64 `json:"original_amount_cents"`
	BalanceCents                 int64 `json:"balance_cents"`
	PrincipalCents               int64 `json:"principal_cents"`
	InterestBalanceCents         int64 `json:"interest_balance_cents"`
	AmInterestBalanceCents       int64 `json:"am_interest_balance_cents"`
	DeferredInterestBalanceCents int64 `json:"deferred_interest_balance_cents"`
	AmDeferredInterestCents      int64 `json:"am_deferred_interest_balance_cents"`
	AmFeesBalanceCents           int64 `json:"am_fees_balance_cents"`
	TotalInterestPaidToDateCents int64 `json:"total_interest_paid_to_date_cents"`
}

// PaymentProcessing is payrail's extension on executed payments: how the
// processor handled it. It never holds a full card or account number.
type PaymentProcessing struct {
	ProcessorName string      `json:"payment_processor_name"`
	AttemptID     string      `json:"attempt_id"`
	AttemptStatus string      `json:"attempt_status"`
	Deliveries    int         `json:"deliveries"`
	TransactionID *string     `json:"processor_transaction_id"`
	Instrument    *Instrument `json:"instrument"`
	ResultCode    *string     `json:"result_code"`
	ResultMessage *string     `json:"result_message"`
	NachaFileID   *string     `json:"nacha_file_id"`
	TraceNumber   *string     `json:"trace_number"`
}

// Instrument is the masked payment method.
type Instrument struct {
	Kind     string  `json:"kind"` // card or bank_account
	Brand    *string `json:"brand"`
	LastFour string  `json:"last_four"`
}

// Event is the body of a payrail.events.line_item.<status> message.
type Event struct {
	EventID        string   `json:"event_id"`
	Type           string   `json:"type"` // line_item.status_changed
	At             string   `json:"at"`
	PreviousStatus *string  `json:"previous_status"` // null when the line item was created
	Status         string   `json:"status"`
	Actor          string   `json:"actor"`
	Reason         string   `json:"reason"`
	LineItem       LineItem `json:"line_item"`
}
