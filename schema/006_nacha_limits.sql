-- CANOPY_NACHA at its limits (processors/nacha/README.md, "Limits").
--
-- An entry that cannot be written into any file is set aside: it leaves
-- its file (file_id and trace cleared), its payment becomes INVALID, and
-- the rest of the cutoff drops.
ALTER TABLE nacha_entries DROP CONSTRAINT nacha_entries_status_check;
ALTER TABLE nacha_entries ADD CONSTRAINT nacha_entries_status_check
    CHECK (status IN ('staged', 'batched', 'dropped', 'settled', 'returned', 'set_aside'));
ALTER TABLE nacha_entries DROP CONSTRAINT nacha_entries_check;
ALTER TABLE nacha_entries ADD CONSTRAINT nacha_entries_check
    CHECK ((status IN ('staged', 'set_aside')) = (file_id IS NULL));
ALTER TABLE nacha_entries DROP CONSTRAINT nacha_entries_check1;
ALTER TABLE nacha_entries ADD CONSTRAINT nacha_entries_check1
    CHECK (status IN ('staged', 'set_aside') OR trace_number IS NOT NULL);
ALTER TABLE nacha_entries ADD COLUMN set_aside_at timestamptz;
ALTER TABLE nacha_entries ADD COLUMN set_aside_reason text;

-- A file still building can be released by an operator (payrail nacha
-- release-file): its entries go back to staged and the next drop cuts them
-- into a new file. The released row stays, with its modifier, as a record.
ALTER TABLE nacha_files DROP CONSTRAINT nacha_files_status_check;
ALTER TABLE nacha_files ADD CONSTRAINT nacha_files_status_check
    CHECK (status IN ('building', 'written', 'uploaded', 'released'));
ALTER TABLE nacha_files DROP CONSTRAINT nacha_files_check1;
ALTER TABLE nacha_files ADD CONSTRAINT nacha_files_check1
    CHECK (status IN ('building', 'released') OR (sha256 IS NOT NULL AND written_at IS NOT NULL));
ALTER TABLE nacha_files ADD COLUMN released_at timestamptz;

-- Where a balanced file's offsetting credit goes: OWN_BATCH (a CCD
-- credits-only batch after each debit batch, accepted by every ODFI) or
-- SAME_BATCH (inside the debit batch, service class 200; some ODFIs reject
-- credits in WEB batches). Files created before this migration were
-- SAME_BATCH, and their rows say so, so they rebuild byte for byte.
ALTER TABLE org_nacha_configs ADD COLUMN offset_placement text NOT NULL DEFAULT 'OWN_BATCH'
    CHECK (offset_placement IN ('OWN_BATCH', 'SAME_BATCH'));
ALTER TABLE nacha_files ADD COLUMN offset_placement text NOT NULL DEFAULT 'SAME_BATCH'
    CHECK (offset_placement IN ('OWN_BATCH', 'SAME_BATCH'));

-- Set-aside entries, for operators (payrail nacha files shows their count).
CREATE INDEX nacha_entries_set_aside_idx ON nacha_entries (org_id, set_aside_at) WHERE status = 'set_aside';
