package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/payrail/payrail/internal/tracing"
)

// AttemptStatus is where a payment's execution by its processor stands
// (schema/002_pipeline.sql); the payments package decides its changes.
type AttemptStatus string

// Attempt statuses.
const (
	AttemptQueued            AttemptStatus = "queued"
	AttemptProcessing        AttemptStatus = "processing"
	AttemptHeld              AttemptStatus = "held"
	AttemptPendingSettlement AttemptStatus = "pending_settlement"
	AttemptSucceeded         AttemptStatus = "succeeded"
	AttemptDeclined          AttemptStatus = "declined"
	AttemptFailed            AttemptStatus = "failed"
	AttemptDead              AttemptStatus = "dead"
	AttemptReturned          AttemptStatus = "returned"
)

// jobKeepingStatuses are the attempt statuses (as an SQL list) in which an
// attempt keeps its sealed job (payment_attempts.job): a later delivery,
// the reconciler or a held attempt's resolution may still need it. A
// result that moves the attempt to any other status removes it in the
// same UPDATE.
const jobKeepingStatuses = `'queued', 'processing', 'held'`

// ErrAttemptClosed: the attempt already has a result; nothing was changed.
var ErrAttemptClosed = errors.New("store: attempt already has a result")

// Attempt is one execution of a payment by a processor.
type Attempt struct {
	AttemptID          string
	Processor          string
	PaymentType        string
	Status             AttemptStatus
	Deliveries         int
	TransactionID      string
	ResultCode         string
	ResultMessage      string
	InstrumentKind     string
	InstrumentBrand    string
	InstrumentLastFour string
	NachaFileID        string
	TraceNumber        string
}

const attemptColumns = `pa.attempt_id, pa.processor, pa.payment_type, pa.status, pa.deliveries, pa.transaction_id,
	pa.result_code, pa.result_message, pa.instrument_kind, pa.instrument_brand, pa.instrument_last_four,
	pa.nacha_file_id, pa.trace_number`

// attemptScan receives attemptColumns from an outer join.
type attemptScan struct {
	id, processor, paymentType, status                 *string
	deliveries                                         *int32
	txID, code, message, kind, brand, lastFour, fileID *string
	trace                                              *string
}

func (a *attemptScan) dest() []any {
	return []any{&a.id, &a.processor, &a.paymentType, &a.status, &a.deliveries, &a.txID, &a.code, &a.message,
		&a.kind, &a.brand, &a.lastFour, &a.fileID, &a.trace}
}

func (a *attemptScan) attempt() *Attempt {
	if a.id == nil {
		return nil
	}
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	out := &Attempt{AttemptID: *a.id, Processor: s(a.processor), PaymentType: s(a.paymentType), Status: AttemptStatus(s(a.status)),
		TransactionID: s(a.txID), ResultCode: s(a.code), ResultMessage: s(a.message), InstrumentKind: s(a.kind),
		InstrumentBrand: s(a.brand), InstrumentLastFour: s(a.lastFour), NachaFileID: s(a.fileID), TraceNumber: s(a.trace)}
	if a.deliveries != nil {
		out.Deliveries = int(*a.deliveries)
	}
	return out
}

// NewPayment is the input of CreatePayment: a PENDING payment line item,
// its attempt and the job that asks a worker to execute it.
type NewPayment struct {
	LineItem    NewLineItem
	AttemptID   string
	PaymentType string
	// Instrument: what may be shown of the payment method from the start.
	InstrumentKind     string
	InstrumentBrand    string
	InstrumentLastFour string
	// Job is published to the processor's subject. Its Payload (sealed
	// details without CVV) is stored with the attempt until the attempt's
	// result commits; FastPayload is published at once.
	Job OutboxMessage
	// ProductID and CustomerName are the account's product and customer
	// name ("" for none) as the caller read them, possibly a while ago
	// (payments caches them): the job's holder name may come from the
	// customer name. With ProductID the payment is written in one
	// statement and one round trip: the creation event is rendered before
	// the insert, from the line item as it will be stored. That statement
	// checks both against the account it writes to: should either differ,
	// nothing is written and CreatePayment returns ErrAccountChanged (the
	// application never changes them). Without ProductID the general path
	// is taken, and CustomerName is not checked.
	ProductID    string
	CustomerName string
}

