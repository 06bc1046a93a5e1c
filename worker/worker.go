// Package worker executes payment jobs. For each registered processor it
// runs a durable pull consumer on that processor's subject of the jobs
// stream, pulls as many jobs as it has room for (up to Concurrency), and
// hands each job to the processor; the PostgreSQL writes of concurrent
// jobs (steps 1 and 3 below) are made in sets (batch.go).
//
// A delivery is handled in this order, and the order is what makes the
// effect exactly once (docs/pipeline.md):
//
//  1. record the delivery on the attempt and read its status; a closed
//     attempt means a duplicate delivery, acknowledged without a call;
//  2. call the processor, telling JetStream the job is in progress while
//     the call runs;
//  3. commit the result through package payments: attempt, line item
//     status, transition and event in one transaction (shared with other
//     jobs' results);
//  4. acknowledge, only once this job's result committed.
//
// A crash between 2 and 3 redelivers the job and calls the processor
// again, which each processor makes harmless (see package processors). A
// crash between 3 and 4 redelivers a job whose attempt is closed: step 1
// acknowledges it. Retryable outcomes are delivered again after a backoff;
// the last allowed delivery, or a job that cannot be read, ends the
// attempt in the visible dead state (line item INVALID, event, metric).
package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
	"github.com/payrail/payrail/processors"
)

// Options tune a Worker. Zero values take the defaults noted.
type Options struct {
	// Concurrency bounds jobs in flight per processor. Jobs are pulled as
	// capacity frees, so how many are in flight follows the load up to
	// this bound: by Little's law, rate × (processor latency + commit),
	// e.g. 1,500/s at 250 ms is about 450. Default 1024.
	Concurrency int
	// AckWait is how long JetStream waits for an ack or a progress signal
	// before redelivering. Default 30s.
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one job. Default 10.
	MaxDeliver int
	// Backoff is the delay before delivery n+1 after a retryable outcome
	// of delivery n (the last entry repeats). Default 1s, 5s, 15s, 30s,
	// 1m, 2m, 5m.
	Backoff []time.Duration
	// CallTimeout bounds one processor call. Default 25s.
	CallTimeout time.Duration
	// HeldPoll is how often held attempts are asked again. Default 30s.
	HeldPoll time.Duration
	// DrainTimeout is how long shutdown waits for jobs in flight before
	// handing them back to the stream. Default 20s.
	DrainTimeout time.Duration
	// ConsumerCheck is how often each consumer is checked for existence
	// (it and its stream are recreated when missing). Default 5s.
	ConsumerCheck time.Duration
	// ReconcileAfter is the bound after which an unfinished attempt that
	// has not progressed is re-published from the outbox, and above which
	// it counts in payrail_attempts_stale (reconcile.go). Default 1m.
	ReconcileAfter time.Duration
	// ReconcileEvery is how often the reconciler looks. Default 10s;
	// negative turns it off (tests sharing a database between streams).
	ReconcileEvery time.Duration
	Logger         *slog.Logger
	Metrics        *Metrics
	// Tracer, when set, records a span per delivery (continuing the trace
	// the job's message carries) and per processor call; nil records none.
	Tracer trace.Tracer
}

