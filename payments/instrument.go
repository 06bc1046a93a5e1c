package payments

import (
	"strconv"
	"strings"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// instrumentOf is what the line item may show of the payment method from
// the start: a card's brand and last four, a bank account's last four. A
// card profile is masked by its processor's answer.
func instrumentOf(job processors.Job) processors.Instrument {
	switch {
	case job.Card != nil:
		return processors.Instrument{Kind: "card", Brand: CardBrand(job.Card.Number), LastFour: store.LastFour(job.Card.Number)}
	case job.ACH != nil:
		return processors.Instrument{Kind: "bank_account", LastFour: store.LastFour(job.ACH.AccountNumber)}
	}
	return processors.Instrument{}
}

// CardBrand names the card network from the number's leading digits.
func CardBrand(pan string) string {
	prefix := func(n int) int {
		v, _ := strconv.Atoi(pan[:min(n, len(pan))])
		return v
	}
	switch {
	case strings.HasPrefix(pan, "4"):
		return "Visa"
	case prefix(2) >= 51 && prefix(2) <= 55, prefix(4) >= 2221 && prefix(4) <= 2720:
		return "Mastercard"
	case prefix(2) == 34 || prefix(2) == 37:
		return "American Express"
	case strings.HasPrefix(pan, "6011"), strings.HasPrefix(pan, "65"), prefix(3) >= 644 && prefix(3) <= 649:
		return "Discover"
	case prefix(4) >= 3528 && prefix(4) <= 3589:
		return "JCB"
	case prefix(2) == 36 || prefix(2) == 38 || prefix(3) >= 300 && prefix(3) <= 305:
		return "Diners Club"
	}
	return "Unknown"
}
