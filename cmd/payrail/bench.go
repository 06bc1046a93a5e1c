package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/loadgen"
	"github.com/payrail/payrail/internal/pgbaseline"
	"github.com/payrail/payrail/processors/authorizenet"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// benchFlags are payrail bench's own flags; --dev reads payrail dev's
// settings besides.
type benchFlags struct {
	dev          bool
	intakeOnly   bool
	url          string
	clientID     string
	clientSecret string
	account      string
	kinds        string
	rate         rateFlag
	concurrency  int
	duration     time.Duration
	count        int
	follow       string
	pollInterval time.Duration
	drainTimeout time.Duration
	simLatency   time.Duration
	simJitter    time.Duration
	baseline     bool
	baselineFor  time.Duration
	pgbench      string
	json         bool
	quiet        bool
}

// rateFlag reads "2000", "2000/s" or "120/m".
type rateFlag struct{ perSecond float64 }

func (r *rateFlag) String() string {
	if r == nil || r.perSecond == 0 {
		return ""
	}
	return strconv.FormatFloat(r.perSecond, 'g', -1, 64) + "/s"
}

func (r *rateFlag) Set(v string) error {
	num, unit, _ := strings.Cut(v, "/")
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return errors.New("want payments per second such as 500 or 500/s (or 120/m)")
	}
	switch unit {
	case "", "s":
	case "m":
		f /= 60
	default:
		return errors.New("want payments per second such as 500 or 500/s (or 120/m)")
	}
	r.perSecond = f
	return nil
}

// benchReport is what --json prints.
type benchReport struct {
	Mode       string             `json:"mode"` // dev or url
	SimLatency string             `json:"sim_latency,omitempty"`
	Follow     string             `json:"follow"`
	LoadBefore string             `json:"load_average_before"`
	LoadAfter  string             `json:"load_average_after"`
	Result     loadgen.Result     `json:"result"`
	Check      *benchCheck        `json:"check,omitempty"`
	Baseline   *pgbaseline.Result `json:"baseline,omitempty"`
	Ratios     *benchRatios       `json:"ratios_to_baseline,omitempty"`
}

// benchRatios are payrail's rates over the baseline's transactions per
// second.
type benchRatios struct {
	Accepted float64 `json:"accepted"`
	EndToEnd float64 `json:"end_to_end,omitempty"`
}

