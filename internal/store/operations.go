package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The operator's view of payments (payrail payments list|show|redrive):
// attempts by status, everything recorded about one payment, and the
// redrive of a dead attempt. Nothing here reads a sealed payload's
// contents; the job payload is returned sealed, for payments to open.

// OpsAttempt is an attempt with its line item, as an operator sees it.
type OpsAttempt struct {
	Attempt
	OrgID          string
	AccountID      string
	LineItemID     string
	LineItemStatus Status
	Origin         string
	AmountCents    int64
	EffectiveAt    time.Time
	JobMsgID       string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastDeliveryAt *time.Time
}

const opsAttemptColumns = attemptColumns + `, pa.org_id, pa.account_id, pa.line_item_id, li.status, li.origin,
	li.original_amount_cents, li.effective_at, pa.job_msg_id, pa.created_at, pa.updated_at, pa.last_delivery_at`

const opsAttemptFrom = ` payment_attempts pa
	JOIN line_items li ON li.org_id = pa.org_id AND li.account_id = pa.account_id AND li.line_item_id = pa.line_item_id `

func scanOpsAttempt(r pgx.Row) (OpsAttempt, error) {
	var a OpsAttempt
	var at attemptScan
	dest := append(at.dest(), &a.OrgID, &a.AccountID, &a.LineItemID, &a.LineItemStatus, &a.Origin, &a.AmountCents,
		&a.EffectiveAt, &a.JobMsgID, &a.CreatedAt, &a.UpdatedAt, &a.LastDeliveryAt)
	if err := r.Scan(dest...); err != nil {
		return OpsAttempt{}, err
	}
	a.Attempt = *at.attempt()
	a.EffectiveAt, a.CreatedAt, a.UpdatedAt = a.EffectiveAt.UTC(), a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	if a.LastDeliveryAt != nil {
		t := a.LastDeliveryAt.UTC()
		a.LastDeliveryAt = &t
	}
	return a, nil
}

// AttemptQuery selects attempts for payrail payments list.
type AttemptQuery struct {
	// Status is dead, held, queued or stuck: processing whose last
	// delivery began more than OlderThan ago (its lease long expired), or
	// queued with no delivery begun for more than OlderThan.
	Status string
	OrgID  string // "" any org
	// OlderThan keeps attempts whose last change (for stuck: last
	// delivery, or creation when there was none) is older than this.
	OlderThan time.Duration
	Limit     int
}

// ListAttempts lists attempts by q, oldest last change first (the ones
// waiting longest come first).
func (s *Store) ListAttempts(ctx context.Context, q AttemptQuery) ([]OpsAttempt, error) {
	var where string
	switch q.Status {
	case "dead", "held", "queued":
		where = `pa.status = $1 AND pa.updated_at <= now() - $3::interval`
	case "stuck":
		where = `$1 = 'stuck' AND (
		    (pa.status = 'processing' AND COALESCE(pa.last_delivery_at, pa.updated_at) <= now() - $3::interval)
		 OR (pa.status = 'queued' AND COALESCE(pa.last_delivery_at, pa.created_at) <= now() - $3::interval))`
	default:
		return nil, fmt.Errorf("store: unknown attempt selection %q", q.Status)
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+opsAttemptColumns+` FROM`+opsAttemptFrom+`
		WHERE `+where+` AND ($2 = '' OR pa.org_id = $2)
		ORDER BY pa.updated_at, pa.attempt_id LIMIT $4`, q.Status, q.OrgID, q.OlderThan, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: list %s attempts: %w", q.Status, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OpsAttempt, error) { return scanOpsAttempt(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list %s attempts: %w", q.Status, err)
	}
	return out, nil
}

