// Package schema owns payrail's PostgreSQL schema: the numbered migrations
// embedded in the binary and the function that applies them.
package schema

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var migrations embed.FS

// versionTable records which migrations have run.
const versionTable = "payrail_schema_version"

// Migrate applies every pending migration. tern holds a PostgreSQL advisory
// lock while it runs, so several processes starting at once are safe.
func Migrate(ctx context.Context, conn *pgx.Conn) (from, to int32, err error) {
	return MigrateTo(ctx, conn, -1)
}

// MigrateTo applies the pending migrations up to version (every one when
// version is negative). Upgrade tests use it to build the schema an earlier release
// left, with its data, before migrating the rest.
func MigrateTo(ctx context.Context, conn *pgx.Conn, version int32) (from, to int32, err error) {
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("schema: prepare migrator: %w", err)
	}
	if err := m.LoadMigrations(migrations); err != nil {
		return 0, 0, fmt.Errorf("schema: load embedded migrations: %w", err)
	}
	from, err = m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("schema: read current version: %w", err)
	}
	if version < 0 || version > int32(len(m.Migrations)) {
		version = int32(len(m.Migrations))
	}
	if err := m.MigrateTo(ctx, version); err != nil {
		return from, 0, fmt.Errorf("schema: migrate from version %d to %d: %w", from, version, err)
	}
	return from, version, nil
}
