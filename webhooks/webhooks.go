// Package webhooks delivers line item events to each org's subscribed
// endpoint, following Canopy Servicing's webhook contract: an envelope
// {"event","data","hmac_signature"} POSTed as JSON, signed with
// HMAC-SHA256 over data under the org's signing secret; at least once and
// unordered; 429, 5xx and network failures retried with exponential
// backoff from about a minute up to about 24 hours after the first
// failure, then dead-lettered; 1xx, 3xx and other 4xx dead-lettered at
// once; the endpoint paused after PauseAfter consecutive failures or one
// 401 until an admin resumes it; dead letters kept RetentionPeriod (5 days)
// and replayable.
//
// It is the `payrail webhooks` role (also part of `payrail dev`). A
// durable JetStream consumer of the events stream turns each event of a
// subscribed org into a delivery row in PostgreSQL (keyed by event, so a
// redelivered message records nothing new) and acknowledges it; the
// delivery state — attempts, next attempt time, dead letters — lives in
// PostgreSQL, so retries survive restarts and any number of processes
// share the sending (rows are leased with FOR UPDATE SKIP LOCKED).
// Deliveries go through a client that follows no redirect, bounds every
// attempt, and refuses non-public addresses after DNS resolution unless
// AllowPrivate (see NewClient).
package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
)

// Options tune a Service. Zero values take the defaults noted.
type Options struct {
	// Durable names the events consumer. Default the topology's
	// WebhooksConsumer ("webhooks").
	Durable string
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration
	// AllowPrivate lets deliveries reach loopback, private and link-local
	// addresses. Default false.
	AllowPrivate bool
	// Concurrency bounds attempts in flight per process. Default 16.
	Concurrency int
	// FirstBackoff is the delay after the first failure; each further
	// failure doubles it up to MaxBackoff. Defaults 1m and 6h.
	FirstBackoff, MaxBackoff time.Duration
	// RetryWindow is how long after its first failure a delivery is
	// retried; the last attempt is at the end of the window. Default 24h.
	RetryWindow time.Duration
	// RetentionPeriod is how long dead letters (and delivered rows) are
	// kept. Default 5 days.
	RetentionPeriod time.Duration
	// PauseAfter consecutive failed attempts pause the endpoint. Default 10.
	PauseAfter int
	// Poll is how often due deliveries are looked for when nothing woke
	// the sender. Default 1s.
	Poll time.Duration
	// Sweep is how often paused endpoints' expired deliveries are
	// dead-lettered, old rows purged and the paused gauge refreshed.
	// Default 15s.
	Sweep   time.Duration
	Logger  *slog.Logger
	Metrics *Metrics
	// Client replaces the delivery client (tests); nil builds one with
	// NewClient from Timeout and AllowPrivate.
	Client *http.Client
}

