package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// The worker records deliveries and commits processors' results for many
// jobs at once: one statement for a whole set of deliveries, one
// transaction for a whole set of results (worker/batch.go). A set costs a
// few round trips however many jobs it holds, where one job at a time cost
// one round trip per delivery and six per result.

// DeliveryClaim is one delivery BeginDeliveries records.
type DeliveryClaim struct {
	AttemptRef
	Delivery int
}

// BeginDeliveries is BeginDeliveryState for many deliveries in one
// statement per round: out[i] and errs[i] are what BeginDeliveryState
// would have returned for claims[i]. Two claims of one attempt go in
// successive rounds, in their order, so the second sees the first as
// BeginDeliveryState would. err is set, and out and errs are nil, when
// the statement failed as a whole (PostgreSQL unreachable): nothing was
// recorded for any claim.
func (s *Store) BeginDeliveries(ctx context.Context, claims []DeliveryClaim, lease time.Duration) (out []Delivery, errs []error, err error) {
	out, errs = make([]Delivery, len(claims)), make([]error, len(claims))
	for _, round := range rounds(len(claims), func(i int) AttemptRef { return claims[i].AttemptRef }) {
		if err := s.beginDeliveries(ctx, claims, round, lease, out, errs); err != nil {
			return nil, nil, fmt.Errorf("store: begin %d deliveries: %w", len(round), err)
		}
	}
	return out, errs, nil
}

// rounds splits indexes 0..n-1 into rounds in which no attempt appears
// twice, keeping each attempt's indexes in order.
func rounds(n int, ref func(i int) AttemptRef) [][]int {
	var out [][]int
	seen := make(map[AttemptRef]int, n) // attempt → how many rounds hold it
	for i := range n {
		r := seen[ref(i)]
		seen[ref(i)] = r + 1
		if r == len(out) {
			out = append(out, nil)
		}
		out[r] = append(out[r], i)
	}
	return out
}

