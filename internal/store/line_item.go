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

// Status is a line item's line_item_status, Canopy's enum. Which changes
// are allowed is the payments package's business (docs/states.md); the
// store records them.
type Status string

// Line item statuses.
const (
	StatusValid      Status = "VALID"
	StatusInvalid    Status = "INVALID"
	StatusPending    Status = "PENDING"
	StatusAuthorized Status = "AUTHORIZED"
	StatusDeclined   Status = "DECLINED"
	StatusVoid       Status = "VOID"
	StatusPosted     Status = "POSTED"
	StatusOffset     Status = "OFFSET"
	StatusReversed   Status = "REVERSED"
)

// Line item types payrail creates.
const (
	TypePayment         = "PAYMENT"
	TypeCharge          = "CHARGE"
	TypePaymentReversal = "PAYMENT_REVERSAL"
)

// LineItem is one entry of an account's ledger.
type LineItem struct {
	OrgID                  string
	AccountID              string
	LineItemID             string
	ProductID              string
	Type                   string
	Status                 Status
	Description            string
	AmountCents            int64
	EffectiveAt            time.Time
	ValidAt                *time.Time
	CreatedAt              time.Time
	UpdatedAt              time.Time
	MerchantData           json.RawMessage // nil when absent
	IssuerProcessorDetails json.RawMessage // nil when absent
	ExternalFields         []ExternalField
	Origin                 string // the route that created it
	Processor              string // "" unless a processor executes it
	RelatedLineItemID      string
	Seq                    int64 // ledger order; backs pagination cursors
	// Attempt is the execution of an executed payment; nil for records,
	// charges and reversals.
	Attempt *Attempt
}

// NewLineItem is the input of CreateLineItem.
type NewLineItem struct {
	AccountID              string
	LineItemID             string
	Type                   string
	Status                 Status
	Description            string
	AmountCents            int64
	EffectiveAt            time.Time // zero: the creation time
	MerchantData           json.RawMessage
	IssuerProcessorDetails json.RawMessage
	ExternalFields         []ExternalField
	Origin                 string
	Processor              string
	RequestHash            []byte
	ClientID               string
	IdempotencyKey         string // "" when the request carried none
}

const lineItemColumns = `li.org_id, li.account_id, li.line_item_id, a.product_id, li.line_item_type, li.status, li.description,
	li.original_amount_cents, li.effective_at, li.valid_at, li.created_at, li.updated_at, li.merchant_data,
	li.issuer_processor_details, li.external_fields, li.origin, COALESCE(li.processor, ''),
	COALESCE(li.related_line_item_id, ''), li.seq, ` + attemptColumns

// lineItemFrom joins what a LineItem is read from; queries name the line
// item li, the account a and the attempt pa.
const lineItemFrom = ` line_items li
	JOIN accounts a ON a.org_id = li.org_id AND a.account_id = li.account_id
	LEFT JOIN payment_attempts pa ON pa.org_id = li.org_id AND pa.account_id = li.account_id AND pa.line_item_id = li.line_item_id `

// scanLineItem reads lineItemColumns, then extra destinations.
func scanLineItem(row pgx.Row, extra ...any) (LineItem, error) {
	var li LineItem
	var at attemptScan
	dest := append([]any{&li.OrgID, &li.AccountID, &li.LineItemID, &li.ProductID, &li.Type, &li.Status, &li.Description,
		&li.AmountCents, &li.EffectiveAt, &li.ValidAt, &li.CreatedAt, &li.UpdatedAt, &li.MerchantData,
		&li.IssuerProcessorDetails, &li.ExternalFields, &li.Origin, &li.Processor, &li.RelatedLineItemID, &li.Seq},
		at.dest()...)
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return LineItem{}, err
	}
	li.EffectiveAt, li.CreatedAt, li.UpdatedAt = li.EffectiveAt.UTC(), li.CreatedAt.UTC(), li.UpdatedAt.UTC()
	if li.ValidAt != nil {
		v := li.ValidAt.UTC()
		li.ValidAt = &v
	}
	li.Attempt = at.attempt()
	return li, nil
}

