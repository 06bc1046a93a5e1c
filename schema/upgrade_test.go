package schema_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/schema"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "schema", &env)) }

// earlierSchema returns a connection whose tables are the schema at
// version, in a PostgreSQL schema of their own (search_path), so the
// migrations after it run on data an earlier release wrote.
func earlierSchema(t *testing.T, version int32) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	name := testenv.UniqueID("upgrade_")
	if _, err := env.Pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.Pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE")
	})
	cfg, err := pgx.ParseConfig(env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, to, err := schema.MigrateTo(ctx, conn, version); err != nil || to != version {
		t.Fatalf("migrate to %d: reached %d, %v", version, to, err)
	}
	return conn
}

// Schema 013 moves the jobs held in outbox rows to their attempts: an
// unfinished attempt whose row was published gets its job and the row
// goes; an unpublished row names its attempt and keeps its payload (an
// earlier relay still running publishes it); an attempt whose result
// removed the row's payload holds none; event rows are untouched.
func TestMigration013MovesJobsToAttempts(t *testing.T) {
	ctx := context.Background()
	conn := earlierSchema(t, 12)
	for _, q := range []string{
		`INSERT INTO orgs (org_id, name) VALUES ('o', 'org')`,
		`INSERT INTO accounts (org_id, account_id, product_id, request_hash) VALUES ('o', 'a', 'p', '\x00')`,
		`INSERT INTO line_items (org_id, account_id, line_item_id, line_item_type, status, original_amount_cents,
		     effective_at, created_at, updated_at, origin, request_hash, client_id)
		 SELECT 'o', 'a', li, 'PAYMENT', 'PENDING', 100, now(), now(), now(), 'guest_payment', '\x00', 'c'
		   FROM unnest(ARRAY['published', 'unpublished', 'finished']) li`,
		`INSERT INTO payment_attempts (attempt_id, org_id, account_id, line_item_id, processor, payment_type, status,
		     job_msg_id, created_at, updated_at)
		 SELECT 'att_' || li, 'o', 'a', li, 'AUTHORIZE_NET', 'DEBIT', CASE li WHEN 'finished' THEN 'succeeded' ELSE 'queued' END,
		        'job_att_' || li, now(), now()
		   FROM unnest(ARRAY['published', 'unpublished', 'finished']) li`,
		`INSERT INTO outbox (msg_id, subject, payload, published_at) VALUES
		     ('job_att_published', 'jobs.AUTHORIZE_NET', 'sealed published', now()),
		     ('job_att_unpublished', 'jobs.AUTHORIZE_NET', 'sealed unpublished', NULL),
		     ('job_att_finished', 'jobs.AUTHORIZE_NET', NULL, now()),
		     ('evt_1', 'events.line_item.pending', '{}', NULL)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if from, to, err := schema.MigrateTo(ctx, conn, 13); err != nil || from != 12 || to != 13 {
		t.Fatalf("migrate 12 → 13: %d → %d, %v", from, to, err)
	}

	jobs := map[string]string{}
	rows, err := conn.Query(ctx, `SELECT attempt_id, COALESCE(convert_from(job, 'UTF8'), '') FROM payment_attempts`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, job string
		if err := rows.Scan(&id, &job); err != nil {
			t.Fatal(err)
		}
		jobs[id] = job
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"att_published": "sealed published", "att_unpublished": "sealed unpublished", "att_finished": ""}
	for id, job := range want {
		if jobs[id] != job {
			t.Errorf("attempt %s holds %q, want %q", id, jobs[id], job)
		}
	}

	type row struct{ attempt, payload string }
	left := map[string]row{}
	rows, err = conn.Query(ctx, `SELECT msg_id, COALESCE(attempt_id, ''), COALESCE(convert_from(payload, 'UTF8'), '') FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.attempt, &r.payload); err != nil {
			t.Fatal(err)
		}
		left[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantRows := map[string]row{
		"job_att_unpublished": {"att_unpublished", "sealed unpublished"},
		"evt_1":               {"", "{}"},
	}
	if len(left) != len(wantRows) {
		t.Errorf("outbox rows after the migration: %v, want %v", left, wantRows)
	}
	for id, r := range wantRows {
		if left[id] != r {
			t.Errorf("row %s: %+v, want %+v", id, left[id], r)
		}
	}
}
