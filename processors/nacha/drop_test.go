package nacha

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var errCrash = errors.New("simulated crash")

// crashOnce fails the drop the first time it reaches step.
func crashOnce(step DropStep) func(DropStep, string) error {
	var once sync.Once
	return func(s DropStep, _ string) error {
		var err error
		if s == step {
			once.Do(func() { err = errCrash })
		}
		return err
	}
}

// checkDropInvariants asserts what must hold after any drop: every entry
// of the org is in at most one file, every dropped entry's file is written
// with the recorded hash on disk, the bytes equal a rebuild from the rows,
// no temp file is left, every written file is announced and each of its
// line items got exactly one "dropped" event.
func checkDropInvariants(t *testing.T, f *fixture) { checkDropState(t, f, false) }

// checkDropState is checkDropInvariants; afterCrash allows the temp file a
// crash leaves behind.
func checkDropState(t *testing.T, f *fixture, afterCrash bool) {
	t.Helper()
	rows, err := env.Pool.Query(f.ctx, `
		SELECT file_id, status, file_name, sha256, entry_count,
		       (SELECT count(*) FROM nacha_entries e WHERE e.file_id = nf.file_id) +
		       (SELECT COALESCE(sum(cardinality(c.entry_ids)), 0) FROM nacha_file_claims c WHERE c.file_id = nf.file_id
		         AND NOT c.applied)
		  FROM nacha_files nf WHERE org_id = $1`, f.org)
	if err != nil {
		t.Fatal(err)
	}
	type fileRow struct {
		id, status, name string
		sum              []byte
		count, assigned  int
	}
	var files []fileRow
	for rows.Next() {
		var r fileRow
		if err := rows.Scan(&r.id, &r.status, &r.name, &r.sum, &r.count, &r.assigned); err != nil {
			t.Fatal(err)
		}
		files = append(files, r)
	}
	rows.Close()
	for _, r := range files {
		if r.count != r.assigned {
			t.Errorf("file %s records %d entries but %d are assigned to it", r.name, r.count, r.assigned)
		}
		if r.status == fileBuilding || r.status == "released" { // never on disk
			continue
		}
		content, err := os.ReadFile(filepath.Join(f.dir, r.name))
		if err != nil {
			t.Errorf("written file missing from the drop dir: %v", err)
			continue
		}
		if s := sha256.Sum256(content); !bytes.Equal(s[:], r.sum) {
			t.Errorf("file %s on disk does not match its recorded sha256", r.name)
		}
		rec, err := f.p.loadFile(f.ctx, nil, r.id)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := f.p.writeFile(f.ctx, rec, &buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), content) {
			t.Errorf("file %s differs from a rebuild of its rows", r.name)
		}
	}
	var dupEvents, unannounced, unannouncedFiles int
	if err := env.Pool.QueryRow(f.ctx, `
		SELECT (SELECT count(*) FROM (SELECT line_item_id FROM nacha_test_events WHERE org_id = $1 AND kind = 'dropped'
		                               GROUP BY line_item_id HAVING count(*) > 1) d),
		       (SELECT count(*) FROM nacha_entries e JOIN nacha_files nf USING (file_id)
		         WHERE e.org_id = $1 AND nf.announced_at IS NOT NULL
		           AND NOT EXISTS (SELECT 1 FROM nacha_test_events ev WHERE ev.org_id = e.org_id
		                              AND ev.line_item_id = e.line_item_id AND ev.kind = 'dropped')),
		       (SELECT count(*) FROM nacha_files WHERE org_id = $1 AND status IN ('written', 'uploaded')
		           AND announced_at IS NULL)`,
		f.org).Scan(&dupEvents, &unannounced, &unannouncedFiles); err != nil {
		t.Fatal(err)
	}
	if dupEvents != 0 {
		t.Errorf("%d line items got more than one dropped event", dupEvents)
	}
	if unannounced != 0 {
		t.Errorf("%d entries of announced files got no dropped event", unannounced)
	}
	if unannouncedFiles != 0 && !afterCrash {
		t.Errorf("%d written files are not announced after the drop", unannouncedFiles)
	}
	tmp, _ := filepath.Glob(filepath.Join(f.dir, ".*.tmp"))
	if len(tmp) != 0 && !afterCrash {
		t.Errorf("temp files left behind: %v", tmp)
	}
}

