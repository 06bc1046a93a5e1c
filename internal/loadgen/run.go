package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is the kind of guest payment sent.
type Kind string

// The payment kinds a run can mix.
const (
	Card Kind = "card" // DEBIT by AUTHORIZE_NET: final once charged or declined
	ACH  Kind = "ach"  // ACH by CANOPY_NACHA: final once staged for the next NACHA file
)

// ParseKinds reads "card", "ach" or "card,ach" (sent in turn).
func ParseKinds(s string) ([]Kind, error) {
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		switch f = strings.TrimSpace(f); Kind(f) {
		case Card, ACH:
			out = append(out, Kind(f))
		default:
			return nil, fmt.Errorf("payment kind %q: want card, ach or card,ach", f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no payment kind: want card, ach or card,ach")
	}
	return out, nil
}

// Target is the API under load.
type Target interface {
	// Submit sends one guest payment with the given line item id and
	// returns the HTTP status (0 with err when no answer came).
	Submit(ctx context.Context, kind Kind, lineItemID string, amountCents int64) (status int, err error)
}

// Outcome is a line item's status as a follower saw it.
type Outcome struct {
	LineItemID    string
	Status        string // line_item_status: VALID, DECLINED, PENDING…
	AttemptStatus string // payment_processing.attempt_status
	At            time.Time
}

// Final reports whether the payment's processing is over, by the rule of
// Prefer: wait (docs/api.md): its attempt left queued and processing. A
// card is then approved or declined; an ACH debit is staged for a NACHA
// file (its settlement comes days later and is not part of a run).
func (o Outcome) Final() bool {
	switch o.AttemptStatus {
	case "", "queued", "processing":
		return false
	}
	return true
}

// Follower reports the outcomes of the payments a run sent.
type Follower interface {
	// Watch is called for every payment the API accepted.
	Watch(lineItemID string)
	// Run reports outcomes to report until ctx ends. It may report an
	// outcome more than once, and for ids it was never asked to watch.
	Run(ctx context.Context, report func(Outcome)) error
}

// Config is one run.
type Config struct {
	Target   Target
	Follower Follower // nil: intake only, nothing is followed
	Kinds    []Kind   // sent in turn; default card
	// Rate is payments per second, sent on schedule whatever the answers
	// (open loop); 0 sends flat out with Concurrency senders.
	Rate float64
	// Concurrency bounds the requests in flight (with Rate) or is the
	// number of senders (without). Default 16.
	Concurrency int
	// The run sends for Duration or until Count payments were sent,
	// whichever comes first; at least one must be set.
	Duration time.Duration
	Count    int
	// DrainTimeout bounds the wait for outcomes once sending stopped.
	// Default 60 s.
	DrainTimeout time.Duration
	// RunID prefixes the line item ids; it must be unique per run
	// against the same account (ids are idempotency keys).
	RunID string
	// Progress receives a line every ProgressEvery (default 1 s); nil:
	// none.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// Payment is one payment the API accepted, as the run last saw it.
type Payment struct {
	LineItemID    string `json:"line_item_id"`
	Kind          Kind   `json:"kind"`
	Status        string `json:"status"`
	AttemptStatus string `json:"attempt_status"`
	Final         bool   `json:"final"`
}

// Result is what a run measured.
type Result struct {
	Kinds       []Kind  `json:"kinds"`
	Rate        float64 `json:"rate,omitempty"`
	Concurrency int     `json:"concurrency"`
	Followed    bool    `json:"followed"`

	Sent       int            `json:"sent"`
	Accepted   int            `json:"accepted"`
	Finished   int            `json:"finished"`
	Unfinished int            `json:"unfinished"`
	Errors     map[string]int `json:"errors_by_status"` // "429": n; "transport": no answer
	Statuses   map[string]int `json:"final_statuses"`   // VALID: n
	Late       int            `json:"late_sends"`       // with Rate: sends more than 10 ms behind schedule

	SendSeconds     float64 `json:"send_seconds"`       // first send to last answer
	EndToEndSeconds float64 `json:"end_to_end_seconds"` // first send to last final outcome
	SentPerSec      float64 `json:"sent_per_sec"`
	AcceptedPerSec  float64 `json:"accepted_per_sec"`
	EndToEndPerSec  float64 `json:"end_to_end_per_sec"`

	Intake   Percentiles `json:"intake"`          // request sent → 200 received
	ToFinal  Percentiles `json:"intake_to_final"` // 200 received → final outcome seen
	EndToEnd Percentiles `json:"end_to_end"`      // request sent → final outcome seen

	Payments []Payment `json:"-"`
}

// tracked is one payment of the run.
type tracked struct {
	kind     Kind
	sent     time.Time
	accepted time.Time // zero until the 200
	outcome  Outcome   // the last outcome seen
	final    bool
}

// run is the state of one Run.
type run struct {
	cfg   Config
	start time.Time

	mu           sync.Mutex
	payments     map[string]*tracked
	errors       map[string]int
	lastAccepted time.Time
	lastFinal    time.Time
	sent         int
	accepted     int
	finished     int
	late         int
	allFinal     chan struct{} // closed when sending is over and every accepted payment is final
	sendingDone  bool

	intake, toFinal, endToEnd recorder
}

// Run sends payments as cfg says, waits for their outcomes and returns
// the measurements. It stops early, with what it measured, when ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Target == nil {
		return Result{}, errors.New("loadgen: no target")
	}
	if cfg.Duration <= 0 && cfg.Count <= 0 {
		return Result{}, errors.New("loadgen: set a duration or a count")
	}
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = []Kind{Card}
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = time.Minute
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	r := &run{cfg: cfg, payments: map[string]*tracked{}, errors: map[string]int{}, allFinal: make(chan struct{})}

	followCtx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	followErr := make(chan error, 1)
	if cfg.Follower != nil {
		go func() { followErr <- cfg.Follower.Run(followCtx, r.report) }()
	}
	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progress(stopProgress)
	}()

	r.start = time.Now()
	r.send(ctx)
	sendEnd := time.Now()

	var err error
	if cfg.Follower != nil {
		r.mu.Lock()
		r.sendingDone = true
		r.checkAllFinal()
		r.mu.Unlock()
		timer := time.NewTimer(cfg.DrainTimeout)
		select {
		case <-r.allFinal:
		case <-timer.C:
		case <-ctx.Done():
		case err = <-followErr:
			if err != nil {
				err = fmt.Errorf("loadgen: follow outcomes: %w", err)
			}
		}
		timer.Stop()
	}
	stopFollowing()
	close(stopProgress)
	<-progressDone
	return r.result(sendEnd), err
}

