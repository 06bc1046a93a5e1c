package authorizenet

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/payrail/payrail/processors"
)

// BenchmarkChargeRoundTrip is one guest card charge through the processor,
// the client, loopback HTTP and the simulator (schema validation and all).
func BenchmarkChargeRoundTrip(b *testing.B) {
	e := newEnv(b, envOptions{})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		res, err := e.proc.Process(ctx, cardJob(e, fmt.Sprintf("att_bench_%d", i), 1000+int64(i%500), visa()))
		if err != nil || res.Outcome != processors.Succeeded {
			b.Fatalf("%+v, %v", res, err)
		}
	}
}

// BenchmarkDecodeCreateTransactionResponse decodes the approved fixture.
func BenchmarkDecodeCreateTransactionResponse(b *testing.B) {
	data, err := os.ReadFile("testdata/approved.json")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var resp CreateTransactionResponse
		if err := decode(data, &resp); err != nil {
			b.Fatal(err)
		}
		_ = resp.TransactionResponse.Decide()
	}
}
