package nacha

import (
	"fmt"
	"time"

	"github.com/moov-io/ach"

	"github.com/payrail/payrail/processors"
)

// limits are the widths of the NACHA fields a file's content must fit.
// The builder splits batches and files so that no control record field
// can overflow, whatever amounts the entries carry (README "Limits").
type limits struct {
	// EntryAmount: an entry's 10-digit amount field ($99,999,999.99). A
	// balanced batch's offset is one entry, so a balanced batch's debit
	// total is held to this as well.
	EntryAmount int64
	// ControlTotal: the 12-digit debit and credit totals of batch and
	// file control records.
	ControlTotal int64
	// BatchEntries: the 6-digit entry/addenda count of a batch control.
	BatchEntries int
	// FileRecords: the 6-digit block count of the file control, in
	// records (10 per block). It also keeps a file's trace sequence (7
	// digits) from wrapping inside the file.
	FileRecords int
}

var nachaLimits = limits{
	EntryAmount:  9_999_999_999,
	ControlTotal: 999_999_999_999,
	BatchEntries: 999_999,
	FileRecords:  9_999_990,
}

// Where a balanced file's offsetting credit goes (org_nacha_configs.offset_placement).
const (
	// OffsetOwnBatch: a CCD credits-only batch (service class 220) right
	// after each debit batch. The default: every ODFI accepts it.
	OffsetOwnBatch = "OWN_BATCH"
	// OffsetSameBatch: inside the debit batch (service class 200). Some
	// ODFIs reject credits in WEB batches. TEL batches may hold debits
	// only, so their offset always goes into its own batch.
	OffsetSameBatch = "SAME_BATCH"
)

// dueEntry is a staged entry the cutoff takes, with what the planner and
// the up-front checks need (no account number).
type dueEntry struct {
	ID          int64
	SEC         string
	Effective   time.Time
	Amount      int64
	RDFI        string
	Name        string
	AccountType string
	Purged      bool
	// Credit: a refund credit (reversal.go); credits go into batches of
	// their own, after the debits.
	Credit bool
	// Batch and Seq are assigned by the planner.
	Batch int32
	Seq   int64
}

// unwritable says why an entry cannot be written into any NACHA file, or
// "" when it can. These are the checks that need no account number; the
// builder finds the rest (an account number that will not open, or an
// entry moov-io/ach refuses) and sets those entries aside too.
func (e dueEntry) unwritable(lim limits) string {
	switch {
	case e.Amount <= 0 || e.Amount > lim.EntryAmount:
		return fmt.Sprintf("amount %d cents does not fit the entry's 10-digit amount field", e.Amount)
	case processors.RoutingNumberProblem(e.RDFI) != "":
		return "routing number " + processors.RoutingNumberProblem(e.RDFI)
	case e.Purged:
		return "the account number was purged"
	case e.AccountType != "CHECKING" && e.AccountType != "SAVINGS":
		return "unknown account type " + e.AccountType
	}
	switch e.SEC {
	case ach.WEB, ach.PPD, ach.CCD, ach.TEL:
	default:
		return "unknown SEC code " + e.SEC
	}
	if e.Name == "" || len(e.Name) > processors.MaxACHNameChars {
		return "the individual name is empty or longer than 22 characters"
	}
	for i := 0; i < len(e.Name); i++ {
		if e.Name[i] < ' ' || e.Name[i] > '~' {
			return "the individual name is not printable ASCII"
		}
	}
	return ""
}

// planner packs due entries, in the order they come (direction — debits
// first —, SEC code, effective date, entry id), into the batches of one
// file, as they come: the file is planned while it is written (cut.go).
// A new batch starts at every change of direction, SEC code or date and
// whenever the next entry would overflow the batch: its entry count, its
// total (12 digits), or in a balanced file its offset (one entry: 10
// digits). The file ends before its debit or credit total (12 digits) or
// its block count would overflow; the sum of all its entries bounds both
// totals (in a balanced file each total is exactly that sum). Balanced
// files get one offset per batch — a credit for a debit batch, a debit for
// a credit batch — in the batch (SAME_BATCH, not TEL) or in a CCD batch of
// its own right after it.
//
// Trace sequences (1-based, after the file's trace base) follow file
// order: each entry takes the next, and a batch's offset the next after
// the batch's last entry, so traces ascend within every batch as
// moov-io/ach's strict validation requires. (Files planned before this
// numbered offsets after all entries; their traces are stored, so they
// rebuild as they were.)
type planner struct {
	balanced  bool
	placement string
	lim       limits
	odfi      string
	base      int64

	batches []batchRecord
	cur     int   // the batch taking entries; -1 before the first
	records int   // the file's records so far, with its header and control
	amount  int64 // the sum of the file's entries
	seq     int64 // the last trace sequence used
}

