package intake

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/payrail/payrail/intake/validate"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// Codes of the executing routes.
const (
	codeNoProcessorConfigured = "payment_processor_not_configured"
	codeMissingHolderName     = "account_holder_name_required"
)

// paymentRequest is the normalized body of an executing route. Card and
// bank details take part in the request fingerprint only through its HMAC.
type paymentRequest struct {
	lineItemRequest
	PaymentType string                  `json:"payment_type"`
	Processor   string                  `json:"payment_processor_name"`
	ACH         *processors.ACHDetails  `json:"ach,omitempty"`
	Card        *processors.CardDetails `json:"card,omitempty"`
}

// executingFields reads the line item members an executing route shares:
// the payment starts PENDING, whatever the processor later decides.
func executingFields(o *object, now time.Time) lineItemRequest {
	req := commonLineItemFields(o, now, false, []string{store.StatusPending}, 100)
	req.Status = store.StatusPending
	return req
}

// parseGuestPayment reads POST .../payments/guest_payment.
func parseGuestPayment(o *object, now time.Time) (paymentRequest, *apiError) {
	req := paymentRequest{lineItemRequest: executingFields(o, now)}
	d, ok := o.child("payment_details")
	if !ok {
		if !o.has("payment_details") {
			o.require("payment_details")
		}
		o.finish()
		return req, o.p.err()
	}
	req.PaymentType, _ = d.enum("payment_type", processors.PaymentTypeACH, processors.PaymentTypeDebit)
	if !d.has("payment_type") {
		d.require("payment_type")
	}
	req.Processor, _ = d.enum("payment_processor_name", store.ProcessorCanopyNACHA, store.ProcessorAuthorizeNet)
	if !d.has("payment_processor_name") {
		d.require("payment_processor_name")
	}
	if want := processorFor(req.PaymentType); req.Processor != "" && want != "" && req.Processor != want {
		d.p.add(d.pointer("payment_processor_name"), "must be "+want+" for payment_type "+req.PaymentType)
	}
	switch req.PaymentType {
	case processors.PaymentTypeACH:
		req.ACH = achDetails(d)
	case processors.PaymentTypeDebit:
		req.Card = cardDetails(d, now)
	default:
		// Without a valid type the other members cannot be judged; mark
		// them read so they are not also reported as unknown.
		for name := range d.members {
			d.used[name] = true
		}
	}
	d.finish()
	o.finish()
	return req, o.p.err()
}

// processorFor is the processor SPEC §2 pairs with a payment type.
func processorFor(paymentType string) string {
	switch paymentType {
	case processors.PaymentTypeACH:
		return store.ProcessorCanopyNACHA
	case processors.PaymentTypeDebit:
		return store.ProcessorAuthorizeNet
	}
	return ""
}

func achDetails(d *object) *processors.ACHDetails {
	a := &processors.ACHDetails{}
	a.RoutingNumber, a.AccountNumber, a.AccountType = bankAccount(d)
	if v, ok := d.enum("standard_entry_class", "WEB", "PPD", "CCD", "TEL"); ok {
		a.StandardEntryClass = v
	} else if !d.has("standard_entry_class") {
		d.require("standard_entry_class")
	}
	a.Name = holderName(d, 22) // the NACHA individual name field
	return a
}

func cardDetails(d *object, now time.Time) *processors.CardDetails {
	c := &processors.CardDetails{}
	if v, ok := d.str("card_number"); ok {
		d.check("card_number", validate.CardNumber(v))
		c.Number = v
	} else {
		d.require("card_number")
	}
	if v, ok := d.str("expiration_date"); ok {
		_, _, err := validate.Expiry(v, now)
		d.check("expiration_date", err)
		c.ExpirationDate = v
	} else {
		d.require("expiration_date")
	}
	if v, ok := d.str("cvv"); ok {
		d.check("cvv", validate.CVV(v))
		c.CVV = v
	} else {
		d.require("cvv")
	}
	if v, ok := d.str("zip"); ok {
		d.check("zip", validate.ZIP(v))
		c.Zip = strings.ReplaceAll(v, "-", "")
	} else {
		d.require("zip")
	}
	c.Name = holderName(d, 50) // Authorize.Net billTo first + last name
	return c
}

