package authorizenet

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// FuzzDecodeResponse feeds arbitrary bodies to the response decoding the
// client uses for every method. Decoding may fail but must not panic; a
// decoded charge must classify into a known class with a redacted text;
// an amount must survive a round trip.
func FuzzDecodeResponse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"transactionResponse":{"responseCode":3,"errors":{"error":{"errorCode":11}}}}`))
	f.Add([]byte(`{"transactions":{"transaction":{"transId":1,"settleAmount":"0.1"}},"totalNumInResultSet":1}`))
	digits := regexp.MustCompile(`[0-9]{3}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		var ct CreateTransactionResponse
		if decode(data, &ct) == nil && ct.TransactionResponse != nil {
			d := ct.TransactionResponse.Decide()
			if d.Class < ClassApproved || d.Class > ClassPermanent {
				t.Fatalf("class %d", d.Class)
			}
			if digits.MatchString(d.ReasonText) {
				t.Fatalf("unredacted reason text %q", d.ReasonText)
			}
		}
		var det getTransactionDetailsResponse
		if decode(data, &det) == nil && det.Transaction != nil {
			_, _ = (&Processor{}).fromDetails(det.Transaction, instrumentOf(cardJob(&env{clock: newClock()}, "a", 1, visa())))
		}
		var list transactionListResponse
		if decode(data, &list) == nil {
			for _, s := range list.Transactions {
				again, err := ParseAmount(s.SettleAmount.String())
				if err != nil || again != s.SettleAmount {
					t.Fatalf("amount %d does not round-trip: %v", s.SettleAmount, err)
				}
				_, _ = s.SubmitTime()
			}
		}
		var batches settledBatchListResponse
		_ = decode(data, &batches)
	})
}
