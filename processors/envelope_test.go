package processors

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/payrail/payrail/internal/keyring"
)

func testRing(t testing.TB) *keyring.Ring {
	t.Helper()
	key, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.Parse("k1="+key, "")
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func sampleJob() Job {
	return Job{OrgID: "org_1", AccountID: "acct_1", LineItemID: "li_1", AttemptID: "att_1", Processor: "AUTHORIZE_NET",
		PaymentType: PaymentTypeDebit, Origin: "guest_payment", AmountCents: 1234,
		EffectiveAt: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), CreatedAt: time.Date(2026, 11, 23, 9, 0, 1, 0, time.UTC),
		Card: &CardDetails{Number: "4111111111111111", ExpirationDate: "12/30", CVV: "123", Zip: "46201", Name: "Pat Doe"}}
}

func TestJobRoundTripAndSealing(t *testing.T) {
	ring := testRing(t)
	reversal := sampleJob()
	reversal.Card = nil
	reversal.Reversal = &ReversalDetails{OriginalLineItemID: "li_orig", OriginalAttemptID: "att_orig",
		OriginalTransactionID: "60123456789", OriginalCreatedAt: reversal.CreatedAt.Add(-time.Hour)}
	for _, tc := range []struct {
		name    string
		job     Job
		secrets []string
	}{
		{"card payment", sampleJob(), []string{sampleJob().Card.Number, `"123"`, "46201"}},
		{"reversal", reversal, []string{"60123456789", "att_orig", "li_orig"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := EncodeJob(ring, tc.job)
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range tc.secrets {
				if bytes.Contains(body, []byte(secret)) {
					t.Errorf("encoded job shows %q in clear", secret)
				}
			}
			got, err := DecodeJob(ring, body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.job) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tc.job)
			}
		})
	}
}

// v1Body writes a job the way payrail did before jobs were sealed as a
// whole: identifiers and amount in clear, details sealed for job/org/attempt.
func v1Body(t testing.TB, ring *keyring.Ring, job Job) []byte {
	t.Helper()
	clear, err := json.Marshal(map[string]any{"ach": job.ACH, "card": job.Card, "profile": job.Profile})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ring.Seal(clear, []byte("job/"+job.OrgID+"/"+job.AttemptID))
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{"v": 1, "org_id": job.OrgID, "account_id": job.AccountID,
		"line_item_id": job.LineItemID, "attempt_id": job.AttemptID, "processor": job.Processor,
		"payment_type": job.PaymentType, "origin": job.Origin, "amount_cents": job.AmountCents,
		"effective_at": job.EffectiveAt, "created_at": job.CreatedAt, "sealed": sealed})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// reenvelope rewrites the clear envelope of a v2 body.
