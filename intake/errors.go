package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Error codes clients branch on. They are part of the API (see openapi.yaml).
const (
	codeMalformedJSON          = "malformed_json"
	codeInvalidRequest         = "invalid_request"
	codeBodyTooLarge           = "body_too_large"
	codeUnsupportedMediaType   = "unsupported_media_type"
	codeUnauthorized           = "unauthorized"
	codeForbidden              = "forbidden"
	codeNotFound               = "not_found"
	codeRouteNotFound          = "route_not_found"
	codeMethodNotAllowed       = "method_not_allowed"
	codeDuplicateLineItemID    = "duplicate_line_item_id"
	codeDuplicateAccountID     = "duplicate_account_id"
	codeIdempotencyKeyReused   = "idempotency_key_reused"
	codeInvalidStateTransition = "invalid_state_transition"
	codeRateLimited            = "rate_limited"
	codeNotReady               = "not_ready"
	codeOverloaded             = "overloaded"
	codeServiceUnavailable     = "service_unavailable"
	codeInternal               = "internal_error"
)

// Detail names one offending field by JSON pointer ("/payment_details/cvv";
// query parameters as "/query/limit").
type Detail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// apiError is an error a handler answers the client with.
type apiError struct {
	Status     int
	Code       string
	Message    string
	Details    []Detail
	RetryAfter int // seconds; sets Retry-After when > 0
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalid(details []Detail) *apiError {
	msg := "the request has 1 invalid field"
	if len(details) != 1 {
		msg = "the request has " + strconv.Itoa(len(details)) + " invalid fields"
	}
	return &apiError{Status: http.StatusUnprocessableEntity, Code: codeInvalidRequest, Message: msg, Details: details}
}

type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []Detail `json:"details,omitempty"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, errorBody{Error: errorPayload{Code: e.Code, Message: e.Message, Details: e.Details}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Response types are ours and always marshal; this is a programming error.
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal_error","message":"could not encode the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// unavailableRetryAfter is the Retry-After of a 503 service_unavailable.
const unavailableRetryAfter = 2

// databaseUnavailable reports whether err means PostgreSQL could not
// serve the request in time rather than that the request is wrong: no
// free pool connection before the deadline, a query past it, a server
// that cannot be reached, refuses connections, or is shutting down.
func databaseUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"): // connection exception
			return true
		case pe.Code == "53300", pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03":
			// too_many_connections, admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
	}
	return false
}
