package authorizenet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/payrail/payrail/processors"
)

func TestAmount(t *testing.T) {
	for cents, want := range map[Amount]string{1: "0.01", 10: "0.10", 100: "1.00", 123456: "1234.56", 999999999999 / 100: "99999999.99", -250: "-2.50"} {
		b, _ := json.Marshal(cents)
		if string(b) != `"`+want+`"` {
			t.Errorf("Marshal(%d) = %s, want %q", cents, b, want)
		}
	}
	for in, want := range map[string]Amount{`"12.34"`: 1234, `12.34`: 1234, `5`: 500, `5.00`: 500, `"5.0000"`: 500, `0.1`: 10, `".5"`: 50, `1018.88`: 101888} {
		var a Amount
		if err := json.Unmarshal([]byte(in), &a); err != nil || a != want {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", in, a, err, want)
		}
	}
	for _, in := range []string{`"1.001"`, `1e3`, `"abc"`, `""`, `"1.2.3"`, `{}`, `"99999999999999"`, `"+1"`} {
		var a Amount
		if err := json.Unmarshal([]byte(in), &a); err == nil {
			t.Errorf("Unmarshal(%s) = %d, want an error", in, a)
		}
	}
}

func TestInvoiceNumber(t *testing.T) {
	a, b := InvoiceNumber("att_01HZX"), InvoiceNumber("att_01HZY")
	if a == b || a != InvoiceNumber("att_01HZX") || len(a) != 20 || len(RefID("x")) > 20 {
		t.Fatalf("InvoiceNumber: %q %q", a, b)
	}
}

// TestRequestIsDeterministic: a retry sends the same bytes; a retry
// without CVV differs only by the cardCode element.
func TestRequestIsDeterministic(t *testing.T) {
	e := &env{clock: newClock()}
	job := cardJob(e, "att_det", 1234, visa())
	enc := func(j processors.Job) []byte {
		tr, err := buildRequest(j, "28800")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(createTransactionEnvelope{Request: createTransactionRequest{
			apiRequest: apiRequest{MerchantAuthentication: MerchantAuthentication{Name: "n", TransactionKey: "k"}, RefID: RefID(j.AttemptID)}, TransactionRequest: tr,
		}})
		return b
	}
	first := enc(job)
	job.Delivery = 3
	if again := enc(job); !bytes.Equal(first, again) {
		t.Fatalf("retry differs:\n%s\n%s", first, again)
	}
	noCVV := redelivered(job, true)
	if got, want := enc(noCVV), bytes.Replace(first, []byte(`,"cardCode":"`+testCVV+`"`), nil, 1); !bytes.Equal(got, want) {
		t.Fatalf("without CVV:\n%s\nwant\n%s", got, want)
	}
	for _, want := range []string{`"amount":"12.34"`, `"expirationDate":"2035-12"`, `"invoiceNumber":"` + InvoiceNumber("att_det") + `"`,
		`"billTo":{"firstName":"Ada King","lastName":"Lovelace","zip":"46201"}`,
		`"transactionSettings":{"setting":[{"settingName":"duplicateWindow","settingValue":"28800"}]}`} {
		if !bytes.Contains(first, []byte(want)) {
			t.Errorf("request lacks %s:\n%s", want, first)
		}
	}
}

func TestBuildRequestRejects(t *testing.T) {
	e := &env{clock: newClock()}
	for name, mutate := range map[string]func(*processors.Job){
		"zero amount": func(j *processors.Job) { j.AmountCents = 0 },
		"bad expiry":  func(j *processors.Job) { j.Card.ExpirationDate = "13/30" },
		"long pan":    func(j *processors.Job) { j.Card.Number = "4111111111111111111" },
		"bad cvv":     func(j *processors.Job) { j.Card.CVV = "12" },
		"card & profile": func(j *processors.Job) {
			j.Profile = &processors.ProfileDetails{CustomerProfileID: "1", PaymentProfileID: "2"}
		},
		"neither": func(j *processors.Job) { j.Card = nil },
	} {
		job := cardJob(e, "att_bad", 100, visa())
		mutate(&job)
		if _, err := buildRequest(job, "28800"); err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), testPAN) {
			t.Errorf("%s: error carries the card number", name)
		}
	}
}

