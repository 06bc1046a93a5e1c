package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/payrail/payrail/intake"
)

// TestMain doubles as the payrail binary: with PAYRAIL_CMD_TEST_MAIN=1 the
// test binary runs main with its arguments, so tests see the real output
// and exit status.
func TestMain(m *testing.M) {
	if os.Getenv("PAYRAIL_CMD_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	closeServices()
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// payrail runs the binary with args and only the environment given (no
// PAYRAIL_* of the machine's).
func payrail(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = []string{"PAYRAIL_CMD_TEST_MAIN=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = t.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// secretEnv sets every secret payrail reads, each containing a marker help
// must never show.
var secretEnv = map[string]string{
	"PAYRAIL_JWT_SECRET":              "s3cr3tjwtMDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIz",
	"PAYRAIL_ENCRYPTION_KEYS":         "k1=s3cr3tencMDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIz",
	"PAYRAIL_AUTHNET_TRANSACTION_KEY": "s3cr3ttxnkey",
	"PAYRAIL_DATABASE_URL":            "postgres://app:s3cr3tdbpw@db.internal:5432/payrail?sslmode=require",
	"PAYRAIL_NATS_URL":                "nats://svc:s3cr3tnatspw@nats:4222",
	"PAYRAIL_NACHA_SFTP_PASSWORD":     "s3cr3tsftppw",
}

func TestHelpShowsNoSecretAndExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"},
		{"dev", "-h"}, {"api", "-h"}, {"api", "--help"}, {"worker", "-h"}, {"relay", "-h"}, {"migrate", "-h"},
		{"events", "-h"}, {"anetsim", "-h"}, {"version", "-h"}, {"bench", "-h"},
		{"nacha", "-h"}, {"nacha", "--help"}, {"nacha", "drop", "-h"}, {"nacha", "returns", "--help"},
		{"nacha", "settle", "-h"}, {"nacha", "simulate-return", "-h"},
		{"clients", "-h"}, {"clients", "create", "-h"},
		{"payments", "-h"}, {"payments", "list", "-h"}, {"payments", "show", "-h"}, {"payments", "redrive", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := payrail(t, secretEnv, args...)
			if r.code != 0 {
				t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(strings.ToLower(r.stdout), "usage") {
				t.Errorf("no usage on standard output:\n%s", r.stdout)
			}
			if strings.Contains(r.stdout+r.stderr, "s3cr3t") {
				t.Errorf("help shows a secret:\n%s%s", r.stdout, r.stderr)
			}
		})
	}
}

func TestHelpSaysWhichSecretsAreSet(t *testing.T) {
	r := payrail(t, secretEnv, "api", "-h")
	for _, want := range []string{
		"(PAYRAIL_JWT_SECRET; set)", "(PAYRAIL_ENCRYPTION_KEYS; set)", "(PAYRAIL_AUTHNET_TRANSACTION_KEY; set)",
		`now "postgres://app:xxxxx@db.internal:5432/payrail?sslmode=require"`,
		`now "nats://svc:xxxxx@nats:4222"`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("api -h lacks %s:\n%s", want, r.stdout)
		}
	}
	for _, absent := range []string{"--worker-concurrency", "--ack-wait", "--max-deliver", "--nacha-", "s3cr3ttxnkey"} {
		if strings.Contains(r.stdout, absent) {
			t.Errorf("api -h lists %s", absent)
		}
	}
	r = payrail(t, secretEnv, "relay", "-h")
	for _, absent := range []string{"--http-addr", "--jwt-secret", "--authnet-", "--token-ttl", "--encryption-keys"} {
		if strings.Contains(r.stdout, absent) {
			t.Errorf("relay -h lists %s", absent)
		}
	}
	r = payrail(t, secretEnv, "worker", "-h")
	if !strings.Contains(r.stdout, "(PAYRAIL_AUTHNET_TRANSACTION_KEY; set)") || !strings.Contains(r.stdout, "(PAYRAIL_NACHA_SFTP_PASSWORD; set)") {
		t.Errorf("worker -h:\n%s", r.stdout)
	}
}

func TestMalformedSettingStopsTheCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"worker"}, map[string]string{"PAYRAIL_ACK_WAIT": "90", "PAYRAIL_ENCRYPTION_KEYS": "k1=" + testKey},
			"payrail: PAYRAIL_ACK_WAIT=\"90\": want a positive duration such as 30s or 2m\n"},
		{[]string{"worker"}, map[string]string{"PAYRAIL_MAX_DELIVER": "ten", "PAYRAIL_ENCRYPTION_KEYS": "k1=" + testKey},
			"payrail: PAYRAIL_MAX_DELIVER=\"ten\": want a whole number of at least 1\n"},
		{[]string{"api"}, map[string]string{"PAYRAIL_API_RELAY": "nope", "PAYRAIL_JWT_SECRET": testJWT, "PAYRAIL_ENCRYPTION_KEYS": "k1=" + testKey},
			"payrail: PAYRAIL_API_RELAY=\"nope\": want true or false\n"},
		{[]string{"relay", "--stream-replicas=7"}, nil,
			"payrail: --stream-replicas=\"7\": want a whole number from 1 to 5\n"},
		{[]string{"migrate"}, map[string]string{"PAYRAIL_DATABASE_URL": "postgres://u:s3cr3tpw@db:nope/x"},
			"payrail: PAYRAIL_DATABASE_URL=\"postgres://u:xxxxx@db:nope/x\": want a PostgreSQL URL such as postgres://user@host:5432/payrail?sslmode=disable\n"},
		{[]string{"nacha", "drop"}, map[string]string{"PAYRAIL_NACHA_CUTOFFS": "9pm", "PAYRAIL_ENCRYPTION_KEYS": "k1=" + testKey},
			"payrail: PAYRAIL_NACHA_CUTOFFS=\"9pm\": want HH:MM times, comma-separated, such as 21:00 or 10:30,21:00\n"},
		{[]string{"events"}, map[string]string{"PAYRAIL_NATS_URL": "nats://"},
			"payrail: PAYRAIL_NATS_URL=\"nats://\": want a NATS URL such as nats://127.0.0.1:4222 (several: comma-separated)\n"},
		{[]string{"relay"}, map[string]string{"PAYRAIL_LOG_LEVEL": "loud", "PAYRAIL_RELAY_GRACE": "2"},
			"payrail: PAYRAIL_LOG_LEVEL=\"loud\": want debug, info, warn or error\n" +
				"payrail: PAYRAIL_RELAY_GRACE=\"2\": want a duration such as 2s or 500ms, 0 or more\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := payrail(t, tc.env, tc.args...)
			if r.code != 2 || r.stderr != tc.want || r.stdout != "" {
				t.Fatalf("exit %d\nstderr:\n%s\nwant exit 2 and:\n%s\nstdout:\n%s", r.code, r.stderr, tc.want, r.stdout)
			}
		})
	}
}

