package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/payrail/payrail/internal/tracing"
)

// OutboxMessage is one row of the transactional outbox: a job or an event
// written in the same transaction as the state it announces.
type OutboxMessage struct {
	ID int64
	// MsgID becomes the Nats-Msg-Id header, so JetStream drops a second
	// publish of the same row inside its duplicate window.
	MsgID string
	// Subject is logical ("jobs.CANOPY_NACHA", "events.line_item.valid");
	// the publisher adds the deployment's subject root.
	Subject string
	Headers map[string]string
	Payload []byte
	// AttemptID is set on a job's row: the attempt that executes the job.
	// Such a row is stored without its payload, which the attempt holds
	// (payment_attempts.job) until its result commits; the relay publishes
	// the job from there, and nothing when it is gone.
	AttemptID string
	// FastPayload, when set, is published by the fast path instead of
	// Payload and is never stored. A card job's CVV travels only this way
	// (docs/security.md: CVV never reaches PostgreSQL, even sealed).
	FastPayload []byte
}

// Body returns what the fast path publishes.
func (m OutboxMessage) Body() []byte {
	if m.FastPayload != nil {
		return m.FastPayload
	}
	return m.Payload
}

// FastPath receives outbox rows right after the transaction that wrote
// them commits, to publish them without waiting for the relay. It must
// not block: the relay publishes whatever it fails to.
type FastPath interface {
	Enqueue(msgs []OutboxMessage)
}

// outboxChannel is NOTIFYed when rows are written that no fast path will
// publish, so a relay publishes them without polling.
const outboxChannel = "payrail_outbox"

// OutboxChannel is the LISTEN/NOTIFY channel that wakes relays.
func OutboxChannel() string { return outboxChannel }

// Change is one change of a line item that the store announces with an
// event, in the transaction that makes it.
type Change struct {
	LineItem LineItem // as it is after the change
	// From is the status before the change: "" when the line item was
	// created, LineItem.Status when only its processing moved on (staged,
	// held, dropped in a NACHA file).
	From   Status
	Actor  string
	Reason string
	At     time.Time
}

// Events turns a change into the outbox event that announces it. The
// event's wire shape and subject are not the store's business: package
// canopy implements this.
type Events interface {
	Event(c Change) (OutboxMessage, error)
}

// SQLEvents is an Events that can also build its events inside PostgreSQL,
// so a change of thousands of line items (ApplyBulkTx) writes its events
// with one INSERT … SELECT instead of rendering and inserting each in Go.
// The SQL must mean exactly what Event does (package canopy tests this).
type SQLEvents interface {
	Events
	// EventIDSQL is an SQL expression for a new event id (volatile: one
	// per evaluation).
	EventIDSQL() string
	// EventSQL is a subquery, evaluated LATERAL per changed line item,
	// over line_items li, accounts a and payment_attempts pa (joined as
	// the store reads a line item, NULL columns when there is no attempt;
	// all as they are after the change) and the change c(event_id,
	// from_status, actor, reason, at), where from_status is '' for a
	// creation. It yields one row: msg_id text, subject text, headers
	// jsonb, payload bytea.
	EventSQL() string
}

// writeOutboxRows writes msgs in tx with one statement and fills in their
// ids; with no fast path to publish them, the statement also NOTIFYs the
// relays (on commit).
func writeOutboxRows(ctx context.Context, tx pgx.Tx, fastPath bool, msgs []OutboxMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	n := len(msgs)
	ids, subjects, headers, attempts := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	payloads := make([][]byte, n)
	for i := range msgs {
		m := &msgs[i]
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		h, err := json.Marshal(m.Headers)
		if err != nil {
			return fmt.Errorf("encode headers of %s: %w", m.MsgID, err)
		}
		ids[i], subjects[i], headers[i], payloads[i], attempts[i] = m.MsgID, m.Subject, string(h), storedPayload(*m), m.AttemptID
	}
	var rowIDs []int64
	var rowMsgIDs []string
	if err := tx.QueryRow(ctx, insertOutboxRows, ids, subjects, headers, payloads, attempts, fastPath, outboxChannel).
		Scan(&rowIDs, &rowMsgIDs); err != nil {
		return fmt.Errorf("insert outbox rows: %w", err)
	}
	if len(rowIDs) != n {
		return fmt.Errorf("insert outbox rows: wrote %d of %d", len(rowIDs), n)
	}
	byMsg := make(map[string]int64, n)
	for k, id := range rowIDs {
		byMsg[rowMsgIDs[k]] = id
	}
	for i := range msgs {
		msgs[i].ID = byMsg[msgs[i].MsgID]
	}
	return nil
}

