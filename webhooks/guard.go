package webhooks

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrAddressNotAllowed is returned (wrapped) when an endpoint resolves to
// an address payrail does not deliver to without AllowPrivate.
var ErrAddressNotAllowed = errors.New("webhooks: destination address is loopback, private, link-local or otherwise not public")

// blocked are the ranges refused unless private destinations are allowed,
// beside what netip's predicates catch (loopback, private, link-local,
// unspecified, multicast).
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
}

// PublicAddr reports whether a is an address payrail delivers to by
// default: not loopback, private (RFC 1918, fc00::/7), link-local
// (169.254/16 — cloud metadata — and fe80::/10), unspecified, multicast,
// carrier-grade NAT or reserved. IPv4-mapped IPv6 addresses are judged as
// IPv4.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// ValidateURL checks an endpoint URL when it is subscribed: https (http
// only with allowPrivate, for development), a host, no user info, and —
// unless allowPrivate — no literal non-public address. Host names are
// checked again at every connection (Client), after resolution.
func ValidateURL(raw string, allowPrivate bool) error {
	if len(raw) > 2048 {
		return errors.New("must be at most 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Hostname() == "" {
		return errors.New("must be an absolute https URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowPrivate:
	default:
		return errors.New("must be an https URL")
	}
	if u.User != nil {
		return errors.New("must not carry user information")
	}
	if u.Fragment != "" {
		return errors.New("must not have a fragment")
	}
	if a, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !allowPrivate && !PublicAddr(a) {
		return errors.New("must not point at a loopback, private or link-local address")
	}
	if !allowPrivate && strings.EqualFold(strings.TrimSuffix(u.Hostname(), "."), "localhost") {
		return errors.New("must not point at a loopback, private or link-local address")
	}
	return nil
}

// ClientOptions shape the HTTP client that delivers webhooks.
type ClientOptions struct {
	// Timeout bounds one attempt: connect, TLS, request and response.
	Timeout time.Duration
	// AllowPrivate lets deliveries reach loopback, private and link-local
	// addresses (development, tests, endpoints inside the cluster).
	AllowPrivate bool
}

// NewClient returns the delivery client: bounded timeouts, no proxy from
// the environment, no redirects followed (a 3xx is the answer), and,
// unless AllowPrivate, a dialer that refuses non-public addresses after
// DNS resolution, at connect time, so a name that resolves differently
// later (DNS rebinding) cannot reach an internal service.
func NewClient(o ClientOptions) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	dialer := &net.Dialer{Timeout: min(o.Timeout, 5*time.Second)}
	if !o.AllowPrivate {
		dialer.Control = refuseNonPublic
	}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would be dialled instead of the endpoint, defeating the check
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    min(o.Timeout, 5*time.Second),
		ResponseHeaderTimeout:  o.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// refuseNonPublic is a net.Dialer Control function: address is the
// resolved IP and port about to be connected to.
func refuseNonPublic(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrAddressNotAllowed, address)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !PublicAddr(a) {
		return fmt.Errorf("%w: %s", ErrAddressNotAllowed, address)
	}
	return nil
}
