-- CANOPY_NACHA: staged ACH entries, the NACHA files they are dropped in,
-- and what the bank sends back (returns and notifications of change).
-- The processor lives in processors/nacha; its README explains the states.

-- A NACHA file. The row is created together with the assignment of its
-- entries (one transaction) and snapshots everything the file header and
-- the balancing entries need, so the file can be rebuilt byte for byte
-- after a crash even if the org's configuration changed in between.
-- status: building (entries assigned, bytes not yet durable) → written
-- (fsynced and renamed into the drop directory, sha256 recorded) →
-- uploaded (SFTP copy verified by size and hash).
CREATE TABLE nacha_files (
    file_id                    text        PRIMARY KEY,
    org_id                     text        NOT NULL REFERENCES orgs (org_id),
    status                     text        NOT NULL CHECK (status IN ('building', 'written', 'uploaded')),
    file_name                  text        NOT NULL UNIQUE,
    cutoff_at                  timestamptz NOT NULL,
    created_at                 timestamptz NOT NULL,
    -- File header fields, rendered in the cutoff calendar's time zone.
    creation_date              date        NOT NULL,
    creation_time              text        NOT NULL CHECK (creation_time ~ '^[0-9]{4}$'),
    file_id_modifier           text        NOT NULL CHECK (file_id_modifier ~ '^[A-Z0-9]$'),
    immediate_destination      text        NOT NULL,
    immediate_destination_name text        NOT NULL,
    immediate_origin           text        NOT NULL,
    immediate_origin_name      text        NOT NULL,
    company_name               text        NOT NULL,
    company_identification     text        NOT NULL,
    company_entry_description  text        NOT NULL,
    is_balanced                boolean     NOT NULL,
    -- Whether the file goes to SFTP too: decided when the file is created,
    -- so enabling SFTP later does not upload old files.
    upload_required            boolean     NOT NULL,
    -- The offset account of a balanced file, resealed for this row.
    offset_routing             text,
    offset_account_enc         bytea,
    offset_account_type        text CHECK (offset_account_type IN ('CHECKING', 'SAVINGS')),
    batch_count                integer     NOT NULL,
    entry_count                integer     NOT NULL,
    debit_total_cents          bigint      NOT NULL,
    credit_total_cents         bigint      NOT NULL,
    sha256                     bytea,
    size_bytes                 bigint,
    written_at                 timestamptz,
    remote_path                text,
    uploaded_at                timestamptz,
    last_error                 text,
    -- NACHA: the modifier tells apart files sent to one destination on one day.
    UNIQUE (immediate_destination, creation_date, file_id_modifier),
    CHECK (NOT is_balanced OR (offset_routing IS NOT NULL AND offset_account_enc IS NOT NULL)),
    CHECK (status = 'building' OR (sha256 IS NOT NULL AND written_at IS NOT NULL))
);
CREATE INDEX nacha_files_unfinished_idx ON nacha_files (created_at) WHERE status <> 'uploaded';

-- A batch of a file: one per (SEC code, effective entry date, company).
-- offset_trace_number is the balancing credit's trace in a balanced file;
-- offset_in_own_batch says it travels in a separate CCD batch (TEL batches
-- may hold debits only).
CREATE TABLE nacha_batches (
    file_id              text    NOT NULL REFERENCES nacha_files (file_id),
    batch_number         integer NOT NULL CHECK (batch_number > 0),
    standard_entry_class text    NOT NULL,
    effective_entry_date date    NOT NULL,
    entry_count          integer NOT NULL,
    debit_total_cents    bigint  NOT NULL,
    credit_total_cents   bigint  NOT NULL,
    offset_trace_number  text,
    offset_only          boolean NOT NULL DEFAULT false,
    PRIMARY KEY (file_id, batch_number)
);

-- The next trace number sequence per ODFI (first 8 digits of the origin
-- routing number). Trace numbers are the key returns come back with, so
-- they are unique across files, not only within one, until the 7-digit
-- sequence wraps.
CREATE TABLE nacha_trace_counters (
    odfi_identification text   PRIMARY KEY,
    last_sequence       bigint NOT NULL
);

