package nacha

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// runSchedule runs the fixture's schedule until the returned stop is called
// (or the schedule returns by itself, e.g. when its context is cancelled by
// a hook); stop waits for it.
func (f *fixture) runSchedule(ctx context.Context, cancel context.CancelFunc) (done <-chan struct{}, stop func()) {
	ch := make(chan struct{})
	var err error
	go func() { err = f.p.RunSchedule(ctx, ScheduleOptions{Every: 100 * time.Millisecond}); close(ch) }()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			cancel()
			select {
			case <-ch:
				if err != nil {
					f.t.Error(err)
				}
			case <-time.After(30 * time.Second):
				f.t.Error("the schedule did not stop")
			}
		})
	}
}

// waitFor polls cond until it holds or 15 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func gaugeValue(t testing.TB, g interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// announced reports whether every written file of the org is announced:
// a schedule's drop writes the file first (its entries are dropped from
// then on) and announces it after, so a test that stops the schedule once
// an entry is dropped may stop it mid-announcement.
func (f *fixture) announced() bool {
	f.t.Helper()
	var pending int
	if err := env.Pool.QueryRow(f.ctx, `SELECT count(*) FROM nacha_files WHERE org_id = $1
		AND status IN ('written', 'uploaded') AND announced_at IS NULL`, f.org).Scan(&pending); err != nil {
		f.t.Fatal(err)
	}
	return pending == 0
}

// orgFiles lists the fixture org's file rows: id, status, cutoff.
func (f *fixture) orgFiles() []FileInfo {
	f.t.Helper()
	all, err := f.p.ListFiles(f.ctx, FileQuery{Limit: 10_000})
	if err != nil {
		f.t.Fatal(err)
	}
	var mine []FileInfo
	for _, fi := range all {
		if fi.OrgID == f.org {
			mine = append(mine, fi)
		}
	}
	return mine
}

// The worker's schedule is killed in the middle of its scheduled cutoff
// (the hook cancels the schedule after the temp file is written and fails
// the drop, as a SIGKILL would leave it: file building, entries batched,
// temp file on disk). The restarted schedule finishes the file at once,
// byte for byte from its rows, and removes the temp file; it does not
// wait for the next day's cutoff.
func TestScheduledCutoffKilledMidwayIsFinishedByTheRestartedSchedule(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 20, 0), fixtureOpts{})
	for i := 0; i < 5; i++ {
		f.stage(payment{lineItem: fmt.Sprintf("li_%d", i), amount: int64(1000 + i)})
	}
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff.Add(-time.Second))

	ctx, cancel := context.WithCancel(context.Background())
	f.p.hook = func(s DropStep, _ string) error {
		if s == StepTempWritten {
			cancel() // the process dies here
			return errCrash
		}
		return nil
	}
	done, stop := f.runSchedule(ctx, cancel)
	time.Sleep(200 * time.Millisecond)
	f.setNow(cutoff.Add(190 * time.Millisecond))
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the scheduled cutoff did not run")
	}
	stop()
	f.p.hook = nil

	files := f.orgFiles()
	if len(files) != 1 || files[0].Status != fileBuilding {
		t.Fatalf("after the kill: files %+v, want one building", files)
	}
	if e := f.entry("li_0"); e.Status != entryBatched {
		t.Fatalf("after the kill the entry is %s", e.Status)
	}
	if tmp, _ := filepath.Glob(filepath.Join(f.dir, ".*.tmp")); len(tmp) != 1 {
		t.Fatalf("temp files after the kill: %v", tmp)
	}

	// Restarted five minutes later, the same evening.
	f.setNow(cutoff.Add(5 * time.Minute))
	ctx, cancel = context.WithCancel(context.Background())
	_, stop = f.runSchedule(ctx, cancel)
	defer stop()
	waitFor(t, "the restarted schedule finishes the interrupted file", func() bool {
		return f.entry("li_4").Status == entryDropped && f.announced()
	})
	stop()
	files = f.orgFiles()
	if len(files) != 1 || files[0].Status != fileWritten || files[0].FileID != f.entry("li_0").FileID {
		t.Fatalf("after the restart: files %+v, want the interrupted one written", files)
	}
	if !files[0].CutoffAt.Equal(cutoff) {
		t.Errorf("file cutoff %s, want %s", files[0].CutoffAt, cutoff)
	}
	if e := f.entry("li_0"); !e.Effective.Equal(civil(2025, 12, 3)) {
		t.Errorf("effective date %s, want 2025-12-03", e.Effective.Format(time.DateOnly))
	}
	checkDropInvariants(t, f) // includes: no temp file left, bytes = rebuild of the rows
	if !strings.Contains(f.logs.String(), "finishing a NACHA file an earlier drop left unfinished") {
		t.Error("the recovery is not in the log")
	}
}

