package anetsim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Test cards the Authorize.Net sandbox documents, with the brand the API
// reports in accountType. Any other number that passes Luhn is declined
// (reason 2), and one that fails Luhn is invalid (reason 6).
var testCards = map[string]string{
	"370000000000002":  "AmericanExpress",
	"6011000000000012": "Discover",
	"3088000000000017": "JCB",
	"38000000000006":   "DinersClub",
	"4007000000027":    "Visa",
	"4012888818888":    "Visa",
	"4111111111111111": "Visa",
	"5424000000000015": "MasterCard",
	"2223000010309703": "MasterCard",
	"2223000010309711": "MasterCard",
	"6221499053360818": "UnionPay",
	ErrorCard:          "Visa",
}

// ErrorCard is the legacy sandbox "error generation" card: charged for a
// whole-dollar amount N, it answers with response reason code N (so
// $19.00 is a transient processing error, $252.00 is held for review).
// Amounts whose dollars are not a reason code in the simulator's table, or
// that have cents, approve.
const ErrorCard = "4222222222222"

// ZIP codes that trigger a result: 46282 declines; the others set the AVS
// result code as the sandbox's testing guide lists them.
const DeclineZip = "46282"

var avsByZip = map[string]string{
	"46201": "A", "46203": "E", "46204": "G", "46205": "N", "46206": "P",
	"46207": "R", "46208": "S", "46209": "U", "46211": "W", "46214": "X",
	"46217": "Z",
}

// Card codes that set the CVV result; 901 (no match) also declines with
// reason 65, as an account with the card-code filter set to reject N does.
var cvvByCode = map[string]string{
	"900": "M", "901": "N", "902": "S", "903": "U", "904": "P",
}

// reason is a response reason: the responseCode it belongs to and its text.
type reason struct {
	responseCode int
	text         string
}

// reasons is the subset of Authorize.Net's response reason codes the
// simulator can produce (texts from responseCodes.json).
var reasons = map[int]reason{
	1:   {1, "This transaction has been approved."},
	2:   {2, "This transaction has been declined."},
	3:   {2, "This transaction has been declined."},
	4:   {2, "This transaction has been declined."},
	5:   {3, "A valid amount is required."},
	6:   {3, "The credit card number is invalid."},
	7:   {3, "Credit card expiration date is invalid."},
	8:   {3, "The credit card has expired."},
	11:  {3, "A duplicate transaction has been submitted."},
	13:  {3, "The merchant login ID or password is invalid or the account is inactive."},
	16:  {3, "The transaction cannot be found."},
	17:  {3, "The merchant does not accept this type of credit card."},
	19:  {3, "An error occurred during processing. Please try again in 5 minutes."},
	20:  {3, "An error occurred during processing. Please try again in 5 minutes."},
	21:  {3, "An error occurred during processing. Please try again in 5 minutes."},
	22:  {3, "An error occurred during processing. Please try again in 5 minutes."},
	23:  {3, "An error occurred during processing. Please try again in 5 minutes."},
	25:  {3, "An error occurred during processing. Please try again in 5 minutes."},
	26:  {3, "An error occurred during processing. Please try again in 5 minutes."},
	27:  {2, "The transaction has been declined because of an AVS mismatch. The address provided does not match billing address of cardholder."},
	33:  {3, "A required field is missing."},
	35:  {3, "An error occurred during processing. Call Merchant Service Provider."},
	54:  {3, "The referenced transaction does not meet the criteria for issuing a credit."},
	55:  {3, "The sum of credits against the referenced transaction would exceed original debit amount."},
	44:  {2, "This transaction has been declined."},
	45:  {2, "This transaction has been declined."},
	57:  {3, "An error occurred in processing. Please try again in 5 minutes."},
	65:  {2, "This transaction has been declined."},
	78:  {3, "The Card Code (CVV2/CVC2/CID) is invalid."},
	200: {2, "This transaction has been declined."},
	250: {2, "This transaction has been declined."},
	251: {2, "This transaction has been declined."},
	252: {4, "Your order has been received. Thank you for your business!"},
	253: {4, "Your order has been received. Thank you for your business!"},
	254: {2, "This transaction has been declined."},
	261: {3, "An error occurred during processing. Please try again."},
}

// luhn reports whether a digit string passes the Luhn check.
func luhn(number string) bool {
	if len(number) < 12 {
		return false
	}
	sum, double := 0, false
	for i := len(number) - 1; i >= 0; i-- {
		c := number[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
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

// parseExpiry reads the formats the API accepts: YYYY-MM, MMYY, MM/YY,
// MMYYYY. It returns the first instant after the card's last valid day.
func parseExpiry(s string) (time.Time, error) {
	var year, month int
	var err error
	switch {
	case len(s) == 7 && s[4] == '-':
		year, err = strconv.Atoi(s[:4])
		if err == nil {
			month, err = strconv.Atoi(s[5:])
		}
	case len(s) == 4:
		month, err = strconv.Atoi(s[:2])
		if err == nil {
			year, err = strconv.Atoi(s[2:])
			year += 2000
		}
	case len(s) == 5 && s[2] == '/':
		month, err = strconv.Atoi(s[:2])
		if err == nil {
			year, err = strconv.Atoi(s[3:])
			year += 2000
		}
	case len(s) == 6:
		month, err = strconv.Atoi(s[:2])
		if err == nil {
			year, err = strconv.Atoi(s[2:])
		}
	default:
		return time.Time{}, fmt.Errorf("unknown expiration format")
	}
	if err != nil || month < 1 || month > 12 {
		return time.Time{}, fmt.Errorf("invalid expiration date")
	}
	return time.Date(year, time.Month(month)+1, 1, 0, 0, 0, 0, time.UTC), nil
}

// parseCents reads an xs:decimal amount into cents. Sub-cent digits must
// be zero: the simulator, like a USD merchant account, has no half cents.
func parseCents(s string) (int64, bool) {
	whole, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	if whole == "" {
		whole = "0"
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 2 || !digits(whole) || (frac != "" && !digits(frac)) || len(whole) > 13 {
		return 0, false
	}
	frac += strings.Repeat("0", 2-len(frac))
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt(frac, 10, 64)
	return w*100 + f, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func formatCents(c int64) string {
	return fmt.Sprintf("%d.%02d", c/100, c%100)
}

func maskNumber(n string) string {
	if len(n) < 4 {
		return "XXXX"
	}
	return "XXXX" + n[len(n)-4:]
}
