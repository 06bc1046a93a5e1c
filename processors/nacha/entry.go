package nacha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moov-io/ach"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/nacha/nachafile"
)

// Entry statuses (nacha_entries.status). An entry in a file is batched
// until it settles or is returned; it is dropped — a state, not a stored
// status — while its file is written or uploaded (entryStatusSQL).
const (
	entryStaged   = "staged"
	entryBatched  = "batched"
	entryDropped  = "dropped"
	entrySettled  = "settled"
	entryReturned = "returned"
)

// entryStatusSQL is an entry's status with dropped derived from its file,
// for a query over nacha_entries e LEFT JOIN nacha_files nf.
const entryStatusSQL = `CASE WHEN e.status = 'batched' AND nf.status IN ('written', 'uploaded') THEN 'dropped'
	ELSE e.status END`

// Process stages the job's ACH debit for the next cutoff. Staging is keyed
// by the attempt id: a redelivered job finds its entry and answers the same
// result without staging a second one. The line item stays PENDING
// (PendingSettlement); the drop, settlement and returns move it later.
func (p *Processor) Process(ctx context.Context, job processors.Job) (processors.Result, error) {
	if job.Reversal != nil {
		return p.reverse(ctx, job)
	}
	log := p.log.With("org_id", job.OrgID, "account_id", job.AccountID, "line_item_id", job.LineItemID,
		"attempt_id", job.AttemptID)
	if job.ACH == nil || job.PaymentType != processors.PaymentTypeACH {
		return processors.Result{}, permanent("not_ach", "CANOPY_NACHA executes ACH payments only")
	}
	d := *job.ACH
	if d.AccountType == "" {
		d.AccountType = "CHECKING"
	}
	if err := validateDetails(job.AmountCents, d); err != nil {
		return processors.Result{}, err
	}
	instrument := processors.Instrument{Kind: "bank_account", LastFour: lastFour(d.AccountNumber)}

	// A redelivery is answered from the staged row before anything else
	// is looked at, so it succeeds even if the configuration changed.
	if res, found, err := p.stagedResult(ctx, job); err != nil || found {
		return res, err
	}

	var hasConfig bool
	var customerName string
	err := p.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM org_nacha_configs WHERE org_id = $1),
		       COALESCE((SELECT customer_name FROM accounts WHERE org_id = $1 AND account_id = $2), '')`,
		job.OrgID, job.AccountID).Scan(&hasConfig, &customerName)
	if err != nil {
		return processors.Result{}, fmt.Errorf("nacha: read org config for line item %s: %w", job.LineItemID, err)
	}
	if !hasConfig {
		return processors.Result{}, permanent("nacha_config_missing",
			"the organization has no NACHA configuration (PUT /organization/nacha_config)")
	}
	// The request's name when it has one: a name that cannot be written
	// (nothing left after transliteration, or letters of another script)
	// is refused, never silently replaced by the account's name.
	var name string
	if strings.TrimSpace(d.Name) != "" {
		var ok bool
		if name, ok = processors.ACHName(d.Name); !ok {
			return processors.Result{}, permanent("invalid_ach_details",
				"payment_details.name cannot be written as the account holder's name of a NACHA entry")
		}
	} else {
		name, _ = processors.ACHText(customerName, processors.MaxACHNameChars)
	}
	if name == "" {
		return processors.Result{}, permanent("invalid_ach_details",
			"the account holder's name is required (payment_details.name or the account's customer name)")
	}
	payType := ""
	if d.StandardEntryClass == ach.WEB || d.StandardEntryClass == ach.TEL {
		payType = "S" // a single entry: payrail executes one payment per request
	}
	if err := checkWithACH(d, job.AmountCents, name, payType); err != nil {
		return processors.Result{}, err
	}

	sealed, err := p.ring.Seal([]byte(d.AccountNumber), entryContext(job.OrgID, job.AttemptID))
	if err != nil {
		return processors.Result{}, fmt.Errorf("nacha: seal account number of line item %s: %w", job.LineItemID, err)
	}
	now := p.clock()
	effective := p.cal.PlannedEffectiveDate(now, job.EffectiveAt)
	tag, err := p.pool.Exec(ctx, `
		INSERT INTO nacha_entries (org_id, account_id, line_item_id, attempt_id, status, amount_cents,
		    standard_entry_class, rdfi_routing, account_type, account_number_enc, account_last_four,
		    individual_name, payment_type_code, effective_entry_date, staged_at)
		VALUES ($1, $2, $3, $4, 'staged', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (attempt_id) DO NOTHING`,
		job.OrgID, job.AccountID, job.LineItemID, job.AttemptID, job.AmountCents, d.StandardEntryClass,
		d.RoutingNumber, d.AccountType, sealed, instrument.LastFour, name, payType, effective, now)
	if err != nil {
		return processors.Result{}, fmt.Errorf("nacha: stage line item %s: %w", job.LineItemID, err)
	}
	if tag.RowsAffected() == 0 { // a concurrent delivery won the insert
		res, _, err := p.stagedResult(ctx, job)
		return res, err
	}
	p.metrics.staged.Inc()
	log.Info("ACH entry staged", "amount_cents", job.AmountCents, "sec", d.StandardEntryClass,
		"effective_entry_date", effective.Format(time.DateOnly), "account_last_four", instrument.LastFour)
	return processors.Result{Outcome: processors.PendingSettlement, Instrument: instrument}, nil
}

// stagedResult answers a redelivery from the entry already staged for the
// attempt. An attempt id staged for another line item is a permanent error.
func (p *Processor) stagedResult(ctx context.Context, job processors.Job) (processors.Result, bool, error) {
	var org, acct, li, last4, direction string
	var trace *string
	err := p.pool.QueryRow(ctx, `
		SELECT org_id, account_id, line_item_id, account_last_four, trace_number, direction
		  FROM nacha_entries WHERE attempt_id = $1`, job.AttemptID).Scan(&org, &acct, &li, &last4, &trace, &direction)
	if errors.Is(err, pgx.ErrNoRows) {
		return processors.Result{}, false, nil
	}
	if err != nil {
		return processors.Result{}, false, fmt.Errorf("nacha: read staged entry of line item %s: %w", job.LineItemID, err)
	}
	if org != job.OrgID || acct != job.AccountID || li != job.LineItemID {
		return processors.Result{}, true, permanent("attempt_conflict",
			"attempt "+job.AttemptID+" is already staged for another line item")
	}
	inst := processors.Instrument{Kind: "bank_account", LastFour: last4}
	res := processors.Result{Outcome: processors.PendingSettlement, Instrument: inst}
	if direction == directionCredit {
		res = refundStaged(inst)
	}
	if trace != nil {
		res.TransactionID = *trace
	}
	return res, true, nil
}

// validateDetails checks what staging needs before anything is written.
// Messages never repeat the account number.
func validateDetails(amount int64, d processors.ACHDetails) error {
	bad := func(msg string) error { return permanent("invalid_ach_details", msg) }
	switch {
	case amount <= 0 || amount > maxAmountCents:
		return bad("amount must be between 1 and 9,999,999,999 cents")
	case processors.RoutingNumberProblem(d.RoutingNumber) != "":
		return bad("bank_routing_number " + processors.RoutingNumberProblem(d.RoutingNumber))
	case len(d.AccountNumber) < 1 || len(d.AccountNumber) > 17:
		return bad("bank_account_number must be 1 to 17 characters")
	case d.AccountType != "CHECKING" && d.AccountType != "SAVINGS":
		return bad("bank_account_type must be CHECKING or SAVINGS")
	}
	for _, r := range d.AccountNumber {
		if r < '!' || r > '~' {
			return bad("bank_account_number must be printable ASCII without spaces")
		}
	}
	switch d.StandardEntryClass {
	case ach.WEB, ach.PPD, ach.CCD, ach.TEL:
	default:
		return bad("standard_entry_class must be WEB, PPD, CCD or TEL")
	}
	return nil
}

// checkWithACH runs moov-io/ach's own entry validation at staging, so an
// entry that would make the whole file fail strict validation at the
// cutoff is refused now, for this payment alone.
func checkWithACH(d processors.ACHDetails, amount int64, name, payType string) error {
	ed := ach.NewEntryDetail()
	ed.TransactionCode = debitCode(d.AccountType)
	ed.SetRDFI(d.RoutingNumber)
	ed.DFIAccountNumber = d.AccountNumber
	ed.Amount = int(amount)
	ed.IndividualName = name
	ed.DiscretionaryData = payType
	ed.SetTraceNumber(d.RoutingNumber[:8], 1)
	if err := ed.Validate(); err != nil {
		return permanent("invalid_ach_details", "entry fails NACHA validation: "+nachafile.RedactedText(err))
	}
	return nil
}

const maxAmountCents = 9_999_999_999

func debitCode(accountType string) int {
	if accountType == "SAVINGS" {
		return ach.SavingsDebit
	}
	return ach.CheckingDebit
}

func creditCode(accountType string) int {
	if accountType == "SAVINGS" {
		return ach.SavingsCredit
	}
	return ach.CheckingCredit
}

// validRouting checks a routing number (processors.RoutingNumberProblem:
// 9 digits, a Federal Reserve prefix, the ABA check digit).
func validRouting(s string) bool { return processors.RoutingNumberProblem(s) == "" }

// nachaText makes s fit a NACHA alphanumeric field of width n
// (processors.ACHText: Latin letters transliterated, anything else outside
// printable ASCII dropped), so a name with "é" cannot fail the whole file's
// validation or shift its fixed-width columns.
func nachaText(s string, n int) string {
	out, _ := processors.ACHText(s, n)
	return out
}

// lastFour is what payrail shows of an account number
// (processors.MaskedLastFour: a number of 4 characters or fewer shows
// nothing).
func lastFour(s string) string { return processors.MaskedLastFour(s) }

// entryContext binds a sealed account number to its entry row.
func entryContext(orgID, attemptID string) []byte {
	return []byte("nacha_entries/" + orgID + "/" + attemptID)
}

func permanent(code, msg string) error {
	return &processors.Error{Outcome: processors.Permanent, Code: code, Message: msg}
}
