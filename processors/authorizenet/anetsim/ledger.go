package anetsim

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Transaction statuses (transactionStatusEnum) the simulator uses.
const (
	StatusCapturedPendingSettlement  = "capturedPendingSettlement"
	StatusAuthorizedPendingCapture   = "authorizedPendingCapture"
	StatusSettledSuccessfully        = "settledSuccessfully"
	StatusDeclined                   = "declined"
	StatusFDSPendingReview           = "FDSPendingReview"
	StatusFDSAuthorizedPendingReview = "FDSAuthorizedPendingReview"
	StatusVoided                     = "voided"
	StatusRefundPendingSettlement    = "refundPendingSettlement"
	StatusRefundSettledSuccessfully  = "refundSettledSuccessfully"
)

// Transaction is what the simulator recorded for one accepted
// createTransactionRequest (approved, declined or held). It holds only the
// masked account number: the simulator never keeps a card number.
type Transaction struct {
	TransID           string
	Type              string
	InvoiceNumber     string
	Description       string
	RefID             string
	AmountCents       int64
	ResponseCode      int
	ReasonCode        int
	Status            string
	AuthCode          string
	AVSResultCode     string
	CVVResultCode     string
	AccountNumber     string // XXXX1111
	AccountType       string // Visa, MasterCard, ...
	FirstName         string
	LastName          string
	Zip               string
	CustomerID        string
	CustomerProfileID string
	PaymentProfileID  string
	// CardCodeSent tells whether the request carried a card code; the
	// code itself is not kept.
	CardCodeSent bool
	SubmitTime   time.Time
	// LoginID is the merchant login that made the transaction; only that
	// merchant can read it.
	LoginID string
	// RefTransID is, on a refund, the transaction it refunds.
	RefTransID string
	BatchID    string
	SettleTime time.Time

	dedupeKey string
}

// Charged reports whether the transaction took (or holds) the customer's
// money: approved, or accepted and held for review.
// A voided charge took nothing, and a refund gives money back.
func (t *Transaction) Charged() bool {
	return (t.ResponseCode == 1 || t.ResponseCode == 4) && t.Type != typeRefund && t.Status != StatusVoided
}

func (t *Transaction) held() bool {
	return t.Status == StatusFDSPendingReview || t.Status == StatusFDSAuthorizedPendingReview
}

// Profile is a customer payment profile the simulator can charge.
type Profile struct {
	CardNumber     string
	ExpirationDate string // YYYY-MM
	FirstName      string
	LastName       string
	Zip            string
}

type batch struct {
	id   string
	time time.Time
}

// dedupeKey hashes the fields Authorize.Net's duplicate check compares
// (support article "Error 11"): login, transaction type, card number,
// expiry, bank account, PO number, amount, invoice number, customer id,
// billing name and address, and the duplicateWindow value. The card code
// and refId are deliberately not part of it, so a retry that lost its CVV
// is still a duplicate. A profile charge keys on its profile ids.
func dedupeKey(fields ...string) string {
	h := sha256.New()
	for _, f := range fields {
		fmt.Fprintf(h, "%d:%s|", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// findDuplicate returns the newest transaction with key if it was
// submitted within window before now. The caller holds s.mu.
func (s *Server) findDuplicate(key string, window time.Duration, now time.Time) *Transaction {
	t := s.byKey[key]
	if window <= 0 || t == nil || now.Sub(t.SubmitTime) >= window {
		return nil
	}
	return t
}

// record stores t under a new transaction id. The caller holds s.mu.
func (s *Server) record(t *Transaction) {
	s.nextID++
	t.TransID = strconv.FormatInt(s.nextID, 10)
	if t.ResponseCode == 1 || t.Status == StatusFDSAuthorizedPendingReview {
		t.AuthCode = authCode(s.nextID)
	}
	s.txns = append(s.txns, t)
	s.byID[t.TransID] = t
	s.byKey[t.dedupeKey] = t
}

func authCode(id int64) string {
	const alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	b := make([]byte, 6)
	for i := range b {
		b[5-i] = alphabet[id%int64(len(alphabet))]
		id /= int64(len(alphabet))
	}
	return string(b)
}

// Charges counts the transactions that took money (approved or held for
// review) for an invoice number: a correct client makes it at most 1 per
// payment, however often it retries.
func (s *Server) Charges(invoiceNumber string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.txns {
		if t.InvoiceNumber == invoiceNumber && t.Charged() {
			n++
		}
	}
	return n
}

// TotalCharges counts every charge the simulator made.
func (s *Server) TotalCharges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.txns {
		if t.Charged() {
			n++
		}
	}
	return n
}

// Transactions returns copies of every recorded transaction, oldest first.
func (s *Server) Transactions() []Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Transaction, len(s.txns))
	for i, t := range s.txns {
		out[i] = *t
	}
	return out
}

// Requests counts the requests received for an API method (for example
// "createTransactionRequest"), including those a fault cut short.
func (s *Server) Requests(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[method]
}

// ErrNotHeld is returned by Review for a transaction not held for review.
var ErrNotHeld = errors.New("anetsim: transaction is not held for review")

// Review approves or declines a held transaction, as a merchant does in
// the Fraud Detection Suite (or with updateHeldTransactionRequest).
func (s *Server) Review(transID string, approve bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.review(transID, approve)
}

func (s *Server) review(transID string, approve bool) error {
	t := s.byID[transID]
	if t == nil {
		return fmt.Errorf("anetsim: transaction %s not found", transID)
	}
	if !t.held() {
		return ErrNotHeld
	}
	if approve {
		t.Status, t.ResponseCode, t.ReasonCode = StatusCapturedPendingSettlement, 1, 1
		if t.AuthCode == "" {
			id, _ := strconv.ParseInt(t.TransID, 10, 64)
			t.AuthCode = authCode(id)
		}
		return nil
	}
	t.Status, t.ResponseCode, t.ReasonCode, t.AuthCode = StatusDeclined, 2, 254, ""
	return nil
}

// Settle closes a settlement batch now: captured transactions become
// settledSuccessfully and declined ones are batched too; held and
// authorized-only transactions stay unsettled. It returns the batch id,
// or "" when there was nothing to settle.
func (s *Server) Settle() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now().UTC()
	var id string
	for _, t := range s.txns {
		if t.BatchID != "" || (t.Status != StatusCapturedPendingSettlement && t.Status != StatusDeclined &&
			t.Status != StatusRefundPendingSettlement) {
			continue // voided, held and authorized-only transactions never settle
		}
		if id == "" {
			s.nextBatch++
			id = strconv.FormatInt(s.nextBatch, 10)
			s.batches = append(s.batches, batch{id: id, time: now})
		}
		t.BatchID, t.SettleTime = id, now
		switch t.Status {
		case StatusCapturedPendingSettlement:
			t.Status = StatusSettledSuccessfully
		case StatusRefundPendingSettlement:
			t.Status = StatusRefundSettledSuccessfully
		}
	}
	return id
}

// AddProfile registers a customer payment profile of the default
// merchant (Options.LoginID).
func (s *Server) AddProfile(customerProfileID, paymentProfileID string, p Profile) {
	s.AddProfileFor(s.opts.LoginID, customerProfileID, paymentProfileID, p)
}
