package worker

import (
	"context"
	"time"
)

// analyzeEvery is how often a worker looks for pipeline tables PostgreSQL
// has never analyzed, until there are none.
const analyzeEvery = time.Second

// analyzeFresh has the pipeline's tables analyzed once each, as soon as
// they are big enough, when PostgreSQL has no statistics for them yet (a
// fresh or just restored database): without statistics the worker's set
// statements are planned to read the whole org's rows per job
// (store.AnalyzeFresh). It returns once every table has statistics, which
// on an established database is at its first look; autovacuum keeps them
// from then on.
func (w *Worker) analyzeFresh(ctx context.Context) {
	t := time.NewTicker(analyzeEvery)
	defer t.Stop()
	for {
		pending, err := w.store.AnalyzeFresh(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			w.log.Warn("could not analyze the pipeline's tables", "err", err)
		case !pending:
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
