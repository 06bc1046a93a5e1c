package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/outbox"
	"github.com/payrail/payrail/processors"
)

// childWorkerEnv makes the test binary run as a worker process (see
// TestMain): the worker role with the test-only dbProcessor, which payrail
// itself does not ship.
const childWorkerEnv = "PAYRAIL_TEST_CHILD_WORKER"

// dbProcessor is the test processor for separate processes: its effects
// live in a table, so they are counted across kills and restarts. The
// effect is keyed by attempt id (idempotent); every call is counted.
type dbProcessor struct {
	pool  *pgxpool.Pool
	delay time.Duration // PAYRAIL_TEST_PROCESS_DELAY: each call takes this long
}

func (dbProcessor) Name() string { return processors.AuthorizeNet }

func (p dbProcessor) Process(ctx context.Context, job processors.Job) (processors.Result, error) {
	if _, err := p.pool.Exec(ctx, `
		INSERT INTO test_effects (attempt_id, calls) VALUES ($1, 1)
		ON CONFLICT (attempt_id) DO UPDATE SET calls = test_effects.calls + 1`, job.AttemptID); err != nil {
		return processors.Result{}, err
	}
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	return processors.Result{Outcome: processors.Succeeded, TransactionID: "tx-" + job.AttemptID,
		Instrument: processors.Instrument{Kind: "card", Brand: "Visa", LastFour: "1111"}}, nil
}

// runChildWorker is a worker process: the same parts `payrail worker`
// runs (store, fast-path publisher for events, worker), configured from
// the environment. It drains on SIGTERM and dies on SIGKILL.
func runChildWorker() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child worker:", err); return 1 }
	ring, err := keyring.Parse(os.Getenv("PAYRAIL_ENCRYPTION_KEYS"), "")
	if err != nil {
		return fail(err)
	}
	// Sized as payrail sizes its pool: PAYRAIL_DATABASE_MAX_CONNS.
	pc, err := pgxpool.ParseConfig(os.Getenv("PAYRAIL_DATABASE_URL"))
	if err != nil {
		return fail(err)
	}
	if n, err := strconv.Atoi(os.Getenv("PAYRAIL_DATABASE_MAX_CONNS")); err == nil {
		pc.MaxConns = int32(n)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fail(err)
	}
	defer pool.Close()
	nc, err := nats.Connect(os.Getenv("PAYRAIL_NATS_URL"), nats.MaxReconnects(-1))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	topo := queue.Default()
	topo.SubjectRoot, topo.Jobs, topo.Events = os.Getenv("PAYRAIL_SUBJECT_ROOT"), os.Getenv("PAYRAIL_JOBS_STREAM"), os.Getenv("PAYRAIL_EVENTS_STREAM")
	st := store.New(pool, ring, canopy.Events{})
	pub := outbox.NewPublisher(js, topo, st, outbox.PublisherOptions{Logger: testLogger()})
	st.SetFastPath(pub)
	delay, _ := time.ParseDuration(os.Getenv("PAYRAIL_TEST_PROCESS_DELAY"))
	reg, _ := processors.NewRegistry(dbProcessor{pool: pool, delay: delay})
	opts := Options{Concurrency: 32, AckWait: 2 * time.Second, MaxDeliver: 20, CallTimeout: time.Second,
		Logger: testLogger(), ReconcileEvery: -1}
	if n, err := strconv.Atoi(os.Getenv("PAYRAIL_TEST_CONCURRENCY")); err == nil && n > 0 {
		opts.Concurrency = n
	}
	// The reconciler re-publishes every unfinished attempt of the shared
	// database's other tests too: only the tests that need it turn it on.
	if os.Getenv("PAYRAIL_TEST_RECONCILE") != "" {
		opts.ReconcileEvery, opts.ReconcileAfter, opts.ConsumerCheck = time.Second, 5*time.Second, time.Second
	}
	w := New(js, topo, st, reg, ring, opts)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = pub.Run(ctx) }()
	err = w.Run(ctx)
	wg.Wait()
	if err != nil {
		return fail(err)
	}
	return 0
}

// process is one OS process of the multi-process test.
type process struct {
	t    *testing.T
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	out  *logBuffer // read while the process writes: locked
}

func (p *process) start() {
	p.t.Helper()
	p.out = &logBuffer{}
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// stop sends SIGTERM and requires a clean exit.
func (p *process) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Errorf("%s did not exit cleanly on SIGTERM: %v\n%s", p.name, err, tail(p.out.String(), 2000))
		}
	case <-time.After(30 * time.Second):
		p.kill()
		p.t.Errorf("%s did not exit within 30s of SIGTERM", p.name)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// buildPayrail builds the real binary once for the test.
