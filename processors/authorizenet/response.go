package authorizenet

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Response types. The JSON API is a mechanical translation of the XML
// one and is inconsistent about lists: the top-level messages.message is
// an array, or an object when there is one message; transactionResponse
// messages and errors are flat arrays, or the XSD's wrapper objects. Each
// list type below accepts every shape. Unknown fields are ignored: the API
// sends some that are not in the XSD.

// Code is a code or number the API sends as a JSON string in some places
// and as a number in others (responseCode is "1" in createTransaction and
// 1 in getTransactionDetails). It holds the lexical value.
type Code string

// UnmarshalJSON accepts a string, a number or a boolean.
func (c *Code) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*c = Code(s)
		return nil
	case b[0] == '{' || b[0] == '[':
		return errors.New("authorizenet: a code must be a string or a number")
	}
	*c = Code(b)
	return nil
}

// Message is one entry of the top-level messages.
type Message struct {
	Code Code   `json:"code"`
	Text string `json:"text"`
}

// MessageList is messages.message: an array or a single object.
type MessageList []Message

func (l *MessageList) UnmarshalJSON(b []byte) error { return decodeList(b, "", (*[]Message)(l)) }

// Messages is messagesType: resultCode "Ok" or "Error" and the messages.
// resultCode says whether the request was processed, not whether a card
// was charged; see TransactionResponse.ResponseCode for that.
type Messages struct {
	ResultCode string      `json:"resultCode"`
	Message    MessageList `json:"message"`
}

// First returns the first message, or a zero one.
func (m Messages) First() Message {
	if len(m.Message) == 0 {
		return Message{}
	}
	return m.Message[0]
}

// TransactionMessage is one transactionResponse.messages entry.
type TransactionMessage struct {
	Code        Code   `json:"code"`
	Description string `json:"description"`
}

// TransactionMessages accepts [..], {..} and {"message": ..}.
type TransactionMessages []TransactionMessage

func (l *TransactionMessages) UnmarshalJSON(b []byte) error {
	return decodeList(b, "message", (*[]TransactionMessage)(l))
}

// TransactionError is one transactionResponse.errors entry.
type TransactionError struct {
	ErrorCode Code   `json:"errorCode"`
	ErrorText string `json:"errorText"`
}

// TransactionErrors accepts [..], {..} and {"error": ..}.
type TransactionErrors []TransactionError

func (l *TransactionErrors) UnmarshalJSON(b []byte) error {
	return decodeList(b, "error", (*[]TransactionError)(l))
}

// TransactionResponse is transactionResponse, the result of a charge.
// ResponseCode decides: 1 approved, 2 declined, 3 error, 4 held for
// review. AccountNumber is masked by the API (XXXX1111).
type TransactionResponse struct {
	ResponseCode   Code                `json:"responseCode"`
	AuthCode       string              `json:"authCode"`
	AVSResultCode  string              `json:"avsResultCode"`
	CVVResultCode  string              `json:"cvvResultCode"`
	CAVVResultCode string              `json:"cavvResultCode"`
	TransID        Code                `json:"transId"`
	RefTransID     Code                `json:"refTransID"`
	TestRequest    Code                `json:"testRequest"`
	AccountNumber  string              `json:"accountNumber"`
	AccountType    string              `json:"accountType"`
	Messages       TransactionMessages `json:"messages"`
	Errors         TransactionErrors   `json:"errors"`
	TransHashSha2  string              `json:"transHashSha2"`
	NetworkTransID string              `json:"networkTransId"`
}

// CreateTransactionResponse is createTransactionResponse.
type CreateTransactionResponse struct {
	TransactionResponse *TransactionResponse `json:"transactionResponse"`
	RefID               string               `json:"refId"`
	Messages            Messages             `json:"messages"`
}

// Batch is batchDetailsType.
type Batch struct {
	BatchID             Code   `json:"batchId"`
	SettlementTimeUTC   string `json:"settlementTimeUTC"`
	SettlementTimeLocal string `json:"settlementTimeLocal"`
	SettlementState     string `json:"settlementState"`
	PaymentMethod       string `json:"paymentMethod"`
	MarketType          string `json:"marketType"`
	Product             string `json:"product"`
}

// BatchList accepts [..], {..} and {"batch": ..}.
type BatchList []Batch

func (l *BatchList) UnmarshalJSON(b []byte) error { return decodeList(b, "batch", (*[]Batch)(l)) }

// CreditCardMasked is creditCardMaskedType plus the cardType the API adds.
type CreditCardMasked struct {
	CardNumber     string `json:"cardNumber"`
	ExpirationDate string `json:"expirationDate"`
	CardType       string `json:"cardType"`
}

// PaymentMasked is paymentMaskedType.
type PaymentMasked struct {
	CreditCard *CreditCardMasked `json:"creditCard"`
}

