package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Marking rows published deletes them, jobs' rows as well as events': a
// job is kept by its attempt, not by its row. A row another transaction
// holds is skipped, not waited for, and stays for a relay.
func TestMarkPublishedSettlesRows(t *testing.T) {
	ctx := context.Background()
	st := New(env.Pool, env.Ring, plainEvents{})
	ref, _ := newPayment(t, st)
	prefix := NewID("mp_")
	var jobRow int64
	if err := env.Pool.QueryRow(ctx, `SELECT id FROM outbox WHERE msg_id = $1`, "job_"+ref.AttemptID).Scan(&jobRow); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int64{"job": jobRow}
	for _, r := range []struct {
		name, subject string
		payload       []byte
	}{
		{"event", "events.line_item.valid", []byte(`{}`)},
		{"earlier version's job", "jobs.AUTHORIZE_NET", []byte("sealed")},
		{"held event", "events.line_item.valid", []byte(`{}`)},
	} {
		var id int64
		if err := env.Pool.QueryRow(ctx, `INSERT INTO outbox (msg_id, subject, payload, fast_path) VALUES ($1, $2, $3, true)
			RETURNING id`, prefix+r.name, r.subject, r.payload).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[r.name] = id
	}
	// Another transaction (a relay publishing it) holds one row while the
	// rows are marked.
	tx, err := env.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT id FROM outbox WHERE id = $1 FOR UPDATE`, ids["held event"]); err != nil {
		t.Fatal(err)
	}
	markCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	skipped, err := st.MarkPublished(markCtx, []int64{ids["event"], ids["job"], ids["earlier version's job"], ids["held event"]})
	if err != nil {
		t.Fatalf("mark while a row is held: %v", err)
	}
	if len(skipped) != 1 || skipped[0] != ids["held event"] {
		t.Errorf("skipped %v, want only the held row %d", skipped, ids["held event"])
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for name, id := range ids {
		var at *time.Time
		err := env.Pool.QueryRow(ctx, `SELECT published_at FROM outbox WHERE id = $1`, id).Scan(&at)
		switch {
		case name == "held event" && (err != nil || at != nil):
			t.Errorf("%s row: published_at %v, %v; want it kept unpublished", name, at, err)
		case name != "held event" && !errors.Is(err, pgx.ErrNoRows):
			t.Errorf("%s row kept (published_at %v, %v), want it deleted", name, at, err)
		}
	}
	if job := attemptJob(t, ref); string(job) != "sealed" {
		t.Errorf("the attempt's job after its row was settled: %q, want it kept", job)
	}
}

// A payment's job is stored once, with its attempt: its outbox row has no
// payload. The relay publishes the job the attempt holds, and deletes
// without publishing the row of a job whose attempt's result committed.
// A row of an earlier version, which carries its payload, is published as
// it is.
func TestRelayBatchPublishesJobsFromTheirAttempts(t *testing.T) {
	ctx := context.Background()
	st := New(env.Pool, env.Ring, plainEvents{})
	if _, err := env.Pool.Exec(ctx, `DELETE FROM outbox WHERE published_at IS NULL`); err != nil {
		t.Fatal(err)
	}
	open, _ := newPayment(t, st)
	finished, _ := newPayment(t, st)
	if _, err := st.CompleteAttempt(ctx, AttemptResult{AttemptRef: finished, From: resultFrom, Status: AttemptSucceeded,
		LineItemStatus: StatusValid, Actor: "test", Reason: "approved"}); err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE msg_id = ANY($1) AND payload IS NOT NULL`,
		[]string{"job_" + open.AttemptID, "job_" + finished.AttemptID}).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("job rows with a payload: %d, %v; want none", stored, err)
	}
	legacy := NewID("job_legacy_")
	if _, err := env.Pool.Exec(ctx, `INSERT INTO outbox (msg_id, subject, payload) VALUES ($1, 'jobs.AUTHORIZE_NET', 'legacy')`,
		legacy); err != nil {
		t.Fatal(err)
	}
	published := map[string]string{}
	_, err := st.RelayBatch(ctx, 100, 0, func(_ context.Context, msgs []OutboxMessage) ([]int64, error) {
		var acked []int64
		for _, m := range msgs {
			published[m.MsgID] = string(m.Payload)
			acked = append(acked, m.ID)
		}
		return acked, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := published["job_"+open.AttemptID]; got != "sealed" {
		t.Errorf("open attempt's job published as %q, want the job its attempt holds", got)
	}
	if got, ok := published["job_"+finished.AttemptID]; ok {
		t.Errorf("finished attempt's job published (%q), want it dropped", got)
	}
	if got := published[legacy]; got != "legacy" {
		t.Errorf("earlier version's job row published as %q, want its own payload", got)
	}
	var left int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d rows left after the batch (%v), want none", left, err)
	}
}