// No schedule ran at the cutoff instant (the worker was down): one
// started later the same evening runs that cutoff, at its own instant, so
// a payment accepted after the cutoff waits for the next one.
func TestScheduleRunsACutoffNobodyRanWithinItsGrace(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 20, 0), fixtureOpts{})
	f.stage(payment{lineItem: "li_due", amount: 1000})
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff.Add(10 * time.Minute))
	f.stage(payment{lineItem: "li_late", amount: 2000})
	f.setNow(cutoff.Add(90 * time.Minute))

	ctx, cancel := context.WithCancel(context.Background())
	_, stop := f.runSchedule(ctx, cancel)
	defer stop()
	waitFor(t, "the missed cutoff is run", func() bool { return f.entry("li_due").Status == entryDropped && f.announced() })
	time.Sleep(300 * time.Millisecond) // a few more ticks
	stop()

	files := f.orgFiles()
	if len(files) != 1 || !files[0].CutoffAt.Equal(cutoff) || files[0].Entries != 1 {
		t.Fatalf("files %+v, want one of the 21:00 cutoff with the due entry", files)
	}
	if e := f.entry("li_due"); !e.Effective.Equal(civil(2025, 12, 3)) {
		t.Errorf("effective date %s, want 2025-12-03", e.Effective.Format(time.DateOnly))
	}
	if e := f.entry("li_late"); e.Status != entryStaged {
		t.Errorf("the payment accepted after the cutoff is %s; it belongs to the next cutoff", e.Status)
	}
	if got := counterValue(t, f.p.metrics.cutoffsCaughtUp); got < 1 {
		t.Errorf("caught-up metric = %v", got)
	}
	if got := counterValue(t, f.p.metrics.cutoffsMissed); got != 0 {
		t.Errorf("missed metric = %v within the grace", got)
	}
	checkDropInvariants(t, f)
}

// Started the next morning, past the grace: the missed cutoff is reported
// loudly (ERROR log, counted once, overdue gauge) rather than skipped in
// silence; its entries go out with the next cutoff, with an effective
// date recomputed (never a past one).
func TestScheduleReportsACutoffMissedPastItsGrace(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 20, 0), fixtureOpts{})
	f.stage(payment{lineItem: "li_1", amount: 1000})
	f.setNow(ny(t, 2025, 12, 3, 9, 0))

	ctx, cancel := context.WithCancel(context.Background())
	_, stop := f.runSchedule(ctx, cancel)
	defer stop()
	waitFor(t, "the missed cutoff is reported", func() bool { return counterValue(t, f.p.metrics.cutoffsMissed) >= 1 })
	time.Sleep(400 * time.Millisecond) // more ticks: still reported once
	stop()
	if got := counterValue(t, f.p.metrics.cutoffsMissed); got != 1 {
		t.Errorf("missed metric = %v, want 1 (one missed cutoff)", got)
	}
	if got := gaugeValue(t, f.p.metrics.overdueEntries); got < 1 {
		t.Errorf("overdue entries gauge = %v", got)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "MISSED") {
		t.Errorf("no ERROR log of the missed cutoff:\n%s", logs)
	}
	if e := f.entry("li_1"); e.Status != entryStaged {
		t.Fatalf("entry %s: past the grace it waits for the next cutoff", e.Status)
	}
	next := ny(t, 2025, 12, 3, 21, 0)
	f.setNow(next)
	f.mustDrop(next)
	if e := f.entry("li_1"); e.Status != entryDropped || !e.Effective.Equal(civil(2025, 12, 4)) {
		t.Fatalf("at the next cutoff: %+v, want dropped effective 2025-12-04", e)
	}
}

