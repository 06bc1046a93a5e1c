package authorizenet

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// charged charges a card through the processor and returns the original
// transaction id.
func charged(t *testing.T, e *env, attempt string, cents int64) string {
	t.Helper()
	res, err := e.proc.Process(context.Background(), cardJob(e, attempt, cents, visa()))
	if err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("charge %s: %+v %v", attempt, res, err)
	}
	return res.TransactionID
}

func reversalJob(e *env, attempt, origTx string, cents int64) processors.Job {
	return processors.Job{
		OrgID: "org_test", AccountID: "acct_test", LineItemID: "li_" + attempt, AttemptID: attempt,
		Processor: Name, PaymentType: processors.PaymentTypeDebit, Origin: "payment_reversals",
		AmountCents: cents, CreatedAt: e.clock.Now(), EffectiveAt: e.clock.Now(), Delivery: 1,
		Reversal: &processors.ReversalDetails{OriginalLineItemID: "li_orig", OriginalAttemptID: "att_orig",
			OriginalTransactionID: origTx, OriginalCreatedAt: e.clock.Now()},
	}
}

// A reversal voids an unsettled original and refunds a settled one, once
// however often it is delivered: a redelivery finds the void done (the
// original is voided) or the refund made (by the reversal's invoice
// number) and sends nothing.
func TestReverseVoidsOrRefundsOnce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		settle      bool
		wantStatus  string
		wantRefunds int
	}{
		{"unsettled original is voided", false, anetsim.StatusVoided, 0},
		{"settled original is refunded", true, anetsim.StatusSettledSuccessfully, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			orig := charged(t, e, "att_pay", 1250)
			if tc.settle {
				e.sim.Settle()
			}
			job := reversalJob(e, "att_rev", orig, 1250)
			first, err := e.proc.Process(context.Background(), job)
			if err != nil || first.Outcome != processors.Succeeded || first.TransactionID == "" ||
				first.Instrument.LastFour != "1111" {
				t.Fatalf("reversal: %+v %v", first, err)
			}
			creates := e.sim.Requests("createTransactionRequest")
			for range 3 {
				job = redelivered(job, false)
				again, err := e.proc.Process(context.Background(), job)
				if err != nil || again.Outcome != processors.Succeeded || again.TransactionID != first.TransactionID {
					t.Fatalf("redelivery %d: %+v %v, first %+v", job.Delivery, again, err, first)
				}
			}
			if n := e.sim.Requests("createTransactionRequest") - creates; n != 0 {
				t.Fatalf("redeliveries sent %d transactions", n)
			}
			if got := e.sim.Status(orig); got != tc.wantStatus {
				t.Fatalf("original %s, want %s", got, tc.wantStatus)
			}
			if n := e.sim.Refunds(orig); n != tc.wantRefunds {
				t.Fatalf("%d refunds, want %d", n, tc.wantRefunds)
			}
			// The worker's last chance and the dead-letter sweep ask
			// Resolve: it finds the same answer and sends nothing.
			res, err := e.proc.Resolve(context.Background(), job)
			if err != nil || res.Outcome != processors.Succeeded || res.TransactionID != first.TransactionID {
				t.Fatalf("resolve: %+v %v", res, err)
			}
		})
	}
}

// settleBeforeVoid is the gateway settling its batch between payrail's
// look-up of the original and its void: the void is answered 16.
type settleBeforeVoid struct {
	sim   *anetsim.Server
	armed atomic.Bool
}

func (s *settleBeforeVoid) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if s.armed.Load() && bytes.Contains(body, []byte(`"voidTransaction"`)) {
		s.armed.Store(false)
		s.sim.Settle()
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.sim.ServeHTTP(w, r)
}

