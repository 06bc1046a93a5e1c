package intake

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/testenv"
)

func TestAuthToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id, secret := h.client(h.org, auth.RoleServicing)

	res := h.do("POST", "/auth/token", "", map[string]string{"client_id": id, "client_secret": secret}).wantStatus(200)
	if res.json["token_type"] != "Bearer" || res.json["expires_in"].(float64) != 3600 || res.str("access_token") == "" {
		t.Fatalf("token response %s", res.body)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}.Encode()
	res = h.do("POST", "/auth/token", "", nil, "Content-Type", "application/x-www-form-urlencoded")
	res.wantError(422, codeInvalidRequest, "/grant_type", "/client_id", "/client_secret")
	res = h.do("POST", "/auth/token", "", []byte(form), "Content-Type", "application/x-www-form-urlencoded")
	res.wantStatus(200)

	h.do("POST", "/auth/token", "", map[string]string{"client_id": id, "client_secret": secret + "x"}).wantError(401, codeUnauthorized)
	h.do("POST", "/auth/token", "", map[string]string{"client_id": "cli_nobody", "client_secret": secret}).wantError(401, codeUnauthorized)
	h.do("POST", "/auth/token", "", map[string]string{}).wantError(422, codeInvalidRequest, "/client_id", "/client_secret")
	h.do("POST", "/auth/token", "", `{"client_id":`).wantError(400, codeMalformedJSON)
}

func TestAuthenticationAndRoles(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	path := "/accounts/" + acct

	h.do("GET", path, "", nil).wantError(401, codeUnauthorized)
	h.do("GET", path, "not-a-jwt", nil).wantError(401, codeUnauthorized)
	res := h.do("GET", path, "", nil, "Authorization", "Basic Zm9vOmJhcg==")
	res.wantError(401, codeUnauthorized)
	if res.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}

	forger, _ := auth.NewSigner([]byte("another-key-another-key-another-k"), time.Hour)
	forged, _ := forger.Issue(auth.Claims{OrgID: h.org, ClientID: "cli_x", Role: auth.RoleAdmin})
	h.do("GET", path, forged, nil).wantError(401, codeUnauthorized)

	expiredSigner, _ := auth.NewSigner(testSigningKey, time.Nanosecond)
	expired, _ := expiredSigner.Issue(auth.Claims{OrgID: h.org, ClientID: "cli_x", Role: auth.RoleAdmin})
	time.Sleep(1100 * time.Millisecond) // JWT times have one-second resolution
	h.do("GET", path, expired, nil).wantError(401, codeUnauthorized)

	readonly := h.tokenFor(h.org, auth.RoleReadonly)
	h.do("GET", path, readonly, nil).wantStatus(200)
	h.do("POST", path+"/line_items/charges", readonly, map[string]any{"original_amount_cents": 100}).wantError(403, codeForbidden)

	ops := h.tokenFor(h.org, auth.RoleOperations)
	h.do("POST", path+"/line_items/charges", ops, map[string]any{"original_amount_cents": 100}).wantStatus(200)
	h.do("PUT", path+"/payment_processor_config", ops, map[string]any{}).wantError(403, codeForbidden)
	h.do("PUT", "/organization/nacha_config", ops, map[string]any{}).wantError(403, codeForbidden)

	servicing := h.tokenFor(h.org, auth.RoleServicing)
	h.do("PUT", path+"/payment_processor_config", servicing, map[string]any{}).wantError(403, codeForbidden)
}

