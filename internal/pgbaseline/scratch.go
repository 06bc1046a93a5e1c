package pgbaseline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/schema"
)

// Scratch creates a database named after prefix with a random suffix on
// the server serverURL points at, migrates it to payrail's schema and
// returns its URL and a function that drops it.
func Scratch(ctx context.Context, serverURL, prefix string) (dbURL string, drop func(context.Context) error, err error) {
	cfg, err := pgx.ParseConfig(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("pgbaseline: parse database URL: %w", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := prefix + "_" + hex.EncodeToString(b[:])
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("pgbaseline: connect to %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("pgbaseline: create database %s: %w", name, err)
	}
	drop = func(ctx context.Context) error {
		c, err := pgx.ConnectConfig(ctx, admin)
		if err != nil {
			return fmt.Errorf("pgbaseline: drop database %s: %w", name, err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("pgbaseline: drop database %s: %w", name, err)
		}
		return nil
	}
	dbURL = withDatabase(serverURL, name)
	mc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		_ = drop(context.Background())
		return "", nil, fmt.Errorf("pgbaseline: connect to %s: %w", name, err)
	}
	defer mc.Close(context.Background())
	if _, _, err := schema.Migrate(ctx, mc); err != nil {
		_ = drop(context.Background())
		return "", nil, fmt.Errorf("pgbaseline: migrate %s: %w", name, err)
	}
	return dbURL, drop, nil
}

// withDatabase returns the URL u with its database replaced by name.
// Only URLs (postgres://…) are handled, the form payrail's settings take.
func withDatabase(u, name string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u + " dbname=" + name
	}
	query := ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest, query = rest[:i], rest[i:]
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host + "/" + name + query
}

// The yardstick pays against this org and account, which Prepare creates.
const (
	orgID     = "bench_baseline"
	accountID = "acct_baseline"
)

// Prepare creates, through the store, the org and the account the
// yardstick's payments are made against, on the database dbURL points at
// (migrated, and used by nothing else: Scratch makes one).
func Prepare(ctx context.Context, dbURL string) error {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("pgbaseline: connect: %w", err)
	}
	defer pool.Close()
	key, err := keyring.NewKey()
	if err != nil {
		return err
	}
	ring, err := keyring.Parse("bl="+key, "")
	if err != nil {
		return err
	}
	st := store.New(pool, ring, canopy.Events{})
	if err := st.EnsureOrg(ctx, orgID, "payrail bench baseline"); err != nil {
		return fmt.Errorf("pgbaseline: create the org: %w", err)
	}
	if _, _, err := st.CreateAccount(ctx, orgID, store.NewAccount{AccountID: accountID, ProductID: "bench",
		CustomerName: "Bench Customer", RequestHash: []byte("payrail bench baseline")}); err != nil {
		return fmt.Errorf("pgbaseline: create the account: %w", err)
	}
	return nil
}
