package processors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/payrail/payrail/internal/keyring"
)

// Headers on every job message. They hold identifiers only and are not
// authenticated: a worker uses them for nothing but to check that they
// agree with the ids sealed in the body (docs/security.md#job-integrity).
const (
	HeaderOrgID     = "Payrail-Org-Id"
	HeaderAttemptID = "Payrail-Attempt-Id"
)

// ErrBadJob means a job body is not one payrail wrote, or cannot be
// opened with the configured keys. Retrying cannot help. Every decoding
// error is a *JobError, which matches ErrBadJob with errors.Is.
var ErrBadJob = errors.New("processors: malformed or unreadable job")

// ErrV1Job means a body is in the pre-authentication format (v1), whose
// amount and other clear fields nobody vouches for. DecodeJob refuses it;
// DecodeV1Job opens what v1 does authenticate (see there). It matches
// ErrBadJob too.
var ErrV1Job = errors.New("processors: v1 job envelope")

// Reasons a job message is rejected, used as the reason label of
// payrail_jobs_rejected_total. The set is fixed so the label stays bounded.
const (
	RejectMalformed       = "malformed"           // not a job envelope, or fields missing
	RejectVersion         = "unsupported_version" // a version this build does not read
	RejectUnknownKey      = "unknown_key"         // sealed with a key id the ring does not hold
	RejectUnauthenticated = "unauthenticated"     // the AEAD tag does not verify: forged, tampered, or moved
)

// JobError is a decoding failure. It never includes the body; ClaimedOrg
// and ClaimedAttempt are what the body's clear fields say and are not
// authenticated (they are for logs only, never for acting on a payment).
type JobError struct {
	Reason         string
	ClaimedOrg     string
	ClaimedAttempt string
	err            error
}

func (e *JobError) Error() string {
	msg := "processors: rejected job (" + e.Reason + ")"
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *JobError) Is(target error) bool { return target == ErrBadJob }
func (e *JobError) Unwrap() error        { return e.err }

// RejectReason returns the reason of a decoding error (RejectMalformed for
// an error that is not a *JobError).
func RejectReason(err error) string {
	var je *JobError
	if errors.As(err, &je) {
		return je.Reason
	}
	return RejectMalformed
}

// EnvelopeVersion is the job wire format EncodeJob writes.
const EnvelopeVersion = 2

// envelope is a job on the wire (v2): the identifiers needed to attribute
// the message in clear, and the whole job — amount, processor, payment
// type, dates and payment details — sealed with the keyring (AES-256-GCM,
// key id for rotation). The associated data binds the sealed job to the
// version, org, attempt and processor named outside, so none of them can
// be changed, and the job cannot be moved to another attempt, org or
// processor, without the tag failing.
type envelope struct {
	Version   int    `json:"v"`
	OrgID     string `json:"org_id"`
	AttemptID string `json:"attempt_id"`
	Processor string `json:"processor"`
	Sealed    []byte `json:"sealed"`
}

// sealedJob is the plaintext inside a v2 envelope.
type sealedJob struct {
	OrgID       string          `json:"org_id"`
	AccountID   string          `json:"account_id"`
	LineItemID  string          `json:"line_item_id"`
	AttemptID   string          `json:"attempt_id"`
	Processor   string          `json:"processor"`
	PaymentType string          `json:"payment_type"`
	Origin      string          `json:"origin"`
	AmountCents int64           `json:"amount_cents"`
	EffectiveAt time.Time       `json:"effective_at"`
	CreatedAt   time.Time       `json:"created_at"`
	ACH         *ACHDetails     `json:"ach,omitempty"`
	Card        *CardDetails    `json:"card,omitempty"`
	Profile     *ProfileDetails `json:"profile,omitempty"`
	Reversal    *sealedReversal `json:"reversal,omitempty"`
}

// sealedReversal is ReversalDetails inside a v2 envelope.
type sealedReversal struct {
	OriginalLineItemID    string    `json:"original_line_item_id"`
	OriginalAttemptID     string    `json:"original_attempt_id"`
	OriginalTransactionID string    `json:"original_transaction_id"`
	OriginalCreatedAt     time.Time `json:"original_created_at"`
}