// insertLineItem inserts the line item and its first transition in one
// statement; it returns no row when the account is missing or the line
// item id (or idempotency key) is already taken.
const insertLineItem = `
WITH acct AS (
    SELECT org_id, account_id, product_id FROM accounts WHERE org_id = $1 AND account_id = $2
), li AS (
    INSERT INTO line_items (org_id, account_id, line_item_id, line_item_type, status, description,
        original_amount_cents, effective_at, valid_at, created_at, updated_at, merchant_data,
        issuer_processor_details, external_fields, origin, processor, request_hash, client_id, idempotency_key)
    SELECT acct.org_id, acct.account_id, $3, $4, $5, $6, $7, $8,
           CASE WHEN $5 = 'VALID' THEN $9::timestamptz END, $9, $9, $10, $11, $12, $13, NULLIF($14, ''), $15, $16,
           NULLIF($17, '')
      FROM acct
    ON CONFLICT DO NOTHING
    RETURNING *
), tr AS (
    INSERT INTO line_item_transitions (org_id, account_id, line_item_id, from_status, to_status, amount_cents,
        actor, reason, at)
    SELECT org_id, account_id, line_item_id, NULL, status, original_amount_cents, client_id, 'created via ' || origin, $9
      FROM li
)
SELECT ` + lineItemColumns + ` FROM li JOIN acct a ON true LEFT JOIN payment_attempts pa ON false`

// errReplay rolls back a create whose id or key was already taken.
var errReplay = errors.New("store: line item id already taken")

// CreateLineItem records a new line item and emits its creation event. A
// replay of the same request (same line item id, or same Idempotency-Key,
// with the same request hash) returns the stored line item with
// created=false. A different request under a used id is ErrConflict; under
// a used key, ErrIdempotencyKeyReused. A missing account (or another
// org's) is ErrNotFound.
func (s *Store) CreateLineItem(ctx context.Context, orgID string, in NewLineItem) (li LineItem, created bool, err error) {
	return s.createLineItem(ctx, orgID, in, nil)
}

// createLineItem inserts the line item, lets then add rows of its own in
// the same transaction, and emits the creation event.
func (s *Store) createLineItem(ctx context.Context, orgID string, in NewLineItem,
	then func(tx pgx.Tx, li *LineItem, emit func(...OutboxMessage)) error) (li LineItem, created bool, err error) {
	now := time.Now().UTC()
	if in.EffectiveAt.IsZero() {
		in.EffectiveAt = now
	}
	err = s.writeTx(ctx, func(tx pgx.Tx, emit func(...OutboxMessage)) error {
		var err error
		li, err = scanLineItem(tx.QueryRow(ctx, insertLineItem,
			orgID, in.AccountID, in.LineItemID, in.Type, in.Status, in.Description, in.AmountCents,
			in.EffectiveAt.UTC(), now, nullJSON(in.MerchantData), nullJSON(in.IssuerProcessorDetails),
			nonNil(in.ExternalFields), in.Origin, in.Processor, in.RequestHash, in.ClientID, in.IdempotencyKey))
		if errors.Is(err, pgx.ErrNoRows) {
			return errReplay
		}
		if err != nil {
			return err
		}
		if then != nil {
			if err := then(tx, &li, emit); err != nil {
				return err
			}
		}
		return s.announce(ctx, tx, emit, Change{LineItem: li, Actor: in.ClientID, Reason: "created via " + in.Origin, At: now})
	})
	if err == nil {
		return li, true, nil
	}
	if !errors.Is(err, errReplay) {
		return LineItem{}, false, fmt.Errorf("store: create line item %q on account %q: %w", in.LineItemID, in.AccountID, err)
	}
	// Nothing inserted: a replay, a conflict, or no such account.
	if in.IdempotencyKey != "" {
		li, hash, err := s.lineItemByIdempotencyKey(ctx, orgID, in.ClientID, in.IdempotencyKey)
		switch {
		case err == nil && string(hash) == string(in.RequestHash):
			return li, false, nil
		case err == nil:
			return LineItem{}, false, ErrIdempotencyKeyReused
		case !errors.Is(err, ErrNotFound):
			return LineItem{}, false, err
		}
	}
	li, hash, err := s.lineItemWithHash(ctx, orgID, in.AccountID, in.LineItemID)
	switch {
	case err == nil && string(hash) == string(in.RequestHash):
		return li, false, nil
	case err == nil:
		return LineItem{}, false, ErrConflict
	default:
		return LineItem{}, false, err // ErrNotFound: the account does not exist for this org
	}
}

