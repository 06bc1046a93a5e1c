package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/payrail/payrail/internal/testenv"
)

// payrail bench --dev, against the real PostgreSQL and NATS: every
// payment it sends is accepted, reaches its final outcome (a card VALID
// with exactly one charge in the simulator, an ACH debit staged), and the
// summary says so. Nothing about its timing is asserted.
func TestBenchDevEveryPaymentFinal(t *testing.T) {
	env := testServices(t)
	id := strings.ToUpper(strings.TrimPrefix(testenv.UniqueID("b"), "b"))
	conns := env.Reserve(t, 8, "payrail bench --dev")
	tests := []struct {
		name      string
		args      []string
		wantCard  int
		wantACH   int
		wantFinal int
	}{
		{"flat out, card and ACH", []string{"--count", "40", "--concurrency", "4", "--kind", "card,ach"}, 20, 20, 40},
		{"at a rate, card, slow gateway", []string{"--count", "20", "--rate", "50/s", "--sim-latency", "20ms"}, 20, 0, 20},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"bench", "--dev", "--json", "--quiet",
				"--database-url", env.DatabaseURL, "--database-max-conns", fmt.Sprint(conns - 2),
				"--nats-url", env.NATSURL,
				"--subject-root", env.Subject(fmt.Sprintf("bench%d_%s", i, strings.ToLower(id))),
				"--jobs-stream", env.StreamName(fmt.Sprintf("BENCH_JOBS_%d_%s", i, id)),
				"--events-stream", env.StreamName(fmt.Sprintf("BENCH_EVENTS_%d_%s", i, id)),
			}, tt.args...)
			r := payrail(t, nil, args...)
			if r.code != 0 {
				t.Fatalf("payrail bench exited %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			var rep benchReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("summary is not JSON: %v\n%s", err, r.stdout)
			}
			res := rep.Result
			if res.Sent != tt.wantFinal || res.Accepted != tt.wantFinal || res.Finished != tt.wantFinal || res.Unfinished != 0 {
				t.Errorf("sent %d, accepted %d, finished %d, unfinished %d; want %d, %d, %d, 0 (errors %v)",
					res.Sent, res.Accepted, res.Finished, res.Unfinished, tt.wantFinal, tt.wantFinal, tt.wantFinal, res.Errors)
			}
			if len(res.Errors) != 0 {
				t.Errorf("errors by status %v, want none", res.Errors)
			}
			c := rep.Check
			if c == nil {
				t.Fatal("no check in the --dev summary")
			}
			if !c.OK || c.Payments != tt.wantFinal || c.CardValidOneCharge != tt.wantCard ||
				c.SimulatorCharges != tt.wantCard || c.ACHStaged != tt.wantACH {
				t.Errorf("check %+v; want ok with %d payments, %d cards VALID with one charge (%d charges), %d ACH staged",
					*c, tt.wantFinal, tt.wantCard, tt.wantCard, tt.wantACH)
			}
			if got := res.Statuses["VALID"]; got != tt.wantCard {
				t.Errorf("%d payments seen VALID, want %d (final statuses %v)", got, tt.wantCard, res.Statuses)
			}
			if res.Intake.N != tt.wantFinal || res.EndToEnd.N != tt.wantFinal {
				t.Errorf("latency samples: intake %d, end to end %d; want %d each", res.Intake.N, res.EndToEnd.N, tt.wantFinal)
			}
		})
	}
}

func TestBenchFlagsRefused(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "give --url"},
		{[]string{"bench", "--dev", "--url", "http://127.0.0.1:1"}, "not both"},
		{[]string{"bench", "--url", "http://127.0.0.1:1"}, "--client-id"},
		{[]string{"bench", "--url", "http://127.0.0.1:1", "--client-id", "c", "--client-secret", "s", "--account", "a", "--sim-latency", "1s"}, "need --dev"},
		{[]string{"bench", "--dev", "--kind", "wire"}, "--kind"},
		{[]string{"bench", "--dev", "--follow", "psychic"}, "--follow"},
		{[]string{"bench", "--dev", "--rate", "fast"}, "payments per second"},
	}
	for _, tt := range tests {
		r := payrail(t, nil, tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("payrail %s: exit %d, stderr %q; want 2 and %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.want)
		}
	}
}

func TestRateFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"500", 500, false},
		{"500/s", 500, false},
		{"120/m", 2, false},
		{"0.5", 0.5, false},
		{"-1", 0, true},
		{"500/h", 0, true},
		{"fast", 0, true},
	}
	for _, tt := range tests {
		var r rateFlag
		err := r.Set(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && r.perSecond != tt.want) {
			t.Errorf("--rate %s: %v/s, error %v; want %v/s, error %v", tt.in, r.perSecond, err, tt.want, tt.wantErr)
		}
	}
}
