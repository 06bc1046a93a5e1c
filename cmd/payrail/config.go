package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/tracing"
	"github.com/payrail/payrail/processors/authorizenet"
	"github.com/payrail/payrail/processors/nacha"
)

// config is every setting payrail reads. Each field comes from a PAYRAIL_*
// environment variable (OTEL_* for OpenTelemetry's standard ones) and may
// be overridden by the flag of the same name; settings declares them, with
// the roles that use them, once.
type config struct {
	DatabaseURL      string
	DatabaseMaxConns int
	HTTPAddr         string
	MetricsAddr      string // PAYRAIL_METRICS_ADDR: /metrics, /healthz, /readyz of every server role
	VarDir           string
	JWTSecret        string
	TokenTTL         time.Duration
	RateLimit        float64
	RateBurst        int
	TrustedProxies   []netip.Prefix // PAYRAIL_TRUSTED_PROXIES
	EncryptionKey    string         // PAYRAIL_ENCRYPTION_KEYS: "id=base64,id2=base64"
	EncryptionKID    string         // PAYRAIL_ENCRYPTION_KEY_ID: which key seals new values
	LogLevel         string
	LogFormat        string

	NATSURL           string        // PAYRAIL_NATS_URL; empty in payrail dev starts an embedded server
	NATSEmbeddedAddr  string        // PAYRAIL_NATS_EMBEDDED_ADDR, payrail dev only
	SubjectRoot       string        // PAYRAIL_SUBJECT_ROOT
	JobsStream        string        // PAYRAIL_JOBS_STREAM
	EventsStream      string        // PAYRAIL_EVENTS_STREAM
	StreamReplicas    int           // PAYRAIL_STREAM_REPLICAS
	DuplicateWindow   time.Duration // PAYRAIL_DUPLICATE_WINDOW
	RelayGrace        time.Duration // PAYRAIL_RELAY_GRACE
	APIRelay          bool          // PAYRAIL_API_RELAY: payrail api also runs a relay
	WorkerConcurrency int           // PAYRAIL_WORKER_CONCURRENCY
	AckWait           time.Duration // PAYRAIL_ACK_WAIT
	MaxDeliver        int           // PAYRAIL_MAX_DELIVER

	WebhooksAllowPrivate bool          // PAYRAIL_WEBHOOKS_ALLOW_PRIVATE
	WebhooksTimeout      time.Duration // PAYRAIL_WEBHOOKS_TIMEOUT
	WebhooksConcurrency  int           // PAYRAIL_WEBHOOKS_CONCURRENCY
	WebhooksPauseAfter   int           // PAYRAIL_WEBHOOKS_PAUSE_AFTER

	AuthNetEndpoint       string        // PAYRAIL_AUTHNET_ENDPOINT
	AuthNetLoginID        string        // PAYRAIL_AUTHNET_LOGIN_ID
	AuthNetTransactionKey string        // PAYRAIL_AUTHNET_TRANSACTION_KEY
	AuthNetTimeout        time.Duration // PAYRAIL_AUTHNET_TIMEOUT

	Nacha *nachaConfig // PAYRAIL_NACHA_*

	// Tracing is OpenTelemetry's standard OTEL_EXPORTER_OTLP_ENDPOINT,
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SERVICE_NAME,
	// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG; without an
	// endpoint nothing is traced.
	Tracing tracing.Config

	// role is the command the configuration was loaded for.
	role role
	// dev is set by payrail dev: missing processor credentials start the
	// built-in simulators instead of leaving the processor out.
	dev bool
}

const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/payrail?sslmode=disable"

// env is the value of an environment variable, or def when it is unset or
// empty. Settings declared in settings are read through load instead, which
// rejects malformed values.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// role is a set of commands; each setting names the commands that use it,
// and only those list its flag and read its variable.
type role uint16

const (
	roleDev role = 1 << iota
	roleAPI
	roleWorker
	roleRelay
	roleMigrate
	roleNacha // payrail nacha drop|returns|settle
	roleEvents
	roleWebhooks
	rolePayments // payrail payments list|show
	roleRedrive  // payrail payments redrive

	roleServers = roleDev | roleAPI | roleWorker | roleRelay | roleWebhooks // open services and a pipeline
	roleDB      = roleServers | roleNacha | rolePayments | roleRedrive      // open a connection pool
	roleAPIs    = roleDev | roleAPI                                         // serve the HTTP API
	roleWorkers = roleDev | roleWorker                                      // execute jobs
	roleACH     = roleWorkers | roleNacha                                   // run the NACHA processor
	roleAuthNet = roleWorkers | roleAPI | roleRedrive                       // call Authorize.Net (charges; profile checks; redrive lookups)
	roleHooks   = roleDev | roleWebhooks                                    // deliver webhooks
	roleTraced  = roleDev | roleAPI | roleWorker | roleRelay                // trace payments (OTEL_*)
)

