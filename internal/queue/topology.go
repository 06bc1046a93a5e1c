// Package queue owns payrail's JetStream topology: the PAYRAIL_JOBS work
// queue that carries payment jobs to workers, the PAYRAIL_EVENTS stream
// that carries line item status changes to downstream consumers, their
// subjects and the workers' durable consumers. Ensure creates or updates
// them idempotently at start; every role calls it.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Topology names and sizes the streams. The zero value is not useful; start
// from Default.
type Topology struct {
	// SubjectRoot prefixes every subject: "<root>.jobs.<processor>",
	// "<root>.events.line_item.<status>".
	SubjectRoot string
	// Jobs and Events name the two streams.
	Jobs   string
	Events string
	// Replicas of each stream (1 for a single server, 3 for a cluster).
	Replicas int
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id. It
	// must outlast the time between a publish and the outbox row being
	// marked (the relay republishes unmarked rows after a grace period);
	// beyond it, the worker's attempt check still stops a second effect.
	DuplicateWindow time.Duration
	// EventsMaxAge bounds how long events are kept.
	EventsMaxAge time.Duration
	// JobsMaxAge bounds how long any copy of a job stays in the jobs
	// stream, on every replica, acknowledged or not: the backstop that
	// keeps a fast-path card job (it carries the sealed CVV) from
	// lingering on a replica the server failed to clean up
	// (docs/security.md, "CVV in JetStream"). It must exceed the longest
	// legitimate life of a job — its redelivery horizon (worker:
	// MaxDeliver deliveries with their backoff and AckWait, about 24
	// minutes by default) plus the longest worker outage to ride out —
	// because a job that ages out is not published again. At least
	// DuplicateWindow (JetStream requires it).
	JobsMaxAge time.Duration
}

// Default is the production topology.
func Default() Topology {
	return Topology{SubjectRoot: "payrail", Jobs: "PAYRAIL_JOBS", Events: "PAYRAIL_EVENTS", Replicas: 1,
		DuplicateWindow: 2 * time.Hour, EventsMaxAge: 7 * 24 * time.Hour, JobsMaxAge: 24 * time.Hour}
}

// jobsMaxAge is JobsMaxAge, raised to DuplicateWindow if that is longer
// (JetStream refuses a duplicate window beyond the maximum age).
func (t Topology) jobsMaxAge() time.Duration {
	if t.JobsMaxAge <= 0 {
		return 0
	}
	return max(t.JobsMaxAge, t.DuplicateWindow)
}

// JobsStream is the work-queue stream's name.
func (t Topology) JobsStream() string { return t.Jobs }

// EventsStream is the events stream's name.
func (t Topology) EventsStream() string { return t.Events }

// The subject grammar, declared here only. Outbox rows carry logical
// subjects (without the root), so a row written under one deployment's
// configuration means the same under another's.
const (
	jobsPrefix   = "jobs."
	eventsPrefix = "events.line_item."
)

// JobSubject is the logical subject of a processor's jobs.
func JobSubject(processor string) string { return jobsPrefix + processor }

// EventSubject is the logical subject of the events of line items in
// status (lower-cased).
func EventSubject(status string) string { return eventsPrefix + strings.ToLower(status) }

// Subject maps a logical subject to the deployment's.
func (t Topology) Subject(logical string) string { return t.SubjectRoot + "." + logical }

// JobSubject is the subject of a processor's jobs.
func (t Topology) JobSubject(processor string) string { return t.Subject(JobSubject(processor)) }

// EventSubject is the subject of the events of line items in status.
func (t Topology) EventSubject(status string) string { return t.Subject(EventSubject(status)) }

// EventSubjects matches every event.
func (t Topology) EventSubjects() string { return t.Subject("events.>") }

// WorkerConsumer names a processor's durable consumer.
func (t Topology) WorkerConsumer(processor string) string { return "worker_" + processor }

// Ensure creates the streams, or updates them to this configuration.
// It works against NATS 2.9 as well as newer servers: it sets no field
// that 2.9 does not know.
func Ensure(ctx context.Context, js jetstream.JetStream, t Topology) error {
	if t.SubjectRoot == "" || t.Jobs == "" || t.Events == "" {
		return errors.New("queue: topology needs a subject root and two stream names")
	}
	streams := []jetstream.StreamConfig{{
		Name:        t.JobsStream(),
		Description: "payrail payment jobs, one subject per processor; removed once a worker acknowledges",
		Subjects:    []string{t.Subject(jobsPrefix + ">")},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(t.Replicas, 1),
		Duplicates:  t.DuplicateWindow,
		MaxAge:      t.jobsMaxAge(),
		Discard:     jetstream.DiscardOld,
	}, {
		Name:        t.EventsStream(),
		Description: "payrail line item status changes",
		Subjects:    []string{t.EventSubjects()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(t.Replicas, 1),
		Duplicates:  t.DuplicateWindow,
		MaxAge:      t.EventsMaxAge,
		Discard:     jetstream.DiscardOld,
	}}
	for _, cfg := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("queue: ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// ConsumerOptions size a worker's durable consumer.
type ConsumerOptions struct {
	// AckWait is how long a delivery may go unacknowledged (the worker
	// sends InProgress while a processor call runs) before JetStream
	// redelivers it, e.g. after the worker died.
	AckWait time.Duration
	// MaxDeliver bounds deliveries; the worker marks the attempt dead on
	// the last one.
	MaxDeliver int
	// MaxAckPending bounds unacknowledged deliveries across all workers.
	MaxAckPending int
}

// EnsureWorkerConsumer creates or updates the durable pull consumer of a
// processor's jobs.
func EnsureWorkerConsumer(ctx context.Context, js jetstream.JetStream, t Topology, processor string, o ConsumerOptions) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, t.JobsStream(), jetstream.ConsumerConfig{
		Durable:       t.WorkerConsumer(processor),
		Description:   "payrail worker for " + processor,
		FilterSubject: t.JobSubject(processor),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxDeliver,
		MaxAckPending: o.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: ensure consumer for %s: %w", processor, err)
	}
	return c, nil
}

// WebhooksConsumer names the webhooks role's durable consumer of the
// events stream.
func (t Topology) WebhooksConsumer() string { return "webhooks" }

// EnsureEventsConsumer creates or updates a durable pull consumer of every
// event, such as the webhooks role's. A new consumer starts at the
// stream's first event: what a consumer does with events older than its
// purpose (webhooks: older than the org's subscription) is its business,
// and none published while it was being created is missed.
func EnsureEventsConsumer(ctx context.Context, js jetstream.JetStream, t Topology, durable, description string, ackWait time.Duration) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, t.EventsStream(), jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   description,
		FilterSubject: t.EventSubjects(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: 1024,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: ensure events consumer %s: %w", durable, err)
	}
	return c, nil
}
