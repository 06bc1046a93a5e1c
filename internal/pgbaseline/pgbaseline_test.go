package pgbaseline

import (
	"context"
	"fmt"
	"os"
	"strings"
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

// The script does what one payment through the store does: after pgbench
// ran it k times, every table one payment writes holds k+1 times the rows
// the captured payment left, and every outbox row is marked published.
// Were the script to drift from the store's statements (a statement
// missing, an id not new per transaction), the counts or pgbench's
// failures would show it.
func TestCaptureMatchesStore(t *testing.T) {
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
	script, err := Capture(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("script:\n%s", script.Text)
	once := rowCounts(t, ctx, dbURL)
	if once["outbox unpublished"] != 0 {
		t.Fatalf("the captured payment left %d outbox rows unpublished", once["outbox unpublished"])
	}
	for _, tbl := range tables {
		if once[tbl] == 0 {
			t.Fatalf("the captured payment wrote no row to %s", tbl)
		}
	}
	var kinds []string
	for _, s := range script.Statements {
		kinds = append(kinds, strings.Join(strings.Fields(firstLine(s.SQL)), " "))
	}
	for _, want := range []string{"begin", "commit"} {
		if !containsFold(kinds, want) {
			t.Errorf("statements %q lack %s", kinds, want)
		}
	}

	const clients, perClient = 2, 5
	res, err := Run(ctx, Options{DatabaseURL: dbURL, Script: script.Text, Clients: clients, Transactions: perClient})
	if err != nil {
		t.Fatal(err)
	}
	if res.Processed != clients*perClient || res.Failed != 0 || res.TPS <= 0 {
		t.Fatalf("pgbench processed %d, failed %d, tps %v; want %d, 0, positive", res.Processed, res.Failed, res.TPS, clients*perClient)
	}
	after := rowCounts(t, ctx, dbURL)
	for _, tbl := range tables {
		if want := once[tbl] * (1 + clients*perClient); after[tbl] != want {
			t.Errorf("%s: %d rows after the script ran %d times, want %d (%d per payment)",
				tbl, after[tbl], clients*perClient, want, once[tbl])
		}
	}
	if after["outbox unpublished"] != 0 {
		t.Errorf("the script left %d outbox rows unpublished", after["outbox unpublished"])
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "U&'plain'"},
		{"it's", "U&'it''s'"},
		{`\x0a`, `U&'\\x0a'`},
		{"2026-11-30 10:23:06+00", `U&'2026-11-30 10\003A23\003A06+00'`},
		{`{"a":1}`, `U&'{"a"\003A1}'`},
	}
	for _, tt := range tests {
		if got := quote(tt.in); got != tt.want {
			t.Errorf("quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestFreshExpr(t *testing.T) {
	fresh := []string{"bl_abc", "att_xyz"}
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"bl_abc", "(U&'bl_b0_' || :n)::text", true},
		{"job.att_xyz", "(U&'job.' || U&'att_b1_' || :n)::text", true},
		{"att_xyz/bl_abc", "(U&'att_b1_' || :n || U&'/' || U&'bl_b0_' || :n)::text", true},
		{"other", "", false},
	}
	for _, tt := range tests {
		got, ok := freshExpr(tt.in, fresh)
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("freshExpr(%q) = %s, %v; want %s, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
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
