package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/payrail/payrail/internal/tracing"
)

// Concurrent payments are committed together (group commit): a committer
// takes the payments queued while the previous statement ran and writes
// them all with insertPayments, one statement and one commit, and each
// request is answered after that commit with its own outcome. PostgreSQL's
// cost of a commit (the transaction, the WAL flush, the round trip) is
// then shared by every payment of the batch. A payment the statement did
// not write (its id or idempotency key taken, no such account, another
// product) goes through the general path, which explains it exactly as
// before; when the statement fails, each of its payments is written on
// its own by createPaymentOneTrip, so one payment PostgreSQL refuses
// fails alone.

// Bounds of the payment batcher: a batch is one statement with arrays of
// at most maxPaymentBatch payments; past paymentQueue waiting requests,
// new ones wait for room. One committer: measured on 2 cores, a second
// one (a batch sent while the previous commits) made batches smaller and
// did 4–7 % fewer payments/s with a higher p99 (docs/pipeline.md).
const (
	maxPaymentBatch   = 256
	paymentQueue      = 4096
	paymentCommitters = 1
)

// insertPayments is insertPayment for a set of payments, one row of the
// arrays $1–$22 and $30 (the sealed job, which the attempt holds) each
// (r.ord numbers them from 1). A line item is inserted
// only when its account has the product and customer name the payment was
// built with (ra.expected). The line items are inserted in the order of
// the arrays, which the caller sorts by key, so two batches that share
// keys wait on each other in one order. $23–$27 and $31 are the outbox
// rows, two per payment (m.ord is the payment's; the job's row without
// its payload, naming its attempt), inserted for the payments whose
// line item was. The NOTIFY is part of the statement only when no fast
// path publishes the rows ($28).
//
// It returns one row: the ords and seqs of the line items inserted, the
// ids and msg ids of the outbox rows, whether it notified, and the ords
// of the payments whose account was not as expected.
const insertPayments = `
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::timestamptz[],
                         $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::text[], $14::text[],
                         $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[],
                         $22::text[], $30::bytea[])
           WITH ORDINALITY AS r(org_id, account_id, line_item_id, line_item_type, description, amount_cents,
                                effective_at, now, external_fields, origin, processor, request_hash, client_id,
                                idempotency_key, product_id, attempt_id, payment_type, instrument_kind,
                                instrument_brand, instrument_last_four, job_msg_id, customer_name, job, ord)
), ra AS MATERIALIZED (
    SELECT r.*, a.product_id = r.product_id AND COALESCE(a.customer_name, '') = r.customer_name AS expected
      FROM r JOIN accounts a ON a.org_id = r.org_id AND a.account_id = r.account_id
), li AS (
    INSERT INTO line_items (org_id, account_id, line_item_id, line_item_type, status, description,
        original_amount_cents, effective_at, valid_at, created_at, updated_at, merchant_data,
        issuer_processor_details, external_fields, origin, processor, request_hash, client_id, idempotency_key)
    SELECT r.org_id, r.account_id, r.line_item_id, r.line_item_type, 'PENDING', r.description, r.amount_cents,
           r.effective_at, NULL, r.now, r.now, NULL, NULL, r.external_fields::jsonb, r.origin, NULLIF(r.processor, ''),
           r.request_hash, r.client_id, NULLIF(r.idempotency_key, '')
      FROM ra r WHERE r.expected
     ORDER BY r.ord
    ON CONFLICT DO NOTHING
    RETURNING org_id, account_id, line_item_id, status, original_amount_cents, client_id, origin, seq
), ins AS MATERIALIZED (
    SELECT r.*, li.status, li.seq
      FROM li JOIN r ON r.org_id = li.org_id AND r.account_id = li.account_id AND r.line_item_id = li.line_item_id
), tr AS (
    INSERT INTO line_item_transitions (org_id, account_id, line_item_id, from_status, to_status, amount_cents,
        actor, reason, at)
    SELECT org_id, account_id, line_item_id, NULL, status, amount_cents, client_id, 'created via ' || origin, now
      FROM ins ORDER BY ord
), pa AS (
    INSERT INTO payment_attempts (attempt_id, org_id, account_id, line_item_id, processor, payment_type, status,
        instrument_kind, instrument_brand, instrument_last_four, job_msg_id, job, created_at, updated_at)
    SELECT attempt_id, org_id, account_id, line_item_id, processor, payment_type, 'queued', NULLIF(instrument_kind, ''),
           NULLIF(instrument_brand, ''), NULLIF(instrument_last_four, ''), job_msg_id, job, now, now
      FROM ins ORDER BY ord
), ob AS (
    INSERT INTO outbox (msg_id, subject, headers, payload, fast_path, attempt_id)
    SELECT m.msg_id, m.subject, m.headers::jsonb, m.payload, $28, NULLIF(m.attempt_id, '')
      FROM unnest($23::int8[], $24::text[], $25::text[], $26::text[], $27::bytea[], $31::text[]) WITH ORDINALITY
           AS m(ord, msg_id, subject, headers, payload, attempt_id, n)
      JOIN ins ON ins.ord = m.ord
     ORDER BY m.n
    RETURNING id, msg_id
), n AS (
    SELECT pg_notify($29, '') WHERE NOT $28 AND EXISTS (SELECT 1 FROM ins)
)
SELECT (SELECT array_agg(ord ORDER BY ord) FROM ins), (SELECT array_agg(seq ORDER BY ord) FROM ins),
       (SELECT array_agg(id ORDER BY id) FROM ob), (SELECT array_agg(msg_id ORDER BY id) FROM ob),
       (SELECT count(*) FROM n), (SELECT array_agg(ord ORDER BY ord) FROM ra WHERE NOT expected)`

