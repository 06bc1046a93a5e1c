package anetsim

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func merchantAuth(login, key string) string {
	return `"merchantAuthentication":{"name":"` + login + `","transactionKey":"` + key + `"}`
}

// Profiles belong to the merchant login that created them: another login
// can neither read nor charge them (E00040, as on the real gateway), and
// each login sees only its own transactions.
func TestProfilesPerMerchant(t *testing.T) {
	h := newHarness(t, Options{Merchants: map[string]string{"merchant-b": "KeyOfMerchantB1"}})
	authA, authB := auth, merchantAuth("merchant-b", "KeyOfMerchantB1")

	// createCustomerProfileRequest under the default merchant (A).
	res, err := h.http.Post(h.url, "application/json", strings.NewReader(`{"createCustomerProfileRequest":{`+authA+
		`,"profile":{"merchantCustomerId":"c1","paymentProfiles":{"billTo":{"firstName":"Ada","zip":"12345"},`+
		`"payment":{"creditCard":{"cardNumber":"4007000000027","expirationDate":"2035-12"}}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		CustomerProfileID            string   `json:"customerProfileId"`
		CustomerPaymentProfileIDList []string `json:"customerPaymentProfileIdList"`
		Messages                     struct {
			ResultCode string `json:"resultCode"`
		} `json:"messages"`
	}
	raw := readBody(t, res.Body)
	if err := json.Unmarshal(trimBOM(raw), &created); err != nil || created.Messages.ResultCode != "Ok" ||
		created.CustomerProfileID == "" || len(created.CustomerPaymentProfileIDList) != 1 {
		t.Fatalf("createCustomerProfile: %v %s", err, raw)
	}
	cust, pay := created.CustomerProfileID, created.CustomerPaymentProfileIDList[0]

	get := func(a string) reply {
		return h.post(t, `{"getCustomerPaymentProfileRequest":{`+a+`,"customerProfileId":"`+cust+`","customerPaymentProfileId":"`+pay+`"}}`)
	}
	if r := get(authA); r.code() != "I00001" {
		t.Fatalf("owner reads its profile: %+v", r)
	}
	if r := get(authB); r.code() != "E00040" {
		t.Fatalf("another merchant reads the profile: %+v", r)
	}
	if r := get(merchantAuth("merchant-b", "wrong")); r.code() != "E00007" {
		t.Fatalf("wrong key: %+v", r)
	}

	chargeBody := func(a, inv string) string {
		return `{"createTransactionRequest":{` + a + `,"transactionRequest":{"transactionType":"authCaptureTransaction","amount":"5.00","profile":{"customerProfileId":"` + cust + `","paymentProfile":{"paymentProfileId":"` + pay + `"}},"order":{"invoiceNumber":"` + inv + `"}}}}`
	}
	if r := h.post(t, chargeBody(authB, "B-1")); r.code() != "E00040" || r.TransactionResponse != nil {
		t.Fatalf("another merchant charges the profile: %+v", r)
	}
	r := h.post(t, chargeBody(authA, "A-1"))
	if r.TransactionResponse == nil || r.TransactionResponse.ResponseCode != "1" || r.TransactionResponse.AccountNumber != "XXXX0027" {
		t.Fatalf("owner charges its profile: %+v", r)
	}
	id := r.TransactionResponse.TransID
	txns := h.srv.Transactions()
	if len(txns) != 1 || txns[0].LoginID != DefaultLoginID || txns[0].InvoiceNumber != "A-1" {
		t.Fatalf("recorded: %+v", txns)
	}
	if h.srv.RequestsBy("merchant-b", "createTransactionRequest") != 1 || h.srv.RequestsBy(DefaultLoginID, "createTransactionRequest") != 1 {
		t.Fatal("requests per login not counted")
	}
	// Transactions are the merchant's own.
	if r := h.post(t, `{"getTransactionDetailsRequest":{`+authB+`,"transId":"`+id+`"}}`); r.code() != "E00040" {
		t.Fatalf("another merchant reads the transaction: %+v", r)
	}
	if r := h.post(t, `{"getUnsettledTransactionListRequest":{`+authB+`}}`); r.Total != 0 {
		t.Fatalf("another merchant lists the transaction: %+v", r)
	}
	if r := h.post(t, `{"getUnsettledTransactionListRequest":{`+authA+`}}`); r.Total != 1 {
		t.Fatalf("owner's list: %+v", r)
	}

	// AddProfileFor seeds a profile for tests; AcceptAnyProfile does not
	// reach profiles another merchant has.
	anyp := newHarness(t, Options{AcceptAnyProfile: true, Merchants: map[string]string{"merchant-b": "KeyOfMerchantB1"}})
	anyp.srv.AddProfileFor("merchant-b", "11", "22", Profile{CardNumber: "5424000000000015", ExpirationDate: "2035-01"})
	if r := anyp.post(t, `{"getCustomerPaymentProfileRequest":{`+authB+`,"customerProfileId":"11","customerPaymentProfileId":"22"}}`); r.code() != "I00001" {
		t.Fatalf("seeded profile: %+v", r)
	}
	if r := anyp.post(t, `{"getCustomerPaymentProfileRequest":{`+authA+`,"customerProfileId":"11","customerPaymentProfileId":"22"}}`); r.code() != "E00040" {
		t.Fatalf("AcceptAnyProfile reached another merchant's profile: %+v", r)
	}
	if r := anyp.post(t, `{"getCustomerPaymentProfileRequest":{`+authA+`,"customerProfileId":"77","customerPaymentProfileId":"88"}}`); r.code() != "I00001" {
		t.Fatalf("AcceptAnyProfile, unknown ids: %+v", r)
	}
}

func readBody(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
