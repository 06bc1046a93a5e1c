package authorizenet

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

const checkOp = "getUnsettledTransactionListRequest"

// reportingMerchants is Merchants over e's simulator with the default
// login, org_a's own login-a, a log buffer and metrics.
func reportingMerchants(t *testing.T, e *env) (*Merchants, *Metrics, *syncBuffer) {
	t.Helper()
	met, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	lookup := func(_ context.Context, org string) (string, string, error) {
		if org == "org_a" {
			return "login-a", "KeyOfOrgA000001", nil
		}
		return "", "", ErrNoOrgCredentials
	}
	m, err := NewMerchants(MerchantsConfig{
		Base: Config{Endpoint: e.url, LoginID: anetsim.DefaultLoginID, TransactionKey: anetsim.DefaultTransactionKey,
			Timeout: 5 * time.Second, Metrics: met},
		Lookup: lookup,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, met, logs
}

func reportingErrors(m *Metrics) float64 {
	return testutil.ToFloat64(m.configErrors.WithLabelValues("reporting_disabled"))
}

// With the merchant's Transaction Details API off every reporting call
// answers E00011. The worker's start-up check finds it, logs a
// configuration error at ERROR naming the login id (never the key) and
// the setting to enable, and counts it, once per login.
func TestReportingDisabledDetectedAtStart(t *testing.T) {
	e := newEnv(t, envOptions{sim: anetsim.Options{ReportingOff: true}})
	m, met, logs := reportingMerchants(t, e)
	if got := reportingErrors(met); got != 0 {
		t.Fatalf("config errors before the check = %v", got)
	}

	enabled, err := m.CheckDefaultReporting(context.Background())
	if enabled || !IsReportingDisabled(err) {
		t.Fatalf("CheckDefaultReporting = %v, %v; want disabled (E00011)", enabled, err)
	}
	out := logs.String()
	for _, want := range []string{`"level":"ERROR"`, `"login_id":"` + anetsim.DefaultLoginID + `"`,
		"Transaction Details API", `"reason":"reporting_disabled"`, "Security Settings"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, anetsim.DefaultTransactionKey) {
		t.Errorf("log carries the transaction key:\n%s", out)
	}
	if got := reportingErrors(met); got != 1 {
		t.Errorf("payrail_authorizenet_config_errors_total{reason=reporting_disabled} = %v, want 1", got)
	}

	// Known now: no second call, no second count.
	calls := e.sim.Requests(checkOp)
	if enabled, err := m.CheckDefaultReporting(context.Background()); enabled || err != nil {
		t.Errorf("second check = %v, %v", enabled, err)
	}
	if e.sim.Requests(checkOp) != calls || reportingErrors(met) != 1 {
		t.Errorf("second check called the API again or counted again")
	}
}

// An enabled API is found enabled, silently.
func TestReportingEnabledAtStart(t *testing.T) {
	e := newEnv(t, envOptions{})
	m, met, logs := reportingMerchants(t, e)
	if enabled, err := m.CheckDefaultReporting(context.Background()); !enabled || err != nil {
		t.Fatalf("CheckDefaultReporting = %v, %v; want enabled", enabled, err)
	}
	if reportingErrors(met) != 0 || strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("an enabled API was reported: %v\n%s", reportingErrors(met), logs.String())
	}
}

// An org's own login is checked with the org's first job, in the
// background; the default login's state says nothing about it.
func TestReportingDisabledDetectedPerOrg(t *testing.T) {
	e := newEnv(t, envOptions{sim: anetsim.Options{Merchants: map[string]string{"login-a": "KeyOfOrgA000001"}}})
	e.sim.SetReporting("login-a", false)
	m, met, logs := reportingMerchants(t, e)
	if enabled, err := m.CheckDefaultReporting(context.Background()); !enabled || err != nil {
		t.Fatalf("default: %v, %v", enabled, err)
	}
	p := NewOrgProcessor(m, nil, WithClock(e.clock.Now))
	job := cardJob(e, "att_org_reporting", 1200, visa())
	job.OrgID = "org_a"
	if res, err := p.Process(context.Background(), job); err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("org A's charge = %+v, %v", res, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for reportingErrors(met) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := reportingErrors(met); got != 1 {
		t.Fatalf("config errors = %v, want 1 (org A's login)", got)
	}
	out := logs.String()
	if !strings.Contains(out, `"login_id":"login-a"`) || !strings.Contains(out, `"org_id":"org_a"`) ||
		strings.Contains(out, "KeyOfOrgA000001") {
		t.Errorf("log does not name org A's login (or carries its key):\n%s", out)
	}
	if n := e.sim.RequestsBy("login-a", checkOp); n != 1 {
		t.Errorf("org A's login was checked %d times, want 1", n)
	}
	job2 := cardJob(e, "att_org_reporting_2", 1300, visa())
	job2.OrgID = "org_a"
	if _, err := p.Process(context.Background(), job2); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.RequestsBy("login-a", checkOp); n != 1 || reportingErrors(met) != 1 {
		t.Errorf("org A's second job checked again: %d checks, %v errors", n, reportingErrors(met))
	}
}

// Without reporting, an answer lost after the charge is still resolved
// without a second charge inside the duplicate window: the resend is
// answered as a duplicate of the approved original.
func TestReportingOffReliesOnDuplicateWindow(t *testing.T) {
	e := newEnv(t, envOptions{sim: anetsim.Options{ReportingOff: true}})
	job := cardJob(e, "att_noreport", 4400, visa())
	e.sim.Inject("createTransactionRequest", anetsim.FaultDropAfter)
	e.proc.Process(context.Background(), job)
	res, err := e.proc.Process(context.Background(), redelivered(job, true))
	if err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("redelivery = %+v, %v; want the original approval", res, err)
	}
	if n := e.sim.Charges(InvoiceNumber(job.AttemptID)); n != 1 {
		t.Fatalf("charges = %d, want 1", n)
	}
	if _, err := e.client.GetTransactionDetails(context.Background(), res.TransactionID); !IsReportingDisabled(err) {
		t.Fatalf("details with reporting off: %v, want E00011", err)
	}
}