func TestTenancyHidesOtherOrgs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	h.do("POST", "/accounts/"+acct+"/line_items/charges", h.token,
		map[string]any{"line_item_id": "c1", "original_amount_cents": 100}).wantStatus(200)

	other := h.tokenFor(testenv.UniqueID("org_other_"), auth.RoleAdmin)
	missing := "/accounts/acct_does_not_exist"
	for _, tc := range []struct{ method, suffix string }{
		{"GET", ""}, {"GET", "/line_items"}, {"GET", "/line_items/c1"},
	} {
		theirs := h.do(tc.method, "/accounts/"+acct+tc.suffix, other, nil)
		absent := h.do(tc.method, missing+tc.suffix, other, nil)
		theirs.wantStatus(404)
		if string(theirs.body) != strings.ReplaceAll(string(absent.body), "acct_does_not_exist", acct) {
			t.Errorf("%s %s: another org's resource answers %s, a missing one %s", tc.method, tc.suffix, theirs.body, absent.body)
		}
	}
	h.do("PUT", "/accounts/"+acct+"/line_items/c1", other, map[string]any{"line_item_status": "VOID"}).wantError(404, codeNotFound)
	h.do("POST", "/accounts/"+acct+"/line_items/charges", other, map[string]any{"original_amount_cents": 1}).wantError(404, codeNotFound)
	h.do("PUT", "/accounts/"+acct+"/payment_processor_config", other, map[string]any{}).wantError(404, codeNotFound)
	// Another org may use the same account id for its own account.
	h.do("POST", "/accounts", other, map[string]any{"account_id": acct, "product_id": "p"}).wantStatus(200)
	// And the first org's line item is untouched.
	res := h.do("GET", "/accounts/"+acct+"/line_items/c1", h.token, nil).wantStatus(200)
	if res.str("line_item_overview", "line_item_status") != "VALID" {
		t.Fatalf("line item changed: %s", res.body)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, withRate(0.5, 2))
	acct := "/accounts/acct_missing"
	h.do("GET", acct, h.token, nil).wantStatus(404)
	h.do("GET", acct, h.token, nil).wantStatus(404)
	res := h.do("GET", acct, h.token, nil).wantError(429, codeRateLimited)
	if ra, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q", res.header.Get("Retry-After"))
	}
	// Buckets are per client: another client of the same org is not limited.
	other := h.tokenFor(h.org, auth.RoleReadonly)
	h.do("GET", acct, other, nil).wantStatus(404)
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := map[string]any{"account_id": "acct_ada", "product_id": "prod_1", "customer_name": "Ada",
		"external_fields": []map[string]string{{"key": "crm", "value": "42"}}}
	first := h.do("POST", "/accounts", h.token, body).wantStatus(200)
	if first.str("account_overview", "account_status") != "ACTIVE" || first.str("account_product", "product_id") != "prod_1" {
		t.Fatalf("account %s", first.body)
	}
	again := h.do("POST", "/accounts", h.token, body).wantStatus(200)
	if string(again.body) != string(first.body) {
		t.Fatalf("replay answered %s, first %s", again.body, first.body)
	}
	body["product_id"] = "prod_2"
	h.do("POST", "/accounts", h.token, body).wantError(409, codeDuplicateAccountID)

	gen := h.do("POST", "/accounts", h.token, map[string]any{"product_id": "p"}).wantStatus(200)
	if !strings.HasPrefix(gen.str("account_id"), "can_") {
		t.Fatalf("generated id %q", gen.str("account_id"))
	}
	h.do("GET", "/accounts/acct_ada", h.token, nil).wantStatus(200)
	h.do("POST", "/accounts", h.token, map[string]any{"account_id": "can_1", "product_id": ""}).
		wantError(422, codeInvalidRequest, "/account_id", "/product_id")
}

func TestProcessorConfigMasksAndSeals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	path := "/accounts/" + acct + "/payment_processor_config"
	const number = "9876543210123"
	res := h.do("PUT", path, h.token, map[string]any{
		"ach": map[string]any{"payment_processor_name": "CANOPY_NACHA", "canopy_nacha_config": map[string]any{
			"bank_routing_number": "021000021", "bank_account_number": number, "bank_account_type": "SAVINGS"}},
		"debit": map[string]any{"payment_processor_name": "AUTHORIZE_NET", "authorize_net_config": map[string]any{
			"customer_profile_id": "1929820324", "payment_profile_id": "1841987457"}},
	}).wantStatus(200)
	if strings.Contains(string(res.body), number) || res.str("payment_processor_config", "ach", "canopy_nacha_config", "bank_account_number_last_four") != "0123" {
		t.Fatalf("processor config response %s", res.body)
	}
	got := h.do("GET", "/accounts/"+acct, h.token, nil).wantStatus(200)
	if strings.Contains(string(got.body), number) || got.str("payment_processor_config", "debit", "authorize_net_config", "payment_profile_id") != "1841987457" {
		t.Fatalf("account %s", got.body)
	}
	var sealed []byte
	if err := env.Pool.QueryRow(context.Background(),
		`SELECT ach_account_number_enc FROM account_processor_configs WHERE org_id = $1 AND account_id = $2`, h.org, acct).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || strings.Contains(string(sealed), number) {
		t.Fatalf("account number not sealed at rest: %q", sealed)
	}

	h.do("PUT", path, h.token, map[string]any{
		"ach":   map[string]any{"payment_processor_name": "NONE", "canopy_nacha_config": map[string]any{}},
		"debit": map[string]any{"payment_processor_name": "AUTHORIZE_NET"},
		"extra": true,
	}).wantError(422, codeInvalidRequest, "/ach/canopy_nacha_config", "/debit/authorize_net_config", "/extra")
	h.do("PUT", path, h.token, map[string]any{
		"ach": map[string]any{"payment_processor_name": "CANOPY_NACHA", "canopy_nacha_config": map[string]any{
			"bank_routing_number": "021000022", "bank_account_number": "12", "bank_account_type": "GL"}},
		"debit": map[string]any{"payment_processor_name": "REPAY"},
	}).wantError(422, codeInvalidRequest, "/ach/canopy_nacha_config/bank_routing_number",
		"/ach/canopy_nacha_config/bank_account_number", "/ach/canopy_nacha_config/bank_account_type",
		"/debit/payment_processor_name")
	// An empty body resets both methods to NONE.
	res = h.do("PUT", path, h.token, map[string]any{}).wantStatus(200)
	if res.str("payment_processor_config", "ach", "payment_processor_name") != "NONE" {
		t.Fatalf("reset config %s", res.body)
	}
}