// payrail dev checks everything before it creates anything or prints its
// banner: a bad time zone used to be reported after the credentials.
func TestDevChecksBeforeStarting(t *testing.T) {
	varDir := filepath.Join(t.TempDir(), "var")
	r := payrail(t, map[string]string{
		"PAYRAIL_VAR_DIR": varDir, "PAYRAIL_NACHA_TIMEZONE": "America/Nowhere", "PAYRAIL_TOKEN_TTL": "1 hour",
		"PAYRAIL_DATABASE_URL": "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1",
	}, "dev")
	want := "payrail: PAYRAIL_TOKEN_TTL=\"1 hour\": want a positive duration such as 30s or 2m\n" +
		"payrail: PAYRAIL_NACHA_TIMEZONE=\"America/Nowhere\": want an IANA time zone such as America/New_York or UTC\n"
	if r.code != 2 || r.stderr != want || r.stdout != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", r.code, r.stdout, r.stderr, want)
	}
	if _, err := os.Stat(varDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("payrail dev created %s before checking its configuration (%v)", varDir, err)
	}
}

func TestCommandWiring(t *testing.T) {
	want := map[string]any{
		"dev": runDev, "api": runAPI, "worker": runWorker, "relay": runRelay, "webhooks": runWebhooks, "migrate": runMigrate,
		"clients": runClients, "anetsim": runAnetsim, "nacha": runNacha, "events": runEvents, "payments": runPayments,
		"version": runVersion, "bench": runBench,
	}
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
		w, ok := want[c.name]
		if !ok {
			t.Errorf("command %q is not expected", c.name)
			continue
		}
		if reflect.ValueOf(c.run).Pointer() != reflect.ValueOf(w).Pointer() {
			t.Errorf("command %q runs the wrong function", c.name)
		}
		if !strings.Contains(usage, "payrail "+c.name) {
			t.Errorf("usage does not mention payrail %s", c.name)
		}
		if c.summary == "" {
			t.Errorf("command %q has no summary", c.name)
		}
	}
	if len(names) != len(want) {
		t.Errorf("commands %q, want %d of them", names, len(want))
	}

	for _, tc := range []struct {
		args       []string
		code       int
		stderrHas  string
		stdoutHas  string
		stderrNone bool
	}{
		{nil, 2, "Usage:", "", false},
		{[]string{"bogus"}, 2, "payrail: unknown command \"bogus\"\n\npayrail: asynchronous", "", false},
		{[]string{"Worker"}, 2, "unknown command \"Worker\"", "", false},
		{[]string{"help"}, 0, "", "Usage:", true},
		{[]string{"nacha"}, 2, "Usage:", "", false},
		{[]string{"nacha", "cut"}, 2, "payrail nacha: unknown command \"cut\"", "", false},
		{[]string{"clients"}, 2, "payrail clients create --org ORG", "", false},
		{[]string{"relay", "--http-addr=:80"}, 2, "payrail relay: flag provided but not defined: -http-addr\nRun \"payrail relay -h\" for its flags.\n", "", false},
		{[]string{"version", "extra"}, 2, "unexpected argument \"extra\"", "", false},
		{[]string{"nacha", "simulate-return"}, 2, "--file and --trace are required", "", false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := payrail(t, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderrHas) || !strings.Contains(r.stdout, tc.stdoutHas) ||
				(tc.stderrNone && r.stderr != "") {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
		})
	}
}