func serve(t *testing.T, h http.HandlerFunc, timeout time.Duration) *Client {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	c, err := NewClient(Config{Endpoint: ts.URL, LoginID: "login", TransactionKey: "key", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTransportClassification: what each way of failing means.
func TestTransportClassification(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		code    string
		class   Class
		unknown bool
		after   time.Duration
	}{
		{"503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, "http_503", ClassRetryable, true, 0},
		{"429", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
		}, "http_429", ClassRetryable, false, 7 * time.Second},
		{"404", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, "http_404", ClassPermanent, false, 0},
		{"garbled", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "\xef\xbb\xbf{not json") }, "decode", ClassRetryable, true, 0},
		{"empty ok", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"messages":{"resultCode":"Ok","message":[]}}`)
		}, "decode", ClassRetryable, true, 0},
		{"refId mismatch", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"transactionResponse":{"responseCode":"1","transId":"9"},"refId":"someone-else","messages":{"resultCode":"Ok","message":[]}}`)
		}, "decode", ClassRetryable, true, 0},
		{"E00001", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"messages":{"resultCode":"Error","message":[{"code":"E00001","text":"An error occurred during processing. Please try again."}]}}`)
		}, "E00001", ClassRetryable, true, 0},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // the server notices a gone client only once the body is read
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "timeout", ClassRetryable, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, tc.handler, time.Second)
			_, err := c.CreateTransaction(context.Background(), "ref", TransactionRequest{TransactionType: AuthCaptureTransaction})
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code || e.Class != tc.class || e.OutcomeUnknown != tc.unknown || e.RetryAfter != tc.after {
				t.Fatalf("err = %v (%+v)", err, e)
			}
		})
	}
}

func TestCallerCancellation(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		// Bounded: a server that never notices the client leave must not
		// hold the test server's Close forever.
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := c.GetTransactionDetails(ctx, "1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled in the chain", err)
	}
}

// TestErrorsRedactEchoedValues: the API may quote request values in a
// schema error; the client's error must not carry them.
func TestErrorsRedactEchoedValues(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"messages":{"resultCode":"Error","message":[{"code":"E00003","text":"The 'AnetApi/xml/v1/schema/AnetApiSchema.xsd:cardNumber' element is invalid - The value '4111 1111 1111 1111' is invalid; cardCode '987'"}]}}`)
	}, time.Second)
	_, err := c.CreateTransaction(context.Background(), "", TransactionRequest{})
	if err == nil || strings.Contains(err.Error(), "1111 1111") || strings.Contains(err.Error(), "987") || !strings.Contains(err.Error(), "[16 digits]") {
		t.Fatalf("err = %v", err)
	}
}

func TestRequestHeadersAndBody(t *testing.T) {
	var got *http.Request
	var body []byte
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
		io.WriteString(w, `{"messages":{"resultCode":"Ok","message":[{"code":"I00004","text":"No records found."}]}}`)
	}, time.Second)
	if _, err := c.GetUnsettledTransactionList(context.Background(), ListOptions{Paging: &Paging{Limit: 10, Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s", got.Method, got.Header.Get("Content-Type"))
	}
	want := `{"getUnsettledTransactionListRequest":{"merchantAuthentication":{"name":"login","transactionKey":"key"},"clientId":"payrail-go","paging":{"limit":10,"offset":1}}}`
	if string(body) != want {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{LoginID: "x"},
		{LoginID: "x", TransactionKey: "y", Endpoint: "ftp://example"},
		{LoginID: strings.Repeat("x", 26), TransactionKey: "y"},
		{LoginID: "x", TransactionKey: strings.Repeat("y", 17)},
	} {
		if _, err := NewClient(cfg); err == nil {
			t.Errorf("NewClient(%+v) accepted", cfg)
		}
	}
	c, err := NewClient(Config{LoginID: "x", TransactionKey: "y"})
	if err != nil || c.cfg.Endpoint != SandboxEndpoint || c.cfg.Timeout != DefaultTimeout {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
}
