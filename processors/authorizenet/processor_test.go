package authorizenet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

var (
	_ processors.Processor = (*Processor)(nil)
	_ processors.Resolver  = (*Processor)(nil)
)

// TestProcessOutcomes drives the processor against the simulator once
// for every outcome class of docs/processors.md and checks the typed result.
func TestProcessOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		card     func() processors.CardDetails
		cents    int64
		login    string
		outcome  processors.Outcome
		code     string
		message  string
		charges  int
		retryIn  time.Duration
		hasTrans bool
	}{
		{name: "approved", card: visa, cents: 1234, outcome: processors.Succeeded, code: "1", charges: 1, hasTrans: true},
		{name: "declined by zip 46282", cents: 1234, outcome: processors.Declined, code: "2",
			message: "This transaction has been declined.", hasTrans: true,
			card: func() processors.CardDetails { c := visa(); c.Zip = anetsim.DeclineZip; return c }},
		{name: "declined by card code 901", cents: 1234, outcome: processors.Declined, code: "65", hasTrans: true,
			card: func() processors.CardDetails { c := visa(); c.CVV = "901"; return c }},
		{name: "held for review", cents: 25200, outcome: processors.Held, code: "252", charges: 1, hasTrans: true,
			card: func() processors.CardDetails { c := visa(); c.Number = anetsim.ErrorCard; return c }},
		{name: "transient processing error", cents: 1900, outcome: processors.Retryable, code: "19", retryIn: 5 * time.Minute,
			card: func() processors.CardDetails { c := visa(); c.Number = anetsim.ErrorCard; return c }},
		{name: "expired card", cents: 1234, outcome: processors.Permanent, code: "8",
			card: func() processors.CardDetails { c := visa(); c.ExpirationDate = "01/20"; return c }},
		{name: "invalid card number", cents: 1234, outcome: processors.Permanent, code: "6",
			card: func() processors.CardDetails { c := visa(); c.Number = "4111111111111112"; return c }},
		{name: "wrong credentials", card: visa, cents: 1234, login: "someone-else", outcome: processors.Permanent, code: "E00007"},
		{name: "invalid job", cents: 1234, outcome: processors.Permanent, code: "invalid_job",
			card: func() processors.CardDetails { c := visa(); c.ExpirationDate = "2035-12"; return c }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{login: tc.login})
			job := cardJob(e, "att_"+strings.ReplaceAll(tc.name, " ", "_"), tc.cents, tc.card())
			res, err := e.proc.Process(context.Background(), job)
			if res.Outcome != tc.outcome || res.Code != tc.code {
				t.Fatalf("Process = %+v, %v; want outcome %s code %s", res, err, tc.outcome, tc.code)
			}
			if tc.message != "" && res.Message != tc.message {
				t.Errorf("Message = %q, want %q", res.Message, tc.message)
			}
			if tc.outcome.Final() && tc.outcome != processors.Permanent || tc.outcome == processors.Held {
				if err != nil {
					t.Errorf("err = %v, want nil for a processor answer", err)
				}
			} else {
				var pe *processors.Error
				if !errors.As(err, &pe) || pe.Outcome != tc.outcome {
					t.Errorf("err = %v, want *processors.Error with outcome %s", err, tc.outcome)
				}
			}
			if tc.hasTrans != (res.TransactionID != "") {
				t.Errorf("TransactionID = %q", res.TransactionID)
			}
			if res.RetryAfter != tc.retryIn {
				t.Errorf("RetryAfter = %v, want %v", res.RetryAfter, tc.retryIn)
			}
			if want := job.Card.Number[len(job.Card.Number)-4:]; res.Instrument.Kind != "card" || res.Instrument.LastFour != want || res.Instrument.Brand != "Visa" {
				t.Errorf("Instrument = %+v, want Visa ending %s", res.Instrument, want)
			}
			if got := e.sim.Charges(InvoiceNumber(job.AttemptID)); got != tc.charges {
				t.Errorf("charges = %d, want %d", got, tc.charges)
			}
		})
	}
}

// TestProcessSendsBillTo checks the guest charge's billing name and zip,
// and that the invoice number is the attempt's.
func TestProcessSendsBillTo(t *testing.T) {
	e := newEnv(t, envOptions{})
	job := cardJob(e, "att_billto", 5000, visa())
	if res, err := e.proc.Process(context.Background(), job); err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("Process = %+v, %v", res, err)
	}
	txns := e.sim.Transactions()
	if len(txns) != 1 {
		t.Fatalf("%d transactions", len(txns))
	}
	got := txns[0]
	if got.FirstName != "Ada King" || got.LastName != "Lovelace" || got.Zip != "46201" || got.AVSResultCode != "A" {
		t.Errorf("billTo = %q %q %q (AVS %s)", got.FirstName, got.LastName, got.Zip, got.AVSResultCode)
	}
	if got.InvoiceNumber != InvoiceNumber("att_billto") || len(got.InvoiceNumber) > 20 || got.AmountCents != 5000 {
		t.Errorf("invoice %q amount %d", got.InvoiceNumber, got.AmountCents)
	}
	if !got.CardCodeSent {
		t.Error("card code not sent")
	}
}

