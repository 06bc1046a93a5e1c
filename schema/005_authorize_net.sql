-- An org's own Authorize.Net merchant credentials. The transaction key is
-- sealed with AES-256-GCM (package keyring, context
-- org_authorize_net_configs/<org>); only its last four characters are
-- readable. An org without a row is charged with the single-tenant
-- default credentials of the configuration (PAYRAIL_AUTHNET_LOGIN_ID).
CREATE TABLE org_authorize_net_configs (
    org_id                    text        PRIMARY KEY REFERENCES orgs (org_id),
    api_login_id              text        NOT NULL,
    transaction_key_enc       bytea       NOT NULL,
    transaction_key_last_four text        NOT NULL,
    updated_at                timestamptz NOT NULL DEFAULT now()
);
