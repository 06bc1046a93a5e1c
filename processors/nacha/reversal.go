package nacha

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moov-io/ach"

	"github.com/payrail/payrail/processors"
)

// entryWithdrawn: the entry's payment was reversed while the entry was
// still staged; it never goes into a file.
const entryWithdrawn = "withdrawn"

// withdrawRetryAfter is how long a reversal waits for a drop in progress
// to finish.
const withdrawRetryAfter = 30 * time.Second

// directionCredit is nacha_entries.direction of a refund credit; a
// payment's entry is a debit.
const directionCredit = "credit"

// reverse executes a reversal job by the state of the original payment's
// entry (README.md, "Reversals"):
//   - still staged: withdrawn from the cutoff; the reversal succeeds, no
//     money moved;
//   - in a file, or settled: a refund credit to the same account is staged
//     (stageRefund); the reversal stays pending until the credit settles;
//   - returned after it settled: the money is already back, by the
//     return; the reversal succeeds and nothing is sent;
//   - returned before it settled, or set aside: no money moved, there is
//     nothing to give back (Permanent).
//
// It holds the drop's advisory lock for its transaction: a drop plans a
// file's entry count and totals before it assigns the entries, and an
// entry leaving staged in between would break the file's control totals;
// and a claimed entry is told apart from a staged one only by the claims,
// which no drop adds meanwhile. While a drop runs the job is retried. A
// redelivery finds what the first delivery did (the withdrawn entry, or the
// refund staged under the job's attempt id) and answers the same.
func (p *Processor) reverse(ctx context.Context, job processors.Job) (processors.Result, error) {
	rv := job.Reversal
	log := p.log.With("org_id", job.OrgID, "line_item_id", job.LineItemID, "attempt_id", job.AttemptID,
		"original_line_item_id", rv.OriginalLineItemID)
	if res, found, err := p.stagedResult(ctx, job); err != nil || found {
		return res, err // the refund credit of a delivery before this one
	}
	var res processors.Result
	var refunded bool
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, dropLockKey).Scan(&locked); err != nil {
			return fmt.Errorf("take the drop lock: %w", err)
		}
		if !locked {
			res = processors.Result{Outcome: processors.Retryable, Code: "drop_in_progress",
				Message: "a NACHA drop is in progress; the reversal is executed after it", RetryAfter: withdrawRetryAfter}
			return nil
		}
		var o originalEntry
		// An entry a file has claimed keeps status staged until the file's
		// claims are applied to the rows (after it is written and
		// uploaded; README.md, "Scale"), so the claims are asked too: a
		// claimed entry is in a file, whatever its row says.
		err := tx.QueryRow(ctx, `SELECT e.entry_id, e.status, e.reversal_line_item_id,
			       COALESCE(e.file_id, (SELECT c.file_id FROM nacha_file_claims c
			                             WHERE NOT c.applied AND e.entry_id = ANY (c.entry_ids) LIMIT 1)),
			       e.settled_at IS NOT NULL, COALESCE(e.return_code, ''), e.account_last_four, e.amount_cents,
			       e.standard_entry_class, e.rdfi_routing, e.account_type, e.account_number_enc, e.individual_name
			  FROM nacha_entries e
			 WHERE e.org_id = $1 AND e.account_id = $2 AND e.line_item_id = $3 AND e.attempt_id = $4
			   AND e.direction = 'debit' FOR UPDATE OF e`,
			job.OrgID, job.AccountID, rv.OriginalLineItemID, rv.OriginalAttemptID).Scan(&o.ID, &o.Status, &o.Reversal,
			&o.FileID, &o.Settled, &o.ReturnCode, &o.LastFour, &o.Amount, &o.SEC, &o.RDFI, &o.AccountType, &o.Sealed,
			&o.Name)
		if errors.Is(err, pgx.ErrNoRows) {
			res = processors.Result{Outcome: processors.Permanent, Code: "entry_not_found",
				Message: "the original payment has no ACH entry to reverse"}
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock the original's entry: %w", err)
		}
		inst := processors.Instrument{Kind: "bank_account", LastFour: o.LastFour}
		withdrawn := processors.Result{Outcome: processors.Succeeded, Code: "withdrawn",
			Message: "the entry was withdrawn before any cutoff took it", Instrument: inst}
		switch {
		case o.Status == entryWithdrawn && o.Reversal != nil && *o.Reversal == job.LineItemID:
			res = withdrawn
		case o.Status == entryStaged && o.FileID == nil:
			if _, err := tx.Exec(ctx, `UPDATE nacha_entries SET status = 'withdrawn', withdrawn_at = $2,
				reversal_line_item_id = $3, account_number_enc = NULL, purged_at = $2
				WHERE entry_id = $1`, o.ID, p.clock(), job.LineItemID); err != nil {
				return fmt.Errorf("withdraw the entry: %w", err)
			}
			res = withdrawn
		case o.Status == entryStaged || o.Status == entryBatched || o.Status == entrySettled:
			// Claimed by a file, in one, or settled: the money moved or
			// is moving, and a refund credit gives it back.
			if res, err = p.stageRefund(ctx, tx, job, o); err != nil {
				return err
			}
			refunded = res.Outcome == processors.PendingSettlement
		case o.Status == entryReturned && o.Settled:
			// The return after settlement brought the money back; the
			// entry names this reversal as what records it (the return
			// found this reversal already made and created none).
			if _, err := tx.Exec(ctx, `UPDATE nacha_entries SET reversal_line_item_id = $2 WHERE entry_id = $1`,
				o.ID, job.LineItemID); err != nil {
				return fmt.Errorf("record the reversal on the returned entry: %w", err)
			}
			res = processors.Result{Outcome: processors.Succeeded, Code: "returned_after_settlement",
				Message:    "the debit was returned (" + o.ReturnCode + ") after it settled: the money is back without a refund",
				Instrument: inst}
		case o.Status == entryReturned:
			res = processors.Result{Outcome: processors.Permanent, Code: "original_returned",
				Message:    "the debit was returned (" + o.ReturnCode + ") before it settled: no money moved, there is nothing to give back",
				Instrument: inst}
		default:
			res = processors.Result{Outcome: processors.Permanent, Code: "entry_not_reversible",
				Message: "the entry is " + o.Status + ": no money moved, there is nothing to give back", Instrument: inst}
		}
		return nil
	})
	if err != nil {
		return processors.Result{}, fmt.Errorf("nacha: reverse the entry of line item %s: %w", rv.OriginalLineItemID, err)
	}
	switch {
	case refunded:
		p.metrics.staged.Inc()
		log.Info("ACH refund credit staged by a reversal", "amount_cents", job.AmountCents)
	case res.Outcome == processors.Succeeded:
		log.Info("ACH reversal done without a credit", "code", res.Code)
	case res.Outcome == processors.Permanent:
		log.Warn("ACH payment cannot be reversed", "code", res.Code, "message", res.Message)
		return res, &processors.Error{Outcome: res.Outcome, Code: res.Code, Message: res.Message}
	}
	return res, nil
}