// setting is one configuration value: its variable, its flag, its default
// and the parser that turns text into the config field. The parser checks
// ranges too, so an environment variable and a flag are held to the same
// rules.
type setting struct {
	env, flag string
	typ       string // the value's kind in help: duration, int, URL…
	usage     string
	def       string // the default, as text; parsed like any other value
	roles     role
	secret    bool                // never shown: help says only whether it is set
	show      func(string) string // how help and errors show a value (URL redaction); nil: as is
	isBool    bool
	parse     func(string) error // stores the value; its error says what is wanted

	envRaw  string // the variable's value when set and not empty
	flagRaw string
	flagged bool
	source  string // where the value came from: the variable, --flag, or "" (the default)
}

// String, Set and IsBoolFlag make a setting a flag.Value. Set only records
// the text: load parses every value, flag or variable, and reports all
// problems together.
func (s *setting) String() string {
	if s == nil || s.parse == nil {
		return ""
	}
	return s.display(s.def)
}

func (s *setting) Set(v string) error {
	s.flagRaw, s.flagged = v, true
	return nil
}

func (s *setting) IsBoolFlag() bool { return s.isBool }

// display is how v is shown to a person: never a secret, never a password.
func (s *setting) display(v string) string {
	if s.secret {
		if v == "" {
			return ""
		}
		return "(set)"
	}
	if s.show != nil {
		return s.show(v)
	}
	return v
}

// quote is v for help: displayed, and quoted unless it is a number, a
// duration or a boolean.
func (s *setting) quote(v string) string {
	switch s.typ {
	case "int", "number", "duration", "bool":
		return s.display(v)
	}
	return strconv.Quote(s.display(v))
}

// problem is the one line that reports a bad value of s.
func (s *setting) problem(raw string, want error) string {
	name := s.source
	if name == "" {
		name = s.env
	}
	if s.secret {
		return fmt.Sprintf("%s (value hidden): %v", name, want)
	}
	return fmt.Sprintf("%s=%q: %v", name, s.display(raw), want)
}

func strSetting(dst *string, envName, flagName, def, usage string, roles role) *setting {
	return &setting{env: envName, flag: flagName, typ: "string", def: def, usage: usage, roles: roles,
		parse: func(v string) error { *dst = v; return nil }}
}

func checked(dst *string, check func(string) error) func(string) error {
	return func(v string) error {
		if v != "" {
			if err := check(v); err != nil {
				return err
			}
		}
		*dst = v
		return nil
	}
}

// strict is checked for a value that may not be empty either.
func strict(dst *string, check func(string) error) func(string) error {
	return func(v string) error {
		if err := check(v); err != nil {
			return err
		}
		*dst = v
		return nil
	}
}

func durationSetting(dst *time.Duration, envName, flagName string, def time.Duration, min time.Duration, usage string, roles role) *setting {
	want := "want a positive duration such as 30s or 2m"
	if min == 0 {
		want = "want a duration such as 2s or 500ms, 0 or more"
	}
	return &setting{env: envName, flag: flagName, typ: "duration", def: shortDuration(def), usage: usage, roles: roles,
		parse: func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < min || (min > 0 && d <= 0) {
				return errors.New(want)
			}
			*dst = d
			return nil
		}}
}

// shortDuration writes 1h rather than 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func intSetting(dst *int, envName, flagName string, def, lo, hi int, usage string, roles role) *setting {
	want := fmt.Sprintf("want a whole number of at least %d", lo)
	if hi > 0 {
		want = fmt.Sprintf("want a whole number from %d to %d", lo, hi)
	}
	return &setting{env: envName, flag: flagName, typ: "int", def: strconv.Itoa(def), usage: usage, roles: roles,
		parse: func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || (hi > 0 && n > hi) {
				return errors.New(want)
			}
			*dst = n
			return nil
		}}
}

func positiveFloatSetting(dst *float64, envName, flagName string, def float64, usage string, roles role) *setting {
	return &setting{env: envName, flag: flagName, typ: "number", def: strconv.FormatFloat(def, 'g', -1, 64), usage: usage, roles: roles,
		parse: func(v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f > 0) || f > 1e12 {
				return errors.New("want a positive number such as 50 or 2.5")
			}
			*dst = f
			return nil
		}}
}

func boolSetting(dst *bool, envName, flagName string, def bool, usage string, roles role) *setting {
	return &setting{env: envName, flag: flagName, typ: "bool", def: strconv.FormatBool(def), usage: usage, roles: roles, isBool: true,
		parse: func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("want true or false")
			}
			*dst = b
			return nil
		}}
}

func wantAddr(example string) func(string) error {
	return func(v string) error {
		_, port, err := net.SplitHostPort(v)
		if err == nil {
			var n int
			n, err = strconv.Atoi(port)
			if err == nil && (n < 0 || n > 65535) {
				err = errors.New("port out of range")
			}
		}
		if err != nil {
			return fmt.Errorf("want host:port such as %s", example)
		}
		return nil
	}
}

