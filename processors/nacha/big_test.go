package nacha

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moov-io/ach"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
)

// seedEntries stages n entries for f's org straight into PostgreSQL with
// COPY: the cutoff is what is measured, and n calls to Process would
// measure round trips instead. Rows are exactly what Process writes.
func seedEntries(tb testing.TB, f *fixture, n int, staged time.Time) int64 {
	tb.Helper()
	const accounts = 100
	for a := 0; a < accounts; a++ {
		f.ensureAccount(fmt.Sprintf("acct_%03d", a))
	}
	effective := f.p.cal.PlannedEffectiveDate(staged, time.Time{})
	prefix := strconv.FormatInt(staged.UnixNano(), 36)
	var total int64
	items := make([][]any, 0, 10_000)
	entries := make([][]any, 0, 10_000)
	attempts := make([][]any, 0, 10_000)
	flush := func() {
		if _, err := env.Pool.CopyFrom(f.ctx, pgx.Identifier{"line_items"},
			[]string{"org_id", "account_id", "line_item_id", "line_item_type", "status", "original_amount_cents",
				"effective_at", "created_at", "updated_at", "origin", "processor", "request_hash", "client_id"},
			pgx.CopyFromRows(items)); err != nil {
			tb.Fatal(err)
		}
		if _, err := env.Pool.CopyFrom(f.ctx, pgx.Identifier{"nacha_entries"},
			[]string{"org_id", "account_id", "line_item_id", "attempt_id", "status", "amount_cents",
				"standard_entry_class", "rdfi_routing", "account_type", "account_number_enc", "account_last_four",
				"individual_name", "payment_type_code", "effective_entry_date", "staged_at"},
			pgx.CopyFromRows(entries)); err != nil {
			tb.Fatal(err)
		}
		// The attempts the store's ledger stamps with file and trace.
		if _, err := env.Pool.CopyFrom(f.ctx, pgx.Identifier{"payment_attempts"},
			[]string{"attempt_id", "org_id", "account_id", "line_item_id", "processor", "payment_type", "status",
				"job_msg_id", "created_at", "updated_at"},
			pgx.CopyFromRows(attempts)); err != nil {
			tb.Fatal(err)
		}
		items, entries, attempts = items[:0], entries[:0], attempts[:0]
	}
	for i := 0; i < n; i++ {
		acct := fmt.Sprintf("acct_%03d", i%accounts)
		li := fmt.Sprintf("big-%s-%06d", prefix, i)
		attempt := "att_" + f.org + "_" + li
		amount := int64(100 + i%50_000)
		total += amount
		number := fmt.Sprintf("%011d", 10_000_000_000+int64(i))
		sealed, err := env.Ring.Seal([]byte(number), entryContext(f.org, attempt))
		if err != nil {
			tb.Fatal(err)
		}
		sec, pay, typ := "PPD", "", "CHECKING"
		if i%3 == 0 {
			sec, pay = "WEB", "S"
		}
		if i%7 == 0 {
			typ = "SAVINGS"
		}
		items = append(items, []any{f.org, acct, li, "PAYMENT", "PENDING", amount, staged, staged, staged,
			"payment_transfer", Name, []byte{0}, "test"})
		entries = append(entries, []any{f.org, acct, li, attempt, entryStaged, amount, sec, "231380104", typ, sealed,
			number[len(number)-4:], "Borrower " + strconv.Itoa(i%1000), pay, effective, staged})
		attempts = append(attempts, []any{attempt, f.org, acct, li, Name, "ACH", "pending_settlement", "job_" + attempt,
			staged, staged})
		if len(items) == cap(items) {
			flush()
		}
	}
	if len(items) > 0 {
		flush()
	}
	// Autovacuum would analyze tables that grew this much; without
	// statistics the planner hashes all of line_items for every ledger
	// chunk and the test measures that instead of the processor.
	if _, err := env.Pool.Exec(f.ctx, `ANALYZE line_items, nacha_entries, payment_attempts`); err != nil {
		tb.Fatal(err)
	}
	return total
}

// memSampler records the peak heap while a measured step runs.
type memSampler struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	peak   uint64
	before runtime.MemStats
}

func startMemSampler() *memSampler {
	runtime.GC()
	s := &memSampler{stop: make(chan struct{})}
	runtime.ReadMemStats(&s.before)
	s.peak = s.before.HeapInuse
	// Reset the kernel's peak-RSS counter so VmHWM covers only this step.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&m)
				if m.HeapInuse > s.peak {
					s.peak = m.HeapInuse
				}
			}
		}
	}()
	return s
}

// done returns peak HeapInuse, bytes allocated during the step and the
// process's peak RSS (VmHWM) in MiB.
func (s *memSampler) done() (peakHeapMiB, allocMiB, peakRSSMiB float64) {
	close(s.stop)
	s.wg.Wait()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	if m.HeapInuse > s.peak {
		s.peak = m.HeapInuse
	}
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	return mib(s.peak), mib(m.TotalAlloc - s.before.TotalAlloc), vmHWM()
}

