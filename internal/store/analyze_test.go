package store

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/payrail/payrail/internal/testenv"
)

// probeTable creates a table that PostgreSQL has never analyzed, holding
// rows rows of about 200 bytes, and drops it when the test ends.
func probeTable(t *testing.T, prefix string, rows int) string {
	t.Helper()
	ctx := context.Background()
	name := strings.ToLower(testenv.UniqueID(prefix))
	if _, err := env.Pool.Exec(ctx, `CREATE TABLE `+pgx.Identifier{name}.Sanitize()+` (id int PRIMARY KEY, pad text)
		WITH (autovacuum_enabled = false)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.Pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+pgx.Identifier{name}.Sanitize())
	})
	if _, err := env.Pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{name}.Sanitize()+`
		SELECT i, repeat('x', 200) FROM generate_series(1, $1) i`, rows); err != nil {
		t.Fatal(err)
	}
	return name
}

func reltuples(t *testing.T, table string) float64 {
	t.Helper()
	var n float64
	if err := env.Pool.QueryRow(context.Background(), `SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)`,
		table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A table PostgreSQL never analyzed is analyzed once it reaches the
// threshold, a smaller one is left (and reported pending), and one that
// has statistics is not analyzed again.
func TestAnalyzeFreshAnalyzesTablesWithoutStatistics(t *testing.T) {
	st := New(env.Pool, env.Ring, plainEvents{})
	ctx := context.Background()
	big := probeTable(t, "analyze_big_", 2000) // about 60 pages
	small := probeTable(t, "analyze_small_", 10)
	if reltuples(t, big) >= 0 || reltuples(t, small) >= 0 {
		t.Fatal("a new table already has statistics")
	}

	analyzed, skipped, pending, err := st.analyzeFresh(ctx, []string{big, small, "no_such_table"}, 16)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(analyzed, []string{big}) || len(skipped) != 0 || !pending {
		t.Fatalf("analyzed %v, skipped %v, pending %v; want [%s], none, pending (the small table)", analyzed, skipped,
			pending, big)
	}
	if n := reltuples(t, big); n != 2000 {
		t.Fatalf("big table's reltuples = %v after analyze, want 2000", n)
	}
	if n := reltuples(t, small); n >= 0 {
		t.Fatalf("small table's reltuples = %v, want it left unanalyzed", n)
	}

	analyzed, skipped, pending, err = st.analyzeFresh(ctx, []string{big}, 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(analyzed) != 0 || len(skipped) != 0 || pending {
		t.Fatalf("second look analyzed %v, skipped %v, pending %v; want nothing to do", analyzed, skipped, pending)
	}
}

// A table ANALYZE cannot take now (another session holds a conflicting
// lock) is reported skipped, not analyzed, and is left without statistics.
func TestAnalyzeFreshReportsSkippedTables(t *testing.T) {
	st := New(env.Pool, env.Ring, plainEvents{})
	ctx := context.Background()
	big := probeTable(t, "analyze_locked_", 2000)
	tx, err := env.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE `+pgx.Identifier{big}.Sanitize()+` IN SHARE UPDATE EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	analyzed, skipped, _, err := st.analyzeFresh(ctx, []string{big}, 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(analyzed) != 0 || !slices.Equal(skipped, []string{big}) {
		t.Fatalf("analyzed %v, skipped %v; want [%s] skipped", analyzed, skipped, big)
	}
	if n := reltuples(t, big); n >= 0 {
		t.Fatalf("locked table's reltuples = %v, want it left unanalyzed", n)
	}
}

// Every name AnalyzeFresh looks after is a table of the schema: a
// misspelt one would be skipped without a word (to_regclass is NULL).
func TestAnalyzeFreshNamesPipelineTables(t *testing.T) {
	for _, name := range pipelineTables() {
		var ok bool
		if err := env.Pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("pipeline table %q does not exist", name)
		}
	}
}
