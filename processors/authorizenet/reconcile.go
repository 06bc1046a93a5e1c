package authorizenet

import (
	"context"
	"fmt"
	"time"

	"github.com/payrail/payrail/processors"
)

// Lookup bounds. A page is the API's maximum; ten pages of unsettled
// transactions (10,000 since the last settlement) and 31 days of batches
// (the API allows 31 per request) cover any attempt the worker can still be
// retrying. Past that the lookup reports an error instead of "not found".
// Paging goes on until a short page (or the last one by
// totalNumInResultSet, when the answer has it), never stopping early
// because the total is missing; maxPages bounds it either way.
const (
	pageSize    = 1000
	maxPages    = 10
	maxLookback = 30 * 24 * time.Hour
	lookupSkew  = time.Hour // submit and settlement times vs. payrail's clock
)

// status classes of transactionStatus values.
type statusClass int

const (
	statusUnknown statusClass = iota
	statusCharged
	statusHeld
	statusDeclined
	statusFailed // an error: nothing was charged
)

var statusClasses = map[string]statusClass{
	"authorizedPendingCapture":   statusCharged,
	"capturedPendingSettlement":  statusCharged,
	"settledSuccessfully":        statusCharged,
	"pendingFinalSettlement":     statusCharged,
	"pendingSettlement":          statusCharged,
	"updatingSettlement":         statusCharged,
	"approvedReview":             statusCharged,
	"authorizedPendingRelease":   statusCharged,
	"couldNotVoid":               statusCharged,
	"refundSettledSuccessfully":  statusCharged,
	"refundPendingSettlement":    statusCharged,
	"returnedItem":               statusCharged,
	"chargeback":                 statusCharged,
	"chargebackReversal":         statusCharged,
	"FDSPendingReview":           statusHeld,
	"FDSAuthorizedPendingReview": statusHeld,
	"underReview":                statusHeld,
	"declined":                   statusDeclined,
	"failedReview":               statusDeclined,
	"voided":                     statusDeclined,
	"expired":                    statusDeclined,
	"generalError":               statusFailed,
	"communicationError":         statusFailed,
	"settlementError":            statusFailed,
}

// rank orders matches when an invoice number has several transactions
// (which a correct client never causes): the one that took money wins.
func rank(c statusClass) int {
	switch c {
	case statusCharged:
		return 4
	case statusHeld:
		return 3
	case statusDeclined:
		return 2
	case statusUnknown:
		return 1
	}
	return 0
}

func classifyStatus(status string, responseCode Code) statusClass {
	if c, ok := statusClasses[status]; ok {
		return c
	}
	switch responseCode {
	case "1":
		return statusCharged
	case "2":
		return statusDeclined
	case "4":
		return statusHeld
	case "3":
		return statusFailed
	}
	return statusUnknown
}

// lookup finds the transaction an earlier delivery of job made, by its
// invoice number: first among unsettled transactions (newest first),
// then in the batches settled since the payment was accepted. found is
// false when there is none, or only failed ones (nothing charged). An
// error means the search could not be completed; the caller must not
// take it for "not found".
func (p *Processor) lookup(ctx context.Context, job processors.Job, inv string, inst processors.Instrument) (processors.Result, bool, error) {
	now := p.now()
	since := time.Time{}
	if !job.CreatedAt.IsZero() {
		since = job.CreatedAt.Add(-lookupSkew)
	}
	if since.IsZero() || now.Sub(since) > maxLookback {
		// Batches are searched 30 days back at most; an older or undated
		// attempt cannot be searched completely.
		return processors.Result{}, false, fmt.Errorf("attempt is older than the %s the lookup can search", maxLookback)
	}

	var best *TransactionSummary
	consider := func(ts TransactionSummaries) {
		for i := range ts {
			if ts[i].InvoiceNumber != inv {
				continue
			}
			if best != nil {
				p.log.Error("authorizenet: several transactions share an invoice number; check for a second charge",
					"invoice", inv, "trans_id", string(ts[i].TransID), "other_trans_id", string(best.TransID))
			}
			if best == nil || rank(classifyStatus(ts[i].TransactionStatus, "")) > rank(classifyStatus(best.TransactionStatus, "")) {
				t := ts[i]
				best = &t
			}
		}
	}

	// Unsettled, newest first; stop at transactions older than the payment.
	for page := 1; ; page++ {
		if page > maxPages {
			return processors.Result{}, false, fmt.Errorf("more than %d unsettled transactions to search", maxPages*p.pageSize)
		}
		list, err := p.client.GetUnsettledTransactionList(ctx, ListOptions{
			Sorting: &Sorting{OrderBy: "submitTimeUTC", OrderDescending: true},
			Paging:  &Paging{Limit: p.pageSize, Offset: page},
		})
		if err != nil {
			return processors.Result{}, false, err
		}
		consider(list.Transactions)
		n := len(list.Transactions)
		if list.lastPage(page, p.pageSize) {
			break
		}
		if t, err := list.Transactions[n-1].SubmitTime(); err == nil && t.Before(since) {
			break
		}
	}

	if best == nil || rank(classifyStatus(best.TransactionStatus, "")) < rank(statusHeld) {
		// Settled batches since the payment was accepted, newest first.
		batches, err := p.client.GetSettledBatchList(ctx, since, now.Add(lookupSkew))
		if err != nil {
			return processors.Result{}, false, err
		}
		for i := len(batches) - 1; i >= 0; i-- {
			for page := 1; ; page++ {
				if page > maxPages {
					return processors.Result{}, false, fmt.Errorf("batch %s has more than %d transactions", string(batches[i].BatchID), maxPages*p.pageSize)
				}
				list, err := p.client.GetTransactionList(ctx, string(batches[i].BatchID), ListOptions{
					Paging: &Paging{Limit: p.pageSize, Offset: page},
				})
				if err != nil {
					return processors.Result{}, false, err
				}
				consider(list.Transactions)
				if list.lastPage(page, p.pageSize) {
					break
				}
			}
		}
	}
	if best == nil {
		return processors.Result{}, false, nil
	}

	// The summary says enough to decide, but the details carry the
	// response reason a declined line item shows.
	det, err := p.client.GetTransactionDetails(ctx, string(best.TransID))
	if err != nil {
		return processors.Result{}, false, err
	}
	res, ok := p.fromDetails(det, withAccount(inst, best.AccountNumber, best.AccountType))
	return res, ok, nil
}

// fromDetails turns a transaction's details into the attempt's result.
// ok is false for a transaction that failed without charging.
func (p *Processor) fromDetails(det *TransactionDetails, inst processors.Instrument) (processors.Result, bool) {
	if det.Payment != nil && det.Payment.CreditCard != nil {
		inst = withAccount(inst, det.Payment.CreditCard.CardNumber, det.Payment.CreditCard.CardType)
	}
	res := processors.Result{
		TransactionID: string(det.TransID),
		Code:          string(det.ResponseReasonCode),
		Message:       redact(det.ResponseReasonDescription),
		Instrument:    inst,
	}
	switch classifyStatus(det.TransactionStatus, det.ResponseCode) {
	case statusCharged:
		res.Outcome = processors.Succeeded
	case statusHeld:
		res.Outcome = processors.Held
	case statusDeclined:
		res.Outcome = processors.Declined
	default:
		return res, false
	}
	return res, true
}
