package webhooks

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
)

// insertCounter counts the statements that record webhook deliveries (n)
// and all statements (all).
type insertCounter struct{ n, all atomic.Int64 }

func (c *insertCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.all.Add(1)
	if strings.Contains(d.SQL, "INSERT INTO webhook_deliveries") {
		c.n.Add(1)
	}
	return ctx
}

func (c *insertCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// fakeMsg is an event message as record sees it; it remembers how it was
// settled.
type fakeMsg struct {
	jetstream.Msg
	headers nats.Header
	data    []byte
	acked   bool
	nakked  bool
}

func (m *fakeMsg) Headers() nats.Header             { return m.headers }
func (m *fakeMsg) Data() []byte                     { return m.data }
func (m *fakeMsg) Subject() string                  { return "events.line_item.valid" }
func (m *fakeMsg) Ack() error                       { m.acked = true; return nil }
func (m *fakeMsg) NakWithDelay(time.Duration) error { m.nakked = true; return nil }

// countingPool is a one-connection pool whose statements are counted.
func countingPool(t *testing.T) (*pgxpool.Pool, *insertCounter) {
	t.Helper()
	env.Reserve(t, 1, "a counting pool")
	cfg, err := pgxpool.ParseConfig(env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	count := &insertCounter{}
	cfg.MaxConns, cfg.ConnConfig.Tracer = 1, count
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, count
}

// newOrg makes an org, subscribed to a webhook endpoint or not.
func newOrg(t *testing.T, st *store.Store, subscribed bool) string {
	t.Helper()
	ctx := context.Background()
	org := testenv.UniqueID("org_")
	if err := st.EnsureOrg(ctx, org, "webhooks test"); err != nil {
		t.Fatal(err)
	}
	if subscribed {
		if _, _, err := st.SubscribeWebhook(ctx, org, store.WebhookSubscription{URL: "https://example.com/hook"}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.DeleteWebhookSubscription(context.Background(), org) })
	}
	return org
}

// deliveries counts the delivery rows of org.
func deliveries(t *testing.T, org string) int {
	t.Helper()
	var n int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE org_id = $1`,
		org).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// unreadableMsg is a message of org whose body is not an event.
func unreadableMsg(org string) *fakeMsg {
	return &fakeMsg{headers: nats.Header{canopy.HeaderOrgID: []string{org}}, data: []byte("{")}
}

// eventMsg is the message the outbox would publish for a line item of
// org turning VALID a second from now (after any subscription made in
// the test), and its event id.
func eventMsg(t testing.TB, org, lineItemID string) (*fakeMsg, string) {
	t.Helper()
	now := time.Now().UTC().Add(time.Second)
	li := store.LineItem{OrgID: org, AccountID: "acct_1", LineItemID: lineItemID, ProductID: "p",
		Type: store.TypePayment, Status: store.StatusValid, AmountCents: -500, EffectiveAt: now, CreatedAt: now, UpdatedAt: now}
	m, err := canopy.Events{}.Event(store.Change{LineItem: li, From: store.StatusPending, Actor: "t", Reason: "t", At: now})
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header{}
	for k, v := range m.Headers {
		h.Set(k, v)
	}
	return &fakeMsg{headers: h, data: m.Payload}, m.MsgID
}

// A set of events is recorded with one statement, every readable event
// of the subscribed org gets its delivery, and every message is
// acknowledged, the unreadable one included.
func TestRecordWritesASetInOneStatement(t *testing.T) {
	ctx := context.Background()
	pool, count := countingPool(t)
	st := store.New(pool, env.Ring, canopy.Events{})
	org := newOrg(t, st, true)
	s := New(nil, topology(), st, Options{})

	var msgs []jetstream.Msg
	var ids []string
	for i := range 20 {
		m, id := eventMsg(t, org, "li_"+string(rune('a'+i)))
		msgs = append(msgs, m)
		ids = append(ids, id)
	}
	unreadable := &fakeMsg{headers: nats.Header{canopy.HeaderOrgID: []string{org}}, data: []byte("{")}
	msgs = append(msgs, unreadable)

	s.record(ctx, msgs)
	if n := count.n.Load(); n != 1 {
		t.Errorf("%d statements recorded %d events, want 1", n, len(ids))
	}
	var recorded int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE org_id = $1 AND event_id = ANY($2)`,
		org, ids).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != len(ids) {
		t.Errorf("%d deliveries recorded, want %d", recorded, len(ids))
	}
	wantAcked(t, msgs)
}

