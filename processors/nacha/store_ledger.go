package nacha

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
	"github.com/payrail/payrail/processors"
)

// StoreLedger is the Ledger over payrail's store: every change goes
// through the store's transaction-scoped operations, which record the
// transition and write the outbox event in the caller's transaction.
// Drops and settlements touch thousands of entries, so they use the
// store's set-based change (a fixed number of round trips per chunk).
// Where a settlement or return leaves the attempt and line item is
// package payments' one table of outcomes (payments.Resolve).
type StoreLedger struct {
	Store *store.Store
}

var _ Ledger = StoreLedger{}

func bulkItem(ref LineItemRef, patch store.AttemptPatch) store.BulkItem {
	return store.BulkItem{OrgID: ref.OrgID, AccountID: ref.AccountID, LineItemID: ref.LineItemID, AttemptID: ref.AttemptID,
		Attempt: patch}
}

// mustResolve is payments.Resolve for the outcomes a NACHA entry can have,
// which always resolve.
func mustResolve(o processors.Outcome) payments.Resolution {
	r, err := payments.Resolve(o)
	if err != nil {
		panic(err)
	}
	return r
}

// EntriesDropped implements Ledger.
func (l StoreLedger) EntriesDropped(ctx context.Context, tx pgx.Tx, entries []DroppedEntry) error {
	if len(entries) == 0 {
		return nil
	}
	items := make([]store.BulkItem, len(entries))
	for i, e := range entries {
		items[i] = bulkItem(e.LineItemRef, store.AttemptPatch{NachaFileID: e.FileID, TraceNumber: e.TraceNumber,
			TransactionID: e.TraceNumber})
	}
	_, err := l.Store.ApplyBulkTx(ctx, tx, store.BulkChange{Items: items, OnlyNewFile: true, Actor: Name,
		Reason: "dropped in NACHA file " + entries[0].FileName, At: entries[0].DroppedAt})
	return err
}

// EntriesSettled implements Ledger.
func (l StoreLedger) EntriesSettled(ctx context.Context, tx pgx.Tx, entries []SettledEntry) error {
	if len(entries) == 0 {
		return nil
	}
	settled := mustResolve(processors.Succeeded)
	items := make([]store.BulkItem, len(entries))
	for i, e := range entries {
		items[i] = bulkItem(e.LineItemRef, store.AttemptPatch{Status: settled.Attempt})
	}
	_, err := l.Store.ApplyBulkTx(ctx, tx, store.BulkChange{Items: items, From: store.StatusPending, To: settled.LineItem,
		Actor: Name, Reason: "settlement window passed without a return", At: entries[0].SettledAt})
	return err
}

// EntryReturned implements Ledger.
func (l StoreLedger) EntryReturned(ctx context.Context, tx pgx.Tx, r ReturnedEntry) error {
	returned := mustResolve(processors.Declined)
	if err := l.Store.PatchAttemptTx(ctx, tx, store.AttemptRef{OrgID: r.OrgID, AttemptID: r.AttemptID},
		store.AttemptPatch{Status: returned.Attempt, ResultCode: r.ReturnCode, ResultMessage: r.ReturnReason}); err != nil {
		return err
	}
	_, err := l.Store.TransitionTx(ctx, tx, store.Transition{OrgID: r.OrgID, AccountID: r.AccountID, LineItemID: r.LineItemID,
		From: store.StatusPending, To: returned.LineItem, Actor: Name,
		Reason: fmt.Sprintf("returned %s: %s", r.ReturnCode, r.ReturnReason)})
	return err
}

// PaymentReversed implements Ledger.
func (l StoreLedger) PaymentReversed(ctx context.Context, tx pgx.Tx, r Reversal) error {
	if err := l.Store.PatchAttemptTx(ctx, tx, store.AttemptRef{OrgID: r.OrgID, AttemptID: r.AttemptID},
		store.AttemptPatch{Status: store.AttemptReturned, ResultCode: r.ReturnCode, ResultMessage: r.ReturnReason}); err != nil {
		return err
	}
	reason := fmt.Sprintf("returned %s after settlement: %s", r.ReturnCode, r.ReturnReason)
	_, _, err := l.Store.CreateReversalTx(ctx, tx, store.Reversal{OrgID: r.OrgID, AccountID: r.AccountID,
		LineItemID: r.ReversalLineItemID, ReversedLineItem: r.LineItemID, AmountCents: r.AmountCents,
		Description: "Reversal of " + r.LineItemID + " (ACH return " + r.ReturnCode + ")", Actor: Name, Reason: reason})
	return err
}

// BankDetailsCorrected implements Ledger.
func (l StoreLedger) BankDetailsCorrected(ctx context.Context, tx pgx.Tx, c Correction) (bool, error) {
	applied, err := l.Store.CorrectBankDetailsTx(ctx, tx, store.BankCorrection{OrgID: c.OrgID, AccountID: c.AccountID,
		OriginalRoutingNumber: c.OriginalRoutingNumber, OriginalAccountNumber: c.OriginalAccountNumber,
		CorrectedRoutingNumber: c.CorrectedRoutingNumber, CorrectedAccountNumber: c.CorrectedAccountNumber})
	if err != nil || !applied {
		return applied, err
	}
	return true, l.Store.AnnounceTx(ctx, tx, c.OrgID, c.AccountID, c.LineItemID, Name,
		"notification of change "+c.ChangeCode+" applied to the account's stored bank details")
}

// RefundUnneeded implements Ledger.
func (l StoreLedger) RefundUnneeded(ctx context.Context, tx pgx.Tx, r UnneededRefund) error {
	done := mustResolve(processors.Succeeded)
	_, err := l.Store.ApplyBulkTx(ctx, tx, store.BulkChange{
		Items: []store.BulkItem{bulkItem(r.LineItemRef, store.AttemptPatch{Status: done.Attempt})},
		From:  store.StatusPending, To: done.LineItem, Actor: Name, Reason: r.Reason, At: r.At})
	return err
}

// EntriesSetAside implements Ledger.
func (l StoreLedger) EntriesSetAside(ctx context.Context, tx pgx.Tx, entries []SetAsideEntry) error {
	invalid := mustResolve(processors.Permanent)
	for _, e := range entries {
		if err := l.Store.PatchAttemptTx(ctx, tx, store.AttemptRef{OrgID: e.OrgID, AttemptID: e.AttemptID},
			store.AttemptPatch{Status: invalid.Attempt, ResultCode: "nacha_entry_set_aside", ResultMessage: e.Reason}); err != nil {
			return err
		}
		if _, err := l.Store.TransitionTx(ctx, tx, store.Transition{OrgID: e.OrgID, AccountID: e.AccountID,
			LineItemID: e.LineItemID, From: store.StatusPending, To: invalid.LineItem, Actor: Name,
			Reason: "ACH entry cannot be written into a NACHA file: " + e.Reason}); err != nil {
			return err
		}
	}
	return nil
}
