-- Webhooks (package webhooks, docs/api.md "Webhooks"): an org's
-- subscription and the delivery state of every event sent to it. The
-- delivery state lives here, not in NATS, so retries, backoff and the
-- dead-letter list survive restarts and any number of `payrail webhooks`
-- processes can share the work (FOR UPDATE SKIP LOCKED).
--
-- Numbering: tern refuses gaps, so this is the next free number on this
-- branch; a merge beside other new migrations renumbers it.

-- One subscription per org. The signing secret is sealed with the keyring
-- (context webhook_subscriptions/<org_id>) and shown once, when it is made.
-- paused_at is set after pause_after consecutive failed attempts or one
-- 401; an admin resumes (or re-subscribes).
CREATE TABLE webhook_subscriptions (
    org_id                        text        PRIMARY KEY REFERENCES orgs (org_id),
    webhook_url                   text        NOT NULL,
    failure_notification_protocol text CHECK (failure_notification_protocol IN ('https', 'http')),
    failure_notification_endpoint text,
    secret_enc                    bytea       NOT NULL,
    secret_rotated_at             timestamptz NOT NULL,
    consecutive_failures          integer     NOT NULL DEFAULT 0,
    paused_at                     timestamptz,
    paused_reason                 text,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    updated_at                    timestamptz NOT NULL DEFAULT now(),
    CHECK ((failure_notification_protocol IS NULL) = (failure_notification_endpoint IS NULL))
);

-- One row per (org, event): the event's Canopy name and the exact bytes
-- of the envelope's data member, signed at each attempt.
-- status: pending (next_attempt_at says when) → delivered, or dead (the
-- dead-letter list, kept 5 days; replay_failed_events makes them pending).
-- locked_until is the lease of the process sending it.
CREATE TABLE webhook_deliveries (
    delivery_id      text        PRIMARY KEY,
    org_id           text        NOT NULL REFERENCES webhook_subscriptions (org_id) ON DELETE CASCADE,
    event_id         text        NOT NULL,
    event_name       text        NOT NULL,
    data             bytea       NOT NULL,
    status           text        NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    locked_until     timestamptz,
    first_failed_at  timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    dead_at          timestamptz,
    UNIQUE (org_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_dead_idx ON webhook_deliveries (org_id, dead_at) WHERE status = 'dead';
CREATE INDEX webhook_deliveries_delivered_idx ON webhook_deliveries (delivered_at) WHERE status = 'delivered';
