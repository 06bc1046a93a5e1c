package intake

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
)

// TestUnstorableText sends text PostgreSQL cannot store (NUL, invalid
// UTF-8) in every place the API reads text: each is refused with 422
// naming the field, or 404 for a path id, never a 500.
func TestUnstorableText(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	base := "/accounts/" + acct + "/line_items"
	h.do("POST", base+"/charges", h.token, map[string]any{"line_item_id": "li_1", "original_amount_cents": 1}).wantStatus(200)
	clientID, secret := h.client(h.org, "admin")
	const nul, bad = `\u0000`, "\xff\xfe"
	guest := func(name string) string {
		return `{"original_amount_cents":100,"payment_details":{"payment_type":"ACH","payment_processor_name":"CANOPY_NACHA",` +
			`"bank_routing_number":"021000021","bank_account_number":"12345678","standard_entry_class":"WEB","name":"` + name + `"}}`
	}
	form := func(v url.Values) []byte { return []byte(v.Encode()) }
	formCT := []string{"Content-Type", "application/x-www-form-urlencoded"}
	basic := func(id, secret string) []string {
		return append(formCT[:2:2], "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
	}
	cases := []struct {
		name, method, path string
		body               string
		headers            []string
		status             int
		code               string
		fields             []string
	}{
		{"customer_name NUL", "POST", "/accounts", `{"product_id":"p","customer_name":"a` + nul + `b"}`, nil, 422, codeInvalidRequest, []string{"/customer_name"}},
		{"product_id invalid UTF-8", "POST", "/accounts", `{"product_id":"p` + bad + `"}`, nil, 422, codeInvalidRequest, []string{"/product_id"}},
		{"account_id NUL", "POST", "/accounts", `{"product_id":"p","account_id":"a` + nul + `"}`, nil, 422, codeInvalidRequest, []string{"/account_id"}},
		{"account external key NUL", "POST", "/accounts", `{"product_id":"p","external_fields":[{"key":"` + nul + `","value":"v"}]}`, nil, 422, codeInvalidRequest, []string{"/external_fields/0/key"}},
		{"charge external value invalid UTF-8", "POST", base + "/charges", `{"original_amount_cents":1,"external_fields":[{"key":"k","value":"` + bad + `"}]}`, nil, 422, codeInvalidRequest, []string{"/external_fields/0/value"}},
		{"charge merchant_data NUL", "POST", base + "/charges", `{"original_amount_cents":1,"merchant_data":{"name":"x` + nul + `"}}`, nil, 422, codeInvalidRequest, []string{"/merchant_data/name"}},
		{"charge merchant_data invalid UTF-8", "POST", base + "/charges", `{"original_amount_cents":1,"merchant_data":{"mcc_code":"` + bad + `"}}`, nil, 422, codeInvalidRequest, []string{"/merchant_data/mcc_code"}},
		{"charge last_four NUL", "POST", base + "/charges", `{"original_amount_cents":1,"issuer_processor_metadata":{"lithic":{"last_four":"` + nul + `"}}}`, nil, 422, codeInvalidRequest, []string{"/issuer_processor_metadata/lithic/last_four"}},
		{"record line_item_id NUL", "POST", base + "/payments/payment_record", `{"line_item_id":"a` + nul + `","original_amount_cents":1}`, nil, 422, codeInvalidRequest, []string{"/line_item_id"}},
		{"status invalid UTF-8", "PUT", base + "/li_1", `{"line_item_status":"` + bad + `"}`, nil, 422, codeInvalidRequest, []string{"/line_item_status"}},
		{"payment_details.name NUL", "POST", base + "/payments/guest_payment", guest("A" + nul), nil, 422, codeInvalidRequest, []string{"/payment_details/name"}},
		{"payment_details.name invalid UTF-8", "POST", base + "/payments/guest_payment", guest("A" + bad), nil, 422, codeInvalidRequest, []string{"/payment_details/name"}},
		{"token client_id NUL", "POST", "/auth/token", `{"client_id":"` + nul + `","client_secret":"s"}`, nil, 422, codeInvalidRequest, []string{"/client_id"}},
		{"token client_id invalid UTF-8", "POST", "/auth/token", `{"client_id":"` + bad + `","client_secret":"s"}`, nil, 422, codeInvalidRequest, []string{"/client_id"}},
		{"token form client_id NUL", "POST", "/auth/token", string(form(url.Values{"grant_type": {"client_credentials"}, "client_id": {"a\x00"}, "client_secret": {secret}})), formCT, 422, codeInvalidRequest, []string{"/client_id"}},
		{"token form client_secret invalid UTF-8", "POST", "/auth/token", string(form(url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {bad}})), formCT, 422, codeInvalidRequest, []string{"/client_secret"}},
		{"token Basic id NUL", "POST", "/auth/token", "grant_type=client_credentials", basic("a\x00", secret), 422, codeInvalidRequest, []string{"/header/Authorization"}},
		{"token Basic id invalid UTF-8", "POST", "/auth/token", "grant_type=client_credentials", basic(bad, secret), 422, codeInvalidRequest, []string{"/header/Authorization"}},
		{"account path NUL", "GET", "/accounts/a%00b", "", nil, 404, codeNotFound, nil},
		{"account path invalid UTF-8", "GET", "/accounts/%ff%fe", "", nil, 404, codeNotFound, nil},
		{"processor config path NUL", "PUT", "/accounts/a%00/payment_processor_config", `{}`, nil, 404, codeNotFound, nil},
		{"list path NUL", "GET", "/accounts/a%00/line_items", "", nil, 404, codeNotFound, nil},
		{"charge path invalid UTF-8", "POST", "/accounts/%ff/line_items/charges", `{"original_amount_cents":1}`, nil, 404, codeNotFound, nil},
		{"line item path NUL", "GET", base + "/li%00", "", nil, 404, codeNotFound, nil},
		{"line item path invalid UTF-8", "PUT", base + "/%ff%fe", `{"line_item_status":"VOID"}`, nil, 404, codeNotFound, nil},
		{"query status NUL", "GET", base + "?line_item_status=%00", "", nil, 422, codeInvalidRequest, []string{"/query/line_item_status"}},
		{"query cursor invalid UTF-8", "GET", base + "?starting_after=%ff%fe", "", nil, 422, codeInvalidRequest, []string{"/query/starting_after"}},
		{"query limit NUL", "GET", base + "?limit=1%00", "", nil, 422, codeInvalidRequest, []string{"/query/limit"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hh := *h
			hh.t = t
			var body any
			if c.body != "" {
				body = []byte(c.body)
			}
			token := h.token
			if c.path == "/auth/token" {
				token = ""
			}
			hh.do(c.method, c.path, token, body, c.headers...).wantError(c.status, c.code, c.fields...)
		})
	}
	// Nothing of the above was stored, and the org still works.
	res := h.do("GET", base, h.token, nil).wantStatus(200)
	if n := strings.Count(string(res.body), `"line_item_id"`); n != 1 {
		t.Fatalf("%d line items after the refused requests, want 1: %s", n, res.body)
	}
}

