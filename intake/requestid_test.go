package intake

import (
	"strings"
	"testing"

	"github.com/payrail/payrail/internal/testenv"
)

// A request id is taken from the caller when it is a plain token, made
// otherwise, returned in the answer, and on every log line the request
// wrote; anything else (log syntax, spaces, non-ASCII, too long) is
// replaced. (Line breaks and NULs never get past net/http.)
func TestRequestIDInAnswerAndLogs(t *testing.T) {
	t.Parallel()
	var logs testenv.LogBuffer
	h := newHarness(t, withLog(&logs))
	acct := h.account()

	res := h.do("POST", guestPath(acct), h.token, guestBody("rid-1", debitMethod()), HeaderRequestID, "trace-42.a:b_c")
	res.wantStatus(200)
	if got := res.header.Get(HeaderRequestID); got != "trace-42.a:b_c" {
		t.Fatalf("%s = %q, want the caller's id", HeaderRequestID, got)
	}
	var accepted string
	for _, line := range strings.Split(string(logs.Bytes()), "\n") {
		if strings.Contains(line, "payment accepted") {
			accepted = line
		}
	}
	if !strings.Contains(accepted, "request_id=trace-42.a:b_c") || !strings.Contains(accepted, "line_item_id=rid-1") {
		t.Fatalf("the payment's log line lacks its request id: %q", accepted)
	}

	for _, hostile := range []string{"", "x level=ERROR msg=forged", strings.Repeat("a", 129), "semi;colon", "ünï"} {
		res := h.do("GET", "/accounts/"+acct, h.token, nil, HeaderRequestID, hostile)
		got := res.header.Get(HeaderRequestID)
		if got == hostile || !strings.HasPrefix(got, "req_") {
			t.Errorf("request id %q answered as %q, want a made one", hostile, got)
		}
	}
	if strings.Contains(string(logs.Bytes()), "forged") {
		t.Error("a request id reached the log unchecked")
	}
}