func TestDropCrashAtEveryStepThenRerun(t *testing.T) {
	for _, step := range []DropStep{StepCreated, StepTempWritten, StepRenamed, StepWritten} {
		t.Run(string(step), func(t *testing.T) {
			f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
			for i := 0; i < 5; i++ {
				f.stage(payment{account: fmt.Sprintf("acct_%d", i%2), lineItem: fmt.Sprintf("li_%d", i),
					amount: int64(1000 + i), sec: []string{"WEB", "PPD"}[i%2]})
			}
			cutoff := ny(t, 2025, 12, 2, 21, 0)
			f.setNow(cutoff)
			f.p.hook = crashOnce(step)
			if _, err := f.drop(cutoff); !errors.Is(err, errCrash) {
				t.Fatalf("drop with a crash at %s: %v", step, err)
			}
			checkDropState(t, f, true)
			var status string
			if err := env.Pool.QueryRow(f.ctx, `SELECT status FROM nacha_files WHERE org_id = $1`, f.org).Scan(&status); err != nil {
				t.Fatal(err)
			}
			wantStatus := fileBuilding
			if step == StepWritten {
				wantStatus = fileWritten
			}
			if status != wantStatus {
				t.Fatalf("after a crash at %s the file is %s, want %s", step, status, wantStatus)
			}
			var firstContent []byte
			if step == StepRenamed {
				// The renamed file is on disk although PostgreSQL does not
				// know it yet; the re-run must reproduce it exactly.
				names, _ := filepath.Glob(filepath.Join(f.dir, "*.ach"))
				if len(names) != 1 {
					t.Fatalf("files on disk: %v", names)
				}
				firstContent, _ = os.ReadFile(names[0])
			}

			// A payment staged while the drop was down goes to a new file
			// in the re-run, never into the recovered one.
			f.setNow(ny(t, 2025, 12, 2, 20, 0))
			f.stage(payment{lineItem: "li_late", amount: 777})
			f.setNow(cutoff.Add(5 * time.Minute))
			res := f.mustDrop(cutoff)
			checkDropInvariants(t, f)

			var recovered, fresh []FileSummary
			for _, s := range res.Files {
				if s.Recovered {
					recovered = append(recovered, s)
				} else {
					fresh = append(fresh, s)
				}
			}
			if step == StepWritten {
				if len(recovered) != 0 {
					t.Errorf("a written file was recovered again: %+v", recovered)
				}
			} else if len(recovered) != 1 || recovered[0].Entries != 5 || recovered[0].Status != fileWritten {
				t.Fatalf("recovered = %+v, want the interrupted file with 5 entries, written", recovered)
			}
			if len(fresh) != 1 || fresh[0].Entries != 1 {
				t.Fatalf("new files = %+v, want one with the late entry", fresh)
			}
			if firstContent != nil {
				got, _ := os.ReadFile(recovered[0].Path)
				if !bytes.Equal(got, firstContent) {
					t.Error("the re-run rewrote the renamed file with different bytes")
				}
			}
			for i := 0; i < 5; i++ {
				li := fmt.Sprintf("li_%d", i)
				if e := f.entry(li); e.Status != entryDropped {
					t.Errorf("%s is %s after the re-run", li, e.Status)
				}
				if ev := f.events(li); len(ev) != 1 || ev[0] != "dropped" {
					t.Errorf("%s events = %v, want one dropped", li, ev)
				}
				if s := f.lineItemStatus(fmt.Sprintf("acct_%d", i%2), li); s != "PENDING" {
					t.Errorf("%s is %s, dropped entries stay PENDING", li, s)
				}
			}

			// A re-run of the completed cutoff drops nothing new.
			res = f.mustDrop(cutoff)
			if len(res.Files) != 0 {
				t.Fatalf("re-run of a completed cutoff dropped %+v", res.Files)
			}
			checkDropInvariants(t, f)
		})
	}
}