func sealReversal(r *ReversalDetails) *sealedReversal {
	if r == nil {
		return nil
	}
	return &sealedReversal{OriginalLineItemID: r.OriginalLineItemID, OriginalAttemptID: r.OriginalAttemptID,
		OriginalTransactionID: r.OriginalTransactionID, OriginalCreatedAt: r.OriginalCreatedAt.UTC()}
}

func (r *sealedReversal) open() *ReversalDetails {
	if r == nil {
		return nil
	}
	return &ReversalDetails{OriginalLineItemID: r.OriginalLineItemID, OriginalAttemptID: r.OriginalAttemptID,
		OriginalTransactionID: r.OriginalTransactionID, OriginalCreatedAt: r.OriginalCreatedAt.UTC()}
}

// jobAD is the associated data of a v2 job: a label, then each field
// length-prefixed, so no two different (org, attempt, processor) triples
// give the same bytes whatever characters the ids contain.
func jobAD(orgID, attemptID, processor string) []byte {
	ad := []byte("payrail/job/v2")
	for _, s := range []string{orgID, attemptID, processor} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(s)))
		ad = append(ad, s...)
	}
	return ad
}

// EncodeJob seals job as a whole with ring and returns the message body
// (v2). Delivery and TransactionID are not encoded.
func EncodeJob(ring *keyring.Ring, job Job) ([]byte, error) {
	if job.OrgID == "" || job.AttemptID == "" || job.Processor == "" || job.AmountCents <= 0 {
		return nil, fmt.Errorf("processors: encode job: org, attempt, processor and a positive amount are required")
	}
	clear, err := json.Marshal(sealedJob{
		OrgID: job.OrgID, AccountID: job.AccountID, LineItemID: job.LineItemID, AttemptID: job.AttemptID,
		Processor: job.Processor, PaymentType: job.PaymentType, Origin: job.Origin, AmountCents: job.AmountCents,
		EffectiveAt: job.EffectiveAt.UTC(), CreatedAt: job.CreatedAt.UTC(), ACH: job.ACH, Card: job.Card, Profile: job.Profile,
		Reversal: sealReversal(job.Reversal),
	})
	if err != nil {
		return nil, fmt.Errorf("processors: encode job: %w", err)
	}
	sealed, err := ring.Seal(clear, jobAD(job.OrgID, job.AttemptID, job.Processor))
	if err != nil {
		return nil, fmt.Errorf("processors: seal job %s: %w", job.AttemptID, err)
	}
	return json.Marshal(envelope{Version: EnvelopeVersion, OrgID: job.OrgID, AttemptID: job.AttemptID,
		Processor: job.Processor, Sealed: sealed})
}

