package queue

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/testenv"
)

// BenchmarkFollowerRestartLeftovers measures the nats-server bug behind
// MinClusterServer: a follower that was down while jobs were published and
// acknowledged should drop them once it is back (a fast-path card job
// carries the sealed CVV); older servers can keep them. It reports the
// jobs the restarted follower still holds ("leftover-jobs") once it has
// caught up and the jobs have passed the stream's MaxAge. It is a
// measurement of a server, not a check of payrail (payrail logs an ERROR
// for a cluster older than MinClusterServer, ClusterServerProblem), so it
// runs only with -bench, on real nats-server processes (the system's, or
// PAYRAIL_TEST_NATS_SERVER):
//
//	go test ./internal/queue -run '^$' -bench FollowerRestartLeftovers -benchtime 1x
func BenchmarkFollowerRestartLeftovers(b *testing.B) {
	t := b
	c := testenv.StartNATSCluster(t)
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	topo := Default()
	topo.Replicas = 3
	// The jobs stream's MaxAge is the bound on any copy (docs/security.md,
	// "CVV in JetStream"); here it is short enough to watch it work.
	topo.DuplicateWindow = 30 * time.Second
	topo.JobsMaxAge = 150 * time.Second
	if err := Ensure(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	cons, err := EnsureWorkerConsumer(ctx, js, topo, "TEST_PROC", ConsumerOptions{AckWait: 30 * time.Second, MaxDeliver: 10, MaxAckPending: 1000})
	if err != nil {
		t.Fatal(err)
	}
	si, err := js.Stream(ctx, topo.JobsStream())
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := si.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A node that leads neither the stream nor the consumer.
	follower := -1
	for i := range 3 {
		if n := c.Name(i); n != info.Cluster.Leader && n != ci.Cluster.Leader {
			follower = i
			break
		}
	}
	if follower < 0 {
		t.Fatalf("stream leader %s and consumer leader %s leave no follower", info.Cluster.Leader, ci.Cluster.Leader)
	}
	c.Kill(follower)
	t.Logf("%s: stream leader %s, consumer leader %s; killed follower %s", c.Version(), info.Cluster.Leader, ci.Cluster.Leader, c.Name(follower))

	const jobs = 430
	published := time.Now()
	for i := range jobs {
		if _, err := js.Publish(ctx, topo.JobSubject("TEST_PROC"), []byte("sealed job "+strconv.Itoa(i)),
			jetstream.WithMsgID(fmt.Sprintf("job_%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	acked := 0
	for acked < jobs {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			acked++
		}
	}
	for i := range 3 {
		if i != follower {
			waitMsgs(t, c, i, topo.JobsStream(), 10*time.Second)
		}
	}
	// Stay down until the consumer's leader has compacted its log into a
	// snapshot (2.9 does so every 2 minutes): a follower that missed only
	// a few seconds replays the individual acks and drops the jobs; one
	// that has to install the snapshot is where older servers keep them
	// (nats-server#3970).
	down := 135 * time.Second
	if d, err := time.ParseDuration(os.Getenv("PAYRAIL_TEST_FOLLOWER_DOWN")); err == nil {
		down = d
	}
	t.Logf("keeping %s down for %s", c.Name(follower), down)
	time.Sleep(down)

	restarted := time.Now()
	c.Start(follower)
	// The follower catches up with the stream (it receives the 430 jobs),
	// then with the consumer's state, which should remove them; the jobs
	// stream's MaxAge removes any copy once the jobs are that old.
	agedOut := published.Add(topo.jobsMaxAge())
	var held, last uint64
	caughtUp := time.Duration(0)
	deadline := agedOut.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		n, seq, ok := c.StreamState(follower, topo.JobsStream())
		held, last = n, seq
		if ok && seq >= jobs && caughtUp == 0 {
			caughtUp = time.Since(restarted)
		}
		if caughtUp > 0 && n == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if caughtUp == 0 {
		t.Fatalf("restarted follower %s did not catch up (last seq %d)", c.Name(follower), last)
	}
	t.Logf("nats-server %s: restarted follower %s caught up %s after its restart and holds %d of the %d acknowledged jobs %s after they were published (MaxAge %s)",
		c.Version(), c.Name(follower), caughtUp.Round(100*time.Millisecond), held, jobs,
		time.Since(published).Round(time.Second), topo.jobsMaxAge())
	b.ReportMetric(float64(held), "leftover-jobs")
}

func waitMsgs(t testing.TB, c *testenv.NATSCluster, node int, stream string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, ok := c.StreamMsgs(node, stream)
		if ok && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d messages of %s after every job was acknowledged", c.Name(node), n, stream)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
