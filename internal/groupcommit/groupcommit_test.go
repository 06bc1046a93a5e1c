package groupcommit

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/testenv"
)

// gate is a commit function whose first call waits for release, so a
// test can queue requests while a commit runs. Every call records its
// items; each outcome is the item times ten.
type gate struct {
	mu      sync.Mutex
	batches [][]int
	started chan struct{}
	release chan struct{}
	first   atomic.Bool
}

func newGate() *gate {
	return &gate{started: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) commit(_ context.Context, items []int) []int {
	g.mu.Lock()
	g.batches = append(g.batches, slices.Clone(items))
	g.mu.Unlock()
	if g.first.CompareAndSwap(false, true) {
		close(g.started)
		<-g.release
	}
	out := make([]int, len(items))
	for i, it := range items {
		out[i] = it * 10
	}
	return out
}

func (g *gate) sizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int
	for _, b := range g.batches {
		out = append(out, len(b))
	}
	return out
}

// Requests that arrive while a commit runs go together in the next one,
// at most MaxBatch at a time, and each gets its own outcome.
func TestRequestsQueuedDuringACommitGoTogether(t *testing.T) {
	for _, c := range []struct {
		name      string
		queued    int
		maxBatch  int
		wantSizes []int
	}{
		{"all in one batch", 10, 256, []int{1, 10}},
		{"bounded batches", 10, 4, []int{1, 4, 4, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGate()
			b := New(g.commit, Options{MaxBatch: c.maxBatch})
			ctx := context.Background()
			var wg sync.WaitGroup
			outs := make([]int, c.queued+1)
			errs := make([]error, c.queued+1)
			wg.Go(func() { outs[0], errs[0] = b.Do(ctx, 0) })
			<-g.started
			for i := 1; i <= c.queued; i++ {
				wg.Go(func() { outs[i], errs[i] = b.Do(ctx, i) })
			}
			testenv.WaitFor(t, "the requests to queue", func() bool { return b.Queued() == c.queued })
			close(g.release)
			wg.Wait()
			for i := range outs {
				if errs[i] != nil || outs[i] != i*10 {
					t.Errorf("request %d: outcome %d, error %v; want %d", i, outs[i], errs[i], i*10)
				}
			}
			if got := g.sizes(); !slices.Equal(got, c.wantSizes) {
				t.Errorf("batch sizes %v, want %v", got, c.wantSizes)
			}
			testenv.WaitFor(t, "the committer to end", func() bool {
				b.mu.Lock()
				defer b.mu.Unlock()
				return b.running == 0
			})
		})
	}
}

// A lone request is committed on its own: a committer takes what is
// queued and does not wait for company, so requests sent one after another
// are batches of one. How long a lone request waits is a latency, measured
// by BenchmarkLoneRequest, not asserted here.
func TestLoneRequestIsItsOwnBatch(t *testing.T) {
	var sizes []int
	b := New(func(_ context.Context, items []int) []int { return items },
		Options{Observe: func(n int) { sizes = append(sizes, n) }})
	for i := range 21 {
		if out, err := b.Do(context.Background(), i); err != nil || out != i {
			t.Fatalf("request %d: %d, %v", i, out, err)
		}
	}
	if len(sizes) != 21 || slices.Max(sizes) != 1 {
		t.Errorf("batch sizes %v, want 21 batches of one", sizes)
	}
}

// BenchmarkLoneRequest is the cost of one request with nobody else queued:
// the queueing, the committer's start and the answer, around an empty
// commit.
func BenchmarkLoneRequest(b *testing.B) {
	bt := New(func(_ context.Context, items []int) []int { return items }, Options{})
	for i := 0; b.Loop(); i++ {
		if _, err := bt.Do(context.Background(), i); err != nil {
			b.Fatal(err)
		}
	}
}

// A request whose caller leaves while it is queued is never committed; one
// whose caller leaves during its batch's commit is committed with the
// batch, and the caller is told it left, not that it failed or succeeded.
func TestCallerLeaving(t *testing.T) {
	g := newGate()
	b := New(g.commit, Options{})
	var wg sync.WaitGroup
	duringCtx, leaveDuring := context.WithCancel(context.Background())
	var duringErr error
	wg.Go(func() { _, duringErr = b.Do(duringCtx, 1) })
	<-g.started
	queuedCtx, leaveQueued := context.WithCancel(context.Background())
	var queuedErr error
	wg.Go(func() { _, queuedErr = b.Do(queuedCtx, 2) })
	var stayed, stayedOut int
	var stayedErr error
	wg.Go(func() { stayedOut, stayedErr = b.Do(context.Background(), 3); stayed = 1 })
	testenv.WaitFor(t, "the requests to queue", func() bool { return b.Queued() == 2 })
	leaveDuring()
	leaveQueued()
	// The first caller leaves while its commit still runs.
	testenv.WaitFor(t, "the callers to leave", func() bool { return duringCtx.Err() != nil && queuedCtx.Err() != nil })
	time.Sleep(10 * time.Millisecond)
	close(g.release)
	wg.Wait()
	var left *LeftError
	if !errors.As(duringErr, &left) || !left.Taken || !errors.Is(duringErr, context.Canceled) {
		t.Errorf("caller leaving during its commit: %v", duringErr)
	}
	if !errors.As(queuedErr, &left) || left.Taken || !errors.Is(queuedErr, context.Canceled) {
		t.Errorf("caller leaving while queued: %v", queuedErr)
	}
	if stayed != 1 || stayedErr != nil || stayedOut != 30 {
		t.Errorf("caller staying: %d, %v", stayedOut, stayedErr)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if want := [][]int{{1}, {3}}; !slices.EqualFunc(g.batches, want, slices.Equal[[]int]) {
		t.Errorf("batches %v, want %v (the queued request whose caller left is dropped)", g.batches, want)
	}
}

// At most Committers commits run at once, however many requests come.
func TestCommittersBound(t *testing.T) {
	for _, committers := range []int{1, 2} {
		var running, most atomic.Int32
		b := New(func(_ context.Context, items []int) []int {
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			running.Add(-1)
			return items
		}, Options{Committers: committers, MaxBatch: 3})
		var wg sync.WaitGroup
		var wrong atomic.Int32
		for i := range 200 {
			wg.Go(func() {
				if out, err := b.Do(context.Background(), i); err != nil || out != i {
					wrong.Add(1)
				}
			})
		}
		wg.Wait()
		if wrong.Load() != 0 {
			t.Errorf("%d committers: %d requests got another's outcome or an error", committers, wrong.Load())
		}
		if got := most.Load(); got > int32(committers) {
			t.Errorf("%d committers: %d commits ran at once", committers, got)
		}
	}
}

// A full queue makes a request wait for room, or for its context.
func TestFullQueueWaitsForItsContext(t *testing.T) {
	g := newGate()
	b := New(g.commit, Options{Queue: 1})
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = b.Do(context.Background(), 1) })
	<-g.started
	wg.Go(func() { _, _ = b.Do(context.Background(), 2) })
	testenv.WaitFor(t, "the queue to fill", func() bool { return b.Queued() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := b.Do(ctx, 3)
	var left *LeftError
	if !errors.As(err, &left) || left.Taken || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request finding the queue full: %v", err)
	}
	close(g.release)
	wg.Wait()
	if got := g.sizes(); !slices.Equal(got, []int{1, 1}) {
		t.Errorf("batch sizes %v, want [1 1]", got)
	}
}
