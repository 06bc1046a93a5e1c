package webhooks

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/payrail/payrail/internal/store"
)

// Metrics are the webhooks role's Prometheus collectors. A nil *Metrics
// records nothing.
type Metrics struct {
	deliveries *prometheus.CounterVec
	duration   prometheus.Histogram
	pausedNow  prometheus.Gauge
}

// Outcome labels of payrail_webhook_deliveries_total: one count per
// attempt.
const (
	OutcomeDelivered    = "delivered"     // 2xx
	OutcomeRetried      = "retried"       // 429, 5xx, no answer: tried again later
	OutcomeDeadLettered = "dead_lettered" // 1xx, 3xx, other 4xx, retry window over, or expired while paused
	OutcomeUnauthorized = "unauthorized"  // 401: the endpoint was paused
)

// NewMetrics registers the collectors on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome (delivered, retried, dead_lettered, unauthorized).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "payrail_webhook_delivery_duration_seconds", Help: "Duration of one webhook attempt.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		pausedNow: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "payrail_webhook_endpoints_paused",
			Help: "Webhook endpoints paused after repeated failures or a 401 (refreshed every sweep).",
		}),
	}
	for _, o := range []string{OutcomeDelivered, OutcomeRetried, OutcomeDeadLettered, OutcomeUnauthorized} {
		m.deliveries.WithLabelValues(o)
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.duration, m.pausedNow} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("webhooks: register metrics: %w", err)
		}
	}
	return m, nil
}

func outcomeLabel(o store.WebhookOutcome) string {
	switch o {
	case store.WebhookDelivered:
		return OutcomeDelivered
	case store.WebhookRetry:
		return OutcomeRetried
	case store.WebhookUnauthorized:
		return OutcomeUnauthorized
	}
	return OutcomeDeadLettered
}

func (m *Metrics) outcome(o store.WebhookOutcome) {
	if m != nil {
		m.deliveries.WithLabelValues(outcomeLabel(o)).Inc()
	}
}

func (m *Metrics) expired(n int64) {
	if m != nil && n > 0 {
		m.deliveries.WithLabelValues(OutcomeDeadLettered).Add(float64(n))
	}
}

func (m *Metrics) observe(d time.Duration) {
	if m != nil {
		m.duration.Observe(d.Seconds())
	}
}

func (m *Metrics) paused(n int) {
	if m != nil {
		m.pausedNow.Add(float64(n))
	}
}

func (m *Metrics) setPaused(n int) {
	if m != nil {
		m.pausedNow.Set(float64(n))
	}
}