func reenvelope(t testing.TB, body []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// forgeJob seals job with a key the worker's ring does not hold, under
// the worker's own key id: what someone who can publish but has no key
// can make.
func forgeJob(t testing.TB, job Job) []byte {
	t.Helper()
	body, err := EncodeJob(testRing(t), job)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// The whole job is sealed: nothing but the identifiers, the processor and
// the version is readable, and in particular not the amount.
func TestEncodedJobShowsOnlyIdentifiers(t *testing.T) {
	ring := testRing(t)
	job := sampleJob()
	body, err := EncodeJob(ring, job)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"attempt_id", "org_id", "processor", "sealed", "v"}; !slices.Equal(keys, want) {
		t.Errorf("envelope fields %v, want %v", keys, want)
	}
	if m["v"] != float64(2) {
		t.Errorf("version %v, want 2", m["v"])
	}
	for _, clear := range []string{"1234", "amount", "acct_1", "li_1", "guest_payment", "DEBIT", "2026"} {
		if bytes.Contains(body, []byte(clear)) {
			t.Errorf("encoded job shows %q in clear", clear)
		}
	}
	if _, err := EncodeJob(ring, Job{OrgID: "o", AttemptID: "a", Processor: "p"}); err == nil {
		t.Error("a job without an amount was encoded")
	}
}

func TestDecodeJobRejects(t *testing.T) {
	ring := testRing(t)
	job := sampleJob()
	good, err := EncodeJob(ring, job)
	if err != nil {
		t.Fatal(err)
	}
	flipped := reenvelope(t, good, func(m map[string]any) {
		raw, _ := base64.StdEncoding.DecodeString(m["sealed"].(string))
		raw[len(raw)-20] ^= 1 // a bit of the ciphertext: e.g. a digit of the amount
		m["sealed"] = raw
	})
	bigger := job
	bigger.AmountCents = 2501
	cases := []struct {
		name   string
		body   []byte
		reason string
	}{
		{"not JSON", []byte("not json"), RejectMalformed},
		{"seven bytes", []byte("garbage"), RejectMalformed},
		{"empty object", []byte(`{}`), RejectVersion},
		{"unknown version", reenvelope(t, good, func(m map[string]any) { m["v"] = 9 }), RejectVersion},
		{"v1", v1Body(t, ring, job), RejectVersion},
		{"no sealed job", reenvelope(t, good, func(m map[string]any) { delete(m, "sealed") }), RejectMalformed},
		{"ciphertext flipped", flipped, RejectUnauthenticated},
		{"moved to another attempt", reenvelope(t, good, func(m map[string]any) { m["attempt_id"] = "att_2" }), RejectUnauthenticated},
		{"moved to another org", reenvelope(t, good, func(m map[string]any) { m["org_id"] = "org_2" }), RejectUnauthenticated},
		{"moved to another processor", reenvelope(t, good, func(m map[string]any) { m["processor"] = "CANOPY_NACHA" }), RejectUnauthenticated},
		{"amount added in clear", reenvelope(t, good, func(m map[string]any) { m["amount_cents"] = 2501 }), RejectMalformed},
		{"trailing data", append(append([]byte{}, good...), []byte(` {}`)...), RejectMalformed},
		{"forged without the key", forgeJob(t, bigger), RejectUnauthenticated},
		{"sealed with an unknown key id", func() []byte {
			other, err := keyring.Parse("k9="+mustKey(t), "")
			if err != nil {
				t.Fatal(err)
			}
			b, err := EncodeJob(other, job)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}(), RejectUnknownKey},
		{"truncated", good[:len(good)/2], RejectMalformed},
	}
	for _, c := range cases {
		_, err := DecodeJob(ring, c.body)
		if !errors.Is(err, ErrBadJob) {
			t.Errorf("%s: err = %v, want ErrBadJob", c.name, err)
			continue
		}
		if r := RejectReason(err); r != c.reason {
			t.Errorf("%s: reason %q, want %q (%v)", c.name, r, c.reason, err)
		}
		if c.name == "v1" && !errors.Is(err, ErrV1Job) {
			t.Errorf("v1: err = %v, want ErrV1Job", err)
		}
	}
}

func mustKey(t testing.TB) string {
	t.Helper()
	k, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A v1 body yields only what v1 authenticated: the details, bound to their
// org and attempt. Its clear amount is not even returned.
func TestDecodeV1Job(t *testing.T) {
	ring := testRing(t)
	job := sampleJob()
	body := v1Body(t, ring, job)
	got, err := DecodeV1Job(ring, body)
	if err != nil {
		t.Fatal(err)
	}
	want := V1Job{OrgID: job.OrgID, AttemptID: job.AttemptID, Card: job.Card}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("v1 job %+v, want %+v", got, want)
	}
	moved := bytes.Replace(body, []byte(`"attempt_id":"att_1"`), []byte(`"attempt_id":"att_2"`), 1)
	if _, err := DecodeV1Job(ring, moved); RejectReason(err) != RejectUnauthenticated {
		t.Errorf("v1 details moved to another attempt: %v", err)
	}
	if _, err := DecodeV1Job(ring, forgeV1(t, job)); RejectReason(err) != RejectUnauthenticated {
		t.Errorf("forged v1 job: %v", err)
	}
	good, _ := EncodeJob(ring, job)
	for _, b := range [][]byte{[]byte("garbage"), good} {
		if _, err := DecodeV1Job(ring, b); !errors.Is(err, ErrBadJob) {
			t.Errorf("DecodeV1Job(%.20q) = %v, want ErrBadJob", b, err)
		}
	}
}

func forgeV1(t testing.TB, job Job) []byte { return v1Body(t, testRing(t), job) }

// FuzzDecodeJob: whatever arrives on a job subject, decoding returns
// ErrBadJob (never a panic, never the body in the error) unless the body
// is the one payrail sealed, and then it yields exactly the sealed job: no
// change to a body makes it decode to another job.
func FuzzDecodeJob(f *testing.F) {
	ring := testRing(f)
	job := sampleJob()
	good, err := EncodeJob(ring, job)
	if err != nil {
		f.Fatal(err)
	}
	v1 := v1Body(f, ring, job)
	f.Add(good)
	f.Add(v1)
	f.Add(forgeJob(f, job))
	f.Add(reenvelope(f, good, func(m map[string]any) { m["attempt_id"] = "att_2" }))
	f.Add([]byte(`{"v":2,"org_id":"o","attempt_id":"a","processor":"p","sealed":"AmsxAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Add([]byte(`{"v":1,"org_id":"o","attempt_id":"a","processor":"p","amount_cents":1,"sealed":"AAAA"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(err error) {
			if !errors.Is(err, ErrBadJob) {
				t.Fatalf("error %v does not wrap ErrBadJob", err)
			}
			if len(body) > 8 && bytes.Contains([]byte(err.Error()), body) {
				t.Fatalf("error echoes the body")
			}
		}
		got, err := DecodeJob(ring, body)
		if err != nil {
			check(err)
		} else if !reflect.DeepEqual(got, job) {
			t.Fatalf("a changed body decoded to another job: %+v", got)
		}
		v, err := DecodeV1Job(ring, body)
		if err != nil {
			check(err)
		} else if v.OrgID != job.OrgID || v.AttemptID != job.AttemptID || !reflect.DeepEqual(v.Card, job.Card) {
			t.Fatalf("a changed v1 body decoded to other details: %+v", v)
		}
	})
}

func TestRegistry(t *testing.T) {
	a, b := named("A"), named("B")
	reg, err := NewRegistry(b, a)
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Names(); !reflect.DeepEqual(got, []string{"A", "B"}) {
		t.Errorf("Names() = %v", got)
	}
	if p, ok := reg.Lookup("B"); !ok || p.Name() != "B" {
		t.Errorf("Lookup(B) = %v, %v", p, ok)
	}
	if _, ok := reg.Lookup("C"); ok {
		t.Error("Lookup(C) found a processor")
	}
	if _, err := NewRegistry(a, named("A")); err == nil {
		t.Error("two processors named A were accepted")
	}
}

type named string

func (n named) Name() string                                         { return string(n) }
func (n named) Process(ctx context.Context, job Job) (Result, error) { return Result{}, nil }
