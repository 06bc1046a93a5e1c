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
)

// config is every setting payrail reads. Each field comes from a PAYRAIL_*
// environment variable and may be overridden by the flag of the same name;
// the README lists them with their defaults.
type config struct {
	DatabaseURL   string
	HTTPAddr      string
	VarDir        string
	JWTSecret     string
	TokenTTL      time.Duration
	RateLimit     float64
	RateBurst     int
	EncryptionKey string // PAYRAIL_ENCRYPTION_KEYS: "id=base64,id2=base64"
	EncryptionKID string // PAYRAIL_ENCRYPTION_KEY_ID: which key seals new values
	LogLevel      string
	LogFormat     string
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
	fs.StringVar(&c.HTTPAddr, "http-addr", env("PAYRAIL_HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address (PAYRAIL_HTTP_ADDR)")
	fs.StringVar(&c.VarDir, "var-dir", env("PAYRAIL_VAR_DIR", "./var"), "local state for payrail dev (PAYRAIL_VAR_DIR)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", env("PAYRAIL_JWT_SECRET", ""), "base64 key, at least 32 bytes, that signs access tokens (PAYRAIL_JWT_SECRET)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", envDuration("PAYRAIL_TOKEN_TTL", time.Hour), "access token lifetime (PAYRAIL_TOKEN_TTL)")
	fs.Float64Var(&c.RateLimit, "rate-limit", envFloat("PAYRAIL_RATE_LIMIT", 50), "requests per second per API client (PAYRAIL_RATE_LIMIT)")
	fs.IntVar(&c.RateBurst, "rate-burst", envInt("PAYRAIL_RATE_BURST", 100), "burst size per API client (PAYRAIL_RATE_BURST)")
	fs.StringVar(&c.EncryptionKey, "encryption-keys", env("PAYRAIL_ENCRYPTION_KEYS", ""), "AES-256 keys as id=base64 pairs, comma-separated (PAYRAIL_ENCRYPTION_KEYS)")
	fs.StringVar(&c.EncryptionKID, "encryption-key-id", env("PAYRAIL_ENCRYPTION_KEY_ID", ""), "key id that seals new values; default the first (PAYRAIL_ENCRYPTION_KEY_ID)")
	fs.StringVar(&c.LogLevel, "log-level", env("PAYRAIL_LOG_LEVEL", "info"), "debug, info, warn or error (PAYRAIL_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("PAYRAIL_LOG_FORMAT", logFormat), "json or text (PAYRAIL_LOG_FORMAT)")
	return c
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