// CreatePayment writes, in one transaction, the PENDING line item with its
// transition, the attempt, the job's outbox row and the creation event
// (docs/pipeline.md: no dual writes). Replays and conflicts behave as in
// CreateLineItem; a replay writes and publishes nothing. The job's subject
// is the caller's. With in.ProductID the payment is written by one
// statement together with the payments of concurrent calls (group commit,
// payment_group.go), and CreatePayment returns once that statement
// committed; if the account's product or customer name is no longer
// in.ProductID and in.CustomerName, it returns ErrAccountChanged.
func (s *Store) CreatePayment(ctx context.Context, orgID string, in NewPayment) (LineItem, bool, error) {
	in.LineItem.Status = StatusPending
	if in.ProductID != "" && len(in.LineItem.MerchantData) == 0 && len(in.LineItem.IssuerProcessorDetails) == 0 {
		out, err := s.createPaymentGrouped(ctx, orgID, in)
		if err == nil && !out.written && out.err != nil {
			// The batch's statement failed: nothing of it was written.
			// Written on its own, the payment fails only if it is the one
			// PostgreSQL refused.
			out.li, out.written, out.changed, out.err = s.createPaymentOneTrip(ctx, orgID, in)
		}
		if err == nil {
			err = out.err
		}
		if err != nil {
			return LineItem{}, false, fmt.Errorf("store: create payment %q on account %q: %w",
				in.LineItem.LineItemID, in.LineItem.AccountID, err)
		}
		if out.written {
			return out.li, true, nil
		}
		if out.changed {
			return LineItem{}, false, ErrAccountChanged
		}
		// Nothing was written: a replay, a conflict, no such account. The
		// general path tells them apart.
	}
	return s.createLineItem(ctx, orgID, in.LineItem, func(tx pgx.Tx, li *LineItem, emit func(...OutboxMessage)) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO payment_attempts (attempt_id, org_id, account_id, line_item_id, processor, payment_type, status,
			    instrument_kind, instrument_brand, instrument_last_four, job_msg_id, job, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'queued', NULLIF($7, ''), NULLIF($8, ''), NULLIF($9, ''), $10, $12, $11, $11)`,
			in.AttemptID, orgID, li.AccountID, li.LineItemID, in.LineItem.Processor, in.PaymentType,
			in.InstrumentKind, in.InstrumentBrand, in.InstrumentLastFour, in.Job.MsgID, li.CreatedAt,
			in.Job.Payload); err != nil {
			return fmt.Errorf("insert attempt: %w", err)
		}
		li.Attempt = &Attempt{AttemptID: in.AttemptID, Processor: in.LineItem.Processor, PaymentType: in.PaymentType,
			Status: AttemptQueued, InstrumentKind: in.InstrumentKind, InstrumentBrand: in.InstrumentBrand,
			InstrumentLastFour: in.InstrumentLastFour}
		return s.insertOutbox(ctx, tx, emit, jobOf(in.AttemptID, in.Job))
	})
}

// AttemptRef names an attempt. Every attempt query is scoped by org.
type AttemptRef struct {
	OrgID     string
	AttemptID string
}

// ErrAttemptLeased: another delivery of the attempt's job started within
// the lease and may still be inside its processor call.
var ErrAttemptLeased = errors.New("store: another delivery of the attempt may still be in flight")

// BeginDelivery records that a worker took delivery n of the attempt's
// job and returns the attempt's status before it did. Only an open
// attempt moves to processing; a closed one is returned untouched so the
// worker can acknowledge the duplicate.
//
// lease protects a delivery still in progress: JetStream redelivers a job
// whose progress signal came late (a loaded machine), and the earlier
// delivery may then still be calling the processor. A later delivery that
// arrives within lease of the previous one's start gets ErrAttemptLeased
// and must come back later instead of calling the processor a second
// time. A delivery whose worker died is redelivered only after AckWait and
// its lease runs out at most lease after it began.
func (s *Store) BeginDelivery(ctx context.Context, ref AttemptRef, delivery int, lease time.Duration) (before AttemptStatus, err error) {
	d, err := s.BeginDeliveryState(ctx, ref, delivery, lease)
	return d.Before, err
}

// Delivery is what BeginDeliveryState found and recorded.
type Delivery struct {
	// Before is the attempt's status before this delivery.
	Before AttemptStatus
	// Deliveries is the attempt's delivery count with this one: at least
	// one more than before, so a job re-published from the outbox (whose
	// copy JetStream counts from 1 again) is still known as a later
	// delivery, and processors look up what an earlier one did.
	Deliveries int
	// LeaseLeft is, with ErrAttemptLeased, how long the earlier
	// delivery's lease still runs (its start by the database's clock plus
	// lease, minus now): the time to hand the delivery back for.
	LeaseLeft time.Duration
}

// BeginDeliveryState is BeginDelivery that also reports the attempt's
// delivery count and, when leased, the lease's remaining time.
func (s *Store) BeginDeliveryState(ctx context.Context, ref AttemptRef, delivery int, lease time.Duration) (Delivery, error) {
	var d Delivery
	var leased bool
	var left float64
	err := s.pool.QueryRow(ctx, `
		WITH o AS (
		    SELECT attempt_id, status, deliveries,
		           status = 'processing' AND deliveries < $3 AND last_delivery_at > now() - $4::interval AS leased,
		           COALESCE(EXTRACT(EPOCH FROM last_delivery_at + $4::interval - now()), 0)::float8 AS lease_left
		      FROM payment_attempts WHERE org_id = $1 AND attempt_id = $2 FOR UPDATE
		), u AS (
		    UPDATE payment_attempts pa
		       SET status = 'processing', deliveries = GREATEST(o.deliveries + 1, $3),
		           last_delivery_at = now(), updated_at = now()
		      FROM o
		     WHERE pa.attempt_id = o.attempt_id AND o.status IN ('queued', 'processing') AND NOT o.leased
		 RETURNING pa.deliveries
		)
		SELECT o.status, o.leased, o.lease_left, COALESCE((SELECT deliveries FROM u), o.deliveries) FROM o`,
		ref.OrgID, ref.AttemptID, delivery, lease).Scan(&d.Before, &leased, &left, &d.Deliveries)
	if errors.Is(err, pgx.ErrNoRows) {
		return Delivery{}, ErrNotFound
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("store: begin delivery %d of attempt %s: %w", delivery, ref.AttemptID, err)
	}
	if leased {
		d.LeaseLeft = max(time.Duration(left*float64(time.Second)), 0)
		return d, ErrAttemptLeased
	}
	return d, nil
}

// RecordRetry notes a retryable failure on an open attempt and puts it
// back in the queue for the next delivery.
func (s *Store) RecordRetry(ctx context.Context, ref AttemptRef, code, message string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE payment_attempts SET status = 'queued', result_code = NULLIF($3, ''), result_message = NULLIF($4, ''),
		       updated_at = now()
		 WHERE org_id = $1 AND attempt_id = $2 AND status IN ('queued', 'processing')`,
		ref.OrgID, ref.AttemptID, code, message)
	if err != nil {
		return fmt.Errorf("store: record retry of attempt %s: %w", ref.AttemptID, err)
	}
	return nil
}

