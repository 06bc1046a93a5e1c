package authorizenet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/payrail/payrail/processors"
)

// Name is the payment_processor_name this package serves.
const Name = processors.AuthorizeNet

// MaxDuplicateWindow is the longest duplicateWindow the API accepts.
const MaxDuplicateWindow = 8 * time.Hour

// Processor charges cards and customer payment profiles through
// Authorize.Net. It implements processors.Processor and
// processors.Resolver and is safe for concurrent use.
type Processor struct {
	client    *Client
	merchants *Merchants // when set, client is picked per job's org
	log       *slog.Logger
	window    time.Duration
	now       func() time.Time
	pageSize  int // transactions per page of a lookup; pageSize but in tests
}

// Option configures a Processor.
type Option func(*Processor)

// WithClock sets the clock used to judge an attempt's age (tests).
func WithClock(now func() time.Time) Option {
	return func(p *Processor) {
		if now != nil {
			p.now = now
		}
	}
}

// NewProcessor returns the AUTHORIZE_NET processor. A nil logger
// discards.
func NewProcessor(client *Client, log *slog.Logger, opts ...Option) *Processor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Processor{client: client, log: log, window: MaxDuplicateWindow, now: time.Now, pageSize: pageSize}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Name implements processors.Processor.
func (p *Processor) Name() string { return Name }

// Process charges the job's card (guest DEBIT) or payment profile
// (payment_transfer). A later delivery first looks for the charge an
// earlier one may have made; see the package documentation.
//
// Failures come back as a Result with Outcome Retryable or Permanent
// (carrying RetryAfter) and, with the same outcome, a *processors.Error.
func (p *Processor) Process(ctx context.Context, job processors.Job) (processors.Result, error) {
	p, res, err := p.forOrg(ctx, job)
	if p == nil {
		return res, err
	}
	if job.Reversal != nil {
		return p.reverse(ctx, job)
	}
	inst := instrumentOf(job)
	tr, err := buildRequest(job, strconv.Itoa(int(p.window/time.Second)))
	if err != nil {
		return fail(processors.Permanent, "invalid_job", err.Error(), inst, 0, err)
	}
	inv := tr.Order.InvoiceNumber
	log := p.log.With("attempt_id", job.AttemptID, "invoice", inv, "delivery", job.Delivery)

	if res, done, err := p.earlierDelivery(ctx, job, inv, inst, log, "charge"); done {
		return res, err
	}
	return p.charge(ctx, job, tr, inst, log)
}

// earlierDelivery looks, on a redelivery, for the transaction an earlier
// delivery may have made under invoice number inv (a charge or a refund)
// and died before its result was stored. done means the caller must not
// send: res is that transaction's outcome, or a retry because it could not
// be verified outside the duplicate window, where a second send would not
// be caught as a duplicate. Inside the window a failed look-up is left to
// the gateway's duplicate check (reason 11).
func (p *Processor) earlierDelivery(ctx context.Context, job processors.Job, inv string, inst processors.Instrument,
	log *slog.Logger, what string) (res processors.Result, done bool, err error) {
	if job.Delivery <= 1 {
		return processors.Result{}, false, nil
	}
	res, found, err := p.lookup(ctx, job, inv, inst)
	switch {
	case err == nil && found:
		log.Info("authorizenet: an earlier delivery already reached the gateway; not sending the "+what+" again",
			"trans_id", res.TransactionID, "outcome", res.Outcome)
		return res, true, nil
	case err != nil && !p.insideWindow(job):
		log.Warn("authorizenet: cannot verify an earlier "+what+" outside the duplicate window", "err", err)
		res, err := fail(processors.Retryable, "lookup_failed", "cannot verify an earlier delivery", inst, lookupRetryAfter, err)
		return res, true, err
	case err != nil:
		log.Warn("authorizenet: lookup failed; relying on the duplicate window", "what", what, "err", err)
	}
	return processors.Result{}, false, nil
}

