package nacha

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/payrail/payrail/processors/nacha/nachafile"
)

// maxInboundBytes bounds a return/NOC file read into memory (about 700,000
// records, far beyond any return file).
const maxInboundBytes = 64 << 20

// InboundReport is what ingesting one return/NOC file did, or why it did
// nothing. It never holds account numbers.
type InboundReport struct {
	FileName string `json:"file_name"`
	SHA256   string `json:"sha256"`
	// Duplicate: this exact file was ingested before; nothing was applied.
	Duplicate bool            `json:"duplicate"`
	Returns   []ReturnOutcome `json:"returns"` // never null in JSON: [] when none
	NOCs      []NOCOutcome    `json:"nocs"`    // never null in JSON: [] when none
	Unmatched []string        `json:"unmatched_traces,omitempty"`
	Problems  []string        `json:"problems,omitempty"`
	Applied   bool            `json:"applied"`
}

// ReturnOutcome is one returned entry.
type ReturnOutcome struct {
	TraceNumber  string `json:"trace_number"`
	AccountID    string `json:"account_id"`
	LineItemID   string `json:"line_item_id"`
	ReturnCode   string `json:"return_code"`
	ReturnReason string `json:"return_reason"`
	// declined, reversed, duplicate; refund_returned (a refund credit
	// returned after it settled), reversed_after_refund (a debit returned
	// after its refund went into a file). README.md, "Reversals".
	Outcome            string `json:"outcome"`
	ReversalLineItemID string `json:"reversal_line_item_id,omitempty"`
}

// NOCOutcome is one notification of change.
type NOCOutcome struct {
	TraceNumber string `json:"trace_number"`
	AccountID   string `json:"account_id"`
	LineItemID  string `json:"line_item_id"`
	ChangeCode  string `json:"change_code"`
	Reason      string `json:"reason"`
	Applied     bool   `json:"applied"`
}

// IngestReturnPath ingests the return/NOC file at path.
func (p *Processor) IngestReturnPath(ctx context.Context, path string) (InboundReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return InboundReport{FileName: filepath.Base(path)}, fmt.Errorf("nacha: open %s: %w", path, err)
	}
	defer f.Close()
	return p.IngestReturnFile(ctx, filepath.Base(path), f)
}

