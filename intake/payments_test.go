package intake

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/auth"
	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/processors"
)

// The seed's sandbox Visa and CVV, and a bank account number long enough
// that its last four are not the whole number.
const (
	testPAN         = "4007000000027"
	testCVV         = "123"
	testBankAccount = "9876543210123"
)

func guestPath(acct string) string { return "/accounts/" + acct + "/line_items/payments/guest_payment" }
func transferPath(acct string) string {
	return "/accounts/" + acct + "/line_items/payments/payment_transfer"
}
func aliasPath(acct string) string { return "/accounts/" + acct + "/line_items/payments" }

// seedACH and seedDebit are the guest_payment request examples of the
// Canopy seed, verbatim except for a recent effective_at (docs/api.md refuses
// 2020) and, for the card, an expiry in the future (the seed's 12/00 is
// long past).
func seedACH(eff string) string {
	return `{"line_item_id":"0x1234","effective_at":"` + eff + `","original_amount_cents":200,"payment_details":{"payment_type":"ACH","payment_processor_name":"CANOPY_NACHA","bank_account_number":"1234","bank_routing_number":"021000021","standard_entry_class":"WEB"},"external_fields":{}}`
}

func seedDebit(eff string) string {
	return `{"line_item_id":"0x1234","effective_at":"` + eff + `","original_amount_cents":200,"payment_details":{"payment_type":"DEBIT","payment_processor_name":"AUTHORIZE_NET","name":"string","card_number":"` + testPAN + `","expiration_date":"12/30","cvv":"` + testCVV + `","zip":"12345"},"external_fields":{}}`
}

func achMethod() map[string]any {
	return map[string]any{"payment_type": "ACH", "payment_processor_name": "CANOPY_NACHA",
		"bank_account_number": testBankAccount, "bank_routing_number": "021000021", "standard_entry_class": "WEB"}
}

func debitMethod() map[string]any {
	return map[string]any{"payment_type": "DEBIT", "payment_processor_name": "AUTHORIZE_NET", "name": "Pat Doe",
		"card_number": testPAN, "expiration_date": "12/30", "cvv": testCVV, "zip": "12345"}
}

func guestBody(id string, details map[string]any) map[string]any {
	b := map[string]any{"original_amount_cents": 200, "effective_at": recent(), "external_fields": map[string]any{}}
	if id != "" {
		b["line_item_id"] = id
	}
	if details != nil {
		b["payment_details"] = details
	}
	return b
}

// processing returns the payment_processing extension of a line item response.
func processing(r response) map[string]any {
	r.t.Helper()
	pp, ok := r.json["payment_processing"].(map[string]any)
	if !ok {
		r.t.Fatalf("no payment_processing in %s", r.body)
	}
	return pp
}

// wantPending checks an executed payment as created: PENDING, its attempt
// queued with processor, and the masked instrument (nil: none known yet).
func wantPending(r response, processor string, instrument map[string]any) map[string]any {
	r.t.Helper()
	r.wantStatus(200)
	if r.str("line_item_overview", "line_item_status") != "PENDING" || r.str("line_item_overview", "line_item_type") != "PAYMENT" {
		r.t.Fatalf("not a PENDING payment: %s", r.body)
	}
	pp := processing(r)
	if pp["payment_processor_name"] != processor || pp["attempt_status"] != "queued" ||
		!strings.HasPrefix(pp["attempt_id"].(string), "att_") || pp["deliveries"] != float64(0) {
		r.t.Fatalf("payment_processing %s", mustJSON(pp))
	}
	for _, k := range []string{"processor_transaction_id", "result_code", "result_message", "nacha_file_id", "trace_number"} {
		if pp[k] != nil {
			r.t.Errorf("payment_processing.%s = %v before any processing", k, pp[k])
		}
	}
	if got := string(mustJSON(pp["instrument"])); got != string(mustJSON(instrument)) {
		r.t.Fatalf("instrument %s, want %s", got, mustJSON(instrument))
	}
	return pp
}

// wantNoSecrets fails if body or header shows any of secrets: a long one
// anywhere, a short one (a CVV) as a JSON string, since digits like 123
// turn up by chance inside timestamps.
func wantNoSecrets(t *testing.T, what string, body []byte, header http.Header, secrets ...string) {
	t.Helper()
	var hdr bytes.Buffer
	_ = header.Write(&hdr)
	for _, s := range secrets {
		needle := []byte(s)
		if len(s) < 8 {
			needle = []byte(`"` + s + `"`)
		}
		if bytes.Contains(body, needle) || (len(s) >= 8 && bytes.Contains(hdr.Bytes(), needle)) {
			t.Errorf("%s shows %q: %s", what, s, body)
		}
	}
}

