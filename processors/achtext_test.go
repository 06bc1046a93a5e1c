package processors

import (
	"sync"
	"testing"
)

func TestACHName(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"Bjørn Strauß Łukasz", "Bjorn Strauss Lukasz", true},
		{"Zoë Ångström-Þórsdóttir", "Zoe Angstrom-Thorsdott", true}, // 22 characters after transliteration
		{"José  Müller\t", "Jose Muller", true},
		{"😀😀", "", false},
		{"Иван Петров", "", false},
		{"王小明", "", false},
		{"Ivan Петров", "Ivan", false}, // a letter would be dropped: not the holder's name
		{"Jane 😀 Doe", "Jane Doe", true},
	} {
		got, ok := ACHName(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ACHName(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestTruncateChars(t *testing.T) {
	if got := TruncateChars("ééééé", 3); got != "ééé" {
		t.Errorf("got %q", got)
	}
}

func TestRoutingNumberProblem(t *testing.T) {
	for rtn, ok := range map[string]bool{"231380104": true, "011000015": true, "500000005": false, "800000006": true,
		"231380105": false, "12345678": false, "130000006": false, "610000005": true} {
		if got := RoutingNumberProblem(rtn) == ""; got != ok {
			t.Errorf("%s: valid=%v, want %v (%s)", rtn, got, ok, RoutingNumberProblem(rtn))
		}
	}
}

func TestMaskedLastFour(t *testing.T) {
	for in, want := range map[string]string{"1234": "", "123456": "56", "12345678": "5678", "12345678901": "8901", "1": ""} {
		if got := MaskedLastFour(in); got != want {
			t.Errorf("MaskedLastFour(%q) = %q, want %q", in, got, want)
		}
	}
}

// Names of concurrent jobs are folded at once: each gets its own
// transliteration, whole (run with -race, as make test does).
func TestACHTextConcurrent(t *testing.T) {
	names := map[string]string{"Bjørn Strauß Łukasz": "Bjorn Strauss Lukasz", "Zoë Müller": "Zoe Muller",
		"Renée Ångström": "Renee Angstrom", "Ana Peña": "Ana Pena"}
	var wg sync.WaitGroup
	errs := make(chan string, 400)
	for range 100 {
		for in, want := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got, _ := ACHText(in, MaxACHNameChars); got != want {
					errs <- in + " → " + got
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
