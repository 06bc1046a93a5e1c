-- API client credential versions. Every access token carries the version
-- its client had when the token was issued; disabling the client, changing
-- its role or rotating its secret bumps the version, and the API refuses
-- tokens with an older one (within its client cache's few-second TTL).
ALTER TABLE api_clients
    ADD COLUMN credential_version bigint      NOT NULL DEFAULT 1,
    ADD COLUMN updated_at         timestamptz NOT NULL DEFAULT now();