// jobCount counts the org's job rows in the outbox.
func jobCount(t *testing.T, org string) int {
	t.Helper()
	var n int
	if err := env.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM outbox WHERE subject LIKE 'jobs.%' AND headers->>$2 = $1`, org, processors.HeaderOrgID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// storedJob returns a line item's job as stored: the subject of its outbox
// row, whether a fast path was to publish it, and the sealed job its
// attempt holds (the row itself stores none).
func storedJob(t *testing.T, org, accountID, lineItemID string) (subject string, payload []byte, fastPath bool) {
	t.Helper()
	var inRow bool
	if err := env.Pool.QueryRow(context.Background(), `
		SELECT o.subject, pa.job, o.fast_path, o.payload IS NOT NULL FROM outbox o
		  JOIN payment_attempts pa ON pa.job_msg_id = o.msg_id AND pa.attempt_id = o.attempt_id
		 WHERE pa.org_id = $1 AND pa.account_id = $2 AND pa.line_item_id = $3`,
		org, accountID, lineItemID).Scan(&subject, &payload, &fastPath, &inRow); err != nil {
		t.Fatalf("job of %s: %v", lineItemID, err)
	}
	if inRow {
		t.Fatalf("the outbox row of %s's job stores the job too; its attempt alone should", lineItemID)
	}
	return subject, payload, fastPath
}

func withLog(buf *testenv.LogBuffer) harnessOpt {
	return func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// fastPathRecorder stands in for the publisher: it keeps what the store
// hands it after commit.
type fastPathRecorder struct {
	mu   sync.Mutex
	msgs []store.OutboxMessage
}

func (f *fastPathRecorder) Enqueue(msgs []store.OutboxMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, msgs...)
}

func (f *fastPathRecorder) jobs() []store.OutboxMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.OutboxMessage
	for _, m := range f.msgs {
		if strings.HasPrefix(m.Subject, "jobs.") {
			out = append(out, m)
		}
	}
	return out
}

func withFastPath(fp store.FastPath) harnessOpt {
	return func(c *Config) {
		st := store.New(env.Pool, env.Ring, canopy.Events{})
		st.SetFastPath(fp)
		c.Store = st
	}
}

// accountWithoutName creates an account with no customer name.
func (h *harness) accountWithoutName() string {
	h.t.Helper()
	id := testenv.UniqueID("acct_")
	h.do("POST", "/accounts", h.token, map[string]any{"account_id": id, "product_id": "prod_1"}).wantStatus(200)
	return id
}

func (h *harness) configure(acct string, cfg map[string]any) {
	h.t.Helper()
	h.do("PUT", "/accounts/"+acct+"/payment_processor_config", h.token, cfg).wantStatus(200)
}

var (
	nachaConfig = map[string]any{"payment_processor_name": "CANOPY_NACHA", "canopy_nacha_config": map[string]any{
		"bank_routing_number": "021000021", "bank_account_number": testBankAccount, "bank_account_type": "SAVINGS"}}
	anetConfig = map[string]any{"payment_processor_name": "AUTHORIZE_NET", "authorize_net_config": map[string]any{
		"customer_profile_id": "1929820324", "payment_profile_id": "1841987457"}}
)

// Both guest_payment examples of the seed execute: PENDING with a queued
// attempt and the masked instrument, and nowhere the card number or CVV.
func TestGuestPaymentSeedExamples(t *testing.T) {
	t.Parallel()
	var logs testenv.LogBuffer
	h := newHarness(t, withLog(&logs))
	eff := recent()

	achAcct := h.account()
	ach := h.do("POST", guestPath(achAcct), h.token, seedACH(eff))
	// The seed's account number is 4 digits: shown in full it would be no
	// mask at all, so nothing of it is shown (processors.MaskedLastFour).
	wantPending(ach, "CANOPY_NACHA", map[string]any{"kind": "bank_account", "brand": nil, "last_four": ""})
	if ach.str("line_item_id") != "0x1234" || ach.str("account_id") != achAcct || ach.str("product_id") != "prod_1" ||
		ach.str("line_item_overview", "description") != "Payment against the account" ||
		ach.json["line_item_summary"].(map[string]any)["original_amount_cents"] != float64(200) ||
		string(mustJSON(ach.json["external_fields"])) != "[]" {
		t.Fatalf("ACH guest payment %s", ach.body)
	}
	if got, _ := time.Parse(time.RFC3339Nano, ach.str("effective_at")); !got.Equal(mustTime(t, eff)) {
		t.Fatalf("effective_at %s, sent %s", ach.str("effective_at"), eff)
	}

	debitAcct := h.account()
	debit := h.do("POST", guestPath(debitAcct), h.token, seedDebit(eff))
	wantPending(debit, "AUTHORIZE_NET", map[string]any{"kind": "card", "brand": "Visa", "last_four": "0027"})
	wantNoSecrets(t, "guest DEBIT response", debit.body, debit.header, testPAN, testCVV)

	// An ACH account number longer than four shows only its last four.
	long := h.do("POST", guestPath(achAcct), h.token, guestBody("ach-long", achMethod()))
	wantPending(long, "CANOPY_NACHA", map[string]any{"kind": "bank_account", "brand": nil, "last_four": "0123"})
	wantNoSecrets(t, "guest ACH response", long.body, long.header, testBankAccount)

	// Nor do the reads afterwards.
	for _, path := range []string{"/accounts/" + debitAcct + "/line_items/0x1234", "/accounts/" + debitAcct + "/line_items"} {
		res := h.do("GET", path, h.token, nil).wantStatus(200)
		wantNoSecrets(t, "GET "+path, res.body, res.header, testPAN, testCVV)
	}
	got := h.do("GET", "/accounts/"+debitAcct+"/line_items/0x1234", h.token, nil)
	if string(mustJSON(processing(got))) != string(mustJSON(processing(debit))) {
		t.Fatalf("GET shows %s, POST answered %s", mustJSON(processing(got)), mustJSON(processing(debit)))
	}
	res := h.do("GET", "/accounts/"+achAcct+"/line_items", h.token, nil).wantStatus(200)
	wantNoSecrets(t, "ACH list", res.body, res.header, testBankAccount)

	// One job per payment, on its processor's subject; the stored bodies
	// hold the details sealed, and the CVV not even sealed.
	if n := jobCount(t, h.org); n != 3 {
		t.Fatalf("%d job rows, want 3", n)
	}
	for _, j := range []struct{ acct, id, subject, secret string }{
		{achAcct, "0x1234", "jobs.CANOPY_NACHA", "021000021"},
		{achAcct, "ach-long", "jobs.CANOPY_NACHA", testBankAccount},
		{debitAcct, "0x1234", "jobs.AUTHORIZE_NET", testPAN},
	} {
		subject, payload, fast := storedJob(t, h.org, j.acct, j.id)
		if subject != j.subject || fast || payload == nil || bytes.Contains(payload, []byte(j.secret)) {
			t.Fatalf("job row of %s/%s: subject %s fast_path %v payload %s", j.acct, j.id, subject, fast, payload)
		}
	}
	_, debitPayload, _ := storedJob(t, h.org, debitAcct, "0x1234")
	if bytes.Contains(debitPayload, []byte(`"`+testCVV+`"`)) {
		t.Fatalf("stored card job shows the CVV in clear: %s", debitPayload)
	}
	job, err := processors.DecodeJob(env.Ring, debitPayload)
	if err != nil {
		t.Fatal(err)
	}
	if job.Card == nil || job.Card.Number != testPAN || job.Card.CVV != "" || job.Card.ExpirationDate != "12/30" ||
		job.Card.Zip != "12345" || job.Card.Name != "string" || job.AmountCents != 200 || job.Origin != "guest_payment" {
		t.Fatalf("stored card job %+v card %+v", job, job.Card)
	}

	wantNoSecrets(t, "the server log", logs.Bytes(), http.Header{}, testPAN, testBankAccount)
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Every docs/api.md rule of the executing routes answers 422 naming the field.
// edit sets each key of kv (key, value pairs) in d, or deletes it when the
// value is nil, and returns d.
func edit(d map[string]any, kv ...any) map[string]any {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(d, kv[i].(string))
		} else {
			d[kv[i].(string)] = kv[i+1]
		}
	}
	return d
}

func TestExecutingValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	h.configure(acct, map[string]any{"ach": nachaConfig})
	guest, transfer := guestPath(acct), transferPath(acct)
	old := time.Now().Add(-11 * 24 * time.Hour).UTC().Format(time.RFC3339)

	ach := func(kv ...any) map[string]any { return guestBody("v1", edit(achMethod(), kv...)) }
	debit := func(kv ...any) map[string]any { return guestBody("v1", edit(debitMethod(), kv...)) }
	top := func(base map[string]any, kv ...any) map[string]any {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(base, kv[i].(string))
			} else {
				base[kv[i].(string)] = kv[i+1]
			}
		}
		return base
	}
	const pd = "/payment_details/"
	tests := []struct {
		name   string
		path   string
		body   any
		fields []string
	}{
		{"bad ABA check digit", guest, ach("bank_routing_number", "021000022"), []string{pd + "bank_routing_number"}},
		{"routing not 9 digits", guest, ach("bank_routing_number", "02100002"), []string{pd + "bank_routing_number"}},
		{"account number too short", guest, ach("bank_account_number", "123"), []string{pd + "bank_account_number"}},
		{"account number too long", guest, ach("bank_account_number", strings.Repeat("1", 18)), []string{pd + "bank_account_number"}},
		{"unknown SEC code", guest, ach("standard_entry_class", "ARC"), []string{pd + "standard_entry_class"}},
		{"unknown bank account type", guest, ach("bank_account_type", "GL"), []string{pd + "bank_account_type"}},
		{"ACH name too long", guest, ach("name", strings.Repeat("N", 23)), []string{pd + "name"}},
		{"routing prefix not assigned", guest, ach("bank_routing_number", "500000005"), []string{pd + "bank_routing_number"}},
		{"ACH name of emoji", guest, ach("name", "😀😀😀"), []string{pd + "name"}},
		{"ACH name in Cyrillic", guest, ach("name", "Иван Петров"), []string{pd + "name"}},
		{"ACH name in CJK", guest, ach("name", "王小明"), []string{pd + "name"}},
		{"ACH name of 23 accented characters", guest, ach("name", strings.Repeat("é", 23)), []string{pd + "name"}},
		{"ACH required members", guest, ach("bank_routing_number", nil, "bank_account_number", nil, "standard_entry_class", nil),
			[]string{pd + "bank_routing_number", pd + "bank_account_number", pd + "standard_entry_class"}},
		{"Luhn failure", guest, debit("card_number", "4007000000028"), []string{pd + "card_number"}},
		{"card number too short", guest, debit("card_number", "400700000002"), []string{pd + "card_number"}},
		{"card number too long for the gateway", guest, debit("card_number", "60110000000000001"), []string{pd + "card_number"}},
		{"card number with dashes", guest, debit("card_number", "4111-1111-1111-1111"), []string{pd + "card_number"}},
		{"expired card (the seed's 12/00)", guest, debit("expiration_date", "12/00"), []string{pd + "expiration_date"}},
		{"expiry not MM/YY", guest, debit("expiration_date", "13/30"), []string{pd + "expiration_date"}},
		{"CVV too short", guest, debit("cvv", "12"), []string{pd + "cvv"}},
		{"CVV too long", guest, debit("cvv", "12345"), []string{pd + "cvv"}},
		{"CVV not digits", guest, debit("cvv", "12a"), []string{pd + "cvv"}},
		{"bad zip", guest, debit("zip", "1234"), []string{pd + "zip"}},
		{"zip not digits", guest, debit("zip", "ABCDE"), []string{pd + "zip"}},
		{"card name too long", guest, debit("name", strings.Repeat("N", 51)), []string{pd + "name"}},
		{"DEBIT required members", guest, debit("card_number", nil, "expiration_date", nil, "cvv", nil, "zip", nil),
			[]string{pd + "card_number", pd + "expiration_date", pd + "cvv", pd + "zip"}},
		{"ACH with AUTHORIZE_NET", guest, ach("payment_processor_name", "AUTHORIZE_NET"), []string{pd + "payment_processor_name"}},
		{"DEBIT with CANOPY_NACHA", guest, debit("payment_processor_name", "CANOPY_NACHA"), []string{pd + "payment_processor_name"}},
		{"unknown payment_type", guest, ach("payment_type", "CREDIT"), []string{pd + "payment_type"}},
		{"unknown processor", guest, ach("payment_processor_name", "REPAY"), []string{pd + "payment_processor_name"}},
		{"no type nor processor", guest, ach("payment_type", nil, "payment_processor_name", nil),
			[]string{pd + "payment_type", pd + "payment_processor_name"}},
		{"missing payment_details", guest, guestBody("v1", nil), []string{"/payment_details"}},
		{"null payment_details", guest, `{"original_amount_cents":200,"payment_details":null}`, []string{"/payment_details"}},
		{"payment_details not an object", guest, top(guestBody("v1", nil), "payment_details", []int{1}), []string{"/payment_details"}},
		{"card members in ACH details", guest, ach("cvv", "123", "card_number", testPAN), []string{pd + "card_number", pd + "cvv"}},
		{"bank members in DEBIT details", guest, debit("bank_account_number", "12345678"), []string{pd + "bank_account_number"}},
		{"unknown member in details", guest, ach("sec_code", "WEB"), []string{pd + "sec_code"}},
		{"unknown top-level member", guest, top(guestBody("v1", achMethod()), "amount", 200), []string{"/amount"}},
		{"amount 0", guest, top(guestBody("v1", achMethod()), "original_amount_cents", 0), []string{"/original_amount_cents"}},
		{"amount negative", guest, top(guestBody("v1", achMethod()), "original_amount_cents", -5), []string{"/original_amount_cents"}},
		{"amount above NACHA max", guest, top(guestBody("v1", achMethod()), "original_amount_cents", int64(10_000_000_000)), []string{"/original_amount_cents"}},
		{"amount missing", guest, top(guestBody("v1", achMethod()), "original_amount_cents", nil), []string{"/original_amount_cents"}},
		{"effective_at too old", guest, top(guestBody("v1", achMethod()), "effective_at", old), []string{"/effective_at"}},
		{"can_ line_item_id", guest, top(guestBody("can_1", achMethod())), []string{"/line_item_id"}},
		{"status other than PENDING", guest, top(guestBody("v1", achMethod()), "line_item_status", "VALID"), []string{"/line_item_status"}},
		{"several at once", guest, top(debit("cvv", "1", "zip", "1"), "line_item_id", "can_x", "original_amount_cents", 0),
			[]string{"/line_item_id", "/original_amount_cents", pd + "cvv", pd + "zip"}},

		{"transfer amount 0", transfer, map[string]any{"original_amount_cents": 0}, []string{"/original_amount_cents"}},
		{"transfer amount above max", transfer, map[string]any{"original_amount_cents": int64(10_000_000_000)}, []string{"/original_amount_cents"}},
		{"transfer can_ id", transfer, map[string]any{"line_item_id": "can_1", "original_amount_cents": 1}, []string{"/line_item_id"}},
		{"transfer effective_at too old", transfer, map[string]any{"original_amount_cents": 1, "effective_at": old}, []string{"/effective_at"}},
		{"transfer unknown payment_type", transfer, map[string]any{"original_amount_cents": 1, "payment_type": "CHECK"}, []string{"/payment_type"}},
		{"transfer takes no payment_details", transfer, map[string]any{"original_amount_cents": 1, "payment_details": achMethod()}, []string{"/payment_details"}},
		{"alias amount 0", aliasPath(acct), map[string]any{"original_amount_cents": 0}, []string{"/original_amount_cents"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.t = t
			h.do("POST", tt.path, h.token, tt.body).wantError(422, codeInvalidRequest, tt.fields...)
		})
	}
	h.t = t
	if n := jobCount(t, h.org); n != 0 {
		t.Fatalf("invalid requests wrote %d jobs", n)
	}

	// The edges that are allowed.
	max := guestBody("edge-1", achMethod())
	max["original_amount_cents"] = int64(9_999_999_999)
	h.do("POST", guest, h.token, max).wantStatus(200)
	// 22 characters, 44 bytes: the limit counts characters.
	h.do("POST", guest, h.token, guestBody("edge-3", edit(achMethod(), "name", strings.Repeat("é", 22)))).wantStatus(200)
	h.do("POST", guest, h.token, guestBody("edge-4", edit(achMethod(), "name", "Bjørn Strauß Łukasz"))).wantStatus(200)
	nine := debit("zip", "12345-6789", "cvv", "1234", "name", nil)
	nine["line_item_id"] = "edge-2"
	nine["line_item_status"] = "PENDING"
	h.do("POST", guest, h.token, nine).wantStatus(200)

	// Transport errors as on every route.
	h.do("POST", guest, h.token, `{"line_item_id":`).wantError(400, codeMalformedJSON)
	h.do("POST", guest, h.token, `{}`, "Content-Type", "text/plain").wantError(415, codeUnsupportedMediaType)
	h.do("POST", transfer, h.token, `{"original_amount_cents":1,"x":"`+strings.Repeat("a", 1<<20)+`"}`).wantError(413, codeBodyTooLarge)
}

// An ACH payment needs an account holder: payment_details.name or the
// account's customer name.
func TestACHNeedsAccountHolderName(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.accountWithoutName()
	h.do("POST", guestPath(acct), h.token, guestBody("n1", achMethod())).wantError(422, codeMissingHolderName)
	named := achMethod()
	named["name"] = "  Pat Doe  "
	wantPending(h.do("POST", guestPath(acct), h.token, guestBody("n1", named)), "CANOPY_NACHA",
		map[string]any{"kind": "bank_account", "brand": nil, "last_four": "0123"})
	// A card needs no name.
	card := debitMethod()
	delete(card, "name")
	h.do("POST", guestPath(acct), h.token, guestBody("n2", card)).wantStatus(200)

	h.configure(acct, map[string]any{"ach": nachaConfig})
	h.do("POST", transferPath(acct), h.token, map[string]any{"original_amount_cents": 100}).wantError(422, codeMissingHolderName)
	if n := jobCount(t, h.org); n != 2 {
		t.Fatalf("%d job rows, want 2", n)
	}
}

func TestPaymentTransfer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	none := h.account()
	h.do("POST", transferPath(none), h.token, map[string]any{"line_item_id": "t1", "original_amount_cents": 100}).
		wantError(422, codeNoProcessorConfigured)
	h.configure(none, map[string]any{"ach": map[string]any{"payment_processor_name": "NONE"}, "debit": map[string]any{"payment_processor_name": "NONE"}})
	h.do("POST", transferPath(none), h.token, map[string]any{"line_item_id": "t1", "original_amount_cents": 100}).
		wantError(422, codeNoProcessorConfigured)

	nacha := h.account()
	h.configure(nacha, map[string]any{"ach": nachaConfig})
	res := h.do("POST", transferPath(nacha), h.token, map[string]any{"line_item_id": "t1", "original_amount_cents": 100, "external_fields": []map[string]string{{"key": "k", "value": "v"}}})
	wantPending(res, "CANOPY_NACHA", map[string]any{"kind": "bank_account", "brand": nil, "last_four": "0123"})
	wantNoSecrets(t, "transfer response", res.body, res.header, testBankAccount)
	subject, payload, _ := storedJob(t, h.org, nacha, "t1")
	job, err := processors.DecodeJob(env.Ring, payload)
	if err != nil {
		t.Fatal(err)
	}
	if subject != "jobs.CANOPY_NACHA" || bytes.Contains(payload, []byte(testBankAccount)) || job.ACH == nil ||
		job.ACH.AccountNumber != testBankAccount || job.ACH.AccountType != "SAVINGS" || job.ACH.Name != "Ada Lovelace" ||
		job.Origin != "payment_transfer" {
		t.Fatalf("transfer job %s %+v %+v", subject, job, job.ACH)
	}
	// ACH is configured, DEBIT is not.
	h.do("POST", transferPath(nacha), h.token, map[string]any{"original_amount_cents": 100, "payment_type": "DEBIT"}).
		wantError(422, codeNoProcessorConfigured)

	anet := h.account()
	h.configure(anet, map[string]any{"debit": anetConfig})
	wantPending(h.do("POST", transferPath(anet), h.token, map[string]any{"line_item_id": "t1", "original_amount_cents": 250}),
		"AUTHORIZE_NET", nil)
	subject, payload, _ = storedJob(t, h.org, anet, "t1")
	if job, err = processors.DecodeJob(env.Ring, payload); err != nil {
		t.Fatal(err)
	}
	if subject != "jobs.AUTHORIZE_NET" || job.Profile == nil || job.Profile.CustomerProfileID != "1929820324" ||
		job.Profile.PaymentProfileID != "1841987457" || job.Card != nil || job.ACH != nil || job.AmountCents != 250 {
		t.Fatalf("profile job %s %+v", subject, job)
	}
	h.do("POST", transferPath(anet), h.token, map[string]any{"original_amount_cents": 100, "payment_type": "ACH"}).
		wantError(422, codeNoProcessorConfigured)

	// With both configured, payment_type picks the method; ACH by default.
	both := h.account()
	h.configure(both, map[string]any{"ach": nachaConfig, "debit": anetConfig})
	wantPending(h.do("POST", transferPath(both), h.token, map[string]any{"line_item_id": "d", "original_amount_cents": 100}),
		"CANOPY_NACHA", map[string]any{"kind": "bank_account", "brand": nil, "last_four": "0123"})
	wantPending(h.do("POST", transferPath(both), h.token, map[string]any{"line_item_id": "a", "original_amount_cents": 100, "payment_type": "ACH"}),
		"CANOPY_NACHA", map[string]any{"kind": "bank_account", "brand": nil, "last_four": "0123"})
	wantPending(h.do("POST", transferPath(both), h.token, map[string]any{"line_item_id": "c", "original_amount_cents": 100, "payment_type": "DEBIT"}),
		"AUTHORIZE_NET", nil)

	if n := jobCount(t, h.org); n != 5 {
		t.Fatalf("%d job rows, want 5", n)
	}
}

var sfDate = regexp.MustCompile(`^@[0-9]+$`)

// POST .../line_items/payments is payment_transfer plus Deprecation and a
// Link to its successor.
func TestDeprecatedPaymentsAlias(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	h.configure(acct, map[string]any{"ach": nachaConfig})
	body := map[string]any{"line_item_id": "dep-1", "original_amount_cents": 300}

	wantHeaders := func(r response, acct string) {
		t.Helper()
		if !sfDate.MatchString(r.header.Get("Deprecation")) {
			t.Errorf("Deprecation %q, want an RFC 9745 date like @1795392000", r.header.Get("Deprecation"))
		}
		if want := `</accounts/` + acct + `/line_items/payments/payment_transfer>; rel="successor-version"`; r.header.Get("Link") != want {
			t.Errorf("Link %q, want %q", r.header.Get("Link"), want)
		}
	}
	alias := h.do("POST", aliasPath(acct), h.token, body)
	wantPending(alias, "CANOPY_NACHA", map[string]any{"kind": "bank_account", "brand": nil, "last_four": "0123"})
	wantHeaders(alias, acct)

	// The same request on payment_transfer is a replay of it.
	transfer := h.do("POST", transferPath(acct), h.token, body).wantStatus(200)
	if transfer.header.Get("Deprecation") != "" || transfer.header.Get("Link") != "" {
		t.Errorf("payment_transfer announces a deprecation: %v", transfer.header)
	}
	if string(mustJSON(transfer.json)) != string(mustJSON(alias.json)) {
		t.Fatalf("payment_transfer answered %s, the alias %s", transfer.body, alias.body)
	}
	// Either answers the same for a new one.
	fresh := h.do("POST", transferPath(acct), h.token, map[string]any{"line_item_id": "dep-2", "original_amount_cents": 300}).wantStatus(200)
	aliasFresh := h.do("POST", aliasPath(acct), h.token, map[string]any{"line_item_id": "dep-3", "original_amount_cents": 300}).wantStatus(200)
	if fresh.str("line_item_overview", "description") != aliasFresh.str("line_item_overview", "description") ||
		string(mustJSON(processing(fresh)["instrument"])) != string(mustJSON(processing(aliasFresh)["instrument"])) {
		t.Fatalf("transfer %s\nalias %s", fresh.body, aliasFresh.body)
	}
	if n := jobCount(t, h.org); n != 3 {
		t.Fatalf("%d job rows, want 3", n)
	}

	// Errors behave like payment_transfer's, and carry the headers too.
	body["original_amount_cents"] = 301
	wantHeaders(h.do("POST", aliasPath(acct), h.token, body).wantError(409, codeDuplicateLineItemID), acct)
	unconfigured := h.account()
	wantHeaders(h.do("POST", aliasPath(unconfigured), h.token, map[string]any{"original_amount_cents": 1}).
		wantError(422, codeNoProcessorConfigured), unconfigured)
	wantHeaders(h.do("POST", aliasPath(acct), h.token, map[string]any{"original_amount_cents": 1, "payment_type": "DEBIT"}).
		wantError(422, codeNoProcessorConfigured), acct)
	wantHeaders(h.do("POST", aliasPath(acct), h.token, map[string]any{"original_amount_cents": 0}).
		wantError(422, codeInvalidRequest, "/original_amount_cents"), acct)
	wantHeaders(h.do("POST", aliasPath("acct_missing"), h.token, map[string]any{"original_amount_cents": 1}).
		wantError(404, codeNotFound), "acct_missing")
	ops := h.tokenFor(h.org, auth.RoleOperations)
	h.do("POST", aliasPath(acct), ops, map[string]any{"original_amount_cents": 1}).wantError(403, codeForbidden)
}

func TestExecutingIdempotency(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	path := guestPath(acct)
	body := guestBody("idem-1", debitMethod())
	first := h.do("POST", path, h.token, body)
	wantPending(first, "AUTHORIZE_NET", map[string]any{"kind": "card", "brand": "Visa", "last_four": "0027"})

	again := h.do("POST", path, h.token, body).wantStatus(200)
	if string(again.body) != string(first.body) {
		t.Fatalf("replay answered %s, first %s", again.body, first.body)
	}
	// The same request spelled differently (keys reordered, [] for {}) is a replay too.
	respelled := `{"payment_details":{"zip":"12345","cvv":"123","expiration_date":"12/30","card_number":"` + testPAN + `","name":"Pat Doe",
		"payment_processor_name":"AUTHORIZE_NET","payment_type":"DEBIT"},"external_fields":[],"effective_at":"` + body["effective_at"].(string) + `",
		"original_amount_cents":200,"line_item_id":"idem-1"}`
	if r := h.do("POST", path, h.token, respelled).wantStatus(200); processing(r)["attempt_id"] != processing(first)["attempt_id"] {
		t.Fatalf("respelled replay answered another attempt: %s", r.body)
	}
	if n := jobCount(t, h.org); n != 1 {
		t.Fatalf("%d job rows after replays, want 1", n)
	}

	// The same id with anything different: the amount, the card, the CVV, the route.
	for name, change := range map[string]func(b map[string]any){
		"amount": func(b map[string]any) { b["original_amount_cents"] = 201 },
		"card":   func(b map[string]any) { b["payment_details"].(map[string]any)["card_number"] = "4111111111111111" },
		"cvv":    func(b map[string]any) { b["payment_details"].(map[string]any)["cvv"] = "999" },
		"method": func(b map[string]any) { b["payment_details"] = achMethod() },
	} {
		b := guestBody("idem-1", debitMethod())
		b["effective_at"] = body["effective_at"]
		change(b)
		res := h.do("POST", path, h.token, b).wantError(409, codeDuplicateLineItemID)
		wantNoSecrets(t, "409 for "+name, res.body, res.header, testPAN, testCVV)
	}
	h.configure(acct, map[string]any{"debit": anetConfig})
	h.do("POST", transferPath(acct), h.token, map[string]any{"line_item_id": "idem-1", "original_amount_cents": 200}).
		wantError(409, codeDuplicateLineItemID)
	h.do("POST", "/accounts/"+acct+"/line_items/payments/payment_record", h.token, map[string]any{"line_item_id": "idem-1", "original_amount_cents": 200}).
		wantError(409, codeDuplicateLineItemID)
	if n := jobCount(t, h.org); n != 1 {
		t.Fatalf("%d job rows after conflicts, want 1", n)
	}

	// Without line_item_id, Idempotency-Key gives the same guarantee.
	keyed := map[string]any{"original_amount_cents": 700}
	a := h.do("POST", transferPath(acct), h.token, keyed, "Idempotency-Key", "order-77").wantStatus(200)
	b := h.do("POST", transferPath(acct), h.token, keyed, "Idempotency-Key", "order-77").wantStatus(200)
	if !strings.HasPrefix(a.str("line_item_id"), "can_") || a.str("line_item_id") != b.str("line_item_id") ||
		processing(a)["attempt_id"] != processing(b)["attempt_id"] {
		t.Fatalf("Idempotency-Key replay answered %s and %s", a.body, b.body)
	}
	guestKeyed := guestBody("", achMethod())
	g1 := h.do("POST", path, h.token, guestKeyed, "Idempotency-Key", "guest-1").wantStatus(200)
	g2 := h.do("POST", path, h.token, guestKeyed, "Idempotency-Key", "guest-1").wantStatus(200)
	if g1.str("line_item_id") != g2.str("line_item_id") {
		t.Fatalf("guest Idempotency-Key replay created %s and %s", g1.str("line_item_id"), g2.str("line_item_id"))
	}
	if n := jobCount(t, h.org); n != 3 {
		t.Fatalf("%d job rows after keyed replays, want 3", n)
	}
	h.do("POST", transferPath(acct), h.token, map[string]any{"original_amount_cents": 701}, "Idempotency-Key", "order-77").
		wantError(409, codeIdempotencyKeyReused)
	h.do("POST", transferPath(acct), h.token, keyed, "Idempotency-Key", "bad key").wantError(422, codeInvalidRequest, "/header/Idempotency-Key")
	// Without id or key, every request is a new payment.
	c := h.do("POST", transferPath(acct), h.token, keyed).wantStatus(200)
	if c.str("line_item_id") == a.str("line_item_id") {
		t.Fatal("a request without key or id was treated as a replay")
	}
	if n := jobCount(t, h.org); n != 4 {
		t.Fatalf("%d job rows, want 4", n)
	}
}

// Concurrent replays of one payment create one line item and one job.
func TestConcurrentExecutingReplays(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	body := guestBody("race-1", debitMethod())
	var wg sync.WaitGroup
	attempts := make([]any, 8)
	for i := range attempts {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := h.do("POST", guestPath(acct), h.token, body)
			if res.status != 200 {
				t.Errorf("status %d: %s", res.status, res.body)
				return
			}
			attempts[i] = res.json["payment_processing"].(map[string]any)["attempt_id"]
		}(i)
	}
	wg.Wait()
	for _, a := range attempts[1:] {
		if a != attempts[0] {
			t.Fatalf("replays answered different attempts: %v", attempts)
		}
	}
	if n := jobCount(t, h.org); n != 1 {
		t.Fatalf("%d job rows, want 1", n)
	}
}

// The fast path publishes the job with the CVV; the outbox row keeps the
// job without it, and a replay hands the fast path nothing.
func TestCardJobCVVOnlyOnFastPath(t *testing.T) {
	t.Parallel()
	fp := &fastPathRecorder{}
	h := newHarness(t, withFastPath(fp))
	acct := h.account()
	body := guestBody("fp-1", debitMethod())
	wantPending(h.do("POST", guestPath(acct), h.token, body), "AUTHORIZE_NET", map[string]any{"kind": "card", "brand": "Visa", "last_four": "0027"})

	jobs := fp.jobs()
	if len(jobs) != 1 {
		t.Fatalf("fast path got %d jobs, want 1", len(jobs))
	}
	fast, err := processors.DecodeJob(env.Ring, jobs[0].Body())
	if err != nil {
		t.Fatal(err)
	}
	if fast.Card == nil || fast.Card.CVV != testCVV || fast.Card.Number != testPAN || jobs[0].Subject != "jobs.AUTHORIZE_NET" {
		t.Fatalf("fast-path job %+v card %+v", fast, fast.Card)
	}
	if bytes.Contains(jobs[0].Body(), []byte(testPAN)) {
		t.Fatal("the fast-path body shows the card number in clear")
	}

	subject, stored, fastPath := storedJob(t, h.org, acct, "fp-1")
	if subject != "jobs.AUTHORIZE_NET" || !fastPath {
		t.Fatalf("job row subject %s fast_path %v", subject, fastPath)
	}
	if bytes.Equal(stored, jobs[0].Body()) || !bytes.Equal(stored, jobs[0].Payload) {
		t.Fatal("the attempt stores the fast-path body")
	}
	if bytes.Contains(stored, []byte(testPAN)) || bytes.Contains(stored, []byte(`"`+testCVV+`"`)) {
		t.Fatalf("stored job shows the card in clear: %s", stored)
	}
	job, err := processors.DecodeJob(env.Ring, stored)
	if err != nil {
		t.Fatal(err)
	}
	if job.Card == nil || job.Card.CVV != "" || job.Card.Number != testPAN || job.AttemptID != fast.AttemptID {
		t.Fatalf("stored job %+v card %+v", job, job.Card)
	}

	h.do("POST", guestPath(acct), h.token, body).wantStatus(200)
	if len(fp.jobs()) != 1 || jobCount(t, h.org) != 1 {
		t.Fatalf("a replay published or stored another job: %d fast, %d stored", len(fp.jobs()), jobCount(t, h.org))
	}
}

func TestExecutingRolesAndTenancy(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	h.configure(acct, map[string]any{"ach": nachaConfig})

	servicing := h.tokenFor(h.org, auth.RoleServicing)
	h.do("POST", guestPath(acct), servicing, guestBody("s1", achMethod())).wantStatus(200)
	h.do("POST", transferPath(acct), servicing, map[string]any{"line_item_id": "s2", "original_amount_cents": 1}).wantStatus(200)
	h.do("POST", aliasPath(acct), servicing, map[string]any{"line_item_id": "s3", "original_amount_cents": 1}).wantStatus(200)

	for _, role := range []string{auth.RoleOperations, auth.RoleReadonly} {
		tok := h.tokenFor(h.org, role)
		h.do("POST", guestPath(acct), tok, guestBody("o1", achMethod())).wantError(403, codeForbidden)
		h.do("POST", transferPath(acct), tok, map[string]any{"original_amount_cents": 1}).wantError(403, codeForbidden)
		h.do("POST", aliasPath(acct), tok, map[string]any{"original_amount_cents": 1}).wantError(403, codeForbidden)
	}
	// Operations may still record the payment it may not execute.
	ops := h.tokenFor(h.org, auth.RoleOperations)
	h.do("POST", "/accounts/"+acct+"/line_items/payments/payment_record", ops, map[string]any{"line_item_id": "r1", "original_amount_cents": 1}).wantStatus(200)
	h.do("POST", guestPath(acct), "", guestBody("u1", achMethod())).wantError(401, codeUnauthorized)

	other := h.tokenFor(testenv.UniqueID("org_other_"), auth.RoleAdmin)
	for _, tc := range []struct {
		path func(string) string
		body any
	}{
		{guestPath, guestBody("x1", achMethod())},
		{transferPath, map[string]any{"line_item_id": "x1", "original_amount_cents": 1}},
		{aliasPath, map[string]any{"line_item_id": "x1", "original_amount_cents": 1}},
	} {
		theirs := h.do("POST", tc.path(acct), other, tc.body).wantError(404, codeNotFound)
		absent := h.do("POST", tc.path("acct_does_not_exist"), other, tc.body).wantError(404, codeNotFound)
		if string(theirs.body) != string(absent.body) {
			t.Errorf("another org's account answers %s, a missing one %s", theirs.body, absent.body)
		}
	}
	if n := jobCount(t, h.org); n != 3 {
		t.Fatalf("%d job rows, want 3", n)
	}
	var theirs int
	_ = env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM line_items WHERE org_id = $1 AND line_item_id = 'x1'`, h.org).Scan(&theirs)
	if theirs != 0 {
		t.Fatal("another org wrote to the account")
	}
}

