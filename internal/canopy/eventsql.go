package canopy

import (
	"strings"

	"github.com/payrail/payrail/internal/queue"
)

// The same events built in PostgreSQL, for changes of thousands of line
// items at once (a NACHA file drop, a settlement): rendering each in Go and
// inserting it row by row dominated those. EventSQL is Event and Render
// written as SQL — the same fields, the same nulls and omissions, the same
// time format — and TestEventSQLMatchesEvent (processors/nacha) holds the
// two to the same meaning: the decoded JSON is equal. Key order and
// whitespace differ (jsonb), which JSON consumers do not see.

// sqlTime renders a timestamptz expression as FormatTime does: RFC 3339 in
// UTC, microseconds with trailing zeros (and a bare dot) dropped.
func sqlTime(expr string) string {
	return `(rtrim(rtrim(to_char((` + expr + `) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '0'), '.') || 'Z')`
}

// EventIDSQL implements store.SQLEvents: a new event id, "evt_" and 20
// characters of the lowercase base32 alphabet, like store.NewID.
func (Events) EventIDSQL() string {
	return `('evt_' || translate(substr(replace(gen_random_uuid()::text, '-', ''), 1, 20), '0189', 'wxyz'))`
}

// lineItemSQL is Render over line_items li, accounts a and the attempt pa
// (NULL columns when there is none).
var lineItemSQL = `jsonb_build_object(
	    'account_id', li.account_id, 'line_item_id', li.line_item_id,
	    'effective_at', ` + sqlTime("li.effective_at") + `, 'created_at', ` + sqlTime("li.created_at") + `,
	    'updated_at', ` + sqlTime("li.updated_at") + `, 'product_id', a.product_id,
	    'line_item_overview', jsonb_build_object('line_item_status', li.status, 'line_item_type', li.line_item_type,
	        'description', li.description),
	    'line_item_summary', jsonb_build_object('original_amount_cents', li.original_amount_cents,
	        'balance_cents', li.original_amount_cents, 'principal_cents', li.original_amount_cents,
	        'interest_balance_cents', 0, 'am_interest_balance_cents', 0, 'deferred_interest_balance_cents', 0,
	        'am_deferred_interest_balance_cents', 0, 'am_fees_balance_cents', 0, 'total_interest_paid_to_date_cents', 0),
	    'merchant_data', COALESCE(li.merchant_data, 'null'::jsonb),
	    'issuer_processor_details', COALESCE(li.issuer_processor_details, 'null'::jsonb),
	    'external_fields', COALESCE(li.external_fields, '[]'::jsonb))
	|| CASE WHEN li.valid_at IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('valid_at', ` + sqlTime("li.valid_at") + `) END
	|| CASE WHEN COALESCE(li.related_line_item_id, '') = '' THEN '{}'::jsonb
	        ELSE jsonb_build_object('related_line_item_id', li.related_line_item_id) END
	|| CASE WHEN pa.attempt_id IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('payment_processing', jsonb_build_object(
	        'payment_processor_name', COALESCE(pa.processor, ''), 'attempt_id', pa.attempt_id,
	        'attempt_status', COALESCE(pa.status, ''), 'deliveries', COALESCE(pa.deliveries, 0),
	        'processor_transaction_id', NULLIF(pa.transaction_id, ''),
	        'instrument', CASE WHEN COALESCE(pa.instrument_kind, '') <> '' THEN jsonb_build_object('kind', pa.instrument_kind,
	            'brand', NULLIF(pa.instrument_brand, ''), 'last_four', COALESCE(pa.instrument_last_four, '')) END,
	        'result_code', NULLIF(pa.result_code, ''), 'result_message', NULLIF(pa.result_message, ''),
	        'nacha_file_id', NULLIF(pa.nacha_file_id, ''), 'trace_number', NULLIF(pa.trace_number, ''))) END`

// EventSQL implements store.SQLEvents: a subquery, evaluated LATERAL per
// line item li (with a and pa as in the store's reads, after the change)
// and change c (event_id, from_status — ” for a creation — actor, reason,
// at), producing the outbox row's msg_id, subject, headers and payload
// exactly as Event does.
func (Events) EventSQL() string {
	prefix := strings.ReplaceAll(queue.EventSubject(""), "'", "''")
	return `SELECT c.event_id AS msg_id, '` + prefix + `' || lower(li.status) AS subject,
	       jsonb_build_object('` + HeaderLineItemID + `', li.line_item_id, '` + HeaderOrgID + `', li.org_id) AS headers,
	       convert_to(jsonb_build_object(
	           'event_id', c.event_id,
	           'type', CASE WHEN c.from_status = li.status THEN '` + TypeProcessingUpdated + `' ELSE '` + TypeStatusChanged + `' END,
	           'at', ` + sqlTime("c.at") + `,
	           'previous_status', NULLIF(c.from_status, ''),
	           'status', li.status, 'actor', c.actor, 'reason', c.reason,
	           'line_item', ` + lineItemSQL + `)::text, 'UTF8') AS payload`
}
