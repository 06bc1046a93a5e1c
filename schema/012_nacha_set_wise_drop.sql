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
    CHECK (status IN ('staged', 'batched', 'settled', 'returned', 'set_aside'));
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