func (s *Store) lineItemWithHash(ctx context.Context, orgID, accountID, lineItemID string) (LineItem, []byte, error) {
	return s.queryLineItemWithHash(ctx,
		`SELECT `+lineItemColumns+`, li.request_hash FROM`+lineItemFrom+`
		  WHERE li.org_id = $1 AND li.account_id = $2 AND li.line_item_id = $3`,
		orgID, accountID, lineItemID)
}

func (s *Store) lineItemByIdempotencyKey(ctx context.Context, orgID, clientID, key string) (LineItem, []byte, error) {
	return s.queryLineItemWithHash(ctx,
		`SELECT `+lineItemColumns+`, li.request_hash FROM`+lineItemFrom+`
		  WHERE li.org_id = $1 AND li.client_id = $2 AND li.idempotency_key = $3`,
		orgID, clientID, key)
}

func (s *Store) queryLineItemWithHash(ctx context.Context, sql string, args ...any) (LineItem, []byte, error) {
	var hash []byte
	li, err := scanLineItem(s.pool.QueryRow(ctx, sql, args...), &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return LineItem{}, nil, ErrNotFound
	}
	if err != nil {
		return LineItem{}, nil, fmt.Errorf("store: read line item: %w", err)
	}
	return li, hash, nil
}

// LineItem returns one line item of an account.
func (s *Store) LineItem(ctx context.Context, orgID, accountID, lineItemID string) (LineItem, error) {
	li, _, err := s.lineItemWithHash(ctx, orgID, accountID, lineItemID)
	return li, err
}

// ListQuery selects a page of an account's ledger, newest first.
type ListQuery struct {
	Statuses      []Status // empty: any
	Types         []string // empty: any
	StartingAfter int64    // seq cursor: items older than it
	EndingBefore  int64    // seq cursor: items newer than it
	Limit         int
	// MaxBytes, when > 0, also bounds a page by size: items are added
	// while the sum of their ItemBytes stays within it (the first item
	// always), and a page cut short reports more.
	MaxBytes int
}

// ItemBytes estimates what a line item weighs in a page: its variable
// parts (external fields, merchant data, issuer details) as stored, plus
// a fixed allowance for the rest of its rendering.
func ItemBytes(li LineItem) int {
	n := 1024 + len(li.MerchantData) + len(li.IssuerProcessorDetails)
	for _, f := range li.ExternalFields {
		n += len(f.Key) + len(f.Value) + 32
	}
	return n
}

// ListLineItems returns one page of line items, newest first, and whether
// more exist beyond the page in the direction of travel. A missing account
// is ErrNotFound. Both queries travel in one round trip.
func (s *Store) ListLineItems(ctx context.Context, orgID, accountID string, q ListQuery) ([]LineItem, bool, error) {
	order := "DESC"
	if q.EndingBefore > 0 {
		order = "ASC" // walk towards newer items, then flip
	}
	batch := &pgx.Batch{}
	batch.Queue(`SELECT EXISTS (SELECT 1 FROM accounts WHERE org_id = $1 AND account_id = $2)`, orgID, accountID)
	batch.Queue(`SELECT `+lineItemColumns+` FROM`+lineItemFrom+`
		  WHERE li.org_id = $1 AND li.account_id = $2
		    AND (cardinality($3::text[]) = 0 OR li.status = ANY($3))
		    AND (cardinality($4::text[]) = 0 OR li.line_item_type = ANY($4))
		    AND ($5::bigint = 0 OR li.seq < $5)
		    AND ($6::bigint = 0 OR li.seq > $6)
		  ORDER BY li.seq `+order+` LIMIT $7`,
		orgID, accountID, nonNil(q.Statuses), nonNil(q.Types), q.StartingAfter, q.EndingBefore, q.Limit+1)
	br := s.pool.SendBatch(ctx, batch)
	defer br.Close()

	var exists bool
	if err := br.QueryRow().Scan(&exists); err != nil {
		return nil, false, fmt.Errorf("store: list line items of %q: %w", accountID, err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, false, fmt.Errorf("store: list line items of %q: %w", accountID, err)
	}
	// Rows come nearest the cursor first; the page stops at Limit items
	// or at MaxBytes, whichever comes first, without reading the rest.
	var items []LineItem
	more, size := false, 0
	for rows.Next() {
		li, err := scanLineItem(rows)
		if err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("store: list line items of %q: %w", accountID, err)
		}
		size += ItemBytes(li)
		if len(items) == q.Limit || (q.MaxBytes > 0 && len(items) > 0 && size > q.MaxBytes) {
			more = true
			break
		}
		items = append(items, li)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("store: list line items of %q: %w", accountID, err)
	}
	if !exists {
		return nil, false, ErrNotFound
	}
	if order == "ASC" {
		slices.Reverse(items)
	}
	return items, more, nil
}