func fakeBuildInfo(t *testing.T, bi *debug.BuildInfo) {
	t.Helper()
	old := readBuildInfo
	readBuildInfo = func() (*debug.BuildInfo, bool) { return bi, bi != nil }
	t.Cleanup(func() { readBuildInfo = old })
}

func TestVersionOutput(t *testing.T) {
	fakeBuildInfo(t, &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/payrail/payrail", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "7486179abc"}, {Key: "vcs.time", Value: "2026-05-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}})
	var b bytes.Buffer
	currentBuild().print(&b)
	want := "payrail v1.4.0\ncommit:      7486179abc (modified)\ncommit time: 2026-05-01T10:00:00Z\nbuild time:  not recorded\ngo:          go1.26.8\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	j, _ := json.Marshal(currentBuild())
	if wantJSON := `{"version":"v1.4.0","commit":"7486179abc","commit_time":"2026-05-01T10:00:00Z","modified":true,"go_version":"go1.26.8"}`; string(j) != wantJSON {
		t.Errorf("JSON %s, want %s", j, wantJSON)
	}

	fakeBuildInfo(t, nil)
	if got := currentBuild(); got.Version != "unknown" || got.Commit != "unknown" || got.GoVersion != "unknown" {
		t.Errorf("without build info: %+v", got)
	}
}

func TestVersionCommand(t *testing.T) {
	r := payrail(t, nil, "version", "--json")
	var b buildInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &b) != nil {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if b.GoVersion != runtime.Version() || b.Version == "" || b.Commit == "" {
		t.Errorf("version --json: %+v", b)
	}
	r = payrail(t, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "payrail ") || !strings.Contains(r.stdout, "go:          "+runtime.Version()+"\n") {
		t.Errorf("version: exit %d\n%s", r.code, r.stdout)
	}
}

func TestBuildInfoMetric(t *testing.T) {
	fakeBuildInfo(t, &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "7486179abc"}}})
	mfs, err := newRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found *dto.MetricFamily
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		if mf.GetName() == "payrail_build_info" {
			found = mf
		}
	}
	if found == nil || len(found.GetMetric()) != 1 {
		t.Fatalf("no payrail_build_info among %q", names)
	}
	m := found.GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if want := map[string]string{"version": "v1.4.0", "commit": "7486179abc", "go_version": "go1.26.8"}; !reflect.DeepEqual(labels, want) {
		t.Errorf("labels %v, want %v", labels, want)
	}
	if m.GetGauge().GetValue() != 1 {
		t.Errorf("value %v, want 1", m.GetGauge().GetValue())
	}
	for _, want := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !slices.Contains(names, want) {
			t.Errorf("registry lacks %s", want)
		}
	}
}

// TestOpsListenerServesMetrics: /metrics and /debug/pprof/ live on the ops
// listener (PAYRAIL_METRICS_ADDR), which every server role, the API
// included, runs. TestRolesStopCleanlyWhileNATSIsAway checks that the
// running API's public listener answers 404 for /debug/pprof/.
func TestOpsListenerServesMetrics(t *testing.T) {
	reg := newRegistry()
	ready := true
	h := opsHandler(reg, []intake.Check{{Name: "postgres", Fn: func(context.Context) error {
		if !ready {
			return errors.New("down")
		}
		return nil
	}}})
	for _, c := range []struct {
		path   string
		status int
		has    string
	}{
		{"/metrics", 200, "payrail_build_info"},
		{"/healthz", 200, `"ok"`},
		{"/readyz", 200, `"ready"`},
		{"/debug/pprof/", 200, "goroutine"},
		{"/debug/pprof/cmdline", 200, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.has) {
			t.Errorf("GET %s: %d %s", c.path, rec.Code, rec.Body)
		}
	}
	ready = false
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 {
		t.Errorf("readyz while down: %d", rec.Code)
	}
	// The API itself does not serve /metrics (intake
	// TestNonCleanPathsAndMetrics); api and dev take --metrics-addr
	// (TestEachCommandListsOnlyItsFlags).
}
