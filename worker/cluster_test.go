package worker

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/testenv"
	"github.com/payrail/payrail/processors"
)

// These tests run the worker, API, publisher and relay against a
// three-node cluster of real nats-server processes (testenv.NATSCluster;
// the system's 2.9 by default, PAYRAIL_TEST_NATS_SERVER for another
// binary), break one node while payments arrive steadily, and measure the
// stall: the longest time without a processor call. deploy/README.md
// ("NATS cluster") records the numbers.

// With PAYRAIL_TEST_PULL_DEFAULTS=1 the worker pulls with nats.go's
// defaults (30 s expiry, 15 s heartbeat), to measure the stall before
// pull.go's options.
func usePullDefaults(t *testing.T) {
	if os.Getenv("PAYRAIL_TEST_PULL_DEFAULTS") == "1" {
		e, h := pullExpiry, pullHeartbeat
		pullExpiry, pullHeartbeat = 30*time.Second, 15*time.Second
		t.Cleanup(func() { pullExpiry, pullHeartbeat = e, h })
		t.Log("pulling with nats.go's defaults: 30s expiry, 15s heartbeat")
	}
}

// clockProcessor records when it was called; every payment succeeds.
type clockProcessor struct {
	mu    sync.Mutex
	calls []time.Time
}

func (*clockProcessor) Name() string { return processors.AuthorizeNet }

func (p *clockProcessor) Process(_ context.Context, job processors.Job) (processors.Result, error) {
	p.mu.Lock()
	p.calls = append(p.calls, time.Now())
	p.mu.Unlock()
	return processors.Result{Outcome: processors.Succeeded, TransactionID: "tx-" + job.AttemptID,
		Instrument: processors.Instrument{Kind: "card", Brand: "Visa", LastFour: "1111"}}, nil
}

// stall is the longest gap between calls from since to until (the ends
// count as calls), and when it ended.
func (p *clockProcessor) stall(since, until time.Time) (gap time.Duration, resumed time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := since
	for _, c := range append(append([]time.Time(nil), p.calls...), until) {
		if c.Before(since) {
			continue
		}
		if c.After(until) {
			c = until
		}
		if d := c.Sub(prev); d > gap {
			gap, resumed = d, c
		}
		prev = c
	}
	return gap, resumed
}

func (p *clockProcessor) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

// steadyLoad posts a payment every interval until stop is closed, and
// returns their line item ids when it has stopped. Failures are counted,
// not fatal: the API may answer slowly while NATS fails over.
func (f *fixture) steadyLoad(prefix string, interval time.Duration, stop <-chan struct{}) func() ([]string, int) {
	var ids []string
	var failed atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("%s-%d", prefix, i)
			body := fmt.Sprintf(`{"line_item_id":%q,"original_amount_cents":%d,"payment_details":{"payment_type":"DEBIT",`+
				`"payment_processor_name":"AUTHORIZE_NET","card_number":%q,"expiration_date":"12/30","cvv":"123","zip":"46201","name":"Pat Doe"}}`,
				id, 1000+i*1000, testPAN)
			req, _ := http.NewRequest("POST", f.api.URL+"/accounts/"+f.account+"/line_items/payments/guest_payment", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+f.token)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil || res.StatusCode != 200 {
				failed.Add(1)
			} else {
				ids = append(ids, id)
			}
			if res != nil {
				res.Body.Close()
			}
		}
	}()
	return func() ([]string, int) { <-done; return ids, int(failed.Load()) }
}

// consumerLeader is the server leading the fixture's worker consumer.
func (f *fixture) consumerLeader() string {
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	c, err := f.js.Consumer(ctx, f.topo.JobsStream(), f.topo.WorkerConsumer(processors.AuthorizeNet))
	if err != nil {
		return ""
	}
	info, err := c.Info(ctx)
	if err != nil || info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// moveConsumerLeader steps the worker consumer's leader down until the
// server named want leads it (want == "": until one other than avoid).
func (f *fixture) moveConsumerLeader(t *testing.T, avoid, want string) string {
	t.Helper()
	subj := fmt.Sprintf("$JS.API.CONSUMER.LEADER.STEPDOWN.%s.%s", f.topo.JobsStream(), f.topo.WorkerConsumer(processors.AuthorizeNet))
	deadline := time.Now().Add(60 * time.Second)
	for {
		l := f.consumerLeader()
		if l != "" && ((want != "" && l == want) || (want == "" && l != avoid)) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer leader stays %q", l)
		}
		if l != "" {
			_, _ = f.nc.Request(subj, nil, 5*time.Second)
		}
		time.Sleep(time.Second)
	}
}

