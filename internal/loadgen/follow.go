package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// EventFollower reads outcomes from the events payrail publishes for every
// status change (docs/pipeline.md#events) with a plain NATS subscription
// to the events subject: the events are published whether anyone listens
// or not, so following them adds one delivery per event and no work to
// PostgreSQL or the API. An outcome counts when the event is received,
// which is when a client of the events stream would learn it.
type EventFollower struct {
	sub *nats.Subscription
}

// NewEventFollower subscribes at once, so no event of the run is missed
// even if it comes before Run is called.
func NewEventFollower(nc *nats.Conn, subject string) (*EventFollower, error) {
	f := &EventFollower{}
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		return nil, fmt.Errorf("loadgen: subscribe to %s: %w", subject, err)
	}
	// A slow bench must not drop events: it would wait for outcomes it
	// already missed.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("loadgen: subscribe to %s: %w", subject, err)
	}
	f.sub = sub
	return f, nc.Flush()
}

// Watch implements Follower: every event is read anyway.
func (f *EventFollower) Watch(string) {}

// Run implements Follower.
func (f *EventFollower) Run(ctx context.Context, report func(Outcome)) error {
	defer func() { _ = f.sub.Unsubscribe() }()
	for {
		m, err := f.sub.NextMsgWithContext(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		var ev struct {
			LineItem lineItemJSON `json:"line_item"`
		}
		if json.Unmarshal(m.Data, &ev) != nil || ev.LineItem.LineItemID == "" {
			continue
		}
		report(ev.LineItem.outcome(time.Now()))
	}
}

// Poller reads each watched payment's line item every Interval until it
// is final. Unlike EventFollower it loads the API and PostgreSQL (one GET
// per unfinished payment per interval), which the measurement then
// includes; use it only when the events are out of reach.
type Poller struct {
	API      *API
	Interval time.Duration
	Workers  int

	mu      sync.Mutex
	pending []string
}

// Watch implements Follower.
func (p *Poller) Watch(id string) {
	p.mu.Lock()
	p.pending = append(p.pending, id)
	p.mu.Unlock()
}

// Run implements Follower.
func (p *Poller) Run(ctx context.Context, report func(Outcome)) error {
	interval, workers := p.Interval, p.Workers
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	if workers <= 0 {
		workers = 4
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		p.mu.Lock()
		round := p.pending
		p.pending = nil
		p.mu.Unlock()
		ids := make(chan string)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for id := range ids {
					o, err := p.API.LineItem(ctx, id)
					if err == nil {
						report(o)
					}
					if err != nil || !o.Final() {
						p.Watch(id) // again next round
					}
				}
			})
		}
	feed:
		for _, id := range round {
			select {
			case ids <- id:
			case <-ctx.Done():
				break feed
			}
		}
		close(ids)
		wg.Wait()
	}
}