func holderName(d *object, max int) string {
	v, ok := d.str("name")
	if !ok {
		return ""
	}
	v = strings.TrimSpace(v)
	if len(v) > max {
		d.p.add(d.pointer("name"), "must be at most "+strconv.Itoa(max)+" characters")
	}
	return v
}

// parsePaymentTransfer reads POST .../payments/payment_transfer and the
// deprecated POST .../payments. payment_type is a payrail extension that
// picks the method when the account has both; without it ACH is used if
// configured, else the card profile.
func parsePaymentTransfer(o *object, now time.Time) (paymentRequest, *apiError) {
	req := paymentRequest{lineItemRequest: executingFields(o, now)}
	req.PaymentType, _ = o.enum("payment_type", processors.PaymentTypeACH, processors.PaymentTypeDebit)
	o.finish()
	return req, o.p.err()
}

func (s *Server) guestPayment(w http.ResponseWriter, r *http.Request) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	req, aerr := parseGuestPayment(o, s.now())
	if aerr != nil {
		return aerr
	}
	return s.execute(w, r, req, "guest_payment")
}

func (s *Server) paymentTransfer(w http.ResponseWriter, r *http.Request) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	req, aerr := parsePaymentTransfer(o, s.now())
	if aerr != nil {
		return aerr
	}
	return s.execute(w, r, req, "payment_transfer")
}

// deprecatedPaymentsSince is the Deprecation header's value: RFC 9745
// wants a Structured Field Date (@ and Unix seconds), here 2026-11-23T00:00:00Z.
const deprecatedPaymentsSince = "@1795392000"

// deprecatedPayments is POST .../line_items/payments: payment_transfer
// under its old name, announcing its successor (RFC 9745, RFC 8288).
func (s *Server) deprecatedPayments(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Deprecation", deprecatedPaymentsSince)
	w.Header().Set("Link", `</accounts/`+r.PathValue("account_id")+`/line_items/payments/payment_transfer>; rel="successor-version"`)
	return s.paymentTransfer(w, r)
}

// execute stores the payment with its attempt and job in one transaction
// (the fast path publishes the job after commit) and answers with the
// PENDING line item, or with its current state for a replay.
func (s *Server) execute(w http.ResponseWriter, r *http.Request, req paymentRequest, origin string) error {
	key, aerr := idempotencyKey(r)
	if aerr != nil {
		return aerr
	}
	wait, aerr := preferWait(r)
	if aerr != nil {
		return aerr
	}
	p := principal(r)
	accountID := r.PathValue("account_id")
	hash := fingerprint(s.fingerprintKey, origin, accountID, req)
	acct, err := s.store.PaymentMethods(r.Context(), p.OrgID, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("account")
	}
	if err != nil {
		return err
	}
	job, aerr := jobFor(acct, req, origin)
	if aerr != nil {
		return aerr
	}
	id := req.LineItemID
	if id == "" {
		id = store.NewID("can_")
	}
	now := s.now().UTC()
	job.OrgID, job.AccountID, job.LineItemID = p.OrgID, accountID, id
	job.AttemptID, job.AmountCents, job.Origin, job.CreatedAt = store.NewID("att_"), req.AmountCents, origin, now
	job.EffectiveAt = now
	if req.EffectiveAt != nil {
		job.EffectiveAt = *req.EffectiveAt
	}
	msg, err := s.sealJob(job)
	if err != nil {
		return err
	}
	kind, brand, lastFour := instrument(job)
	li, created, err := s.store.CreatePayment(r.Context(), p.OrgID, store.NewPayment{
		LineItem: store.NewLineItem{
			AccountID: accountID, LineItemID: id, Type: store.TypePayment, Description: "Payment against the account",
			AmountCents: req.AmountCents, EffectiveAt: job.EffectiveAt, ExternalFields: req.ExternalFields,
			Origin: origin, Processor: job.Processor, RequestHash: hash, ClientID: p.ClientID, IdempotencyKey: key,
		},
		AttemptID: job.AttemptID, PaymentType: job.PaymentType,
		InstrumentKind: kind, InstrumentBrand: brand, InstrumentLastFour: lastFour, Job: msg,
	})
	if aerr := createError(err, id, key); aerr != nil {
		return aerr
	}
	if err != nil {
		return err
	}
	log := s.log.With("org_id", p.OrgID, "account_id", accountID, "line_item_id", li.LineItemID)
	if created {
		log.InfoContext(r.Context(), "payment accepted", "origin", origin, "processor", job.Processor,
			"attempt_id", job.AttemptID, "amount_cents", li.AmountCents)
	} else {
		log.InfoContext(r.Context(), "payment replayed")
	}
	if wait > 0 {
		li = s.awaitOutcome(r.Context(), p.OrgID, li, wait)
		w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
	}
	writeJSON(w, http.StatusOK, renderLineItem(li))
	return nil
}

