package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"
)

func TestOptionsFrom(t *testing.T) {
	env := map[string]string{
		EnvDatabaseURL:   "postgres://db",
		EnvNATSURL:       "nats://mq",
		EnvPostgresImage: "pg:x",
		EnvNATSImage:     "nats:x",
		EnvHostNetwork:   "1",
	}
	got, err := optionsFrom("intake", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Package: "intake", DatabaseURL: "postgres://db", NATSURL: "nats://mq",
		PostgresImage: "pg:x", NATSImage: "nats:x", HostNetwork: true}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	got, err = optionsFrom("intake", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got != (Options{Package: "intake"}) {
		t.Fatalf("empty environment gave %+v", got)
	}
	got, err = got.withDefaults()
	if err != nil || got.PostgresImage != DefaultPostgresImage || got.NATSImage != DefaultNATSImage {
		t.Fatalf("defaults: %+v, %v", got, err)
	}

	if _, err := optionsFrom("intake", func(k string) string {
		if k == EnvHostNetwork {
			return "yes please"
		}
		return ""
	}); err == nil {
		t.Fatal("a bad host-network switch was accepted")
	}
	if _, err := (Options{}).withDefaults(); err == nil {
		t.Fatal("options without a package were accepted")
	}
}

func TestNames(t *testing.T) {
	e := &Env{Name: "intake_1a2b3c4d"}
	if got := e.StreamName("PAYRAIL_JOBS"); got != "PAYRAIL_JOBS_INTAKE_1A2B3C4D" {
		t.Errorf("StreamName = %q", got)
	}
	if got := e.Subject("payrail.events.>"); got != "intake_1a2b3c4d.payrail.events.>" {
		t.Errorf("Subject = %q", got)
	}
}

func TestWithDatabase(t *testing.T) {
	for _, c := range []struct{ url, from, want string }{
		{"postgres://u@h:5432/postgres?sslmode=disable", "postgres", "postgres://u@h:5432/x?sslmode=disable"},
		{"postgres://u@h:5432/", "", "postgres://u@h:5432/x"},
		{"postgres://u@h:5432", "", "postgres://u@h:5432/x"},
	} {
		if got := withDatabase(c.url, c.from, "x"); got != c.want {
			t.Errorf("withDatabase(%q) = %q, want %q", c.url, got, c.want)
		}
	}
}

// TestLifecycle opens an environment the way the package's callers do, from
// the environment variables, so it runs against service URLs under `make
// test` and against containers under `make test-containers`. It checks
// that every service works and that Close leaves nothing behind.
func TestLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	e, err := Start(ctx, "testenv")
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = e.Close()
		}
	}()

	if !strings.HasPrefix(e.Name, "testenv_") {
		t.Errorf("Name %q does not start with the package", e.Name)
	}
	var n int
	if err := e.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = current_database()").Scan(&n); err != nil || n != 1 {
		t.Fatalf("package database: %d, %v", n, err)
	}

	nc, err := connectNATS(e.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream := e.StreamName("JOBS")
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{e.Subject("jobs.>")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, e.Subject("jobs.a"), []byte("x")); err != nil {
		t.Fatal(err)
	}

	dbURL, adminURL, dbShared, natsShared := e.DatabaseURL, e.adminURL, e.dbShared, e.natsShared
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true

	if natsShared {
		if _, err := js.Stream(ctx, stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream %s after Close: %v", stream, err)
		}
	}
	if dbShared {
		admin, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(context.Background())
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", e.dbName).Scan(&n); err != nil || n != 0 {
			t.Errorf("database %s after Close: %d, %v", e.dbName, n, err)
		}
	} else {
		// The container is gone, and its server with it.
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		defer ccancel()
		if conn, err := pgx.Connect(cctx, dbURL); err == nil {
			conn.Close(context.Background())
			t.Errorf("PostgreSQL container still answers after Close")
		}
	}
}

// The package's pools and processes fit in its share of the server's
// connections, and what a test claims is given back when it ends.
func TestConnectionBudget(t *testing.T) {
	if PackageBudget*2 >= 40 {
		t.Errorf("two packages at once (make test: go test -p 2) may hold %d connections, want fewer than 40", PackageBudget*2)
	}
	e := &Env{}
	free := e.Available()
	if free != PackageBudget-AdminConns-PoolConns || free <= 0 {
		t.Fatalf("Available() = %d", free)
	}
	t.Run("claim", func(t *testing.T) {
		if got := e.Reserve(t, free, "everything"); got != free || e.Available() != 0 {
			t.Errorf("Reserve returned %d, %d left", got, e.Available())
		}
	})
	if e.Available() != free {
		t.Errorf("after the test ended %d left, want %d", e.Available(), free)
	}
}

func TestConnectErrorExplainsTooManyClients(t *testing.T) {
	pgErr := &pgconn.PgError{Severity: "FATAL", Code: "53300", Message: "sorry, too many clients already"}
	err := ConnectError(fmt.Errorf("failed to connect: %w", pgErr))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" {
		t.Errorf("the PostgreSQL error left the chain: %v", err)
	}
	for _, want := range []string{"too many clients already", "SQLSTATE 53300", "docs/testing.md", "go test -p 1", "max_connections"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	other := errors.New("connection refused")
	if ConnectError(other) != other || ConnectError(nil) != nil {
		t.Error("other errors must come back unchanged")
	}
}
