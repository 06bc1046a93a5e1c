// Package intake is payrail's HTTP API: the Canopy-compatible line item
// routes, authentication and tenancy, validation, idempotency, rate
// limiting, health and metrics. It turns requests into store calls and
// store results into Canopy-shaped responses.
package intake

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
)

// Check is a readiness probe of one dependency.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
	// Optional: /readyz reports the dependency's state but stays ready
	// without it (the API accepts payments while NATS is away).
	Optional bool
}

// Config wires a Server.
type Config struct {
	Store *store.Store
	// Ring seals the payment details inside jobs.
	Ring   *keyring.Ring
	Signer *auth.Signer
	Logger *slog.Logger
	// Registry receives the HTTP metrics. The API does not serve it: the
	// process serves it on its ops listener (PAYRAIL_METRICS_ADDR).
	Registry *prometheus.Registry
	// RateLimit and RateBurst size each API client's token bucket, for
	// authenticated requests and, separately, for tokens issued.
	RateLimit rate.Limit
	RateBurst int
	// TokenHashConcurrency bounds how many POST /auth/token requests hash a
	// secret at once (argon2id, 19 MiB each); 0 means GOMAXPROCS.
	// TokenHashQueue requests more may wait up to TokenHashWait for a slot
	// (0: 4 per slot, 2 s); the rest are answered 503 with Retry-After.
	TokenHashConcurrency int
	TokenHashQueue       int
	TokenHashWait        time.Duration
	// Failed token requests allowed per source address and per (client_id,
	// source address) pair: a burst, refilled at a rate per second. Zero
	// values take the defaults (20 then 1 per 3 s; 5 then 1 per 12 s).
	SourceFailureRate  rate.Limit
	SourceFailureBurst int
	PairFailureRate    rate.Limit
	PairFailureBurst   int
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// deciding a request's source address; empty means none.
	TrustedProxies []netip.Prefix
	// ClientCacheTTL is how long a client's state (enabled, role,
	// credential version) is cached when checking tokens, so how long a
	// revoked token may keep working; 0 means 3 s.
	ClientCacheTTL time.Duration
	// PageBytes bounds a page of line items by size (store.ItemBytes);
	// 0 means DefaultPageBytes.
	PageBytes int
	// DBTimeout bounds how long a request waits for PostgreSQL (a pool
	// connection and its queries) before it is answered 503; 0 means
	// DefaultDBTimeout.
	DBTimeout time.Duration
	// WebhooksAllowPrivate accepts webhook URLs with http and with
	// loopback, private or link-local address literals (development);
	// PAYRAIL_WEBHOOKS_ALLOW_PRIVATE.
	WebhooksAllowPrivate bool
	// Ready lists what /readyz checks.
	Ready []Check
	// Now is the clock (tests move it); nil means time.Now.
	Now func() time.Time
	// AuthorizeNet verifies customer payment profiles before an account
	// stores them. Without it such configs are answered 503.
	AuthorizeNet AuthorizeNet
	// Tracer, when set, records a span per request (trace.go); nil turns
	// tracing off and costs nothing.
	Tracer trace.Tracer
}

// DefaultPageBytes is how much line item data one page of GET
// …/line_items holds at most (docs/api.md, Pagination): with the
// per-item limits a page stays a few MiB whatever its limit.
const DefaultPageBytes = 1 << 20

// DefaultDBTimeout is how long a request waits for PostgreSQL before it
// is answered 503 service_unavailable (docs/api.md).
const DefaultDBTimeout = 10 * time.Second

// Server is the HTTP API.
type Server struct {
	store                *store.Store
	payments             *payments.Service
	ring                 *keyring.Ring
	signer               *auth.Signer
	verifier             *auth.Verifier // signer's Verify, remembering accepted tokens until they expire
	log                  *slog.Logger
	ready                []Check
	now                  func() time.Time
	fingerprintKey       []byte
	limits               *keyedLimiter // authenticated requests, per client
	issuance             *keyedLimiter // tokens issued, per client
	sourceFailures       *keyedLimiter // failed token requests, per source address
	pairFailures         *keyedLimiter // failed token requests, per (client_id, source)
	hashGate             *hashGate
	checkSecret          func(hash, secret string) bool // auth.CheckSecret; tests count calls
	clients              *clientCache
	trusted              []netip.Prefix
	pageBytes            int
	dbTimeout            time.Duration
	cursors              *cursors
	metrics              *httpMetrics
	mux                  *http.ServeMux
	handler              http.Handler
	anet                 AuthorizeNet
	webhooksAllowPrivate bool
	tracer               trace.Tracer
}

