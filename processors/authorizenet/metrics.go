package authorizenet

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the client's Prometheus series; a nil *Metrics records
// nothing.
type Metrics struct {
	calls        *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	configErrors *prometheus.CounterVec
}

// NewMetrics registers the Authorize.Net call series with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_authorizenet_calls_total",
			Help: "Authorize.Net API calls by operation and result (ok, or the error's class and code).",
		}, []string{"op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "payrail_authorizenet_call_duration_seconds",
			Help:    "Authorize.Net API call latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"op"}),
		configErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_authorizenet_config_errors_total",
			Help: "Merchant configuration errors found, by reason (reporting_disabled: a merchant login's Transaction Details API is off, E00011); counted once per login and process.",
		}, []string{"reason"}),
	}
	m.configErrors.WithLabelValues("reporting_disabled") // exported at 0 from the start
	for _, c := range []prometheus.Collector{m.calls, m.duration, m.configErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("authorizenet: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) observe(op string, err error, d time.Duration) {
	if m == nil {
		return
	}
	result := "ok"
	var e *Error
	if errors.As(err, &e) {
		result = fmt.Sprintf("%s_%s", e.Class, e.Code)
	} else if err != nil {
		result = "error"
	}
	m.calls.WithLabelValues(op, result).Inc()
	m.duration.WithLabelValues(op).Observe(d.Seconds())
}

func (m *Metrics) configError(reason string) {
	if m == nil {
		return
	}
	m.configErrors.WithLabelValues(reason).Inc()
}
