// Package processortest is the contract every payrail processor passes,
// run as a conformance suite from the processor's own tests:
//
//	func TestContract(t *testing.T) {
//		processortest.Run(t, processortest.Harness{Setup: ..., Want: processors.Succeeded, ...})
//	}
//
// The contract, from processors.Processor and processors.Resolver:
//
//  1. Redelivery is harmless. The same job processed again (a worker died
//     after the processor acted and before the result was stored, a relay
//     republished it, two workers held it at once) has exactly one effect
//     at the processor, and every answer names the same outcome and the
//     same transaction.
//  2. Resolve tells the truth. After a call cut off mid-flight (the
//     processor acted, the answer was lost), Resolve answers the real
//     outcome, not Retryable, once the processor is reachable; for an
//     attempt the processor never saw it answers Retryable. It never
//     creates an effect. A processor without a Resolver says so in the
//     harness (NoResolver) and the suite checks it really has none.
//  3. Failures are classified. A transient failure yields Retryable (a
//     Result with that Outcome, a *processors.Error with that Outcome, or
//     any other error); a permanent one yields Permanent, and stays
//     Permanent when delivered again. Neither leaves an effect, so the
//     retry after a transient failure has exactly one.
//  4. Results are well formed and leak nothing. Every answer has a valid
//     outcome (an error and a Result's Outcome never disagree),
//     Instrument.LastFour holds at most the last four characters of the
//     card or account number, and no Code, Message, error text or
//     Instrument field holds the card number, the card code or the bank
//     account number.
//
// The suite drives each case in a fresh Env from Harness.Setup and counts
// effects with Env.Effects, so a processor that acts twice fails however
// it answers.
package processortest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
)

// Harness describes one processor to the suite.
type Harness struct {
	// Setup returns a fresh, isolated instance of the processor under
	// test for one subtest, with whatever it talks to (a simulator, a
	// database fixture). It registers its cleanup with t.
	Setup func(t *testing.T) Env

	// Want is the outcome a valid job from Env.Job gets: Succeeded for a
	// charged card, PendingSettlement for a staged ACH entry, Held.
	Want processors.Outcome
	// TransactionID says that a Want answer always names the processor's
	// transaction; the suite then requires a non-empty TransactionID.
	TransactionID bool

	// Transient failures: the processor is unreachable or busy, nothing
	// happens there, and a later delivery succeeds.
	Transient []Failure
	// Permanent failures: a job the processor refuses for good.
	Permanent []Failure
	// Unknown outcomes: the call reaches the processor and takes effect,
	// and its answer is lost (a connection cut after the work was done).
	// Required unless NoResolver is set.
	Unknown []Failure

	// NoResolver declares that the processor does not implement
	// processors.Resolver. The suite checks that it indeed does not, and
	// the Resolve cases then check only what Process must do.
	NoResolver bool
}

// Env is one instance of the processor under test.
type Env interface {
	// Processor is the processor under test.
	Processor() processors.Processor
	// Job returns a valid job for a new attempt attemptID (unique within
	// the Env), as a first delivery. It creates whatever must exist
	// before a worker would hand the job over (the line item, say).
	Job(t *testing.T, attemptID string) processors.Job
	// Effects counts what the processor did for job's payment: charges
	// taken for it, ACH entries staged for it. It must count every
	// effect of the payment, not only those under the job's own key, so
	// that a second effect under another key is seen.
	Effects(t *testing.T, job processors.Job) int
}

// Failure is one way to make a Process call fail.
type Failure struct {
	Name string
	// Arm prepares env so that the next Process call of the returned job
	// fails this way, and returns that job: job itself for a fault at the
	// processor, or a variant of it the processor must refuse.
	Arm func(t *testing.T, env Env, job processors.Job) processors.Job
	// Heal, when set, ends a failure that outlasts one call (a database
	// kept unreachable). The suite calls it right after the failing call.
	// Faults that strike one call only need none.
	Heal func(t *testing.T, env Env)
}

// callTimeout bounds every call the suite makes; a processor must give up
// on a hung dependency well before a worker's AckWait.
const callTimeout = 30 * time.Second

