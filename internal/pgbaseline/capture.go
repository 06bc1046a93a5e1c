package pgbaseline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/payments"
	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/schema"
)

// Statement is one SQL statement the store sent, with its arguments.
type Statement struct {
	SQL  string
	Args []any
}

// Script is a pgbench script of one card guest payment.
type Script struct {
	// Text is the script, for pgbench -f.
	Text string
	// Statements are what the store sent, in order.
	Statements []Statement
}

// Scratch creates a database named after prefix with a random suffix on
// the server serverURL points at, migrates it to payrail's schema and
// returns its URL and a function that drops it.
func Scratch(ctx context.Context, serverURL, prefix string) (dbURL string, drop func(context.Context) error, err error) {
	cfg, err := pgx.ParseConfig(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("pgbaseline: parse database URL: %w", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := prefix + "_" + hex.EncodeToString(b[:])
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("pgbaseline: connect to %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("pgbaseline: create database %s: %w", name, err)
	}
	drop = func(ctx context.Context) error {
		c, err := pgx.ConnectConfig(ctx, admin)
		if err != nil {
			return fmt.Errorf("pgbaseline: drop database %s: %w", name, err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("pgbaseline: drop database %s: %w", name, err)
		}
		return nil
	}
	dbURL = withDatabase(serverURL, name)
	mc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		_ = drop(context.Background())
		return "", nil, fmt.Errorf("pgbaseline: connect to %s: %w", name, err)
	}
	defer mc.Close(context.Background())
	if _, _, err := schema.Migrate(ctx, mc); err != nil {
		_ = drop(context.Background())
		return "", nil, fmt.Errorf("pgbaseline: migrate %s: %w", name, err)
	}
	return dbURL, drop, nil
}

// withDatabase returns the URL u with its database replaced by name.
// Only URLs (postgres://…) are handled, the form payrail's settings take.
func withDatabase(u, name string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u + " dbname=" + name
	}
	query := ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest, query = rest[:i], rest[i:]
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host + "/" + name + query
}

// tracer records the statements a pool sends while on.
type tracer struct {
	on  atomic.Bool
	mu  sync.Mutex
	got []Statement
}

func (t *tracer) add(sql string, args []any) {
	if !t.on.Load() {
		return
	}
	t.mu.Lock()
	t.got = append(t.got, Statement{SQL: sql, Args: args})
	t.mu.Unlock()
}

func (t *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t.add(d.SQL, d.Args)
	return ctx
}
func (t *tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (t *tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (t *tracer) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	t.add(d.SQL, d.Args)
}
func (t *tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// fastPath keeps what the store hands to the fast path after a commit.
type fastPath struct {
	mu   sync.Mutex
	msgs []store.OutboxMessage
}

func (f *fastPath) Enqueue(msgs []store.OutboxMessage) {
	f.mu.Lock()
	f.msgs = append(f.msgs, msgs...)
	f.mu.Unlock()
}

const (
	orgID     = "bench_baseline"
	accountID = "acct_baseline"
)

// Capture runs one card guest payment as the API does, on the database
// dbURL points at (migrated, and used by nothing else: Scratch makes
// one), and returns the script of the statements it sent.
func Capture(ctx context.Context, dbURL string) (Script, error) {
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return Script{}, fmt.Errorf("pgbaseline: %w", err)
	}
	tr := &tracer{}
	pc.ConnConfig.Tracer = tr
	pc.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return Script{}, fmt.Errorf("pgbaseline: %w", err)
	}
	defer pool.Close()
	key, err := keyring.NewKey()
	if err != nil {
		return Script{}, err
	}
	ring, err := keyring.Parse("bl="+key, "")
	if err != nil {
		return Script{}, err
	}
	st := store.New(pool, ring, canopy.Events{})
	fp := &fastPath{}
	st.SetFastPath(fp)
	if err := st.EnsureOrg(ctx, orgID, "payrail bench baseline"); err != nil {
		return Script{}, err
	}
	if _, _, err := st.CreateAccount(ctx, orgID, store.NewAccount{AccountID: accountID, ProductID: "bench",
		CustomerName: "Bench Customer", RequestHash: []byte("payrail bench baseline")}); err != nil {
		return Script{}, err
	}
	fp.msgs = nil

	lineItemID := "bl_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	pay := payments.Payment{
		OrgID: orgID, AccountID: accountID, LineItemID: lineItemID, Origin: payments.OriginGuestPayment,
		PaymentType: processors.PaymentTypeDebit, Processor: "AUTHORIZE_NET",
		Card: &processors.CardDetails{Number: "4007000000027", ExpirationDate: time.Now().UTC().AddDate(2, 0, 0).Format("01/06"),
			CVV: "123", Zip: "12345"},
		AmountCents: 200, RequestHash: []byte("0123456789abcdef0123456789abcdef"), ClientID: "cli_baseline",
	}
	tr.on.Store(true)
	li, created, err := payments.New(st, ring).Submit(ctx, pay, time.Now().UTC())
	if err != nil {
		return Script{}, fmt.Errorf("pgbaseline: submit the sample payment: %w", err)
	}
	if !created || li.Attempt == nil {
		return Script{}, errors.New("pgbaseline: the sample payment was not created with an attempt")
	}
	ids := make([]int64, len(fp.msgs))
	for i, m := range fp.msgs {
		ids[i] = m.ID
	}
	// What the fast path does once JetStream acked the rows.
	if err := st.MarkPublished(ctx, ids); err != nil {
		return Script{}, err
	}
	tr.on.Store(false)

	fresh := []string{lineItemID, li.Attempt.AttemptID}
	for _, m := range fp.msgs {
		fresh = append(fresh, m.MsgID)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return Script{}, err
	}
	defer conn.Release()
	text, err := render(ctx, conn.Conn(), tr.got, fresh, fp.msgs)
	if err != nil {
		return Script{}, err
	}
	return Script{Text: text, Statements: tr.got}, nil
}