func buildPayrail(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "payrail")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/payrail/payrail/cmd/payrail")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build payrail: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// payrail api, payrail relay and a worker run as separate OS processes;
// a few thousand payments go through while the worker, the relay and the
// API are killed with SIGKILL and restarted. Afterwards nothing is lost,
// nothing doubled, nothing stuck.
func TestMultiProcessKillAndRestart(t *testing.T) {
	const payments = 3000
	bin := buildPayrail(t)
	ctx := context.Background()
	if _, err := env.Pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS test_effects (attempt_id text PRIMARY KEY, calls int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	jwt := make([]byte, 32)
	_, _ = rand.Read(jwt)
	key, _ := keyring.NewKey()
	id := strings.ToUpper(strings.TrimPrefix(testenv.UniqueID("x"), "x"))
	addr := freePort(t)
	common := append(os.Environ(),
		"PAYRAIL_DATABASE_URL="+env.DatabaseURL, "PAYRAIL_NATS_URL="+env.NATSURL,
		"PAYRAIL_SUBJECT_ROOT="+env.Subject("mp"+strings.ToLower(id)),
		"PAYRAIL_JOBS_STREAM="+env.StreamName("MPJOBS_"+id), "PAYRAIL_EVENTS_STREAM="+env.StreamName("MPEVENTS_"+id),
		"PAYRAIL_JWT_SECRET="+base64.StdEncoding.EncodeToString(jwt), "PAYRAIL_ENCRYPTION_KEYS=mp="+key,
		"PAYRAIL_RATE_LIMIT=1000000", "PAYRAIL_RATE_BURST=1000000", "PAYRAIL_LOG_LEVEL=warn",
		"PAYRAIL_HTTP_ADDR="+addr, "PAYRAIL_API_RELAY=false", "PAYRAIL_RELAY_GRACE=500ms", "PAYRAIL_ACK_WAIT=2s")

	out, err := exec.Command(bin, "clients", "create", "--database-url", env.DatabaseURL, "--org", "mp", "--create-org", "--name", "load", "--json").Output()
	if err != nil {
		t.Fatalf("payrail clients create: %v", err)
	}
	var creds struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &creds); err != nil {
		t.Fatalf("clients create --json printed %q: %v", out, err)
	}

	// Each process's pool is claimed from the package's connection budget
	// (docs/testing.md); the relay's LISTEN connection is one more.
	maxConns := func(n int, what string) string {
		return "PAYRAIL_DATABASE_MAX_CONNS=" + strconv.Itoa(env.Reserve(t, n, what))
	}
	// The API's ops listener gets a port of its own: its default address
	// (127.0.0.1:9091) may be another payrail's, a `make run` beside the
	// tests (an empty PAYRAIL_METRICS_ADDR means the default).
	api := &process{t: t, name: "payrail api", args: []string{bin, "api"}, env: append(slices.Clone(common),
		"PAYRAIL_METRICS_ADDR="+freePort(t), maxConns(4, "payrail api"))}
	relayOps := freePort(t)
	env.Reserve(t, 1, "payrail relay's LISTEN connection")
	relay := &process{t: t, name: "payrail relay", args: []string{bin, "relay"}, env: append(slices.Clone(common), "PAYRAIL_METRICS_ADDR="+relayOps, maxConns(3, "payrail relay"))}
	wrk := &process{t: t, name: "worker", args: []string{os.Args[0], "-test.run=^$"}, env: append(slices.Clone(common), childWorkerEnv+"=1", maxConns(4, "the worker process"))}
	for _, p := range []*process{api, relay, wrk} {
		p.start()
		defer func() {
			if p.cmd.ProcessState == nil {
				p.kill()
			}
		}()
	}
	base := "http://" + addr
	waitFor(t, 60*time.Second, func() bool {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil && res.StatusCode == 200
	}, func() string { return tail(api.out.String(), 2000) })

	post, token := apiClient(t, base, creds.ClientID, creds.ClientSecret)
	if code, err := post("/accounts", token, map[string]any{"account_id": "acct_mp", "product_id": "p", "customer_name": "Pat Doe"}, nil); err != nil || code != 200 {
		t.Fatalf("create account: %d %v", code, err)
	}

	// Post the payments from 16 clients; a client retries a payment whose
	// request failed (the API was killed) until it gets 200: the line item
	// id makes the retry idempotent.
	var sent atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	go func() {
		for i := range payments {
			next <- i
		}
		close(next)
	}()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body := map[string]any{"line_item_id": fmt.Sprintf("mp-%05d", i), "original_amount_cents": 1000 + i,
					"payment_details": map[string]any{"payment_type": "DEBIT", "payment_processor_name": "AUTHORIZE_NET",
						"card_number": "4111111111111111", "expiration_date": "12/30", "cvv": "123", "zip": "46201"}}
				for {
					code, err := post("/accounts/acct_mp/line_items/payments/guest_payment", token, body, nil)
					if err == nil && code == 200 {
						break
					}
					if err == nil && code != 503 && code != 502 {
						t.Errorf("payment %d: HTTP %d", i, code)
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				sent.Add(1)
			}
		}()
	}
	// The chaos: kill each role with SIGKILL mid-run and start it again.
	chaos := []struct {
		at int64
		p  *process
	}{{600, wrk}, {1000, relay}, {1400, api}, {1900, wrk}, {2300, relay}}
	for _, c := range chaos {
		waitFor(t, 120*time.Second, func() bool { return sent.Load() >= c.at }, func() string { return "posting stalled" })
		c.p.kill()
		time.Sleep(300 * time.Millisecond)
		c.p.start()
		t.Logf("killed and restarted %s after %d payments", c.p.name, c.at)
	}
	wg.Wait()
	posted := time.Since(start)

	// Everything settles: no PENDING payment, no unpublished outbox row.
	var pending, unpublished int
	waitFor(t, 180*time.Second, func() bool {
		_ = env.Pool.QueryRow(ctx, `SELECT count(*) FROM line_items WHERE org_id = 'mp' AND status = 'PENDING'`).Scan(&pending)
		_ = env.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&unpublished)
		return pending == 0 && unpublished == 0
	}, func() string {
		return fmt.Sprintf("%d PENDING, %d unpublished\nworker:\n%s", pending, unpublished, tail(wrk.out.String(), 3000))
	})
	elapsed := time.Since(start)
	env.CheckConnections(t) // every process still runs with its pool

	var items, valid, effects, callsTotal, maxCalls, attemptsDone int
	q := func(sql string, dst *int) {
		t.Helper()
		if err := env.Pool.QueryRow(ctx, sql).Scan(dst); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q(`SELECT count(*) FROM line_items WHERE org_id = 'mp' AND line_item_type = 'PAYMENT'`, &items)
	q(`SELECT count(*) FROM line_items WHERE org_id = 'mp' AND status = 'VALID'`, &valid)
	q(`SELECT count(*) FROM test_effects e JOIN payment_attempts pa ON pa.attempt_id = e.attempt_id WHERE pa.org_id = 'mp'`, &effects)
	q(`SELECT COALESCE(sum(calls), 0) FROM test_effects`, &callsTotal)
	q(`SELECT COALESCE(max(calls), 0) FROM test_effects`, &maxCalls)
	q(`SELECT count(*) FROM payment_attempts WHERE org_id = 'mp' AND status = 'succeeded'`, &attemptsDone)
	if items != payments || valid != payments || effects != payments || attemptsDone != payments {
		t.Errorf("payments %d, line items %d, VALID %d, effects %d, succeeded attempts %d", payments, items, valid, effects, attemptsDone)
	}
	// Events: one PENDING and one VALID per payment, deduplicated.
	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, env.StreamName("MPEVENTS_"+id))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2*payments {
		t.Errorf("events stream holds %d events for %d payments, want one PENDING and one VALID each", info.State.Msgs, payments)
	}
	t.Logf("%d payments posted in %s; all VALID after %s: %.0f payments/s end to end; processor calls %d for %d effects (max %d calls on one payment)",
		payments, posted.Round(time.Millisecond), elapsed.Round(time.Millisecond), float64(payments)/elapsed.Seconds(),
		callsTotal, effects, maxCalls)

	// The relay serves its metrics and health on PAYRAIL_METRICS_ADDR; its
	// backlog gauge, refreshed every backstop tick, comes down to zero.
	var metrics []byte
	waitFor(t, 10*time.Second, func() bool {
		res, err := http.Get("http://" + relayOps + "/metrics")
		if err != nil {
			return false
		}
		metrics, _ = io.ReadAll(res.Body)
		res.Body.Close()
		return strings.Contains(string(metrics), "payrail_outbox_backlog_rows 0")
	}, func() string { return "relay /metrics: " + tail(string(metrics), 800) })
	if res, err := http.Get("http://" + relayOps + "/readyz"); err != nil || res.StatusCode != 200 {
		t.Errorf("relay /readyz: %v %v", err, res)
	}

	for _, p := range []*process{api, relay, wrk} {
		p.stop()
	}
}

// apiClient gets an access token from the API at base for the client and
// returns a poster of JSON bodies with it: post(path, token, body, into)
// answers the status code and decodes the answer into into when not nil.
func apiClient(t *testing.T, base, clientID, secret string) (post func(path, token string, body, into any) (int, error), token string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	post = func(path, token string, body, into any) (int, error) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		if into != nil {
			_ = json.NewDecoder(res.Body).Decode(into)
		}
		return res.StatusCode, nil
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if code, err := post("/auth/token", "", map[string]string{"client_id": clientID, "client_secret": secret}, &tok); err != nil || code != 200 {
		t.Fatalf("token: %d %v", code, err)
	}
	return post, tok.AccessToken
}
