package authorizenet

import (
	"context"
	"errors"
)

// getCustomerPaymentProfileRequest reads one customer payment profile.
// Fields in the XSD's sequence order: customerProfileId,
// customerPaymentProfileId, unmaskExpirationDate, includeIssuerInfo.
type getCustomerPaymentProfileRequest struct {
	apiRequest
	CustomerProfileID        string `json:"customerProfileId"`
	CustomerPaymentProfileID string `json:"customerPaymentProfileId,omitempty"`
	UnmaskExpirationDate     bool   `json:"unmaskExpirationDate,omitempty"`
	IncludeIssuerInfo        bool   `json:"includeIssuerInfo,omitempty"`
}

type getCustomerPaymentProfileEnvelope struct {
	Request getCustomerPaymentProfileRequest `json:"getCustomerPaymentProfileRequest"`
}

// PaymentProfileInfo is what payrail reads of a customer payment profile
// (customerPaymentProfileMaskedType): its ids and the masked card.
type PaymentProfileInfo struct {
	CustomerProfileID        string `json:"customerProfileId"`
	CustomerPaymentProfileID string `json:"customerPaymentProfileId"`
	Payment                  *struct {
		CreditCard *struct {
			CardNumber string `json:"cardNumber"` // XXXX1111
			CardType   string `json:"cardType"`
		} `json:"creditCard"`
	} `json:"payment"`
}

type getCustomerPaymentProfileResponse struct {
	PaymentProfile *PaymentProfileInfo `json:"paymentProfile"`
	RefID          string              `json:"refId"`
	Messages       Messages            `json:"messages"`
}

// CodeNotFound is the API's "The record cannot be found." (E00040): an
// unknown profile or transaction, or one of another merchant.
const CodeNotFound = "E00040"

// GetCustomerPaymentProfile sends getCustomerPaymentProfileRequest. A
// profile that does not exist under this client's merchant login is an
// *Error with Code CodeNotFound.
func (c *Client) GetCustomerPaymentProfile(ctx context.Context, customerProfileID, paymentProfileID string) (*PaymentProfileInfo, error) {
	const op = "getCustomerPaymentProfileRequest"
	var resp getCustomerPaymentProfileResponse
	env := getCustomerPaymentProfileEnvelope{Request: getCustomerPaymentProfileRequest{
		apiRequest: c.base(""), CustomerProfileID: customerProfileID, CustomerPaymentProfileID: paymentProfileID,
	}}
	if err := c.call(ctx, op, env, &resp); err != nil {
		return nil, err
	}
	if resp.Messages.ResultCode != "Ok" {
		return nil, apiError(op, resp.Messages)
	}
	if resp.PaymentProfile == nil {
		return nil, &Error{Op: op, Class: ClassRetryable, Code: "decode", Text: "response has no paymentProfile"}
	}
	return resp.PaymentProfile, nil
}

// IsNotFound reports whether err is the API's E00040.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeNotFound
}

// IsCredentialError reports whether err says the merchant's credentials
// were refused or lack permission (E00005-E00011).
func IsCredentialError(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case "E00005", "E00006", "E00007", "E00008", "E00009", "E00010", "E00011":
		return true
	}
	return false
}
