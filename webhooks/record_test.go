package webhooks

import (
	"context"
	"fmt"
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

// insertCounter counts the statements that record webhook deliveries.
type insertCounter struct{ n atomic.Int64 }

func (c *insertCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
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
	env.Reserve(t, 1, "a counting pool")
	cfg, err := pgxpool.ParseConfig(env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	count := &insertCounter{}
	cfg.MaxConns, cfg.ConnConfig.Tracer = 1, count
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool, env.Ring, canopy.Events{})
	org := testenv.UniqueID("org_")
	if err := st.EnsureOrg(ctx, org, "webhooks test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.SubscribeWebhook(ctx, org, store.WebhookSubscription{URL: "https://example.com/hook"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.DeleteWebhookSubscription(context.Background(), org) })
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
	for i, m := range msgs {
		if f := m.(*fakeMsg); !f.acked || f.nakked {
			t.Errorf("message %d: acked %v, nakked %v; want acknowledged", i, f.acked, f.nakked)
		}
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
