package nacha

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/processortest"
)

// contractEnv is a fixture whose processor reaches PostgreSQL through a
// pool the test can cut: every connection is dialed by a cutter, which
// can make the database unreachable or lose the answer to a committed
// INSERT.
type contractEnv struct {
	f   *fixture
	cut *cutter
}

func newContractEnv(t *testing.T) processortest.Env {
	cut := &cutter{conns: map[*cutConn]bool{}}
	cfg, err := pgxpool.ParseConfig(env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = int32(env.Reserve(t, 2, "the contract suite's pool")) // docs/testing.md
	cfg.ConnConfig.DialFunc = cut.dial
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Tuesday morning, before the cutoff.
	f := newFixture(t, ny(t, 2025, 11, 25, 10, 0), fixtureOpts{mutate: func(c *Config) { c.Pool = pool }})
	return &contractEnv{f: f, cut: cut}
}

func (c *contractEnv) Processor() processors.Processor { return c.f.p }

// Job creates the payment's line item and attempt, as the intake does,
// and returns its job.
func (c *contractEnv) Job(t *testing.T, attemptID string) processors.Job {
	f := c.f
	const account = "acct_1"
	f.ensureAccount(account)
	lineItem := "li_" + attemptID
	now := *f.clock.Load()
	if _, err := env.Pool.Exec(f.ctx, `
		INSERT INTO line_items (org_id, account_id, line_item_id, line_item_type, status, original_amount_cents,
		    effective_at, created_at, updated_at, origin, processor, request_hash, client_id)
		VALUES ($1, $2, $3, 'PAYMENT', 'PENDING', 4321, $4, $4, $4, 'guest_payment', 'CANOPY_NACHA', '\x00', 'test')`,
		f.org, account, lineItem, now); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(f.ctx, `
		INSERT INTO payment_attempts (attempt_id, org_id, account_id, line_item_id, processor, payment_type, status,
		    job_msg_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, 'CANOPY_NACHA', 'ACH', 'processing', 'job_'||$1, $5, $5)`,
		attemptID, f.org, account, lineItem, now); err != nil {
		t.Fatal(err)
	}
	return processors.Job{
		OrgID: f.org, AccountID: account, LineItemID: lineItem, AttemptID: attemptID,
		Processor: Name, PaymentType: processors.PaymentTypeACH, Origin: "guest_payment", AmountCents: 4321,
		CreatedAt: now, Delivery: 1,
		ACH: &processors.ACHDetails{RoutingNumber: "231380104", AccountNumber: "12345678901", AccountType: "CHECKING",
			StandardEntryClass: "WEB", Name: "Jane Doe"},
	}
}

// Effects counts the entries staged for the job's line item, whatever
// their attempt.
func (c *contractEnv) Effects(t *testing.T, job processors.Job) int {
	var n int
	if err := env.Pool.QueryRow(c.f.ctx, `SELECT count(*) FROM nacha_entries WHERE org_id = $1 AND line_item_id = $2`,
		job.OrgID, job.LineItemID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// cutter dials the processor's connections and cuts them on request.
type cutter struct {
	mu    sync.Mutex
	down  bool
	conns map[*cutConn]bool
	// loseInsert: the next answer to an INSERT that staged a row is
	// swallowed and its connection closed, after PostgreSQL committed.
	loseInsert atomic.Bool
}

var errCut = errors.New("contract test: connection cut")

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errCut}
	}
	raw, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn := &cutConn{Conn: raw, c: c}
	c.conns[conn] = true
	return conn, nil
}

// setDown makes the database unreachable (closing every connection) or
// reachable again.
func (c *cutter) setDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
	if down {
		for conn := range c.conns {
			conn.Conn.Close()
			delete(c.conns, conn)
		}
	}
}

type cutConn struct {
	net.Conn
	c *cutter
}

// commandComplete is the tag PostgreSQL answers a one-row INSERT with.
var commandComplete = []byte("INSERT 0 1\x00")

func (k *cutConn) Read(b []byte) (int, error) {
	n, err := k.Conn.Read(b)
	// PostgreSQL sends the INSERT's CommandComplete with ReadyForQuery,
	// after the implicit transaction committed at Sync.
	if n > 0 && bytes.Contains(b[:n], commandComplete) && k.c.loseInsert.CompareAndSwap(true, false) {
		k.Conn.Close()
		return 0, errCut
	}
	return n, err
}

func (k *cutConn) Close() error {
	k.c.mu.Lock()
	delete(k.c.conns, k)
	k.c.mu.Unlock()
	return k.Conn.Close()
}

func nachaEnv(e processortest.Env) *contractEnv { return e.(*contractEnv) }

// refuse is a permanent failure: the job with its ACH details changed.
func refuse(name string, edit func(*processors.ACHDetails)) processortest.Failure {
	return processortest.Failure{
		Name: name,
		Arm: func(t *testing.T, e processortest.Env, job processors.Job) processors.Job {
			d := *job.ACH
			edit(&d)
			job.ACH = &d
			return job
		},
	}
}

func TestContract(t *testing.T) {
	processortest.Run(t, processortest.Harness{
		Setup: newContractEnv,
		// Staged for the next cutoff; the trace number comes with the file.
		Want: processors.PendingSettlement,
		// The worker keeps a PENDING ACH attempt until the drop, settlement
		// and returns move it; there is nothing to resolve.
		NoResolver: true,
		Transient: []processortest.Failure{{
			Name: "database unreachable",
			Arm: func(t *testing.T, e processortest.Env, job processors.Job) processors.Job {
				nachaEnv(e).cut.setDown(true)
				return job
			},
			Heal: func(t *testing.T, e processortest.Env) { nachaEnv(e).cut.setDown(false) },
		}},
		Unknown: []processortest.Failure{{
			Name: "connection lost after the entry committed",
			Arm: func(t *testing.T, e processortest.Env, job processors.Job) processors.Job {
				nachaEnv(e).cut.loseInsert.Store(true)
				return job
			},
			Heal: func(t *testing.T, e processortest.Env) {
				if nachaEnv(e).cut.loseInsert.Load() {
					t.Error("harness: no INSERT answer was lost")
				}
			},
		}},
		Permanent: []processortest.Failure{
			refuse("routing number check digit", func(d *processors.ACHDetails) { d.RoutingNumber = "231380105" }),
			refuse("unknown SEC code", func(d *processors.ACHDetails) { d.StandardEntryClass = "IAT" }),
			refuse("account number with a space", func(d *processors.ACHDetails) { d.AccountNumber = "1234 5678901" }),
			{
				Name: "organization without NACHA configuration",
				Arm: func(t *testing.T, e processortest.Env, job processors.Job) processors.Job {
					f := nachaEnv(e).f
					if _, err := env.Pool.Exec(f.ctx, `DELETE FROM org_nacha_configs WHERE org_id = $1`, f.org); err != nil {
						t.Fatal(err)
					}
					return job
				},
			},
		},
	})
}