// listIDs is the line_item_id of each result of a list response.
func listIDs(r response) []string {
	var out []string
	for _, it := range r.json["results"].([]any) {
		out = append(out, it.(map[string]any)["line_item_id"].(string))
	}
	return out
}

func paging(r response) (startingAfter, endingBefore string, hasMore bool) {
	p := r.json["paging"].(map[string]any)
	startingAfter, _ = p["starting_after"].(string)
	endingBefore, _ = p["ending_before"].(string)
	return startingAfter, endingBefore, p["has_more"] == true
}

// walk pages through base (a list URL with its query) from the newest
// item to the oldest, then back, and returns the ids seen each way.
func walk(h *harness, base string) (forward, backward []string) {
	h.t.Helper()
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	res := h.do("GET", base, h.token, nil).wantStatus(200)
	for pages := 0; ; pages++ {
		if pages > 1000 {
			h.t.Fatal("paging does not end")
		}
		forward = append(forward, listIDs(res)...)
		after, _, more := paging(res)
		if !more {
			break
		}
		res = h.do("GET", base+sep+"starting_after="+after, h.token, nil).wantStatus(200)
	}
	// Back from the oldest page: each page newest first, pages newer and newer.
	backward = listIDs(res)
	for pages := 0; ; pages++ {
		if pages > 1000 {
			h.t.Fatal("paging back does not end")
		}
		_, before, _ := paging(res)
		if before == "" {
			break
		}
		res = h.do("GET", base+sep+"ending_before="+before, h.token, nil).wantStatus(200)
		backward = append(listIDs(res), backward...)
		if _, _, more := paging(res); !more {
			break
		}
	}
	return forward, backward
}

