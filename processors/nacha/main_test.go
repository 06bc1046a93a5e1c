package nacha

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/processors"
)

var env *testenv.Env

// update rewrites the golden files in testdata/ instead of comparing.
var update = flag.Bool("update", false, "rewrite golden NACHA files in testdata/")

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testenv.Main(m, "processors_nacha", &env))
}

// ny is the default cutoff zone; test instants are written in it.
func ny(t testing.TB, y int, mo time.Month, d, h, mi int) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	return time.Date(y, mo, d, h, mi, 0, 0, loc)
}

// fixture is one test's org, processor and clock, isolated from other
// tests in the package database by its own org and its own routing
// numbers (trace counters and file ID modifiers are keyed by them).
type fixture struct {
	t      testing.TB
	ctx    context.Context
	org    string
	p      *Processor
	ledger *testLedger
	store  *store.Store
	dir    string
	clock  atomic.Pointer[time.Time]
	reg    *prometheus.Registry

	origin, destination string
	accounts            map[string]bool
	logs                *testenv.LogBuffer
}

// accountNumbers are every account number the tests stage; none may ever
// appear in a log line or an error.
var accountNumbers = []string{"12345678901", "000123456789", "9988776655", "55500011122"}

type fixtureOpts struct {
	balanced    bool
	origin      string // fixed routing numbers make golden files stable
	destination string
	org         string
	placement   string // offset placement of a balanced config; "" the default
	mutate      func(*Config)
}

