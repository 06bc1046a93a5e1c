package payments

import (
	"errors"
	"testing"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// The account's customer name used as the ACH holder name follows the
// intake's rules: transliterated, cut by characters, and refused when
// nothing writable is left.
func TestJobForHolderName(t *testing.T) {
	nacha := store.ACHConfig{Processor: processors.CanopyNACHA, RoutingNumber: "231380104", AccountNumber: "12345678",
		AccountType: "CHECKING"}
	guest := func() Payment {
		return Payment{Origin: OriginGuestPayment, Processor: processors.CanopyNACHA, PaymentType: processors.PaymentTypeACH,
			ACH: &processors.ACHDetails{RoutingNumber: "231380104", AccountNumber: "12345678", AccountType: "CHECKING",
				StandardEntryClass: "WEB"}}
	}
	transfer := Payment{Origin: OriginPaymentTransfer}
	for _, c := range []struct{ customer, want string }{
		{"Bjørn Strauß Łukasz Wiśniewski", "Bjorn Strauss Lukasz W"},
		{"ééééééééééééééééééééééééé", "eeeeeeeeeeeeeeeeeeeeee"},
	} {
		acct := store.Account{AccountID: "a", CustomerName: c.customer, Processors: store.ProcessorConfig{ACH: nacha}}
		for _, p := range []Payment{guest(), transfer} {
			job, err := jobFor(acct, p)
			if err != nil {
				t.Fatalf("%s %q: %v", p.Origin, c.customer, err)
			}
			if job.ACH.Name != c.want {
				t.Errorf("%s %q: holder name %q, want %q", p.Origin, c.customer, job.ACH.Name, c.want)
			}
		}
	}
	for _, customer := range []string{"", "😀😀", "王小明", "Иван"} {
		acct := store.Account{AccountID: "a", CustomerName: customer, Processors: store.ProcessorConfig{ACH: nacha}}
		for _, p := range []Payment{guest(), transfer} {
			if _, err := jobFor(acct, p); !errors.Is(err, ErrHolderNameRequired) {
				t.Errorf("%s %q: err %v, want ErrHolderNameRequired", p.Origin, customer, err)
			}
		}
	}
	// A card's billTo name is cut by characters, never inside one.
	acct := store.Account{AccountID: "a", CustomerName: "é" + stringsRepeat("ü", 60)}
	job, err := jobFor(acct, Payment{Origin: OriginGuestPayment, Processor: processors.AuthorizeNet,
		PaymentType: processors.PaymentTypeDebit, Card: &processors.CardDetails{Number: "4111111111111111"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(job.Card.Name)); n != maxCardName {
		t.Errorf("card name has %d characters, want %d", n, maxCardName)
	}
}

func stringsRepeat(s string, n int) (out string) {
	for i := 0; i < n; i++ {
		out += s
	}
	return out
}
