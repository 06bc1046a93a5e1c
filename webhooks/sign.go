package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
)

// Sign is the envelope's hmac_signature: HMAC-SHA256 keyed with the org's
// signing secret (the whole "whsec_…" string, as bytes) over the exact
// bytes of the envelope's data member, in standard base64.
func Sign(secret string, data []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(data)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify reports whether body is an envelope signed with secret. It is
// what a Go receiver does (see the README): decode data as raw bytes and
// compare in constant time.
func Verify(secret string, body []byte) bool {
	var env struct {
		Data      json.RawMessage `json:"data"`
		Signature string          `json:"hmac_signature"`
	}
	if json.Unmarshal(body, &env) != nil || len(env.Data) == 0 {
		return false
	}
	want, err := base64.StdEncoding.DecodeString(env.Signature)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(env.Data)
	return hmac.Equal(mac.Sum(nil), want)
}

// envelope renders {"event","data","hmac_signature"} by hand, so the data
// member is byte for byte what was signed (encoding/json would re-encode
// a RawMessage).
func envelope(event string, data []byte, signature string) []byte {
	b := make([]byte, 0, len(data)+len(event)+len(signature)+48)
	b = append(b, `{"event":`...)
	b = strconv.AppendQuote(b, event)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, `,"hmac_signature":`...)
	b = strconv.AppendQuote(b, signature)
	return append(b, '}')
}
