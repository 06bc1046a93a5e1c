package worker

import (
	"bufio"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// A worker dies inside the processor call (no commit, no ack, no progress
// signal). JetStream redelivers the job AckWait after the dead delivery,
// which with AckWait equal to the lease (as in production: 30 s and
// CallTimeout + 5 s) arrives just before the dead delivery's lease runs
// out. That delivery is handed back for the lease's remainder only, not
// for a whole lease, and the payment completes about AckWait after the
// crash instead of twice that.
func TestCrashedDeliveryIsRetriedWhenItsLeaseEnds(t *testing.T) {
	const lag = 400 * time.Millisecond
	var crashed atomic.Int64 // unix nanos of the simulated crash
	f := newFixture(t, fixtureOpts{
		// The lease is CallTimeout (3 s) + 5 s.
		ackWait:    8 * time.Second,
		maxDeliver: 5,
		hooks: hooks{
			// The first delivery is recorded a little after JetStream
			// delivered it (a loaded machine, a slow database), so its
			// lease ends a little after the redelivery comes.
			received: func(job processors.Job) error {
				if job.Delivery == 1 {
					time.Sleep(lag)
				}
				return nil
			},
			afterProcess: func(job processors.Job) error {
				if job.Delivery == 1 {
					crashed.Store(time.Now().UnixNano())
					return errCrashed
				}
				return nil
			},
		},
	})
	lease := f.worker.lease()
	if lease != f.worker.opts.AckWait {
		t.Fatalf("test expects the lease (%s) to equal AckWait (%s)", lease, f.worker.opts.AckWait)
	}
	attempt := f.pay("crash-mid-call", 1100)
	waitFor(t, 10*time.Second, func() bool { return crashed.Load() != 0 }, func() string { return "no first delivery" })
	got := f.waitSettled([]string{"crash-mid-call"}, 30*time.Second)["crash-mid-call"]
	recovered := time.Since(time.Unix(0, crashed.Load()))
	if got.Status != store.StatusValid {
		t.Fatalf("payment ended %s / %s", got.Status, got.Attempt.Status)
	}
	if calls, effects := f.proc.counts(attempt); calls != 2 || effects != 1 {
		t.Errorf("%d calls, %d effects; want 2 calls (the crashed one and the retry) and 1 effect", calls, effects)
	}

	// The delivery that came during the dead delivery's lease was handed
	// back for what was left of the lease (plus a small slack), not for
	// a whole lease.
	var handedBack int
	sc := bufio.NewScanner(strings.NewReader(f.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Msg       string        `json:"msg"`
			Attempt   string        `json:"attempt_id"`
			LeaseLeft time.Duration `json:"lease_left"`
			RetryIn   time.Duration `json:"retry_in"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Attempt != attempt || !strings.Contains(rec.Msg, "handing this one back") {
			continue
		}
		handedBack++
		if rec.LeaseLeft <= 0 || rec.LeaseLeft > lag+time.Second {
			t.Errorf("lease left %s when the redelivery came; want about %s", rec.LeaseLeft, lag)
		}
		if rec.RetryIn != leasedDelay(rec.LeaseLeft) || rec.RetryIn >= lease/2 {
			t.Errorf("handed back for %s with %s of the lease left; want the remainder plus %s", rec.RetryIn, rec.LeaseLeft, leaseSlack)
		}
	}
	t.Logf("recovered %s after the crash (AckWait %s, lease %s), %d delivery handed back", recovered.Round(time.Millisecond),
		f.worker.opts.AckWait, lease, handedBack)
	// Without waiting out a second lease the payment completes about
	// AckWait after the crash; a handed-back delivery that waited a whole
	// lease would take AckWait + lease.
	if bound := f.worker.opts.AckWait + 3*time.Second; recovered > bound {
		t.Errorf("payment completed %s after the crash; want within %s", recovered, bound)
	}
}
