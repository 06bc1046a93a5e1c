package pgbaseline

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/payrail/payrail/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "pgbaseline", &env)) }

// tables are those one payment writes rows to.
var tables = []string{"line_items", "line_item_transitions", "payment_attempts", "outbox"}

func rowCounts(t *testing.T, ctx context.Context, dbURL string) map[string]int {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	out := map[string]int{}
	for _, tbl := range tables {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tbl] = n
	}
	var unpublished int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE published_at IS NULL").Scan(&unpublished); err != nil {
		t.Fatal(err)
	}
	out["outbox unpublished"] = unpublished
	return out
}

// The yardstick still does one payment's work on today's schema: after
// pgbench ran it k times, the line item, transition and attempt tables
// hold k rows each and the outbox 2k rows, all marked published. A schema
// change the frozen SQL no longer fits shows as pgbench failures or
// missing rows.
func TestRound1WritesOnePayment(t *testing.T) {
	if !Available("") {
		t.Fatal("pgbench is not installed: install postgresql-client (it ships pgbench)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL, drop, err := Scratch(ctx, env.DatabaseURL, "payrail_baseline_test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := drop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	if err := Prepare(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	const clients, perClient = 2, 5
	res, err := Run(ctx, Options{DatabaseURL: dbURL, Script: Round1(), Clients: clients, Transactions: perClient})
	if err != nil {
		t.Fatal(err)
	}
	if res.Processed != clients*perClient || res.Failed != 0 || res.TPS <= 0 {
		t.Fatalf("pgbench processed %d, failed %d, tps %v; want %d, 0, positive", res.Processed, res.Failed, res.TPS, clients*perClient)
	}
	got := rowCounts(t, ctx, dbURL)
	want := map[string]int{"line_items": clients * perClient, "line_item_transitions": clients * perClient,
		"payment_attempts": clients * perClient, "outbox": 2 * clients * perClient, "outbox unpublished": 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows after the yardstick ran %d times: %v, want %v", clients*perClient, got, want)
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/payrail?sslmode=disable", "postgres://postgres@127.0.0.1:5432/x?sslmode=disable"},
		{"postgres://u:p@h/db", "postgres://u:p@h/x"},
		{"postgres://h:5432", "postgres://h:5432/x"},
	}
	for _, tt := range tests {
		if got := withDatabase(tt.in, "x"); got != tt.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseOutput(t *testing.T) {
	const pg15 = `transaction type: /tmp/payment.sql
scaling factor: 1
query mode: prepared
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 11112
number of failed transactions: 3 (0.027%)
latency average = 14.398 ms
initial connection time = 21.707 ms
tps = 1111.234567 (without initial connection time)
`
	tests := []struct {
		name    string
		out     string
		want    Result
		wantErr bool
	}{
		{"pgbench 15", pg15, Result{TPS: 1111.234567, LatencyMS: 14.398, Processed: 11112, Failed: 3}, false},
		{"no tps", "pgbench: error: connection failed\n", Result{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOutput([]byte(tt.out))
			if (err != nil) != tt.wantErr || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("parseOutput = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
