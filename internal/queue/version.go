package queue

import (
	"fmt"
	"strconv"
	"strings"
)

// MinClusterServer is the oldest nats-server payrail supports for a
// cluster (deploy/README.md, "NATS cluster"): older servers can keep, on a
// follower that was down, the jobs acknowledged meanwhile (nats-server#3970)
// — fast-path card jobs with their sealed CVV among them — and on 2.9.10
// even past the jobs stream's MaxAge.
var MinClusterServer = [3]int{2, 10, 14}

// ClusterServerProblem says what is wrong with running replicas copies of
// the streams on a server of version ("2.9.10"), or "" when nothing is: a
// single replica is fine on any supported server.
func ClusterServerProblem(version string, replicas int) string {
	if replicas <= 1 || !olderThan(version, MinClusterServer) {
		return ""
	}
	return fmt.Sprintf("nats-server %s is older than %d.%d.%d, the oldest payrail supports for replicated streams: "+
		"a follower restarted while jobs were acknowledged can keep them (card jobs carry the sealed CVV); upgrade the cluster",
		version, MinClusterServer[0], MinClusterServer[1], MinClusterServer[2])
}

// olderThan reports whether version ("2.9.10", "2.10.14-beta") is older
// than min.
func olderThan(version string, min [3]int) bool {
	parts := strings.SplitN(strings.SplitN(version, "-", 2)[0], ".", 3)
	for i := range 3 {
		n := 0
		if i < len(parts) {
			n, _ = strconv.Atoi(parts[i])
		}
		if n != min[i] {
			return n < min[i]
		}
	}
	return false
}
