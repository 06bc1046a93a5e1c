package payments

import (
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

// CardBrand names the card network from the number's leading digits, in
// the documented spelling (processors.CardBrand, which the processors'
// answers are normalized to as well).
func CardBrand(pan string) string { return processors.CardBrand(pan) }
