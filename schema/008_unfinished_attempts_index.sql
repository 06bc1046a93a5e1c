-- The worker's reconciler (every 10 s on every worker) and the
-- payrail_attempts_stale gauge look for unfinished attempts that have not
-- moved: queued ones too, which payment_attempts_open_idx left out, so each
-- look read the whole table, which grows with every payment ever made.
-- One partial index covers every unfinished status; finished attempts, the
-- bulk of the table, stay out of it.
CREATE INDEX payment_attempts_unfinished_idx ON payment_attempts (status, updated_at)
    WHERE status IN ('queued', 'processing', 'held');
DROP INDEX payment_attempts_open_idx;
