package intake

import (
	"context"
	"sync"
	"testing"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/payments"
	"github.com/payrail/payrail/processors"
)

func paymentReversalPath(acct, id string) string {
	return "/accounts/" + acct + "/line_items/payment_reversals/" + id
}

func chargeReversalPath(acct, id string) string {
	return "/accounts/" + acct + "/line_items/charge_reversals/" + id
}

// decide records a processor's answer for an executed payment, as the
// worker would (no worker runs in these tests).
func (h *harness) decide(acct, id string, outcome processors.Outcome, txID string) {
	h.t.Helper()
	li, err := h.store.LineItem(context.Background(), h.org, acct, id)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.api.payments.Apply(context.Background(), payments.Outcome{
		Attempt: store.AttemptRef{OrgID: h.org, AttemptID: li.Attempt.AttemptID},
		Result:  processors.Result{Outcome: outcome, TransactionID: txID, Code: "1", Message: "test"},
		Actor:   "test"}); err != nil {
		h.t.Fatal(err)
	}
}

// eventReasons lists the reasons of the events written for a line item.
func eventReasons(t *testing.T, org, id string) []string {
	t.Helper()
	rows, err := env.Pool.Query(context.Background(), `SELECT convert_from(payload, 'UTF8')::jsonb->>'reason' FROM outbox
		WHERE subject LIKE 'events.%' AND headers->>'Payrail-Org-Id' = $1 AND headers->>'Payrail-Line-Item-Id' = $2 ORDER BY id`, org, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// A ledger-only original (payment record, charge) is reversed at once and
// linked both ways; a second request answers with the first reversal.
func TestLedgerReversals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	h.do("POST", "/accounts/"+acct+"/line_items/payments/payment_record", h.token,
		map[string]any{"line_item_id": "rec1", "original_amount_cents": 700}).wantStatus(200)
	h.do("POST", "/accounts/"+acct+"/line_items/charges", h.token,
		map[string]any{"line_item_id": "chg1", "original_amount_cents": 300}).wantStatus(200)

	for _, tc := range []struct {
		name, path, original, typ string
		amount                    float64
	}{
		{"payment record", paymentReversalPath(acct, "rec1"), "rec1", "PAYMENT_REVERSAL", 700},
		{"charge", chargeReversalPath(acct, "chg1"), "chg1", "CHARGE_REVERSAL", 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext := []map[string]string{{"key": "ticket", "value": "T-1"}}
			first := h.do("POST", tc.path, h.token, map[string]any{"external_fields": ext}).wantStatus(200)
			if first.str("line_item_overview", "line_item_status") != "VALID" || first.str("line_item_overview", "line_item_type") != tc.typ ||
				first.str("related_line_item_id") != tc.original || first.json["line_item_summary"].(map[string]any)["original_amount_cents"] != tc.amount ||
				first.str("valid_at") == "" || first.json["payment_processing"] != nil {
				t.Fatalf("reversal %s", first.body)
			}
			id := first.str("line_item_id")
			orig := h.do("GET", "/accounts/"+acct+"/line_items/"+tc.original, h.token, nil).wantStatus(200)
			if orig.str("related_line_item_id") != id || orig.str("line_item_overview", "line_item_status") != "VALID" {
				t.Fatalf("original after reversal %s", orig.body)
			}
			// Again, with another key and another body: the first reversal.
			again := h.do("POST", tc.path, h.token, map[string]any{}, "Idempotency-Key", "other").wantStatus(200)
			if string(again.body) != string(first.body) {
				t.Fatalf("second reversal\n%s\nwant the first\n%s", again.body, first.body)
			}
			var n int
			_ = env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM line_items WHERE org_id = $1 AND related_line_item_id = $2`,
				h.org, tc.original).Scan(&n)
			if n != 1 {
				t.Fatalf("%d reversals of %s", n, tc.original)
			}
			if got := eventReasons(t, h.org, id); len(got) != 1 || got[0] != "created via "+map[string]string{
				"PAYMENT_REVERSAL": "payment_reversals", "CHARGE_REVERSAL": "charge_reversals"}[tc.typ] {
				t.Fatalf("events of the reversal: %q", got)
			}
			if got := eventReasons(t, h.org, tc.original); len(got) != 2 || got[1] != "reversed by "+id {
				t.Fatalf("events of the original: %q", got)
			}
			// The other route does not reverse this type, reversed or not.
			other := chargeReversalPath(acct, tc.original)
			if tc.typ == "CHARGE_REVERSAL" {
				other = paymentReversalPath(acct, tc.original)
			}
			h.do("POST", other, h.token, map[string]any{}).wantError(409, codeInvalidStateTransition)
			// A reversed line item and its reversal are history.
			h.do("PUT", "/accounts/"+acct+"/line_items/"+tc.original, h.token, map[string]any{"line_item_status": "INVALID"}).
				wantError(409, codeInvalidStateTransition)
			h.do("PUT", "/accounts/"+acct+"/line_items/"+id, h.token, map[string]any{"line_item_status": "INVALID"}).
				wantError(409, codeInvalidStateTransition)
		})
	}
}

// Reversals an original's state, type or processor refuses.
func TestReversalRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	h.configure(acct, map[string]any{"ach": nachaConfig})
	record := func(id, status string) {
		h.do("POST", "/accounts/"+acct+"/line_items/payments/payment_record", h.token,
			map[string]any{"line_item_id": id, "original_amount_cents": 100, "line_item_status": status}).wantStatus(200)
	}
	record("pending", "PENDING")
	record("invalid", "INVALID")
	record("ok", "VALID")
	h.do("POST", "/accounts/"+acct+"/line_items/charges", h.token, map[string]any{"line_item_id": "chg", "original_amount_cents": 1}).wantStatus(200)
	h.do("POST", guestPath(acct), h.token, guestBody("executing", debitMethod())).wantStatus(200)
	h.do("POST", guestPath(acct), h.token, guestBody("declined", debitMethod())).wantStatus(200)
	h.decide(acct, "declined", processors.Declined, "60001")
	h.do("POST", guestPath(acct), h.token, guestBody("held", debitMethod())).wantStatus(200)
	h.decide(acct, "held", processors.Held, "60002")
	h.do("POST", guestPath(acct), h.token, guestBody("ach", achMethod())).wantStatus(200)
	h.decide(acct, "ach", processors.Succeeded, "091000010000001")
	h.do("POST", guestPath(acct), h.token, guestBody("card", debitMethod())).wantStatus(200)
	h.decide(acct, "card", processors.Succeeded, "60003")

	ops := h.tokenFor(h.org, auth.RoleOperations)
	readonly := h.tokenFor(h.org, auth.RoleReadonly)
	for _, tc := range []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"pending record", paymentReversalPath(acct, "pending"), h.token, 409, codeInvalidStateTransition},
		{"invalid record", paymentReversalPath(acct, "invalid"), h.token, 409, codeInvalidStateTransition},
		{"still executing", paymentReversalPath(acct, "executing"), h.token, 409, codeInvalidStateTransition},
		{"held for review", paymentReversalPath(acct, "held"), h.token, 409, codeInvalidStateTransition},
		{"declined", paymentReversalPath(acct, "declined"), h.token, 409, codeInvalidStateTransition},
		{"charge by payment route", paymentReversalPath(acct, "chg"), h.token, 409, codeInvalidStateTransition},
		{"payment by charge route", chargeReversalPath(acct, "ok"), h.token, 409, codeInvalidStateTransition},
		{"ACH payment by operations", paymentReversalPath(acct, "ach"), ops, 403, codeForbidden},
		{"card payment by operations", paymentReversalPath(acct, "card"), ops, 403, codeForbidden},
		{"readonly", paymentReversalPath(acct, "ok"), readonly, 403, codeForbidden},
		{"missing original", paymentReversalPath(acct, "nope"), h.token, 404, codeNotFound},
		{"missing account", paymentReversalPath("acct_nope", "ok"), h.token, 404, codeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.do("POST", tc.path, tc.token, map[string]any{}).wantError(tc.status, tc.code)
		})
	}
	h.do("POST", paymentReversalPath(acct, "ok"), h.token, map[string]any{"external_fields": "x"}).
		wantError(422, codeInvalidRequest, "/external_fields")
	other := h.tokenFor(testenv.UniqueID("org_other_"), auth.RoleAdmin)
	h.do("POST", paymentReversalPath(acct, "ok"), other, map[string]any{}).wantError(404, codeNotFound)
	// Operations may reverse what nothing executed.
	h.do("POST", paymentReversalPath(acct, "ok"), ops, map[string]any{}).wantStatus(200)

	var n int
	_ = env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM line_items WHERE org_id = $1 AND line_item_type LIKE '%REVERSAL'`, h.org).Scan(&n)
	if n != 1 {
		t.Fatalf("%d reversals recorded, want only the operations one", n)
	}
}

// Reversing a card payment creates a PENDING reversal with its own attempt
// and an AUTHORIZE_NET job that names the original's transaction; however
// many requests race, one reversal and one job exist.
func TestExecutedReversal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	h.do("POST", guestPath(acct), h.token, guestBody("card", debitMethod())).wantStatus(200)
	h.decide(acct, "card", processors.Succeeded, "60009")
	jobsBefore := jobCount(t, h.org)

	const racers = 8
	bodies := make([]string, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies[i] = string(h.do("POST", paymentReversalPath(acct, "card"), h.token, map[string]any{}).wantStatus(200).body)
		}()
	}
	wg.Wait()
	res := h.do("POST", paymentReversalPath(acct, "card"), h.token, map[string]any{}).wantStatus(200)
	for _, b := range bodies {
		if b != string(res.body) {
			t.Fatalf("racing reversals answered differently:\n%s\n%s", b, res.body)
		}
	}
	if res.str("line_item_overview", "line_item_status") != "PENDING" || res.str("line_item_overview", "line_item_type") != "PAYMENT_REVERSAL" {
		t.Fatalf("reversal %s", res.body)
	}
	pp := processing(res)
	if pp["payment_processor_name"] != "AUTHORIZE_NET" || pp["attempt_status"] != "queued" {
		t.Fatalf("reversal processing %s", mustJSON(pp))
	}
	if n := jobCount(t, h.org); n != jobsBefore+1 {
		t.Fatalf("%d jobs, want %d", n, jobsBefore+1)
	}
	subject, payload, _ := storedJob(t, h.org, acct, res.str("line_item_id"))
	if subject != "jobs.AUTHORIZE_NET" {
		t.Fatalf("job subject %s", subject)
	}
	job, err := processors.DecodeJob(env.Ring, payload)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := h.store.LineItem(context.Background(), h.org, acct, "card")
	if r := job.Reversal; r == nil || r.OriginalTransactionID != "60009" || r.OriginalLineItemID != "card" ||
		r.OriginalAttemptID != orig.Attempt.AttemptID || job.Card != nil || job.Profile != nil || job.AmountCents != 200 {
		t.Fatalf("reversal job %+v (reversal %+v)", job, job.Reversal)
	}
	// Prefer: wait waits for the processor, which nobody runs here.
	w := h.do("POST", paymentReversalPath(acct, "card"), h.token, map[string]any{}, "Prefer", "wait=1").wantStatus(200)
	if w.header.Get("Preference-Applied") != "wait=1" || w.str("line_item_overview", "line_item_status") != "PENDING" {
		t.Fatalf("waited reversal %s %v", w.body, w.header)
	}
}

