package processors

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/payrail/payrail/internal/keyring"
)

// Headers on every job message. They hold identifiers only, so a job whose
// body cannot be opened can still be attributed to its attempt.
const (
	HeaderOrgID     = "Payrail-Org-Id"
	HeaderAttemptID = "Payrail-Attempt-Id"
)

// ErrBadJob means a job body is not one payrail wrote, or cannot be
// opened with the configured keys. Retrying cannot help.
var ErrBadJob = errors.New("processors: malformed or unreadable job")

const envelopeVersion = 1

// envelope is a job on the wire: identifiers in clear, payment details
// sealed with AES-256-GCM and bound to the org and attempt.
type envelope struct {
	Version     int       `json:"v"`
	OrgID       string    `json:"org_id"`
	AccountID   string    `json:"account_id"`
	LineItemID  string    `json:"line_item_id"`
	AttemptID   string    `json:"attempt_id"`
	Processor   string    `json:"processor"`
	PaymentType string    `json:"payment_type"`
	Origin      string    `json:"origin"`
	AmountCents int64     `json:"amount_cents"`
	EffectiveAt time.Time `json:"effective_at"`
	CreatedAt   time.Time `json:"created_at"`
	Sealed      []byte    `json:"sealed"`
}

type details struct {
	ACH     *ACHDetails     `json:"ach,omitempty"`
	Card    *CardDetails    `json:"card,omitempty"`
	Profile *ProfileDetails `json:"profile,omitempty"`
}

func sealContext(orgID, attemptID string) []byte { return []byte("job/" + orgID + "/" + attemptID) }

// EncodeJob seals job's payment details with ring and returns the message
// body. Delivery is not encoded; it comes from the message's metadata.
func EncodeJob(ring *keyring.Ring, job Job) ([]byte, error) {
	clear, err := json.Marshal(details{ACH: job.ACH, Card: job.Card, Profile: job.Profile})
	if err != nil {
		return nil, fmt.Errorf("processors: encode job details: %w", err)
	}
	sealed, err := ring.Seal(clear, sealContext(job.OrgID, job.AttemptID))
	if err != nil {
		return nil, fmt.Errorf("processors: seal job %s: %w", job.AttemptID, err)
	}
	return json.Marshal(envelope{
		Version: envelopeVersion, OrgID: job.OrgID, AccountID: job.AccountID, LineItemID: job.LineItemID,
		AttemptID: job.AttemptID, Processor: job.Processor, PaymentType: job.PaymentType, Origin: job.Origin,
		AmountCents: job.AmountCents, EffectiveAt: job.EffectiveAt.UTC(), CreatedAt: job.CreatedAt.UTC(),
		Sealed: sealed,
	})
}

// DecodeJob opens a message body written by EncodeJob. Any failure wraps
// ErrBadJob and never includes the body.
func DecodeJob(ring *keyring.Ring, body []byte) (Job, error) {
	var e envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return Job{}, fmt.Errorf("%w: not a job envelope", ErrBadJob)
	}
	if e.Version != envelopeVersion {
		return Job{}, fmt.Errorf("%w: envelope version %d", ErrBadJob, e.Version)
	}
	if e.OrgID == "" || e.AttemptID == "" || e.Processor == "" || e.AmountCents <= 0 {
		return Job{}, fmt.Errorf("%w: envelope lacks org, attempt, processor or amount", ErrBadJob)
	}
	clear, err := ring.Open(e.Sealed, sealContext(e.OrgID, e.AttemptID))
	if err != nil {
		return Job{}, fmt.Errorf("%w: open details of attempt %s: %w", ErrBadJob, e.AttemptID, err)
	}
	var d details
	if err := json.Unmarshal(clear, &d); err != nil {
		return Job{}, fmt.Errorf("%w: details of attempt %s", ErrBadJob, e.AttemptID)
	}
	return Job{
		OrgID: e.OrgID, AccountID: e.AccountID, LineItemID: e.LineItemID, AttemptID: e.AttemptID,
		Processor: e.Processor, PaymentType: e.PaymentType, Origin: e.Origin, AmountCents: e.AmountCents,
		EffectiveAt: e.EffectiveAt.UTC(), CreatedAt: e.CreatedAt.UTC(), ACH: d.ACH, Card: d.Card, Profile: d.Profile,
	}, nil
}
