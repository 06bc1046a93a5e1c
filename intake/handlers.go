package intake

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
)

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// token answers POST /auth/token: JSON {client_id, client_secret}, or an
// OAuth2 client_credentials form (credentials in the form or Basic auth).
//
// Protections, in order:
//
//   - A client_id that payrail cannot have generated (not "cli_" and 20
//     lowercase base32 characters) is answered 401 like any wrong
//     credentials, before any database lookup or hashing.
//   - Failures are limited per source address (the peer's IP, or the
//     X-Forwarded-For client behind a trusted proxy) and per (client_id,
//     source) pair, never per client_id alone: whoever knows a client_id
//     (it is the actor of every event) and sends wrong secrets exhausts
//     their own address's budget, not the client's, and the client keeps
//     getting tokens from its own address. This is how Auth0's brute-force
//     protection works: it blocks the (user, IP) pair, not the user. Only
//     successful requests count against the client's own issuance bucket.
//   - At most TokenHashConcurrency secrets are hashed at once (argon2id
//     takes 19 MiB each); a request that cannot get a slot within
//     TokenHashWait is answered 503 with Retry-After.
//   - An unknown (well-formed) client_id and a disabled client are hashed
//     like a known one (against auth.DummyHash), so that the time taken
//     does not tell which ids exist.
func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	id, secret, aerr := readCredentials(r)
	if aerr != nil {
		return aerr
	}
	invalidClient := errorf(http.StatusUnauthorized, codeUnauthorized, "unknown client_id or wrong client_secret")
	source := sourceKey(r, s.trusted)
	if wait, blocked := s.sourceFailures.blocked(source); blocked {
		return &apiError{Status: http.StatusTooManyRequests, Code: codeRateLimited,
			Message: "too many failed token requests from this address", RetryAfter: wait}
	}
	if !auth.ValidClientID(id) {
		s.sourceFailures.charge(source)
		return invalidClient
	}
	pair := id + " " + source
	if wait, blocked := s.pairFailures.blocked(pair); blocked {
		return &apiError{Status: http.StatusTooManyRequests, Code: codeRateLimited,
			Message: "too many failed token requests for this client from this address", RetryAfter: wait}
	}
	if !s.hashGate.acquire(r.Context()) {
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeOverloaded,
			Message: "too many token requests are being checked; retry shortly", RetryAfter: 1}
	}
	client, err := s.store.ClientByID(r.Context(), id)
	var ok bool
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.checkSecret(auth.DummyHash, secret)
	case err != nil:
		s.hashGate.release()
		return err
	default:
		ok = s.checkSecret(client.SecretHash, secret) && !client.Disabled
	}
	s.hashGate.release()
	if !ok {
		s.sourceFailures.charge(source)
		s.pairFailures.charge(pair)
		return invalidClient
	}
	if wait, ok := s.issuance.allow(client.ClientID); !ok {
		return &apiError{Status: http.StatusTooManyRequests, Code: codeRateLimited,
			Message: "too many token requests for this client", RetryAfter: wait}
	}
	tok, err := s.signer.Issue(auth.Claims{OrgID: client.OrgID, ClientID: client.ClientID, Role: client.Role, Version: client.Version})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(s.signer.TTL().Seconds())})
	return nil
}

func readCredentials(r *http.Request) (id, secret string, aerr *apiError) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		r.Body = http.MaxBytesReader(nil, r.Body, maxBodyBytes)
		if err := r.ParseForm(); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return "", "", errorf(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "the body exceeds %d bytes", maxBodyBytes)
			}
			return "", "", errorf(http.StatusBadRequest, codeMalformedJSON, "the form body could not be parsed")
		}
		p := &problems{}
		if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
			p.add("/grant_type", "must be client_credentials")
		}
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		idField, secretField := "/client_id", "/client_secret"
		if bid, bsecret, ok := r.BasicAuth(); ok {
			id, secret = bid, bsecret
			idField, secretField = "/header/Authorization", "/header/Authorization"
		}
		switch {
		case id == "":
			p.add(idField, "is required")
		case !storable(id):
			p.add(idField, notStorable)
		}
		switch {
		case secret == "":
			p.add(secretField, "is required")
		case !storable(secret) && (secretField != idField || storable(id)):
			p.add(secretField, notStorable)
		}
		return id, secret, p.err()
	}
	o, aerr := readObject(r)
	if aerr != nil {
		return "", "", aerr
	}
	var ok bool
	if id, ok = o.str("client_id"); !ok || id == "" {
		o.require("client_id")
	}
	if secret, ok = o.str("client_secret"); !ok || secret == "" {
		o.require("client_secret")
	}
	o.finish()
	return id, secret, o.p.err()
}

