package anetsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

const namespace = "AnetApi/xml/v1/schema/AnetApiSchema.xsd"

// maxDepth bounds the nesting of request JSON, so a hostile body cannot
// exhaust the stack; the deepest real request is about eight levels.
const maxDepth = 32

// jsonValue is a JSON value that remembers the order of object keys,
// which encoding/json's map decoding forgets and the XSD cares about.
type jsonValue struct {
	kind   byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	text   string
	fields []jsonField
	items  []jsonValue
}

type jsonField struct {
	key string
	val jsonValue
}

// errSchema is an E00003: the request does not match the schema.
type errSchema struct{ msg string }

func (e *errSchema) Error() string { return e.msg }

func schemaErr(format string, args ...any) error {
	return &errSchema{msg: fmt.Sprintf(format, args...)}
}

// errUnknownMethod is an E00004: the root key names no API method.
var errUnknownMethod = errors.New("the name of the requested API method is invalid")

func parseOrdered(data []byte) (jsonValue, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readValue(dec, 0)
	if err != nil {
		return v, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return v, schemaErr("Data at the root level is invalid: additional text after the request object.")
	}
	return v, nil
}

func readValue(dec *json.Decoder, depth int) (jsonValue, error) {
	if depth > maxDepth {
		return jsonValue{}, schemaErr("The request is nested too deeply.")
	}
	tok, err := dec.Token()
	if err != nil {
		return jsonValue{}, schemaErr("Data at the root level is invalid: %s", jsonSyntax(err))
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := jsonValue{kind: 'o'}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return v, schemaErr("Data at the root level is invalid: %s", jsonSyntax(err))
				}
				key, _ := kt.(string)
				if seen[key] {
					return v, schemaErr("Duplicate element '%s' in namespace '%s'.", key, namespace)
				}
				seen[key] = true
				val, err := readValue(dec, depth+1)
				if err != nil {
					return v, err
				}
				v.fields = append(v.fields, jsonField{key: key, val: val})
			}
			if _, err := dec.Token(); err != nil {
				return v, schemaErr("Data at the root level is invalid: %s", jsonSyntax(err))
			}
			return v, nil
		case '[':
			v := jsonValue{kind: 'a'}
			for dec.More() {
				item, err := readValue(dec, depth+1)
				if err != nil {
					return v, err
				}
				v.items = append(v.items, item)
			}
			if _, err := dec.Token(); err != nil {
				return v, schemaErr("Data at the root level is invalid: %s", jsonSyntax(err))
			}
			return v, nil
		}
	case string:
		return jsonValue{kind: 's', text: t}, nil
	case json.Number:
		return jsonValue{kind: 'n', text: t.String()}, nil
	case bool:
		if t {
			return jsonValue{kind: 'b', text: "true"}, nil
		}
		return jsonValue{kind: 'b', text: "false"}, nil
	case nil:
		return jsonValue{kind: 'z'}, nil
	}
	return jsonValue{}, schemaErr("Data at the root level is invalid.")
}

// jsonSyntax describes a decoding error without quoting the input, which
// may hold a card number.
func jsonSyntax(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at offset %d.", se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input."
	}
	return "invalid JSON."
}

// slot is an element's place in a flattened content model. Alternatives
// of one choice share positions, so two of them in one object, or any
// element after a later one, is out of order.
type slot struct {
	name     string
	pos      int
	typ      *xsdType
	max      int
	required bool
}

type flatModel struct {
	slots    []slot
	byName   map[string]*slot
	required []string   // required elements outside choices
	choices  [][]string // required choices: one of each must be present
}

func flatten(items []particle) *flatModel {
	m := &flatModel{byName: map[string]*slot{}}
	pos := 0
	for _, p := range items {
		m.add(p, &pos, false, false)
	}
	for i := range m.slots {
		m.byName[m.slots[i].name] = &m.slots[i]
	}
	return m
}

func (m *flatModel) add(p particle, pos *int, inChoice, optional bool) {
	switch p.kind {
	case "element":
		req := !inChoice && !optional && p.min > 0
		m.slots = append(m.slots, slot{name: p.name, pos: *pos, typ: p.typ, max: p.max, required: req})
		if req {
			m.required = append(m.required, p.name)
		}
		*pos++
	case "sequence":
		for _, it := range p.items {
			m.add(it, pos, inChoice, optional || p.min == 0)
		}
	case "choice":
		start, end := *pos, *pos
		allRequired := true
		var names []string
		for _, alt := range p.items {
			q := start
			m.add(alt, &q, true, optional || p.min == 0)
			end = max(end, q)
			if alt.kind != "element" || alt.min == 0 {
				allRequired = false
			}
			names = append(names, alt.name)
		}
		if allRequired && !inChoice && !optional && p.min > 0 {
			m.choices = append(m.choices, names)
		}
		*pos = end
	}
}

// expectedAfter lists the elements that may follow position last, up to
// and including the first required one, as the real API's E00003 does.
func (m *flatModel) expectedAfter(last int) string {
	var names []string
	for _, s := range m.slots {
		if s.pos <= last {
			continue
		}
		names = append(names, s.name)
		if s.required {
			break
		}
	}
	return strings.Join(names, ", ")
}

