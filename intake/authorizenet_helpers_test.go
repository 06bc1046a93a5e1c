package intake

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors/authorizenet"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
)

// Profile ids the default merchant of every harness's simulator has.
const (
	testCustomerProfile = "1929820324"
	testPaymentProfile  = "1841987457"
)

// newAuthorizeNet starts a simulator whose default merchant owns the test
// profile and returns it with Merchants reading org credentials from st
// (the default login being the simulator's), as cmd/payrail wires it.
func newAuthorizeNet(t testing.TB, st *store.Store) (*anetsim.Server, *authorizenet.Merchants) {
	t.Helper()
	sim, err := anetsim.New(anetsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sim.AddProfile(testCustomerProfile, testPaymentProfile, anetsim.Profile{CardNumber: "4007000000027", ExpirationDate: "2035-12"})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	t.Cleanup(sim.Close)
	m, err := authorizenet.NewMerchants(authorizenet.MerchantsConfig{
		Base: authorizenet.Config{Endpoint: ts.URL + anetsim.Path, LoginID: anetsim.DefaultLoginID,
			TransactionKey: anetsim.DefaultTransactionKey, Timeout: 2 * time.Second},
		Lookup: func(ctx context.Context, org string) (string, string, error) {
			login, key, err := st.AuthorizeNetCredentials(ctx, org)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return "", "", authorizenet.ErrNoOrgCredentials
			case err != nil && !errors.Is(err, store.ErrSealed):
				return "", "", authorizenet.TemporaryLookupError(err)
			}
			return login, key, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return sim, m
}
