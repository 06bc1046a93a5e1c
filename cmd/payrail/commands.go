package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/payrail/payrail/intake"
	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/tracing"
	"github.com/payrail/payrail/outbox"
	"github.com/payrail/payrail/processors/authorizenet"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
	"github.com/payrail/payrail/schema"
	"github.com/payrail/payrail/webhooks"
)

func runMigrate(ctx context.Context, args []string) error {
	cl := newCmdline("migrate", roleMigrate, os.LookupEnv)
	cl.summary = "Apply the embedded schema migrations."
	if err := cl.parse(args); err != nil {
		return err
	}
	from, to, err := migrateDB(ctx, cl.cfg.DatabaseURL)
	if err != nil {
		return err
	}
	fmt.Printf("schema at version %d (was %d)\n", to, from)
	return nil
}

func migrateDB(ctx context.Context, dbURL string) (from, to int32, err error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, 0, fmt.Errorf("connect to PostgreSQL (%s): %w", redactURL(dbURL), connectAdvice(err))
	}
	defer conn.Close(context.Background())
	return schema.Migrate(ctx, conn)
}

// ensureDatabase creates the database named in dbURL when it is missing,
// by connecting to the server's "postgres" database.
func ensureDatabase(ctx context.Context, dbURL string) error {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL at %s:%d: %w", cfg.Host, cfg.Port, connectAdvice(err))
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var already interface{ SQLState() string }
		if errors.As(err, &already) && already.SQLState() == "42P04" { // created concurrently
			return nil
		}
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// connectAdvice adds what to do to a connection error that is PostgreSQL
// refusing a connection because its connections are used up (SQLSTATE
// 53300: "sorry, too many clients already", or a role's or database's
// connection limit); other errors come back unchanged.
func connectAdvice(err error) error {
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) || pe.Code != "53300" {
		return err
	}
	return fmt.Errorf("%w (SQLSTATE 53300: PostgreSQL's connections are used up; every payrail process holds up to "+
		"PAYRAIL_DATABASE_MAX_CONNS of them: lower it, stop other clients, or raise the server's max_connections)", err)
}

func redactURL(u string) string {
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return "an unparseable URL"
	}
	return fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
}

// services is what the long-running roles share.
type services struct {
	cfg           *config
	log           *slog.Logger
	pool          *pgxpool.Pool
	store         *store.Store
	ring          *keyring.Ring
	signer        *auth.Signer
	registry      *prometheus.Registry
	outboxMetrics *outbox.Metrics
	// tracing is nil unless an OTLP endpoint is configured; its Tracer
	// is then nil too, and the roles trace nothing.
	tracing *tracing.Provider

	anetOnce sync.Once // merchants: Authorize.Net clients per org
	anet     *authorizenet.Merchants
	anetErr  error

	// simFaults slow or break the built-in Authorize.Net simulator
	// (payrail bench --sim-latency); sim is the simulator once started,
	// for bench to count its charges.
	simFaults anetsim.Faults
	sim       *anetsim.Server
}

func openServices(ctx context.Context, cfg *config) (*services, error) {
	log, err := cfg.logger()
	if err != nil {
		return nil, err
	}
	// The relay neither issues tokens nor seals anything: it reads
	// neither key.
	var signer *auth.Signer
	if cfg.role&roleAPIs != 0 {
		key, err := cfg.jwtKey()
		if err != nil {
			return nil, err
		}
		if signer, err = auth.NewSigner(key, cfg.TokenTTL); err != nil {
			return nil, err
		}
	}
	var ring *keyring.Ring
	if cfg.role&(roleAPIs|roleWorker|roleWebhooks) != 0 {
		if cfg.EncryptionKey == "" {
			return nil, errors.New("PAYRAIL_ENCRYPTION_KEYS is not set: give id=base64key pairs of 32-byte AES keys")
		}
		if ring, err = keyring.Parse(cfg.EncryptionKey, cfg.EncryptionKID); err != nil {
			return nil, err
		}
	}
	pool, err := openPool(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("reach PostgreSQL (%s): %w", redactURL(cfg.DatabaseURL), connectAdvice(err))
	}
	reg := newRegistry()
	return &services{cfg: cfg, log: log, pool: pool, store: store.New(pool, ring, canopy.Events{}), ring: ring, signer: signer, registry: reg}, nil
}

