package pgbaseline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// Options is one pgbench run.
type Options struct {
	Pgbench     string // the pgbench binary; default "pgbench" on PATH
	DatabaseURL string
	Script      string // the script text
	Clients     int    // pgbench -c, the concurrent sessions
	Threads     int    // pgbench -j; default min(Clients, 2)
	// Duration (pgbench -T, whole seconds) or Transactions (per client,
	// pgbench -t): one of them.
	Duration     time.Duration
	Transactions int
}

// Result is what pgbench reported.
type Result struct {
	TPS          float64 `json:"tps"`
	LatencyMS    float64 `json:"latency_avg_ms"`
	Processed    int     `json:"transactions"`
	Failed       int     `json:"failed"`
	Clients      int     `json:"clients"`
	Threads      int     `json:"threads"`
	DurationSecs float64 `json:"duration_seconds,omitempty"`
}

// Available reports whether pgbench can be run.
func Available(pgbench string) bool {
	if pgbench == "" {
		pgbench = "pgbench"
	}
	_, err := exec.LookPath(pgbench)
	return err == nil
}

// Run runs pgbench with the script in prepared mode (as pgx sends
// statements: parsed once per connection) and no vacuum of its own tables
// (the script uses payrail's).
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Pgbench == "" {
		o.Pgbench = "pgbench"
	}
	if o.Clients <= 0 {
		o.Clients = 1
	}
	if o.Threads <= 0 {
		o.Threads = min(o.Clients, 2)
	}
	dir, err := os.MkdirTemp("", "payrail-baseline-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "payment.sql")
	if err := os.WriteFile(script, []byte(o.Script), 0o600); err != nil {
		return Result{}, err
	}
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(o.Clients), "-j", strconv.Itoa(o.Threads), "-f", script}
	switch {
	case o.Transactions > 0:
		args = append(args, "-t", strconv.Itoa(o.Transactions))
	case o.Duration > 0:
		args = append(args, "-T", strconv.Itoa(max(1, int(o.Duration.Round(time.Second)/time.Second))))
	default:
		return Result{}, errors.New("pgbaseline: set a duration or a number of transactions")
	}
	args = append(args, o.DatabaseURL)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, o.Pgbench, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("pgbaseline: pgbench: %w: %s", err, lastLines(stderr.Bytes(), 5))
	}
	res, err := parseOutput(stdout.Bytes())
	if err != nil {
		return Result{}, fmt.Errorf("%w (stderr: %s)", err, lastLines(stderr.Bytes(), 5))
	}
	res.Clients, res.Threads = o.Clients, o.Threads
	if o.Transactions == 0 {
		res.DurationSecs = o.Duration.Round(time.Second).Seconds()
	}
	return res, nil
}

var (
	tpsLine       = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	latencyLine   = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	processedLine = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	failedLine    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
)

// parseOutput reads pgbench's report (PostgreSQL 14 and later).
func parseOutput(out []byte) (Result, error) {
	var r Result
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return Result{}, fmt.Errorf("pgbaseline: no tps in pgbench's output: %s", lastLines(out, 5))
	}
	r.TPS, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := latencyLine.FindSubmatch(out); m != nil {
		r.LatencyMS, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := processedLine.FindSubmatch(out); m != nil {
		r.Processed, _ = strconv.Atoi(string(m[1]))
	}
	if m := failedLine.FindSubmatch(out); m != nil {
		r.Failed, _ = strconv.Atoi(string(m[1]))
	}
	return r, nil
}

func lastLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte(" | ")))
}
