package worker

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's Prometheus series; nil records nothing.
type Metrics struct {
	jobs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	deadJobs *prometheus.CounterVec
	rejects  *prometheus.CounterVec
	v1Jobs   *prometheus.CounterVec
	// republished and stale: the reconciler (reconcile.go).
	republished *prometheus.CounterVec
	stale       prometheus.Gauge
}

// NewMetrics registers the worker series with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_jobs_total",
			Help: "Job deliveries handled, by processor and outcome (succeeded, declined, held, pending_settlement, retryable, permanent, dead, duplicate, rejected, orphan, leased).",
		}, []string{"processor", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "payrail_job_duration_seconds",
			Help:    "Time to handle one job delivery, processor call and commit included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"processor"}),
		deadJobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_jobs_dead_total",
			Help: "Attempts ended in the dead state (deliveries exhausted, or the last delivery lost).",
		}, []string{"processor"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_jobs_rejected_total",
			Help: "Job messages dropped as not authentic, without touching any payment, by processor and reason (malformed, unsupported_version, unknown_key, unauthenticated, mismatch, unknown_attempt).",
		}, []string{"processor", "reason"}),
		v1Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_jobs_v1_total",
			Help: "Jobs in the v1 format (written before the upgrade to v2) executed from PostgreSQL's record of their attempt.",
		}, []string{"processor"}),
		republished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_jobs_republished_total",
			Help: "Jobs of unfinished attempts re-published from the outbox because the broker no longer held them (or they stopped progressing).",
		}, []string{"processor"}),
		stale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "payrail_attempts_stale",
			Help: "Unfinished attempts (queued or processing) that have not moved for longer than the reconcile bound.",
		}),
	}
	for _, c := range []prometheus.Collector{m.jobs, m.duration, m.deadJobs, m.rejects, m.v1Jobs, m.republished, m.stale} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("worker: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) job(processor, outcome string, start time.Time) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(processor, outcome).Inc()
	m.duration.WithLabelValues(processor).Observe(time.Since(start).Seconds())
}

func (m *Metrics) dead(processor string) {
	if m != nil {
		m.deadJobs.WithLabelValues(processor).Inc()
	}
}

func (m *Metrics) rejected(processor, reason string) {
	if m != nil {
		m.rejects.WithLabelValues(processor, reason).Inc()
	}
}

func (m *Metrics) v1(processor string) {
	if m != nil {
		m.v1Jobs.WithLabelValues(processor).Inc()
	}
}

func (m *Metrics) republish(processor string) {
	if m != nil {
		m.republished.WithLabelValues(processor).Inc()
	}
}

func (m *Metrics) staleAttempts(n int64) {
	if m != nil {
		m.stale.Set(float64(n))
	}
}
