-- Payment and charge reversals (POST .../payment_reversals/{id} and
-- .../charge_reversals/{id}). A reversal is a PAYMENT_REVERSAL or
-- CHARGE_REVERSAL line item whose related_line_item_id names the original;
-- the original's related_line_item_id names its reversal back. An original
-- is reversed at most once: a second request is answered with the first
-- reversal, and this index makes a second one impossible even for a
-- writer that forgot to lock the original.
CREATE UNIQUE INDEX line_items_one_reversal_idx
    ON line_items (org_id, account_id, related_line_item_id)
    WHERE line_item_type IN ('PAYMENT_REVERSAL', 'CHARGE_REVERSAL');

-- CANOPY_NACHA: a staged entry whose payment is reversed before any cutoff
-- took it is withdrawn: it never goes into a file, its account number is
-- purged at once, and reversal_line_item_id names the reversal.
ALTER TABLE nacha_entries DROP CONSTRAINT nacha_entries_status_check;
ALTER TABLE nacha_entries ADD CONSTRAINT nacha_entries_status_check
    CHECK (status IN ('staged', 'batched', 'dropped', 'settled', 'returned', 'set_aside', 'withdrawn'));
ALTER TABLE nacha_entries DROP CONSTRAINT nacha_entries_check;
ALTER TABLE nacha_entries ADD CONSTRAINT nacha_entries_check
    CHECK ((status IN ('staged', 'set_aside', 'withdrawn')) = (file_id IS NULL));
ALTER TABLE nacha_entries DROP CONSTRAINT nacha_entries_check1;
ALTER TABLE nacha_entries ADD CONSTRAINT nacha_entries_check1
    CHECK (status IN ('staged', 'set_aside', 'withdrawn') OR trace_number IS NOT NULL);
ALTER TABLE nacha_entries ADD COLUMN withdrawn_at timestamptz;
