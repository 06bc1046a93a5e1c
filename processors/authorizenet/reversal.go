package authorizenet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/payrail/payrail/processors"
)

// Transaction types of a reversal.
const (
	VoidTransaction   = "voidTransaction"
	RefundTransaction = "refundTransaction"
)

// Response reasons a reversal branches on (responseCodes.json): 16 "The
// transaction cannot be found." answers a void of a transaction that is
// no longer voidable (it settled between the look-up and the void); 54
// answers a refund of a transaction that has not settled; 310 is a void
// of a voided transaction, which is done.
const (
	reasonTransactionNotFound = "16"
	reasonNotRefundable       = "54"
	reasonAlreadyVoided       = "310"
)

// Where a transaction stands for a reversal, by its transactionStatus.
type reversalState int

const (
	stateVoidable reversalState = iota // unsettled: void it
	stateSettled                       // settled: refund it
	stateVoided                        // voided: the money never moved, nothing left to do
	stateSettling                      // in the middle of settlement: neither works yet, ask again later
	stateNoMoney                       // declined, expired, failed: nothing was taken to give back
)

func reversalStateOf(status string) reversalState {
	switch status {
	case "capturedPendingSettlement", "authorizedPendingCapture", "FDSPendingReview", "FDSAuthorizedPendingReview",
		"underReview", "approvedReview", "authorizedPendingRelease":
		return stateVoidable
	case "settledSuccessfully":
		return stateSettled
	case "voided":
		return stateVoided
	case "pendingFinalSettlement", "pendingSettlement", "updatingSettlement", "couldNotVoid":
		return stateSettling
	}
	return stateNoMoney
}

// maxReversalRounds bounds the look-up/act rounds of one delivery: a void
// that finds the transaction settled since the look-up (reason 16) looks
// again and refunds, a refund that finds it unsettled (54) looks again
// and voids; a third disagreement is left to the next delivery.
const maxReversalRounds = 2

// reverse gives back the job's original payment: it reads the original
// transaction at the gateway, voids it while it is unsettled and refunds
// it (masked card, original transId, the reversal attempt's invoice
// number) once settled. See the package documentation, "Reversals".
func (p *Processor) reverse(ctx context.Context, job processors.Job) (processors.Result, error) {
	rv := job.Reversal
	inst := processors.Instrument{Kind: "card"}
	if rv.OriginalTransactionID == "" || job.AttemptID == "" || job.AmountCents <= 0 {
		err := errors.New("reversal job lacks the original transaction, its attempt or an amount")
		return fail(processors.Permanent, "invalid_job", err.Error(), inst, 0, err)
	}
	inv := InvoiceNumber(job.AttemptID)
	log := p.log.With("attempt_id", job.AttemptID, "line_item_id", job.LineItemID, "invoice", inv,
		"original_trans_id", rv.OriginalTransactionID, "delivery", job.Delivery)

	for round := 1; ; round++ {
		det, res, err := p.original(ctx, job)
		if det == nil {
			return res, err
		}
		if det.Payment != nil && det.Payment.CreditCard != nil {
			inst = withAccount(inst, det.Payment.CreditCard.CardNumber, det.Payment.CreditCard.CardType)
		}
		switch st := reversalStateOf(det.TransactionStatus); st {
		case stateVoided:
			log.Info("authorizenet: the original is voided; the reversal is done")
			return processors.Result{Outcome: processors.Succeeded, TransactionID: rv.OriginalTransactionID,
				Code: reasonAlreadyVoided, Message: "the original transaction is voided", Instrument: inst}, nil
		case stateSettling:
			err := fmt.Errorf("the original transaction is %s", det.TransactionStatus)
			return fail(processors.Retryable, "settling", err.Error(), inst, lookupRetryAfter, err)
		case stateNoMoney:
			err := fmt.Errorf("the original transaction is %s: it took no money to give back", det.TransactionStatus)
			return fail(processors.Permanent, "not_reversible", err.Error(), inst, 0, err)
		case stateVoidable:
			res, again, err := p.void(ctx, job, inst, log)
			if !again || round == maxReversalRounds {
				return res, err
			}
		case stateSettled:
			res, again, err := p.refund(ctx, job, det, inv, inst, log)
			if !again || round == maxReversalRounds {
				return res, err
			}
		}
	}
}

