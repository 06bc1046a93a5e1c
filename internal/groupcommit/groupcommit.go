// Package groupcommit commits concurrent requests together. Each request
// is queued; a committer takes whatever is queued (up to a bound) and
// hands it to one call of the commit function, and every request is
// answered with its own outcome once that call returned. While a commit
// runs, the requests that arrive queue up and go together in the next, so
// the cost of a commit (a round trip, a transaction, a WAL flush) is
// shared by as many requests as arrived during the previous one.
//
// Nothing waits on a timer: a lone request is taken at once. Committers
// are goroutines started when a request finds fewer than
// Options.Committers running, and they end when the queue is empty, so a
// Batcher needs no Run or Close and holds no goroutine while idle.
package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Func commits items together and returns one outcome per item, in the
// items' order. It must return len(items) outcomes whatever happens: a
// failure is part of an item's outcome.
type Func[T, R any] func(ctx context.Context, items []T) []R

// Options bound a Batcher. Zero values take the defaults.
type Options struct {
	// MaxBatch is the most items one commit takes (default 256).
	MaxBatch int
	// Queue is the most requests waiting for a commit (default 4096); a
	// request that finds it full waits for room, or for its context.
	Queue int
	// Committers is how many commits may run at once (default 1).
	Committers int
	// Timeout bounds one commit (default 30s). Commits run under a
	// context of their own, not a request's: a request that leaves does
	// not take its batch's other items with it.
	Timeout time.Duration
	// Observe, when set, is called with the size of each batch before it
	// is committed.
	Observe func(n int)
}

// Batcher queues requests of type T and commits them in batches with its
// Func. It is safe for concurrent use.
type Batcher[T, R any] struct {
	commit Func[T, R]
	opts   Options
	queue  chan *call[T, R]

	mu      sync.Mutex
	running int // committers started and not yet ended
}

// A call's state moves once, from queued to taken (by a committer) or to
// abandoned (by its caller, whose context ended first).
const (
	queued int32 = iota
	taken
	abandoned
)

type call[T, R any] struct {
	item  T
	state atomic.Int32
	out   R
	done  chan struct{}
}

// New returns a Batcher committing with commit.
func New[T, R any](commit Func[T, R], opts Options) *Batcher[T, R] {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Queue <= 0 {
		opts.Queue = 4096
	}
	if opts.Committers <= 0 {
		opts.Committers = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	return &Batcher[T, R]{commit: commit, opts: opts, queue: make(chan *call[T, R], opts.Queue)}
}

// LeftError wraps the context's error when a caller's context ended before
// its outcome was known. If the item had already been taken into a batch,
// that batch commits it or not regardless: the caller cannot know which.
type LeftError struct {
	// Taken: the item was in a batch when the caller left.
	Taken bool
	Err   error
}

func (e *LeftError) Error() string {
	if e.Taken {
		return fmt.Sprintf("groupcommit: left while its batch was committed: %v", e.Err)
	}
	return fmt.Sprintf("groupcommit: left before its batch: %v", e.Err)
}

func (e *LeftError) Unwrap() error { return e.Err }

// Do queues item and returns its outcome once its batch was committed. An
// error (*LeftError) means ctx ended first.
func (b *Batcher[T, R]) Do(ctx context.Context, item T) (R, error) {
	var zero R
	c := &call[T, R]{item: item, done: make(chan struct{})}
	select {
	case b.queue <- c:
	case <-ctx.Done():
		return zero, &LeftError{Err: ctx.Err()}
	}
	b.wake()
	select {
	case <-c.done:
		return c.out, nil
	case <-ctx.Done():
		if c.state.CompareAndSwap(queued, abandoned) {
			return zero, &LeftError{Err: ctx.Err()}
		}
		select {
		case <-c.done: // answered meanwhile: the outcome is known after all
			return c.out, nil
		default:
		}
		return zero, &LeftError{Taken: true, Err: ctx.Err()}
	}
}

// Queued reports how many requests wait for a batch.
func (b *Batcher[T, R]) Queued() int { return len(b.queue) }

// wake starts a committer unless enough run. It is called after the
// request was queued; a committer ends only after seeing the queue empty
// under mu, so either it sees the request or this call sees it gone.
func (b *Batcher[T, R]) wake() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running < b.opts.Committers {
		b.running++
		go b.run()
	}
}

// run commits batches until the queue is empty.
func (b *Batcher[T, R]) run() {
	batch := make([]*call[T, R], 0, b.opts.MaxBatch)
	items := make([]T, 0, b.opts.MaxBatch)
	for {
		batch = b.take(batch[:0])
		if len(batch) == 0 {
			b.mu.Lock()
			if len(b.queue) > 0 {
				b.mu.Unlock()
				continue
			}
			b.running--
			b.mu.Unlock()
			return
		}
		items = items[:0]
		for _, c := range batch {
			items = append(items, c.item)
		}
		if b.opts.Observe != nil {
			b.opts.Observe(len(items))
		}
		outs := b.commitBatch(items)
		for i, c := range batch {
			c.out = outs[i]
			close(c.done)
		}
		clear(items) // let the items be collected while the committer waits
	}
}

// take appends to batch what is queued, up to MaxBatch, without waiting.
// Calls whose caller already left are dropped.
func (b *Batcher[T, R]) take(batch []*call[T, R]) []*call[T, R] {
	for len(batch) < b.opts.MaxBatch {
		select {
		case c := <-b.queue:
			if c.state.CompareAndSwap(queued, taken) {
				batch = append(batch, c)
			}
		default:
			return batch
		}
	}
	return batch
}

func (b *Batcher[T, R]) commitBatch(items []T) []R {
	// A commit belongs to no one request: it runs under its own context,
	// bounded by Timeout, so one caller leaving cannot fail the others.
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	outs := b.commit(ctx, items)
	if len(outs) != len(items) {
		panic(fmt.Sprintf("groupcommit: commit returned %d outcomes for %d items", len(outs), len(items)))
	}
	return outs
}
