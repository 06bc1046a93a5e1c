package store

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "store", &env)) }

// plainEvents stands in for package canopy (which imports the store) in
// the store's own tests: an event names its line item, attempt and
// statuses, on the subject and header canopy uses.
type plainEvents struct{}

func (plainEvents) Event(c Change) (OutboxMessage, error) {
	li := c.LineItem
	fields := map[string]string{"line_item_id": li.LineItemID, "from": string(c.From), "status": string(li.Status)}
	if li.Attempt != nil {
		fields["attempt_id"] = li.Attempt.AttemptID
	}
	body, err := json.Marshal(fields)
	return OutboxMessage{MsgID: NewID("evt_"), Subject: "events.line_item." + strings.ToLower(string(li.Status)),
		Headers: map[string]string{"Payrail-Line-Item-Id": li.LineItemID}, Payload: body}, err
}

// newPayment stores a PENDING payment with its attempt and returns the
// attempt's reference.
func newPayment(t *testing.T, st *Store) (AttemptRef, LineItem) {
	t.Helper()
	ctx := context.Background()
	org := orgWithAccount(t, st)
	attempt := NewID("att_")
	li, created, err := st.CreatePayment(ctx, org, NewPayment{
		LineItem: NewLineItem{AccountID: "a1", LineItemID: "li1", Type: TypePayment, AmountCents: 500,
			Origin: "guest_payment", Processor: "AUTHORIZE_NET", RequestHash: []byte("r"), ClientID: "c"},
		AttemptID: attempt, PaymentType: "DEBIT",
		Job: OutboxMessage{MsgID: "job_" + attempt, Payload: []byte("sealed")},
	})
	if err != nil || !created {
		t.Fatalf("create payment: %v (created %v)", err, created)
	}
	return AttemptRef{OrgID: org, AttemptID: attempt}, li
}

// A second delivery inside the first one's lease is refused; after the
// lease, or once the attempt is finished, it is not.
func TestBeginDeliveryLease(t *testing.T) {
	st := New(env.Pool, env.Ring, plainEvents{})
	ctx := context.Background()
	ref, _ := newPayment(t, st)

	if before, err := st.BeginDelivery(ctx, ref, 1, time.Minute); err != nil || before != AttemptQueued {
		t.Fatalf("first delivery: %q, %v", before, err)
	}
	if _, err := st.BeginDelivery(ctx, ref, 2, time.Minute); !errors.Is(err, ErrAttemptLeased) {
		t.Fatalf("second delivery inside the lease: err = %v, want ErrAttemptLeased", err)
	}
	// The refused delivery changed nothing: deliveries is still 1.
	var deliveries int
	if err := env.Pool.QueryRow(ctx, `SELECT deliveries FROM payment_attempts WHERE attempt_id = $1`, ref.AttemptID).Scan(&deliveries); err != nil {
		t.Fatal(err)
	}
	if deliveries != 1 {
		t.Errorf("deliveries = %d after a refused delivery, want 1", deliveries)
	}
	if before, err := st.BeginDelivery(ctx, ref, 2, 0); err != nil || before != AttemptProcessing {
		t.Fatalf("second delivery after the lease: %q, %v", before, err)
	}
	if _, err := st.CompleteAttempt(ctx, AttemptResult{AttemptRef: ref, From: resultFrom, Status: AttemptSucceeded,
		LineItemStatus: StatusValid, Actor: "test", Reason: "approved"}); err != nil {
		t.Fatal(err)
	}
	// A duplicate of a finished attempt is reported as such, lease or not.
	if before, err := st.BeginDelivery(ctx, ref, 3, time.Minute); err != nil || before != AttemptSucceeded {
		t.Fatalf("delivery of a finished attempt: %q, %v", before, err)
	}
	if _, err := st.CompleteAttempt(ctx, AttemptResult{AttemptRef: ref, From: resultFrom, Status: AttemptDeclined,
		LineItemStatus: StatusDeclined, Actor: "test", Reason: "late"}); !errors.Is(err, ErrAttemptClosed) {
		t.Fatalf("second result: err = %v, want ErrAttemptClosed", err)
	}
}

// CompleteAttempt moves the line item, records the transition, writes the
// event and drops the job's sealed details, all in one transaction.
func TestCompleteAttemptWritesTransitionEventAndPurgesJob(t *testing.T) {
	st := New(env.Pool, env.Ring, plainEvents{})
	ctx := context.Background()
	ref, li := newPayment(t, st)
	if _, err := st.BeginDelivery(ctx, ref, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	out, err := st.CompleteAttempt(ctx, AttemptResult{AttemptRef: ref, From: resultFrom, Status: AttemptDeclined, LineItemStatus: StatusDeclined,
		TransactionID: "t1", ResultCode: "2", ResultMessage: "declined", InstrumentKind: "card", InstrumentBrand: "Visa",
		InstrumentLastFour: "1111", Actor: "worker:AUTHORIZE_NET", Reason: "processor outcome declined"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != StatusDeclined || out.Attempt.Status != AttemptDeclined || out.Attempt.ResultCode != "2" ||
		out.Attempt.InstrumentLastFour != "1111" {
		t.Fatalf("line item after result: %+v / %+v", out, out.Attempt)
	}
	var transitions, events int
	var payload []byte
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM line_item_transitions WHERE org_id = $1 AND line_item_id = $2`,
		ref.OrgID, li.LineItemID).Scan(&transitions); err != nil {
		t.Fatal(err)
	}
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject = 'events.line_item.declined'
		AND headers->>'Payrail-Line-Item-Id' = $1 AND convert_from(payload, 'UTF8') LIKE '%' || $2 || '%'`,
		li.LineItemID, ref.AttemptID).Scan(&events); err != nil {
		t.Fatal(err)
	}
	payload = attemptJob(t, ref)
	if transitions != 2 || events != 1 || payload != nil {
		t.Errorf("transitions %d (want 2: created, declined), declined events %d (want 1), job payload %q (want purged)",
			transitions, events, payload)
	}
}

// resultFrom is where a worker's result may apply (package payments).
var resultFrom = []AttemptStatus{AttemptQueued, AttemptProcessing, AttemptHeld}
