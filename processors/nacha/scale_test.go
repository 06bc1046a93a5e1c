package nacha

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/ach"

	"github.com/payrail/payrail/internal/canopy"
	"github.com/payrail/payrail/internal/store"
)

// BenchmarkScaleCompare is the scale comparison of processors/nacha/scale.sh:
// with PAYRAIL_NACHA_SCALE=N and PAYRAIL_NACHA_SCALE_MODE=bare it builds
// and writes N entries with bare moov-io/ach; with mode drop it seeds N
// staged entries (not measured) and runs payrail's drop through the
// store's real ledger (attempts stamped, one outbox event per line item,
// built in PostgreSQL), then prints the drop's own timing log lines.
// Each mode runs in its own process so peak RSS (VmHWM, reset before the
// measured step) is its own. It prints one line per measurement: mode,
// entries, seconds, peak RSS MiB (the drop two: drop_written when its file
// is durable and recorded, drop at the end of the run).
// It is a benchmark so that only -bench runs it; the one measured run is
// the whole of b.N = 1 (scale.sh passes -test.benchtime 1x).
func BenchmarkScaleCompare(b *testing.B) {
	t := b
	n, _ := strconv.Atoi(os.Getenv("PAYRAIL_NACHA_SCALE"))
	if n <= 0 {
		b.Fatal("set PAYRAIL_NACHA_SCALE=N and PAYRAIL_NACHA_SCALE_MODE (processors/nacha/scale.sh does)")
	}
	switch mode := os.Getenv("PAYRAIL_NACHA_SCALE_MODE"); mode {
	case "bare", "bare_distinct":
		ms := startMemSampler()
		start := time.Now()
		path := filepath.Join(t.TempDir(), "bare.ach")
		if err := bareMoov(n, path, mode == "bare_distinct"); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		_, _, rss := ms.done()
		fmt.Printf("SCALE %s entries=%d seconds=%.2f peak_rss_mib=%.1f\n", mode, n, took.Seconds(), rss)
	case "drop":
		f := newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{balanced: true,
			mutate: func(c *Config) { c.Ledger = StoreLedger{Store: store.New(env.Pool, env.Ring, canopy.Events{})} }})
		seedEntries(t, f, n, ny(t, 2025, 12, 2, 10, 0))
		cutoff := ny(t, 2025, 12, 2, 21, 0)
		f.setNow(cutoff)
		ms := startMemSampler()
		start := time.Now()
		// The file is durable and recorded at StepWritten: the critical
		// path of a cutoff. Its entries' announcement (attempts stamped,
		// one event per line item) follows, and is timed apart.
		var written time.Duration
		var writtenRSS float64
		f.p.hook = func(s DropStep, _ string) error {
			if s == StepWritten {
				written = time.Since(start)
				writtenRSS = vmHWM()
			}
			return nil
		}
		res := f.mustDrop(cutoff)
		took := time.Since(start)
		_, _, rss := ms.done()
		if len(res.Files) != 1 || res.Files[0].Entries != n {
			t.Fatalf("files %+v", res.Files)
		}
		fmt.Printf("SCALE drop_written entries=%d seconds=%.2f peak_rss_mib=%.1f\n", n, written.Seconds(), writtenRSS)
		fmt.Printf("SCALE drop entries=%d seconds=%.2f peak_rss_mib=%.1f (written and announced)\n", n, took.Seconds(), rss)
		for _, l := range strings.Split(f.logs.String(), "\n") {
			if strings.Contains(l, "msg=\"NACHA file") {
				fmt.Println("SCALE log", l)
			}
		}
	default:
		t.Fatalf("PAYRAIL_NACHA_SCALE_MODE=%q: want bare or drop", mode)
	}
}

// bareMoov builds the same shape of file (balanced WEB debits, an offset
// per batch, batches of at most 999,998 entries) with moov-io/ach alone and
// writes it: the floor payrail's drop is compared with. With distinct, every
// entry carries its own account number, name and identification like the
// seeded entries the drop writes (with one shared name and account number
// moov-io/ach's entries share those strings, which real files never do).
func bareMoov(n int, path string, distinct bool) error {
	fh := ach.NewFileHeader()
	fh.ImmediateDestination, fh.ImmediateOrigin = "231380104", "121042882"
	fh.ImmediateDestinationName, fh.ImmediateOriginName = "Federal Reserve Bank", "Payrail Test Bank"
	fh.FileCreationDate, fh.FileCreationTime, fh.FileIDModifier = "251202", "2100", "A"
	file := ach.NewFile()
	file.SetHeader(fh)
	seq := 0
	for b := 1; seq < n; b++ {
		bh := ach.NewBatchHeader()
		bh.ServiceClassCode = ach.MixedDebitsAndCredits
		bh.CompanyName, bh.CompanyIdentification, bh.CompanyEntryDescription = "Payrail Lending", "1234567890", "LOAN PMT"
		bh.StandardEntryClassCode, bh.EffectiveEntryDate, bh.ODFIIdentification = ach.WEB, "251203", "12104288"
		bh.BatchNumber = b
		batch, err := ach.NewBatch(bh)
		if err != nil {
			return err
		}
		var total int
		for i := 0; i < 999_998 && seq < n; i++ {
			seq++
			ed := ach.NewEntryDetail()
			ed.TransactionCode = ach.CheckingDebit
			ed.SetRDFI("231380104")
			ed.DFIAccountNumber = "12345678901"
			ed.Amount = 1000 + seq%9000
			total += ed.Amount
			ed.IdentificationNumber = fmt.Sprintf("li-%d", seq)
			ed.IndividualName = "Jane Doe"
			if distinct {
				ed.DFIAccountNumber = fmt.Sprintf("%011d", 10_000_000_000+int64(seq))
				ed.IdentificationNumber = fmt.Sprintf("big-%06d", seq)
				ed.IndividualName = "Borrower " + strconv.Itoa(seq%1000)
			}
			ed.DiscretionaryData = "S"
			ed.SetTraceNumber("12104288", seq)
			ed.Category = ach.CategoryForward
			batch.AddEntry(ed)
		}
		off := ach.NewEntryDetail()
		off.TransactionCode = ach.CheckingCredit
		off.SetRDFI("121042882")
		off.DFIAccountNumber, off.Amount, off.IdentificationNumber, off.IndividualName = "9988776655", total, "OFFSET", "Payrail Lending"
		off.DiscretionaryData = "S"
		off.SetTraceNumber("12104288", n+b)
		off.Category = ach.CategoryForward
		batch.AddEntry(off)
		if err := batch.Create(); err != nil {
			return err
		}
		file.AddBatch(batch)
	}
	if err := file.Create(); err != nil {
		return err
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 256<<10)
	if err := ach.NewWriter(w).Write(file); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return out.Sync()
}
