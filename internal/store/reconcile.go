package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// StrandedQuery says which unfinished attempts RepublishStranded takes: an
// attempt is stranded when its job, published once, is no longer on its
// way to a worker.
type StrandedQuery struct {
	// Processors limits the attempts to those of these processors.
	Processors []string
	// StreamCreated is when the jobs stream was created: a job published
	// before it is not in the broker (its store was lost, or the stream
	// was deleted and recreated). Zero matches nothing.
	StreamCreated time.Time
	// IdleProcessors are processors whose consumer has no undelivered
	// message: a job of theirs published longer than NeverDelivered ago
	// and never delivered is not in the stream (purged, or lost in a way
	// the creation time does not show).
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
// their jobs again through the outbox: the job row, which keeps its sealed
// payload until the attempt finishes (CompleteAttempt, PurgePublished), is
// marked unpublished under a new msg id and the relays are woken. A
// processing attempt goes back to queued. Only one reconciler works at a
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
			       CASE WHEN o.published_at < $2 THEN 'stream_recreated'
			            WHEN pa.status = 'processing' THEN 'lease_expired'
			            WHEN pa.deliveries = 0 THEN 'never_delivered'
			            ELSE 'retry_lost' END
			  FROM payment_attempts pa
			  JOIN outbox o ON o.msg_id = pa.job_msg_id
			 WHERE pa.status IN ('queued', 'processing') AND pa.processor = ANY($1)
			   AND o.published_at IS NOT NULL AND o.payload IS NOT NULL
			   AND (pa.status = 'queued'
			        OR (pa.deliveries < $8 AND pa.last_delivery_at < now() - $7::interval))
			   AND (o.published_at < $2
			        OR (pa.status = 'queued' AND pa.deliveries = 0 AND pa.processor = ANY($3)
			            AND o.published_at < now() - $4::interval)
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
		batch := &pgx.Batch{}
		for i := range found {
			old := found[i].MsgID
			found[i].MsgID = nextJobMsgID(old)
			batch.Queue(`UPDATE outbox SET msg_id = $2, published_at = NULL, fast_path = false WHERE msg_id = $1`,
				old, found[i].MsgID)
			batch.Queue(`
				UPDATE payment_attempts SET job_msg_id = $3, status = 'queued', updated_at = now()
				 WHERE org_id = $1 AND attempt_id = $2`, found[i].OrgID, found[i].AttemptID, found[i].MsgID)
		}
		batch.Queue(`SELECT pg_notify($1, '')`, outboxChannel)
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
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
