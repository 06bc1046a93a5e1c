package loadgen

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Percentiles summarises a set of latencies, in milliseconds.
type Percentiles struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted,
// which must be sorted ascending: the smallest sample at least q of the
// samples do not exceed. Nearest rank never invents a value between two
// samples, so a p99 is a latency some payment really had.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summarize sorts samples in place and summarises them.
func summarize(samples []time.Duration) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return Percentiles{
		N:    len(samples),
		Mean: ms(sum / time.Duration(len(samples))),
		P50:  ms(percentile(samples, 0.50)),
		P90:  ms(percentile(samples, 0.90)),
		P99:  ms(percentile(samples, 0.99)),
		Max:  ms(samples[len(samples)-1]),
	}
}

// recorder keeps every sample of a run (8 bytes each: a million payments
// cost 8 MB, and exact percentiles are worth that) and, apart, the samples
// since the last progress line.
type recorder struct {
	mu     sync.Mutex
	all    []time.Duration
	window []time.Duration
}

func (r *recorder) add(d time.Duration) {
	r.mu.Lock()
	r.all = append(r.all, d)
	r.window = append(r.window, d)
	r.mu.Unlock()
}

// takeWindow returns the samples since the last call, summarised.
func (r *recorder) takeWindow() Percentiles {
	r.mu.Lock()
	w := r.window
	r.window = nil
	r.mu.Unlock()
	return summarize(w)
}

func (r *recorder) summary() Percentiles {
	r.mu.Lock()
	all := slices.Clone(r.all)
	r.mu.Unlock()
	return summarize(all)
}

// perSecond is n events over d, 0 when d is not positive.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