// insertOutboxRows is writeOutboxRows' statement: the rows over arrays, in
// their order, and the NOTIFY when no fast path publishes them ($6).
const insertOutboxRows = `
WITH ob AS (
    INSERT INTO outbox (msg_id, subject, headers, payload, fast_path, attempt_id)
    SELECT m.msg_id, m.subject, m.headers::jsonb, m.payload, $6, NULLIF(m.attempt_id, '')
      FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[]) WITH ORDINALITY
           AS m(msg_id, subject, headers, payload, attempt_id, n)
     ORDER BY m.n
    RETURNING id, msg_id
), notified AS (
    SELECT pg_notify($7, '') WHERE NOT $6
)
SELECT (SELECT array_agg(id ORDER BY id) FROM ob), (SELECT array_agg(msg_id ORDER BY id) FROM ob)
  FROM (SELECT count(*) FROM notified) n`

// jobOf is the outbox row of the job attempt executes: stored without its
// payload, which the attempt's row holds.
func jobOf(attemptID string, job OutboxMessage) OutboxMessage {
	job.AttemptID = attemptID
	return job
}

// storedPayload is what m's outbox row stores as its payload: nothing for
// a job, whose attempt holds it.
func storedPayload(m OutboxMessage) []byte {
	if m.AttemptID != "" {
		return nil
	}
	return m.Payload
}

// announce writes the event of c inside tx. With emit (a transaction the
// store commits itself) the row is handed to the fast path after commit;
// without it (a caller's transaction, whose commit the store cannot see)
// the NOTIFY written with it wakes a relay on commit.
func (s *Store) announce(ctx context.Context, tx pgx.Tx, emit func(...OutboxMessage), changes ...Change) error {
	if len(changes) == 0 {
		return nil
	}
	msgs := make([]OutboxMessage, len(changes))
	for i, c := range changes {
		m, err := s.events.Event(c)
		if err != nil {
			return fmt.Errorf("event for line item %s: %w", c.LineItem.LineItemID, err)
		}
		msgs[i] = m
	}
	return s.insertOutbox(ctx, tx, emit, msgs...)
}

// insertOutbox writes msgs in tx, fills in their ids, and hands them to
// emit, as announce does.
func (s *Store) insertOutbox(ctx context.Context, tx pgx.Tx, emit func(...OutboxMessage), msgs ...OutboxMessage) error {
	fastPath := emit != nil && s.fastPath != nil
	// The row carries the trace of the work that wrote it (the API
	// request, the worker's delivery), so whoever publishes it, now or
	// after a crash, continues that trace (docs/observability.md).
	for i := range msgs {
		msgs[i].Headers = tracing.Inject(ctx, msgs[i].Headers)
	}
	// Insert first: the fast path marks rows by the id the insert fills in.
	if err := writeOutboxRows(ctx, tx, fastPath, msgs); err != nil {
		return err
	}
	if emit != nil {
		emit(msgs...)
	}
	return nil
}

// writeTx runs fn in a transaction and hands the outbox rows it wrote to
// the fast path once the commit succeeds.
func (s *Store) writeTx(ctx context.Context, fn func(tx pgx.Tx, emit func(...OutboxMessage)) error) error {
	var pending []OutboxMessage
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		pending = pending[:0]
		return fn(tx, func(m ...OutboxMessage) { pending = append(pending, m...) })
	})
	if err != nil {
		return err
	}
	if s.fastPath != nil && len(pending) > 0 {
		s.fastPath.Enqueue(pending)
	}
	return nil
}

// RelayBatch claims up to limit unpublished outbox rows (skipping rows
// another relay holds, and fast-path rows younger than grace) and hands
// them to publish. The claim deletes the rows in the same statement, as
// settlePublished does, so a batch costs PostgreSQL one statement and a
// commit; the commit waits until publish reports every row acknowledged,
// and the rows stay locked until then, so relays never publish the same
// row concurrently. If publish fails for any row the claim is rolled back
// and only the acknowledged rows are settled, on their own: the rest stay
// unpublished for the next batch. A crash after publishing leaves rows for
// a republish that JetStream deduplicates. It returns how many rows it
// claimed.
func (s *Store) RelayBatch(ctx context.Context, limit int, grace time.Duration,
	publish func(ctx context.Context, msgs []OutboxMessage) (acked []int64, err error)) (int, error) {
	var claimed int
	var acked []int64
	var pubErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		claimed, acked, pubErr = 0, nil, nil
		rows, err := tx.Query(ctx, claimAndSettle, limit, grace)
		if err != nil {
			return err
		}
		msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxMessage, error) {
			var m OutboxMessage
			err := r.Scan(&m.ID, &m.MsgID, &m.Subject, &m.Headers, &m.Payload, &m.AttemptID)
			return m, err
		})
		if err != nil {
			return err
		}
		claimed = len(msgs)
		// A job whose attempt's result committed before the row was
		// published (the fast path published it, then lost the settle)
		// has nothing left to publish and needs nothing: the claim
		// deleted its row.
		live := msgs[:0]
		for _, m := range msgs {
			if m.Payload != nil {
				live = append(live, m)
			}
		}
		if len(live) == 0 {
			return nil
		}
		acked, pubErr = publish(ctx, live)
		return pubErr
	})
	if pubErr != nil {
		if len(acked) > 0 {
			if _, err := s.MarkPublished(ctx, acked); err != nil {
				return claimed, fmt.Errorf("store: relay outbox batch: %w (and %w)", pubErr, err)
			}
		}
		return claimed, fmt.Errorf("store: relay outbox batch: %w", pubErr)
	}
	if err != nil {
		return claimed, fmt.Errorf("store: relay outbox batch: %w", err)
	}
	return claimed, nil
}

