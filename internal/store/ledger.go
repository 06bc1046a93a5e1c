package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file holds the store's operations inside a caller's transaction,
// for processors that change line items in the same transaction as their
// own tables (the NACHA file drop, settlement and returns). Their events
// are not handed to a fast path, since the store cannot see the commit:
// the relay publishes them, woken by a NOTIFY that fires on commit.

// Transition moves a line item to status To inside tx, provided it is in
// status From, records the transition and writes its event. A line item
// in another status is a *TransitionError.
type Transition struct {
	OrgID      string
	AccountID  string
	LineItemID string
	From, To   Status
	Actor      string
	Reason     string
}

// TransitionTx applies t inside tx.
func (s *Store) TransitionTx(ctx context.Context, tx pgx.Tx, t Transition) (LineItem, error) {
	var cur Status
	var amount int64
	err := tx.QueryRow(ctx, `SELECT status, original_amount_cents FROM line_items
		WHERE org_id = $1 AND account_id = $2 AND line_item_id = $3 FOR UPDATE`,
		t.OrgID, t.AccountID, t.LineItemID).Scan(&cur, &amount)
	if errors.Is(err, pgx.ErrNoRows) {
		return LineItem{}, ErrNotFound
	}
	if err != nil {
		return LineItem{}, fmt.Errorf("store: lock line item %s: %w", t.LineItemID, err)
	}
	if cur != t.From {
		return LineItem{}, &TransitionError{From: cur, To: t.To, Reason: "expected " + string(t.From)}
	}
	return s.transition(ctx, tx, nil, t.OrgID, t.AccountID, t.LineItemID, t.To, amount, cur, t.Actor, t.Reason)
}

// AttemptPatch changes an attempt's processing details; empty fields are
// left as they are.
type AttemptPatch struct {
	Status        AttemptStatus
	TransactionID string
	ResultCode    string
	ResultMessage string
	NachaFileID   string
	TraceNumber   string
}