func (o *Options) defaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 1024
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 10
	}
	if len(o.Backoff) == 0 {
		o.Backoff = []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second,
			time.Minute, 2 * time.Minute, 5 * time.Minute}
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 25 * time.Second
	}
	if o.HeldPoll <= 0 {
		o.HeldPoll = 30 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 20 * time.Second
	}
	if o.ConsumerCheck <= 0 {
		o.ConsumerCheck = 5 * time.Second
	}
	if o.ReconcileAfter <= 0 {
		o.ReconcileAfter = time.Minute
	}
	if o.ReconcileEvery == 0 {
		o.ReconcileEvery = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Worker consumes jobs for every processor in its registry.
type Worker struct {
	js       jetstream.JetStream
	topo     queue.Topology
	store    *store.Store
	payments *payments.Service
	registry *processors.Registry
	ring     *keyring.Ring
	opts     Options
	log      *slog.Logger
	hooks    hooks
	// claims records deliveries and completions commits results, each in
	// sets of concurrent jobs (batch.go).
	claims      *batcher[claim, store.Delivery]
	completions *batcher[payments.Outcome, payments.Resolution]
}

// hooks let tests stop a worker at the pipeline's boundaries as a crash
// would. Production code leaves them nil.
type hooks struct {
	received     func(job processors.Job) error // after the job was read, before anything is recorded
	afterProcess func(job processors.Job) error // after the processor answered, before the commit
	afterCommit  func(job processors.Job) error // after the commit, before the ack
}

// errCrashed is returned by a hook to abandon a delivery as a dead
// process would: no commit, no ack, no nak.
var errCrashed = errors.New("worker: simulated crash")

// New returns a worker. ring opens the sealed payment details in jobs.
func New(js jetstream.JetStream, topo queue.Topology, st *store.Store, reg *processors.Registry, ring *keyring.Ring, opts Options) *Worker {
	opts.defaults()
	w := &Worker{js: js, topo: topo, store: st, payments: payments.New(st, ring), registry: reg, ring: ring,
		opts: opts, log: opts.Logger}
	w.claims, w.completions = w.claimBatcher(), w.completionBatcher()
	return w
}

// Run consumes until ctx ends, then stops fetching, lets jobs in flight
// finish for up to DrainTimeout and hands the rest back.
func (w *Worker) Run(ctx context.Context) error {
	// The batchers outlive the consumers: jobs finishing during the drain
	// still commit through them.
	batchCtx, stopBatches := context.WithCancel(context.WithoutCancel(ctx))
	var batches sync.WaitGroup
	batches.Go(func() { w.claims.run(batchCtx) })
	batches.Go(func() { w.completions.run(batchCtx) })
	defer batches.Wait()
	defer stopBatches()
	var wg sync.WaitGroup
	errc := make(chan error, len(w.registry.Names())+2)
	for _, name := range w.registry.Names() {
		proc, _ := w.registry.Lookup(name)
		// MaxAckPending is consumer-wide: room for the buffers and jobs in
		// flight of a few dozen workers before JetStream holds back.
		cons, err := queue.EnsureWorkerConsumer(ctx, w.js, w.topo, name, w.consumerOptions())
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.consume(ctx, proc, cons); err != nil {
				errc <- err
			}
		}()
	}
	wg.Add(4)
	go func() { defer wg.Done(); w.analyzeFresh(ctx) }()
	go func() { defer wg.Done(); w.pollHeld(ctx) }()
	go func() { defer wg.Done(); w.sweepDead(ctx) }()
	go func() { defer wg.Done(); w.reconcile(ctx) }()
	w.log.Info("worker consuming", "processors", w.registry.Names(), "concurrency", w.opts.Concurrency,
		"max_deliver", w.opts.MaxDeliver, "ack_wait", w.opts.AckWait)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// consume runs one processor's pull loop: pull requests sized to the
// free capacity (at most Concurrency jobs in flight), and a goroutine per
// job. When the consumer disappears (the broker lost its store, the stream
// or the consumer was deleted) the pull is restarted on a recreated one
// (consumer.go).
func (w *Worker) consume(ctx context.Context, proc processors.Processor, cons jetstream.Consumer) error {
	// hard outlives ctx by DrainTimeout: jobs in flight at shutdown use it
	// to finish their commit and ack.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	free := newCapacity(w.opts.Concurrency)
	var inflight sync.WaitGroup
	for {
		if err := w.pull(ctx, hard, proc, cons, free, &inflight); err != nil {
			return err
		}
		if ctx.Err() != nil {
			break
		}
		var err error
		if cons, err = w.recreateConsumer(ctx, proc.Name()); err != nil {
			break // ctx ended
		}
	}
	done := make(chan struct{})
	go func() { inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.opts.DrainTimeout):
		w.log.Warn("drain timeout: handing jobs in flight back to the stream", "processor", proc.Name())
		cancelHard()
		<-done
	}
	return nil
}

