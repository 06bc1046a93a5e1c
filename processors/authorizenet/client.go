package authorizenet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// maxResponse bounds a response body. A page of 1000 transactions is
// well under a megabyte.
const maxResponse = 16 << 20

// Client calls the Authorize.Net JSON API. It is safe for concurrent use.
type Client struct {
	cfg  Config
	auth MerchantAuthentication
	host string // the endpoint's host, for spans
}

// NewClient returns a client for cfg.
func NewClient(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	host := ""
	if u, err := url.Parse(cfg.Endpoint); err == nil {
		host = u.Hostname()
	}
	return &Client{cfg: cfg, auth: MerchantAuthentication{Name: cfg.LoginID, TransactionKey: cfg.TransactionKey}, host: host}, nil
}

func (c *Client) base(refID string) apiRequest {
	return apiRequest{MerchantAuthentication: c.auth, ClientID: clientID, RefID: refID}
}

// CreateTransaction sends createTransactionRequest. When the API
// answered with a transaction result (approved, declined, error or held)
// the error is nil and resp.TransactionResponse.Decide() classifies it.
// Otherwise the error is an *Error; OutcomeUnknown tells whether the
// transaction may exist anyway.
func (c *Client) CreateTransaction(ctx context.Context, refID string, tr TransactionRequest) (*CreateTransactionResponse, error) {
	const op = "createTransactionRequest"
	var resp CreateTransactionResponse
	env := createTransactionEnvelope{Request: createTransactionRequest{apiRequest: c.base(refID), TransactionRequest: tr}}
	if err := c.call(ctx, op, env, &resp); err != nil {
		return nil, err
	}
	if tr := resp.TransactionResponse; tr != nil && tr.ResponseCode != "" {
		if resp.RefID != "" && refID != "" && resp.RefID != refID {
			// Not the answer to this request: trust nothing in it.
			return nil, &Error{Op: op, Class: ClassRetryable, Code: "decode", OutcomeUnknown: true,
				Text: "response refId does not match the request"}
		}
		return &resp, nil
	}
	if resp.Messages.ResultCode == "Error" {
		e := apiError(op, resp.Messages)
		// An unexpected error or a database timeout may strike after the
		// transaction was written.
		e.OutcomeUnknown = e.Code == "E00001" || e.Code == "E00049"
		return nil, e
	}
	return nil, &Error{Op: op, Class: ClassRetryable, Code: "decode", OutcomeUnknown: true,
		Text: "response has neither a transaction result nor an error"}
}

// GetTransactionDetails sends getTransactionDetailsRequest. An unknown
// transId is an *Error with Code "E00040".
func (c *Client) GetTransactionDetails(ctx context.Context, transID string) (*TransactionDetails, error) {
	const op = "getTransactionDetailsRequest"
	var resp getTransactionDetailsResponse
	env := getTransactionDetailsEnvelope{Request: getTransactionDetailsRequest{apiRequest: c.base(""), TransID: transID}}
	if err := c.call(ctx, op, env, &resp); err != nil {
		return nil, err
	}
	if resp.Messages.ResultCode != "Ok" || resp.Transaction == nil {
		return nil, apiError(op, resp.Messages)
	}
	return resp.Transaction, nil
}

// ListOptions selects and orders a transaction list.
type ListOptions struct {
	// Status filters unsettled transactions: "any" (default) or
	// "pendingApproval" (held for review).
	Status  string
	Sorting *Sorting
	Paging  *Paging
}

// GetUnsettledTransactionList sends getUnsettledTransactionListRequest.
func (c *Client) GetUnsettledTransactionList(ctx context.Context, opts ListOptions) (*TransactionList, error) {
	const op = "getUnsettledTransactionListRequest"
	env := getUnsettledTransactionListEnvelope{Request: getUnsettledTransactionListRequest{
		apiRequest: c.base(""), Status: opts.Status, Sorting: opts.Sorting, Paging: opts.Paging,
	}}
	return c.list(ctx, op, env)
}

// GetTransactionList sends getTransactionListRequest for a settled batch.
func (c *Client) GetTransactionList(ctx context.Context, batchID string, opts ListOptions) (*TransactionList, error) {
	const op = "getTransactionListRequest"
	env := getTransactionListEnvelope{Request: getTransactionListRequest{
		apiRequest: c.base(""), BatchID: batchID, Sorting: opts.Sorting, Paging: opts.Paging,
	}}
	return c.list(ctx, op, env)
}