// validator checks requests against the schema. It is read-only after
// construction, so one validator serves concurrent requests.
type validator struct {
	schema *schema
	flat   map[*xsdType]*flatModel
}

func newValidator(s *schema) *validator {
	v := &validator{schema: s, flat: map[*xsdType]*flatModel{}}
	for _, t := range s.roots {
		v.prepare(t)
	}
	return v
}

func (v *validator) prepare(t *xsdType) {
	if !t.complex || v.flat[t] != nil {
		return
	}
	m := flatten(t.model)
	v.flat[t] = m
	for _, s := range m.slots {
		v.prepare(s.typ)
	}
}

// validate checks a whole request and returns its method name.
func (v *validator) validate(root jsonValue) (string, error) {
	if root.kind != 'o' || len(root.fields) != 1 {
		return "", errUnknownMethod
	}
	f := root.fields[0]
	t, ok := v.schema.roots[f.key]
	if !ok || !strings.HasSuffix(f.key, "Request") {
		return f.key, errUnknownMethod
	}
	return f.key, v.element(f.key, t, f.val)
}

func (v *validator) element(name string, t *xsdType, val jsonValue) error {
	if !t.complex {
		return simpleValue(name, t, val)
	}
	if val.kind != 'o' {
		return schemaErr("The element '%s' in namespace '%s' has invalid content: an object is expected.", name, namespace)
	}
	m := v.flat[t]
	last := -1
	present := map[string]bool{}
	for _, f := range val.fields {
		s := m.byName[f.key]
		if s == nil || s.pos <= last {
			if exp := m.expectedAfter(last); exp != "" {
				return schemaErr("The element '%s' in namespace '%s' has invalid child element '%s' in namespace '%s'. List of possible elements expected: '%s' in namespace '%s'.",
					name, namespace, f.key, namespace, exp, namespace)
			}
			return schemaErr("The element '%s' in namespace '%s' has invalid child element '%s' in namespace '%s'.",
				name, namespace, f.key, namespace)
		}
		last = s.pos
		present[f.key] = true
		if f.val.kind == 'a' {
			if s.max == 1 {
				return schemaErr("The element '%s' in namespace '%s' has invalid child element '%s' in namespace '%s': it may occur only once.",
					name, namespace, f.key, namespace)
			}
			for _, item := range f.val.items {
				if err := v.element(f.key, s.typ, item); err != nil {
					return err
				}
			}
			continue
		}
		if err := v.element(f.key, s.typ, f.val); err != nil {
			return err
		}
	}
	for _, r := range m.required {
		if !present[r] {
			return schemaErr("The element '%s' in namespace '%s' has incomplete content. List of possible elements expected: '%s' in namespace '%s'.",
				name, namespace, r, namespace)
		}
	}
	for _, names := range m.choices {
		found := false
		for _, n := range names {
			found = found || present[n]
		}
		if !found {
			return schemaErr("The element '%s' in namespace '%s' has incomplete content. List of possible elements expected: '%s' in namespace '%s'.",
				name, namespace, strings.Join(names, ", "), namespace)
		}
	}
	return nil
}

var (
	reDecimal = regexp.MustCompile(`^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$`)
	reInteger = regexp.MustCompile(`^[+-]?[0-9]+$`)
)

// simpleValue checks a leaf against its type's facets. The message never
// quotes the value: it may be a card number or a card code.
func simpleValue(name string, t *xsdType, val jsonValue) error {
	invalid := func(why string) error {
		return schemaErr("The '%s:%s' element is invalid - The value is invalid according to its datatype '%s' - %s",
			namespace, name, datatype(t), why)
	}
	switch val.kind {
	case 's', 'n', 'b':
	case 'z':
		return invalid("The value is null.")
	default:
		return schemaErr("The element '%s' in namespace '%s' cannot contain child elements.", name, namespace)
	}
	s := val.text
	n := utf8.RuneCountInString(s)
	switch {
	case t.length >= 0 && n != t.length:
		return invalid("The actual length is not equal to the specified length.")
	case t.maxLen >= 0 && n > t.maxLen:
		return invalid("The actual length is greater than the MaxLength value.")
	case n < t.minLen:
		return invalid("The actual length is less than the MinLength value.")
	case t.pattern != nil && !t.pattern.MatchString(s):
		return invalid("The Pattern constraint failed.")
	}
	if len(t.enums) > 0 {
		ok := false
		for _, e := range t.enums {
			ok = ok || e == s
		}
		if !ok {
			return invalid("The Enumeration constraint failed.")
		}
	}
	switch t.builtin {
	case "decimal":
		if !reDecimal.MatchString(s) {
			return invalid("The string is not a valid Decimal value.")
		}
	case "int", "integer", "long", "short":
		if !reInteger.MatchString(s) {
			return invalid("The string is not a valid Integer value.")
		}
	case "boolean":
		switch s {
		case "true", "false", "1", "0":
		default:
			return invalid("The string is not a valid Boolean value.")
		}
	case "dateTime":
		if _, err := parseDateTime(s); err != nil {
			return invalid("The string is not a valid DateTime value.")
		}
	}
	return nil
}

func datatype(t *xsdType) string {
	if t.builtin == "" {
		return "String"
	}
	return strings.ToUpper(t.builtin[:1]) + t.builtin[1:]
}

func parseDateTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not an xs:dateTime: %q", s)
}
