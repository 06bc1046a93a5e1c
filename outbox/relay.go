package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
)

// RelayOptions tune a Relay.
type RelayOptions struct {
	// Batch is how many rows one claim takes. Default 2000.
	Batch int
	// Parallel is how many batches one relay has in progress at once.
	// Default 2. Measured on 2 cores (BenchmarkRelayBacklog, 50,000 rows,
	// alternating): 2 batches of 2,000 published a backlog of job rows
	// faster than 4 of 500 in each of seven pairs (19,780–26,138 rows/s
	// against 15,326–23,062), event rows in six of seven; fewer statements
	// at once contend less, and larger ones cost less per row.
	Parallel int
	// Grace leaves fast-path rows to their publisher this long. Default 2s.
	Grace time.Duration
	// Backstop wakes the relay when no notification came. Default 1s.
	Backstop time.Duration
	// Retention keeps rows marked published this long before purging
	// them. Default 24h. Only an earlier version marked rows (schema 013
	// deletes what it publishes); the purge clears what one left.
	Retention  time.Duration
	AckTimeout time.Duration // default 10s
	Logger     *slog.Logger
	Metrics    *Metrics
	// PublishFailed, when set, is told when a batch could not be
	// published (for example queue.Keeper.Kick: the stream may be gone).
	// It must not block.
	PublishFailed func(error)
	// Tracer, when set, records a publish span for every row that
	// carries a trace context (package tracing); nil records none.
	Tracer trace.Tracer
}

// Relay publishes outbox rows the fast path missed.
type Relay struct {
	store *store.Store
	pool  *pgxpool.Pool
	js    jetstream.JetStream
	topo  queue.Topology
	opts  RelayOptions
}

// NewRelay returns a relay over st; pool provides the LISTEN connection.
func NewRelay(st *store.Store, pool *pgxpool.Pool, js jetstream.JetStream, topo queue.Topology, opts RelayOptions) *Relay {
	if opts.Batch <= 0 {
		opts.Batch = 2000
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 2
	}
	if opts.Grace <= 0 {
		opts.Grace = 2 * time.Second
	}
	if opts.Backstop <= 0 {
		opts.Backstop = time.Second
	}
	if opts.Retention <= 0 {
		opts.Retention = 24 * time.Hour
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Relay{store: st, pool: pool, js: js, topo: topo, opts: opts}
}

// Run relays until ctx ends. A batch in progress at shutdown finishes
// (its rows stay locked until marked), so stopping loses nothing.
func (r *Relay) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	go r.listen(ctx, wake)
	backstop := time.NewTicker(r.opts.Backstop)
	defer backstop.Stop()
	purge := time.NewTicker(time.Minute)
	defer purge.Stop()
	failures := 0
	for {
		if !r.js.Conn().IsConnected() {
			// NATS is away: the rows wait in the outbox, and the
			// connection's own log says why. Check again on the tick.
			select {
			case <-ctx.Done():
				return nil
			case <-backstop.C:
			}
			continue
		}
		n, err := r.sweep(context.WithoutCancel(ctx))
		switch {
		case err != nil:
			if r.opts.PublishFailed != nil {
				r.opts.PublishFailed(err)
			}
			failures++
			delay := min(time.Duration(failures)*250*time.Millisecond, 5*time.Second)
			r.opts.Logger.Warn("relay could not publish; retrying", "err", err, "retry_in", delay)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			continue
		case n > 0:
			failures = 0
			r.opts.Logger.Debug("relay published rows", "rows", n)
		}
		r.observeBacklog(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-backstop.C:
		case <-purge.C:
			if n, err := r.store.PurgePublished(ctx, r.opts.Retention); err != nil {
				r.opts.Logger.Warn("could not purge published outbox rows", "err", err)
			} else if n > 0 {
				r.opts.Logger.Info("purged published outbox rows", "rows", n)
			}
		}
	}
}

// sweep publishes batches until a claim comes back short. Up to
// opts.Parallel batches are in progress at once, so one batch's claim and
// commit in PostgreSQL overlap another's publishes and PubAcks; SKIP
// LOCKED keeps their rows apart.
func (r *Relay) sweep(ctx context.Context) (int, error) {
	var (
		mu       sync.Mutex
		total    int
		firstErr error
		wg       sync.WaitGroup
	)
	for range r.opts.Parallel {
		wg.Go(func() {
			for {
				n, err := r.store.RelayBatch(ctx, r.opts.Batch, r.opts.Grace, r.publish)
				mu.Lock()
				total += n
				if err != nil && firstErr == nil {
					firstErr = err
				}
				stop := firstErr != nil
				mu.Unlock()
				if stop || n < r.opts.Batch {
					return
				}
			}
		})
	}
	wg.Wait()
	return total, firstErr
}

// publish sends msgs with pipelined async PubAcks and returns the ids
// JetStream acknowledged.
func (r *Relay) publish(ctx context.Context, msgs []store.OutboxMessage) ([]int64, error) {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	spans := make([]trace.Span, len(msgs))
	var firstErr error
	for i, m := range msgs {
		msg := natsMsg(r.topo, m)
		spans[i] = startPublish(r.opts.Tracer, pathRelay, m, msg)
		f, err := r.js.PublishMsgAsync(msg)
		if err != nil {
			endPublish(spans[i], err)
			firstErr = err
			break
		}
		futures[i] = f
	}
	timeout := time.NewTimer(r.opts.AckTimeout)
	defer timeout.Stop()
	acked := make([]int64, 0, len(msgs))
	for i, f := range futures {
		if f == nil {
			break
		}
		select {
		case <-f.Ok():
			endPublish(spans[i], nil)
			acked = append(acked, msgs[i].ID)
		case err := <-f.Err():
			endPublish(spans[i], err)
			if firstErr == nil {
				firstErr = err
			}
		case <-timeout.C:
			if firstErr == nil {
				firstErr = fmt.Errorf("no PubAck within %s", r.opts.AckTimeout)
			}
			for j := i; j < len(futures) && futures[j] != nil; j++ {
				endPublish(spans[j], errNoPubAck)
			}
			r.opts.Metrics.relayed(len(acked), len(msgs)-len(acked))
			return acked, fmt.Errorf("%w: %w", errNotAcked, firstErr)
		}
	}
	r.opts.Metrics.relayed(len(acked), len(msgs)-len(acked))
	if firstErr != nil {
		return acked, fmt.Errorf("%w: %w", errNotAcked, firstErr)
	}
	return acked, nil
}

// listen turns NOTIFYs on the outbox channel into wake-ups, reconnecting
// after errors; the backstop tick covers any gap.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		r.opts.Logger.Warn("relay LISTEN connection lost; reconnecting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	pooled, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection left in LISTEN state must not return to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+store.OutboxChannel()); err != nil {
		return err
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

func (r *Relay) observeBacklog(ctx context.Context) {
	if r.opts.Metrics == nil {
		return
	}
	n, age, err := r.store.OutboxBacklog(ctx)
	if err != nil {
		return
	}
	r.opts.Metrics.backlog(n, age)
}
