package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NachaConfig is an org's ACH origination settings: the file header's
// immediate destination and origin, the batch header's company fields, and
// the offset account for balanced files.
type NachaConfig struct {
	DestinationBankName   string
	DestinationRouting    string
	OriginBankName        string
	OriginRouting         string
	CompanyName           string
	CompanyIdentification string
	EntryDescription      string
	Balanced              bool
	// OffsetPlacement is where a balanced file's offsetting credit goes:
	// OWN_BATCH (a CCD credits-only batch after each debit batch; the
	// default, "" on input) or SAME_BATCH (inside the debit batch).
	OffsetPlacement string
	Offset          *OffsetAccount
	UpdatedAt       time.Time
}

// OffsetAccount is the org's own account that balances a file.
type OffsetAccount struct {
	RoutingNumber string
	AccountNumber string // input only
	LastFour      string
	AccountType   string
}

// PutNachaConfig replaces the org's NACHA configuration.
func (s *Store) PutNachaConfig(ctx context.Context, orgID string, c NachaConfig) (NachaConfig, error) {
	var routing, lastFour, acctType *string
	var sealed []byte
	if c.Offset != nil {
		var err error
		sealed, err = s.ring.Seal([]byte(c.Offset.AccountNumber), OffsetAccountContext(orgID))
		if err != nil {
			return NachaConfig{}, fmt.Errorf("store: seal offset account: %w", err)
		}
		lf := LastFour(c.Offset.AccountNumber)
		routing, lastFour, acctType = &c.Offset.RoutingNumber, &lf, &c.Offset.AccountType
	}
	placement := c.OffsetPlacement
	if placement == "" {
		placement = "OWN_BATCH"
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO org_nacha_configs (org_id, destination_bank_name, destination_routing, origin_bank_name,
		    origin_routing, company_name, company_identification, company_entry_description, is_balanced,
		    offset_routing, offset_account_enc, offset_account_last_four, offset_account_type, offset_placement,
		    updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now())
		ON CONFLICT (org_id) DO UPDATE SET
		    destination_bank_name = EXCLUDED.destination_bank_name, destination_routing = EXCLUDED.destination_routing,
		    origin_bank_name = EXCLUDED.origin_bank_name, origin_routing = EXCLUDED.origin_routing,
		    company_name = EXCLUDED.company_name, company_identification = EXCLUDED.company_identification,
		    company_entry_description = EXCLUDED.company_entry_description, is_balanced = EXCLUDED.is_balanced,
		    offset_routing = EXCLUDED.offset_routing, offset_account_enc = EXCLUDED.offset_account_enc,
		    offset_account_last_four = EXCLUDED.offset_account_last_four,
		    offset_account_type = EXCLUDED.offset_account_type, offset_placement = EXCLUDED.offset_placement,
		    updated_at = now()`,
		orgID, c.DestinationBankName, c.DestinationRouting, c.OriginBankName, c.OriginRouting, c.CompanyName,
		c.CompanyIdentification, c.EntryDescription, c.Balanced, routing, sealed, lastFour, acctType, placement)
	if err != nil {
		return NachaConfig{}, fmt.Errorf("store: put NACHA config for org %q: %w", orgID, err)
	}
	return s.NachaConfig(ctx, orgID)
}

// NachaConfig returns the org's NACHA configuration (offset account masked).
func (s *Store) NachaConfig(ctx context.Context, orgID string) (NachaConfig, error) {
	var c NachaConfig
	var routing, lastFour, acctType *string
	err := s.pool.QueryRow(ctx, `
		SELECT destination_bank_name, destination_routing, origin_bank_name, origin_routing, company_name,
		       company_identification, company_entry_description, is_balanced,
		       offset_routing, offset_account_last_four, offset_account_type, offset_placement, updated_at
		  FROM org_nacha_configs WHERE org_id = $1`, orgID).Scan(
		&c.DestinationBankName, &c.DestinationRouting, &c.OriginBankName, &c.OriginRouting, &c.CompanyName,
		&c.CompanyIdentification, &c.EntryDescription, &c.Balanced, &routing, &lastFour, &acctType,
		&c.OffsetPlacement, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return NachaConfig{}, ErrNotFound
	}
	if err != nil {
		return NachaConfig{}, fmt.Errorf("store: read NACHA config for org %q: %w", orgID, err)
	}
	if routing != nil {
		c.Offset = &OffsetAccount{RoutingNumber: *routing, LastFour: deref(lastFour), AccountType: deref(acctType)}
	}
	c.UpdatedAt = c.UpdatedAt.UTC()
	return c, nil
}

// OffsetAccountContext binds an org's sealed NACHA offset account number
// to its row; the NACHA processor opens it with this context.
func OffsetAccountContext(orgID string) []byte {
	return []byte("org_nacha_configs/" + orgID)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
