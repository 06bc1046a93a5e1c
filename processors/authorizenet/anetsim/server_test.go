package anetsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	srv   *Server
	url   string
	clock *testClock
	http  *http.Client
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	c := &testClock{t: time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Cleanup(srv.Close)
	return &harness{srv: srv, url: ts.URL + Path, clock: c, http: &http.Client{Timeout: 2 * time.Second}}
}

// reply is the parts of a response the tests look at.
type reply struct {
	TransactionResponse *struct {
		ResponseCode  string `json:"responseCode"`
		AuthCode      string `json:"authCode"`
		AvsResultCode string `json:"avsResultCode"`
		CvvResultCode string `json:"cvvResultCode"`
		TransID       string `json:"transId"`
		AccountNumber string `json:"accountNumber"`
		AccountType   string `json:"accountType"`
		Messages      []struct {
			Code string `json:"code"`
		} `json:"messages"`
		Errors []struct {
			ErrorCode string `json:"errorCode"`
		} `json:"errors"`
	} `json:"transactionResponse"`
	Transaction  map[string]any   `json:"transaction"`
	Transactions []map[string]any `json:"transactions"`
	BatchList    []map[string]any `json:"batchList"`
	Total        int              `json:"totalNumInResultSet"`
	RefID        string           `json:"refId"`
	Messages     struct {
		ResultCode string `json:"resultCode"`
		Message    []struct {
			Code string `json:"code"`
			Text string `json:"text"`
		} `json:"message"`
	} `json:"messages"`
}

func (r reply) code() string {
	if len(r.Messages.Message) == 0 {
		return ""
	}
	return r.Messages.Message[0].Code
}

// reason is the transaction's reason code, from errors or messages.
func (r reply) reason() string {
	tr := r.TransactionResponse
	switch {
	case tr == nil:
		return ""
	case len(tr.Errors) > 0:
		return tr.Errors[0].ErrorCode
	case len(tr.Messages) > 0:
		return tr.Messages[0].Code
	}
	return ""
}

