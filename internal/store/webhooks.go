package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// WebhookSubscription is an org's webhook endpoint (PUT
// /organization/subscribe) and its delivery health.
type WebhookSubscription struct {
	OrgID                string
	URL                  string
	NotifyProtocol       string // failure_notification_protocol: "" or https (http where private endpoints are allowed)
	NotifyEndpoint       string // failure_notification_endpoint
	ConsecutiveFailures  int
	PausedAt             *time.Time
	PausedReason         string
	SecretRotatedAt      time.Time
	CreatedAt, UpdatedAt time.Time
	Pending, DeadLetters int // deliveries waiting, dead letters kept
}

// NewWebhookSecret returns a fresh signing secret: "whsec_" and 32
// random bytes in unpadded base64url. Receivers use the whole string as
// the HMAC key.
func NewWebhookSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("store: crypto/rand failed: %v", err))
	}
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// WebhookSecretContext binds an org's sealed signing secret to its row.
func WebhookSecretContext(orgID string) []byte {
	return []byte("webhook_subscriptions/" + orgID)
}

// SubscribeWebhook creates or replaces the org's subscription and resumes
// it if it was paused. A new subscription gets a signing secret, returned
// here once (secret is "" when the subscription existed: its secret is
// kept; rotate it with RotateWebhookSecret).
func (s *Store) SubscribeWebhook(ctx context.Context, orgID string, sub WebhookSubscription) (out WebhookSubscription, secret string, err error) {
	secret = NewWebhookSecret()
	sealed, err := s.ring.Seal([]byte(secret), WebhookSecretContext(orgID))
	if err != nil {
		return WebhookSubscription{}, "", fmt.Errorf("store: seal webhook secret: %w", err)
	}
	var created bool
	err = s.pool.QueryRow(ctx, `
		INSERT INTO webhook_subscriptions (org_id, webhook_url, failure_notification_protocol,
		    failure_notification_endpoint, secret_enc, secret_rotated_at)
		VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5, now())
		ON CONFLICT (org_id) DO UPDATE SET
		    webhook_url = EXCLUDED.webhook_url,
		    failure_notification_protocol = EXCLUDED.failure_notification_protocol,
		    failure_notification_endpoint = EXCLUDED.failure_notification_endpoint,
		    consecutive_failures = 0, paused_at = NULL, paused_reason = NULL, updated_at = now()
		RETURNING xmax = 0`, orgID, sub.URL, sub.NotifyProtocol, sub.NotifyEndpoint, sealed).Scan(&created)
	if err != nil {
		return WebhookSubscription{}, "", fmt.Errorf("store: subscribe webhook for org %q: %w", orgID, err)
	}
	if !created {
		secret = ""
	}
	out, err = s.WebhookSubscription(ctx, orgID)
	return out, secret, err
}

// WebhookSubscription returns the org's subscription with its counts.
func (s *Store) WebhookSubscription(ctx context.Context, orgID string) (WebhookSubscription, error) {
	var w WebhookSubscription
	var proto, endpoint, reason *string
	err := s.pool.QueryRow(ctx, `
		SELECT org_id, webhook_url, failure_notification_protocol, failure_notification_endpoint,
		       consecutive_failures, paused_at, paused_reason, secret_rotated_at, created_at, updated_at,
		       (SELECT count(*) FROM webhook_deliveries d WHERE d.org_id = w.org_id AND d.status = 'pending'),
		       (SELECT count(*) FROM webhook_deliveries d WHERE d.org_id = w.org_id AND d.status = 'dead')
		  FROM webhook_subscriptions w WHERE org_id = $1`, orgID).Scan(
		&w.OrgID, &w.URL, &proto, &endpoint, &w.ConsecutiveFailures, &w.PausedAt, &reason,
		&w.SecretRotatedAt, &w.CreatedAt, &w.UpdatedAt, &w.Pending, &w.DeadLetters)
	if errors.Is(err, pgx.ErrNoRows) {
		return WebhookSubscription{}, ErrNotFound
	}
	if err != nil {
		return WebhookSubscription{}, fmt.Errorf("store: read webhook subscription of org %q: %w", orgID, err)
	}
	w.NotifyProtocol, w.NotifyEndpoint, w.PausedReason = deref(proto), deref(endpoint), deref(reason)
	w.SecretRotatedAt, w.CreatedAt, w.UpdatedAt = w.SecretRotatedAt.UTC(), w.CreatedAt.UTC(), w.UpdatedAt.UTC()
	if w.PausedAt != nil {
		p := w.PausedAt.UTC()
		w.PausedAt = &p
	}
	return w, nil
}

