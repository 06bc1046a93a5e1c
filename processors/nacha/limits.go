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
	// Batch and Seq are assigned by planFile.
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

// planFile packs entries (ordered by direction — debits first —, SEC code,
// effective date, entry id) into the batches of one file, in order, and
// returns the batches and how many entries (a prefix) the file takes; the
// rest wait for the next file of the same cutoff. A new batch starts at
// every change of direction, SEC code or date and whenever the next entry
// would overflow the batch: its entry count, its total (12 digits), or in
// a balanced file its offset (one entry: 10 digits). The file ends before
// its debit or credit total (12 digits) or its block count would
// overflow; the sum of all its entries bounds both totals (in a balanced
// file each total is exactly that sum). Balanced files get one offset per
// batch — a credit for a debit batch, a debit for a credit batch — in the
// batch (SAME_BATCH, not TEL) or in a CCD batch of its own right after
// it. planFile numbers entry.Batch and entry.Seq (the trace sequence
// offset, 1-based, ascending in file order); offsets are numbered after
// all entries.
func planFile(entries []dueEntry, balanced bool, placement string, lim limits) ([]batchRecord, int, error) {
	var batches []batchRecord
	records := 2 // file header and control
	var fileAmount int64
	cur := -1
	taken := 0
	for i := range entries {
		e := &entries[i]
		sameBatchOffset := balanced && placement == OffsetSameBatch && e.SEC != ach.TEL
		batchCap := lim.ControlTotal
		if balanced {
			batchCap = lim.EntryAmount
		}
		perBatch := lim.BatchEntries
		if sameBatchOffset {
			perBatch-- // room for the offset
		}
		newBatch := cur < 0 || batches[cur].Credits != e.Credit || batches[cur].SEC != e.SEC ||
			!batches[cur].EffectiveDate.Equal(e.Effective) ||
			batches[cur].EntryCount+1 > perBatch || batches[cur].entryTotal()+e.Amount > batchCap
		add := 1
		if newBatch {
			add += 2 // batch header and control
			if balanced {
				add++ // the offset entry
				if !sameBatchOffset {
					add += 2 // its own batch
				}
			}
		}
		if fileAmount+e.Amount > lim.ControlTotal || records+add > lim.FileRecords {
			break
		}
		if newBatch {
			b := batchRecord{Number: len(batches) + 1, SEC: e.SEC, EffectiveDate: e.Effective, Credits: e.Credit}
			batches = append(batches, b)
			cur = len(batches) - 1
			if balanced && !sameBatchOffset {
				batches = append(batches, batchRecord{Number: len(batches) + 1, SEC: ach.CCD, EffectiveDate: e.Effective,
					Credits: e.Credit, OffsetOnly: true})
			} else if balanced {
				batches[cur].sameBatchOffset = true
			}
		}
		records += add
		fileAmount += e.Amount
		batches[cur].EntryCount++
		if e.Credit {
			batches[cur].CreditTotal += e.Amount
		} else {
			batches[cur].DebitTotal += e.Amount
		}
		taken++
		e.Batch, e.Seq = int32(batches[cur].Number), int64(taken)
	}
	if taken == 0 && len(entries) > 0 {
		return nil, 0, fmt.Errorf("the first due entry does not fit an empty file (limits %+v)", lim)
	}
	for i := range batches {
		switch {
		case batches[i].OffsetOnly:
			batches[i].setOffset(batches[i-1].entryTotal())
		case batches[i].sameBatchOffset:
			batches[i].setOffset(batches[i].entryTotal())
		}
	}
	return batches, taken, nil
}
