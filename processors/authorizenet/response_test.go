package authorizenet

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixtureClient answers every call with the named testdata file, as the
// API would (HTTP 200, BOM and all).
func fixtureClient(t *testing.T, name string) *Client {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(body)
	}))
	t.Cleanup(ts.Close)
	c, err := NewClient(Config{Endpoint: ts.URL, LoginID: "login", TransactionKey: "key", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCreateTransactionFixtures decodes every createTransaction fixture
// through the client and checks the decision it leads to.
func TestCreateTransactionFixtures(t *testing.T) {
	tests := []struct {
		file      string
		class     Class
		reason    string
		text      string
		transID   string
		account   string
		errCode   string
		errClass  Class
		unknown   bool
		resultErr bool
	}{
		{file: "approved.json", class: ClassApproved, reason: "1", text: "This transaction has been approved.", transID: "2228446239", account: "XXXX1111"},
		{file: "declined.json", class: ClassDeclined, reason: "2", text: "This transaction has been declined.", transID: "40000000002", account: "XXXX0015"},
		{file: "held.json", class: ClassHeld, reason: "252", transID: "40000000004", account: "XXXX0002"},
		{file: "error_transient.json", class: ClassRetryable, reason: "19", transID: "0"},
		{file: "duplicate.json", class: ClassDuplicate, reason: "11", transID: "2228446239"},
		{file: "messages_object.json", class: ClassApproved, reason: "1", transID: "40000000010"},
		{file: "messages_array.json", class: ClassDeclined, reason: "27", transID: "40000000011"},
		{file: "error_auth.json", errCode: "E00007", errClass: ClassPermanent},
		{file: "error_schema.json", errCode: "E00003", errClass: ClassPermanent},
		{file: "error_busy.json", errCode: "E00053", errClass: ClassRetryable},
		{file: "bom_maintenance.json", errCode: "E00104", errClass: ClassRetryable},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			resp, err := fixtureClient(t, tc.file).CreateTransaction(context.Background(), "PRABCDEFGHIJKLMNOPQR", TransactionRequest{TransactionType: AuthCaptureTransaction})
			if tc.errCode != "" {
				var e *Error
				if !errors.As(err, &e) || e.Code != tc.errCode || e.Class != tc.errClass || e.OutcomeUnknown {
					t.Fatalf("err = %#v, want %s %s", err, tc.errClass, tc.errCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := resp.TransactionResponse.Decide()
			if d.Class != tc.class || d.ReasonCode != tc.reason || d.TransID != tc.transID {
				t.Fatalf("Decide = %+v, want %s reason %s trans %s", d, tc.class, tc.reason, tc.transID)
			}
			if tc.text != "" && d.ReasonText != tc.text {
				t.Errorf("ReasonText = %q", d.ReasonText)
			}
			if tc.account != "" && resp.TransactionResponse.AccountNumber != tc.account {
				t.Errorf("AccountNumber = %q", resp.TransactionResponse.AccountNumber)
			}
		})
	}
}

// TestResultCodeIsNotTheDecision: "Ok" comes with held transactions and
// "Error" with declines; only responseCode decides.
func TestResultCodeIsNotTheDecision(t *testing.T) {
	resp, err := fixtureClient(t, "held.json").CreateTransaction(context.Background(), "", TransactionRequest{})
	if err != nil || resp.Messages.ResultCode != "Ok" || resp.TransactionResponse.Decide().Class != ClassHeld {
		t.Fatalf("held with resultCode Ok: %+v, %v", resp, err)
	}
}

func TestMessagesShapes(t *testing.T) {
	resp, err := fixtureClient(t, "messages_object.json").CreateTransaction(context.Background(), "", TransactionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Messages.Message) != 1 || resp.Messages.First().Code != "I00001" {
		t.Errorf("object-shaped messages.message: %+v", resp.Messages)
	}
	if m := resp.TransactionResponse.Messages; len(m) != 1 || m[0].Description != "This transaction has been approved." {
		t.Errorf("wrapped transactionResponse.messages: %+v", m)
	}
	resp, err = fixtureClient(t, "messages_array.json").CreateTransaction(context.Background(), "", TransactionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Messages.Message) != 2 || resp.Messages.Message[1].Code != "I00099" {
		t.Errorf("array-shaped messages.message: %+v", resp.Messages)
	}
	if e := resp.TransactionResponse.Errors; len(e) != 1 || e[0].ErrorCode != "27" {
		t.Errorf("wrapped transactionResponse.errors: %+v", e)
	}
}

func TestTransactionDetailsFixture(t *testing.T) {
	det, err := fixtureClient(t, "details.json").GetTransactionDetails(context.Background(), "2162566217")
	if err != nil {
		t.Fatal(err)
	}
	if det.TransID != "2162566217" || det.ResponseCode != "1" || det.ResponseReasonCode != "1" ||
		det.TransactionStatus != "settledSuccessfully" || det.AuthAmount != 101888 || det.SettleAmount != 101888 ||
		det.Order.InvoiceNumber != "60" || det.Payment.CreditCard.CardType != "MasterCard" || det.Batch.BatchID != "1221577" {
		t.Fatalf("details = %+v", det)
	}
}

func TestUnsettledListFixtures(t *testing.T) {
	list, err := fixtureClient(t, "unsettled.json").GetUnsettledTransactionList(context.Background(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if list.Total == nil || *list.Total != 2 || len(list.Transactions) != 2 {
		t.Fatalf("list = %+v", list)
	}
	first, second := list.Transactions[0], list.Transactions[1]
	if first.SettleAmount != 500 || second.SettleAmount != 1230 || second.InvoiceNumber != "PRABCDEFGHIJKLMNOPQR" {
		t.Errorf("amounts %d %d, invoice %q", first.SettleAmount, second.SettleAmount, second.InvoiceNumber)
	}
	if ts, err := first.SubmitTime(); err != nil || !ts.Equal(time.Date(2015, 2, 16, 3, 34, 43, 0, time.UTC)) {
		t.Errorf("SubmitTime = %v, %v", ts, err)
	}
	list, err = fixtureClient(t, "unsettled_empty.json").GetUnsettledTransactionList(context.Background(), ListOptions{})
	if err != nil || len(list.Transactions) != 0 {
		t.Fatalf("empty list = %+v, %v", list, err)
	}
}

// TestBOMIsStripped: without stripping, encoding/json fails on the BOM.
func TestBOMIsStripped(t *testing.T) {
	raw, _ := os.ReadFile("testdata/approved.json")
	if !strings.HasPrefix(string(raw), "\xef\xbb\xbf") {
		t.Fatal("fixture lost its BOM")
	}
	if _, err := fixtureClient(t, "approved.json").CreateTransaction(context.Background(), "PRABCDEFGHIJKLMNOPQR", TransactionRequest{}); err != nil {
		t.Fatal(err)
	}
}
