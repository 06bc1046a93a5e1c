package store

import (
	"context"
	"testing"
	"time"
)

// The reconciler finds an unfinished attempt whose job was published
// (its outbox row is gone) and is no longer in the broker, from the job
// the attempt holds, and queues it again under a new msg id: a new row
// without a payload, which the relay publishes from the attempt. A job
// still waiting in the outbox, or whose attempt finished, is left alone.
func TestRepublishStrandedFromTheAttempt(t *testing.T) {
	st := New(env.Pool, env.Ring, plainEvents{})
	ctx := context.Background()
	ref, _ := newPayment(t, st)
	processor := NewID("PROC_") // this test's attempts only
	if _, err := env.Pool.Exec(ctx, `UPDATE payment_attempts SET processor = $3 WHERE org_id = $1 AND attempt_id = $2`,
		ref.OrgID, ref.AttemptID, processor); err != nil {
		t.Fatal(err)
	}
	q := StrandedQuery{Processors: []string{processor}, IdleProcessors: []string{processor},
		StreamCreated:  time.Now().Add(time.Hour), // the stream is newer than the job
		NeverDelivered: time.Hour, RetryLost: time.Hour, LeaseExpired: time.Hour, Lease: time.Minute, MaxDeliver: 5,
		Limit: 10, Job: func(a Stranded) OutboxMessage {
			return OutboxMessage{Subject: "jobs." + a.Processor, Headers: map[string]string{"Payrail-Attempt-Id": a.AttemptID}}
		}}
	republish := func() []Stranded {
		t.Helper()
		out, err := st.RepublishStranded(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := republish(); len(got) != 0 {
		t.Fatalf("a job still in the outbox was re-published: %+v", got)
	}
	// Published: the row is gone.
	if _, err := env.Pool.Exec(ctx, `DELETE FROM outbox WHERE msg_id = $1`, "job_"+ref.AttemptID); err != nil {
		t.Fatal(err)
	}
	got := republish()
	if len(got) != 1 || got[0].AttemptID != ref.AttemptID || got[0].Reason != "stream_recreated" ||
		got[0].MsgID != "job_"+ref.AttemptID+".r1" {
		t.Fatalf("re-published %+v, want the attempt's job as job_%s.r1 (stream_recreated)", got, ref.AttemptID)
	}
	var subject, attemptID, jobMsgID string
	var payload []byte
	var fastPath bool
	if err := env.Pool.QueryRow(ctx, `
		SELECT o.subject, o.payload, o.fast_path, o.attempt_id, pa.job_msg_id FROM outbox o
		  JOIN payment_attempts pa ON pa.attempt_id = o.attempt_id
		 WHERE o.msg_id = $1 AND o.published_at IS NULL`, got[0].MsgID).Scan(&subject, &payload, &fastPath, &attemptID,
		&jobMsgID); err != nil {
		t.Fatalf("the new job row: %v", err)
	}
	if subject != "jobs."+processor || payload != nil || fastPath || attemptID != ref.AttemptID || jobMsgID != got[0].MsgID {
		t.Errorf("new row: subject %s, payload %q, fast path %v, attempt %s, attempt's job msg id %s", subject, payload,
			fastPath, attemptID, jobMsgID)
	}
	// Published again, then the attempt finished: nothing to re-publish.
	if _, err := env.Pool.Exec(ctx, `DELETE FROM outbox WHERE msg_id = $1`, got[0].MsgID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CompleteAttempt(ctx, AttemptResult{AttemptRef: ref, From: resultFrom, Status: AttemptSucceeded,
		LineItemStatus: StatusValid, Actor: "test", Reason: "approved"}); err != nil {
		t.Fatal(err)
	}
	if got := republish(); len(got) != 0 {
		t.Errorf("a finished attempt's job was re-published: %+v", got)
	}
}

// A job queued before the stream was created and never delivered may be
// in the new stream (a relay's backlog published after an outage): it is
// not re-published while its consumer has messages undelivered, lest the
// whole backlog be sent twice.
func TestRepublishStrandedWaitsForABusyConsumer(t *testing.T) {
	st := New(env.Pool, env.Ring, plainEvents{})
	ctx := context.Background()
	ref, _ := newPayment(t, st)
	processor := NewID("PROC_")
	if _, err := env.Pool.Exec(ctx, `UPDATE payment_attempts SET processor = $3 WHERE org_id = $1 AND attempt_id = $2`,
		ref.OrgID, ref.AttemptID, processor); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(ctx, `DELETE FROM outbox WHERE msg_id = $1`, "job_"+ref.AttemptID); err != nil {
		t.Fatal(err)
	}
	q := StrandedQuery{Processors: []string{processor}, StreamCreated: time.Now().Add(time.Hour),
		NeverDelivered: time.Hour, RetryLost: time.Hour, LeaseExpired: time.Hour, Lease: time.Minute, MaxDeliver: 5,
		Limit: 10, Job: func(a Stranded) OutboxMessage { return OutboxMessage{Subject: "jobs." + a.Processor} }}
	if got, err := st.RepublishStranded(ctx, q); err != nil || len(got) != 0 {
		t.Fatalf("with the consumer busy: %+v, %v; want nothing re-published", got, err)
	}
	q.IdleProcessors = []string{processor}
	if got, err := st.RepublishStranded(ctx, q); err != nil || len(got) != 1 || got[0].Reason != "stream_recreated" {
		t.Fatalf("with the consumer idle: %+v, %v; want the job re-published (stream_recreated)", got, err)
	}
}

func TestNextJobMsgID(t *testing.T) {
	for in, want := range map[string]string{
		"job_att_1":    "job_att_1.r1",
		"job_att_1.r1": "job_att_1.r2",
		"job_att_1.r9": "job_att_1.r10",
		"job_att.rx":   "job_att.rx.r1",
		"job_att_1.r0": "job_att_1.r0.r1",
	} {
		if got := nextJobMsgID(in); got != want {
			t.Errorf("nextJobMsgID(%q) = %q, want %q", in, got, want)
		}
	}
}
