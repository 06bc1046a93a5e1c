package processors

import (
	"bytes"
	"context"
	"errors"
	"reflect"
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
	job := sampleJob()
	body, err := EncodeJob(ring, job)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{job.Card.Number, `"123"`, "46201"} {
		if bytes.Contains(body, []byte(secret)) {
			t.Errorf("encoded job shows %q in clear", secret)
		}
	}
	got, err := DecodeJob(ring, body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, job) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, job)
	}
}

func TestDecodeJobRejects(t *testing.T) {
	ring := testRing(t)
	good, err := EncodeJob(ring, sampleJob())
	if err != nil {
		t.Fatal(err)
	}
	moved := bytes.Replace(good, []byte(`"attempt_id":"att_1"`), []byte(`"attempt_id":"att_2"`), 1)
	other := sampleJob()
	otherBody, err := EncodeJob(testRing(t), other) // sealed with a key this ring lacks
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"not JSON":           []byte("not json"),
		"empty object":       []byte(`{}`),
		"wrong version":      bytes.Replace(good, []byte(`"v":1`), []byte(`"v":9`), 1),
		"sealed for another": moved, // details bound to att_1 cannot be opened as att_2's
		"unknown key":        otherBody,
		"truncated":          good[:len(good)/2],
		"zero amount":        bytes.Replace(good, []byte(`"amount_cents":1234`), []byte(`"amount_cents":0`), 1),
	}
	for name, body := range cases {
		if _, err := DecodeJob(ring, body); !errors.Is(err, ErrBadJob) {
			t.Errorf("%s: err = %v, want ErrBadJob", name, err)
		}
	}
}

// FuzzDecodeJob: whatever arrives on a job subject, decoding returns a job
// or ErrBadJob, never panics, and never echoes the body in its error.
func FuzzDecodeJob(f *testing.F) {
	ring := testRing(f)
	good, err := EncodeJob(ring, sampleJob())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"v":1,"org_id":"o","attempt_id":"a","processor":"p","amount_cents":1,"sealed":"AAAA"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		job, err := DecodeJob(ring, body)
		if err != nil {
			if !errors.Is(err, ErrBadJob) {
				t.Fatalf("error %v does not wrap ErrBadJob", err)
			}
			if len(body) > 8 && bytes.Contains([]byte(err.Error()), body) {
				t.Fatalf("error echoes the body")
			}
			return
		}
		if job.AttemptID == "" || job.AmountCents <= 0 {
			t.Fatalf("decoded an incomplete job %+v", job)
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
