package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "intake", &env)) }

var testSigningKey = []byte("0123456789abcdef0123456789abcdef")

// harness is one API server over the package database, with its own org.
type harness struct {
	t     testing.TB
	srv   *httptest.Server
	httpc *http.Client // checks every response against openapi.yaml
	api   *Server
	reg   *prometheus.Registry
	store *store.Store
	org   string
	token string // admin token of org
	sim   *anetsim.Server
}

type harnessOpt func(*Config)

func withRate(limit rate.Limit, burst int) harnessOpt {
	return func(c *Config) { c.RateLimit, c.RateBurst = limit, burst }
}

func newHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	signer, err := auth.NewSigner(testSigningKey, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(env.Pool, env.Ring, canopy.Events{})
	sim, merchants := newAuthorizeNet(t, st)
	cfg := Config{Store: st, Ring: env.Ring, Signer: signer, Registry: prometheus.NewRegistry(), RateLimit: 1000, RateBurst: 1000,
		Ready: []Check{{Name: "postgres", Fn: st.Ping}}, AuthorizeNet: merchants}
	for _, o := range opts {
		o(&cfg)
	}
	api, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	h := &harness{t: t, srv: srv, api: api, reg: cfg.Registry, store: st, org: testenv.UniqueID("org_"), sim: sim}
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	h.httpc = &http.Client{Transport: contractTransport{next: srv.Client().Transport, contract: c, h: h}}
	if err := st.EnsureOrg(context.Background(), h.org, "test org"); err != nil {
		t.Fatal(err)
	}
	h.token = h.tokenFor(h.org, auth.RoleAdmin)
	return h
}

// client creates an API client and returns its id and secret.
func (h *harness) client(org, role string) (string, string) {
	h.t.Helper()
	secret, _ := auth.NewSecret()
	hash, err := auth.HashSecret(secret)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.store.EnsureOrg(context.Background(), org, org); err != nil {
		h.t.Fatal(err)
	}
	id := store.NewID("cli_")
	if err := h.store.CreateClient(context.Background(), store.Client{ClientID: id, OrgID: org, Name: "t", Role: role, SecretHash: hash}); err != nil {
		h.t.Fatal(err)
	}
	return id, secret
}

// tokenFor goes through POST /auth/token like a real client.
func (h *harness) tokenFor(org, role string) string {
	h.t.Helper()
	id, secret := h.client(org, role)
	res := h.do("POST", "/auth/token", "", map[string]string{"client_id": id, "client_secret": secret})
	res.wantStatus(200)
	return res.json["access_token"].(string)
}

type response struct {
	t      testing.TB
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r response) wantStatus(code int) response {
	r.t.Helper()
	if r.status != code {
		r.t.Fatalf("status %d, want %d; body %s", r.status, code, r.body)
	}
	return r
}

// wantError checks an error response's status, code and, when given, that
// details name exactly these fields.
func (r response) wantError(status int, code string, fields ...string) response {
	r.t.Helper()
	r.wantStatus(status)
	e, ok := r.json["error"].(map[string]any)
	if !ok {
		r.t.Fatalf("no error object in %s", r.body)
	}
	if e["code"] != code {
		r.t.Fatalf("error code %v, want %s; body %s", e["code"], code, r.body)
	}
	if msg, _ := e["message"].(string); msg == "" {
		r.t.Fatalf("error without message: %s", r.body)
	}
	if len(fields) > 0 {
		var got []string
		details, _ := e["details"].([]any)
		for _, d := range details {
			got = append(got, d.(map[string]any)["field"].(string))
		}
		if strings.Join(got, ",") != strings.Join(fields, ",") {
			r.t.Fatalf("detail fields %v, want %v; body %s", got, fields, r.body)
		}
	}
	return r
}

func (r response) str(path ...string) string {
	r.t.Helper()
	var v any = r.json
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			r.t.Fatalf("no %v in %s", path, r.body)
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func (h *harness) do(method, path, token string, body any, headers ...string) response {
	h.t.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = strings.NewReader(b)
	case []byte:
		rdr = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rdr = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rdr)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := h.httpc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{t: h.t, status: res.StatusCode, header: res.Header, body: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.json); err != nil {
			h.t.Fatalf("response is not a JSON object: %v: %s", err, raw)
		}
	}
	if res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable {
		h.t.Fatalf("%s %s answered %d: %s", method, path, res.StatusCode, raw)
	}
	return out
}

// account creates an account in the harness org and returns its id.
func (h *harness) account() string {
	h.t.Helper()
	id := testenv.UniqueID("acct_")
	h.do("POST", "/accounts", h.token, map[string]any{"account_id": id, "product_id": "prod_1", "customer_name": "Ada Lovelace"}).wantStatus(200)
	return id
}

func recent() string { return time.Now().UTC().Add(-24 * time.Hour).Format(time.RFC3339) }

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
