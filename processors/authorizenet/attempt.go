package authorizenet

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/payrail/payrail/processors"
)

// InvoiceNumber is the order.invoiceNumber of an attempt: "PR" and 18
// base32 characters of SHA-256 over the attempt id (90 bits; 20
// characters, the XSD's limit). It depends on nothing but the attempt id,
// so every delivery of a job, on any worker and any version, sends the
// same one: the duplicate check and the lookup both key on it.
func InvoiceNumber(attemptID string) string {
	sum := sha256.Sum256([]byte("payrail/authorizenet/invoice/v1\x00" + attemptID))
	return "PR" + base32.StdEncoding.EncodeToString(sum[:])[:18]
}

// RefID is the refId of an attempt's requests. The API echoes it and
// leaves it out of the duplicate check; it equals the invoice number so a
// response can be tied to its attempt in logs.
func RefID(attemptID string) string { return InvoiceNumber(attemptID) }

// buildRequest turns a job into its charge. The result depends only on
// the job, so a retry is byte-identical to the first call (except the
// card code, which a relay-published job lacks and which the duplicate
// check ignores).
func buildRequest(job processors.Job, window string) (TransactionRequest, error) {
	if job.AmountCents <= 0 || Amount(job.AmountCents) > maxAmount {
		return TransactionRequest{}, fmt.Errorf("amount %d cents is out of range", job.AmountCents)
	}
	tr := TransactionRequest{
		TransactionType: AuthCaptureTransaction,
		Amount:          Amount(job.AmountCents),
		Order: &Order{
			InvoiceNumber: InvoiceNumber(job.AttemptID),
			Description:   truncate("payrail line item "+job.LineItemID, 255),
		},
		TransactionSettings: &Settings{Setting: []Setting{{SettingName: "duplicateWindow", SettingValue: window}}},
	}
	switch {
	case job.Card != nil && job.Profile == nil:
		c := job.Card
		if !isDigits(c.Number) || len(c.Number) < MinCardDigits || len(c.Number) > MaxCardDigits {
			return tr, fmt.Errorf("card number must be %d to %d digits", MinCardDigits, MaxCardDigits)
		}
		exp, err := expiration(c.ExpirationDate)
		if err != nil {
			return tr, err
		}
		if c.CVV != "" && (!isDigits(c.CVV) || len(c.CVV) < 3 || len(c.CVV) > 4) {
			return tr, fmt.Errorf("card code must be 3 or 4 digits")
		}
		tr.Payment = &Payment{CreditCard: &CreditCard{CardNumber: c.Number, ExpirationDate: exp, CardCode: c.CVV}}
		first, last := splitName(c.Name)
		if first != "" || last != "" || c.Zip != "" {
			tr.BillTo = &BillTo{FirstName: first, LastName: last, Zip: c.Zip}
		}
	case job.Profile != nil && job.Card == nil:
		p := job.Profile
		if !isDigits(p.CustomerProfileID) || !isDigits(p.PaymentProfileID) {
			return tr, fmt.Errorf("customer and payment profile ids must be numeric")
		}
		tr.Profile = &ProfilePayment{
			CustomerProfileID: p.CustomerProfileID,
			PaymentProfile:    &PaymentProfile{PaymentProfileID: p.PaymentProfileID},
		}
	default:
		return tr, fmt.Errorf("job must carry exactly one of a card or a payment profile")
	}
	return tr, nil
}

// expiration turns payrail's MM/YY into the API's gYearMonth, YYYY-MM.
func expiration(mmyy string) (string, error) {
	if len(mmyy) != 5 || mmyy[2] != '/' || !isDigits(mmyy[:2]) || !isDigits(mmyy[3:]) {
		return "", fmt.Errorf("expiration date must be MM/YY")
	}
	m, _ := strconv.Atoi(mmyy[:2])
	if m < 1 || m > 12 {
		return "", fmt.Errorf("expiration month must be 01 to 12")
	}
	return "20" + mmyy[3:] + "-" + mmyy[:2], nil
}

// splitName splits a cardholder name into billTo first and last name:
// the last word is the last name. Each is cut to the XSD's 50 characters.
func splitName(name string) (first, last string) {
	words := strings.Fields(name)
	switch len(words) {
	case 0:
		return "", ""
	case 1:
		return "", truncate(words[0], 50)
	}
	return truncate(strings.Join(words[:len(words)-1], " "), 50), truncate(words[len(words)-1], 50)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}