// TestCursorsAreOpaqueAndScoped: a cursor shows nothing of the global
// line item sequence, works only on the account (and org) it came from,
// cannot be edited or forged, and paging still sees every item once.
func TestCursorsAreOpaqueAndScoped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.account(), h.account()
	var want []string
	for i := 1; i <= 7; i++ {
		id := "li-" + strconv.Itoa(i)
		h.do("POST", "/accounts/"+a+"/line_items/charges", h.token, map[string]any{"line_item_id": id, "original_amount_cents": i}).wantStatus(200)
		want = append([]string{id}, want...)
	}
	baseA := "/accounts/" + a + "/line_items"
	page := h.do("GET", baseA+"?limit=1", h.token, nil).wantStatus(200)
	cursor, _, _ := paging(page)
	var seq int64
	if err := env.Pool.QueryRow(context.Background(), `SELECT seq FROM line_items WHERE org_id = $1 AND account_id = $2 AND line_item_id = 'li-7'`,
		h.org, a).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	// The cursor must not carry the seq in any plain encoding. A bare
	// digit search of the cursor's text or bytes is no test: a sealed
	// cursor is random-looking text in an alphabet with digits, and a
	// small seq such as 57 turns up in it by chance (CI saw it); the
	// encodings a leak would use are looked for instead.
	raw, _ := base64.RawURLEncoding.DecodeString(cursor)
	var be [8]byte
	binary.BigEndian.PutUint64(be[:], uint64(seq))
	dec := strconv.FormatInt(seq, 10)
	for _, leak := range [][]byte{be[:], be[4:], []byte("li:" + dec), []byte(":" + dec)} {
		if bytes.Contains(raw, leak) || strings.Contains(cursor, string(leak)) {
			t.Fatalf("cursor %q shows seq %d (%q)", cursor, seq, leak)
		}
	}
	if _, err := strconv.ParseInt(cursor, 10, 64); err == nil {
		t.Fatalf("cursor %q is a number", cursor)
	}

	other := newHarness(t) // another org, with an account of the same id
	other.do("POST", "/accounts", other.token, map[string]any{"account_id": a, "product_id": "p"}).wantStatus(200)
	other.do("POST", "/accounts/"+a+"/line_items/charges", other.token, map[string]any{"line_item_id": "x", "original_amount_cents": 1}).wantStatus(200)
	edited := []byte(cursor)
	edited[3] ^= 1
	if edited[3] == '-'^1 || edited[3] == '_'^1 {
		edited[3] = 'A'
	}
	oldStyle := base64.RawURLEncoding.EncodeToString([]byte("li:" + strconv.FormatInt(seq, 10)))
	for _, c := range []struct {
		name string
		h    *harness
		path string
	}{
		{"another account", h, "/accounts/" + b + "/line_items?starting_after=" + cursor},
		{"another account, backwards", h, "/accounts/" + b + "/line_items?ending_before=" + cursor},
		{"another org, same account id", other, baseA + "?starting_after=" + cursor},
		{"edited", h, baseA + "?starting_after=" + string(edited)},
		{"truncated", h, baseA + "?ending_before=" + cursor[:len(cursor)-2]},
		{"the old seq encoding", h, baseA + "?starting_after=" + oldStyle},
		{"forged", h, baseA + "?starting_after=" + base64.RawURLEncoding.EncodeToString(make([]byte, 16))},
	} {
		t.Run(c.name, func(t *testing.T) {
			hh := *c.h
			hh.t = t
			field := "/query/starting_after"
			if strings.Contains(c.path, "ending_before") {
				field = "/query/ending_before"
			}
			hh.do("GET", c.path, hh.token, nil).wantError(422, codeInvalidRequest, field)
		})
	}

	for _, limit := range []int{1, 2, 3, 7, 100} {
		fwd, back := walk(h, baseA+"?limit="+strconv.Itoa(limit))
		if strings.Join(fwd, ",") != strings.Join(want, ",") || strings.Join(back, ",") != strings.Join(want, ",") {
			t.Fatalf("limit %d: forward %v, backward %v, want %v", limit, fwd, back, want)
		}
	}
}

