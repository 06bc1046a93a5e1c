package nacha

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the processor's Prometheus series. Labels never carry
// account data: return and change codes are a closed set.
type metrics struct {
	staged        prometheus.Counter
	dropped       prometheus.Counter
	files         *prometheus.CounterVec // by final status: written, uploaded
	dropFailures  *prometheus.CounterVec // by step
	dropDuration  prometheus.Histogram
	returned      *prometheus.CounterVec // by return code and outcome
	nocs          *prometheus.CounterVec // by change code and applied
	settled       prometheus.Counter
	inboundReject prometheus.Counter
	setAside      prometheus.Counter
	// The scheduler's catch-up (scheduler.go).
	cutoffsMissed   prometheus.Counter
	cutoffsCaughtUp prometheus.Counter
	overdueEntries  prometheus.Gauge
	unfinishedFiles prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		staged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payrail_nacha_entries_staged_total", Help: "ACH entries staged for a NACHA file.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payrail_nacha_entries_dropped_total", Help: "ACH entries written into a durable NACHA file.",
		}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_nacha_files_total", Help: "NACHA files that reached a state (written, uploaded).",
		}, []string{"state"}),
		dropFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_nacha_drop_failures_total", Help: "Drops that failed, by the step that failed.",
		}, []string{"step"}),
		dropDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "payrail_nacha_drop_duration_seconds", Help: "Time one drop (one cutoff) took.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 10),
		}),
		returned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_nacha_entries_returned_total", Help: "Returns applied, by return code and outcome.",
		}, []string{"code", "outcome"}),
		nocs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payrail_nacha_notifications_of_change_total", Help: "NOCs recorded, by change code and whether applied.",
		}, []string{"code", "applied"}),
		settled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payrail_nacha_entries_settled_total", Help: "ACH entries settled (line item VALID).",
		}),
		inboundReject: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payrail_nacha_inbound_files_rejected_total", Help: "Return/NOC files rejected as malformed or unmatched.",
		}),
		setAside: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payrail_nacha_entries_set_aside_total",
			Help: "ACH entries that could not be written into a NACHA file: set aside, their payments INVALID.",
		}),
		cutoffsMissed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payrail_nacha_cutoffs_missed_total",
			Help: "Cutoffs found missed (entries due at them still staged) after their catch-up grace: their entries wait for the next cutoff.",
		}),
		cutoffsCaughtUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payrail_nacha_cutoffs_caught_up_total",
			Help: "Missed or interrupted cutoffs the scheduler ran late, within their grace.",
		}),
		overdueEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "payrail_nacha_overdue_entries",
			Help: "ACH entries still staged although a cutoff they were due at has passed (as of the scheduler's last look).",
		}),
		unfinishedFiles: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "payrail_nacha_unfinished_files",
			Help: "NACHA files building or written and awaiting upload (as of the scheduler's last look).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.staged, m.dropped, m.files, m.dropFailures, m.dropDuration,
		m.returned, m.nocs, m.settled, m.inboundReject, m.setAside, m.cutoffsMissed, m.cutoffsCaughtUp, m.overdueEntries,
		m.unfinishedFiles} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, fmt.Errorf("nacha: metrics already registered (one Processor per registry): %w", err)
			}
			return nil, fmt.Errorf("nacha: register metrics: %w", err)
		}
	}
	return m, nil
}