func wantDatabaseURL(v string) error {
	if _, err := pgxpool.ParseConfig(v); err != nil {
		return errors.New("want a PostgreSQL URL such as postgres://user@host:5432/payrail?sslmode=disable")
	}
	return nil
}

func wantNATSURLs(v string) error {
	for _, u := range strings.Split(v, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || p.Host == "" {
			return errors.New("want a NATS URL such as nats://127.0.0.1:4222 (several: comma-separated)")
		}
	}
	return nil
}

func wantHTTPURL(v string) error {
	p, err := url.Parse(v)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return errors.New("want an http or https URL")
	}
	return nil
}

func wantLogLevel(v string) error {
	var l slog.Level
	if l.UnmarshalText([]byte(v)) != nil {
		return errors.New("want debug, info, warn or error")
	}
	return nil
}

func wantLogFormat(v string) error {
	if v != "json" && v != "text" {
		return errors.New("want json or text")
	}
	return nil
}

func wantTimezone(v string) error {
	if _, err := time.LoadLocation(v); err != nil {
		return errors.New("want an IANA time zone such as America/New_York or UTC")
	}
	return nil
}

// cutoffWindows splits PAYRAIL_NACHA_CUTOFFS.
func cutoffWindows(v string) []string {
	var windows []string
	for _, w := range strings.Split(v, ",") {
		if w = strings.TrimSpace(w); w != "" {
			windows = append(windows, w)
		}
	}
	return windows
}

func wantCutoffs(v string) error {
	windows := cutoffWindows(v)
	bad := len(windows) == 0
	for _, w := range windows {
		if _, err := time.Parse("15:04", w); err != nil {
			bad = true
		}
	}
	if bad {
		return errors.New("want HH:MM times, comma-separated, such as 21:00 or 10:30,21:00")
	}
	return nil
}

var (
	dsnPassword   = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)
	queryPassword = regexp.MustCompile(`(?i)([?&]password=)[^&#]*`)
)

// redactPassword hides the password of a database or NATS URL
// (user:password@, ?password=, or password= in a key/value connection
// string) and keeps the rest, so help and errors show where payrail
// connects. It works on the text, so a URL that does not parse is
// redacted too.
func redactPassword(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return dsnPassword.ReplaceAllString(u, "${1}xxxxx")
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if user, _, hasPassword := strings.Cut(authority[:at], ":"); hasPassword {
			authority = user + ":xxxxx" + authority[at:]
		}
	}
	return scheme + "://" + authority + queryPassword.ReplaceAllString(tail, "${1}xxxxx")
}