// pendingPayment is one payment ready to be written: the line item as the
// statement will store it, and its outbox rows (the job and the creation
// event) with the request's trace in their headers.
type pendingPayment struct {
	orgID   string
	in      NewPayment
	li      LineItem
	msgs    []OutboxMessage
	headers []string // msgs' headers as JSON
	ext     string   // the line item's external fields as JSON
}

// paymentOutcome is what the batch did with one payment: written (li is
// as stored), or not written because its account is not as the payment
// expected (changed: ErrAccountChanged), because the statement did not
// insert it (err nil: the general path explains why) or because it failed
// as a whole (err set: nothing of the batch was written). A written
// payment with err had its outbox rows come back incomplete.
type paymentOutcome struct {
	li      LineItem
	written bool
	changed bool
	err     error
}

// preparePayment renders a payment as createPaymentOneTrip writes it: the
// creation event is rendered from the line item as the statement will
// store it (times at PostgreSQL's microsecond precision, no JSON columns
// that jsonb would respell).
func (s *Store) preparePayment(ctx context.Context, orgID string, in NewPayment) (pendingPayment, error) {
	n := in.LineItem
	now := time.Now().UTC().Truncate(time.Microsecond)
	eff := now
	if !n.EffectiveAt.IsZero() {
		eff = n.EffectiveAt.UTC().Truncate(time.Microsecond)
	}
	li := LineItem{OrgID: orgID, AccountID: n.AccountID, LineItemID: n.LineItemID, ProductID: in.ProductID, Type: n.Type,
		Status: StatusPending, Description: n.Description, AmountCents: n.AmountCents, EffectiveAt: eff,
		CreatedAt: now, UpdatedAt: now, ExternalFields: nonNil(n.ExternalFields), Origin: n.Origin, Processor: n.Processor,
		Attempt: &Attempt{AttemptID: in.AttemptID, Processor: n.Processor, PaymentType: in.PaymentType,
			Status: AttemptQueued, InstrumentKind: in.InstrumentKind, InstrumentBrand: in.InstrumentBrand,
			InstrumentLastFour: in.InstrumentLastFour}}
	ev, err := s.events.Event(Change{LineItem: li, Actor: n.ClientID, Reason: "created via " + n.Origin, At: now})
	if err != nil {
		return pendingPayment{}, fmt.Errorf("event for line item %s: %w", n.LineItemID, err)
	}
	ext, err := json.Marshal(li.ExternalFields)
	if err != nil {
		return pendingPayment{}, fmt.Errorf("encode external fields of line item %s: %w", n.LineItemID, err)
	}
	p := pendingPayment{orgID: orgID, in: in, li: li, msgs: []OutboxMessage{jobOf(in.AttemptID, in.Job), ev},
		headers: make([]string, 2), ext: string(ext)}
	for i, m := range p.msgs {
		// The rows carry the request's trace, as insertOutbox's do.
		h := tracing.Inject(ctx, m.Headers)
		if h == nil {
			h = map[string]string{}
		}
		p.msgs[i].Headers = h
		b, err := json.Marshal(h)
		if err != nil {
			return pendingPayment{}, fmt.Errorf("encode headers of %s: %w", m.MsgID, err)
		}
		p.headers[i] = string(b)
	}
	return p, nil
}

