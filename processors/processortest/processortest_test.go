package processortest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
)

// fake is an in-memory card processor that keeps the contract unless bug
// names a way to break it.
type fake struct {
	bug string

	mu        sync.Mutex
	charges   map[string][]string // line item → transaction ids
	byAttempt map[string]string   // attempt → transaction id
	next      int
	transient bool // the next Process fails before charging
	unknown   bool // the next Process charges and loses its answer
}

type fakeResolver struct{ *fake }

func (f *fake) Name() string { return "FAKE" }

func (f *fake) Process(ctx context.Context, job processors.Job) (processors.Result, error) {
	inst := processors.Instrument{Kind: "card", Brand: "Visa"}
	if job.Card != nil {
		inst.LastFour = job.Card.Number[len(job.Card.Number)-4:]
		if f.bug == "last-six" {
			inst.LastFour = job.Card.Number[len(job.Card.Number)-6:]
		}
	}
	if job.Card == nil || job.Card.ExpirationDate == "01/20" {
		msg := "the card has expired"
		if f.bug == "leak" {
			msg += " (card " + job.Card.Number + ")"
		}
		if f.bug == "permanent-untyped" {
			return processors.Result{Outcome: processors.Permanent, Message: msg, Instrument: inst}, errors.New(msg)
		}
		return processors.Result{Outcome: processors.Permanent, Code: "8", Message: msg, Instrument: inst},
			&processors.Error{Outcome: processors.Permanent, Code: "8", Message: msg}
	}
	if f.bug == "racy" {
		// Looks for an earlier charge, then charges, without holding the
		// lock in between.
		f.mu.Lock()
		_, ok := f.byAttempt[job.AttemptID]
		f.mu.Unlock()
		if !ok {
			time.Sleep(20 * time.Millisecond)
			f.mu.Lock()
			f.charge(job)
			f.mu.Unlock()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.transient {
		f.transient = false
		if f.bug == "transient-charges" {
			f.charge(job)
		}
		return processors.Result{Outcome: processors.Retryable, Instrument: inst},
			&processors.Error{Outcome: processors.Retryable, Code: "503", Message: "busy"}
	}
	id, ok := f.byAttempt[job.AttemptID]
	switch {
	case ok && f.bug == "charge-again":
		id = f.charge(job)
	case ok && f.bug == "new-id":
		f.next++
		id = fmt.Sprint(f.next)
	case !ok:
		id = f.charge(job)
	}
	if f.unknown {
		f.unknown = false
		return processors.Result{}, errors.New("connection reset")
	}
	out := processors.Outcome(processors.Succeeded)
	if f.bug == "bad-outcome" {
		out = "ok"
	}
	return processors.Result{Outcome: out, TransactionID: id, Code: "1", Instrument: inst}, nil
}

func (f *fake) charge(job processors.Job) string {
	f.next++
	id := fmt.Sprint(f.next)
	f.charges[job.LineItemID] = append(f.charges[job.LineItemID], id)
	f.byAttempt[job.AttemptID] = id
	return id
}

func (f fakeResolver) Resolve(ctx context.Context, job processors.Job) (processors.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.byAttempt[job.AttemptID]
	if f.bug == "resolve-charges" && !ok {
		id, ok = f.charge(job), true
	}
	if !ok || f.bug == "resolve-retryable" {
		return processors.Result{Outcome: processors.Retryable, Code: "not_found"}, nil
	}
	return processors.Result{Outcome: processors.Succeeded, TransactionID: id,
		Instrument: processors.Instrument{Kind: "card", Brand: "Visa", LastFour: "1111"}}, nil
}

type fakeEnv struct {
	f *fake
	p processors.Processor
}

func (e fakeEnv) Processor() processors.Processor { return e.p }

func (e fakeEnv) Job(t *testing.T, attemptID string) processors.Job {
	return processors.Job{AttemptID: attemptID, LineItemID: "li_" + attemptID, Processor: "FAKE",
		PaymentType: processors.PaymentTypeDebit, AmountCents: 100, Delivery: 1,
		Card: &processors.CardDetails{Number: "4111111111111111", ExpirationDate: "12/35", CVV: "9753"}}
}

func (e fakeEnv) Effects(t *testing.T, job processors.Job) int {
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	return len(e.f.charges[job.LineItemID])
}

func fakeHarness(bug string) Harness {
	arm := func(set func(*fake)) func(*testing.T, Env, processors.Job) processors.Job {
		return func(t *testing.T, env Env, job processors.Job) processors.Job {
			f := env.(fakeEnv).f
			f.mu.Lock()
			set(f)
			f.mu.Unlock()
			return job
		}
	}
	return Harness{
		Setup: func(t *testing.T) Env {
			f := &fake{bug: bug, charges: map[string][]string{}, byAttempt: map[string]string{}}
			if bug == "no-resolver" || bug == "claims-no-resolver" {
				return fakeEnv{f, f}
			}
			return fakeEnv{f, fakeResolver{f}}
		},
		Want:          processors.Succeeded,
		TransactionID: true,
		Transient:     []Failure{{Name: "busy", Arm: arm(func(f *fake) { f.transient = true })}},
		Unknown:       []Failure{{Name: "reset", Arm: arm(func(f *fake) { f.unknown = true })}},
		Permanent: []Failure{{Name: "expired", Arm: func(t *testing.T, env Env, job processors.Job) processors.Job {
			c := *job.Card
			c.ExpirationDate = "01/20"
			job.Card = &c
			return job
		}}},
		NoResolver: bug == "no-resolver" || bug == "resolver-undeclared",
	}
}

// TestContractFakePasses: a processor that keeps the contract passes it, with or
// without a Resolver.
func TestContractFakePasses(t *testing.T) {
	t.Run("Resolver", func(t *testing.T) { Run(t, fakeHarness("")) })
	t.Run("NoResolver", func(t *testing.T) { Run(t, fakeHarness("no-resolver")) })
}

// TestContractBrokenFake runs the suite on the fake with the bug
// PROCESSORTEST_BUG names; TestContractCatchesBugs runs it in a child process
// and expects it to fail. Without the variable it runs nothing.
func TestContractBrokenFake(t *testing.T) {
	if bug := os.Getenv("PROCESSORTEST_BUG"); bug != "" {
		Run(t, fakeHarness(bug))
	}
}

// TestContractCatchesBugs: every part of the contract fails for a processor
// that breaks it, in the subtest that checks that part.
func TestContractCatchesBugs(t *testing.T) {
	for bug, subtest := range map[string]string{
		"charge-again":        "Redelivery",
		"new-id":              "Redelivery",
		"racy":                "ConcurrentDeliveries",
		"resolve-charges":     "Resolve/NeverProcessed",
		"resolve-retryable":   "UnknownOutcome/reset",
		"transient-charges":   "Transient/busy",
		"permanent-untyped":   "Permanent/expired",
		"leak":                "Permanent/expired",
		"last-six":            "Redelivery",
		"bad-outcome":         "Redelivery",
		"claims-no-resolver":  "Resolve",
		"resolver-undeclared": "Resolve",
	} {
		t.Run(bug, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestContractBrokenFake$", "-test.v")
			cmd.Env = append(os.Environ(), "PROCESSORTEST_BUG="+bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a processor with bug %s:\n%s", bug, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestContractBrokenFake/"+subtest+" ") {
				t.Fatalf("bug %s: subtest %s did not fail:\n%s", bug, subtest, out)
			}
		})
	}
}
