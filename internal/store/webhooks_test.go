package store

import (
	"context"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/testenv"
)

// EnqueueWebhooks records a whole set of events in one statement, with
// EnqueueWebhook's rules for each: only orgs with a subscription, only
// changes made after it, each event once.
func TestEnqueueWebhooksOneStatement(t *testing.T) {
	pool, count := env.CountingPool(t)
	st := New(pool, env.Ring, plainEvents{})
	ctx := context.Background()
	subscribed, other := subscribedAndOther(t, st)
	now := time.Now()
	ev := func(org, id string, at time.Time) WebhookEvent {
		return WebhookEvent{OrgID: org, EventID: id, Name: "line_item.valid", At: at, Data: []byte(`{"id":"` + id + `"}`)}
	}
	es := []WebhookEvent{
		ev(subscribed, "evt_a", now.Add(time.Second)),
		ev(other, "evt_b", now.Add(time.Second)),     // no subscription
		ev(subscribed, "evt_c", now.Add(-time.Hour)), // before the subscription
		ev(subscribed, "evt_d", now.Add(time.Second)),
		ev(subscribed, "evt_a", now.Add(time.Second)), // twice in the set
	}
	before := count.Count()
	n, err := st.EnqueueWebhooks(ctx, es)
	if err != nil {
		t.Fatal(err)
	}
	if got := count.Count() - before; got != 1 {
		t.Errorf("%d statements for a set of %d events, want 1", got, len(es))
	}
	if n != 2 {
		t.Errorf("recorded %d deliveries, want 2 (evt_a, evt_d)", n)
	}
	var ids []string
	rows, err := pool.Query(ctx, `SELECT event_id FROM webhook_deliveries WHERE org_id = ANY($1) ORDER BY event_id`,
		[]string{subscribed, other})
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != "evt_a" || ids[1] != "evt_d" {
		t.Fatalf("deliveries recorded for %v, want [evt_a evt_d]", ids)
	}

	// A redelivered set records nothing new.
	if n, err := st.EnqueueWebhooks(ctx, es); err != nil || n != 0 {
		t.Fatalf("second enqueue recorded %d (err %v), want 0", n, err)
	}
	if added, err := st.EnqueueWebhook(ctx, ev(subscribed, "evt_e", now.Add(time.Second))); err != nil || !added {
		t.Fatalf("EnqueueWebhook of a new event: added %v, err %v", added, err)
	}
}

// WebhookSubscribers names, in one statement, exactly the orgs of the set
// that have a subscription, and asks nothing for an empty set.
func TestWebhookSubscribers(t *testing.T) {
	pool, count := env.CountingPool(t)
	st := New(pool, env.Ring, plainEvents{})
	ctx := context.Background()
	subscribed, other := subscribedAndOther(t, st)

	before := count.Count()
	got, err := st.WebhookSubscribers(ctx, []string{other, subscribed, testenv.UniqueID("org_")})
	if err != nil {
		t.Fatal(err)
	}
	if n := count.Count() - before; n != 1 {
		t.Errorf("%d statements, want 1", n)
	}
	if len(got) != 1 || !got[subscribed] {
		t.Errorf("subscribers %v, want only %s", got, subscribed)
	}

	before = count.Count()
	if got, err := st.WebhookSubscribers(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("no orgs: %v, %v; want none", got, err)
	}
	if n := count.Count() - before; n != 0 {
		t.Errorf("%d statements for no orgs, want 0", n)
	}

	// Unsubscribing shows at once: nothing is remembered.
	if err := st.DeleteWebhookSubscription(ctx, subscribed); err != nil {
		t.Fatal(err)
	}
	if got, err := st.WebhookSubscribers(ctx, []string{subscribed}); err != nil || len(got) != 0 {
		t.Errorf("after unsubscribing: %v, %v; want none", got, err)
	}
}

// subscribedAndOther makes two orgs, the first with a webhook
// subscription (removed when t ends).
func subscribedAndOther(t *testing.T, st *Store) (subscribed, other string) {
	t.Helper()
	ctx := context.Background()
	subscribed, other = testenv.UniqueID("org_"), testenv.UniqueID("org_")
	for _, org := range []string{subscribed, other} {
		if err := st.EnsureOrg(ctx, org, "t"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.SubscribeWebhook(ctx, subscribed, WebhookSubscription{URL: "https://example.com/hook"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.DeleteWebhookSubscription(context.Background(), subscribed) })
	return subscribed, other
}