func notFound(what string) *apiError {
	return errorf(http.StatusNotFound, codeNotFound, "%s not found", what)
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	// Storing payment methods is configuration, whichever route does it.
	if role := principal(r).Role; o.has("payment_processor_config") && !auth.Allows(role, auth.PermConfigure) {
		return errorf(http.StatusForbidden, codeForbidden, "role %s may not set payment_processor_config; create the account without it", role)
	}
	req, aerr := parseAccount(o)
	if aerr != nil {
		return aerr
	}
	org := principal(r).OrgID
	if req.Processors != nil {
		if err := s.verifyProfile(r.Context(), org, *req.Processors, "/payment_processor_config"); err != nil {
			return err
		}
	}
	hash := fingerprint(s.fingerprintKey, "accounts", req.AccountID, req)
	if req.AccountID == "" {
		req.AccountID = store.NewID("can_")
	}
	acct, created, err := s.store.CreateAccount(r.Context(), org, store.NewAccount{
		AccountID: req.AccountID, ProductID: req.ProductID, CustomerName: req.CustomerName,
		ExternalFields: req.ExternalFields, Processors: req.Processors, RequestHash: hash,
	})
	if errors.Is(err, store.ErrConflict) {
		return errorf(http.StatusConflict, codeDuplicateAccountID, "account %s already exists with different attributes", req.AccountID)
	}
	if err != nil {
		return err
	}
	if created {
		s.log.InfoContext(r.Context(), "account created", "org_id", org, "account_id", acct.AccountID)
	}
	writeJSON(w, http.StatusOK, renderAccount(acct))
	return nil
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) error {
	acct, err := s.store.Account(r.Context(), principal(r).OrgID, r.PathValue("account_id"))
	if errors.Is(err, store.ErrNotFound) {
		return notFound("account")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderAccount(acct))
	return nil
}

func (s *Server) putProcessorConfig(w http.ResponseWriter, r *http.Request) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	cfg, aerr := parseProcessorConfig(o)
	if aerr != nil {
		return aerr
	}
	if _, err := s.store.Account(r.Context(), principal(r).OrgID, r.PathValue("account_id")); errors.Is(err, store.ErrNotFound) {
		return notFound("account") // before asking the gateway about it
	}
	if err := s.verifyProfile(r.Context(), principal(r).OrgID, cfg, ""); err != nil {
		return err
	}
	acct, err := s.store.PutProcessorConfig(r.Context(), principal(r).OrgID, r.PathValue("account_id"), cfg)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("account")
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "payment processor config updated", "org_id", principal(r).OrgID,
		"account_id", acct.AccountID, "ach", cfg.ACH.Processor, "debit", cfg.Debit.Processor)
	writeJSON(w, http.StatusOK, renderAccount(acct))
	return nil
}

func (s *Server) putNachaConfig(w http.ResponseWriter, r *http.Request) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	cfg, aerr := parseNachaConfig(o)
	if aerr != nil {
		return aerr
	}
	out, err := s.store.PutNachaConfig(r.Context(), principal(r).OrgID, cfg)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "NACHA config updated", "org_id", principal(r).OrgID)
	writeJSON(w, http.StatusOK, renderNachaConfig(out))
	return nil
}

