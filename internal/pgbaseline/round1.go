package pgbaseline

import _ "embed"

// round1 is the yardstick: the statements one card guest payment sent on
// the first round's code (main at e15f1e2, before issue 14's work), in
// the order and round trips it sent them, as a pgbench script — the
// account read; BEGIN; the line item and transition CTE; the attempt; the
// job and event outbox rows; COMMIT; the fast path's mark-published
// update. Ids that must be new per payment are built from a random
// number drawn per transaction, and the outbox row ids are read back with
// \gset. It was captured from that code's store with a pgx tracer, not
// written by hand.
//
// It is frozen on purpose: payrail's figures are stated as a ratio to
// PostgreSQL running this SQL, so that a change that makes payrail's own
// SQL cheaper shows as a higher ratio instead of moving the yardstick.
//
//go:embed round1.sql
var round1 string

// Round1 is the yardstick's pgbench script.
func Round1() string { return round1 }
