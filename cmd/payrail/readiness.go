package main

import (
	"context"
	"fmt"
	"time"
)

// apiOutboxMaxLag bounds how long the API stays ready while nothing
// drains its outbox. The API's work is to accept payments, and the outbox
// is its buffer: with NATS away, hung or failing over, it keeps accepting
// them and they are published when NATS answers again, so /readyz stays
// 200. Once the oldest unpublished row is older than this, the buffer is
// no longer riding out a failover (measured: under 15 s for a node lost
// or hung, deploy/README.md "NATS cluster") but an outage nobody fixed:
// the API turns unready, so a load balancer and clients see it rather
// than payments piling up unexecuted. Alert well before it
// (payrail_outbox_lag_seconds).
const apiOutboxMaxLag = 15 * time.Minute

// outboxLag is the API's readiness check of its buffer.
func (s *services) outboxLag(ctx context.Context) error {
	age, err := s.store.OldestUnpublished(ctx)
	if err != nil {
		return err
	}
	if age > apiOutboxMaxLag {
		return fmt.Errorf("oldest unpublished outbox row is %s old (bound %s): nothing publishes to NATS",
			age.Round(time.Second), apiOutboxMaxLag)
	}
	return nil
}
