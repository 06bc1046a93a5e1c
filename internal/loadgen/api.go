package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// API is a payrail API as an API client sees it: it gets an access token
// with the client's credentials (POST /auth/token) and renews it before
// it expires.
type API struct {
	base         string // http://host:port, no trailing slash
	account      string
	clientID     string
	clientSecret string
	hc           *http.Client
	expiry       string // MM/YY of the test card

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// NewAPI returns a client of the API at baseURL that pays into account.
// conns bounds the idle keep-alive connections kept (set it to the run's
// concurrency, or each burst opens new connections).
func NewAPI(baseURL, account, clientID, clientSecret string, conns int) (*API, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loadgen: API URL %q: want http(s)://host:port", baseURL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns + 16
	tr.MaxIdleConnsPerHost = conns + 16
	return &API{
		base: u.Scheme + "://" + u.Host + u.Path, account: account, clientID: clientID, clientSecret: clientSecret,
		hc:     &http.Client{Transport: tr, Timeout: time.Minute},
		expiry: time.Now().UTC().AddDate(2, 0, 0).Format("01/06"),
	}, nil
}

// Close releases the idle connections.
func (a *API) Close() { a.hc.CloseIdleConnections() }

// accessToken returns a token, asking for one when there is none or the
// current one is past half its life.
func (a *API) accessToken(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && time.Now().Before(a.renewAt) {
		return a.token, nil
	}
	body, _ := json.Marshal(map[string]string{"client_id": a.clientID, "client_secret": a.clientSecret})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/auth/token", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("loadgen: get an access token: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("loadgen: get an access token: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("loadgen: read the access token: %w", errors.Join(err, errors.New("no access_token")))
	}
	a.token = tok.AccessToken
	a.renewAt = time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second / 2)
	return a.token, nil
}

// Check gets a token, so bad credentials fail a run before it starts.
func (a *API) Check(ctx context.Context) error {
	_, err := a.accessToken(ctx)
	return err
}

// paymentBody is a guest payment of kind. The card is the simulator's
// approving Visa (zip 46282 would decline); the bank account is the one
// payrail dev prints.
func (a *API) paymentBody(kind Kind, lineItemID string, amountCents int64) []byte {
	var details map[string]string
	switch kind {
	case ACH:
		details = map[string]string{"payment_type": "ACH", "payment_processor_name": "CANOPY_NACHA",
			"bank_account_number": "123456789", "bank_routing_number": "021000021",
			"standard_entry_class": "WEB", "name": "Bench Customer"}
	default:
		details = map[string]string{"payment_type": "DEBIT", "payment_processor_name": "AUTHORIZE_NET",
			"card_number": "4007000000027", "expiration_date": a.expiry, "cvv": "123", "zip": "12345"}
	}
	b, _ := json.Marshal(map[string]any{"line_item_id": lineItemID, "original_amount_cents": amountCents,
		"payment_details": details})
	return b
}

// Submit implements Target with POST …/payments/guest_payment.
func (a *API) Submit(ctx context.Context, kind Kind, lineItemID string, amountCents int64) (int, error) {
	token, err := a.accessToken(ctx)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		a.base+"/accounts/"+url.PathEscape(a.account)+"/line_items/payments/guest_payment",
		bytes.NewReader(a.paymentBody(kind, lineItemID, amountCents)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	// Drain so the connection is reused; the line item as created tells
	// the run nothing it does not know.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// LineItem reads one line item's outcome (GET …/line_items/{id}).
func (a *API) LineItem(ctx context.Context, lineItemID string) (Outcome, error) {
	token, err := a.accessToken(ctx)
	if err != nil {
		return Outcome{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		a.base+"/accounts/"+url.PathEscape(a.account)+"/line_items/"+url.PathEscape(lineItemID), nil)
	if err != nil {
		return Outcome{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return Outcome{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return Outcome{}, fmt.Errorf("loadgen: GET line item %s: HTTP %s", lineItemID, strconv.Itoa(resp.StatusCode))
	}
	var li lineItemJSON
	if err := json.NewDecoder(resp.Body).Decode(&li); err != nil {
		return Outcome{}, fmt.Errorf("loadgen: read line item %s: %w", lineItemID, err)
	}
	return li.outcome(time.Now()), nil
}

// lineItemJSON is the part of the API's line item a run reads.
type lineItemJSON struct {
	LineItemID string `json:"line_item_id"`
	Overview   struct {
		Status string `json:"line_item_status"`
	} `json:"line_item_overview"`
	Processing *struct {
		AttemptStatus string `json:"attempt_status"`
	} `json:"payment_processing"`
}

func (li lineItemJSON) outcome(at time.Time) Outcome {
	o := Outcome{LineItemID: li.LineItemID, Status: li.Overview.Status, At: at}
	if li.Processing != nil {
		o.AttemptStatus = li.Processing.AttemptStatus
	}
	return o
}