func newFixture(t testing.TB, now time.Time, o fixtureOpts) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, ctx: ctx, org: o.org, dir: t.TempDir(), ledger: &testLedger{},
		store: store.New(env.Pool, env.Ring, canopy.Events{}), reg: prometheus.NewRegistry(), accounts: map[string]bool{},
		origin: o.origin, destination: o.destination, logs: &testenv.LogBuffer{}}
	if f.org == "" {
		f.org = testenv.UniqueID("org_")
	}
	if f.origin == "" {
		f.origin = randomRouting(t)
	}
	if f.destination == "" {
		f.destination = randomRouting(t)
	}
	f.setNow(now)
	if _, err := env.Pool.Exec(ctx, testEventsDDL); err != nil {
		t.Fatal(err)
	}
	// Drops cut every org's due entries; a test must not leave staged
	// entries behind for another test's drop (with another clock) to cut.
	t.Cleanup(func() {
		if _, err := env.Pool.Exec(context.Background(),
			`DELETE FROM nacha_entries WHERE org_id = $1 AND status = 'staged'`, f.org); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		// Likewise a file left awaiting an upload (its SFTP server and
		// drop directory are gone with the test).
		if _, err := env.Pool.Exec(context.Background(),
			`UPDATE nacha_files SET upload_required = false WHERE org_id = $1 AND status = 'written'`, f.org); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := f.store.EnsureOrg(ctx, f.org, "Test org"); err != nil {
		t.Fatal(err)
	}
	cfg := store.NachaConfig{
		DestinationBankName: "Federal Reserve Bank", DestinationRouting: f.destination,
		OriginBankName: "Payrail Test Bank", OriginRouting: f.origin,
		CompanyName: "Payrail Lending", CompanyIdentification: "1234567890", EntryDescription: "LOAN PMT",
		Balanced: o.balanced, OffsetPlacement: o.placement,
	}
	if o.balanced {
		cfg.Offset = &store.OffsetAccount{RoutingNumber: f.origin, AccountNumber: "9988776655", AccountType: "CHECKING"}
	}
	if _, err := f.store.PutNachaConfig(ctx, f.org, cfg); err != nil {
		t.Fatal(err)
	}
	c := Config{Pool: env.Pool, Ring: env.Ring, Ledger: f.ledger, DropDir: f.dir, Registerer: f.reg,
		Now:    func() time.Time { return *f.clock.Load() },
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	t.Cleanup(func() {
		logs := f.logs.String()
		for _, n := range accountNumbers {
			if strings.Contains(logs, n) {
				t.Errorf("logs contain account number %s", n)
			}
		}
	})
	if o.mutate != nil {
		o.mutate(&c)
	}
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	return f
}

func (f *fixture) setNow(t time.Time) { f.clock.Store(&t) }

// randomRouting returns a routing number with a valid ABA check digit.
func randomRouting(t testing.TB) string {
	n, err := rand.Int(rand.Reader, big.NewInt(90_000_000))
	if err != nil {
		t.Fatal(err)
	}
	return withCheckDigit(fmt.Sprintf("%08d", 10_000_000+n.Int64()))
}

func withCheckDigit(eight string) string {
	w := []int{3, 7, 1, 3, 7, 1, 3, 7}
	sum := 0
	for i := 0; i < 8; i++ {
		sum += int(eight[i]-'0') * w[i]
	}
	return eight + fmt.Sprint((10-sum%10)%10)
}

// payment describes one ACH payment to stage.
type payment struct {
	account, lineItem string
	amount            int64
	sec               string
	accountType       string
	routing, number   string
	name              string
	effectiveAt       time.Time
}

// ensureAccount creates the account row (plain SQL: the store's account
// API is not under test here).
func (f *fixture) ensureAccount(account string) {
	f.t.Helper()
	if f.accounts[account] {
		return
	}
	_, err := env.Pool.Exec(f.ctx, `
		INSERT INTO accounts (org_id, account_id, product_id, customer_name, request_hash)
		VALUES ($1, $2, 'prod', 'Customer Of '||$2, '\x00') ON CONFLICT DO NOTHING`, f.org, account)
	if err != nil {
		f.t.Fatal(err)
	}
	f.accounts[account] = true
}

// stage creates the PENDING payment line item and runs Process for it,
// as the worker would.
func (f *fixture) stage(pm payment) processors.Result {
	f.t.Helper()
	res, err := f.tryStage(pm)
	if err != nil {
		f.t.Fatalf("stage %s: %v", pm.lineItem, err)
	}
	return res
}

func (f *fixture) tryStage(pm payment) (processors.Result, error) {
	f.t.Helper()
	if pm.account == "" {
		pm.account = "acct_1"
	}
	if pm.sec == "" {
		pm.sec = "WEB"
	}
	if pm.routing == "" {
		pm.routing = "231380104"
	}
	if pm.number == "" {
		pm.number = "12345678901"
	}
	if pm.name == "" {
		pm.name = "Jane Doe"
	}
	f.ensureAccount(pm.account)
	now := *f.clock.Load()
	_, err := env.Pool.Exec(f.ctx, `
		INSERT INTO line_items (org_id, account_id, line_item_id, line_item_type, status, original_amount_cents,
		    effective_at, created_at, updated_at, origin, processor, request_hash, client_id)
		VALUES ($1, $2, $3, 'PAYMENT', 'PENDING', $4, $5, $5, $5, 'guest_payment', 'CANOPY_NACHA', '\x00', 'test')
		ON CONFLICT DO NOTHING`, f.org, pm.account, pm.lineItem, pm.amount, now)
	if err != nil {
		f.t.Fatal(err)
	}
	// Its attempt, as the intake writes it: settlement covers every org in
	// the database, so a test using the store's ledger settles other
	// tests' entries too and needs their attempts.
	if _, err := env.Pool.Exec(f.ctx, `
		INSERT INTO payment_attempts (attempt_id, org_id, account_id, line_item_id, processor, payment_type, status,
		    job_msg_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, 'CANOPY_NACHA', 'ACH', 'pending_settlement', 'job_'||$1, $5, $5)
		ON CONFLICT DO NOTHING`, "att_"+f.org+"_"+pm.lineItem, f.org, pm.account, pm.lineItem, now); err != nil {
		f.t.Fatal(err)
	}
	return f.p.Process(f.ctx, processors.Job{
		OrgID: f.org, AccountID: pm.account, LineItemID: pm.lineItem, AttemptID: "att_" + f.org + "_" + pm.lineItem,
		Processor: Name, PaymentType: processors.PaymentTypeACH, Origin: "guest_payment", AmountCents: pm.amount,
		EffectiveAt: pm.effectiveAt, CreatedAt: now, Delivery: 1,
		ACH: &processors.ACHDetails{RoutingNumber: pm.routing, AccountNumber: pm.number, AccountType: pm.accountType,
			StandardEntryClass: pm.sec, Name: pm.name},
	})
}

// lineItemStatus reads a line item's status.
func (f *fixture) lineItemStatus(account, lineItem string) string {
	f.t.Helper()
	var s string
	if err := env.Pool.QueryRow(f.ctx, `SELECT status FROM line_items WHERE org_id = $1 AND account_id = $2 AND line_item_id = $3`,
		f.org, account, lineItem).Scan(&s); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// entry reads one entry's state.
type entryState struct {
	Status, FileID, Trace string
	Effective             time.Time
}

func (f *fixture) entry(lineItem string) entryState {
	f.t.Helper()
	var e entryState
	var file, trace *string
	if err := env.Pool.QueryRow(f.ctx, `
		SELECT CASE WHEN cl.file_id IS NULL THEN `+entryStatusSQL+`
		            WHEN cl.status IN ('written', 'uploaded') THEN 'dropped' ELSE 'batched' END,
		       COALESCE(e.file_id, cl.file_id), COALESCE(e.trace_number, cl.trace),
		       COALESCE(cl.effective, e.effective_entry_date)
		  FROM nacha_entries e LEFT JOIN nacha_files nf ON nf.file_id = e.file_id
		  LEFT JOIN LATERAL (
		      -- a file's claim that is not applied to the entry's row yet
		      SELECT c.file_id, cf.status, nb.effective_entry_date AS effective,
		             substr(cf.immediate_origin, 1, 8) || lpad((cf.trace_base + u.s)::text, 7, '0') AS trace
		        FROM nacha_file_claims c JOIN nacha_files cf ON cf.file_id = c.file_id
		       CROSS JOIN LATERAL unnest(c.entry_ids, c.batch_numbers, c.sequences) AS u(id, b, s)
		        JOIN nacha_batches nb ON nb.file_id = c.file_id AND nb.batch_number = u.b
		       WHERE u.id = e.entry_id AND NOT c.applied) cl ON true
		 WHERE e.org_id = $1 AND e.line_item_id = $2`, f.org, lineItem).Scan(&e.Status, &file, &trace, &e.Effective); err != nil {
		f.t.Fatal(err)
	}
	if file != nil {
		e.FileID = *file
	}
	if trace != nil {
		e.Trace = *trace
	}
	return e
}

// orgDrop runs a drop and keeps only this org's files: the package's
// tests share one database, and a drop cuts every org's due entries.
func (f *fixture) drop(at time.Time) (DropResult, error) {
	f.t.Helper()
	res, err := f.p.DropAt(f.ctx, at)
	var mine []FileSummary
	for _, s := range res.Files {
		if s.OrgID == f.org {
			mine = append(mine, s)
		}
	}
	res.Files = mine
	return res, err
}

func (f *fixture) mustDrop(at time.Time) DropResult {
	f.t.Helper()
	res, err := f.drop(at)
	if err != nil {
		f.t.Fatalf("drop: %v", err)
	}
	return res
}

// events returns the kinds of ledger events recorded for a line item, in
// order.
func (f *fixture) events(lineItem string) []string {
	f.t.Helper()
	rows, err := env.Pool.Query(f.ctx, `SELECT kind FROM nacha_test_events WHERE org_id = $1 AND line_item_id = $2 ORDER BY id`,
		f.org, lineItem)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

// counterValue reads a counter without pulling in prometheus/testutil.
func counterValue(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
