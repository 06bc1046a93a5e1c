package intake

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzRequestDecoding sends arbitrary bodies to every route that reads one,
// through the full handler and the real database: whatever the bytes, the
// answer is never a 5xx and never leaks a Go error or stack trace.
func FuzzRequestDecoding(f *testing.F) {
	for _, seed := range []string{
		`{"line_item_id":"0x1234","original_amount_cents":200,"line_item_status":"VALID","effective_at":"2026-11-20T09:11:28+00:00","external_fields":{}}`,
		`{"line_item_id":"0x1234","line_item_status":"VALID","original_amount_cents":200,"merchant_data":{"name":"string","id":"string","mcc_code":"string","phone_number":"string"},"issuer_processor_metadata":{"lithic":{"last_four":"string"}},"external_fields":[{"key":"k","value":"v"}]}`,
		`{"line_item_status":"VALID","original_amount_cents":200}`,
		`{"ach":{"payment_processor_name":"CANOPY_NACHA","canopy_nacha_config":{"bank_routing_number":"021000021","bank_account_number":"1234","bank_account_type":"CHECKING"}}}`,
		`{"nacha_destination_config":{"bank_name":"x","bank_routing_number":"011000015"},"company_name":"x","is_balanced_nacha":true}`,
		`{"product_id":"p","account_id":"a"}`,
		`{"client_id":"x","client_secret":"y"}`,
		`{"original_amount_cents":1e400}`, `{"external_fields":[null,{"key":null}]}`, `{"a":{"b":{"c":[[[[]]]]}}}`,
		`"\ud800"`, `[]`, `null`, `{`, "", "\xff\xfe", `{"original_amount_cents":-0}`, `{"effective_at":"9999-99-99T99:99:99Z"}`,
		// Text PostgreSQL cannot store: NUL and invalid UTF-8 in strings.
		`{"product_id":"p\u0000","customer_name":"\xff","external_fields":[{"key":"\u0000","value":"\xfe"}]}`,
		"{\"line_item_id\":\"a\xff\",\"original_amount_cents\":1,\"merchant_data\":{\"name\":\"\x00\"}}",
		`{"original_amount_cents":1,"issuer_processor_metadata":{"lithic":{"last_four":"\u0000"}}}`,
		`{"client_id":"\u0000","client_secret":"\xc3\x28"}`, "a\x00b", "%ff%fe",
	} {
		f.Add([]byte(seed))
	}
	h := newHarness(&testing.T{})
	acct := "acct_fuzz"
	h.do("POST", "/accounts", h.token, map[string]any{"account_id": acct, "product_id": "p"})
	h.do("POST", "/accounts/"+acct+"/line_items/charges", h.token, map[string]any{"line_item_id": "li", "original_amount_cents": 1})
	routes := []struct{ method, path string }{
		{"POST", "/auth/token"},
		{"POST", "/accounts"},
		{"PUT", "/accounts/" + acct + "/payment_processor_config"},
		{"PUT", "/organization/nacha_config"},
		{"POST", "/accounts/" + acct + "/line_items/payments/payment_record"},
		{"POST", "/accounts/" + acct + "/line_items/charges"},
		{"PUT", "/accounts/" + acct + "/line_items/li"},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, rt := range routes {
			req := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+h.token)
			rec := httptest.NewRecorder()
			h.api.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %s answered %d for %q: %s", rt.method, rt.path, rec.Code, body, rec.Body)
			}
			if rec.Code >= 400 && (strings.Contains(rec.Body.String(), "goroutine") || strings.Contains(rec.Body.String(), "json: ")) {
				t.Fatalf("%s %s leaked internals: %s", rt.method, rt.path, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%s %s answered %q", rt.method, rt.path, ct)
			}
		}
		// The same bytes as a path id and as query values.
		for _, path := range []string{
			"/accounts/" + url.PathEscape(string(body)),
			"/accounts/" + acct + "/line_items/" + url.PathEscape(string(body)),
			"/accounts/" + acct + "/line_items?starting_after=" + url.QueryEscape(string(body)),
			"/accounts/" + acct + "/line_items?line_item_type=" + url.QueryEscape(string(body)),
		} {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL, _ = url.Parse(path)
			req.RequestURI = path
			req.Header.Set("Authorization", "Bearer "+h.token)
			rec := httptest.NewRecorder()
			h.api.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("GET %s answered %d: %s", path, rec.Code, rec.Body)
			}
		}
	})
}
