package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// insertPayment writes a payment in one statement, and so in one round
// trip and one commit: the line item, its creation transition, the queued
// attempt holding its sealed job ($30) and the outbox rows (the job's,
// without its payload, and the creation event's), each
// inserted only if the line item was. It always returns the account's row
// when the account exists, with whether its product and customer name are
// the expected ones; seq is NULL when nothing was inserted (the id or the
// idempotency key is taken, or the account is not as expected).
//
// Foreign keys to the new line item are checked at the end of the
// statement, when its row is visible. The NOTIFY is part of the statement
// only when no fast path publishes the rows ($27).
const insertPayment = `
WITH acct AS (
    SELECT org_id, account_id, product_id = $16 AND COALESCE(customer_name, '') = $29 AS expected
      FROM accounts WHERE org_id = $1 AND account_id = $2
), li AS (
    INSERT INTO line_items (org_id, account_id, line_item_id, line_item_type, status, description,
        original_amount_cents, effective_at, valid_at, created_at, updated_at, merchant_data,
        issuer_processor_details, external_fields, origin, processor, request_hash, client_id, idempotency_key)
    SELECT acct.org_id, acct.account_id, $3, $4, $5, $6, $7, $8, NULL, $9, $9, NULL, NULL, $10, $11, NULLIF($12, ''),
           $13, $14, NULLIF($15, '')
      FROM acct WHERE acct.expected
    ON CONFLICT DO NOTHING
    RETURNING org_id, account_id, line_item_id, status, original_amount_cents, client_id, origin, seq
), tr AS (
    INSERT INTO line_item_transitions (org_id, account_id, line_item_id, from_status, to_status, amount_cents,
        actor, reason, at)
    SELECT org_id, account_id, line_item_id, NULL, status, original_amount_cents, client_id, 'created via ' || origin, $9
      FROM li
), pa AS (
    INSERT INTO payment_attempts (attempt_id, org_id, account_id, line_item_id, processor, payment_type, status,
        instrument_kind, instrument_brand, instrument_last_four, job_msg_id, job, created_at, updated_at)
    SELECT $17, org_id, account_id, line_item_id, $12, $18, 'queued', NULLIF($19, ''), NULLIF($20, ''),
           NULLIF($21, ''), $22, $30, $9, $9
      FROM li
), ob AS (
    INSERT INTO outbox (msg_id, subject, headers, payload, fast_path, attempt_id)
    SELECT m.msg_id, m.subject, m.headers::jsonb, m.payload, $27, NULLIF(m.attempt_id, '')
      FROM li, unnest($23::text[], $24::text[], $25::text[], $26::bytea[], $31::text[])
           AS m(msg_id, subject, headers, payload, attempt_id)
    RETURNING id, msg_id
), n AS (
    SELECT pg_notify($28, '') FROM li WHERE NOT $27
)
SELECT acct.expected, li.seq, (SELECT array_agg(id ORDER BY id) FROM ob),
       (SELECT array_agg(msg_id ORDER BY id) FROM ob), (SELECT count(*) FROM n)
  FROM acct LEFT JOIN li ON true`

// createPaymentOneTrip writes one payment with insertPayment, on its own:
// the path of a payment whose batch's statement failed (so that one
// payment PostgreSQL refuses fails alone). ok is false when nothing was
// written: changed when the account's product or customer name is not
// in's, else for the general path to explain.
func (s *Store) createPaymentOneTrip(ctx context.Context, orgID string, in NewPayment) (li LineItem, ok, changed bool, err error) {
	p, err := s.preparePayment(ctx, orgID, in)
	if err != nil {
		return LineItem{}, false, false, err
	}
	n := in.LineItem
	msgs := p.msgs
	ids, subjects, payloads := make([]string, len(msgs)), make([]string, len(msgs)), make([][]byte, len(msgs))
	attempts := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i], subjects[i], payloads[i], attempts[i] = m.MsgID, m.Subject, storedPayload(m), m.AttemptID
	}
	fastPath := s.fastPath != nil
	var expected bool
	var seq *int64
	var rowIDs []int64
	var rowMsgIDs []string
	var notified int64
	err = s.pool.QueryRow(ctx, insertPayment,
		orgID, n.AccountID, n.LineItemID, n.Type, StatusPending, n.Description, n.AmountCents, p.li.EffectiveAt,
		p.li.CreatedAt, p.li.ExternalFields, n.Origin, n.Processor, n.RequestHash, n.ClientID, n.IdempotencyKey,
		in.ProductID, in.AttemptID, in.PaymentType, in.InstrumentKind, in.InstrumentBrand, in.InstrumentLastFour,
		in.Job.MsgID, ids, subjects, p.headers, payloads, fastPath, outboxChannel, in.CustomerName, in.Job.Payload,
		attempts,
	).Scan(&expected, &seq, &rowIDs, &rowMsgIDs, &notified)
	if errors.Is(err, pgx.ErrNoRows) {
		return LineItem{}, false, false, nil
	}
	if err != nil {
		return LineItem{}, false, false, err
	}
	if seq == nil {
		return LineItem{}, false, !expected, nil
	}
	if len(rowIDs) != len(msgs) {
		return LineItem{}, false, false, fmt.Errorf("wrote %d of %d outbox rows", len(rowIDs), len(msgs))
	}
	for i, id := range rowMsgIDs {
		for j := range msgs {
			if msgs[j].MsgID == id {
				msgs[j].ID = rowIDs[i]
			}
		}
	}
	li = p.li
	li.Seq = *seq
	if fastPath {
		s.fastPath.Enqueue(msgs)
	}
	return li, true, false, nil
}
