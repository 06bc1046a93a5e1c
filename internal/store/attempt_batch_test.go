package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// sqlEvents is plainEvents that PostgreSQL can also build (SQLEvents), as
// package canopy's events are: ApplyBulkTx writes events this way, and
// CompleteAttempts must not (it renders them in Go).
type sqlEvents struct{ plainEvents }

func (sqlEvents) EventIDSQL() string { return `('evt_' || gen_random_uuid()::text)` }

func (sqlEvents) EventSQL() string {
	return `SELECT c.event_id AS msg_id, 'events.line_item.' || lower(li.status) AS subject,
	       jsonb_build_object('Payrail-Line-Item-Id', li.line_item_id) AS headers,
	       convert_to(jsonb_build_object('line_item_id', li.line_item_id, 'from', c.from_status, 'status', li.status,
	           'attempt_id', pa.attempt_id, 'actor', c.actor, 'reason', c.reason)::text, 'UTF8') AS payload`
}

// recordingFastPath keeps what the store hands it after each commit.
type recordingFastPath struct{ got []OutboxMessage }

func (r *recordingFastPath) Enqueue(msgs []OutboxMessage) { r.got = append(r.got, msgs...) }

// distinctWriters counts the transactions that last wrote the attempts.
func distinctWriters(t *testing.T, refs ...AttemptRef) int {
	t.Helper()
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.AttemptID
	}
	var n int
	if err := env.Pool.QueryRow(context.Background(),
		`SELECT count(DISTINCT xmin::text) FROM payment_attempts WHERE attempt_id = ANY($1)`, ids).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// BeginDeliveries records a set of deliveries in one statement with
// BeginDelivery's answers: a new delivery moves its attempt to
// processing, a second delivery of the same attempt in the same set finds
// the first's lease, a finished attempt is reported as finished and an
// unknown one as not found.
func TestBeginDeliveriesAnswersAsBeginDelivery(t *testing.T) {
	st := New(env.Pool, env.Ring, sqlEvents{})
	ctx := context.Background()
	a, _ := newPayment(t, st)
	b, _ := newPayment(t, st)
	done, _ := newPayment(t, st)
	if _, err := st.CompleteAttempt(ctx, AttemptResult{AttemptRef: done, From: resultFrom, Status: AttemptSucceeded,
		LineItemStatus: StatusValid, Actor: "test", Reason: "approved"}); err != nil {
		t.Fatal(err)
	}
	missing := AttemptRef{OrgID: a.OrgID, AttemptID: "att_missing"}

	got, errs, err := st.BeginDeliveries(ctx, []DeliveryClaim{
		{a, 1}, {b, 1}, {a, 2}, {done, 2}, {missing, 1},
	}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		name       string
		before     AttemptStatus
		deliveries int
		err        error
	}{
		{"first delivery of a", AttemptQueued, 1, nil},
		{"first delivery of b", AttemptQueued, 1, nil},
		{"second delivery of a, inside the first's lease", AttemptProcessing, 1, ErrAttemptLeased},
		{"delivery of a finished attempt", AttemptSucceeded, 0, nil},
		{"delivery of an unknown attempt", "", 0, ErrNotFound},
	} {
		if got[i].Before != c.before || got[i].Deliveries != c.deliveries || !errors.Is(errs[i], c.err) {
			t.Errorf("%s: %+v, %v; want before %q, deliveries %d, %v", c.name, got[i], errs[i], c.before, c.deliveries, c.err)
		}
	}
	if got[2].LeaseLeft <= 0 {
		t.Errorf("leased delivery: lease left %s, want > 0", got[2].LeaseLeft)
	}
	// a and b were recorded by one statement.
	if n := distinctWriters(t, a, b); n != 1 {
		t.Errorf("the deliveries of a and b were written by %d transactions, want 1", n)
	}
}