func (p *Processor) charge(ctx context.Context, job processors.Job, tr TransactionRequest, inst processors.Instrument, log *slog.Logger) (processors.Result, error) {
	inv := tr.Order.InvoiceNumber
	resp, err := p.client.CreateTransaction(ctx, RefID(job.AttemptID), tr)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return fail(processors.Retryable, "", "", inst, 0, err)
		}
		if e.OutcomeUnknown {
			// The next delivery looks the charge up (and the duplicate
			// window stops a blind second charge).
			log.Warn("authorizenet: charge outcome unknown", "code", e.Code, "err", err)
		} else {
			log.Info("authorizenet: charge failed", "class", e.Class, "code", e.Code)
		}
		return fail(outcomeOf(e.Class), e.Code, e.Text, inst, e.RetryAfter, err)
	}
	tresp := resp.TransactionResponse
	d := tresp.Decide()
	inst = withAccount(inst, tresp.AccountNumber, tresp.AccountType)
	log = log.With("trans_id", d.TransID, "response_code", string(tresp.ResponseCode), "reason", d.ReasonCode)
	switch d.Class {
	case ClassApproved, ClassDeclined, ClassHeld:
		log.Info("authorizenet: charge answered", "class", d.Class)
		return processors.Result{
			Outcome: outcomeOf(d.Class), TransactionID: d.TransID,
			Code: d.ReasonCode, Message: d.ReasonText, Instrument: inst,
		}, nil
	case ClassDuplicate:
		log.Info("authorizenet: duplicate of an earlier delivery; resolving to the original")
		return p.resolveDuplicate(ctx, job, inv, d, inst, log)
	}
	log.Info("authorizenet: charge failed", "class", d.Class)
	err = &Error{Op: "createTransactionRequest", Class: d.Class, Code: d.ReasonCode, Text: d.ReasonText}
	return fail(outcomeOf(d.Class), d.ReasonCode, d.ReasonText, inst, d.RetryAfter, err)
}

// resolveDuplicate answers a reason-11 response with the original
// transaction's outcome: by the transId the response names, else by a
// lookup of the invoice number. It never charges.
//
// When neither can be read (the reporting API is off or failing), the
// duplicate answer itself decides: the gateway sends an original's
// authorization code only when the original was approved, and the
// duplicate check matched this attempt's invoice number, amount and card,
// so the original is this attempt's charge. Resolving it otherwise would
// leave a captured payment to die INVALID.
func (p *Processor) resolveDuplicate(ctx context.Context, job processors.Job, inv string, d Decision, inst processors.Instrument, log *slog.Logger) (processors.Result, error) {
	approved := d.TransID != "" && d.TransID != "0" && d.AuthCode != ""
	if d.TransID != "" && d.TransID != "0" {
		det, err := p.client.GetTransactionDetails(ctx, d.TransID)
		if err == nil {
			if det.Order == nil || det.Order.InvoiceNumber != inv {
				err := fmt.Errorf("transaction %s is not this attempt's (invoice %s)", d.TransID, inv)
				return fail(processors.Permanent, "duplicate_mismatch", "the duplicate's original belongs to another invoice", inst, 0, err)
			}
			if res, ok := p.fromDetails(det, inst); ok {
				return res, nil
			}
			// The original failed without charging; the duplicate check
			// will refuse identical requests until its window passes.
			return fail(processors.Retryable, string(det.ResponseReasonCode), "original transaction failed: "+redact(det.ResponseReasonDescription),
				inst, transientRetryAfter, errors.New("duplicate of a failed transaction"))
		}
		log.Warn("authorizenet: details of the original failed; looking it up by invoice", "err", err)
	}
	res, found, err := p.lookup(ctx, job, inv, inst)
	if err == nil && found {
		return res, nil
	}
	if approved {
		log.Warn("authorizenet: original of a duplicate cannot be read; resolving from the duplicate answer",
			"trans_id", d.TransID, "err", err)
		return processors.Result{Outcome: processors.Succeeded, TransactionID: d.TransID, Code: "1",
			Message: "approved (original of a duplicate request)", Instrument: inst}, nil
	}
	if err != nil {
		return fail(processors.Retryable, "lookup_failed", "cannot look up the original transaction", inst, lookupRetryAfter, err)
	}
	// Reported as a duplicate but not listed yet (the original may still
	// be in flight): ask again later, never charge.
	err = errors.New("duplicate reported but the original transaction is not listed yet")
	return fail(processors.Retryable, reasonDuplicate, err.Error(), inst, lookupRetryAfter, err)
}

