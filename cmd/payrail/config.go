package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/payrail/payrail/processors/authorizenet"
)

// config is every setting payrail reads. Each field comes from a PAYRAIL_*
// environment variable and may be overridden by the flag of the same name;
// the README lists them with their defaults.
type config struct {
	DatabaseURL      string
	DatabaseMaxConns int
	HTTPAddr         string
	MetricsAddr      string // PAYRAIL_METRICS_ADDR: /metrics, /healthz, /readyz of a worker or relay
	VarDir           string
	JWTSecret        string
	TokenTTL         time.Duration
	RateLimit        float64
	RateBurst        int
	EncryptionKey    string // PAYRAIL_ENCRYPTION_KEYS: "id=base64,id2=base64"
	EncryptionKID    string // PAYRAIL_ENCRYPTION_KEY_ID: which key seals new values
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

	AuthNetEndpoint       string        // PAYRAIL_AUTHNET_ENDPOINT
	AuthNetLoginID        string        // PAYRAIL_AUTHNET_LOGIN_ID
	AuthNetTransactionKey string        // PAYRAIL_AUTHNET_TRANSACTION_KEY
	AuthNetTimeout        time.Duration // PAYRAIL_AUTHNET_TIMEOUT

	Nacha *nachaConfig // PAYRAIL_NACHA_*

	// dev is set by payrail dev: missing processor credentials start the
	// built-in simulators instead of leaving the processor out.
	dev bool
}