func (h *harness) post(t *testing.T, body string) reply {
	t.Helper()
	res, err := h.http.Post(h.url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !bytes.HasPrefix(raw, bom) {
		t.Fatalf("status %d, body %q: want 200 and a BOM", res.StatusCode, raw)
	}
	var r reply
	if err := json.Unmarshal(raw[len(bom):], &r); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return r
}

const auth = `"merchantAuthentication":{"name":"` + DefaultLoginID + `","transactionKey":"` + DefaultTransactionKey + `"}`

// charge is a createTransactionRequest in schema order.
type charge struct {
	typ, amount, card, exp, code, invoice, first, last, zip, window string
	noWindow                                                        bool
}

func (c charge) json() string {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	card := fmt.Sprintf(`"cardNumber":%q,"expirationDate":%q`, def(c.card, "4111111111111111"), def(c.exp, "2035-12"))
	if c.code != "" {
		card += fmt.Sprintf(`,"cardCode":%q`, c.code)
	}
	tr := fmt.Sprintf(`"transactionType":%q,"amount":%q,"payment":{"creditCard":{%s}},"order":{"invoiceNumber":%q}`,
		def(c.typ, "authCaptureTransaction"), def(c.amount, "10.00"), card, def(c.invoice, "INV-1"))
	if c.first != "" || c.last != "" || c.zip != "" {
		tr += fmt.Sprintf(`,"billTo":{"firstName":%q,"lastName":%q,"zip":%q}`, c.first, c.last, c.zip)
	}
	if !c.noWindow {
		tr += fmt.Sprintf(`,"transactionSettings":{"setting":[{"settingName":"duplicateWindow","settingValue":%q}]}`, def(c.window, "28800"))
	}
	return `{"createTransactionRequest":{` + auth + `,"refId":"r1","transactionRequest":{` + tr + `}}}`
}

func TestSchemaErrors(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name, body, code, contains string
	}{
		{"out of order", `{"createTransactionRequest":{` + auth + `,"transactionRequest":{"transactionType":"authCaptureTransaction","billTo":{"zip":"1"},"order":{"invoiceNumber":"1"}}}}`,
			"E00003", "has invalid child element 'order'"},
		{"unknown element", `{"createTransactionRequest":{` + auth + `,"transactionRequest":{"transactionType":"authCaptureTransaction","duplicateWindow":"5"}}}`,
			"E00003", "invalid child element 'duplicateWindow'"},
		{"envelope order", `{"createTransactionRequest":{"transactionRequest":{"transactionType":"authCaptureTransaction"},` + auth + `}}`,
			"E00003", "invalid child element 'merchantAuthentication'"},
		{"missing required", `{"createTransactionRequest":{` + auth + `,"transactionRequest":{"amount":"1.00"}}}`,
			"E00003", "incomplete content. List of possible elements expected: 'transactionType'"},
		{"too long", `{"createTransactionRequest":{` + auth + `,"refId":"123456789012345678901","transactionRequest":{"transactionType":"authCaptureTransaction"}}}`,
			"E00003", "greater than the MaxLength"},
		{"pan too long", `{"createTransactionRequest":{` + auth + `,"transactionRequest":{"transactionType":"authCaptureTransaction","payment":{"creditCard":{"cardNumber":"41111111111111112222","expirationDate":"2035-12"}}}}}`,
			"E00003", "cardNumber' element is invalid"},
		{"array for single element", `{"createTransactionRequest":{` + auth + `,"transactionRequest":[{"transactionType":"authCaptureTransaction"}]}}`,
			"E00003", "may occur only once"},
		{"bad decimal", `{"createTransactionRequest":{` + auth + `,"transactionRequest":{"transactionType":"authCaptureTransaction","amount":"ten"}}}`,
			"E00003", "not a valid Decimal"},
		{"payment choice missing", `{"createTransactionRequest":{` + auth + `,"transactionRequest":{"transactionType":"authCaptureTransaction","payment":{}}}}`,
			"E00003", "creditCard, bankAccount"},
		{"malformed JSON", `{"createTransactionRequest":`, "E00003", "Data at the root level is invalid"},
		{"unknown method", `{"chargeEverythingRequest":{` + auth + `}}`, "E00004", ""},
		{"bad credentials", `{"authenticateTestRequest":{"merchantAuthentication":{"name":"x","transactionKey":"y"}}}`, "E00007", ""},
		{"good credentials", `{"authenticateTestRequest":{` + auth + `}}`, "I00001", ""},
		{"unknown transaction", `{"getTransactionDetailsRequest":{` + auth + `,"transId":"1"}}`, "E00040", ""},
		{"non-numeric transId", `{"getTransactionDetailsRequest":{` + auth + `,"transId":"abc"}}`, "E00003", "Pattern"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post(t, tc.body)
			if r.code() != tc.code || !strings.Contains(r.Messages.Message[0].Text, tc.contains) {
				t.Fatalf("got %s %q, want %s containing %q", r.code(), r.Messages.Message[0].Text, tc.code, tc.contains)
			}
			if strings.Contains(r.Messages.Message[0].Text, "4111111111111111") {
				t.Error("error echoes the card number")
			}
		})
	}
	if n := h.srv.TotalCharges(); n != 0 {
		t.Fatalf("schema errors charged %d times", n)
	}
}

