package nacha

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
)

// A drop records its file written in one row (its entries are dropped
// from then on) and then announces the entries to the ledger in chunks,
// each its own transaction. One that stops after the first chunk leaves
// the file written, its entries dropped, two line items told and three
// not; whatever runs next — a drop, a settlement, a return file — tells
// the rest first, and every line item ends with exactly one dropped event,
// before any other (a settlement's or a return's).
func TestDropCrashBetweenAnnouncementChunksThenResume(t *testing.T) {
	for _, tc := range []struct {
		name   string
		resume func(f *fixture, cutoff time.Time)
		// after is the event that follows "dropped" for a line item, if
		// the resume makes one.
		after func(li string) string
	}{
		{"drop", func(f *fixture, cutoff time.Time) {
			if res := f.mustDrop(cutoff); len(res.Files) != 0 {
				f.t.Fatalf("re-run cut %+v, want nothing new", res.Files)
			}
		}, func(string) string { return "" }},
		{"settlement", func(f *fixture, _ time.Time) {
			f.setNow(ny(f.t, 2025, 12, 5, 0, 1))
			if _, err := f.p.Settle(f.ctx); err != nil {
				f.t.Fatal(err)
			}
		}, func(string) string { return "settled" }},
		{"return file", func(f *fixture, _ time.Time) {
			// li_4 is the last entry in trace order (PPD batch first):
			// not announced by the first chunk.
			var name string
			if err := env.Pool.QueryRow(f.ctx, `SELECT file_name FROM nacha_files WHERE org_id = $1`, f.org).Scan(&name); err != nil {
				f.t.Fatal(err)
			}
			original, err := os.ReadFile(filepath.Join(f.dir, name))
			if err != nil {
				f.t.Fatal(err)
			}
			content, err := SimulateReturns(original, map[string]string{f.entry("li_4").Trace: "R01"}, *f.clock.Load())
			if err != nil {
				f.t.Fatal(err)
			}
			f.setNow(ny(f.t, 2025, 12, 4, 6, 0))
			if rep, err := f.p.IngestReturnFile(f.ctx, "returns.ach", bytes.NewReader(content)); err != nil || !rep.Applied {
				f.t.Fatalf("ingest: %+v, %v", rep, err)
			}
		}, func(li string) string {
			if li == "li_4" {
				return "returned"
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
			f.p.recordChunk = 2
			for i := 0; i < 5; i++ {
				f.stage(payment{account: fmt.Sprintf("acct_%d", i%2), lineItem: fmt.Sprintf("li_%d", i),
					amount: int64(1000 + i), sec: []string{"WEB", "PPD"}[i%2]})
			}
			cutoff := ny(t, 2025, 12, 2, 21, 0)
			f.setNow(cutoff)
			f.p.hook = crashOnce(StepAnnouncedChunk)
			if _, err := f.drop(cutoff); !errors.Is(err, errCrash) {
				t.Fatalf("drop with a crash after the first announced chunk: %v", err)
			}
			checkDropState(t, f, true)
			var fileID, status, through string
			var announced *time.Time
			if err := env.Pool.QueryRow(f.ctx, `
				SELECT file_id, status, COALESCE(announced_through, ''), announced_at FROM nacha_files WHERE org_id = $1`,
				f.org).Scan(&fileID, &status, &through, &announced); err != nil {
				t.Fatal(err)
			}
			if status != fileWritten || announced != nil || through == "" {
				t.Fatalf("after the crash: file %s announced through %q at %v; want written, part announced", status,
					through, announced)
			}
			told := 0
			for i := 0; i < 5; i++ {
				li := fmt.Sprintf("li_%d", i)
				if e := f.entry(li); e.Status != entryDropped {
					t.Errorf("%s is %s: entries of a written file are dropped", li, e.Status)
				}
				told += len(f.events(li))
			}
			if told != 2 {
				t.Fatalf("%d line items told after the first chunk, want 2", told)
			}
			// A written file is never released, told or not.
			if _, err := f.p.ReleaseFile(f.ctx, fileID); !errors.Is(err, ErrNotBuilding) {
				t.Fatalf("release of a written file: %v", err)
			}

			f.setNow(cutoff.Add(5 * time.Minute))
			tc.resume(f, cutoff)
			checkDropInvariants(t, f)
			for i := 0; i < 5; i++ {
				li := fmt.Sprintf("li_%d", i)
				want := []string{"dropped"}
				if after := tc.after(li); after != "" {
					want = append(want, after)
				}
				if ev := f.events(li); !reflect.DeepEqual(ev, want) {
					t.Errorf("%s events = %v, want %v", li, ev, want)
				}
			}
		})
	}
}

// The events the store builds in PostgreSQL (canopy.EventSQL, used for
// drops and settlements) mean exactly what canopy.Events builds in Go for
// the same line item and change: same subject, headers and decoded JSON
// (event ids aside, which are random), across the optional and nullable
// fields — merchant data, issuer details, external fields, valid_at, a
// related line item, an instrument, result codes, microsecond timestamps.
func TestEventSQLMatchesEvent(t *testing.T) {
	st := store.New(env.Pool, env.Ring, canopy.Events{})
	var _ store.SQLEvents = canopy.Events{}
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{mutate: func(c *Config) { c.Ledger = StoreLedger{Store: st} }})
	items := []string{"li_plain", "li_rich", "li_micro"}
	for i, li := range items {
		f.stage(payment{lineItem: li, amount: int64(1500 + i)})
	}
	// Vary what the staged rows carry, straight in SQL.
	if _, err := env.Pool.Exec(f.ctx, `
		UPDATE line_items SET merchant_data = '{"store": "Nº 7 \"east\"", "n": 1.5, "tags": ["a", null]}',
		       issuer_processor_details = '{"x": {"y": true}}', external_fields = '[{"key": "k", "value": "v"}]',
		       description = 'Loan payment – Ünïcode', related_line_item_id = 'li_other',
		       created_at = '2025-12-01 09:08:07.120000+00', effective_at = '2025-12-01 23:59:59.999999+00'
		 WHERE org_id = $1 AND line_item_id = 'li_rich'`, f.org); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(f.ctx, `
		UPDATE payment_attempts SET instrument_kind = 'bank_account', instrument_brand = NULL, instrument_last_four = '6789',
		       deliveries = 3, result_code = 'x1', result_message = 'said "so"'
		 WHERE org_id = $1 AND line_item_id = 'li_rich'`, f.org); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(f.ctx, `
		UPDATE line_items SET created_at = '2025-12-01 09:08:07.000001+00', merchant_data = 'null'
		 WHERE org_id = $1 AND line_item_id = 'li_micro'`, f.org); err != nil {
		t.Fatal(err)
	}
	dropAt := ny(t, 2025, 12, 2, 21, 0).Add(123456 * time.Microsecond)
	f.setNow(dropAt)
	res := f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
	if len(res.Files) != 1 {
		t.Fatalf("drop = %+v", res)
	}
	compare := func(li string, from store.Status, reason string, at time.Time) {
		t.Helper()
		var subject, msgID string
		var headers map[string]string
		var payload []byte
		if err := env.Pool.QueryRow(f.ctx, `
			SELECT subject, msg_id, headers, payload FROM outbox
			 WHERE headers->>'Payrail-Line-Item-Id' = $1 AND convert_from(payload, 'UTF8') LIKE '%' || $2 || '%'
			 ORDER BY id DESC LIMIT 1`, li, f.org).Scan(&subject, &msgID, &headers, &payload); err != nil {
			t.Fatalf("%s: outbox row: %v", li, err)
		}
		got, err := st.LineItem(f.ctx, f.org, "acct_1", li)
		if err != nil {
			t.Fatal(err)
		}
		want, err := canopy.Events{}.Event(store.Change{LineItem: got, From: from, Actor: Name, Reason: reason, At: at})
		if err != nil {
			t.Fatal(err)
		}
		var gotBody, wantBody map[string]any
		if err := json.Unmarshal(payload, &gotBody); err != nil {
			t.Fatalf("%s: SQL payload is not JSON: %v\n%s", li, err, payload)
		}
		if err := json.Unmarshal(want.Payload, &wantBody); err != nil {
			t.Fatal(err)
		}
		if gotBody["event_id"] != msgID {
			t.Errorf("%s: event_id %v is not the msg_id %s", li, gotBody["event_id"], msgID)
		}
		if id, _ := gotBody["event_id"].(string); len(id) != len(want.MsgID) || id[:4] != "evt_" {
			t.Errorf("%s: event id %q is not shaped like %q", li, id, want.MsgID)
		}
		gotBody["event_id"] = wantBody["event_id"]
		if !reflect.DeepEqual(gotBody, wantBody) {
			t.Errorf("%s: SQL-built event differs from Go's\n sql: %s\n  go: %s", li, payload, want.Payload)
		}
		if subject != want.Subject || !reflect.DeepEqual(headers, want.Headers) {
			t.Errorf("%s: subject %q headers %v, Go says %q %v", li, subject, headers, want.Subject, want.Headers)
		}
	}
	for _, li := range items {
		compare(li, store.StatusPending, "dropped in NACHA file "+res.Files[0].FileName, dropAt)
	}
	// A status change (settlement: PENDING → VALID, valid_at set).
	settleAt := ny(t, 2025, 12, 10, 12, 0).Add(700 * time.Millisecond)
	f.setNow(settleAt)
	if _, err := f.p.Settle(f.ctx); err != nil {
		t.Fatal(err)
	}
	for _, li := range items {
		compare(li, store.StatusPending, "settlement window passed without a return", settleAt)
	}

}