func (s *Server) getNachaConfig(w http.ResponseWriter, r *http.Request) error {
	out, err := s.store.NachaConfig(r.Context(), principal(r).OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("NACHA config")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderNachaConfig(out))
	return nil
}

func (s *Server) createPaymentRecord(w http.ResponseWriter, r *http.Request) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	req, aerr := parsePaymentRecord(o, s.now())
	if aerr != nil {
		return aerr
	}
	return s.createLineItem(w, r, req, "payment_record", store.TypePayment, "Payment against the account")
}

func (s *Server) createCharge(w http.ResponseWriter, r *http.Request) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	req, aerr := parseCharge(o, s.now())
	if aerr != nil {
		return aerr
	}
	return s.createLineItem(w, r, req, "charges", store.TypeCharge, "Charge against the account")
}

// idempotencyKey reads the optional Idempotency-Key header.
func idempotencyKey(r *http.Request) (string, *apiError) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return "", nil
	}
	if len(key) > 255 || strings.IndexFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) >= 0 {
		return "", invalid([]Detail{{Field: "/header/Idempotency-Key", Message: "must be 1 to 255 visible ASCII characters"}})
	}
	return key, nil
}

// createLineItem stores a non-executing line item (record or charge) and
// answers with it; a replay answers with the stored line item.
func (s *Server) createLineItem(w http.ResponseWriter, r *http.Request, req lineItemRequest, origin, typ, description string) error {
	key, aerr := idempotencyKey(r)
	if aerr != nil {
		return aerr
	}
	p := principal(r)
	accountID := r.PathValue("account_id")
	hash := fingerprint(s.fingerprintKey, origin, accountID, req)
	id := req.LineItemID
	if id == "" {
		id = store.NewID("can_")
	}
	var effective time.Time // zero: the store uses the creation time
	if req.EffectiveAt != nil {
		effective = *req.EffectiveAt
	}
	li, created, err := s.store.CreateLineItem(r.Context(), p.OrgID, store.NewLineItem{
		AccountID: accountID, LineItemID: id, Type: typ, Status: store.Status(req.Status), Description: description,
		AmountCents: req.AmountCents, EffectiveAt: effective, MerchantData: req.MerchantData,
		IssuerProcessorDetails: req.IssuerDetails, ExternalFields: req.ExternalFields, Origin: origin,
		RequestHash: hash, ClientID: p.ClientID, IdempotencyKey: key,
	})
	if aerr := createError(err, id, key); aerr != nil {
		return aerr
	}
	if err != nil {
		return err
	}
	if created {
		s.log.InfoContext(r.Context(), "line item created", "org_id", p.OrgID, "account_id", accountID,
			"line_item_id", li.LineItemID, "type", typ, "status", li.Status, "amount_cents", li.AmountCents)
	} else {
		s.log.InfoContext(r.Context(), "line item replayed", "org_id", p.OrgID, "account_id", accountID,
			"line_item_id", li.LineItemID)
	}
	writeJSON(w, http.StatusOK, renderLineItem(li))
	return nil
}

func (s *Server) updateLineItem(w http.ResponseWriter, r *http.Request) error {
	o, aerr := readObject(r)
	if aerr != nil {
		return aerr
	}
	req, aerr := parseUpdate(o)
	if aerr != nil {
		return aerr
	}
	p := principal(r)
	accountID, lineItemID := r.PathValue("account_id"), r.PathValue("line_item_id")
	li, err := s.payments.Edit(r.Context(), payments.Edit{OrgID: p.OrgID, AccountID: accountID, LineItemID: lineItemID,
		Status: req.Status, AmountCents: req.AmountCents, Actor: p.ClientID, Reason: "edited via PUT line item"})
	var te *store.TransitionError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("line item")
	case errors.As(err, &te):
		return errorf(http.StatusConflict, codeInvalidStateTransition, "cannot change line item %s: %s", lineItemID, te.Reason)
	case err != nil:
		return err
	}
	s.log.InfoContext(r.Context(), "line item updated", "org_id", p.OrgID, "account_id", accountID,
		"line_item_id", lineItemID, "status", li.Status, "amount_cents", li.AmountCents)
	writeJSON(w, http.StatusOK, renderLineItem(li))
	return nil
}

