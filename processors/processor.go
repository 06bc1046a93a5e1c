// Package processors defines what a payment processor is to payrail: the
// job a worker hands it, the typed outcome it answers with, and the
// registry that maps a line item's payment_processor_name to the code that
// executes it. Each processor lives in its own package below this one and
// registers itself with the worker from cmd/payrail; adding a processor is
// one package and one Register call.
package processors

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Processor executes payment jobs for one payment_processor_name.
//
// Delivery is at least once: Process may be called again for a job whose
// earlier call succeeded at the processor but whose result never reached
// the database (a crash in between). A processor must make that second call
// harmless: NACHA staging is keyed by the attempt id, Authorize.Net
// requests carry a deterministic invoice number inside the duplicate
// window. Job.Delivery says which delivery this is.
type Processor interface {
	// Name is the payment_processor_name this processor serves, for
	// example "CANOPY_NACHA" or "AUTHORIZE_NET".
	Name() string
	// Process executes the job. An error that is not a *Error is treated
	// as retryable; a Result with Outcome Retryable or Permanent is the
	// typed way to say the same.
	Process(ctx context.Context, job Job) (Result, error)
}

// Resolver is implemented by processors that can answer, after the fact,
// what became of an attempt whose outcome is unknown or still undecided:
// held-for-review card transactions, or a call cut off mid-flight. The
// worker polls Resolve for attempts left Held.
type Resolver interface {
	Resolve(ctx context.Context, job Job) (Result, error)
}

// Outcome classifies what a processor did with a job. It decides the line
// item's next state (docs/states.md) and whether the job is retried.
type Outcome string

const (
	// Succeeded: the money moved (card approved). Line item → VALID.
	Succeeded Outcome = "succeeded"
	// Declined: the processor refused the payment for good. → DECLINED.
	Declined Outcome = "declined"
	// PendingSettlement: accepted for later settlement (an ACH entry
	// staged for the next file). The line item stays PENDING and the
	// processor moves it later.
	PendingSettlement Outcome = "pending_settlement"
	// Held: the processor has not decided (held for review). The line
	// item stays PENDING and the worker polls the Resolver.
	Held Outcome = "held"
	// Retryable: nothing is known to have happened (network, 5xx,
	// processor busy). The job is delivered again after a backoff.
	Retryable Outcome = "retryable"
	// Permanent: the job can never succeed (bad credentials, a request
	// the processor's schema rejects). → INVALID at once, no retry.
	Permanent Outcome = "permanent"
)

// Final reports whether the outcome ends the attempt.
func (o Outcome) Final() bool { return o == Succeeded || o == Declined || o == Permanent }

// Result is a processor's answer for one job.
type Result struct {
	Outcome Outcome
	// TransactionID is the processor's id for the payment (Authorize.Net
	// transId, the NACHA entry's trace number once known).
	TransactionID string
	// Code and Message explain a decline, return or error in the
	// processor's terms (e.g. "2" / "This transaction has been declined.").
	// Never card or account numbers.
	Code    string
	Message string
	// Instrument is the masked payment method, kept on the attempt.
	Instrument Instrument
	// RetryAfter suggests when to try a Retryable job again; zero leaves
	// it to the worker's backoff.
	RetryAfter time.Duration
}

// Instrument is what may be stored and shown of a payment method.
type Instrument struct {
	Kind     string // "card" or "bank_account"
	Brand    string // card brand, e.g. "Visa"
	LastFour string
}

// Error is a typed processor failure; Process returns it (or a Result with
// the same Outcome) when it knows whether a retry can help.
type Error struct {
	Outcome Outcome // Retryable or Permanent
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s processor error", e.Outcome)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Registry maps payment_processor_name to its Processor. It is built once
// at start and read concurrently afterwards.
type Registry struct {
	byName map[string]Processor
}

// NewRegistry returns a registry holding ps. Two processors with one name
// is a programming error.
func NewRegistry(ps ...Processor) (*Registry, error) {
	r := &Registry{byName: map[string]Processor{}}
	for _, p := range ps {
		if _, dup := r.byName[p.Name()]; dup {
			return nil, fmt.Errorf("processors: %s registered twice", p.Name())
		}
		r.byName[p.Name()] = p
	}
	return r, nil
}

// Lookup returns the processor for name.
func (r *Registry) Lookup(name string) (Processor, bool) {
	p, ok := r.byName[name]
	return p, ok
}

// Names lists the registered processor names in order.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
