package outbox

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/payrail/payrail/internal/store"
)

// benchBody is an event-sized payload (about 1 KiB).
var benchBody = []byte(`{"pad":"` + strings.Repeat("x", 1000) + `"}`)

// BenchmarkRelayBacklog measures one relay publishing a backlog: b.N rows
// wait in the outbox and the relay publishes them all to JetStream and
// settles them. Event rows are deleted as they are settled; job rows keep
// their payload until their attempt's result commits, so they are marked
// published instead (an UPDATE, not a DELETE). The jetstream-only case
// publishes the same messages straight from memory with the same
// pipelined PubAcks: the ceiling the broker and the machine allow in the
// same run, to read the relay's figure against. Run it with a fixed
// count, e.g. -benchtime 50000x; all report rows/s.
func BenchmarkRelayBacklog(b *testing.B) {
	for _, c := range []struct{ name, subject string }{
		{"relay", "events.line_item.valid"},
		{"relay-jobs", "jobs.AUTHORIZE_NET"},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := newHarness(b)
			ctx := context.Background()
			prefix := fmt.Sprintf("bench-%d", time.Now().UnixNano())
			if strings.HasPrefix(c.subject, "jobs.") {
				insertJobBacklog(b, prefix, b.N)
			} else {
				const chunk = 10000
				for start := 0; start < b.N; start += chunk {
					n := min(chunk, b.N-start)
					rows := make([][]any, n)
					for i := range rows {
						rows[i] = []any{fmt.Sprintf("%s-%08d", prefix, start+i), c.subject, benchBody}
					}
					if _, err := env.Pool.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"msg_id", "subject", "payload"},
						pgx.CopyFromRows(rows)); err != nil {
						b.Fatal(err)
					}
				}
			}
			r := NewRelay(h.st, env.Pool, h.js, h.topo, RelayOptions{Logger: quiet()})
			b.ResetTimer()
			total := 0
			for total < b.N {
				n, err := r.sweep(ctx)
				if err != nil {
					b.Fatal(err)
				}
				total += n
			}
			b.StopTimer()
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
			if left := h.unpublished(); left != 0 {
				b.Fatalf("%d rows left unpublished", left)
			}
			stream := h.topo.Events
			if strings.HasPrefix(c.subject, "jobs.") {
				stream = h.topo.Jobs
			}
			if got := h.storedIn(stream); got != uint64(b.N) {
				b.Fatalf("stream %s holds %d messages, want %d", stream, got, b.N)
			}
		})
	}
	b.Run("jetstream-only", func(b *testing.B) {
		h := newHarness(b)
		r := NewRelay(h.st, env.Pool, h.js, h.topo, RelayOptions{Logger: quiet()})
		prefix := fmt.Sprintf("raw-%d", time.Now().UnixNano())
		msgs := make([]store.OutboxMessage, b.N)
		for i := range msgs {
			msgs[i] = store.OutboxMessage{ID: int64(i), MsgID: fmt.Sprintf("%s-%08d", prefix, i),
				Subject: "events.line_item.valid", Payload: benchBody}
		}
		b.ResetTimer()
		for start := 0; start < b.N; start += r.opts.Batch {
			if _, err := r.publish(context.Background(), msgs[start:min(start+r.opts.Batch, b.N)]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		if got := h.stored(); got != uint64(b.N) {
			b.Fatalf("the stream holds %d messages, want %d", got, b.N)
		}
	})
}

// insertJobBacklog writes n queued card payments as the intake stores
// them, each attempt holding its sealed job (benchBody) and each job's
// outbox row naming its attempt, without a payload: what a relay finds
// after an outage.
func insertJobBacklog(b *testing.B, prefix string, n int) {
	b.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO orgs (org_id, name) VALUES ($1, 'bench')`,
		`INSERT INTO accounts (org_id, account_id, product_id, request_hash) VALUES ($1, 'acct', 'prod', '\x00')`,
		`INSERT INTO line_items (org_id, account_id, line_item_id, line_item_type, status, original_amount_cents,
		     effective_at, created_at, updated_at, origin, request_hash, client_id)
		 SELECT $1, 'acct', 'li-' || i, 'PAYMENT', 'PENDING', 100, now(), now(), now(), 'guest_payment', '\x00', 'bench'
		   FROM generate_series(1, $2::int) i`,
		`INSERT INTO payment_attempts (attempt_id, org_id, account_id, line_item_id, processor, payment_type, status,
		     job_msg_id, job, created_at, updated_at)
		 SELECT $1 || '-' || i, $1, 'acct', 'li-' || i, 'AUTHORIZE_NET', 'DEBIT', 'queued', 'job_' || $1 || '-' || i, $3,
		        now(), now()
		   FROM generate_series(1, $2::int) i`,
		`INSERT INTO outbox (msg_id, subject, attempt_id)
		 SELECT 'job_' || $1 || '-' || i, 'jobs.AUTHORIZE_NET', $1 || '-' || i FROM generate_series(1, $2::int) i ORDER BY i`,
	} {
		args := []any{prefix, n, benchBody}
		switch {
		case strings.Contains(q, "INSERT INTO orgs"), strings.Contains(q, "INSERT INTO accounts"):
			args = args[:1]
		case !strings.Contains(q, "$3"):
			args = args[:2]
		}
		if _, err := env.Pool.Exec(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := env.Pool.Exec(ctx, `ANALYZE outbox, payment_attempts`); err != nil {
		b.Fatal(err)
	}
}
