package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
)

// The tests that need PostgreSQL open the harness on first use, so the
// configuration tests run without it; TestMain closes it.
var (
	servicesOnce sync.Once
	servicesEnv  *testenv.Env
	servicesErr  error
)

func testServices(t *testing.T) *testenv.Env {
	t.Helper()
	servicesOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		servicesEnv, servicesErr = testenv.Start(ctx, "cmd_payrail")
	})
	if servicesErr != nil {
		t.Fatal(servicesErr)
	}
	return servicesEnv
}

func closeServices() {
	if servicesEnv != nil {
		if err := servicesEnv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
		}
	}
}

// running is a payrail process started by startPayrail.
type running struct {
	cmd  *exec.Cmd
	out  *testenv.LogBuffer // stdout and stderr
	done chan struct{}
}

// startPayrail starts the binary with args and only the environment given.
func startPayrail(t *testing.T, env map[string]string, args ...string) *running {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = []string{"PAYRAIL_CMD_TEST_MAIN=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = t.TempDir()
	r := &running{cmd: cmd, out: &testenv.LogBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// stop sends SIGTERM and returns the exit status.
func (r *running) stop(t *testing.T, within time.Duration) int {
	t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of SIGTERM\n%s", strings.Join(r.cmd.Args[1:], " "), within, r.out.String())
		return -1
	}
}

// handedOut holds every address freeAddr returned in this test process:
// a port is released as soon as it is picked, and the kernel may pick it
// again for the next call before the process it was meant for binds it
// (CI saw a worker's metrics address equal to the API's HTTP address).
var handedOut sync.Map

// freeAddr is a loopback address nothing listens on, never one it
// returned before.
func freeAddr(t *testing.T) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

func waitUntil(t *testing.T, within time.Duration, what string, ok func() bool, details func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s not within %s\n%s", what, within, details())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func httpGet(url string) (int, map[string]any) {
	res, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body
}

const natsUser, natsPassword = "payrail", "s3cr3tnatspw"

// roleEnv is the environment of a role whose NATS is natsAddr (nothing
// listens there yet) and whose PostgreSQL is the test database, with a
// pool of maxConns claimed from the package's budget.
func roleEnv(t *testing.T, env *testenv.Env, natsAddr string, maxConns int, role string) map[string]string {
	id := strings.ToUpper(strings.TrimPrefix(testenv.UniqueID("x"), "x"))
	return map[string]string{
		"PAYRAIL_DATABASE_URL":       env.DatabaseURL,
		"PAYRAIL_DATABASE_MAX_CONNS": fmt.Sprint(env.Reserve(t, maxConns, "payrail "+role)),
		"PAYRAIL_NATS_URL":           "nats://" + natsUser + ":" + natsPassword + "@" + natsAddr,
		"PAYRAIL_HTTP_ADDR":          freeAddr(t),
		"PAYRAIL_METRICS_ADDR":       freeAddr(t),
		"PAYRAIL_JWT_SECRET":         testJWT,
		"PAYRAIL_ENCRYPTION_KEYS":    "k1=" + testKey,
		"PAYRAIL_SUBJECT_ROOT":       env.Subject("c" + strings.ToLower(id)),
		"PAYRAIL_JOBS_STREAM":        env.StreamName("JOBS_" + id),
		"PAYRAIL_EVENTS_STREAM":      env.StreamName("EVENTS_" + id),
		"PAYRAIL_RELAY_GRACE":        "100ms",
		"PAYRAIL_LOG_FORMAT":         "json",
	}
}

// unreachableLines are the log lines saying NATS cannot be reached.
func unreachableLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "NATS unreachable") {
			lines = append(lines, l)
		}
	}
	return lines
}

