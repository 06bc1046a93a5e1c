package authorizenet

import (
	"context"
	"testing"
	"time"

	"github.com/payrail/payrail/payments"
	"github.com/payrail/payrail/processors"
)

// One payment shows one brand spelling: the gateway's answer (accountType
// "MasterCard", "AmericanExpress", and cardType in the details a lookup
// reads) carries the brand intake stored (payments.CardBrand), the
// spelling the API documents.
func TestBrandSpellingMatchesIntake(t *testing.T) {
	for _, tc := range []struct{ number, want string }{
		{"5424000000000015", "Mastercard"},
		{"2223000010309703", "Mastercard"},
		{"370000000000002", "American Express"},
		{"4111111111111111", "Visa"},
		{"6011000000000012", "Discover"},
	} {
		e := newEnv(t, envOptions{})
		card := visa()
		card.Number = tc.number
		if len(tc.number) == 15 {
			card.CVV = "1234"
		}
		job := cardJob(e, "att_brand_"+tc.number[:4], 1500, card)
		if got := payments.CardBrand(tc.number); got != tc.want {
			t.Fatalf("intake brand of %s = %q, want %q", tc.number[:4], got, tc.want)
		}
		res, err := e.proc.Process(context.Background(), job)
		if err != nil || res.Outcome != processors.Succeeded {
			t.Fatalf("Process = %+v, %v", res, err)
		}
		if res.Instrument.Brand != tc.want {
			t.Errorf("charge answer brand = %q, want %q (as intake stored it)", res.Instrument.Brand, tc.want)
		}
		// A later delivery reads the brand from the lookup's details.
		e.clock.Advance(9 * time.Hour)
		again, err := e.proc.Process(context.Background(), redelivered(job, true))
		if err != nil || again.Outcome != processors.Succeeded || again.Instrument.Brand != tc.want {
			t.Errorf("lookup answer = %+v, %v; want brand %q", again, err, tc.want)
		}
	}
}

func TestNormalizeBrand(t *testing.T) {
	for in, want := range map[string]string{
		"MasterCard": "Mastercard", "AmericanExpress": "American Express", "DinersClub": "Diners Club",
		"Visa": "Visa", "Discover": "Discover", "JCB": "JCB", "Mastercard": "Mastercard",
		"American Express": "American Express", "": "", "Tarjeta": "Unknown",
	} {
		if got := processors.NormalizeBrand(in); got != want {
			t.Errorf("NormalizeBrand(%q) = %q, want %q", in, got, want)
		}
	}
}
