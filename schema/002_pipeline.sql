-- The execution pipeline: one attempt per executed payment and the
-- transactional outbox that carries jobs and events to JetStream.

-- An attempt is one execution of a payment by a processor. The worker
-- reads its status before acting on a delivery, so a redelivered job whose
-- result is already committed is acknowledged without calling the
-- processor again (SPEC §4, exactly-once effect).
CREATE TABLE payment_attempts (
    attempt_id           text        PRIMARY KEY,
    org_id               text        NOT NULL,
    account_id           text        NOT NULL,
    line_item_id         text        NOT NULL,
    processor            text        NOT NULL,
    payment_type         text        NOT NULL CHECK (payment_type IN ('ACH', 'DEBIT')),
    -- queued: accepted, not yet picked up; processing: a worker holds a
    -- delivery; held: the processor has not decided (review); pending_settlement:
    -- accepted for later settlement (ACH staged or dropped); succeeded,
    -- declined, failed (permanent error), dead (deliveries exhausted) are
    -- final; returned: an ACH return arrived after settlement.
    status               text        NOT NULL CHECK (status IN ('queued', 'processing', 'held',
                             'pending_settlement', 'succeeded', 'declined', 'failed', 'dead', 'returned')),
    deliveries           integer     NOT NULL DEFAULT 0,
    last_delivery_at     timestamptz,
    transaction_id       text,
    result_code          text,
    result_message       text,
    instrument_kind      text,
    instrument_brand     text,
    instrument_last_four text,
    nacha_file_id        text,
    trace_number         text,
    job_msg_id           text        NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    UNIQUE (org_id, account_id, line_item_id),
    FOREIGN KEY (org_id, account_id, line_item_id) REFERENCES line_items (org_id, account_id, line_item_id)
);
-- Held attempts are polled; dead-letter sweeps look at processing ones.
CREATE INDEX payment_attempts_open_idx ON payment_attempts (status, updated_at)
    WHERE status IN ('processing', 'held');

-- The transactional outbox. A row is written in the same transaction as
-- the state it announces and published to JetStream with Nats-Msg-Id =
-- msg_id, so a second publish of the same row is dropped by the stream's
-- duplicate window. subject is logical ("jobs.CANOPY_NACHA",
-- "events.line_item.valid"); the publisher prefixes the deployment's
-- subject root. payload is NULL once a job's result is committed: a job
-- body holds sealed card or bank details and is kept no longer than needed.
CREATE TABLE outbox (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msg_id       text        NOT NULL UNIQUE,
    subject      text        NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}',
    payload      bytea,
    -- fast_path: the writer publishes the row itself right after commit;
    -- the relay leaves it alone for a grace period to avoid racing it.
    fast_path    boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