// A file interrupted at the cutoff and finished the next day would carry
// an effective date that has passed: its rows are moved to the earliest
// possible date before it is built. One already renamed into the drop
// directory (it may have been picked up) is finished byte for byte.
func TestInterruptedFileFinishedLateGetsAPossibleEffectiveDate(t *testing.T) {
	for _, step := range []DropStep{StepCreated, StepRenamed} {
		t.Run(string(step), func(t *testing.T) {
			f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
			f.stage(payment{lineItem: "li_1", amount: 1000})
			f.stage(payment{lineItem: "li_2", amount: 2000, sec: "PPD"})
			cutoff := ny(t, 2025, 12, 2, 21, 0)
			f.setNow(cutoff)
			f.p.hook = crashOnce(step)
			if _, err := f.drop(cutoff); !errors.Is(err, errCrash) {
				t.Fatalf("drop: %v", err)
			}
			f.p.hook = nil
			f.setNow(ny(t, 2025, 12, 3, 10, 0))
			// Recover covers every org; other tests' files are not ours to judge.
			res, _ := f.p.Recover(f.ctx)
			var mine []FileSummary
			for _, s := range res.Files {
				if s.OrgID == f.org {
					mine = append(mine, s)
				}
			}
			if len(mine) != 1 || mine[0].Status != fileWritten || !mine[0].Recovered || mine[0].Error != "" {
				t.Fatalf("recovered %+v", mine)
			}
			want := civil(2025, 12, 4)
			if step == StepRenamed {
				want = civil(2025, 12, 3) // already on disk: unchanged
			}
			for _, li := range []string{"li_1", "li_2"} {
				if e := f.entry(li); e.Status != entryDropped || !e.Effective.Equal(want) {
					t.Errorf("%s: %+v, want dropped effective %s", li, e, want.Format(time.DateOnly))
				}
			}
			content, err := os.ReadFile(mine[0].Path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(content), want.Format("060102")) {
				t.Errorf("the file's batches do not carry %s", want.Format("060102"))
			}
			checkDropInvariants(t, f)
		})
	}
}

