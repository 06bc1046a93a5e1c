// Package store keeps payrail's system of record in PostgreSQL: orgs, API
// clients, accounts with their payment processor configuration, the org's
// NACHA configuration and the line item ledger with its transition history.
//
// Every method takes the org id and every query is scoped by it; a row of
// another org is reported exactly like a missing one (ErrNotFound).
package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payrail/payrail/internal/groupcommit"
	"github.com/payrail/payrail/internal/keyring"
)

// Outcomes callers branch on.
var (
	// ErrNotFound: no such row for this org.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the id exists with a different request body.
	ErrConflict = errors.New("store: id already used with a different request")
	// ErrIdempotencyKeyReused: the Idempotency-Key was used for a different request.
	ErrIdempotencyKeyReused = errors.New("store: idempotency key already used with a different request")
	// ErrAccountChanged: a payment was built from the account's product
	// and customer name (NewPayment.ProductID, CustomerName), and the
	// account no longer has them; nothing was written. Read the account
	// again and build the payment anew.
	ErrAccountChanged = errors.New("store: the account changed since the payment was built")
)

// TransitionError explains why a line item change was refused.
type TransitionError struct {
	From, To Status
	Reason   string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("store: cannot move line item from %s to %s: %s", e.From, e.To, e.Reason)
}

// Store is the PostgreSQL-backed system of record. It is safe for
// concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	ring     *keyring.Ring
	events   Events
	fastPath FastPath
	// payments commits concurrent CreatePayment calls together
	// (payment_group.go).
	payments *groupcommit.Batcher[pendingPayment, paymentOutcome]
}

// New returns a Store over pool. ring seals bank account numbers at rest;
// events renders the event of every line item change the store records.
func New(pool *pgxpool.Pool, ring *keyring.Ring, events Events) *Store {
	s := &Store{pool: pool, ring: ring, events: events}
	s.payments = groupcommit.New(s.insertPaymentBatch, groupcommit.Options{
		MaxBatch: maxPaymentBatch, Queue: paymentQueue, Committers: paymentCommitters})
	return s
}

// SetFastPath makes the store hand every outbox row it commits to fp.
// Call it once, before the store is shared; without it the relay alone
// publishes.
func (s *Store) SetFastPath(fp FastPath) { s.fastPath = fp }

// Pool exposes the connection pool for readiness checks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping reports whether PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// NewID returns prefix followed by 20 random base32 characters (100 bits).
func NewID(prefix string) string {
	var b [13]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("store: crypto/rand failed: %v", err)) // the OS RNG never fails on Linux
	}
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:20]
}

// EnsureOrg creates the org if it does not exist.
func (s *Store) EnsureOrg(ctx context.Context, orgID, name string) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO orgs (org_id, name) VALUES ($1, $2) ON CONFLICT (org_id) DO NOTHING`, orgID, name)
	if err != nil {
		return fmt.Errorf("store: ensure org %q: %w", orgID, err)
	}
	return nil
}

// Client is an API client: the principal behind an access token.
type Client struct {
	ClientID   string
	OrgID      string
	Name       string
	Role       string
	SecretHash string
	Disabled   bool
	// Version is the credential version: disabling the client, changing its
	// role and rotating its secret increase it, which revokes every token
	// issued before.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

const clientColumns = `client_id, org_id, name, role, secret_hash, disabled_at IS NOT NULL, credential_version, created_at, updated_at`

func scanClient(row pgx.Row) (Client, error) {
	var c Client
	err := row.Scan(&c.ClientID, &c.OrgID, &c.Name, &c.Role, &c.SecretHash, &c.Disabled, &c.Version, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

// CreateClient stores a new API client. The org must exist.
func (s *Store) CreateClient(ctx context.Context, c Client) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO api_clients (client_id, org_id, name, role, secret_hash) VALUES ($1, $2, $3, $4, $5)`,
		c.ClientID, c.OrgID, c.Name, c.Role, c.SecretHash)
	if err != nil {
		return fmt.Errorf("store: create client for org %q: %w", c.OrgID, err)
	}
	return nil
}

// The client functions below are operator and authentication functions:
// they look clients up across orgs, because the client id is what a caller
// authenticates with, before any org is known.

// ClientByID looks up an API client.
func (s *Store) ClientByID(ctx context.Context, clientID string) (Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientColumns+` FROM api_clients WHERE client_id = $1`, clientID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Client{}, ErrNotFound
	}
	if err != nil {
		return Client{}, fmt.Errorf("store: look up client: %w", err)
	}
	return c, nil
}

// ListClients lists the API clients of orgID, or of every org when orgID
// is empty, ordered by org and creation.
func (s *Store) ListClients(ctx context.Context, orgID string) ([]Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+clientColumns+` FROM api_clients
		WHERE $1 = '' OR org_id = $1 ORDER BY org_id, created_at, client_id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("store: list clients: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Client, error) { return scanClient(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list clients: %w", err)
	}
	return out, nil
}

// updateClient applies set (an UPDATE's SET list over $2...) to the client
// and returns the row as it is afterwards. bump says whether the change
// revokes the client's tokens.
func (s *Store) updateClient(ctx context.Context, clientID, set string, bump bool, args ...any) (Client, error) {
	if bump {
		set += `, credential_version = credential_version + 1`
	}
	c, err := scanClient(s.pool.QueryRow(ctx, `UPDATE api_clients SET `+set+`, updated_at = now()
		WHERE client_id = $1 RETURNING `+clientColumns, append([]any{clientID}, args...)...))
	if errors.Is(err, pgx.ErrNoRows) {
		return Client{}, ErrNotFound
	}
	if err != nil {
		return Client{}, fmt.Errorf("store: update client %q: %w", clientID, err)
	}
	return c, nil
}

// DisableClient disables the client and revokes its tokens. Disabling a
// disabled client keeps its first disabled_at.
func (s *Store) DisableClient(ctx context.Context, clientID string) (Client, error) {
	return s.updateClient(ctx, clientID, `disabled_at = COALESCE(disabled_at, now())`, true)
}

// EnableClient enables a disabled client. Tokens issued before it was
// disabled stay revoked: the client must ask for new ones.
func (s *Store) EnableClient(ctx context.Context, clientID string) (Client, error) {
	return s.updateClient(ctx, clientID, `disabled_at = NULL`, false)
}

// SetClientRole changes the client's role and revokes its tokens, which
// carry the old role.
func (s *Store) SetClientRole(ctx context.Context, clientID, role string) (Client, error) {
	return s.updateClient(ctx, clientID, `role = $2`, true, role)
}

// SetClientSecret replaces the client's secret hash and revokes its tokens.
func (s *Store) SetClientSecret(ctx context.Context, clientID, secretHash string) (Client, error) {
	return s.updateClient(ctx, clientID, `secret_hash = $2`, true, secretHash)
}

// OrgExists reports whether an org exists.
func (s *Store) OrgExists(ctx context.Context, orgID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM orgs WHERE org_id = $1)`, orgID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("store: look up org %q: %w", orgID, err)
	}
	return ok, nil
}
