package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Each caller gets its own answer, however the requests were grouped,
// and requests queued while a set is written go together in a later set.
func TestBatcherAnswersEachCallerInSets(t *testing.T) {
	const callers = 200
	release := make(chan struct{})
	var mu sync.Mutex
	var sets []int
	b := newBatcher(1, time.Minute, func(_ context.Context, reqs []int) []answer[string] {
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

// With several flushers, requests that queue while a set is written wait
// for it and go together in the next set, rather than each idle flusher
// writing one of them beside it: one set of a kind at a time.
func TestBatcherWritesOneSetAtATime(t *testing.T) {
	const callers = 50
	first := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	var sets []int
	writing, most := 0, 0
	b := newBatcher(4, time.Minute, func(_ context.Context, reqs []int) []answer[int] {
		mu.Lock()
		writing++
		most = max(most, writing)
		sets = append(sets, len(reqs))
		n := len(sets)
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release // the first set is written until every other caller has queued
		}
		mu.Lock()
		writing--
		mu.Unlock()
		return echo(reqs)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.run(ctx)
	var wg sync.WaitGroup
	call := func(i int) {
		if got, err := b.do(ctx, i); err != nil || got != i {
			t.Errorf("caller %d: %d, %v", i, got, err)
		}
	}
	wg.Go(func() { call(0) })
	<-first
	for i := 1; i < callers; i++ {
		wg.Go(func() { call(i) })
	}
	// Time for the callers to queue; one that is late only goes in a
	// later set, which the checks allow.
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	if most != 1 || len(sets) >= callers/2 {
		t.Errorf("%d callers in sets %v, at most %d written at once; want one set at a time, the queued callers together",
			callers, sets, most)
	}
}

// A set that hangs holds back the next only for the batcher's patience:
// then the next is written beside it.
func TestBatcherWritesBesideAHungSet(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	b := newBatcher(2, 10*time.Millisecond, func(_ context.Context, reqs []int) []answer[int] {
		if reqs[0] == 0 {
			<-hang
		}
		return echo(reqs)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.run(ctx)
	go func() { _, _ = b.do(ctx, 0) }()
	for !b.busy() {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() {
		got, err := b.do(ctx, 1)
		if err == nil && got != 1 {
			err = fmt.Errorf("answer %d, want 1", got)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a request queued behind a hung set was not written beside it")
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

// echo answers each request with itself.
func echo(reqs []int) []answer[int] {
	out := make([]answer[int], len(reqs))
	for i, r := range reqs {
		out[i].res = r
	}
	return out
}