// CompleteAttempts commits a set of results in one transaction with
// CompleteAttempt's effects (attempt, line item, transition, event,
// purged job) and answers each result as CompleteAttempt would; the
// events go to the fast path after the commit.
func TestCompleteAttemptsAppliesEachLikeCompleteAttempt(t *testing.T) {
	fp := &recordingFastPath{}
	st := New(env.Pool, env.Ring, sqlEvents{})
	st.SetFastPath(fp)
	ctx := context.Background()
	valid, validLI := newPayment(t, st)
	declined, declinedLI := newPayment(t, st)
	held, heldLI := newPayment(t, st)
	closed, _ := newPayment(t, st)
	if _, err := st.CompleteAttempt(ctx, AttemptResult{AttemptRef: closed, From: resultFrom, Status: AttemptSucceeded,
		LineItemStatus: StatusValid, Actor: "test", Reason: "approved"}); err != nil {
		t.Fatal(err)
	}
	fp.got = nil
	missing := AttemptRef{OrgID: valid.OrgID, AttemptID: "att_missing"}
	result := func(ref AttemptRef, status AttemptStatus, li Status) AttemptResult {
		return AttemptResult{AttemptRef: ref, From: resultFrom, Status: status, LineItemStatus: li, TransactionID: "t-" + ref.AttemptID,
			ResultCode: "1", ResultMessage: "m", InstrumentKind: "card", InstrumentBrand: "Visa", InstrumentLastFour: "1111",
			Actor: "worker:AUTHORIZE_NET", Reason: "processor outcome " + string(status)}
	}
	errs := st.CompleteAttempts(ctx, []AttemptResult{
		result(valid, AttemptSucceeded, StatusValid),
		result(declined, AttemptDeclined, StatusDeclined),
		result(held, AttemptHeld, ""),
		result(closed, AttemptDeclined, StatusDeclined),
		result(missing, AttemptSucceeded, StatusValid),
	})

	for _, c := range []struct {
		name    string
		err     error
		ref     AttemptRef
		li      LineItem
		attempt AttemptStatus
		status  Status
		from    Status // the event's previous status
		purged  bool
	}{
		{"succeeded", nil, valid, validLI, AttemptSucceeded, StatusValid, StatusPending, true},
		{"declined", nil, declined, declinedLI, AttemptDeclined, StatusDeclined, StatusPending, true},
		// Held keeps the status and the job's details, and announces it.
		{"held", nil, held, heldLI, AttemptHeld, StatusPending, StatusPending, false},
	} {
		if !errors.Is(errs[0], c.err) {
			t.Errorf("%s: err %v", c.name, errs[0])
		}
		errs = errs[1:]
		li, err := st.LineItem(ctx, c.ref.OrgID, c.li.AccountID, c.li.LineItemID)
		if err != nil {
			t.Fatal(err)
		}
		if li.Status != c.status || li.Attempt.Status != c.attempt || li.Attempt.TransactionID != "t-"+c.ref.AttemptID ||
			li.Attempt.InstrumentLastFour != "1111" {
			t.Errorf("%s: line item %s, attempt %+v", c.name, li.Status, li.Attempt)
		}
		if c.status == StatusValid && li.ValidAt == nil {
			t.Errorf("%s: VALID without valid_at", c.name)
		}
		var transitions, events int
		var payload []byte
		if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM line_item_transitions WHERE org_id = $1 AND line_item_id = $2`,
			c.ref.OrgID, c.li.LineItemID).Scan(&transitions); err != nil {
			t.Fatal(err)
		}
		if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE fast_path AND subject = $1
			AND convert_from(payload, 'UTF8')::jsonb @> jsonb_build_object('attempt_id', $2::text, 'from', $3::text, 'status', $4::text)`,
			"events.line_item."+strings.ToLower(string(c.status)), c.ref.AttemptID, string(c.from), string(c.status)).Scan(&events); err != nil {
			t.Fatal(err)
		}
		payload = attemptJob(t, c.ref)
		wantTransitions := 2
		if c.status == StatusPending {
			wantTransitions = 1 // no change of status: no transition
		}
		if transitions != wantTransitions || events != 1 || (payload == nil) != c.purged {
			t.Errorf("%s: %d transitions (want %d), %d events, job payload %q (purged: %v)", c.name, transitions,
				wantTransitions, events, payload, c.purged)
		}
	}
	if !errors.Is(errs[0], ErrAttemptClosed) || !errors.Is(errs[1], ErrNotFound) {
		t.Errorf("closed attempt: %v (want ErrAttemptClosed); missing attempt: %v (want ErrNotFound)", errs[0], errs[1])
	}
	if n := distinctWriters(t, valid, declined, held); n != 1 {
		t.Errorf("the results were committed by %d transactions, want 1", n)
	}
	if len(fp.got) != 3 {
		t.Fatalf("fast path got %d events, want 3", len(fp.got))
	}
	for _, m := range fp.got {
		if m.ID == 0 || m.MsgID == "" || m.Headers["Payrail-Line-Item-Id"] == "" || len(m.Payload) == 0 {
			t.Errorf("fast-path event without its row: %+v", m)
		}
	}
}

