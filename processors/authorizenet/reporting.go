package authorizenet

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// CodeReportingDisabled is the API's answer to every reporting call
// (getTransactionDetails, the transaction and batch lists) of a merchant
// whose Transaction Details API is off: "Access denied. You do not have
// permissions to call the Transaction Details API."
const CodeReportingDisabled = "E00011"

// ReportingSetting is where a merchant turns the Transaction Details API
// on, for the configuration error payrail logs.
const ReportingSetting = "Merchant Interface: Account > Settings > Security Settings > General Security Settings > Transaction Details API"

// IsReportingDisabled reports whether err is E00011: the merchant's
// Transaction Details API is off.
func IsReportingDisabled(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeReportingDisabled
}

// CheckReporting makes one cheap reporting call (the first unsettled
// transaction) to learn whether the merchant's Transaction Details API is
// on. nil: it is; IsReportingDisabled(err): it is off; any other error:
// the call failed and says nothing either way.
func (c *Client) CheckReporting(ctx context.Context) error {
	_, err := c.GetUnsettledTransactionList(ctx, ListOptions{Paging: &Paging{Limit: 1, Offset: 1}})
	return err
}

// reportingRecheck is how long a check that failed (the gateway was
// unreachable) is not repeated for the same login.
const reportingRecheck = time.Minute

type reportingState struct {
	known    bool // the check answered: enabled tells how
	enabled  bool
	checking bool
	failedAt time.Time
}

// CheckReporting checks, once per merchant login and process, whether the
// Transaction Details API of c's merchant is on. When it is off (E00011)
// it logs a configuration error at ERROR naming the login id (never the
// key) and the setting to enable, and counts it in
// payrail_authorizenet_config_errors_total{reason="reporting_disabled"}.
// The answer is remembered; a failed check is tried again after a minute.
// orgID only labels the log line ("" for the default merchant).
//
// It returns whether reporting is known to be on, and the check's error
// (nil when the answer was already known or a check is under way).
func (m *Merchants) CheckReporting(ctx context.Context, c *Client, orgID string) (bool, error) {
	if c == nil {
		return false, ErrNotConfigured
	}
	if enabled, claimed := m.claimCheck(c.LoginID()); !claimed {
		return enabled, nil
	}
	return m.runCheck(ctx, c, orgID)
}

// checkReportingLater runs CheckReporting in the background when c's login
// has not been checked yet, so a job never waits on (or spends its time
// budget on) the check.
func (m *Merchants) checkReportingLater(ctx context.Context, c *Client, orgID string) {
	if _, claimed := m.claimCheck(c.LoginID()); !claimed {
		return
	}
	ctx = context.WithoutCancel(ctx)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, reportingCheckTimeout)
		defer cancel()
		_, _ = m.runCheck(ctx, c, orgID)
	}()
}

// reportingCheckTimeout bounds a background check.
const reportingCheckTimeout = 30 * time.Second

// claimCheck marks login's check as under way and reports claimed, unless
// the answer is known, a check is under way, or one failed less than
// reportingRecheck ago.
func (m *Merchants) claimCheck(login string) (enabled, claimed bool) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.reporting[login]
	if st.known || st.checking || (!st.failedAt.IsZero() && now.Sub(st.failedAt) < reportingRecheck) {
		return st.known && st.enabled, false
	}
	st.checking = true
	m.reporting[login] = st
	return false, true
}

// runCheck makes the claimed check and records its answer.
func (m *Merchants) runCheck(ctx context.Context, c *Client, orgID string) (bool, error) {
	login := c.LoginID()
	err := c.CheckReporting(ctx)
	st := reportingState{}
	log := m.log.With("login_id", login)
	if orgID != "" {
		log = log.With("org_id", orgID)
	}
	switch {
	case err == nil:
		st.known, st.enabled = true, true
		log.Info("authorizenet: the merchant's Transaction Details API is enabled")
	case IsReportingDisabled(err):
		st.known = true
		log.Error("authorizenet: configuration error: the merchant's Transaction Details API is disabled (E00011); "+
			"payrail cannot look up earlier deliveries or poll held payments and relies on the duplicate window "+
			"and the gateway's duplicate answers alone. Enable it in the Authorize.Net "+ReportingSetting,
			"reason", "reporting_disabled", "setting", ReportingSetting)
		m.base.Metrics.configError("reporting_disabled")
	default:
		st.failedAt = m.now()
		log.Warn("authorizenet: cannot check whether the merchant's Transaction Details API is enabled", "err", err)
	}
	m.mu.Lock()
	m.reporting[login] = st
	m.mu.Unlock()
	return st.known && st.enabled, err
}

// CheckDefaultReporting checks the default merchant's Transaction Details
// API (see CheckReporting); the worker calls it at start. Without a
// default it does nothing.
func (m *Merchants) CheckDefaultReporting(ctx context.Context) (bool, error) {
	if m.def == nil {
		return false, nil
	}
	return m.CheckReporting(ctx, m.def, "")
}

// discard is the logger of Merchants built without one.
var discard = slog.New(slog.DiscardHandler)
