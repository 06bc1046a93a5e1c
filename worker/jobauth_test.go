package worker

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// Someone who can publish on the jobs subjects but holds no key can change
// no payment: a job whose amount was changed, a forged job, garbage with
// the headers of a real held payment, and a genuine job replayed under
// another org's or attempt's headers are all dropped and counted, and every
// attempt and line item stays as it was. The genuine jobs, published
// afterwards, then execute at the amounts the API accepted: nothing was
// lost.
func TestUnauthenticatedJobsChangeNothing(t *testing.T) {
	f := newFixture(t, fixtureOpts{dropFastPath: true, noRelay: true}) // only the test publishes jobs
	tampered := f.pay("tampered", 1900)
	replayed := f.pay("replayed", 2100)
	held := f.pay("held", 1700)
	// A card held for review: open, polled, and not to be touched by a
	// message that merely names it (the test processor's Resolve leaves
	// it held).
	if _, err := env.Pool.Exec(f.ctx, `UPDATE payment_attempts SET status = 'held', updated_at = now()
		WHERE org_id = $1 AND attempt_id = $2`, f.org, held); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot("tampered", "replayed", "held")

	// The amount changed from 1900 to 2501 in the published job.
	body, headers := f.storedJob(tampered)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m["amount_cents"] = 2501
	changed, _ := json.Marshal(m)
	f.publishJob(changed, headers, "")

	// A job forged with a key of the same id: any amount, any card.
	forged, err := processors.EncodeJob(otherRing(t, "test"), processors.Job{OrgID: f.org, AccountID: f.account,
		LineItemID: "held", AttemptID: held, Processor: processors.AuthorizeNet, PaymentType: processors.PaymentTypeDebit,
		Origin: "guest_payment", AmountCents: 2501, EffectiveAt: time.Now(), CreatedAt: time.Now(),
		Card: &processors.CardDetails{Number: "4007000000027", ExpirationDate: "12/30"}})
	if err != nil {
		t.Fatal(err)
	}
	heldHeaders := map[string]string{processors.HeaderOrgID: f.org, processors.HeaderAttemptID: held}
	f.publishJob(forged, heldHeaders, "")

	// Seven bytes of garbage with the headers of the real held payment,
	// and garbage with no headers at all.
	f.publishJob([]byte("garbage"), heldHeaders, "")
	f.publishJob([]byte("not even json"), nil, "")

	// A genuine job of this org replayed under another org's headers, and
	// under another attempt's.
	genuine, _ := f.storedJob(replayed)
	f.publishJob(genuine, map[string]string{processors.HeaderOrgID: "org_other", processors.HeaderAttemptID: replayed}, "")
	f.publishJob(genuine, heldHeaders, "")

	// A job sealed with a key id no worker holds is handed back until its
	// last delivery (a key may be on its way to the workers), then dropped.
	unknownKey, err := processors.EncodeJob(otherRing(t, "k-unknown"), processors.Job{OrgID: f.org, AttemptID: held,
		Processor: processors.AuthorizeNet, AmountCents: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.publishJob(unknownKey, heldHeaders, "")

	waitFor(t, 15*time.Second, func() bool { return f.jobsInStream() == 0 },
		func() string { return "unauthenticated messages still in the jobs stream" })
	want := map[string]float64{"malformed": 3, "unauthenticated": 1, "mismatch": 2, "unknown_key": 1}
	got := map[string]float64{}
	for reason := range want {
		got[reason] = f.rejected(reason)
	}
	if mustJSON(got) != mustJSON(want) {
		t.Errorf("payrail_jobs_rejected_total by reason %s, want %s", mustJSON(got), mustJSON(want))
	}

	after := f.snapshot("tampered", "replayed", "held")
	for id, b := range before {
		if a := after[id]; a != b {
			t.Errorf("%s changed by unauthenticated messages:\n before %+v\n after  %+v", id, b, a)
		}
	}
	for _, attempt := range []string{tampered, replayed, held} {
		if calls, _ := f.proc.counts(attempt); calls != 0 {
			t.Errorf("processor called %d times for attempt %s (amounts %v)", calls, attempt, f.proc.amountsOf(attempt))
		}
	}
	if dead := f.counter("payrail_jobs_dead_total", nil); dead != 0 {
		t.Errorf("payrail_jobs_dead_total = %v, want 0", dead)
	}
	logs := f.logs.String()
	for _, secret := range []string{testPAN, "4007000000027", `"cvv"`} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs show %q", secret)
		}
	}

	// Nothing was lost: the genuine jobs (still in the outbox) execute, at
	// the amounts the API accepted.
	for _, attempt := range []string{tampered, replayed} {
		body, headers := f.storedJob(attempt)
		f.publishJob(body, headers, "job_"+attempt)
	}
	settled := f.waitSettled([]string{"tampered", "replayed"}, 10*time.Second)
	for id, attempt := range map[string]string{"tampered": tampered, "replayed": replayed} {
		if settled[id].Status != store.StatusValid {
			t.Errorf("%s ended %s after its genuine job", id, settled[id].Status)
		}
		if got, want := f.proc.amountsOf(attempt), settled[id].AmountCents; len(got) != 1 || got[0] != want {
			t.Errorf("%s charged %v, want once at %d", id, got, want)
		}
	}
}

