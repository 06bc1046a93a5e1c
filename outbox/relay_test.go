package outbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "outbox", &env)) }

type harness struct {
	t    testing.TB
	js   jetstream.JetStream
	topo queue.Topology
	st   *store.Store
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.ToUpper(strings.TrimPrefix(testenv.UniqueID("x"), "x"))
	topo := queue.Default()
	topo.SubjectRoot = env.Subject("o" + strings.ToLower(id))
	topo.Jobs, topo.Events = env.StreamName("OJOBS_"+id), env.StreamName("OEVENTS_"+id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := queue.Ensure(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	// Each test starts from an outbox with nothing left to publish.
	if _, err := env.Pool.Exec(context.Background(), `UPDATE outbox SET published_at = now() WHERE published_at IS NULL`); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, js: js, topo: topo, st: store.New(env.Pool, env.Ring, canopy.Events{})}
}

// insert writes n event rows for the relay (not fast-path ones), with a
// NOTIFY, as a processor's own transaction would.
func (h *harness) insert(n int, prefix string) {
	h.t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, env.Pool, func(tx pgx.Tx) error {
		rows := make([][]any, n)
		for i := range rows {
			rows[i] = []any{fmt.Sprintf("%s-%06d", prefix, i), "events.line_item.valid", []byte(`{"n":` + fmt.Sprint(i) + `}`)}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"msg_id", "subject", "payload"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, store.OutboxChannel())
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) stored() uint64 { return h.storedIn(h.topo.Events) }

func (h *harness) storedIn(stream string) uint64 {
	s, err := h.js.Stream(context.Background(), stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

func (h *harness) unpublished() int {
	var n int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Several relays over one outbox publish every row exactly once between
// them: rows are claimed with SKIP LOCKED, not raced for.
func TestSeveralRelaysPublishEachRowOnce(t *testing.T) {
	h := newHarness(t)
	const rows, relays = 3000, 3
	h.insert(rows, "multi")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var metrics []*Metrics
	// Each relay holds a LISTEN connection beside env.Pool's.
	env.Reserve(t, relays, "the relays' LISTEN connections")
	for range relays {
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		metrics = append(metrics, m)
		r := NewRelay(h.st, env.Pool, h.js, h.topo, RelayOptions{Batch: 100, Backstop: 50 * time.Millisecond, Metrics: m, Logger: quiet()})
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx) }()
	}
	deadline := time.Now().Add(60 * time.Second)
	for h.unpublished() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows still unpublished", h.unpublished())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	var total float64
	var busy int
	for _, m := range metrics {
		n := testutil.ToFloat64(m.sent.WithLabelValues("relay", "acked"))
		total += n
		if n > 0 {
			busy++
		}
	}
	if total != rows {
		t.Errorf("relays published %v rows between them, want exactly %d (a row published twice means two relays claimed it)", total, rows)
	}
	if got := h.stored(); got != rows {
		t.Errorf("the stream holds %d messages, want %d", got, rows)
	}
	t.Logf("%d relays shared %d rows; %d of them did work", relays, rows, busy)
}

// A NOTIFY wakes the relay: rows written by another transaction go out
// long before the backstop tick would have found them.
func TestRelayWakesOnNotify(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env.Reserve(t, 1, "the relay's LISTEN connection")
	r := NewRelay(h.st, env.Pool, h.js, h.topo, RelayOptions{Backstop: time.Hour, Logger: quiet()})
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	time.Sleep(300 * time.Millisecond) // LISTEN is in place
	start := time.Now()
	h.insert(5, "notify")
	for h.stored() < 5 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("rows not published within 10s; the relay did not wake on NOTIFY")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("published %s after the commit, with a one-hour backstop", time.Since(start).Round(time.Millisecond))
	cancel()
	<-done
}

// Fast-path rows are left to their publisher for the grace period, then
// published by the relay if still unmarked; a republished row is dropped
// by the stream's duplicate window.
func TestRelayGraceAndDeduplication(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	msg := store.OutboxMessage{MsgID: "fast-1", Subject: "events.line_item.valid", Payload: []byte(`{}`)}
	// Published by a fast path that died before marking the row.
	if _, err := h.js.PublishMsg(ctx, natsMsg(h.topo, msg)); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(ctx, `INSERT INTO outbox (msg_id, subject, payload, fast_path) VALUES ($1, $2, $3, true)`,
		msg.MsgID, msg.Subject, msg.Payload); err != nil {
		t.Fatal(err)
	}
	publish := func(ctx context.Context, msgs []store.OutboxMessage) ([]int64, error) {
		r := NewRelay(h.st, env.Pool, h.js, h.topo, RelayOptions{Logger: quiet()})
		return r.publish(ctx, msgs)
	}
	if n, err := h.st.RelayBatch(ctx, 10, time.Hour, publish); err != nil || n != 0 {
		t.Fatalf("inside the grace period the relay claimed %d rows (err %v), want 0", n, err)
	}
	if n, err := h.st.RelayBatch(ctx, 10, time.Nanosecond, publish); err != nil || n != 1 {
		t.Fatalf("after the grace period the relay claimed %d rows (err %v), want 1", n, err)
	}
	if h.unpublished() != 0 {
		t.Error("the row is not marked published")
	}
	if got := h.stored(); got != 1 {
		t.Errorf("the stream holds %d copies, want 1", got)
	}
}
