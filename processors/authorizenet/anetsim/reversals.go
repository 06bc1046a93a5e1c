package anetsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Transaction types of the money-back requests.
const (
	typeVoid   = "voidTransaction"
	typeRefund = "refundTransaction"
)

// Reasons the money-back requests answer with (responseCodes.json): 16
// "The transaction cannot be found." is what voiding a settled (or a
// declined, or another merchant's) transaction answers; 54 is a refund of
// a transaction that has not settled (or is not a settled charge); 55 a
// refund above what is left of the original; 310 a void of a void.
const (
	reasonNotFound      = 16
	reasonNotRefundable = 54
	reasonCreditsExceed = 55
	reasonAlreadyVoided = 310
)

// voidable reports whether a transaction can still be voided: it has not
// settled and it took (or holds) money.
func voidable(t *Transaction) bool {
	switch t.Status {
	case StatusCapturedPendingSettlement, StatusAuthorizedPendingCapture, StatusFDSPendingReview,
		StatusFDSAuthorizedPendingReview, StatusRefundPendingSettlement:
		return t.BatchID == ""
	}
	return false
}

// void answers voidTransaction: an unsettled transaction becomes voided
// (its money is never taken) and the answer carries its own transId; a
// voided one answers 310 as approved; anything else (settled, declined,
// unknown, another merchant's) answers reason 16.
func (s *Server) void(login, refID string, tr transactionRequest) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.byID[string(tr.RefTransID)]
	if t == nil || t.LoginID != login {
		return failed(refID, reasonNotFound)
	}
	if t.Status == StatusVoided {
		return s.voidReply(refID, t, reasonAlreadyVoided)
	}
	if !voidable(t) {
		return failed(refID, reasonNotFound)
	}
	t.Status = StatusVoided
	s.log.Debug("anetsim: void", "trans_id", t.TransID)
	return s.voidReply(refID, t, 1)
}

func (s *Server) voidReply(refID string, t *Transaction, code int) any {
	text := reasons[code].text
	if code == reasonAlreadyVoided {
		// A repeated void is reported done, not as an error. It is not in
		// reasons: the error card must not answer it to a charge.
		text = "This transaction has already been voided."
	}
	return createTransactionResponse{
		TransactionResponse: &transactionResponse{
			ResponseCode: "1", AuthCode: t.AuthCode, AvsResultCode: "P", TransID: t.TransID, RefTransID: t.TransID,
			TestRequest: "0", AccountNumber: t.AccountNumber, AccountType: t.AccountType,
			Messages: []trMessage{{Code: strconv.Itoa(code), Description: text}},
		},
		RefID: refID, Messages: okMessages(),
	}
}

// refund answers refundTransaction. The original (refTransId) must be a
// settled charge of the same merchant, the card the request names must be
// the original's (its last four digits, "XXXX1111" or the full number;
// any expiry, "XXXX" included), and the refunds of the original may not
// exceed its amount. A refund is a transaction of its own
// (refundPendingSettlement, settled by the next batch) and takes part in
// the duplicate check like a charge.
func (s *Server) refund(login, refID string, tr transactionRequest) any {
	cents, ok := parseCents(string(tr.Amount))
	if !ok || cents <= 0 {
		return failed(refID, 5)
	}
	if tr.Payment == nil || tr.Payment.CreditCard == nil || tr.RefTransID == "" {
		return failed(refID, 33)
	}
	card := strings.TrimLeft(string(tr.Payment.CreditCard.CardNumber), "X")
	window, windowValue, err := duplicateWindow(tr.TransactionSettings)
	if err != nil {
		return failed(refID, 33)
	}
	invoice, description := "", ""
	if tr.Order != nil {
		invoice, description = string(tr.Order.InvoiceNumber), string(tr.Order.Description)
	}
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	orig := s.byID[string(tr.RefTransID)]
	if orig == nil || orig.LoginID != login || orig.Type == typeRefund || orig.Type == typeVoid {
		return failed(refID, reasonNotRefundable)
	}
	if len(card) < 4 || !strings.HasSuffix(orig.AccountNumber, card[len(card)-4:]) {
		return failed(refID, reasonNotRefundable)
	}
	key := dedupeKey(login, typeRefund, orig.AccountNumber, string(tr.RefTransID), formatCents(cents), invoice, windowValue)
	if dup := s.findDuplicate(key, window, now); dup != nil {
		if windowValue == "" {
			dup = nil
		}
		return duplicateReply(refID, dup)
	}
	if orig.Status != StatusSettledSuccessfully {
		return failed(refID, reasonNotRefundable)
	}
	var refunded int64
	for _, t := range s.txns {
		if t.Type == typeRefund && t.RefTransID == orig.TransID && t.Status != StatusVoided {
			refunded += t.AmountCents
		}
	}
	if refunded+cents > orig.AmountCents {
		return failed(refID, reasonCreditsExceed)
	}
	t := &Transaction{
		Type: typeRefund, InvoiceNumber: invoice, Description: description, RefID: refID, AmountCents: cents,
		ResponseCode: 1, ReasonCode: 1, Status: StatusRefundPendingSettlement, AVSResultCode: "P",
		AccountNumber: orig.AccountNumber, AccountType: orig.AccountType, FirstName: orig.FirstName, LastName: orig.LastName,
		Zip: orig.Zip, CustomerProfileID: orig.CustomerProfileID, PaymentProfileID: orig.PaymentProfileID,
		SubmitTime: now, LoginID: login, RefTransID: orig.TransID, dedupeKey: key,
	}
	s.record(t)
	s.log.Debug("anetsim: refund", "trans_id", t.TransID, "ref_trans_id", orig.TransID, "invoice", invoice)
	reply := transactionReply(refID, t).(createTransactionResponse)
	reply.TransactionResponse.RefTransID = orig.TransID
	return reply
}

// duplicateWindow reads transactionSettings' duplicateWindow: the window
// and the value as sent ("" when none was, which takes the default
// window and reports duplicates without the original's details).
func duplicateWindow(ss settings) (d time.Duration, value string, err error) {
	d = defaultDuplicateWindow
	for _, st := range ss {
		if st.SettingName != "duplicateWindow" {
			continue
		}
		secs, err := strconv.Atoi(string(st.SettingValue))
		if err != nil || secs < 0 {
			return 0, "", fmt.Errorf("duplicateWindow %q", st.SettingValue)
		}
		d, value = min(time.Duration(secs)*time.Second, maxDuplicateWindow), string(st.SettingValue)
	}
	return d, value, nil
}

// Refunds counts the refunds the simulator made against a transaction:
// a correct client makes at most one per reversal.
func (s *Server) Refunds(transID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.txns {
		if t.Type == typeRefund && t.RefTransID == transID {
			n++
		}
	}
	return n
}

// Status returns a transaction's transactionStatus ("" if unknown).
func (s *Server) Status(transID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.byID[transID]; t != nil {
		return t.Status
	}
	return ""
}

// SettlePath closes a settlement batch over HTTP, as the sandbox's nightly
// batch does: POST answers {"batch_id": "N"} ("" when nothing was
// unsettled). It is the simulator's own endpoint, not an API method.
const SettlePath = "/settle"

func (s *Server) serveSettle(w http.ResponseWriter, _ *http.Request) {
	id := s.Settle()
	s.log.Info("anetsim: settled a batch", "batch_id", id)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"batch_id": id})
}
