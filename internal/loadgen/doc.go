// Package loadgen drives guest payments into a payrail API and measures
// them: how fast the API accepts them (intake) and how long each takes to
// reach its final status (end to end). It is the engine of `payrail
// bench`; the command only wires flags and, for --dev, the in-process
// stack.
//
// A run sends payments at a fixed rate (open loop: the schedule does not
// wait for answers, up to Config.Concurrency requests in flight) or flat
// out (Config.Concurrency senders, each sending its next payment as soon
// as the last is answered). Every payment carries a line item id of the
// run's own, so an outcome can be matched even when it arrives before the
// API's answer. A Follower reports outcomes: EventFollower listens to the
// events subject (cheap: the events are published anyway), Poller reads
// the line item (costs the API a GET per payment per interval).
package loadgen