var placeholder = regexp.MustCompile(`\$(\d+)`)

// render writes the pgbench script of stmts. fresh are the values that
// must be new per payment; msgs the outbox rows, whose ids the script
// reads back from their inserts.
func render(ctx context.Context, conn *pgx.Conn, stmts []Statement, fresh []string, msgs []store.OutboxMessage) (string, error) {
	var b strings.Builder
	b.WriteString("-- payrail bench --baseline: the statements of one card guest payment, captured from the store\n")
	b.WriteString("\\set n random(1, 9000000000000000000)\n")
	outboxVar := map[int64]string{} // outbox row id → pgbench variable
	for i, s := range stmts {
		var oids []uint32
		if len(s.Args) > 0 {
			sd, err := conn.Prepare(ctx, "", s.SQL)
			if err != nil {
				return "", fmt.Errorf("pgbaseline: describe %q: %w", firstLine(s.SQL), err)
			}
			oids = sd.ParamOIDs
		}
		var rerr error
		sql := placeholder.ReplaceAllStringFunc(s.SQL, func(p string) string {
			n, _ := strconv.Atoi(p[1:])
			if n < 1 || n > len(s.Args) || n > len(oids) {
				rerr = fmt.Errorf("pgbaseline: %q: no argument for %s", firstLine(s.SQL), p)
				return p
			}
			lit, err := literal(conn.TypeMap(), oids[n-1], s.Args[n-1], fresh, outboxVar)
			if err != nil {
				rerr = fmt.Errorf("pgbaseline: %q argument %s: %w", firstLine(s.SQL), p, err)
			}
			return lit
		})
		if rerr != nil {
			return "", rerr
		}
		sql = strings.TrimSpace(sql)
		// An outbox insert returns its row's id: keep it for the
		// mark-published update.
		if m, ok := insertedRow(s, msgs); ok && strings.Contains(strings.ToUpper(sql), "RETURNING ID") {
			v := "ob" + strconv.Itoa(i) + "_"
			outboxVar[m.ID] = v + "id"
			fmt.Fprintf(&b, "%s \\gset %s\n", sql, v)
			continue
		}
		fmt.Fprintf(&b, "%s;\n", sql)
	}
	return b.String(), nil
}

// insertedRow is the outbox row whose message id s carries.
func insertedRow(s Statement, msgs []store.OutboxMessage) (store.OutboxMessage, bool) {
	for _, a := range s.Args {
		if v, ok := a.(string); ok {
			for _, m := range msgs {
				if v == m.MsgID {
					return m, true
				}
			}
		}
	}
	return store.OutboxMessage{}, false
}

func firstLine(sql string) string {
	sql = strings.TrimSpace(sql)
	if i := strings.IndexByte(sql, '\n'); i >= 0 {
		sql = sql[:i]
	}
	return sql
}

// literal writes v, an argument of type oid, as an SQL expression for the
// script.
func literal(m *pgtype.Map, oid uint32, v any, fresh []string, outboxVar map[int64]string) (string, error) {
	typ, ok := m.TypeForOID(oid)
	if !ok {
		return "", fmt.Errorf("unknown type oid %d", oid)
	}
	if ids, ok := v.([]int64); ok && len(ids) > 0 {
		vars := make([]string, len(ids))
		all := true
		for i, id := range ids {
			if vars[i], ok = outboxVar[id]; !ok {
				all = false
			} else {
				vars[i] = ":" + vars[i]
			}
		}
		if all {
			return "ARRAY[" + strings.Join(vars, ", ") + "]::" + typ.Name, nil
		}
	}
	buf, err := m.Encode(oid, pgtype.TextFormatCode, v, nil)
	if err != nil {
		return "", err
	}
	if buf == nil {
		return "NULL::" + typ.Name, nil
	}
	text := string(buf)
	if oid == pgtype.TextOID || oid == pgtype.VarcharOID {
		if expr, ok := freshExpr(text, fresh); ok {
			return expr, nil
		}
	}
	return quote(text) + "::" + typ.Name, nil
}

// freshExpr writes text, which holds one or more fresh ids, as an
// expression that makes them new per transaction: the k-th fresh id
// becomes "<its prefix>_b<k>_<:n>".
func freshExpr(text string, fresh []string) (string, bool) {
	var parts []string
	found := false
	for text != "" {
		at, which := -1, -1
		for k, f := range fresh {
			if i := strings.Index(text, f); i >= 0 && (at < 0 || i < at) {
				at, which = i, k
			}
		}
		if at < 0 {
			parts = append(parts, quote(text))
			break
		}
		found = true
		if at > 0 {
			parts = append(parts, quote(text[:at]))
		}
		prefix, _, _ := strings.Cut(fresh[which], "_")
		parts = append(parts, quote(prefix+"_b"+strconv.Itoa(which)+"_"), ":n")
		text = text[at+len(fresh[which]):]
	}
	if !found {
		return "", false
	}
	return "(" + strings.Join(parts, " || ") + ")::text", true
}

// quote writes s as a Unicode-escape string constant in which no colon
// appears: pgbench would read ":word" in a literal (a timestamp's
// ":23", a JSON number) as a variable.
func quote(s string) string {
	var b strings.Builder
	b.WriteString("U&'")
	for _, r := range s {
		switch r {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		case ':':
			b.WriteString(`\003A`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString("'")
	return b.String()
}
