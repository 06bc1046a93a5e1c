package validate

import (
	"testing"
	"time"
)

func TestABARoutingNumber(t *testing.T) {
	tests := []struct {
		in   string
		good bool
	}{
		{"021000021", true},  // JPMorgan Chase, the Canopy example
		{"121042882", true},  // Wells Fargo, the Authorize.Net eCheck sample
		{"011000015", true},  // Federal Reserve Bank of Boston
		{"021000022", false}, // check digit off by one
		{"02100002", false},  // eight digits
		{"0210000210", false},
		{"02100002a", false},
		{"500000005", false}, // check digit right, 50 is no Federal Reserve routing symbol
		{"130000006", false},
		{"800000006", true},
		{"610000005", true},
		{"", false},
	}
	for _, tt := range tests {
		err := ABARoutingNumber(tt.in)
		if (err == nil) != tt.good {
			t.Errorf("ABARoutingNumber(%q) = %v, want ok=%v", tt.in, err, tt.good)
		}
	}
}

func TestCardNumber(t *testing.T) {
	tests := []struct {
		in   string
		good bool
	}{
		{"4007000000027", true},    // 13-digit sandbox Visa
		{"4111111111111111", true}, // 16-digit Visa
		{"370000000000002", true},  // Amex
		{"6011000000000012", true}, // Discover
		{"4111111111111112", false},
		{"411111111111", false},         // 12 digits
		{"60110000000000001", false},    // 17 digits, Luhn-valid: more than the gateway takes
		{"6011000000000000001", false},  // 19 digits, Luhn-valid
		{"41111111111111111111", false}, // 20 digits
		{"4111-1111-1111-1111", false},
		{"", false},
	}
	for _, tt := range tests {
		err := CardNumber(tt.in)
		if (err == nil) != tt.good {
			t.Errorf("CardNumber(%q) = %v, want ok=%v", tt.in, err, tt.good)
		}
	}
}

func TestExpiry(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		good bool
	}{
		{"11/26", true}, // current month is still valid
		{"12/26", true},
		{"01/35", true},
		{"10/26", false}, // last month
		{"12/00", false}, // the Canopy example's expiry is long past
		{"13/27", false},
		{"00/27", false},
		{"1/27", false},
		{"01-27", false},
		{"0127", false},
	}
	for _, tt := range tests {
		_, _, err := Expiry(tt.in, now)
		if (err == nil) != tt.good {
			t.Errorf("Expiry(%q) = %v, want ok=%v", tt.in, err, tt.good)
		}
	}
	m, y, err := Expiry("03/31", now)
	if err != nil || m != 3 || y != 2031 {
		t.Errorf("Expiry(03/31) = %d, %d, %v; want 3, 2031, nil", m, y, err)
	}
}

func TestSmallFields(t *testing.T) {
	tests := []struct {
		name string
		fn   func(string) error
		in   string
		good bool
	}{
		{"cvv3", CVV, "123", true},
		{"cvv4", CVV, "1234", true},
		{"cvv2", CVV, "12", false},
		{"cvv5", CVV, "12345", false},
		{"cvvAlpha", CVV, "12a", false},
		{"zip5", ZIP, "46282", true},
		{"zip9", ZIP, "462821234", true},
		{"zip9Hyphen", ZIP, "46282-1234", true},
		{"zip4", ZIP, "4628", false},
		{"zipAlpha", ZIP, "4628a", false},
		{"acct4", BankAccountNumber, "1234", true},
		{"acct17", BankAccountNumber, "12345678901234567", true},
		{"acct3", BankAccountNumber, "123", false},
		{"acct18", BankAccountNumber, "123456789012345678", false},
		{"acctSpace", BankAccountNumber, "1234 5678", false},
		{"id", LineItemID, "0x1234", true},
		{"idPunct", LineItemID, "inv-2026.11:a_b", true},
		{"idCan", LineItemID, "can_123", false},
		{"idEmpty", LineItemID, "", false},
		{"idSpace", LineItemID, "a b", false},
		{"idLong", LineItemID, string(make([]byte, 65)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fn(tt.in)
			if (err == nil) != tt.good {
				t.Errorf("(%q) = %v, want ok=%v", tt.in, err, tt.good)
			}
		})
	}
}

func TestAmountCents(t *testing.T) {
	for _, v := range []int64{1, 200, MaxAmountCents} {
		if err := AmountCents(v); err != nil {
			t.Errorf("AmountCents(%d) = %v", v, err)
		}
	}
	for _, v := range []int64{0, -1, MaxAmountCents + 1} {
		if err := AmountCents(v); err == nil {
			t.Errorf("AmountCents(%d) accepted", v)
		}
	}
}

func TestEffectiveAt(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   time.Time
		good bool
	}{
		{now, true},
		{now.Add(-10*24*time.Hour + time.Minute), true},
		{now.Add(-10*24*time.Hour - time.Minute), false},
		{now.AddDate(1, 0, 0), true},
		{now.AddDate(1, 0, 1), false},
	}
	for _, tt := range tests {
		if err := EffectiveAt(tt.in, now); (err == nil) != tt.good {
			t.Errorf("EffectiveAt(%v) = %v, want ok=%v", tt.in, err, tt.good)
		}
	}
}