// settings declares every setting bound to c's fields. logFormat is the
// default log format of the command (json in production, text for people).
func (c *config) settings(logFormat string) []*setting {
	c.Nacha = &nachaConfig{}
	n := c.Nacha
	t := &c.Tracing
	dbURL := &setting{env: "PAYRAIL_DATABASE_URL", flag: "database-url", typ: "URL", def: defaultDatabaseURL,
		usage: "PostgreSQL URL", roles: roleDB | roleMigrate, show: redactPassword,
		parse: strict(&c.DatabaseURL, wantDatabaseURL)}
	natsURL := &setting{env: "PAYRAIL_NATS_URL", flag: "nats-url", typ: "URL",
		usage: "NATS server URL; payrail dev embeds a server when empty, other roles default to nats://127.0.0.1:4222",
		roles: roleServers | roleEvents, show: redactPassword, parse: checked(&c.NATSURL, wantNATSURLs)}
	s := []*setting{
		dbURL,
		intSetting(&c.DatabaseMaxConns, "PAYRAIL_DATABASE_MAX_CONNS", "database-max-conns", 32, 1, 10000, "PostgreSQL connections per process, unless the URL sets pool_max_conns", roleDB),
		{env: "PAYRAIL_HTTP_ADDR", flag: "http-addr", typ: "host:port", def: "127.0.0.1:8080", usage: "HTTP API listen address",
			roles: roleAPIs, parse: checked(&c.HTTPAddr, wantAddr("127.0.0.1:8080"))},
		{env: "PAYRAIL_METRICS_ADDR", flag: "metrics-addr", typ: "host:port", def: "127.0.0.1:9091",
			usage: "where the process serves /metrics, /healthz and /readyz (the ops listener; the API does not serve /metrics); empty turns it off",
			roles: roleServers, parse: checked(&c.MetricsAddr, wantAddr("127.0.0.1:9091"))},
		strSetting(&c.VarDir, "PAYRAIL_VAR_DIR", "var-dir", "./var", "local state of payrail dev (its keys, client and NATS address)", roleDev|roleNacha|roleEvents|rolePayments|roleRedrive),
		{env: "PAYRAIL_JWT_SECRET", flag: "jwt-secret", typ: "base64", usage: "base64 key, at least 32 bytes, that signs access tokens",
			roles: roleAPIs, secret: true, parse: func(v string) error { c.JWTSecret = v; return nil }},
		durationSetting(&c.TokenTTL, "PAYRAIL_TOKEN_TTL", "token-ttl", time.Hour, time.Nanosecond, "access token lifetime", roleAPIs),
		positiveFloatSetting(&c.RateLimit, "PAYRAIL_RATE_LIMIT", "rate-limit", 50, "requests per second per API client", roleAPIs),
		intSetting(&c.RateBurst, "PAYRAIL_RATE_BURST", "rate-burst", 100, 1, 0, "burst size per API client", roleAPIs),
		{env: "PAYRAIL_TRUSTED_PROXIES", flag: "trusted-proxies", typ: "addresses",
			usage: "reverse proxies (addresses or CIDR prefixes, comma-separated) whose X-Forwarded-For names a token request's source",
			roles: roleAPIs, parse: func(v string) error {
				p, err := parseTrustedProxies(v)
				c.TrustedProxies = p
				return err
			}},
		{env: "PAYRAIL_ENCRYPTION_KEYS", flag: "encryption-keys", typ: "keys", usage: "AES-256 keys as id=base64 pairs, comma-separated",
			roles: roleAPIs | roleWorker | roleNacha | roleWebhooks | roleRedrive, secret: true, parse: func(v string) error { c.EncryptionKey = v; return nil }},
		strSetting(&c.EncryptionKID, "PAYRAIL_ENCRYPTION_KEY_ID", "encryption-key-id", "", "key id that seals new values; default the first", roleAPIs|roleWorker|roleNacha|roleWebhooks|roleRedrive),
		{env: "PAYRAIL_LOG_LEVEL", flag: "log-level", typ: "level", def: "info", usage: "debug, info, warn or error",
			roles: roleDB, parse: strict(&c.LogLevel, wantLogLevel)},
		{env: "PAYRAIL_LOG_FORMAT", flag: "log-format", typ: "format", def: logFormat, usage: "json or text",
			roles: roleDB, parse: strict(&c.LogFormat, wantLogFormat)},
		natsURL,
		{env: "PAYRAIL_NATS_EMBEDDED_ADDR", flag: "nats-embedded-addr", typ: "host:port",
			usage: "host:port of payrail dev's embedded NATS; default a free loopback port",
			roles: roleDev, parse: checked(&c.NATSEmbeddedAddr, wantAddr("127.0.0.1:4222"))},
		strSetting(&c.SubjectRoot, "PAYRAIL_SUBJECT_ROOT", "subject-root", "payrail", "first token of every NATS subject", roleServers|roleEvents),
		strSetting(&c.JobsStream, "PAYRAIL_JOBS_STREAM", "jobs-stream", "PAYRAIL_JOBS", "name of the jobs work-queue stream", roleServers),
		strSetting(&c.EventsStream, "PAYRAIL_EVENTS_STREAM", "events-stream", "PAYRAIL_EVENTS", "name of the events stream", roleServers|roleEvents),
		intSetting(&c.StreamReplicas, "PAYRAIL_STREAM_REPLICAS", "stream-replicas", 1, 1, 5, "replicas of the JetStream streams", roleServers),
		durationSetting(&c.DuplicateWindow, "PAYRAIL_DUPLICATE_WINDOW", "duplicate-window", 2*time.Hour, time.Nanosecond, "JetStream duplicate window", roleServers),
		durationSetting(&c.RelayGrace, "PAYRAIL_RELAY_GRACE", "relay-grace", 2*time.Second, 0, "how long the relay leaves a fast-path row to its publisher", roleDev|roleAPI|roleRelay),
		boolSetting(&c.APIRelay, "PAYRAIL_API_RELAY", "api-relay", true, "payrail api also runs a relay", roleAPI),
		intSetting(&c.WorkerConcurrency, "PAYRAIL_WORKER_CONCURRENCY", "worker-concurrency", 1024, 1, 0, "jobs in flight per processor (at most; they follow the load)", roleWorkers),
		durationSetting(&c.AckWait, "PAYRAIL_ACK_WAIT", "ack-wait", 30*time.Second, time.Nanosecond, "JetStream AckWait for jobs", roleWorkers),
		intSetting(&c.MaxDeliver, "PAYRAIL_MAX_DELIVER", "max-deliver", 10, 1, 0, "deliveries of one job before it is dead", roleWorkers),
		boolSetting(&c.WebhooksAllowPrivate, "PAYRAIL_WEBHOOKS_ALLOW_PRIVATE", "webhooks-allow-private", false,
			"webhooks may go to http URLs and loopback, private and link-local addresses (payrail dev: true unless set)", roleAPIs|roleWebhooks),
		durationSetting(&c.WebhooksTimeout, "PAYRAIL_WEBHOOKS_TIMEOUT", "webhooks-timeout", 10*time.Second, time.Nanosecond, "bound on one webhook attempt", roleHooks),
		intSetting(&c.WebhooksConcurrency, "PAYRAIL_WEBHOOKS_CONCURRENCY", "webhooks-concurrency", 16, 1, 1000, "webhook attempts in flight per process", roleHooks),
		intSetting(&c.WebhooksPauseAfter, "PAYRAIL_WEBHOOKS_PAUSE_AFTER", "webhooks-pause-after", 10, 1, 1000, "consecutive failed attempts that pause an org's endpoint", roleHooks),
		{env: "PAYRAIL_AUTHNET_ENDPOINT", flag: "authnet-endpoint", typ: "URL", def: authorizenet.SandboxEndpoint, usage: "Authorize.Net API URL",
			roles: roleAuthNet, show: redactPassword, parse: checked(&c.AuthNetEndpoint, wantHTTPURL)},
		strSetting(&c.AuthNetLoginID, "PAYRAIL_AUTHNET_LOGIN_ID", "authnet-login-id", "", "default Authorize.Net API login ID, for orgs without their own", roleAuthNet),
		{env: "PAYRAIL_AUTHNET_TRANSACTION_KEY", flag: "authnet-transaction-key", typ: "key", usage: "default Authorize.Net transaction key, for orgs without their own",
			roles: roleAuthNet, secret: true, parse: func(v string) error { c.AuthNetTransactionKey = v; return nil }},
		durationSetting(&c.AuthNetTimeout, "PAYRAIL_AUTHNET_TIMEOUT", "authnet-timeout", 20*time.Second, time.Nanosecond, "bound on one Authorize.Net call", roleAuthNet),

		strSetting(&n.DropDir, "PAYRAIL_NACHA_DROP_DIR", "nacha-drop-dir", "./var/nacha/outbound", "directory NACHA files are dropped in", roleACH),
		{env: "PAYRAIL_NACHA_TIMEZONE", flag: "nacha-timezone", typ: "zone", def: nacha.DefaultTimezone, usage: "time zone of the cutoff windows",
			roles: roleACH, parse: checked(&n.Timezone, wantTimezone)},
		{env: "PAYRAIL_NACHA_CUTOFFS", flag: "nacha-cutoffs", typ: "HH:MM,…", def: strings.Join(nacha.DefaultWindows, ","),
			usage: "cutoff windows, HH:MM comma-separated, banking days only", roles: roleACH, parse: strict(&n.Cutoffs, wantCutoffs)},
		intSetting(&n.SettlementDays, "PAYRAIL_NACHA_SETTLEMENT_DAYS", "nacha-settlement-days", nacha.DefaultSettlementDays, 1, 0, "banking days after the effective date an unreturned entry settles", roleACH),
		{env: "PAYRAIL_NACHA_SFTP_ADDR", flag: "nacha-sftp-addr", typ: "host:port", usage: "SFTP host:port to upload files to; empty disables upload",
			roles: roleACH, parse: checked(&n.SFTPAddr, wantAddr("sftp.example.com:22"))},
		strSetting(&n.SFTPUser, "PAYRAIL_NACHA_SFTP_USER", "nacha-sftp-user", "", "SFTP user", roleACH),
		{env: "PAYRAIL_NACHA_SFTP_PASSWORD", flag: "nacha-sftp-password", typ: "password", usage: "SFTP password",
			roles: roleACH, secret: true, parse: func(v string) error { n.SFTPPassword = v; return nil }},
		strSetting(&n.SFTPKeyFile, "PAYRAIL_NACHA_SFTP_KEY_FILE", "nacha-sftp-key-file", "", "SFTP private key file, PEM", roleACH),
		strSetting(&n.SFTPHostKey, "PAYRAIL_NACHA_SFTP_HOST_KEY", "nacha-sftp-host-key", "", "pinned SFTP host key, authorized_keys format", roleACH),
		strSetting(&n.SFTPDir, "PAYRAIL_NACHA_SFTP_DIR", "nacha-sftp-dir", ".", "remote directory", roleACH),
		strSetting(&n.InboundDir, "PAYRAIL_NACHA_INBOUND_DIR", "nacha-inbound-dir", "", "directory the worker polls for return and NOC files; payrail dev default ./var/nacha/inbound", roleWorkers),

		{env: "OTEL_EXPORTER_OTLP_ENDPOINT", flag: "otel-exporter-otlp-endpoint", typ: "URL",
			usage: "OpenTelemetry collector base URL (OTLP over HTTP); spans go to its /v1/traces. Empty (and no traces endpoint): no tracing at all",
			roles: roleTraced, show: redactPassword, parse: checked(&t.Endpoint, tracing.CheckEndpoint)},
		{env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", flag: "otel-exporter-otlp-traces-endpoint", typ: "URL",
			usage: "full OTLP/HTTP URL spans are posted to, such as http://127.0.0.1:4318/v1/traces; wins over OTEL_EXPORTER_OTLP_ENDPOINT",
			roles: roleTraced, show: redactPassword, parse: checked(&t.TracesEndpoint, tracing.CheckEndpoint)},
		strSetting(&t.ServiceName, "OTEL_SERVICE_NAME", "otel-service-name", "", "service.name of the spans; default payrail-<command> (payrail-api, payrail-worker…)", roleTraced),
		{env: "OTEL_TRACES_SAMPLER", flag: "otel-traces-sampler", typ: "sampler", def: "parentbased_always_on",
			usage: "which traces are recorded: " + strings.Join(tracing.Samplers, ", "),
			roles: roleTraced, parse: strict(&t.Sampler, func(v string) error { _, err := tracing.ParseSampler(v, ""); return err })},
		{env: "OTEL_TRACES_SAMPLER_ARG", flag: "otel-traces-sampler-arg", typ: "ratio",
			usage: "sampling ratio (0 to 1) of the traceidratio samplers; default 1",
			roles: roleTraced, parse: checked(&t.SamplerArg, func(v string) error { _, err := tracing.ParseSampler("traceidratio", v); return err })},
	}
	return s
}

