package queue

import (
	"strings"
	"testing"
)

func TestClusterServerProblem(t *testing.T) {
	for _, c := range []struct {
		version  string
		replicas int
		problem  bool
	}{
		{"2.9.10", 1, false},
		{"2.9.10", 3, true},
		{"2.10.13", 3, true},
		{"2.10.14", 3, false},
		{"2.10.14-beta", 3, false},
		{"2.11.0", 3, false},
		{"2.15.2", 5, false},
		{"3.0.0", 3, false},
	} {
		got := ClusterServerProblem(c.version, c.replicas)
		if (got != "") != c.problem || (got != "" && !strings.Contains(got, c.version)) {
			t.Errorf("ClusterServerProblem(%q, %d) = %q, want a problem: %v", c.version, c.replicas, got, c.problem)
		}
	}
}
