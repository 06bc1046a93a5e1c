package store

import (
	"context"
	"strings"
	"testing"
)

// The reconciler's and the stale gauge's look for unfinished attempts is
// an index scan, not a read of every attempt ever made: the plan for the
// queued-or-processing filter uses the partial index of unfinished
// attempts (with sequential scans priced out, as on a large table).
func TestUnfinishedAttemptsAreIndexed(t *testing.T) {
	ctx := context.Background()
	conn, err := env.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `RESET enable_seqscan`) //nolint:errcheck // the connection goes back to the pool either way
	rows, err := conn.Query(ctx, `EXPLAIN SELECT count(*) FROM payment_attempts
		WHERE status IN ('queued', 'processing') AND updated_at < now() - interval '1 minute'`)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "payment_attempts_unfinished_idx") {
		t.Fatalf("unfinished attempts are not found through their index:\n%s", p)
	}
}