func runBench(ctx context.Context, args []string) error {
	// --dev runs what payrail dev runs, so it takes dev's settings
	// (database, NATS, worker concurrency …) besides bench's own flags.
	cl := newCmdline("bench", roleDev, os.LookupEnv)
	cl.summary = commandSummary("bench") + `

Against a running payrail: --url, --client-id and --client-secret
(PAYRAIL_BENCH_CLIENT_ID, PAYRAIL_BENCH_CLIENT_SECRET) and --account. With
--dev the settings below build payrail dev's stack (API, relay, worker,
webhooks, built-in Authorize.Net simulator) on a temporary database that
is dropped afterwards, with its state in a temporary directory (--var-dir
is not used) and the API on a free loopback port unless --http-addr is
given; its rate limit is lifted, its ops listener is off and it logs
warnings only, unless the flags say otherwise.`
	fs := cl.fs
	var f benchFlags
	fs.BoolVar(&f.dev, "dev", false, "run an in-process payrail on a temporary database instead of using --url")
	fs.BoolVar(&f.intakeOnly, "intake-only", false, "--dev: run what payrail api runs (API, fast-path publisher, relay) and no worker; nothing is followed")
	fs.StringVar(&f.url, "url", "", "base URL of a running payrail API, e.g. http://127.0.0.1:8080")
	fs.StringVar(&f.clientID, "client-id", env("PAYRAIL_BENCH_CLIENT_ID", ""), "API client id (PAYRAIL_BENCH_CLIENT_ID)")
	fs.StringVar(&f.clientSecret, "client-secret", "", "API client secret (PAYRAIL_BENCH_CLIENT_SECRET)")
	fs.StringVar(&f.account, "account", "", "account the payments are made on (--dev: its demo account)")
	fs.StringVar(&f.kinds, "kind", "card", "guest payments to send: card, ach or card,ach (in turn)")
	fs.Var(&f.rate, "rate", "payments per second, sent on schedule (open loop), e.g. 500/s; unset: flat out")
	fs.IntVar(&f.concurrency, "concurrency", 16, "senders when flat out; the bound on requests in flight with --rate")
	fs.DurationVar(&f.duration, "duration", 0, "how long to send (default 10s unless --count is given)")
	fs.IntVar(&f.count, "count", 0, "how many payments to send")
	fs.StringVar(&f.follow, "follow", "", "how outcomes are followed: events (subscribe to the events subject), poll (GET each line item) or none (intake only); default events when NATS is known (--dev, --nats-url), else poll")
	fs.DurationVar(&f.pollInterval, "poll-interval", 200*time.Millisecond, "with --follow poll: how often each unfinished payment is read")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", time.Minute, "how long to wait for outcomes once sending stopped")
	fs.DurationVar(&f.simLatency, "sim-latency", 0, "--dev: the simulator's delay before every answer, e.g. 250ms")
	fs.DurationVar(&f.simJitter, "sim-jitter", 0, "--dev: a random extra delay up to this much")
	fs.BoolVar(&f.baseline, "baseline", false, "also run pgbench with the SQL of one card guest payment, with --concurrency clients, and print the ratios")
	fs.DurationVar(&f.baselineFor, "baseline-duration", 0, "how long pgbench runs (default the bench's --duration, or 10s)")
	fs.StringVar(&f.pgbench, "pgbench", "pgbench", "the pgbench binary")
	fs.BoolVar(&f.json, "json", false, "print the summary as JSON")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress line on standard error")
	if err := cl.parse(args); err != nil {
		return err
	}
	if f.clientSecret == "" {
		f.clientSecret = env("PAYRAIL_BENCH_CLIENT_SECRET", "")
	}
	kinds, err := checkBenchFlags(&f)
	if err != nil {
		return &configError{problems: []string{err.Error()}}
	}

	var progress io.Writer = os.Stderr
	if f.quiet {
		progress = nil
	}
	report := benchReport{Mode: "url", LoadBefore: loadAverage()}
	var (
		target  *loadgen.API
		natsURL = cl.cfg.NATSURL
		stack   *benchStack
	)
	if f.dev {
		report.Mode, report.SimLatency = "dev", f.simLatency.String()
		stack, err = startBenchStack(ctx, cl, anetsim.Faults{Latency: f.simLatency, Jitter: f.simJitter}, !f.intakeOnly)
		if err != nil {
			return err
		}
		defer stack.stop()
		natsURL, f.url, f.clientID, f.clientSecret = stack.natsURL, stack.apiURL, stack.creds.ClientID, stack.creds.ClientSecret
		if f.account == "" {
			f.account = devAccount
		}
	}
	if target, err = loadgen.NewAPI(f.url, f.account, f.clientID, f.clientSecret, f.concurrency); err != nil {
		return err
	}
	defer target.Close()
	if err := target.Check(ctx); err != nil {
		return err
	}
	if f.follow == "" {
		f.follow = "poll"
		if natsURL != "" {
			f.follow = "events"
		}
	}
	report.Follow = f.follow
	subject := cl.cfg.SubjectRoot + ".events.>" // after the stack named its own
	var follower loadgen.Follower
	switch f.follow {
	case "events":
		if natsURL == "" {
			return errors.New("--follow events needs --nats-url (the NATS server payrail publishes its events to)")
		}
		nc, err := nats.Connect(natsURL, nats.Name("payrail-bench"))
		if err != nil {
			return fmt.Errorf("connect to NATS at %s: %w", redactNATSURL(natsURL), err)
		}
		defer nc.Close()
		if follower, err = loadgen.NewEventFollower(nc, subject); err != nil {
			return fmt.Errorf("subscribe to %s: %w", subject, err)
		}
	case "poll":
		follower = &loadgen.Poller{API: target, Interval: f.pollInterval}
	}

	res, err := loadgen.Run(ctx, loadgen.Config{
		Target: target, Follower: follower, Kinds: kinds, Rate: f.rate.perSecond, Concurrency: f.concurrency,
		Duration: f.duration, Count: f.count, DrainTimeout: f.drainTimeout,
		RunID: "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36), Progress: progress,
	})
	if err != nil {
		return err
	}
	report.Result = res
	report.LoadAfter = loadAverage()
	if stack != nil {
		// Without outcomes there is nothing to hold the payments to.
		if f.follow != "none" {
			check, err := stack.check(ctx, res)
			if err != nil {
				return err
			}
			report.Check = &check
		}
		// The baseline gets the machine to itself.
		stack.stop()
	}
	if f.baseline {
		if !pgbaseline.Available(f.pgbench) {
			return fmt.Errorf("--baseline: %s is not installed (it ships with the PostgreSQL client, e.g. apt-get install postgresql-client)", f.pgbench)
		}
		d := f.baselineFor
		if d <= 0 {
			d = max(f.duration, 10*time.Second)
		}
		if !f.quiet {
			fmt.Fprintf(os.Stderr, "baseline: pgbench, the SQL of one card guest payment, %d clients, %s\n", f.concurrency, d)
		}
		b, err := runBaseline(ctx, cl.cfg.DatabaseURL, f.pgbench, f.concurrency, d)
		if err != nil {
			return err
		}
		report.Baseline = &b
		if b.TPS > 0 {
			report.Ratios = &benchRatios{Accepted: res.AcceptedPerSec / b.TPS, EndToEnd: res.EndToEndPerSec / b.TPS}
		}
	}
	if f.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		printBenchReport(os.Stdout, report)
	}
	if report.Check != nil && !report.Check.OK {
		return errors.New("bench: the check of the payments failed (see above)")
	}
	return nil
}

