// Package keyring seals and opens sensitive values (bank account numbers,
// payment details inside jobs) with AES-256-GCM. Each sealed value names the
// key that sealed it, so keys can be rotated: new values use the current key
// and old ones still open while their key stays configured.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownKey means a sealed value names a key id the ring does not hold.
var ErrUnknownKey = errors.New("keyring: unknown key id")

// ErrOpen means a sealed value is malformed, was sealed for another context,
// or has been tampered with.
var ErrOpen = errors.New("keyring: cannot open sealed value")

// Ring holds the configured keys. It is safe for concurrent use.
type Ring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// New builds a ring from key id → 32-byte key; current names the key that
// seals new values.
func New(current string, keys map[string][]byte) (*Ring, error) {
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("keyring: current key %q is not among the configured keys", current)
	}
	r := &Ring{current: current, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if id == "" || len(id) > 255 || strings.ContainsAny(id, ",=") {
			return nil, fmt.Errorf("keyring: key id %q must be 1-255 characters without ',' or '='", id)
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("keyring: key %q is %d bytes, want 32 (AES-256)", id, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", id, err)
		}
		r.aeads[id] = aead
	}
	return r, nil
}

// Parse reads the PAYRAIL_ENCRYPTION_KEYS format: comma-separated
// "id=base64key" pairs. current may be empty to mean the first pair.
func Parse(spec, current string) (*Ring, error) {
	keys := map[string][]byte{}
	first := ""
	for _, pair := range strings.Split(spec, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		id, b64, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("keyring: %q is not id=base64key", redactPair(pair))
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q is not valid base64", id)
		}
		if first == "" {
			first = id
		}
		keys[id] = key
	}
	if len(keys) == 0 {
		return nil, errors.New("keyring: no keys configured")
	}
	if current == "" {
		current = first
	}
	return New(current, keys)
}

// NewKey returns a fresh random 32-byte key encoded for Parse.
func NewKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("keyring: read random key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// Seal encrypts plaintext with the current key. context is authenticated but
// not stored: a value sealed for one row cannot be opened as another's.
//
// Layout: len(keyID) | keyID | nonce | ciphertext+tag.
func (r *Ring) Seal(plaintext, context []byte) ([]byte, error) {
	aead := r.aeads[r.current]
	out := make([]byte, 0, 1+len(r.current)+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out = append(out, byte(len(r.current)))
	out = append(out, r.current...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keyring: read nonce: %w", err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, context), nil
}

// Open decrypts a value produced by Seal with the same context.
func (r *Ring) Open(sealed, context []byte) ([]byte, error) {
	if len(sealed) < 1 {
		return nil, ErrOpen
	}
	n := int(sealed[0])
	if len(sealed) < 1+n {
		return nil, ErrOpen
	}
	aead, ok := r.aeads[string(sealed[1:1+n])] // no copy of the key id on the way
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, sealed[1:1+n])
	}
	rest := sealed[1+n:]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], context)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// CurrentKeyID names the key new values are sealed with.
func (r *Ring) CurrentKeyID() string { return r.current }

func redactPair(pair string) string {
	id, _, _ := strings.Cut(pair, "=")
	if len(id) > 20 {
		id = id[:20]
	}
	return id + "=…"
}
