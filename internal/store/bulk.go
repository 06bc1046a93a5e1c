package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// BulkItem is one line item of a BulkChange, with its attempt's patch.
type BulkItem struct {
	OrgID      string
	AccountID  string
	LineItemID string
	AttemptID  string
	Attempt    AttemptPatch
}

// BulkChange changes many line items in a caller's transaction in a fixed
// number of round trips, for processors that act on thousands of entries
// at once (a NACHA file drop or settlement).
type BulkChange struct {
	Items []BulkItem
	// From and To move every line item From → To; To "" leaves the status
	// (an attempt-only change). A line item not in From fails the change.
	From, To Status
	// OnlyNewFile skips items whose attempt already carries the patch's
	// NachaFileID and TraceNumber, so a repeated call is a no-op.
	OnlyNewFile bool
	Actor       string
	Reason      string
	At          time.Time
}

// ApplyBulkTx applies c inside tx: the attempts' patches, the status
// change with one transition per line item, and one event per line item
// changed. It returns how many line items it changed.
func (s *Store) ApplyBulkTx(ctx context.Context, tx pgx.Tx, c BulkChange) (int, error) {
	if len(c.Items) == 0 {
		return 0, nil
	}
	n := len(c.Items)
	orgs, accounts, lineItems, attempts := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	statuses, txIDs, codes, messages, files, traces := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	for i, it := range c.Items {
		orgs[i], accounts[i], lineItems[i], attempts[i] = it.OrgID, it.AccountID, it.LineItemID, it.AttemptID
		p := it.Attempt
		statuses[i], txIDs[i], codes[i], messages[i], files[i], traces[i] =
			string(p.Status), p.TransactionID, p.ResultCode, p.ResultMessage, p.NachaFileID, p.TraceNumber
	}
	at := c.At.UTC()
	if c.At.IsZero() {
		at = time.Now().UTC()
	}

	// 1. The attempts, keyed by their primary key; only the ones changed
	// go on (OnlyNewFile makes a repeat a no-op).
	rows, err := tx.Query(ctx, `
		WITH t AS (
		    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
		           AS t(org_id, attempt_id, status, transaction_id, result_code, result_message, nacha_file_id, trace)
		)
		UPDATE payment_attempts pa SET
		       status = COALESCE(NULLIF(t.status, ''), pa.status),
		       transaction_id = COALESCE(NULLIF(t.transaction_id, ''), pa.transaction_id),
		       result_code = COALESCE(NULLIF(t.result_code, ''), pa.result_code),
		       result_message = COALESCE(NULLIF(t.result_message, ''), pa.result_message),
		       nacha_file_id = COALESCE(NULLIF(t.nacha_file_id, ''), pa.nacha_file_id),
		       trace_number = COALESCE(NULLIF(t.trace, ''), pa.trace_number),
		       updated_at = $9
		  FROM t
		 WHERE pa.org_id = t.org_id AND pa.attempt_id = t.attempt_id
		   AND (NOT $10 OR pa.nacha_file_id IS DISTINCT FROM NULLIF(t.nacha_file_id, '')
		                OR pa.trace_number IS DISTINCT FROM NULLIF(t.trace, ''))
		RETURNING pa.org_id, pa.account_id, pa.line_item_id`,
		orgs, attempts, statuses, txIDs, codes, messages, files, traces, at, c.OnlyNewFile)
	if err != nil {
		return 0, fmt.Errorf("store: patch %d attempts: %w", n, err)
	}
	type key struct{ org, account, lineItem string }
	var changed []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.org, &k.account, &k.lineItem); err != nil {
			rows.Close()
			return 0, err
		}
		changed = append(changed, k)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("store: patch %d attempts: %w", n, err)
	}
	if !c.OnlyNewFile && len(changed) != n {
		return 0, fmt.Errorf("store: %d of %d attempts not found", n-len(changed), n)
	}
	if c.OnlyNewFile {
		orgs, accounts, lineItems = orgs[:0], accounts[:0], lineItems[:0]
		for _, k := range changed {
			orgs, accounts, lineItems = append(orgs, k.org), append(accounts, k.account), append(lineItems, k.lineItem)
		}
	}
	if len(lineItems) == 0 {
		return 0, nil
	}

	// 2. The status change with its transitions, all or nothing.
	if c.To != "" {
		var moved int
		err := tx.QueryRow(ctx, `
			WITH u AS (
			    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS u(org_id, account_id, line_item_id)
			), up AS (
			    UPDATE line_items li SET status = $5, updated_at = $6,
			           valid_at = CASE WHEN $5 = 'VALID' AND li.valid_at IS NULL THEN $6 ELSE li.valid_at END
			      FROM u
			     WHERE li.org_id = u.org_id AND li.account_id = u.account_id AND li.line_item_id = u.line_item_id
			       AND li.status = $4
			    RETURNING li.org_id, li.account_id, li.line_item_id, li.original_amount_cents
			), tr AS (
			    INSERT INTO line_item_transitions (org_id, account_id, line_item_id, from_status, to_status,
			        amount_cents, actor, reason, at)
			    SELECT org_id, account_id, line_item_id, $4, $5, original_amount_cents, $7, $8, $6 FROM up
			)
			SELECT count(*) FROM up`, orgs, accounts, lineItems, c.From, c.To, at, c.Actor, c.Reason).Scan(&moved)
		if err != nil {
			return 0, fmt.Errorf("store: move %d line items %s → %s: %w", len(lineItems), c.From, c.To, err)
		}
		if moved != len(lineItems) {
			return 0, &TransitionError{From: c.From, To: c.To,
				Reason: fmt.Sprintf("%d of %d line items were not %s", len(lineItems)-moved, len(lineItems), c.From)}
		}
	}

	// 3. One event per line item, rendered as the API shows it now: built
	// in PostgreSQL when the events can be (one statement per call), else
	// read back and rendered in Go.
	if se, ok := s.events.(SQLEvents); ok {
		var written int
		err := tx.QueryRow(ctx, `
			WITH u AS MATERIALIZED (
			    SELECT u.org_id, u.account_id, u.line_item_id, `+se.EventIDSQL()+` AS event_id
			      FROM unnest($1::text[], $2::text[], $3::text[]) AS u(org_id, account_id, line_item_id)
			), ins AS (
			    INSERT INTO outbox (msg_id, subject, headers, payload, fast_path)
			    SELECT ev.msg_id, ev.subject, ev.headers, ev.payload, false
			      FROM u
			      JOIN line_items li ON li.org_id = u.org_id AND li.account_id = u.account_id AND li.line_item_id = u.line_item_id
			      JOIN accounts a ON a.org_id = li.org_id AND a.account_id = li.account_id
			      LEFT JOIN payment_attempts pa
			        ON pa.org_id = li.org_id AND pa.account_id = li.account_id AND pa.line_item_id = li.line_item_id
			     CROSS JOIN LATERAL (SELECT u.event_id, CASE WHEN $4::text = '' THEN li.status::text ELSE $4::text END AS from_status,
			                                $5::text AS actor, $6::text AS reason, $7::timestamptz AS at) c
			     CROSS JOIN LATERAL (`+se.EventSQL()+`) ev
			    RETURNING 1
			)
			SELECT count(*) FROM ins`, orgs, accounts, lineItems, string(c.From), c.Actor, c.Reason, at).Scan(&written)
		if err != nil {
			return 0, fmt.Errorf("store: write events of %d line items: %w", len(lineItems), err)
		}
		if written != len(lineItems) {
			return 0, fmt.Errorf("store: wrote events of %d of %d line items", written, len(lineItems))
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, outboxChannel); err != nil {
			return 0, fmt.Errorf("store: notify outbox: %w", err)
		}
		return written, nil
	}
	rows, err = tx.Query(ctx, `SELECT `+lineItemColumns+` FROM`+lineItemFrom+`
		JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(org_id, account_id, line_item_id)
		  ON li.org_id = u.org_id AND li.account_id = u.account_id AND li.line_item_id = u.line_item_id`,
		orgs, accounts, lineItems)
	if err != nil {
		return 0, fmt.Errorf("store: read %d line items: %w", len(lineItems), err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LineItem, error) { return scanLineItem(r) })
	if err != nil {
		return 0, fmt.Errorf("store: read %d line items: %w", len(lineItems), err)
	}
	changes := make([]Change, len(items))
	for i, li := range items {
		from := li.Status
		if c.To != "" {
			from = c.From
		}
		changes[i] = Change{LineItem: li, From: from, Actor: c.Actor, Reason: c.Reason, At: at}
	}
	return len(items), s.announce(ctx, tx, nil, changes...)
}