func (c *Client) list(ctx context.Context, op string, env any) (*TransactionList, error) {
	var resp transactionListResponse
	if err := c.call(ctx, op, env, &resp); err != nil {
		return nil, err
	}
	if resp.Messages.ResultCode != "Ok" {
		return nil, apiError(op, resp.Messages)
	}
	return &resp.TransactionList, nil
}

// GetSettledBatchList sends getSettledBatchListRequest for batches
// settled between first and last (at most 31 days apart, per the API).
func (c *Client) GetSettledBatchList(ctx context.Context, first, last time.Time) ([]Batch, error) {
	const op = "getSettledBatchListRequest"
	const layout = "2006-01-02T15:04:05Z"
	var resp settledBatchListResponse
	env := getSettledBatchListEnvelope{Request: getSettledBatchListRequest{
		apiRequest:          c.base(""),
		FirstSettlementDate: first.UTC().Format(layout),
		LastSettlementDate:  last.UTC().Format(layout),
	}}
	if err := c.call(ctx, op, env, &resp); err != nil {
		return nil, err
	}
	if resp.Messages.ResultCode != "Ok" {
		return nil, apiError(op, resp.Messages)
	}
	return resp.BatchList, nil
}

// call posts one request and decodes the BOM-stripped answer into out.
// Every failure is an *Error.
func (c *Client) call(ctx context.Context, op string, env, out any) error {
	start := time.Now()
	var span trace.Span
	if c.cfg.Tracer != nil {
		// The endpoint, the operation and the error code only: the
		// request carries the merchant's key and the card, the response
		// the customer's details.
		ctx, span = c.cfg.Tracer.Start(ctx, "authorizenet "+op, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("http.request.method", http.MethodPost),
				attribute.String("server.address", c.host), attribute.String("rpc.method", op)))
	}
	err := c.send(ctx, op, env, out)
	c.cfg.Metrics.observe(op, err, time.Since(start))
	if span != nil {
		var e *Error
		if errors.As(err, &e) {
			span.SetAttributes(attribute.String("payrail.code", e.Code), attribute.String("payrail.class", e.Class.String()))
			span.SetStatus(codes.Error, e.Code)
		}
		span.End()
	}
	return err
}

// send is one call: encode, post, read, decode.
func (c *Client) send(ctx context.Context, op string, env, out any) error {
	body, err := json.Marshal(env)
	if err != nil {
		return &Error{Op: op, Class: ClassPermanent, Code: "encode", Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	// wrote tells a failure before the request left (nothing can have
	// happened) from one after (the gateway may have acted on it).
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.Endpoint, bytes.NewReader(body))
	if err != nil {
		return &Error{Op: op, Class: ClassPermanent, Code: "encode", Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "payrail-authorizenet/1")

	res, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		code := "transport"
		if errors.Is(err, context.DeadlineExceeded) {
			code = "timeout"
		}
		return &Error{Op: op, Class: ClassRetryable, Code: code, OutcomeUnknown: wrote.Load(), Err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponse+1))
	if err != nil {
		code := "transport"
		if errors.Is(err, context.DeadlineExceeded) {
			code = "timeout"
		}
		return &Error{Op: op, Class: ClassRetryable, Code: code, OutcomeUnknown: true, Err: err}
	}
	if res.StatusCode != http.StatusOK {
		return statusError(op, res)
	}
	if len(data) > maxResponse {
		return &Error{Op: op, Class: ClassRetryable, Code: "decode", OutcomeUnknown: true, Text: "response too large"}
	}
	if err := decode(data, out); err != nil {
		return &Error{Op: op, Class: ClassRetryable, Code: "decode", OutcomeUnknown: true, Err: err}
	}
	return nil
}

// decode reads a response body into out. The API prefixes its JSON with
// a UTF-8 byte order mark, which encoding/json rejects.
func decode(data []byte, out any) error {
	return json.Unmarshal(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), out)
}

// statusError classifies a non-200 answer. The API answers 200 even for
// its own errors, so anything else comes from the way there: 5xx and
// timeouts may follow processing (outcome unknown); 429 is a rate limit
// before it; other codes mean a wrong endpoint.
func statusError(op string, res *http.Response) *Error {
	e := &Error{Op: op, Class: ClassPermanent, Code: "http_" + strconv.Itoa(res.StatusCode),
		Text: http.StatusText(res.StatusCode)}
	switch {
	case res.StatusCode == http.StatusTooManyRequests:
		e.Class = ClassRetryable
	case res.StatusCode >= 500 || res.StatusCode == http.StatusRequestTimeout:
		e.Class, e.OutcomeUnknown = ClassRetryable, true
	default:
		e.Text = fmt.Sprintf("%s (is the endpoint right?)", e.Text)
	}
	if s := res.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	return e
}
