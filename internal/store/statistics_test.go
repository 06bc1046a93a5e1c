package store

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/payrail/payrail/internal/testenv"
)

// A table of a thousand rows or more with no statistics is analyzed; one
// analyzed since is not, until it has changed by more rows than it had; a
// small table never is. Autovacuum is off on the test tables, so the test
// does not depend on the server's setting.
func TestAnalyzeStale(t *testing.T) {
	ctx := context.Background()
	big, small := testenv.UniqueID("stats_big_"), testenv.UniqueID("stats_small_")
	for _, tbl := range []string{big, small} {
		if _, err := env.Pool.Exec(ctx, `CREATE TABLE `+pgx.Identifier{tbl}.Sanitize()+
			` (id bigint PRIMARY KEY) WITH (autovacuum_enabled = false)`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = env.Pool.Exec(context.Background(), `DROP TABLE `+pgx.Identifier{tbl}.Sanitize()) })
	}
	insert := func(tbl string, from, to int) {
		t.Helper()
		if _, err := env.Pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{tbl}.Sanitize()+
			` SELECT g FROM generate_series($1::bigint, $2::bigint) g`, from, to); err != nil {
			t.Fatal(err)
		}
	}
	st := New(env.Pool, env.Ring, nil)
	analyze := func() []string {
		t.Helper()
		got, err := st.AnalyzeStale(ctx, []string{big, small})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	analyzedAt := func(tbl string) bool {
		var at bool
		if err := env.Pool.QueryRow(ctx, `SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1`,
			tbl).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	insert(big, 1, 5000)
	insert(small, 1, 100)
	waitStats(t, big, 5000)
	if got := analyze(); !slices.Equal(got, []string{big}) || !analyzedAt(big) || analyzedAt(small) {
		t.Fatalf("analyzed %v, want only the never-analyzed big table", got)
	}
	if got := analyze(); len(got) != 0 {
		t.Fatalf("analyzed %v right after an analyze", got)
	}
	insert(big, 5001, 8000) // 3,000 changes: fewer than its 5,000 rows
	waitStats(t, big, 8000)
	if got := analyze(); len(got) != 0 {
		t.Fatalf("analyzed %v after a change smaller than the table", got)
	}
	insert(big, 8001, 11000) // 6,000 changes since: more than its 5,000 rows
	waitStats(t, big, 11000)
	if got := analyze(); !slices.Equal(got, []string{big}) {
		t.Fatalf("analyzed %v after the table more than doubled, want it", got)
	}
}

// waitStats waits until pg_stat_user_tables counts rows live rows in tbl
// (the statistics are flushed asynchronously).
func waitStats(t *testing.T, tbl string, rows int64) {
	t.Helper()
	testenv.WaitFor(t, "the table statistics of "+tbl, func() bool {
		var n int64
		if err := env.Pool.QueryRow(context.Background(), `SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = $1`,
			tbl).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n < rows {
			_, _ = env.Pool.Exec(context.Background(), `SELECT pg_stat_force_next_flush()`)
		}
		return n >= rows
	})
}