// checkUnreachableLog requires the warning about an unreachable NATS to
// name the URL without its password and the error.
func checkUnreachableLog(t *testing.T, out, natsAddr string) {
	t.Helper()
	lines := unreachableLines(out)
	if len(lines) == 0 {
		t.Fatalf("no log line says NATS is unreachable:\n%s", out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("log line %q: %v", lines[0], err)
	}
	if want := "nats://" + natsUser + ":xxxxx@" + natsAddr; rec["url"] != want {
		t.Errorf("url %v, want %s: %s", rec["url"], want, lines[0])
	}
	if err, _ := rec["err"].(string); !strings.Contains(err, "connection refused") {
		t.Errorf("err %q does not say connection refused: %s", err, lines[0])
	}
	if strings.Contains(out, natsPassword) {
		t.Errorf("the log shows NATS's password:\n%s", out)
	}
}

// startNATS runs a NATS server with JetStream on addr, as the one the
// roles were told about.
func startNATS(t *testing.T, addr string) *server.Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	var p int
	fmt.Sscan(port, &p)
	ns, err := server.NewServer(&server.Options{Host: host, Port: p, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, Username: natsUser, Password: natsPassword})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// payrail api started while NATS is unreachable serves HTTP at once and
// accepts payments into the outbox; once NATS comes up the job reaches the
// stream, and SIGTERM ends it with status 0.
func TestAPIAcceptsPaymentsBeforeNATSAnswers(t *testing.T) {
	env := testServices(t)
	ctx := context.Background()
	natsAddr := freeAddr(t) // closed: nothing listens there yet
	renv := roleEnv(t, env, natsAddr, 4, "api")
	env.Reserve(t, 1, "the API's relay LISTEN connection")
	base := "http://" + renv["PAYRAIL_HTTP_ADDR"]

	started := time.Now()
	api := startPayrail(t, renv, "api")
	waitUntil(t, 10*time.Second, "/healthz answers 200", func() bool {
		code, _ := httpGet(base + "/healthz")
		return code == 200
	}, api.out.String)
	t.Logf("HTTP answered %s after start, with NATS unreachable", time.Since(started).Round(time.Millisecond))
	code, ready := httpGet(base + "/readyz")
	checks, _ := ready["checks"].(map[string]any)
	if code != 200 || checks["postgres"] != "ok" || checks["nats"] != "unavailable" {
		t.Errorf("/readyz with NATS away: %d %v, want 200 with nats unavailable", code, ready)
	}

	// A client, an account and a card payment, all while NATS is away.
	org := testenv.UniqueID("org_")
	st := store.New(env.Pool, nil, canopy.Events{})
	if err := st.EnsureOrg(ctx, org, org); err != nil {
		t.Fatal(err)
	}
	creds, err := createClient(ctx, st, org, "natsstart", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, token string, body any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	code, tok := post("/auth/token", "", map[string]string{"client_id": creds.ClientID, "client_secret": creds.ClientSecret})
	token, _ := tok["access_token"].(string)
	if code != 200 || token == "" {
		t.Fatalf("token: %d %v", code, tok)
	}
	if code, body := post("/accounts", token, map[string]any{"account_id": "acct_1", "product_id": "p", "customer_name": "Pat Doe"}); code != 200 {
		t.Fatalf("create account: %d %v", code, body)
	}
	code, li := post("/accounts/acct_1/line_items/payments/guest_payment", token, map[string]any{
		"line_item_id": "natsdown-1", "original_amount_cents": 1234,
		"payment_details": map[string]any{"payment_type": "DEBIT", "payment_processor_name": "AUTHORIZE_NET",
			"card_number": "4111111111111111", "expiration_date": "12/30", "cvv": "123", "zip": "46201"}})
	if overview, _ := li["line_item_overview"].(map[string]any); code != 200 || overview["line_item_status"] != "PENDING" {
		t.Fatalf("payment while NATS is away: %d %v", code, li)
	}
	jobRow := func() (published bool) {
		t.Helper()
		var n int
		if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject LIKE 'jobs.%' AND headers->>'Payrail-Org-Id' = $1`, org).Scan(&n); err != nil {
			t.Fatalf("the payment's job row: %v", err)
		}
		return n == 0 // deleted once published
	}
	if jobRow() {
		t.Fatal("the job row is gone while NATS is away")
	}

	// The warning names the URL and the error, once, however often the
	// client retries.
	waitUntil(t, 10*time.Second, "a log line about the unreachable NATS", func() bool {
		return len(unreachableLines(api.out.String())) > 0
	}, api.out.String)
	time.Sleep(3 * time.Second) // three more attempts
	checkUnreachableLog(t, api.out.String(), natsAddr)
	if n := len(unreachableLines(api.out.String())); n != 1 {
		t.Errorf("%d lines about the unreachable NATS within 3s, want 1 (at most one per %s)", n, natsLogEvery)
	}

	// NATS comes up: the relay publishes the job.
	startNATS(t, natsAddr)
	nc, err := nats.Connect("nats://"+natsAddr, nats.UserInfo(natsUser, natsPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the job in the jobs stream", func() bool {
		s, err := js.Stream(ctx, renv["PAYRAIL_JOBS_STREAM"])
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 1
	}, api.out.String)
	waitUntil(t, 10*time.Second, "the job row published (deleted)", jobRow, api.out.String)
	code, ready = httpGet(base + "/readyz")
	if checks, _ := ready["checks"].(map[string]any); code != 200 || checks["nats"] != "ok" {
		t.Errorf("/readyz with NATS up: %d %v", code, ready)
	}

	if code := api.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, api.out.String())
	}
}

// Every role serves its probes while NATS is unreachable, and SIGTERM
// during the wait for NATS is a clean stop.
func TestRolesStopCleanlyWhileNATSIsAway(t *testing.T) {
	env := testServices(t)
	for _, role := range []string{"api", "worker", "relay"} {
		t.Run(role, func(t *testing.T) {
			natsAddr := freeAddr(t)
			renv := roleEnv(t, env, natsAddr, 2, role)
			addr, wantReady := renv["PAYRAIL_METRICS_ADDR"], 503
			if role == "api" {
				addr, wantReady = renv["PAYRAIL_HTTP_ADDR"], 200
			}
			p := startPayrail(t, renv, role)
			waitUntil(t, 10*time.Second, "/healthz answers 200", func() bool {
				code, _ := httpGet("http://" + addr + "/healthz")
				return code == 200
			}, p.out.String)
			if code, body := httpGet("http://" + addr + "/readyz"); code != wantReady {
				t.Errorf("/readyz with NATS away: %d %v, want %d", code, body, wantReady)
			}
			waitUntil(t, 10*time.Second, "a log line about the unreachable NATS", func() bool {
				return len(unreachableLines(p.out.String())) > 0
			}, p.out.String)
			checkUnreachableLog(t, p.out.String(), natsAddr)
			if role == "api" {
				// The profiler is on the ops listener only: the API's
				// public listener must not show a process's internals.
				if code, _ := httpGet("http://" + renv["PAYRAIL_HTTP_ADDR"] + "/debug/pprof/"); code != 404 {
					t.Errorf("API listener GET /debug/pprof/: %d, want 404", code)
				}
				if code, _ := httpGet("http://" + renv["PAYRAIL_METRICS_ADDR"] + "/debug/pprof/"); code != 200 {
					t.Errorf("ops listener GET /debug/pprof/: %d, want 200", code)
				}
			}
			if code := p.stop(t, 10*time.Second); code != 0 {
				t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, p.out.String())
			}
		})
	}
}

// A PostgreSQL that has no connection left for payrail (SQLSTATE 53300)
// stops it with a message that names the cause and says what to do.
func TestTooManyClientsIsExplained(t *testing.T) {
	env := testServices(t)
	ctx := context.Background()
	// A role limited to no connection gets the same SQLSTATE as a server
	// whose max_connections are used up.
	role := testenv.UniqueID("payrail_nolimit_")
	if _, err := env.Pool.Exec(ctx, `CREATE ROLE `+role+` LOGIN PASSWORD 'nolimit' CONNECTION LIMIT 0`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = env.Pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) })
	u, err := url.Parse(env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	// The password serves servers that ask for one (the containers); the
	// connection limit is checked after authentication either way.
	u.User = url.UserPassword(role, "nolimit")
	dbURL := u.String()
	r := payrail(t, map[string]string{"PAYRAIL_DATABASE_URL": dbURL, "PAYRAIL_NATS_URL": "nats://" + freeAddr(t),
		"PAYRAIL_METRICS_ADDR": ""}, "relay")
	if r.code != 2 || !strings.Contains(r.stderr, "SQLSTATE 53300") || !strings.Contains(r.stderr, "PAYRAIL_DATABASE_MAX_CONNS") ||
		!strings.Contains(r.stderr, "max_connections") {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	t.Logf("payrail relay: %s", strings.TrimSpace(r.stderr))
}

func TestConnectAdvice(t *testing.T) {
	full := &pgconn.PgError{Severity: "FATAL", Code: "53300", Message: "sorry, too many clients already"}
	err := connectAdvice(fmt.Errorf("connect: %w", full))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "too many clients already") || !strings.Contains(err.Error(), "PAYRAIL_DATABASE_MAX_CONNS") {
		t.Errorf("53300: %v", err)
	}
	other := &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}
	if err := connectAdvice(other); err != error(other) {
		t.Errorf("another error changed: %v", err)
	}
	if connectAdvice(nil) != nil {
		t.Error("nil changed")
	}
}

func TestRateLimitedLog(t *testing.T) {
	r := &rateLimitedLog{every: 30 * time.Second}
	t0 := time.Now()
	var let []int
	for i := range 100 { // one failure a second for 100 s
		if n, _, ok := r.allow(t0.Add(time.Duration(i) * time.Second)); ok {
			let = append(let, n)
		}
	}
	if want := []int{1, 31, 61, 91}; fmt.Sprint(let) != fmt.Sprint(want) {
		t.Errorf("let through at failures %v, want %v", let, want)
	}
	r.reset()
	if n, since, ok := r.allow(t0.Add(200 * time.Second)); !ok || n != 1 || since != 0 {
		t.Errorf("after reset: %d %s %v", n, since, ok)
	}
}

func TestRedactNATSURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                   "nats://127.0.0.1:4222",
		"nats://u:pw@a:4222,nats://u:pw@b:4222":   "nats://u:xxxxx@a:4222,nats://u:xxxxx@b:4222",
		"nats://s3cr3ttoken@nats:4222":            "nats://xxxxx@nats:4222",
		"tls://svc:s3cr3t@nats.internal:4222?x=1": "tls://svc:xxxxx@nats.internal:4222?x=1",
	} {
		if got := redactNATSURL(in); got != want {
			t.Errorf("redactNATSURL(%q) = %q, want %q", in, got, want)
		}
	}
}