// pull takes messages from cons until ctx ends or the consumer is found
// missing, and runs each with hard as its context. Each pull request asks
// for as many jobs as there is free capacity, so the jobs in flight follow
// the load up to Concurrency, and no job waits in a buffer while its
// AckWait runs.
func (w *Worker) pull(ctx, hard context.Context, proc processors.Processor, cons jetstream.Consumer,
	free *capacity, inflight *sync.WaitGroup) error {
	pullCtx, stop := context.WithCancel(ctx)
	defer stop()
	// A missing consumer leaves a pull that only misses heartbeats: the
	// watcher ends the pull, and the caller recreates the consumer.
	go w.watchConsumer(pullCtx, proc.Name(), cons, stop)
	for {
		n := free.takeAll(pullCtx, w.opts.Concurrency/8)
		if n == 0 {
			return nil // ctx ended or the consumer is gone
		}
		fetchCtx, cancel := context.WithTimeout(pullCtx, pullExpiry+pullExpiry/9)
		batch, err := cons.Fetch(n, jetstream.FetchContext(fetchCtx), jetstream.FetchHeartbeat(pullHeartbeat))
		if err != nil {
			cancel()
			free.put(n)
			if pullCtx.Err() != nil {
				return nil
			}
			if consumerGone(err) {
				w.log.Warn("jobs consumer gone; recreating it", "processor", proc.Name(), "err", err)
				return nil
			}
			w.log.Warn("pull failed", "processor", proc.Name(), "err", err)
			sleep(pullCtx, 250*time.Millisecond)
			continue
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			inflight.Add(1)
			go func() {
				defer func() { free.put(1); inflight.Done() }()
				w.handle(hard, proc, msg)
			}()
		}
		cancel()
		free.put(n - got)
		err = batch.Error()
		switch {
		case err == nil || errors.Is(err, context.DeadlineExceeded):
		case pullCtx.Err() != nil:
			return nil
		case consumerGone(err):
			w.log.Warn("jobs consumer gone; recreating it", "processor", proc.Name(), "err", err)
			return nil
		default:
			// A missed heartbeat: the request died with the consumer's
			// leader. Pull again, from whichever node leads now.
			w.log.Warn("pull failed", "processor", proc.Name(), "err", err)
			sleep(pullCtx, 250*time.Millisecond)
		}
	}
}

// capacity counts the free job slots of one processor's consumer.
type capacity struct {
	mu   sync.Mutex
	free int
	wake chan struct{} // signalled when slots are put back
}

func newCapacity(n int) *capacity { return &capacity{free: n, wake: make(chan struct{}, 1)} }

// takeAll waits until a slot is free and takes every free one. When fewer
// than want are free it waits up to capacityLinger for more, so a
// saturated worker pulls in batches rather than one job per request. It
// returns 0 when ctx ends.
func (c *capacity) takeAll(ctx context.Context, want int) int {
	var linger <-chan time.Time
	for {
		c.mu.Lock()
		n := c.free
		if n >= max(want, 1) {
			c.free = 0
			c.mu.Unlock()
			return n
		}
		c.mu.Unlock()
		if n > 0 && linger == nil {
			t := time.NewTimer(capacityLinger)
			defer t.Stop()
			linger = t.C
		}
		select {
		case <-ctx.Done():
			return 0
		case <-c.wake:
		case <-linger:
			c.mu.Lock()
			n, c.free = c.free, 0
			c.mu.Unlock()
			if n > 0 {
				return n
			}
			linger = nil
		}
	}
}

// capacityLinger is how long a nearly full worker waits for more free
// slots before pulling for the few it has.
const capacityLinger = 5 * time.Millisecond

func (c *capacity) put(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.free += n
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// lease is how long a delivery may hold its attempt: the processor call's
// bound plus time to commit.
func (w *Worker) lease() time.Duration { return w.opts.CallTimeout + 5*time.Second }

// leaseSlack is added to a lease's remaining time when a delivery is
// handed back, so the next delivery does not arrive a few milliseconds
// early again (and use up a delivery).
const leaseSlack = 250 * time.Millisecond

// leasedDelay is how long to hand back a delivery that found an earlier
// delivery's lease with left to run.
func leasedDelay(left time.Duration) time.Duration { return max(left, 0) + leaseSlack }

// backoff is the delay before the delivery after delivery n.
func (w *Worker) backoff(n int) time.Duration {
	if n-1 < len(w.opts.Backoff) {
		return w.opts.Backoff[max(n-1, 0)]
	}
	return w.opts.Backoff[len(w.opts.Backoff)-1]
}

func (w *Worker) actor(proc string) string { return "worker:" + proc }
