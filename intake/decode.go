package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxBodyBytes caps every request body (docs/api.md: 413 above 1 MiB).
const maxBodyBytes = 1 << 20

// readObject reads a request body that must be one JSON object and returns
// a field reader over it. Transport-level problems (size, media type,
// syntax) are answered at once; field problems accumulate in the reader.
func readObject(r *http.Request) (*object, *apiError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, errorf(http.StatusUnsupportedMediaType, codeUnsupportedMediaType,
				"Content-Type must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errorf(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "the body exceeds %d bytes", maxBodyBytes)
		}
		return nil, errorf(http.StatusBadRequest, codeMalformedJSON, "the body could not be read")
	}
	return parseObjectBody(body)
}

// parseObjectBody is readObject after the bytes are in hand; the fuzz
// target drives it directly.
func parseObjectBody(body []byte) (*object, *apiError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errorf(http.StatusBadRequest, codeMalformedJSON, "the body is empty; send a JSON object")
	}
	// One pass validates the body and splits its members: json.Unmarshal
	// checks the whole input before it decodes anything, and answers a
	// *json.SyntaxError exactly when json.Valid is false.
	p := &problems{}
	m, err := objectMembers(body)
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return nil, errorf(http.StatusBadRequest, codeMalformedJSON, "the body is not valid JSON")
	}
	o := p.objectOf("", m, err)
	if o == nil {
		return nil, invalid(p.details)
	}
	return o, nil
}

// objectMembers splits a JSON object into its members.
func objectMembers(raw []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	err := json.Unmarshal(raw, &m)
	return m, err
}

// problems collects one Detail per offending field.
type problems struct {
	details []Detail
}

func (p *problems) add(field, msg string) {
	p.details = append(p.details, Detail{Field: field, Message: msg})
}

func (p *problems) err() *apiError {
	if len(p.details) == 0 {
		return nil
	}
	return invalid(p.details)
}

// object reads the members of one JSON object by name, recording a
// problem for each member of the wrong type and, at finish, for each
// member nobody asked for (unknown fields are rejected).
type object struct {
	path    string
	members map[string]json.RawMessage
	used    map[string]bool
	p       *problems
}

// object parses raw as a JSON object at path; nil (with a problem) if it is not one.
func (p *problems) object(path string, raw json.RawMessage) *object {
	m, err := objectMembers(raw)
	return p.objectOf(path, m, err)
}

// objectOf is object once raw was split into m (err: it was no object).
func (p *problems) objectOf(path string, m map[string]json.RawMessage, err error) *object {
	if err != nil || m == nil {
		p.add(pointerOr(path), "must be a JSON object")
		return nil
	}
	return &object{path: path, members: m, used: make(map[string]bool, len(m)), p: p}
}

func pointerOr(path string) string {
	if path == "" {
		return "/"
	}
	return path
}

func (o *object) pointer(name string) string {
	name = strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
	return o.path + "/" + name
}

// member returns the raw value of name; absent and null both count as absent.
func (o *object) member(name string) (json.RawMessage, bool) {
	o.used[name] = true
	raw, ok := o.members[name]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return nil, false
	}
	return raw, true
}

func (o *object) require(name string) {
	if _, ok := o.member(name); !ok {
		o.p.add(o.pointer(name), "is required")
	}
}

func (o *object) has(name string) bool {
	_, ok := o.member(name)
	return ok
}

// str reads a string member. Every string of a body is read here, so this
// is where text PostgreSQL cannot store is refused: invalid UTF-8 (which
// encoding/json would silently turn into U+FFFD) and NUL (\u0000).
func (o *object) str(name string) (string, bool) {
	raw, ok := o.member(name)
	if !ok {
		return "", false
	}
	s, ok := jsonString(raw)
	if !ok {
		o.p.add(o.pointer(name), "must be a string")
		return "", false
	}
	if !utf8.Valid(raw) || !storable(s) {
		o.p.add(o.pointer(name), notStorable)
		return "", false
	}
	return s, true
}

// jsonString decodes raw, a valid JSON value, if it is a string. A
// string without escapes is its bytes between the quotes (a valid JSON
// string has no raw quote or control character inside), so only one
// with a backslash goes through json.Unmarshal.
func jsonString(raw []byte) (string, bool) {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' && bytes.IndexByte(raw[1:n-1], '\\') < 0 {
		return string(raw[1 : n-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// notStorable is the message for text that storable refuses.
const notStorable = "must be valid UTF-8 without NUL characters"

// storable reports whether s can be stored as PostgreSQL text or jsonb:
// valid UTF-8 without NUL. Body strings, path ids, query values and token
// credentials are all checked with it.
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

func (o *object) integer(name string) (int64, bool) {
	raw, ok := o.member(name)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil {
		o.p.add(o.pointer(name), "must be an integer number of cents")
		return 0, false
	}
	return v, true
}

func (o *object) boolean(name string) (bool, bool) {
	raw, ok := o.member(name)
	if !ok {
		return false, false
	}
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	o.p.add(o.pointer(name), "must be true or false")
	return false, false
}

func (o *object) timestamp(name string) (time.Time, bool) {
	s, ok := o.str(name)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		o.p.add(o.pointer(name), "must be an RFC 3339 date-time such as 2026-07-20T09:11:28+00:00")
		return time.Time{}, false
	}
	return t.UTC(), true
}

func (o *object) child(name string) (*object, bool) {
	raw, ok := o.member(name)
	if !ok {
		return nil, false
	}
	c := o.p.object(o.pointer(name), raw)
	return c, c != nil
}

// enum reads a string that must be one of allowed.
func (o *object) enum(name string, allowed ...string) (string, bool) {
	s, ok := o.str(name)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	o.p.add(o.pointer(name), "must be one of "+strings.Join(allowed, ", "))
	return "", false
}

// check records a problem at name when err is not nil.
func (o *object) check(name string, err error) bool {
	if err != nil {
		o.p.add(o.pointer(name), err.Error())
		return false
	}
	return true
}

// finish rejects every member no reader asked for.
func (o *object) finish() {
	var unknown []string
	for name := range o.members {
		if !o.used[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		o.p.add(o.pointer(name), "is not a known field")
	}
}
