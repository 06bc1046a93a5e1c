package store

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payrail/payrail/internal/testenv"
)

// wholeEvents renders the entire line item into the event body, so a test
// sees any field in which the line item an event was built from differs
// from the stored one. Seq is left out: events never show it.
type wholeEvents struct{}

func (wholeEvents) Event(c Change) (OutboxMessage, error) {
	li := c.LineItem
	li.Seq = 0
	body, err := json.Marshal(struct {
		LineItem LineItem
		From     Status
		Actor    string
		Reason   string
		At       time.Time
	}{li, c.From, c.Actor, c.Reason, c.At.Truncate(time.Microsecond)})
	return OutboxMessage{MsgID: NewID("evt_"), Subject: "events.line_item.pending",
		Headers: map[string]string{"Payrail-Line-Item-Id": li.LineItemID}, Payload: body}, err
}

// fastPathRecorder keeps what the store hands its fast path.
type fastPathRecorder struct {
	mu   sync.Mutex
	msgs []OutboxMessage
}

func (f *fastPathRecorder) Enqueue(msgs []OutboxMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, msgs...)
}

// CreatePayment with the account's product writes everything in one
// statement: one round trip and one commit. What it returns, and the event
// it wrote, are the line item as stored; a replay and a conflict still
// behave as in the general path, and a product or customer name that is
// not the account's is ErrAccountChanged with nothing written.
func TestCreatePaymentOneStatement(t *testing.T) {
	pool, count := env.CountingPool(t)
	for _, c := range []struct {
		name       string
		productID  string
		fastPath   bool
		statements int64 // for the first create
	}{
		{"one statement with a fast path", "p", true, 1},
		{"one statement and NOTIFY without a fast path", "p", false, 1},
		// BEGIN, the line item, the attempt, the job's row, the event's
		// row, COMMIT.
		{"no product: the general path", "", true, 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			st := New(pool, env.Ring, wholeEvents{})
			fp := &fastPathRecorder{}
			if c.fastPath {
				st.SetFastPath(fp)
			}
			org := testenv.UniqueID("org_")
			if err := st.EnsureOrg(ctx, org, "t"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.CreateAccount(ctx, org, NewAccount{AccountID: "a1", ProductID: "p", RequestHash: []byte("h")}); err != nil {
				t.Fatal(err)
			}
			listen := listenOutbox(t)
			attempt := NewID("att_")
			in := NewPayment{
				LineItem: NewLineItem{AccountID: "a1", LineItemID: "li1", Type: TypePayment, AmountCents: 500,
					Description:    "Payment against the account",
					EffectiveAt:    time.Date(2026, 11, 30, 10, 0, 0, 123456789, time.FixedZone("x", 3600)),
					ExternalFields: []ExternalField{{Key: "k", Value: "v"}}, Origin: "guest_payment",
					Processor: "AUTHORIZE_NET", RequestHash: []byte("r"), ClientID: "c", IdempotencyKey: "key1"},
				AttemptID: attempt, PaymentType: "DEBIT", InstrumentKind: "card", InstrumentBrand: "Visa",
				InstrumentLastFour: "0027", ProductID: c.productID,
				Job: OutboxMessage{MsgID: "job_" + attempt, Subject: "jobs.AUTHORIZE_NET", Payload: []byte("sealed"),
					FastPayload: []byte("sealed with cvv"), Headers: map[string]string{"Payrail-Attempt-Id": attempt}},
			}
			before := count.Count()
			li, created, err := st.CreatePayment(ctx, org, in)
			if err != nil || !created {
				t.Fatalf("create: %v (created %v)", err, created)
			}
			if got := count.Count() - before; got != c.statements {
				t.Errorf("%d statements, want %d", got, c.statements)
			}
			stored, err := st.LineItem(ctx, org, "a1", "li1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(li, stored) {
				t.Errorf("returned %+v\nstored   %+v", li, stored)
			}
			// The event was rendered from the line item as stored.
			var payload []byte
			var fast bool
			if err := pool.QueryRow(ctx, `SELECT payload, fast_path FROM outbox WHERE subject = 'events.line_item.pending'
				AND headers->>'Payrail-Line-Item-Id' = 'li1' AND id > (SELECT min(id) FROM outbox WHERE msg_id = $1)`,
				in.Job.MsgID).Scan(&payload, &fast); err != nil {
				t.Fatal(err)
			}
			want, _ := wholeEvents{}.Event(Change{LineItem: stored, Actor: "c", Reason: "created via guest_payment",
				At: stored.CreatedAt})
			if string(payload) != string(want.Payload) {
				t.Errorf("event\n%s\nwant\n%s", payload, want.Payload)
			}
			if fast != c.fastPath {
				t.Errorf("fast_path %v, want %v", fast, c.fastPath)
			}
			// The fast path got both rows with their ids, the job with its
			// CVV-bearing body; without one, a relay was woken.
			if c.fastPath {
				checkEnqueued(t, pool, fp, in.Job.MsgID)
			} else {
				waitNotified(t, listen)
			}
			// A replay writes nothing and returns the stored line item.
			again, created, err := st.CreatePayment(ctx, org, in)
			if err != nil || created || !reflect.DeepEqual(again, stored) {
				t.Fatalf("replay: created %v, err %v\n%+v\nwant %+v", created, err, again, stored)
			}
			other := in
			other.LineItem.RequestHash = []byte("different")
			if _, _, err := st.CreatePayment(ctx, org, other); err == nil {
				t.Fatal("a different request under the same key was accepted")
			}
			missing := in
			missing.LineItem.AccountID, missing.LineItem.LineItemID, missing.LineItem.IdempotencyKey = "nope", "li2", ""
			if _, _, err := st.CreatePayment(ctx, org, missing); err != ErrNotFound {
				t.Fatalf("missing account: %v, want ErrNotFound", err)
			}
		})
	}
}

