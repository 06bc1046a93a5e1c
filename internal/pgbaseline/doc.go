// Package pgbaseline measures what PostgreSQL alone does with the SQL of
// one card guest payment, so that payrail's throughput can be stated as a
// ratio to it: a figure that travels between machines better than a count
// per second does.
//
// The SQL is the yardstick issue 14 defined (Round1): what one card guest
// payment sent on the first round's code, captured from its store with a
// pgx tracer — the account read, BEGIN, the line item and transition CTE,
// the attempt, two outbox rows, COMMIT and the mark-published update, each
// in its own round trip. It is frozen rather than captured from the code
// of the day, so ratios taken on different commits compare: payrail
// sending cheaper SQL than this raises its ratio. Scratch makes a
// migrated database for it, Prepare the account it pays against, and Run
// runs pgbench with it. TestRound1WritesOnePayment holds the script to the
// current schema: each transaction must write one payment's rows.
package pgbaseline
