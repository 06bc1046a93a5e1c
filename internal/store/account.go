package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ExternalField relates a payrail record to an entity in another system.
// It is stored as JSON, in the API's shape.
type ExternalField struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Account is a customer account that line items belong to.
type Account struct {
	AccountID      string
	ProductID      string
	CustomerName   string
	ExternalFields []ExternalField
	Status         string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Processors     ProcessorConfig
}

// ProcessorConfig is an account's stored payment methods. Bank account
// numbers never leave the store in clear text except through
// ACHAccountNumber, which processors call when they build an entry.
type ProcessorConfig struct {
	ACH   ACHConfig
	Debit DebitConfig
}

// ACHConfig is the account's ACH payment method.
type ACHConfig struct {
	Processor     string // NONE or CANOPY_NACHA
	RoutingNumber string
	AccountNumber string // input only: sealed on write, never read back here
	LastFour      string
	AccountType   string // CHECKING or SAVINGS
}

// DebitConfig is the account's card payment method: Authorize.Net customer
// profile tokens, never card numbers.
type DebitConfig struct {
	Processor         string // NONE or AUTHORIZE_NET
	CustomerProfileID string
	PaymentProfileID  string
}

// NewAccount is the input of CreateAccount.
type NewAccount struct {
	AccountID      string
	ProductID      string
	CustomerName   string
	ExternalFields []ExternalField
	Processors     *ProcessorConfig
	RequestHash    []byte
}

// CreateAccount creates an account, or returns the existing one when the
// same request is replayed (created is then false). The same id with a
// different request is ErrConflict.
func (s *Store) CreateAccount(ctx context.Context, orgID string, in NewAccount) (acct Account, created bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`INSERT INTO accounts (org_id, account_id, product_id, customer_name, external_fields, request_hash)
			 VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6)
			 ON CONFLICT (org_id, account_id) DO NOTHING`,
			orgID, in.AccountID, in.ProductID, in.CustomerName, nonNil(in.ExternalFields), in.RequestHash)
		if err != nil {
			return fmt.Errorf("insert account: %w", err)
		}
		if tag.RowsAffected() == 0 {
			var hash []byte
			if err := tx.QueryRow(ctx,
				`SELECT request_hash FROM accounts WHERE org_id = $1 AND account_id = $2`,
				orgID, in.AccountID).Scan(&hash); err != nil {
				return fmt.Errorf("read existing account: %w", err)
			}
			if string(hash) != string(in.RequestHash) {
				return ErrConflict
			}
			return nil
		}
		created = true
		if in.Processors != nil {
			return s.putProcessorConfig(ctx, tx, orgID, in.AccountID, *in.Processors)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return Account{}, false, err
		}
		return Account{}, false, fmt.Errorf("store: create account %q: %w", in.AccountID, err)
	}
	acct, err = s.Account(ctx, orgID, in.AccountID)
	return acct, created, err
}

const accountSelect = `
SELECT a.account_id, a.product_id, COALESCE(a.customer_name, ''), a.external_fields, a.account_status,
       a.created_at, a.updated_at,
       COALESCE(c.ach_processor, 'NONE'), COALESCE(c.ach_routing_number, ''), COALESCE(c.ach_account_last_four, ''),
       COALESCE(c.ach_account_type, ''),
       COALESCE(c.debit_processor, 'NONE'), COALESCE(c.anet_customer_profile_id, ''), COALESCE(c.anet_payment_profile_id, '')
  FROM accounts a
  LEFT JOIN account_processor_configs c ON c.org_id = a.org_id AND c.account_id = a.account_id
 WHERE a.org_id = $1 AND a.account_id = $2`

// Account returns one account with its processor configuration (masked).
func (s *Store) Account(ctx context.Context, orgID, accountID string) (Account, error) {
	var a Account
	err := s.pool.QueryRow(ctx, accountSelect, orgID, accountID).Scan(
		&a.AccountID, &a.ProductID, &a.CustomerName, &a.ExternalFields, &a.Status, &a.CreatedAt, &a.UpdatedAt,
		&a.Processors.ACH.Processor, &a.Processors.ACH.RoutingNumber, &a.Processors.ACH.LastFour,
		&a.Processors.ACH.AccountType,
		&a.Processors.Debit.Processor, &a.Processors.Debit.CustomerProfileID, &a.Processors.Debit.PaymentProfileID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, ErrNotFound
	}
	if err != nil {
		return Account{}, fmt.Errorf("store: read account %q: %w", accountID, err)
	}
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, nil
}

// PutProcessorConfig replaces an account's payment processor configuration.
func (s *Store) PutProcessorConfig(ctx context.Context, orgID, accountID string, cfg ProcessorConfig) (Account, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx,
			`SELECT EXISTS (SELECT 1 FROM accounts WHERE org_id = $1 AND account_id = $2)`,
			orgID, accountID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		return s.putProcessorConfig(ctx, tx, orgID, accountID, cfg)
	})
	if errors.Is(err, ErrNotFound) {
		return Account{}, err
	}
	if err != nil {
		return Account{}, fmt.Errorf("store: put processor config for account %q: %w", accountID, err)
	}
	return s.Account(ctx, orgID, accountID)
}

