-- CANOPY_NACHA refund credits (processors/nacha/README.md, "Reversals"): a
-- reversal of a payment whose debit went into a file, or settled, is a
-- credit entry to the same account. It is a nacha_entries row of its own:
-- line_item_id and attempt_id are the reversal's, direction 'credit',
-- reverses_entry_id the original debit, its account number the original's
-- resealed for the new row. It is held staged until the original settles,
-- so a debit that comes back returned is never refunded.
ALTER TABLE nacha_entries ADD COLUMN direction text NOT NULL DEFAULT 'debit'
    CHECK (direction IN ('debit', 'credit'));
ALTER TABLE nacha_entries ADD COLUMN reverses_entry_id bigint REFERENCES nacha_entries (entry_id);
ALTER TABLE nacha_entries ADD CONSTRAINT nacha_entries_credit_reverses
    CHECK ((direction = 'credit') = (reverses_entry_id IS NOT NULL));
-- One refund per debit, whatever a worker does twice.
CREATE UNIQUE INDEX nacha_entries_one_refund_idx ON nacha_entries (reverses_entry_id)
    WHERE reverses_entry_id IS NOT NULL;

-- A batch of credits (refunds): its entries are credits, and a balanced
-- file's offset for it is a debit to the org's own account. A batch
-- holding only the offset of a credit batch is credits too.
ALTER TABLE nacha_batches ADD COLUMN credits boolean NOT NULL DEFAULT false;

-- Returns of refunds, and of debits whose refund was already sent
-- (processors/nacha/README.md, "Reversals").
ALTER TABLE nacha_returns DROP CONSTRAINT nacha_returns_outcome_check;
ALTER TABLE nacha_returns ADD CONSTRAINT nacha_returns_outcome_check
    CHECK (outcome IN ('declined', 'reversed', 'duplicate', 'refund_returned', 'reversed_after_refund'));