// The original settles between the look-up and the void: the void fails
// with reason 16, the processor looks again and refunds, and the reversal
// ends with exactly one refund and no void.
func TestReverseRaceWithSettlement(t *testing.T) {
	c := newClock()
	sim, err := anetsim.New(anetsim.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	race := &settleBeforeVoid{sim: sim}
	ts := httptest.NewServer(race)
	t.Cleanup(ts.Close)
	client, err := NewClient(Config{Endpoint: ts.URL + anetsim.Path, LoginID: anetsim.DefaultLoginID,
		TransactionKey: anetsim.DefaultTransactionKey, Timeout: 5 * time.Second, HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sim: sim, client: client, clock: c, proc: NewProcessor(client, slog.New(slog.DiscardHandler), WithClock(c.Now))}
	orig := charged(t, e, "att_pay", 990)
	race.armed.Store(true)
	res, err := e.proc.Process(context.Background(), reversalJob(e, "att_rev", orig, 990))
	if err != nil || res.Outcome != processors.Succeeded || res.TransactionID == orig {
		t.Fatalf("reversal: %+v %v", res, err)
	}
	if race.armed.Load() {
		t.Fatal("the void was never sent: the race did not happen")
	}
	if got, n := sim.Status(orig), sim.Refunds(orig); got != anetsim.StatusSettledSuccessfully || n != 1 {
		t.Fatalf("original %s with %d refunds, want settled with 1", got, n)
	}
}

// What the gateway refuses ends the reversal without giving anything
// back: an original it does not know, one that took no money, and a
// merchant whose Transaction Details API is off (payrail cannot tell a
// void from a refund, nor see an earlier delivery's).
func TestReverseRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     envOptions
		original func(t *testing.T, e *env) string
		wantCode string
	}{
		{"unknown original", envOptions{}, func(*testing.T, *env) string { return "424242" }, "original_not_found"},
		{"declined original", envOptions{}, func(t *testing.T, e *env) string {
			card := visa()
			card.Zip = anetsim.DeclineZip
			res, _ := e.proc.Process(context.Background(), cardJob(e, "att_declined", 500, card))
			if res.Outcome != processors.Declined {
				t.Fatalf("charge: %+v", res)
			}
			return res.TransactionID
		}, "not_reversible"},
		{"reporting off", envOptions{sim: anetsim.Options{ReportingOff: true}}, func(t *testing.T, e *env) string {
			return charged(t, e, "att_pay", 500)
		}, CodeReportingDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			orig := tc.original(t, e)
			creates := e.sim.Requests("createTransactionRequest")
			res, err := e.proc.Process(context.Background(), reversalJob(e, "att_rev", orig, 500))
			if err == nil || res.Outcome != processors.Permanent || res.Code != tc.wantCode {
				t.Fatalf("reversal: %+v %v, want permanent %s", res, err, tc.wantCode)
			}
			if n := e.sim.Requests("createTransactionRequest") - creates; n != 0 {
				t.Fatalf("%d transactions sent", n)
			}
		})
	}
}

// A refund whose answer was lost is found by the next delivery's look-up;
// when the look-up misses it (not listed yet), the resend inside the
// duplicate window is answered 11 and resolved to the first refund.
func TestReverseLostRefundAnswer(t *testing.T) {
	e := newEnv(t, envOptions{})
	orig := charged(t, e, "att_pay", 700)
	e.sim.Settle()
	// The refund is made, its answer dropped.
	e.sim.Inject("createTransactionRequest", anetsim.FaultDropAfter)
	job := reversalJob(e, "att_rev", orig, 700)
	res, err := e.proc.Process(context.Background(), job)
	if err == nil || res.Outcome != processors.Retryable {
		t.Fatalf("first delivery: %+v %v, want retryable", res, err)
	}
	if n := e.sim.Refunds(orig); n != 1 {
		t.Fatalf("%d refunds after the lost answer", n)
	}
	// The look-up fails too: the resend relies on the duplicate window.
	e.sim.Inject("getUnsettledTransactionListRequest", anetsim.FaultStatus5xx)
	res, err = e.proc.Process(context.Background(), redelivered(job, false))
	if err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("redelivery: %+v %v", res, err)
	}
	if n := e.sim.Refunds(orig); n != 1 {
		t.Fatalf("%d refunds, want 1", n)
	}
}