// Prefer: wait=N holds the response until the payment settles or N runs
// out; nothing processes payments here, so it runs out.
func TestPreferWait(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	start := time.Now()
	res := h.do("POST", guestPath(acct), h.token, guestBody("w1", debitMethod()), "Prefer", "wait=1")
	elapsed := time.Since(start)
	wantPending(res, "AUTHORIZE_NET", map[string]any{"kind": "card", "brand": "Visa", "last_four": "0027"})
	if res.header.Get("Preference-Applied") != "wait=1" {
		t.Fatalf("Preference-Applied %q", res.header.Get("Preference-Applied"))
	}
	if elapsed < 950*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("Prefer: wait=1 answered after %v", elapsed)
	}

	// Without Prefer the answer is immediate and says nothing about it;
	// other preferences are ignored.
	res = h.do("POST", guestPath(acct), h.token, guestBody("w2", debitMethod()), "Prefer", "return=minimal").wantStatus(200)
	if res.header.Get("Preference-Applied") != "" {
		t.Fatalf("Preference-Applied %q without a wait", res.header.Get("Preference-Applied"))
	}
	h.do("POST", guestPath(acct), h.token, guestBody("w3", debitMethod()), "Prefer", "wait=abc").wantError(422, codeInvalidRequest, "/header/Prefer")
	h.do("POST", guestPath(acct), h.token, guestBody("w3", debitMethod()), "Prefer", "wait=-1").wantError(422, codeInvalidRequest, "/header/Prefer")
	h.configure(acct, map[string]any{"ach": nachaConfig})
	h.do("POST", transferPath(acct), h.token, map[string]any{"original_amount_cents": 1}, "Prefer", "wait=x").wantError(422, codeInvalidRequest, "/header/Prefer")
	if n := jobCount(t, h.org); n != 2 {
		t.Fatalf("%d job rows, want 2", n)
	}
}