// checkBenchFlags checks the flags that depend on each other and fills
// in defaults.
func checkBenchFlags(f *benchFlags) ([]loadgen.Kind, error) {
	kinds, err := loadgen.ParseKinds(f.kinds)
	if err != nil {
		return nil, fmt.Errorf("--kind: %w", err)
	}
	switch {
	case f.dev && f.url != "":
		return nil, errors.New("give --dev or --url, not both")
	case !f.dev && f.url == "":
		return nil, errors.New("give --url (with --client-id, --client-secret and --account) or --dev")
	case !f.dev && (f.clientID == "" || f.clientSecret == "" || f.account == ""):
		return nil, errors.New("--url needs --client-id, --client-secret and --account")
	case !f.dev && f.intakeOnly:
		return nil, errors.New("--intake-only needs --dev (against --url, run payrail api without a worker)")
	case f.intakeOnly && f.follow != "" && f.follow != "none":
		return nil, errors.New("--intake-only follows nothing: leave --follow out")
	case !f.dev && (f.simLatency != 0 || f.simJitter != 0):
		return nil, errors.New("--sim-latency and --sim-jitter need --dev (a running payrail has its own gateway)")
	case f.concurrency < 1:
		return nil, errors.New("--concurrency: want at least 1")
	case f.count < 0 || f.duration < 0:
		return nil, errors.New("--count and --duration: want 0 or more")
	}
	switch f.follow {
	case "", "events", "poll", "none":
	default:
		return nil, fmt.Errorf("--follow %q: want events, poll or none", f.follow)
	}
	if f.intakeOnly {
		f.follow = "none"
	}
	if f.duration == 0 && f.count == 0 {
		f.duration = 10 * time.Second
	}
	return kinds, nil
}

// runBaseline runs pgbench with the yardstick's SQL of one card guest
// payment (pgbaseline.Round1) on a scratch database of the server
// serverURL names.
func runBaseline(ctx context.Context, serverURL, pgbench string, clients int, d time.Duration) (pgbaseline.Result, error) {
	dbURL, drop, err := pgbaseline.Scratch(ctx, serverURL, "payrail_baseline")
	if err != nil {
		return pgbaseline.Result{}, err
	}
	defer func() { _ = drop(context.Background()) }()
	if err := pgbaseline.Prepare(ctx, dbURL); err != nil {
		return pgbaseline.Result{}, err
	}
	return pgbaseline.Run(ctx, pgbaseline.Options{Pgbench: pgbench, DatabaseURL: dbURL, Script: pgbaseline.Round1(),
		Clients: clients, Duration: d})
}