// TestLineItemSizeBounds: what one line item may carry is bounded at
// intake, naming the field.
func TestLineItemSizeBounds(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	charges := "/accounts/" + acct + "/line_items/charges"
	ef := func(k, v string) map[string]any {
		return map[string]any{"original_amount_cents": 1, "external_fields": []map[string]string{{"key": "k", "value": "v"}, {"key": k, "value": v}}}
	}
	cases := []struct {
		name   string
		path   string
		body   any
		fields []string // nil: accepted
	}{
		{"key of 64", charges, ef(strings.Repeat("k", 64), "v"), nil},
		{"key of 64 runes", charges, ef(strings.Repeat("é", 64), "v"), nil},
		{"key of 65", charges, ef(strings.Repeat("k", 65), "v"), []string{"/external_fields/1/key"}},
		{"value of 256", charges, ef("k", strings.Repeat("v", 256)), nil},
		{"value of 257", charges, ef("k", strings.Repeat("v", 257)), []string{"/external_fields/1/value"}},
		{"value of 1 KiB", charges, ef("k", strings.Repeat("v", 1024)), []string{"/external_fields/1/value"}},
		{"account key of 65", "/accounts", map[string]any{"product_id": "p", "external_fields": []map[string]string{{"key": strings.Repeat("k", 65), "value": "v"}}},
			[]string{"/external_fields/0/key"}},
		{"merchant name of 256", charges, map[string]any{"original_amount_cents": 1, "merchant_data": map[string]string{"name": strings.Repeat("m", 256)}},
			[]string{"/merchant_data/name"}},
		{"101 external fields", charges, map[string]any{"original_amount_cents": 1, "external_fields": make([]map[string]string, 101)},
			[]string{"/external_fields"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hh := *h
			hh.t = t
			res := hh.do("POST", c.path, h.token, c.body)
			if c.fields == nil {
				res.wantStatus(200)
			} else {
				res.wantError(422, codeInvalidRequest, c.fields...)
			}
		})
	}
}

func withPageBytes(n int) harnessOpt { return func(c *Config) { c.PageBytes = n } }

// TestPageByteBudget: a page stops filling at its byte budget whatever
// the limit, says has_more, and paging still sees every item once in
// both directions.
func TestPageByteBudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withPageBytes(40<<10))
	acct := h.account()
	base := "/accounts/" + acct + "/line_items"
	var want []string
	for i := 1; i <= 9; i++ {
		fields := make([]map[string]string, 50)
		for j := range fields {
			fields[j] = map[string]string{"key": fmt.Sprintf("k%02d", j) + strings.Repeat("k", 61), "value": strings.Repeat("v", 256)}
		}
		id := "li-" + strconv.Itoa(i)
		h.do("POST", base+"/charges", h.token, map[string]any{"line_item_id": id, "original_amount_cents": i, "external_fields": fields}).wantStatus(200)
		want = append([]string{id}, want...)
	}
	// Each item weighs ~17 KiB: two fit in 40 KiB.
	first := h.do("GET", base+"?limit=1000", h.token, nil).wantStatus(200)
	if _, _, more := paging(first); len(listIDs(first)) != 2 || !more {
		t.Fatalf("page of %d items (has_more %v), want 2 and more", len(listIDs(first)), more)
	}
	if len(first.body) > 64<<10 {
		t.Fatalf("page of %d bytes", len(first.body))
	}
	fwd, back := walk(h, base+"?limit=1000")
	if strings.Join(fwd, ",") != strings.Join(want, ",") || strings.Join(back, ",") != strings.Join(want, ",") {
		t.Fatalf("forward %v, backward %v, want %v", fwd, back, want)
	}
	// One item heavier than the budget still makes a page of one.
	tiny := newHarness(t, withPageBytes(1))
	acct = tiny.account()
	tiny.do("POST", "/accounts/"+acct+"/line_items/charges", tiny.token, map[string]any{"line_item_id": "a", "original_amount_cents": 1}).wantStatus(200)
	tiny.do("POST", "/accounts/"+acct+"/line_items/charges", tiny.token, map[string]any{"line_item_id": "b", "original_amount_cents": 1}).wantStatus(200)
	fwd, back = walk(tiny, "/accounts/"+acct+"/line_items")
	if strings.Join(fwd, ",") != "b,a" || strings.Join(back, ",") != "b,a" {
		t.Fatalf("tiny budget: forward %v, backward %v", fwd, back)
	}
}

