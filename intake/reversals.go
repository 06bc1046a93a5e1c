package intake

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
)

// codeReversalNotSupported: the original's processor cannot reverse it.
const codeReversalNotSupported = "reversal_not_supported"

// reversalRequest is the normalized body of a reversal route. The path's
// original is part of the fingerprint through the origin.
type reversalRequest struct {
	OriginalLineItemID string                `json:"original_line_item_id"`
	ExternalFields     []store.ExternalField `json:"external_fields"`
}

// parseReversal reads the body of POST .../payment_reversals/{id} and
// .../charge_reversals/{id}: Canopy's {external_fields}.
func parseReversal(o *object, original string) (reversalRequest, *apiError) {
	req := reversalRequest{OriginalLineItemID: original, ExternalFields: externalFields(o, 100)}
	o.finish()
	return req, o.p.err()
}

func (s *Server) paymentReversal(w http.ResponseWriter, r *http.Request) error {
	return s.reverse(w, r, payments.ReversePayment)
}

func (s *Server) chargeReversal(w http.ResponseWriter, r *http.Request) error {
	return s.reverse(w, r, payments.ReverseCharge)
}

// reverse records the reversal of the path's line item and answers with
// the reversal: VALID for a ledger-only original, PENDING while a
// processor gives the money back (Prefer: wait waits for it). A second
// reversal of the same original answers with the first.
func (s *Server) reverse(w http.ResponseWriter, r *http.Request, kind string) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	original := r.PathValue("line_item_id")
	req, aerr := parseReversal(o, original)
	if aerr != nil {
		return aerr
	}
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
	li, created, err := s.payments.Reverse(r.Context(), payments.Reversal{
		OrgID: p.OrgID, AccountID: accountID, OriginalLineItemID: original, Kind: kind,
		ExternalFields: req.ExternalFields, MayExecute: auth.Allows(p.Role, auth.PermExecute),
		RequestHash: fingerprint(s.fingerprintKey, kind, accountID, req), ClientID: p.ClientID, IdempotencyKey: key,
	}, s.now())
	if aerr := reverseError(err, p.Role, original, key); aerr != nil {
		return aerr
	}
	if err != nil {
		return err
	}
	log := s.log.With("org_id", p.OrgID, "account_id", accountID, "line_item_id", li.LineItemID, "original_line_item_id", original)
	if created {
		log.InfoContext(r.Context(), "reversal accepted", "type", li.Type, "status", li.Status,
			"processor", li.Processor, "amount_cents", li.AmountCents)
	} else {
		log.InfoContext(r.Context(), "reversal replayed", "status", li.Status)
	}
	if wait > 0 {
		li = s.awaitOutcome(r.Context(), p.OrgID, li, wait)
		w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
	}
	writeJSON(w, http.StatusOK, renderLineItem(li))
	return nil
}

// reverseError maps the refusals of payments.Reverse to API errors.
func reverseError(err error, role, original, key string) *apiError {
	var te *store.TransitionError
	var unsupported *payments.UnsupportedReversalError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return notFound("line item")
	case errors.As(err, &te):
		return errorf(http.StatusConflict, codeInvalidStateTransition, "cannot reverse line item %s: %s", original, te.Reason)
	case errors.Is(err, payments.ErrReversalNotPermitted):
		return errorf(http.StatusForbidden, codeForbidden,
			"role %s may not reverse %s: it was executed by a processor, and reversing it moves money", role, original)
	case errors.As(err, &unsupported):
		return errorf(http.StatusUnprocessableEntity, codeReversalNotSupported,
			"line item %s was executed by %s, which payrail cannot reverse yet; nothing was recorded", original, unsupported.Processor)
	case errors.Is(err, store.ErrIdempotencyKeyReused):
		return errorf(http.StatusConflict, codeIdempotencyKeyReused,
			"Idempotency-Key %q was already used for a different request", key)
	}
	return nil
}
