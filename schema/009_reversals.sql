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
