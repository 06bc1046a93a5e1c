package intake

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/payrail/payrail/intake/validate"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
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
	req := commonLineItemFields(o, now, false, []string{string(store.StatusPending)}, 100)
	req.Status = string(store.StatusPending)
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
	req.Processor, _ = d.enum("payment_processor_name", processors.CanopyNACHA, processors.AuthorizeNet)
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

// processorFor is the processor a payment type is executed by
// (docs/api.md).
func processorFor(paymentType string) string {
	switch paymentType {
	case processors.PaymentTypeACH:
		return processors.CanopyNACHA
	case processors.PaymentTypeDebit:
		return processors.AuthorizeNet
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
	a.Name = holderName(d, processors.MaxACHNameChars, true) // the NACHA individual name field
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
	c.Name = holderName(d, 50, false) // Authorize.Net billTo first + last name
	return c
}

// holderName reads payment_details.name, at most max characters (not
// bytes). For an ACH entry (ach) the name must also be writable in the
// NACHA individual name field: Latin letters are transliterated, but a
// name that folds to nothing or loses letters of another script is refused
// here rather than replaced or failing at the cutoff.
func holderName(d *object, max int, ach bool) string {
	v, ok := d.str("name")
	if !ok {
		return ""
	}
	v = strings.TrimSpace(v)
	switch {
	case utf8.RuneCountInString(v) > max:
		d.p.add(d.pointer("name"), "must be at most "+strconv.Itoa(max)+" characters")
	case ach && v != "":
		if _, ok := processors.ACHName(v); !ok {
			d.p.add(d.pointer("name"), "cannot be written as the account holder's name of a NACHA entry: "+
				"use Latin letters (accents are transliterated)")
		}
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
	return s.execute(w, r, req, payments.OriginGuestPayment)
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
	return s.execute(w, r, req, payments.OriginPaymentTransfer)
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

// execute hands the payment to the payments service and answers with the
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
	pay := payments.Payment{
		OrgID: p.OrgID, AccountID: accountID, LineItemID: req.LineItemID, Origin: origin,
		PaymentType: req.PaymentType, Processor: req.Processor, ACH: req.ACH, Card: req.Card,
		AmountCents: req.AmountCents, ExternalFields: req.ExternalFields,
		RequestHash: fingerprint(s.fingerprintKey, origin, accountID, req), ClientID: p.ClientID, IdempotencyKey: key,
	}
	if req.EffectiveAt != nil {
		pay.EffectiveAt = *req.EffectiveAt
	}
	li, created, err := s.payments.Submit(r.Context(), pay, s.now())
	if aerr := submitError(err, origin, accountID, req.LineItemID, key); aerr != nil {
		return aerr
	}
	if err != nil {
		return err
	}
	// The logger is built only when the line is written: at warn (payrail
	// bench) With's copy was a cost of every payment.
	if s.log.Enabled(r.Context(), slog.LevelInfo) {
		log := s.log.With("org_id", p.OrgID, "account_id", accountID, "line_item_id", li.LineItemID)
		if created {
			log.InfoContext(r.Context(), "payment accepted", "origin", origin, "processor", li.Processor,
				"attempt_id", li.Attempt.AttemptID, "amount_cents", li.AmountCents)
		} else {
			log.InfoContext(r.Context(), "payment replayed")
		}
	}
	if wait > 0 {
		li = s.awaitOutcome(r.Context(), p.OrgID, li, wait)
		w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
	}
	writeJSON(w, http.StatusOK, renderLineItem(li))
	return nil
}

// submitError maps the payment service's refusals to API errors.
func submitError(err error, origin, accountID, id, key string) *apiError {
	var np *payments.NoProcessorError
	switch {
	case errors.As(err, &np):
		what := "payment processor"
		if np.PaymentType != "" {
			what = "processor for " + np.PaymentType
		}
		return errorf(http.StatusUnprocessableEntity, codeNoProcessorConfigured,
			"account %s has no %s configured; set one with PUT /accounts/%s/payment_processor_config",
			accountID, what, accountID)
	case errors.Is(err, payments.ErrHolderNameRequired) && origin == payments.OriginPaymentTransfer:
		return errorf(http.StatusUnprocessableEntity, codeMissingHolderName,
			"the account needs a customer_name in Latin letters to put on the ACH entry")
	case errors.Is(err, payments.ErrHolderNameRequired):
		return errorf(http.StatusUnprocessableEntity, codeMissingHolderName,
			"payment_details.name is required: the account has no customer name in Latin letters to put on the ACH entry")
	}
	return createError(err, id, key)
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

// maxWait caps Prefer: wait (docs/api.md).
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
	for !payments.Decided(li) {
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
