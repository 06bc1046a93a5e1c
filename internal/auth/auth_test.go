package auth

import (
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
	want := Claims{OrgID: "org1", ClientID: "cli_1", Role: RoleServicing}
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