func TestNachaConfig(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.do("GET", "/organization/nacha_config", h.token, nil).wantError(404, codeNotFound)
	good := map[string]any{
		"nacha_destination_config": map[string]any{"bank_name": "Federal Reserve Bank", "bank_routing_number": "011000015"},
		"nacha_origin_config":      map[string]any{"bank_name": "Origin Bank", "bank_routing_number": "021000021"},
		"company_name":             "Payrail Lending", "company_identification": "1234567890",
		"company_entry_description": "LOAN PMT", "is_balanced_nacha": true,
		"offset_account": map[string]any{"bank_routing_number": "021000021", "bank_account_number": "55550001"},
	}
	res := h.do("PUT", "/organization/nacha_config", h.token, good).wantStatus(200)
	if res.str("company_name") != "PAYRAIL LENDING" || res.str("offset_account", "bank_account_number_last_four") != "0001" {
		t.Fatalf("nacha config %s", res.body)
	}
	if res.str("offset_placement") != "OWN_BATCH" {
		t.Errorf("default offset_placement %q, want OWN_BATCH", res.str("offset_placement"))
	}
	good["offset_placement"] = "SAME_BATCH"
	if res := h.do("PUT", "/organization/nacha_config", h.token, good).wantStatus(200); res.str("offset_placement") != "SAME_BATCH" {
		t.Errorf("offset_placement %q, want SAME_BATCH", res.str("offset_placement"))
	}
	good["offset_placement"] = "ELSEWHERE"
	h.do("PUT", "/organization/nacha_config", h.token, good).wantError(422, codeInvalidRequest, "/offset_placement")
	good["offset_placement"] = "OWN_BATCH"
	good["nacha_origin_config"] = map[string]any{"bank_name": "Origin Bank", "bank_routing_number": "500000005"}
	h.do("PUT", "/organization/nacha_config", h.token, good).wantError(422, codeInvalidRequest, "/nacha_origin_config/bank_routing_number")
	h.do("GET", "/organization/nacha_config", h.token, nil).wantStatus(200)
	h.do("PUT", "/organization/nacha_config", h.token, map[string]any{
		"nacha_origin_config": map[string]any{"bank_name": "x", "bank_routing_number": "123"},
		"company_name":        "A name longer than sixteen", "company_identification": "12345678901",
		"is_balanced_nacha": true,
	}).wantError(422, codeInvalidRequest, "/nacha_destination_config", "/nacha_origin_config/bank_routing_number",
		"/company_name", "/company_identification", "/offset_account")
}

