package intake

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet"
)

// Error codes of the Authorize.Net routes and checks.
const (
	codeAuthorizeNetNotConfigured       = "authorize_net_not_configured"
	codeAuthorizeNetCredentialsRejected = "authorize_net_credentials_rejected"
	codeAuthorizeNetUnavailable         = "authorize_net_unavailable"
)

// AuthorizeNet is what the API asks of Authorize.Net: whether a customer
// payment profile exists under an org's merchant login (the org's own
// credentials, else the default), before an account may store it.
// *authorizenet.Merchants implements it.
type AuthorizeNet interface {
	// VerifyProfile answers nil when the profile exists under orgID's
	// merchant; errors are those of authorizenet.Merchants.VerifyProfile.
	VerifyProfile(ctx context.Context, orgID, customerProfileID, paymentProfileID string) error
	// Forget drops what is cached of orgID's credentials.
	Forget(orgID string)
}

// verifyTimeout bounds the gateway call behind an account write.
const verifyTimeout = 15 * time.Second

// verifyProfile checks an account's AUTHORIZE_NET profile against the
// org's merchant. prefix is the JSON pointer of the processor config in
// the body ("" on PUT, "/payment_processor_config" on POST /accounts).
func (s *Server) verifyProfile(ctx context.Context, org string, cfg store.ProcessorConfig, prefix string) error {
	if cfg.Debit.Processor != processors.AuthorizeNet {
		return nil
	}
	if s.anet == nil {
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeAuthorizeNetUnavailable,
			Message: "this API has no Authorize.Net client to verify the payment profile with", RetryAfter: 30}
	}
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	err := s.anet.VerifyProfile(ctx, org, cfg.Debit.CustomerProfileID, cfg.Debit.PaymentProfileID)
	var ce *authorizenet.CredentialsError
	var ae *authorizenet.Error
	switch {
	case err == nil:
		return nil
	case authorizenet.IsNotFound(err):
		return invalid([]Detail{{Field: prefix + "/debit/authorize_net_config/payment_profile_id",
			Message: "no such customer payment profile under customer profile " + cfg.Debit.CustomerProfileID +
				" for this org's Authorize.Net merchant"}})
	case errors.Is(err, authorizenet.ErrNotConfigured):
		return errorf(http.StatusUnprocessableEntity, codeAuthorizeNetNotConfigured,
			"this org has no Authorize.Net credentials: set them with PUT /organization/authorize_net_config")
	case authorizenet.IsCredentialError(err):
		return errorf(http.StatusUnprocessableEntity, codeAuthorizeNetCredentialsRejected,
			"Authorize.Net refused this org's credentials; correct them with PUT /organization/authorize_net_config")
	case errors.As(err, &ce) && !ce.Temporary:
		return err // logged as a 500: a sealed key that does not open is an operator's problem
	case errors.As(err, &ae) && !ae.Retryable():
		return err
	}
	s.log.WarnContext(ctx, "Authorize.Net unreachable while verifying a payment profile", "org_id", org, "err", err)
	retry := 10
	if ae != nil && ae.RetryAfter > 0 {
		retry = int(math.Ceil(ae.RetryAfter.Seconds()))
	}
	return &apiError{Status: http.StatusServiceUnavailable, Code: codeAuthorizeNetUnavailable,
		Message: "Authorize.Net could not be reached to verify the payment profile; try again later", RetryAfter: retry}
}

type authorizeNetConfigJSON struct {
	APILoginID             string `json:"api_login_id"`
	TransactionKeyLastFour string `json:"transaction_key_last_four"`
	UpdatedAt              string `json:"updated_at"`
}

func renderAuthorizeNetConfig(c store.AuthorizeNetConfig) authorizeNetConfigJSON {
	return authorizeNetConfigJSON{APILoginID: c.APILoginID, TransactionKeyLastFour: c.TransactionKeyLast,
		UpdatedAt: formatTime(c.UpdatedAt)}
}

// parseAuthorizeNetConfig reads PUT /organization/authorize_net_config.
// The limits are merchantAuthenticationType's: a login id of at most 25
// and a transaction key of at most 16 characters.
func parseAuthorizeNetConfig(o *object) (store.AuthorizeNetConfig, *apiError) {
	var c store.AuthorizeNetConfig
	c.APILoginID = credentialText(o, "api_login_id", 25)
	c.TransactionKey = credentialText(o, "transaction_key", 16)
	o.finish()
	return c, o.p.err()
}

func credentialText(o *object, name string, max int) string {
	v, ok := o.str(name)
	if !ok {
		if !o.has(name) {
			o.require(name)
		}
		return ""
	}
	switch {
	case v == "" || len(v) > max:
		o.p.add(o.pointer(name), "must be 1 to "+strconv.Itoa(max)+" characters")
	case indexNotVisibleASCII(v) >= 0:
		o.p.add(o.pointer(name), "must be visible ASCII characters")
	}
	return v
}

func indexNotVisibleASCII(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return i
		}
	}
	return -1
}

func (s *Server) putAuthorizeNetConfig(w http.ResponseWriter, r *http.Request) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	cfg, aerr := parseAuthorizeNetConfig(o)
	if aerr != nil {
		return aerr
	}
	org := principal(r).OrgID
	out, err := s.store.PutAuthorizeNetConfig(r.Context(), org, cfg)
	if err != nil {
		return err
	}
	if s.anet != nil {
		s.anet.Forget(org)
	}
	s.log.InfoContext(r.Context(), "Authorize.Net config updated", "org_id", org, "api_login_id", out.APILoginID)
	writeJSON(w, http.StatusOK, renderAuthorizeNetConfig(out))
	return nil
}

func (s *Server) getAuthorizeNetConfig(w http.ResponseWriter, r *http.Request) error {
	out, err := s.store.AuthorizeNetConfig(r.Context(), principal(r).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("Authorize.Net config")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderAuthorizeNetConfig(out))
	return nil
}