// TestProcessProfile charges a customer payment profile (payment_transfer).
func TestProcessProfile(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.sim.AddProfile("1001", "2002", anetsim.Profile{CardNumber: "5424000000000015", ExpirationDate: "2035-01", Zip: "46205"})

	res, err := e.proc.Process(context.Background(), profileJob(e, "att_profile", 4200, "1001", "2002"))
	if err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("Process = %+v, %v", res, err)
	}
	if res.Instrument != (processors.Instrument{Kind: "card", Brand: "Mastercard", LastFour: "0015"}) {
		t.Errorf("Instrument = %+v", res.Instrument)
	}
	if txn := e.sim.Transactions()[0]; txn.CustomerProfileID != "1001" || txn.PaymentProfileID != "2002" {
		t.Errorf("charged %+v", txn)
	}

	res, err = e.proc.Process(context.Background(), profileJob(e, "att_profile_missing", 4200, "1001", "9999"))
	if res.Outcome != processors.Permanent || res.Code != "E00040" || err == nil {
		t.Errorf("unknown profile: %+v, %v", res, err)
	}
}

// TestHeldThenResolved: a held charge stays Held until the merchant
// reviews it; Resolve then answers Succeeded or Declined with the same
// transaction.
func TestHeldThenResolved(t *testing.T) {
	for _, approve := range []bool{true, false} {
		e := newEnv(t, envOptions{})
		card := visa()
		card.Number = anetsim.ErrorCard
		job := cardJob(e, "att_held", 25300, card)
		res, err := e.proc.Process(context.Background(), job)
		if err != nil || res.Outcome != processors.Held || res.Code != "253" {
			t.Fatalf("Process = %+v, %v", res, err)
		}
		again, err := e.proc.Resolve(context.Background(), job)
		if err != nil || again.Outcome != processors.Held || again.TransactionID != res.TransactionID {
			t.Fatalf("Resolve before review = %+v, %v", again, err)
		}
		if err := e.sim.Review(res.TransactionID, approve); err != nil {
			t.Fatal(err)
		}
		final, err := e.proc.Resolve(context.Background(), job)
		want := processors.Succeeded
		if !approve {
			want = processors.Declined
		}
		if err != nil || final.Outcome != want || final.TransactionID != res.TransactionID {
			t.Fatalf("Resolve after review (approve=%v) = %+v, %v", approve, final, err)
		}
		if !approve && final.Code != "254" {
			t.Errorf("declined after review: code %q", final.Code)
		}
	}
}

// TestResolveNotFound: nothing was charged for an attempt, so Resolve
// says so with a Retryable "not_found".
func TestResolveNotFound(t *testing.T) {
	e := newEnv(t, envOptions{})
	res, err := e.proc.Resolve(context.Background(), cardJob(e, "att_never_sent", 100, visa()))
	if err != nil || res.Outcome != processors.Retryable || res.Code != "not_found" {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
}

// TestProcessRetryableTransport: a 5xx before processing and a refused
// connection are Retryable; the first is flagged outcome-unknown by the
// client because the request had been sent.
func TestProcessRetryableTransport(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.sim.Inject("createTransactionRequest", anetsim.FaultStatus5xx)
	job := cardJob(e, "att_503", 700, visa())
	res, err := e.proc.Process(context.Background(), job)
	var ae *Error
	if res.Outcome != processors.Retryable || res.Code != "http_503" || !errors.As(err, &ae) || !ae.OutcomeUnknown {
		t.Fatalf("Process = %+v, %v", res, err)
	}
	if n := e.sim.Charges(InvoiceNumber(job.AttemptID)); n != 0 {
		t.Fatalf("charges after 503 = %d", n)
	}
	res, err = e.proc.Process(context.Background(), redelivered(job, false))
	if err != nil || res.Outcome != processors.Succeeded || e.sim.Charges(InvoiceNumber(job.AttemptID)) != 1 {
		t.Fatalf("retry = %+v, %v", res, err)
	}

	client, err := NewClient(Config{Endpoint: "http://127.0.0.1:1/xml/v1/request.api", LoginID: "x", TransactionKey: "y", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res, err = NewProcessor(client, nil).Process(context.Background(), job)
	if res.Outcome != processors.Retryable || !errors.As(err, &ae) || ae.OutcomeUnknown {
		t.Fatalf("refused connection: %+v, %v (unknown=%v)", res, err, ae != nil && ae.OutcomeUnknown)
	}
}
