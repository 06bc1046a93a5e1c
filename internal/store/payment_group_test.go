package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/payrail/payrail/internal/groupcommit"
	"github.com/payrail/payrail/internal/testenv"
)

// batchGate replaces a store's payment batcher with one whose first
// commit waits for release, so a test can queue payments while it runs
// and have them committed in one batch. It records the batch sizes.
type batchGate struct {
	mu      sync.Mutex
	sizes   []int
	written []int // per batch, how many payments its statement wrote
	started chan struct{}
	release chan struct{}
	first   atomic.Bool
}

func gatePayments(st *Store) *batchGate {
	g := &batchGate{started: make(chan struct{}), release: make(chan struct{})}
	st.payments = groupcommit.New(func(ctx context.Context, items []pendingPayment) []paymentOutcome {
		g.mu.Lock()
		g.sizes = append(g.sizes, len(items))
		g.mu.Unlock()
		if g.first.CompareAndSwap(false, true) {
			close(g.started)
			<-g.release
		}
		outs := st.insertPaymentBatch(ctx, items)
		n := 0
		for _, o := range outs {
			if o.written {
				n++
			}
		}
		g.mu.Lock()
		g.written = append(g.written, n)
		g.mu.Unlock()
		return outs
	}, groupcommit.Options{Committers: 1})
	return g
}

func (g *batchGate) batchSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.sizes)
}

// writtenByBatch is how many payments the statement of the queued batch
// (the one after the plug) wrote.
func (g *batchGate) writtenByBatch(t *testing.T) int {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.written) != 2 {
		t.Fatalf("%d batches, want 2", len(g.written))
	}
	return g.written[1]
}

// orgWithAccount makes an org with account a1 of product p.
func orgWithAccount(t testing.TB, st *Store) string {
	t.Helper()
	ctx := context.Background()
	org := testenv.UniqueID("org_")
	if err := st.EnsureOrg(ctx, org, "t"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateAccount(ctx, org, NewAccount{AccountID: "a1", ProductID: "p", RequestHash: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	return org
}

// groupPayment is a card payment of line item id on account a1.
func groupPayment(id, hash, key string) NewPayment {
	attempt := NewID("att_")
	return NewPayment{
		LineItem: NewLineItem{AccountID: "a1", LineItemID: id, Type: TypePayment, AmountCents: 500,
			Description: "Payment against the account", Origin: "guest_payment", Processor: "AUTHORIZE_NET",
			RequestHash: []byte(hash), ClientID: "c", IdempotencyKey: key},
		AttemptID: attempt, PaymentType: "DEBIT", InstrumentKind: "card", InstrumentBrand: "Visa", InstrumentLastFour: "0027",
		ProductID: "p",
		Job: OutboxMessage{MsgID: "job_" + attempt, Subject: "jobs.AUTHORIZE_NET", Payload: []byte("sealed"),
			Headers: map[string]string{"Payrail-Attempt-Id": attempt}},
	}
}

type paymentResult struct {
	li      LineItem
	created bool
	err     error
}

// createInOneBatch creates a plug payment whose commit holds the batcher,
// queues ins behind it and lets them go: they are committed in one batch.
func createInOneBatch(t *testing.T, st *Store, g *batchGate, org string, ins []NewPayment) []paymentResult {
	t.Helper()
	ctx := context.Background()
	out := make([]paymentResult, len(ins))
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, _, err := st.CreatePayment(ctx, org, groupPayment(NewID("plug_"), "r", "")); err != nil {
			t.Errorf("plug payment: %v", err)
		}
	})
	<-g.started
	for i, in := range ins {
		wg.Go(func() {
			r := &out[i]
			r.li, r.created, r.err = st.CreatePayment(ctx, org, in)
		})
	}
	waitQueued(t, st, len(ins))
	close(g.release)
	wg.Wait()
	if got, want := g.batchSizes(), []int{1, len(ins)}; !slices.Equal(got, want) {
		t.Fatalf("batch sizes %v, want %v", got, want)
	}
	return out
}

func waitQueued(t *testing.T, st *Store, n int) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("%d payments queued", n), func() bool { return st.payments.Queued() == n })
}