// FindAttempts returns the attempts named by id: the attempt with that
// id, or the attempts of line items with that id (a line item id is
// unique only within its account, so there may be several). orgID ""
// searches every org.
func (s *Store) FindAttempts(ctx context.Context, orgID, id string) ([]OpsAttempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+opsAttemptColumns+` FROM`+opsAttemptFrom+`
		WHERE (pa.attempt_id = $2 OR pa.line_item_id = $2) AND ($1 = '' OR pa.org_id = $1)
		ORDER BY pa.org_id, pa.account_id LIMIT 20`, orgID, id)
	if err != nil {
		return nil, fmt.Errorf("store: find attempt %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OpsAttempt, error) { return scanOpsAttempt(r) })
	if err != nil {
		return nil, fmt.Errorf("store: find attempt %s: %w", id, err)
	}
	return out, nil
}

// FindLineItems returns the line items with id (any account; orgID ""
// any org), executed or not.
func (s *Store) FindLineItems(ctx context.Context, orgID, id string) ([]LineItem, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+lineItemColumns+` FROM`+lineItemFrom+`
		WHERE li.line_item_id = $2 AND ($1 = '' OR li.org_id = $1) ORDER BY li.org_id, li.account_id LIMIT 20`, orgID, id)
	if err != nil {
		return nil, fmt.Errorf("store: find line item %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LineItem, error) { return scanLineItem(r) })
	if err != nil {
		return nil, fmt.Errorf("store: find line item %s: %w", id, err)
	}
	return out, nil
}

// TransitionRecord is one recorded change of a line item.
type TransitionRecord struct {
	From        Status // "" at creation
	To          Status
	AmountCents int64
	Actor       string
	Reason      string
	At          time.Time
}

// Transitions lists a line item's recorded changes, oldest first.
func (s *Store) Transitions(ctx context.Context, orgID, accountID, lineItemID string) ([]TransitionRecord, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT COALESCE(from_status, ''), to_status, amount_cents, actor, reason, at FROM line_item_transitions
		 WHERE org_id = $1 AND account_id = $2 AND line_item_id = $3 ORDER BY id`, orgID, accountID, lineItemID)
	if err != nil {
		return nil, fmt.Errorf("store: list transitions of %s: %w", lineItemID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TransitionRecord, error) {
		var t TransitionRecord
		err := r.Scan(&t.From, &t.To, &t.AmountCents, &t.Actor, &t.Reason, &t.At)
		t.At = t.At.UTC()
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list transitions of %s: %w", lineItemID, err)
	}
	return out, nil
}

// OutboxRow describes an outbox row without its payload.
type OutboxRow struct {
	ID      int64
	MsgID   string
	Subject string
	// HasPayload: the row has something to publish (a job's row: its
	// attempt still holds the sealed job).
	HasPayload  bool
	CreatedAt   time.Time
	PublishedAt *time.Time
}

// LineItemOutbox lists the outbox rows still present for a line item:
// its events (by their line item and org headers) and the jobs named by
// jobMsgIDs. Rows are deleted once published.
func (s *Store) LineItemOutbox(ctx context.Context, orgID, lineItemID string, jobMsgIDs []string) ([]OutboxRow, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT o.id, o.msg_id, o.subject, o.payload IS NOT NULL OR pa.job IS NOT NULL, o.created_at, o.published_at
		  FROM outbox o LEFT JOIN payment_attempts pa ON pa.attempt_id = o.attempt_id
		 WHERE o.msg_id = ANY($3)
		    OR (o.headers->>'Payrail-Line-Item-Id' = $2 AND o.headers->>'Payrail-Org-Id' = $1)
		 ORDER BY o.id`, orgID, lineItemID, jobMsgIDs)
	if err != nil {
		return nil, fmt.Errorf("store: list outbox rows of %s: %w", lineItemID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxRow, error) {
		var o OutboxRow
		err := r.Scan(&o.ID, &o.MsgID, &o.Subject, &o.HasPayload, &o.CreatedAt, &o.PublishedAt)
		o.CreatedAt = o.CreatedAt.UTC()
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list outbox rows of %s: %w", lineItemID, err)
	}
	return out, nil
}

// JobPayload returns the sealed job an attempt holds; nil when the
// attempt is gone or no longer holds it (its result committed).
func (s *Store) JobPayload(ctx context.Context, ref AttemptRef) ([]byte, error) {
	var p []byte
	err := s.pool.QueryRow(ctx, `SELECT job FROM payment_attempts WHERE org_id = $1 AND attempt_id = $2`,
		ref.OrgID, ref.AttemptID).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read the job of attempt %s: %w", ref.AttemptID, err)
	}
	return p, nil
}

// NachaEntry is what an operator may see of an attempt's ACH entry: never
// the account number.
type NachaEntry struct {
	Status             string
	FileID             string
	TraceNumber        string
	EffectiveEntryDate time.Time
	ReturnCode         string
}

// AttemptNachaEntry returns the ACH entry staged for an attempt, if any.
// Its status is "dropped" while it sits in a written or uploaded file (the
// drop records that on the file, not on each entry), including the minute
// after a drop when the file's claim on it is not yet written into its row.
func (s *Store) AttemptNachaEntry(ctx context.Context, orgID, attemptID string) (*NachaEntry, error) {
	var e NachaEntry
	err := s.pool.QueryRow(ctx, `
		SELECT CASE WHEN COALESCE(nf.status, cl.status) IN ('written', 'uploaded') THEN 'dropped'
		            WHEN cl.status IS NOT NULL THEN 'batched' ELSE e.status END,
		       COALESCE(e.file_id, cl.file_id, ''), COALESCE(e.trace_number, cl.trace, ''),
		       COALESCE(cl.effective, e.effective_entry_date), COALESCE(e.return_code, '')
		  FROM nacha_entries e LEFT JOIN nacha_files nf ON nf.file_id = e.file_id
		  LEFT JOIN LATERAL (
		      -- a file's claim not yet written into the entry's row
		      SELECT cf.file_id, cf.status, nb.effective_entry_date AS effective,
		             substr(cf.immediate_origin, 1, 8) || lpad((cf.trace_base + c.sequences[k])::text, 7, '0') AS trace
		        FROM nacha_files cf
		        JOIN nacha_file_claims c ON c.file_id = cf.file_id AND NOT c.applied
		       CROSS JOIN LATERAL array_position(c.entry_ids, e.entry_id) AS k
		        JOIN nacha_batches nb ON nb.file_id = cf.file_id AND nb.batch_number = c.batch_numbers[k]
		       WHERE cf.org_id = e.org_id AND cf.materialized_at IS NULL AND cf.status <> 'released' AND k IS NOT NULL
		       LIMIT 1) cl ON e.status = 'staged'
		 WHERE e.org_id = $1 AND e.attempt_id = $2`, orgID, attemptID).Scan(
		&e.Status, &e.FileID, &e.TraceNumber, &e.EffectiveEntryDate, &e.ReturnCode)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read the ACH entry of attempt %s: %w", attemptID, err)
	}
	return &e, nil
}