// configError is every problem load found, one line each.
type configError struct{ problems []string }

func (e *configError) Error() string { return strings.Join(e.problems, "\n") }

// cmdline is one command's flag set: the settings its role uses plus the
// command's own flags.
type cmdline struct {
	name     string // as typed: "api", "nacha drop"
	args     string // the usage line after the flags: "FILE..."
	summary  string
	role     role
	fs       *flag.FlagSet
	cfg      *config
	settings []*setting
}

// newCmdline registers the flags of the settings r uses on a new flag set.
// lookup reads the environment (os.LookupEnv outside tests).
func newCmdline(name string, r role, lookup func(string) (string, bool)) *cmdline {
	logFormat := "json"
	if r&(roleDev|roleNacha|rolePayments|roleRedrive) != 0 {
		logFormat = "text"
	}
	cl := &cmdline{name: name, role: r, cfg: &config{role: r}, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	for _, s := range cl.cfg.settings(logFormat) {
		if s.roles&r == 0 {
			continue
		}
		if v, ok := lookup(s.env); ok && v != "" {
			s.envRaw = v
		}
		cl.fs.Var(s, s.flag, s.usage)
		cl.settings = append(cl.settings, s)
	}
	return cl
}

// parse reads the flags, then every setting from its flag, its variable or
// its default, and checks the whole configuration. Every problem is
// reported, one line each, in a *configError.
func (cl *cmdline) parse(args []string) error {
	if err := parseFlags(cl.fs, args, cl.usage); err != nil {
		return err
	}
	var problems []string
	for _, s := range cl.settings {
		raw, src := s.def, ""
		if s.envRaw != "" {
			raw, src = s.envRaw, s.env
		}
		if s.flagged {
			raw, src = s.flagRaw, "--"+s.flag
		}
		s.source = src
		if err := s.parse(raw); err != nil {
			problems = append(problems, s.problem(raw, err))
		}
	}
	c := cl.cfg
	c.dev = cl.role == roleDev
	if s := cl.setting("PAYRAIL_WEBHOOKS_ALLOW_PRIVATE"); c.dev && s != nil && s.source == "" {
		c.WebhooksAllowPrivate = true // a laptop's receiver listens on loopback
	}
	if cl.role&(roleNacha|rolePayments|roleRedrive) != 0 {
		if err := c.loadDevSecrets(); err != nil {
			problems = append(problems, err.Error())
		}
		problems = append(problems, loadDevSettings(cl)...)
	}
	problems = append(problems, cl.checkSecrets()...)
	if cl.role&roleACH != 0 && c.Nacha.SFTPAddr != "" {
		if c.Nacha.SFTPHostKey == "" {
			problems = append(problems, "PAYRAIL_NACHA_SFTP_HOST_KEY is required with PAYRAIL_NACHA_SFTP_ADDR: the server's key is pinned, never trusted on first use")
		}
		if f := c.Nacha.SFTPKeyFile; f != "" {
			if _, err := os.ReadFile(f); err != nil {
				problems = append(problems, fmt.Sprintf("PAYRAIL_NACHA_SFTP_KEY_FILE=%q: want a readable PEM private key file (%v)", f, errors.Unwrap(err)))
			}
		}
	}
	if len(problems) > 0 {
		return &configError{problems: problems}
	}
	return nil
}

func (cl *cmdline) setting(envName string) *setting {
	for _, s := range cl.settings {
		if s.env == envName {
			return s
		}
	}
	return nil
}

// checkSecrets checks the keys the command uses: present where required
// (payrail dev generates its own later) and decodable.
func (cl *cmdline) checkSecrets() []string {
	c := cl.cfg
	var problems []string
	if s := cl.setting("PAYRAIL_JWT_SECRET"); s != nil {
		if c.JWTSecret == "" && !c.dev {
			problems = append(problems, "PAYRAIL_JWT_SECRET is not set: give a base64 key of at least 32 bytes (e.g. `openssl rand -base64 32`)")
		} else if err := checkJWTSecret(c.JWTSecret); err != nil {
			problems = append(problems, s.problem("", err))
		}
	}
	if s := cl.setting("PAYRAIL_ENCRYPTION_KEYS"); s != nil {
		if c.EncryptionKey == "" && !c.dev {
			problems = append(problems, "PAYRAIL_ENCRYPTION_KEYS is not set: give id=base64key pairs of 32-byte AES keys")
		} else if p := checkEncryptionKeys(c.EncryptionKey, c.EncryptionKID, s, cl.setting("PAYRAIL_ENCRYPTION_KEY_ID")); p != "" {
			problems = append(problems, p)
		}
	}
	return problems
}

func checkJWTSecret(v string) error {
	if v == "" {
		return nil
	}
	key, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(key) < 32 {
		return errors.New("want base64 of at least 32 random bytes (e.g. `openssl rand -base64 32`)")
	}
	return nil
}

// checkEncryptionKeys reports keys that do not parse (without showing
// them) or a key id that names none of them.
func checkEncryptionKeys(keys, kid string, ks, kidSetting *setting) string {
	if keys == "" {
		return ""
	}
	if detail := keysProblem(keys); detail != "" {
		return ks.problem("", fmt.Errorf("want id=base64 pairs of 32-byte AES keys, comma-separated (%s)", detail))
	}
	if kid == "" {
		return ""
	}
	if _, err := keyring.Parse(keys, kid); err != nil {
		var ids []string
		for _, pair := range strings.Split(keys, ",") {
			if id, _, ok := strings.Cut(strings.TrimSpace(pair), "="); ok {
				ids = append(ids, id)
			}
		}
		if kidSetting == nil {
			kidSetting = &setting{env: "PAYRAIL_ENCRYPTION_KEY_ID"}
		}
		return kidSetting.problem(kid, fmt.Errorf("want one of the key ids in PAYRAIL_ENCRYPTION_KEYS (%s)", strings.Join(ids, ", ")))
	}
	return ""
}

// keysProblem says what is wrong with PAYRAIL_ENCRYPTION_KEYS, naming key
// ids and positions but never key material.
func keysProblem(keys string) string {
	n := 0
	for i, pair := range strings.Split(keys, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		n++
		id, b64, ok := strings.Cut(pair, "=")
		if !ok || id == "" {
			return fmt.Sprintf("entry %d is not id=base64key", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return fmt.Sprintf("key %q is not valid base64", id)
		}
		if len(key) != 32 {
			return fmt.Sprintf("key %q is %d bytes, want 32", id, len(key))
		}
	}
	if n == 0 {
		return "no keys"
	}
	if _, err := keyring.Parse(keys, ""); err != nil {
		return "they do not make a key ring"
	}
	return ""
}

// checkDevSecrets checks the keys payrail dev generated or found under its
// var directory.
func (c *config) checkDevSecrets() error {
	var problems []string
	if err := checkJWTSecret(c.JWTSecret); err != nil {
		problems = append(problems, fmt.Sprintf("%s: %v", filepath.Join(c.VarDir, "jwt.key"), err))
	}
	if p := checkEncryptionKeys(c.EncryptionKey, c.EncryptionKID,
		&setting{env: filepath.Join(c.VarDir, "encryption.keys"), secret: true}, nil); p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return &configError{problems: problems}
	}
	return nil
}

// errHelp is returned when -h or --help asked for a command's help: it was
// printed, and the command exits 0.
var errHelp = errors.New("help requested")

// parseFlags parses args into fs. Help (-h, --help) goes to standard output
// and returns errHelp; a bad flag is reported on one line with a pointer
// to the help.
func parseFlags(fs *flag.FlagSet, args []string, usage func(io.Writer)) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if usage == nil {
			usage = func(w io.Writer) {
				fmt.Fprintf(w, "Usage: payrail %s [flags]\n\nFlags:\n", fs.Name())
				printFlags(w, fs, nil)
			}
		}
		usage(os.Stdout)
		return errHelp
	}
	fmt.Fprintf(os.Stderr, "payrail %s: %v\nRun \"payrail %s -h\" for its flags.\n", fs.Name(), err, fs.Name())
	return errUsage
}

