package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A reversal's attempt, found stale by the worker's sweep, names the
// original payment and its processor transaction, so the sweep resolves
// it as a reversal and never as a charge; a payment's own attempt names
// none. The reversal and the original link each other, and the unique
// index keeps a second reversal out even without the row lock.
func TestReversalAttemptNamesItsOriginal(t *testing.T) {
	ctx := context.Background()
	st := New(env.NewPool(t, 2), env.Ring, plainEvents{})
	ref, orig := newPayment(t, st)
	if _, err := st.CompleteAttempt(ctx, AttemptResult{AttemptRef: ref, From: []AttemptStatus{AttemptQueued},
		Status: AttemptSucceeded, LineItemStatus: StatusValid, TransactionID: "60000042", Actor: "t", Reason: "t"}); err != nil {
		t.Fatal(err)
	}
	revAttempt := NewID("att_")
	rev, created, err := st.CreateReversal(ctx, ref.OrgID, NewReversal{
		AccountID: orig.AccountID, OriginalLineItemID: orig.LineItemID, LineItemID: "rev1", Origin: "payment_reversals",
		RequestHash: []byte("r"), ClientID: "c",
		Accepts: func(LineItem) error { return nil },
		Plan: func(LineItem) (ReversalPlan, error) {
			return ReversalPlan{Type: TypePaymentReversal, Status: StatusPending, Description: "d",
				Execution: &ReversalExecution{AttemptID: revAttempt, Processor: "AUTHORIZE_NET", PaymentType: "DEBIT",
					Job: OutboxMessage{MsgID: "job_" + revAttempt, Subject: "jobs.AUTHORIZE_NET", Payload: []byte("sealed")}}}, nil
		},
	})
	if err != nil || !created || rev.RelatedLineItemID != orig.LineItemID || rev.Attempt == nil {
		t.Fatalf("reversal %+v created %v: %v", rev, created, err)
	}
	if got, _ := st.LineItem(ctx, ref.OrgID, orig.AccountID, orig.LineItemID); got.RelatedLineItemID != "rev1" {
		t.Fatalf("original links %q", got.RelatedLineItemID)
	}

	if _, err := env.Pool.Exec(ctx, `UPDATE payment_attempts SET status = 'processing', deliveries = 9,
		updated_at = now() - interval '1 hour' WHERE org_id = $1`, ref.OrgID); err != nil {
		t.Fatal(err)
	}
	stale, err := st.StaleAttempts(ctx, AttemptProcessing, 30*time.Minute, 9, 1000)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]*ReversedAttempt{}
	for _, a := range stale {
		if a.OrgID == ref.OrgID {
			found[a.AttemptID] = a.Reverses
		}
	}
	if r, ok := found[revAttempt]; !ok || r == nil || r.TransactionID != "60000042" || r.AttemptID != ref.AttemptID ||
		r.LineItemID != orig.LineItemID || r.CreatedAt.IsZero() {
		t.Fatalf("reversal attempt stale as %+v (found %v)", r, ok)
	}
	if r, ok := found[ref.AttemptID]; !ok || r != nil {
		t.Fatalf("payment attempt stale as reversing %+v (found %v)", r, ok)
	}

	// A second reversal row for the same original, written around the
	// lock, is refused by the index.
	_, err = env.Pool.Exec(ctx, `INSERT INTO line_items (org_id, account_id, line_item_id, line_item_type, status,
		original_amount_cents, effective_at, created_at, updated_at, origin, request_hash, client_id, related_line_item_id)
		VALUES ($1, $2, 'rev2', 'PAYMENT_REVERSAL', 'VALID', 1, now(), now(), now(), 'x', 'x', 'c', $3)`,
		ref.OrgID, orig.AccountID, orig.LineItemID)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" || pe.ConstraintName != "line_items_one_reversal_idx" {
		t.Fatalf("a second reversal of one original: %v, want the unique violation of line_items_one_reversal_idx", err)
	}
}
