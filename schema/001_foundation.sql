-- Tenancy, accounts and the line item ledger. Every table that holds
-- customer data carries org_id and every key starts with it, so a query
-- that forgets the org cannot find another tenant's rows by accident.

CREATE TABLE orgs (
    org_id     text        PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_clients (
    client_id   text        PRIMARY KEY,
    org_id      text        NOT NULL REFERENCES orgs (org_id),
    name        text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('admin', 'servicing', 'operations', 'readonly')),
    secret_hash text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);
CREATE INDEX api_clients_org_idx ON api_clients (org_id);

CREATE TABLE accounts (
    org_id          text        NOT NULL REFERENCES orgs (org_id),
    account_id      text        NOT NULL,
    product_id      text        NOT NULL,
    customer_name   text,
    external_fields jsonb       NOT NULL DEFAULT '[]',
    account_status  text        NOT NULL DEFAULT 'ACTIVE',
    -- SHA-256 of the normalized create request: a replay with the same body
    -- is answered with the account, a different body with 409.
    request_hash    bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, account_id)
);

-- The account's stored payment methods. Bank account numbers are sealed
-- with AES-256-GCM (see package keyring); only the last four are readable.
CREATE TABLE account_processor_configs (
    org_id                   text        NOT NULL,
    account_id               text        NOT NULL,
    ach_processor            text        NOT NULL DEFAULT 'NONE' CHECK (ach_processor IN ('NONE', 'CANOPY_NACHA')),
    ach_routing_number       text,
    ach_account_number_enc   bytea,
    ach_account_last_four    text,
    ach_account_type         text CHECK (ach_account_type IN ('CHECKING', 'SAVINGS')),
    debit_processor          text        NOT NULL DEFAULT 'NONE' CHECK (debit_processor IN ('NONE', 'AUTHORIZE_NET')),
    anet_customer_profile_id text,
    anet_payment_profile_id  text,
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, account_id),
    FOREIGN KEY (org_id, account_id) REFERENCES accounts (org_id, account_id)
);

CREATE TABLE org_nacha_configs (
    org_id                   text        PRIMARY KEY REFERENCES orgs (org_id),
    destination_bank_name    text        NOT NULL,
    destination_routing      text        NOT NULL,
    origin_bank_name         text        NOT NULL,
    origin_routing           text        NOT NULL,
    company_name             text        NOT NULL,
    company_identification   text        NOT NULL,
    company_entry_description text       NOT NULL,
    is_balanced              boolean     NOT NULL DEFAULT false,
    offset_routing           text,
    offset_account_enc       bytea,
    offset_account_last_four text,
    offset_account_type      text CHECK (offset_account_type IN ('CHECKING', 'SAVINGS')),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT is_balanced OR (offset_routing IS NOT NULL AND offset_account_enc IS NOT NULL))
);

CREATE TABLE line_items (
    org_id                   text        NOT NULL,
    account_id               text        NOT NULL,
    line_item_id             text        NOT NULL,
    -- seq orders the ledger (newest first) and backs the opaque cursors.
    seq                      bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    line_item_type           text        NOT NULL,
    status                   text        NOT NULL,
    original_amount_cents    bigint      NOT NULL CHECK (original_amount_cents > 0),
    description              text        NOT NULL DEFAULT '',
    effective_at             timestamptz NOT NULL,
    valid_at                 timestamptz,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    merchant_data            jsonb,
    issuer_processor_details jsonb,
    external_fields          jsonb       NOT NULL DEFAULT '[]',
    -- The route that created the line item and the processor that executes
    -- it (NULL for records and charges, which nothing executes).
    origin                   text        NOT NULL,
    processor                text,
    -- SHA-256 of the normalized create request, for idempotent replays.
    request_hash             bytea       NOT NULL,
    client_id                text        NOT NULL,
    idempotency_key          text,
    related_line_item_id     text,
    PRIMARY KEY (org_id, account_id, line_item_id),
    FOREIGN KEY (org_id, account_id) REFERENCES accounts (org_id, account_id)
);
CREATE INDEX line_items_account_seq_idx ON line_items (org_id, account_id, seq DESC);
CREATE UNIQUE INDEX line_items_idempotency_key_idx
    ON line_items (org_id, client_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Every status change, with who made it and why (SPEC §3).
CREATE TABLE line_item_transitions (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       text        NOT NULL,
    account_id   text        NOT NULL,
    line_item_id text        NOT NULL,
    from_status  text,
    to_status    text        NOT NULL,
    amount_cents bigint      NOT NULL,
    actor        text        NOT NULL,
    reason       text        NOT NULL,
    at           timestamptz NOT NULL,
    FOREIGN KEY (org_id, account_id, line_item_id) REFERENCES line_items (org_id, account_id, line_item_id)
);
CREATE INDEX line_item_transitions_item_idx ON line_item_transitions (org_id, account_id, line_item_id, id);
