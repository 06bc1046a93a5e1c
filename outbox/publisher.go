package outbox

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
)

// Marker records acknowledged rows; *store.Store implements it. It skips
// rows another transaction holds rather than waiting, and returns them.
type Marker interface {
	MarkPublished(ctx context.Context, ids []int64) (skipped []int64, err error)
}

// markRetries is how many later flushes retry a row the marker skipped
// (held by a worker completing its attempt, for a few milliseconds)
// before leaving it to the relay.
const markRetries = 50

// PublisherOptions tune a Publisher.
type PublisherOptions struct {
	// Queue bounds rows waiting to be published; beyond it rows are left
	// to the relay rather than blocking a request. Default 8192.
	Queue int
	// MarkEvery flushes acknowledged ids at least this often. Default 20ms.
	MarkEvery time.Duration
	// AckTimeout bounds the wait for one PubAck. Default 5s.
	AckTimeout time.Duration
	Logger     *slog.Logger
	Metrics    *Metrics
	// PublishFailed, when set, is told of every failed publish (for
	// example queue.Keeper.Kick: the stream may be gone). It must not
	// block.
	PublishFailed func(error)
	// Tracer, when set, records a publish span for every row that
	// carries a trace context (package tracing); nil records none.
	Tracer trace.Tracer
}

// Publisher is the fast path: it publishes outbox rows handed to it right
// after their transaction commits. It implements store.FastPath.
type Publisher struct {
	js     jetstream.JetStream
	topo   queue.Topology
	marker Marker
	opts   PublisherOptions
	in     chan store.OutboxMessage
	acked  chan int64
	stop   chan struct{}
}

// NewPublisher returns a Publisher; Run must be running for it to publish.
func NewPublisher(js jetstream.JetStream, topo queue.Topology, marker Marker, opts PublisherOptions) *Publisher {
	if opts.Queue <= 0 {
		opts.Queue = 8192
	}
	if opts.MarkEvery <= 0 {
		opts.MarkEvery = 20 * time.Millisecond
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Publisher{js: js, topo: topo, marker: marker, opts: opts,
		in: make(chan store.OutboxMessage, opts.Queue), acked: make(chan int64, opts.Queue), stop: make(chan struct{})}
}

// Enqueue hands committed rows to the publisher without blocking. A row
// that does not fit is left to the relay.
func (p *Publisher) Enqueue(msgs []store.OutboxMessage) {
	for _, m := range msgs {
		select {
		case p.in <- m:
		default:
			p.opts.Metrics.fastPathSkipped()
		}
	}
}

// Run publishes until ctx ends, then flushes what it already holds (within
// a few seconds) so a clean shutdown leaves little for the relay.
func (p *Publisher) Run(ctx context.Context) error {
	markDone := make(chan struct{})
	go func() {
		defer close(markDone)
		p.markLoop()
	}()
	pending := make(chan struct{}, p.opts.Queue) // bounds unresolved PubAcks
	for {
		select {
		case m := <-p.in:
			p.publish(m, pending)
		case <-ctx.Done():
			p.drain(pending)
			close(p.stop)
			<-markDone
			return nil
		}
	}
}

// drain publishes rows already queued and waits for outstanding acks.
func (p *Publisher) drain(pending chan struct{}) {
	deadline := time.After(p.opts.AckTimeout)
	for {
		select {
		case m := <-p.in:
			p.publish(m, pending)
			continue
		default:
		}
		break
	}
	for len(pending) > 0 {
		select {
		case <-deadline:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (p *Publisher) publish(m store.OutboxMessage, pending chan struct{}) {
	if !p.js.Conn().IsConnected() {
		// NATS is away: leave the row to the relay rather than buffer
		// it in the client.
		p.opts.Metrics.published("fast_path", false)
		return
	}
	pending <- struct{}{}
	msg := natsMsg(p.topo, m)
	span := startPublish(p.opts.Tracer, pathFastPath, m, msg)
	fut, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		<-pending
		endPublish(span, err)
		p.failed(err)
		p.opts.Metrics.published("fast_path", false)
		p.opts.Logger.Debug("fast-path publish failed; the relay will publish", "msg_id", m.MsgID, "err", err)
		return
	}
	go func() {
		defer func() { <-pending }()
		select {
		case <-fut.Ok():
			endPublish(span, nil)
			p.opts.Metrics.published("fast_path", true)
			select {
			case p.acked <- m.ID:
			default: // marks are behind: the relay republishes, JetStream deduplicates
			}
		case err := <-fut.Err():
			endPublish(span, err)
			p.failed(err)
			p.opts.Metrics.published("fast_path", false)
			p.opts.Logger.Debug("fast-path publish not acknowledged; the relay will publish", "msg_id", m.MsgID, "err", err)
		case <-time.After(p.opts.AckTimeout):
			endPublish(span, errNoPubAck)
			p.opts.Metrics.published("fast_path", false)
		}
	}()
}

func (p *Publisher) failed(err error) {
	if p.opts.PublishFailed != nil {
		p.opts.PublishFailed(err)
	}
}

// markLoop batches acknowledged ids into one statement per flush. Rows
// the marker skipped are retried on the next flushes.
func (p *Publisher) markLoop() {
	tick := time.NewTicker(p.opts.MarkEvery)
	defer tick.Stop()
	var ids []int64
	retries := map[int64]int{}
	flush := func() {
		if len(ids) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A failed mark only means the relay republishes these rows
		// after the grace period; JetStream drops the duplicates.
		skipped, err := p.marker.MarkPublished(ctx, ids)
		if err != nil {
			p.opts.Logger.Warn("could not mark outbox rows published", "rows", len(ids), "err", err)
		}
		ids = ids[:0]
		for _, id := range skipped {
			if retries[id]++; retries[id] <= markRetries {
				ids = append(ids, id)
			} else {
				delete(retries, id)
			}
		}
		if len(skipped) == 0 {
			clear(retries)
		}
	}
	for {
		select {
		case id := <-p.acked:
			ids = append(ids, id)
			if len(ids) >= 512 {
				flush()
			}
		case <-tick.C:
			flush()
		case <-p.stop:
			for {
				select {
				case id := <-p.acked:
					ids = append(ids, id)
					continue
				default:
				}
				break
			}
			flush()
			return
		}
	}
}

// natsMsg builds the JetStream message for an outbox row.
func natsMsg(topo queue.Topology, m store.OutboxMessage) *nats.Msg {
	msg := nats.NewMsg(topo.Subject(m.Subject))
	for k, v := range m.Headers {
		msg.Header.Set(k, v)
	}
	msg.Header.Set(jetstream.MsgIDHeader, m.MsgID)
	msg.Data = m.Body()
	return msg
}

// errNoPubAck ends the publish span of a row whose PubAck did not come
// in time.
var errNoPubAck = errors.New("outbox: no PubAck in time")

// errNotAcked reports rows a relay batch could not get acknowledged.
var errNotAcked = errors.New("outbox: JetStream did not acknowledge every row")
