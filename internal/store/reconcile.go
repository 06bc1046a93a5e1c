package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// StrandedQuery says which unfinished attempts RepublishStranded takes: an
// attempt is stranded when its job, published once (its outbox row is
// gone), is no longer on its way to a worker.
//
// A published job's row is deleted, so when it was published is not
// known: only when it was queued (written, or put back after a retry:
// the attempt's updated_at while queued) or last delivered. A job queued
// before the stream was created and never delivered may have been
// published before (lost with the old stream) or after (a relay's
// backlog after an outage, now in the new stream); it counts as stranded
// only once its consumer has nothing undelivered, so a backlog is not
// published twice.
type StrandedQuery struct {
	// Processors limits the attempts to those of these processors.
	Processors []string
	// StreamCreated is when the jobs stream was created: a job delivered
	// or put back for a retry before it, or queued before it and never
	// delivered while its processor is idle, is not in the broker (its
	// store was lost, or the stream was deleted and recreated). Zero
	// matches nothing.
	StreamCreated time.Time
	// IdleProcessors are processors whose consumer has no undelivered
	// message: a job of theirs queued longer than NeverDelivered ago,
	// published and never delivered is not in the stream (purged, or lost
	// in a way the creation time does not show).
	IdleProcessors []string
	NeverDelivered time.Duration
	// RetryLost: an attempt put back in the queue after a retryable
	// outcome and not delivered again for this long (longer than the
	// longest backoff) lost its redelivery.
	RetryLost time.Duration
	// LeaseExpired: a processing attempt whose delivery started this
	// long ago (longer than its lease and AckWait together) was neither
	// finished nor redelivered.
	LeaseExpired time.Duration
	// Lease is a delivery's lease: a processing attempt inside it is
	// never taken, whatever else holds.
	Lease time.Duration
	// MaxDeliver: processing attempts with this many deliveries are left
	// to the worker's dead sweep.
	MaxDeliver int
	Limit      int
	// Job is the outbox row that re-publishes a's job: its subject and
	// headers. The store gives it its msg id and the attempt; the relay
	// publishes the job the attempt holds.
	Job func(a Stranded) OutboxMessage
}

// Stranded is an attempt whose job RepublishStranded queued again.
type Stranded struct {
	AttemptRef
	Processor string
	// Reason is stream_recreated, never_delivered, retry_lost or
	// lease_expired.
	Reason string
	// MsgID is the re-published job's new Nats-Msg-Id.
	MsgID string
}

// reconcileLock is the advisory lock key of RepublishStranded: one
// reconciler at a time, the others skip their pass.
const reconcileLock = `hashtext('payrail_reconcile')`

