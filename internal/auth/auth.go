// Package auth issues and verifies payrail's access tokens, hashes API
// client secrets, and decides what each role may do.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/argon2"
)

// ErrInvalidToken covers every token that must be answered with 401:
// malformed, expired, forged, or signed with another key.
var ErrInvalidToken = errors.New("auth: invalid access token")

// Roles. Canopy grants executing payments to fewer roles than recording
// them; payrail follows: operations may record but not execute.
const (
	RoleAdmin      = "admin"      // everything, including org and account configuration
	RoleServicing  = "servicing"  // accounts, ledger writes, executing payments
	RoleOperations = "operations" // accounts and ledger writes, no payment execution
	RoleReadonly   = "readonly"   // reads only
)

// Permission names one kind of action a route performs.
type Permission int

const (
	PermRead      Permission = iota // GET accounts and line items
	PermWrite                       // create accounts, record payments and charges, edit line items
	PermExecute                     // guest_payment, payment_transfer
	PermConfigure                   // payment processor and NACHA configuration
)

// ValidRole reports whether r names a role.
func ValidRole(r string) bool {
	switch r {
	case RoleAdmin, RoleServicing, RoleOperations, RoleReadonly:
		return true
	}
	return false
}

// Allows reports whether role may perform p.
func Allows(role string, p Permission) bool {
	switch role {
	case RoleAdmin:
		return true
	case RoleServicing:
		return p != PermConfigure
	case RoleOperations:
		return p == PermRead || p == PermWrite
	case RoleReadonly:
		return p == PermRead
	}
	return false
}

// Claims is what an access token says about its bearer.
type Claims struct {
	OrgID    string `json:"org"`
	ClientID string `json:"sub"`
	Role     string `json:"role"`
	// Version is the client's credential version when the token was
	// issued. Disabling the client, changing its role or rotating its
	// secret bumps the version in the database, and the API refuses tokens
	// that carry an older one.
	Version int64 `json:"ver"`
}

const (
	issuer = "payrail"
	// Audience is the aud claim of every access token: tokens are for the
	// payrail API and nothing else.
	Audience = "payrail-api"
	// MaxClockSkew is how far in the future a token's iat may be before it
	// is refused: clocks of API replicas differ a little, not by minutes.
	MaxClockSkew = time.Minute
)

// ClientIDPrefix starts every API client id.
const ClientIDPrefix = "cli_"

// clientIDLen is the length of a client id: the prefix and 20 lowercase
// base32 characters (store.NewID("cli_")).
const clientIDLen = len(ClientIDPrefix) + 20

// ValidClientID reports whether id has the shape of a client id payrail
// generates. The token endpoint answers anything else with 401 before it
// looks in the database or hashes anything.
func ValidClientID(id string) bool {
	if len(id) != clientIDLen || !strings.HasPrefix(id, ClientIDPrefix) {
		return false
	}
	for i := len(ClientIDPrefix); i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// Signer issues and verifies HS256-signed JWT access tokens.
type Signer struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewSigner returns a Signer; key must be at least 32 bytes.
func NewSigner(key []byte, ttl time.Duration) (*Signer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("auth: signing key is %d bytes, want at least 32", len(key))
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("auth: token lifetime must be positive, got %s", ttl)
	}
	return &Signer{key: key, ttl: ttl, now: time.Now}, nil
}

// TTL is how long issued tokens live.
func (s *Signer) TTL() time.Duration { return s.ttl }

type tokenClaims struct {
	OrgID   string `json:"org"`
	Role    string `json:"role"`
	Version *int64 `json:"ver"`
	jwt.RegisteredClaims
}

// Issue returns a signed token for c.
func (s *Signer) Issue(c Claims) (string, error) {
	now := s.now().UTC()
	version := c.Version
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, tokenClaims{
		OrgID:   c.OrgID,
		Role:    c.Role,
		Version: &version,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   c.ClientID,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.ttl)),
		},
	})
	signed, err := tok.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return signed, nil
}

// Verify checks a token's signature, algorithm, issuer, audience and
// lifetime, and that it was not issued in the future (beyond
// MaxClockSkew). Whether the client still exists, is enabled and still has
// the token's credential version is the caller's to check.
func (s *Signer) Verify(token string) (Claims, error) {
	v, err := s.verify(token)
	return v.claims, err
}

// verify is Verify, returning the token's times with its claims.
func (s *Signer) verify(token string) (verified, error) {
	var tc tokenClaims
	_, err := jwt.ParseWithClaims(token, &tc, func(*jwt.Token) (any, error) { return s.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		return verified{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if tc.IssuedAt == nil {
		return verified{}, fmt.Errorf("%w: no iat", ErrInvalidToken)
	}
	if tc.IssuedAt.Time.After(s.now().Add(MaxClockSkew)) {
		return verified{}, fmt.Errorf("%w: issued in the future (iat %s)", ErrInvalidToken, tc.IssuedAt.Time.UTC().Format(time.RFC3339))
	}
	if tc.OrgID == "" || tc.Subject == "" || !ValidRole(tc.Role) || tc.Version == nil {
		return verified{}, fmt.Errorf("%w: missing org, subject, role or credential version", ErrInvalidToken)
	}
	v := verified{claims: Claims{OrgID: tc.OrgID, ClientID: tc.Subject, Role: tc.Role, Version: *tc.Version},
		iat: tc.IssuedAt.Time, exp: tc.ExpiresAt.Time} // WithExpirationRequired: exp is set
	if tc.NotBefore != nil {
		v.nbf = tc.NotBefore.Time
	}
	return v, nil
}

// NewSecret returns a fresh client secret (256 bits, URL-safe).
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: read random secret: %w", err)
	}
	return "sk_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// argon2id parameters: OWASP's minimum profile (19 MiB, 2 passes). Secrets
// are random 256-bit values, so the hash guards a database leak, not weak
// passwords; these costs keep /auth/token fast.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// DummyHash has HashSecret's parameters and is checked when a client id is
// unknown, so that an unknown id and a wrong secret cost the same time
// (TestDummyHashMatchesParameters keeps the parameters in step).
const DummyHash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$7S1Y1ac6eNpDO4fRQZ5i8m5cYSzRDRJWlpX7tFFTxGo"

// HashSecret returns an encoded argon2id hash of secret.
func HashSecret(secret string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: read salt: %w", err)
	}
	sum := argon2.IDKey([]byte(secret), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum)), nil
}

// CheckSecret reports whether secret matches an encoded hash from HashSecret.
func CheckSecret(encoded, secret string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var mem uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil {
		return false
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(secret), salt, t, mem, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// Key returns the signing key, from which other server secrets may be derived.
func (s *Signer) Key() []byte { return s.key }