// Payments committed in one batch get each the outcome CreatePayment gives
// one payment alone: created, a replay (by id or by idempotency key), a
// conflict, a reused key, no such account, an account whose product or
// customer name is not the payment's (ErrAccountChanged, nothing
// written); and two of the batch that share an id or a key are told apart
// as if they had come one after the other, also when the account of the
// first was not as expected.
func TestCreatePaymentOutcomesInOneBatch(t *testing.T) {
	ctx := context.Background()
	st := New(env.Pool, env.Ring, plainEvents{})
	fp := &fastPathRecorder{}
	st.SetFastPath(fp)
	org := orgWithAccount(t, st)
	earlier := groupPayment("li_earlier", "r", "k_earlier")
	stored, created, err := st.CreatePayment(ctx, org, earlier)
	if err != nil || !created {
		t.Fatalf("earlier payment: %v (created %v)", err, created)
	}
	g := gatePayments(st)

	otherProduct := groupPayment("li_other_product", "r", "")
	otherProduct.ProductID = "other"
	otherName := groupPayment("li_other_name", "r", "")
	otherName.CustomerName = "Someone Else" // the account has none
	missing := groupPayment("li_missing", "r", "")
	missing.LineItem.AccountID = "nope"
	replayByID := earlier
	replayByID.LineItem.IdempotencyKey = ""
	cases := []struct {
		name    string
		in      NewPayment
		created bool
		replay  bool // returns the earlier payment
		err     error
	}{
		{"new", groupPayment("li_new", "r", ""), true, false, nil},
		{"new with a key", groupPayment("li_new_key", "r", "k_new"), true, false, nil},
		{"replay by id", replayByID, false, true, nil},
		{"earlier id, another body", groupPayment("li_earlier", "x", ""), false, false, ErrConflict},
		{"replay by key", groupPayment("li_fresh", "r", "k_earlier"), false, true, nil},
		{"earlier key, another body", groupPayment("li_fresh2", "x", "k_earlier"), false, false, ErrIdempotencyKeyReused},
		{"no such account", missing, false, false, ErrNotFound},
		{"another product", otherProduct, false, false, ErrAccountChanged},
		{"another customer name", otherName, false, false, ErrAccountChanged},
	}
	ins := make([]NewPayment, len(cases))
	for i, c := range cases {
		ins[i] = c.in
	}
	// Two of the batch share an id (same body), two a key (other bodies).
	twin := groupPayment("li_twin", "r", "")
	ins = append(ins, twin, twin, groupPayment("li_key_a", "a", "k_shared"), groupPayment("li_key_b", "b", "k_shared"))
	// Two share an id, the account is not as the first expected: the
	// second is not written by the general path either.
	staleTwin := groupPayment("li_stale_twin", "r", "")
	staleTwin.CustomerName = "Someone Else"
	ins = append(ins, staleTwin, staleTwin)
	before := len(fp.msgs)
	out := createInOneBatch(t, st, g, org, ins)
	// new, new with a key, a twin, a key: the rest the general path
	// explained, or were refused as built for another account.
	if got := g.writtenByBatch(t); got != 4 {
		t.Errorf("the batch's statement wrote %d payments, want 4", got)
	}

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := out[i]
			if c.err != nil {
				if !errors.Is(r.err, c.err) {
					t.Fatalf("error %v, want %v", r.err, c.err)
				}
				return
			}
			if r.err != nil || r.created != c.created {
				t.Fatalf("created %v, error %v; want created %v", r.created, r.err, c.created)
			}
			want := stored
			if !c.replay {
				if want, err = st.LineItem(ctx, org, c.in.LineItem.AccountID, c.in.LineItem.LineItemID); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(r.li, want) {
				t.Errorf("returned %+v\nstored   %+v", r.li, want)
			}
		})
	}
	t.Run("one id twice", func(t *testing.T) {
		a, b := out[len(cases)], out[len(cases)+1]
		if a.err != nil || b.err != nil || a.created == b.created || !reflect.DeepEqual(a.li, b.li) {
			t.Errorf("outcomes %+v and %+v: want one created, one replay of it", a, b)
		}
	})
	t.Run("one key twice", func(t *testing.T) {
		a, b := out[len(cases)+2], out[len(cases)+3]
		if a.created == b.created || !errors.Is(cmpErr(a.err, b.err), ErrIdempotencyKeyReused) {
			t.Errorf("outcomes %+v and %+v: want one created, one refused", a, b)
		}
	})
	t.Run("one id twice, account not as expected", func(t *testing.T) {
		for _, r := range out[len(cases)+4:] {
			if !errors.Is(r.err, ErrAccountChanged) {
				t.Errorf("outcome %+v, want ErrAccountChanged", r)
			}
		}
		if _, err := st.LineItem(ctx, org, "a1", "li_stale_twin"); !errors.Is(err, ErrNotFound) {
			t.Errorf("li_stale_twin was written (%v)", err)
		}
	})
	// Every payment created has one line item, one transition, one
	// attempt and its two outbox rows, handed to the fast path; nothing
	// else was written or handed over.
	var items, transitions, attempts, rows int
	if err := env.Pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM line_items WHERE org_id = $1),
		       (SELECT count(*) FROM line_item_transitions WHERE org_id = $1),
		       (SELECT count(*) FROM payment_attempts WHERE org_id = $1),
		       (SELECT count(*) FROM outbox o JOIN payment_attempts pa ON pa.job_msg_id = o.msg_id WHERE pa.org_id = $1)
		     + (SELECT count(*) FROM outbox WHERE headers->>'Payrail-Line-Item-Id' IN
		           (SELECT line_item_id FROM line_items WHERE org_id = $1))`,
		org).Scan(&items, &transitions, &attempts, &rows); err != nil {
		t.Fatal(err)
	}
	// earlier, plug, new, new with a key, a twin, a key.
	const want = 6
	if items != want || transitions != want || attempts != want || rows != 2*want {
		t.Errorf("%d line items, %d transitions, %d attempts, %d outbox rows; want %d, %d, %d, %d",
			items, transitions, attempts, rows, want, want, want, 2*want)
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if got := len(fp.msgs) - before; got != 2*(want-1) {
		t.Errorf("fast path got %d rows, want %d", got, 2*(want-1))
	}
}

// cmpErr returns the one of two errors that is set.
func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// A payment PostgreSQL refuses fails its batch's statement; the batch's
// other payments are then written one by one and succeed, and the refused
// one fails alone, with the error it gets on its own.
func TestCreatePaymentBatchSurvivesARefusedPayment(t *testing.T) {
	ctx := context.Background()
	st := New(env.Pool, env.Ring, plainEvents{})
	org := orgWithAccount(t, st)
	g := gatePayments(st)
	bad := groupPayment("li_bad", "r", "")
	bad.LineItem.AmountCents = 0 // line_items' CHECK refuses it
	ins := []NewPayment{groupPayment("li_1", "r", ""), bad, groupPayment("li_2", "r", "k2"), groupPayment("li_3", "r", "")}
	out := createInOneBatch(t, st, g, org, ins)
	if got := g.writtenByBatch(t); got != 0 {
		t.Errorf("the failed statement wrote %d payments", got)
	}
	for i, r := range out {
		id := ins[i].LineItem.LineItemID
		_, err := st.LineItem(ctx, org, "a1", id)
		if id == "li_bad" {
			if r.err == nil || errors.Is(r.err, ErrNotFound) {
				t.Errorf("%s: error %v, want PostgreSQL's refusal", id, r.err)
			}
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s was stored (%v)", id, err)
			}
			continue
		}
		if r.err != nil || !r.created {
			t.Errorf("%s: created %v, error %v", id, r.created, r.err)
		}
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// Many concurrent callers, some sending the same payment twice: every
// payment answered without error has exactly one line item, one attempt
// and its two outbox rows, and at least one batch held several payments.
func TestCreatePaymentConcurrentCallers(t *testing.T) {
	ctx := context.Background()
	st := New(env.Pool, env.Ring, plainEvents{})
	org := orgWithAccount(t, st)
	var most atomic.Int64
	st.payments = groupcommit.New(func(ctx context.Context, items []pendingPayment) []paymentOutcome {
		for m := most.Load(); int64(len(items)) > m && !most.CompareAndSwap(m, int64(len(items))); m = most.Load() {
		}
		return st.insertPaymentBatch(ctx, items)
	}, groupcommit.Options{MaxBatch: maxPaymentBatch, Committers: paymentCommitters})
	const callers, each = 32, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered := map[string]int{}
	var failures atomic.Int64
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				// Callers c and c+1 (c even) send the same payments.
				id := fmt.Sprintf("li_%d_%d", c/2, i)
				_, _, err := st.CreatePayment(ctx, org, groupPayment(id, "r", "key_"+id))
				if err != nil {
					failures.Add(1)
					t.Errorf("%s: %v", id, err)
					continue
				}
				mu.Lock()
				answered[id]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(answered) != callers/2*each {
		t.Errorf("%d payments answered, want %d", len(answered), callers/2*each)
	}
	rows, err := env.Pool.Query(ctx, `
		SELECT li.line_item_id, count(DISTINCT pa.attempt_id), count(DISTINCT o.id)
		  FROM line_items li
		  LEFT JOIN payment_attempts pa ON pa.org_id = li.org_id AND pa.line_item_id = li.line_item_id
		  LEFT JOIN outbox o ON o.msg_id = pa.job_msg_id OR o.headers->>'Payrail-Line-Item-Id' = li.line_item_id
		 WHERE li.org_id = $1
		 GROUP BY li.line_item_id`, org)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var id string
		var attempts, outboxRows int
		if err := rows.Scan(&id, &attempts, &outboxRows); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
		if attempts != 1 || outboxRows != 2 {
			t.Errorf("%s: %d attempts, %d outbox rows; want 1 and 2", id, attempts, outboxRows)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id := range answered {
		if !stored[id] {
			t.Errorf("%s answered but not stored", id)
		}
	}
	if len(stored) != len(answered) {
		t.Errorf("%d line items stored, %d answered", len(stored), len(answered))
	}
	if most.Load() < 2 {
		t.Errorf("largest batch %d: the callers were never committed together", most.Load())
	}
}

// A lone payment is its own batch, committed at once by one statement.
func TestLonePaymentIsItsOwnBatch(t *testing.T) {
	pool, count := env.CountingPool(t)
	st := New(pool, env.Ring, plainEvents{})
	org := orgWithAccount(t, st)
	var sizes []int
	st.payments = groupcommit.New(st.insertPaymentBatch, groupcommit.Options{Observe: func(n int) { sizes = append(sizes, n) }})
	for i := range 3 {
		before := count.Count()
		if _, created, err := st.CreatePayment(context.Background(), org, groupPayment(fmt.Sprint("li_", i), "r", "")); err != nil || !created {
			t.Fatalf("payment %d: %v (created %v)", i, err, created)
		}
		if got := count.Count() - before; got != 1 {
			t.Errorf("payment %d: %d statements, want 1", i, got)
		}
	}
	if !slices.Equal(sizes, []int{1, 1, 1}) {
		t.Errorf("batch sizes %v, want [1 1 1]", sizes)
	}
}