// unreachableSFTP is an SFTP config for a port nothing listens on.
func unreachableSFTP(t *testing.T) *SFTPConfig {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return &SFTPConfig{Addr: addr, User: "payrail", Password: "s3cret", RemoteDir: ".", Timeout: 2 * time.Second,
		HostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGzFvDZ1x1Rj6VZbV1cYwz5r0WQzKXhZK2U2QyX0yS8d"}
}

// The SFTP server is down at the cutoff. The schedule's retries finish
// (upload) the file of that cutoff and nothing else: payments accepted
// after the cutoff stay staged for the next one instead of being cut into
// a new file a minute (until the day's file ID modifiers run out). The
// upload succeeds once the server is back.
func TestRetriedCutoffTakesNothingAcceptedAfterIt(t *testing.T) {
	var cfg *SFTPConfig
	f := newFixture(t, ny(t, 2025, 12, 2, 20, 0), fixtureOpts{mutate: func(c *Config) {
		cfg = unreachableSFTP(t)
		c.SFTP = cfg
	}})
	for i := 0; i < 3; i++ {
		f.stage(payment{lineItem: fmt.Sprintf("li_%d", i), amount: int64(1000 + i)})
	}
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff.Add(-time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	_, stop := f.runSchedule(ctx, cancel)
	defer stop()
	time.Sleep(200 * time.Millisecond)
	f.setNow(cutoff.Add(time.Second))
	waitFor(t, "the cutoff writes its file", func() bool { return f.entry("li_0").Status == entryDropped })

	// Five payments accepted after the cutoff, then a minute of retries.
	f.setNow(cutoff.Add(30 * time.Second))
	for i := 0; i < 5; i++ {
		f.stage(payment{lineItem: fmt.Sprintf("late_%d", i), amount: int64(500 + i)})
	}
	f.setNow(cutoff.Add(time.Minute))
	waitFor(t, "the schedule retries the upload", func() bool {
		return counterValue(t, f.p.metrics.dropFailures.WithLabelValues("upload")) >= 3
	})
	stop()
	files := f.orgFiles()
	if len(files) != 1 || files[0].Entries != 3 || files[0].Status != fileWritten || files[0].Upload != "pending" ||
		files[0].LastError == "" {
		t.Fatalf("files after the retries: %+v, want the cutoff's one file, written, upload pending, with its error", files)
	}
	for i := 0; i < 5; i++ {
		if e := f.entry(fmt.Sprintf("late_%d", i)); e.Status != entryStaged {
			t.Fatalf("late_%d is %s: a retry cut a payment accepted after its cutoff", i, e.Status)
		}
	}

	// The server is back: the next schedule uploads the file, still alone.
	srv := startSFTP(t, false)
	cfg.Addr, cfg.HostKey = srv.addr, srv.hostKey
	f.setNow(cutoff.Add(2 * time.Minute))
	ctx, cancel = context.WithCancel(context.Background())
	_, stop = f.runSchedule(ctx, cancel)
	defer stop()
	waitFor(t, "the upload is finished", func() bool {
		fs := f.orgFiles()
		return len(fs) == 1 && fs[0].Status == fileUploaded
	})
	stop()
	if names, _ := filepath.Glob(filepath.Join(srv.root, "*.ach")); len(names) != 1 {
		t.Fatalf("remote files %v", names)
	}
	if e := f.entry("late_0"); e.Status != entryStaged {
		t.Fatalf("late_0 is %s", e.Status)
	}
	next := ny(t, 2025, 12, 3, 21, 0)
	f.setNow(next)
	res := f.mustDrop(next)
	if len(res.Files) != 1 || res.Files[0].Entries != 5 {
		t.Fatalf("next cutoff %+v, want the 5 late payments", res.Files)
	}
}

// A drop whose upload failed lists the file it wrote (status, path, hash,
// upload pending, the error), not "files": [].
func TestDropResultListsTheFileWhoseUploadFailed(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{mutate: func(c *Config) { c.SFTP = unreachableSFTP(t) }})
	f.stage(payment{lineItem: "li_1", amount: 1000})
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff)
	res, err := f.drop(cutoff)
	if err == nil {
		t.Fatal("the upload to a server that is down succeeded")
	}
	if len(res.Files) != 1 {
		t.Fatalf("files %+v: the written file is missing", res.Files)
	}
	s := res.Files[0]
	if s.Status != fileWritten || s.Upload != "pending" || s.SHA256 == "" || s.Error == "" || s.Entries != 1 {
		t.Fatalf("summary %+v", s)
	}
	if _, err := os.Stat(s.Path); err != nil {
		t.Fatalf("listed path: %v", err)
	}
	// The re-run (same cutoff) lists it again, recovered, with its error.
	res, _ = f.drop(cutoff)
	if len(res.Files) != 1 || !res.Files[0].Recovered || res.Files[0].Error == "" || res.Files[0].FileID != s.FileID {
		t.Fatalf("re-run %+v", res.Files)
	}
}

// Recovery at start removes what a killed drop or upload left: the local
// temp file, and a partial NAME.part on the SFTP server beside a copy an
// earlier run already renamed into place.
func TestRecoveryRemovesLeftoverTempAndPartFiles(t *testing.T) {
	srv := startSFTP(t, false)
	f := sftpFixture(t, srv, srv.hostKey)
	f.stage(payment{lineItem: "li_1", amount: 1000})
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff)
	f.p.hook = crashOnce(StepUploaded)
	if _, err := f.drop(cutoff); !errors.Is(err, errCrash) {
		t.Fatalf("drop = %v", err)
	}
	f.p.hook = nil
	name := f.orgFiles()[0].FileName
	part := filepath.Join(srv.root, name+".part")
	if err := os.WriteFile(part, []byte("half a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(f.dir, ".PAYRAIL_20251202_2100_000000000_B_nf_gone.ach.tmp")
	if err := os.WriteFile(tmp, []byte("half a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, _ := f.p.Recover(f.ctx) // every org's files: only this one is judged
	found := false
	for _, s := range res.Files {
		found = found || (s.FileName == name && s.Status == fileUploaded && s.Recovered && s.Error == "")
	}
	if !found {
		t.Fatalf("recovered %+v", res.Files)
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Errorf("the partial upload is still on the server: %v", err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the temp file is still in the drop directory: %v", err)
	}
}
