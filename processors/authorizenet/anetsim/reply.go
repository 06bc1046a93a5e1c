package anetsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// bom starts every JSON response of the real API; clients must strip it.
var bom = []byte{0xEF, 0xBB, 0xBF}

func trimBOM(b []byte) []byte { return bytes.TrimPrefix(b, bom) }

// text is a request leaf as the API reads it: a JSON string, number or
// boolean all carry the same lexical value.
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = text(s)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	*t = text(b)
	return nil
}

// Reply shapes, with fields in the order the real API sends them.

type messages struct {
	ResultCode string    `json:"resultCode"`
	Message    []message `json:"message"`
}

type message struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

func okMessages() messages {
	return messages{ResultCode: "Ok", Message: []message{{Code: "I00001", Text: "Successful."}}}
}

func errMessages(code, txt string) messages {
	return messages{ResultCode: "Error", Message: []message{{Code: code, Text: txt}}}
}

type errorResponse struct {
	RefID    string   `json:"refId,omitempty"`
	Messages messages `json:"messages"`
}

func errorReply(refID, code, txt string) errorResponse {
	return errorResponse{RefID: refID, Messages: errMessages(code, txt)}
}

type trMessage struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

type trError struct {
	ErrorCode string `json:"errorCode"`
	ErrorText string `json:"errorText"`
}

type transactionResponse struct {
	ResponseCode   string      `json:"responseCode"`
	AuthCode       string      `json:"authCode"`
	AvsResultCode  string      `json:"avsResultCode"`
	CvvResultCode  string      `json:"cvvResultCode"`
	CavvResultCode string      `json:"cavvResultCode"`
	TransID        string      `json:"transId"`
	RefTransID     string      `json:"refTransID"`
	TransHash      string      `json:"transHash"`
	TestRequest    string      `json:"testRequest"`
	AccountNumber  string      `json:"accountNumber"`
	AccountType    string      `json:"accountType"`
	Messages       []trMessage `json:"messages,omitempty"`
	Errors         []trError   `json:"errors,omitempty"`
	TransHashSha2  string      `json:"transHashSha2"`
	// Not in the XSD, but the real API sends it.
	SupplementalDataQualificationIndicator int `json:"SupplementalDataQualificationIndicator"`
}

type createTransactionResponse struct {
	TransactionResponse *transactionResponse `json:"transactionResponse,omitempty"`
	RefID               string               `json:"refId,omitempty"`
	Messages            messages             `json:"messages"`
}

type batchReply struct {
	BatchID             string `json:"batchId"`
	SettlementTimeUTC   string `json:"settlementTimeUTC,omitempty"`
	SettlementTimeLocal string `json:"settlementTimeLocal,omitempty"`
	SettlementState     string `json:"settlementState"`
	PaymentMethod       string `json:"paymentMethod,omitempty"`
	MarketType          string `json:"marketType,omitempty"`
	Product             string `json:"product,omitempty"`
}

type orderReply struct {
	InvoiceNumber string `json:"invoiceNumber,omitempty"`
	Description   string `json:"description,omitempty"`
}

type creditCardMasked struct {
	CardNumber     string `json:"cardNumber"`
	ExpirationDate string `json:"expirationDate"`
	CardType       string `json:"cardType"`
}

type paymentMasked struct {
	CreditCard creditCardMasked `json:"creditCard"`
}

type customerReply struct {
	ID string `json:"id,omitempty"`
}

type billToReply struct {
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
	Zip       string `json:"zip,omitempty"`
}

type profileReply struct {
	CustomerProfileID        string `json:"customerProfileId"`
	CustomerPaymentProfileID string `json:"customerPaymentProfileId"`
}

type transactionDetails struct {
	TransID                   string         `json:"transId"`
	RefTransID                string         `json:"refTransId,omitempty"`
	SubmitTimeUTC             string         `json:"submitTimeUTC"`
	SubmitTimeLocal           string         `json:"submitTimeLocal"`
	TransactionType           string         `json:"transactionType"`
	TransactionStatus         string         `json:"transactionStatus"`
	ResponseCode              int            `json:"responseCode"`
	ResponseReasonCode        int            `json:"responseReasonCode"`
	ResponseReasonDescription string         `json:"responseReasonDescription"`
	AuthCode                  string         `json:"authCode,omitempty"`
	AVSResponse               string         `json:"AVSResponse,omitempty"`
	CardCodeResponse          string         `json:"cardCodeResponse,omitempty"`
	Batch                     *batchReply    `json:"batch,omitempty"`
	Order                     *orderReply    `json:"order,omitempty"`
	AuthAmount                json.Number    `json:"authAmount"`
	SettleAmount              json.Number    `json:"settleAmount"`
	TaxExempt                 bool           `json:"taxExempt"`
	Payment                   paymentMasked  `json:"payment"`
	Customer                  *customerReply `json:"customer,omitempty"`
	BillTo                    *billToReply   `json:"billTo,omitempty"`
	RecurringBilling          bool           `json:"recurringBilling"`
	Product                   string         `json:"product"`
	MarketType                string         `json:"marketType"`
	Profile                   *profileReply  `json:"profile,omitempty"`
}

type getTransactionDetailsResponse struct {
	Transaction *transactionDetails `json:"transaction,omitempty"`
	RefID       string              `json:"refId,omitempty"`
	Messages    messages            `json:"messages"`
}

type transactionSummary struct {
	TransID           string      `json:"transId"`
	SubmitTimeUTC     string      `json:"submitTimeUTC"`
	SubmitTimeLocal   string      `json:"submitTimeLocal"`
	TransactionStatus string      `json:"transactionStatus"`
	InvoiceNumber     string      `json:"invoiceNumber,omitempty"`
	FirstName         string      `json:"firstName,omitempty"`
	LastName          string      `json:"lastName,omitempty"`
	AccountType       string      `json:"accountType"`
	AccountNumber     string      `json:"accountNumber"`
	SettleAmount      json.Number `json:"settleAmount"`
	MarketType        string      `json:"marketType"`
	Product           string      `json:"product"`
}

type transactionListResponse struct {
	Transactions        []transactionSummary `json:"transactions,omitempty"`
	TotalNumInResultSet *int                 `json:"totalNumInResultSet,omitempty"`
	RefID               string               `json:"refId,omitempty"`
	Messages            messages             `json:"messages"`
}

type settledBatchListResponse struct {
	BatchList []batchReply `json:"batchList,omitempty"`
	RefID     string       `json:"refId,omitempty"`
	Messages  messages     `json:"messages"`
}

type simpleResponse struct {
	RefID    string   `json:"refId,omitempty"`
	Messages messages `json:"messages"`
}

// merchantLocal is the account's local time zone in the sandbox's
// submitTimeLocal fields (Mountain Standard Time, as sandbox accounts use).
var merchantLocal = time.FixedZone("MST", -7*60*60)

func utcStamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func localStamp(t time.Time) string { return t.In(merchantLocal).Format("2006-01-02T15:04:05.000") }

// writeJSON answers 200 with a BOM-prefixed body, as the real API does
// for every outcome, errors included.
func (s *Server) writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(bom)
	_, _ = w.Write(b)
}