func TestTriggers(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		name                 string
		c                    charge
		rc, reason, avs, cvv string
		brand                string
	}{
		{name: "visa", c: charge{}, rc: "1", reason: "1", avs: "P", brand: "Visa"},
		{name: "amex", c: charge{card: "370000000000002", code: "1234"}, rc: "1", reason: "1", avs: "P", cvv: "M", brand: "AmericanExpress"},
		{name: "mastercard 2-series", c: charge{card: "2223000010309703"}, rc: "1", reason: "1", avs: "P", brand: "MasterCard"},
		{name: "discover", c: charge{card: "6011000000000012"}, rc: "1", reason: "1", avs: "P", brand: "Discover"},
		{name: "jcb", c: charge{card: "3088000000000017"}, rc: "1", reason: "1", avs: "P", brand: "JCB"},
		{name: "diners", c: charge{card: "38000000000006"}, rc: "1", reason: "1", avs: "P", brand: "DinersClub"},
		{name: "not a test card", c: charge{card: "4242424242424242"}, rc: "2", reason: "2", avs: "P", brand: "Visa"},
		{name: "luhn failure", c: charge{card: "4111111111111112"}, rc: "3", reason: "6"},
		{name: "expired", c: charge{exp: "2020-01"}, rc: "3", reason: "8"},
		{name: "expiry MMYY", c: charge{exp: "1235"}, rc: "1", reason: "1", avs: "P", brand: "Visa"},
		{name: "bad expiry", c: charge{exp: "13-35"}, rc: "3", reason: "7"},
		{name: "zip decline", c: charge{zip: "46282"}, rc: "2", reason: "2", avs: "Y", brand: "Visa"},
		{name: "zip avs N", c: charge{zip: "46205"}, rc: "1", reason: "1", avs: "N", brand: "Visa"},
		{name: "zip avs Z", c: charge{zip: "46217"}, rc: "1", reason: "1", avs: "Z", brand: "Visa"},
		{name: "card code M", c: charge{code: "900"}, rc: "1", reason: "1", avs: "P", cvv: "M", brand: "Visa"},
		{name: "card code N declines", c: charge{code: "901"}, rc: "2", reason: "65", avs: "P", cvv: "N", brand: "Visa"},
		{name: "card code U", c: charge{code: "903"}, rc: "1", reason: "1", avs: "P", cvv: "U", brand: "Visa"},
		{name: "error card 19", c: charge{card: ErrorCard, amount: "19.00"}, rc: "3", reason: "19"},
		{name: "error card 252 held", c: charge{card: ErrorCard, amount: "252.00"}, rc: "4", reason: "252", avs: "P", brand: "Visa"},
		{name: "error card 2", c: charge{card: ErrorCard, amount: "2.00"}, rc: "2", reason: "2", avs: "P", brand: "Visa"},
		{name: "error card with cents approves", c: charge{card: ErrorCard, amount: "19.01"}, rc: "1", reason: "1", avs: "P", brand: "Visa"},
		{name: "zero amount", c: charge{amount: "0.00"}, rc: "3", reason: "5"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.invoice = fmt.Sprintf("TRIG-%d", i)
			r := h.post(t, tc.c.json())
			tr := r.TransactionResponse
			if tr == nil || tr.ResponseCode != tc.rc || r.reason() != tc.reason {
				t.Fatalf("got %+v, want rc %s reason %s", r, tc.rc, tc.reason)
			}
			if tc.rc != "3" && (tr.AvsResultCode != tc.avs || tr.CvvResultCode != tc.cvv || tr.AccountType != tc.brand || !strings.HasPrefix(tr.AccountNumber, "XXXX")) {
				t.Errorf("avs %q cvv %q brand %q account %q", tr.AvsResultCode, tr.CvvResultCode, tr.AccountType, tr.AccountNumber)
			}
			if (tc.rc == "1") != (tr.AuthCode != "") {
				t.Errorf("authCode %q for rc %s", tr.AuthCode, tc.rc)
			}
			if tc.rc == "3" && tr.TransID != "0" {
				t.Errorf("error transId %q, want 0", tr.TransID)
			}
			if (r.Messages.ResultCode == "Ok") != (tc.rc == "1" || tc.rc == "4") {
				t.Errorf("resultCode %s for rc %s", r.Messages.ResultCode, tc.rc)
			}
		})
	}
}

func TestDuplicateWindow(t *testing.T) {
	h := newHarness(t, Options{})
	first := h.post(t, charge{code: "123", zip: "46201", first: "Ada", last: "Lovelace"}.json())
	orig := first.TransactionResponse.TransID

	// The same charge without the card code (a relay-published retry) is
	// a duplicate: the card code is not a duplicate-check field.
	dup := h.post(t, charge{zip: "46201", first: "Ada", last: "Lovelace"}.json())
	if dup.TransactionResponse.ResponseCode != "3" || dup.reason() != "11" || dup.TransactionResponse.TransID != orig ||
		dup.TransactionResponse.AuthCode != first.TransactionResponse.AuthCode || dup.TransactionResponse.AvsResultCode != "A" {
		t.Fatalf("duplicate = %+v, want reason 11 naming %s", dup.TransactionResponse, orig)
	}
	// Any compared field changed: a new transaction.
	for _, c := range []charge{
		{zip: "46201", first: "Ada", last: "Byron"},
		{zip: "46201", first: "Ada", last: "Lovelace", amount: "10.01"},
		{zip: "46201", first: "Ada", last: "Lovelace", invoice: "INV-2"},
		{zip: "46201", first: "Ada", last: "Lovelace", window: "600"},
	} {
		if r := h.post(t, c.json()); r.TransactionResponse.ResponseCode != "1" {
			t.Errorf("%+v: %+v, want a new approval", c, r.TransactionResponse)
		}
	}
	if n := h.srv.Charges("INV-1"); n != 4 {
		t.Fatalf("charges for INV-1 = %d, want 4", n)
	}

	// Past the window the same charge goes through again.
	h.clock.Advance(8*time.Hour + time.Second)
	if r := h.post(t, charge{zip: "46201", first: "Ada", last: "Lovelace"}.json()); r.TransactionResponse.ResponseCode != "1" {
		t.Fatalf("after the window: %+v", r.TransactionResponse)
	}

	// Without duplicateWindow: the default two minutes, and no details.
	h.post(t, charge{invoice: "INV-NW", noWindow: true}.json())
	r := h.post(t, charge{invoice: "INV-NW", noWindow: true}.json())
	if r.reason() != "11" || r.TransactionResponse.TransID != "0" {
		t.Fatalf("duplicate without window = %+v, want reason 11, transId 0", r.TransactionResponse)
	}
	h.clock.Advance(2 * time.Minute)
	if r := h.post(t, charge{invoice: "INV-NW", noWindow: true}.json()); r.TransactionResponse.ResponseCode != "1" {
		t.Fatalf("after two minutes: %+v", r.TransactionResponse)
	}

	// A declined original is a duplicate too, and processing errors are not.
	h.post(t, charge{invoice: "INV-D", zip: DeclineZip}.json())
	if r := h.post(t, charge{invoice: "INV-D", zip: DeclineZip}.json()); r.reason() != "11" {
		t.Fatalf("declined duplicate: %+v", r.TransactionResponse)
	}
	for range 2 {
		if r := h.post(t, charge{invoice: "INV-E", card: ErrorCard, amount: "20.00"}.json()); r.reason() != "20" {
			t.Fatalf("transient error retried: %+v", r.TransactionResponse)
		}
	}
}

