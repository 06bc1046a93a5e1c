package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiServer answers like payrail's API: a token for the right
// credentials, 200 for a well-formed guest payment, and the line item
// queued on its first read and final on the next.
type apiServer struct {
	mu     sync.Mutex
	tokens int
	reads  map[string]int
	kinds  map[string]string // line item id → payment_type
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/auth/token":
		var c map[string]string
		if json.NewDecoder(r.Body).Decode(&c) != nil || c["client_id"] != "cli" || c["client_secret"] != "sec" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.tokens++
		_, _ = w.Write([]byte(`{"access_token":"tok","token_type":"Bearer","expires_in":3600}`))
	case r.Header.Get("Authorization") != "Bearer tok":
		w.WriteHeader(http.StatusUnauthorized)
	case r.Method == http.MethodPost && r.URL.Path == "/accounts/acct_1/line_items/payments/guest_payment":
		var body struct {
			LineItemID string            `json:"line_item_id"`
			Amount     int64             `json:"original_amount_cents"`
			Details    map[string]string `json:"payment_details"`
		}
		if json.NewDecoder(r.Body).Decode(&body) != nil || body.LineItemID == "" || body.Amount <= 0 {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		s.kinds[body.LineItemID] = body.Details["payment_type"]
		_, _ = w.Write([]byte(`{"line_item_id":"` + body.LineItemID + `"}`))
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/accounts/acct_1/line_items/"):
		id := strings.TrimPrefix(r.URL.Path, "/accounts/acct_1/line_items/")
		s.reads[id]++
		status, attempt := "PENDING", "queued"
		if s.reads[id] > 1 {
			status, attempt = "VALID", "succeeded"
			if s.kinds[id] == "ACH" {
				status, attempt = "PENDING", "pending_settlement"
			}
		}
		_, _ = w.Write([]byte(`{"line_item_id":"` + id + `","line_item_overview":{"line_item_status":"` + status +
			`"},"payment_processing":{"attempt_status":"` + attempt + `"}}`))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// The API client gets one token for a run and sends both kinds of guest
// payment; the poller reads each payment until it is final.
func TestAPIAndPoller(t *testing.T) {
	srv := &apiServer{reads: map[string]int{}, kinds: map[string]string{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	api, err := NewAPI(ts.URL, "acct_1", "cli", "sec", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	res, err := Run(context.Background(), Config{
		Target: api, Follower: &Poller{API: api, Interval: 10 * time.Millisecond},
		Kinds: []Kind{Card, ACH}, Count: 20, Concurrency: 4, RunID: "p", DrainTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 20 || res.Finished != 20 || len(res.Errors) != 0 {
		t.Fatalf("accepted %d, finished %d, errors %v; want 20, 20, none", res.Accepted, res.Finished, res.Errors)
	}
	if res.Statuses["VALID"] != 10 || res.Statuses["PENDING"] != 10 {
		t.Errorf("final statuses %v, want 10 VALID (cards) and 10 PENDING (ACH staged)", res.Statuses)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.tokens != 1 {
		t.Errorf("%d tokens requested, want 1 for the run", srv.tokens)
	}
	for id, n := range srv.reads {
		if n < 2 {
			t.Errorf("%s read %d times: final after one read of a queued payment", id, n)
		}
	}
}

func TestAPIBadCredentials(t *testing.T) {
	ts := httptest.NewServer(&apiServer{reads: map[string]int{}, kinds: map[string]string{}})
	defer ts.Close()
	api, err := NewAPI(ts.URL, "acct_1", "cli", "wrong", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Check with a wrong secret = %v, want an HTTP 401 error", err)
	}
}

func TestNewAPIRefusesBadURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://h", "http://"} {
		if _, err := NewAPI(u, "a", "c", "s", 1); err == nil {
			t.Errorf("NewAPI(%q) accepted", u)
		}
	}
}
