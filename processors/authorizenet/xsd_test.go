package authorizenet

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// The schema the simulator embeds is Authorize.Net's AnetApiSchema.xsd;
// this test reads it on its own (no code shared with the simulator) so
// that a mistake in one cannot hide a mistake in the other.
const xsdPath = "anetsim/AnetApiSchema.xsd"

type xnode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []xnode    `xml:",any"`
}

func (n *xnode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// xtype is a complex type reduced to what order checking needs: each
// child element's position (alternatives of a choice share one) and its
// own type (nil for simple content).
type xtype struct {
	pos   map[string]int
	child map[string]*xtype
	many  map[string]bool
}

type xschema struct {
	named map[string]*xnode
	done  map[string]*xtype
	roots map[string]*xtype
}

func loadXSD(t *testing.T) *xschema {
	t.Helper()
	data, err := os.ReadFile(xsdPath)
	if err != nil {
		t.Fatal(err)
	}
	var root xnode
	if err := xml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	s := &xschema{named: map[string]*xnode{}, done: map[string]*xtype{}, roots: map[string]*xtype{}}
	for i := range root.Nodes {
		if n := &root.Nodes[i]; n.XMLName.Local == "complexType" {
			s.named[n.attr("name")] = n
		}
	}
	for i := range root.Nodes {
		if n := &root.Nodes[i]; n.XMLName.Local == "element" {
			s.roots[n.attr("name")] = s.elementType(n)
		}
	}
	return s
}

func (s *xschema) ref(name string) *xtype {
	local := name[strings.IndexByte(name, ':')+1:]
	if t, ok := s.done[local]; ok {
		return t
	}
	n, ok := s.named[local]
	if !ok {
		return nil // a simple type
	}
	t := &xtype{pos: map[string]int{}, child: map[string]*xtype{}, many: map[string]bool{}}
	s.done[local] = t
	pos := 0
	s.content(t, n, &pos)
	return t
}

func (s *xschema) elementType(n *xnode) *xtype {
	if typ := n.attr("type"); typ != "" {
		return s.ref(typ)
	}
	for i := range n.Nodes {
		if c := &n.Nodes[i]; c.XMLName.Local == "complexType" {
			t := &xtype{pos: map[string]int{}, child: map[string]*xtype{}, many: map[string]bool{}}
			pos := 0
			s.content(t, c, &pos)
			return t
		}
	}
	return nil
}

// content walks a complexType body: an extension's base comes first.
func (s *xschema) content(t *xtype, n *xnode, pos *int) {
	for i := range n.Nodes {
		c := &n.Nodes[i]
		switch c.XMLName.Local {
		case "complexContent":
			s.content(t, c, pos)
		case "extension":
			if base := s.ref(c.attr("base")); base != nil {
				for name, p := range base.pos {
					t.pos[name], t.child[name], t.many[name] = p, base.child[name], base.many[name]
					*pos = max(*pos, p+1)
				}
			}
			s.content(t, c, pos)
		case "sequence":
			s.particles(t, c, pos)
		case "choice":
			s.choice(t, c, pos)
		}
	}
}

func (s *xschema) particles(t *xtype, n *xnode, pos *int) {
	for i := range n.Nodes {
		c := &n.Nodes[i]
		switch c.XMLName.Local {
		case "element":
			name := c.attr("name")
			t.pos[name], t.child[name] = *pos, s.elementType(c)
			t.many[name] = c.attr("maxOccurs") != "" && c.attr("maxOccurs") != "1"
			*pos++
		case "sequence":
			s.particles(t, c, pos)
		case "choice":
			s.choice(t, c, pos)
		}
	}
}

func (s *xschema) choice(t *xtype, n *xnode, pos *int) {
	start, end := *pos, *pos
	for i := range n.Nodes {
		p := start
		s.particles(t, &xnode{Nodes: []xnode{n.Nodes[i]}}, &p)
		end = max(end, p)
	}
	*pos = end
}

// checker walks JSON (keys in document order) against the XSD and
// collects every deviation.
type checker struct {
	dec      *json.Decoder
	problems []string
}

func (c *checker) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func checkJSON(typ *xtype, path string, data []byte) []string {
	c := &checker{dec: json.NewDecoder(bytes.NewReader(data))}
	c.value(path, typ, false)
	return c.problems
}

func (c *checker) value(path string, typ *xtype, many bool) {
	if typ == nil {
		var v any
		if err := c.dec.Decode(&v); err != nil {
			c.fail("%s: %v", path, err)
			return
		}
		items := []any{v}
		if arr, ok := v.([]any); ok {
			if !many {
				c.fail("%s: an array, but the element occurs once in the XSD", path)
			}
			items = arr
		}
		for _, it := range items {
			switch it.(type) {
			case map[string]any, []any:
				c.fail("%s: a simple XSD element holds a structure", path)
			}
		}
		return
	}
	tok, err := c.dec.Token()
	if err != nil {
		c.fail("%s: %v", path, err)
		return
	}
	switch tok {
	case json.Delim('['):
		if !many {
			c.fail("%s: an array, but the element occurs once in the XSD", path)
		}
		for c.dec.More() {
			if t, _ := c.dec.Token(); t != json.Delim('{') {
				c.fail("%s[]: want an object", path)
				return
			}
			c.object(path+"[]", typ)
		}
		c.dec.Token()
	case json.Delim('{'):
		c.object(path, typ)
	default:
		c.fail("%s: want an object", path)
	}
}

// object checks the keys of an object whose '{' was read.
func (c *checker) object(path string, typ *xtype) {
	last, lastKey := -1, ""
	for c.dec.More() {
		kt, _ := c.dec.Token()
		key, _ := kt.(string)
		p, known := typ.pos[key]
		switch {
		case !known:
			c.fail("%s: element %q is not in the XSD type", path, key)
		case p <= last:
			c.fail("%s: element %q comes after %q, but the XSD sequence puts it before", path, key, lastKey)
		}
		if known {
			last, lastKey = p, key
		}
		c.value(path+"."+key, typ.child[key], typ.many[key])
	}
	c.dec.Token()
}

// fill sets every field of v, recursively, so omitempty hides nothing.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fill(f)
			} else if v.Type().Field(i).Anonymous {
				fill(f)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0))
		fill(v.Index(1))
	case reflect.String:
		v.SetString("1")
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Bool:
		v.SetBool(true)
	}
}

