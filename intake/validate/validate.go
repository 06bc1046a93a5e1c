// Package validate holds the pure input rules of the payrail API: routing
// numbers, card numbers, expiry dates, identifiers and amounts. Every function
// is side-effect free so the HTTP layer can report one problem per field.
package validate

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet"
)

// MaxAmountCents is the largest amount a NACHA entry's ten-digit amount
// field can carry; payrail applies it to every payment and charge.
const MaxAmountCents int64 = 9_999_999_999

var lineItemIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// LineItemID checks a client-chosen line item id: at most 64 characters of
// [A-Za-z0-9._:-] and never the "can_" prefix reserved for generated ids.
func LineItemID(id string) error {
	if strings.HasPrefix(id, "can_") {
		return fmt.Errorf("must not start with can_ (reserved for generated ids)")
	}
	if !lineItemIDPattern.MatchString(id) {
		return fmt.Errorf("must be 1 to 64 characters of A-Z a-z 0-9 . _ : -")
	}
	return nil
}

// AmountCents checks a payment or charge amount.
func AmountCents(v int64) error {
	if v <= 0 {
		return fmt.Errorf("must be greater than 0")
	}
	if v > MaxAmountCents {
		return fmt.Errorf("must be at most %d", MaxAmountCents)
	}
	return nil
}

// ABARoutingNumber checks a nine-digit ABA routing transit number: its
// first two digits in a Federal Reserve range (00–12, 21–32, 61–72, 80)
// and its check digit (weights 3, 7, 1 repeated, sum divisible by 10).
func ABARoutingNumber(rtn string) error {
	if p := processors.RoutingNumberProblem(rtn); p != "" {
		return errors.New(p)
	}
	return nil
}

// Luhn reports whether a digit string passes the Luhn (mod 10) check.
func Luhn(number string) bool {
	if number == "" || !allDigits(number) {
		return false
	}
	sum := 0
	double := false
	for i := len(number) - 1; i >= 0; i-- {
		d := int(number[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// CardNumber checks a primary account number: 13 to 16 digits (what
// the AUTHORIZE_NET processor can send: authorizenet.MinCardDigits and
// MaxCardDigits, from the gateway's schema) passing Luhn.
func CardNumber(pan string) error {
	if len(pan) < authorizenet.MinCardDigits || len(pan) > authorizenet.MaxCardDigits || !allDigits(pan) {
		return fmt.Errorf("must be %d to %d digits", authorizenet.MinCardDigits, authorizenet.MaxCardDigits)
	}
	if !Luhn(pan) {
		return fmt.Errorf("fails the Luhn check")
	}
	return nil
}

// Expiry parses an MM/YY card expiry and checks that the card is still valid
// at now: a card is good through the last day of its expiry month.
func Expiry(mmyy string, now time.Time) (month, year int, err error) {
	if len(mmyy) != 5 || mmyy[2] != '/' || !allDigits(mmyy[:2]) || !allDigits(mmyy[3:]) {
		return 0, 0, fmt.Errorf("must be MM/YY")
	}
	month = int(mmyy[0]-'0')*10 + int(mmyy[1]-'0')
	year = 2000 + int(mmyy[3]-'0')*10 + int(mmyy[4]-'0')
	if month < 1 || month > 12 {
		return 0, 0, fmt.Errorf("month must be 01 to 12")
	}
	now = now.UTC()
	if year < now.Year() || (year == now.Year() && month < int(now.Month())) {
		return 0, 0, fmt.Errorf("card has expired")
	}
	return month, year, nil
}

// CVV checks a card verification value: 3 or 4 digits.
func CVV(cvv string) error {
	if (len(cvv) != 3 && len(cvv) != 4) || !allDigits(cvv) {
		return fmt.Errorf("must be 3 or 4 digits")
	}
	return nil
}

// ZIP checks a US postal code: 5 or 9 digits (a hyphen after the fifth digit
// is accepted).
func ZIP(zip string) error {
	z := zip
	if len(z) == 10 && z[5] == '-' {
		z = z[:5] + z[6:]
	}
	if (len(z) != 5 && len(z) != 9) || !allDigits(z) {
		return fmt.Errorf("must be 5 or 9 digits")
	}
	return nil
}

// BankAccountNumber checks a DFI account number: 4 to 17 characters, digits,
// letters or hyphens (the NACHA field is alphanumeric).
func BankAccountNumber(n string) error {
	if len(n) < 4 || len(n) > 17 {
		return fmt.Errorf("must be 4 to 17 characters")
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-') {
			return fmt.Errorf("must contain only letters, digits and hyphens")
		}
	}
	return nil
}

// EffectiveAt checks that t is at most 10 days before now and at most one
// year after it.
func EffectiveAt(t, now time.Time) error {
	if t.Before(now.Add(-10 * 24 * time.Hour)) {
		return fmt.Errorf("must be at most 10 days in the past")
	}
	if t.After(now.AddDate(1, 0, 0)) {
		return fmt.Errorf("must be at most one year in the future")
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
