package authorizenet

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
)

// Endpoints. The sandbox is the default, so a missing setting can never
// charge real cards.
const (
	SandboxEndpoint    = "https://apitest.authorize.net/xml/v1/request.api"
	ProductionEndpoint = "https://api2.authorize.net/xml/v1/request.api"
)

// DefaultTimeout bounds one API call when Config.Timeout is zero. The
// PHP SDK uses 45 s; a shorter limit turns slow approvals into unknown
// outcomes, which are safe here but cost a lookup.
const DefaultTimeout = 45 * time.Second

// clientID identifies payrail in the clientId element, as the SDKs
// identify themselves ("sdk-node-1.0.10").
const clientID = "payrail-go"

// Config configures a Client.
type Config struct {
	// Endpoint is the API URL. Default SandboxEndpoint.
	Endpoint string
	// LoginID and TransactionKey are the merchant's API credentials.
	LoginID        string
	TransactionKey string
	// Timeout bounds each call, on top of the caller's context.
	// Default DefaultTimeout.
	Timeout time.Duration
	// HTTPClient sends the requests. Its Timeout should be zero or longer
	// than Timeout. Default: a client with its own transport (TLS 1.2+).
	HTTPClient *http.Client
	// Metrics, when set, counts calls by operation and result.
	Metrics *Metrics
	// Tracer, when set, records a client span per API call; nil records
	// none.
	Tracer trace.Tracer
}

func (c Config) withDefaults() (Config, error) {
	if c.Endpoint == "" {
		c.Endpoint = SandboxEndpoint
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return c, fmt.Errorf("authorizenet: endpoint %q is not an http(s) URL", c.Endpoint)
	}
	// Lengths from merchantAuthenticationType: longer values could only
	// be answered with E00003.
	switch {
	case c.LoginID == "" || c.TransactionKey == "":
		return c, errors.New("authorizenet: LoginID and TransactionKey are required")
	case utf8.RuneCountInString(c.LoginID) > 25:
		return c, errors.New("authorizenet: LoginID is longer than 25 characters")
	case utf8.RuneCountInString(c.TransactionKey) > 16:
		return c, errors.New("authorizenet: TransactionKey is longer than 16 characters")
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12} // the API requires TLS 1.2
		// As many idle connections as a worker has calls in flight (its
		// default concurrency): fewer would close and reopen connections
		// at every call once hundreds run at once.
		t.MaxIdleConnsPerHost = 1024
		c.HTTPClient = &http.Client{Transport: t}
	}
	return c, nil
}