func (s *services) close() { s.pool.Close() }

// openPool opens the connection pool. pgxpool's default of
// max(4, cores) connections would queue a busy API behind a handful of
// commits, each waiting for its WAL flush; maxConns raises it unless the
// URL sets pool_max_conns itself.
func openPool(ctx context.Context, dbURL string, maxConns int) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse PAYRAIL_DATABASE_URL: %w", err)
	}
	if !strings.Contains(dbURL, "pool_max_conns") && maxConns > 0 {
		pc.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL pool (%s): %w", redactURL(dbURL), err)
	}
	return pool, nil
}

// serveAPI runs the HTTP API until ctx ends.
func (s *services) serveAPI(ctx context.Context, ln net.Listener, p *pipeline) error {
	anet, err := s.merchants(ctx)
	if err != nil {
		return err
	}
	api, err := intake.New(intake.Config{
		Store: s.store, Ring: s.ring, Signer: s.signer, Logger: s.log, Registry: s.registry,
		RateLimit: rate.Limit(s.cfg.RateLimit), RateBurst: s.cfg.RateBurst,
		Ready: s.readyChecks(p, true), TrustedProxies: s.cfg.TrustedProxies, AuthorizeNet: anet,
		WebhooksAllowPrivate: s.cfg.WebhooksAllowPrivate, Tracer: s.tracing.Tracer("intake"),
	})
	if err != nil {
		return err
	}
	return s.serveHTTP(ctx, "API", ln, api)
}

// readyChecks are what /readyz reports. The API needs only PostgreSQL to
// accept payments (the outbox keeps them while NATS is away or a stream is
// being recreated), so for it NATS and the streams are reported but
// optional, as long as the outbox drains within apiOutboxMaxLag
// (readiness.go). The NATS checks come last: a hung server makes them wait
// out the probe's timeout, which must not fail the checks before them. A
// worker or relay is ready only once NATS answers and the streams exist
// (the keeper recreates a missing one); a client on a hung server moves to
// another node within queue.Keepalive's 6–8 s, and the check answers again.
func (s *services) readyChecks(p *pipeline, api bool) []intake.Check {
	if api {
		return []intake.Check{{Name: "postgres", Fn: s.store.Ping}, {Name: "outbox", Fn: s.outboxLag},
			{Name: "nats", Fn: p.nats.ping, Optional: true}, {Name: "streams", Fn: p.keeper.Check, Optional: true}}
	}
	return []intake.Check{{Name: "postgres", Fn: s.store.Ping}, {Name: "nats", Fn: p.nats.ready},
		{Name: "streams", Fn: p.keeper.Check}}
}

// serveOps serves /metrics, /healthz, /readyz and /debug/pprof/ on the ops
// listener (PAYRAIL_METRICS_ADDR) of every server role, so its metrics can
// be scraped, it can be probed and profiled. /metrics and the profiler are
// served only here: never on the API's public listener, where a profile
// would hand anyone with a token the process's internals and CPU.
//
// api selects the API's readiness (NATS reported but optional) for a
// process that serves the API and executes no jobs.
func (s *services) serveOps(ctx context.Context, ln net.Listener, p *pipeline, api bool) error {
	return s.serveHTTP(ctx, "metrics and health", ln, opsHandler(s.registry, s.readyChecks(p, api)))
}

// opsHandler is the ops listener's routes.
func opsHandler(reg *prometheus.Registry, checks []intake.Check) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// The profiler's own handlers, registered here rather than through
	// net/http/pprof's init on http.DefaultServeMux, which payrail never serves.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		for _, c := range checks {
			if err := c.Fn(ctx); err != nil && !c.Optional {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = fmt.Fprintf(w, `{"status":"unavailable","check":%q}`+"\n", c.Name)
				return
			}
		}
		_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
	})
	return mux
}

