package outbox

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the outbox's Prometheus series. A nil *Metrics records
// nothing, so tests need not register any.
type Metrics struct {
	sent       *prometheus.CounterVec
	skipped    prometheus.Counter
	backlogN   prometheus.Gauge
	backlogAge prometheus.Gauge
}

// NewMetrics registers the outbox series with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_outbox_published_total",
			Help: "Outbox rows sent to JetStream, by path (fast_path, relay) and result (acked, failed).",
		}, []string{"path", "result"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payrail_outbox_fast_path_skipped_total",
			Help: "Rows left to the relay because the fast-path queue was full.",
		}),
		backlogN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "payrail_outbox_backlog_rows", Help: "Outbox rows not yet acknowledged by JetStream.",
		}),
		backlogAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "payrail_outbox_lag_seconds", Help: "Age of the oldest unpublished outbox row.",
		}),
	}
	for _, c := range []prometheus.Collector{m.sent, m.skipped, m.backlogN, m.backlogAge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("outbox: register metrics: %w", err)
		}
	}
	return m, nil
}

func result(ok bool) string {
	if ok {
		return "acked"
	}
	return "failed"
}

func (m *Metrics) published(path string, ok bool) {
	if m != nil {
		m.sent.WithLabelValues(path, result(ok)).Inc()
	}
}

func (m *Metrics) relayed(acked, failed int) {
	if m == nil {
		return
	}
	m.sent.WithLabelValues("relay", "acked").Add(float64(acked))
	m.sent.WithLabelValues("relay", "failed").Add(float64(failed))
}

func (m *Metrics) fastPathSkipped() {
	if m != nil {
		m.skipped.Inc()
	}
}

func (m *Metrics) backlog(n int64, age time.Duration) {
	if m != nil {
		m.backlogN.Set(float64(n))
		m.backlogAge.Set(age.Seconds())
	}
}