// IngestReturnFile parses a NACHA return/NOC file with moov-io/ach, matches
// every entry to a dropped entry by its original trace number, and applies
// them all in one transaction: a return before settlement declines the
// line item, a return after it creates a PAYMENT_REVERSAL, a NOC is
// recorded and C01–C03 correct the account's stored bank details. A
// malformed file, an entry payrail cannot apply or an unmatched trace
// number applies nothing (ErrMalformedFile, ErrUnsupportedEntry,
// ErrUnmatched, with the report saying why). The same file ingested again
// is reported as a duplicate and applies nothing.
func (p *Processor) IngestReturnFile(ctx context.Context, name string, r io.Reader) (InboundReport, error) {
	rep := InboundReport{FileName: name}
	data, err := io.ReadAll(io.LimitReader(r, maxInboundBytes+1))
	if err != nil {
		return rep, fmt.Errorf("nacha: read %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	rep.SHA256 = hex.EncodeToString(sum[:])
	reject := func(kind error, problems ...string) (InboundReport, error) {
		rep.Problems = append(rep.Problems, problems...)
		p.metrics.inboundReject.Inc()
		p.log.Error("return file rejected; nothing applied", "file_name", name, "sha256", rep.SHA256,
			"reason", kind.Error(), "problems", rep.Problems, "unmatched_traces", rep.Unmatched)
		return rep, fmt.Errorf("%w: %s", kind, name)
	}
	if len(data) > maxInboundBytes {
		return reject(ErrMalformedFile, "file is larger than 64 MiB")
	}
	items, problems, err := nachafile.ParseReturnsWith(data, nachafile.Options{PadShortRecords: p.padShortRecords})
	if err != nil {
		return reject(err, problems...)
	}

	// A line item's "dropped" event comes before its return's: entries of
	// files not yet announced are announced first, or nothing is applied.
	if err := p.announcePending(ctx); err != nil {
		return rep, fmt.Errorf("nacha: %s not applied: %w", name, err)
	}
	var outcomeCounts []func()
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		now := p.clock()
		var inboundID int64
		err := tx.QueryRow(ctx, `
			INSERT INTO nacha_inbound_files (file_name, sha256, returns, nocs, received_at)
			VALUES ($1, $2, 0, 0, $3) ON CONFLICT (sha256) DO NOTHING RETURNING inbound_id`,
			name, sum[:], now).Scan(&inboundID)
		if errors.Is(err, pgx.ErrNoRows) {
			rep.Duplicate = true
			return nil
		}
		if err != nil {
			return err
		}
		rep.Returns, rep.NOCs, rep.Unmatched = nil, nil, nil
		var nReturns, nNOCs int
		for _, it := range items {
			e, found, ambiguous, err := p.matchEntry(ctx, tx, it)
			if err != nil {
				return err
			}
			if !found {
				rep.Unmatched = append(rep.Unmatched, it.Trace)
				if ambiguous {
					rep.Problems = append(rep.Problems, "trace "+it.Trace+" matches more than one dropped entry")
				}
				continue
			}
			if it.ChangeCode != "" {
				nNOCs++
				out, err := p.applyNOC(ctx, tx, inboundID, e, it, now)
				if err != nil {
					return err
				}
				rep.NOCs = append(rep.NOCs, out)
				code, applied := out.ChangeCode, strconv.FormatBool(out.Applied)
				outcomeCounts = append(outcomeCounts, func() { p.metrics.nocs.WithLabelValues(code, applied).Inc() })
				continue
			}
			nReturns++
			out, err := p.applyReturn(ctx, tx, inboundID, e, it, now)
			if err != nil {
				return err
			}
			rep.Returns = append(rep.Returns, out)
			code, outcome := out.ReturnCode, out.Outcome
			outcomeCounts = append(outcomeCounts, func() { p.metrics.returned.WithLabelValues(code, outcome).Inc() })
		}
		if len(rep.Unmatched) > 0 {
			return ErrUnmatched
		}
		_, err = tx.Exec(ctx, `UPDATE nacha_inbound_files SET returns = $2, nocs = $3 WHERE inbound_id = $1`,
			inboundID, nReturns, nNOCs)
		return err
	})
	if errors.Is(err, ErrUnmatched) {
		rep.Returns, rep.NOCs = nil, nil
		return reject(ErrUnmatched, fmt.Sprintf("%d entries match no dropped entry", len(rep.Unmatched)))
	}
	if err != nil {
		return InboundReport{FileName: name, SHA256: rep.SHA256},
			fmt.Errorf("nacha: ingest %s (nothing applied): %w", name, err)
	}
	if rep.Duplicate {
		p.log.Info("return file already ingested; nothing applied", "file_name", name, "sha256", rep.SHA256)
		return rep, nil
	}
	rep.Applied = true
	for _, f := range outcomeCounts {
		f()
	}
	p.log.Info("return file applied", "file_name", name, "sha256", rep.SHA256, "returns", len(rep.Returns),
		"nocs", len(rep.NOCs))
	return rep, nil
}

// matchedEntry is the dropped entry a return or NOC refers to.
type matchedEntry struct {
	LineItemRef
	EntryID       int64
	Status        string
	AmountCents   int64
	RDFI          string
	AccountSealed []byte
	Effective     time.Time
	// Credit: a refund credit (reversal.go), not a payment's debit.
	Credit bool
}

