package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// Each caller gets its own answer, however the requests were grouped,
// and requests queued while a set is written go together in a later set.
func TestBatcherAnswersEachCallerInSets(t *testing.T) {
	const callers = 200
	release := make(chan struct{})
	var mu sync.Mutex
	var sets []int
	b := newBatcher(1, func(_ context.Context, reqs []int) []answer[string] {
		<-release // the first set is held until every caller has queued
		mu.Lock()
		sets = append(sets, len(reqs))
		mu.Unlock()
		out := make([]answer[string], len(reqs))
		for i, r := range reqs {
			out[i].res = fmt.Sprint("answer ", r)
		}
		return out
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.run(ctx)
	var wg sync.WaitGroup
	var queued sync.WaitGroup
	queued.Add(callers)
	for i := range callers {
		wg.Go(func() {
			queued.Done()
			got, err := b.do(ctx, i)
			if want := fmt.Sprint("answer ", i); err != nil || got != want {
				t.Errorf("caller %d: %q, %v; want %q", i, got, err, want)
			}
		})
	}
	queued.Wait()
	close(release)
	wg.Wait()
	if len(sets) >= callers/2 {
		t.Errorf("%d callers were answered in %d sets %v: the queued requests were not written together", callers, len(sets), sets)
	}
}

// The worker writes one set of each kind at a time, whatever its pool
// (here the default 32 connections, never opened): a second flusher
// would split the queued jobs into smaller sets.
func TestWorkerWritesOneSetOfEachKindAtATime(t *testing.T) {
	reg, err := processors.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 32
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w := New(nil, queue.Default(), store.New(pool, env.Ring, nil), reg, env.Ring, Options{})
	if w.claims.flushers != 1 || w.completions.flushers != 1 {
		t.Errorf("flushers: deliveries %d, results %d; want 1 each", w.claims.flushers, w.completions.flushers)
	}
}
