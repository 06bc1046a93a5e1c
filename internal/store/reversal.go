package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TypeChargeReversal is the line item that gives back a charge.
const TypeChargeReversal = "CHARGE_REVERSAL"

// IsReversal reports whether a line item type is a reversal of another
// line item.
func IsReversal(typ string) bool { return typ == TypePaymentReversal || typ == TypeChargeReversal }

// NewReversal is the input of CreateReversal: a reversal line item of
// the line item OriginalLineItemID, with what every created line item
// carries (ids, external fields, fingerprint, client and key).
type NewReversal struct {
	AccountID          string
	OriginalLineItemID string
	LineItemID         string
	ExternalFields     []ExternalField
	Origin             string
	RequestHash        []byte
	ClientID           string
	IdempotencyKey     string
	// Accepts judges, under the original's row lock and before an
	// existing reversal is looked for, whether this route reverses the
	// original's type at all (a charge route answers no reversal of a
	// payment, even an existing one); its error is returned as it is.
	Accepts func(orig LineItem) error
	// Plan decides, under the original's row lock, what the reversal is;
	// an error (a *TransitionError, or the caller's own) refuses it and is
	// returned as it is.
	Plan func(orig LineItem) (ReversalPlan, error)
}

// ReversalPlan is what the payments package decided a reversal is.
type ReversalPlan struct {
	Type        string // TypePaymentReversal or TypeChargeReversal
	Status      Status // VALID (ledger only) or PENDING (a processor moves the money)
	Description string
	// Execution, when set, is the attempt and job of a processor that
	// moves the money back; the reversal stays PENDING until it answers.
	Execution *ReversalExecution
}

// ReversalExecution is a reversal's attempt and job, as NewPayment's.
type ReversalExecution struct {
	AttemptID          string
	Processor          string
	PaymentType        string
	InstrumentKind     string
	InstrumentBrand    string
	InstrumentLastFour string
	Job                OutboxMessage
}

// CreateReversal records the reversal of a line item in one transaction:
// under the original's row lock, the reversal line item with its
// transition and creation event, the link both ways, an event announcing
// the original's link (its status does not change: the ledger is append
// only), and for an executed reversal its attempt and job.
//
// An original that already has a reversal is answered with that reversal
// and created=false, whoever asks and with whatever key: an original is
// reversed at most once. An Idempotency-Key already used by the same
// client for the same request is a replay too, for another request
// ErrIdempotencyKeyReused. A missing original (or account, or another
// org's) is ErrNotFound.
func (s *Store) CreateReversal(ctx context.Context, orgID string, in NewReversal) (li LineItem, created bool, err error) {
	now := time.Now().UTC()
	var existing *LineItem
	err = s.writeTx(ctx, func(tx pgx.Tx, emit func(...OutboxMessage)) error {
		orig, err := scanLineItem(tx.QueryRow(ctx, `SELECT `+lineItemColumns+` FROM`+lineItemFrom+`
			  WHERE li.org_id = $1 AND li.account_id = $2 AND li.line_item_id = $3
			    FOR UPDATE OF li`, orgID, in.AccountID, in.OriginalLineItemID))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock original: %w", err)
		}
		if err := in.Accepts(orig); err != nil {
			return err
		}
		if orig.RelatedLineItemID != "" && !IsReversal(orig.Type) {
			prev, err := s.lineItemTx(ctx, tx, orgID, in.AccountID, orig.RelatedLineItemID)
			if err != nil {
				return fmt.Errorf("read reversal %s: %w", orig.RelatedLineItemID, err)
			}
			if IsReversal(prev.Type) {
				existing = &prev
				return nil
			}
		}
		plan, err := in.Plan(orig)
		if err != nil {
			return err
		}
		li, err = scanLineItem(tx.QueryRow(ctx, insertLineItem,
			orgID, in.AccountID, in.LineItemID, plan.Type, plan.Status, plan.Description, orig.AmountCents,
			now, now, nil, nil, nonNil(in.ExternalFields), in.Origin, executor(plan), in.RequestHash, in.ClientID,
			in.IdempotencyKey))
		if errors.Is(err, pgx.ErrNoRows) {
			return errReplay // the Idempotency-Key (or the generated id) is taken
		}
		if err != nil {
			return fmt.Errorf("insert reversal: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE line_items SET related_line_item_id = CASE line_item_id WHEN $3 THEN $4 ELSE $3 END
			WHERE org_id = $1 AND account_id = $2 AND line_item_id IN ($3, $4)`,
			orgID, in.AccountID, li.LineItemID, orig.LineItemID); err != nil {
			return fmt.Errorf("link reversal: %w", err)
		}
		li.RelatedLineItemID = orig.LineItemID
		if x := plan.Execution; x != nil {
			if _, err := tx.Exec(ctx, `
				INSERT INTO payment_attempts (attempt_id, org_id, account_id, line_item_id, processor, payment_type, status,
				    instrument_kind, instrument_brand, instrument_last_four, job_msg_id, job, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, 'queued', NULLIF($7, ''), NULLIF($8, ''), NULLIF($9, ''), $10, $12, $11, $11)`,
				x.AttemptID, orgID, li.AccountID, li.LineItemID, x.Processor, x.PaymentType,
				x.InstrumentKind, x.InstrumentBrand, x.InstrumentLastFour, x.Job.MsgID, now, x.Job.Payload); err != nil {
				return fmt.Errorf("insert reversal attempt: %w", err)
			}
			li.Attempt = &Attempt{AttemptID: x.AttemptID, Processor: x.Processor, PaymentType: x.PaymentType,
				Status: AttemptQueued, InstrumentKind: x.InstrumentKind, InstrumentBrand: x.InstrumentBrand,
				InstrumentLastFour: x.InstrumentLastFour}
			if err := s.insertOutbox(ctx, tx, emit, jobOf(x.AttemptID, x.Job)); err != nil {
				return err
			}
		}
		orig.RelatedLineItemID = li.LineItemID
		reason := "created via " + in.Origin
		return s.announce(ctx, tx, emit,
			Change{LineItem: li, Actor: in.ClientID, Reason: reason, At: now},
			Change{LineItem: orig, From: orig.Status, Actor: in.ClientID, Reason: "reversed by " + li.LineItemID, At: now})
	})
	switch {
	case err == nil && existing != nil:
		return *existing, false, nil
	case err == nil:
		return li, true, nil
	case errors.Is(err, errReplay):
	default:
		var te *TransitionError
		if errors.Is(err, ErrNotFound) || errors.As(err, &te) {
			return LineItem{}, false, err
		}
		return LineItem{}, false, fmt.Errorf("store: reverse line item %q on account %q: %w", in.OriginalLineItemID, in.AccountID, err)
	}
	if in.IdempotencyKey != "" {
		prev, hash, err := s.lineItemByIdempotencyKey(ctx, orgID, in.ClientID, in.IdempotencyKey)
		switch {
		case err == nil && string(hash) == string(in.RequestHash):
			return prev, false, nil
		case err == nil:
			return LineItem{}, false, ErrIdempotencyKeyReused
		case !errors.Is(err, ErrNotFound):
			return LineItem{}, false, err
		}
	}
	return LineItem{}, false, fmt.Errorf("store: reversal id %q of line item %q already taken", in.LineItemID, in.OriginalLineItemID)
}

// executor is the processor column of a reversal line item: the
// processor that moves the money back, none for a ledger-only reversal.
func executor(p ReversalPlan) string {
	if p.Execution == nil {
		return ""
	}
	return p.Execution.Processor
}