// createError maps the store's create outcomes to API errors.
func createError(err error, id, key string) *apiError {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("account")
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, codeDuplicateLineItemID,
			"line item %s already exists on this account with a different request", id)
	case errors.Is(err, store.ErrIdempotencyKeyReused):
		return errorf(http.StatusConflict, codeIdempotencyKeyReused,
			"Idempotency-Key %q was already used for a different request", key)
	}
	return nil
}

// jobFor picks the processor and payment details: from the body for a
// guest payment, from the account's configuration for a transfer.
func jobFor(acct store.Account, req paymentRequest, origin string) (processors.Job, *apiError) {
	if origin == "guest_payment" {
		job := processors.Job{Processor: req.Processor, PaymentType: req.PaymentType, ACH: req.ACH, Card: req.Card}
		if job.ACH != nil && job.ACH.Name == "" {
			if acct.CustomerName == "" {
				return job, errorf(http.StatusUnprocessableEntity, codeMissingHolderName,
					"payment_details.name is required: the account has no customer name to put on the ACH entry")
			}
			job.ACH.Name = truncate(acct.CustomerName, 22)
		}
		if job.Card != nil && job.Card.Name == "" {
			job.Card.Name = truncate(acct.CustomerName, 50)
		}
		return job, nil
	}
	ach, debit := acct.Processors.ACH, acct.Processors.Debit
	useACH := ach.Processor == store.ProcessorCanopyNACHA && req.PaymentType != processors.PaymentTypeDebit
	useCard := debit.Processor == store.ProcessorAuthorizeNet && req.PaymentType != processors.PaymentTypeACH
	switch {
	case useACH:
		if acct.CustomerName == "" {
			return processors.Job{}, errorf(http.StatusUnprocessableEntity, codeMissingHolderName,
				"the account needs a customer_name to put on the ACH entry")
		}
		return processors.Job{Processor: store.ProcessorCanopyNACHA, PaymentType: processors.PaymentTypeACH,
			ACH: &processors.ACHDetails{RoutingNumber: ach.RoutingNumber, AccountNumber: ach.AccountNumber,
				AccountType: ach.AccountType, StandardEntryClass: "PPD", Name: truncate(acct.CustomerName, 22)}}, nil
	case useCard:
		return processors.Job{Processor: store.ProcessorAuthorizeNet, PaymentType: processors.PaymentTypeDebit,
			Profile: &processors.ProfileDetails{CustomerProfileID: debit.CustomerProfileID,
				PaymentProfileID: debit.PaymentProfileID}}, nil
	}
	what := "payment processor"
	if req.PaymentType != "" {
		what = "processor for " + req.PaymentType
	}
	return processors.Job{}, errorf(http.StatusUnprocessableEntity, codeNoProcessorConfigured,
		"account %s has no %s configured; set one with PUT /accounts/%s/payment_processor_config",
		acct.AccountID, what, acct.AccountID)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// sealJob builds the job's outbox message: the stored body never holds
// the CVV; the fast path's body does, sealed, and lives only in memory and
// in JetStream until the job is processed.
func (s *Server) sealJob(job processors.Job) (store.OutboxMessage, error) {
	fast, err := processors.EncodeJob(s.ring, job)
	if err != nil {
		return store.OutboxMessage{}, err
	}
	stored := fast
	if job.Card != nil && job.Card.CVV != "" {
		card := *job.Card
		card.CVV = ""
		job.Card = &card
		if stored, err = processors.EncodeJob(s.ring, job); err != nil {
			return store.OutboxMessage{}, err
		}
	}
	return store.OutboxMessage{
		MsgID:       "job_" + job.AttemptID,
		Payload:     stored,
		FastPayload: fast,
		Headers:     map[string]string{processors.HeaderOrgID: job.OrgID, processors.HeaderAttemptID: job.AttemptID},
	}, nil
}

// instrument is what the line item may show of the payment method.
func instrument(job processors.Job) (kind, brand, lastFour string) {
	switch {
	case job.Card != nil:
		return "card", cardBrand(job.Card.Number), store.LastFour(job.Card.Number)
	case job.ACH != nil:
		return "bank_account", "", store.LastFour(job.ACH.AccountNumber)
	}
	return "", "", "" // a card profile: the processor reports it
}

// cardBrand names the card network from the number's leading digits.
func cardBrand(pan string) string {
	prefix := func(n int) int {
		v, _ := strconv.Atoi(pan[:min(n, len(pan))])
		return v
	}
	switch {
	case strings.HasPrefix(pan, "4"):
		return "Visa"
	case prefix(2) >= 51 && prefix(2) <= 55, prefix(4) >= 2221 && prefix(4) <= 2720:
		return "Mastercard"
	case prefix(2) == 34 || prefix(2) == 37:
		return "American Express"
	case strings.HasPrefix(pan, "6011"), strings.HasPrefix(pan, "65"), prefix(3) >= 644 && prefix(3) <= 649:
		return "Discover"
	case prefix(4) >= 3528 && prefix(4) <= 3589:
		return "JCB"
	case prefix(2) == 36 || prefix(2) == 38 || prefix(3) >= 300 && prefix(3) <= 305:
		return "Diners Club"
	}
	return "Unknown"
}

// maxWait caps Prefer: wait (SPEC §2).
const maxWait = 30 * time.Second

// preferWait reads RFC 7240's Prefer: wait=N. Other preferences are
// ignored, as the RFC asks; an N above 30 is honoured as 30.
func preferWait(r *http.Request) (time.Duration, *apiError) {
	for _, h := range r.Header.Values("Prefer") {
		for _, pref := range strings.Split(h, ",") {
			name, val, ok := strings.Cut(strings.TrimSpace(pref), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
			if err != nil || n < 0 {
				return 0, invalid([]Detail{{Field: "/header/Prefer", Message: "wait must be a whole number of seconds from 0 to 30"}})
			}
			// Cap before converting: a huge N would overflow the Duration.
			return time.Duration(min(n, int(maxWait/time.Second))) * time.Second, nil
		}
	}
	return 0, nil
}

// awaitOutcome polls the line item until the processor has decided (or
// parked it: held for review, staged for settlement) or wait runs out.
func (s *Server) awaitOutcome(ctx context.Context, orgID string, li store.LineItem, wait time.Duration) store.LineItem {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	delay := 20 * time.Millisecond
	for !settledForNow(li) {
		select {
		case <-ctx.Done():
			return li
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
		cur, err := s.store.LineItem(ctx, orgID, li.AccountID, li.LineItemID)
		if err != nil {
			return li
		}
		li = cur
	}
	return li
}

func settledForNow(li store.LineItem) bool {
	if li.Status != store.StatusPending || li.Attempt == nil {
		return true
	}
	return !store.AttemptOpen(li.Attempt.Status)
}