func (s *Store) putProcessorConfig(ctx context.Context, tx pgx.Tx, orgID, accountID string, cfg ProcessorConfig) error {
	var sealed []byte
	var lastFour string
	// Only a bank account the ACH processor uses is stored (sealed).
	if cfg.ACH.AccountNumber != "" {
		var err error
		sealed, err = s.ring.Seal([]byte(cfg.ACH.AccountNumber), accountNumberContext(orgID, accountID))
		if err != nil {
			return err
		}
		lastFour = LastFour(cfg.ACH.AccountNumber)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO account_processor_configs (org_id, account_id, ach_processor, ach_routing_number,
		    ach_account_number_enc, ach_account_last_four, ach_account_type,
		    debit_processor, anet_customer_profile_id, anet_payment_profile_id, updated_at)
		VALUES ($1, $2, $3, NULLIF($4, ''), $5, NULLIF($6, ''), NULLIF($7, ''), $8, NULLIF($9, ''), NULLIF($10, ''), now())
		ON CONFLICT (org_id, account_id) DO UPDATE SET
		    ach_processor = EXCLUDED.ach_processor, ach_routing_number = EXCLUDED.ach_routing_number,
		    ach_account_number_enc = EXCLUDED.ach_account_number_enc,
		    ach_account_last_four = EXCLUDED.ach_account_last_four, ach_account_type = EXCLUDED.ach_account_type,
		    debit_processor = EXCLUDED.debit_processor,
		    anet_customer_profile_id = EXCLUDED.anet_customer_profile_id,
		    anet_payment_profile_id = EXCLUDED.anet_payment_profile_id, updated_at = now()`,
		orgID, accountID, cfg.ACH.Processor, cfg.ACH.RoutingNumber, sealed, lastFour, cfg.ACH.AccountType,
		cfg.Debit.Processor, cfg.Debit.CustomerProfileID, cfg.Debit.PaymentProfileID)
	if err != nil {
		return fmt.Errorf("upsert processor config: %w", err)
	}
	_, err = tx.Exec(ctx, `UPDATE accounts SET updated_at = now() WHERE org_id = $1 AND account_id = $2`, orgID, accountID)
	return err
}

// accountNumberContext binds a sealed account number to its row.
func accountNumberContext(orgID, accountID string) []byte {
	return []byte("account_processor_configs/" + orgID + "/" + accountID)
}

// LastFour is what payrail shows of an account number: at most its last
// four characters.
func LastFour(s string) string {
	// Never more than the last four, and never so many that fewer than
	// four stay hidden: a number of 4 characters or fewer shows nothing
	// (the same rule as processors.MaskedLastFour).
	show := min(len(s)-4, 4)
	if show <= 0 {
		return ""
	}
	return s[len(s)-show:]
}

// nonNil gives pgx an empty array rather than NULL.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// PaymentMethods returns the account with its processor configuration,
// the ACH account number opened from its sealed form: what a
// payment_transfer job needs. The caller must keep the number in memory
// only (it goes into a sealed job).
func (s *Store) PaymentMethods(ctx context.Context, orgID, accountID string) (Account, error) {
	var a Account
	var sealed []byte
	err := s.pool.QueryRow(ctx, `
		SELECT a.product_id, COALESCE(a.customer_name, ''),
		       COALESCE(c.ach_processor, 'NONE'), COALESCE(c.ach_routing_number, ''), c.ach_account_number_enc,
		       COALESCE(c.ach_account_last_four, ''), COALESCE(c.ach_account_type, ''),
		       COALESCE(c.debit_processor, 'NONE'), COALESCE(c.anet_customer_profile_id, ''),
		       COALESCE(c.anet_payment_profile_id, '')
		  FROM accounts a
		  LEFT JOIN account_processor_configs c ON c.org_id = a.org_id AND c.account_id = a.account_id
		 WHERE a.org_id = $1 AND a.account_id = $2`, orgID, accountID).Scan(
		&a.ProductID, &a.CustomerName, &a.Processors.ACH.Processor, &a.Processors.ACH.RoutingNumber, &sealed,
		&a.Processors.ACH.LastFour, &a.Processors.ACH.AccountType, &a.Processors.Debit.Processor,
		&a.Processors.Debit.CustomerProfileID, &a.Processors.Debit.PaymentProfileID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, ErrNotFound
	}
	if err != nil {
		return Account{}, fmt.Errorf("store: read payment methods of account %q: %w", accountID, err)
	}
	a.AccountID = accountID
	if sealed != nil {
		clear, err := s.ring.Open(sealed, accountNumberContext(orgID, accountID))
		if err != nil {
			return Account{}, fmt.Errorf("store: open bank account number of account %q: %w", accountID, err)
		}
		a.Processors.ACH.AccountNumber = string(clear)
	}
	return a, nil
}
