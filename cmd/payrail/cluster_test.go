package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/payrail/payrail/intake"
	"github.com/payrail/payrail/internal/testenv"
)

// A role connected to a node that hangs (SIGSTOP for 20 s) leaves it for
// another node within ~10 s (queue.Keepalive), and its /readyz follows:
// a worker's or relay's (NATS required) is 503 only until the client has
// moved; the API's (NATS optional) stays 200 throughout and answers
// within the probe's 3 s timeout. The cluster is real nats-server
// processes (testenv.NATSCluster).
func TestReadinessThroughHungNATSNode(t *testing.T) {
	c := testenv.StartNATSCluster(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc, err := connectNATS(c.URL(0), "worker", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nc.waitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	nc.topology.Store(true) // as ensureTopology does
	worker := opsHandler(prometheus.NewRegistry(), []intake.Check{{Name: "nats", Fn: nc.ready}})
	api := opsHandler(prometheus.NewRegistry(), []intake.Check{{Name: "nats", Fn: nc.ping, Optional: true}})

	hungNode := c.Index(nc.conn.ConnectedServerName())
	if hungNode < 0 {
		t.Fatalf("connected to %q", nc.conn.ConnectedServerName())
	}
	hung := time.Now()
	c.Stop(hungNode)
	var workerUnready, apiUnready, moved, apiSlowest time.Duration
	for time.Since(hung) < 20*time.Second {
		at := time.Since(hung)
		rec := httptest.NewRecorder()
		worker.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != 200 {
			workerUnready = time.Since(hung)
		}
		start := time.Now()
		rec = httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if d := time.Since(start); d > apiSlowest {
			apiSlowest = d
		}
		if rec.Code != 200 {
			apiUnready = time.Since(hung)
		}
		if moved == 0 && nc.conn.IsConnected() && nc.conn.ConnectedServerName() != c.Name(hungNode) {
			moved = at
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.Cont(hungNode)
	t.Logf("SIGSTOP %s for 20s: client moved to %s after %s; worker /readyz last 503 at %s; API /readyz 503 until %s (0: never), slowest API probe %s",
		c.Name(hungNode), nc.conn.ConnectedServerName(), moved.Round(100*time.Millisecond),
		workerUnready.Round(100*time.Millisecond), apiUnready, apiSlowest.Round(10*time.Millisecond))
	if moved == 0 || moved > 10*time.Second {
		t.Errorf("client left the hung node after %s; want within 10s", moved)
	}
	if workerUnready > 12*time.Second {
		t.Errorf("worker /readyz still 503 %s into the hang", workerUnready)
	}
	if apiUnready != 0 || apiSlowest >= 3*time.Second {
		t.Errorf("API /readyz: 503 until %s, slowest %s; want always 200 within the probe's 3s", apiUnready, apiSlowest)
	}
}