// AttemptResult is what a processor made of an attempt.
type AttemptResult struct {
	AttemptRef
	// From lists the statuses the attempt may be in for the result to
	// apply; in any other it is left alone (ErrAttemptClosed).
	From []AttemptStatus
	// Status is the attempt's new status: held, pending_settlement,
	// succeeded, declined, failed or dead.
	Status AttemptStatus
	// LineItemStatus is the line item's new status; "" leaves it.
	LineItemStatus     Status
	TransactionID      string
	ResultCode         string
	ResultMessage      string
	InstrumentKind     string
	InstrumentBrand    string
	InstrumentLastFour string
	Actor              string // e.g. "worker:AUTHORIZE_NET"
	Reason             string
	// TraceHeaders is the trace context of the work that decided the
	// result (tracing.Inject of the worker's delivery span), carried into
	// the event's headers: the result is committed in a set, away from
	// that work's context.
	TraceHeaders map[string]string
}

// CompleteAttempt applies a processor's result in one transaction: the
// attempt's status and result, the line item's status change with its
// transition and event, and the removal of the job's sealed payment
// details once no further delivery needs them. An attempt
// in none of r.From is left alone (ErrAttemptClosed), so a duplicate
// delivery can never apply a second result.
func (s *Store) CompleteAttempt(ctx context.Context, r AttemptResult) (LineItem, error) {
	if len(r.TraceHeaders) > 0 {
		ctx = tracing.ExtractMap(ctx, r.TraceHeaders) // insertOutbox injects it into the event
	}
	var out LineItem
	err := s.writeTx(ctx, func(tx pgx.Tx, emit func(...OutboxMessage)) error {
		var accountID, lineItemID string
		var status AttemptStatus
		var liStatus Status
		var amount int64
		err := tx.QueryRow(ctx, `
			SELECT pa.account_id, pa.line_item_id, pa.status, li.status, li.original_amount_cents
			  FROM payment_attempts pa
			  JOIN line_items li ON li.org_id = pa.org_id AND li.account_id = pa.account_id
			       AND li.line_item_id = pa.line_item_id
			 WHERE pa.org_id = $1 AND pa.attempt_id = $2
			   FOR UPDATE`, r.OrgID, r.AttemptID).Scan(&accountID, &lineItemID, &status, &liStatus, &amount)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if !slices.Contains(r.From, status) {
			return ErrAttemptClosed
		}
		batch := &pgx.Batch{}
		batch.Queue(`
			UPDATE payment_attempts SET status = $3,
			       transaction_id = COALESCE(NULLIF($4, ''), transaction_id),
			       result_code = NULLIF($5, ''), result_message = NULLIF($6, ''),
			       instrument_kind = COALESCE(NULLIF($7, ''), instrument_kind),
			       instrument_brand = COALESCE(NULLIF($8, ''), instrument_brand),
			       instrument_last_four = COALESCE(NULLIF($9, ''), instrument_last_four),
			       job = CASE WHEN $3 IN (`+jobKeepingStatuses+`) THEN job END,
			       updated_at = now()
			 WHERE org_id = $1 AND attempt_id = $2`,
			r.OrgID, r.AttemptID, r.Status, r.TransactionID, r.ResultCode, r.ResultMessage,
			r.InstrumentKind, r.InstrumentBrand, r.InstrumentLastFour)
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return err
		}
		to := r.LineItemStatus
		if to == "" || to == liStatus {
			// The status stays, but the payment's processing moved on
			// (staged for a NACHA file, held for review): announce it on
			// the status's subject, so followers of a payment hear of it.
			if out, err = s.lineItemTx(ctx, tx, r.OrgID, accountID, lineItemID); err != nil {
				return err
			}
			return s.announce(ctx, tx, emit, Change{LineItem: out, From: liStatus, Actor: r.Actor, Reason: r.Reason,
				At: time.Now().UTC()})
		}
		out, err = s.transition(ctx, tx, emit, r.OrgID, accountID, lineItemID, to, amount, liStatus, r.Actor, r.Reason)
		return err
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrAttemptClosed) {
		return LineItem{}, err
	}
	if err != nil {
		return LineItem{}, fmt.Errorf("store: complete attempt %s: %w", r.AttemptID, err)
	}
	return out, nil
}