func (o *Options) defaults(t queue.Topology) {
	if o.Durable == "" {
		o.Durable = t.WebhooksConsumer()
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.FirstBackoff <= 0 {
		o.FirstBackoff = time.Minute
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 6 * time.Hour
	}
	if o.RetryWindow <= 0 {
		o.RetryWindow = 24 * time.Hour
	}
	if o.RetentionPeriod <= 0 {
		o.RetentionPeriod = 5 * 24 * time.Hour
	}
	if o.PauseAfter <= 0 {
		o.PauseAfter = 10
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Sweep <= 0 {
		o.Sweep = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Client == nil {
		o.Client = NewClient(ClientOptions{Timeout: o.Timeout, AllowPrivate: o.AllowPrivate})
	}
}

// Service consumes events and delivers webhooks.
type Service struct {
	js    jetstream.JetStream
	topo  queue.Topology
	store *store.Store
	opts  Options
	log   *slog.Logger
	wake  chan struct{}
	bg    sync.WaitGroup // failure notifications in flight
}

// New returns a Service; Run starts it.
func New(js jetstream.JetStream, topo queue.Topology, st *store.Store, opts Options) *Service {
	opts.defaults(topo)
	return &Service{js: js, topo: topo, store: st, opts: opts, log: opts.Logger, wake: make(chan struct{}, 1)}
}

// Run consumes events and delivers until ctx ends; attempts in flight
// then finish (each bounded by Timeout) and are recorded.
func (s *Service) Run(ctx context.Context) error {
	cons, err := queue.EnsureEventsConsumer(ctx, s.js, s.topo, s.opts.Durable,
		"payrail webhooks: records a delivery per event of a subscribed org", 30*time.Second)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); errc <- s.consume(ctx, cons) }()
	go func() { defer wg.Done(); errc <- s.deliver(ctx) }()
	go func() { defer wg.Done(); errc <- s.sweep(ctx) }()
	wg.Wait()
	s.bg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// consume records a delivery for each event of a subscribed org, then
// acknowledges the event; an event of another org is acknowledged
// unread. An event of a subscribed org that cannot be read is
// acknowledged and logged (it would never read better); a database
// failure leaves it for redelivery. The events that have arrived are recorded together,
// one statement per set (store.EnqueueWebhooks): whatever the fetch has
// delivered while the previous set was written, up to recordMax, so a
// set is one event when they trickle in and nothing waits for a timer.
func (s *Service) consume(ctx context.Context, cons jetstream.Consumer) error {
	set := make([]jetstream.Msg, 0, recordMax)
	for ctx.Err() == nil {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn("webhooks: fetch events", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		msgs := batch.Messages()
		for msg := range msgs {
			set = append(set[:0], msg)
		more:
			for len(set) < recordMax {
				select {
				case m, ok := <-msgs:
					if !ok {
						break more
					}
					set = append(set, m)
				default:
					break more
				}
			}
			s.record(ctx, set)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			s.log.Warn("webhooks: fetch events", "err", err)
			sleep(ctx, time.Second)
		}
	}
	return ctx.Err()
}

// recordMax bounds the events recorded in one statement.
const recordMax = 256

// record records the deliveries of a set of events and acknowledges
// them; on a database failure each is handed back for redelivery.
//
// Before reading any event it asks which of the set's orgs have a
// subscription (store.WebhookSubscribers, one round trip, on the org
// header alone): an event of any other org is acknowledged unread, as the
// INSERT's JOIN would have dropped it anyway, and a set with no such org
// costs no INSERT. Decoding each event and sending its data to
// PostgreSQL is what recording costs, wasted on an org without a
// subscription (the end-to-end benchmark's org has none). The INSERT stays
// the authority: the pre-check only drops orgs with no subscription row
// at all, and the INSERT still checks each event against the
// subscription's created_at and that it still exists. A subscription
// committed after the pre-check's snapshot misses this set's events just
// as one committed after the INSERT's snapshot misses them today; the
// only difference is that the snapshot is taken one round trip earlier.
// Subscriptions are not remembered between sets, so one made a moment
// ago sees the next set.
func (s *Service) record(ctx context.Context, msgs []jetstream.Msg) {
	orgs := make([]string, 0, len(msgs)) // orgs[i] is the org of withOrg[i]
	withOrg := make([]jetstream.Msg, 0, len(msgs))
	var distinct []string
	// A map, not a scan of distinct: the headers are the publisher's to
	// choose, and 256 long ones that differ only at the end would make a
	// scan compare gigabytes.
	seen := make(map[string]bool)
	for _, msg := range msgs {
		org := msg.Headers().Get(canopy.HeaderOrgID)
		if org == "" { // published before events named their org
			_ = msg.Ack()
			continue
		}
		if !usableOrgID(org) {
			// Sent along, it would fail the set's statements, and every
			// event of the set would come back until the good ones ran out
			// of deliveries with it.
			s.log.Warn("webhooks: event with an unusable org header skipped", "subject", msg.Subject(), "header_bytes", len(org))
			_ = msg.Ack()
			continue
		}
		if !seen[org] {
			seen[org] = true
			distinct = append(distinct, org)
		}
		orgs = append(orgs, org)
		withOrg = append(withOrg, msg)
	}
	if len(withOrg) == 0 {
		return
	}
	subscribed, err := s.store.WebhookSubscribers(ctx, distinct)
	if err != nil {
		s.log.Warn("webhooks: look up subscriptions; the events will be redelivered", "events", len(withOrg), "err", err)
		redeliverLater(withOrg)
		return
	}
	if len(subscribed) == 0 {
		for _, msg := range withOrg {
			_ = msg.Ack()
		}
		return
	}
	events := make([]store.WebhookEvent, 0, len(msgs))
	pending := make([]jetstream.Msg, 0, len(msgs)) // pending[i] carries events[i]
	for i, msg := range withOrg {
		org := orgs[i]
		if !subscribed[org] {
			_ = msg.Ack()
			continue
		}
		ev, name, data, err := fromEvent(msg.Data())
		if err != nil {
			s.log.Warn("webhooks: unreadable event skipped", "subject", msg.Subject(), "err", err)
			_ = msg.Ack()
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ev.At)
		if err != nil {
			s.log.Warn("webhooks: event with unreadable time skipped", "event_id", ev.EventID, "err", err)
			_ = msg.Ack()
			continue
		}
		events = append(events, store.WebhookEvent{OrgID: org, EventID: ev.EventID, Name: name, At: at, Data: data})
		pending = append(pending, msg)
	}
	if len(events) == 0 {
		return
	}
	added, err := s.store.EnqueueWebhooks(ctx, events)
	if err != nil {
		s.log.Warn("webhooks: record deliveries; the events will be redelivered", "events", len(events), "err", err)
		redeliverLater(pending)
		return
	}
	for i, msg := range pending {
		if err := msg.Ack(); err != nil {
			s.log.Debug("webhooks: ack event", "event_id", events[i].EventID, "err", err) // redelivered: the row exists
		}
	}
	if added > 0 {
		s.poke()
	}
}

// usableOrgID reports whether an org header can go to PostgreSQL as
// text: UTF-8 without NUL. Headers come from NATS, where anyone who can
// publish on the events subjects can write them. Length is left alone: a
// long header is only an org without a subscription (NATS bounds it).
func usableOrgID(org string) bool {
	return utf8.ValidString(org) && strings.IndexByte(org, 0) < 0
}

// redeliverLater hands events back to JetStream after a database
// failure, to come again once it may have passed.
func redeliverLater(msgs []jetstream.Msg) {
	for _, msg := range msgs {
		_ = msg.NakWithDelay(5 * time.Second)
	}
}

// deliver leases due deliveries into free slots and sends them.
func (s *Service) deliver(ctx context.Context) error {
	slots := make(chan struct{}, s.opts.Concurrency)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	lease := s.opts.Timeout + 30*time.Second
	tick := time.NewTicker(s.opts.Poll)
	defer tick.Stop()
	for {
		free := cap(slots) - len(slots)
		var got []store.WebhookDelivery
		if free > 0 {
			var err error
			got, err = s.store.ClaimWebhookDeliveries(ctx, free, lease)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("webhooks: claim deliveries", "err", err)
			}
		}
		for _, d := range got {
			slots <- struct{}{}
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				s.attempt(context.WithoutCancel(ctx), d)
				<-slots
				s.poke()
			}()
		}
		if len(got) > 0 && len(got) == free {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// attempt sends one delivery and records what became of it.
func (s *Service) attempt(ctx context.Context, d store.WebhookDelivery) {
	start := time.Now()
	code, err := s.post(ctx, d.URL, d.Name, d.Data, d.Secret, map[string]string{
		"Payrail-Event-Id":         d.EventID,
		"Payrail-Delivery-Id":      d.DeliveryID,
		"Payrail-Delivery-Attempt": strconv.Itoa(d.Attempts + 1),
	})
	s.opts.Metrics.observe(time.Since(start))
	res := store.WebhookResult{DeliveryID: d.DeliveryID, OrgID: d.OrgID, StatusCode: code, PauseAfter: s.opts.PauseAfter}
	res.Outcome, res.Error = classify(code, err)
	now := time.Now()
	if res.Outcome == store.WebhookRetry {
		first := now
		if d.FirstFailedAt != nil {
			first = *d.FirstFailedAt
		}
		next, ok := s.nextAttempt(d.Attempts, first, now)
		if ok {
			res.NextAttemptAt = next
		} else {
			res.Outcome = store.WebhookDead
			res.Error += fmt.Sprintf("; retried for %s since the first failure", s.opts.RetryWindow)
		}
	}
	if res.Outcome == store.WebhookUnauthorized {
		res.NextAttemptAt = now // sent again as soon as the endpoint is resumed
	}
	recCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	paused, reason, rerr := s.store.RecordWebhookResult(recCtx, res)
	if rerr != nil {
		// The lease runs out and the delivery is attempted again: at least once.
		s.log.Error("webhooks: record attempt", "delivery_id", d.DeliveryID, "err", rerr)
		return
	}
	s.opts.Metrics.outcome(res.Outcome)
	log := s.log.With("org_id", d.OrgID, "delivery_id", d.DeliveryID, "event_id", d.EventID, "event", d.Name,
		"attempt", d.Attempts+1, "status", code)
	switch res.Outcome {
	case store.WebhookDelivered:
		log.Debug("webhook delivered")
	case store.WebhookRetry:
		log.Info("webhook attempt failed; retrying", "err", res.Error, "next_attempt_at", res.NextAttemptAt)
	default:
		log.Warn("webhook delivery failed", "outcome", outcomeLabel(res.Outcome), "err", res.Error)
	}
	if paused {
		log.Warn("webhook endpoint paused", "reason", reason)
		s.opts.Metrics.paused(1)
		if d.NotifyEndpoint != "" {
			s.bg.Add(1)
			go func() { defer s.bg.Done(); s.notifyPaused(ctx, d, reason, now) }()
		}
	}
}

// post sends one envelope; code is 0 when no response came.
func (s *Service) post(ctx context.Context, url, event string, data []byte, secret string, headers map[string]string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(envelope(event, data, Sign(secret, data))))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "payrail-webhooks/1")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// classify maps an attempt's answer to an outcome: 2xx delivered; 429,
// 5xx and no answer retried; 401 pauses; 1xx, 3xx (redirects are not
// followed) and other 4xx are dead letters at once.
func classify(code int, err error) (store.WebhookOutcome, string) {
	switch {
	case err != nil:
		return store.WebhookRetry, truncate(err.Error(), 500)
	case code >= 200 && code < 300:
		return store.WebhookDelivered, ""
	case code == http.StatusUnauthorized:
		return store.WebhookUnauthorized, "401 Unauthorized"
	case code == http.StatusTooManyRequests || code >= 500:
		return store.WebhookRetry, fmt.Sprintf("%d %s", code, http.StatusText(code))
	default:
		return store.WebhookDead, fmt.Sprintf("%d %s: not retried", code, http.StatusText(code))
	}
}

// nextAttempt is when to try again after the failure of attempt number
// attempts+1: FirstBackoff doubled per earlier attempt, capped at
// MaxBackoff, with ±10% jitter; never past the end of the retry window,
// which gets a last attempt. ok is false when the window is over.
func (s *Service) nextAttempt(attempts int, firstFailure, now time.Time) (time.Time, bool) {
	deadline := firstFailure.Add(s.opts.RetryWindow)
	if !now.Before(deadline) {
		return time.Time{}, false
	}
	delay := s.opts.MaxBackoff
	if attempts < 40 {
		delay = min(s.opts.FirstBackoff<<attempts, s.opts.MaxBackoff)
		if delay <= 0 {
			delay = s.opts.MaxBackoff
		}
	}
	delay += time.Duration((rand.Float64()*0.2 - 0.1) * float64(delay))
	next := now.Add(delay)
	if next.After(deadline) {
		next = deadline
	}
	return next, true
}

// notifyPaused tells the org's failure notification endpoint, once and
// best effort, that its webhook endpoint was paused. The message is a
// signed envelope like any event.
func (s *Service) notifyPaused(ctx context.Context, d store.WebhookDelivery, reason string, at time.Time) {
	data := []byte(fmt.Sprintf(`{"changed_at":%q,"object":{"webhook_url":%q,"status":"paused","paused_reason":%q}}`,
		canopy.FormatTime(at), d.URL, reason))
	code, err := s.post(ctx, d.NotifyEndpoint, EventEndpointPaused, data, d.Secret, nil)
	if err != nil || code < 200 || code > 299 {
		s.log.Warn("webhooks: failure notification not delivered", "org_id", d.OrgID, "status", code, "err", err)
	}
}

// sweep dead-letters what paused endpoints can no longer receive in time,
// purges old rows and refreshes the paused-endpoints gauge.
func (s *Service) sweep(ctx context.Context) error {
	tick := time.NewTicker(s.opts.Sweep)
	defer tick.Stop()
	for {
		expired, purged, err := s.store.SweepWebhooks(ctx, s.opts.RetryWindow, s.opts.RetentionPeriod)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("webhooks: sweep", "err", err)
		}
		if expired > 0 || purged > 0 {
			s.log.Info("webhooks: swept deliveries", "dead_lettered", expired, "purged", purged)
			s.opts.Metrics.expired(expired)
		}
		if n, err := s.store.PausedWebhookEndpoints(ctx); err == nil {
			s.opts.Metrics.setPaused(n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
