// Package testenv is the harness every payrail integration test uses. It
// gives each test package (each test binary) services of its own:
//
//   - PostgreSQL: a freshly created and migrated database, Env.DatabaseURL
//     and Env.Pool (PoolConns connections), dropped at Close. A package
//     holds at most PackageBudget connections: more pools come from
//     Env.NewPool, and processes a test starts claim theirs with
//     Env.Reserve.
//   - NATS with JetStream: a server at Env.NATSURL, and a name unique to the
//     package run, Env.Name, to keep streams and subjects apart from other
//     packages using the same server. Name streams with Env.StreamName
//     ("PAYRAIL_JOBS" becomes "PAYRAIL_JOBS_INTAKE_1A2B3C4D") and subjects
//     with Env.Subject ("payrail.events.>" becomes
//     "intake_1a2b3c4d.payrail.events.>"). Close deletes every stream whose
//     name StreamName made.
//
// # Where the services come from
//
// The harness decides per service, once per test binary:
//
//   - PAYRAIL_TEST_DATABASE_URL and PAYRAIL_TEST_NATS_URL name running
//     servers. `make test` sets both to the machine's own PostgreSQL and NATS.
//   - A service whose variable is empty or unset runs in a container that
//     github.com/testcontainers/testcontainers-go starts: one PostgreSQL and
//     one NATS container per test package, terminated at Close. This needs a
//     Docker engine. The images are PAYRAIL_TEST_POSTGRES_IMAGE (default
//     DefaultPostgresImage, the official postgres image) and
//     PAYRAIL_TEST_NATS_IMAGE (default DefaultNATSImage, the official nats
//     image); any image that takes the official images' environment
//     variables and arguments works, such as the ones deploy/images builds.
//   - PAYRAIL_TEST_DOCKER_HOST_NETWORK=1 runs the containers on the host's
//     network instead of mapping their ports: each server gets a free port
//     on 127.0.0.1 as an argument (postgres -c port=N -c
//     listen_addresses=127.0.0.1; nats-server -p N -a 127.0.0.1). This is for
//     Docker engines without a bridge network, like payrail's CI machines,
//     where no traffic may leave loopback.
//
// Containers carry the label org.payrail.testenv, so a test binary killed
// before Close leaves containers that `docker rm -f $(docker ps -aq --filter
// label=org.payrail.testenv)` removes; .ci/run does that after every run.
//
// Use it from TestMain:
//
//	var env *testenv.Env
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "intake", &env)) }
//
// Open takes explicit Options instead of the environment.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"

	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/schema"
)

// startTimeout bounds Main's Start: long enough for a first image pull on a
// laptop, short enough that a hung engine fails the package.
const startTimeout = 5 * time.Minute

// Env is one test package's services.
type Env struct {
	// DatabaseURL points at the package's own database.
	DatabaseURL string
	Pool        *pgxpool.Pool
	// Ring is a keyring with a random key, for stores under test.
	Ring *keyring.Ring

	// NATSURL points at a NATS server with JetStream enabled.
	NATSURL string
	// Name is unique to this package run: lower-case letters, digits and
	// underscores, such as "intake_1a2b3c4d". StreamName and Subject build
	// on it; use it directly for anything else that must not collide, such
	// as durable consumer names.
	Name string

	adminURL   string // server the database was created on
	dbName     string
	dbShared   bool // the server came from Options: drop the database at Close
	natsShared bool // the server came from Options: delete our streams at Close
	containers []testcontainers.Container
	budget     budget
}

// Main starts the environment, runs the package's tests and tears the
// environment down; it returns the exit code for os.Exit.
func Main(m *testing.M, pkg string, env **Env) int {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	e, err := Start(ctx, pkg)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	*env = e
	code := m.Run()
	if err := e.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
	}
	return code
}

