package intake

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func withLogs(buf *lockedBuffer) harnessOpt {
	return func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

func anetProfile(customer, payment string) map[string]any {
	return map[string]any{"payment_processor_name": "AUTHORIZE_NET", "authorize_net_config": map[string]any{
		"customer_profile_id": customer, "payment_profile_id": payment}}
}

// PUT /organization/authorize_net_config is admin-only, seals the key at
// rest and never shows more than its last four characters.
func TestAuthorizeNetConfig(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	h := newHarness(t, withLogs(logs))
	const path = "/organization/authorize_net_config"
	const key = "Zq7Ky9Pw3Xm4Tn8R"

	h.do("GET", path, h.token, nil).wantError(404, codeNotFound)
	for _, role := range []string{auth.RoleServicing, auth.RoleOperations, auth.RoleReadonly} {
		h.do("PUT", path, h.tokenFor(h.org, role), map[string]any{"api_login_id": "login-a", "transaction_key": key}).
			wantError(403, codeForbidden)
	}
	h.do("PUT", path, h.token, map[string]any{"api_login_id": strings.Repeat("x", 26), "transaction_key": "a b", "endpoint": "x"}).
		wantError(422, codeInvalidRequest, "/api_login_id", "/transaction_key", "/endpoint")
	h.do("PUT", path, h.token, map[string]any{}).wantError(422, codeInvalidRequest, "/api_login_id", "/transaction_key")

	res := h.do("PUT", path, h.token, map[string]any{"api_login_id": "login-a", "transaction_key": key}).wantStatus(200)
	if res.str("api_login_id") != "login-a" || res.str("transaction_key_last_four") != "Tn8R" || res.str("updated_at") == "" {
		t.Fatalf("PUT answered %s", res.body)
	}
	got := h.do("GET", path, h.tokenFor(h.org, auth.RoleReadonly), nil).wantStatus(200)
	for _, body := range [][]byte{res.body, got.body} {
		if bytes.Contains(body, []byte(key)) || bytes.Contains(body, []byte("transaction_key\"")) {
			t.Fatalf("the key is in a response: %s", body)
		}
	}
	// At rest: not in clear, nor hex, in any column of the row.
	var row string
	if err := env.Pool.QueryRow(context.Background(),
		`SELECT t::text FROM org_authorize_net_configs t WHERE org_id = $1`, h.org).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, key) || strings.Contains(row, hex.EncodeToString([]byte(key))) || !strings.Contains(row, "login-a") {
		t.Fatalf("the key is stored readable: %s", row)
	}
	// The store opens it for the org it was sealed for only.
	if login, k, err := h.store.AuthorizeNetCredentials(context.Background(), h.org); err != nil || login != "login-a" || k != key {
		t.Fatalf("credentials: %q %v", login, err)
	}
	if strings.Contains(logs.String(), key) {
		t.Fatal("the key is in the log")
	}
}