// claimAndSettle is RelayBatch's claim: the oldest rows no relay holds,
// deleted as settlePublished deletes them and returned in id order, a
// job's row with the job its attempt holds (NULL once the attempt's
// result committed, or the attempt is gone). A row written before the
// attempts held their jobs (schema 013) has no attempt_id and carries its
// payload itself.
const claimAndSettle = `
WITH c AS (
    SELECT id FROM outbox
     WHERE published_at IS NULL
       AND (NOT fast_path OR created_at < now() - $2::interval)
     ORDER BY id LIMIT $1
       FOR UPDATE SKIP LOCKED
), d AS (
    DELETE FROM outbox o USING c WHERE o.id = c.id
    RETURNING o.id, o.msg_id, o.subject, o.headers, o.payload, o.attempt_id
)
SELECT d.id, d.msg_id, d.subject, d.headers, CASE WHEN d.attempt_id IS NULL THEN d.payload ELSE pa.job END,
       COALESCE(d.attempt_id, '')
  FROM d LEFT JOIN payment_attempts pa ON pa.attempt_id = d.attempt_id
 ORDER BY d.id`

// settlePublished records that the rows $1 are published by deleting
// them: nothing reads an outbox row after its publish (the streams are
// the record of what was sent, and a job's attempt holds the job the
// reconciler may need to send again), and a DELETE writes no new row
// version nor index entries, where an UPDATE of published_at wrote both.
// Rows another transaction holds — a relay publishing them — are skipped
// rather than waited for (SKIP LOCKED): publishers working in batches never
// wait on each other nor deadlock. A skipped row stays unpublished: the
// statement returns it, the fast path tries again on its next flush, and
// otherwise a relay settles it after its grace period (JetStream drops
// its republish as a duplicate).
const settlePublished = `
WITH t AS (
    SELECT id FROM outbox
     WHERE id = ANY($1) AND published_at IS NULL
       FOR UPDATE SKIP LOCKED
), d AS (
    DELETE FROM outbox o USING t WHERE o.id = t.id
)
SELECT COALESCE(array_agg(o.id), '{}') FROM outbox o
 WHERE o.id = ANY($1) AND o.published_at IS NULL AND o.id NOT IN (SELECT id FROM t)`

// MarkPublished records that JetStream acknowledged the rows (see
// settlePublished) and returns the ids it skipped because another
// transaction held them: still unpublished, for the caller to settle
// again a moment later (or leave to a relay).
func (s *Store) MarkPublished(ctx context.Context, ids []int64) (skipped []int64, err error) {
	if err := s.pool.QueryRow(ctx, settlePublished, ids).Scan(&skipped); err != nil {
		return nil, fmt.Errorf("store: mark %d outbox rows published: %w", len(ids), err)
	}
	return skipped, nil
}

// NotifyOutbox wakes the relays, e.g. after a fast-path publish failed.
func (s *Store) NotifyOutbox(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `SELECT pg_notify($1, '')`, outboxChannel)
	return err
}

// OutboxBacklog reports how many rows await publishing and the age of the
// oldest, for the outbox lag metric.
func (s *Store) OutboxBacklog(ctx context.Context) (count int64, oldest time.Duration, err error) {
	var age float64
	err = s.pool.QueryRow(ctx, `
		SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
		  FROM outbox WHERE published_at IS NULL`).Scan(&count, &age)
	if err != nil {
		return 0, 0, fmt.Errorf("store: measure outbox backlog: %w", err)
	}
	return count, time.Duration(age * float64(time.Second)), nil
}

// PurgePublished deletes outbox rows marked published longer ago than
// retention. Since schema 013 payrail deletes the rows it publishes; rows
// marked published are those an earlier version marked (it kept a job's
// row with its payload until the attempt's result), which nothing needs
// once the migration moved their jobs to the attempts.
func (s *Store) PurgePublished(ctx context.Context, retention time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE published_at < now() - $1::interval`, retention)
	if err != nil {
		return 0, fmt.Errorf("store: purge published outbox rows: %w", err)
	}
	return tag.RowsAffected(), nil
}