// Events of an org without a subscription are acknowledged unread: no
// INSERT runs (the pre-check is the set's only statement), no delivery is
// recorded, and an unreadable body is not even noticed.
func TestRecordLeavesOrgsWithoutSubscriptionUnread(t *testing.T) {
	ctx := context.Background()
	pool, count := countingPool(t)
	st := store.New(pool, env.Ring, canopy.Events{})
	org := newOrg(t, st, false)
	s, logs := loggingService(st)

	var msgs []jetstream.Msg
	for i := range 20 {
		m, _ := eventMsg(t, org, fmt.Sprintf("li_%02d", i))
		msgs = append(msgs, m)
	}
	msgs = append(msgs, unreadableMsg(org))

	before := count.all.Load()
	s.record(ctx, msgs)
	if n := count.n.Load(); n != 0 {
		t.Errorf("%d INSERTs for a set of an org without a subscription, want 0", n)
	}
	if n := count.all.Load() - before; n != 1 {
		t.Errorf("%d statements, want 1 (the pre-check)", n)
	}
	if n := deliveries(t, org); n != 0 {
		t.Errorf("%d deliveries recorded, want 0", n)
	}
	if logs.Len() != 0 {
		t.Errorf("events of an org without a subscription were read: %s", logs.String())
	}
	wantAcked(t, msgs)
}