// Two orgs set the same profile ids; the profile exists under org A's
// merchant only. Org B (its own login) and an org on the default login
// cannot store it; org A can, through PUT and through POST /accounts.
func TestProfileVerifiedUnderTheOrgsMerchant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.sim.AddMerchant("login-a", "KeyOfOrgA000001")
	h.sim.AddMerchant("login-b", "KeyOfOrgB000001")
	h.sim.AddProfileFor("login-a", "3001", "4001", anetsim.Profile{CardNumber: "4007000000027", ExpirationDate: "2035-12"})
	const path = "/organization/authorize_net_config"

	orgA, orgB := h.org, testenv.UniqueID("org_")
	tokenA, tokenB := h.token, h.tokenFor(orgB, auth.RoleAdmin)
	h.do("PUT", path, tokenA, map[string]any{"api_login_id": "login-a", "transaction_key": "KeyOfOrgA000001"}).wantStatus(200)
	h.do("PUT", path, tokenB, map[string]any{"api_login_id": "login-b", "transaction_key": "KeyOfOrgB000001"}).wantStatus(200)

	cfg := map[string]any{"debit": anetProfile("3001", "4001")}
	acctA := h.account()
	res := h.do("PUT", "/accounts/"+acctA+"/payment_processor_config", tokenA, cfg).wantStatus(200)
	if res.str("payment_processor_config", "debit", "authorize_net_config", "payment_profile_id") != "4001" {
		t.Fatalf("org A: %s", res.body)
	}
	h.do("POST", "/accounts", tokenA, map[string]any{"product_id": "p", "payment_processor_config": cfg}).wantStatus(200)

	acctB := testenv.UniqueID("acct_")
	h.do("POST", "/accounts", tokenB, map[string]any{"account_id": acctB, "product_id": "p"}).wantStatus(200)
	h.do("PUT", "/accounts/"+acctB+"/payment_processor_config", tokenB, cfg).
		wantError(422, codeInvalidRequest, "/debit/authorize_net_config/payment_profile_id")
	h.do("POST", "/accounts", tokenB, map[string]any{"product_id": "p", "payment_processor_config": cfg}).
		wantError(422, codeInvalidRequest, "/payment_processor_config/debit/authorize_net_config/payment_profile_id")
	if got := h.do("GET", "/accounts/"+acctB, tokenB, nil).wantStatus(200); got.str("payment_processor_config", "debit", "payment_processor_name") != "NONE" {
		t.Fatalf("org B's account stored the profile: %s", got.body)
	}
	if h.sim.RequestsBy("login-b", "getCustomerPaymentProfileRequest") != 2 || h.sim.RequestsBy("login-a", "getCustomerPaymentProfileRequest") != 2 {
		t.Fatal("profiles were not verified with each org's own login")
	}

	// An org on the default login: its profiles are the default merchant's.
	orgC := testenv.UniqueID("org_")
	tokenC := h.tokenFor(orgC, auth.RoleAdmin)
	acctC := testenv.UniqueID("acct_")
	h.do("POST", "/accounts", tokenC, map[string]any{"account_id": acctC, "product_id": "p"}).wantStatus(200)
	h.do("PUT", "/accounts/"+acctC+"/payment_processor_config", tokenC, cfg).
		wantError(422, codeInvalidRequest, "/debit/authorize_net_config/payment_profile_id")
	h.do("PUT", "/accounts/"+acctC+"/payment_processor_config", tokenC,
		map[string]any{"debit": anetProfile(testCustomerProfile, testPaymentProfile)}).wantStatus(200)

	// Org A's own login does not see the default merchant's profile either.
	h.do("PUT", "/accounts/"+acctA+"/payment_processor_config", tokenA,
		map[string]any{"debit": anetProfile(testCustomerProfile, testPaymentProfile)}).
		wantError(422, codeInvalidRequest, "/debit/authorize_net_config/payment_profile_id")

	// Credentials the gateway refuses.
	h.do("PUT", path, tokenC, map[string]any{"api_login_id": "login-c", "transaction_key": "NotAKnownKey0001"}).wantStatus(200)
	h.do("PUT", "/accounts/"+acctC+"/payment_processor_config", tokenC, cfg).
		wantError(422, codeAuthorizeNetCredentialsRejected)

	// Gateway unreachable: 503 with Retry-After, nothing stored.
	h.sim.Inject("getCustomerPaymentProfileRequest", anetsim.FaultStatus5xx)
	res = h.do("PUT", "/accounts/"+acctB+"/payment_processor_config", tokenB, map[string]any{"debit": anetProfile("3001", "4001")}).
		wantError(503, codeAuthorizeNetUnavailable)
	if res.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	_ = orgA
}

// POST /accounts with a payment_processor_config needs the admin role,
// like PUT …/payment_processor_config; without one servicing and
// operations still create accounts.
func TestCreateAccountWithProcessorConfigNeedsAdmin(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := map[string]any{"debit": anetProfile(testCustomerProfile, testPaymentProfile)}
	for _, role := range []string{auth.RoleServicing, auth.RoleOperations} {
		tok := h.tokenFor(h.org, role)
		id := testenv.UniqueID("acct_")
		h.do("POST", "/accounts", tok, map[string]any{"account_id": id, "product_id": "p", "payment_processor_config": cfg}).
			wantError(403, codeForbidden)
		h.do("POST", "/accounts", tok, map[string]any{"account_id": id, "product_id": "p",
			"payment_processor_config": map[string]any{"ach": map[string]any{"payment_processor_name": "NONE"}}}).
			wantError(403, codeForbidden)
		h.do("GET", "/accounts/"+id, h.token, nil).wantError(404, codeNotFound)
		h.do("POST", "/accounts", tok, map[string]any{"account_id": id, "product_id": "p"}).wantStatus(200)
	}
	h.do("POST", "/accounts", h.tokenFor(h.org, auth.RoleReadonly), map[string]any{"product_id": "p"}).wantError(403, codeForbidden)
	res := h.do("POST", "/accounts", h.token, map[string]any{"product_id": "p", "payment_processor_config": cfg}).wantStatus(200)
	if res.str("payment_processor_config", "debit", "payment_processor_name") != "AUTHORIZE_NET" {
		t.Fatalf("admin: %s", res.body)
	}
}
