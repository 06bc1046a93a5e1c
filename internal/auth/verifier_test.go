package auth

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// clockSigner is a test signer whose clock the test moves.
func clockSigner(t *testing.T) (*Signer, *atomic.Int64) {
	t.Helper()
	s := newTestSigner(t, "k")
	var offset atomic.Int64
	s.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	return s, &offset
}

// countVerifies makes v count the tokens it verifies in full.
func countVerifies(v *Verifier) *atomic.Int64 {
	var n atomic.Int64
	inner := v.verify
	v.verify = func(token string) (verified, error) {
		n.Add(1)
		return inner(token)
	}
	return &n
}

// A token is verified in full once; its next uses are answered from the
// memory with the same claims.
func TestVerifierRemembers(t *testing.T) {
	s, _ := clockSigner(t)
	v := NewVerifier(s, 100)
	full := countVerifies(v)
	want := Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleServicing, Version: 7}
	tok, err := s.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		got, err := v.Verify(tok)
		if err != nil || got != want {
			t.Fatalf("Verify = %+v, %v; want %+v", got, err, want)
		}
	}
	if n := full.Load(); n != 1 {
		t.Errorf("verified in full %d times, want 1", n)
	}
}

// A remembered token is refused once it expires, and before its nbf if
// the clock steps back, exactly as Verify refuses it; the entry goes.
func TestVerifierRefusesExpired(t *testing.T) {
	s, offset := clockSigner(t)
	v := NewVerifier(s, 100)
	tok, _ := s.Issue(Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleAdmin, Version: 1})
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(-time.Minute)) // the clock steps back before nbf
	if _, err := v.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("before nbf: %v, want ErrInvalidToken", err)
	}
	if _, err := s.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Signer.Verify before nbf: %v, want ErrInvalidToken (the test's premise)", err)
	}
	offset.Store(0)
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("back in its lifetime: %v", err)
	}
	offset.Store(int64(s.TTL() + time.Second))
	if _, err := v.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("expired: %v, want ErrInvalidToken", err)
	}
	if n := v.Len(); n != 0 {
		t.Errorf("%d tokens remembered after expiry, want 0", n)
	}
}

// Tokens Verify refuses are not remembered, and a remembered token does
// not vouch for another string (a tampered copy, a forgery).
func TestVerifierRefusesWhatVerifyRefuses(t *testing.T) {
	s, _ := clockSigner(t)
	v := NewVerifier(s, 100)
	good, _ := s.Issue(Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleAdmin, Version: 1})
	if _, err := v.Verify(good); err != nil {
		t.Fatal(err)
	}
	forged, _ := newTestSigner(t, "x").Issue(Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleAdmin, Version: 1})
	for name, tok := range map[string]string{
		"tampered": good[:len(good)-2] + "xx", "forged": forged, "garbage": "not.a.token", "empty": "",
		"padded": good + " ",
	} {
		for range 2 {
			if _, err := v.Verify(tok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("%s: Verify = %v, want ErrInvalidToken", name, err)
			}
		}
	}
	if n := v.Len(); n != 1 {
		t.Errorf("%d tokens remembered, want 1 (the good one)", n)
	}
}

// The memory holds at most its bound.
func TestVerifierBounded(t *testing.T) {
	s, _ := clockSigner(t)
	v := NewVerifier(s, 3)
	for i := range 10 {
		tok, _ := s.Issue(Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleAdmin, Version: int64(i)})
		if c, err := v.Verify(tok); err != nil || c.Version != int64(i) {
			t.Fatalf("token %d: %+v, %v", i, c, err)
		}
		if n := v.Len(); n > 3 {
			t.Fatalf("%d tokens remembered, bound 3", n)
		}
	}
}

// BenchmarkVerify compares a token's full verification with a remembered
// one's.
func BenchmarkVerify(b *testing.B) {
	s, err := NewSigner([]byte("0123456789abcdef0123456789abcdef"), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := s.Issue(Claims{OrgID: "org_abcdefghijklmnopqrst", ClientID: "cli_abcdefghijklmnopqrst", Role: RoleServicing,
		Version: 3})
	b.Run("signer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verifier", func(b *testing.B) {
		v := NewVerifier(s, 100)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
