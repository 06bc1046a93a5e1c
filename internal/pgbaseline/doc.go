// Package pgbaseline measures what PostgreSQL alone does with the SQL of
// one card guest payment, so that payrail's throughput can be stated as a
// ratio to it: a figure that travels between machines better than a count
// per second does.
//
// The SQL is never written by hand. Capture runs one card guest payment
// through the real code (payments.Service.Submit over a store.Store, then
// store.MarkPublished, which the fast path calls once JetStream acked the
// payment's outbox rows) on a scratch database, records every statement
// the connection pool sends (a pgx tracer: BEGIN, the account read, the
// line item and transition CTE, the attempt, the outbox rows, COMMIT, the
// mark-published update) with its arguments, and turns them into a
// pgbench script: arguments become literals, except the ids that must be
// new for every payment (line item, attempt, outbox message ids), which
// are built from a random number drawn per transaction, and the outbox
// row ids, which the script reads back from the inserts (\gset). So the
// script follows the store's statements as they change; only the
// fast path's one call (MarkPublished) is named here, and a change to it
// fails to compile or fails TestCaptureMatchesStore.
//
// pgbench runs each statement in its own round trip, as pgx does for a
// statement outside a batch; statements pgx sent together in a batch
// (the outbox rows) are also sent one by one, which makes the baseline a
// little slower than the code it copies, never faster.
package pgbaseline
