package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
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

func TestFlushersShareThePool(t *testing.T) {
	for _, c := range []struct {
		pool int32
		want int
	}{{1, 1}, {4, 1}, {8, 2}, {12, 3}, {32, 4}, {100, 4}} {
		if got := flushers(c.pool); got != c.want {
			t.Errorf("flushers(%d) = %d, want %d", c.pool, got, c.want)
		}
	}
}