const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/payrail?sslmode=disable"

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// bindConfig registers the flags shared by the long-running roles.
func bindConfig(fs *flag.FlagSet, logFormat string) *config {
	c := &config{}
	fs.StringVar(&c.DatabaseURL, "database-url", env("PAYRAIL_DATABASE_URL", defaultDatabaseURL), "PostgreSQL URL (PAYRAIL_DATABASE_URL)")
	fs.IntVar(&c.DatabaseMaxConns, "database-max-conns", envInt("PAYRAIL_DATABASE_MAX_CONNS", 32), "PostgreSQL connections per process (PAYRAIL_DATABASE_MAX_CONNS)")
	fs.StringVar(&c.HTTPAddr, "http-addr", env("PAYRAIL_HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address (PAYRAIL_HTTP_ADDR)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env("PAYRAIL_METRICS_ADDR", "127.0.0.1:9091"), "where payrail worker and payrail relay serve /metrics, /healthz and /readyz; empty turns it off (PAYRAIL_METRICS_ADDR)")
	fs.StringVar(&c.VarDir, "var-dir", env("PAYRAIL_VAR_DIR", "./var"), "local state for payrail dev (PAYRAIL_VAR_DIR)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", env("PAYRAIL_JWT_SECRET", ""), "base64 key, at least 32 bytes, that signs access tokens (PAYRAIL_JWT_SECRET)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", envDuration("PAYRAIL_TOKEN_TTL", time.Hour), "access token lifetime (PAYRAIL_TOKEN_TTL)")
	fs.Float64Var(&c.RateLimit, "rate-limit", envFloat("PAYRAIL_RATE_LIMIT", 50), "requests per second per API client (PAYRAIL_RATE_LIMIT)")
	fs.IntVar(&c.RateBurst, "rate-burst", envInt("PAYRAIL_RATE_BURST", 100), "burst size per API client (PAYRAIL_RATE_BURST)")
	fs.StringVar(&c.EncryptionKey, "encryption-keys", env("PAYRAIL_ENCRYPTION_KEYS", ""), "AES-256 keys as id=base64 pairs, comma-separated (PAYRAIL_ENCRYPTION_KEYS)")
	fs.StringVar(&c.EncryptionKID, "encryption-key-id", env("PAYRAIL_ENCRYPTION_KEY_ID", ""), "key id that seals new values; default the first (PAYRAIL_ENCRYPTION_KEY_ID)")
	fs.StringVar(&c.LogLevel, "log-level", env("PAYRAIL_LOG_LEVEL", "info"), "debug, info, warn or error (PAYRAIL_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("PAYRAIL_LOG_FORMAT", logFormat), "json or text (PAYRAIL_LOG_FORMAT)")
	fs.StringVar(&c.NATSURL, "nats-url", env("PAYRAIL_NATS_URL", ""), "NATS server URL (PAYRAIL_NATS_URL); payrail dev embeds a server when empty, other roles default to nats://127.0.0.1:4222")
	fs.StringVar(&c.NATSEmbeddedAddr, "nats-embedded-addr", env("PAYRAIL_NATS_EMBEDDED_ADDR", ""), "host:port for payrail dev's embedded NATS; default a free loopback port (PAYRAIL_NATS_EMBEDDED_ADDR)")
	fs.StringVar(&c.SubjectRoot, "subject-root", env("PAYRAIL_SUBJECT_ROOT", "payrail"), "first token of every NATS subject (PAYRAIL_SUBJECT_ROOT)")
	fs.StringVar(&c.JobsStream, "jobs-stream", env("PAYRAIL_JOBS_STREAM", "PAYRAIL_JOBS"), "name of the jobs work-queue stream (PAYRAIL_JOBS_STREAM)")
	fs.StringVar(&c.EventsStream, "events-stream", env("PAYRAIL_EVENTS_STREAM", "PAYRAIL_EVENTS"), "name of the events stream (PAYRAIL_EVENTS_STREAM)")
	fs.IntVar(&c.StreamReplicas, "stream-replicas", envInt("PAYRAIL_STREAM_REPLICAS", 1), "replicas of the JetStream streams (PAYRAIL_STREAM_REPLICAS)")
	fs.DurationVar(&c.DuplicateWindow, "duplicate-window", envDuration("PAYRAIL_DUPLICATE_WINDOW", 2*time.Hour), "JetStream duplicate window (PAYRAIL_DUPLICATE_WINDOW)")
	fs.DurationVar(&c.RelayGrace, "relay-grace", envDuration("PAYRAIL_RELAY_GRACE", 2*time.Second), "how long the relay leaves a fast-path row to its publisher (PAYRAIL_RELAY_GRACE)")
	fs.BoolVar(&c.APIRelay, "api-relay", envBool("PAYRAIL_API_RELAY", true), "payrail api also runs a relay (PAYRAIL_API_RELAY)")
	fs.IntVar(&c.WorkerConcurrency, "worker-concurrency", envInt("PAYRAIL_WORKER_CONCURRENCY", 32), "jobs in flight per processor (PAYRAIL_WORKER_CONCURRENCY)")
	fs.DurationVar(&c.AckWait, "ack-wait", envDuration("PAYRAIL_ACK_WAIT", 30*time.Second), "JetStream AckWait for jobs (PAYRAIL_ACK_WAIT)")
	fs.IntVar(&c.MaxDeliver, "max-deliver", envInt("PAYRAIL_MAX_DELIVER", 10), "deliveries of one job before it is dead (PAYRAIL_MAX_DELIVER)")
	fs.StringVar(&c.AuthNetEndpoint, "authnet-endpoint", env("PAYRAIL_AUTHNET_ENDPOINT", authorizenet.SandboxEndpoint), "Authorize.Net API URL (PAYRAIL_AUTHNET_ENDPOINT)")
	fs.StringVar(&c.AuthNetLoginID, "authnet-login-id", env("PAYRAIL_AUTHNET_LOGIN_ID", ""), "Authorize.Net API login ID (PAYRAIL_AUTHNET_LOGIN_ID)")
	fs.StringVar(&c.AuthNetTransactionKey, "authnet-transaction-key", env("PAYRAIL_AUTHNET_TRANSACTION_KEY", ""), "Authorize.Net transaction key (PAYRAIL_AUTHNET_TRANSACTION_KEY)")
	c.Nacha = bindNachaConfig(fs)
	fs.DurationVar(&c.AuthNetTimeout, "authnet-timeout", envDuration("PAYRAIL_AUTHNET_TIMEOUT", 20*time.Second), "bound on one Authorize.Net call (PAYRAIL_AUTHNET_TIMEOUT)")
	return c
}

// natsURLOrDefault is the URL a production role connects to.
func (c *config) natsURLOrDefault() string {
	if c.NATSURL == "" {
		return "nats://127.0.0.1:4222"
	}
	return c.NATSURL
}

func envBool(name string, def bool) bool {
	if b, err := strconv.ParseBool(env(name, "")); err == nil {
		return b
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env(name, "")); err == nil {
		return d
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if f, err := strconv.ParseFloat(env(name, ""), 64); err == nil {
		return f
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(env(name, "")); err == nil {
		return n
	}
	return def
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
