package worker

import "time"

// The worker's pull requests (Worker.pull) expire after pullExpiry and
// ask for an idle heartbeat every pullHeartbeat. A pull request lives on the consumer's
// leader; when that node dies (or hangs) the request dies with it and
// nothing tells the client, which notices only when two heartbeats are
// missed and then pulls again, from whichever node leads by then. With
// nats.go's defaults (30 s expiry, 15 s heartbeat) that was 30 s without
// jobs after a leader was lost; with 1 s heartbeats the worker pulls
// again within 2 s of losing its request, so processing resumes about
// as soon as the cluster has elected new leaders (deploy/README.md,
// "NATS cluster": measured failover times). An idle consumer costs one
// small heartbeat message a second per processor and worker.
var (
	pullExpiry    = 5 * time.Second
	pullHeartbeat = time.Second
)
