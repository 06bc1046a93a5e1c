package worker

import (
	"context"
	"time"
)

// analyzeEvery is how often a worker looks for pipeline tables PostgreSQL
// has never analyzed, until there are none.
const analyzeEvery = time.Second

// analyzeGiveUp is how many looks in a row may find a table ANALYZE
// skipped before the worker stops trying: a lock autovacuum holds passes,
// a table this role does not own stays skipped.
const analyzeGiveUp = 10

// analyzeFresh has the pipeline's tables analyzed once each, as soon as
// they are big enough, when PostgreSQL has no statistics for them yet (a
// fresh or just restored database): without statistics the worker's set
// statements are planned to read the whole org's rows per job
// (store.AnalyzeFresh). It returns once every table has statistics, which
// on an established database is at its first look; autovacuum keeps them
// from then on. While a table is too small to analyze, the look costs one
// catalog query a second.
func (w *Worker) analyzeFresh(ctx context.Context) {
	t := time.NewTicker(analyzeEvery)
	defer t.Stop()
	skips := 0
	for {
		pending, skipped, err := w.store.AnalyzeFresh(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			w.log.Warn("could not analyze the pipeline's tables", "err", err)
		case len(skipped) > 0:
			if skips++; skips >= analyzeGiveUp {
				w.log.Warn("ANALYZE keeps skipping pipeline tables without statistics (is the worker's role their owner?); "+
					"leaving them to autovacuum", "tables", skipped)
				return
			}
		case !pending:
			return
		default:
			skips = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
