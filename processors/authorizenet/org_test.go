package authorizenet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// orgEnv is a simulator with two more merchants and an org processor:
// org_a and org_b have their own logins, org_default uses the default,
// org_broken's key cannot be unsealed.
func orgEnv(t *testing.T, withDefault bool) (*env, *Merchants, *Processor) {
	t.Helper()
	e := newEnv(t, envOptions{sim: anetsim.Options{Merchants: map[string]string{
		"login-a": "KeyOfOrgA000001", "login-b": "KeyOfOrgB000001"}}})
	lookup := func(_ context.Context, org string) (string, string, error) {
		switch org {
		case "org_a":
			return "login-a", "KeyOfOrgA000001", nil
		case "org_b":
			return "login-b", "KeyOfOrgB000001", nil
		case "org_broken":
			return "", "", errors.New("sealed value cannot be opened")
		case "org_db_down":
			return "", "", TemporaryLookupError(errors.New("connection refused"))
		}
		return "", "", ErrNoOrgCredentials
	}
	base := Config{Endpoint: e.url, Timeout: 5 * time.Second}
	if withDefault {
		base.LoginID, base.TransactionKey = anetsim.DefaultLoginID, anetsim.DefaultTransactionKey
	}
	m, err := NewMerchants(MerchantsConfig{Base: base, Lookup: lookup, TTL: time.Minute, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return e, m, NewOrgProcessor(m, nil, WithClock(e.clock.Now))
}

func orgProfileJob(e *env, org, attempt, customer, payment string) processors.Job {
	j := profileJob(e, attempt, 1500, customer, payment)
	j.OrgID = org
	return j
}

// Two orgs name the same profile ids; the profile is org A's (created
// under A's merchant login). Each job is charged with its org's login, so
// org B's charge is refused by the gateway and org A's goes through.
func TestOrgProcessorChargesWithTheOrgsLogin(t *testing.T) {
	e, m, p := orgEnv(t, true)
	e.sim.AddProfileFor("login-a", "3001", "4001", anetsim.Profile{CardNumber: "4007000000027", ExpirationDate: "2035-12"})
	ctx := context.Background()

	if err := m.VerifyProfile(ctx, "org_a", "3001", "4001"); err != nil {
		t.Fatalf("org A verifies its profile: %v", err)
	}
	if err := m.VerifyProfile(ctx, "org_b", "3001", "4001"); !IsNotFound(err) {
		t.Fatalf("org B verifies org A's profile: %v", err)
	}
	if err := m.VerifyProfile(ctx, "org_default", "3001", "4001"); !IsNotFound(err) {
		t.Fatalf("the default merchant verifies org A's profile: %v", err)
	}

	res, err := p.Process(ctx, orgProfileJob(e, "org_b", "att_b", "3001", "4001"))
	if res.Outcome != processors.Permanent || res.Code != CodeNotFound || err == nil {
		t.Fatalf("org B charged org A's profile: %+v, %v", res, err)
	}
	res, err = p.Process(ctx, orgProfileJob(e, "org_a", "att_a", "3001", "4001"))
	if err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("org A's charge: %+v, %v", res, err)
	}
	txns := e.sim.Transactions()
	if len(txns) != 1 || txns[0].LoginID != "login-a" || txns[0].InvoiceNumber != InvoiceNumber("att_a") {
		t.Fatalf("transactions: %+v", txns)
	}
	if e.sim.RequestsBy("login-b", "createTransactionRequest") != 1 || e.sim.RequestsBy(anetsim.DefaultLoginID, "createTransactionRequest") != 0 {
		t.Fatal("org B's charge was not sent with org B's login")
	}
	// A card job of an org without its own login uses the default.
	job := cardJob(e, "att_default", 700, visa())
	job.OrgID = "org_default"
	if res, err := p.Process(ctx, job); err != nil || res.Outcome != processors.Succeeded {
		t.Fatalf("default merchant: %+v, %v", res, err)
	}
	if e.sim.RequestsBy(anetsim.DefaultLoginID, "createTransactionRequest") != 1 {
		t.Fatal("the default login was not used")
	}
	// Resolve looks the attempt up with the org's login too.
	res, err = p.Resolve(ctx, orgProfileJob(e, "org_a", "att_a", "3001", "4001"))
	if err != nil || res.Outcome != processors.Succeeded || res.TransactionID != txns[0].TransID {
		t.Fatalf("Resolve for org A: %+v, %v", res, err)
	}
	res, _ = p.Resolve(ctx, orgProfileJob(e, "org_b", "att_a", "3001", "4001"))
	if res.Code != "not_found" {
		t.Fatalf("org B resolved org A's transaction: %+v", res)
	}
}

// Credentials that cannot be read end the job permanently, never charged
// with another login; a temporary failure is retried; without a default
// an org without credentials is not configured.
func TestOrgProcessorCredentialFailures(t *testing.T) {
	e, _, p := orgEnv(t, true)
	ctx := context.Background()
	job := cardJob(e, "att_broken", 700, visa())
	job.OrgID = "org_broken"
	res, err := p.Process(ctx, job)
	if res.Outcome != processors.Permanent || res.Code != CodeCredentialsUnreadable || err == nil {
		t.Fatalf("unreadable credentials: %+v, %v", res, err)
	}
	job.OrgID = "org_db_down"
	if res, _ := p.Process(ctx, job); res.Outcome != processors.Retryable || res.Code != CodeCredentialsUnavailable {
		t.Fatalf("temporary failure: %+v", res)
	}
	if n := e.sim.Requests("createTransactionRequest"); n != 0 {
		t.Fatalf("%d charges sent without the org's credentials", n)
	}

	e2, m2, p2 := orgEnv(t, false)
	job = cardJob(e2, "att_none", 700, visa())
	job.OrgID = "org_default"
	if res, _ := p2.Process(ctx, job); res.Outcome != processors.Permanent || res.Code != CodeNotConfigured {
		t.Fatalf("no credentials, no default: %+v", res)
	}
	if err := m2.VerifyProfile(ctx, "org_default", "1", "2"); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("VerifyProfile without credentials: %v", err)
	}
	if strings.Contains(e2.logs.String(), "KeyOfOrg") || strings.Contains(e.logs.String(), "KeyOfOrg") {
		t.Fatal("a transaction key reached the log")
	}
}

// The cache holds at most MaxEntries orgs and reads credentials again
// after Forget.
func TestMerchantsCache(t *testing.T) {
	calls := map[string]int{}
	m, err := NewMerchants(MerchantsConfig{Base: Config{Endpoint: "http://127.0.0.1:1/x"}, MaxEntries: 2,
		Lookup: func(_ context.Context, org string) (string, string, error) {
			calls[org]++
			return "login-" + org, "key", nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, org := range []string{"a", "a", "b", "c", "a"} {
		c, err := m.Client(ctx, org)
		if err != nil || c.LoginID() != "login-"+org {
			t.Fatalf("%s: %v %v", org, c, err)
		}
	}
	if len(m.entries) > 2 || calls["a"] != 2 {
		t.Fatalf("entries %d, lookups of a %d", len(m.entries), calls["a"])
	}
	m.Forget("a")
	_, _ = m.Client(ctx, "a")
	if calls["a"] != 3 {
		t.Fatalf("lookups of a after Forget: %d", calls["a"])
	}
}
