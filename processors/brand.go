package processors

import (
	"strconv"
	"strings"
)

// Card brands, spelled as the API documents them (intake/openapi.yaml,
// Instrument.brand). Every brand a payment shows, whether derived from the
// number at intake or reported by a gateway, is one of these.
const (
	BrandVisa            = "Visa"
	BrandMastercard      = "Mastercard"
	BrandAmericanExpress = "American Express"
	BrandDiscover        = "Discover"
	BrandJCB             = "JCB"
	BrandDinersClub      = "Diners Club"
	BrandUnknown         = "Unknown"
)

// CardBrand names the card network from the number's leading digits.
func CardBrand(pan string) string {
	prefix := func(n int) int {
		v, _ := strconv.Atoi(pan[:min(n, len(pan))])
		return v
	}
	switch {
	case strings.HasPrefix(pan, "4"):
		return BrandVisa
	case prefix(2) >= 51 && prefix(2) <= 55, prefix(4) >= 2221 && prefix(4) <= 2720:
		return BrandMastercard
	case prefix(2) == 34 || prefix(2) == 37:
		return BrandAmericanExpress
	case strings.HasPrefix(pan, "6011"), strings.HasPrefix(pan, "65"), prefix(3) >= 644 && prefix(3) <= 649:
		return BrandDiscover
	case prefix(4) >= 3528 && prefix(4) <= 3589:
		return BrandJCB
	case prefix(2) == 36 || prefix(2) == 38 || prefix(3) >= 300 && prefix(3) <= 305:
		return BrandDinersClub
	}
	return BrandUnknown
}

// brandNames maps a brand's letters, lower-cased and without spaces, to
// its documented spelling. Gateways spell brands their own way
// (Authorize.Net's accountType and cardType say "MasterCard",
// "AmericanExpress", "DinersClub").
var brandNames = map[string]string{
	"visa":            BrandVisa,
	"mastercard":      BrandMastercard,
	"mc":              BrandMastercard,
	"americanexpress": BrandAmericanExpress,
	"amex":            BrandAmericanExpress,
	"discover":        BrandDiscover,
	"jcb":             BrandJCB,
	"dinersclub":      BrandDinersClub,
	"diners":          BrandDinersClub,
	"unknown":         BrandUnknown,
}

// NormalizeBrand returns a brand name reported by a processor in the
// documented spelling: "MasterCard" → "Mastercard", "AmericanExpress" →
// "American Express". An empty name stays empty; one that names no
// known network is BrandUnknown.
func NormalizeBrand(name string) string {
	key := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '_', '-', '.':
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(name)))
	if key == "" {
		return ""
	}
	if b, ok := brandNames[key]; ok {
		return b
	}
	return BrandUnknown
}
