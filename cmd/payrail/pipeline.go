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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/outbox"
	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/webhooks"
	"github.com/payrail/payrail/worker"
)

// natsClient is a role's connection to NATS and JetStream.
type natsClient struct {
	conn *nats.Conn
	js   jetstream.JetStream
	url  string // without credentials, for logs

	connected   chan struct{} // closed once the first connection is up
	connectOnce sync.Once
	topology    atomic.Bool // the streams have been ensured
}

// natsLogEvery bounds how often an unreachable NATS is logged: the client
// retries every second, the log says so once per interval.
var natsLogEvery = 30 * time.Second

// connectNATS connects for role without waiting for NATS: the connection
// is made in the background and retried forever, so a role starts (and the
// API accepts payments into the outbox) while NATS is away. While it is
// unreachable, a warning naming the URL and the error is logged at once
// and then at most every natsLogEvery.
func connectNATS(url, role string, log *slog.Logger) (*natsClient, error) {
	c := &natsClient{url: redactNATSURL(url), connected: make(chan struct{})}
	log = log.With("url", c.url)
	unreachable := &rateLimitedLog{every: natsLogEvery}
	dialer := &recordingDialer{d: net.Dialer{Timeout: 2 * time.Second}}
	up := func(*nats.Conn) {
		c.connectOnce.Do(func() { close(c.connected) })
		unreachable.reset()
	}
	nc, err := nats.Connect(url, append(queue.Keepalive(),
		nats.Name("payrail-"+role),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ConnectHandler(func(nc *nats.Conn) {
			up(nc)
			log.Info("NATS connected")
		}),
		nats.SetCustomDialer(dialer),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			// The client reports "no servers available" once it has
			// tried them all; the dial error says why.
			if dialErr := dialer.lastErr(); dialErr != nil {
				err = dialErr
			}
			if n, since, ok := unreachable.allow(time.Now()); ok {
				log.Warn("NATS unreachable; retrying every second (the outbox keeps payments until it answers)",
					"err", err, "failed_attempts", n, "unreachable_for", since.Round(time.Second).String())
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own close at shutdown
				log.Warn("NATS disconnected; the outbox keeps payments until it returns", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			up(nc)
			log.Info("NATS reconnected", "server", nc.ConnectedServerName())
		}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", c.url, err)
	}
	if nc.IsConnected() {
		up(nc)
		log.Info("NATS connected")
	} else {
		log.Info("NATS not reachable yet; connecting in the background")
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream context: %w", err)
	}
	c.conn, c.js = nc, js
	return c, nil
}

// redactNATSURL shows a NATS URL (or comma-separated list) without
// passwords or tokens.
func redactNATSURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		parts[i] = redactPassword(strings.TrimSpace(p))
		// nats://token@host: a user without a password is a token.
		if scheme, rest, ok := strings.Cut(parts[i], "://"); ok {
			if at := strings.LastIndex(rest, "@"); at >= 0 && !strings.Contains(rest[:at], ":") {
				parts[i] = scheme + "://xxxxx" + rest[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// recordingDialer dials NATS and keeps the last dial's error, which the
// client's reconnect callback does not carry.
type recordingDialer struct {
	d   net.Dialer
	mu  sync.Mutex
	err error
}

func (r *recordingDialer) Dial(network, address string) (net.Conn, error) {
	c, err := r.d.Dial(network, address)
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	return c, err
}

func (r *recordingDialer) lastErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// rateLimitedLog lets a repeated message through at once and then at most
// once per interval, counting what it held back.
type rateLimitedLog struct {
	every time.Duration

	mu       sync.Mutex
	first    time.Time // first failure of this outage
	last     time.Time // last message let through
	failures int
}

func (r *rateLimitedLog) allow(now time.Time) (failures int, since time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures++
	if r.first.IsZero() {
		r.first = now
	}
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		return 0, 0, false
	}
	r.last = now
	return r.failures, now.Sub(r.first), true
}

func (r *rateLimitedLog) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.first, r.last, r.failures = time.Time{}, time.Time{}, 0
}

// waitConnected returns once NATS has answered, or ctx's error.
func (c *natsClient) waitConnected(ctx context.Context) error {
	select {
	case <-c.connected:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ready is the readiness of a role that needs NATS (a worker, a relay):
// connected, and the streams ensured.
func (c *natsClient) ready(ctx context.Context) error {
	if !c.topology.Load() {
		return errors.New("JetStream streams not ensured yet")
	}
	return c.ping(ctx)
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

// ensureTopology waits for NATS to answer, then creates the streams,
// retrying until JetStream answers or ctx ends, so a role can start while
// NATS is still coming up. Once it returns nil the client is ready.
func ensureTopology(ctx context.Context, c *natsClient, topo queue.Topology, log *slog.Logger) error {
	if err := c.waitConnected(ctx); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := queue.Ensure(callCtx, c.js, topo)
		cancel()
		if err == nil {
			c.topology.Store(true)
			log.Info("JetStream streams ensured", "url", c.url, "jobs", topo.Jobs, "events", topo.Events)
			if problem := queue.ClusterServerProblem(c.conn.ConnectedServerVersion(), topo.Replicas); problem != "" {
				log.Error("unsupported NATS cluster", "url", c.url, "replicas", topo.Replicas, "problem", problem)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("JetStream not ready; retrying", "url", c.url, "attempt", attempt, "err", err)
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

// openPipeline starts connecting to NATS (without waiting for it) and
// makes the store publish committed outbox rows at once; runRoles ensures
// the streams once NATS answers.
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
		PublishFailed: func(error) { keeper.Kick() }, Tracer: s.tracing.Tracer("outbox")})
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
		PublishFailed: func(error) { p.keeper.Kick() }, Tracer: s.tracing.Tracer("outbox"),
	})
}

func (s *services) worker(p *pipeline, reg *processors.Registry) (*worker.Worker, error) {
	m, err := worker.NewMetrics(s.registry)
	if err != nil {
		return nil, err
	}
	return worker.New(p.nats.js, s.topology(), s.store, reg, s.ring, worker.Options{
		Concurrency: s.cfg.WorkerConcurrency, AckWait: s.cfg.AckWait, MaxDeliver: s.cfg.MaxDeliver,
		Logger: s.log, Metrics: m, Tracer: s.tracing.Tracer("worker"),
	}), nil
}

func (s *services) webhooks(p *pipeline) (*webhooks.Service, error) {
	m, err := webhooks.NewMetrics(s.registry)
	if err != nil {
		return nil, err
	}
	return webhooks.New(p.nats.js, s.topology(), s.store, webhooks.Options{
		Timeout: s.cfg.WebhooksTimeout, AllowPrivate: s.cfg.WebhooksAllowPrivate,
		Concurrency: s.cfg.WebhooksConcurrency, PauseAfter: s.cfg.WebhooksPauseAfter,
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
