package anetsim

import (
	"bytes"
	_ "embed"
	"encoding/xml"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The schema is Authorize.Net's published AnetApiSchema.xsd, embedded so
// the simulator validates requests against the real element sequences
// rather than a hand-copied (and eventually stale) list.
//
//go:embed AnetApiSchema.xsd
var schemaXSD []byte

// xsdNode is any XSD element: the schema is read generically so that the
// document order of sequence and choice children is kept.
type xsdNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []xsdNode  `xml:",any"`
}

func (n *xsdNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// particle is one node of a compiled content model: an element
// declaration, or a sequence or choice of particles.
type particle struct {
	kind     string // "element", "sequence" or "choice"
	name     string // element name
	typ      *xsdType
	min, max int // max < 0: unbounded
	items    []particle
}

// xsdType is a compiled complex or simple type. A complex type has a
// content model; a simple type has facets.
type xsdType struct {
	name    string
	complex bool
	model   []particle // complex: the top-level sequence, base first

	// simple
	builtin string // xs: base type local name
	minLen  int
	maxLen  int // -1: none
	length  int // -1: none
	pattern *regexp.Regexp
	enums   []string
}

// schema holds the compiled root elements (API methods) by name.
type schema struct {
	roots map[string]*xsdType

	complexNodes map[string]*xsdNode
	simpleNodes  map[string]*xsdNode
	types        map[string]*xsdType
}

func parseSchema(data []byte) (*schema, error) {
	var root xsdNode
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		return nil, fmt.Errorf("anetsim: parse schema: %w", err)
	}
	s := &schema{
		roots:        map[string]*xsdType{},
		complexNodes: map[string]*xsdNode{},
		simpleNodes:  map[string]*xsdNode{},
		types:        map[string]*xsdType{},
	}
	for i := range root.Nodes {
		n := &root.Nodes[i]
		switch n.XMLName.Local {
		case "complexType":
			s.complexNodes[n.attr("name")] = n
		case "simpleType":
			s.simpleNodes[n.attr("name")] = n
		}
	}
	for i := range root.Nodes {
		n := &root.Nodes[i]
		if n.XMLName.Local != "element" {
			continue
		}
		t, err := s.elementType(n)
		if err != nil {
			return nil, err
		}
		s.roots[n.attr("name")] = t
	}
	return s, nil
}

// named resolves a type reference such as "anet:orderType" or "xs:string".
func (s *schema) named(ref string) (*xsdType, error) {
	prefix, local, ok := strings.Cut(ref, ":")
	if !ok {
		local, prefix = prefix, ""
	}
	if prefix == "xs" {
		return &xsdType{name: local, builtin: local, maxLen: -1, length: -1}, nil
	}
	if t, ok := s.types[local]; ok {
		return t, nil
	}
	if n, ok := s.complexNodes[local]; ok {
		t := &xsdType{name: local, complex: true}
		s.types[local] = t // registered before compiling: types recurse
		if err := s.compileComplex(t, n); err != nil {
			return nil, err
		}
		return t, nil
	}
	if n, ok := s.simpleNodes[local]; ok {
		t := &xsdType{name: local, maxLen: -1, length: -1}
		s.types[local] = t
		if err := s.compileSimple(t, n); err != nil {
			return nil, err
		}
		return t, nil
	}
	return nil, fmt.Errorf("anetsim: schema: unknown type %q", ref)
}

func (s *schema) elementType(n *xsdNode) (*xsdType, error) {
	if ref := n.attr("type"); ref != "" {
		return s.named(ref)
	}
	for i := range n.Nodes {
		c := &n.Nodes[i]
		switch c.XMLName.Local {
		case "complexType":
			t := &xsdType{name: n.attr("name"), complex: true}
			return t, s.compileComplex(t, c)
		case "simpleType":
			t := &xsdType{name: n.attr("name"), maxLen: -1, length: -1}
			return t, s.compileSimple(t, c)
		}
	}
	// An element without a type is xs:anyType; treat it as a string.
	return &xsdType{name: "string", builtin: "string", maxLen: -1, length: -1}, nil
}

func (s *schema) compileComplex(t *xsdType, n *xsdNode) error {
	for i := range n.Nodes {
		c := &n.Nodes[i]
		switch c.XMLName.Local {
		case "sequence", "choice":
			p, err := s.group(c)
			if err != nil {
				return err
			}
			t.model = append(t.model, p)
		case "complexContent":
			for j := range c.Nodes {
				ext := &c.Nodes[j]
				if ext.XMLName.Local != "extension" && ext.XMLName.Local != "restriction" {
					continue
				}
				base, err := s.named(ext.attr("base"))
				if err != nil {
					return err
				}
				if ext.XMLName.Local == "extension" {
					// An extension's content is the base's sequence followed by its own.
					t.model = append(t.model, base.model...)
				}
				if err := s.compileComplex(t, ext); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (s *schema) group(n *xsdNode) (particle, error) {
	p := particle{kind: n.XMLName.Local, min: occurs(n.attr("minOccurs"), 1), max: occurs(n.attr("maxOccurs"), 1)}
	for i := range n.Nodes {
		c := &n.Nodes[i]
		switch c.XMLName.Local {
		case "element":
			t, err := s.elementType(c)
			if err != nil {
				return p, err
			}
			p.items = append(p.items, particle{
				kind: "element", name: c.attr("name"), typ: t,
				min: occurs(c.attr("minOccurs"), 1), max: occurs(c.attr("maxOccurs"), 1),
			})
		case "sequence", "choice":
			g, err := s.group(c)
			if err != nil {
				return p, err
			}
			p.items = append(p.items, g)
		}
	}
	return p, nil
}

func (s *schema) compileSimple(t *xsdType, n *xsdNode) error {
	for i := range n.Nodes {
		r := &n.Nodes[i]
		if r.XMLName.Local != "restriction" {
			continue
		}
		base, err := s.named(r.attr("base"))
		if err != nil {
			return err
		}
		// Facets of the base apply too; the restriction's own override them.
		t.builtin, t.minLen, t.maxLen, t.length = base.builtin, base.minLen, base.maxLen, base.length
		t.pattern, t.enums = base.pattern, base.enums
		var enums []string
		for j := range r.Nodes {
			f := &r.Nodes[j]
			v := f.attr("value")
			switch f.XMLName.Local {
			case "minLength":
				t.minLen, _ = strconv.Atoi(v)
			case "maxLength":
				t.maxLen, _ = strconv.Atoi(v)
			case "length":
				t.length, _ = strconv.Atoi(v)
			case "pattern":
				re, err := regexp.Compile(`^(?:` + strings.ReplaceAll(v, `\s`, `[ \t\r\n]`) + `)$`)
				if err != nil {
					return fmt.Errorf("anetsim: schema: pattern %q: %w", v, err)
				}
				t.pattern = re
			case "enumeration":
				enums = append(enums, v)
			}
		}
		if len(enums) > 0 {
			t.enums = enums
		}
	}
	return nil
}

func occurs(v string, def int) int {
	switch v {
	case "":
		return def
	case "unbounded":
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}
	return n
}
