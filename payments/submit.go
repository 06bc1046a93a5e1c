package payments

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/payrail/payrail/internal/keyring"
	"github.com/payrail/payrail/internal/queue"
	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
)

// Service runs the payment use case over the store. It is safe for
// concurrent use.
type Service struct {
	store    *store.Store
	ring     *keyring.Ring
	accounts *accountCache // guest payments' account facts (accounts.go)
}

// New returns a Service. ring seals the payment details inside jobs.
func New(st *store.Store, ring *keyring.Ring) *Service {
	return &Service{store: st, ring: ring, accounts: newAccountCache(maxCachedAccounts)}
}

// Origins: the route that asks for execution.
const (
	// OriginGuestPayment carries its payment method in the request.
	OriginGuestPayment = "guest_payment"
	// OriginPaymentTransfer uses the account's stored payment method.
	OriginPaymentTransfer = "payment_transfer"
)

// Payment is a payment submitted for execution.
type Payment struct {
	OrgID      string
	AccountID  string
	LineItemID string // "" generates one
	Origin     string // OriginGuestPayment or OriginPaymentTransfer
	// PaymentType is ACH or DEBIT; for a transfer, "" lets the account's
	// configuration choose (ACH when configured, else the card profile).
	PaymentType string
	// Processor, ACH and Card are the guest payment's method.
	Processor      string
	ACH            *processors.ACHDetails
	Card           *processors.CardDetails
	AmountCents    int64
	EffectiveAt    time.Time // zero: now
	ExternalFields []store.ExternalField
	// RequestHash fingerprints the request for replays; ClientID and
	// IdempotencyKey scope an Idempotency-Key.
	RequestHash    []byte
	ClientID       string
	IdempotencyKey string
}

// Outcomes of Submit a caller branches on; store.ErrNotFound (no such
// account), store.ErrConflict and store.ErrIdempotencyKeyReused pass
// through.
var (
	// ErrHolderNameRequired: an ACH entry needs the account holder's
	// name, and neither the request nor the account has one.
	ErrHolderNameRequired = errors.New("payments: an ACH entry needs the account holder's name")
)

// NoProcessorError: the account has no processor for the payment method.
type NoProcessorError struct {
	AccountID   string
	PaymentType string // "" when the request named none
}

func (e *NoProcessorError) Error() string {
	what := "payment processor"
	if e.PaymentType != "" {
		what = "processor for " + e.PaymentType
	}
	return fmt.Sprintf("account %s has no %s configured", e.AccountID, what)
}

// Holder name limits of each processor's field: the NACHA individual name,
// Authorize.Net's billTo first and last name.
const (
	maxACHName  = 22
	maxCardName = 50
)

// maxAccountChanges is how many times Submit builds a payment again
// because its account changed under it before it gives up.
const maxAccountChanges = 3

// Submit records p as a PENDING payment with its attempt and job in one
// transaction; after the commit the store's fast path publishes the job.
// A replay of the same request returns the stored line item with
// created=false and executes nothing. A guest payment's account is read
// once and remembered (accounts.go).
func (s *Service) Submit(ctx context.Context, p Payment, now time.Time) (li store.LineItem, created bool, err error) {
	if p.LineItemID == "" {
		p.LineItemID = store.NewID("can_")
	}
	now = now.UTC()
	fresh := false
	for changes := 0; ; {
		acct, cached, err := s.account(ctx, p, fresh)
		if err != nil {
			return store.LineItem{}, false, err
		}
		li, created, err = s.submit(ctx, acct, p, now)
		var np *NoProcessorError
		switch {
		case cached && (errors.Is(err, store.ErrAccountChanged) || errors.Is(err, store.ErrNotFound) ||
			errors.Is(err, ErrHolderNameRequired) || errors.As(err, &np)):
			// Decided on what was remembered: decide again on the account
			// as it is.
			s.accounts.forget(p.OrgID, p.AccountID)
			fresh = true
		case errors.Is(err, store.ErrAccountChanged) && changes < maxAccountChanges:
			changes++ // changed between the read and the write
			fresh = true
		default:
			return li, created, err
		}
	}
}

// account returns p's account: for a guest payment what is remembered of
// it unless fresh (cached is then true), else as stored now, remembered.
func (s *Service) account(ctx context.Context, p Payment, fresh bool) (acct store.Account, cached bool, err error) {
	if p.Origin == OriginGuestPayment && !fresh {
		if f, ok := s.accounts.get(p.OrgID, p.AccountID); ok {
			return store.Account{AccountID: p.AccountID, ProductID: f.productID, CustomerName: f.customerName}, true, nil
		}
	}
	acct, err = s.store.PaymentMethods(ctx, p.OrgID, p.AccountID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.accounts.forget(p.OrgID, p.AccountID)
		}
		return store.Account{}, false, err
	}
	s.accounts.put(p.OrgID, p.AccountID, accountFacts{productID: acct.ProductID, customerName: acct.CustomerName})
	return acct, false, nil
}

