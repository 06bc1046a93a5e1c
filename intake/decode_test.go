package intake

import (
	"encoding/json"
	"testing"
	"time"
)

// jsonString reads what json.Unmarshal reads: the same string for every
// JSON string, escaped or not, and no string for any other value. (Bytes
// that are not UTF-8 differ: Unmarshal replaces them with U+FFFD, jsonString
// keeps them; str refuses both alike.)
func TestJSONString(t *testing.T) {
	for _, raw := range []string{
		`""`, `"a"`, `"Ada Lovelace"`, `"4007000000027"`, `"é漢字😀"`, `"a\"b"`, `"a\\b"`, `"\u0000"`, `"\ud800"`,
		`"\u00e9"`, `"tab\tnew\nline"`, `"/\/"`, `1`, `null`, `true`, `{}`, `[]`, `["a"]`, `{"a":"b"}`,
	} {
		var want string
		wantErr := json.Unmarshal([]byte(raw), &want)
		got, ok := jsonString([]byte(raw))
		if ok != (wantErr == nil) || got != want {
			t.Errorf("jsonString(%s) = %q, %v; json.Unmarshal: %q, %v", raw, got, ok, want, wantErr)
		}
	}
	// Not UTF-8: kept as sent, for str to refuse.
	if got, ok := jsonString([]byte("\"a\xffb\"")); !ok || got != "a\xffb" {
		t.Errorf("invalid UTF-8: %q, %v", got, ok)
	}
}

// One pass over the body tells malformed JSON (400 malformed_json) from a
// value that is not an object (422 at /), as json.Valid before it did.
func TestParseObjectBodyAnswers(t *testing.T) {
	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{``, 400, codeMalformedJSON},
		{`  `, 400, codeMalformedJSON},
		{`{`, 400, codeMalformedJSON},
		{`{"a":1,}`, 400, codeMalformedJSON},
		{`{"a":1} x`, 400, codeMalformedJSON},
		{"\xff\xfe", 400, codeMalformedJSON},
		{`[]`, 422, ""},
		{`null`, 422, ""},
		{`"\ud800"`, 422, ""},
		{`12`, 422, ""},
		{`{"a":"b"}`, 0, ""},
		{"{\"a\":\"\xff\"}", 0, ""},
	} {
		o, aerr := parseObjectBody([]byte(c.body))
		switch {
		case c.status == 0 && (aerr != nil || o == nil):
			t.Errorf("%q: %+v, want an object", c.body, aerr)
		case c.status != 0 && (aerr == nil || aerr.Status != c.status || (c.code != "" && aerr.Code != c.code)):
			t.Errorf("%q: %+v, want %d %s", c.body, aerr, c.status, c.code)
		}
	}
}

// BenchmarkParseGuestPayment is the decoding of a card guest payment's
// body, as payrail bench sends it.
func BenchmarkParseGuestPayment(b *testing.B) {
	body := []byte(`{"line_item_id":"bench-r1-12345","original_amount_cents":1999,"payment_details":{"payment_type":"DEBIT",` +
		`"payment_processor_name":"AUTHORIZE_NET","card_number":"4007000000027","expiration_date":"12/31","cvv":"123",` +
		`"zip":"12345"}}`)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		o, aerr := parseObjectBody(body)
		if aerr != nil {
			b.Fatal(aerr)
		}
		if _, aerr := parseGuestPayment(o, now); aerr != nil {
			b.Fatal(aerr)
		}
	}
}