func (s *Store) lineItemTx(ctx context.Context, tx pgx.Tx, orgID, accountID, lineItemID string) (LineItem, error) {
	return scanLineItem(tx.QueryRow(ctx, `SELECT `+lineItemColumns+` FROM`+lineItemFrom+`
		WHERE li.org_id = $1 AND li.account_id = $2 AND li.line_item_id = $3`, orgID, accountID, lineItemID))
}

// StaleAttempt is an attempt the worker must look at again.
type StaleAttempt struct {
	AttemptRef
	Processor     string
	Status        AttemptStatus
	Deliveries    int
	JobMsgID      string
	AccountID     string
	LineItemID    string
	AmountCents   int64
	PaymentType   string
	TransactionID string
	EffectiveAt   time.Time
	CreatedAt     time.Time
	// Reverses is set on a reversal's attempt: the original it gives back.
	Reverses *ReversedAttempt
}

// ReversedAttempt is the original payment of a reversal's attempt.
type ReversedAttempt struct {
	LineItemID    string
	AttemptID     string
	TransactionID string
	CreatedAt     time.Time
}

// StaleAttempts lists up to limit attempts in status that have not moved
// for longer than idle, oldest first: held attempts to poll, and
// processing attempts whose last delivery died with its worker after the
// stream stopped redelivering (deliveries ≥ minDeliveries).
func (s *Store) StaleAttempts(ctx context.Context, status AttemptStatus, idle time.Duration, minDeliveries, limit int) ([]StaleAttempt, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT pa.org_id, pa.attempt_id, pa.processor, pa.status, pa.deliveries, pa.job_msg_id, pa.account_id,
		       pa.line_item_id, li.original_amount_cents, pa.payment_type, COALESCE(pa.transaction_id, ''),
		       li.effective_at, pa.created_at,
		       oa.line_item_id, oa.attempt_id, COALESCE(oa.transaction_id, ''), oli.created_at
		  FROM payment_attempts pa
		  JOIN line_items li ON li.org_id = pa.org_id AND li.account_id = pa.account_id AND li.line_item_id = pa.line_item_id
		  LEFT JOIN line_items oli ON li.line_item_type IN ('PAYMENT_REVERSAL', 'CHARGE_REVERSAL')
		       AND oli.org_id = li.org_id AND oli.account_id = li.account_id AND oli.line_item_id = li.related_line_item_id
		  LEFT JOIN payment_attempts oa ON oa.org_id = oli.org_id AND oa.account_id = oli.account_id
		       AND oa.line_item_id = oli.line_item_id
		 WHERE pa.status = $1 AND pa.updated_at < now() - $2::interval AND pa.deliveries >= $3
		 ORDER BY pa.updated_at LIMIT $4`, status, idle, minDeliveries, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list stale %s attempts: %w", status, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StaleAttempt, error) {
		var a StaleAttempt
		var origLineItem, origAttempt *string
		var origTx string
		var origCreated *time.Time
		err := r.Scan(&a.OrgID, &a.AttemptID, &a.Processor, &a.Status, &a.Deliveries, &a.JobMsgID, &a.AccountID,
			&a.LineItemID, &a.AmountCents, &a.PaymentType, &a.TransactionID, &a.EffectiveAt, &a.CreatedAt,
			&origLineItem, &origAttempt, &origTx, &origCreated)
		a.EffectiveAt, a.CreatedAt = a.EffectiveAt.UTC(), a.CreatedAt.UTC()
		if origAttempt != nil && origLineItem != nil && origCreated != nil {
			a.Reverses = &ReversedAttempt{LineItemID: *origLineItem, AttemptID: *origAttempt, TransactionID: origTx,
				CreatedAt: origCreated.UTC()}
		}
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list stale %s attempts: %w", status, err)
	}
	return out, nil
}

// AttemptJob is an attempt as PostgreSQL recorded it at intake: what a
// job for it must execute.
type AttemptJob struct {
	StaleAttempt
	Origin string
}

// AttemptJob reads one attempt with its line item's amount, effective date
// and origin (ErrNotFound if there is none). The worker executes a v1 job
// (written before jobs were sealed as a whole) from these values rather
// than from the job's clear fields.
func (s *Store) AttemptJob(ctx context.Context, ref AttemptRef) (AttemptJob, error) {
	var a AttemptJob
	err := s.pool.QueryRow(ctx, `
		SELECT pa.org_id, pa.attempt_id, pa.processor, pa.status, pa.deliveries, pa.job_msg_id, pa.account_id,
		       pa.line_item_id, li.original_amount_cents, pa.payment_type, COALESCE(pa.transaction_id, ''),
		       li.effective_at, pa.created_at, li.origin
		  FROM payment_attempts pa
		  JOIN line_items li ON li.org_id = pa.org_id AND li.account_id = pa.account_id AND li.line_item_id = pa.line_item_id
		 WHERE pa.org_id = $1 AND pa.attempt_id = $2`, ref.OrgID, ref.AttemptID).Scan(
		&a.OrgID, &a.AttemptID, &a.Processor, &a.Status, &a.Deliveries, &a.JobMsgID, &a.AccountID,
		&a.LineItemID, &a.AmountCents, &a.PaymentType, &a.TransactionID, &a.EffectiveAt, &a.CreatedAt, &a.Origin)
	if errors.Is(err, pgx.ErrNoRows) {
		return AttemptJob{}, ErrNotFound
	}
	if err != nil {
		return AttemptJob{}, fmt.Errorf("store: read attempt %s: %w", ref.AttemptID, err)
	}
	a.EffectiveAt, a.CreatedAt = a.EffectiveAt.UTC(), a.CreatedAt.UTC()
	return a, nil
}

// TouchAttempt marks an attempt as looked at, so pollers take others first.
func (s *Store) TouchAttempt(ctx context.Context, ref AttemptRef) error {
	_, err := s.pool.Exec(ctx, `UPDATE payment_attempts SET updated_at = now() WHERE org_id = $1 AND attempt_id = $2`,
		ref.OrgID, ref.AttemptID)
	return err
}
