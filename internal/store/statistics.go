package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Planner statistics. The pipeline's statements find their rows by
// primary key, and PostgreSQL picks the index from its statistics. A table
// never analyzed has none, and the planner's guesses then go wrong as the
// table grows: for line_items it prefers the smaller (org_id, account_id,
// seq) index over the primary key and reads every line item of the account
// for each row a statement touches. Measured with payrail bench --dev on a
// server with autovacuum off (this project's CI server): 20,000 card
// payments end to end at 191/s, against 902/s once the tables were
// analyzed. Autovacuum analyzes tables as they change; where it is off or
// behind, AnalyzeStale does what it would.

// HotTables are the tables the pipeline's statements read per payment.
func HotTables() []string {
	return []string{"accounts", "line_items", "line_item_transitions", "payment_attempts", "outbox", "nacha_entries"}
}

// staleMinRows is the size below which a table's statistics do not matter
// (any plan reads it quickly).
const staleMinRows = 1000

// statisticsLock is the advisory lock key of AnalyzeStale: one process at
// a time analyzes, the others skip their pass.
const statisticsLock = `hashtext('payrail_statistics')`

// AnalyzeStale analyzes those of tables whose planner statistics are
// missing or stale — a table of at least 1,000 rows never analyzed, or
// changed by more rows than it had when last analyzed (autovacuum would
// have analyzed it after a tenth) — and returns their names. One process
// at a time does it (a transaction-scoped advisory lock); the others
// return nothing at once.
func (s *Store) AnalyzeStale(ctx context.Context, tables []string) ([]string, error) {
	var analyzed []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		analyzed = nil
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(`+statisticsLock+`)`).Scan(&locked); err != nil || !locked {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT t.relname
			  FROM pg_stat_user_tables t JOIN pg_class c ON c.oid = t.relid
			 WHERE t.schemaname = current_schema() AND t.relname = ANY ($1)
			   AND t.n_live_tup + t.n_mod_since_analyze >= $2
			   AND (COALESCE(t.last_analyze, t.last_autoanalyze) IS NULL
			        OR t.n_mod_since_analyze > GREATEST(c.reltuples, $2))
			 ORDER BY t.relname`, tables, staleMinRows)
		if err != nil {
			return err
		}
		stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, t := range stale {
			if _, err := tx.Exec(ctx, `ANALYZE `+pgx.Identifier{t}.Sanitize()); err != nil {
				return fmt.Errorf("analyze %s: %w", t, err)
			}
			analyzed = append(analyzed, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: analyze tables with stale statistics: %w", err)
	}
	return analyzed, nil
}

// KeepStatistics runs AnalyzeStale on HotTables every interval until ctx
// ends, logging what it analyzed (at INFO) and what failed (at WARN, and
// goes on).
func (s *Store) KeepStatistics(ctx context.Context, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		analyzed, err := s.AnalyzeStale(ctx, HotTables())
		switch {
		case err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled):
			log.Warn("could not analyze tables with stale planner statistics", "err", err)
		case len(analyzed) > 0:
			log.Info("analyzed tables whose planner statistics were missing or stale (is autovacuum off?)",
				"tables", analyzed)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