// New builds the Server and its routes.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Ring == nil || cfg.Signer == nil || cfg.Registry == nil {
		return nil, errors.New("intake: Store, Ring, Signer and Registry are required")
	}
	if cfg.RateLimit <= 0 || cfg.RateBurst <= 0 {
		return nil, fmt.Errorf("intake: rate limit %v/s burst %d must both be positive", cfg.RateLimit, cfg.RateBurst)
	}
	s := &Server{
		store:     cfg.Store,
		payments:  payments.New(cfg.Store, cfg.Ring),
		ring:      cfg.Ring,
		signer:    cfg.Signer,
		verifier:  auth.NewVerifier(cfg.Signer, maxTokenCacheEntries),
		log:       cfg.Logger,
		ready:     cfg.Ready,
		now:       cfg.Now,
		mux:       http.NewServeMux(),
		anet:      cfg.AuthorizeNet,
		pageBytes: cfg.PageBytes,
		dbTimeout: cfg.DBTimeout,

		limits:         newKeyedLimiter(cfg.RateLimit, cfg.RateBurst, maxLimiterEntries),
		issuance:       newKeyedLimiter(cfg.RateLimit, cfg.RateBurst, maxLimiterEntries),
		sourceFailures: newKeyedLimiter(orLimit(cfg.SourceFailureRate, defaultSourceFailureRate), orInt(cfg.SourceFailureBurst, defaultSourceFailureBurst), maxLimiterEntries),
		pairFailures:   newKeyedLimiter(orLimit(cfg.PairFailureRate, defaultPairFailureRate), orInt(cfg.PairFailureBurst, defaultPairFailureBurst), maxLimiterEntries),
		checkSecret:    auth.CheckSecret,
		trusted:        cfg.TrustedProxies,

		webhooksAllowPrivate: cfg.WebhooksAllowPrivate,
		tracer:               cfg.Tracer,
	}
	slots := orInt(cfg.TokenHashConcurrency, runtime.GOMAXPROCS(0))
	s.hashGate = newHashGate(slots, orInt(cfg.TokenHashQueue, 4*slots), cmp.Or(cfg.TokenHashWait, defaultHashWait))
	s.clients = &clientCache{ttl: cmp.Or(cfg.ClientCacheTTL, defaultClientCacheTTL), max: maxClientCacheEntries,
		load: cfg.Store.ClientByID, entries: map[string]cachedClient{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = slog.New(requestIDHandler{s.log.Handler()})
	if s.now == nil {
		s.now = time.Now
	}
	if s.dbTimeout <= 0 {
		s.dbTimeout = DefaultDBTimeout
	}
	if s.pageBytes <= 0 {
		s.pageBytes = DefaultPageBytes
	}
	// Replays are recognized by an HMAC of the normalized body; its key is
	// derived from the token signing key so there is one secret to manage.
	mac := hmac.New(sha256.New, cfg.Signer.Key())
	mac.Write([]byte("payrail request fingerprint v1"))
	s.fingerprintKey = mac.Sum(nil)
	s.cursors = newCursors(cfg.Signer.Key())

	metrics, err := newHTTPMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s.metrics = metrics
	s.routes()
	s.handler = s.recoverPanics(s.observe(http.HandlerFunc(s.dispatch)))
	if s.tracer != nil {
		s.handler = s.traced(s.handler)
	}
	s.handler = withRequestID(s.handler)
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("POST /auth/token", s.handleError(s.token))

	m.HandleFunc("POST /accounts", s.authed(auth.PermWrite, s.createAccount))
	m.HandleFunc("GET /accounts/{account_id}", s.authed(auth.PermRead, s.getAccount))
	m.HandleFunc("PUT /accounts/{account_id}/payment_processor_config", s.authed(auth.PermConfigure, s.putProcessorConfig))
	m.HandleFunc("PUT /organization/nacha_config", s.authed(auth.PermConfigure, s.putNachaConfig))
	m.HandleFunc("GET /organization/nacha_config", s.authed(auth.PermRead, s.getNachaConfig))
	m.HandleFunc("PUT /organization/authorize_net_config", s.authed(auth.PermConfigure, s.putAuthorizeNetConfig))
	m.HandleFunc("GET /organization/authorize_net_config", s.authed(auth.PermRead, s.getAuthorizeNetConfig))
	s.webhookRoutes()

	m.HandleFunc("POST /accounts/{account_id}/line_items/payments/payment_record", s.authed(auth.PermWrite, s.createPaymentRecord))
	m.HandleFunc("POST /accounts/{account_id}/line_items/payments/guest_payment", s.authed(auth.PermExecute, s.guestPayment))
	m.HandleFunc("POST /accounts/{account_id}/line_items/payments/payment_transfer", s.authed(auth.PermExecute, s.paymentTransfer))
	m.HandleFunc("POST /accounts/{account_id}/line_items/payments", s.authed(auth.PermExecute, s.deprecatedPayments))
	m.HandleFunc("POST /accounts/{account_id}/line_items/charges", s.authed(auth.PermWrite, s.createCharge))
	// Reversals are ledger writes; reversing an executed payment also
	// needs PermExecute, which the handler checks against the original.
	m.HandleFunc("POST /accounts/{account_id}/line_items/payment_reversals/{line_item_id}", s.authed(auth.PermWrite, s.paymentReversal))
	m.HandleFunc("POST /accounts/{account_id}/line_items/charge_reversals/{line_item_id}", s.authed(auth.PermWrite, s.chargeReversal))
	m.HandleFunc("PUT /accounts/{account_id}/line_items/{line_item_id}", s.authed(auth.PermWrite, s.updateLineItem))
	m.HandleFunc("GET /accounts/{account_id}/line_items", s.authed(auth.PermRead, s.listLineItems))
	m.HandleFunc("GET /accounts/{account_id}/line_items/{line_item_id}", s.authed(auth.PermRead, s.getLineItem))

	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.readyz)
	m.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(OpenAPI)
	})
}