// usage prints the command's help: never a secret's value, never a
// password.
func (cl *cmdline) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: payrail %s [flags]", cl.name)
	if cl.args != "" {
		fmt.Fprintf(w, " %s", cl.args)
	}
	fmt.Fprintln(w)
	if cl.summary != "" {
		fmt.Fprintf(w, "\n%s\n", cl.summary)
	}
	fmt.Fprintln(w, "\nFlags (each setting also reads the PAYRAIL_* variable named; a flag wins):")
	printFlags(w, cl.fs, cl.settings)
}

// printFlags lists fs's flags in the order they were declared, settings
// with their variable and effective default.
func printFlags(w io.Writer, fs *flag.FlagSet, settings []*setting) {
	byFlag := map[string]*setting{}
	for _, s := range settings {
		byFlag[s.flag] = s
	}
	var order []*flag.Flag
	seen := map[string]bool{}
	for _, s := range settings {
		order = append(order, fs.Lookup(s.flag))
		seen[s.flag] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !seen[f.Name] {
			order = append(order, f)
		}
	})
	for _, f := range order {
		if s := byFlag[f.Name]; s != nil {
			line := "  --" + f.Name
			if !s.isBool {
				line += " " + s.typ
			}
			var notes []string
			notes = append(notes, s.env)
			switch {
			case s.secret && s.envRaw != "":
				notes = append(notes, "set")
			case s.secret:
			case s.envRaw != "":
				notes = append(notes, "now "+s.quote(s.envRaw))
				if s.def != "" {
					notes = append(notes, "default "+s.quote(s.def))
				}
			case s.def != "":
				notes = append(notes, "default "+s.quote(s.def))
			}
			fmt.Fprintf(w, "%s\n        %s (%s)\n", line, s.usage, strings.Join(notes, "; "))
			continue
		}
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n        %s%s\n", line, usage, def)
	}
}

