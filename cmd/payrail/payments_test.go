package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/payments"
	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// jobRecorder keeps what the store hands to the fast path: the card
// job's only copy with the card number once the attempt is dead.
type jobRecorder struct{ msgs []store.OutboxMessage }

func (r *jobRecorder) Enqueue(msgs []store.OutboxMessage) { r.msgs = append(r.msgs, msgs...) }

const testPAN = "5424000000000015"

// payrail payments list finds dead, held and stuck attempts by org and
// age; show prints the payment without card data; redrive recovers a
// charged dead attempt, requeues one that charged nothing, and refuses
// what it must not redrive.
func TestPaymentsListShowRedrive(t *testing.T) {
	env := testServices(t)
	ctx := context.Background()
	ring, err := keyring.Parse("k1="+testKey, "")
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(env.Pool, ring, canopy.Events{})
	rec := &jobRecorder{}
	st.SetFastPath(rec)
	svc := payments.New(st, ring)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sim, err := anetsim.New(anetsim.Options{AcceptAnyProfile: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client, err := authorizenet.NewClient(authorizenet.Config{Endpoint: srv.URL + anetsim.Path,
		LoginID: anetsim.DefaultLoginID, TransactionKey: anetsim.DefaultTransactionKey, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	anet := authorizenet.NewProcessor(client, quiet)

	orgA, orgB := testenv.UniqueID("org_"), testenv.UniqueID("org_")
	for _, org := range []string{orgA, orgB} {
		if err := st.EnsureOrg(ctx, org, org); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.CreateAccount(ctx, org, store.NewAccount{AccountID: "acct", ProductID: "p",
			CustomerName: "Ada Lovelace", RequestHash: []byte("h")}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutProcessorConfig(ctx, org, "acct", store.ProcessorConfig{ACH: store.ACHConfig{Processor: "NONE"},
			Debit: store.DebitConfig{Processor: processors.AuthorizeNet, CustomerProfileID: "900100", PaymentProfileID: "900200"}}); err != nil {
			t.Fatal(err)
		}
	}
	card := func(org, id string) string {
		t.Helper()
		li, _, err := svc.Submit(ctx, payments.Payment{OrgID: org, AccountID: "acct", LineItemID: id, Origin: payments.OriginGuestPayment,
			PaymentType: processors.PaymentTypeDebit, Processor: processors.AuthorizeNet,
			Card:        &processors.CardDetails{Number: testPAN, ExpirationDate: "12/39", CVV: "900", Zip: "46201"},
			AmountCents: 1900, RequestHash: []byte(id), ClientID: "cli"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return li.Attempt.AttemptID
	}
	transfer := func(org, id string) string {
		t.Helper()
		li, _, err := svc.Submit(ctx, payments.Payment{OrgID: org, AccountID: "acct", LineItemID: id,
			Origin: payments.OriginPaymentTransfer, AmountCents: 4200, RequestHash: []byte(id), ClientID: "cli"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return li.Attempt.AttemptID
	}
	apply := func(org, att string, o processors.Outcome) {
		t.Helper()
		if _, err := svc.Apply(ctx, payments.Outcome{Attempt: store.AttemptRef{OrgID: org, AttemptID: att}, Actor: "worker:AUTHORIZE_NET",
			Result: processors.Result{Outcome: o, Code: "E00001", Message: "An error occurred during processing."}}); err != nil {
			t.Fatal(err)
		}
	}

	// A charged card whose attempt died; a transfer that died with
	// nothing charged; another org's held payment; a stuck delivery; a
	// fresh queued payment; an undelivered queued payment.
	charged := card(orgA, "pay-charged")
	for _, m := range rec.msgs {
		if m.MsgID == "job_"+charged {
			job, err := processors.DecodeJob(ring, m.Body())
			if err != nil {
				t.Fatal(err)
			}
			job.Delivery = 1
			if res, err := anet.Process(ctx, job); err != nil || res.Outcome != processors.Succeeded {
				t.Fatalf("charge: %+v, %v", res, err)
			}
		}
	}
	apply(orgA, charged, payments.Dead)
	nothing := transfer(orgA, "pay-nothing")
	apply(orgA, nothing, payments.Dead)
	held := card(orgB, "pay-held")
	apply(orgB, held, processors.Held)
	stuck := transfer(orgA, "pay-stuck")
	if _, err := st.BeginDelivery(ctx, store.AttemptRef{OrgID: orgA, AttemptID: stuck}, 3, time.Second); err != nil {
		t.Fatal(err)
	}
	waiting := transfer(orgA, "pay-waiting")
	fresh := transfer(orgA, "pay-fresh")
	if _, err := env.Pool.Exec(ctx, `UPDATE payment_attempts SET last_delivery_at = now() - interval '10 minutes',
		updated_at = now() - interval '10 minutes', created_at = now() - interval '20 minutes' WHERE attempt_id = $1`, stuck); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(ctx, `UPDATE payment_attempts SET created_at = now() - interval '10 minutes',
		updated_at = now() - interval '10 minutes' WHERE attempt_id = $1`, waiting); err != nil {
		t.Fatal(err)
	}

	cmdEnv := map[string]string{"PAYRAIL_DATABASE_URL": env.DatabaseURL, "PAYRAIL_ENCRYPTION_KEYS": "k1=" + testKey,
		"PAYRAIL_DATABASE_MAX_CONNS": fmt.Sprint(env.Reserve(t, 2, "payrail payments")),
		"PAYRAIL_AUTHNET_ENDPOINT":   srv.URL + anetsim.Path, "PAYRAIL_AUTHNET_LOGIN_ID": anetsim.DefaultLoginID,
		"PAYRAIL_AUTHNET_TRANSACTION_KEY": anetsim.DefaultTransactionKey, "USER": "tester"}
	run := func(args ...string) result {
		t.Helper()
		return payrail(t, cmdEnv, append([]string{"payments"}, args...)...)
	}
	noCardData := func(what, out string) {
		t.Helper()
		if strings.Contains(out, testPAN) || strings.Contains(out, "424000000000") {
			t.Errorf("%s shows the card number:\n%s", what, out)
		}
	}

	// list
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"dead in org A", []string{"--status", "dead", "--org", orgA}, []string{charged, nothing}},
		{"dead, older than an hour", []string{"--status", "dead", "--org", orgA, "--older-than", "1h"}, nil},
		{"dead in org B", []string{"--status", "dead", "--org", orgB}, nil},
		{"held in org B", []string{"--status", "held", "--org", orgB}, []string{held}},
		{"held in org A", []string{"--status", "held", "--org", orgA}, nil},
		{"stuck (default 5m)", []string{"--status", "stuck", "--org", orgA}, []string{stuck, waiting}},
		{"stuck older than 15m", []string{"--status", "stuck", "--org", orgA, "--older-than", "15m"}, nil},
		{"queued", []string{"--status", "queued", "--org", orgA}, []string{waiting, fresh}},
		{"limit", []string{"--status", "dead", "--org", orgA, "--limit", "1"}, []string{charged}},
	} {
		t.Run("list "+c.name, func(t *testing.T) {
			r := run(append([]string{"list", "--json"}, c.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var out struct {
				Order    string       `json:"order"`
				Attempts []attemptRow `json:"attempts"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("%v: %s", err, r.stdout)
			}
			var got []string
			for _, a := range out.Attempts {
				got = append(got, a.AttemptID)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("attempts %v, want %v (%s)", got, c.want, out.Order)
			}
			noCardData("list", r.stdout)
		})
	}
	r := run("list", "--status", "dead", "--org", orgA)
	if r.code != 0 || !strings.Contains(r.stdout, charged) || !strings.Contains(r.stdout, "E00001 An error occurred") ||
		!strings.Contains(r.stdout, "oldest last change first") {
		t.Errorf("list text (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run("list", "--status", "lost"); r.code != 2 || !strings.Contains(r.stderr, "--status") {
		t.Errorf("--status lost: exit %d, %s", r.code, r.stderr)
	}

	// show, by line item id and by attempt id
	for _, id := range []string{"pay-charged", charged} {
		r := run("show", id, "--org", orgA, "--json")
		if r.code != 0 {
			t.Fatalf("show %s: exit %d: %s", id, r.code, r.stderr)
		}
		var v struct {
			LineItem    map[string]any   `json:"line_item"`
			Attempt     attemptRow       `json:"attempt"`
			Transitions []transitionView `json:"transitions"`
			Outbox      []outboxView     `json:"outbox"`
			Note        string           `json:"note"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		if v.LineItem["line_item_id"] != "pay-charged" || v.Attempt.AttemptID != charged || v.Attempt.AttemptStatus != "dead" ||
			v.Attempt.Deliveries != 0 || v.Attempt.ResultCode != "E00001" || len(v.Transitions) != 2 ||
			v.Transitions[1].To != "INVALID" || !strings.Contains(v.Note, "PAYRAIL_EVENTS") {
			t.Errorf("show %s: %s", id, r.stdout)
		}
		var job, events int
		for _, o := range v.Outbox {
			switch o.Kind {
			case "job":
				job++
				if o.HasPayload || o.MsgID != "job_"+charged {
					t.Errorf("job row %+v: want job_%s without its payload", o, charged)
				}
			case "event":
				events++
			}
		}
		if job != 1 || events != 2 {
			t.Errorf("outbox %+v: want the job and two events", v.Outbox)
		}
		noCardData("show --json", r.stdout)
	}
	r = run("show", "pay-charged", "--org", orgA)
	if r.code != 0 || !strings.Contains(r.stdout, "card Mastercard …0015") || !strings.Contains(r.stdout, "PAYRAIL_EVENTS") ||
		!strings.Contains(r.stdout, "(created) → PENDING") {
		t.Errorf("show text (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	noCardData("show", r.stdout)
	// The same line item id in two orgs needs --org.
	card(orgB, "pay-charged")
	if r := run("show", "pay-charged"); r.code != 2 || !strings.Contains(r.stderr, "--org") {
		t.Errorf("ambiguous id: exit %d, %s", r.code, r.stderr)
	}

	// redrive: refusals first; nothing changes.
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"not dead", []string{"pay-fresh", "--org", orgA}, "not dead"},
		{"held", []string{held, "--org", orgB}, "not dead"},
		{"attempt of another account", []string{charged, "--org", orgA, "--account", "other"}, "not to account other"},
		{"another org", []string{charged, "--org", orgB}, "no line item or attempt"},
	} {
		t.Run("redrive refused "+c.name, func(t *testing.T) {
			r := run(append([]string{"redrive"}, c.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, c.want)
			}
		})
	}

	// redrive of the charged card: recorded VALID, no second charge.
	r = run("redrive", "pay-charged", "--org", orgA, "--reason", "INC-7", "--json")
	var rd map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rd); r.code != 0 || err != nil || rd["action"] != "recovered" {
		t.Fatalf("redrive charged: exit %d, %s%s", r.code, r.stdout, r.stderr)
	}
	if n := len(sim.Transactions()); n != 1 {
		t.Errorf("%d transactions at the gateway, want the one charge", n)
	}
	li, err := st.LineItem(ctx, orgA, "acct", "pay-charged")
	if err != nil || li.Status != store.StatusValid || li.Attempt.Status != store.AttemptSucceeded {
		t.Errorf("after redrive: %s %+v, %v", li.Status, li.Attempt, err)
	}
	trs, _ := st.Transitions(ctx, orgA, "acct", "pay-charged")
	if last := trs[len(trs)-1]; last.Actor != "operator:tester" || !strings.Contains(last.Reason, "INC-7") || last.To != store.StatusValid {
		t.Errorf("audit transition %+v", last)
	}

	// redrive of the transfer that charged nothing: a new attempt and job.
	r = run("redrive", nothing, "--org", orgA, "--actor", "alice", "--reason", "gateway back")
	if r.code != 0 || !strings.Contains(r.stdout, "redriven: dead attempt "+nothing) || !strings.Contains(r.stdout, "outbox") {
		t.Fatalf("redrive nothing charged: exit %d, %s%s", r.code, r.stdout, r.stderr)
	}
	li, err = st.LineItem(ctx, orgA, "acct", "pay-nothing")
	if err != nil || li.Status != store.StatusPending || li.Attempt.Status != store.AttemptQueued || li.Attempt.AttemptID == nothing {
		t.Fatalf("after redrive: %s %+v, %v", li.Status, li.Attempt, err)
	}
	var payload []byte
	if err := env.Pool.QueryRow(ctx, `SELECT pa.job FROM outbox o JOIN payment_attempts pa ON pa.attempt_id = o.attempt_id
		WHERE o.msg_id = $1 AND o.published_at IS NULL`, "job_"+li.Attempt.AttemptID).Scan(&payload); err != nil || payload == nil {
		t.Fatalf("new job row and the job its attempt holds: %v", err)
	}
	trs, _ = st.Transitions(ctx, orgA, "acct", "pay-nothing")
	if last := trs[len(trs)-1]; last.Actor != "operator:alice" || last.From != store.StatusInvalid || last.To != store.StatusPending ||
		!strings.Contains(last.Reason, nothing) || !strings.Contains(last.Reason, "gateway back") {
		t.Errorf("audit transition %+v", last)
	}
	if n := len(sim.Transactions()); n != 1 {
		t.Errorf("%d transactions at the gateway after the redrive, want still 1 (the worker charges the new job)", n)
	}
	// The dead attempt is gone: a second redrive of it is refused.
	if r := run("redrive", nothing, "--org", orgA); r.code != 2 || !strings.Contains(r.stderr, "replaced by its new attempt") {
		t.Errorf("second redrive: exit %d, %s", r.code, r.stderr)
	}
}
