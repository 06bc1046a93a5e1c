package authorizenet

import (
	"context"
	"errors"
	"log/slog"

	"github.com/payrail/payrail/processors"
)

// Codes of jobs whose org has no usable merchant credentials.
const (
	// CodeNotConfigured: the org has no credentials and no default exists.
	CodeNotConfigured = "authorize_net_not_configured"
	// CodeCredentialsUnreadable: the org's credentials exist but cannot
	// be read (the sealed key does not open). The job is never charged
	// with another merchant's login instead.
	CodeCredentialsUnreadable = "authorize_net_credentials_unreadable"
	// CodeCredentialsUnavailable: reading them failed for now (database).
	CodeCredentialsUnavailable = "authorize_net_credentials_unavailable"
)

// NewOrgProcessor returns the AUTHORIZE_NET processor that charges each
// job with its org's merchant login, picked by m (the org's own
// credentials, else the default). Lookups (Resolve, later deliveries)
// use the same login, so they only ever see that merchant's transactions.
func NewOrgProcessor(m *Merchants, log *slog.Logger, opts ...Option) *Processor {
	p := NewProcessor(nil, log, opts...)
	p.merchants = m
	return p
}

// forOrg returns a copy of p bound to the client of job's org, or nil and
// the failure to report.
func (p *Processor) forOrg(ctx context.Context, job processors.Job) (*Processor, processors.Result, error) {
	if p.merchants == nil {
		return p, processors.Result{}, nil
	}
	c, err := p.merchants.Client(ctx, job.OrgID)
	if err == nil {
		// The first job of each merchant login has its Transaction
		// Details API checked in the background (the default's is
		// checked at worker start); an E00011 is logged as a
		// configuration error. The answer does not change what the job
		// does.
		p.merchants.checkReportingLater(ctx, c, job.OrgID)
		q := *p
		q.client = c
		return &q, processors.Result{}, nil
	}
	inst := instrumentOf(job)
	var ce *CredentialsError
	switch {
	case errors.Is(err, ErrNotConfigured):
		res, err := fail(processors.Permanent, CodeNotConfigured,
			"the org has no Authorize.Net credentials and no default is configured", inst, 0, err)
		return nil, res, err
	case errors.As(err, &ce) && ce.Temporary:
		p.log.Warn("authorizenet: cannot read the org's credentials now", "org_id", job.OrgID, "attempt_id", job.AttemptID, "err", err)
		res, err := fail(processors.Retryable, CodeCredentialsUnavailable,
			"the org's Authorize.Net credentials cannot be read now", inst, 0, err)
		return nil, res, err
	default:
		p.log.Error("authorizenet: the org's credentials cannot be read; not charging", "org_id", job.OrgID,
			"attempt_id", job.AttemptID, "err", err)
		res, err := fail(processors.Permanent, CodeCredentialsUnreadable,
			"the org's Authorize.Net credentials cannot be read", inst, 0, err)
		return nil, res, err
	}
}