// serveHTTP serves h on ln until ctx ends, then drains in-flight requests
// for up to 20 seconds.
func (s *services) serveHTTP(ctx context.Context, name string, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info(name+" listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("%s HTTP server: %w", name, err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down " + name + ": draining requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("drain %s HTTP server: %w", name, err)
	}
	return nil
}

func runAPI(ctx context.Context, args []string) error {
	return runProduction(ctx, "api", roleAPI, args, func(cfg *config) (roles, error) {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return roles{}, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
		}
		return roles{api: ln, relay: cfg.APIRelay}, nil
	})
}

func runWorker(ctx context.Context, args []string) error {
	return runProduction(ctx, "worker", roleWorker, args, func(*config) (roles, error) { return roles{worker: true}, nil })
}

func runWebhooks(ctx context.Context, args []string) error {
	return runProduction(ctx, "webhooks", roleWebhooks, args, func(*config) (roles, error) { return roles{webhooks: true}, nil })
}

func runRelay(ctx context.Context, args []string) error {
	return runProduction(ctx, "relay", roleRelay, args, func(*config) (roles, error) { return roles{relay: true}, nil })
}

// runProduction runs one of the production roles: configuration from
// flags and PAYRAIL_* variables (JSON logs), services opened, then the
// roles pick says until SIGTERM.
func runProduction(ctx context.Context, name string, which role, args []string, pick func(*config) (roles, error)) error {
	cl := newCmdline(name, which, os.LookupEnv)
	cl.summary = commandSummary(name)
	if err := cl.parse(args); err != nil {
		return err
	}
	cfg := cl.cfg
	cfg.NATSURL = cfg.natsURLOrDefault()
	svc, err := openServices(ctx, cfg)
	if err != nil {
		return err
	}
	defer svc.close()
	r, err := pick(cfg)
	if err != nil {
		return err
	}
	return svc.runRoles(ctx, name, r)
}

// roles says what one process runs.
type roles struct {
	api      net.Listener // nil: no HTTP API
	relay    bool
	worker   bool
	webhooks bool
}

// runRoles runs the chosen roles until ctx ends (SIGTERM), then drains
// them: the API finishes its requests, the worker its jobs, the publisher
// its pending PubAcks, and the relay its batch.
func (s *services) runRoles(ctx context.Context, name string, r roles) error {
	flushSpans, err := s.startTracing(ctx, name)
	if err != nil {
		return err
	}
	defer flushSpans()
	p, err := s.openPipeline(ctx, name)
	if err != nil {
		return err
	}
	defer p.nats.close()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	// abort stops what already runs and reports err, for a failure while
	// the roles are still being started.
	abort := func(err error) error {
		stop()
		_ = g.Wait()
		return err
	}
	// The fast path runs at once: while NATS is away its publishes fail
	// and the relay publishes the rows later.
	g.Go(part("publisher", func() error { return p.publisher.Run(gctx) }))
	// The keeper recreates a stream that goes missing (broker data loss)
	// without a restart.
	g.Go(part("stream keeper", func() error { return p.keeper.Run(gctx) }))
	var startWorker func() error
	if r.worker {
		// The processors need no NATS: a configuration problem stops the
		// worker now rather than once NATS answers.
		reg, schedules, err := s.processors(gctx)
		if err != nil {
			return abort(err)
		}
		for i, run := range schedules {
			g.Go(part(fmt.Sprintf("schedule %d", i), func() error { return run(gctx) }))
		}
		w, err := s.worker(p, reg)
		if err != nil {
			return abort(err)
		}
		startWorker = func() error { return w.Run(gctx) }
	}
	var hooks *webhooks.Service
	if r.webhooks {
		var err error
		if hooks, err = s.webhooks(p); err != nil {
			return abort(err)
		}
	}
	// HTTP is served at once, whether NATS answers or not: the API accepts
	// payments into the outbox, and probes reach every role.
	if r.api != nil {
		g.Go(part("api", func() error { return s.serveAPI(gctx, r.api, p) }))
	}
	if s.cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			return abort(fmt.Errorf("listen on %s (PAYRAIL_METRICS_ADDR): %w", s.cfg.MetricsAddr, err))
		}
		g.Go(part("metrics", func() error { return s.serveOps(gctx, ln, p, r.api != nil && !r.worker && !r.webhooks) }))
	}
	// What needs JetStream starts once NATS answers and the streams exist;
	// until then committed rows wait in the outbox. SIGTERM during the wait
	// is a clean stop.
	g.Go(part("topology", func() error {
		if err := ensureTopology(gctx, p.nats, s.topology(), s.log); err != nil {
			return err
		}
		if r.relay {
			relay := s.relay(p)
			g.Go(part("relay", func() error { return relay.Run(gctx) }))
		}
		if startWorker != nil {
			g.Go(part("worker", startWorker))
		}
		if hooks != nil {
			g.Go(part("webhooks", func() error { return hooks.Run(gctx) }))
		}
		return nil
	}))
	err = g.Wait()
	s.log.Info("payrail stopped", "role", name)
	return err
}