func checkEnqueued(t *testing.T, pool *pgxpool.Pool, fp *fastPathRecorder, jobMsgID string) {
	t.Helper()
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if len(fp.msgs) != 2 {
		t.Fatalf("fast path got %d rows, want 2", len(fp.msgs))
	}
	for _, m := range fp.msgs {
		var id int64
		if err := pool.QueryRow(context.Background(), `SELECT id FROM outbox WHERE msg_id = $1`, m.MsgID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if m.ID != id {
			t.Errorf("fast path row %s has id %d, stored %d", m.MsgID, m.ID, id)
		}
		if m.MsgID == jobMsgID && string(m.Body()) != "sealed with cvv" {
			t.Errorf("fast path job body %q", m.Body())
		}
	}
}

// listenOutbox returns a connection listening on the outbox channel.
func listenOutbox(t *testing.T) *pgx.Conn {
	t.Helper()
	env.Reserve(t, 1, "a LISTEN connection")
	conn, err := pgx.Connect(context.Background(), env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(context.Background(), "LISTEN "+OutboxChannel()); err != nil {
		t.Fatal(err)
	}
	return conn
}

func waitNotified(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.WaitForNotification(ctx); err != nil {
		t.Fatalf("no NOTIFY on %s: %v", OutboxChannel(), err)
	}
}

// A payment built for an account that no longer has the product or the
// customer name it was built with is written by neither one-statement
// path: CreatePayment answers ErrAccountChanged after its one statement,
// and the path of a failed batch reports the change; with the account's
// own product and name both write it.
func TestCreatePaymentAccountChanged(t *testing.T) {
	ctx := context.Background()
	pool, count := env.CountingPool(t)
	st := New(pool, env.Ring, plainEvents{})
	org := testenv.UniqueID("org_")
	if err := st.EnsureOrg(ctx, org, "t"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateAccount(ctx, org, NewAccount{AccountID: "a1", ProductID: "p", CustomerName: "Ada Lovelace",
		RequestHash: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	payment := func(id, product, name string) NewPayment {
		in := groupPayment(id, "r", "")
		in.ProductID, in.CustomerName = product, name
		return in
	}
	for _, c := range []struct{ name, product, customer string }{
		{"another product", "other", "Ada Lovelace"},
		{"another customer name", "p", "Ada Byron"},
		{"no customer name", "p", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := count.Count()
			if _, _, err := st.CreatePayment(ctx, org, payment("li_grouped", c.product, c.customer)); !errors.Is(err, ErrAccountChanged) {
				t.Errorf("grouped: %v, want ErrAccountChanged", err)
			}
			if got := count.Count() - before; got != 1 {
				t.Errorf("grouped: %d statements, want 1", got)
			}
			_, ok, changed, err := st.createPaymentOneTrip(ctx, org, payment("li_onetrip", c.product, c.customer))
			if err != nil || ok || !changed {
				t.Errorf("one trip: written %v, changed %v, %v; want changed", ok, changed, err)
			}
			for _, id := range []string{"li_grouped", "li_onetrip"} {
				if _, err := st.LineItem(ctx, org, "a1", id); !errors.Is(err, ErrNotFound) {
					t.Errorf("%s was written (%v)", id, err)
				}
			}
		})
	}
	if _, created, err := st.CreatePayment(ctx, org, payment("li_grouped", "p", "Ada Lovelace")); err != nil || !created {
		t.Errorf("grouped, as the account is: created %v, %v", created, err)
	}
	if _, ok, changed, err := st.createPaymentOneTrip(ctx, org, payment("li_onetrip", "p", "Ada Lovelace")); err != nil || !ok || changed {
		t.Errorf("one trip, as the account is: written %v, changed %v, %v", ok, changed, err)
	}
	// A replay is not a change.
	if _, ok, changed, err := st.createPaymentOneTrip(ctx, org, payment("li_onetrip", "p", "Ada Lovelace")); err != nil || ok || changed {
		t.Errorf("one trip, replay: written %v, changed %v, %v; want neither", ok, changed, err)
	}
}