// loadAverage is /proc/loadavg's first three fields ("" elsewhere): the
// machine's load tells how far figures taken on a shared machine can be
// trusted.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func printBenchReport(w io.Writer, r benchReport) {
	res := r.Result
	how := fmt.Sprintf("flat out, %d senders", res.Concurrency)
	if res.Rate > 0 {
		how = fmt.Sprintf("%g/s, at most %d in flight", res.Rate, res.Concurrency)
	}
	kinds := make([]string, len(res.Kinds))
	for i, k := range res.Kinds {
		kinds[i] = string(k)
	}
	fmt.Fprintf(w, "payrail bench: %s guest payments, %s, against %s", strings.Join(kinds, "+"), how, r.Mode)
	if r.Mode == "dev" {
		fmt.Fprintf(w, " (simulator latency %s)", r.SimLatency)
	}
	fmt.Fprintf(w, ", outcomes by %s\n", r.Follow)
	fmt.Fprintf(w, "  sent         %8d  %8.1f/s over %.1fs\n", res.Sent, res.SentPerSec, res.SendSeconds)
	fmt.Fprintf(w, "  accepted     %8d  %8.1f/s\n", res.Accepted, res.AcceptedPerSec)
	if res.Followed {
		fmt.Fprintf(w, "  final        %8d  %8.1f/s end to end (first request to last final outcome, %.1fs)\n",
			res.Finished, res.EndToEndPerSec, res.EndToEndSeconds)
		if res.Unfinished > 0 {
			fmt.Fprintf(w, "  UNFINISHED   %8d  (no final outcome within the drain timeout)\n", res.Unfinished)
		}
		fmt.Fprintf(w, "  statuses     %s\n", countList(res.Statuses, "none"))
	}
	fmt.Fprintf(w, "  errors       %s\n", countList(res.Errors, "none"))
	if res.Late > 0 {
		fmt.Fprintf(w, "  late sends   %8d  (more than 10 ms behind the --rate schedule: raise --concurrency)\n", res.Late)
	}
	pct := func(name string, p loadgen.Percentiles) {
		fmt.Fprintf(w, "  %-14s p50 %7.1f ms  p90 %7.1f ms  p99 %7.1f ms  max %7.1f ms  (n=%d)\n", name, p.P50, p.P90, p.P99, p.Max, p.N)
	}
	pct("intake", res.Intake)
	if res.Followed {
		pct("intake→final", res.ToFinal)
		pct("end to end", res.EndToEnd)
	}
	if c := r.Check; c != nil {
		verdict := "ok"
		if !c.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "  check        %s: %d payments in the database, %d card VALID with one charge each (%d charges in the simulator), %d ACH staged\n",
			verdict, c.Payments, c.CardValidOneCharge, c.SimulatorCharges, c.ACHStaged)
		for _, p := range c.Problems {
			fmt.Fprintf(w, "               %s\n", p)
		}
	}
	if b := r.Baseline; b != nil {
		fmt.Fprintf(w, "  baseline     pgbench, same SQL as one card guest payment, %d clients: %.1f tx/s (latency %.2f ms, %d failed)\n",
			b.Clients, b.TPS, b.LatencyMS, b.Failed)
		if q := r.Ratios; q != nil {
			fmt.Fprintf(w, "  ratio        accepted %.2f× baseline", q.Accepted)
			if res.Followed {
				fmt.Fprintf(w, ", end to end %.2f× baseline", q.EndToEnd)
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "  load average %s before, %s after (the machine may be shared)\n", r.LoadBefore, r.LoadAfter)
}

// countList writes {"429": 3} as "429: 3", sorted, or none.
func countList(m map[string]int, none string) string {
	if len(m) == 0 {
		return none
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// benchStack is payrail dev's stack, in process, on a temporary database
// and var directory.
type benchStack struct {
	svc     *services
	apiURL  string
	natsURL string
	creds   clientCredentials
	orgID   string

	cancel  context.CancelFunc
	done    chan error
	ns      *server.Server
	drop    func(context.Context) error
	tmp     string
	streams []string // created for this run on a shared NATS server
	worker  bool     // the worker and webhooks run (not --intake-only)
	stopped bool
}

// startBenchStack starts what payrail dev runs (API, relay, worker,
// webhooks, the built-in simulator with faults) on a new database on the
// server of the configured database URL, and returns once the worker can
// take jobs.
func startBenchStack(ctx context.Context, cl *cmdline, faults anetsim.Faults, worker bool) (st *benchStack, err error) {
	cfg := cl.cfg
	st = &benchStack{done: make(chan error, 1), worker: worker}
	defer func() {
		if err != nil {
			st.stop()
		}
	}()
	if st.tmp, err = os.MkdirTemp("", "payrail-bench-"); err != nil {
		return nil, err
	}
	cfg.VarDir = st.tmp
	if s := cl.setting("PAYRAIL_NACHA_DROP_DIR"); s == nil || s.source == "" {
		cfg.Nacha.DropDir = filepath.Join(st.tmp, "nacha", "outbound")
	}
	// A bench measures the pipeline, not the per-client limit, and its
	// progress line must stay readable.
	if s := cl.setting("PAYRAIL_RATE_LIMIT"); s == nil || s.source == "" {
		cfg.RateLimit = 1e9
	}
	if s := cl.setting("PAYRAIL_RATE_BURST"); s == nil || s.source == "" {
		cfg.RateBurst = 1 << 30
	}
	if s := cl.setting("PAYRAIL_LOG_LEVEL"); s == nil || s.source == "" {
		cfg.LogLevel = "warn"
	}
	// Another payrail on this machine may hold the ops port.
	if s := cl.setting("PAYRAIL_METRICS_ADDR"); s == nil || s.source == "" {
		cfg.MetricsAddr = ""
	}
	if err := cfg.ensureDevSecrets(keyring.NewKey); err != nil {
		return nil, err
	}
	if err := cfg.checkDevSecrets(); err != nil {
		return nil, err
	}
	if cfg.NATSURL == "" {
		ns, url, err := startEmbeddedNATS(filepath.Join(st.tmp, "nats"), cfg.NATSEmbeddedAddr)
		if err != nil {
			return nil, err
		}
		st.ns, cfg.NATSURL = ns, url
	} else {
		// A shared server may carry a payrail's own streams: unless told
		// otherwise, this run's get names of their own, deleted at stop.
		suffix := strings.ToUpper(strconv.FormatInt(time.Now().UnixNano(), 36))
		for _, n := range []struct {
			env string
			dst *string
			val string
		}{
			{"PAYRAIL_SUBJECT_ROOT", &cfg.SubjectRoot, "bench_" + strings.ToLower(suffix)},
			{"PAYRAIL_JOBS_STREAM", &cfg.JobsStream, "PAYRAIL_BENCH_JOBS_" + suffix},
			{"PAYRAIL_EVENTS_STREAM", &cfg.EventsStream, "PAYRAIL_BENCH_EVENTS_" + suffix},
		} {
			if s := cl.setting(n.env); s == nil || s.source == "" {
				*n.dst = n.val
				if n.env != "PAYRAIL_SUBJECT_ROOT" {
					st.streams = append(st.streams, n.val)
				}
			}
		}
	}
	st.natsURL = cfg.NATSURL
	dbURL, drop, err := pgbaseline.Scratch(ctx, cfg.DatabaseURL, "payrail_bench")
	if err != nil {
		return nil, err
	}
	st.drop = drop
	cfg.DatabaseURL = dbURL
	svc, err := openServices(ctx, cfg)
	if err != nil {
		return nil, err
	}
	svc.simFaults = faults
	st.svc = svc
	if st.creds, err = devClient(ctx, svc); err != nil {
		return nil, err
	}
	st.orgID = st.creds.OrgID
	// A free port, unless one was asked for (to watch the API while it
	// runs): several benches, or a payrail dev, may share the machine.
	addr := "127.0.0.1:0"
	if s := cl.setting("PAYRAIL_HTTP_ADDR"); s != nil && s.source != "" {
		addr = cfg.HTTPAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	st.apiURL = "http://" + ln.Addr().String()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st.cancel = cancel
	go func() {
		st.done <- svc.runRoles(runCtx, "bench", roles{api: ln, relay: true, worker: worker, webhooks: worker})
	}()
	if err := st.waitReady(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// waitReady returns once the API answers and the worker consumes jobs,
// so the run does not measure the start.
func (st *benchStack) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	nc, err := nats.Connect(st.natsURL, nats.Name("payrail-bench-ready"))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", redactNATSURL(st.natsURL), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	for {
		select {
		case err := <-st.done:
			st.done <- err
			return fmt.Errorf("the payrail stack stopped while starting: %w", err)
		default:
		}
		if st.ready(ctx, js) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the payrail stack did not become ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (st *benchStack) ready(ctx context.Context, js jetstream.JetStream) bool {
	resp, err := http.Get(st.apiURL + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	s, err := js.Stream(ctx, st.svc.cfg.JobsStream)
	if err != nil {
		return false
	}
	info, err := s.Info(ctx)
	if !st.worker {
		return err == nil
	}
	// One consumer per processor: AUTHORIZE_NET and CANOPY_NACHA.
	return err == nil && info.State.Consumers >= 2
}

// stop stops the stack and removes its database and files; it may be
// called more than once.
func (st *benchStack) stop() {
	if st.stopped {
		return
	}
	st.stopped = true
	if st.cancel != nil {
		st.cancel()
		<-st.done
	}
	if st.svc != nil {
		st.svc.close()
	}
	if len(st.streams) > 0 {
		st.deleteStreams()
	}
	if st.ns != nil {
		st.ns.Shutdown()
		st.ns.WaitForShutdown()
	}
	if st.drop != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := st.drop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "payrail bench:", err)
		}
		cancel()
	}
	if st.tmp != "" {
		_ = os.RemoveAll(st.tmp)
	}
}

// benchCheck is what --dev found in the database and the simulator after
// a run.
type benchCheck struct {
	OK                 bool     `json:"ok"`
	Payments           int      `json:"payments"`
	CardValidOneCharge int      `json:"card_valid_one_charge"`
	SimulatorCharges   int      `json:"simulator_charges"`
	ACHStaged          int      `json:"ach_staged"`
	Problems           []string `json:"problems,omitempty"`
}

// check holds every payment the run sent to payrail's promise: each
// accepted one is in the database; a card one is VALID with exactly one
// charge in the simulator; an ACH one is staged; and the simulator
// charged nothing else.
func (st *benchStack) check(ctx context.Context, res loadgen.Result) (benchCheck, error) {
	var c benchCheck
	rows, err := st.svc.pool.Query(ctx, `
		SELECT li.line_item_id, li.status, pa.payment_type, pa.attempt_id, pa.status
		  FROM line_items li
		  JOIN payment_attempts pa ON pa.org_id = li.org_id AND pa.account_id = li.account_id AND pa.line_item_id = li.line_item_id
		 WHERE li.org_id = $1 AND li.account_id = $2`, st.orgID, devAccount)
	if err != nil {
		return c, fmt.Errorf("bench check: read payments: %w", err)
	}
	type row struct{ status, paymentType, attemptID, attemptStatus string }
	inDB := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.status, &r.paymentType, &r.attemptID, &r.attemptStatus); err != nil {
			rows.Close()
			return c, fmt.Errorf("bench check: read payments: %w", err)
		}
		inDB[id] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("bench check: read payments: %w", err)
	}
	charges := map[string]int{}
	if st.svc.sim != nil {
		for _, t := range st.svc.sim.Transactions() {
			if t.Charged() {
				charges[t.InvoiceNumber]++
				c.SimulatorCharges++
			}
		}
	}
	problem := func(format string, args ...any) {
		if len(c.Problems) < 20 {
			c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
		}
	}
	cards := 0
	for _, p := range res.Payments {
		r, ok := inDB[p.LineItemID]
		if !ok {
			problem("%s: accepted but not in the database", p.LineItemID)
			continue
		}
		c.Payments++
		switch p.Kind {
		case loadgen.Card:
			cards++
			n := charges[authorizenet.InvoiceNumber(r.attemptID)]
			if r.status == "VALID" && n == 1 {
				c.CardValidOneCharge++
			} else {
				problem("%s: card payment %s (attempt %s) with %d charges, want VALID with 1", p.LineItemID, r.status, r.attemptStatus, n)
			}
		case loadgen.ACH:
			if r.attemptStatus == "pending_settlement" {
				c.ACHStaged++
			} else {
				problem("%s: ACH payment's attempt %s, want pending_settlement (staged)", p.LineItemID, r.attemptStatus)
			}
		}
	}
	if len(inDB) != len(res.Payments) {
		problem("%d payments in the database, %d accepted by the API", len(inDB), len(res.Payments))
	}
	if c.SimulatorCharges != cards {
		problem("the simulator made %d charges for %d card payments", c.SimulatorCharges, cards)
	}
	if res.Unfinished > 0 {
		problem("%d payments had no final outcome within the drain timeout", res.Unfinished)
	}
	c.OK = len(c.Problems) == 0 && c.Payments == len(res.Payments)
	return c, nil
}

// deleteStreams removes the streams this run made on a shared server.
func (st *benchStack) deleteStreams() {
	nc, err := nats.Connect(st.natsURL, nats.Name("payrail-bench-cleanup"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "payrail bench: delete streams:", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range st.streams {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			fmt.Fprintf(os.Stderr, "payrail bench: delete stream %s: %v\n", name, err)
		}
	}
}