// matchEntry finds the dropped entry a return or NOC is for, and locks
// it. Trace numbers are unique per ODFI only within one cycle of the
// 7-digit sequence (9,999,999 entries; README "Trace numbers"), so a trace
// number alone may name several entries: every candidate must also match
// what the return carries of the original entry — the amount (returns;
// a NOC carries 0), the identification number (line item id), the DFI
// account number, the original RDFI (addenda OriginalDFI) and, where the
// return carries it, the original effective entry date. A return is never
// applied to an entry that differs in any of them; an entry whose account
// number was purged cannot be confirmed and does not match. ambiguous is
// set when more than one entry matches everything (nothing is applied).
func (p *Processor) matchEntry(ctx context.Context, tx pgx.Tx, it nachafile.Item) (e matchedEntry, found, ambiguous bool, err error) {
	rows, err := tx.Query(ctx, `
		SELECT e.entry_id, e.org_id, e.account_id, e.line_item_id, e.attempt_id,
		       `+entryStatusSQL+`, e.amount_cents, e.rdfi_routing,
		       e.account_number_enc, e.effective_entry_date, e.direction = 'credit'
		  FROM nacha_entries e JOIN nacha_files nf ON nf.file_id = e.file_id
		 WHERE e.trace_number = $1 AND e.status IN ('batched', 'settled', 'returned')
		   AND nf.status IN ('written', 'uploaded')
		 ORDER BY e.entry_id
		   FOR UPDATE OF e`, it.Trace)
	if err != nil {
		return e, false, false, fmt.Errorf("match trace %s: %w", it.Trace, err)
	}
	cands, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (matchedEntry, error) {
		var c matchedEntry
		return c, r.Scan(&c.EntryID, &c.OrgID, &c.AccountID, &c.LineItemID, &c.AttemptID, &c.Status, &c.AmountCents,
			&c.RDFI, &c.AccountSealed, &c.Effective, &c.Credit)
	})
	if err != nil {
		return e, false, false, fmt.Errorf("match trace %s: %w", it.Trace, err)
	}
	n := 0
	for _, c := range cands {
		ok, err := p.sameEntry(c, it)
		if err != nil {
			return e, false, false, err
		}
		if ok {
			e, n = c, n+1
		}
	}
	return e, n == 1, n > 1, nil
}

// sameEntry reports whether the return or NOC it carries c's fields.
func (p *Processor) sameEntry(c matchedEntry, it nachafile.Item) (bool, error) {
	switch {
	case it.ChangeCode == "" && it.Amount != c.AmountCents:
		return false, nil
	case it.IndividualID != identification(c.LineItemID):
		return false, nil
	case it.OriginalDFI != "" && (len(c.RDFI) < 8 || it.OriginalDFI != c.RDFI[:8]):
		return false, nil
	case !it.OriginalEntryDate.IsZero() && !sameDate(it.OriginalEntryDate, c.Effective):
		return false, nil
	case c.AccountSealed == nil:
		return false, nil
	}
	plain, err := p.ring.Open(c.AccountSealed, entryContext(c.OrgID, c.AttemptID))
	if err != nil {
		return false, fmt.Errorf("open account number of line item %s: %w", c.LineItemID, err)
	}
	return string(plain) == it.Account, nil
}

func sameDate(a, b time.Time) bool {
	return a.Year() == b.Year() && a.Month() == b.Month() && a.Day() == b.Day()
}