// Run runs the contract for the processor h describes.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if !checkHarness(t, h) {
		return
	}
	t.Run("Redelivery", func(t *testing.T) { redelivery(t, h) })
	t.Run("ConcurrentDeliveries", func(t *testing.T) { concurrentDeliveries(t, h) })
	t.Run("Resolve", func(t *testing.T) { resolve(t, h) })
	for _, f := range h.Unknown {
		t.Run("UnknownOutcome/"+f.Name, func(t *testing.T) { unknownOutcome(t, h, f) })
	}
	for _, f := range h.Transient {
		t.Run("Transient/"+f.Name, func(t *testing.T) { transient(t, h, f) })
	}
	for _, f := range h.Permanent {
		t.Run("Permanent/"+f.Name, func(t *testing.T) { permanent(t, h, f) })
	}
}

// checkHarness rejects a harness that would leave part of the contract
// untested.
func checkHarness(t *testing.T, h Harness) bool {
	t.Helper()
	ok := true
	bad := func(format string, args ...any) {
		t.Errorf("processortest: harness: "+format, args...)
		ok = false
	}
	if h.Setup == nil {
		bad("Setup is nil")
	}
	switch h.Want {
	case processors.Succeeded, processors.PendingSettlement, processors.Held:
	default:
		bad("Want = %q, want the outcome of an accepted job (succeeded, pending_settlement or held)", h.Want)
	}
	if len(h.Transient) == 0 {
		bad("no Transient failure: every processor can be unreachable")
	}
	if len(h.Permanent) == 0 {
		bad("no Permanent failure: every processor refuses some job for good")
	}
	if len(h.Unknown) == 0 && !h.NoResolver {
		bad("no Unknown failure: a Resolver is checked by resolving an unknown outcome")
	}
	for _, group := range [][]Failure{h.Transient, h.Permanent, h.Unknown} {
		for _, f := range group {
			if f.Name == "" || f.Arm == nil {
				bad("failure %q has no name or no Arm", f.Name)
			}
		}
	}
	return ok
}

// subject is one subtest's Env with the suite's bookkeeping.
type subject struct {
	t   *testing.T
	h   Harness
	env Env
	n   int
}

func setup(t *testing.T, h Harness) *subject {
	t.Helper()
	env := h.Setup(t)
	if env == nil || env.Processor() == nil {
		t.Fatal("processortest: Setup returned no processor")
	}
	return &subject{t: t, h: h, env: env}
}

// job returns a fresh valid job with an attempt id unique to the subtest.
func (s *subject) job() processors.Job {
	s.t.Helper()
	s.n++
	name := strings.NewReplacer("/", "_", " ", "_").Replace(s.t.Name())
	return s.env.Job(s.t, fmt.Sprintf("att_ct_%s_%d_%d", name, time.Now().UnixNano()%1e9, s.n))
}

// answer is one Process or Resolve call's return.
type answer struct {
	res processors.Result
	err error
	// outcome is what a worker makes of res and err.
	outcome processors.Outcome
}

func (a answer) String() string {
	return fmt.Sprintf("outcome %s (Result %+v, err %v)", a.outcome, a.res, a.err)
}

func (s *subject) process(job processors.Job) answer {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := s.env.Processor().Process(ctx, job)
	return s.check("Process", job, res, err)
}

// resolveJob is the job as the worker's sweep rebuilds it for Resolve:
// no payment details and no delivery count.
func resolveJob(job processors.Job) processors.Job {
	job.Card, job.ACH, job.Profile = nil, nil, nil
	job.Delivery = 0
	job.TransactionID = ""
	return job
}