// The request examples of the Canopy seeds, with effective_at moved into
// the last ten days (docs/api.md refuses the examples' 2020 dates).
func TestSeedExamples(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	eff := recent()

	rec := h.do("POST", "/accounts/"+acct+"/line_items/payments/payment_record", h.token, `{
		"line_item_id": "0x1234", "original_amount_cents": 200, "line_item_status": "PENDING",
		"effective_at": "`+eff+`", "external_fields": [{"key": "Globex Card Processing Account ID", "value": "22445702-a389-431f-927d-07b8d0750787"}]}`).wantStatus(200)
	if rec.str("line_item_overview", "line_item_type") != "PAYMENT" || rec.str("line_item_overview", "line_item_status") != "PENDING" {
		t.Fatalf("payment_record %s", rec.body)
	}

	charge := h.do("POST", "/accounts/"+acct+"/line_items/charges", h.token, `{"line_item_id":"0x1235","line_item_status":"VALID",
		"original_amount_cents":200,"effective_at":"`+eff+`","merchant_data":{"name":"string","id":"string","mcc_code":"string","phone_number":"string"},
		"issuer_processor_metadata":{"lithic":{"last_four":"string"}},
		"external_fields":[{"key":"Globex Card Processing Account ID","value":"22445702-a389-431f-927d-07b8d0750787"}]}`).wantStatus(200)
	if charge.str("merchant_data", "mcc_code") != "string" || charge.str("issuer_processor_details", "lithic", "last_four") != "string" ||
		charge.str("line_item_overview", "description") != "Charge against the account" || charge.str("product_id") != "prod_1" {
		t.Fatalf("charge %s", charge.body)
	}
	for _, k := range []string{"account_id", "line_item_id", "effective_at", "created_at", "updated_at", "product_id",
		"line_item_summary", "merchant_data", "issuer_processor_details", "external_fields", "line_item_overview"} {
		if _, ok := charge.json[k]; !ok {
			t.Errorf("charge response lacks %s", k)
		}
	}

	put := h.do("PUT", "/accounts/"+acct+"/line_items/0x1234", h.token, `{"line_item_status":"VALID","original_amount_cents":200}`).wantStatus(200)
	if put.str("line_item_overview", "line_item_status") != "VALID" || put.str("valid_at") == "" {
		t.Fatalf("PUT %s", put.body)
	}
}

func TestIdempotentReplays(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	path := "/accounts/" + acct + "/line_items/payments/payment_record"
	body := map[string]any{"line_item_id": "pay-1", "original_amount_cents": 5000, "line_item_status": "PENDING", "external_fields": map[string]any{}}
	first := h.do("POST", path, h.token, body).wantStatus(200)

	// Same body, spelled differently (array instead of {}, keys reordered): a replay.
	h.do("POST", path, h.token, `{"external_fields":[],"line_item_status":"PENDING","original_amount_cents":5000,"line_item_id":"pay-1"}`).wantStatus(200)
	h.do("PUT", "/accounts/"+acct+"/line_items/pay-1", h.token, map[string]any{"line_item_status": "VALID"}).wantStatus(200)
	replay := h.do("POST", path, h.token, body).wantStatus(200)
	if replay.str("line_item_overview", "line_item_status") != "VALID" || replay.str("created_at") != first.str("created_at") {
		t.Fatalf("replay should answer the current state: %s", replay.body)
	}
	body["original_amount_cents"] = 5001
	h.do("POST", path, h.token, body).wantError(409, codeDuplicateLineItemID)
	// The same id on another route is another request.
	h.do("POST", "/accounts/"+acct+"/line_items/charges", h.token, map[string]any{"line_item_id": "pay-1", "original_amount_cents": 5000}).
		wantError(409, codeDuplicateLineItemID)

	var transitions int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM line_item_transitions WHERE org_id = $1 AND line_item_id = 'pay-1'`, h.org).Scan(&transitions); err != nil {
		t.Fatal(err)
	}
	if transitions != 2 { // created PENDING, PUT to VALID; replays add nothing
		t.Fatalf("%d transitions, want 2", transitions)
	}

	// Idempotency-Key where line_item_id is absent.
	charges := "/accounts/" + acct + "/line_items/charges"
	a := h.do("POST", charges, h.token, map[string]any{"original_amount_cents": 700}, "Idempotency-Key", "order-77").wantStatus(200)
	b := h.do("POST", charges, h.token, map[string]any{"original_amount_cents": 700}, "Idempotency-Key", "order-77").wantStatus(200)
	if a.str("line_item_id") != b.str("line_item_id") {
		t.Fatalf("Idempotency-Key replay created %s and %s", a.str("line_item_id"), b.str("line_item_id"))
	}
	h.do("POST", charges, h.token, map[string]any{"original_amount_cents": 701}, "Idempotency-Key", "order-77").wantError(409, codeIdempotencyKeyReused)
	h.do("POST", charges, h.token, map[string]any{"original_amount_cents": 1}, "Idempotency-Key", "bad key").wantError(422, codeInvalidRequest, "/header/Idempotency-Key")
	c := h.do("POST", charges, h.token, map[string]any{"original_amount_cents": 700}).wantStatus(200)
	if c.str("line_item_id") == a.str("line_item_id") {
		t.Fatal("a request without key or id was treated as a replay")
	}
}

func TestConcurrentReplaysCreateOneLineItem(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := h.do("POST", "/accounts/"+acct+"/line_items/charges", h.token, map[string]any{"line_item_id": "race-1", "original_amount_cents": 300})
			if res.status != 200 {
				t.Errorf("status %d: %s", res.status, res.body)
			}
			ids[i] = res.str("created_at")
		}(i)
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("replays answered different line items: %v", ids)
		}
	}
	var n int
	_ = env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM line_item_transitions WHERE org_id = $1`, h.org).Scan(&n)
	if n != 1 {
		t.Fatalf("%d transitions recorded, want 1", n)
	}
}

func TestValidationErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	record := "/accounts/" + acct + "/line_items/payments/payment_record"
	charges := "/accounts/" + acct + "/line_items/charges"
	tooMany := make([]map[string]string, 11)
	for i := range tooMany {
		tooMany[i] = map[string]string{"key": "k", "value": "v"}
	}
	old := time.Now().Add(-11 * 24 * time.Hour).UTC().Format(time.RFC3339)
	future := time.Now().AddDate(1, 1, 0).UTC().Format(time.RFC3339)
	tests := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
		fields []string
	}{
		{"empty body", record, "", 400, codeMalformedJSON, nil},
		{"syntax", record, `{"line_item_id":`, 400, codeMalformedJSON, nil},
		{"not an object", record, `[1,2]`, 422, codeInvalidRequest, []string{"/"}},
		{"missing required", record, `{}`, 422, codeInvalidRequest, []string{"/line_item_id", "/original_amount_cents"}},
		{"wrong types", record, `{"line_item_id":7,"original_amount_cents":"200","line_item_status":true,"effective_at":5}`, 422, codeInvalidRequest,
			[]string{"/line_item_id", "/original_amount_cents", "/line_item_status", "/effective_at"}},
		{"fractional cents", record, `{"line_item_id":"a","original_amount_cents":2.5}`, 422, codeInvalidRequest, []string{"/original_amount_cents"}},
		{"huge cents", record, `{"line_item_id":"a","original_amount_cents":99999999999999999999}`, 422, codeInvalidRequest, []string{"/original_amount_cents"}},
		{"amount bounds and id rules", record, `{"line_item_id":"can_1","original_amount_cents":10000000000}`, 422, codeInvalidRequest, []string{"/line_item_id", "/original_amount_cents"}},
		{"zero amount", charges, `{"original_amount_cents":0}`, 422, codeInvalidRequest, []string{"/original_amount_cents"}},
		{"id pattern", charges, `{"line_item_id":"has space","original_amount_cents":1}`, 422, codeInvalidRequest, []string{"/line_item_id"}},
		{"id too long", charges, map[string]any{"line_item_id": strings.Repeat("a", 65), "original_amount_cents": 1}, 422, codeInvalidRequest, []string{"/line_item_id"}},
		{"status not allowed on record", record, `{"line_item_id":"a","original_amount_cents":1,"line_item_status":"VOID"}`, 422, codeInvalidRequest, []string{"/line_item_status"}},
		{"effective too old", record, `{"line_item_id":"a","original_amount_cents":1,"effective_at":"` + old + `"}`, 422, codeInvalidRequest, []string{"/effective_at"}},
		{"effective too far", record, `{"line_item_id":"a","original_amount_cents":1,"effective_at":"` + future + `"}`, 422, codeInvalidRequest, []string{"/effective_at"}},
		{"effective not RFC 3339", record, `{"line_item_id":"a","original_amount_cents":1,"effective_at":"2026-11-20"}`, 422, codeInvalidRequest, []string{"/effective_at"}},
		{"too many external fields", record, map[string]any{"line_item_id": "a", "original_amount_cents": 1, "external_fields": tooMany}, 422, codeInvalidRequest, []string{"/external_fields"}},
		{"external fields object", record, `{"line_item_id":"a","original_amount_cents":1,"external_fields":{"k":"v"}}`, 422, codeInvalidRequest, []string{"/external_fields"}},
		{"external field shape", charges, `{"original_amount_cents":1,"external_fields":[{"key":"k"},3,{"key":"k","value":"v","x":1}]}`, 422, codeInvalidRequest,
			[]string{"/external_fields/0/value", "/external_fields/1", "/external_fields/2/x"}},
		{"unknown fields", charges, `{"original_amount_cents":1,"amount":1,"merchant_data":{"nam":"x"}}`, 422, codeInvalidRequest, []string{"/merchant_data/nam", "/amount"}},
		{"PAN in last_four", charges, `{"original_amount_cents":1,"issuer_processor_metadata":{"lithic":{"last_four":"4111111111111111"}}}`, 422, codeInvalidRequest,
			[]string{"/issuer_processor_metadata/lithic/last_four"}},
		{"too large", charges, `{"original_amount_cents":1,"x":"` + strings.Repeat("a", 1<<20) + `"}`, 413, codeBodyTooLarge, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.t = t
			h.do("POST", tt.path, h.token, tt.body).wantError(tt.status, tt.code, tt.fields...)
		})
	}
	h.t = t
	h.do("POST", charges, h.token, `{"original_amount_cents":1}`, "Content-Type", "text/plain").wantError(415, codeUnsupportedMediaType)
}

func TestUpdateStateRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	item := func(id, status string) string {
		h.do("POST", "/accounts/"+acct+"/line_items/charges", h.token, map[string]any{"line_item_id": id, "original_amount_cents": 100, "line_item_status": status}).wantStatus(200)
		return "/accounts/" + acct + "/line_items/" + id
	}
	pending := item("p1", "PENDING")
	res := h.do("PUT", pending, h.token, map[string]any{"original_amount_cents": 150}).wantStatus(200)
	if res.str("line_item_overview", "line_item_status") != "PENDING" {
		t.Fatalf("amount-only PUT changed the status: %s", res.body)
	}
	h.do("PUT", pending, h.token, map[string]any{"line_item_status": "DECLINED"}).wantStatus(200)
	h.do("PUT", pending, h.token, map[string]any{"line_item_status": "DECLINED"}).wantStatus(200) // no-op repeat
	h.do("PUT", pending, h.token, map[string]any{"line_item_status": "VALID"}).wantError(409, codeInvalidStateTransition)
	h.do("PUT", pending, h.token, map[string]any{"original_amount_cents": 1}).wantError(409, codeInvalidStateTransition)
	for _, final := range []string{"INVALID", "VOID"} {
		p := item("f-"+final, final)
		h.do("PUT", p, h.token, map[string]any{"line_item_status": "VALID"}).wantError(409, codeInvalidStateTransition)
	}
	h.do("PUT", pending, h.token, map[string]any{}).wantError(422, codeInvalidRequest, "/")
	h.do("PUT", pending, h.token, map[string]any{"line_item_status": "SETTLED", "original_amount_cents": -1}).
		wantError(422, codeInvalidRequest, "/line_item_status", "/original_amount_cents")
	h.do("PUT", "/accounts/"+acct+"/line_items/nope", h.token, map[string]any{"line_item_status": "VALID"}).wantError(404, codeNotFound)

	var rows []string
	r, err := env.Pool.Query(context.Background(), `SELECT COALESCE(from_status, '-') || '>' || to_status || ':' || amount_cents || ':' || actor
		FROM line_item_transitions WHERE org_id = $1 AND line_item_id = 'p1' ORDER BY id`, h.org)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var s string
		_ = r.Scan(&s)
		rows = append(rows, s[:strings.LastIndex(s, ":")])
	}
	want := "->PENDING:100,PENDING>PENDING:150,PENDING>DECLINED:150"
	if strings.Join(rows, ",") != want {
		t.Fatalf("transitions %v, want %s", rows, want)
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	base := "/accounts/" + acct + "/line_items"
	for i := 1; i <= 5; i++ {
		path, status := base+"/charges", "VALID"
		body := map[string]any{"line_item_id": fmt.Sprintf("li-%d", i), "original_amount_cents": 100 * i, "line_item_status": status}
		if i%2 == 0 {
			path = base + "/payments/payment_record"
			body["line_item_status"] = "PENDING"
		}
		h.do("POST", path, h.token, body).wantStatus(200)
	}
	ids := func(r response) string {
		var out []string
		for _, it := range r.json["results"].([]any) {
			out = append(out, it.(map[string]any)["line_item_id"].(string))
		}
		return strings.Join(out, ",")
	}
	p1 := h.do("GET", base+"?limit=2", h.token, nil).wantStatus(200)
	if ids(p1) != "li-5,li-4" || p1.json["paging"].(map[string]any)["has_more"] != true {
		t.Fatalf("page 1 %s", p1.body)
	}
	p2 := h.do("GET", base+"?limit=2&starting_after="+p1.str("paging", "starting_after"), h.token, nil).wantStatus(200)
	if ids(p2) != "li-3,li-2" {
		t.Fatalf("page 2 %s", p2.body)
	}
	p3 := h.do("GET", base+"?limit=2&starting_after="+p2.str("paging", "starting_after"), h.token, nil).wantStatus(200)
	if ids(p3) != "li-1" || p3.json["paging"].(map[string]any)["has_more"] != false {
		t.Fatalf("page 3 %s", p3.body)
	}
	back := h.do("GET", base+"?limit=2&ending_before="+p3.str("paging", "ending_before"), h.token, nil).wantStatus(200)
	if ids(back) != "li-3,li-2" || back.json["paging"].(map[string]any)["has_more"] != true {
		t.Fatalf("back %s", back.body)
	}
	f := h.do("GET", base+"?line_item_status=PENDING", h.token, nil).wantStatus(200)
	if ids(f) != "li-4,li-2" {
		t.Fatalf("status filter %s", f.body)
	}
	f = h.do("GET", base+"?line_item_type=CHARGE,PAYMENT_REVERSAL", h.token, nil).wantStatus(200)
	if ids(f) != "li-5,li-3,li-1" {
		t.Fatalf("type filter %s", f.body)
	}
	one := h.do("GET", base+"/li-3", h.token, nil).wantStatus(200)
	if one.str("line_item_id") != "li-3" {
		t.Fatalf("GET one %s", one.body)
	}
	h.do("GET", base+"/li-9", h.token, nil).wantError(404, codeNotFound)
	h.do("GET", base+"?limit=0&starting_after=zzz&line_item_status=NOPE&line_item_type=LOAN&sort=asc", h.token, nil).
		wantError(422, codeInvalidRequest, "/query/sort", "/query/limit", "/query/starting_after", "/query/line_item_status", "/query/line_item_type")
	h.do("GET", base+"?starting_after="+p1.str("paging", "starting_after")+"&ending_before="+p1.str("paging", "starting_after"), h.token, nil).
		wantError(422, codeInvalidRequest, "/query/ending_before")
	empty := h.do("GET", "/accounts/"+h.account()+"/line_items", h.token, nil).wantStatus(200)
	if string(mustJSON(empty.json["results"])) != "[]" {
		t.Fatalf("empty list %s", empty.body)
	}
}

func TestOperationalRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.do("GET", "/healthz", "", nil).wantStatus(200)
	res := h.do("GET", "/readyz", "", nil).wantStatus(200)
	if res.str("checks", "postgres") != "ok" {
		t.Fatalf("readyz %s", res.body)
	}
	h.do("GET", "/accounts/x", h.token, nil)
	// /metrics is not on the API (see TestMetricsNotOnAPI); the registry it
	// fills is served by the process's ops listener.
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `payrail_http_requests_total{code="404",route="GET /accounts/{account_id}"} 1`) {
		t.Fatalf("metrics lack the request counter:\n%s", rec.Body)
	}
	h.do("GET", "/no/such/route", h.token, nil).wantError(404, codeRouteNotFound)
	res = h.do("DELETE", "/accounts/x", h.token, nil).wantError(405, codeMethodNotAllowed)
	if !strings.Contains(res.header.Get("Allow"), "GET") {
		t.Fatalf("405 Allow %q", res.header.Get("Allow"))
	}
}

func TestNotReady(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Ready = []Check{{Name: "nats", Fn: func(context.Context) error { return fmt.Errorf("connection refused") }}}
	})
	res := h.do("GET", "/readyz", "", nil).wantStatus(503)
	if res.str("checks", "nats") != "unavailable" || strings.Contains(string(res.body), "refused") {
		t.Fatalf("readyz %s", res.body)
	}
}
