// Package outbox carries the transactional outbox to JetStream.
//
// Every job and event is first a row written in the same PostgreSQL
// transaction as the state it announces (package store). Two things then
// publish rows, each with Nats-Msg-Id set to the row's msg_id so that
// JetStream's duplicate window drops a second copy:
//
//   - the Publisher, the fast path: the process that committed hands its
//     rows over at once and publishes them with pipelined async PubAcks,
//     marking acknowledged rows in batches. It never blocks the writer;
//     when NATS is down it simply does not mark, and
//   - the Relay, which publishes whatever the fast path missed (a crash
//     between commit and publish, NATS down, a full queue). Several relays
//     may run: each claims rows with FOR UPDATE SKIP LOCKED. It wakes on
//     LISTEN/NOTIFY and on a slow backstop tick, not by busy polling, and
//     leaves fast-path rows alone for a grace period so it does not race
//     the publisher for them.
package outbox