// send issues the payments and returns once every request has its answer.
func (r *run) send(ctx context.Context) {
	var seq atomic.Int64
	deadline := time.Time{}
	if r.cfg.Duration > 0 {
		deadline = r.start.Add(r.cfg.Duration)
	}
	// next hands out sequence numbers until the count or the duration is
	// reached.
	next := func() (int64, bool) {
		if ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return 0, false
		}
		n := seq.Add(1) - 1
		if r.cfg.Count > 0 && n >= int64(r.cfg.Count) {
			return 0, false
		}
		return n, true
	}
	var wg sync.WaitGroup
	if r.cfg.Rate <= 0 {
		for range r.cfg.Concurrency {
			wg.Go(func() {
				for {
					n, ok := next()
					if !ok {
						return
					}
					r.one(ctx, n)
				}
			})
		}
		wg.Wait()
		return
	}
	slots := make(chan struct{}, r.cfg.Concurrency)
	for {
		n, ok := next()
		if !ok {
			break
		}
		due := dueAt(r.start, r.cfg.Rate, n)
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if time.Since(due) > 10*time.Millisecond {
			r.mu.Lock()
			r.late++
			r.mu.Unlock()
		}
		wg.Go(func() {
			defer func() { <-slots }()
			r.one(ctx, n)
		})
	}
	wg.Wait()
}

// dueAt is when the n-th payment (from 0) of a run at rate per second is
// due: on a fixed grid from start, so a late send does not push the ones
// after it back.
func dueAt(start time.Time, rate float64, n int64) time.Time {
	return start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
}

// one sends the n-th payment and records its answer.
func (r *run) one(ctx context.Context, n int64) {
	kind := r.cfg.Kinds[int(n%int64(len(r.cfg.Kinds)))]
	id := r.cfg.RunID + "-" + strconv.FormatInt(n, 10)
	t := &tracked{kind: kind, sent: time.Now()}
	r.mu.Lock()
	// An outcome may already be here (see report); keep it.
	if early, ok := r.payments[id]; ok {
		t.outcome = early.outcome
	}
	r.payments[id] = t
	r.sent++
	r.mu.Unlock()

	status, err := r.cfg.Target.Submit(ctx, kind, id, 100+n%9900)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || status != 200 {
		key := strconv.Itoa(status)
		if status == 0 {
			key = "transport"
		}
		r.errors[key]++
		delete(r.payments, id)
		return
	}
	t.accepted = now
	r.accepted++
	r.lastAccepted = now
	r.intake.add(now.Sub(t.sent))
	if r.cfg.Follower != nil {
		r.cfg.Follower.Watch(id)
	}
	if t.outcome.Final() {
		r.finish(t, t.outcome)
	}
}