func TestDetailsListsSettlementAndReview(t *testing.T) {
	h := newHarness(t, Options{})
	approved := h.post(t, charge{invoice: "A"}.json()).TransactionResponse.TransID
	held := h.post(t, charge{invoice: "H", card: ErrorCard, amount: "253.00"}.json()).TransactionResponse.TransID
	h.clock.Advance(time.Minute)
	h.post(t, charge{invoice: "D", zip: DeclineZip}.json())

	det := h.post(t, `{"getTransactionDetailsRequest":{`+auth+`,"transId":"`+held+`"}}`)
	if det.Transaction["transactionStatus"] != StatusFDSAuthorizedPendingReview || det.Transaction["responseCode"] != 4.0 {
		t.Fatalf("held details: %v", det.Transaction)
	}

	list := h.post(t, `{"getUnsettledTransactionListRequest":{`+auth+`,"sorting":{"orderBy":"submitTimeUTC","orderDescending":true},"paging":{"limit":2,"offset":1}}}`)
	if list.Total != 3 || len(list.Transactions) != 2 || list.Transactions[0]["invoiceNumber"] != "D" {
		t.Fatalf("unsettled page 1: %d %v", list.Total, list.Transactions)
	}
	pending := h.post(t, `{"getUnsettledTransactionListRequest":{`+auth+`,"status":"pendingApproval"}}`)
	if len(pending.Transactions) != 1 || pending.Transactions[0]["transId"] != held {
		t.Fatalf("pendingApproval: %v", pending.Transactions)
	}

	batch := h.srv.Settle()
	if batch == "" {
		t.Fatal("nothing settled")
	}
	list = h.post(t, `{"getUnsettledTransactionListRequest":{`+auth+`}}`)
	if len(list.Transactions) != 1 || list.Transactions[0]["transId"] != held {
		t.Fatalf("after settlement only the held one stays unsettled: %v", list.Transactions)
	}
	batches := h.post(t, `{"getSettledBatchListRequest":{`+auth+`,"firstSettlementDate":"2026-03-01T00:00:00Z","lastSettlementDate":"2026-03-03T00:00:00Z"}}`)
	if len(batches.BatchList) != 1 || batches.BatchList[0]["batchId"] != batch {
		t.Fatalf("batches: %v", batches.BatchList)
	}
	settled := h.post(t, `{"getTransactionListRequest":{`+auth+`,"batchId":"`+batch+`"}}`)
	if len(settled.Transactions) != 2 || settled.Transactions[0]["transId"] != approved || settled.Transactions[0]["transactionStatus"] != StatusSettledSuccessfully {
		t.Fatalf("batch transactions: %v", settled.Transactions)
	}

	upd := h.post(t, `{"updateHeldTransactionRequest":{`+auth+`,"heldTransactionRequest":{"action":"approve","refTransId":"`+held+`"}}}`)
	if upd.TransactionResponse == nil || upd.TransactionResponse.ResponseCode != "1" {
		t.Fatalf("approve held: %+v", upd)
	}
	if err := h.srv.Review(held, false); err != ErrNotHeld {
		t.Fatalf("second review: %v", err)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		fault   Fault
		status  int // 0: transport error
		charged int
	}{
		{FaultStatus5xx, 503, 0},
		{FaultStatus5xxAfter, 502, 1},
		{FaultDrop, 0, 0},
		{FaultDropAfter, 0, 1},
		{FaultHang, 0, 0},
		{FaultHangAfter, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			h := newHarness(t, Options{})
			h.srv.Inject("getTransactionDetailsRequest", FaultStatus5xx) // not taken by a charge
			h.srv.Inject("createTransactionRequest", tc.fault)
			client := &http.Client{Timeout: time.Second}
			res, err := client.Post(h.url, "application/json", strings.NewReader(charge{}.json()))
			switch {
			case tc.status == 0 && err == nil:
				res.Body.Close()
				t.Fatalf("got status %d, want a transport error", res.StatusCode)
			case tc.status != 0 && (err != nil || res.StatusCode != tc.status):
				t.Fatalf("got %v %v, want status %d", res, err, tc.status)
			}
			if res != nil {
				res.Body.Close()
			}
			if n := h.srv.Charges("INV-1"); n != tc.charged {
				t.Fatalf("charges = %d, want %d", n, tc.charged)
			}
			// The fault was used up; the next request is answered normally.
			if r := h.post(t, charge{invoice: "INV-2"}.json()); r.TransactionResponse.ResponseCode != "1" {
				t.Fatalf("after the fault: %+v", r.TransactionResponse)
			}
		})
	}
}

