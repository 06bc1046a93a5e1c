package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Marking rows published deletes what nothing reads again (events, jobs
// whose attempt finished) and marks jobs that keep their payload; a row
// another transaction holds is skipped, not waited for, and stays for a
// relay.
func TestMarkPublishedSettlesRows(t *testing.T) {
	ctx := context.Background()
	st := New(env.Pool, env.Ring, plainEvents{})
	prefix := NewID("mp_")
	ids := map[string]int64{}
	for _, r := range []struct {
		name, subject string
		payload       []byte
	}{
		{"event", "events.line_item.valid", []byte(`{}`)},
		{"job", "jobs.AUTHORIZE_NET", []byte("sealed")},
		{"finished job", "jobs.AUTHORIZE_NET", nil},
		{"held event", "events.line_item.valid", []byte(`{}`)},
	} {
		var id int64
		if err := env.Pool.QueryRow(ctx, `INSERT INTO outbox (msg_id, subject, payload, fast_path) VALUES ($1, $2, $3, true)
			RETURNING id`, prefix+r.name, r.subject, r.payload).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[r.name] = id
	}
	// Another transaction (a worker completing the job's attempt, say)
	// holds one row while the rows are marked.
	tx, err := env.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `UPDATE outbox SET headers = '{"x":"y"}' WHERE id = $1`, ids["held event"]); err != nil {
		t.Fatal(err)
	}
	markCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	skipped, err := st.MarkPublished(markCtx, []int64{ids["event"], ids["job"], ids["finished job"], ids["held event"]})
	if err != nil {
		t.Fatalf("mark while a row is held: %v", err)
	}
	if len(skipped) != 1 || skipped[0] != ids["held event"] {
		t.Errorf("skipped %v, want only the held row %d", skipped, ids["held event"])
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		present   bool
		published bool
	}{
		{"event", false, false},
		{"job", true, true},
		{"finished job", false, false},
		{"held event", true, false},
	} {
		var at *time.Time
		err := env.Pool.QueryRow(ctx, `SELECT published_at FROM outbox WHERE id = $1`, ids[c.name]).Scan(&at)
		switch {
		case err == pgx.ErrNoRows && c.present:
			t.Errorf("%s row deleted, want it kept", c.name)
		case err == nil && !c.present:
			t.Errorf("%s row kept, want it deleted", c.name)
		case err == nil && (at != nil) != c.published:
			t.Errorf("%s row published_at %v, want published %v", c.name, at, c.published)
		case err != nil && err != pgx.ErrNoRows:
			t.Fatal(err)
		}
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
	rows, _ := env.Pool.Query(ctx, `SELECT id FROM outbox WHERE id = ANY($1) AND published_at IS NULL ORDER BY id`, ids)
	left, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != ids[2] {
		t.Errorf("unpublished rows %v, want only %d", left, ids[2])
	}
	var job int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE id = $1 AND published_at IS NOT NULL`, ids[1]).Scan(&job); err != nil || job != 1 {
		t.Errorf("the acknowledged job row is not kept and marked (%d, %v)", job, err)
	}
	// The next batch publishes the rest and settles it.
	if n, err := st.RelayBatch(ctx, 10, time.Second, func(_ context.Context, msgs []OutboxMessage) ([]int64, error) {
		return []int64{msgs[0].ID}, nil
	}); n != 1 || err != nil {
		t.Fatalf("second batch: claimed %d, err %v", n, err)
	}
}
