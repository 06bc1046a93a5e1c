package auth

import (
	"crypto/sha256"
	"strings"
	"sync"
	"time"
)

// Verifier is Signer.Verify with a memory: the first request with a token
// verifies it (base64, JSON, the HMAC, the claims), and the token's next
// requests, until it expires, find its claims by the SHA-256 of the token
// instead. The signature, algorithm, issuer, audience and claims of a
// token are properties of its bytes and the key, so they hold for as long
// as the bytes are the same; the checks that depend on the time (exp, nbf,
// iat not in the future) are made again at every use, as Verify makes
// them, so a token is accepted exactly when Verify would accept it. Only
// tokens Verify accepted are remembered, so tokens that fail cost what
// they cost before; and what is revoked is decided after Verify, by the
// caller's check of the client's credential version (intake), on every
// request as before. The tokens themselves are not kept, only their
// hashes. Safe for concurrent use.
type Verifier struct {
	now    func() time.Time
	verify func(token string) (verified, error) // Signer.verify; tests count calls
	max    int

	mu      sync.Mutex
	entries map[[sha256.Size]byte]verified
}

// verified is what Verify found in a token: its claims and its times.
type verified struct {
	claims        Claims
	iat, nbf, exp time.Time // nbf zero when the token has none
}

// valid repeats Verify's checks of the time at now.
func (v verified) valid(now time.Time) bool {
	return now.Before(v.exp) && (v.nbf.IsZero() || !now.Before(v.nbf)) && !v.iat.After(now.Add(MaxClockSkew))
}

// NewVerifier returns a Verifier for s's tokens that remembers at most max
// tokens (a few hundred bytes each).
func NewVerifier(s *Signer, max int) *Verifier {
	return &Verifier{now: func() time.Time { return s.now() }, verify: s.verify, max: max,
		entries: map[[sha256.Size]byte]verified{}}
}

// Verify is Signer.Verify.
func (v *Verifier) Verify(token string) (Claims, error) {
	key := sha256.Sum256([]byte(token))
	now := v.now()
	v.mu.Lock()
	e, ok := v.entries[key]
	v.mu.Unlock()
	if ok && e.valid(now) {
		return e.claims, nil
	}
	e, err := v.verify(token)
	if err != nil {
		if ok {
			v.mu.Lock()
			delete(v.entries, key)
			v.mu.Unlock()
		}
		return Claims{}, err
	}
	// Copies, so that an entry never pins a request's memory.
	e.claims.OrgID, e.claims.ClientID, e.claims.Role = strings.Clone(e.claims.OrgID),
		strings.Clone(e.claims.ClientID), strings.Clone(e.claims.Role)
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.entries) >= v.max {
		for k, old := range v.entries {
			if !now.Before(old.exp) {
				delete(v.entries, k)
			}
		}
		if len(v.entries) >= v.max {
			clear(v.entries)
		}
	}
	v.entries[key] = e
	return e.claims, nil
}

// Len is how many tokens v remembers.
func (v *Verifier) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.entries)
}