// A relay batch settles what its claim took only once every row is
// acknowledged; when some are not, only the acknowledged ones are settled
// and the rest stay for the next batch.
func TestRelayBatchSettlesOnlyAcknowledgedRows(t *testing.T) {
	ctx := context.Background()
	st := New(env.Pool, env.Ring, plainEvents{})
	// Older rows of other tests would be claimed first: settle them.
	if _, err := env.Pool.Exec(ctx, `DELETE FROM outbox WHERE published_at IS NULL`); err != nil {
		t.Fatal(err)
	}
	prefix := NewID("rb_")
	var ids []int64
	for i, subject := range []string{"events.line_item.valid", "jobs.CANOPY_NACHA", "events.line_item.valid"} {
		var id int64
		if err := env.Pool.QueryRow(ctx, `INSERT INTO outbox (msg_id, subject, payload) VALUES ($1, $2, 'x') RETURNING id`,
			prefix+string(rune('a'+i)), subject).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	failing := errors.New("no PubAck")
	n, err := st.RelayBatch(ctx, 10, time.Second, func(_ context.Context, msgs []OutboxMessage) ([]int64, error) {
		if len(msgs) != 3 {
			t.Errorf("publish got %d rows, want 3", len(msgs))
		}
		return []int64{ids[0], ids[1]}, failing
	})
	if n != 3 || !errors.Is(err, failing) {
		t.Fatalf("claimed %d, err %v", n, err)
	}
	rows, _ := env.Pool.Query(ctx, `SELECT id FROM outbox WHERE id = ANY($1) ORDER BY id`, ids)
	left, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != ids[2] {
		t.Errorf("rows left %v, want only the unacknowledged %d", left, ids[2])
	}
	// The next batch publishes the rest and settles it.
	if n, err := st.RelayBatch(ctx, 10, time.Second, func(_ context.Context, msgs []OutboxMessage) ([]int64, error) {
		return []int64{msgs[0].ID}, nil
	}); n != 1 || err != nil {
		t.Fatalf("second batch: claimed %d, err %v", n, err)
	}
}

// Rows an earlier version marked published (it kept a job's row until the
// attempt's result) are purged after the retention; unpublished rows are
// never purged.
func TestPurgePublishedDeletesMarkedRows(t *testing.T) {
	ctx := context.Background()
	st := New(env.Pool, env.Ring, plainEvents{})
	prefix := NewID("pp_")
	for _, r := range []struct {
		name string
		age  *string
	}{{"old", new("48 hours")}, {"recent", new("1 hour")}, {"unpublished", nil}} {
		if _, err := env.Pool.Exec(ctx, `INSERT INTO outbox (msg_id, subject, payload, published_at)
			VALUES ($1, 'jobs.AUTHORIZE_NET', 'x', now() - $2::interval)`, prefix+r.name, r.age); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PurgePublished(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	rows, err := env.Pool.Query(ctx, `SELECT msg_id FROM outbox WHERE msg_id LIKE $1 || '%' ORDER BY msg_id`, prefix)
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0] != prefix+"recent" || left[1] != prefix+"unpublished" {
		t.Errorf("left %v, want the recent and the unpublished rows", left)
	}
}

// An outbox row is written once and deleted once it is published, so it
// pays for one index entry per key it needs (schema 014): the primary
// key, which the relay's claim reads in order, and the message id. The
// index on published_at holds no row written now.
func TestOutboxRowsIndexedOncePerKey(t *testing.T) {
	ctx := context.Background()
	rows, err := env.Pool.Query(ctx, `SELECT indexname FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename = 'outbox' ORDER BY indexname`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"outbox_msg_id_key", "outbox_pkey", "outbox_published_idx"}
	if !slices.Equal(got, want) {
		t.Errorf("outbox indexes %v, want %v", got, want)
	}
	// The claim still reads the rows in id order from an index, not by
	// sorting the table (sequential scans off: the test's table is small).
	tx, err := env.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	prows, err := tx.Query(ctx, `EXPLAIN (COSTS OFF) `+claimAndSettle, 10, "2 seconds")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(prows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "Index Scan using outbox_pkey on outbox\n") || strings.Contains(plan, "Sort Key: outbox.id") {
		t.Errorf("the claim's plan does not read outbox_pkey in order:\n%s", plan)
	}
}