// A ledger that fails does not hold back the file: it is written (its
// entries dropped) and uploaded as usual, the failure is recorded on it for
// operators, and the next run tells the ledger.
func TestDropLedgerFailureLeavesTheFileToAnnounce(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	f.stage(payment{lineItem: "li_1", amount: 500})
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.ledger.failDropped.Store(true)
	res, err := f.drop(cutoff)
	if err == nil || !strings.Contains(err.Error(), "injected ledger failure") {
		t.Fatalf("drop with a failing ledger: %v", err)
	}
	if len(res.Files) != 1 || res.Files[0].Status != fileWritten {
		t.Fatalf("drop with a failing ledger wrote %+v, want the file written", res.Files)
	}
	if e := f.entry("li_1"); e.Status != entryDropped {
		t.Fatalf("entry is %s; its file is durable, so it is dropped", e.Status)
	}
	if ev := f.events("li_1"); len(ev) != 0 {
		t.Fatalf("events after a failed announcement = %v", ev)
	}
	var lastErr string
	if err := env.Pool.QueryRow(f.ctx, `SELECT COALESCE(last_error, '') FROM nacha_files WHERE org_id = $1`, f.org).Scan(&lastErr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lastErr, "injected") {
		t.Errorf("file's last_error = %q, want the failure recorded for operators", lastErr)
	}
	if got := counterValue(t, f.p.metrics.dropFailures.WithLabelValues("announce")); got != 1 {
		t.Errorf("drop failure metric = %v", got)
	}
	f.ledger.failDropped.Store(false)
	if res := f.mustDrop(cutoff); len(res.Files) != 0 {
		t.Fatalf("re-run = %+v, want nothing new", res.Files)
	}
	if err := env.Pool.QueryRow(f.ctx, `SELECT COALESCE(last_error, '') FROM nacha_files WHERE org_id = $1`, f.org).Scan(&lastErr); err != nil {
		t.Fatal(err)
	}
	if lastErr != "" {
		t.Errorf("file's last_error = %q after the announcement succeeded", lastErr)
	}
	checkDropInvariants(t, f)
	if ev := f.events("li_1"); len(ev) != 1 || ev[0] != "dropped" {
		t.Errorf("events = %v, want one dropped", ev)
	}
}

func TestDropRefusesToReplaceADifferentFile(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	f.stage(payment{lineItem: "li_1", amount: 500})
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.p.hook = crashOnce(StepRenamed)
	if _, err := f.drop(cutoff); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(f.dir, "*.ach"))
	original, _ := os.ReadFile(names[0])
	if err := os.WriteFile(names[0], []byte("tampered"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := f.drop(cutoff); err == nil || !strings.Contains(err.Error(), "different content") {
		t.Fatalf("drop over a different file: %v", err)
	}
	if got, _ := os.ReadFile(names[0]); string(got) != "tampered" {
		t.Fatal("the existing file was replaced")
	}
	if err := os.WriteFile(names[0], original, 0o640); err != nil {
		t.Fatal(err)
	}
	f.mustDrop(cutoff)
	checkDropInvariants(t, f)
}

func TestDropTakesTheAdvisoryLock(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	f.stage(payment{lineItem: "li_1", amount: 500})
	conn, err := env.Pool.Acquire(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(f.ctx, `SELECT pg_advisory_lock($1)`, dropLockKey); err != nil {
		t.Fatal(err)
	}
	if _, err := f.drop(ny(t, 2025, 12, 2, 21, 0)); !errors.Is(err, ErrDropInProgress) {
		t.Fatalf("drop while another holds the lock: %v", err)
	}
	if e := f.entry("li_1"); e.Status != entryStaged {
		t.Fatalf("entry %s while the drop was refused", e.Status)
	}
	if _, err := conn.Exec(f.ctx, `SELECT pg_advisory_unlock($1)`, dropLockKey); err != nil {
		t.Fatal(err)
	}
	f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
}

func TestConcurrentDropsNeverShareAnEntry(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	for i := 0; i < 50; i++ {
		f.stage(payment{lineItem: fmt.Sprintf("li_%02d", i), amount: int64(100 + i)})
	}
	cutoff := ny(t, 2025, 12, 2, 21, 0)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = f.p.DropAt(context.Background(), cutoff)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, ErrDropInProgress) {
			t.Fatalf("concurrent drop: %v", err)
		}
	}
	var files, entries int
	if err := env.Pool.QueryRow(f.ctx, `
		SELECT count(DISTINCT e.file_id), count(*) FROM nacha_entries e JOIN nacha_files nf USING (file_id)
		 WHERE e.org_id = $1 AND `+entryStatusSQL+` = 'dropped'`,
		f.org).Scan(&files, &entries); err != nil {
		t.Fatal(err)
	}
	if files != 1 || entries != 50 {
		t.Fatalf("%d entries in %d files, want 50 in 1", entries, files)
	}
	checkDropInvariants(t, f)
}