// dispatch routes through the mux but answers the mux's own 404 and 405
// in the JSON error format instead of its plain text. payrail does not
// clean paths: where the mux would redirect a non-canonical path (//x,
// /a/../b, /./x) with an HTML body, the path is no route as written and
// is answered 404 route_not_found.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.EscapedPath(); p != cleanPath(p) {
		writeError(w, errorf(http.StatusNotFound, codeRouteNotFound, "no route %s %s", r.Method, r.URL.Path))
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // only ServeHTTP fills in r.PathValue
		return
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	switch rec.Code {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.Header().Get("Allow"))
		writeError(w, errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
	default: // 404, and the redirects to a cleaned path
		writeError(w, errorf(http.StatusNotFound, codeRouteNotFound, "no route %s %s", r.Method, r.URL.Path))
	}
}

// cleanPath is p as http.ServeMux would redirect it: rooted, without
// empty, "." or ".." segments, its trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

type principalKey struct{}

func principal(r *http.Request) auth.Claims {
	c, _ := r.Context().Value(principalKey{}).(auth.Claims)
	return c
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handleError answers a handler's error: an *apiError as it says, anything
// else as a logged 500 that reveals nothing.
func (s *Server) handleError(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Every store call of the request shares one deadline, so a pool
		// with no free connection or an unreachable PostgreSQL is a 503
		// in bounded time rather than a request that hangs. Prefer: wait
		// extends it by the wait.
		wait, _ := preferWait(r)
		ctx, cancel := context.WithTimeout(r.Context(), s.dbTimeout+wait)
		defer cancel()
		err := h(w, r.WithContext(ctx))
		if err == nil {
			return
		}
		var ae *apiError
		if errors.As(err, &ae) {
			writeError(w, ae)
			return
		}
		if databaseUnavailable(err) && r.Context().Err() == nil {
			s.log.WarnContext(r.Context(), "database unavailable", "method", r.Method, "path", r.URL.Path,
				"client_id", principal(r).ClientID, "err", err)
			writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: codeServiceUnavailable,
				Message: "the database is unavailable or overloaded; retry later", RetryAfter: unavailableRetryAfter})
			return
		}
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
			"client_id", principal(r).ClientID, "err", err)
		writeError(w, errorf(http.StatusInternalServerError, codeInternal, "an unexpected error occurred; it has been logged"))
	}
}