func TestPreferWaitParsing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefer []string
		want   time.Duration
		bad    bool
	}{
		{nil, 0, false},
		{[]string{"wait=5"}, 5 * time.Second, false},
		{[]string{"respond-async, wait=7"}, 7 * time.Second, false},
		{[]string{"return=minimal", "Wait = 2"}, 2 * time.Second, false},
		{[]string{`wait="3"`}, 3 * time.Second, false},
		{[]string{"wait=0"}, 0, false},
		{[]string{"wait=30"}, 30 * time.Second, false},
		{[]string{"wait=31"}, 30 * time.Second, false},
		{[]string{"wait=10000000000"}, 30 * time.Second, false}, // overflows a Duration unless capped first
		{[]string{"wait=9223372036854775807"}, 30 * time.Second, false},
		{[]string{"wait=-1"}, 0, true},
		{[]string{"wait=1.5"}, 0, true},
		{[]string{"wait="}, 0, true},
		{[]string{"wait=99999999999999999999"}, 0, true},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("POST", "/", nil)
		for _, v := range tt.prefer {
			r.Header.Add("Prefer", v)
		}
		got, aerr := preferWait(r)
		if (aerr != nil) != tt.bad || got != tt.want {
			t.Errorf("Prefer %q: %v, %v; want %v, bad=%v", tt.prefer, got, aerr, tt.want, tt.bad)
		}
	}
}