func vmHWM() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// TestBigCutoff drops a large cutoff through the store's real ledger (every
// entry's attempt stamped and its event written to the outbox) and
// reports time and memory: 10,000 entries in every run, 100,000 with
// PAYRAIL_NACHA_BIG=1 (or PAYRAIL_NACHA_BIG=N for N entries).
func TestBigCutoff(t *testing.T) {
	n := 10_000
	if size := os.Getenv("PAYRAIL_NACHA_BIG"); size == "1" {
		n = 100_000
	} else if v, err := strconv.Atoi(size); err == nil && v > 1 {
		n = v
	}
	timed := &timedLedger{Ledger: StoreLedger{Store: store.New(env.Pool, env.Ring, canopy.Events{})}}
	f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{balanced: true, mutate: func(c *Config) { c.Ledger = timed }})
	start := time.Now()
	total := seedEntries(t, f, n, ny(t, 2025, 12, 2, 10, 0))
	t.Logf("seeded %d entries (%d cents) in %s", n, total, time.Since(start).Round(time.Millisecond))

	cutoff := ny(t, 2025, 12, 2, 21, 0)
	f.setNow(cutoff)
	mem := startMemSampler()
	start = time.Now()
	res, err := f.p.DropAt(f.ctx, cutoff)
	elapsed := time.Since(start)
	peakHeap, alloc, rss := mem.done()
	if err != nil {
		t.Fatal(err)
	}
	var sum FileSummary
	for _, s := range res.Files {
		if s.OrgID == f.org {
			sum = s
		}
	}
	t.Logf("drop of %d entries: %s, file %d bytes; peak heap in use %.1f MiB (%.0f B/entry), allocated %.1f MiB, peak RSS %.1f MiB",
		n, elapsed.Round(time.Millisecond), sum.SizeBytes, peakHeap, peakHeap*(1<<20)/float64(n), alloc, rss)
	if sum.Entries != n || sum.DebitTotalCents != total || sum.CreditTotalCents != total {
		t.Fatalf("file summary %+v, want %d entries totalling %d", sum, n, total)
	}
	if budget := 4 * 1024 * float64(n) / (1 << 20); peakHeap > budget+64 {
		t.Errorf("peak heap %.1f MiB exceeds the budget of %.1f MiB (+64 MiB baseline)", peakHeap, budget)
	}

	start = time.Now()
	f.setNow(ny(t, 2025, 12, 5, 9, 0))
	settled, err := f.p.Settle(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("settlement of %d entries: %s", settled.Entries, time.Since(start).Round(time.Millisecond))
	t.Logf("of which the store's ledger (attempts, transitions, outbox events) took: dropped %s, settled %s",
		timed.dropped.Round(time.Millisecond), timed.settled.Round(time.Millisecond))
	for _, line := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(line, "NACHA file") {
			t.Log(line)
		}
	}
	if settled.Entries < n {
		t.Errorf("settled %d of %d", settled.Entries, n)
	}

	content, err := os.ReadFile(sum.Path)
	if err != nil {
		t.Fatal(err)
	}
	file, err := ach.NewReader(bytes.NewReader(content)).Read()
	if err != nil {
		t.Fatal(err)
	}
	if err := file.Validate(); err != nil {
		t.Fatal(err)
	}
	var entries int
	for _, b := range file.Batches {
		entries += len(b.GetEntries())
	}
	if want := n + len(file.Batches)/2; entries != want { // one offset credit per debit batch, in its own batch
		t.Errorf("read back %d entries, want %d", entries, want)
	}
}

// BenchmarkBuildFile measures building and writing a file from entry
// rows already in memory (no database): moov-io/ach's share of a drop.
func BenchmarkBuildFile(b *testing.B) {
	const n = 10_000
	rec := fileRecord{FileID: "nf_bench", Destination: "231380104", DestinationName: "Dest", Origin: "091000019",
		OriginName: "Origin", CreationDate: civil(2025, 12, 2), CreationTime: "2100", Modifier: "A",
		CompanyName: "Payrail", CompanyID: "1234567890", EntryDescription: "LOAN PMT"}
	batches := []batchRecord{{Number: 1, SEC: "PPD", EffectiveDate: civil(2025, 12, 3), EntryCount: n}}
	for i := 0; i < n; i++ {
		batches[0].DebitTotal += int64(100 + i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := 0
		next := func() (entryRecord, bool, error) {
			if k == n {
				return entryRecord{}, false, nil
			}
			k++
			return entryRecord{LineItemID: "li", Batch: 1, Trace: fmt.Sprintf("09100001%07d", k), AmountCents: int64(99 + k),
				RDFI: "231380104", AccountType: "CHECKING", AccountNumber: "12345678901", Name: "Jane Doe"}, true, nil
		}
		if err := writeACH(rec, "", batches, next, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}

// BenchmarkDrop measures a whole drop of 10,000 entries against
// PostgreSQL: assignment, streaming build, fsync, ledger calls.
func BenchmarkDrop(b *testing.B) {
	const n = 10_000
	f := newFixture(b, ny(b, 2025, 12, 2, 10, 0), fixtureOpts{})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		staged := ny(b, 2025, 12, 2, 10, 0).Add(time.Duration(i) * time.Second)
		f.setNow(staged)
		seedEntries(b, f, n, staged)
		f.setNow(ny(b, 2025, 12, 2, 21, 0).Add(time.Duration(i) * time.Minute))
		b.StartTimer()
		if _, err := f.p.DropAt(f.ctx, ny(b, 2025, 12, 2, 21, 0)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}

// timedLedger measures how long the (test) ledger takes inside a drop and
// a settlement, to tell the processor's cost from the ledger's.
type timedLedger struct {
	Ledger
	dropped, settled time.Duration
}

func (l *timedLedger) EntriesDropped(ctx context.Context, tx pgx.Tx, e []DroppedEntry) error {
	defer func(t time.Time) { l.dropped += time.Since(t) }(time.Now())
	return l.Ledger.EntriesDropped(ctx, tx, e)
}

func (l *timedLedger) EntriesSettled(ctx context.Context, tx pgx.Tx, e []SettledEntry) error {
	defer func(t time.Time) { l.settled += time.Since(t) }(time.Now())
	return l.Ledger.EntriesSettled(ctx, tx, e)
}
