package intake

import (
	"context"
	"testing"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
	"github.com/payrail/payrail/processors"
)

// Once the processor has decided a payment, no client can edit its status
// to something the processor did not say: an approved card payment moved
// to PENDING would be frozen for good, moved to DECLINED would contradict
// money that moved. Every role is refused alike, and nothing changes.
func TestEditCannotContradictProcessorOutcome(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	res := h.do("POST", guestPath(acct), h.token, guestBody("approved-1", debitMethod())).wantStatus(200)
	attempt, _ := processing(res)["attempt_id"].(string)
	svc := payments.New(h.store, env.Ring)
	if _, err := svc.Apply(context.Background(), payments.Outcome{
		Attempt: store.AttemptRef{OrgID: h.org, AttemptID: attempt}, Actor: "worker:AUTHORIZE_NET",
		Result: processors.Result{Outcome: processors.Succeeded, TransactionID: "60123"},
	}); err != nil {
		t.Fatal(err)
	}
	path := "/accounts/" + acct + "/line_items/approved-1"
	for _, role := range []string{auth.RoleAdmin, auth.RoleServicing, auth.RoleOperations} {
		token := h.tokenFor(h.org, role)
		for _, to := range []string{"PENDING", "DECLINED", "VOID", "INVALID"} {
			h.do("PUT", path, token, map[string]any{"line_item_status": to}).wantError(409, codeInvalidStateTransition)
		}
	}
	// Repeating the recorded outcome is the usual no-op.
	h.do("PUT", path, h.token, map[string]any{"line_item_status": "VALID"}).wantStatus(200)
	got := h.do("GET", path, h.token, nil).wantStatus(200)
	if got.str("line_item_overview", "line_item_status") != "VALID" ||
		processing(got)["processor_transaction_id"] != "60123" {
		t.Fatalf("after refused edits: %s", got.body)
	}
}