// TestDatabaseUnavailable: no free pool connection, or no PostgreSQL at
// all, is a 503 service_unavailable with Retry-After, not a 500.
func TestDatabaseUnavailable(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	tiny, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tiny.Close()
	h := newHarness(t, func(c *Config) {
		c.Store = store.New(tiny, env.Ring, canopy.Events{})
		c.DBTimeout = 300 * time.Millisecond
	})
	acct := h.account()
	clientID, secret := h.client(h.org, "admin")
	held, err := tiny.Acquire(ctx) // the pool's only connection
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()

	down, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	signer, _ := auth.NewSigner(testSigningKey, time.Hour)
	unreachable, err := New(Config{Store: store.New(down, env.Ring, canopy.Events{}), Ring: env.Ring, Signer: signer,
		Registry: prometheus.NewRegistry(), RateLimit: 1000, RateBurst: 1000, DBTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(unreachable)
	defer srv.Close()
	hDown := *h
	hDown.srv = srv

	for _, c := range []struct {
		name         string
		h            *harness
		method, path string
		body         any
		token        string
	}{
		{"pool exhausted: get account", h, "GET", "/accounts/" + acct, nil, h.token},
		{"pool exhausted: list", h, "GET", "/accounts/" + acct + "/line_items", nil, h.token},
		{"pool exhausted: charge", h, "POST", "/accounts/" + acct + "/line_items/charges", map[string]any{"original_amount_cents": 1}, h.token},
		{"pool exhausted: token", h, "POST", "/auth/token", map[string]string{"client_id": clientID, "client_secret": secret}, ""},
		{"unreachable: get account", &hDown, "GET", "/accounts/" + acct, nil, h.token},
		{"unreachable: charge", &hDown, "POST", "/accounts/" + acct + "/line_items/charges", map[string]any{"original_amount_cents": 1}, h.token},
		{"unreachable: token", &hDown, "POST", "/auth/token", map[string]string{"client_id": clientID, "client_secret": secret}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			hh := *c.h
			hh.t = t
			res := hh.do(c.method, c.path, c.token, c.body).wantError(503, codeServiceUnavailable)
			if res.header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		})
	}
	held.Release()
	h.do("GET", "/accounts/"+acct, h.token, nil).wantStatus(200)
}

// TestNonCleanPathsAndMetrics: paths the mux would redirect answer the
// JSON 404, without HTML, and /metrics is not served on the API.
func TestNonCleanPathsAndMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	for _, c := range []struct{ method, path string }{
		{"GET", "//accounts"},
		{"POST", "//accounts"},
		{"GET", "/accounts/../accounts/" + acct},
		{"GET", "/accounts/./" + acct},
		{"GET", "//accounts/" + acct},
		{"GET", "/accounts/" + acct + "/"},
		{"GET", "/accounts/" + acct + "//line_items"},
		{"GET", "/accounts/" + acct + "/line_items/"},
		{"POST", "/accounts/"},
		{"GET", "/healthz/"},
		{"GET", "/metrics"},
		{"GET", "/metrics/"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			// A raw request: the client must not clean the path itself.
			req, err := http.NewRequest(c.method, h.srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = c.path
			req.Header.Set("Authorization", "Bearer "+h.token)
			c := *h.srv.Client()
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != 404 || res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Location") != "" ||
				!strings.Contains(string(body), `"code":"route_not_found"`) {
				t.Fatalf("%d %q Location %q: %s", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Location"), body)
			}
		})
	}
	h.do("GET", "/metrics", "", nil).wantError(404, codeRouteNotFound)
}
