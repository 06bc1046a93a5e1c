-- NACHA drop at scale (processors/nacha/README.md, "Scale"): a drop writes
-- O(entries) rows once, when it assigns entries to their file, and nothing
-- per entry on the way to a durable file.
--
-- An entry in a file keeps status 'batched' until it settles or is
-- returned; whether it is dropped is its file's status (written or
-- uploaded), so recording a file durable is one row, not one per entry.
-- Entries recorded 'dropped' before this migration are in written files.
UPDATE nacha_entries SET status = 'batched' WHERE status = 'dropped';
ALTER TABLE nacha_entries DROP CONSTRAINT nacha_entries_status_check;
ALTER TABLE nacha_entries ADD CONSTRAINT nacha_entries_status_check
    CHECK (status IN ('staged', 'batched', 'settled', 'returned', 'set_aside', 'withdrawn'));
-- Settlement reads entries in files by effective date.
DROP INDEX nacha_entries_dropped_idx;
CREATE INDEX nacha_entries_in_file_idx ON nacha_entries (effective_entry_date, entry_id) WHERE status = 'batched';
-- Traces ascend within a file in batch order (the sequence never wraps
-- inside a file), so the unique (file_id, trace_number) index serves every
-- read in file order; a second index on the same columns was one more
-- index entry per assigned entry.
DROP INDEX nacha_entries_file_idx;

-- The per-line-item "dropped" events and the attempts' nacha_file_id and
-- trace_number are written after the file is durable and recorded, in
-- chunks: announced_through is the last trace number announced (committed
-- with its chunk), announced_at is set once every entry is. Files written
-- before this migration were announced as they were recorded.
ALTER TABLE nacha_files ADD COLUMN announced_through text;
ALTER TABLE nacha_files ADD COLUMN announced_at timestamptz;
UPDATE nacha_files SET announced_at = written_at WHERE status IN ('written', 'uploaded');
CREATE INDEX nacha_files_unannounced_idx ON nacha_files (written_at) WHERE announced_at IS NULL AND status IN ('written', 'uploaded');

-- A file's membership is recorded set-wise when it is planned: its claims,
-- one row per chunk of entry ids with their batch numbers and trace
-- sequence offsets (trace = first 8 digits of the origin routing number ||
-- the 7-digit trace_base + offset). The file is built and written from its
-- claims; each entry's own row (status batched, file, batch, trace, final
-- effective date) is written afterwards, chunk by chunk, marking the claim
-- applied in the same transaction (materialization). The claims stay the
-- file's membership until every one is applied: then they are deleted and
-- materialized_at is set, in one transaction. Files before this migration
-- were assigned entry by entry and are materialized.
CREATE TABLE nacha_file_claims (
    file_id       text      NOT NULL REFERENCES nacha_files (file_id),
    chunk         integer   NOT NULL,
    entry_ids     bigint[]  NOT NULL,
    batch_numbers integer[] NOT NULL,
    sequences     bigint[]  NOT NULL,
    applied       boolean   NOT NULL DEFAULT false,
    PRIMARY KEY (file_id, chunk)
);
ALTER TABLE nacha_files ADD COLUMN trace_base bigint;
ALTER TABLE nacha_files ADD COLUMN materialized_at timestamptz;
UPDATE nacha_files SET materialized_at = created_at;
CREATE INDEX nacha_files_unmaterialized_idx ON nacha_files (org_id) WHERE materialized_at IS NULL;
