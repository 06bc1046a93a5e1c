package anetsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func voidJSON(transID string) string {
	return `{"createTransactionRequest":{` + auth + `,"refId":"v1","transactionRequest":{"transactionType":"voidTransaction","refTransId":"` + transID + `"}}}`
}

func refundJSON(transID, amount, card, invoice string) string {
	return fmt.Sprintf(`{"createTransactionRequest":{`+auth+`,"refId":"f1","transactionRequest":{"transactionType":"refundTransaction","amount":%q,`+
		`"payment":{"creditCard":{"cardNumber":%q,"expirationDate":"XXXX"}},"refTransId":%q,"order":{"invoiceNumber":%q},`+
		`"transactionSettings":{"setting":[{"settingName":"duplicateWindow","settingValue":"28800"}]}}}}`, amount, card, transID, invoice)
}

// Void and refund follow the gateway's rules: void only while unsettled
// (a void of a void is reported done, 310; of a settled or unknown
// transaction, 16), refund only once settled (54 before), with the
// original's card, never above its amount (55), deduplicated like charges.
func TestVoidRefundAndSettlement(t *testing.T) {
	h := newHarness(t, Options{})
	charge := func(invoice string) string {
		r := h.post(t, charge{invoice: invoice}.json())
		if r.TransactionResponse.ResponseCode != "1" {
			t.Fatalf("charge %s: %+v", invoice, r.TransactionResponse)
		}
		return r.TransactionResponse.TransID
	}
	a := charge("A")
	b := charge("B")

	for _, tc := range []struct {
		name, body, wantResponse, wantReason string
	}{
		{"refund of an unsettled charge", refundJSON(a, "10.00", "XXXX1111", "RA"), "3", "54"},
		{"void of an unknown transaction", voidJSON("999999"), "3", "16"},
		{"void of an unsettled charge", voidJSON(a), "1", "1"},
		{"void of a voided charge", voidJSON(a), "1", "310"},
		{"refund of a voided charge", refundJSON(a, "10.00", "XXXX1111", "RA"), "3", "54"},
	} {
		r := h.post(t, tc.body)
		if r.TransactionResponse.ResponseCode != tc.wantResponse || r.reason() != tc.wantReason {
			t.Fatalf("%s: response %s reason %s, want %s %s", tc.name, r.TransactionResponse.ResponseCode, r.reason(), tc.wantResponse, tc.wantReason)
		}
	}
	if h.srv.Status(a) != StatusVoided || h.srv.Charges("A") != 0 {
		t.Fatalf("voided charge: status %s, %d charges", h.srv.Status(a), h.srv.Charges("A"))
	}

	// The nightly batch, over HTTP.
	settle := httptest.NewServer(http.HandlerFunc(h.srv.serveSettle))
	defer settle.Close()
	res, err := http.Post(settle.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var batch map[string]string
	_ = json.NewDecoder(res.Body).Decode(&batch)
	res.Body.Close()
	if batch["batch_id"] == "" || h.srv.Status(b) != StatusSettledSuccessfully || h.srv.Status(a) != StatusVoided {
		t.Fatalf("batch %v: b %s, a %s", batch, h.srv.Status(b), h.srv.Status(a))
	}

	for _, tc := range []struct {
		name, body, wantResponse, wantReason string
	}{
		{"void of a settled charge", voidJSON(b), "3", "16"},
		{"refund with another card", refundJSON(b, "10.00", "XXXX0027", "RB"), "3", "54"},
		{"refund above the original", refundJSON(b, "10.01", "XXXX1111", "RB"), "3", "55"},
		{"refund", refundJSON(b, "10.00", "XXXX1111", "RB"), "1", "1"},
		{"the same refund again", refundJSON(b, "10.00", "XXXX1111", "RB"), "3", "11"},
		{"another refund above what is left", refundJSON(b, "0.01", "1111", "RB2"), "3", "55"},
	} {
		r := h.post(t, tc.body)
		if r.TransactionResponse.ResponseCode != tc.wantResponse || r.reason() != tc.wantReason {
			t.Fatalf("%s: response %s reason %s, want %s %s", tc.name, r.TransactionResponse.ResponseCode, r.reason(), tc.wantResponse, tc.wantReason)
		}
	}
	if n := h.srv.Refunds(b); n != 1 {
		t.Fatalf("%d refunds of %s", n, b)
	}
	var refund string
	for _, tx := range h.srv.Transactions() {
		if tx.Type == typeRefund {
			refund = tx.TransID
		}
	}
	if h.srv.Status(refund) != StatusRefundPendingSettlement {
		t.Fatalf("refund status %s", h.srv.Status(refund))
	}
	h.srv.Settle()
	if h.srv.Status(refund) != StatusRefundSettledSuccessfully {
		t.Fatalf("refund status after settlement %s", h.srv.Status(refund))
	}
}
