package worker

import (
	"testing"
	"time"

	"github.com/payrail/payrail/internal/queue"
)

// redeliveryHorizon is the longest a job legitimately lives in the jobs
// stream once a worker first takes it: MaxDeliver deliveries, each
// waiting up to AckWait (a worker died holding it) or running its
// processor call, separated by the backoff.
func redeliveryHorizon(o Options) time.Duration {
	o.defaults()
	w := &Worker{opts: o}
	h := time.Duration(o.MaxDeliver) * max(o.AckWait, w.lease())
	for n := 1; n < o.MaxDeliver; n++ {
		h += w.backoff(n)
	}
	return h
}

// The jobs stream's MaxAge (the backstop that bounds any copy of a card
// job, CVV included, on every replica) must leave every live job alone:
// it exceeds the redelivery horizon of the default worker, and of one
// with twice its deliveries, by at least 12 hours (a worker outage).
func TestJobsMaxAgeExceedsRedeliveryHorizon(t *testing.T) {
	maxAge := queue.Default().JobsMaxAge
	for _, o := range []Options{{}, {MaxDeliver: 20}, {MaxDeliver: 20, AckWait: 2 * time.Minute}} {
		h := redeliveryHorizon(o)
		t.Logf("MaxDeliver %d, AckWait %s: redelivery horizon %s (jobs MaxAge %s)", max(o.MaxDeliver, 10), o.AckWait, h, maxAge)
		if maxAge < h+12*time.Hour {
			t.Errorf("jobs MaxAge %s leaves less than 12h beyond the redelivery horizon %s", maxAge, h)
		}
	}
}