// Redrive replaces a dead attempt of a line item with a new queued one
// and its job (docs/states.md, operator redrive).
type Redrive struct {
	Dead AttemptRef
	// NewAttemptID, PaymentType and the instrument describe the new
	// attempt; Job is its outbox row (msg_id job_<NewAttemptID>).
	NewAttemptID       string
	PaymentType        string
	InstrumentKind     string
	InstrumentBrand    string
	InstrumentLastFour string
	Job                OutboxMessage
	Actor              string
	// Reason is recorded on the transition; the store prefixes what
	// happened to the dead attempt.
	Reason string
	// Check judges the change under the row locks (payments.CheckRedrive).
	Check func(li LineItem) error
}

// RedriveAttempt applies r in one transaction: under the line item's and
// the attempt's row locks it checks that the attempt is still the line
// item's dead attempt (r.Check), replaces it with the new queued attempt
// — payment_attempts holds one attempt per line item, so the dead
// attempt's id, deliveries and last error are kept in the transition's
// reason — moves the line item INVALID → PENDING with a transition by
// r.Actor, and writes the job and the event to the outbox. A dead
// attempt that no longer exists (already redriven) is ErrNotFound.
func (s *Store) RedriveAttempt(ctx context.Context, r Redrive) (LineItem, error) {
	var out LineItem
	err := s.writeTx(ctx, func(tx pgx.Tx, emit func(...OutboxMessage)) error {
		var accountID, lineItemID string
		err := tx.QueryRow(ctx, `
			SELECT li.account_id, li.line_item_id FROM payment_attempts pa
			  JOIN line_items li ON li.org_id = pa.org_id AND li.account_id = pa.account_id AND li.line_item_id = pa.line_item_id
			 WHERE pa.org_id = $1 AND pa.attempt_id = $2
			   FOR UPDATE`, r.Dead.OrgID, r.Dead.AttemptID).Scan(&accountID, &lineItemID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		cur, err := s.lineItemTx(ctx, tx, r.Dead.OrgID, accountID, lineItemID)
		if err != nil {
			return err
		}
		if cur.Attempt == nil || cur.Attempt.AttemptID != r.Dead.AttemptID {
			return ErrNotFound
		}
		if err := r.Check(cur); err != nil {
			return err
		}
		old := cur.Attempt
		var createdAt time.Time
		if err := tx.QueryRow(ctx, `DELETE FROM payment_attempts WHERE org_id = $1 AND attempt_id = $2 RETURNING created_at`,
			r.Dead.OrgID, r.Dead.AttemptID).Scan(&createdAt); err != nil {
			return fmt.Errorf("remove dead attempt: %w", err)
		}
		now := time.Now().UTC()
		if _, err := tx.Exec(ctx, `
			INSERT INTO payment_attempts (attempt_id, org_id, account_id, line_item_id, processor, payment_type, status,
			    instrument_kind, instrument_brand, instrument_last_four, job_msg_id, job, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'queued', NULLIF($7, ''), NULLIF($8, ''), NULLIF($9, ''), $10, $12, $11, $11)`,
			r.NewAttemptID, r.Dead.OrgID, accountID, lineItemID, old.Processor, r.PaymentType,
			r.InstrumentKind, r.InstrumentBrand, r.InstrumentLastFour, r.Job.MsgID, now, r.Job.Payload); err != nil {
			return fmt.Errorf("insert attempt: %w", err)
		}
		reason := fmt.Sprintf("operator redrive: dead attempt %s (created %s, %d deliveries, last error %s) replaced by attempt %s",
			old.AttemptID, createdAt.UTC().Format(time.RFC3339), old.Deliveries, lastError(old), r.NewAttemptID)
		if r.Reason != "" {
			reason += ": " + r.Reason
		}
		if err := s.insertOutbox(ctx, tx, emit, jobOf(r.NewAttemptID, r.Job)); err != nil {
			return err
		}
		out, err = s.transition(ctx, tx, emit, r.Dead.OrgID, accountID, lineItemID, StatusPending, cur.AmountCents,
			cur.Status, r.Actor, reason)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return LineItem{}, err
	}
	var te *TransitionError
	if errors.As(err, &te) {
		return LineItem{}, err
	}
	if err != nil {
		return LineItem{}, fmt.Errorf("store: redrive attempt %s: %w", r.Dead.AttemptID, err)
	}
	return out, nil
}

func lastError(a *Attempt) string {
	switch {
	case a.ResultCode == "" && a.ResultMessage == "":
		return "none"
	case a.ResultCode == "":
		return a.ResultMessage
	case a.ResultMessage == "":
		return a.ResultCode
	}
	return a.ResultCode + " " + a.ResultMessage
}