func (s *Server) getLineItem(w http.ResponseWriter, r *http.Request) error {
	li, err := s.store.LineItem(r.Context(), principal(r).OrgID, r.PathValue("account_id"), r.PathValue("line_item_id"))
	if errors.Is(err, store.ErrNotFound) {
		return notFound("line item")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderLineItem(li))
	return nil
}

type pagingJSON struct {
	StartingAfter *string `json:"starting_after"`
	EndingBefore  *string `json:"ending_before"`
	HasMore       bool    `json:"has_more"`
}

type listJSON struct {
	Results []canopy.LineItem `json:"results"`
	Paging  pagingJSON        `json:"paging"`
}

func (s *Server) listLineItems(w http.ResponseWriter, r *http.Request) error {
	org, account := principal(r).OrgID, r.PathValue("account_id")
	q, aerr := parseListQuery(r.URL.Query(), func(c string) (int64, bool) { return s.cursors.decode(org, account, c) })
	if aerr != nil {
		return aerr
	}
	q.MaxBytes = s.pageBytes
	items, more, err := s.store.ListLineItems(r.Context(), org, account, q)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("account")
	}
	if err != nil {
		return err
	}
	out := listJSON{Results: make([]canopy.LineItem, 0, len(items)), Paging: pagingJSON{HasMore: more}}
	for _, li := range items {
		out.Results = append(out.Results, renderLineItem(li))
	}
	if len(items) > 0 {
		last, first := s.cursors.encode(org, account, items[len(items)-1].Seq), s.cursors.encode(org, account, items[0].Seq)
		out.Paging.StartingAfter, out.Paging.EndingBefore = &last, &first
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// parseListQuery reads GET .../line_items parameters. Unknown parameters
// are refused rather than ignored: a filter payrail does not apply must
// not look applied.
func parseListQuery(v url.Values, decodeCursor func(string) (int64, bool)) (store.ListQuery, *apiError) {
	p := &problems{}
	q := store.ListQuery{Limit: 100}
	for name, values := range v {
		switch name {
		case "limit", "starting_after", "ending_before", "line_item_status", "line_item_type":
		default:
			p.add("/query/"+name, "is not a supported query parameter")
			continue
		}
		for _, val := range values {
			if !storable(val) {
				p.add("/query/"+name, notStorable)
				v.Del(name) // judged: the checks below see it as absent
				break
			}
		}
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			p.add("/query/limit", "must be an integer from 1 to 1000")
		} else {
			q.Limit = n
		}
	}
	if c := v.Get("starting_after"); c != "" {
		if seq, ok := decodeCursor(c); ok {
			q.StartingAfter = seq
		} else {
			p.add("/query/starting_after", "is not a cursor this API returned")
		}
	}
	if c := v.Get("ending_before"); c != "" {
		if seq, ok := decodeCursor(c); ok {
			q.EndingBefore = seq
		} else {
			p.add("/query/ending_before", "is not a cursor this API returned")
		}
	}
	if v.Get("starting_after") != "" && v.Get("ending_before") != "" {
		p.add("/query/ending_before", "cannot be combined with starting_after")
	}
	for _, s := range enumList(p, "line_item_status", v.Get("line_item_status"), allStatuses) {
		q.Statuses = append(q.Statuses, store.Status(s))
	}
	q.Types = enumList(p, "line_item_type", v.Get("line_item_type"), listTypes)
	return q, p.err()
}

func enumList(p *problems, name, raw string, allowed []string) []string {
	if raw == "" {
		return nil
	}
	var out []string
	for _, item := range strings.Split(raw, ",") {
		ok := false
		for _, a := range allowed {
			if item == a {
				ok = true
				break
			}
		}
		if !ok {
			p.add("/query/"+name, "values must be a comma-separated list of "+strings.Join(allowed, ", "))
			return nil
		}
		out = append(out, item)
	}
	return out
}