// A result PostgreSQL refuses (a NUL byte in the processor's message)
// fails alone: the rest of its set commits.
func TestCompleteAttemptsIsolatesAFailingResult(t *testing.T) {
	st := New(env.Pool, env.Ring, sqlEvents{})
	ctx := context.Background()
	good, goodLI := newPayment(t, st)
	bad, badLI := newPayment(t, st)
	errs := st.CompleteAttempts(ctx, []AttemptResult{
		{AttemptRef: good, From: resultFrom, Status: AttemptSucceeded, LineItemStatus: StatusValid, Actor: "w", Reason: "ok"},
		{AttemptRef: bad, From: resultFrom, Status: AttemptSucceeded, LineItemStatus: StatusValid, ResultMessage: "bad\x00byte",
			Actor: "w", Reason: "ok"},
	})
	if errs[0] != nil || errs[1] == nil {
		t.Fatalf("errs = %v, want the second result alone to fail", errs)
	}
	if li, err := st.LineItem(ctx, good.OrgID, goodLI.AccountID, goodLI.LineItemID); err != nil || li.Status != StatusValid {
		t.Errorf("good result: %s, %v", li.Status, err)
	}
	if li, err := st.LineItem(ctx, bad.OrgID, badLI.AccountID, badLI.LineItemID); err != nil || li.Status != StatusPending ||
		li.Attempt.Status != AttemptQueued {
		t.Errorf("refused result changed its payment: %s, %+v, %v", li.Status, li.Attempt, err)
	}
}

// A result committed in a set is away from the delivery that decided it:
// its event row must still carry that delivery's trace context, in the
// set's one statement as in CompleteAttempt; an untraced result's event
// carries none.
func TestCompleteAttemptsCarriesEachResultsTrace(t *testing.T) {
	st := New(env.Pool, env.Ring, sqlEvents{})
	ctx := context.Background()
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traced := map[string]string{"traceparent": parent}
	a, _ := newPayment(t, st)
	b, _ := newPayment(t, st)
	c, _ := newPayment(t, st)
	single, _ := newPayment(t, st)
	result := func(ref AttemptRef, trace map[string]string) AttemptResult {
		return AttemptResult{AttemptRef: ref, From: resultFrom, Status: AttemptSucceeded, LineItemStatus: StatusValid,
			Actor: "worker:AUTHORIZE_NET", Reason: "processor outcome succeeded", TraceHeaders: trace}
	}
	for i, err := range st.CompleteAttempts(ctx, []AttemptResult{result(a, traced), result(b, nil), result(c, traced)}) {
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
	}
	if _, err := st.CompleteAttempt(ctx, result(single, traced)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref    AttemptRef
		parent string
	}{{a, parent}, {b, ""}, {c, parent}, {single, parent}} {
		var got string
		if err := env.Pool.QueryRow(ctx, `SELECT COALESCE(headers->>'traceparent', '') FROM outbox
			WHERE subject = 'events.line_item.valid' AND convert_from(payload, 'UTF8')::jsonb @> jsonb_build_object('attempt_id', $1::text)`,
			tc.ref.AttemptID).Scan(&got); err != nil {
			t.Fatalf("event of %s: %v", tc.ref.AttemptID, err)
		}
		if got != tc.parent {
			t.Errorf("event of %s: traceparent %q, want %q", tc.ref.AttemptID, got, tc.parent)
		}
	}
}