// In a set mixing orgs, the subscribed org's events get their deliveries
// and its unreadable event is still logged, while the other org's events
// are acknowledged unread; all in one INSERT.
func TestRecordMixedSet(t *testing.T) {
	ctx := context.Background()
	pool, count := countingPool(t)
	st := store.New(pool, env.Ring, canopy.Events{})
	subscribed, other := newOrg(t, st, true), newOrg(t, st, false)
	s, logs := loggingService(st)

	var msgs []jetstream.Msg
	var ids []string
	for i := range 10 {
		org := subscribed
		if i%2 == 1 {
			org = other
		}
		m, id := eventMsg(t, org, fmt.Sprintf("li_%02d", i))
		msgs = append(msgs, m)
		if org == subscribed {
			ids = append(ids, id)
		}
	}
	msgs = append(msgs, unreadableMsg(subscribed), unreadableMsg(other))

	s.record(ctx, msgs)
	if n := count.n.Load(); n != 1 {
		t.Errorf("%d INSERTs, want 1", n)
	}
	var recorded int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE org_id = $1 AND event_id = ANY($2)`,
		subscribed, ids).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != len(ids) || deliveries(t, subscribed) != len(ids) {
		t.Errorf("%d deliveries recorded for the subscribed org, want %d", recorded, len(ids))
	}
	if n := deliveries(t, other); n != 0 {
		t.Errorf("%d deliveries recorded for the org without a subscription, want 0", n)
	}
	if n := strings.Count(logs.String(), "unreadable event skipped"); n != 1 {
		t.Errorf("%d unreadable events logged, want 1 (the subscribed org's):\n%s", n, logs.String())
	}
	wantAcked(t, msgs)
}

// When the pre-check fails, every event that names an org is handed back
// for redelivery, an unreadable one included (nothing was read yet);
// nothing is acknowledged unrecorded.
func TestRecordPrecheckFailureRedelivers(t *testing.T) {
	ctx := context.Background()
	pool, _ := countingPool(t)
	st := store.New(pool, env.Ring, canopy.Events{})
	org := newOrg(t, st, true)
	pool.Close() // every statement now fails
	s, logs := loggingService(st)

	event, _ := eventMsg(t, org, "li_1")
	unreadable := unreadableMsg(org)
	orgless := &fakeMsg{headers: nats.Header{}, data: []byte("{}")}
	s.record(ctx, []jetstream.Msg{event, unreadable, orgless})
	for name, f := range map[string]*fakeMsg{"event": event, "unreadable event": unreadable} {
		if f.acked || !f.nakked {
			t.Errorf("%s: acked %v, nakked %v; want handed back", name, f.acked, f.nakked)
		}
	}
	if !orgless.acked || orgless.nakked {
		t.Errorf("event without an org: acked %v, nakked %v; want acknowledged", orgless.acked, orgless.nakked)
	}
	if !strings.Contains(logs.String(), "will be redelivered") {
		t.Errorf("the failure was not logged: %s", logs.String())
	}
}

// BenchmarkRecordUnsubscribed records sets of 256 events of an org
// without a subscription, the end-to-end benchmark's case.
func BenchmarkRecordUnsubscribed(b *testing.B) {
	ctx := context.Background()
	st := store.New(env.Pool, env.Ring, canopy.Events{})
	org := testenv.UniqueID("org_")
	if err := st.EnsureOrg(ctx, org, "webhooks bench"); err != nil {
		b.Fatal(err)
	}
	s := New(nil, topology(), st, Options{})
	msgs := make([]jetstream.Msg, recordMax)
	for i := range msgs {
		msgs[i], _ = eventMsg(b, org, fmt.Sprintf("li_%03d", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		s.record(ctx, msgs)
	}
}

// wantAcked fails t for every message not acknowledged, or handed back.
func wantAcked(t *testing.T, msgs []jetstream.Msg) {
	t.Helper()
	for i, m := range msgs {
		if f := m.(*fakeMsg); !f.acked || f.nakked {
			t.Errorf("message %d: acked %v, nakked %v; want acknowledged", i, f.acked, f.nakked)
		}
	}
}

// An event whose org header PostgreSQL cannot take as text (a NUL byte,
// bytes that are not UTF-8: a forged or broken message) is acknowledged
// and logged on its own; one of a megabyte is just an org without a
// subscription. Sent along, it would fail the
// whole set's statements, so every event of the set would be handed back
// again and again, until the good ones ran out of deliveries with it.
func TestRecordSkipsAnUnusableOrgHeader(t *testing.T) {
	ctx := context.Background()
	pool, _ := countingPool(t)
	st := store.New(pool, env.Ring, canopy.Events{})
	org := newOrg(t, st, true)
	s, logs := loggingService(st)

	good, id := eventMsg(t, org, "li_good")
	msgs := []jetstream.Msg{good}
	for _, bad := range []string{org + "\x00", "org_\xff\xfe", strings.Repeat("o", 1<<20)} {
		m, _ := eventMsg(t, org, "li_bad")
		m.headers.Set(canopy.HeaderOrgID, bad)
		msgs = append(msgs, m)
	}
	s.record(ctx, msgs)

	var recorded int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE org_id = $1 AND event_id = $2`,
		org, id).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != 1 {
		t.Errorf("the good event's delivery recorded %d times, want once", recorded)
	}
	wantAcked(t, msgs)
	if n := strings.Count(logs.String(), "unusable org header"); n != 2 {
		t.Errorf("%d events logged with an unusable org header, want 2:\n%.2000s", n, logs.String())
	}
}

// loggingService is a webhooks service over st (no NATS: record is
// called directly) whose log lines the test reads.
func loggingService(st *store.Store) (*Service, *bytes.Buffer) {
	logs := &bytes.Buffer{}
	return New(nil, topology(), st, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}), logs
}
