package authorizenet

import (
	"strings"

	"github.com/payrail/payrail/processors"
)

// lastFour returns the last four characters of a card number (or of a
// masked one such as "XXXX1111").
func lastFour(number string) string {
	if len(number) < 4 {
		return ""
	}
	return number[len(number)-4:]
}

// brandOf names a card's brand from its leading digits, in the spelling
// the API uses in accountType. The API's own answer wins when there is
// one; this covers failures before any answer.
func brandOf(number string) string {
	prefix := func(ps ...string) bool {
		for _, p := range ps {
			if strings.HasPrefix(number, p) {
				return true
			}
		}
		return false
	}
	switch {
	case prefix("4"):
		return "Visa"
	case prefix("34", "37"):
		return "AmericanExpress"
	case prefix("51", "52", "53", "54", "55", "22", "23", "24", "25", "26", "27"):
		return "MasterCard"
	case prefix("6011", "64", "65"):
		return "Discover"
	case prefix("62"):
		return "UnionPay"
	case prefix("35", "3088", "3096", "3112", "3158", "3337"):
		return "JCB"
	case prefix("300", "301", "302", "303", "304", "305", "36", "38", "39"):
		return "DinersClub"
	}
	return ""
}

// instrumentOf is the masked card of a job: brand and last four only.
// A profile job's card is unknown until the API answers.
func instrumentOf(job processors.Job) processors.Instrument {
	inst := processors.Instrument{Kind: "card"}
	if job.Card != nil {
		inst.Brand, inst.LastFour = brandOf(job.Card.Number), lastFour(job.Card.Number)
	}
	return inst
}

// withAccount fills the instrument from the API's masked account number
// ("XXXX1111") and account type ("Visa").
func withAccount(inst processors.Instrument, accountNumber, accountType string) processors.Instrument {
	if l := lastFour(accountNumber); l != "" && isDigits(l) {
		inst.LastFour = l
	}
	if accountType != "" {
		inst.Brand = accountType
	}
	return inst
}