func (s *Store) beginDeliveries(ctx context.Context, claims []DeliveryClaim, round []int, lease time.Duration,
	out []Delivery, errs []error) error {
	orgs, attempts, deliveries := make([]string, len(round)), make([]string, len(round)), make([]int32, len(round))
	for j, i := range round {
		orgs[j], attempts[j], deliveries[j] = claims[i].OrgID, claims[i].AttemptID, int32(claims[i].Delivery)
	}
	// The attempts are locked in key order, so two sets that share
	// attempts (and the result sets, which lock in the same order) never
	// wait on each other in a cycle.
	rows, err := s.pool.Query(ctx, `
		WITH r AS (
		    SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) WITH ORDINALITY AS r(org_id, attempt_id, delivery, ord)
		), o AS MATERIALIZED (
		    SELECT r.ord, pa.org_id, pa.attempt_id, pa.status, pa.deliveries, r.delivery,
		           pa.status = 'processing' AND pa.deliveries < r.delivery AND pa.last_delivery_at > now() - $4::interval AS leased,
		           COALESCE(EXTRACT(EPOCH FROM pa.last_delivery_at + $4::interval - now()), 0)::float8 AS lease_left
		      FROM r JOIN payment_attempts pa ON pa.org_id = r.org_id AND pa.attempt_id = r.attempt_id
		     ORDER BY pa.org_id, pa.attempt_id
		       FOR UPDATE OF pa
		), u AS (
		    UPDATE payment_attempts pa
		       SET status = 'processing', deliveries = GREATEST(o.deliveries + 1, o.delivery),
		           last_delivery_at = now(), updated_at = now()
		      FROM o
		     WHERE pa.org_id = o.org_id AND pa.attempt_id = o.attempt_id AND o.status IN ('queued', 'processing') AND NOT o.leased
		 RETURNING pa.org_id, pa.attempt_id, pa.deliveries
		)
		SELECT o.ord, o.status, o.leased, o.lease_left, COALESCE(u.deliveries, o.deliveries)
		  FROM o LEFT JOIN u ON u.org_id = o.org_id AND u.attempt_id = o.attempt_id`,
		orgs, attempts, deliveries, lease)
	if err != nil {
		return err
	}
	found := make([]bool, len(round))
	for rows.Next() {
		var ord int64
		var d Delivery
		var leased bool
		var left float64
		if err := rows.Scan(&ord, &d.Before, &leased, &left, &d.Deliveries); err != nil {
			rows.Close()
			return err
		}
		j := int(ord - 1)
		i := round[j]
		found[j] = true
		if leased {
			d.LeaseLeft = max(time.Duration(left*float64(time.Second)), 0)
			errs[i] = ErrAttemptLeased
		}
		out[i] = d
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for j, ok := range found {
		if !ok {
			errs[round[j]] = ErrNotFound
		}
	}
	return nil
}

// CompleteAttempts applies many processors' results as CompleteAttempt
// applies one: errs[i] is what CompleteAttempt would have returned for
// rs[i] (nil when it was applied, ErrAttemptClosed, ErrNotFound). The
// results that apply commit together in one transaction: the attempts
// (each closed one without its job any more), the line items' changes
// with their transitions, and the events, rendered by PostgreSQL
// (SQLEvents) and handed to the fast path after the commit.
//
// A set of one result goes this way too: it is what the worker commits
// whenever results trickle in, and the set's transaction is two round
// trips fewer than CompleteAttempt's (four against six).
//
// When the transaction fails as a whole, each result is applied on its
// own, so a result that cannot be written (a processor message PostgreSQL
// refuses, say) fails alone and the others commit. Without SQLEvents
// every result is applied on its own.
func (s *Store) CompleteAttempts(ctx context.Context, rs []AttemptResult) []error {
	errs := make([]error, len(rs))
	se, ok := s.events.(SQLEvents)
	if ok && len(rs) > 0 {
		err := s.completeAttempts(ctx, se, rs, errs)
		if err == nil {
			return errs
		}
		if ctx.Err() != nil {
			for i := range errs {
				errs[i] = fmt.Errorf("store: complete %d attempts: %w", len(rs), err)
			}
			return errs
		}
	}
	for i, r := range rs {
		_, errs[i] = s.CompleteAttempt(ctx, r)
	}
	return errs
}

// completeAttempts is CompleteAttempts' one transaction. It fills errs
// only when it commits.
func (s *Store) completeAttempts(ctx context.Context, se SQLEvents, rs []AttemptResult, errs []error) error {
	from := rs[0].From
	for _, r := range rs[1:] {
		if !slices.Equal(r.From, from) {
			return errors.New("results with different From statuses")
		}
	}
	n := len(rs)
	orgs, attempts, statuses, liStatuses := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	txIDs, codes, messages, kinds, brands, lastFours := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	actors, reasons := make([]string, n), make([]string, n)
	traces := make([]*string, n) // JSON objects merged into the events' headers; NULL when untraced
	for i, r := range rs {
		orgs[i], attempts[i], statuses[i], liStatuses[i] = r.OrgID, r.AttemptID, string(r.Status), string(r.LineItemStatus)
		txIDs[i], codes[i], messages[i] = r.TransactionID, r.ResultCode, r.ResultMessage
		kinds[i], brands[i], lastFours[i] = r.InstrumentKind, r.InstrumentBrand, r.InstrumentLastFour
		actors[i], reasons[i] = r.Actor, r.Reason
		if len(r.TraceHeaders) > 0 {
			b, err := json.Marshal(r.TraceHeaders)
			if err != nil {
				return fmt.Errorf("encode trace headers of attempt %s: %w", r.AttemptID, err)
			}
			traces[i] = new(string(b))
		}
	}
	fromText := make([]string, len(from))
	for i, f := range from {
		fromText[i] = string(f)
	}
	now := time.Now().UTC()
	// seen[i]: the attempt exists; applied[i]: the result applies.
	seen, applied := make([]bool, n), make([]bool, n)
	var events []OutboxMessage
	fastPath := s.fastPath != nil
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		clear(seen)
		clear(applied)
		events = events[:0]
		// 1. In one round trip: lock every attempt and its line item (in
		// key order, as BeginDeliveries does), apply the results to the
		// attempts still in From (removing their jobs unless they stay
		// open), and move their line items with a transition each.
		first := &pgx.Batch{}
		var evOrgs, evAccounts, evLineItems, evAttempts, evFrom, evActors, evReasons []string
		var evTraces []*string
		first.Queue(`
			WITH r AS (
			    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			                         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
			           WITH ORDINALITY AS r(org_id, attempt_id, status, li_status, transaction_id, result_code,
			                                result_message, kind, brand, last_four, actor, reason, ord)
			), cur AS MATERIALIZED (
			    SELECT r.ord, pa.account_id, pa.line_item_id, pa.status AS attempt_before, pa.job_msg_id, li.status AS li_before
			      FROM r
			      JOIN payment_attempts pa ON pa.org_id = r.org_id AND pa.attempt_id = r.attempt_id
			      JOIN line_items li ON li.org_id = pa.org_id AND li.account_id = pa.account_id AND li.line_item_id = pa.line_item_id
			     ORDER BY pa.org_id, pa.attempt_id
			       FOR UPDATE OF pa, li
			), ok AS MATERIALIZED (
			    SELECT r.*, cur.account_id, cur.line_item_id, cur.job_msg_id, cur.li_before,
			           r.li_status <> '' AND r.li_status <> cur.li_before AS moves
			      FROM cur JOIN r ON r.ord = cur.ord
			     WHERE cur.attempt_before = ANY($13::text[])
			), upa AS (
			    UPDATE payment_attempts pa SET status = ok.status,
			           transaction_id = COALESCE(NULLIF(ok.transaction_id, ''), pa.transaction_id),
			           result_code = NULLIF(ok.result_code, ''), result_message = NULLIF(ok.result_message, ''),
			           instrument_kind = COALESCE(NULLIF(ok.kind, ''), pa.instrument_kind),
			           instrument_brand = COALESCE(NULLIF(ok.brand, ''), pa.instrument_brand),
			           instrument_last_four = COALESCE(NULLIF(ok.last_four, ''), pa.instrument_last_four),
			           job = CASE WHEN ok.status IN (`+jobKeepingStatuses+`) THEN pa.job END,
			           updated_at = now()
			      FROM ok
			     WHERE pa.org_id = ok.org_id AND pa.attempt_id = ok.attempt_id
			), uli AS (
			    UPDATE line_items li SET status = ok.li_status, updated_at = $14,
			           valid_at = CASE WHEN ok.li_status = 'VALID' AND li.valid_at IS NULL THEN $14 ELSE li.valid_at END
			      FROM ok
			     WHERE ok.moves AND li.org_id = ok.org_id AND li.account_id = ok.account_id AND li.line_item_id = ok.line_item_id
			    RETURNING li.org_id, li.account_id, li.line_item_id, li.status, li.original_amount_cents
			), tr AS (
			    INSERT INTO line_item_transitions (org_id, account_id, line_item_id, from_status, to_status,
			        amount_cents, actor, reason, at)
			    SELECT uli.org_id, uli.account_id, uli.line_item_id, ok.li_before, uli.status, uli.original_amount_cents,
			           ok.actor, ok.reason, $14
			      FROM uli JOIN ok ON ok.org_id = uli.org_id AND ok.account_id = uli.account_id AND ok.line_item_id = uli.line_item_id
			)
			SELECT cur.ord, ok.ord IS NOT NULL, COALESCE(ok.account_id, ''), COALESCE(ok.line_item_id, ''),
			       COALESCE(ok.li_before, '')
			  FROM cur LEFT JOIN ok ON ok.ord = cur.ord`,
			orgs, attempts, statuses, liStatuses, txIDs, codes, messages, kinds, brands, lastFours, actors, reasons,
			fromText, now).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var ord int64
				var ok bool
				var account, lineItem, liBefore string
				if err := rows.Scan(&ord, &ok, &account, &lineItem, &liBefore); err != nil {
					return err
				}
				i := int(ord - 1)
				seen[i] = true
				if !ok {
					continue
				}
				applied[i] = true
				evOrgs, evAccounts, evLineItems = append(evOrgs, orgs[i]), append(evAccounts, account), append(evLineItems, lineItem)
				evAttempts, evFrom = append(evAttempts, attempts[i]), append(evFrom, liBefore)
				evActors, evReasons = append(evActors, actors[i]), append(evReasons, reasons[i])
				evTraces = append(evTraces, traces[i])
			}
			return rows.Err()
		})
		if err := tx.SendBatch(ctx, first).Close(); err != nil {
			return err
		}
		if len(evOrgs) == 0 {
			return nil
		}

		// 2. The events.
		batch := &pgx.Batch{}
		batch.Queue(`
			WITH u AS MATERIALIZED (
			    SELECT u.*, `+se.EventIDSQL()+` AS event_id
			      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $10::text[])
			           AS u(org_id, account_id, line_item_id, attempt_id, from_status, actor, reason, trace_headers)
			)
			INSERT INTO outbox (msg_id, subject, headers, payload, fast_path)
			SELECT ev.msg_id, ev.subject, ev.headers || COALESCE(u.trace_headers::jsonb, '{}'), ev.payload, $9
			  FROM u
			  JOIN line_items li ON li.org_id = u.org_id AND li.account_id = u.account_id AND li.line_item_id = u.line_item_id
			  JOIN accounts a ON a.org_id = li.org_id AND a.account_id = li.account_id
			  JOIN payment_attempts pa ON pa.org_id = u.org_id AND pa.attempt_id = u.attempt_id
			 CROSS JOIN LATERAL (SELECT u.event_id, u.from_status, u.actor, u.reason, $8::timestamptz AS at) c
			 CROSS JOIN LATERAL (`+se.EventSQL()+`) ev
			RETURNING id, msg_id, subject, headers, payload`,
			evOrgs, evAccounts, evLineItems, evAttempts, evFrom, evActors, evReasons, now, fastPath, evTraces).Query(
			func(rows pgx.Rows) error {
				var err error
				events, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxMessage, error) {
					var m OutboxMessage
					err := r.Scan(&m.ID, &m.MsgID, &m.Subject, &m.Headers, &m.Payload)
					return m, err
				})
				return err
			})
		if !fastPath {
			batch.Queue(`SELECT pg_notify($1, '')`, outboxChannel)
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return err
		}
		if len(events) != len(evOrgs) {
			return fmt.Errorf("wrote %d events for %d results", len(events), len(evOrgs))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range rs {
		switch {
		case !seen[i]:
			errs[i] = ErrNotFound
		case !applied[i]:
			errs[i] = ErrAttemptClosed
		}
	}
	if fastPath && len(events) > 0 {
		s.fastPath.Enqueue(events)
	}
	return nil
}