// Resolve answers what became of an attempt: the outcome of its
// transaction when one exists (Held while still under review), or
// Outcome Retryable with Code "not_found" when Authorize.Net has no
// transaction for it, meaning nothing was charged and Process may run
// again.
//
// When the job carries the transaction id an earlier answer gave (a held
// attempt's, which the worker polls), that transaction's details are read
// with one call. The invoice lookup, which pages through the unsettled
// list and the settled batches, runs only without a transaction id, or
// when the gateway does not know the id or it names another invoice.
func (p *Processor) Resolve(ctx context.Context, job processors.Job) (processors.Result, error) {
	p, res, err := p.forOrg(ctx, job)
	if p == nil {
		return res, err
	}
	if job.Reversal != nil {
		return p.resolveReversal(ctx, job)
	}
	inst := instrumentOf(job)
	if job.AttemptID == "" {
		err := errors.New("job has no attempt id")
		return fail(processors.Permanent, "invalid_job", err.Error(), inst, 0, err)
	}
	inv := InvoiceNumber(job.AttemptID)
	if id := job.TransactionID; id != "" && id != "0" {
		res, done, err := p.resolveByID(ctx, job, id, inv, inst)
		if done {
			return res, err
		}
	}
	res, found, err := p.lookup(ctx, job, inv, inst)
	if err != nil {
		return fail(processors.Retryable, "lookup_failed", "cannot look up the attempt's transaction", inst, lookupRetryAfter, err)
	}
	if !found {
		return processors.Result{Outcome: processors.Retryable, Code: "not_found",
			Message: "Authorize.Net has no transaction for this attempt; nothing was charged", Instrument: inst}, nil
	}
	p.log.Info("authorizenet: resolved attempt", "attempt_id", job.AttemptID, "invoice", inv,
		"trans_id", res.TransactionID, "outcome", res.Outcome)
	return res, nil
}

// lookupRetryAfter is the delay asked for after a lookup of an earlier
// delivery's charge failed (or did not list it yet). Such failures are
// usually brief (the reporting API was slow, the transaction not indexed
// yet), and the payment waits on nothing else: the worker's own backoff
// (1 s, 5 s, 15 s, 30 s…) applies when it is longer, so the first retries
// come within 15 s instead of a minute each.
const lookupRetryAfter = 10 * time.Second

// resolveByID reads the attempt's known transaction. done is false when
// the invoice lookup must decide instead: the id is unknown to the
// gateway or belongs to another invoice.
func (p *Processor) resolveByID(ctx context.Context, job processors.Job, id, inv string, inst processors.Instrument) (processors.Result, bool, error) {
	log := p.log.With("attempt_id", job.AttemptID, "invoice", inv, "trans_id", id)
	det, err := p.client.GetTransactionDetails(ctx, id)
	switch {
	case IsNotFound(err):
		log.Warn("authorizenet: the attempt's transaction id is unknown to the gateway; looking it up by invoice")
		return processors.Result{}, false, nil
	case err != nil:
		res, err := fail(processors.Retryable, "lookup_failed", "cannot read the attempt's transaction", inst, lookupRetryAfter, err)
		return res, true, err
	case det.Order == nil || det.Order.InvoiceNumber != inv:
		log.Error("authorizenet: the attempt's transaction id names another invoice; looking it up by invoice")
		return processors.Result{}, false, nil
	}
	res, ok := p.fromDetails(det, inst)
	if !ok {
		// Failed without charging: nothing to wait for.
		return processors.Result{Outcome: processors.Retryable, Code: "not_found",
			Message: "the attempt's transaction failed; nothing was charged", Instrument: inst}, true, nil
	}
	if res.Outcome != processors.Held {
		log.Info("authorizenet: resolved attempt", "outcome", res.Outcome)
	}
	return res, true, nil
}

// insideWindow reports whether every earlier delivery of job was sent
// within the duplicate window, judged from the intake time (earlier than
// any send, so the estimate errs on the safe side). A margin covers clock
// skew between payrail and the gateway.
func (p *Processor) insideWindow(job processors.Job) bool {
	const margin = 5 * time.Minute
	return !job.CreatedAt.IsZero() && p.now().Sub(job.CreatedAt) < p.window-margin
}

func outcomeOf(c Class) processors.Outcome {
	switch c {
	case ClassApproved:
		return processors.Succeeded
	case ClassDeclined:
		return processors.Declined
	case ClassHeld:
		return processors.Held
	case ClassPermanent:
		return processors.Permanent
	}
	return processors.Retryable
}

// fail builds the pair Process returns for a failure.
func fail(o processors.Outcome, code, msg string, inst processors.Instrument, after time.Duration, err error) (processors.Result, error) {
	return processors.Result{Outcome: o, Code: code, Message: msg, Instrument: inst, RetryAfter: after},
		&processors.Error{Outcome: o, Code: code, Message: msg, Err: err}
}
