package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// contract is openapi.yaml, loaded and validated once for the package.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

var loadContract = sync.OnceValues(func() (*contract, error) {
	// A mismatch names the failing member; a dump of the whole schema
	// after it would bury that, and the test prints the body anyway.
	openapi3.SchemaErrorDetailsDisabled = true
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml does not load: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI 3 document: %w", err)
	}
	// The legacy router matches on method and path together, like
	// http.ServeMux: GET .../line_items/charges is the line item "charges",
	// not a wrong method on the charges route.
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return &contract{doc: doc, router: router}, nil
})

// check reports how a response breaks the contract, or nil.
func (c *contract) check(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		// Not a documented operation: the only right answer is the
		// server's own JSON 404 or 405.
		return c.checkUnrouted(status, header, body)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		// An undocumented status is as much a break as a wrong body.
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

func (c *contract) checkUnrouted(status int, header http.Header, body []byte) error {
	want := map[int]string{http.StatusNotFound: codeRouteNotFound, http.StatusMethodNotAllowed: codeMethodNotAllowed}[status]
	if want == "" {
		return fmt.Errorf("the route is not in openapi.yaml, yet it answered %d", status)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	if err := c.doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
		return err
	}
	if code := v.(map[string]any)["error"].(map[string]any)["code"]; code != want {
		return fmt.Errorf("code %v, want %s", code, want)
	}
	return nil
}

// contractTransport checks every response the harness receives against
// openapi.yaml, so that every integration test is also a contract test.
// It reports through h.t rather than failing the request, so the test
// goes on to its own assertions; h.t because subtests swap it.
type contractTransport struct {
	next     http.RoundTripper
	contract *contract
	h        *harness
}

func (ct contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := ct.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err := ct.contract.check(req, res.StatusCode, res.Header, body); err != nil {
		ct.h.t.Errorf("%s %s: the %d response breaks openapi.yaml: %v\nbody: %.2000s", req.Method, req.URL.RequestURI(), res.StatusCode, err, body)
	}
	return res, nil
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.doc.OpenAPI, "3.0.") {
		t.Fatalf("openapi %q, want 3.0.x", c.doc.OpenAPI)
	}
}

// The document's error codes are exactly the ones errors.go declares.
func TestOpenAPIErrorCodes(t *testing.T) {
	t.Parallel()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, v := range c.doc.Components.Schemas["ErrorCode"].Value.Enum {
		documented = append(documented, v.(string))
	}
	var declared []string
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		for _, spec := range constDecls(t, file) {
			for i, name := range spec.Names {
				if strings.HasPrefix(name.Name, "code") && i < len(spec.Values) {
					declared = append(declared, stringLit(t, spec.Values[i]))
				}
			}
		}
	}
	sort.Strings(documented)
	sort.Strings(declared)
	if !slices.Equal(documented, declared) {
		t.Fatalf("ErrorCode enum %v\ncode* constants %v", documented, declared)
	}
}

// Every operation in the document reaches a handler: with an admin token,
// none is answered by the mux's route_not_found or method_not_allowed.
func TestOpenAPIOperationsAreServed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acct := h.account()
	h.do("POST", "/accounts/"+acct+"/line_items/charges", h.token,
		map[string]any{"line_item_id": "li-1", "original_amount_cents": 100}).wantStatus(200)
	ids := strings.NewReplacer("{account_id}", acct, "{line_item_id}", "li-1")

	for _, op := range documentedOperations(t) {
		method, path, _ := strings.Cut(op, " ")
		var body any
		if method == http.MethodPost || method == http.MethodPut {
			body = map[string]any{}
		}
		res := h.do(method, ids.Replace(path), h.token, body)
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(res.body, &e)
		if e.Error.Code == codeRouteNotFound || e.Error.Code == codeMethodNotAllowed {
			t.Errorf("%s is documented but not served: %d %s", op, res.status, res.body)
		}
	}
}

// Every route registered in routes() is documented. The contract
// transport catches an undocumented route only when a test calls it; this
// catches one nobody calls.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	documented := documentedOperations(t)
	served := servedRoutes(t)
	if len(served) == 0 {
		t.Fatal("found no routes in server.go")
	}
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in openapi.yaml", r)
		}
	}
}

// The contract check must fail on drift, or the transport proves nothing.
func TestContractCatchesDrift(t *testing.T) {
	t.Parallel()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	jsonHeader := func(kv ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	notFound := `{"error":{"code":"not_found","message":"account not found"}}`
	tests := []struct {
		name         string
		method, path string
		status       int
		header       http.Header
		body         string
		ok           bool
	}{
		{"documented error", "GET", "/accounts/a", 404, jsonHeader(), notFound, true},
		{"unrouted 404", "GET", "/nope", 404, jsonHeader(), `{"error":{"code":"route_not_found","message":"no route"}}`, true},
		{"undocumented status", "GET", "/accounts/a", 418, jsonHeader(), notFound, false},
		{"wrong code for status", "GET", "/accounts/a", 401, jsonHeader("WWW-Authenticate", "Bearer"), notFound, false},
		{"missing required header", "GET", "/accounts/a", 429, jsonHeader(),
			`{"error":{"code":"rate_limited","message":"slow down"}}`, false},
		{"unknown member", "GET", "/accounts/a", 404, jsonHeader(),
			`{"error":{"code":"not_found","message":"m","stack":"goroutine 1"}}`, false},
		{"missing member", "GET", "/accounts/a/line_items", 200, jsonHeader(), `{"results":[]}`, false},
		{"wrong content type", "GET", "/accounts/a", 404, http.Header{"Content-Type": {"text/plain"}}, notFound, false},
		{"undocumented route served", "GET", "/nope", 200, jsonHeader(), `{}`, false},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://payrail.test"+tt.path, nil)
		err := c.check(req, tt.status, tt.header, []byte(tt.body))
		if (err == nil) != tt.ok {
			t.Errorf("%s: check = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestOpenAPIServedDocument(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	res := h.do("GET", "/openapi.yaml", "", nil).wantStatus(200)
	if !bytes.Equal(res.body, OpenAPI) {
		t.Fatal("/openapi.yaml does not serve the embedded document")
	}
}

// documentedOperations lists the document's operations as mux patterns,
// "METHOD /path", sorted.
func documentedOperations(t *testing.T) []string {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	sort.Strings(ops)
	return ops
}

// servedRoutes reads the patterns routes() registers from server.go. The
// mux cannot list its patterns, and reading the source keeps this test
// from needing a list of its own that could drift too.
func servedRoutes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "server.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "routes" {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "HandleFunc" || sel.Sel.Name == "Handle") {
				routes = append(routes, stringLit(t, call.Args[0]))
			}
			return true
		})
	}
	return routes
}

func constDecls(t *testing.T, file string) []*ast.ValueSpec {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var specs []*ast.ValueSpec
	for _, decl := range f.Decls {
		if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.CONST {
			for _, s := range gd.Specs {
				specs = append(specs, s.(*ast.ValueSpec))
			}
		}
	}
	return specs
}

func stringLit(t *testing.T, e ast.Expr) string {
	t.Helper()
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		t.Fatalf("expected a string literal, found %T", e)
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