func (p *Processor) applyReturn(ctx context.Context, tx pgx.Tx, inboundID int64, e matchedEntry, it nachafile.Item,
	now time.Time) (ReturnOutcome, error) {
	out := ReturnOutcome{TraceNumber: it.Trace, AccountID: e.AccountID, LineItemID: e.LineItemID,
		ReturnCode: it.ReturnCode, ReturnReason: it.Reason}
	log := p.log.With("org_id", e.OrgID, "account_id", e.AccountID, "line_item_id", e.LineItemID,
		"trace_number", it.Trace, "return_code", it.ReturnCode)
	var refund refundOfDebit
	if !e.Credit && e.Status != entryReturned {
		var err error
		if refund, err = p.resolveRefundOnReturn(ctx, tx, e, it, now); err != nil {
			return out, err
		}
	}
	switch {
	case e.Status == entryReturned:
		out.Outcome = "duplicate"
	case e.Status == entrySettled && e.Credit:
		// The refund reached the RDFI and came back after it settled:
		// the reversal is VALID in the append-only ledger, but the
		// customer does not have the money.
		out.Outcome = "refund_returned"
		if err := recordReturn(ctx, tx, e, it, now, ""); err != nil {
			return out, err
		}
		log.Error("ACH refund credit returned after it settled: the customer did not get the money back; refund it outside payrail")
	case e.Status == entryDropped:
		out.Outcome = "declined"
		if err := recordReturn(ctx, tx, e, it, now, ""); err != nil {
			return out, err
		}
		if err := p.ledger.EntryReturned(ctx, tx, ReturnedEntry{LineItemRef: e.LineItemRef, TraceNumber: it.Trace,
			ReturnCode: it.ReturnCode, ReturnReason: it.Reason, ReturnedAt: now}); err != nil {
			return out, fmt.Errorf("ledger: return line item %s: %w", e.LineItemID, err)
		}
		log.Info("ACH return before settlement: line item declined")
	case e.Status == entrySettled:
		out.Outcome = "reversed"
		out.ReversalLineItemID = fmt.Sprintf("nacha-return-%d", e.EntryID)
		if refund.ReversalLineItemID != "" {
			// The payment was reversed already: that reversal records the
			// money coming back, and no second one is made.
			out.ReversalLineItemID = refund.ReversalLineItemID
			if refund.Sent {
				out.Outcome = "reversed_after_refund"
			}
		}
		if err := recordReturn(ctx, tx, e, it, now, out.ReversalLineItemID); err != nil {
			return out, err
		}
		if err := p.ledger.PaymentReversed(ctx, tx, Reversal{LineItemRef: e.LineItemRef,
			ReversalLineItemID: out.ReversalLineItemID, AmountCents: e.AmountCents, TraceNumber: it.Trace,
			ReturnCode: it.ReturnCode, ReturnReason: it.Reason, ReturnedAt: now}); err != nil {
			return out, fmt.Errorf("ledger: reverse line item %s: %w", e.LineItemID, err)
		}
		log.Info("ACH return after settlement: reversal line item created", "reversal_line_item_id", out.ReversalLineItemID)
	default:
		return out, fmt.Errorf("entry of line item %s is %s", e.LineItemID, e.Status)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO nacha_returns (inbound_id, entry_id, return_code, return_reason, addenda_information, outcome, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		inboundID, e.EntryID, it.ReturnCode, it.Reason, it.Addenda, out.Outcome, now); err != nil {
		return out, fmt.Errorf("record return of line item %s: %w", e.LineItemID, err)
	}
	return out, nil
}

// recordReturn marks entry e returned with the return's code and reason,
// and the line item that records the money coming back when reversal is
// set.
func recordReturn(ctx context.Context, tx pgx.Tx, e matchedEntry, it nachafile.Item, now time.Time, reversal string) error {
	if _, err := tx.Exec(ctx, `
		UPDATE nacha_entries SET status = 'returned', returned_at = $2, return_code = $3, return_reason = $4,
		       reversal_line_item_id = COALESCE(NULLIF($5, ''), reversal_line_item_id)
		 WHERE entry_id = $1`, e.EntryID, now, it.ReturnCode, it.Reason, reversal); err != nil {
		return fmt.Errorf("record return of line item %s: %w", e.LineItemID, err)
	}
	return nil
}

// refundOfDebit is what resolveRefundOnReturn found of a returned debit's
// refund credit.
type refundOfDebit struct {
	ReversalLineItemID string // "" when the debit has no refund
	Sent               bool   // the refund is in a file: it cannot be held back
}

// resolveRefundOnReturn settles the fate of the refund credit of a debit
// being returned, in the return's transaction (README.md, "Reversals"):
//   - returned before it settled (the payment becomes DECLINED): no money
//     moved, so the refund, still held, is withdrawn and its reversal
//     becomes INVALID;
//   - returned after it settled with the refund not yet in a file: the
//     return brought the money back, so the refund is withdrawn and its
//     reversal becomes VALID (RefundUnneeded);
//   - the refund is already in a file: the customer gets the money back
//     twice. Nothing can stop it here; it is logged at ERROR and reported
//     (reversed_after_refund).
//
// The refund's row is locked: a drop planning a file locks a refund before
// it claims it, so the two never both act on it.
func (p *Processor) resolveRefundOnReturn(ctx context.Context, tx pgx.Tx, e matchedEntry, it nachafile.Item,
	now time.Time) (refundOfDebit, error) {
	var out refundOfDebit
	var id int64
	var status string
	var claimed bool
	var ref LineItemRef
	err := tx.QueryRow(ctx, `
		SELECT r.entry_id, r.status, r.org_id, r.account_id, r.line_item_id, r.attempt_id,
		       EXISTS (SELECT 1 FROM nacha_file_claims c WHERE NOT c.applied AND r.entry_id = ANY (c.entry_ids))
		  FROM nacha_entries r WHERE r.reverses_entry_id = $1 FOR UPDATE`, e.EntryID).Scan(
		&id, &status, &ref.OrgID, &ref.AccountID, &ref.LineItemID, &ref.AttemptID, &claimed)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("look up the refund of line item %s: %w", e.LineItemID, err)
	}
	out.ReversalLineItemID = ref.LineItemID
	log := p.log.With("org_id", ref.OrgID, "account_id", ref.AccountID, "line_item_id", e.LineItemID,
		"reversal_line_item_id", ref.LineItemID, "trace_number", it.Trace, "return_code", it.ReturnCode)
	if status != entryStaged || claimed {
		out.Sent = status == entryBatched || status == entrySettled || claimed
		if out.Sent {
			log.Error("ACH debit returned after its refund credit went into a file: the customer gets the money back twice; recover it outside payrail")
		}
		return out, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE nacha_entries SET status = 'withdrawn', withdrawn_at = $2,
		account_number_enc = NULL, purged_at = $2 WHERE entry_id = $1`, id, now); err != nil {
		return out, fmt.Errorf("withdraw the refund of line item %s: %w", e.LineItemID, err)
	}
	if e.Status == entryDropped {
		reason := "the original debit was returned (" + it.ReturnCode + ") before it settled: there is no money to give back"
		if err := p.ledger.EntriesSetAside(ctx, tx, []SetAsideEntry{{LineItemRef: ref, Reason: reason, At: now}}); err != nil {
			return out, fmt.Errorf("ledger: cancel reversal %s: %w", ref.LineItemID, err)
		}
		log.Info("ACH debit returned before it settled: its refund is withdrawn, the reversal INVALID")
		return out, nil
	}
	if err := p.ledger.RefundUnneeded(ctx, tx, UnneededRefund{LineItemRef: ref, At: now,
		Reason: "the original debit was returned (" + it.ReturnCode + ") after it settled: the money is back, and the refund credit is not sent"}); err != nil {
		return out, fmt.Errorf("ledger: complete reversal %s: %w", ref.LineItemID, err)
	}
	log.Info("ACH debit returned after it settled: its refund is withdrawn, the reversal VALID")
	return out, nil
}

// accountBearing reports whether a change code's corrected data holds an
// account number, which is never stored outside the sealed config.
func accountBearing(code string) bool {
	switch code {
	case "C01", "C03", "C06", "C07":
		return true
	}
	return false
}

func (p *Processor) applyNOC(ctx context.Context, tx pgx.Tx, inboundID int64, e matchedEntry, it nachafile.Item,
	now time.Time) (NOCOutcome, error) {
	out := NOCOutcome{TraceNumber: it.Trace, AccountID: e.AccountID, LineItemID: e.LineItemID,
		ChangeCode: it.ChangeCode, Reason: it.Reason}
	var routing, account string
	if it.Correction != nil {
		routing, account = strings.TrimSpace(it.Correction.RoutingNumber), strings.TrimSpace(it.Correction.AccountNumber)
	}
	usable := false
	switch it.ChangeCode {
	case "C01":
		usable = account != ""
	case "C02":
		usable = validRouting(routing)
	case "C03":
		usable = account != "" && validRouting(routing)
	}
	if usable && e.AccountSealed != nil {
		plain, err := p.ring.Open(e.AccountSealed, entryContext(e.OrgID, e.AttemptID))
		if err != nil {
			return out, fmt.Errorf("open account number of line item %s: %w", e.LineItemID, err)
		}
		c := Correction{LineItemRef: e.LineItemRef, TraceNumber: it.Trace, ChangeCode: it.ChangeCode,
			OriginalRoutingNumber: e.RDFI, OriginalAccountNumber: string(plain), ReceivedAt: now}
		if it.ChangeCode != "C01" {
			c.CorrectedRoutingNumber = routing
		}
		if it.ChangeCode != "C02" {
			c.CorrectedAccountNumber = account
		}
		if out.Applied, err = p.ledger.BankDetailsCorrected(ctx, tx, c); err != nil {
			return out, fmt.Errorf("ledger: correct bank details of account %s: %w", e.AccountID, err)
		}
	}
	var corrRouting, corrLast4 *string
	if routing != "" && it.ChangeCode != "C01" {
		corrRouting = &routing
	}
	if account != "" && accountBearing(it.ChangeCode) {
		l4 := lastFour(account)
		corrLast4 = &l4
	}
	raw := it.CorrectedData
	if accountBearing(it.ChangeCode) {
		raw = ""
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO nacha_notifications_of_change (inbound_id, entry_id, change_code, change_reason, corrected_routing,
		    corrected_account_last_four, corrected_data, applied, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		inboundID, e.EntryID, it.ChangeCode, it.Reason, corrRouting, corrLast4, raw, out.Applied, now); err != nil {
		return out, fmt.Errorf("record NOC of line item %s: %w", e.LineItemID, err)
	}
	p.log.Info("NOC recorded", "org_id", e.OrgID, "account_id", e.AccountID, "line_item_id", e.LineItemID,
		"trace_number", it.Trace, "change_code", it.ChangeCode, "applied", out.Applied)
	return out, nil
}

// PollInbound ingests every file in dir (oldest name first) and moves it
// aside: applied or duplicate files to dir/processed, rejected ones
// (malformed, unsupported, unmatched) to dir/rejected with a .error.txt
// beside them for an operator. A file that failed for another reason (the
// database was unreachable) stays for the next poll. Names starting with
// "." or ending in .tmp or .part are skipped: whoever fills the directory
// writes under such a name and renames when complete.
func (p *Processor) PollInbound(ctx context.Context, dir string) ([]InboundReport, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("nacha: read inbound directory: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var reports []InboundReport
	var errs []error
	for _, de := range ents {
		name := de.Name()
		if !de.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") ||
			strings.HasSuffix(name, ".part") {
			continue
		}
		if ctx.Err() != nil {
			return reports, errors.Join(append(errs, ctx.Err())...)
		}
		path := filepath.Join(dir, name)
		rep, err := p.IngestReturnPath(ctx, path)
		reports = append(reports, rep)
		switch {
		case err == nil:
			if merr := moveAside(path, filepath.Join(dir, "processed"), nil); merr != nil {
				errs = append(errs, merr)
			}
		case errors.Is(err, ErrMalformedFile), errors.Is(err, ErrUnmatched), errors.Is(err, ErrUnsupportedEntry):
			note := []byte(err.Error() + "\n" + strings.Join(rep.Problems, "\n") + "\n")
			if len(rep.Unmatched) > 0 {
				note = append(note, []byte("unmatched trace numbers: "+strings.Join(rep.Unmatched, ", ")+"\n")...)
			}
			if merr := moveAside(path, filepath.Join(dir, "rejected"), note); merr != nil {
				errs = append(errs, merr)
			}
			errs = append(errs, err)
		default:
			errs = append(errs, err)
		}
	}
	return reports, errors.Join(errs...)
}

// moveAside renames path into dir (created if needed), never overwriting:
// a second file of the same name gets a numeric suffix.
func moveAside(path, dir string, note []byte) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("nacha: create %s: %w", dir, err)
	}
	base := filepath.Base(path)
	target := filepath.Join(dir, base)
	for i := 1; ; i++ {
		if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
			break
		}
		target = filepath.Join(dir, fmt.Sprintf("%s.%d", base, i))
	}
	if note != nil {
		if err := os.WriteFile(target+".error.txt", note, 0o640); err != nil {
			return fmt.Errorf("nacha: write rejection note: %w", err)
		}
	}
	if err := os.Rename(path, target); err != nil {
		return fmt.Errorf("nacha: move %s aside: %w", path, err)
	}
	return syncDir(dir)
}

// MarshalJSON writes returns and nocs as [] rather than null when there
// are none, so consumers can iterate without a null check.
func (r InboundReport) MarshalJSON() ([]byte, error) {
	type plain InboundReport
	if r.Returns == nil {
		r.Returns = []ReturnOutcome{}
	}
	if r.NOCs == nil {
		r.NOCs = []NOCOutcome{}
	}
	return json.Marshal(plain(r))
}