// TestRequestsFollowXSD encodes every request the client sends, with all
// fields set, and checks element names and order against the XSD.
func TestRequestsFollowXSD(t *testing.T) {
	s := loadXSD(t)
	for _, env := range []any{
		&createTransactionEnvelope{},
		&getTransactionDetailsEnvelope{},
		&getUnsettledTransactionListEnvelope{},
		&getSettledBatchListEnvelope{},
		&getTransactionListEnvelope{},
		&getCustomerPaymentProfileEnvelope{},
	} {
		fill(reflect.ValueOf(env).Elem())
		b, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		var root map[string]json.RawMessage
		if err := json.Unmarshal(b, &root); err != nil || len(root) != 1 {
			t.Fatalf("%T: root must be one method key: %s", env, b)
		}
		for method, body := range root {
			typ := s.roots[method]
			if typ == nil {
				t.Fatalf("%s is not an XSD root element", method)
			}
			for _, p := range checkJSON(typ, method, body) {
				t.Error(p)
			}
		}
	}
}

// TestXSDCheckerCatchesDisorder makes sure the checker above can fail:
// billTo before order is the mistake the reference quotes, and
// duplicateWindow directly under transactionRequest another.
func TestXSDCheckerCatchesDisorder(t *testing.T) {
	s := loadXSD(t)
	typ := s.roots["createTransactionRequest"].child["transactionRequest"]
	for _, bad := range []string{
		`{"transactionType":"authCaptureTransaction","amount":"1.00","billTo":{"zip":"1"},"order":{"invoiceNumber":"1"}}`,
		`{"transactionType":"authCaptureTransaction","duplicateWindow":"28800"}`,
		`{"transactionType":"authCaptureTransaction","order":[{"invoiceNumber":"1"}]}`,
		`{"transactionType":"authCaptureTransaction","payment":{"creditCard":{"expirationDate":"2035-12","cardNumber":"4111111111111111"}}}`,
	} {
		if len(checkJSON(typ, "transactionRequest", []byte(bad))) == 0 {
			t.Errorf("not reported: %s", bad)
		}
	}
}
