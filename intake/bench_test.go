package intake

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/outbox"
)

// benchClients is how many clients post at once, as in the wrk
// runs (16 connections).
const benchClients = 16

// benchPoolConns is the benchmark store's pool: within the package's
// connection budget, which the shared pool also draws from.
const benchPoolConns = 10

// BenchmarkGuestPayment measures the intake alone: guest payments accepted
// over HTTP by 16 concurrent clients, each committed with its job and
// event rows, which the fast path publishes to JetStream and marks. No
// worker runs. Report payments/s and the p99 of the request latency.
func BenchmarkGuestPayment(b *testing.B) {
	for _, c := range []struct {
		name    string
		details func() map[string]any
	}{
		{"card", debitMethod},
		{"ach", achMethod},
	} {
		b.Run(c.name, func(b *testing.B) {
			// A pool as payrail api would size it for 16 clients, rather
			// than the package's small shared one.
			st := store.New(env.NewPool(b, benchPoolConns), env.Ring, canopy.Events{})
			natsFastPath(b, st)
			// Log as payrail api does (JSON at INFO), without filling the output.
			h := newHarness(b, withRate(rate.Inf, 1), func(c *Config) {
				c.Store = st
				c.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
			})
			acct := h.account()
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i] = mustJSON(guestBody(fmt.Sprintf("bench-%d", i), c.details()))
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}
			url := h.srv.URL + guestPath(acct)
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range benchClients {
				wg.Go(func() {
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						start := time.Now()
						if !post(client, url, h.token, bodies[i]) {
							failed.Add(1)
						}
						lat[i] = time.Since(start)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d payments not accepted", n, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
			b.ReportMetric(float64(percentile(lat, 0.99))/float64(time.Millisecond), "p99-ms")
		})
	}
}

// post sends one payment and reports whether it was accepted (200).
func post(c *http.Client, url, token string, body []byte) bool {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// natsFastPath gives st a fast-path publisher on streams of its
// own, as payrail api runs it.
func natsFastPath(b *testing.B, st *store.Store) {
	b.Helper()
	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	id := strings.ToUpper(strings.TrimPrefix(testenv.UniqueID("x"), "x"))
	topo := queue.Default()
	topo.SubjectRoot = env.Subject("b" + strings.ToLower(id))
	topo.Jobs, topo.Events = env.StreamName("BJOBS_"+id), env.StreamName("BEVENTS_"+id)
	ctx, cancel := context.WithCancel(context.Background())
	if err := queue.Ensure(ctx, js, topo); err != nil {
		cancel()
		b.Fatal(err)
	}
	pub := outbox.NewPublisher(js, topo, st, outbox.PublisherOptions{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = pub.Run(ctx)
	}()
	st.SetFastPath(pub)
	b.Cleanup(func() {
		cancel()
		<-done
		for _, s := range []string{topo.Jobs, topo.Events} {
			_ = js.DeleteStream(context.Background(), s)
		}
	})
}

// percentile returns the q-quantile of d (sorted in place).
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*q))]
}
