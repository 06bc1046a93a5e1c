package intake

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
)

// cursors encodes pagination cursors. A cursor is one AES block, in
// URL-safe base64 (22 characters): the line item's seq and a 64-bit HMAC
// of (org, account, seq), encrypted under a key derived from the token
// signing key. The seq is never visible, so consecutive cursors reveal
// nothing of what other accounts or orgs created in between; the HMAC
// binds the cursor to its account, so a cursor of another account or org,
// an edited or a forged one is refused. The same item always has the same
// cursor. Rotating the signing key invalidates outstanding cursors.
type cursors struct {
	block  cipher.Block
	macKey []byte
}

func newCursors(signingKey []byte) *cursors {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, signingKey)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive("payrail cursor encryption v1")[:16])
	if err != nil {
		panic(err) // a 16-byte key is always accepted
	}
	return &cursors{block: block, macKey: derive("payrail cursor authentication v1")}
}

func (c *cursors) tag(org, account string, seq []byte) []byte {
	m := hmac.New(sha256.New, c.macKey)
	m.Write([]byte(org))
	m.Write([]byte{0})
	m.Write([]byte(account))
	m.Write([]byte{0})
	m.Write(seq)
	return m.Sum(nil)[:8]
}

func (c *cursors) encode(org, account string, seq int64) string {
	var plain, out [aes.BlockSize]byte
	binary.BigEndian.PutUint64(plain[:8], uint64(seq))
	copy(plain[8:], c.tag(org, account, plain[:8]))
	c.block.Encrypt(out[:], plain[:])
	return base64.RawURLEncoding.EncodeToString(out[:])
}

// decode returns the seq of a cursor this server issued for org and
// account; false for anything else.
func (c *cursors) decode(org, account, cursor string) (int64, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) != aes.BlockSize {
		return 0, false
	}
	var plain [aes.BlockSize]byte
	c.block.Decrypt(plain[:], raw)
	if !hmac.Equal(plain[8:], c.tag(org, account, plain[:8])) {
		return 0, false
	}
	seq := int64(binary.BigEndian.Uint64(plain[:8]))
	return seq, seq > 0
}
