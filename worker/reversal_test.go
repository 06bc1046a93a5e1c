package worker

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
	"github.com/payrail/payrail/processors/nacha"
)

// reversalFixture is the pipeline with the real AUTHORIZE_NET processor
// over the simulator, the worker stopped at hooks as a crash would.
func reversalFixture(t *testing.T, h hooks) (*fixture, *anetsim.Server) {
	t.Helper()
	sim, err := anetsim.New(anetsim.Options{Seed: 42, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client, err := authorizenet.NewClient(authorizenet.Config{Endpoint: srv.URL + anetsim.Path,
		LoginID: anetsim.DefaultLoginID, TransactionKey: anetsim.DefaultTransactionKey, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fixtureOpts{processor: authorizenet.NewProcessor(client, testLogger()),
		ackWait: 2 * time.Second, maxDeliver: 5, concurrency: 4, hooks: h})
	return f, sim
}

// reverse posts POST .../payment_reversals/{id} and returns the status and
// the body.
func (f *fixture) reverse(id string) (int, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.api.URL+"/accounts/"+f.account+"/line_items/payment_reversals/"+id, strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body
}

// crashOnce abandons the first delivery of every reversal job at a
// boundary, as a worker that died there would.
type crashOnce struct {
	mu      sync.Mutex
	crashed map[string]bool
}

func (c *crashOnce) hook(job processors.Job) error {
	if job.Reversal == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed == nil {
		c.crashed = map[string]bool{}
	}
	if c.crashed[job.AttemptID] {
		return nil
	}
	c.crashed[job.AttemptID] = true
	return errCrashed
}

// A card payment is reversed end to end (API, outbox, JetStream, worker,
// gateway): voided before the gateway settles it, refunded after; a crash
// of the worker before or after its gateway call, or after the commit,
// changes nothing: one void or one refund, the reversal VALID, the
// original VALID and linked to it. A second reversal answers with the
// first; a declined payment cannot be reversed.
func TestCardReversals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash func(c *crashOnce) hooks
	}{
		{"no crash", func(*crashOnce) hooks { return hooks{} }},
		{"crash before the gateway call", func(c *crashOnce) hooks { return hooks{received: c.hook} }},
		{"crash after the gateway call", func(c *crashOnce) hooks { return hooks{afterProcess: c.hook} }},
		{"crash after the commit", func(c *crashOnce) hooks { return hooks{afterCommit: c.hook} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, sim := reversalFixture(t, tc.crash(&crashOnce{}))
			for _, settled := range []bool{false, true} {
				id := fmt.Sprintf("pay-settled-%v", settled)
				f.pay(id, 4200)
				orig := f.waitSettled([]string{id}, 15*time.Second)[id]
				if orig.Status != store.StatusValid {
					t.Fatalf("%s ended %s", id, orig.Status)
				}
				tx := orig.Attempt.TransactionID
				if settled {
					sim.Settle()
				}
				status, body := f.reverse(id)
				if status != 200 || body["line_item_overview"].(map[string]any)["line_item_status"] != "PENDING" {
					t.Fatalf("reversal of %s: %d %v", id, status, body)
				}
				rid := body["line_item_id"].(string)
				rev := f.waitSettled([]string{rid}, 30*time.Second)[rid]
				if rev.Status != store.StatusValid || rev.Type != store.TypePaymentReversal || rev.RelatedLineItemID != id {
					t.Fatalf("reversal %s ended %s (%s: %s)", rid, rev.Status, rev.Attempt.Status, rev.Attempt.ResultMessage)
				}
				after, _ := f.store.LineItem(f.ctx, f.org, f.account, id)
				if after.Status != store.StatusValid || after.RelatedLineItemID != rid {
					t.Fatalf("original after reversal: %s, related %q", after.Status, after.RelatedLineItemID)
				}
				wantStatus, wantRefunds := anetsim.StatusVoided, 0
				if settled {
					wantStatus, wantRefunds = anetsim.StatusSettledSuccessfully, 1
				}
				if got, n := sim.Status(tx), sim.Refunds(tx); got != wantStatus || n != wantRefunds {
					t.Fatalf("%s at the gateway: %s with %d refunds, want %s with %d", id, got, n, wantStatus, wantRefunds)
				}
				// Again: the first reversal, nothing sent.
				creates := sim.Requests("createTransactionRequest")
				status, again := f.reverse(id)
				if status != 200 || again["line_item_id"] != rid {
					t.Fatalf("second reversal of %s: %d %v", id, status, again)
				}
				time.Sleep(300 * time.Millisecond)
				if n := sim.Requests("createTransactionRequest") - creates; n != 0 {
					t.Fatalf("a second reversal sent %d transactions", n)
				}
			}
			// A declined payment moved no money: 409.
			f.guestPayment("declined", 500, `{"payment_type":"DEBIT","payment_processor_name":"AUTHORIZE_NET",`+
				`"card_number":"4111111111111111","expiration_date":"12/30","cvv":"123","zip":"`+anetsim.DeclineZip+`","name":"Pat Doe"}`)
			if li := f.waitSettled([]string{"declined"}, 15*time.Second)["declined"]; li.Status != store.StatusDeclined {
				t.Fatalf("declined payment ended %s", li.Status)
			}
			if status, body := f.reverse("declined"); status != 409 || body["error"].(map[string]any)["code"] != "invalid_state_transition" {
				t.Fatalf("reversal of a declined payment: %d %v", status, body)
			}
		})
	}
}

// A staged ACH payment is reversed end to end: the reversal job reaches
// CANOPY_NACHA, which withdraws the entry (the first delivery dies after
// withdrawing, before its commit; the redelivery finds the entry withdrawn
// by the same reversal), the reversal becomes VALID, the payment stays
// PENDING, and the next drop leaves the entry out of its file. A payment
// already in the file is reversed by a refund credit.
func TestStagedACHReversal(t *testing.T) {
	p, err := nacha.New(nacha.Config{Pool: env.Pool, Ring: env.Ring, Ledger: nacha.StoreLedger{Store: store.New(env.Pool, env.Ring, canopy.Events{})},
		DropDir: t.TempDir(), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	crash := &crashOnce{}
	f := newFixture(t, fixtureOpts{processor: p, hooks: hooks{afterProcess: crash.hook}})
	if _, err := f.store.PutNachaConfig(f.ctx, f.org, store.NachaConfig{
		DestinationBankName: "FEDERAL RESERVE BANK", DestinationRouting: "091000019",
		OriginBankName: "PAYRAIL TEST BANK", OriginRouting: "231380104",
		CompanyName: "PAYRAIL TEST", CompanyIdentification: "1234567890", EntryDescription: "PAYMENT",
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ach-keep", "ach-back"} {
		f.guestPayment(id, 1500, `{"payment_type":"ACH","payment_processor_name":"CANOPY_NACHA",`+
			`"bank_account_number":"987654321","bank_routing_number":"021000021","standard_entry_class":"WEB","name":"Pat Doe"}`)
		var li store.LineItem
		waitFor(t, 10*time.Second, func() bool {
			li, _ = f.store.LineItem(f.ctx, f.org, f.account, id)
			return li.Attempt != nil && li.Attempt.Status == store.AttemptPendingSettlement
		}, func() string { return fmt.Sprintf("%s not staged: %+v", id, li.Attempt) })
	}
	status, body := f.reverse("ach-back")
	if status != 200 {
		t.Fatalf("reversal: %d %v", status, body)
	}
	rid := body["line_item_id"].(string)
	rev := f.waitSettled([]string{rid}, 30*time.Second)[rid]
	if rev.Status != store.StatusValid || rev.Attempt.ResultCode != "withdrawn" || rev.Attempt.Deliveries < 2 {
		t.Fatalf("reversal ended %s (%+v)", rev.Status, rev.Attempt)
	}
	if li, _ := f.store.LineItem(f.ctx, f.org, f.account, "ach-back"); li.Status != store.StatusPending || li.RelatedLineItemID != rid {
		t.Fatalf("reversed payment: %s, related %q", li.Status, li.RelatedLineItemID)
	}
	res, err := p.Drop(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range res.Files {
		if file.OrgID == f.org && (file.Entries != 1 || file.DebitTotalCents != 1500) {
			t.Fatalf("drop after the withdrawal: %+v", file)
		}
	}
	if li, _ := f.store.LineItem(f.ctx, f.org, f.account, "ach-back"); li.Attempt.NachaFileID != "" {
		t.Fatalf("the withdrawn payment went into file %s", li.Attempt.NachaFileID)
	}

	// The kept payment is in a file now: its reversal stages one refund
	// credit (the first delivery dies after staging it, before its commit;
	// the redelivery finds it under its attempt id) and stays PENDING
	// until the credit settles.
	status, body = f.reverse("ach-keep")
	if status != 200 || body["line_item_overview"].(map[string]any)["line_item_status"] != "PENDING" {
		t.Fatalf("reversal of a dropped payment: %d %v", status, body)
	}
	rid = body["line_item_id"].(string)
	var refund store.LineItem
	waitFor(t, 30*time.Second, func() bool {
		refund, _ = f.store.LineItem(f.ctx, f.org, f.account, rid)
		return refund.Attempt != nil && refund.Attempt.Status == store.AttemptPendingSettlement
	}, func() string { return fmt.Sprintf("reversal %s: %s %+v", rid, refund.Status, refund.Attempt) })
	if refund.Status != store.StatusPending || refund.Attempt.ResultCode != "refund_staged" || refund.Attempt.Deliveries < 2 {
		t.Fatalf("reversal of a dropped payment: %s %+v", refund.Status, refund.Attempt)
	}
	var credits int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM nacha_entries WHERE org_id = $1 AND direction = 'credit'
		AND line_item_id = $2 AND amount_cents = 1500 AND status = 'staged'`, f.org, rid).Scan(&credits); err != nil {
		t.Fatal(err)
	}
	if credits != 1 {
		t.Fatalf("%d refund credits staged for one reversal delivered twice", credits)
	}
	if li, _ := f.store.LineItem(f.ctx, f.org, f.account, "ach-keep"); li.Status != store.StatusPending || li.RelatedLineItemID != rid {
		t.Fatalf("payment reversed by a refund: %s, related %q", li.Status, li.RelatedLineItemID)
	}
}