// ProfileIDs is customerProfileIdType.
type ProfileIDs struct {
	CustomerProfileID        Code `json:"customerProfileId"`
	CustomerPaymentProfileID Code `json:"customerPaymentProfileId"`
}

// TransactionDetails is transactionDetailsType, the subset payrail reads.
type TransactionDetails struct {
	TransID                   Code           `json:"transId"`
	RefTransID                Code           `json:"refTransId"`
	SubmitTimeUTC             string         `json:"submitTimeUTC"`
	SubmitTimeLocal           string         `json:"submitTimeLocal"`
	TransactionType           string         `json:"transactionType"`
	TransactionStatus         string         `json:"transactionStatus"`
	ResponseCode              Code           `json:"responseCode"`
	ResponseReasonCode        Code           `json:"responseReasonCode"`
	ResponseReasonDescription string         `json:"responseReasonDescription"`
	AuthCode                  string         `json:"authCode"`
	AVSResponse               string         `json:"AVSResponse"`
	CardCodeResponse          string         `json:"cardCodeResponse"`
	FDSFilterAction           string         `json:"FDSFilterAction"`
	Batch                     *Batch         `json:"batch"`
	Order                     *Order         `json:"order"`
	RequestedAmount           Amount         `json:"requestedAmount"`
	AuthAmount                Amount         `json:"authAmount"`
	SettleAmount              Amount         `json:"settleAmount"`
	Payment                   *PaymentMasked `json:"payment"`
	Customer                  *Customer      `json:"customer"`
	BillTo                    *BillTo        `json:"billTo"`
	Profile                   *ProfileIDs    `json:"profile"`
}

type getTransactionDetailsResponse struct {
	Transaction *TransactionDetails `json:"transaction"`
	RefID       string              `json:"refId"`
	Messages    Messages            `json:"messages"`
}

// TransactionSummary is transactionSummaryType, one row of a list.
type TransactionSummary struct {
	TransID           Code   `json:"transId"`
	SubmitTimeUTC     string `json:"submitTimeUTC"`
	SubmitTimeLocal   string `json:"submitTimeLocal"`
	TransactionStatus string `json:"transactionStatus"`
	InvoiceNumber     string `json:"invoiceNumber"`
	FirstName         string `json:"firstName"`
	LastName          string `json:"lastName"`
	AccountType       string `json:"accountType"`
	AccountNumber     string `json:"accountNumber"`
	SettleAmount      Amount `json:"settleAmount"`
	MarketType        string `json:"marketType"`
	Product           string `json:"product"`
}

// SubmitTime parses SubmitTimeUTC.
func (t TransactionSummary) SubmitTime() (time.Time, error) { return parseAPITime(t.SubmitTimeUTC) }

// TransactionSummaries accepts [..], {..} and {"transaction": ..}.
type TransactionSummaries []TransactionSummary

func (l *TransactionSummaries) UnmarshalJSON(b []byte) error {
	return decodeList(b, "transaction", (*[]TransactionSummary)(l))
}

// TransactionList is one page of a transaction list.
type TransactionList struct {
	Transactions TransactionSummaries `json:"transactions"`
	// Total is totalNumInResultSet: all matches, over every page. Nil
	// when the answer leaves it out, which says nothing about how many
	// pages remain.
	Total *int `json:"totalNumInResultSet"`
}

// lastPage reports whether page (1-based) of size limit ends the list:
// it is short, or totalNumInResultSet, when present, says nothing
// follows. A missing total never ends the paging by itself.
func (l *TransactionList) lastPage(page, limit int) bool {
	if len(l.Transactions) < limit {
		return true
	}
	return l.Total != nil && page*limit >= *l.Total
}

type transactionListResponse struct {
	TransactionList
	RefID    string   `json:"refId"`
	Messages Messages `json:"messages"`
}

type settledBatchListResponse struct {
	BatchList BatchList `json:"batchList"`
	RefID     string    `json:"refId"`
	Messages  Messages  `json:"messages"`
}

// decodeList decodes a list that may be a JSON array, a single object,
// or (when wrapper is set) an object whose only key is wrapper holding
// either. The error never quotes the input.
func decodeList[T any](b []byte, wrapper string, out *[]T) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*out = nil
		return nil
	}
	switch b[0] {
	case '[':
		var many []T
		if err := json.Unmarshal(b, &many); err != nil {
			return err
		}
		*out = many
		return nil
	case '{':
		if wrapper != "" {
			var w map[string]json.RawMessage
			if err := json.Unmarshal(b, &w); err != nil {
				return err
			}
			if inner, ok := w[wrapper]; ok && len(w) == 1 {
				return decodeList(inner, "", out)
			}
		}
		var one T
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*out = []T{one}
		return nil
	}
	return errors.New("authorizenet: expected a list or an object")
}

// parseAPITime reads the API's xs:dateTime values: "2015-02-16T03:34:43Z",
// with optional fraction, or without a zone (then UTC).
func parseAPITime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("authorizenet: bad time " + strconv.Quote(s))
}
