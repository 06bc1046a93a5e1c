package authorizenet

import (
	"log/slog"
)

// Request types. The API validates JSON like XML against
// AnetApiSchema.xsd, so every struct declares its fields in the XSD's
// sequence order (encoding/json keeps struct order; maps would be
// sorted) and optional elements are omitempty. TestRequestsFollowXSD
// checks each type against the schema itself.

// MerchantAuthentication is merchantAuthenticationType with the
// transactionKey alternative of its choice.
type MerchantAuthentication struct {
	Name           string `json:"name"`
	TransactionKey string `json:"transactionKey"`
}

// String keeps the transaction key out of %v and %+v.
func (m MerchantAuthentication) String() string {
	return "merchantAuthentication{" + m.Name + ", key redacted}"
}

// GoString keeps the transaction key out of %#v.
func (m MerchantAuthentication) GoString() string { return m.String() }

// LogValue keeps the transaction key out of slog.
func (m MerchantAuthentication) LogValue() slog.Value { return slog.StringValue(m.String()) }

// apiRequest is ANetApiRequest, the base every method extends: embedded
// first, its fields come first, as the XSD extension demands.
type apiRequest struct {
	MerchantAuthentication MerchantAuthentication `json:"merchantAuthentication"`
	ClientID               string                 `json:"clientId,omitempty"`
	RefID                  string                 `json:"refId,omitempty"`
}

// TransactionRequest is transactionRequestType, the subset payrail uses.
type TransactionRequest struct {
	TransactionType     string          `json:"transactionType"`
	Amount              Amount          `json:"amount,omitempty"`
	Payment             *Payment        `json:"payment,omitempty"`
	Profile             *ProfilePayment `json:"profile,omitempty"`
	RefTransID          string          `json:"refTransId,omitempty"`
	Order               *Order          `json:"order,omitempty"`
	PONumber            string          `json:"poNumber,omitempty"`
	Customer            *Customer       `json:"customer,omitempty"`
	BillTo              *BillTo         `json:"billTo,omitempty"`
	CustomerIP          string          `json:"customerIP,omitempty"`
	TransactionSettings *Settings       `json:"transactionSettings,omitempty"`
}

// Transaction types payrail sends.
const (
	AuthCaptureTransaction = "authCaptureTransaction"
	AuthOnlyTransaction    = "authOnlyTransaction"
)

// Payment is paymentType; payrail pays by card only.
type Payment struct {
	CreditCard *CreditCard `json:"creditCard,omitempty"`
}

// Card number lengths the processor sends. creditCardType's cardNumber
// is a string of 4 to 16 characters in AnetApiSchema.xsd (4 only for the
// masked "XXXX1111" of an update); no card network issues numbers shorter
// than 13 digits. Longer numbers (up to 19 digits, which some networks
// issue) could only be answered with E00003. Intake checks card_number
// against the same bounds, so such a card is refused with a 422 rather
// than accepted and then ended INVALID.
const (
	MinCardDigits = 13
	MaxCardDigits = 16
)

// CreditCard is creditCardType. Its String, GoString and LogValue show
// only the last four digits, so a stray %v or log line cannot leak the
// number or the card code.
type CreditCard struct {
	CardNumber     string `json:"cardNumber"`
	ExpirationDate string `json:"expirationDate"` // YYYY-MM
	CardCode       string `json:"cardCode,omitempty"`
}

func (c CreditCard) String() string { return "card ending " + lastFour(c.CardNumber) }

// GoString redacts like String.
func (c CreditCard) GoString() string { return c.String() }

// LogValue redacts like String.
func (c CreditCard) LogValue() slog.Value { return slog.StringValue(c.String()) }

// ProfilePayment is customerProfilePaymentType: charge a stored profile.
type ProfilePayment struct {
	CustomerProfileID string          `json:"customerProfileId,omitempty"`
	PaymentProfile    *PaymentProfile `json:"paymentProfile,omitempty"`
}

// PaymentProfile is paymentProfile.
type PaymentProfile struct {
	PaymentProfileID string `json:"paymentProfileId"`
	CardCode         string `json:"cardCode,omitempty"`
}

// Order is orderType.
type Order struct {
	InvoiceNumber string `json:"invoiceNumber,omitempty"`
	Description   string `json:"description,omitempty"`
}

// Customer is customerDataType.
type Customer struct {
	ID    string `json:"id,omitempty"`
	Email string `json:"email,omitempty"`
}

// BillTo is customerAddressType.
type BillTo struct {
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
	Company   string `json:"company,omitempty"`
	Address   string `json:"address,omitempty"`
	City      string `json:"city,omitempty"`
	State     string `json:"state,omitempty"`
	Zip       string `json:"zip,omitempty"`
	Country   string `json:"country,omitempty"`
}

// Settings is ArrayOfSetting: requests use the "setting" wrapper key.
type Settings struct {
	Setting []Setting `json:"setting"`
}

// Setting is settingType.
type Setting struct {
	SettingName  string `json:"settingName"`
	SettingValue string `json:"settingValue"`
}

type createTransactionRequest struct {
	apiRequest
	TransactionRequest TransactionRequest `json:"transactionRequest"`
}

type getTransactionDetailsRequest struct {
	apiRequest
	TransID string `json:"transId"`
}

// Sorting is TransactionListSorting.
type Sorting struct {
	OrderBy         string `json:"orderBy"` // "id" or "submitTimeUTC"
	OrderDescending bool   `json:"orderDescending"`
}

// Paging is Paging: Offset is the 1-based page number, Limit its size
// (1 to 1000).
type Paging struct {
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}

type getUnsettledTransactionListRequest struct {
	apiRequest
	Status  string   `json:"status,omitempty"`
	Sorting *Sorting `json:"sorting,omitempty"`
	Paging  *Paging  `json:"paging,omitempty"`
}

type getSettledBatchListRequest struct {
	apiRequest
	IncludeStatistics   bool   `json:"includeStatistics,omitempty"`
	FirstSettlementDate string `json:"firstSettlementDate,omitempty"`
	LastSettlementDate  string `json:"lastSettlementDate,omitempty"`
}

type getTransactionListRequest struct {
	apiRequest
	BatchID string   `json:"batchId,omitempty"`
	Sorting *Sorting `json:"sorting,omitempty"`
	Paging  *Paging  `json:"paging,omitempty"`
}

// Envelopes: the body is one object keyed by the method name.

type createTransactionEnvelope struct {
	Request createTransactionRequest `json:"createTransactionRequest"`
}

type getTransactionDetailsEnvelope struct {
	Request getTransactionDetailsRequest `json:"getTransactionDetailsRequest"`
}

type getUnsettledTransactionListEnvelope struct {
	Request getUnsettledTransactionListRequest `json:"getUnsettledTransactionListRequest"`
}

type getSettledBatchListEnvelope struct {
	Request getSettledBatchListRequest `json:"getSettledBatchListRequest"`
}

type getTransactionListEnvelope struct {
	Request getTransactionListRequest `json:"getTransactionListRequest"`
}