// report takes an outcome from the follower.
func (r *run) report(o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.payments[o.LineItemID]
	if !ok {
		// An outcome can overtake the API's answer; keep it for the
		// sender. Ids of other runs never match this run's prefix.
		if !strings.HasPrefix(o.LineItemID, r.cfg.RunID+"-") {
			return
		}
		r.payments[o.LineItemID] = &tracked{outcome: o}
		return
	}
	if t.final {
		return // a redelivered event
	}
	t.outcome = o
	if t.accepted.IsZero() || !o.Final() {
		return
	}
	r.finish(t, o)
}

// finish records t's final outcome o. The caller holds r.mu.
func (r *run) finish(t *tracked, o Outcome) {
	t.final = true
	r.finished++
	// The outcome can be seen before the 200 arrives: its time is then
	// the 200's, so intake→final is never negative.
	at := o.At
	if at.Before(t.accepted) {
		at = t.accepted
	}
	if at.After(r.lastFinal) {
		r.lastFinal = at
	}
	r.toFinal.add(at.Sub(t.accepted))
	r.endToEnd.add(at.Sub(t.sent))
	r.checkAllFinal()
}

// checkAllFinal closes allFinal once sending is over and every accepted
// payment is final. The caller holds r.mu.
func (r *run) checkAllFinal() {
	if r.sendingDone && r.finished == r.accepted {
		select {
		case <-r.allFinal:
		default:
			close(r.allFinal)
		}
	}
}

// progress writes a line every ProgressEvery until stop closes.
func (r *run) progress(stop <-chan struct{}) {
	if r.cfg.Progress == nil {
		return
	}
	tick := time.NewTicker(r.cfg.ProgressEvery)
	defer tick.Stop()
	lastSent, last := 0, time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			r.mu.Lock()
			sent, accepted, finished := r.sent, r.accepted, r.finished
			errs := 0
			for _, n := range r.errors {
				errs += n
			}
			r.mu.Unlock()
			in, fin := r.intake.takeWindow(), r.endToEnd.takeWindow()
			line := fmt.Sprintf("%5.0fs  sent/s %6.0f  accepted %7d  in flight %6d  finished %7d  errors %d  intake p50/p99 %s/%s",
				now.Sub(r.start).Seconds(), perSecond(sent-lastSent, now.Sub(last)), accepted,
				accepted-finished, finished, errs, fmtMS(in.P50, in.N), fmtMS(in.P99, in.N))
			if r.cfg.Follower != nil {
				line += fmt.Sprintf("  final p50/p99 %s/%s", fmtMS(fin.P50, fin.N), fmtMS(fin.P99, fin.N))
			} else {
				line = fmt.Sprintf("%5.0fs  sent/s %6.0f  accepted %7d  in flight %6d  errors %d  intake p50/p99 %s/%s",
					now.Sub(r.start).Seconds(), perSecond(sent-lastSent, now.Sub(last)), accepted,
					sent-accepted-errs, errs, fmtMS(in.P50, in.N), fmtMS(in.P99, in.N))
			}
			fmt.Fprintln(r.cfg.Progress, line)
			lastSent, last = sent, now
		}
	}
}

// fmtMS shows a latency in the progress line, "-" when nothing was
// measured in the window.
func fmtMS(v float64, n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
}

func (r *run) result(sendEnd time.Time) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{
		Kinds: r.cfg.Kinds, Rate: r.cfg.Rate, Concurrency: r.cfg.Concurrency, Followed: r.cfg.Follower != nil,
		Sent: r.sent, Accepted: r.accepted, Finished: r.finished, Late: r.late,
		Errors: maps.Clone(r.errors), Statuses: map[string]int{},
		Intake: r.intake.summary(), ToFinal: r.toFinal.summary(), EndToEnd: r.endToEnd.summary(),
	}
	if res.Followed {
		res.Unfinished = r.accepted - r.finished
	}
	sendSpan := sendEnd.Sub(r.start)
	res.SendSeconds = sendSpan.Seconds()
	res.SentPerSec = perSecond(r.sent, sendSpan)
	if !r.lastAccepted.IsZero() {
		// Accepted per second over the time it took to accept them.
		res.AcceptedPerSec = perSecond(r.accepted, r.lastAccepted.Sub(r.start))
	}
	if !r.lastFinal.IsZero() {
		res.EndToEndSeconds = r.lastFinal.Sub(r.start).Seconds()
		res.EndToEndPerSec = perSecond(r.finished, r.lastFinal.Sub(r.start))
	}
	ids := slices.Sorted(maps.Keys(r.payments))
	for _, id := range ids {
		t := r.payments[id]
		if t.accepted.IsZero() {
			continue // an outcome of a payment whose request failed
		}
		p := Payment{LineItemID: id, Kind: t.kind, Status: t.outcome.Status, AttemptStatus: t.outcome.AttemptStatus, Final: t.final}
		if t.final {
			res.Statuses[t.outcome.Status]++
		}
		res.Payments = append(res.Payments, p)
	}
	return res
}