const (
	devOrg     = "dev"
	devAccount = "acct_dev"
)

func runDev(ctx context.Context, args []string) error {
	cl := newCmdline("dev", roleDev, os.LookupEnv)
	cl.summary = commandSummary("dev")
	// Everything is checked before anything starts, and so before the
	// banner prints credentials.
	if err := cl.parse(args); err != nil {
		return err
	}
	cfg := cl.cfg
	if err := cfg.ensureDevSecrets(keyring.NewKey); err != nil {
		return fmt.Errorf("prepare dev secrets under %s: %w", cfg.VarDir, err)
	}
	if err := cfg.checkDevSecrets(); err != nil {
		return err
	}
	// payrail nacha in another shell finds dev's database and drop
	// directory here (as payrail events finds nats.url).
	if err := writeDevSettings(cl); err != nil {
		return fmt.Errorf("record dev settings under %s: %w", cfg.VarDir, err)
	}
	if cfg.NATSURL == "" {
		ns, url, err := startEmbeddedNATS(filepath.Join(cfg.VarDir, "nats"), cfg.NATSEmbeddedAddr)
		if err != nil {
			return err
		}
		// Shut down after every role has drained its NATS connection.
		defer ns.WaitForShutdown()
		defer ns.Shutdown()
		cfg.NATSURL = url
		// Operator commands run beside payrail dev (payrail events) find
		// the embedded server here.
		if err := os.WriteFile(filepath.Join(cfg.VarDir, "nats.url"), []byte(url+"\n"), 0o600); err != nil {
			return err
		}
	}
	if err := ensureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	if _, _, err := migrateDB(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	svc, err := openServices(ctx, cfg)
	if err != nil {
		return err
	}
	defer svc.close()
	creds, err := devClient(ctx, svc)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	printDevBanner(ln.Addr().String(), creds, cfg.Nacha.DropDir, cfg.VarDir)
	return svc.runRoles(ctx, "dev", roles{api: ln, relay: true, worker: true, webhooks: true})
}

// devClient makes sure the dev org, an admin client and a demo account
// exist. The client's secret is kept in the var directory (secrets are
// stored hashed, so it could not be printed again otherwise).
func devClient(ctx context.Context, svc *services) (clientCredentials, error) {
	if err := svc.store.EnsureOrg(ctx, devOrg, "payrail dev org"); err != nil {
		return clientCredentials{}, err
	}
	path := filepath.Join(svc.cfg.VarDir, "dev-client.json")
	var creds clientCredentials
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &creds) == nil {
		if c, err := svc.store.ClientByID(ctx, creds.ClientID); err == nil && auth.CheckSecret(c.SecretHash, creds.ClientSecret) {
			return creds, ensureDevAccount(ctx, svc)
		}
	}
	creds, err := createClient(ctx, svc.store, devOrg, "dev", auth.RoleAdmin)
	if err != nil {
		return clientCredentials{}, err
	}
	b, _ := json.MarshalIndent(creds, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return clientCredentials{}, fmt.Errorf("save dev client: %w", err)
	}
	return creds, ensureDevAccount(ctx, svc)
}

