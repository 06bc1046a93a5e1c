package nacha

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The schedule drops at the cutoff and polls the inbound directory.
func TestScheduleDropsAtTheCutoffAndPollsInbound(t *testing.T) {
	// One second before the 21:00 New York cutoff.
	f := newFixture(t, ny(t, 2025, 12, 2, 20, 59).Add(59*time.Second), fixtureOpts{})
	f.stage(payment{lineItem: "li_s", amount: 4200})
	inboundDir := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- f.p.RunSchedule(ctx, ScheduleOptions{Every: 100 * time.Millisecond, InboundDir: inboundDir})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	// The fixture's clock stands still: move it past the cutoff while the
	// schedule's timer (one second) runs.
	time.Sleep(200 * time.Millisecond)
	f.setNow(ny(t, 2025, 12, 2, 21, 0).Add(time.Second))

	deadline := time.Now().Add(10 * time.Second)
	for f.entry("li_s").Status != "dropped" {
		if time.Now().After(deadline) {
			t.Fatalf("entry is %q 10s after its cutoff; the schedule did not drop", f.entry("li_s").Status)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A return file put in the inbound directory is ingested and moved aside.
	e := f.entry("li_s")
	content := buildInbound(t, f.origin, []inbound{{trace: e.Trace, amount: 4200, returnCode: "R01"}})
	if err := os.WriteFile(filepath.Join(inboundDir, "returns.ach"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	for f.lineItemStatus("acct_1", "li_s") != "DECLINED" {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("the return in the inbound directory was not applied")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The file is moved aside after the return's transaction committed:
	// the line item can be DECLINED a moment before the move.
	for {
		b, err := os.ReadFile(filepath.Join(inboundDir, "processed", "returns.ach"))
		if err == nil && bytes.Equal(b, content) {
			break
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("the ingested file was not moved to processed/: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