// A file's membership is recorded set-wise when it is planned (its
// claims); the entries' own rows are written after the file is durable,
// one claim per transaction. A drop that stops after the first claim leaves
// a written file whose entries are partly batched and partly still staged
// but claimed: the next drop must not cut the claimed ones into a second
// file, and finishes the rows and the announcement. A file still building
// when that happens is rebuilt, byte for byte what was built before any
// claim was applied.
func TestDropCrashWhileMaterializingThenRerun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []DropStep // a crash per drop, in order; the last drop runs clean
	}{
		{"written file", []DropStep{StepAssignedChunk}},
		// The first drop stops after the rename; the second, recovering
		// it, after its first claim is applied.
		{"renamed file rebuilt mid-materialization", []DropStep{StepRenamed, StepAssignedChunk}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{})
			f.p.assignChunk = 2
			for i := 0; i < 5; i++ {
				f.stage(payment{account: fmt.Sprintf("acct_%d", i%2), lineItem: fmt.Sprintf("li_%d", i),
					amount: int64(1000 + i), sec: []string{"WEB", "PPD"}[i%2]})
			}
			cutoff := ny(t, 2025, 12, 2, 21, 0)
			f.setNow(cutoff)
			var firstContent []byte
			for _, step := range tc.steps {
				// The process dies at the step: nothing after it runs.
				ctx, cancel := context.WithCancel(f.ctx)
				f.p.hook = func(s DropStep, _ string) error {
					if s == step {
						cancel()
						return errCrash
					}
					return nil
				}
				_, err := f.p.DropAt(ctx, cutoff)
				cancel()
				if !errors.Is(err, errCrash) {
					t.Fatalf("drop with a crash at %s: %v", step, err)
				}
				checkDropState(t, f, true)
				if names, _ := filepath.Glob(filepath.Join(f.dir, "*.ach")); firstContent == nil && len(names) == 1 {
					firstContent, _ = os.ReadFile(names[0])
				}
			}
			var status string
			var materialized *time.Time
			var batched, claimed int
			if err := env.Pool.QueryRow(f.ctx, `
				SELECT nf.status, nf.materialized_at,
				       (SELECT count(*) FROM nacha_entries e WHERE e.file_id = nf.file_id AND e.status = 'batched'),
				       (SELECT COALESCE(sum(cardinality(entry_ids)), 0) FROM nacha_file_claims c WHERE c.file_id = nf.file_id
				           AND NOT c.applied)
				  FROM nacha_files nf WHERE nf.org_id = $1`, f.org).Scan(&status, &materialized, &batched, &claimed); err != nil {
				t.Fatal(err)
			}
			if materialized != nil || batched != 2 || claimed != 3 {
				t.Fatalf("after the crash: file %s materialized %v, %d entries batched, %d claimed; want 2 and 3",
					status, materialized, batched, claimed)
			}
			// What an operator sees of each entry (payrail payments show)
			// is the same whether its row or its file's claim names the file.
			st := store.New(env.Pool, env.Ring, canopy.Events{})
			for i := 0; i < 5; i++ {
				li := fmt.Sprintf("li_%d", i)
				var attempt string
				if err := env.Pool.QueryRow(f.ctx, `SELECT attempt_id FROM nacha_entries WHERE org_id = $1 AND line_item_id = $2`,
					f.org, li).Scan(&attempt); err != nil {
					t.Fatal(err)
				}
				got, err := st.AttemptNachaEntry(f.ctx, f.org, attempt)
				if err != nil {
					t.Fatal(err)
				}
				want := f.entry(li)
				if got.Status != entryDropped || want.Status != entryDropped || got.FileID != want.FileID ||
					got.TraceNumber != want.Trace || want.Trace == "" || !got.EffectiveEntryDate.Equal(want.Effective) {
					t.Errorf("%s: operator sees %+v, the entry is %+v", li, got, want)
				}
			}

			f.p.hook = nil
			f.setNow(cutoff.Add(5 * time.Minute))
			res := f.mustDrop(cutoff)
			for _, s := range res.Files {
				if !s.Recovered {
					t.Fatalf("re-run cut a new file %+v: claimed entries were cut twice", s)
				}
			}
			checkDropInvariants(t, f)
			if firstContent != nil {
				names, _ := filepath.Glob(filepath.Join(f.dir, "*.ach"))
				if got, _ := os.ReadFile(names[0]); len(names) != 1 || !bytes.Equal(got, firstContent) {
					t.Fatalf("the file rebuilt mid-materialization differs from the one built before it")
				}
			}
			var fileID string
			if err := env.Pool.QueryRow(f.ctx, `
				SELECT file_id FROM nacha_files WHERE org_id = $1 AND status = 'written' AND materialized_at IS NOT NULL
				   AND NOT EXISTS (SELECT 1 FROM nacha_file_claims c WHERE c.file_id = nacha_files.file_id)`,
				f.org).Scan(&fileID); err != nil {
				t.Fatalf("the file is not written and materialized after the re-run: %v", err)
			}
			for i := 0; i < 5; i++ {
				li := fmt.Sprintf("li_%d", i)
				if e := f.entry(li); e.Status != entryDropped || e.FileID != fileID {
					t.Errorf("%s is %s in %s after the re-run", li, e.Status, e.FileID)
				}
				if ev := f.events(li); len(ev) != 1 || ev[0] != "dropped" {
					t.Errorf("%s events = %v, want one dropped", li, ev)
				}
			}
		})
	}
}
