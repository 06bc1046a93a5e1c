package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuthorizeNetConfig is an org's own Authorize.Net merchant login. The
// transaction key is sealed at rest; reads return only its last four.
type AuthorizeNetConfig struct {
	APILoginID         string
	TransactionKey     string // input only: sealed on write, never read back here
	TransactionKeyLast string // the key's last four characters
	UpdatedAt          time.Time
}

// PutAuthorizeNetConfig replaces the org's Authorize.Net credentials.
func (s *Store) PutAuthorizeNetConfig(ctx context.Context, orgID string, c AuthorizeNetConfig) (AuthorizeNetConfig, error) {
	sealed, err := s.ring.Seal([]byte(c.TransactionKey), AuthorizeNetKeyContext(orgID))
	if err != nil {
		return AuthorizeNetConfig{}, fmt.Errorf("store: seal Authorize.Net transaction key: %w", err)
	}
	_, err = s.pool.Exec(ctx, `
		INSERT INTO org_authorize_net_configs (org_id, api_login_id, transaction_key_enc, transaction_key_last_four, updated_at)
		VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (org_id) DO UPDATE SET
		    api_login_id = EXCLUDED.api_login_id, transaction_key_enc = EXCLUDED.transaction_key_enc,
		    transaction_key_last_four = EXCLUDED.transaction_key_last_four, updated_at = now()`,
		orgID, c.APILoginID, sealed, LastFour(c.TransactionKey))
	if err != nil {
		return AuthorizeNetConfig{}, fmt.Errorf("store: put Authorize.Net config for org %q: %w", orgID, err)
	}
	return s.AuthorizeNetConfig(ctx, orgID)
}

// AuthorizeNetConfig returns the org's Authorize.Net login, key masked.
func (s *Store) AuthorizeNetConfig(ctx context.Context, orgID string) (AuthorizeNetConfig, error) {
	var c AuthorizeNetConfig
	err := s.pool.QueryRow(ctx, `
		SELECT api_login_id, transaction_key_last_four, updated_at
		  FROM org_authorize_net_configs WHERE org_id = $1`, orgID).
		Scan(&c.APILoginID, &c.TransactionKeyLast, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return AuthorizeNetConfig{}, ErrNotFound
	}
	if err != nil {
		return AuthorizeNetConfig{}, fmt.Errorf("store: read Authorize.Net config for org %q: %w", orgID, err)
	}
	c.UpdatedAt = c.UpdatedAt.UTC()
	return c, nil
}

// ErrSealed means a sealed value exists but cannot be opened (its key is
// not configured, or the value was tampered with or copied from another
// row). Retrying does not help.
var ErrSealed = errors.New("store: sealed value cannot be opened")

// AuthorizeNetCredentials returns the org's login id and transaction key
// in clear, for the Authorize.Net client that charges or verifies for
// the org: ErrNotFound when the org has none of its own, ErrSealed
// (wrapped) when the key cannot be opened. The caller keeps the key in
// memory only.
func (s *Store) AuthorizeNetCredentials(ctx context.Context, orgID string) (loginID, transactionKey string, err error) {
	var sealed []byte
	err = s.pool.QueryRow(ctx, `
		SELECT api_login_id, transaction_key_enc FROM org_authorize_net_configs WHERE org_id = $1`, orgID).
		Scan(&loginID, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("store: read Authorize.Net credentials of org %q: %w", orgID, err)
	}
	key, err := s.ring.Open(sealed, AuthorizeNetKeyContext(orgID))
	if err != nil {
		return "", "", fmt.Errorf("%w: Authorize.Net transaction key of org %q: %v", ErrSealed, orgID, err)
	}
	return loginID, string(key), nil
}

// AuthorizeNetKeyContext binds an org's sealed Authorize.Net transaction
// key to its row.
func AuthorizeNetKeyContext(orgID string) []byte {
	return []byte("org_authorize_net_configs/" + orgID)
}