// createPaymentGrouped writes a payment in the next batch. err is set when
// the payment could not be prepared or ctx ended before its outcome was
// known (*groupcommit.LeftError); otherwise the outcome says what the batch
// did.
func (s *Store) createPaymentGrouped(ctx context.Context, orgID string, in NewPayment) (paymentOutcome, error) {
	p, err := s.preparePayment(ctx, orgID, in)
	if err != nil {
		return paymentOutcome{}, err
	}
	return s.payments.Do(ctx, p)
}

// paymentKey and idempotencyKey are the unique keys a payment's line item
// takes (the primary key and line_items_idempotency_key_idx).
type paymentKey struct{ org, account, lineItem string }
type idempotencyKey struct{ org, client, key string }

// insertPaymentBatch writes a batch of payments with insertPayments and
// hands the outbox rows of those written to the fast path. A payment that
// shares a key with an earlier one of the batch is left out of the
// statement (unwritten): the general path, after the commit, finds the
// earlier one and explains it as a replay or a conflict — unless the
// earlier one's account was not as expected, which then holds for it too
// (the general path does not check the account, and would write it).
func (s *Store) insertPaymentBatch(ctx context.Context, batch []pendingPayment) []paymentOutcome {
	outs := make([]paymentOutcome, len(batch))
	seenKeys := make(map[paymentKey]int, len(batch)) // the index of the payment sent with the key
	seenIdem := make(map[idempotencyKey]int, len(batch))
	sent := make([]int, 0, len(batch)) // indexes into batch, in the statement's order
	var leftOut [][2]int               // a payment left out and the one sent with its key
	for i, p := range batch {
		n := p.in.LineItem
		k := paymentKey{p.orgID, n.AccountID, n.LineItemID}
		ik := idempotencyKey{p.orgID, n.ClientID, n.IdempotencyKey}
		if first, ok := seenKeys[k]; ok {
			leftOut = append(leftOut, [2]int{i, first})
			continue
		}
		if first, ok := seenIdem[ik]; ok && n.IdempotencyKey != "" {
			leftOut = append(leftOut, [2]int{i, first})
			continue
		}
		seenKeys[k] = i
		if n.IdempotencyKey != "" {
			seenIdem[ik] = i
		}
		sent = append(sent, i)
	}
	slices.SortStableFunc(sent, func(a, b int) int {
		x, y := batch[a], batch[b]
		return cmp.Or(cmp.Compare(x.orgID, y.orgID), cmp.Compare(x.in.LineItem.AccountID, y.in.LineItem.AccountID),
			cmp.Compare(x.in.LineItem.LineItemID, y.in.LineItem.LineItemID))
	})

	k := len(sent)
	orgs, accounts, lineItems, types, descriptions := make([]string, k), make([]string, k), make([]string, k),
		make([]string, k), make([]string, k)
	amounts, effs, nows := make([]int64, k), make([]time.Time, k), make([]time.Time, k)
	exts, origins, procs, hashes := make([]string, k), make([]string, k), make([]string, k), make([][]byte, k)
	clients, idems, products, attempts, paymentTypes := make([]string, k), make([]string, k), make([]string, k),
		make([]string, k), make([]string, k)
	kinds, brands, lastFours, jobs := make([]string, k), make([]string, k), make([]string, k), make([]string, k)
	names, sealedJobs := make([]string, k), make([][]byte, k)
	var msgOrds []int64
	var msgIDs, subjects, headers, msgAttempts []string
	var payloads [][]byte
	for j, i := range sent {
		p := batch[i]
		n := p.in.LineItem
		orgs[j], accounts[j], lineItems[j], types[j], descriptions[j] = p.orgID, n.AccountID, n.LineItemID, string(n.Type),
			n.Description
		amounts[j], effs[j], nows[j] = n.AmountCents, p.li.EffectiveAt, p.li.CreatedAt
		exts[j], origins[j], procs[j], hashes[j] = p.ext, n.Origin, n.Processor, n.RequestHash
		clients[j], idems[j], products[j], attempts[j], paymentTypes[j] = n.ClientID, n.IdempotencyKey, p.in.ProductID,
			p.in.AttemptID, p.in.PaymentType
		kinds[j], brands[j], lastFours[j], jobs[j] = p.in.InstrumentKind, p.in.InstrumentBrand, p.in.InstrumentLastFour,
			p.in.Job.MsgID
		names[j], sealedJobs[j] = p.in.CustomerName, p.in.Job.Payload
		for m, msg := range p.msgs {
			msgOrds = append(msgOrds, int64(j+1))
			msgIDs, subjects, headers = append(msgIDs, msg.MsgID), append(subjects, msg.Subject), append(headers, p.headers[m])
			payloads, msgAttempts = append(payloads, storedPayload(msg)), append(msgAttempts, msg.AttemptID)
		}
	}
	fastPath := s.fastPath != nil
	var ords, seqs, rowIDs, changed []int64
	var rowMsgIDs []string
	var notified int64
	err := s.pool.QueryRow(ctx, insertPayments,
		orgs, accounts, lineItems, types, descriptions, amounts, effs, nows, exts, origins, procs, hashes, clients,
		idems, products, attempts, paymentTypes, kinds, brands, lastFours, jobs, names,
		msgOrds, msgIDs, subjects, headers, payloads, fastPath, outboxChannel, sealedJobs, msgAttempts,
	).Scan(&ords, &seqs, &rowIDs, &rowMsgIDs, &notified, &changed)
	if err != nil {
		err = fmt.Errorf("insert %d payments: %w", k, err)
		for _, i := range sent {
			outs[i].err = err
		}
		return outs
	}
	for _, ord := range changed {
		outs[sent[ord-1]].changed = true
	}
	for _, lo := range leftOut {
		outs[lo[0]].changed = outs[lo[1]].changed
	}
	ids := make(map[string]int64, len(rowIDs))
	for i, id := range rowMsgIDs {
		ids[id] = rowIDs[i]
	}
	for o, ord := range ords {
		i := sent[ord-1]
		p := batch[i]
		msgs := slices.Clone(p.msgs)
		found := 0
		for m := range msgs {
			if id, ok := ids[msgs[m].MsgID]; ok {
				msgs[m].ID = id
				found++
			}
		}
		if found != len(msgs) {
			outs[i] = paymentOutcome{written: true, err: fmt.Errorf("wrote %d of %d outbox rows", found, len(msgs))}
			continue
		}
		li := p.li
		li.Seq = seqs[o]
		outs[i] = paymentOutcome{li: li, written: true}
		if fastPath {
			s.fastPath.Enqueue(msgs)
		}
	}
	return outs
}