// submit builds p's job from acct and writes the payment.
func (s *Service) submit(ctx context.Context, acct store.Account, p Payment, now time.Time) (store.LineItem, bool, error) {
	job, err := jobFor(acct, p)
	if err != nil {
		return store.LineItem{}, false, err
	}
	job.OrgID, job.AccountID, job.LineItemID = p.OrgID, p.AccountID, p.LineItemID
	job.AttemptID, job.AmountCents, job.Origin, job.CreatedAt = store.NewID("att_"), p.AmountCents, p.Origin, now
	job.EffectiveAt = now
	if !p.EffectiveAt.IsZero() {
		job.EffectiveAt = p.EffectiveAt.UTC()
	}
	msg, err := s.sealJob(job)
	if err != nil {
		return store.LineItem{}, false, err
	}
	in := instrumentOf(job)
	return s.store.CreatePayment(ctx, p.OrgID, store.NewPayment{
		LineItem: store.NewLineItem{
			AccountID: p.AccountID, LineItemID: p.LineItemID, Type: store.TypePayment, Description: "Payment against the account",
			AmountCents: p.AmountCents, EffectiveAt: job.EffectiveAt, ExternalFields: p.ExternalFields,
			Origin: p.Origin, Processor: job.Processor, RequestHash: p.RequestHash, ClientID: p.ClientID,
			IdempotencyKey: p.IdempotencyKey,
		},
		AttemptID: job.AttemptID, PaymentType: job.PaymentType,
		InstrumentKind: in.Kind, InstrumentBrand: in.Brand, InstrumentLastFour: in.LastFour, Job: msg,
		ProductID: acct.ProductID, CustomerName: acct.CustomerName,
	})
}

// jobFor picks the processor and payment details: from the request for a
// guest payment, from the account's configuration for a transfer.
func jobFor(acct store.Account, p Payment) (processors.Job, error) {
	if p.Origin == OriginGuestPayment {
		job := processors.Job{Processor: p.Processor, PaymentType: p.PaymentType, ACH: p.ACH, Card: p.Card}
		// The names taken from the account go into copies: p stays as
		// the request said, for Submit to build the job again.
		if job.ACH != nil && job.ACH.Name == "" {
			name, ok := achHolderName(acct.CustomerName)
			if !ok {
				return job, ErrHolderNameRequired
			}
			ach := *job.ACH
			ach.Name = name
			job.ACH = &ach
		}
		if job.Card != nil && job.Card.Name == "" {
			card := *job.Card
			card.Name = truncate(acct.CustomerName, maxCardName)
			job.Card = &card
		}
		return job, nil
	}
	ach, debit := acct.Processors.ACH, acct.Processors.Debit
	useACH := ach.Processor == processors.CanopyNACHA && p.PaymentType != processors.PaymentTypeDebit
	useCard := debit.Processor == processors.AuthorizeNet && p.PaymentType != processors.PaymentTypeACH
	switch {
	case useACH:
		name, ok := achHolderName(acct.CustomerName)
		if !ok {
			return processors.Job{}, ErrHolderNameRequired
		}
		// The account holder's standing authorization: SEC code PPD.
		return processors.Job{Processor: processors.CanopyNACHA, PaymentType: processors.PaymentTypeACH,
			ACH: &processors.ACHDetails{RoutingNumber: ach.RoutingNumber, AccountNumber: ach.AccountNumber,
				AccountType: ach.AccountType, StandardEntryClass: "PPD", Name: name}}, nil
	case useCard:
		return processors.Job{Processor: processors.AuthorizeNet, PaymentType: processors.PaymentTypeDebit,
			Profile: &processors.ProfileDetails{CustomerProfileID: debit.CustomerProfileID,
				PaymentProfileID: debit.PaymentProfileID}}, nil
	}
	return processors.Job{}, &NoProcessorError{AccountID: acct.AccountID, PaymentType: p.PaymentType}
}

// truncate cuts s to n characters (not bytes: never inside a character).
func truncate(s string, n int) string { return processors.TruncateChars(s, n) }

// achHolderName is the account's customer name as a NACHA entry carries
// it: Latin letters transliterated to ASCII, then cut to 22 characters. A
// name with nothing writable left (emoji, another script) is no name: ok
// is false and the payment is refused (ErrHolderNameRequired). Letters of
// other scripts inside an otherwise Latin name are dropped.
func achHolderName(customerName string) (string, bool) {
	name, _ := processors.ACHText(customerName, maxACHName)
	return name, name != ""
}

// sealJob builds the job's outbox message. The stored body never holds
// the CVV; the fast path's body does, sealed, and lives only in memory and
// in JetStream until the job is processed (docs/security.md).
func (s *Service) sealJob(job processors.Job) (store.OutboxMessage, error) {
	fast, err := processors.EncodeJob(s.ring, job)
	if err != nil {
		return store.OutboxMessage{}, err
	}
	stored := fast
	if job.Card != nil && job.Card.CVV != "" {
		card := *job.Card
		card.CVV = ""
		job.Card = &card
		if stored, err = processors.EncodeJob(s.ring, job); err != nil {
			return store.OutboxMessage{}, err
		}
	}
	msg := JobMessage(job.OrgID, job.AttemptID, job.Processor)
	msg.Payload, msg.FastPayload = stored, fast
	return msg, nil
}

// JobMessage is the outbox row that carries the job of an org's attempt
// to the workers of its processor, without a body. The reconciler
// re-publishes a stranded attempt's job with it (store.StrandedQuery).
func JobMessage(orgID, attemptID, processor string) store.OutboxMessage {
	return store.OutboxMessage{
		MsgID:   "job_" + attemptID,
		Subject: queue.JobSubject(processor),
		Headers: map[string]string{processors.HeaderOrgID: orgID, processors.HeaderAttemptID: attemptID},
	}
}
