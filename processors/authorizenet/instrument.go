package authorizenet

import (
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

// instrumentOf is the masked card of a job: brand and last four only.
// A profile job's card is unknown until the API answers.
func instrumentOf(job processors.Job) processors.Instrument {
	inst := processors.Instrument{Kind: "card"}
	if job.Card != nil {
		inst.Brand, inst.LastFour = processors.CardBrand(job.Card.Number), lastFour(job.Card.Number)
	}
	return inst
}

// withAccount fills the instrument from the API's masked account number
// ("XXXX1111") and account type ("Visa", "MasterCard"), the brand in the
// spelling intake uses (processors.NormalizeBrand), so one payment's
// events never disagree on it.
func withAccount(inst processors.Instrument, accountNumber, accountType string) processors.Instrument {
	if l := lastFour(accountNumber); l != "" && isDigits(l) {
		inst.LastFour = l
	}
	switch b := processors.NormalizeBrand(accountType); {
	case b == "", b == processors.BrandUnknown && inst.Brand != "":
		// Nothing better than what the number said.
	default:
		inst.Brand = b
	}
	return inst
}