// DecodeJob opens a v2 message body written by EncodeJob. Every value of
// the returned job was authenticated with the keyring. Any failure is a
// *JobError (matching ErrBadJob; a v1 body also matches ErrV1Job) and
// never includes the body.
func DecodeJob(ring *keyring.Ring, body []byte) (Job, error) {
	var e envelope
	var probe struct {
		Version int `json:"v"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Job{}, &JobError{Reason: RejectMalformed, err: errors.New("not a job envelope")}
	}
	if probe.Version == EnvelopeVersion {
		// Exactly the fields EncodeJob writes: a field added on the way
		// (an amount in clear, say) marks the message as not payrail's.
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || dec.More() {
			return Job{}, &JobError{Reason: RejectMalformed, err: errors.New("not a v2 job envelope")}
		}
	} else {
		_ = json.Unmarshal(body, &e) // for the claimed ids in the error only
	}
	org, attempt := claimed(e.OrgID), claimed(e.AttemptID)
	switch {
	case e.Version == 1:
		return Job{}, &JobError{Reason: RejectVersion, ClaimedOrg: org, ClaimedAttempt: attempt, err: ErrV1Job}
	case e.Version != EnvelopeVersion:
		return Job{}, &JobError{Reason: RejectVersion, ClaimedOrg: org, ClaimedAttempt: attempt,
			err: fmt.Errorf("envelope version %d", e.Version)}
	case e.OrgID == "" || e.AttemptID == "" || e.Processor == "" || len(e.Sealed) == 0:
		return Job{}, &JobError{Reason: RejectMalformed, ClaimedOrg: org, ClaimedAttempt: attempt,
			err: errors.New("envelope lacks org, attempt, processor or sealed job")}
	}
	clear, err := ring.Open(e.Sealed, jobAD(e.OrgID, e.AttemptID, e.Processor))
	if err != nil {
		reason := RejectUnauthenticated
		if errors.Is(err, keyring.ErrUnknownKey) {
			reason = RejectUnknownKey
		}
		return Job{}, &JobError{Reason: reason, ClaimedOrg: org, ClaimedAttempt: attempt, err: err}
	}
	// The tag verified: the plaintext is one payrail sealed for exactly
	// this org, attempt and processor.
	var s sealedJob
	if err := json.Unmarshal(clear, &s); err != nil || s.OrgID != e.OrgID || s.AttemptID != e.AttemptID ||
		s.Processor != e.Processor || s.AmountCents <= 0 {
		return Job{}, &JobError{Reason: RejectMalformed, ClaimedOrg: org, ClaimedAttempt: attempt,
			err: errors.New("sealed job is incomplete or disagrees with its envelope")}
	}
	return Job{
		OrgID: s.OrgID, AccountID: s.AccountID, LineItemID: s.LineItemID, AttemptID: s.AttemptID,
		Processor: s.Processor, PaymentType: s.PaymentType, Origin: s.Origin, AmountCents: s.AmountCents,
		EffectiveAt: s.EffectiveAt.UTC(), CreatedAt: s.CreatedAt.UTC(), ACH: s.ACH, Card: s.Card, Profile: s.Profile,
		Reversal: s.Reversal.open(),
	}, nil
}

// V1Job is what a v1 body authenticates: its payment details, sealed with
// the context job/<org>/<attempt>, and so the org and attempt they belong
// to. Everything else in a v1 body (amount, processor, payment type,
// dates) is clear JSON that anyone who can publish could have changed, so
// it is not returned: a worker takes those values from PostgreSQL.
type V1Job struct {
	OrgID     string
	AttemptID string
	ACH       *ACHDetails
	Card      *CardDetails
	Profile   *ProfileDetails
}

// DecodeV1Job opens the authenticated part of a v1 body, the format
// written before jobs were sealed as a whole. It exists for the jobs in
// flight at the upgrade (docs/security.md#upgrading-from-v1-jobs) and is
// to be removed once none can remain. Errors are *JobError.
func DecodeV1Job(ring *keyring.Ring, body []byte) (V1Job, error) {
	var e struct {
		Version   int    `json:"v"`
		OrgID     string `json:"org_id"`
		AttemptID string `json:"attempt_id"`
		Sealed    []byte `json:"sealed"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Version != 1 {
		return V1Job{}, &JobError{Reason: RejectMalformed, err: errors.New("not a v1 job envelope")}
	}
	org, attempt := claimed(e.OrgID), claimed(e.AttemptID)
	// Attempt ids never contain '/', so the context splits one way only.
	if e.OrgID == "" || e.AttemptID == "" || strings.Contains(e.AttemptID, "/") {
		return V1Job{}, &JobError{Reason: RejectMalformed, ClaimedOrg: org, ClaimedAttempt: attempt,
			err: errors.New("v1 envelope lacks org or attempt")}
	}
	clear, err := ring.Open(e.Sealed, []byte("job/"+e.OrgID+"/"+e.AttemptID))
	if err != nil {
		reason := RejectUnauthenticated
		if errors.Is(err, keyring.ErrUnknownKey) {
			reason = RejectUnknownKey
		}
		return V1Job{}, &JobError{Reason: reason, ClaimedOrg: org, ClaimedAttempt: attempt, err: err}
	}
	var d struct {
		ACH     *ACHDetails     `json:"ach,omitempty"`
		Card    *CardDetails    `json:"card,omitempty"`
		Profile *ProfileDetails `json:"profile,omitempty"`
	}
	if err := json.Unmarshal(clear, &d); err != nil || (d.ACH == nil && d.Card == nil && d.Profile == nil) {
		return V1Job{}, &JobError{Reason: RejectMalformed, ClaimedOrg: org, ClaimedAttempt: attempt,
			err: errors.New("v1 details are incomplete")}
	}
	return V1Job{OrgID: e.OrgID, AttemptID: e.AttemptID, ACH: d.ACH, Card: d.Card, Profile: d.Profile}, nil
}

// claimed bounds an unauthenticated id before it is logged.
func claimed(id string) string {
	if len(id) > 64 {
		return id[:64] + "…"
	}
	return id
}