// original reads the reversal's original transaction. A nil det comes
// with the result to return: the gateway does not know the transaction,
// or it cannot be read now.
func (p *Processor) original(ctx context.Context, job processors.Job) (*TransactionDetails, processors.Result, error) {
	inst := processors.Instrument{Kind: "card"}
	id := job.Reversal.OriginalTransactionID
	det, err := p.client.GetTransactionDetails(ctx, id)
	switch {
	case IsNotFound(err):
		res, err := fail(processors.Permanent, "original_not_found", "the gateway does not know the original transaction", inst, 0, err)
		return nil, res, err
	case IsReportingDisabled(err):
		// Without the Transaction Details API payrail cannot tell a void
		// from a refund, nor see what an earlier delivery did: it gives
		// nothing back rather than risk a second refund.
		res, err := fail(processors.Permanent, CodeReportingDisabled,
			"reversing a card payment needs the merchant's Transaction Details API ("+ReportingSetting+")", inst, 0, err)
		return nil, res, err
	case err != nil:
		res, err := fail(processors.Retryable, "lookup_failed", "cannot read the original transaction", inst, lookupRetryAfter, err)
		return nil, res, err
	case string(det.TransID) != id:
		err := fmt.Errorf("the gateway answered transaction %s for %s", det.TransID, id)
		res, err := fail(processors.Retryable, "lookup_failed", err.Error(), inst, lookupRetryAfter, err)
		return nil, res, err
	}
	return det, processors.Result{}, nil
}

// void voids the original. A void changes the original instead of making
// a transaction, so sending it again is harmless: the gateway answers a
// void of a voided transaction with 310. again says the original settled
// since it was read (reason 16): look again and refund.
func (p *Processor) void(ctx context.Context, job processors.Job, inst processors.Instrument, log *slog.Logger) (processors.Result, bool, error) {
	tr := TransactionRequest{TransactionType: VoidTransaction, RefTransID: job.Reversal.OriginalTransactionID}
	resp, err := p.client.CreateTransaction(ctx, RefID(job.AttemptID), tr)
	if err != nil {
		res, err := p.callFailed(err, inst, log, "void")
		return res, false, err
	}
	d := resp.TransactionResponse.Decide()
	switch {
	case d.Class == ClassApproved:
		log.Info("authorizenet: voided the original", "reason", d.ReasonCode)
		return processors.Result{Outcome: processors.Succeeded, TransactionID: job.Reversal.OriginalTransactionID,
			Code: d.ReasonCode, Message: d.ReasonText, Instrument: inst}, false, nil
	case d.ReasonCode == reasonTransactionNotFound:
		log.Info("authorizenet: the original cannot be voided any more (settled since the look-up?); looking again")
		res, err := lookAgain(d, inst, "voided")
		return res, true, err
	}
	res, err := refused(d, inst, log, "void")
	return res, false, err
}

// lookAgain is a void or refund the original's state refused (it settled,
// or turned out unsettled, since it was read): the reversal is retried
// and reads the original again.
func lookAgain(d Decision, inst processors.Instrument, verb string) (processors.Result, error) {
	err := errors.New("the original could not be " + verb + ": " + d.ReasonText)
	return fail(processors.Retryable, d.ReasonCode, d.ReasonText, inst, lookupRetryAfter, err)
}

// refused is any other answer to a void or refund that moved no money.
func refused(d Decision, inst processors.Instrument, log *slog.Logger, what string) (processors.Result, error) {
	log.Info("authorizenet: "+what+" failed", "class", d.Class, "reason", d.ReasonCode)
	err := &Error{Op: "createTransactionRequest", Class: d.Class, Code: d.ReasonCode, Text: d.ReasonText}
	return fail(reversalOutcome(d.Class), d.ReasonCode, d.ReasonText, inst, d.RetryAfter, err)
}