// LineItemUpdate is a requested change to a line item. Nil fields are left
// as they are.
type LineItemUpdate struct {
	Status      *Status
	AmountCents *int64
	Actor       string
	Reason      string
	// Check judges the change against the line item as it is, under its
	// row lock: a non-nil error (a *TransitionError) refuses it.
	Check func(cur LineItem, to Status, amountCents int64) error
}

// UpdateLineItem applies u if u.Check allows it, records the transition
// and emits its event. A refused change is Check's error; repeating an
// applied change is a no-op that returns the line item.
func (s *Store) UpdateLineItem(ctx context.Context, orgID, accountID, lineItemID string, u LineItemUpdate) (LineItem, error) {
	var out LineItem
	err := s.writeTx(ctx, func(tx pgx.Tx, emit func(...OutboxMessage)) error {
		cur, err := scanLineItem(tx.QueryRow(ctx, `SELECT `+lineItemColumns+` FROM`+lineItemFrom+`
			  WHERE li.org_id = $1 AND li.account_id = $2 AND li.line_item_id = $3
			    FOR UPDATE OF li`, orgID, accountID, lineItemID))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		to, amount := cur.Status, cur.AmountCents
		if u.Status != nil {
			to = *u.Status
		}
		if u.AmountCents != nil {
			amount = *u.AmountCents
		}
		if to == cur.Status && amount == cur.AmountCents {
			out = cur
			return nil
		}
		if u.Check != nil {
			if err := u.Check(cur, to, amount); err != nil {
				return err
			}
		}
		out, err = s.transition(ctx, tx, emit, orgID, accountID, lineItemID, to, amount, cur.Status, u.Actor, u.Reason)
		return err
	})
	var te *TransitionError
	if errors.Is(err, ErrNotFound) || errors.As(err, &te) {
		return LineItem{}, err
	}
	if err != nil {
		return LineItem{}, fmt.Errorf("store: update line item %q: %w", lineItemID, err)
	}
	return out, nil
}

// transition sets a line item's status and amount inside tx, records the
// transition and writes its event. from is the status the caller read
// under lock. emit hands the event to the fast path after commit; nil (a
// caller's own transaction) leaves it to the relay, which the NOTIFY
// written with it wakes on commit.
func (s *Store) transition(ctx context.Context, tx pgx.Tx, emit func(...OutboxMessage),
	orgID, accountID, lineItemID string, to Status, amount int64, from Status, actor, reason string) (LineItem, error) {
	now := time.Now().UTC()
	li, err := scanLineItem(tx.QueryRow(ctx, `
		WITH li AS (
		    UPDATE line_items SET status = $4, original_amount_cents = $5, updated_at = $6,
		           valid_at = CASE WHEN $4 = 'VALID' AND valid_at IS NULL THEN $6 ELSE valid_at END
		     WHERE org_id = $1 AND account_id = $2 AND line_item_id = $3
		    RETURNING *
		), tr AS (
		    INSERT INTO line_item_transitions (org_id, account_id, line_item_id, from_status, to_status,
		        amount_cents, actor, reason, at)
		    SELECT org_id, account_id, line_item_id, $7, status, original_amount_cents, $8, $9, $6 FROM li
		)
		SELECT `+lineItemColumns+` FROM li JOIN accounts a ON a.org_id = li.org_id AND a.account_id = li.account_id
		  LEFT JOIN payment_attempts pa ON pa.org_id = li.org_id AND pa.account_id = li.account_id
		       AND pa.line_item_id = li.line_item_id`,
		orgID, accountID, lineItemID, to, amount, now, from, actor, reason))
	if err != nil {
		return LineItem{}, err
	}
	if from == to {
		return li, nil // an amount-only edit is not a status event
	}
	return li, s.announce(ctx, tx, emit, Change{LineItem: li, From: from, Actor: actor, Reason: reason, At: now})
}

func nullJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return raw
}