// authed requires a valid bearer token whose role allows p, then applies
// the client's rate limit.
func (s *Server) authed(p auth.Permission, h handlerFunc) http.HandlerFunc {
	inner := s.handleError(h)
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="payrail"`)
			writeError(w, errorf(http.StatusUnauthorized, codeUnauthorized, "send Authorization: Bearer <access_token> from POST /auth/token"))
			return
		}
		claims, err := s.verifier.Verify(strings.TrimSpace(token))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="payrail", error="invalid_token"`)
			writeError(w, errorf(http.StatusUnauthorized, codeUnauthorized, "the access token is malformed, expired or not ours"))
			return
		}
		// A token is good only while its client is enabled and still has
		// the credential version (and so the org and role) it was issued
		// with; the client cache makes a revocation count within seconds.
		c, err := s.clients.get(r.Context(), claims.ClientID)
		if err != nil {
			s.handleError(func(http.ResponseWriter, *http.Request) error { return err })(w, r)
			return
		}
		if !c.found || !c.enabled || c.version != claims.Version || c.orgID != claims.OrgID || c.role != claims.Role {
			w.Header().Set("WWW-Authenticate", `Bearer realm="payrail", error="invalid_token"`)
			writeError(w, errorf(http.StatusUnauthorized, codeUnauthorized,
				"the access token was revoked (its client was disabled or changed, or its secret rotated); request a new one"))
			return
		}
		if !auth.Allows(claims.Role, p) {
			writeError(w, errorf(http.StatusForbidden, codeForbidden, "role %s may not do this", claims.Role))
			return
		}
		if wait, ok := s.limits.allow(claims.ClientID); !ok {
			writeError(w, &apiError{Status: http.StatusTooManyRequests, Code: codeRateLimited,
				Message: "too many requests for this API client", RetryAfter: wait})
			return
		}
		if aerr := pathIDs(r); aerr != nil {
			writeError(w, aerr)
			return
		}
		inner(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, claims)))
	}
}

func orInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// pathIDs refuses path ids no account or line item can have (invalid
// UTF-8 or NUL, which PostgreSQL cannot even compare): they are unknown,
// so 404 like any other unknown id.
func pathIDs(r *http.Request) *apiError {
	if !storable(r.PathValue("account_id")) {
		return notFound("account")
	}
	if !storable(r.PathValue("line_item_id")) {
		return notFound("line item")
	}
	return nil
}

func orLimit(v, def rate.Limit) rate.Limit {
	if v > 0 {
		return v
	}
	return def
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := map[string]string{}
	ready := true
	for _, c := range s.ready {
		if err := c.Fn(ctx); err != nil {
			status[c.Name] = "unavailable"
			if c.Optional {
				continue
			}
			ready = false
			s.log.WarnContext(ctx, "readiness check failed", "check", c.Name, "err", err)
		} else {
			status[c.Name] = "ok"
		}
	}
	if !ready {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error":  errorPayload{Code: codeNotReady, Message: "a dependency is unavailable"},
			"checks": status,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": status})
}

// recoverPanics turns a panic into a 500 without a stack trace in the
// response; the stack goes to the log.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "panic serving request", "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeError(w, errorf(http.StatusInternalServerError, codeInternal, "an unexpected error occurred; it has been logged"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "payrail_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("intake: register HTTP metrics: %w", err)
		}
	}
	return m, nil
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// observe records metrics and an access log line per request. The route
// label is the mux pattern, so ids never become label values.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		_, pattern := s.mux.Handler(r)
		if pattern == "" {
			pattern = "unmatched"
		}
		elapsed := time.Since(start)
		s.metrics.requests.WithLabelValues(pattern, strconv.Itoa(rec.code)).Inc()
		s.metrics.latency.WithLabelValues(pattern).Observe(elapsed.Seconds())
		s.log.DebugContext(r.Context(), "http request", "method", r.Method, "route", pattern, "status", rec.code,
			"duration_ms", float64(elapsed.Microseconds())/1000)
	})
}