// An Idempotency-Key names one reversal request: reused for another
// original it is refused.
func TestReversalIdempotencyKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	for _, id := range []string{"a", "b"} {
		h.do("POST", "/accounts/"+acct+"/line_items/payments/payment_record", h.token,
			map[string]any{"line_item_id": id, "original_amount_cents": 100}).wantStatus(200)
	}
	first := h.do("POST", paymentReversalPath(acct, "a"), h.token, map[string]any{}, "Idempotency-Key", "k1").wantStatus(200)
	again := h.do("POST", paymentReversalPath(acct, "a"), h.token, map[string]any{}, "Idempotency-Key", "k1").wantStatus(200)
	if string(first.body) != string(again.body) {
		t.Fatalf("replay %s, want %s", again.body, first.body)
	}
	h.do("POST", paymentReversalPath(acct, "b"), h.token, map[string]any{}, "Idempotency-Key", "k1").wantError(409, codeIdempotencyKeyReused)
	b := h.do("GET", "/accounts/"+acct+"/line_items/b", h.token, nil).wantStatus(200)
	if b.json["related_line_item_id"] != nil {
		t.Fatalf("b was reversed: %s", b.body)
	}
}

// A CANOPY_NACHA payment is reversed at every stage its money moved or may
// move: staged (no file took the entry), dropped (in a file, not settled)
// and settled (VALID). Each reversal is PENDING with a CANOPY_NACHA job
// naming the original's attempt and trace number and carrying no bank
// account (the worker withdraws the entry or stages a refund credit,
// processors/nacha/README.md); a second request replays the first reversal
// and queues nothing, and a role that may not execute is refused.
func TestACHReversal(t *testing.T) {
	t.Parallel()
	parent := newHarness(t)
	acct := parent.account()
	ops := parent.tokenFor(parent.org, auth.RoleOperations)
	for _, tc := range []struct {
		name, trace string
		settle      func(h *harness, id string)
		origStatus  store.Status
	}{
		{"staged", "", func(h *harness, id string) { h.decide(acct, id, processors.PendingSettlement, "") }, store.StatusPending},
		{"dropped", "021000020000001", func(h *harness, id string) {
			h.decide(acct, id, processors.PendingSettlement, "")
			li, _ := h.store.LineItem(context.Background(), h.org, acct, id)
			// As the drop stamps it (nacha.StoreLedger.EntriesDropped).
			if _, err := env.Pool.Exec(context.Background(), `UPDATE payment_attempts
				SET nacha_file_id = 'file_1', trace_number = '021000020000001', transaction_id = '021000020000001'
				WHERE org_id = $1 AND attempt_id = $2`, h.org, li.Attempt.AttemptID); err != nil {
				h.t.Fatal(err)
			}
		}, store.StatusPending},
		{"settled", "021000020000002", func(h *harness, id string) { h.decide(acct, id, processors.Succeeded, "021000020000002") }, store.StatusValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := *parent // reports to the subtest
			h.t = t
			id := "ach-" + tc.name
			h.do("POST", guestPath(acct), h.token, guestBody(id, achMethod())).wantStatus(200)
			tc.settle(&h, id)
			h.do("POST", paymentReversalPath(acct, id), ops, map[string]any{}).wantError(403, codeForbidden)
			res := h.do("POST", paymentReversalPath(acct, id), h.token, map[string]any{}).wantStatus(200)
			if res.str("line_item_overview", "line_item_status") != "PENDING" || res.str("line_item_overview", "line_item_type") != "PAYMENT_REVERSAL" ||
				processing(res)["payment_processor_name"] != "CANOPY_NACHA" || res.str("related_line_item_id") != id {
				t.Fatalf("reversal %s", res.body)
			}
			subject, payload, _ := storedJob(t, h.org, acct, res.str("line_item_id"))
			job, err := processors.DecodeJob(env.Ring, payload)
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := h.store.LineItem(context.Background(), h.org, acct, id)
			if subject != "jobs.CANOPY_NACHA" || job.Reversal == nil || job.Reversal.OriginalLineItemID != id ||
				job.Reversal.OriginalAttemptID != orig.Attempt.AttemptID || job.Reversal.OriginalTransactionID != tc.trace ||
				job.ACH != nil || job.PaymentType != processors.PaymentTypeACH || job.AmountCents != 200 {
				t.Fatalf("job on %s: %+v (reversal %+v)", subject, job, job.Reversal)
			}
			// The original keeps its status and names its reversal.
			if orig.Status != tc.origStatus || orig.RelatedLineItemID != res.str("line_item_id") {
				t.Fatalf("original %s, related %q", orig.Status, orig.RelatedLineItemID)
			}
			jobs := jobCount(t, h.org)
			again := h.do("POST", paymentReversalPath(acct, id), h.token, map[string]any{}).wantStatus(200)
			if string(again.body) != string(res.body) || jobCount(t, h.org) != jobs {
				t.Fatalf("second reversal %s (jobs %d, were %d), want the first %s", again.body, jobCount(t, h.org), jobs, res.body)
			}
		})
	}
}
