package anetsim

import (
	"encoding/json"
	"strconv"
)

// profileKey names a customer payment profile of one merchant login:
// profiles are visible to the merchant that created them only.
type profileKey struct{ login, customer, payment string }

// AddMerchant accepts another merchant login, with its own profiles and
// transactions.
func (s *Server) AddMerchant(loginID, transactionKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.merchants[loginID] = transactionKey
}

// AddProfileFor registers a customer payment profile of merchant login.
func (s *Server) AddProfileFor(login, customerProfileID, paymentProfileID string, p Profile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles[profileKey{login, customerProfileID, paymentProfileID}] = p
}

// RequestsBy counts the authenticated requests merchant login made to an
// API method, so a test can tell which login acted.
func (s *Server) RequestsBy(login, method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byLogin[[2]string{login, method}]
}

// profile finds login's profile. With AcceptAnyProfile, ids that no
// merchant has are a Visa ending 1111; ids another merchant has are
// still not found, as on the real gateway.
func (s *Server) profile(login, customer, payment string) (Profile, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.profiles[profileKey{login, customer, payment}]; ok {
		return p, true
	}
	if !s.opts.AcceptAnyProfile {
		return Profile{}, false
	}
	for k := range s.profiles {
		if k.customer == customer && k.payment == payment {
			return Profile{}, false
		}
	}
	return Profile{CardNumber: "4111111111111111", ExpirationDate: "2099-12"}, true
}

type profileBillTo struct {
	FirstName text `json:"firstName"`
	LastName  text `json:"lastName"`
	Zip       text `json:"zip"`
}

type paymentProfileIn struct {
	BillTo  *profileBillTo `json:"billTo"`
	Payment *struct {
		CreditCard *struct {
			CardNumber     text `json:"cardNumber"`
			ExpirationDate text `json:"expirationDate"`
		} `json:"creditCard"`
	} `json:"payment"`
}

// paymentProfiles decodes paymentProfiles: an array or, for one, an object.
type paymentProfiles []paymentProfileIn

func (pp *paymentProfiles) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var one paymentProfileIn
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*pp = paymentProfiles{one}
		return nil
	}
	var many []paymentProfileIn
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*pp = many
	return nil
}

type createCustomerProfileResponse struct {
	CustomerProfileID             string   `json:"customerProfileId,omitempty"`
	CustomerPaymentProfileIDList  []string `json:"customerPaymentProfileIdList"`
	CustomerShippingAddressIDList []string `json:"customerShippingAddressIdList"`
	ValidationDirectResponseList  []string `json:"validationDirectResponseList"`
	RefID                         string   `json:"refId,omitempty"`
	Messages                      messages `json:"messages"`
}

// createCustomerProfile stores a customer profile with its card payment
// profiles under the calling merchant and answers their new ids.
func (s *Server) createCustomerProfile(login, refID string, raw json.RawMessage) any {
	var req struct {
		Profile struct {
			PaymentProfiles paymentProfiles `json:"paymentProfiles"`
		} `json:"profile"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return errorReply(refID, "E00003", "The request could not be decoded.")
	}
	var stored []Profile
	for _, in := range req.Profile.PaymentProfiles {
		if in.Payment == nil || in.Payment.CreditCard == nil {
			return errorReply(refID, "E00029", "Payment information is required.")
		}
		cc := in.Payment.CreditCard
		if !luhn(string(cc.CardNumber)) {
			return errorReply(refID, "E00013", "Card Number is invalid.")
		}
		if _, err := parseExpiry(string(cc.ExpirationDate)); err != nil {
			return errorReply(refID, "E00013", "Expiration Date is invalid.")
		}
		p := Profile{CardNumber: string(cc.CardNumber), ExpirationDate: string(cc.ExpirationDate)}
		if b := in.BillTo; b != nil {
			p.FirstName, p.LastName, p.Zip = string(b.FirstName), string(b.LastName), string(b.Zip)
		}
		stored = append(stored, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextProf++
	out := createCustomerProfileResponse{CustomerProfileID: strconv.FormatInt(s.nextProf, 10),
		CustomerPaymentProfileIDList: []string{}, CustomerShippingAddressIDList: []string{},
		ValidationDirectResponseList: []string{}, RefID: refID, Messages: okMessages()}
	for _, p := range stored {
		s.nextProf++
		id := strconv.FormatInt(s.nextProf, 10)
		s.profiles[profileKey{login, out.CustomerProfileID, id}] = p
		out.CustomerPaymentProfileIDList = append(out.CustomerPaymentProfileIDList, id)
	}
	return out
}

type maskedPaymentProfile struct {
	CustomerType             string         `json:"customerType,omitempty"`
	BillTo                   *billToReply   `json:"billTo,omitempty"`
	CustomerProfileID        string         `json:"customerProfileId"`
	CustomerPaymentProfileID string         `json:"customerPaymentProfileId"`
	Payment                  *paymentMasked `json:"payment,omitempty"`
}

type getCustomerPaymentProfileResponse struct {
	PaymentProfile *maskedPaymentProfile `json:"paymentProfile,omitempty"`
	RefID          string                `json:"refId,omitempty"`
	Messages       messages              `json:"messages"`
}

// getCustomerPaymentProfile answers one of the calling merchant's
// payment profiles, masked; E00040 for any other.
func (s *Server) getCustomerPaymentProfile(login, refID string, raw json.RawMessage) any {
	var req struct {
		CustomerProfileID        text `json:"customerProfileId"`
		CustomerPaymentProfileID text `json:"customerPaymentProfileId"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return errorReply(refID, "E00003", "The request could not be decoded.")
	}
	p, ok := s.profile(login, string(req.CustomerProfileID), string(req.CustomerPaymentProfileID))
	if !ok {
		return errorReply(refID, "E00040", "The record cannot be found.")
	}
	out := &maskedPaymentProfile{
		CustomerType: "individual", CustomerProfileID: string(req.CustomerProfileID),
		CustomerPaymentProfileID: string(req.CustomerPaymentProfileID),
		Payment: &paymentMasked{CreditCard: creditCardMasked{CardNumber: maskNumber(p.CardNumber),
			ExpirationDate: "XXXX", CardType: brandOf(p.CardNumber)}},
	}
	if p.FirstName != "" || p.LastName != "" || p.Zip != "" {
		out.BillTo = &billToReply{FirstName: p.FirstName, LastName: p.LastName, Zip: p.Zip}
	}
	return getCustomerPaymentProfileResponse{PaymentProfile: out, RefID: refID, Messages: okMessages()}
}
