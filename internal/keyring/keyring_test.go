package keyring

import (
	"bytes"
	"errors"
	"testing"
)

func testRing(t *testing.T, current string, ids ...string) *Ring {
	t.Helper()
	keys := map[string][]byte{}
	for i, id := range ids {
		keys[id] = bytes.Repeat([]byte{byte(i + 1)}, 32)
	}
	r, err := New(current, keys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := testRing(t, "k1", "k1")
	sealed, err := r.Seal([]byte("123456789"), []byte("org/acct"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("123456789")) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := r.Open(sealed, []byte("org/acct"))
	if err != nil || string(got) != "123456789" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := r.Open(sealed, []byte("org/other")); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open with another context = %v, want ErrOpen", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := r.Open(sealed, []byte("org/acct")); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open of tampered value = %v, want ErrOpen", err)
	}
}

func TestRotation(t *testing.T) {
	old := testRing(t, "k1", "k1")
	sealed, err := old.Seal([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rotated := testRing(t, "k2", "k1", "k2")
	if got, err := rotated.Open(sealed, nil); err != nil || string(got) != "secret" {
		t.Fatalf("rotated ring cannot open old value: %q, %v", got, err)
	}
	fresh, _ := rotated.Seal([]byte("secret"), nil)
	if _, err := old.Open(fresh, nil); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old ring opened a value sealed with k2: %v", err)
	}
}

func TestParse(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse("a="+k+", b="+k, "")
	if err != nil || r.CurrentKeyID() != "a" {
		t.Fatalf("Parse = %v, current %q", err, r.CurrentKeyID())
	}
	for _, bad := range []string{"", "a", "a=!!!", "a=" + k[:10]} {
		if _, err := Parse(bad, ""); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if _, err := Parse("a="+k, "b"); err == nil {
		t.Error("Parse accepted a current key that is not configured")
	}
}

func TestOpenMalformed(t *testing.T) {
	r := testRing(t, "k1", "k1")
	for _, in := range [][]byte{nil, {5}, {2, 'k', '1'}, append([]byte{2, 'k', '1'}, make([]byte, 10)...)} {
		if _, err := r.Open(in, nil); err == nil {
			t.Errorf("Open(%v) succeeded", in)
		}
	}
}