// A form-encoded token request over 1 MiB is 413 like a JSON one, not a
// malformed body.
func TestAuthTokenFormBodyTooLarge(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id, secret := h.client(h.org, auth.RoleServicing)
	creds := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}.Encode()
	form := creds + "&pad=" + strings.Repeat("a", 1<<20)
	h.do("POST", "/auth/token", "", []byte(form), "Content-Type", "application/x-www-form-urlencoded").wantError(413, codeBodyTooLarge)
	h.do("POST", "/auth/token", "", []byte(form), "Content-Type", "application/x-www-form-urlencoded; charset=utf-8").wantError(413, codeBodyTooLarge)
	h.do("POST", "/auth/token", "", `{"client_id":"`+strings.Repeat("a", 1<<20)+`"}`).wantError(413, codeBodyTooLarge)
	// Just under the limit is read, and a malformed form is still 400.
	ok := creds + "&pad="
	ok += strings.Repeat("a", 1<<20-len(ok))
	h.do("POST", "/auth/token", "", []byte(ok), "Content-Type", "application/x-www-form-urlencoded").wantStatus(200)
	h.do("POST", "/auth/token", "", []byte("grant_type=%zz"), "Content-Type", "application/x-www-form-urlencoded").wantError(400, codeMalformedJSON)
}