// PatchAttemptTx applies p to the attempt inside tx.
func (s *Store) PatchAttemptTx(ctx context.Context, tx pgx.Tx, ref AttemptRef, p AttemptPatch) error {
	tag, err := tx.Exec(ctx, `
		UPDATE payment_attempts SET
		       status = COALESCE(NULLIF($3, ''), status),
		       transaction_id = COALESCE(NULLIF($4, ''), transaction_id),
		       result_code = COALESCE(NULLIF($5, ''), result_code),
		       result_message = COALESCE(NULLIF($6, ''), result_message),
		       nacha_file_id = COALESCE(NULLIF($7, ''), nacha_file_id),
		       trace_number = COALESCE(NULLIF($8, ''), trace_number),
		       updated_at = now()
		 WHERE org_id = $1 AND attempt_id = $2`,
		ref.OrgID, ref.AttemptID, p.Status, p.TransactionID, p.ResultCode, p.ResultMessage, p.NachaFileID, p.TraceNumber)
	if err != nil {
		return fmt.Errorf("store: patch attempt %s: %w", ref.AttemptID, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// AnnounceTx writes an event for a line item whose status did not change
// but whose processing did (an ACH entry went out in a NACHA file), so
// consumers following the status subjects hear of it.
func (s *Store) AnnounceTx(ctx context.Context, tx pgx.Tx, orgID, accountID, lineItemID, actor, reason string) error {
	li, err := s.lineItemTx(ctx, tx, orgID, accountID, lineItemID)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: read line item %s: %w", lineItemID, err)
	}
	return s.announce(ctx, tx, nil, Change{LineItem: li, From: li.Status, Actor: actor, Reason: reason, At: time.Now().UTC()})
}

// Reversal is a PAYMENT_REVERSAL line item that undoes a settled payment.
type Reversal struct {
	OrgID            string
	AccountID        string
	LineItemID       string // the reversal's id
	ReversedLineItem string // the original payment
	AmountCents      int64
	Description      string
	Actor            string
	Reason           string
}

// CreateReversalTx creates the VALID reversal line item with its creation
// transition and event inside tx. An existing reversal with the same id
// is left as it is (a re-applied return file).
func (s *Store) CreateReversalTx(ctx context.Context, tx pgx.Tx, r Reversal) (LineItem, bool, error) {
	now := time.Now().UTC()
	li, err := scanLineItem(tx.QueryRow(ctx, insertLineItem,
		r.OrgID, r.AccountID, r.LineItemID, TypePaymentReversal, StatusValid, r.Description, r.AmountCents,
		now, now, nil, nil, []ExternalField{}, "nacha_return", "", []byte("reversal:"+r.ReversedLineItem), r.Actor, ""))
	if errors.Is(err, pgx.ErrNoRows) {
		return LineItem{}, false, nil
	}
	if err != nil {
		return LineItem{}, false, fmt.Errorf("store: create reversal %s: %w", r.LineItemID, err)
	}
	// Linked both ways, as CreateReversal links a client's reversal: the
	// payment's GET shows what reversed it.
	if _, err := tx.Exec(ctx, `UPDATE line_items SET related_line_item_id = CASE line_item_id WHEN $3 THEN $4 ELSE $3 END
		WHERE org_id = $1 AND account_id = $2 AND line_item_id IN ($3, $4)`,
		r.OrgID, r.AccountID, r.LineItemID, r.ReversedLineItem); err != nil {
		return LineItem{}, false, fmt.Errorf("store: link reversal %s: %w", r.LineItemID, err)
	}
	li.RelatedLineItemID = r.ReversedLineItem
	return li, true, s.announce(ctx, tx, nil, Change{LineItem: li, Actor: r.Actor, Reason: r.Reason, At: now})
}

// BankCorrection is a notification of change to an account's stored bank
// details. Empty corrected fields keep their value.
type BankCorrection struct {
	OrgID                  string
	AccountID              string
	OriginalRoutingNumber  string
	OriginalAccountNumber  string
	CorrectedRoutingNumber string
	CorrectedAccountNumber string
}

// CorrectBankDetailsTx applies c to the account's canopy_nacha_config
// inside tx, only when the stored details still equal the originals (a
// guest payment's bank account is not the stored one). It reports whether
// anything changed.
func (s *Store) CorrectBankDetailsTx(ctx context.Context, tx pgx.Tx, c BankCorrection) (bool, error) {
	var routing string
	var sealed []byte
	err := tx.QueryRow(ctx, `SELECT COALESCE(ach_routing_number, ''), ach_account_number_enc
		FROM account_processor_configs WHERE org_id = $1 AND account_id = $2 FOR UPDATE`,
		c.OrgID, c.AccountID).Scan(&routing, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: lock bank details of account %s: %w", c.AccountID, err)
	}
	// An account without a sealed number has no ACH processor configured.
	if sealed == nil || routing != c.OriginalRoutingNumber {
		return false, nil
	}
	clear, err := s.ring.Open(sealed, accountNumberContext(c.OrgID, c.AccountID))
	if err != nil {
		return false, fmt.Errorf("store: open bank account number of account %s: %w", c.AccountID, err)
	}
	if string(clear) != c.OriginalAccountNumber {
		return false, nil
	}
	newRouting, newNumber := routing, string(clear)
	if c.CorrectedRoutingNumber != "" {
		newRouting = c.CorrectedRoutingNumber
	}
	if c.CorrectedAccountNumber != "" {
		newNumber = c.CorrectedAccountNumber
	}
	resealed, err := s.ring.Seal([]byte(newNumber), accountNumberContext(c.OrgID, c.AccountID))
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE account_processor_configs
		SET ach_routing_number = $3, ach_account_number_enc = $4, ach_account_last_four = $5, updated_at = now()
		WHERE org_id = $1 AND account_id = $2`, c.OrgID, c.AccountID, newRouting, resealed, LastFour(newNumber)); err != nil {
		return false, fmt.Errorf("store: correct bank details of account %s: %w", c.AccountID, err)
	}
	return true, nil
}
