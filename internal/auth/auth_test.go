package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func newTestSigner(t *testing.T, key string) *Signer {
	t.Helper()
	s, err := NewSigner([]byte(strings.Repeat(key, 32)[:32]), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIssueVerify(t *testing.T) {
	s := newTestSigner(t, "k")
	want := Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleServicing, Version: 7}
	tok, err := s.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(tok)
	if err != nil || got != want {
		t.Fatalf("Verify = %+v, %v; want %+v", got, err, want)
	}
}

func TestVerifyRejects(t *testing.T) {
	s := newTestSigner(t, "k")
	good, _ := s.Issue(Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleAdmin})

	other := newTestSigner(t, "x")
	forged, _ := other.Issue(Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleAdmin})

	expired := newTestSigner(t, "k")
	expired.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	old, _ := expired.Issue(Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleAdmin})

	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"iss": "payrail", "sub": "cli_1", "org": "org1", "role": "admin", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)

	badRole := newTestSigner(t, "k")
	noRole, _ := badRole.Issue(Claims{OrgID: "org1", ClientID: "cli_1", Role: "root"})

	tampered := good[:len(good)-2] + "xx"
	for name, tok := range map[string]string{
		"forged": forged, "expired": old, "alg none": none, "unknown role": noRole,
		"tampered": tampered, "garbage": "not.a.token", "empty": "",
	} {
		if _, err := s.Verify(tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: Verify = %v, want ErrInvalidToken", name, err)
		}
	}
}

func TestSecretHash(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	h, err := HashSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, secret) {
		t.Fatal("hash contains the secret")
	}
	if !CheckSecret(h, secret) {
		t.Fatal("CheckSecret rejected the right secret")
	}
	if CheckSecret(h, secret+"x") || CheckSecret(h, "") || CheckSecret("garbage", secret) {
		t.Fatal("CheckSecret accepted a wrong secret or hash")
	}
	h2, _ := HashSecret(secret)
	if h == h2 {
		t.Fatal("two hashes of one secret are equal: salt missing")
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		role string
		p    Permission
		want bool
	}{
		{RoleAdmin, PermConfigure, true},
		{RoleServicing, PermExecute, true},
		{RoleServicing, PermConfigure, false},
		{RoleOperations, PermWrite, true},
		{RoleOperations, PermExecute, false},
		{RoleReadonly, PermRead, true},
		{RoleReadonly, PermWrite, false},
		{"nobody", PermRead, false},
	}
	for _, tt := range tests {
		if got := Allows(tt.role, tt.p); got != tt.want {
			t.Errorf("Allows(%s, %d) = %v, want %v", tt.role, tt.p, got, tt.want)
		}
	}
}

// Tokens name their audience; a token for another audience, or one
// without aud, iat or a credential version, is refused.
func TestVerifyAudienceAndIssuedAt(t *testing.T) {
	s := newTestSigner(t, "k")
	key := s.Key()
	now := time.Now()
	sign := func(c jwt.MapClaims) string {
		base := jwt.MapClaims{"iss": "payrail", "sub": "cli_1", "org": "org1", "role": "admin", "ver": 1,
			"aud": Audience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		for k, v := range c {
			if v == nil {
				delete(base, k)
			} else {
				base[k] = v
			}
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, base).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if _, err := s.Verify(sign(nil)); err != nil {
		t.Fatalf("well-formed token refused: %v", err)
	}
	if _, err := s.Verify(sign(jwt.MapClaims{"iat": now.Add(30 * time.Second).Unix()})); err != nil {
		t.Fatalf("iat 30 s ahead (within skew) refused: %v", err)
	}
	for name, c := range map[string]jwt.MapClaims{
		"other audience":     {"aud": "someone-else"},
		"no audience":        {"aud": nil},
		"iat in the future":  {"iat": now.Add(10 * time.Minute).Unix()},
		"no iat":             {"iat": nil},
		"no version":         {"ver": nil},
		"audience list miss": {"aud": []string{"a", "b"}},
	} {
		if _, err := s.Verify(sign(c)); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: Verify = %v, want ErrInvalidToken", name, err)
		}
	}
	// A signer whose clock runs 10 minutes ahead issues tokens this signer refuses.
	ahead := newTestSigner(t, "k")
	ahead.now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	tok, _ := ahead.Issue(Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleAdmin})
	if _, err := s.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token from the future: Verify = %v, want ErrInvalidToken", err)
	}
}

func TestValidClientID(t *testing.T) {
	for _, id := range []string{"cli_abcdefghijklmnopqrst", "cli_234567abcdefghijklmn"} {
		if !ValidClientID(id) {
			t.Errorf("ValidClientID(%q) = false", id)
		}
	}
	for _, id := range []string{"", "cli_", "cli_nobody", "cli_abcdefghijklmnopqrs", "cli_abcdefghijklmnopqrstu",
		"cli_ABCDEFGHIJKLMNOPQRST", "cli_abcdefghijklmnopqrs1", "cli_abcdefghijklmnopqrs8", "acc_abcdefghijklmnopqrst",
		"cli_abcdefghijklmnopqrs\x00", strings.Repeat("x", 500_000)} {
		if ValidClientID(id) {
			t.Errorf("ValidClientID(%.40q) = true", id)
		}
	}
}

// The dummy hash must cost exactly what a real one does.
func TestDummyHashMatchesParameters(t *testing.T) {
	real, err := HashSecret("s")
	if err != nil {
		t.Fatal(err)
	}
	rp, dp := strings.Split(real, "$"), strings.Split(DummyHash, "$")
	if len(dp) != 6 || strings.Join(rp[:4], "$") != strings.Join(dp[:4], "$") {
		t.Fatalf("dummy hash parameters %q, real %q", strings.Join(dp[:4], "$"), strings.Join(rp[:4], "$"))
	}
	for i := 4; i < 6; i++ {
		r, _ := base64.RawStdEncoding.DecodeString(rp[i])
		d, err := base64.RawStdEncoding.DecodeString(dp[i])
		if err != nil || len(d) != len(r) {
			t.Fatalf("dummy hash part %d: %d bytes (%v), real %d", i, len(d), err, len(r))
		}
	}
	if CheckSecret(DummyHash, "s") {
		t.Fatal("dummy hash matches a secret")
	}
}