func (f *fixture) waitProcessing(t *testing.T, p *clockProcessor, n int) {
	t.Helper()
	start := p.count()
	waitFor(t, 60*time.Second, func() bool { return p.count() >= start+n }, func() string {
		return fmt.Sprintf("%d calls", p.count()-start)
	})
}

// clusterUnderLoad starts a three-node cluster and a worker fixture on it
// with the roles' keepalive and replicated streams, posts a payment every
// 100 ms (until stop is closed; wait returns their ids), and returns once
// the worker is processing.
func clusterUnderLoad(t *testing.T, prefix string) (*testenv.NATSCluster, *fixture, *clockProcessor, chan struct{}, func() ([]string, int)) {
	t.Helper()
	usePullDefaults(t)
	c := testenv.StartNATSCluster(t)
	proc := &clockProcessor{}
	f := newFixture(t, fixtureOpts{natsURL: c.URL(0), natsOptions: queue.Keepalive(), replicas: 3,
		processor: proc, ackWait: 5 * time.Second, maxDeliver: 10})
	stop := make(chan struct{})
	wait := f.steadyLoad(prefix, 100*time.Millisecond, stop)
	f.waitProcessing(t, proc, 20)
	return c, f, proc, stop, wait
}

// Item 1: SIGKILL of the node that leads the worker's consumer, while
// the worker is connected to another node. The worker's pull request
// dies with the leader; processing must resume within 10 s.
func TestClusterConsumerLeaderKilled(t *testing.T) {
	c, f, proc, stop, wait := clusterUnderLoad(t, "leaderkill")
	connected := f.nc.ConnectedServerName()
	leader := f.moveConsumerLeader(t, connected, "")
	f.waitProcessing(t, proc, 20)

	killed := time.Now()
	c.Kill(c.Index(leader))
	t.Logf("SIGKILL %s (consumer leader; clients on %s)", leader, connected)
	time.Sleep(25 * time.Second)
	close(stop)
	ids, failed := wait()
	gap, resumed := proc.stall(killed.Add(-time.Second), time.Now())
	t.Logf("new consumer leader %s; longest gap without a processor call %s, resumed %s after the kill; %d payments, %d refused",
		f.consumerLeader(), gap.Round(100*time.Millisecond), resumed.Sub(killed).Round(100*time.Millisecond), len(ids), failed)
	f.waitSettled(ids, 60*time.Second)
	if gap > 10*time.Second {
		t.Errorf("processing stalled %s after the consumer leader was killed; want at most 10s", gap)
	}
}

// Item 2: SIGSTOP for 20 s of the node the API, publisher, relay and
// worker are connected to (and that leads the worker's consumer).
// Clients must notice within ~10 s and move; processing must resume
// within 15 s of the hang starting.
func TestClusterHungNode(t *testing.T) {
	c, f, proc, stop, wait := clusterUnderLoad(t, "hang")
	connected := f.nc.ConnectedServerName()
	f.moveConsumerLeader(t, "", connected)
	f.waitProcessing(t, proc, 20)

	hung := time.Now()
	c.Stop(c.Index(connected))
	t.Logf("SIGSTOP %s (clients' server and consumer leader)", connected)
	var moved time.Duration
	for time.Since(hung) < 20*time.Second {
		if moved == 0 && f.nc.Status() == nats.CONNECTED && f.nc.ConnectedServerName() != connected {
			moved = time.Since(hung)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.Cont(c.Index(connected))
	time.Sleep(10 * time.Second)
	close(stop)
	ids, failed := wait()
	// The stall the hang causes is the longest gap while the node hangs;
	// the node's return (SIGCONT) can cause a later one, bounded too.
	during, resumed := proc.stall(hung.Add(-time.Second), hung.Add(20*time.Second))
	gap, _ := proc.stall(hung.Add(-time.Second), time.Now())
	t.Logf("client moved to %s after %s; consumer leader now %s; during the hang the longest gap without a processor call %s, resumed %s after the hang began; longest gap in all %s; %d payments, %d refused",
		f.nc.ConnectedServerName(), moved.Round(100*time.Millisecond), f.consumerLeader(),
		during.Round(100*time.Millisecond), resumed.Sub(hung).Round(100*time.Millisecond), gap.Round(100*time.Millisecond),
		len(ids), failed)
	f.waitSettled(ids, 60*time.Second)
	if moved == 0 || moved > 10*time.Second {
		t.Errorf("client left the hung server after %s; want within 10s", moved)
	}
	if resumed.Sub(hung) > 15*time.Second {
		t.Errorf("processing resumed %s after the hang began; want within 15s", resumed.Sub(hung))
	}
	if gap > 15*time.Second {
		t.Errorf("processing stalled %s around the hung node's return; want at most 15s", gap)
	}
}
