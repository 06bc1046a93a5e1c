package authorizenet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Merchants hands out the Authorize.Net client of each org: the org's own
// merchant login when it has one (PUT /organization/authorize_net_config),
// else the default login of the configuration, else none. It never falls
// back to the default when the org's own credentials exist but cannot be
// read: charging an org's customer with another merchant's login is the
// one thing it must not do. Clients are cached per org for TTL, at most
// MaxEntries of them. It is safe for concurrent use.
type Merchants struct {
	base    Config // endpoint, timeout, HTTP client, metrics
	def     *Client
	lookup  CredentialLookup
	ttl     time.Duration
	max     int
	now     func() time.Time
	log     *slog.Logger
	mu      sync.Mutex
	entries map[string]merchantEntry
	// reporting is what is known of each login's Transaction Details API.
	reporting map[string]reportingState
}

type merchantEntry struct {
	client  *Client
	err     error
	expires time.Time
}

// CredentialLookup returns an org's own login id and transaction key;
// ErrNoOrgCredentials when the org has none. Any other error is treated
// as unreadable credentials unless it is marked temporary with
// TemporaryLookupError.
type CredentialLookup func(ctx context.Context, orgID string) (loginID, transactionKey string, err error)

// ErrNoOrgCredentials is what a CredentialLookup answers for an org
// without credentials of its own.
var ErrNoOrgCredentials = errors.New("authorizenet: org has no credentials of its own")

// ErrNotConfigured: the org has no credentials and there is no default.
var ErrNotConfigured = errors.New("authorizenet: no Authorize.Net credentials for this org and no default configured")

// CredentialsError is a failure to obtain an org's credentials. Temporary
// ones (the database is unreachable) may be retried; the others (a key
// that cannot be unsealed, credentials the client refuses) cannot.
type CredentialsError struct {
	OrgID     string
	Temporary bool
	Err       error
}