func newPlanner(balanced bool, placement string, lim limits, odfi string, base int64) *planner {
	return &planner{balanced: balanced, placement: placement, lim: lim, odfi: odfi, base: base, cur: -1, records: 2}
}

// trace is the trace number of sequence seq: the ODFI's 8 digits and the
// 7-digit sequence (a million of them per file, so without fmt).
func (pl *planner) trace(seq int64) string {
	var b [15]byte
	copy(b[:8], pl.odfi)
	n := pl.base + seq
	for i := 14; i >= 8; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[:])
}

// add places e in the file and numbers e.Batch and e.Seq. It returns false,
// placing nothing, when e does not fit the file: the file ends before it.
// Otherwise closed holds the batches e's arrival closed (the batch before
// e's, and the offset batch after that one), final, in file order, and
// opened says e starts a new batch (pl.current).
func (pl *planner) add(e *dueEntry) (fits bool, closed []batchRecord, opened bool) {
	sameBatchOffset := pl.balanced && pl.placement == OffsetSameBatch && e.SEC != ach.TEL
	batchCap := pl.lim.ControlTotal
	if pl.balanced {
		batchCap = pl.lim.EntryAmount
	}
	perBatch := pl.lim.BatchEntries
	if sameBatchOffset {
		perBatch-- // room for the offset
	}
	cur := pl.current()
	newBatch := cur == nil || cur.Credits != e.Credit || cur.SEC != e.SEC || !cur.EffectiveDate.Equal(e.Effective) ||
		cur.EntryCount+1 > perBatch || cur.entryTotal()+e.Amount > batchCap
	add := 1
	if newBatch {
		add += 2 // batch header and control
		if pl.balanced {
			add++ // the offset entry
			if !sameBatchOffset {
				add += 2 // its own batch
			}
		}
	}
	if pl.amount+e.Amount > pl.lim.ControlTotal || pl.records+add > pl.lim.FileRecords {
		return false, nil, false
	}
	if newBatch {
		closed = pl.closeCurrent()
		pl.batches = append(pl.batches, batchRecord{Number: len(pl.batches) + 1, SEC: e.SEC,
			EffectiveDate: e.Effective, Credits: e.Credit, sameBatchOffset: pl.balanced && sameBatchOffset})
		pl.cur = len(pl.batches) - 1
		if pl.balanced && !sameBatchOffset {
			pl.batches = append(pl.batches, batchRecord{Number: len(pl.batches) + 1, SEC: ach.CCD,
				EffectiveDate: e.Effective, Credits: e.Credit, OffsetOnly: true})
		}
	}
	pl.records += add
	pl.amount += e.Amount
	b := &pl.batches[pl.cur]
	b.EntryCount++
	if e.Credit {
		b.CreditTotal += e.Amount
	} else {
		b.DebitTotal += e.Amount
	}
	pl.seq++
	e.Batch, e.Seq = int32(b.Number), pl.seq
	return true, closed, newBatch
}

// current is the batch taking entries, nil before the first entry.
func (pl *planner) current() *batchRecord {
	if pl.cur < 0 {
		return nil
	}
	return &pl.batches[pl.cur]
}

// finish closes the last batch and returns what it closed (as add does).
func (pl *planner) finish() []batchRecord {
	return pl.closeCurrent()
}

// closeCurrent completes the current batch — its offset, in it or in the
// offset batch after it, takes the next trace sequence — and returns it
// with its offset batch.
func (pl *planner) closeCurrent() []batchRecord {
	if pl.cur < 0 {
		return nil
	}
	i := pl.cur
	pl.cur = -1
	if !pl.balanced {
		return pl.batches[i : i+1]
	}
	total := pl.batches[i].entryTotal()
	pl.seq++
	if pl.batches[i].sameBatchOffset {
		pl.batches[i].setOffset(total)
		pl.batches[i].OffsetTrace = pl.trace(pl.seq)
		return pl.batches[i : i+1]
	}
	pl.batches[i+1].setOffset(total)
	pl.batches[i+1].OffsetTrace = pl.trace(pl.seq)
	return pl.batches[i : i+2]
}