// originalEntry is the debit a reversal job reverses, as reverse reads it
// under its row lock.
type originalEntry struct {
	ID                int64
	Status            string
	Reversal, FileID  *string
	Settled           bool
	ReturnCode        string
	LastFour          string
	Amount            int64
	SEC, RDFI         string
	AccountType, Name string
	Sealed            []byte
}

// stageRefund stages the refund credit of original o for the reversal
// job, inside reverse's transaction: the same account (its sealed number
// opened and resealed for the new row), the same amount, PPD — CCD when the
// debit was CCD (WEB and TEL carry no such credit) —, the reversal's line
// item id as identification. It answers PendingSettlement: the reversal
// is VALID once the credit settles. The drop holds it back until the debit
// settles (refundHeld).
func (p *Processor) stageRefund(ctx context.Context, tx pgx.Tx, job processors.Job, o originalEntry) (processors.Result, error) {
	inst := processors.Instrument{Kind: "bank_account", LastFour: o.LastFour}
	if o.Sealed == nil {
		return processors.Result{Outcome: processors.Permanent, Code: "account_number_purged",
			Message: "the bank account number of the original debit was purged when its retention ended; " +
				"refund it outside payrail", Instrument: inst}, nil
	}
	plain, err := p.ring.Open(o.Sealed, entryContext(job.OrgID, job.Reversal.OriginalAttemptID))
	if err != nil {
		return processors.Result{}, fmt.Errorf("open the original's account number: %w", err)
	}
	sealed, err := p.ring.Seal(plain, entryContext(job.OrgID, job.AttemptID))
	if err != nil {
		return processors.Result{}, fmt.Errorf("seal the refund's account number: %w", err)
	}
	sec := ach.PPD
	if o.SEC == ach.CCD {
		sec = ach.CCD
	}
	now := p.clock()
	tag, err := tx.Exec(ctx, `
		INSERT INTO nacha_entries (org_id, account_id, line_item_id, attempt_id, status, amount_cents,
		    standard_entry_class, rdfi_routing, account_type, account_number_enc, account_last_four,
		    individual_name, payment_type_code, effective_entry_date, staged_at, direction, reverses_entry_id)
		VALUES ($1, $2, $3, $4, 'staged', $5, $6, $7, $8, $9, $10, $11, '', $12, $13, 'credit', $14)
		ON CONFLICT DO NOTHING`,
		job.OrgID, job.AccountID, job.LineItemID, job.AttemptID, o.Amount, sec, o.RDFI, o.AccountType, sealed,
		o.LastFour, o.Name, p.cal.PlannedEffectiveDate(now, now), now, o.ID)
	if err != nil {
		return processors.Result{}, fmt.Errorf("stage the refund credit: %w", err)
	}
	if tag.RowsAffected() == 0 {
		// attempt_id is free (stagedResult found nothing), so the debit
		// already has a refund, another reversal's: never a second one.
		return processors.Result{Outcome: processors.Permanent, Code: "already_refunded",
			Message: "the original debit already has a refund credit", Instrument: inst}, nil
	}
	return refundStaged(inst), nil
}

// refundStaged is the result of a reversal job that staged a refund
// credit, the first time and on every redelivery (stagedResult).
func refundStaged(inst processors.Instrument) processors.Result {
	return processors.Result{Outcome: processors.PendingSettlement, Code: "refund_staged",
		Message: "a refund credit to the same account goes into the first file after the debit settles", Instrument: inst}
}

// refundHeld judges a staged refund credit at a cutoff by its original
// debit's status: held (not due yet) while the debit is claimed or in a
// file and unsettled — a debit still unsettled may come back returned, and
// a refund of it would pay out money never collected —, due once it
// settled, and set aside (why) when it ended without money moving.
func refundHeld(original *string) (held bool, why string) {
	switch {
	case original == nil:
		return false, "the refund credit's original debit is missing"
	case *original == entrySettled:
		return false, ""
	case *original == entryStaged || *original == entryBatched:
		return true, ""
	case *original == entryReturned:
		// Before settlement (its payment is DECLINED): no money to give
		// back. After it, applyReturn cancels the refund itself.
		return false, "the original debit was returned: there is no money to give back"
	}
	return false, "the original debit is " + *original + ": there is no money to give back"
}
