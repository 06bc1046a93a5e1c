package nacha

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	Returns   []ReturnOutcome `json:"returns"`
	NOCs      []NOCOutcome    `json:"nocs"`
	Unmatched []string        `json:"unmatched_traces,omitempty"`
	Problems  []string        `json:"problems,omitempty"`
	Applied   bool            `json:"applied"`
}

// ReturnOutcome is one returned entry.
type ReturnOutcome struct {
	TraceNumber        string `json:"trace_number"`
	AccountID          string `json:"account_id"`
	LineItemID         string `json:"line_item_id"`
	ReturnCode         string `json:"return_code"`
	ReturnReason       string `json:"return_reason"`
	Outcome            string `json:"outcome"` // declined, reversed or duplicate
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
	items, problems, err := nachafile.ParseReturns(data)
	if err != nil {
		return reject(err, problems...)
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
			e, found, err := matchEntry(ctx, tx, it)
			if err != nil {
				return err
			}
			if !found {
				rep.Unmatched = append(rep.Unmatched, it.Trace)
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
}

// matchEntry finds the most recent dropped entry with the trace number and
// locks it. A return must also carry the entry's amount: trace numbers
// restart after ten million entries, and an amount mismatch means the
// return is not for this entry.
func matchEntry(ctx context.Context, tx pgx.Tx, it nachafile.Item) (matchedEntry, bool, error) {
	var e matchedEntry
	err := tx.QueryRow(ctx, `
		SELECT entry_id, org_id, account_id, line_item_id, attempt_id, status, amount_cents, rdfi_routing,
		       account_number_enc
		  FROM nacha_entries
		 WHERE trace_number = $1 AND status IN ('dropped', 'settled', 'returned')
		 ORDER BY entry_id DESC LIMIT 1
		   FOR UPDATE`, it.Trace).Scan(&e.EntryID, &e.OrgID, &e.AccountID, &e.LineItemID, &e.AttemptID,
		&e.Status, &e.AmountCents, &e.RDFI, &e.AccountSealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("match trace %s: %w", it.Trace, err)
	}
	if it.ChangeCode == "" && it.Amount != e.AmountCents {
		return e, false, nil
	}
	return e, true, nil
}

func (p *Processor) applyReturn(ctx context.Context, tx pgx.Tx, inboundID int64, e matchedEntry, it nachafile.Item,
	now time.Time) (ReturnOutcome, error) {
	out := ReturnOutcome{TraceNumber: it.Trace, AccountID: e.AccountID, LineItemID: e.LineItemID,
		ReturnCode: it.ReturnCode, ReturnReason: it.Reason}
	log := p.log.With("org_id", e.OrgID, "account_id", e.AccountID, "line_item_id", e.LineItemID,
		"trace_number", it.Trace, "return_code", it.ReturnCode)
	switch e.Status {
	case entryReturned:
		out.Outcome = "duplicate"
	case entryDropped:
		out.Outcome = "declined"
		if _, err := tx.Exec(ctx, `
			UPDATE nacha_entries SET status = 'returned', returned_at = $2, return_code = $3, return_reason = $4
			 WHERE entry_id = $1`, e.EntryID, now, it.ReturnCode, it.Reason); err != nil {
			return out, fmt.Errorf("record return of line item %s: %w", e.LineItemID, err)
		}
		if err := p.ledger.EntryReturned(ctx, tx, ReturnedEntry{LineItemRef: e.LineItemRef, TraceNumber: it.Trace,
			ReturnCode: it.ReturnCode, ReturnReason: it.Reason, ReturnedAt: now}); err != nil {
			return out, fmt.Errorf("ledger: return line item %s: %w", e.LineItemID, err)
		}
		log.Info("ACH return before settlement: line item declined")
	case entrySettled:
		out.Outcome = "reversed"
		out.ReversalLineItemID = fmt.Sprintf("nacha-return-%d", e.EntryID)
		if _, err := tx.Exec(ctx, `
			UPDATE nacha_entries SET status = 'returned', returned_at = $2, return_code = $3, return_reason = $4,
			       reversal_line_item_id = $5
			 WHERE entry_id = $1`, e.EntryID, now, it.ReturnCode, it.Reason, out.ReversalLineItemID); err != nil {
			return out, fmt.Errorf("record return of line item %s: %w", e.LineItemID, err)
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
