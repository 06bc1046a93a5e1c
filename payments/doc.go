// Package payments owns the payment use case, between the roles that
// carry payments (intake, worker) and the store that records them:
//
//   - Submit takes a payment for execution: it chooses the processor
//     (from the body of a guest payment, or the account's configuration
//     for a transfer), builds and seals the job with the CVV rule, and
//     records the PENDING line item, its attempt, the job and the creation
//     event in one transaction.
//   - Apply records what a processor made of an attempt: the attempt's
//     status and result, and the line item's status, by one table of
//     rules (Resolution).
//   - Reverse gives a line item's money back (reverse.go): a reversal line
//     item linked to the original, VALID at once for what nothing
//     executed, else PENDING with an attempt and a job for the original's
//     processor (a card void or refund, an ACH entry withdrawn); at most
//     one reversal per original.
//   - The state rules of line items and attempts live here (states.go):
//     which statuses are final, which attempts a worker may still act on,
//     which manual edits are allowed. docs/states.md describes them.
//
// The store persists what this package decides and enforces it under its
// row locks; it makes no decisions of its own.
package payments
