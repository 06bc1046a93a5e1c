package authorizenet

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// clock is a settable clock shared by the simulator and the processor,
// so a test can step past the duplicate window.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a processor wired to a simulator over loopback HTTP.
type env struct {
	sim    *anetsim.Server
	url    string
	client *Client
	proc   *Processor
	clock  *clock
	logs   *syncBuffer
}

type envOptions struct {
	sim     anetsim.Options
	timeout time.Duration
	login   string
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	c := newClock()
	if o.sim.Now == nil {
		o.sim.Now = c.Now
	}
	sim, err := anetsim.New(o.sim)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	t.Cleanup(sim.Close) // runs first: releases hung handlers so ts.Close can return
	if o.timeout == 0 {
		o.timeout = 5 * time.Second
	}
	if o.login == "" {
		o.login = anetsim.DefaultLoginID
	}
	client, err := NewClient(Config{
		Endpoint: ts.URL + anetsim.Path, LoginID: o.login, TransactionKey: anetsim.DefaultTransactionKey,
		Timeout: o.timeout, HTTPClient: ts.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &env{sim: sim, url: ts.URL + anetsim.Path, client: client, proc: NewProcessor(client, log, WithClock(c.Now)), clock: c, logs: logs}
}

const (
	testPAN = "4111111111111111"
	testCVV = "9753"
)

func cardJob(e *env, attempt string, cents int64, card processors.CardDetails) processors.Job {
	return processors.Job{
		OrgID: "org_test", AccountID: "acct_test", LineItemID: "li_" + attempt, AttemptID: attempt,
		Processor: Name, PaymentType: processors.PaymentTypeDebit, Origin: "guest_payment",
		AmountCents: cents, CreatedAt: e.clock.Now(), EffectiveAt: e.clock.Now(), Delivery: 1, Card: &card,
	}
}

func visa() processors.CardDetails {
	return processors.CardDetails{Number: testPAN, ExpirationDate: "12/35", CVV: testCVV, Zip: "46201", Name: "Ada King Lovelace"}
}

func profileJob(e *env, attempt string, cents int64, customer, payment string) processors.Job {
	return processors.Job{
		OrgID: "org_test", AccountID: "acct_test", LineItemID: "li_" + attempt, AttemptID: attempt,
		Processor: Name, PaymentType: processors.PaymentTypeDebit, Origin: "payment_transfer",
		AmountCents: cents, CreatedAt: e.clock.Now(), EffectiveAt: e.clock.Now(), Delivery: 1,
		Profile: &processors.ProfileDetails{CustomerProfileID: customer, PaymentProfileID: payment},
	}
}

// redelivered is the job as the next delivery sees it. A redelivery
// that came through the relay has no CVV.
func redelivered(job processors.Job, dropCVV bool) processors.Job {
	job.Delivery++
	if dropCVV && job.Card != nil {
		c := *job.Card
		c.CVV = ""
		job.Card = &c
	}
	return job
}