// A set of results commits in one transaction whatever renders the
// events: they are rendered in Go (Events, as CompleteAttempt's are), from
// each line item as the set's statement left it, and carry each result's
// trace. Until they were, only an Events that PostgreSQL could also build
// (SQLEvents) got a set; any other applied each result on its own.
func TestCompleteAttemptsRendersEventsFromTheRowsItWrote(t *testing.T) {
	fp := &recordingFastPath{}
	st := New(env.Pool, env.Ring, plainEvents{}) // no SQL
	st.SetFastPath(fp)
	ctx := context.Background()
	valid, _ := newPayment(t, st)
	staged, _ := newPayment(t, st)
	fp.got = nil
	errs := st.CompleteAttempts(ctx, []AttemptResult{
		{AttemptRef: valid, From: resultFrom, Status: AttemptSucceeded, LineItemStatus: StatusValid, TransactionID: "t-1",
			Actor: "worker:AUTHORIZE_NET", Reason: "approved", TraceHeaders: map[string]string{"traceparent": "00-abc-def-01"}},
		{AttemptRef: staged, From: resultFrom, Status: AttemptPendingSettlement, Actor: "worker:CANOPY_NACHA", Reason: "staged"},
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
	}
	if n := distinctWriters(t, valid, staged); n != 1 {
		t.Errorf("the results were written by %d transactions, want 1", n)
	}
	if len(fp.got) != 2 {
		t.Fatalf("fast path got %d events, want 2", len(fp.got))
	}
	for k, c := range []struct {
		ref   AttemptRef
		from  Status
		trace string
	}{{valid, StatusPending, "00-abc-def-01"}, {staged, StatusPending, ""}} {
		li := lineItemOf(t, st, c.ref)
		want, err := plainEvents{}.Event(Change{LineItem: li, From: c.from})
		if err != nil {
			t.Fatal(err)
		}
		got := fp.got[k]
		var stored []byte
		var traceparent *string
		if err := env.Pool.QueryRow(ctx, `SELECT payload, headers->>'traceparent' FROM outbox WHERE id = $1 AND msg_id = $2`,
			got.ID, got.MsgID).Scan(&stored, &traceparent); err != nil {
			t.Fatalf("event %d's row: %v", k, err)
		}
		if string(got.Payload) != string(want.Payload) || string(stored) != string(want.Payload) {
			t.Errorf("event %d: handed over %s, stored %s; want %s (the line item as written: %s, attempt %s)",
				k, got.Payload, stored, want.Payload, li.Status, li.Attempt.Status)
		}
		if (traceparent == nil && c.trace != "") || (traceparent != nil && *traceparent != c.trace) ||
			got.Headers["traceparent"] != c.trace {
			t.Errorf("event %d: traceparent %v stored, %q handed over; want %q", k, traceparent, got.Headers["traceparent"], c.trace)
		}
	}
}

// lineItemOf reads the line item of an attempt as the store does.
func lineItemOf(t *testing.T, st *Store, ref AttemptRef) LineItem {
	t.Helper()
	var account, lineItem string
	if err := env.Pool.QueryRow(context.Background(), `SELECT account_id, line_item_id FROM payment_attempts
		WHERE org_id = $1 AND attempt_id = $2`, ref.OrgID, ref.AttemptID).Scan(&account, &lineItem); err != nil {
		t.Fatal(err)
	}
	li, err := st.LineItem(context.Background(), ref.OrgID, account, lineItem)
	if err != nil {
		t.Fatal(err)
	}
	return li
}

// A set of one result costs what a set of two does: the worker commits
// sets of one whenever results trickle in, and CompleteAttempt's
// transaction, its fallback, takes more round trips.
func TestCompleteAttemptsSetOfOneAsASet(t *testing.T) {
	pool, count := env.CountingPool(t)
	st := New(pool, env.Ring, sqlEvents{})
	st.SetFastPath(&recordingFastPath{})
	ctx := context.Background()
	a, _ := newPayment(t, st)
	b, _ := newPayment(t, st)
	c, _ := newPayment(t, st)
	result := func(ref AttemptRef) AttemptResult {
		return AttemptResult{AttemptRef: ref, From: resultFrom, Status: AttemptSucceeded, LineItemStatus: StatusValid,
			Actor: "worker:AUTHORIZE_NET", Reason: "processor outcome succeeded"}
	}
	statements := func(rs ...AttemptResult) int64 {
		t.Helper()
		before := count.Count()
		for i, err := range st.CompleteAttempts(ctx, rs) {
			if err != nil {
				t.Fatalf("result %d: %v", i, err)
			}
		}
		return count.Count() - before
	}
	two := statements(result(a), result(b))
	if one := statements(result(c)); one != two {
		t.Errorf("a set of one took %d statements, a set of two %d; want the same", one, two)
	}
	if got := lineItemStatusOf(t, c); got != StatusValid {
		t.Errorf("line item of the set of one is %s, want VALID", got)
	}
}

func lineItemStatusOf(t *testing.T, ref AttemptRef) Status {
	t.Helper()
	var s Status
	if err := env.Pool.QueryRow(context.Background(), `SELECT li.status FROM payment_attempts pa
		JOIN line_items li ON li.org_id = pa.org_id AND li.account_id = pa.account_id AND li.line_item_id = pa.line_item_id
		WHERE pa.attempt_id = $1`, ref.AttemptID).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// A result never waits for its job's outbox row, which a publisher may
// hold for long (a relay batch waiting for PubAcks from a hung NATS node
// holds its rows until its ack timeout): the job is removed from the
// attempt, which the result locks anyway, and no outbox row is touched.
// Before schema 013 the result removed the job's payload from its row and
// waited for the publisher. Both ways a result is applied: in a set, and
// alone (the set's fallback).
func TestResultDoesNotWaitForItsJobRow(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		complete func(ctx context.Context, st *Store, r AttemptResult) error
	}{
		{"set", func(ctx context.Context, st *Store, r AttemptResult) error {
			return st.CompleteAttempts(ctx, []AttemptResult{r})[0]
		}},
		{"alone", func(ctx context.Context, st *Store, r AttemptResult) error {
			_, err := st.CompleteAttempt(ctx, r)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := New(env.Pool, env.Ring, sqlEvents{})
			ref, _ := newPayment(t, st)
			if _, err := st.BeginDelivery(ctx, ref, 1, time.Minute); err != nil {
				t.Fatal(err)
			}
			publisher, err := env.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer publisher.Rollback(ctx)
			var held int
			if err := publisher.QueryRow(ctx, `SELECT count(*) FROM (SELECT id FROM outbox WHERE msg_id = $1 FOR UPDATE) o`,
				"job_"+ref.AttemptID).Scan(&held); err != nil || held != 1 {
				t.Fatalf("hold the job row: %d rows, %v", held, err)
			}
			// Far longer than a result takes: a result that waited for
			// the row would hit it, since the publisher holds the row
			// until after the result returns.
			resultCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if err := c.complete(resultCtx, st, AttemptResult{AttemptRef: ref, From: resultFrom, Status: AttemptSucceeded,
				LineItemStatus: StatusValid, Actor: "worker:AUTHORIZE_NET", Reason: "processor outcome succeeded"}); err != nil {
				t.Fatalf("result while a publisher holds the job row: %v", err)
			}
			if got, job := lineItemStatusOf(t, ref), attemptJob(t, ref); got != StatusValid || job != nil {
				t.Errorf("line item %s, attempt's job %q; want VALID and removed", got, job)
			}
		})
	}
}

// attemptJob is the sealed job the attempt holds (nil once removed).
func attemptJob(t *testing.T, ref AttemptRef) []byte {
	t.Helper()
	var job []byte
	if err := env.Pool.QueryRow(context.Background(), `SELECT job FROM payment_attempts WHERE org_id = $1 AND attempt_id = $2`,
		ref.OrgID, ref.AttemptID).Scan(&job); err != nil {
		t.Fatal(err)
	}
	return job
}
