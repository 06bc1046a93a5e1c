package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
// with their transitions, and the events, rendered in Go (Events) from
// the line items as the set's statement returned them and handed to the
// fast path after the commit. (PostgreSQL rendered them once, through
// SQLEvents: that cost it more than any other statement of a result.)
//
// A set of one result goes this way too: it is what the worker commits
// whenever results trickle in, and the set's transaction is two round
// trips fewer than CompleteAttempt's (four against six).
//
// When the transaction fails as a whole, each result is applied on its
// own, so a result that cannot be written (a processor message PostgreSQL
// refuses, say) fails alone and the others commit.
func (s *Store) CompleteAttempts(ctx context.Context, rs []AttemptResult) []error {
	errs := make([]error, len(rs))
	if len(rs) > 0 {
		err := s.completeAttempts(ctx, rs, errs)
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
func (s *Store) completeAttempts(ctx context.Context, rs []AttemptResult, errs []error) error {
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
	for i, r := range rs {
		orgs[i], attempts[i], statuses[i], liStatuses[i] = r.OrgID, r.AttemptID, string(r.Status), string(r.LineItemStatus)
		txIDs[i], codes[i], messages[i] = r.TransactionID, r.ResultCode, r.ResultMessage
		kinds[i], brands[i], lastFours[i] = r.InstrumentKind, r.InstrumentBrand, r.InstrumentLastFour
		actors[i], reasons[i] = r.Actor, r.Reason
	}
	fromText := make([]string, len(from))
	for i, f := range from {
		fromText[i] = string(f)
	}
	// At PostgreSQL's precision, so the events say what the rows say.
	now := time.Now().UTC().Truncate(time.Microsecond)
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
		// open), move their line items with a transition each, and read
		// every line item back as it is after the statement (RETURNING
		// for what it changed), for its event.
		var changes []Change
		var changed []int // changes[k] is rs[changed[k]]'s
		rows, err := tx.Query(ctx, `
			WITH r AS (
			    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			                         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
			           WITH ORDINALITY AS r(org_id, attempt_id, status, li_status, transaction_id, result_code,
			                                result_message, kind, brand, last_four, actor, reason, ord)
			), cur AS MATERIALIZED (
			    SELECT r.ord, r.org_id, r.attempt_id, pa.account_id, pa.line_item_id, pa.status AS attempt_before,
			           pa.job_msg_id, li.status AS li_before
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
			    RETURNING pa.*
			), uli AS (
			    UPDATE line_items li SET status = ok.li_status, updated_at = $14,
			           valid_at = CASE WHEN ok.li_status = 'VALID' AND li.valid_at IS NULL THEN $14 ELSE li.valid_at END
			      FROM ok
			     WHERE ok.moves AND li.org_id = ok.org_id AND li.account_id = ok.account_id AND li.line_item_id = ok.line_item_id
			    RETURNING li.*
			), tr AS (
			    INSERT INTO line_item_transitions (org_id, account_id, line_item_id, from_status, to_status,
			        amount_cents, actor, reason, at)
			    SELECT uli.org_id, uli.account_id, uli.line_item_id, ok.li_before, uli.status, uli.original_amount_cents,
			           ok.actor, ok.reason, $14
			      FROM uli JOIN ok ON ok.org_id = uli.org_id AND ok.account_id = uli.account_id AND ok.line_item_id = uli.line_item_id
			)
			SELECT `+lineItemColumns+`, cur.ord, ok.ord IS NOT NULL, COALESCE(ok.li_before, '')
			  FROM cur LEFT JOIN ok ON ok.ord = cur.ord
			 CROSS JOIN LATERAL (
			     SELECT * FROM uli WHERE ok.moves
			        AND uli.org_id = cur.org_id AND uli.account_id = cur.account_id AND uli.line_item_id = cur.line_item_id
			     UNION ALL
			     SELECT l.* FROM line_items l WHERE ok.moves IS NOT TRUE
			        AND l.org_id = cur.org_id AND l.account_id = cur.account_id AND l.line_item_id = cur.line_item_id) li
			  JOIN accounts a ON a.org_id = li.org_id AND a.account_id = li.account_id
			 CROSS JOIN LATERAL (
			     SELECT * FROM upa WHERE ok.ord IS NOT NULL AND upa.attempt_id = cur.attempt_id
			     UNION ALL
			     SELECT p.* FROM payment_attempts p WHERE ok.ord IS NULL AND p.attempt_id = cur.attempt_id) pa`,
			orgs, attempts, statuses, liStatuses, txIDs, codes, messages, kinds, brands, lastFours, actors, reasons,
			fromText, now)
		if err != nil {
			return err
		}
		for rows.Next() {
			var ord int64
			var ok bool
			var liBefore string
			li, err := scanLineItem(rows, &ord, &ok, &liBefore)
			if err != nil {
				rows.Close()
				return err
			}
			i := int(ord - 1)
			seen[i] = true
			if !ok {
				continue
			}
			applied[i] = true
			changes = append(changes, Change{LineItem: li, From: Status(liBefore), Actor: rs[i].Actor, Reason: rs[i].Reason, At: now})
			changed = append(changed, i)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}

		// 2. The events, rendered here (Events, as CompleteAttempt's
		// are) and inserted with one statement. Each carries the trace of
		// the work that decided its result.
		events = events[:0]
		for k, c := range changes {
			m, err := s.events.Event(c)
			if err != nil {
				return fmt.Errorf("event for line item %s: %w", c.LineItem.LineItemID, err)
			}
			if trace := rs[changed[k]].TraceHeaders; len(trace) > 0 {
				h := make(map[string]string, len(m.Headers)+len(trace))
				maps.Copy(h, m.Headers)
				maps.Copy(h, trace)
				m.Headers = h
			}
			events = append(events, m)
		}
		return writeOutboxRows(ctx, tx, fastPath, events)
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
