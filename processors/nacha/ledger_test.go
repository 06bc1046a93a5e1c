package nacha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// testLedger implements Ledger with plain SQL on the store's line_items
// and line_item_transitions tables, plus a test-only nacha_test_events
// table standing in for the outbox: an event row commits or rolls back with
// the transaction that wrote it, exactly like the real outbox.
type testLedger struct {
	// failDropped makes EntriesDropped fail, to prove the drop's
	// transaction rolls back with it.
	failDropped atomic.Bool
}

var _ Ledger = (*testLedger)(nil)

const testEventsDDL = `
CREATE TABLE IF NOT EXISTS nacha_test_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text   NOT NULL,
    org_id       text   NOT NULL,
    account_id   text   NOT NULL,
    line_item_id text   NOT NULL,
    detail       jsonb  NOT NULL
)`

func emit(ctx context.Context, tx pgx.Tx, kind string, ref LineItemRef, detail any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO nacha_test_events (kind, org_id, account_id, line_item_id, detail)
		VALUES ($1, $2, $3, $4, $5)`, kind, ref.OrgID, ref.AccountID, ref.LineItemID, b)
	return err
}

// transition moves a PENDING line item to status and records it.
func transition(ctx context.Context, tx pgx.Tx, ref LineItemRef, to, reason string) error {
	tag, err := tx.Exec(ctx, `
		WITH li AS (
		    UPDATE line_items SET status = $4, updated_at = now(),
		           valid_at = CASE WHEN $4 = 'VALID' THEN now() ELSE valid_at END
		     WHERE org_id = $1 AND account_id = $2 AND line_item_id = $3 AND status = 'PENDING'
		    RETURNING *
		)
		INSERT INTO line_item_transitions (org_id, account_id, line_item_id, from_status, to_status, amount_cents,
		    actor, reason, at)
		SELECT org_id, account_id, line_item_id, 'PENDING', status, original_amount_cents, 'CANOPY_NACHA', $5, now()
		  FROM li`, ref.OrgID, ref.AccountID, ref.LineItemID, to, reason)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("line item %s is not PENDING", ref.LineItemID)
	}
	return nil
}

// EntriesDropped is set-based (one statement per chunk): the 100,000-entry
// test would otherwise measure round trips, not the drop.
func (l *testLedger) EntriesDropped(ctx context.Context, tx pgx.Tx, entries []DroppedEntry) error {
	if l.failDropped.Load() {
		return errors.New("injected ledger failure")
	}
	orgs, accts, items, files, traces := unzip(entries, func(e DroppedEntry) (LineItemRef, string, string) {
		return e.LineItemRef, e.FileID, e.TraceNumber
	})
	var pending int
	if err := tx.QueryRow(ctx, `
		SELECT count(*) FROM line_items li
		  JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(o, a, l)
		    ON li.org_id = u.o AND li.account_id = u.a AND li.line_item_id = u.l
		 WHERE li.status = 'PENDING'`, orgs, accts, items).Scan(&pending); err != nil {
		return err
	}
	if pending != len(entries) {
		return fmt.Errorf("%d of %d line items are not PENDING", len(entries)-pending, len(entries))
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO nacha_test_events (kind, org_id, account_id, line_item_id, detail)
		SELECT 'dropped', o, a, l, jsonb_build_object('file_id', f, 'trace', t)
		  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(o, a, l, f, t)`,
		orgs, accts, items, files, traces)
	return err
}