-- One ACH debit per payment attempt. attempt_id is unique, so a
-- redelivered job stages nothing new. The account number is sealed
-- (keyring, context bound to org and attempt) and can be purged once the
-- return window has passed (account_number_enc NULL, purged_at set).
-- status: staged → batched (assigned to a file being built) → dropped (file
-- durable) → settled (line item VALID) | returned.
CREATE TABLE nacha_entries (
    entry_id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id                text        NOT NULL,
    account_id            text        NOT NULL,
    line_item_id          text        NOT NULL,
    attempt_id            text        NOT NULL UNIQUE,
    status                text        NOT NULL CHECK (status IN ('staged', 'batched', 'dropped', 'settled', 'returned')),
    amount_cents          bigint      NOT NULL CHECK (amount_cents > 0 AND amount_cents <= 9999999999),
    standard_entry_class  text        NOT NULL CHECK (standard_entry_class IN ('WEB', 'PPD', 'CCD', 'TEL')),
    rdfi_routing          text        NOT NULL CHECK (rdfi_routing ~ '^[0-9]{9}$'),
    account_type          text        NOT NULL CHECK (account_type IN ('CHECKING', 'SAVINGS')),
    account_number_enc    bytea,
    account_last_four     text        NOT NULL,
    individual_name       text        NOT NULL,
    payment_type_code     text        NOT NULL DEFAULT '',
    -- Planned at staging from the cutoff calendar; moved forward when the
    -- entry is batched later than planned (a missed cutoff).
    effective_entry_date  date        NOT NULL,
    staged_at             timestamptz NOT NULL,
    file_id               text REFERENCES nacha_files (file_id),
    batch_number          integer,
    trace_number          text CHECK (trace_number ~ '^[0-9]{15}$'),
    dropped_at            timestamptz,
    settled_at            timestamptz,
    returned_at           timestamptz,
    return_code           text,
    return_reason         text,
    reversal_line_item_id text,
    purged_at             timestamptz,
    FOREIGN KEY (org_id, account_id, line_item_id) REFERENCES line_items (org_id, account_id, line_item_id),
    FOREIGN KEY (file_id, batch_number) REFERENCES nacha_batches (file_id, batch_number),
    UNIQUE (file_id, trace_number),
    CHECK ((status = 'staged') = (file_id IS NULL)),
    CHECK (status = 'staged' OR trace_number IS NOT NULL)
);
CREATE INDEX nacha_entries_staged_idx ON nacha_entries (org_id, effective_entry_date) WHERE status = 'staged';
CREATE INDEX nacha_entries_file_idx ON nacha_entries (file_id, batch_number, trace_number);
CREATE INDEX nacha_entries_trace_idx ON nacha_entries (trace_number, entry_id DESC) WHERE trace_number IS NOT NULL;
CREATE INDEX nacha_entries_dropped_idx ON nacha_entries (effective_entry_date, entry_id) WHERE status = 'dropped';

-- A return or NOC file the bank sent. sha256 is unique: the same file
-- ingested twice applies once. The file's content is not kept (it holds
-- account numbers).
CREATE TABLE nacha_inbound_files (
    inbound_id  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_name   text        NOT NULL,
    sha256      bytea       NOT NULL UNIQUE,
    returns     integer     NOT NULL,
    nocs        integer     NOT NULL,
    received_at timestamptz NOT NULL
);

-- A return applied to an entry: declined (before settlement), reversed
-- (after VALID: a PAYMENT_REVERSAL line item) or duplicate (the entry was
-- already returned; nothing changed).
CREATE TABLE nacha_returns (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    inbound_id          bigint      NOT NULL REFERENCES nacha_inbound_files (inbound_id),
    entry_id            bigint      NOT NULL REFERENCES nacha_entries (entry_id),
    return_code         text        NOT NULL,
    return_reason       text        NOT NULL,
    addenda_information text        NOT NULL DEFAULT '',
    outcome             text        NOT NULL CHECK (outcome IN ('declined', 'reversed', 'duplicate')),
    created_at          timestamptz NOT NULL
);
CREATE INDEX nacha_returns_entry_idx ON nacha_returns (entry_id);

-- A notification of change. Corrected account numbers are not stored here,
-- only their last four; applied says whether the account's stored
-- canopy_nacha_config was updated (C01–C03 while it still names the
-- corrected account).
CREATE TABLE nacha_notifications_of_change (
    id                          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    inbound_id                  bigint      NOT NULL REFERENCES nacha_inbound_files (inbound_id),
    entry_id                    bigint      NOT NULL REFERENCES nacha_entries (entry_id),
    change_code                 text        NOT NULL,
    change_reason               text        NOT NULL,
    corrected_routing           text,
    corrected_account_last_four text,
    corrected_data              text        NOT NULL DEFAULT '',
    applied                     boolean     NOT NULL,
    created_at                  timestamptz NOT NULL
);
CREATE INDEX nacha_notifications_of_change_entry_idx ON nacha_notifications_of_change (entry_id);