// refund refunds the settled original with the card's masked number and
// the original's transId. A refund is a transaction of its own, so it
// gets the charge path's care: a later delivery first looks for the
// refund an earlier one may have made (by the reversal attempt's invoice
// number), and the request is a pure function of the job, sent with the
// duplicate window, so a resend the look-up missed is answered with
// reason 11 and resolved to the first refund. again says the original
// turned out unsettled (reason 54): look again and void.
func (p *Processor) refund(ctx context.Context, job processors.Job, det *TransactionDetails, inv string,
	inst processors.Instrument, log *slog.Logger) (processors.Result, bool, error) {
	if res, done, err := p.earlierDelivery(ctx, job, inv, inst, log, "refund"); done {
		return res, false, err
	}
	card := ""
	if det.Payment != nil && det.Payment.CreditCard != nil {
		card = det.Payment.CreditCard.CardNumber
	}
	if l := lastFour(card); len(l) != 4 || !isDigits(l) {
		err := errors.New("the original transaction shows no card number to refund to")
		res, err := fail(processors.Permanent, "not_reversible", err.Error(), inst, 0, err)
		return res, false, err
	}
	tr := TransactionRequest{
		TransactionType: RefundTransaction,
		Amount:          Amount(job.AmountCents),
		Payment:         &Payment{CreditCard: &CreditCard{CardNumber: "XXXX" + lastFour(card), ExpirationDate: "XXXX"}},
		RefTransID:      job.Reversal.OriginalTransactionID,
		Order:           &Order{InvoiceNumber: inv, Description: truncate("payrail reversal "+job.LineItemID, 255)},
		TransactionSettings: &Settings{Setting: []Setting{{SettingName: "duplicateWindow",
			SettingValue: strconv.Itoa(int(p.window / time.Second))}}},
	}
	resp, err := p.client.CreateTransaction(ctx, RefID(job.AttemptID), tr)
	if err != nil {
		res, err := p.callFailed(err, inst, log, "refund")
		return res, false, err
	}
	d := resp.TransactionResponse.Decide()
	switch {
	case d.Class == ClassApproved:
		log.Info("authorizenet: refunded the original", "trans_id", d.TransID)
		return processors.Result{Outcome: processors.Succeeded, TransactionID: d.TransID, Code: d.ReasonCode,
			Message: d.ReasonText, Instrument: inst}, false, nil
	case d.Class == ClassDuplicate:
		log.Info("authorizenet: refund is a duplicate of an earlier delivery's; resolving to it")
		res, err := p.resolveDuplicate(ctx, job, inv, d, inst, log)
		return res, false, err
	case d.ReasonCode == reasonNotRefundable:
		log.Info("authorizenet: the original is not refundable (not settled?); looking again")
		res, err := lookAgain(d, inst, "refunded")
		return res, true, err
	}
	res, err := refused(d, inst, log, "refund")
	return res, false, err
}

// callFailed maps a void or refund call that got no transaction answer.
// An unknown outcome is retried: the next delivery reads the original
// (voided?) and looks the refund up before sending anything.
func (p *Processor) callFailed(err error, inst processors.Instrument, log *slog.Logger, what string) (processors.Result, error) {
	var e *Error
	if !errors.As(err, &e) {
		return fail(processors.Retryable, "", "", inst, 0, err)
	}
	if e.OutcomeUnknown {
		log.Warn("authorizenet: "+what+" outcome unknown", "code", e.Code, "err", err)
	} else {
		log.Info("authorizenet: "+what+" failed", "class", e.Class, "code", e.Code)
	}
	return fail(reversalOutcome(e.Class), e.Code, e.Text, inst, e.RetryAfter, err)
}

// reversalOutcome is outcomeOf for a reversal: the gateway holds no
// reversal for review, so a held answer is retried rather than polled.
func reversalOutcome(c Class) processors.Outcome {
	if o := outcomeOf(c); o != processors.Held {
		return o
	}
	return processors.Retryable
}

// resolveReversal answers what became of a reversal whose outcome is
// unknown (the worker's last chance, a delivery lost with its worker):
// the original voided, or a refund under the reversal's invoice number,
// is the answer; otherwise nothing was given back (Retryable, not_found).
func (p *Processor) resolveReversal(ctx context.Context, job processors.Job) (processors.Result, error) {
	inst := processors.Instrument{Kind: "card"}
	det, res, err := p.original(ctx, job)
	if det == nil {
		return res, err
	}
	if reversalStateOf(det.TransactionStatus) == stateVoided {
		return processors.Result{Outcome: processors.Succeeded, TransactionID: job.Reversal.OriginalTransactionID,
			Code: reasonAlreadyVoided, Message: "the original transaction is voided", Instrument: inst}, nil
	}
	inv := InvoiceNumber(job.AttemptID)
	res, found, err := p.lookup(ctx, job, inv, inst)
	if err != nil {
		return fail(processors.Retryable, "lookup_failed", "cannot look up the reversal's refund", inst, lookupRetryAfter, err)
	}
	if !found {
		return processors.Result{Outcome: processors.Retryable, Code: "not_found",
			Message: "the original is not voided and has no refund for this reversal; nothing was given back", Instrument: inst}, nil
	}
	return res, nil
}