func (l *testLedger) EntriesSettled(ctx context.Context, tx pgx.Tx, entries []SettledEntry) error {
	orgs, accts, items, _, traces := unzip(entries, func(e SettledEntry) (LineItemRef, string, string) {
		return e.LineItemRef, e.FileID, e.TraceNumber
	})
	tag, err := tx.Exec(ctx, `
		WITH li AS (
		    UPDATE line_items li SET status = 'VALID', valid_at = now(), updated_at = now()
		      FROM unnest($1::text[], $2::text[], $3::text[]) AS u(o, a, l)
		     WHERE li.org_id = u.o AND li.account_id = u.a AND li.line_item_id = u.l AND li.status = 'PENDING'
		    RETURNING li.*
		)
		INSERT INTO line_item_transitions (org_id, account_id, line_item_id, from_status, to_status, amount_cents,
		    actor, reason, at)
		SELECT org_id, account_id, line_item_id, 'PENDING', 'VALID', original_amount_cents, 'CANOPY_NACHA',
		       'settlement window passed without a return', now() FROM li`, orgs, accts, items)
	if err != nil {
		return err
	}
	if int(tag.RowsAffected()) != len(entries) {
		return fmt.Errorf("%d of %d line items are not PENDING", len(entries)-int(tag.RowsAffected()), len(entries))
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO nacha_test_events (kind, org_id, account_id, line_item_id, detail)
		SELECT 'settled', o, a, l, jsonb_build_object('trace', t)
		  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(o, a, l, t)`, orgs, accts, items, traces)
	return err
}

func unzip[T any](xs []T, f func(T) (LineItemRef, string, string)) (orgs, accts, items, files, traces []string) {
	for _, x := range xs {
		ref, file, trace := f(x)
		orgs, accts, items = append(orgs, ref.OrgID), append(accts, ref.AccountID), append(items, ref.LineItemID)
		files, traces = append(files, file), append(traces, trace)
	}
	return
}

func (l *testLedger) EntryReturned(ctx context.Context, tx pgx.Tx, r ReturnedEntry) error {
	if err := transition(ctx, tx, r.LineItemRef, "DECLINED", "ACH return "+r.ReturnCode+": "+r.ReturnReason); err != nil {
		return err
	}
	return emit(ctx, tx, "returned", r.LineItemRef, map[string]string{"code": r.ReturnCode})
}

func (l *testLedger) PaymentReversed(ctx context.Context, tx pgx.Tx, r Reversal) error {
	tag, err := tx.Exec(ctx, `
		INSERT INTO line_items (org_id, account_id, line_item_id, line_item_type, status, original_amount_cents,
		    description, effective_at, valid_at, created_at, updated_at, origin, request_hash, client_id,
		    related_line_item_id)
		VALUES ($1, $2, $3, 'PAYMENT_REVERSAL', 'VALID', $4, $5, $6, $6, $6, $6, 'CANOPY_NACHA', '\x00', 'CANOPY_NACHA', $7)
		ON CONFLICT DO NOTHING`,
		r.OrgID, r.AccountID, r.ReversalLineItemID, r.AmountCents, "ACH return "+r.ReturnCode, r.ReturnedAt, r.LineItemID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	ref := r.LineItemRef
	ref.LineItemID = r.ReversalLineItemID
	return emit(ctx, tx, "reversal_created", ref, map[string]string{"original": r.LineItemID, "code": r.ReturnCode})
}

// storeAccountContext mirrors store.accountNumberContext.
func storeAccountContext(orgID, accountID string) []byte {
	return []byte("account_processor_configs/" + orgID + "/" + accountID)
}

func (l *testLedger) BankDetailsCorrected(ctx context.Context, tx pgx.Tx, c Correction) (bool, error) {
	var processor string
	var routing *string
	var sealed []byte
	err := tx.QueryRow(ctx, `
		SELECT ach_processor, ach_routing_number, ach_account_number_enc FROM account_processor_configs
		 WHERE org_id = $1 AND account_id = $2 FOR UPDATE`, c.OrgID, c.AccountID).Scan(&processor, &routing, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if processor != "CANOPY_NACHA" || routing == nil || *routing != c.OriginalRoutingNumber {
		return false, nil
	}
	plain, err := env.Ring.Open(sealed, storeAccountContext(c.OrgID, c.AccountID))
	if err != nil {
		return false, err
	}
	if string(plain) != c.OriginalAccountNumber {
		return false, nil
	}
	newRouting, newAccount := c.OriginalRoutingNumber, c.OriginalAccountNumber
	if c.CorrectedRoutingNumber != "" {
		newRouting = c.CorrectedRoutingNumber
	}
	if c.CorrectedAccountNumber != "" {
		newAccount = c.CorrectedAccountNumber
	}
	resealed, err := env.Ring.Seal([]byte(newAccount), storeAccountContext(c.OrgID, c.AccountID))
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `
		UPDATE account_processor_configs SET ach_routing_number = $3, ach_account_number_enc = $4,
		       ach_account_last_four = $5, updated_at = now()
		 WHERE org_id = $1 AND account_id = $2`, c.OrgID, c.AccountID, newRouting, resealed, lastFour(newAccount)); err != nil {
		return false, err
	}
	return true, emit(ctx, tx, "bank_details_corrected", c.LineItemRef, map[string]string{"code": c.ChangeCode})
}

func (l *testLedger) RefundUnneeded(ctx context.Context, tx pgx.Tx, r UnneededRefund) error {
	if err := transition(ctx, tx, r.LineItemRef, "VALID", r.Reason); err != nil {
		return err
	}
	return emit(ctx, tx, "refund_unneeded", r.LineItemRef, map[string]string{"reason": r.Reason})
}

func (l *testLedger) EntriesSetAside(ctx context.Context, tx pgx.Tx, entries []SetAsideEntry) error {
	for _, e := range entries {
		if err := transition(ctx, tx, e.LineItemRef, "INVALID", "ACH entry cannot be written into a NACHA file: "+e.Reason); err != nil {
			return err
		}
		if err := emit(ctx, tx, "set_aside", e.LineItemRef, map[string]string{"reason": e.Reason}); err != nil {
			return err
		}
	}
	return nil
}
