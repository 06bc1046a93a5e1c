package authorizenet

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Amount is money in integer cents. It is sent as a decimal string with
// two fraction digits ("12.34"), never through a float, and read from
// either a JSON string or a JSON number (the reporting API sends numbers).
type Amount int64

// maxAmount keeps cents*100 arithmetic far from int64 overflow; it is
// ten times the largest NACHA amount docs/api.md allows.
const maxAmount = Amount(99_999_999_999)

func (a Amount) String() string {
	sign, c := "", int64(a)
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

// MarshalJSON writes the amount as a decimal string.
func (a Amount) MarshalJSON() ([]byte, error) {
	return []byte(`"` + a.String() + `"`), nil
}

// UnmarshalJSON reads "12.34", 12.34, 12 or "12.3400". Digits past the
// cent must be zero: the API's xs:decimal allows four, USD uses two.
func (a *Amount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		u, err := strconv.Unquote(s)
		if err != nil {
			return errors.New("authorizenet: amount: malformed string")
		}
		s = u
	}
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ParseAmount reads a decimal amount such as "12.34" into cents.
func ParseAmount(s string) (Amount, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, errors.New("authorizenet: amount: empty")
	}
	if whole == "" {
		whole = "0"
	}
	trimmed := strings.TrimRight(frac, "0")
	if !isDigits(whole) || (frac != "" && !isDigits(frac)) {
		return 0, fmt.Errorf("authorizenet: amount: not a plain decimal")
	}
	if len(trimmed) > 2 {
		return 0, fmt.Errorf("authorizenet: amount: fraction of a cent")
	}
	if len(whole) > 12 {
		return 0, fmt.Errorf("authorizenet: amount: out of range")
	}
	trimmed += strings.Repeat("0", 2-len(trimmed))
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt(trimmed, 10, 64)
	c := Amount(w*100 + f)
	if c > maxAmount {
		return 0, fmt.Errorf("authorizenet: amount: out of range")
	}
	if neg {
		c = -c
	}
	return c, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
