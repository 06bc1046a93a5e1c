package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrStreamMissing reports that a stream of the topology does not exist:
// the broker lost its store (disk loss, a fresh cluster) or someone
// deleted it.
var ErrStreamMissing = errors.New("queue: stream missing")

// KeeperOptions tune a Keeper. Zero values take the defaults noted.
type KeeperOptions struct {
	// Every is how often the streams are checked. Default 5s.
	Every  time.Duration
	Logger *slog.Logger
}

// Keeper keeps the topology's streams in place while a role runs. Ensure
// at start is not enough: a broker that comes back without its store, or
// a stream deleted by mistake, would otherwise leave publishes without a
// stream to land in ("no responders") until every role restarted. The
// keeper checks the streams every few seconds, and at once when Kick says
// a publish failed, and recreates a missing one. Check serves readiness.
type Keeper struct {
	js   jetstream.JetStream
	topo Topology
	opts KeeperOptions
	kick chan struct{}
}

// NewKeeper returns a keeper of t's streams; Run must be running for it to
// repair anything.
func NewKeeper(js jetstream.JetStream, t Topology, opts KeeperOptions) *Keeper {
	if opts.Every <= 0 {
		opts.Every = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Keeper{js: js, topo: t, opts: opts, kick: make(chan struct{}, 1)}
}

// Kick asks for a check now, e.g. after a publish failed. It never blocks.
func (k *Keeper) Kick() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// Check reports whether both streams exist: ErrStreamMissing (naming the
// stream) when one does not, another error when JetStream cannot be
// asked.
func (k *Keeper) Check(ctx context.Context) error {
	// Without a connection a JetStream request only waits out ctx: say so
	// at once, so a readiness probe answers within its timeout.
	if nc := k.js.Conn(); nc != nil && !nc.IsConnected() {
		return ErrNotConnected
	}
	return CheckStreams(ctx, k.js, k.topo)
}

// ErrNotConnected: NATS is not connected, so the streams cannot be asked.
var ErrNotConnected = errors.New("queue: NATS is not connected")

// CheckStreams reports whether both of t's streams exist.
func CheckStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	for _, name := range []string{t.JobsStream(), t.EventsStream()} {
		if _, err := js.Stream(ctx, name); errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%w: %s", ErrStreamMissing, name)
		} else if err != nil {
			return fmt.Errorf("queue: look up stream %s: %w", name, err)
		}
	}
	return nil
}

// Run checks and repairs the streams until ctx ends.
func (k *Keeper) Run(ctx context.Context) error {
	t := time.NewTicker(k.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-k.kick:
		}
		k.repair(ctx)
		// A burst of failed publishes asks once, not once per message.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// repair recreates the streams if one is missing.
func (k *Keeper) repair(ctx context.Context) {
	callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := k.Check(callCtx)
	if err == nil || !errors.Is(err, ErrStreamMissing) {
		// Present, or NATS cannot be asked (disconnected): nothing to do
		// until it can.
		return
	}
	k.opts.Logger.Warn("JetStream stream missing; recreating the topology", "err", err)
	if err := Ensure(callCtx, k.js, k.topo); err != nil {
		k.opts.Logger.Warn("could not recreate the JetStream topology; will retry", "err", err)
		return
	}
	k.opts.Logger.Info("JetStream topology recreated")
}
