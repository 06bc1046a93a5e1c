package store

import (
	"context"
	"testing"
	"time"
)

// A job row keeps its sealed payload, and survives the purge, until its
// attempt finishes: the reconciler re-publishes unfinished jobs from it.
func TestPurgeKeepsJobsOfUnfinishedAttempts(t *testing.T) {
	st := New(env.Pool, env.Ring, plainEvents{})
	ctx := context.Background()
	ref, _ := newPayment(t, st)
	msgID := "job_" + ref.AttemptID
	// The subject a job row has in production (payments.Submit).
	if _, err := env.Pool.Exec(ctx, `UPDATE outbox SET subject = 'jobs.AUTHORIZE_NET' WHERE msg_id = $1`, msgID); err != nil {
		t.Fatal(err)
	}
	age := func() {
		t.Helper()
		if _, err := env.Pool.Exec(ctx, `UPDATE outbox SET published_at = now() - interval '48 hours'
			WHERE msg_id = $1 OR (subject LIKE 'events.%' AND published_at IS NULL)`, msgID); err != nil {
			t.Fatal(err)
		}
	}
	exists := func() bool {
		t.Helper()
		var n int
		if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE msg_id = $1`, msgID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	age()
	if _, err := st.PurgePublished(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if !exists() {
		t.Fatal("the job row of a queued attempt was purged")
	}
	if _, err := st.CompleteAttempt(ctx, AttemptResult{AttemptRef: ref, From: resultFrom, Status: AttemptSucceeded,
		LineItemStatus: StatusValid, Actor: "test", Reason: "approved"}); err != nil {
		t.Fatal(err)
	}
	age()
	if _, err := st.PurgePublished(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if exists() {
		t.Error("the job row of a finished attempt was kept")
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