// natsURLOrDefault is the URL a production role connects to.
func (c *config) natsURLOrDefault() string {
	if c.NATSURL == "" {
		return "nats://127.0.0.1:4222"
	}
	return c.NATSURL
}

func (c *config) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("PAYRAIL_LOG_LEVEL %q: %w", c.LogLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("PAYRAIL_LOG_FORMAT must be json or text, got %q", c.LogFormat)
}

func (c *config) jwtKey() ([]byte, error) {
	if c.JWTSecret == "" {
		return nil, errors.New("PAYRAIL_JWT_SECRET is not set: give a base64 key of at least 32 bytes (e.g. `openssl rand -base64 32`)")
	}
	key, err := base64.StdEncoding.DecodeString(c.JWTSecret)
	if err != nil {
		return nil, errors.New("PAYRAIL_JWT_SECRET is not valid base64")
	}
	return key, nil
}

// loadDevSecrets fills unset secrets from payrail dev's files under the
// var directory when they exist, so operator commands (payrail nacha …)
// work beside payrail dev without exporting its keys. Nothing is generated.
func (c *config) loadDevSecrets() error {
	for _, s := range []struct {
		dst  *string
		file string
	}{{&c.JWTSecret, "jwt.key"}, {&c.EncryptionKey, "encryption.keys"}} {
		if *s.dst != "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.VarDir, s.file))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		*s.dst = strings.TrimSpace(string(b))
	}
	return nil
}