// A job in the v1 format (written by the previous release, in flight at
// the upgrade) is executed, but from PostgreSQL's record of its attempt:
// its clear amount, changed on the way, is not what is charged.
func TestV1JobExecutesAsRecorded(t *testing.T) {
	f := newFixture(t, fixtureOpts{dropFastPath: true, noRelay: true})
	attempt := f.pay("legacy", 1900)
	stored, headers := f.storedJob(attempt)
	job, err := processors.DecodeJob(env.Ring, stored)
	if err != nil {
		t.Fatal(err)
	}
	clear, _ := json.Marshal(map[string]any{"card": job.Card})
	sealed, err := env.Ring.Seal(clear, []byte("job/"+job.OrgID+"/"+job.AttemptID))
	if err != nil {
		t.Fatal(err)
	}
	v1 := func(amount int64) []byte {
		b, _ := json.Marshal(map[string]any{"v": 1, "org_id": job.OrgID, "account_id": job.AccountID,
			"line_item_id": job.LineItemID, "attempt_id": job.AttemptID, "processor": job.Processor,
			"payment_type": job.PaymentType, "origin": job.Origin, "amount_cents": amount,
			"effective_at": job.EffectiveAt, "created_at": job.CreatedAt, "sealed": sealed})
		return b
	}
	// Replayed under another org's headers: rejected like any v2 job.
	f.publishJob(v1(1900), map[string]string{processors.HeaderOrgID: "org_other", processors.HeaderAttemptID: attempt}, "")
	waitFor(t, 10*time.Second, func() bool { return f.jobsInStream() == 0 },
		func() string { return "v1 job under other headers still in the stream" })
	if calls, _ := f.proc.counts(attempt); calls != 0 {
		t.Fatalf("processor called for a v1 job under another org's headers (amounts %v)", f.proc.amountsOf(attempt))
	}
	if n := f.rejected("mismatch"); n != 1 {
		t.Errorf("v1 job under other headers: rejected(mismatch) = %v, want 1", n)
	}

	f.publishJob(v1(2501), headers, "job_"+attempt)
	got := f.waitSettled([]string{"legacy"}, 10*time.Second)["legacy"]
	if got.Status != store.StatusValid {
		t.Errorf("v1 job ended %s", got.Status)
	}
	if amounts := f.proc.amountsOf(attempt); len(amounts) != 1 || amounts[0] != 1900 {
		t.Errorf("v1 job charged %v, want once at 1900 (the clear amount said 2501)", amounts)
	}
	if n := f.counter("payrail_jobs_v1_total", map[string]string{"processor": processors.AuthorizeNet}); n != 1 {
		t.Errorf("payrail_jobs_v1_total = %v, want 1", n)
	}
}

// paymentState is what an unauthenticated message must not change.
type paymentState struct {
	Status        store.Status
	AttemptStatus store.AttemptStatus
	Deliveries    int
	ResultCode    string
	Transitions   int
}

func (f *fixture) snapshot(ids ...string) map[string]paymentState {
	f.t.Helper()
	out := map[string]paymentState{}
	for _, id := range ids {
		li, err := f.store.LineItem(f.ctx, f.org, f.account, id)
		if err != nil {
			f.t.Fatal(err)
		}
		s := paymentState{Status: li.Status, AttemptStatus: li.Attempt.Status, Deliveries: li.Attempt.Deliveries,
			ResultCode: li.Attempt.ResultCode}
		if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM line_item_transitions
			WHERE org_id = $1 AND account_id = $2 AND line_item_id = $3`, f.org, f.account, id).Scan(&s.Transitions); err != nil {
			f.t.Fatal(err)
		}
		out[id] = s
	}
	return out
}

// storedJob returns the stored copy of an attempt's job (its attempt
// holds it) and the headers of its outbox row.
func (f *fixture) storedJob(attempt string) ([]byte, map[string]string) {
	f.t.Helper()
	var body []byte
	var headers map[string]string
	if err := env.Pool.QueryRow(f.ctx, `SELECT pa.job, o.headers FROM outbox o JOIN payment_attempts pa ON pa.attempt_id = o.attempt_id
		WHERE o.msg_id = $1`, "job_"+attempt).Scan(&body, &headers); err != nil {
		f.t.Fatal(err)
	}
	return body, headers
}

// publishJob publishes body on the card jobs subject with headers, and
// with msgID as Nats-Msg-Id unless it is empty.
func (f *fixture) publishJob(body []byte, headers map[string]string, msgID string) {
	f.t.Helper()
	msg := nats.NewMsg(f.topo.JobSubject(processors.AuthorizeNet))
	for k, v := range headers {
		msg.Header.Set(k, v)
	}
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	msg.Data = body
	if _, err := f.js.PublishMsg(f.ctx, msg); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) jobsInStream() uint64 {
	s, err := f.js.Stream(f.ctx, f.topo.Jobs)
	if err != nil {
		return 1 << 60
	}
	info, err := s.Info(f.ctx)
	if err != nil {
		return 1 << 60
	}
	return info.State.Msgs
}

func (f *fixture) rejected(reason string) float64 {
	return f.counter("payrail_jobs_rejected_total", map[string]string{"processor": processors.AuthorizeNet, "reason": reason})
}

// counter sums the series of the counter name whose labels include labels.
func (f *fixture) counter(name string, labels map[string]string) float64 {
	f.t.Helper()
	families, err := f.metrics.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	var sum float64
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	series:
		for _, m := range fam.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// otherRing is a keyring with a fresh key under id: what someone without
// payrail's keys can seal with.
func otherRing(t *testing.T, id string) *keyring.Ring {
	t.Helper()
	key, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	r, err := keyring.Parse(id+"="+key, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