func TestFileIDModifiersPerDestinationPerDay(t *testing.T) {
	dest := randomRouting(t)
	f := newFixture(t, ny(t, 2025, 12, 2, 9, 0), fixtureOpts{destination: dest})
	g := newFixture(t, ny(t, 2025, 12, 2, 9, 0), fixtureOpts{destination: dest})
	var mods []string
	for i, fx := range []*fixture{f, g, f} {
		fx.setNow(ny(t, 2025, 12, 2, 9+i, 0))
		fx.stage(payment{lineItem: fmt.Sprintf("li_%d", i), amount: 100})
		// A cutoff takes what was staged before its instant.
		res := fx.mustDrop(ny(t, 2025, 12, 2, 9+i, 1))
		if len(res.Files) != 1 {
			t.Fatalf("drop %d: %+v", i, res.Files)
		}
		mods = append(mods, modifierOf(t, res.Files[0].FileID))
	}
	// The next day starts again at A.
	f.setNow(ny(t, 2025, 12, 3, 9, 0))
	f.stage(payment{lineItem: "li_next_day", amount: 100})
	res := f.mustDrop(ny(t, 2025, 12, 3, 9, 1))
	mods = append(mods, modifierOf(t, res.Files[0].FileID))
	if got := strings.Join(mods, ""); got != "ABCA" {
		t.Fatalf("file ID modifiers = %s, want ABCA (two orgs share the destination)", got)
	}
}

func modifierOf(t *testing.T, fileID string) string {
	t.Helper()
	var m string
	if err := env.Pool.QueryRow(context.Background(), `SELECT file_id_modifier FROM nacha_files WHERE file_id = $1`, fileID).Scan(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNextModifierOrder(t *testing.T) {
	if fileIDModifiers[0] != 'A' || fileIDModifiers[25] != 'Z' || fileIDModifiers[26] != '0' || len(fileIDModifiers) != 36 {
		t.Fatalf("modifier order %s", fileIDModifiers)
	}
}

func TestDropWithoutConfigLeavesEntriesStagedAndSaysWhy(t *testing.T) {
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
	f.stage(payment{lineItem: "li_1", amount: 500})
	if _, err := env.Pool.Exec(f.ctx, `DELETE FROM org_nacha_configs WHERE org_id = $1`, f.org); err != nil {
		t.Fatal(err)
	}
	_, err := f.drop(ny(t, 2025, 12, 2, 21, 0))
	if err == nil || !strings.Contains(err.Error(), "no NACHA configuration") {
		t.Fatalf("drop without config: %v", err)
	}
	if e := f.entry("li_1"); e.Status != entryStaged {
		t.Fatalf("entry %s", e.Status)
	}
}
