package queue

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, "queue", &env)) }

// Ensure creates the streams and a worker consumer, and running it again
// (every role does at start) changes nothing, both on the NATS server the
// suite is given (2.9 on payrail's machines) and on the embedded v2.15
// server that payrail dev runs.
func TestEnsureIsIdempotentOnBothServers(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS did not start")
	}
	defer ns.Shutdown()

	for name, url := range map[string]string{"given server": env.NATSURL, "embedded v2.15": ns.ClientURL()} {
		t.Run(name, func(t *testing.T) {
			nc, err := nats.Connect(url)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			id := strings.ToUpper(strings.TrimPrefix(testenv.UniqueID("x"), "x"))
			topo := Default()
			topo.SubjectRoot = env.Subject("q" + strings.ToLower(id))
			topo.Jobs, topo.Events = env.StreamName("QJOBS_"+id), env.StreamName("QEVENTS_"+id)
			opts := ConsumerOptions{AckWait: 5 * time.Second, MaxDeliver: 4, MaxAckPending: 100}
			for round := 1; round <= 2; round++ {
				if err := Ensure(ctx, js, topo); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if _, err := EnsureWorkerConsumer(ctx, js, topo, "TEST_PROC", opts); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			jobs, err := js.Stream(ctx, topo.Jobs)
			if err != nil {
				t.Fatal(err)
			}
			cfg := jobs.CachedInfo().Config
			if cfg.Retention != jetstream.WorkQueuePolicy || cfg.Storage != jetstream.FileStorage ||
				cfg.Duplicates != topo.DuplicateWindow || cfg.Subjects[0] != topo.Subject("jobs.>") || cfg.MaxAge != topo.JobsMaxAge {
				t.Errorf("jobs stream config %+v", cfg)
			}
			events, err := js.Stream(ctx, topo.Events)
			if err != nil {
				t.Fatal(err)
			}
			if ec := events.CachedInfo().Config; ec.Retention != jetstream.LimitsPolicy || ec.MaxAge != topo.EventsMaxAge {
				t.Errorf("events stream config %+v", ec)
			}
			c, err := jobs.Consumer(ctx, topo.WorkerConsumer("TEST_PROC"))
			if err != nil {
				t.Fatal(err)
			}
			cc := c.CachedInfo().Config
			if cc.FilterSubject != topo.JobSubject("TEST_PROC") || cc.MaxDeliver != 4 || cc.AckPolicy != jetstream.AckExplicitPolicy {
				t.Errorf("consumer config %+v", cc)
			}
			// Work-queue semantics: one message published twice with the same
			// Nats-Msg-Id is stored once.
			for range 2 {
				m := nats.NewMsg(topo.JobSubject("TEST_PROC"))
				m.Header.Set(jetstream.MsgIDHeader, "job_dup")
				m.Data = []byte("x")
				if _, err := js.PublishMsg(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			info, err := jobs.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs != 1 {
				t.Errorf("duplicate publish stored %d messages, want 1", info.State.Msgs)
			}
			if name == "embedded v2.15" {
				for _, s := range []string{topo.Jobs, topo.Events} {
					_ = js.DeleteStream(ctx, s)
				}
			}
		})
	}
}