// RepublishStranded finds stranded attempts (see StrandedQuery) and queues
// their jobs again through the outbox: a new job row (q.Job) under a new
// msg id, which the relays, woken, publish with the sealed job the
// attempt keeps until its result commits. A processing attempt goes back
// to queued. Only one reconciler works at a
// time (a transaction-scoped advisory lock; the rows are also taken FOR
// UPDATE SKIP LOCKED, so a delivery being recorded is never waited on).
//
// The new msg id (<job msg id>.r<n>) is deliberate. JetStream drops a
// publish whose Nats-Msg-Id it saw within the duplicate window, and what
// it remembers is not tied to whether the message is still there: after a
// purge, or with the stream intact but the message gone, a re-publish
// under the original id would be dropped as a duplicate and the payment
// would stay stranded for up to the window (2 h). A fresh id is never
// dropped. Its cost is a second copy of the job in the stream when the
// original was in fact still there; that copy is harmless: the worker
// records every delivery on the attempt first, a copy of a finished
// attempt is acknowledged without a call, a copy that overtakes a
// delivery in progress is handed back until that delivery's lease ends,
// and the processors make a repeated call for the same attempt a no-op
// (NACHA staging keyed by attempt, Authorize.Net's invoice number and
// lookup, which the copy does because it counts as a later delivery).
// The duplicate window still does its job for the new id: a relay that
// publishes the row twice (a crash before its mark) is deduplicated.
func (s *Store) RepublishStranded(ctx context.Context, q StrandedQuery) ([]Stranded, error) {
	if q.Job == nil {
		return nil, errors.New("store: re-publish stranded jobs: StrandedQuery.Job is not set")
	}
	var out []Stranded
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = out[:0]
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(`+reconcileLock+`)`).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			return nil // another reconciler is at it
		}
		created := q.StreamCreated
		if created.IsZero() {
			created = time.Unix(0, 0)
		}
		rows, err := tx.Query(ctx, `
			SELECT pa.org_id, pa.attempt_id, pa.processor, pa.job_msg_id,
			       CASE WHEN pa.status = 'queued' AND pa.updated_at < $2
			                 AND (pa.deliveries > 0 OR pa.processor = ANY($3)) THEN 'stream_recreated'
			            WHEN pa.status = 'processing' AND pa.last_delivery_at < $2 THEN 'stream_recreated'
			            WHEN pa.status = 'processing' THEN 'lease_expired'
			            WHEN pa.deliveries = 0 THEN 'never_delivered'
			            ELSE 'retry_lost' END
			  FROM payment_attempts pa
			 WHERE pa.status IN ('queued', 'processing') AND pa.processor = ANY($1)
			   AND pa.job IS NOT NULL
			   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.msg_id = pa.job_msg_id)
			   AND (pa.status = 'queued'
			        OR (pa.deliveries < $8 AND pa.last_delivery_at < now() - $7::interval))
			   AND ((pa.status = 'queued' AND pa.updated_at < $2 AND (pa.deliveries > 0 OR pa.processor = ANY($3)))
			        OR (pa.status = 'processing' AND pa.last_delivery_at < $2)
			        OR (pa.status = 'queued' AND pa.deliveries = 0 AND pa.processor = ANY($3)
			            AND pa.updated_at < now() - $4::interval)
			        OR (pa.status = 'queued' AND pa.deliveries > 0 AND pa.updated_at < now() - $5::interval)
			        OR (pa.status = 'processing' AND pa.last_delivery_at < now() - $6::interval))
			 ORDER BY pa.updated_at
			 LIMIT $9
			   FOR UPDATE OF pa SKIP LOCKED`,
			q.Processors, created, q.IdleProcessors, q.NeverDelivered, q.RetryLost, q.LeaseExpired, q.Lease,
			q.MaxDeliver, q.Limit)
		if err != nil {
			return err
		}
		found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Stranded, error) {
			var a Stranded
			err := r.Scan(&a.OrgID, &a.AttemptID, &a.Processor, &a.MsgID, &a.Reason)
			return a, err
		})
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return nil
		}
		jobs := make([]OutboxMessage, len(found))
		batch := &pgx.Batch{}
		for i := range found {
			found[i].MsgID = nextJobMsgID(found[i].MsgID)
			jobs[i] = jobOf(found[i].AttemptID, q.Job(found[i]))
			jobs[i].MsgID = found[i].MsgID
			batch.Queue(`
				UPDATE payment_attempts SET job_msg_id = $3, status = 'queued', updated_at = now()
				 WHERE org_id = $1 AND attempt_id = $2`, found[i].OrgID, found[i].AttemptID, found[i].MsgID)
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return err
		}
		// No fast path: the NOTIFY written with the rows wakes the relays.
		if err := s.insertOutbox(ctx, tx, nil, jobs...); err != nil {
			return err
		}
		out = found
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: re-publish stranded jobs: %w", err)
	}
	return out, nil
}

// nextJobMsgID is the msg id of a job's next re-publish: job_<attempt>,
// then job_<attempt>.r1, .r2…
func nextJobMsgID(id string) string {
	base, n := id, 0
	if i := strings.LastIndex(id, ".r"); i > 0 {
		if k, err := strconv.Atoi(id[i+2:]); err == nil && k > 0 {
			base, n = id[:i], k
		}
	}
	return base + ".r" + strconv.Itoa(n+1)
}

// CountStaleAttempts counts unfinished attempts (queued or processing)
// that have not moved for longer than idle, for the payrail_attempts_stale
// gauge.
func (s *Store) CountStaleAttempts(ctx context.Context, idle time.Duration) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM payment_attempts
		 WHERE status IN ('queued', 'processing') AND updated_at < now() - $1::interval`, idle).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count stale attempts: %w", err)
	}
	return n, nil
}
