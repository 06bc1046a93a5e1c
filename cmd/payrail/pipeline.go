package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/outbox"
	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/worker"
)

// natsClient is a role's connection to NATS and JetStream.
type natsClient struct {
	conn *nats.Conn
	js   jetstream.JetStream
}

// connectNATS connects for role and keeps reconnecting forever: the API
// must keep accepting payments while NATS is away (the outbox holds them).
func connectNATS(url, role string, log *slog.Logger) (*natsClient, error) {
	nc, err := nats.Connect(url,
		nats.Name("payrail-"+role),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own close at shutdown
				log.Warn("NATS disconnected; the outbox keeps payments until it returns", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream context: %w", err)
	}
	return &natsClient{conn: nc, js: js}, nil
}

func (c *natsClient) ping(ctx context.Context) error {
	if !c.conn.IsConnected() {
		return errors.New("NATS is not connected")
	}
	return c.conn.FlushWithContext(ctx)
}

// close drains the connection so buffered publishes and acks go out.
func (c *natsClient) close() {
	if err := c.conn.Drain(); err != nil {
		c.conn.Close()
	}
}

// ensureTopology creates the streams, retrying until NATS answers or ctx
// ends, so a role can start while NATS is still coming up.
func ensureTopology(ctx context.Context, js jetstream.JetStream, topo queue.Topology, log *slog.Logger) error {
	for attempt := 1; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := queue.Ensure(callCtx, js, topo)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("JetStream not ready; retrying", "attempt", attempt, "err", err)
		sleepCtx(ctx, min(time.Duration(attempt)*time.Second, 10*time.Second))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// startEmbeddedNATS runs a NATS server with JetStream inside payrail dev,
// its data under dir, on a free loopback port (or addr when given).
func startEmbeddedNATS(dir, addr string) (*server.Server, string, error) {
	host, port := "127.0.0.1", -1
	if addr != "" {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, "", fmt.Errorf("embedded NATS address %q: %w", addr, err)
		}
		host = h
		if port, err = strconv.Atoi(p); err != nil {
			return nil, "", fmt.Errorf("embedded NATS port %q: %w", p, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "payrail-dev", Host: host, Port: port, JetStream: true,
		StoreDir: filepath.Clean(dir), NoSigs: true, NoLog: true,
	})
	if err != nil {
		return nil, "", fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, "", errors.New("embedded NATS did not start within 10s")
	}
	return ns, ns.ClientURL(), nil
}

// pipeline is the publishing and consuming side a role runs.
type pipeline struct {
	nats      *natsClient
	publisher *outbox.Publisher
	// keeper recreates a stream the broker lost while the role runs.
	keeper *queue.Keeper
}

// openPipeline connects to NATS, makes the store publish committed outbox
// rows at once, and ensures the streams in the background.
func (s *services) openPipeline(ctx context.Context, role string) (*pipeline, error) {
	nc, err := connectNATS(s.cfg.NATSURL, role, s.log)
	if err != nil {
		return nil, err
	}
	metrics, err := outbox.NewMetrics(s.registry)
	if err != nil {
		return nil, err
	}
	s.outboxMetrics = metrics
	keeper := queue.NewKeeper(nc.js, s.topology(), queue.KeeperOptions{Logger: s.log})
	pub := outbox.NewPublisher(nc.js, s.topology(), s.store, outbox.PublisherOptions{Logger: s.log, Metrics: metrics,
		PublishFailed: func(error) { keeper.Kick() }})
	s.store.SetFastPath(pub)
	return &pipeline{nats: nc, publisher: pub, keeper: keeper}, nil
}

func (s *services) topology() queue.Topology {
	t := queue.Default()
	t.SubjectRoot, t.Jobs, t.Events = s.cfg.SubjectRoot, s.cfg.JobsStream, s.cfg.EventsStream
	t.Replicas = s.cfg.StreamReplicas
	t.DuplicateWindow = s.cfg.DuplicateWindow
	return t
}

func (s *services) relay(p *pipeline) *outbox.Relay {
	return outbox.NewRelay(s.store, s.pool, p.nats.js, s.topology(), outbox.RelayOptions{
		Logger: s.log, Metrics: s.outboxMetrics, Grace: s.cfg.RelayGrace,
		PublishFailed: func(error) { p.keeper.Kick() },
	})
}

func (s *services) worker(p *pipeline, reg *processors.Registry) (*worker.Worker, error) {
	m, err := worker.NewMetrics(s.registry)
	if err != nil {
		return nil, err
	}
	return worker.New(p.nats.js, s.topology(), s.store, reg, s.ring, worker.Options{
		Concurrency: s.cfg.WorkerConcurrency, AckWait: s.cfg.AckWait, MaxDeliver: s.cfg.MaxDeliver,
		Logger: s.log, Metrics: m,
	}), nil
}

// part names one of a role's long-lived parts for errgroup: its error says
// which part failed, and the cancellation that stops every part at
// shutdown is not a failure.
func part(name string, fn func() error) func() error {
	return func() error {
		if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
}
