package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one sample is every quantile", ms(7), 0.99, 7 * time.Millisecond},
		{"median of odd count", ms(1, 2, 3), 0.5, 2 * time.Millisecond},
		{"median of even count is the lower middle", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p90 of 1..100", ms(hundred...), 0.90, 90 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 1, 100 * time.Millisecond},
		{"a tiny q is the min", ms(5, 6, 9), 0.0001, 5 * time.Millisecond},
		{"p99 of 10 samples is the max", ms(1, 1, 1, 1, 1, 1, 1, 1, 1, 50), 0.99, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.q, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		want    Percentiles
	}{
		{"none", nil, Percentiles{}},
		{"unsorted input", []time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond},
			Percentiles{N: 3, Mean: 20, P50: 20, P90: 30, P99: 30, Max: 30}},
		{"sub-millisecond", []time.Duration{500 * time.Microsecond, 1500 * time.Microsecond},
			Percentiles{N: 2, Mean: 1, P50: 0.5, P90: 1.5, P99: 1.5, Max: 1.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.samples); got != tt.want {
				t.Errorf("summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPerSecond(t *testing.T) {
	tests := []struct {
		n    int
		d    time.Duration
		want float64
	}{
		{0, time.Second, 0},
		{100, time.Second, 100},
		{100, 500 * time.Millisecond, 200},
		{100, 0, 0},
		{100, -time.Second, 0},
	}
	for _, tt := range tests {
		if got := perSecond(tt.n, tt.d); got != tt.want {
			t.Errorf("perSecond(%d, %v) = %v, want %v", tt.n, tt.d, got, tt.want)
		}
	}
}

func TestDueAt(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		rate float64
		n    int64
		want time.Duration
	}{
		{100, 0, 0},
		{100, 1, 10 * time.Millisecond},
		{100, 250, 2500 * time.Millisecond},
		{0.5, 3, 6 * time.Second},
		{3000, 3000, time.Second},
	}
	for _, tt := range tests {
		if got := dueAt(start, tt.rate, tt.n).Sub(start); got != tt.want {
			t.Errorf("dueAt(rate %v, n %d) = start+%v, want start+%v", tt.rate, tt.n, got, tt.want)
		}
	}
}

func TestParseKinds(t *testing.T) {
	tests := []struct {
		in      string
		want    []Kind
		wantErr bool
	}{
		{"card", []Kind{Card}, false},
		{"ach", []Kind{ACH}, false},
		{"card, ach", []Kind{Card, ACH}, false},
		{"", nil, true},
		{"wire", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseKinds(tt.in)
		if (err != nil) != tt.wantErr || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("ParseKinds(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestOutcomeFinal(t *testing.T) {
	tests := []struct {
		attempt string
		want    bool
	}{
		{"", false}, {"queued", false}, {"processing", false},
		{"succeeded", true}, {"declined", true}, {"pending_settlement", true}, {"held", true}, {"dead", true},
	}
	for _, tt := range tests {
		if got := (Outcome{AttemptStatus: tt.attempt}).Final(); got != tt.want {
			t.Errorf("Final() with attempt status %q = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

// fakeAPI accepts payments and, like the pipeline, reports each one's
// outcome to the follower: some before the API's answer (as a fast worker
// can), every one twice (events are delivered at least once).
type fakeAPI struct {
	mu       sync.Mutex
	refuse   map[int64]int // sequence number → HTTP status
	report   func(Outcome)
	ready    chan struct{}
	accepted []string
}

func (f *fakeAPI) Submit(_ context.Context, kind Kind, id string, _ int64) (int, error) {
	n, _ := strconv.ParseInt(id[strings.LastIndex(id, "-")+1:], 10, 64)
	if status, ok := f.refuse[n]; ok {
		if status == 0 {
			return 0, errors.New("connection reset")
		}
		return status, nil
	}
	<-f.ready
	final := Outcome{LineItemID: id, Status: "VALID", AttemptStatus: "succeeded", At: time.Now()}
	if kind == ACH {
		final.Status, final.AttemptStatus = "PENDING", "pending_settlement"
	}
	f.report(Outcome{LineItemID: id, Status: "PENDING", AttemptStatus: "queued", At: time.Now()})
	if n%2 == 0 { // before the 200
		f.report(final)
		f.report(final)
	} else {
		defer func() { go func() { f.report(final); f.report(final) }() }()
	}
	f.mu.Lock()
	f.accepted = append(f.accepted, id)
	f.mu.Unlock()
	return 200, nil
}

// fakeFollower hands the run's report function to the fake API.
type fakeFollower struct{ api *fakeAPI }

func (f fakeFollower) Watch(string) {}
func (f fakeFollower) Run(ctx context.Context, report func(Outcome)) error {
	f.api.report = report
	close(f.api.ready)
	<-ctx.Done()
	return nil
}

func TestRunCountsAndFollows(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		refuse     map[int64]int
		wantErrors map[string]int
		wantStatus map[string]int
	}{
		{"flat out, card", Config{Concurrency: 4, Count: 200}, nil, map[string]int{}, map[string]int{"VALID": 200}},
		{"at a rate, mixed", Config{Rate: 2000, Concurrency: 8, Count: 100, Kinds: []Kind{Card, ACH}},
			nil, map[string]int{}, map[string]int{"VALID": 50, "PENDING": 50}},
		{"refusals by status", Config{Concurrency: 3, Count: 50},
			map[int64]int{3: 429, 7: 429, 11: 500, 13: 0}, map[string]int{"429": 2, "500": 1, "transport": 1},
			map[string]int{"VALID": 46}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &fakeAPI{refuse: tt.refuse, ready: make(chan struct{})}
			cfg := tt.cfg
			cfg.Target, cfg.Follower, cfg.RunID, cfg.DrainTimeout = api, fakeFollower{api}, "t", 10*time.Second
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			wantAccepted := cfg.Count - len(tt.refuse)
			if res.Sent != cfg.Count || res.Accepted != wantAccepted || res.Finished != wantAccepted || res.Unfinished != 0 {
				t.Errorf("sent %d accepted %d finished %d unfinished %d; want %d, %d, %d, 0",
					res.Sent, res.Accepted, res.Finished, res.Unfinished, cfg.Count, wantAccepted, wantAccepted)
			}
			if fmt.Sprint(res.Errors) != fmt.Sprint(tt.wantErrors) {
				t.Errorf("errors %v, want %v", res.Errors, tt.wantErrors)
			}
			if fmt.Sprint(res.Statuses) != fmt.Sprint(tt.wantStatus) {
				t.Errorf("final statuses %v, want %v", res.Statuses, tt.wantStatus)
			}
			if res.Intake.N != wantAccepted || res.EndToEnd.N != wantAccepted || res.ToFinal.N != wantAccepted {
				t.Errorf("latency samples intake %d, to final %d, end to end %d; want %d each",
					res.Intake.N, res.ToFinal.N, res.EndToEnd.N, wantAccepted)
			}
			if len(res.Payments) != wantAccepted {
				t.Errorf("%d payments listed, want %d", len(res.Payments), wantAccepted)
			}
			for _, p := range res.Payments {
				if !p.Final {
					t.Errorf("payment %s not final", p.LineItemID)
				}
			}
			if res.AcceptedPerSec <= 0 || res.EndToEndPerSec <= 0 {
				t.Errorf("rates accepted %v/s, end to end %v/s; want both positive", res.AcceptedPerSec, res.EndToEndPerSec)
			}
		})
	}
}

// A payment whose outcome never comes is reported unfinished once the
// drain timeout passes, not waited for forever.
func TestRunReportsUnfinished(t *testing.T) {
	silent := &silentFollower{}
	api := &fakeAPI{ready: make(chan struct{})}
	close(api.ready)
	api.report = func(Outcome) {}
	res, err := Run(context.Background(), Config{Target: api, Follower: silent, Count: 5, Concurrency: 2,
		RunID: "u", DrainTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 5 || res.Finished != 0 || res.Unfinished != 5 {
		t.Errorf("accepted %d finished %d unfinished %d; want 5, 0, 5", res.Accepted, res.Finished, res.Unfinished)
	}
}

type silentFollower struct{}

func (silentFollower) Watch(string) {}
func (silentFollower) Run(ctx context.Context, _ func(Outcome)) error {
	<-ctx.Done()
	return nil
}

func TestRunNeedsAnEnd(t *testing.T) {
	if _, err := Run(context.Background(), Config{Target: &fakeAPI{}}); err == nil {
		t.Error("a run with neither duration nor count started")
	}
}

func BenchmarkRecorder(b *testing.B) {
	var r recorder
	for i := range b.N {
		r.add(time.Duration(i%1000) * time.Microsecond)
	}
	b.StopTimer()
	_ = r.summary()
}
