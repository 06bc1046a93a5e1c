-- The sealed job moves from its outbox row to its attempt, so that a
-- published job row can be deleted like an event row: nothing updates an
-- outbox row after it is written any more, and the publishers (which
-- delete rows they published) never contend with the worker (which
-- clears the attempt's job with the same UPDATE that records its result).
-- docs/pipeline.md, "Transactional outbox" and "Why settle by deleting".
--
-- payment_attempts.job is the sealed job (never the CVV) an unfinished
-- attempt executes: the reconciler and `payments redrive` read it, the
-- relay publishes it. It is set to NULL when the attempt's result commits,
-- except while the attempt is held.
--
-- outbox.attempt_id names, on a job row, the attempt whose job the row
-- publishes; such a row is written without a payload. Rows of earlier
-- versions (attempt_id NULL, payload set) are still published as they
-- are.
ALTER TABLE payment_attempts ADD COLUMN job bytea;
ALTER TABLE outbox ADD COLUMN attempt_id text;

-- Move the jobs still held in outbox rows to their attempts.
UPDATE payment_attempts pa SET job = o.payload
  FROM outbox o
 WHERE o.msg_id = pa.job_msg_id AND o.payload IS NOT NULL;

-- Unpublished job rows name their attempt and keep their payload (a relay
-- of the earlier version may still publish them while it runs).
UPDATE outbox o SET attempt_id = pa.attempt_id
  FROM payment_attempts pa
 WHERE o.msg_id = pa.job_msg_id AND o.published_at IS NULL;

-- Published rows are no longer kept: the job they held is in its attempt.
DELETE FROM outbox WHERE published_at IS NOT NULL;