func (s *subject) resolve(job processors.Job) answer {
	s.t.Helper()
	r, ok := s.env.Processor().(processors.Resolver)
	if !ok {
		s.t.Fatal("processortest: Resolve called on a processor without a Resolver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := r.Resolve(ctx, resolveJob(job))
	// The secrets to look for are the original job's, not the stripped one's.
	return s.check("Resolve", job, res, err)
}

func (s *subject) effects(job processors.Job) int {
	s.t.Helper()
	return s.env.Effects(s.t, job)
}

func (s *subject) wantEffects(job processors.Job, want int, when string) {
	s.t.Helper()
	if got := s.effects(job); got != want {
		s.t.Errorf("%s: %d effects at the processor, want %d", when, got, want)
	}
}

// redelivered is the job as its next delivery carries it: the delivery
// count up by one and, as a job republished by the relay, no card code
// (CVV never reaches PostgreSQL).
func redelivered(job processors.Job) processors.Job {
	job.Delivery++
	if job.Card != nil {
		c := *job.Card
		c.CVV = ""
		job.Card = &c
	}
	return job
}

// republished is the job delivered again as a first delivery (the relay
// published it again after the stream's dedup window), without card code.
func republished(job processors.Job) processors.Job {
	job = redelivered(job)
	job.Delivery = 1
	return job
}

// accepted checks a valid job's answer: the harness's Want outcome, a
// transaction id when the harness promises one.
func (s *subject) accepted(a answer, when string) bool {
	s.t.Helper()
	if a.outcome != s.h.Want || a.err != nil {
		s.t.Errorf("%s: %v; want %s without error", when, a, s.h.Want)
		return false
	}
	if s.h.TransactionID && a.res.TransactionID == "" {
		s.t.Errorf("%s: %v; want a transaction id", when, a)
		return false
	}
	return true
}

// same checks that b answers what a answered.
func (s *subject) same(a, b answer, when string) {
	s.t.Helper()
	if a.outcome != b.outcome || a.res.TransactionID != b.res.TransactionID {
		s.t.Errorf("%s: %v; want the first answer's outcome %s and transaction %q", when, b, a.outcome, a.res.TransactionID)
	}
	ia, ib := a.res.Instrument, b.res.Instrument
	if ia.Kind != ib.Kind || ia.LastFour != ib.LastFour || (ia.Brand != "" && ib.Brand != "" && ia.Brand != ib.Brand) {
		s.t.Errorf("%s: instrument %+v, want the first answer's %+v", when, ib, ia)
	}
}

// 1. The same job processed again has one effect and the same answer.
func redelivery(t *testing.T, h Harness) {
	s := setup(t, h)
	job := s.job()
	first := s.process(job)
	if !s.accepted(first, "first delivery") {
		return
	}
	s.wantEffects(job, 1, "after the first delivery")

	// The worker died before storing the result; the job comes back.
	again := s.process(redelivered(job))
	s.same(first, again, "redelivery")
	s.wantEffects(job, 1, "after a redelivery")

	// The relay published it again: a first delivery once more.
	repub := s.process(republished(job))
	s.same(first, repub, "republished as a first delivery")
	s.wantEffects(job, 1, "after a republished delivery")
}

// 1. Deliveries racing each other (an AckWait expired mid-call) have one
// effect; an answer other than Retryable is the same for all.
func concurrentDeliveries(t *testing.T, h Harness) {
	s := setup(t, h)
	job := s.job()
	const n = 4
	results := make([]struct {
		res processors.Result
		err error
	}, n)
	var wg sync.WaitGroup
	for i := range n {
		j := job
		if i%2 == 1 {
			j = redelivered(job)
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			results[i].res, results[i].err = s.env.Processor().Process(ctx, j)
		})
	}
	wg.Wait()
	var answers []answer
	for i := range results {
		answers = append(answers, s.check("Process (concurrent)", job, results[i].res, results[i].err))
	}
	if got := s.effects(job); got > 1 {
		t.Fatalf("%d concurrent deliveries made %d effects, want at most 1", n, got)
	}
	// Once the race is over a delivery gets the one answer.
	last := s.process(redelivered(redelivered(job)))
	if !s.accepted(last, "delivery after the concurrent ones") {
		return
	}
	s.wantEffects(job, 1, "after concurrent deliveries")
	for i, a := range answers {
		if a.outcome == processors.Retryable {
			continue // lost the race and was told to come back: harmless
		}
		s.same(last, a, fmt.Sprintf("concurrent delivery %d", i))
	}
}

// 2. Resolve answers the truth and creates nothing.
func resolve(t *testing.T, h Harness) {
	s := setup(t, h)
	_, isResolver := s.env.Processor().(processors.Resolver)
	if h.NoResolver {
		if isResolver {
			t.Fatalf("harness says NoResolver, but %T implements processors.Resolver", s.env.Processor())
		}
		return
	}
	if !isResolver {
		t.Fatalf("%T does not implement processors.Resolver; set Harness.NoResolver if that is intended", s.env.Processor())
	}

	t.Run("NeverProcessed", func(t *testing.T) {
		s := setup(t, h)
		job := s.job()
		a := s.resolve(job)
		if a.outcome != processors.Retryable {
			t.Errorf("Resolve of an attempt the processor never saw: %v; want retryable (nothing happened)", a)
		}
		s.wantEffects(job, 0, "after Resolve of an unprocessed attempt")
		// Resolve left nothing behind that stops the job.
		s.accepted(s.process(job), "Process after Resolve")
		s.wantEffects(job, 1, "after Process")
	})

	t.Run("AfterAnswer", func(t *testing.T) {
		s := setup(t, h)
		job := s.job()
		first := s.process(job)
		if !s.accepted(first, "Process") {
			return
		}
		for i := range 2 {
			r := s.resolve(job)
			s.same(first, r, fmt.Sprintf("Resolve %d", i+1))
		}
		s.wantEffects(job, 1, "after Resolve")
	})
}

// 2. After an unknown outcome, Resolve answers the real outcome and
// Process does not act again.
func unknownOutcome(t *testing.T, h Harness, f Failure) {
	s := setup(t, h)
	job := s.job()
	armed := f.Arm(t, s.env, job)
	cut := s.process(armed)
	if f.Heal != nil {
		f.Heal(t, s.env)
	}
	if cut.outcome != processors.Retryable && cut.outcome != processors.Held {
		t.Errorf("call whose answer was lost: %v; want retryable or held (the processor cannot know)", cut)
	}
	if got := s.effects(job); got != 1 {
		t.Fatalf("harness: the cut-off call left %d effects, want 1 (an unknown outcome is one that took effect)", got)
	}

	var resolved answer
	if !h.NoResolver {
		resolved = s.resolve(job)
		if !s.accepted(resolved, "Resolve after the unknown outcome") {
			return
		}
		s.same(resolved, s.resolve(job), "Resolve again")
		s.wantEffects(job, 1, "after Resolve")
	}

	next := s.process(redelivered(armed))
	if !s.accepted(next, "redelivery after the unknown outcome") {
		return
	}
	if !h.NoResolver {
		s.same(resolved, next, "redelivery after Resolve")
	}
	s.same(next, s.process(republished(armed)), "republished after the unknown outcome")
	s.wantEffects(job, 1, "after redeliveries")
}

// failOnce processes a fresh job with failure f armed, then heals it, and
// returns the subject, the job, the armed job and the answer.
func failOnce(t *testing.T, h Harness, f Failure) (*subject, processors.Job, processors.Job, answer) {
	s := setup(t, h)
	job := s.job()
	armed := f.Arm(t, s.env, job)
	a := s.process(armed)
	if f.Heal != nil {
		f.Heal(t, s.env)
	}
	return s, job, armed, a
}

// 3. A transient failure is Retryable, leaves nothing, and the retry acts
// once.
func transient(t *testing.T, h Harness, f Failure) {
	s, job, armed, a := failOnce(t, h, f)
	if a.outcome != processors.Retryable {
		t.Errorf("transient failure: %v; want retryable", a)
	}
	s.wantEffects(job, 0, "after a transient failure")
	if !h.NoResolver {
		if r := s.resolve(job); r.outcome != processors.Retryable {
			t.Errorf("Resolve after a transient failure: %v; want retryable (nothing happened)", r)
		}
		s.wantEffects(job, 0, "after Resolve of a transient failure")
	}
	s.accepted(s.process(redelivered(armed)), "retry after the transient failure")
	s.wantEffects(job, 1, "after the retry")
}

// 3. A permanent failure is Permanent, leaves nothing, and stays so.
func permanent(t *testing.T, h Harness, f Failure) {
	s, _, armed, a := failOnce(t, h, f)
	if a.outcome != processors.Permanent {
		t.Errorf("permanent failure: %v; want permanent", a)
	}
	s.wantEffects(armed, 0, "after a permanent failure")
	if again := s.process(redelivered(armed)); again.outcome != processors.Permanent {
		t.Errorf("permanent failure delivered again: %v; want permanent", again)
	}
	s.wantEffects(armed, 0, "after a permanent failure delivered again")
}
