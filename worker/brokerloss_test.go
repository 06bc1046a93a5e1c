package worker

import (
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
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/testenv"
)

// The broker loses what it held, twice, while payrail api (with its relay)
// and a worker run as separate processes:
//
//  1. NATS stops, its JetStream store is wiped, and it comes back empty
//     while payments are queued in the jobs stream and in flight;
//  2. with the worker dead (SIGKILL), the jobs stream is deleted while
//     payments wait in it.
//
// Nothing is restarted to recover: the roles recreate the streams and the
// consumer, /readyz is not ready while the broker or a stream is missing
// and ready again after, and the worker's reconciler re-publishes the lost
// jobs from PostgreSQL. Every payment ends VALID within 60 s of the
// broker's return, each charged once.
func TestBrokerLossRecoversWithoutRestart(t *testing.T) {
	const bound = 60 * time.Second
	bin := buildPayrail(t)
	ctx := context.Background()
	if _, err := env.Pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS test_effects (attempt_id text PRIMARY KEY, calls int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(t.TempDir(), "js")
	nopts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: storeDir, NoSigs: true, NoLog: true}
	ns := startNATS(t, nopts)
	nopts.Port = ns.Addr().(*net.TCPAddr).Port
	natsURL := ns.ClientURL()

	jwt := make([]byte, 32)
	_, _ = rand.Read(jwt)
	key, _ := keyring.NewKey()
	id := strings.ToUpper(strings.TrimPrefix(testenv.UniqueID("x"), "x"))
	org := "bl" + strings.ToLower(id)
	jobsStream := "BLJOBS_" + id
	addr := freePort(t)
	common := append(os.Environ(),
		"PAYRAIL_DATABASE_URL="+env.DatabaseURL, "PAYRAIL_NATS_URL="+natsURL,
		"PAYRAIL_SUBJECT_ROOT=bl"+strings.ToLower(id),
		"PAYRAIL_JOBS_STREAM="+jobsStream, "PAYRAIL_EVENTS_STREAM=BLEVENTS_"+id,
		"PAYRAIL_JWT_SECRET="+base64.StdEncoding.EncodeToString(jwt), "PAYRAIL_ENCRYPTION_KEYS=bl="+key,
		"PAYRAIL_RATE_LIMIT=1000000", "PAYRAIL_RATE_BURST=1000000", "PAYRAIL_LOG_LEVEL=warn",
		"PAYRAIL_HTTP_ADDR="+addr, "PAYRAIL_RELAY_GRACE=500ms", "PAYRAIL_ACK_WAIT=2s")
	out, err := exec.Command(bin, "clients", "create", "--database-url", env.DatabaseURL, "--org", org, "--create-org", "--name", "bl", "--json").Output()
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

	// The API runs its relay (PAYRAIL_API_RELAY defaults to true). The
	// worker is slow (two jobs at a time, 200 ms each), so jobs wait in
	// the stream.
	// A relay of its own serves the readiness of a role that needs the
	// streams: the API stays ready while its outbox is the buffer
	// (cmd/payrail readiness), a relay or worker does not.
	opsAddr := freePort(t)
	// Ops listeners on ports of their own: the default (127.0.0.1:9091)
	// may be another payrail's, a `make run` beside the tests (an empty
	// PAYRAIL_METRICS_ADDR means the default).
	api := &process{t: t, name: "payrail api", args: []string{bin, "api"}, env: append(slices.Clone(common), "PAYRAIL_METRICS_ADDR="+freePort(t))}
	rel := &process{t: t, name: "payrail relay", args: []string{bin, "relay"}, env: append(slices.Clone(common), "PAYRAIL_METRICS_ADDR="+opsAddr)}
	wrk := &process{t: t, name: "worker", args: []string{os.Args[0], "-test.run=^$"}, env: append(slices.Clone(common),
		childWorkerEnv+"=1", "PAYRAIL_TEST_RECONCILE=1", "PAYRAIL_TEST_CONCURRENCY=2", "PAYRAIL_TEST_PROCESS_DELAY=200ms")}
	for _, p := range []*process{api, rel, wrk} {
		p.start()
		defer func() {
			if p.cmd.ProcessState == nil {
				p.kill()
			}
		}()
	}
	base := "http://" + addr
	get := func(url string) (int, string) {
		c := &http.Client{Timeout: 3 * time.Second}
		res, err := c.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	readyz := func() (int, string) { return get("http://" + opsAddr + "/readyz") }
	apiReadyz := func() (int, string) { return get(base + "/readyz") }
	apiLog := func() string { return tail(api.out.String(), 3000) + "\n" + tail(rel.out.String(), 3000) }
	waitFor(t, 60*time.Second, func() bool { code, _ := readyz(); return code == 200 }, apiLog)
	// The relay can be ready before the API process listens (CI failure
	// under load: the first token request was refused).
	waitFor(t, 60*time.Second, func() bool { code, _ := apiReadyz(); return code == 200 }, apiLog)

	post, token := apiClient(t, base, creds.ClientID, creds.ClientSecret)
	if code, err := post("/accounts", token, map[string]any{"account_id": "acct_bl", "product_id": "p", "customer_name": "Pat Doe"}, nil); err != nil || code != 200 {
		t.Fatalf("create account: %d %v", code, err)
	}
	payAll := func(prefix string, n int) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := map[string]any{"line_item_id": fmt.Sprintf("%s-%03d", prefix, i), "original_amount_cents": 1000 + i,
					"payment_details": map[string]any{"payment_type": "DEBIT", "payment_processor_name": "AUTHORIZE_NET",
						"card_number": "4111111111111111", "expiration_date": "12/30", "cvv": "123", "zip": "46201"}}
				if code, err := post("/accounts/acct_bl/line_items/payments/guest_payment", token, body, nil); err != nil || code != 200 {
					t.Errorf("payment %s-%d: %d %v", prefix, i, code, err)
				}
			}()
		}
		wg.Wait()
	}
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := env.Pool.QueryRow(ctx, sql, org).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	const pendingSQL = `SELECT count(*) FROM line_items WHERE org_id = $1 AND status = 'PENDING'`
	// Jobs the broker acknowledged (their rows are deleted once
	// published) and no worker has finished.
	const inBrokerSQL = `SELECT count(*) FROM payment_attempts pa
		WHERE pa.org_id = $1 AND pa.status IN ('queued', 'processing')
		  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.msg_id = pa.job_msg_id)`
	const unpublishedSQL = `SELECT count(*) FROM payment_attempts pa JOIN outbox o ON o.msg_id = pa.job_msg_id
		WHERE pa.org_id = $1 AND o.published_at IS NULL`
	workerLog := func() string { return tail(wrk.out.String(), 3000) }
	settle := func(phase string, from time.Time) time.Duration {
		t.Helper()
		waitFor(t, bound-time.Since(from), func() bool { return count(pendingSQL) == 0 }, func() string {
			return fmt.Sprintf("%s: %d PENDING %s after the broker's return\nworker:\n%s\napi:\n%s", phase, count(pendingSQL),
				time.Since(from).Round(time.Second), workerLog(), apiLog())
		})
		return time.Since(from)
	}

	// Phase 1: the broker's store is wiped with jobs queued and in flight.
	payAll("wipe", 60)
	waitFor(t, 20*time.Second, func() bool {
		return count(unpublishedSQL) == 0 &&
			count(`SELECT count(*) FROM payment_attempts WHERE org_id = $1 AND status = 'succeeded'`) >= 4
	}, func() string { return "jobs not published, or none executed" })
	lost := count(inBrokerSQL)
	if lost < 20 {
		t.Fatalf("only %d jobs waiting in the broker; the test needs jobs to lose", lost)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	if err := os.RemoveAll(storeDir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { code, _ := readyz(); return code == 503 }, apiLog)
	// The API keeps accepting payments into its outbox meanwhile.
	if code, body := apiReadyz(); code != 200 {
		t.Errorf("the API's /readyz with the broker away: %d %s; want 200 (its outbox is the buffer)", code, body)
	}
	time.Sleep(time.Second)
	ns2 := startNATS(t, nopts) // same port, empty store
	returned := time.Now()
	waitFor(t, bound, func() bool { code, _ := readyz(); return code == 200 }, apiLog)
	readyAfter := time.Since(returned)
	took := settle("store wiped", returned)
	t.Logf("store wiped with %d of 60 jobs in the broker: ready again after %s, all settled %s after NATS returned",
		lost, readyAfter.Round(time.Millisecond), took.Round(time.Millisecond))

	// Phase 2: the worker is killed, payments wait in the stream, and the
	// stream is deleted by mistake.
	wrk.kill()
	payAll("deleted", 20)
	waitFor(t, 20*time.Second, func() bool { return count(unpublishedSQL) == 0 && count(inBrokerSQL) == 20 },
		func() string { return "jobs not published" })
	nc, err := nats.Connect(ns2.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(ctx, jobsStream); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	var body string
	waitFor(t, 10*time.Second, func() bool {
		var code int
		code, body = readyz()
		return code == 503
	}, apiLog)
	if !strings.Contains(body, "streams") {
		t.Errorf("/readyz with the jobs stream missing: %s; want the streams check named", body)
	}
	waitFor(t, 30*time.Second, func() bool { code, _ := readyz(); return code == 200 }, apiLog)
	if _, err := js.Stream(ctx, jobsStream); err != nil {
		t.Fatalf("jobs stream after /readyz is ready again: %v", err)
	}
	t.Logf("jobs stream deleted: /readyz not ready (%s), ready again after %s", strings.TrimSpace(body),
		time.Since(deleted).Round(time.Millisecond))
	wrk.start()
	took = settle("stream deleted", deleted)
	t.Logf("stream deleted with 20 jobs in it: all settled %s after the deletion", took.Round(time.Millisecond))

	// Every payment VALID, one effect each, and one processor call each:
	// no job was executed twice, re-published or not.
	var items, valid, effects, maxCalls, republished int
	q := func(sql string, dst *int) {
		t.Helper()
		if err := env.Pool.QueryRow(ctx, sql, org).Scan(dst); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q(`SELECT count(*) FROM line_items WHERE org_id = $1 AND line_item_type = 'PAYMENT'`, &items)
	q(`SELECT count(*) FROM line_items WHERE org_id = $1 AND line_item_type = 'PAYMENT' AND status = 'VALID'`, &valid)
	q(`SELECT count(*) FROM test_effects e JOIN payment_attempts pa ON pa.attempt_id = e.attempt_id WHERE pa.org_id = $1`, &effects)
	q(`SELECT COALESCE(max(e.calls), 0) FROM test_effects e JOIN payment_attempts pa ON pa.attempt_id = e.attempt_id WHERE pa.org_id = $1`, &maxCalls)
	q(`SELECT count(*) FROM payment_attempts WHERE org_id = $1 AND job_msg_id LIKE '%.r%'`, &republished)
	if items != 80 || valid != 80 || effects != 80 || maxCalls != 1 {
		t.Errorf("80 payments: %d line items, %d VALID, %d effects, at most %d calls on one", items, valid, effects, maxCalls)
	}
	if republished < 20 {
		t.Errorf("%d jobs re-published, want at least the 20 of the deleted stream", republished)
	}
	t.Logf("%d jobs re-published from the outbox", republished)
	for _, p := range []*process{api, wrk} {
		p.stop()
	}
}
