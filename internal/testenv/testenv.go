// Package testenv is the harness every payrail integration test uses: it
// gives each test package its own freshly migrated PostgreSQL database on
// the server named by PAYRAIL_TEST_DATABASE_URL and drops it afterwards.
//
// Use it from TestMain:
//
//	var env *testenv.Env
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "intake", &env)) }
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

	"github.com/payrail/payrail/keyring"
	"github.com/payrail/payrail/schema"
)

// Env is one test package's services.
type Env struct {
	// DatabaseURL points at the package's own database.
	DatabaseURL string
	Pool        *pgxpool.Pool
	// Ring is a keyring with a random key, for stores under test.
	Ring *keyring.Ring

	adminURL string
	dbName   string
}

// Main starts the environment, runs the package's tests and tears the
// environment down; it returns the exit code for os.Exit.
func Main(m *testing.M, pkg string, env **Env) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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

var unsafeName = regexp.MustCompile(`[^a-z0-9_]`)

// Start creates and migrates a database named after pkg.
func Start(ctx context.Context, pkg string) (*Env, error) {
	adminURL := os.Getenv("PAYRAIL_TEST_DATABASE_URL")
	if adminURL == "" {
		return nil, errors.New("PAYRAIL_TEST_DATABASE_URL is not set: point it at a PostgreSQL server " +
			"(make test sets postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	name := "payrail_test_" + unsafeName.ReplaceAllString(strings.ToLower(pkg), "_") + "_" + hex.EncodeToString(suffix)

	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to PAYRAIL_TEST_DATABASE_URL: %w", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create test database %s: %w", name, err)
	}
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return nil, err
	}
	dbURL := withDatabase(adminURL, cfg.Database, name)

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	_, _, err = schema.Migrate(ctx, conn)
	conn.Close(context.Background())
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	key, err := keyring.NewKey()
	if err != nil {
		return nil, err
	}
	ring, err := keyring.Parse("test="+key, "")
	if err != nil {
		return nil, err
	}
	return &Env{DatabaseURL: dbURL, Pool: pool, Ring: ring, adminURL: adminURL, dbName: name}, nil
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

// Close drops the package's database.
func (e *Env) Close() error {
	e.Pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return fmt.Errorf("drop %s: %w", e.dbName, err)
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
