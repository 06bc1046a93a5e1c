package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL plans the worker's set statements (BeginDeliveries,
// CompleteAttempts and its events) from the tables' statistics. A table
// that was never analyzed — a fresh database, or one just restored with
// pg_restore, which carries no statistics — is planned with defaults, and
// for these statements the defaults pick the wrong index: payment_attempts
// is looked up by org_id alone (the first column of its
// (org_id, account_id, line_item_id) key) and line_items by account, each
// lookup then filtering every row of the org or account. Each result set
// costs time linear in the table's size, so the pipeline slows down as it
// fills: measured with `payrail bench --dev`, 23 events took 67 ms and
// 45,176 rows read after 4,500 payments, and the end-to-end p99 grew past
// 5 s within 8,000 payments. Autovacuum would analyze the tables, but it
// looks at a database once a minute at best (autovacuum_naptime), and the
// pipeline can write tens of thousands of rows before then.
//
// AnalyzeFresh closes that window: it analyzes the pipeline's tables that
// PostgreSQL has never analyzed (nor vacuumed) once they hold at least
// freshAnalyzePages pages, and from then on autovacuum keeps their
// statistics, as for any table.

// pipelineTables are the tables the worker's and the intake's set
// statements look rows up in by key.
func pipelineTables() []string {
	return []string{"payment_attempts", "line_items", "line_item_transitions", "outbox", "accounts"}
}

// freshAnalyzePages is the size (8 kB pages) from which a never-analyzed
// table is analyzed: a few hundred payments, before a lookup that filters
// the whole table costs more than a millisecond.
const freshAnalyzePages = 16

// AnalyzeFresh analyzes every pipeline table that has never been analyzed
// and holds at least freshAnalyzePages pages. pending reports a pipeline
// table still without statistics because it is too small yet; skipped
// names the tables ANALYZE left without statistics (another session held
// a conflicting lock, or this role does not own the table), so the
// caller knows whether to look again.
func (s *Store) AnalyzeFresh(ctx context.Context) (pending bool, skipped []string, err error) {
	_, skipped, pending, err = s.analyzeFresh(ctx, pipelineTables(), freshAnalyzePages)
	return pending, skipped, err
}

// analyzeFresh is AnalyzeFresh over tables, analyzing those of at least
// minPages pages; it also returns the ones it analyzed.
func (s *Store) analyzeFresh(ctx context.Context, tables []string, minPages int64) (analyzed, skipped []string, pending bool, err error) {
	// reltuples is -1 until the table's first ANALYZE or VACUUM
	// (PostgreSQL 14 and later); pg_relation_size is its size now (relpages
	// is not kept up to date either).
	rows, err := s.pool.Query(ctx, `
		SELECT c.relname, pg_relation_size(c.oid) >= $2::bigint * current_setting('block_size')::bigint
		  FROM unnest($1::text[]) AS t(name)
		  JOIN pg_class c ON c.oid = to_regclass(t.name)
		 WHERE c.reltuples < 0`, tables, minPages)
	if err != nil {
		return nil, nil, false, fmt.Errorf("store: find tables without statistics: %w", err)
	}
	var due []string
	for rows.Next() {
		var name string
		var big bool
		if err := rows.Scan(&name, &big); err != nil {
			rows.Close()
			return nil, nil, false, fmt.Errorf("store: find tables without statistics: %w", err)
		}
		if big {
			due = append(due, name)
		} else {
			pending = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, false, fmt.Errorf("store: find tables without statistics: %w", err)
	}
	for _, name := range due {
		// SKIP_LOCKED: a table autovacuum (or another worker) is busy with
		// is left to it, never waited for. ANALYZE also skips, with a
		// warning and no error, a table this role does not own.
		if _, err := s.pool.Exec(ctx, `ANALYZE (SKIP_LOCKED) `+pgx.Identifier{name}.Sanitize()); err != nil {
			return analyzed, skipped, pending, fmt.Errorf("store: analyze %s: %w", name, err)
		}
		var done bool
		if err := s.pool.QueryRow(ctx, `SELECT reltuples >= 0 FROM pg_class WHERE oid = to_regclass($1)`, name).Scan(&done); err != nil {
			return analyzed, skipped, pending, fmt.Errorf("store: analyze %s: %w", name, err)
		}
		if done {
			analyzed = append(analyzed, name)
		} else {
			skipped = append(skipped, name)
		}
	}
	return analyzed, skipped, pending, nil
}
