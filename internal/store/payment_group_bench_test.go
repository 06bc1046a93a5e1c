package store

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkInsertPaymentBatch writes batches of payments with the
// group-commit statement, one batch at a time: what one committer's
// round trip costs for a batch of the size intake sees at 16 connections
// (about 8), without the queueing around it.
func BenchmarkInsertPaymentBatch(b *testing.B) {
	for _, size := range []int{1, 8, 32} {
		b.Run("payments="+strconv.Itoa(size), func(b *testing.B) {
			ctx := context.Background()
			st := New(env.Pool, env.Ring, plainEvents{})
			st.SetFastPath(&fastPathRecorder{})
			org := orgWithAccount(b, st)
			batch := make([]pendingPayment, size)
			n := 0
			for b.Loop() {
				b.StopTimer()
				for i := range batch {
					n++
					p, err := st.preparePayment(ctx, org, groupPayment("li_"+strconv.Itoa(n), "r", ""))
					if err != nil {
						b.Fatal(err)
					}
					batch[i] = p
				}
				b.StartTimer()
				for i, o := range st.insertPaymentBatch(ctx, batch) {
					if !o.written || o.err != nil {
						b.Fatalf("payment %d: written %v, %v", i, o.written, o.err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/payment")
		})
	}
}