// Start opens the environment for package pkg with the options the
// environment variables give (see the package comment).
func Start(ctx context.Context, pkg string) (*Env, error) {
	opts, err := OptionsFromEnv(pkg)
	if err != nil {
		return nil, err
	}
	return Open(ctx, opts)
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]`)

// Open starts the containers opts asks for, creates and migrates the
// package's database and checks that NATS answers with JetStream. On error
// it releases whatever it had started.
func Open(ctx context.Context, opts Options) (env *Env, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	e := &Env{Name: unsafeName.ReplaceAllString(strings.ToLower(opts.Package), "_") + "_" + hex.EncodeToString(suffix)}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
			env = nil
		}
	}()

	adminURL, natsURL := opts.DatabaseURL, opts.NATSURL
	if adminURL == "" || natsURL == "" {
		started, err := startContainers(ctx, opts, e.Name)
		e.containers = started.containers
		if err != nil {
			return e, fmt.Errorf("containers (started because %s or %s is unset): %w", EnvDatabaseURL, EnvNATSURL, err)
		}
		if adminURL == "" {
			adminURL = started.databaseURL
		}
		if natsURL == "" {
			natsURL = started.natsURL
		}
	}
	e.NATSURL = natsURL
	if opts.NATSURL != "" {
		if err := checkNATS(ctx, natsURL, ""); err != nil {
			return e, fmt.Errorf("%s: %w", EnvNATSURL, err)
		}
		e.natsShared = true
	}
	e.dbShared = opts.DatabaseURL != ""

	if err := e.createDatabase(ctx, adminURL); err != nil {
		return e, err
	}
	key, err := keyring.NewKey()
	if err != nil {
		return e, err
	}
	if e.Ring, err = keyring.Parse("test="+key, ""); err != nil {
		return e, err
	}
	return e, nil
}

// createDatabase creates, migrates and opens the package's database on the
// server at adminURL.
func (e *Env) createDatabase(ctx context.Context, adminURL string) error {
	name := "payrail_test_" + e.Name
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", ConnectError(err))
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create test database %s: %w", name, ConnectError(err))
	}
	e.adminURL, e.dbName = adminURL, name

	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return err
	}
	e.DatabaseURL = withDatabase(adminURL, cfg.Database, name)

	conn, err := pgx.Connect(ctx, e.DatabaseURL)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", name, ConnectError(err))
	}
	_, _, err = schema.Migrate(ctx, conn)
	conn.Close(context.Background())
	if err != nil {
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	// The pool's size is part of the package's connection budget.
	if e.Pool, err = newPool(ctx, e.DatabaseURL, PoolConns); err != nil {
		return err
	}
	if err := e.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("connect to %s: %w", name, ConnectError(err))
	}
	return nil
}

// withDatabase swaps the database name in a postgres:// URL.
func withDatabase(url, from, to string) string {
	base, query, _ := strings.Cut(url, "?")
	if from != "" && strings.HasSuffix(base, "/"+from) {
		base = strings.TrimSuffix(base, "/"+from)
	}
	base = strings.TrimSuffix(base, "/") + "/" + to
	if query != "" {
		return base + "?" + query
	}
	return base
}

// StreamName returns base made unique to this package run, for a
// JetStream stream: "PAYRAIL_JOBS" becomes "PAYRAIL_JOBS_INTAKE_1A2B3C4D".
// Close deletes the streams so named.
func (e *Env) StreamName(base string) string {
	return base + e.streamSuffix()
}

func (e *Env) streamSuffix() string { return "_" + strings.ToUpper(e.Name) }

// Subject returns subject (which may end in a wildcard) under a prefix
// unique to this package run: "payrail.events.>" becomes
// "intake_1a2b3c4d.payrail.events.>". Two packages' streams on one server
// must not claim the same subjects; prefixed subjects never do.
func (e *Env) Subject(subject string) string {
	return e.Name + "." + subject
}

// Close releases everything Open made: the pool, the package's database and
// streams on shared servers, and the containers. It is safe on a partly
// opened Env.
func (e *Env) Close() error {
	var errs []error
	if e.Pool != nil {
		e.Pool.Close()
	}
	// A container's data goes with it; only shared servers need tidying.
	if e.dbShared && e.dbName != "" {
		errs = append(errs, e.dropDatabase())
	}
	if e.natsShared {
		errs = append(errs, deleteStreams(e.NATSURL, e.streamSuffix()))
	}
	errs = append(errs, terminate(e.containers))
	e.containers = nil
	return errors.Join(errs...)
}

func (e *Env) dropDatabase() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return fmt.Errorf("drop %s: %w", e.dbName, ConnectError(err))
	}
	defer admin.Close(context.Background())
	_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{e.dbName}.Sanitize()+" WITH (FORCE)")
	if err != nil {
		return fmt.Errorf("drop %s: %w", e.dbName, err)
	}
	return nil
}

// UniqueID returns prefix plus random hex, for org and account ids that
// keep tests in one database apart.
func UniqueID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// WaitFor polls cond every millisecond until it holds, failing t after
// 10 s with what it waited for: for outcomes that arrive asynchronously,
// never as a timing assertion.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