func ensureDevAccount(ctx context.Context, svc *services) error {
	if err := ensureDevNachaConfig(ctx, svc); err != nil {
		return err
	}
	_, err := svc.store.Account(ctx, devOrg, devAccount)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_, _, err = svc.store.CreateAccount(ctx, devOrg, store.NewAccount{
		AccountID: devAccount, ProductID: "dev_product", CustomerName: "Dev Customer",
		RequestHash: []byte("payrail dev account"),
	})
	return err
}

// ensureDevNachaConfig gives the dev org a NACHA configuration (sample
// banks with valid routing numbers) unless it has one, so ACH payments
// made in payrail dev can be dropped into a file.
func ensureDevNachaConfig(ctx context.Context, svc *services) error {
	_, err := svc.store.NachaConfig(ctx, devOrg)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_, err = svc.store.PutNachaConfig(ctx, devOrg, store.NachaConfig{
		DestinationBankName: "FEDERAL RESERVE BANK", DestinationRouting: "091000019",
		OriginBankName: "PAYRAIL DEV BANK", OriginRouting: "231380104",
		CompanyName: "PAYRAIL DEV", CompanyIdentification: "1234567890", EntryDescription: "PAYMENT",
	})
	return err
}

func printDevBanner(addr string, c clientCredentials, dropDir, varDir string) {
	if abs, err := filepath.Abs(varDir); err == nil {
		varDir = abs
	}
	base := "http://" + addr
	expiry := time.Now().AddDate(2, 0, 0).Format("01/06")
	fmt.Printf(`
payrail dev is running at %[1]s  (Ctrl-C stops it)

  org:           %[2]s
  client_id:     %[3]s
  client_secret: %[4]s
  role:          %[5]s
  account:       %[6]s

Get a token:

TOKEN=$(curl -s -X POST %[1]s/auth/token -H 'Content-Type: application/json' \
  -d '{"client_id":"%[3]s","client_secret":"%[4]s"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

Create a charge:

curl -s -X POST %[1]s/accounts/%[6]s/line_items/charges \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"original_amount_cents":200,"line_item_status":"VALID","external_fields":[{"key":"order","value":"A-1"}]}'

Charge a card and wait up to 5 s for the outcome (the simulator approves; zip 46282 declines):

curl -s -X POST %[1]s/accounts/%[6]s/line_items/payments/guest_payment \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -H 'Prefer: wait=5' \
  -d '{"original_amount_cents":200,"payment_details":{"payment_type":"DEBIT","payment_processor_name":"AUTHORIZE_NET","card_number":"4007000000027","expiration_date":"%[7]s","cvv":"123","zip":"12345"}}'

Debit a bank account by ACH (staged for the next cutoff, 21:00 New York time on banking days):

curl -s -X POST %[1]s/accounts/%[6]s/line_items/payments/guest_payment \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"original_amount_cents":5000,"payment_details":{"payment_type":"ACH","payment_processor_name":"CANOPY_NACHA","bank_account_number":"123456789","bank_routing_number":"021000021","standard_entry_class":"WEB","name":"Dev Customer"}}'

Drop the NACHA file now instead of waiting for the cutoff, and watch the events:

./bin/payrail nacha drop          # the file lands in %[8]s
./bin/payrail nacha files         # every NACHA file, its state and last error
./bin/payrail events              # every line item status change so far

payrail nacha and payrail events find this dev's database, drop directory and
NATS address in %[9]s; from another directory first run
  export PAYRAIL_VAR_DIR=%[9]s

`, base, c.OrgID, c.ClientID, c.ClientSecret, c.Role, devAccount, expiry, dropDir, varDir)
}
