package testenv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL connection budget (docs/testing.md). The server of
// `make test` is shared with other programs and allows 100 connections in
// all, so the whole suite must stay well below that: `make test` runs at
// most two test packages at once (go test -p 2), and each package holds at
// most PackageBudget connections, so the suite never holds more than 36.
const (
	// PackageBudget is the most connections one test package (one test
	// binary and the processes it starts) holds at once.
	PackageBudget = 18
	// AdminConns is what the harness itself holds beside Env.Pool: one
	// connection while it creates, migrates or drops the database.
	AdminConns = 1
	// PoolConns is Env.Pool's MaxConns.
	PoolConns = 4
)

// budget counts the connections a package's tests have claimed beyond
// Env.Pool: pools opened with NewPool and processes' pools declared with
// Reserve.
type budget struct {
	mu      sync.Mutex
	claimed int
}

// Available is how many connections tests may still claim with NewPool and
// Reserve.
func (e *Env) Available() int {
	e.budget.mu.Lock()
	defer e.budget.mu.Unlock()
	return PackageBudget - AdminConns - PoolConns - e.budget.claimed
}

// Reserve claims n connections of the package's budget until t ends, for
// something the harness does not open itself: a payrail process started
// with PAYRAIL_DATABASE_MAX_CONNS=n, a relay's LISTEN connection (hijacked
// from its pool, so one beyond the pool's MaxConns). It fails t when the
// budget has no n connections left. It returns n.
func (e *Env) Reserve(t testing.TB, n int, what string) int {
	t.Helper()
	e.budget.mu.Lock()
	left := PackageBudget - AdminConns - PoolConns - e.budget.claimed
	if n > left {
		e.budget.mu.Unlock()
		t.Fatalf("testenv: %s needs %d PostgreSQL connections, but only %d of the package's budget of %d are left (docs/testing.md)",
			what, n, left, PackageBudget)
	}
	e.budget.claimed += n
	e.budget.mu.Unlock()
	t.Cleanup(func() {
		e.budget.mu.Lock()
		e.budget.claimed -= n
		e.budget.mu.Unlock()
	})
	return n
}

// NewPool opens a pool of at most maxConns connections to the package's
// database, claimed from the budget (Reserve) and closed when t ends.
func (e *Env) NewPool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	return e.NewPoolURL(t, e.DatabaseURL, maxConns)
}

// NewPoolURL is NewPool for another way to the package's database, such as
// a proxy in front of it.
func (e *Env) NewPoolURL(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	e.Reserve(t, int(maxConns), fmt.Sprintf("a pool of %d", maxConns))
	pool, err := newPool(context.Background(), url, maxConns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newPool(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, ConnectError(err)
	}
	return pool, nil
}

// Connections counts the connections open to the package's database now,
// the asking one included, as PostgreSQL sees them (pg_stat_activity).
func (e *Env) Connections(ctx context.Context) (int, error) {
	var n int
	err := e.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, e.dbName).Scan(&n)
	return n, ConnectError(err)
}

// CheckConnections fails t when more connections are open to the package's
// database than its budget allows (idle pooled connections stay open, so
// a count at the end of a test sees what its pools grew to).
func (e *Env) CheckConnections(t testing.TB) {
	t.Helper()
	n, err := e.Connections(context.Background())
	if err != nil {
		t.Error(err)
		return
	}
	if n > PackageBudget {
		t.Errorf("testenv: %d connections open to %s, over the package budget of %d (docs/testing.md)", n, e.dbName, PackageBudget)
	}
}

// SQLSTATE 53300, too_many_connections: "sorry, too many clients already",
// or a role's or database's connection limit.
const tooManyConnections = "53300"

// ConnectError says what to do when err is PostgreSQL refusing a
// connection because its connections are used up; other errors come back
// unchanged. The PostgreSQL error stays in the chain.
func ConnectError(err error) error {
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) || pe.Code != tooManyConnections {
		return err
	}
	return fmt.Errorf("%w\ntestenv: PostgreSQL has no connection left for this test package (SQLSTATE 53300): "+
		"other programs use the server's max_connections. Each test package holds at most %d (docs/testing.md); "+
		"wait for other work to finish, run fewer packages at once (go test -p 1), or raise max_connections", err, PackageBudget)
}

// StatementCounter counts the statements a pool sends (BEGIN and COMMIT
// included): each is at least one round trip to PostgreSQL.
type StatementCounter struct{ n atomic.Int64 }

// Count is how many statements were sent so far.
func (c *StatementCounter) Count() int64 { return c.n.Load() }

// TraceQueryStart implements pgx.QueryTracer.
func (c *StatementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (c *StatementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// CountingPool opens a one-connection pool to the package's database whose
// statements are counted, claimed from the budget and closed when t ends.
func (e *Env) CountingPool(t testing.TB) (*pgxpool.Pool, *StatementCounter) {
	t.Helper()
	e.Reserve(t, 1, "a counting pool")
	cfg, err := pgxpool.ParseConfig(e.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	c := &StatementCounter{}
	cfg.MaxConns = 1
	cfg.ConnConfig.Tracer = c
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(ConnectError(err))
	}
	t.Cleanup(pool.Close)
	return pool, c
}
