package main

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/processors/authorizenet"
)

// Valid keys, so that a case's one bad value is the only problem.
const (
	testJWT = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" // 32 bytes
	testKey = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
)

func lookupFrom(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// validEnv is what a production role needs beyond the defaults.
func validEnv(extra map[string]string) map[string]string {
	env := map[string]string{"PAYRAIL_JWT_SECRET": testJWT, "PAYRAIL_ENCRYPTION_KEYS": "k1=" + testKey}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// load parses args and env as command name with role r would.
func load(t *testing.T, name string, r role, env map[string]string, args ...string) (*config, []string) {
	t.Helper()
	cl := newCmdline(name, r, lookupFrom(env))
	err := cl.parse(args)
	if err == nil {
		return cl.cfg, nil
	}
	var ce *configError
	if !errors.As(err, &ce) {
		t.Fatalf("parse: %v, want a *configError", err)
	}
	return cl.cfg, ce.problems
}

func TestMalformedEnvironmentValue(t *testing.T) {
	for _, tc := range []struct {
		role       role
		name, val  string
		want       string // the one line, without "payrail: "
		hideSecret bool
	}{
		{roleWorker, "PAYRAIL_ACK_WAIT", "90", `PAYRAIL_ACK_WAIT="90": want a positive duration such as 30s or 2m`, false},
		{roleWorker, "PAYRAIL_ACK_WAIT", "0s", `PAYRAIL_ACK_WAIT="0s": want a positive duration such as 30s or 2m`, false},
		{roleWorker, "PAYRAIL_MAX_DELIVER", "ten", `PAYRAIL_MAX_DELIVER="ten": want a whole number of at least 1`, false},
		{roleWorker, "PAYRAIL_MAX_DELIVER", "0", `PAYRAIL_MAX_DELIVER="0": want a whole number of at least 1`, false},
		{roleAPI, "PAYRAIL_API_RELAY", "nope", `PAYRAIL_API_RELAY="nope": want true or false`, false},
		{roleWorker, "PAYRAIL_WORKER_CONCURRENCY", "-4", `PAYRAIL_WORKER_CONCURRENCY="-4": want a whole number of at least 1`, false},
		{roleWorker, "PAYRAIL_WORKER_CONCURRENCY", "0", `PAYRAIL_WORKER_CONCURRENCY="0": want a whole number of at least 1`, false},
		{roleRelay, "PAYRAIL_STREAM_REPLICAS", "0", `PAYRAIL_STREAM_REPLICAS="0": want a whole number from 1 to 5`, false},
		{roleAPI, "PAYRAIL_STREAM_REPLICAS", "6", `PAYRAIL_STREAM_REPLICAS="6": want a whole number from 1 to 5`, false},
		{roleAPI, "PAYRAIL_RATE_LIMIT", "fast", `PAYRAIL_RATE_LIMIT="fast": want a positive number such as 50 or 2.5`, false},
		{roleAPI, "PAYRAIL_RATE_LIMIT", "0", `PAYRAIL_RATE_LIMIT="0": want a positive number such as 50 or 2.5`, false},
		{roleAPI, "PAYRAIL_RATE_LIMIT", "NaN", `PAYRAIL_RATE_LIMIT="NaN": want a positive number such as 50 or 2.5`, false},
		{roleAPI, "PAYRAIL_RATE_BURST", "0", `PAYRAIL_RATE_BURST="0": want a whole number of at least 1`, false},
		{roleAPI, "PAYRAIL_TOKEN_TTL", "-1h", `PAYRAIL_TOKEN_TTL="-1h": want a positive duration such as 30s or 2m`, false},
		{roleAPI, "PAYRAIL_TRUSTED_PROXIES", "10.0.0.5,proxy.internal", `PAYRAIL_TRUSTED_PROXIES="10.0.0.5,proxy.internal": want addresses or CIDR prefixes such as 10.0.0.5,10.1.0.0/16; "proxy.internal" is neither`, false},
		{roleAPI, "PAYRAIL_DUPLICATE_WINDOW", "2", `PAYRAIL_DUPLICATE_WINDOW="2": want a positive duration such as 30s or 2m`, false},
		{roleRelay, "PAYRAIL_RELAY_GRACE", "soon", `PAYRAIL_RELAY_GRACE="soon": want a duration such as 2s or 500ms, 0 or more`, false},
		{roleRelay, "PAYRAIL_RELAY_GRACE", "-1s", `PAYRAIL_RELAY_GRACE="-1s": want a duration such as 2s or 500ms, 0 or more`, false},
		{roleRelay, "PAYRAIL_DATABASE_MAX_CONNS", "lots", `PAYRAIL_DATABASE_MAX_CONNS="lots": want a whole number from 1 to 10000`, false},
		{roleWorker, "PAYRAIL_AUTHNET_TIMEOUT", "20", `PAYRAIL_AUTHNET_TIMEOUT="20": want a positive duration such as 30s or 2m`, false},
		{roleWorker, "PAYRAIL_AUTHNET_ENDPOINT", "apitest.authorize.net", `PAYRAIL_AUTHNET_ENDPOINT="apitest.authorize.net": want an http or https URL`, false},
		{roleWorker, "PAYRAIL_NACHA_TIMEZONE", "Mars/Olympus", `PAYRAIL_NACHA_TIMEZONE="Mars/Olympus": want an IANA time zone such as America/New_York or UTC`, false},
		{roleDev, "PAYRAIL_NACHA_TIMEZONE", "EST5EDT/nope", `PAYRAIL_NACHA_TIMEZONE="EST5EDT/nope": want an IANA time zone such as America/New_York or UTC`, false},
		{roleWorker, "PAYRAIL_NACHA_CUTOFFS", "9pm", `PAYRAIL_NACHA_CUTOFFS="9pm": want HH:MM times, comma-separated, such as 21:00 or 10:30,21:00`, false},
		{roleNacha, "PAYRAIL_NACHA_CUTOFFS", "10:30,25:00", `PAYRAIL_NACHA_CUTOFFS="10:30,25:00": want HH:MM times, comma-separated, such as 21:00 or 10:30,21:00`, false},
		{roleNacha, "PAYRAIL_NACHA_SETTLEMENT_DAYS", "two", `PAYRAIL_NACHA_SETTLEMENT_DAYS="two": want a whole number of at least 1`, false},
		{roleWorker, "PAYRAIL_NACHA_SFTP_ADDR", "sftp.example.com", `PAYRAIL_NACHA_SFTP_ADDR="sftp.example.com": want host:port such as sftp.example.com:22`, false},
		{roleAPI, "PAYRAIL_LOG_LEVEL", "loud", `PAYRAIL_LOG_LEVEL="loud": want debug, info, warn or error`, false},
		{roleWorker, "PAYRAIL_LOG_FORMAT", "xml", `PAYRAIL_LOG_FORMAT="xml": want json or text`, false},
		{roleAPI, "PAYRAIL_HTTP_ADDR", "8080", `PAYRAIL_HTTP_ADDR="8080": want host:port such as 127.0.0.1:8080`, false},
		{roleWorker, "PAYRAIL_METRICS_ADDR", "localhost:http-alt", `PAYRAIL_METRICS_ADDR="localhost:http-alt": want host:port such as 127.0.0.1:9091`, false},
		{roleDev, "PAYRAIL_NATS_EMBEDDED_ADDR", "4222", `PAYRAIL_NATS_EMBEDDED_ADDR="4222": want host:port such as 127.0.0.1:4222`, false},
		{roleRelay, "PAYRAIL_NATS_URL", "nats://", `PAYRAIL_NATS_URL="nats://": want a NATS URL such as nats://127.0.0.1:4222 (several: comma-separated)`, false},
		{roleMigrate, "PAYRAIL_DATABASE_URL", "postgres://app:hunter2@db:port/payrail",
			`PAYRAIL_DATABASE_URL="postgres://app:xxxxx@db:port/payrail": want a PostgreSQL URL such as postgres://user@host:5432/payrail?sslmode=disable`, true},
		{roleAPI, "PAYRAIL_JWT_SECRET", "not base64!", "PAYRAIL_JWT_SECRET (value hidden): want base64 of at least 32 random bytes (e.g. `openssl rand -base64 32`)", true},
		{roleAPI, "PAYRAIL_JWT_SECRET", "c2hvcnQ=", "PAYRAIL_JWT_SECRET (value hidden): want base64 of at least 32 random bytes (e.g. `openssl rand -base64 32`)", true},
		{roleWorker, "PAYRAIL_ENCRYPTION_KEYS", "k1=c2hvcnQ=", `PAYRAIL_ENCRYPTION_KEYS (value hidden): want id=base64 pairs of 32-byte AES keys, comma-separated (key "k1" is 5 bytes, want 32)`, true},
		{roleNacha, "PAYRAIL_ENCRYPTION_KEYS", "hunter2", `PAYRAIL_ENCRYPTION_KEYS (value hidden): want id=base64 pairs of 32-byte AES keys, comma-separated (entry 1 is not id=base64key)`, true},
		{roleAPI, "OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", `OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318": want an http or https URL such as http://127.0.0.1:4318`, false},
		{roleWorker, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://u:hunter2@/v1/traces", `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://u:xxxxx@/v1/traces": want an http or https URL such as http://127.0.0.1:4318`, false},
		{roleRelay, "OTEL_TRACES_SAMPLER", "jaeger_remote", `OTEL_TRACES_SAMPLER="jaeger_remote": want one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio`, false},
		{roleDev, "OTEL_TRACES_SAMPLER_ARG", "1.5", `OTEL_TRACES_SAMPLER_ARG="1.5": want a sampling ratio from 0 to 1 such as 0.25`, false},
		{roleAPI, "PAYRAIL_ENCRYPTION_KEY_ID", "k9", `PAYRAIL_ENCRYPTION_KEY_ID="k9": want one of the key ids in PAYRAIL_ENCRYPTION_KEYS (k1)`, false},
	} {
		t.Run(tc.name+"="+tc.val, func(t *testing.T) {
			env := validEnv(map[string]string{tc.name: tc.val})
			if tc.role == roleNacha {
				env["PAYRAIL_VAR_DIR"] = t.TempDir()
			}
			_, problems := load(t, "test", tc.role, env)
			if len(problems) != 1 || problems[0] != tc.want {
				t.Fatalf("problems:\n%s\nwant exactly:\n%s", strings.Join(problems, "\n"), tc.want)
			}
			if strings.Contains(problems[0], "hunt") || strings.Contains(problems[0], "c2hvcnQ") {
				t.Fatalf("the problem shows the secret: %s", problems[0])
			}
		})
	}
}

// Before, a malformed value was silently replaced by its default.
func TestMalformedValueIsNotReplacedByDefault(t *testing.T) {
	for _, r := range []role{roleDev, roleWorker} {
		cfg, problems := load(t, "worker", r, validEnv(map[string]string{"PAYRAIL_ACK_WAIT": "90"}))
		if len(problems) == 0 {
			t.Fatalf("role %d: PAYRAIL_ACK_WAIT=90 accepted as %s", r, cfg.AckWait)
		}
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	env := map[string]string{
		"PAYRAIL_ACK_WAIT": "90", "PAYRAIL_MAX_DELIVER": "ten", "PAYRAIL_STREAM_REPLICAS": "9",
		"PAYRAIL_NACHA_TIMEZONE": "Nowhere", "PAYRAIL_LOG_FORMAT": "xml",
	}
	_, problems := load(t, "worker", roleWorker, env)
	want := []string{
		`PAYRAIL_LOG_FORMAT="xml": want json or text`,
		`PAYRAIL_STREAM_REPLICAS="9": want a whole number from 1 to 5`,
		`PAYRAIL_ACK_WAIT="90": want a positive duration such as 30s or 2m`,
		`PAYRAIL_MAX_DELIVER="ten": want a whole number of at least 1`,
		`PAYRAIL_NACHA_TIMEZONE="Nowhere": want an IANA time zone such as America/New_York or UTC`,
		"PAYRAIL_ENCRYPTION_KEYS is not set: give id=base64key pairs of 32-byte AES keys",
	}
	if !slices.Equal(problems, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
}

func TestRequiredSecrets(t *testing.T) {
	for _, tc := range []struct {
		role role
		want []string
	}{
		{roleAPI, []string{
			"PAYRAIL_JWT_SECRET is not set: give a base64 key of at least 32 bytes (e.g. `openssl rand -base64 32`)",
			"PAYRAIL_ENCRYPTION_KEYS is not set: give id=base64key pairs of 32-byte AES keys",
		}},
		{roleWorker, []string{"PAYRAIL_ENCRYPTION_KEYS is not set: give id=base64key pairs of 32-byte AES keys"}},
		{roleRelay, nil},   // the relay reads neither key
		{roleDev, nil},     // generated under the var directory
		{roleMigrate, nil}, // no keys
		{roleEvents, nil},
	} {
		_, problems := load(t, "test", tc.role, map[string]string{"PAYRAIL_VAR_DIR": t.TempDir()})
		if !slices.Equal(problems, tc.want) {
			t.Errorf("role %d: problems %q, want %q", tc.role, problems, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg, problems := load(t, "dev", roleDev, map[string]string{})
	if problems != nil {
		t.Fatal(problems)
	}
	n := cfg.Nacha
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"DatabaseURL", cfg.DatabaseURL, defaultDatabaseURL},
		{"DatabaseMaxConns", cfg.DatabaseMaxConns, 32},
		{"HTTPAddr", cfg.HTTPAddr, "127.0.0.1:8080"},
		{"VarDir", cfg.VarDir, "./var"},
		{"JWTSecret", cfg.JWTSecret, ""},
		{"TokenTTL", cfg.TokenTTL, time.Hour},
		{"RateLimit", cfg.RateLimit, 50.0},
		{"RateBurst", cfg.RateBurst, 100},
		{"EncryptionKey", cfg.EncryptionKey, ""},
		{"EncryptionKID", cfg.EncryptionKID, ""},
		{"LogLevel", cfg.LogLevel, "info"},
		{"LogFormat", cfg.LogFormat, "text"},
		{"NATSURL", cfg.NATSURL, ""},
		{"NATSEmbeddedAddr", cfg.NATSEmbeddedAddr, ""},
		{"SubjectRoot", cfg.SubjectRoot, "payrail"},
		{"JobsStream", cfg.JobsStream, "PAYRAIL_JOBS"},
		{"EventsStream", cfg.EventsStream, "PAYRAIL_EVENTS"},
		{"StreamReplicas", cfg.StreamReplicas, 1},
		{"DuplicateWindow", cfg.DuplicateWindow, 2 * time.Hour},
		{"RelayGrace", cfg.RelayGrace, 2 * time.Second},
		{"WorkerConcurrency", cfg.WorkerConcurrency, 1024},
		{"AckWait", cfg.AckWait, 30 * time.Second},
		{"MaxDeliver", cfg.MaxDeliver, 10},
		{"AuthNetEndpoint", cfg.AuthNetEndpoint, authorizenet.SandboxEndpoint},
		{"AuthNetTimeout", cfg.AuthNetTimeout, 20 * time.Second},
		{"Nacha.DropDir", n.DropDir, "./var/nacha/outbound"},
		{"Nacha.Timezone", n.Timezone, "America/New_York"},
		{"Nacha.Cutoffs", n.Cutoffs, "21:00"},
		{"Nacha.SettlementDays", n.SettlementDays, 2},
		{"Nacha.SFTPDir", n.SFTPDir, "."},
		{"Nacha.InboundDir", n.InboundDir, ""},
		{"dev", cfg.dev, true},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	api, _ := load(t, "api", roleAPI, validEnv(nil))
	if !api.APIRelay || api.LogFormat != "json" {
		t.Errorf("api: APIRelay %v, LogFormat %q; want true, json", api.APIRelay, api.LogFormat)
	}
	w, _ := load(t, "worker", roleWorker, validEnv(nil))
	if w.MetricsAddr != "127.0.0.1:9091" || api.MetricsAddr != "127.0.0.1:9091" {
		t.Errorf("worker MetricsAddr %q, api MetricsAddr %q", w.MetricsAddr, api.MetricsAddr)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	env := validEnv(map[string]string{
		"PAYRAIL_ACK_WAIT": "45s", "PAYRAIL_MAX_DELIVER": "ten", "PAYRAIL_NACHA_CUTOFFS": "10:00",
		"PAYRAIL_LOG_LEVEL": "debug", "PAYRAIL_WORKER_CONCURRENCY": "8",
	})
	cfg, problems := load(t, "worker", roleWorker, env,
		"--ack-wait=1m", "--max-deliver", "3", "-nacha-cutoffs=09:00,17:00")
	if problems != nil {
		t.Fatalf("a flag replaces a bad variable, yet: %q", problems)
	}
	if cfg.AckWait != time.Minute || cfg.MaxDeliver != 3 || cfg.Nacha.Cutoffs != "09:00,17:00" {
		t.Errorf("flags: AckWait %s, MaxDeliver %d, Cutoffs %q", cfg.AckWait, cfg.MaxDeliver, cfg.Nacha.Cutoffs)
	}
	if cfg.LogLevel != "debug" || cfg.WorkerConcurrency != 8 {
		t.Errorf("environment: LogLevel %q, WorkerConcurrency %d", cfg.LogLevel, cfg.WorkerConcurrency)
	}

	api, problems := load(t, "api", roleAPI, validEnv(map[string]string{"PAYRAIL_API_RELAY": "true"}), "--api-relay=false")
	if problems != nil || api.APIRelay {
		t.Errorf("--api-relay=false: APIRelay %v, problems %q", api.APIRelay, problems)
	}
	api, problems = load(t, "api", roleAPI, validEnv(map[string]string{"PAYRAIL_API_RELAY": "false"}), "--api-relay")
	if problems != nil || !api.APIRelay {
		t.Errorf("--api-relay: APIRelay %v, problems %q", api.APIRelay, problems)
	}

	// A bad flag is reported under its flag's name.
	_, problems = load(t, "worker", roleWorker, validEnv(nil), "--max-deliver=0", "--ack-wait", "90")
	want := []string{
		`--ack-wait="90": want a positive duration such as 30s or 2m`,
		`--max-deliver="0": want a whole number of at least 1`,
	}
	if !slices.Equal(problems, want) {
		t.Errorf("problems %q, want %q", problems, want)
	}
}

func TestUnknownFlag(t *testing.T) {
	cl := newCmdline("relay", roleRelay, lookupFrom(nil))
	if err := cl.parse([]string{"--http-addr=:8080"}); !errors.Is(err, errUsage) {
		t.Fatalf("relay --http-addr: %v, want errUsage", err)
	}
}

// flagNames is the flags a command lists.
func flagNames(cl *cmdline) []string {
	var names []string
	cl.fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	slices.Sort(names)
	return names
}

func TestEachCommandListsOnlyItsFlags(t *testing.T) {
	sorted := func(s ...string) []string { slices.Sort(s); return s }
	nachaFlags := []string{"nacha-drop-dir", "nacha-timezone", "nacha-cutoffs", "nacha-settlement-days",
		"nacha-sftp-addr", "nacha-sftp-user", "nacha-sftp-password", "nacha-sftp-key-file", "nacha-sftp-host-key", "nacha-sftp-dir"}
	stream := []string{"nats-url", "subject-root", "jobs-stream", "events-stream", "stream-replicas", "duplicate-window"}
	db := []string{"database-url", "database-max-conns", "log-level", "log-format"}
	apiOnly := []string{"http-addr", "jwt-secret", "token-ttl", "rate-limit", "rate-burst", "trusted-proxies"}
	keys := []string{"encryption-keys", "encryption-key-id"}
	workerOnly := []string{"worker-concurrency", "ack-wait", "max-deliver", "nacha-inbound-dir"}
	// The API verifies payment profiles with Authorize.Net; the worker charges.
	authnet := []string{"authnet-endpoint", "authnet-login-id", "authnet-transaction-key", "authnet-timeout"}
	hooks := []string{"webhooks-timeout", "webhooks-concurrency", "webhooks-pause-after"}
	// The roles that trace a payment (docs/observability.md).
	otel := []string{"otel-exporter-otlp-endpoint", "otel-exporter-otlp-traces-endpoint", "otel-service-name",
		"otel-traces-sampler", "otel-traces-sampler-arg"}
	cat := func(parts ...[]string) []string { return sorted(slices.Concat(parts...)...) }

	for _, tc := range []struct {
		name string
		role role
		want []string
	}{
		{"relay", roleRelay, cat(db, stream, otel, []string{"metrics-addr", "relay-grace"})},
		{"api", roleAPI, cat(db, stream, apiOnly, keys, authnet, otel, []string{"metrics-addr", "relay-grace", "api-relay", "webhooks-allow-private"})},
		{"worker", roleWorker, cat(db, stream, keys, workerOnly, authnet, nachaFlags, otel, []string{"metrics-addr"})},
		{"dev", roleDev, cat(db, stream, apiOnly, keys, workerOnly, authnet, nachaFlags, hooks, otel,
			[]string{"metrics-addr", "relay-grace", "var-dir", "nats-embedded-addr", "webhooks-allow-private"})},
		{"webhooks", roleWebhooks, cat(db, stream, keys, hooks, []string{"metrics-addr", "webhooks-allow-private"})},
		{"migrate", roleMigrate, []string{"database-url"}},
		{"events", roleEvents, sorted("nats-url", "var-dir", "subject-root", "events-stream")},
		{"nacha drop", roleNacha, cat(db, keys, nachaFlags, []string{"var-dir"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := flagNames(newCmdline(tc.name, tc.role, lookupFrom(nil)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("flags\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// Every setting keeps its variable name; each is declared once.
func TestEveryVariableDeclaredOnce(t *testing.T) {
	want := []string{
		"PAYRAIL_DATABASE_URL", "PAYRAIL_DATABASE_MAX_CONNS", "PAYRAIL_HTTP_ADDR", "PAYRAIL_METRICS_ADDR", "PAYRAIL_VAR_DIR",
		"PAYRAIL_JWT_SECRET", "PAYRAIL_TOKEN_TTL", "PAYRAIL_RATE_LIMIT", "PAYRAIL_RATE_BURST", "PAYRAIL_TRUSTED_PROXIES", "PAYRAIL_ENCRYPTION_KEYS",
		"PAYRAIL_ENCRYPTION_KEY_ID", "PAYRAIL_LOG_LEVEL", "PAYRAIL_LOG_FORMAT", "PAYRAIL_NATS_URL", "PAYRAIL_NATS_EMBEDDED_ADDR",
		"PAYRAIL_SUBJECT_ROOT", "PAYRAIL_JOBS_STREAM", "PAYRAIL_EVENTS_STREAM", "PAYRAIL_STREAM_REPLICAS",
		"PAYRAIL_DUPLICATE_WINDOW", "PAYRAIL_RELAY_GRACE", "PAYRAIL_API_RELAY", "PAYRAIL_WORKER_CONCURRENCY",
		"PAYRAIL_ACK_WAIT", "PAYRAIL_MAX_DELIVER", "PAYRAIL_AUTHNET_ENDPOINT", "PAYRAIL_AUTHNET_LOGIN_ID",
		"PAYRAIL_AUTHNET_TRANSACTION_KEY", "PAYRAIL_AUTHNET_TIMEOUT", "PAYRAIL_NACHA_DROP_DIR", "PAYRAIL_NACHA_TIMEZONE",
		"PAYRAIL_NACHA_CUTOFFS", "PAYRAIL_NACHA_SETTLEMENT_DAYS", "PAYRAIL_NACHA_SFTP_ADDR", "PAYRAIL_NACHA_SFTP_USER",
		"PAYRAIL_NACHA_SFTP_PASSWORD", "PAYRAIL_NACHA_SFTP_KEY_FILE", "PAYRAIL_NACHA_SFTP_HOST_KEY", "PAYRAIL_NACHA_SFTP_DIR",
		"PAYRAIL_NACHA_INBOUND_DIR", "PAYRAIL_WEBHOOKS_ALLOW_PRIVATE", "PAYRAIL_WEBHOOKS_TIMEOUT",
		"PAYRAIL_WEBHOOKS_CONCURRENCY", "PAYRAIL_WEBHOOKS_PAUSE_AFTER",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	}
	var got []string
	flags := map[string]bool{}
	for _, s := range (&config{}).settings("json") {
		got = append(got, s.env)
		if flags[s.flag] {
			t.Errorf("flag --%s declared twice", s.flag)
		}
		flags[s.flag] = true
		if s.roles == 0 {
			t.Errorf("%s: no command uses it", s.env)
		}
		if err := s.parse(s.def); err != nil && !s.secret {
			t.Errorf("%s: default %q does not parse: %v", s.env, s.def, err)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("variables\n got %q\nwant %q", got, want)
	}
}

func TestRedactPassword(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/payrail?sslmode=disable", "postgres://postgres@127.0.0.1:5432/payrail?sslmode=disable"},
		{"postgres://app:hunter2@db:5432/payrail", "postgres://app:xxxxx@db:5432/payrail"},
		{"postgres://app@db/payrail?password=hunter2&sslmode=require", "postgres://app@db/payrail?password=xxxxx&sslmode=require"},
		{"host=db user=app password=hunter2 dbname=payrail", "host=db user=app password=xxxxx dbname=payrail"},
		{"host=db password='hunter 2' dbname=payrail", "host=db password=xxxxx dbname=payrail"},
		{"nats://svc:hunter2@nats:4222", "nats://svc:xxxxx@nats:4222"},
	} {
		if got := redactPassword(tc.in); got != tc.want {
			t.Errorf("redactPassword(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 2 * time.Hour: "2h", 30 * time.Second: "30s",
		2 * time.Second: "2s", 90 * time.Minute: "1h30m", 0: "0s", 1500 * time.Millisecond: "1.5s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
		if p, err := time.ParseDuration(shortDuration(d)); err != nil || p != d {
			t.Errorf("shortDuration(%s) does not parse back: %v %v", d, p, err)
		}
	}
}

func TestDevSecretsFromFilesAreChecked(t *testing.T) {
	cfg := &config{VarDir: t.TempDir(), JWTSecret: "c2hvcnQ=", EncryptionKey: "dev1=" + testKey}
	err := cfg.checkDevSecrets()
	var ce *configError
	if !errors.As(err, &ce) || len(ce.problems) != 1 || !strings.Contains(ce.problems[0], "jwt.key: want base64 of at least 32") {
		t.Fatalf("checkDevSecrets: %v", err)
	}
}

// payrail dev allows private webhook endpoints (a laptop's receiver is on
// loopback) unless told otherwise; production roles do not.
func TestWebhooksAllowPrivateDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		role role
		env  map[string]string
		want bool
	}{
		{"dev", roleDev, nil, true},
		{"dev", roleDev, map[string]string{"PAYRAIL_WEBHOOKS_ALLOW_PRIVATE": "false"}, false},
		{"webhooks", roleWebhooks, nil, false},
		{"api", roleAPI, map[string]string{"PAYRAIL_WEBHOOKS_ALLOW_PRIVATE": "true", "PAYRAIL_JWT_SECRET": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
			"PAYRAIL_ENCRYPTION_KEYS": "k1=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, true},
	} {
		cl := newCmdline(tc.name, tc.role, lookupFrom(tc.env))
		if tc.role == roleWebhooks {
			cl = newCmdline(tc.name, tc.role, lookupFrom(map[string]string{"PAYRAIL_ENCRYPTION_KEYS": "k1=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}))
		}
		if err := cl.parse(nil); err != nil {
			t.Fatalf("%s %v: %v", tc.name, tc.env, err)
		}
		if cl.cfg.WebhooksAllowPrivate != tc.want {
			t.Errorf("%s %v: allow private %v, want %v", tc.name, tc.env, cl.cfg.WebhooksAllowPrivate, tc.want)
		}
	}
}