func (e *CredentialsError) Error() string {
	return fmt.Sprintf("authorizenet: credentials of org %q cannot be read: %v", e.OrgID, e.Err)
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// TemporaryLookupError marks a lookup failure that may pass (a database
// error), as opposed to credentials that cannot be read at all.
func TemporaryLookupError(err error) error { return &temporary{err} }

type temporary struct{ error }

func (t *temporary) Unwrap() error { return t.error }

// MerchantsConfig configures Merchants.
type MerchantsConfig struct {
	// Base is the client configuration every org shares: Endpoint,
	// Timeout, HTTPClient and Metrics. Its LoginID and TransactionKey,
	// when both set, are the default merchant for orgs without their own.
	Base Config
	// Lookup reads an org's own credentials. Nil: every org uses the default.
	Lookup CredentialLookup
	// TTL bounds how long an org's client (or "no credentials") is
	// reused before its credentials are read again. Default 1 minute.
	TTL time.Duration
	// MaxEntries bounds the cache. Default 1024.
	MaxEntries int
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
	// Logger receives configuration errors (a merchant's Transaction
	// Details API is off). Default: discard.
	Logger *slog.Logger
}

// NewMerchants returns Merchants for cfg.
func NewMerchants(cfg MerchantsConfig) (*Merchants, error) {
	m := &Merchants{lookup: cfg.Lookup, ttl: cfg.TTL, max: cfg.MaxEntries, now: cfg.Now, log: cfg.Logger,
		entries: map[string]merchantEntry{}, reporting: map[string]reportingState{}}
	if m.log == nil {
		m.log = discard
	}
	if m.ttl <= 0 {
		m.ttl = time.Minute
	}
	if m.max <= 0 {
		m.max = 1024
	}
	if m.now == nil {
		m.now = time.Now
	}
	base := cfg.Base
	hasDefault := base.LoginID != "" || base.TransactionKey != ""
	// Validate the shared part (and build the shared HTTP client) with a
	// placeholder login when there is no default.
	probe := base
	if !hasDefault {
		probe.LoginID, probe.TransactionKey = "-", "-"
	}
	probe, err := probe.withDefaults()
	if err != nil {
		return nil, err
	}
	base.Endpoint, base.Timeout, base.HTTPClient = probe.Endpoint, probe.Timeout, probe.HTTPClient
	m.base = base
	m.base.LoginID, m.base.TransactionKey = "", ""
	if hasDefault {
		if m.def, err = NewClient(base); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// HasDefault reports whether a default merchant is configured.
func (m *Merchants) HasDefault() bool { return m.def != nil }

// Client returns the client that acts for orgID. Errors: ErrNotConfigured,
// or a *CredentialsError.
func (m *Merchants) Client(ctx context.Context, orgID string) (*Client, error) {
	if m.lookup == nil {
		if m.def == nil {
			return nil, ErrNotConfigured
		}
		return m.def, nil
	}
	now := m.now()
	m.mu.Lock()
	e, ok := m.entries[orgID]
	m.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.client, e.err
	}
	client, err := m.resolve(ctx, orgID)
	var ce *CredentialsError
	if errors.As(err, &ce) && ce.Temporary {
		return nil, err // not cached: the next job reads again
	}
	m.mu.Lock()
	if len(m.entries) >= m.max {
		m.evict(now)
	}
	m.entries[orgID] = merchantEntry{client: client, err: err, expires: now.Add(m.ttl)}
	m.mu.Unlock()
	return client, err
}

func (m *Merchants) resolve(ctx context.Context, orgID string) (*Client, error) {
	login, key, err := m.lookup(ctx, orgID)
	switch {
	case errors.Is(err, ErrNoOrgCredentials):
		if m.def == nil {
			return nil, ErrNotConfigured
		}
		return m.def, nil
	case err != nil:
		var t *temporary
		return nil, &CredentialsError{OrgID: orgID, Temporary: errors.As(err, &t), Err: err}
	}
	cfg := m.base
	cfg.LoginID, cfg.TransactionKey = login, key
	c, err := NewClient(cfg)
	if err != nil {
		return nil, &CredentialsError{OrgID: orgID, Err: err}
	}
	return c, nil
}

// evict drops expired entries, or the one closest to expiry when none
// has expired. The caller holds m.mu.
func (m *Merchants) evict(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for org, e := range m.entries {
		if !now.Before(e.expires) {
			delete(m.entries, org)
			continue
		}
		if oldest == "" || e.expires.Before(oldestAt) {
			oldest, oldestAt = org, e.expires
		}
	}
	if len(m.entries) >= m.max && oldest != "" {
		delete(m.entries, oldest)
	}
}

// Forget drops the cached client of orgID, so its next call reads the
// credentials again (after they were replaced).
func (m *Merchants) Forget(orgID string) {
	m.mu.Lock()
	delete(m.entries, orgID)
	m.mu.Unlock()
}

// VerifyProfile checks that the customer payment profile exists under
// orgID's merchant. Errors: ErrNotConfigured, *CredentialsError, or the
// client's *Error (IsNotFound for an unknown profile, IsCredentialError
// for refused credentials, Retryable for an unreachable gateway).
func (m *Merchants) VerifyProfile(ctx context.Context, orgID, customerProfileID, paymentProfileID string) error {
	c, err := m.Client(ctx, orgID)
	if err != nil {
		return err
	}
	p, err := c.GetCustomerPaymentProfile(ctx, customerProfileID, paymentProfileID)
	if err != nil {
		return err
	}
	if p.CustomerPaymentProfileID != "" && p.CustomerPaymentProfileID != paymentProfileID {
		return &Error{Op: "getCustomerPaymentProfileRequest", Class: ClassPermanent, Code: CodeNotFound,
			Text: "the gateway answered with another payment profile"}
	}
	return nil
}

// LoginID returns the merchant login the client acts as.
func (c *Client) LoginID() string { return c.auth.Name }