func TestRandomFaultsAndLatency(t *testing.T) {
	h := newHarness(t, Options{Seed: 1, Faults: Faults{DropRate: 1}})
	if _, err := h.http.Post(h.url, "application/json", strings.NewReader(charge{}.json())); err == nil {
		t.Fatal("drop rate 1 answered")
	}
	h.srv.SetFaults(Faults{Latency: 80 * time.Millisecond, Jitter: 20 * time.Millisecond})
	start := time.Now()
	h.post(t, charge{invoice: "INV-L"}.json())
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("answered in %v, want at least 80ms", d)
	}
	if n := h.srv.Requests("createTransactionRequest"); n != 2 {
		t.Fatalf("requests = %d", n)
	}
}

// TestConcurrentIdenticalCharges: the duplicate check and the ledger are
// one critical section, so racing identical requests charge once.
func TestConcurrentIdenticalCharges(t *testing.T) {
	h := newHarness(t, Options{})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inv := "SAME"
			if i%2 == 1 {
				inv = fmt.Sprintf("DIFF-%d", i)
			}
			res, err := h.http.Post(h.url, "application/json", strings.NewReader(charge{invoice: inv}.json()))
			if err == nil {
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	if n := h.srv.Charges("SAME"); n != 1 {
		t.Fatalf("identical charges made %d transactions", n)
	}
	if n := h.srv.TotalCharges(); n != 21 {
		t.Fatalf("total charges = %d, want 21", n)
	}
}

func TestProfiles(t *testing.T) {
	h := newHarness(t, Options{})
	body := func(cust, pay string) string {
		return `{"createTransactionRequest":{` + auth + `,"transactionRequest":{"transactionType":"authCaptureTransaction","amount":"5.00","profile":{"customerProfileId":"` + cust + `","paymentProfile":{"paymentProfileId":"` + pay + `"}},"order":{"invoiceNumber":"P-` + pay + `"}}}}`
	}
	if r := h.post(t, body("1", "2")); r.code() != "E00040" {
		t.Fatalf("unknown profile: %+v", r)
	}
	h.srv.AddProfile("1", "2", Profile{CardNumber: "5424000000000015", ExpirationDate: "2035-01", Zip: DeclineZip})
	if r := h.post(t, body("1", "2")); r.TransactionResponse.ResponseCode != "2" || r.TransactionResponse.AccountNumber != "XXXX0015" {
		t.Fatalf("profile with decline zip: %+v", r.TransactionResponse)
	}
	anyProfile := newHarness(t, Options{AcceptAnyProfile: true})
	if r := anyProfile.post(t, body("7", "8")); r.TransactionResponse.ResponseCode != "1" || r.TransactionResponse.AccountNumber != "XXXX1111" {
		t.Fatalf("AcceptAnyProfile: %+v", r.TransactionResponse)
	}
}

func TestServe(t *testing.T) {
	srv, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res.Body.Close()
	res, err = http.Get("http://" + ln.Addr().String() + Path)
	if err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v", res, err)
	}
	res.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
