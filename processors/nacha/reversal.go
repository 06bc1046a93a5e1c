package nacha

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/payrail/payrail/processors"
)

// entryWithdrawn: the entry's payment was reversed while the entry was
// still staged; it never goes into a file.
const entryWithdrawn = "withdrawn"

// withdrawRetryAfter is how long a withdrawal waits for a drop in
// progress to finish.
const withdrawRetryAfter = 30 * time.Second

// withdraw executes a reversal job: the original payment's entry, still
// staged, is withdrawn from the cutoff, and the reversal succeeds (the
// money never moved). See README.md, "Reversals".
//
// It holds the drop's advisory lock for its transaction: a drop plans a
// file's entry count and totals before it assigns the entries, and an
// entry leaving staged in between would break the file's control totals.
// While a drop runs the job is retried. A redelivery finds the entry
// withdrawn by this reversal and answers the same. An entry that went into
// a file first cannot be withdrawn: reversing it takes a credit entry,
// which is not built, so the reversal fails (Permanent) and nothing moves.
func (p *Processor) withdraw(ctx context.Context, job processors.Job) (processors.Result, error) {
	rv := job.Reversal
	log := p.log.With("org_id", job.OrgID, "line_item_id", job.LineItemID, "attempt_id", job.AttemptID,
		"original_line_item_id", rv.OriginalLineItemID)
	var res processors.Result
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, dropLockKey).Scan(&locked); err != nil {
			return fmt.Errorf("take the drop lock: %w", err)
		}
		if !locked {
			res = processors.Result{Outcome: processors.Retryable, Code: "drop_in_progress",
				Message: "a NACHA drop is in progress; the entry is withdrawn after it", RetryAfter: withdrawRetryAfter}
			return nil
		}
		var status, lastFour string
		var reversal, fileID *string
		// An entry a file has claimed keeps status staged until the file's
		// claims are applied to the rows (after it is written and
		// uploaded; README.md, "Scale"), so the claims are asked too: a
		// claimed entry is in a file, whatever its row says. Under the
		// drop lock no drop adds claims meanwhile.
		err := tx.QueryRow(ctx, `SELECT e.status, e.reversal_line_item_id,
			       COALESCE(e.file_id, (SELECT c.file_id FROM nacha_file_claims c
			                             WHERE NOT c.applied AND e.entry_id = ANY (c.entry_ids) LIMIT 1)),
			       e.account_last_four
			  FROM nacha_entries e
			 WHERE e.org_id = $1 AND e.account_id = $2 AND e.line_item_id = $3 AND e.attempt_id = $4 FOR UPDATE OF e`,
			job.OrgID, job.AccountID, rv.OriginalLineItemID, rv.OriginalAttemptID).Scan(&status, &reversal, &fileID, &lastFour)
		if errors.Is(err, pgx.ErrNoRows) {
			res = processors.Result{Outcome: processors.Permanent, Code: "entry_not_found",
				Message: "the original payment has no staged ACH entry to withdraw"}
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock the original's entry: %w", err)
		}
		inst := processors.Instrument{Kind: "bank_account", LastFour: lastFour}
		switch {
		case status == entryWithdrawn && reversal != nil && *reversal == job.LineItemID:
			res = processors.Result{Outcome: processors.Succeeded, Code: "withdrawn",
				Message: "the entry was withdrawn before any cutoff took it", Instrument: inst}
			return nil
		case status != entryStaged || fileID != nil:
			in := ""
			if fileID != nil {
				in = " in file " + *fileID
				if status == entryStaged {
					status = "claimed" // by a file whose claims are not applied yet
				}
			}
			res = processors.Result{Outcome: processors.Permanent, Code: "entry_not_staged",
				Message:    "the entry is " + status + in + ": it cannot be withdrawn, and a reversing credit entry is not built",
				Instrument: inst}
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE nacha_entries SET status = 'withdrawn', withdrawn_at = $2,
			reversal_line_item_id = $3, account_number_enc = NULL, purged_at = $2
			WHERE org_id = $1 AND attempt_id = $4`, job.OrgID, p.clock(), job.LineItemID, rv.OriginalAttemptID); err != nil {
			return fmt.Errorf("withdraw the entry: %w", err)
		}
		res = processors.Result{Outcome: processors.Succeeded, Code: "withdrawn",
			Message: "the entry was withdrawn before any cutoff took it", Instrument: inst}
		return nil
	})
	if err != nil {
		return processors.Result{}, fmt.Errorf("nacha: withdraw the entry of line item %s: %w", rv.OriginalLineItemID, err)
	}
	switch res.Outcome {
	case processors.Succeeded:
		log.Info("ACH entry withdrawn by a reversal")
	case processors.Permanent:
		log.Warn("ACH entry cannot be withdrawn", "code", res.Code, "message", res.Message)
		return res, &processors.Error{Outcome: res.Outcome, Code: res.Code, Message: res.Message}
	}
	return res, nil
}
