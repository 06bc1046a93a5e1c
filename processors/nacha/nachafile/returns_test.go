package nachafile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moov-io/ach"
)

// returnFile builds a return/NOC file like an RDFI sends, with moov-io/ach.
func returnFile(t testing.TB, withNOC bool) []byte {
	t.Helper()
	fh := ach.NewFileHeader()
	fh.ImmediateDestination, fh.ImmediateOrigin = "091000019", "231380104"
	fh.FileCreationDate, fh.FileCreationTime, fh.FileIDModifier = "251210", "0600", "A"
	fh.ImmediateDestinationName, fh.ImmediateOriginName = "Payrail Bank", "Receiving Bank"
	file := ach.NewFile()
	file.SetHeader(fh)
	add := func(sec string, e *ach.EntryDetail) {
		bh := ach.NewBatchHeader()
		bh.ServiceClassCode = ach.MixedDebitsAndCredits
		bh.StandardEntryClassCode = sec
		bh.CompanyName, bh.CompanyIdentification, bh.CompanyEntryDescription = "Payrail", "1234567890", "LOAN PMT"
		bh.EffectiveEntryDate, bh.ODFIIdentification = "251210", "23138010"
		b, err := ach.NewBatch(bh)
		if err != nil {
			t.Fatal(err)
		}
		b.AddEntry(e)
		if err := b.Create(); err != nil {
			t.Fatal(err)
		}
		file.AddBatch(b)
	}
	e := ach.NewEntryDetail()
	e.TransactionCode = ach.CheckingReturnNOCDebit
	e.SetRDFI("091000019")
	e.DFIAccountNumber, e.Amount, e.IndividualName, e.DiscretionaryData = "12345678901", 1500, "Jane Doe", "S"
	e.SetTraceNumber("23138010", 1)
	e.AddendaRecordIndicator, e.Category = 1, ach.CategoryReturn
	e.Addenda99 = ach.NewAddenda99()
	e.Addenda99.ReturnCode, e.Addenda99.OriginalTrace, e.Addenda99.OriginalDFI = "R01", "091000010000001", "23138010"
	e.Addenda99.TraceNumber = e.TraceNumber
	add(ach.WEB, e)
	if withNOC {
		n := ach.NewEntryDetail()
		n.TransactionCode = ach.CheckingReturnNOCDebit
		n.SetRDFI("091000019")
		n.DFIAccountNumber, n.IndividualName = "12345678901", "Jane Doe"
		n.SetTraceNumber("23138010", 2)
		n.AddendaRecordIndicator, n.Category = 1, ach.CategoryNOC
		n.Addenda98 = ach.NewAddenda98()
		n.Addenda98.ChangeCode, n.Addenda98.OriginalTrace, n.Addenda98.OriginalDFI = "C03", "091000010000002", "23138010"
		n.Addenda98.CorrectedData, n.Addenda98.TraceNumber = "011000015   55500011122", n.TraceNumber
		add(ach.COR, n)
	}
	if err := file.Create(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ach.NewWriter(&buf).Write(file); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseReturns(t *testing.T) {
	items, problems, err := ParseReturns(returnFile(t, true))
	if err != nil {
		t.Fatalf("%v %v", err, problems)
	}
	if len(items) != 2 {
		t.Fatalf("items = %+v", items)
	}
	r, n := items[0], items[1]
	if r.Trace != "091000010000001" || r.ReturnCode != "R01" || r.Reason != "Insufficient Funds" || r.Amount != 1500 {
		t.Errorf("return = %+v", r)
	}
	if n.Trace != "091000010000002" || n.ChangeCode != "C03" || n.Correction == nil ||
		n.Correction.RoutingNumber != "011000015" || n.Correction.AccountNumber != "55500011122" {
		t.Errorf("NOC = %+v", n)
	}
}

func TestRedactNeverPrintsFieldValues(t *testing.T) {
	e := ach.NewEntryDetail()
	e.TransactionCode = ach.CheckingDebit
	e.SetRDFI("231380104")
	e.DFIAccountNumber = "98765432\x01"
	e.Amount, e.IndividualName = 100, "Jane"
	e.SetTraceNumber("23138010", 1)
	err := e.Validate()
	if err == nil {
		t.Fatal("an account number with a control character validated")
	}
	if !strings.Contains(err.Error(), "98765432") {
		t.Fatalf("moov-io/ach no longer prints field values (%v): check what RedactedText must still do", err)
	}
	if got := RedactedText(err); strings.Contains(got, "98765432") || !strings.Contains(got, "DFIAccountNumber") {
		t.Errorf("RedactedText = %q; want the field named and its value left out", got)
	}
}

// FuzzParseReturns feeds arbitrary bytes to the return/NOC parser: it must
// never panic, must classify every failure as one of the two documented
// rejections (with a reason), and must only yield items that name a trace
// number and either a return code or a change code.
func FuzzParseReturns(f *testing.F) {
	f.Add(returnFile(f, false))
	f.Add(returnFile(f, true))
	golden, _ := filepath.Glob(filepath.Join("..", "testdata", "*.ach"))
	for _, g := range golden {
		if b, err := os.ReadFile(g); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(""))
	f.Add([]byte("101 bad header\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, problems, err := ParseReturns(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("unclassified error %v", err)
			}
			if len(problems) == 0 || items != nil {
				t.Fatalf("rejection without problems or with items: %v %v", problems, items)
			}
			return
		}
		if len(items) == 0 {
			t.Fatal("accepted a file with nothing to apply")
		}
		for _, it := range items {
			if it.Trace == "" || (it.ReturnCode == "") == (it.ChangeCode == "") {
				t.Fatalf("item %+v is neither a return nor a NOC", it)
			}
		}
	})
}

// A record shorter than 94 bytes (a digit lost) makes the whole file
// malformed, naming the line; CRLF line ends are fine; padding stripped
// trailing blanks is an explicit option.
func TestParseReturnsStrictRecordLength(t *testing.T) {
	good := returnFile(t, false)
	if _, problems, err := ParseReturns(good); err != nil {
		t.Fatalf("good file: %v %v", err, problems)
	}
	crlf := bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n"))
	if _, problems, err := ParseReturns(crlf); err != nil {
		t.Fatalf("CRLF file: %v %v", err, problems)
	}
	lines := strings.Split(string(good), "\n")
	// Line 3 is the return entry: drop one digit of its amount field.
	entry := lines[2]
	lines[2] = entry[:30] + entry[31:]
	short := []byte(strings.Join(lines, "\n"))
	items, problems, err := ParseReturns(short)
	if !errors.Is(err, ErrMalformed) || items != nil {
		t.Fatalf("short record: items %v err %v, want ErrMalformed", items, err)
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "line 3") || !strings.Contains(problems[0], "93 bytes") {
		t.Fatalf("problems %q, want line 3 named", problems)
	}
	// Stripped trailing blanks are read only when asked for.
	lines = strings.Split(string(good), "\n")
	lines[0] = strings.TrimRight(lines[0], " ")
	stripped := []byte(strings.Join(lines, "\n"))
	if _, _, err := ParseReturns(stripped); !errors.Is(err, ErrMalformed) {
		t.Fatalf("stripped blanks, strict: %v", err)
	}
	if _, problems, err := ParseReturnsWith(stripped, Options{PadShortRecords: true}); err != nil {
		t.Fatalf("stripped blanks, padded: %v %v", err, problems)
	}
}