// RotateWebhookSecret replaces the org's signing secret and returns the
// new one, once. Attempts from then on are signed with it.
func (s *Store) RotateWebhookSecret(ctx context.Context, orgID string) (string, error) {
	secret := NewWebhookSecret()
	sealed, err := s.ring.Seal([]byte(secret), WebhookSecretContext(orgID))
	if err != nil {
		return "", fmt.Errorf("store: seal webhook secret: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_subscriptions SET secret_enc = $2, secret_rotated_at = now(), updated_at = now()
		WHERE org_id = $1`, orgID, sealed)
	if err != nil {
		return "", fmt.Errorf("store: rotate webhook secret of org %q: %w", orgID, err)
	}
	if tag.RowsAffected() == 0 {
		return "", ErrNotFound
	}
	return secret, nil
}

// ResumeWebhook un-pauses the org's endpoint: its pending deliveries are
// sent again at once.
func (s *Store) ResumeWebhook(ctx context.Context, orgID string) (WebhookSubscription, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return WebhookSubscription{}, err
	}
	defer tx.Rollback(context.Background())
	tag, err := tx.Exec(ctx, `UPDATE webhook_subscriptions SET paused_at = NULL, paused_reason = NULL,
		consecutive_failures = 0, updated_at = now() WHERE org_id = $1`, orgID)
	if err != nil {
		return WebhookSubscription{}, fmt.Errorf("store: resume webhook of org %q: %w", orgID, err)
	}
	if tag.RowsAffected() == 0 {
		return WebhookSubscription{}, ErrNotFound
	}
	if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET next_attempt_at = now()
		WHERE org_id = $1 AND status = 'pending' AND next_attempt_at > now()`, orgID); err != nil {
		return WebhookSubscription{}, fmt.Errorf("store: resume webhook deliveries of org %q: %w", orgID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return WebhookSubscription{}, err
	}
	return s.WebhookSubscription(ctx, orgID)
}

// DeleteWebhookSubscription removes the subscription and every delivery
// (pending and dead) with it.
func (s *Store) DeleteWebhookSubscription(ctx context.Context, orgID string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE org_id = $1`, orgID); err != nil {
		return fmt.Errorf("store: delete webhook deliveries of org %q: %w", orgID, err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM webhook_subscriptions WHERE org_id = $1`, orgID)
	if err != nil {
		return fmt.Errorf("store: delete webhook subscription of org %q: %w", orgID, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return tx.Commit(ctx)
}

// ReplayWebhookDeadLetters makes the org's dead letters pending again,
// due now, with a fresh retry window; it returns how many.
func (s *Store) ReplayWebhookDeadLetters(ctx context.Context, orgID string) (int64, error) {
	if _, err := s.WebhookSubscription(ctx, orgID); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'pending', attempts = 0, first_failed_at = NULL,
		next_attempt_at = now(), locked_until = NULL, dead_at = NULL WHERE org_id = $1 AND status = 'dead'`, orgID)
	if err != nil {
		return 0, fmt.Errorf("store: replay webhook dead letters of org %q: %w", orgID, err)
	}
	return tag.RowsAffected(), nil
}

// WebhookEvent is an event to deliver to an org's endpoint.
type WebhookEvent struct {
	OrgID, EventID, Name string
	At                   time.Time // when the change happened
	Data                 []byte    // the envelope's data member, exactly as sent
}

// EnqueueWebhook records e for delivery when its org has a subscription
// made before the change happened; a second call for the same event does
// nothing. It reports whether a delivery was recorded.
func (s *Store) EnqueueWebhook(ctx context.Context, e WebhookEvent) (bool, error) {
	n, err := s.EnqueueWebhooks(ctx, []WebhookEvent{e})
	return n == 1, err
}

// EnqueueWebhooks is EnqueueWebhook for a set of events in one statement
// (one round trip, and no commit to wait for when no org of the set has
// a subscription): each event is recorded for delivery when its org has a
// subscription made before the change happened, and an event already
// recorded — earlier, or twice in the set — is recorded once. It returns
// how many deliveries were recorded. An error means none was.
func (s *Store) EnqueueWebhooks(ctx context.Context, es []WebhookEvent) (int64, error) {
	if len(es) == 0 {
		return 0, nil
	}
	ids, orgs, events, names := make([]string, len(es)), make([]string, len(es)), make([]string, len(es)), make([]string, len(es))
	data, at := make([][]byte, len(es)), make([]time.Time, len(es))
	for i, e := range es {
		ids[i], orgs[i], events[i], names[i], data[i], at[i] = NewID("whd_"), e.OrgID, e.EventID, e.Name, e.Data, e.At
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO webhook_deliveries (delivery_id, org_id, event_id, event_name, data, status, next_attempt_at)
		SELECT e.delivery_id, w.org_id, e.event_id, e.event_name, e.data, 'pending', now()
		  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::timestamptz[])
		       AS e(delivery_id, org_id, event_id, event_name, data, at)
		  JOIN webhook_subscriptions w ON w.org_id = e.org_id AND w.created_at <= e.at
		ON CONFLICT (org_id, event_id) DO NOTHING`,
		ids, orgs, events, names, data, at)
	if err != nil {
		if len(es) == 1 {
			return 0, fmt.Errorf("store: enqueue webhook event %s: %w", es[0].EventID, err)
		}
		return 0, fmt.Errorf("store: enqueue %d webhook events: %w", len(es), err)
	}
	return tag.RowsAffected(), nil
}

// WebhookSubscribers reports which of orgs have a webhook subscription,
// in one round trip. It is a filter before the work of reading events:
// an org it leaves out would get no delivery from EnqueueWebhooks either,
// which stays the authority for the rest (the subscription's age against
// each event, duplicates).
func (s *Store) WebhookSubscribers(ctx context.Context, orgs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(orgs))
	if len(orgs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT org_id FROM webhook_subscriptions WHERE org_id = ANY($1::text[])`, orgs)
	if err != nil {
		return nil, fmt.Errorf("store: webhook subscribers among %d orgs: %w", len(orgs), err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: webhook subscribers among %d orgs: %w", len(orgs), err)
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// WebhookDelivery is a claimed delivery with what sending it needs.
type WebhookDelivery struct {
	DeliveryID, OrgID, EventID, Name string
	Data                             []byte
	Attempts                         int // before this one
	FirstFailedAt                    *time.Time
	CreatedAt                        time.Time
	URL                              string
	Secret                           string
	NotifyProtocol, NotifyEndpoint   string
}

// ClaimWebhookDeliveries leases up to limit due deliveries of endpoints
// that are not paused, for lease. Concurrent callers get different rows;
// a lease that runs out (the sender died) makes the row due again.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, limit int, lease time.Duration) ([]WebhookDelivery, error) {
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
		    SELECT d.delivery_id FROM webhook_deliveries d
		      JOIN webhook_subscriptions w ON w.org_id = d.org_id AND w.paused_at IS NULL
		     WHERE d.status = 'pending' AND d.next_attempt_at <= now()
		       AND (d.locked_until IS NULL OR d.locked_until < now())
		     ORDER BY d.next_attempt_at
		     LIMIT $1
		     FOR UPDATE OF d SKIP LOCKED
		)
		UPDATE webhook_deliveries d SET locked_until = now() + $2::interval
		  FROM due, webhook_subscriptions w
		 WHERE d.delivery_id = due.delivery_id AND w.org_id = d.org_id
		RETURNING d.delivery_id, d.org_id, d.event_id, d.event_name, d.data, d.attempts, d.first_failed_at, d.created_at,
		          w.webhook_url, w.secret_enc, COALESCE(w.failure_notification_protocol, ''),
		          COALESCE(w.failure_notification_endpoint, '')`, limit, lease)
	if err != nil {
		return nil, fmt.Errorf("store: claim webhook deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (WebhookDelivery, error) {
		var d WebhookDelivery
		var sealed []byte
		if err := r.Scan(&d.DeliveryID, &d.OrgID, &d.EventID, &d.Name, &d.Data, &d.Attempts, &d.FirstFailedAt,
			&d.CreatedAt, &d.URL, &sealed, &d.NotifyProtocol, &d.NotifyEndpoint); err != nil {
			return d, err
		}
		secret, err := s.ring.Open(sealed, WebhookSecretContext(d.OrgID))
		if err != nil {
			return d, fmt.Errorf("open the webhook secret of org %q: %w", d.OrgID, err)
		}
		d.Secret = string(secret)
		return d, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim webhook deliveries: %w", err)
	}
	return out, nil
}

// WebhookOutcome is what became of one attempt.
type WebhookOutcome int

const (
	WebhookDelivered    WebhookOutcome = iota // 2xx: done
	WebhookRetry                              // 429, 5xx, network: again at NextAttemptAt
	WebhookDead                               // the dead-letter list
	WebhookUnauthorized                       // 401: pause the endpoint, keep the delivery pending
)

// WebhookResult records one attempt of a claimed delivery.
type WebhookResult struct {
	DeliveryID, OrgID string
	Outcome           WebhookOutcome
	StatusCode        int    // 0: no response
	Error             string // what went wrong, for the operator
	NextAttemptAt     time.Time
	// PauseAfter pauses the endpoint when its consecutive failures reach it.
	PauseAfter int
}

// RecordWebhookResult stores r and the endpoint's health in one
// transaction. It reports whether this attempt paused the endpoint (and
// why), so the caller can send a failure notification once.
func (s *Store) RecordWebhookResult(ctx context.Context, r WebhookResult) (pausedNow bool, reason string, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, "", err
	}
	defer tx.Rollback(context.Background())
	var code *int
	if r.StatusCode != 0 {
		code = &r.StatusCode
	}
	var sql string
	args := []any{r.DeliveryID, code, nullIfEmpty(r.Error)}
	switch r.Outcome {
	case WebhookDelivered:
		sql = `status = 'delivered', delivered_at = now()`
	case WebhookRetry, WebhookUnauthorized:
		sql = `next_attempt_at = $4, first_failed_at = COALESCE(first_failed_at, now())`
		args = append(args, r.NextAttemptAt)
	case WebhookDead:
		sql = `status = 'dead', dead_at = now(), first_failed_at = COALESCE(first_failed_at, now())`
	}
	if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, locked_until = NULL,
		last_status_code = $2, last_error = $3, `+sql+` WHERE delivery_id = $1`, args...); err != nil {
		return false, "", fmt.Errorf("store: record webhook delivery %s: %w", r.DeliveryID, err)
	}
	var wasPaused bool
	var failures int
	err = tx.QueryRow(ctx, `SELECT paused_at IS NOT NULL, consecutive_failures FROM webhook_subscriptions
		WHERE org_id = $1 FOR UPDATE`, r.OrgID).Scan(&wasPaused, &failures)
	if errors.Is(err, pgx.ErrNoRows) { // unsubscribed meanwhile
		return false, "", tx.Commit(ctx)
	}
	if err != nil {
		return false, "", fmt.Errorf("store: read webhook subscription of org %q: %w", r.OrgID, err)
	}
	if r.Outcome == WebhookDelivered {
		failures = 0
	} else {
		failures++
	}
	switch {
	case wasPaused:
	case r.Outcome == WebhookUnauthorized:
		reason = "the endpoint answered 401 Unauthorized"
	case r.PauseAfter > 0 && failures >= r.PauseAfter:
		reason = fmt.Sprintf("%d consecutive failed attempts, the last: %s", failures, r.Error)
	}
	if _, err := tx.Exec(ctx, `UPDATE webhook_subscriptions SET consecutive_failures = $2,
		paused_at = CASE WHEN $3 <> '' THEN now() ELSE paused_at END,
		paused_reason = CASE WHEN $3 <> '' THEN $3 ELSE paused_reason END WHERE org_id = $1`,
		r.OrgID, failures, reason); err != nil {
		return false, "", fmt.Errorf("store: update webhook subscription of org %q: %w", r.OrgID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, "", err
	}
	return reason != "", reason, nil
}

// SweepWebhooks dead-letters pending deliveries of paused endpoints whose
// retry window (from their first failure, or their creation) has passed,
// and deletes dead letters and delivered rows older than retention.
func (s *Store) SweepWebhooks(ctx context.Context, window, retention time.Duration) (expired, purged int64, err error) {
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_deliveries d SET status = 'dead', dead_at = now(), locked_until = NULL,
		last_error = COALESCE(d.last_error || '; ', '') || 'retry window ended while the endpoint was paused'
		  FROM webhook_subscriptions w
		 WHERE w.org_id = d.org_id AND w.paused_at IS NOT NULL AND d.status = 'pending'
		   AND COALESCE(d.first_failed_at, d.created_at) + $1::interval < now()`, window)
	if err != nil {
		return 0, 0, fmt.Errorf("store: expire webhook deliveries: %w", err)
	}
	expired = tag.RowsAffected()
	tag, err = s.pool.Exec(ctx, `DELETE FROM webhook_deliveries
		WHERE (status = 'dead' AND dead_at < now() - $1::interval)
		   OR (status = 'delivered' AND delivered_at < now() - $1::interval)`, retention)
	if err != nil {
		return expired, 0, fmt.Errorf("store: purge webhook deliveries: %w", err)
	}
	return expired, tag.RowsAffected(), nil
}

// PausedWebhookEndpoints counts paused subscriptions.
func (s *Store) PausedWebhookEndpoints(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM webhook_subscriptions WHERE paused_at IS NOT NULL`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count paused webhook endpoints: %w", err)
	}
	return n, nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