// ensureDevSecrets fills unset secrets for payrail dev from files under the
// var directory, generating them on first run, so restarts keep tokens and
// sealed data readable.
func (c *config) ensureDevSecrets(newKey func() (string, error)) error {
	if err := os.MkdirAll(c.VarDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", c.VarDir, err)
	}
	load := func(name string, gen func() (string, error)) (string, error) {
		path := filepath.Join(c.VarDir, name)
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b)), nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		v, err := gen()
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
		return v, nil
	}
	var err error
	if c.JWTSecret == "" {
		if c.JWTSecret, err = load("jwt.key", newKey); err != nil {
			return err
		}
	}
	if c.EncryptionKey == "" {
		if c.EncryptionKey, err = load("encryption.keys", func() (string, error) {
			k, err := newKey()
			return "dev1=" + k, err
		}); err != nil {
			return err
		}
	}
	return nil
}

// redactedURL is a URL flag whose help shows it without its password.
type redactedURL struct{ v *string }

func (u redactedURL) String() string {
	if u.v == nil {
		return ""
	}
	return redactPassword(*u.v)
}

func (u redactedURL) Set(s string) error { *u.v = s; return nil }

// databaseURLFlag registers --database-url for a command outside the
// settings table (payrail clients): its default comes from
// PAYRAIL_DATABASE_URL, and help shows it without the password.
func databaseURLFlag(fs *flag.FlagSet) *string {
	v := env("PAYRAIL_DATABASE_URL", defaultDatabaseURL)
	fs.Var(redactedURL{&v}, "database-url", "PostgreSQL `URL` (PAYRAIL_DATABASE_URL)")
	return &v
}

// parseTrustedProxies reads comma-separated addresses or CIDR prefixes of
// reverse proxies whose X-Forwarded-For the API believes when it limits
// failed token requests per source address. Empty: X-Forwarded-For is
// ignored.
func parseTrustedProxies(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("want addresses or CIDR prefixes such as 10.0.0.5,10.1.0.0/16; %q is neither", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("want addresses or CIDR prefixes such as 10.0.0.5,10.1.0.0/16; %q is neither", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
