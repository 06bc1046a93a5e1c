package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/payrail/payrail/internal/canopy"
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
	// FastPayload, when set, is published by the fast path instead of
	// Payload and is never stored. A card job's CVV travels only this way
	// (SPEC §7: CVV never reaches PostgreSQL, even sealed).
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

// Logical subjects.
const (
	jobSubjectPrefix   = "jobs."
	eventSubjectPrefix = "events.line_item."
	// outboxChannel is NOTIFYed when rows are written that no fast path
	// will publish, so a relay publishes them without polling.
	outboxChannel = "payrail_outbox"
)

// JobSubject is the logical subject of a processor's jobs.
func JobSubject(processor string) string { return jobSubjectPrefix + processor }

// EventSubject is the logical subject of a line item status event.
func EventSubject(status string) string { return eventSubjectPrefix + strings.ToLower(status) }

// OutboxChannel is the LISTEN/NOTIFY channel that wakes relays.
func OutboxChannel() string { return outboxChannel }

// insertOutbox writes msgs in tx and fills in their ids.
func insertOutbox(ctx context.Context, tx pgx.Tx, fastPath bool, msgs []OutboxMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for i := range msgs {
		m := &msgs[i]
		headers := m.Headers
		if headers == nil {
			headers = map[string]string{}
		}
		batch.Queue(`INSERT INTO outbox (msg_id, subject, headers, payload, fast_path) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			m.MsgID, m.Subject, headers, m.Payload, fastPath).QueryRow(func(row pgx.Row) error { return row.Scan(&m.ID) })
	}
	if !fastPath {
		batch.Queue(`SELECT pg_notify($1, '')`, outboxChannel)
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("insert outbox rows: %w", err)
	}
	return nil
}

// statusEvent builds the outbox event for a transition of li.
func statusEvent(li LineItem, from string, actor, reason string, at time.Time) (OutboxMessage, error) {
	id := NewID("evt_")
	// An event whose status did not change tells of the payment's
	// processing instead (staged, held, dropped in a NACHA file).
	typ := "line_item.status_changed"
	if from == li.Status {
		typ = "line_item.processing_updated"
	}
	ev := canopy.Event{
		EventID: id, Type: typ, At: canopy.FormatTime(at),
		Status: li.Status, Actor: actor, Reason: reason, LineItem: li.Canopy(),
	}
	if from != "" {
		ev.PreviousStatus = &from
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return OutboxMessage{}, fmt.Errorf("encode event: %w", err)
	}
	return OutboxMessage{MsgID: id, Subject: EventSubject(li.Status), Payload: body,
		Headers: map[string]string{"Payrail-Line-Item-Id": li.LineItemID}}, nil
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
// another relay holds, and fast-path rows younger than grace), hands them
// to publish, and marks the ids publish reports as acknowledged. Rows are
// locked until the marks commit, so relays never publish the same row
// concurrently; a crash after publishing leaves rows for a republish that
// JetStream deduplicates. It returns how many rows it claimed.
func (s *Store) RelayBatch(ctx context.Context, limit int, grace time.Duration,
	publish func(ctx context.Context, msgs []OutboxMessage) (acked []int64, err error)) (int, error) {
	var claimed int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT id, msg_id, subject, headers, payload FROM outbox
			 WHERE published_at IS NULL
			   AND (NOT fast_path OR created_at < now() - $2::interval)
			 ORDER BY id LIMIT $1
			   FOR UPDATE SKIP LOCKED`, limit, grace)
		if err != nil {
			return err
		}
		msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxMessage, error) {
			var m OutboxMessage
			err := r.Scan(&m.ID, &m.MsgID, &m.Subject, &m.Headers, &m.Payload)
			return m, err
		})
		if err != nil {
			return err
		}
		claimed = len(msgs)
		if claimed == 0 {
			return nil
		}
		// A job whose result committed before its row was marked (the
		// fast path published it, then lost the mark) has no payload
		// left: it needs no publish, only the mark.
		var done []int64
		live := msgs[:0]
		for _, m := range msgs {
			if m.Payload == nil {
				done = append(done, m.ID)
			} else {
				live = append(live, m)
			}
		}
		acked, pubErr := publish(ctx, live)
		done = append(done, acked...)
		if len(done) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE id = ANY($1)`, done); err != nil {
				return err
			}
		}
		return pubErr
	})
	if err != nil {
		return claimed, fmt.Errorf("store: relay outbox batch: %w", err)
	}
	return claimed, nil
}

// MarkPublished records that JetStream acknowledged the rows.
func (s *Store) MarkPublished(ctx context.Context, ids []int64) error {
	if _, err := s.pool.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL`, ids); err != nil {
		return fmt.Errorf("store: mark %d outbox rows published: %w", len(ids), err)
	}
	return nil
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

// PurgePublished deletes outbox rows published longer ago than retention.
func (s *Store) PurgePublished(ctx context.Context, retention time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE published_at < now() - $1::interval`, retention)
	if err != nil {
		return 0, fmt.Errorf("store: purge published outbox rows: %w", err)
	}
	return tag.RowsAffected(), nil
}
