-- 0001: agencies, credentials, admin tokens, numbering plan and its history, audit trail.

CREATE TABLE agencies (
    id                    uuid PRIMARY KEY,
    name_fa               text        NOT NULL,
    name_en               text        NOT NULL,
    legal_id              char(11)    NOT NULL UNIQUE,
    contact_name          text        NOT NULL DEFAULT '',
    contact_email         text        NOT NULL DEFAULT '',
    contact_phone         text        NOT NULL DEFAULT '',
    status                text        NOT NULL DEFAULT 'active'
                                      CHECK (status IN ('active', 'suspended')),
    status_reason         text        NOT NULL DEFAULT '',
    tps                   integer     NOT NULL CHECK (tps > 0),
    daily_fragment_quota  bigint      NOT NULL CHECK (daily_fragment_quota >= 0),
    link_domains          text[]      NOT NULL DEFAULT '{}',
    callback_url          text        NOT NULL DEFAULT '',
    -- AES-GCM sealed under the platform master key: the gateway signs callbacks with it.
    webhook_secret_sealed bytea       NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id        text        PRIMARY KEY,
    agency_id     uuid        NOT NULL REFERENCES agencies (id),
    name          text        NOT NULL,
    key_type      text        NOT NULL CHECK (key_type IN ('live', 'test')),
    -- SHA-256 of the secret: a fingerprint for audits and support, never the secret itself.
    secret_hash   bytea       NOT NULL,
    -- HS256 verification needs the key itself; it is kept sealed under the master key.
    secret_sealed bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_agency ON api_keys (agency_id);

-- Seen JWT ids, kept until the token could no longer pass the iat window: a replay is refused
-- on every node because the check is a primary-key insert.
CREATE TABLE jwt_replay (
    key_id     text        NOT NULL,
    jti        text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (key_id, jti)
);
CREATE INDEX jwt_replay_expiry ON jwt_replay (expires_at);

CREATE TABLE admin_tokens (
    id           uuid        PRIMARY KEY,
    name         text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('admin', 'viewer')),
    token_hash   bytea       NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- Every allocation ever made. A row is active while released_at is NULL; after release it stays
-- (history: who held what, from when to when) and blocks other agencies until quarantine_until.
CREATE TABLE numbering (
    id               bigserial   PRIMARY KEY,
    kind             text        NOT NULL
                                 CHECK (kind IN ('shortcode', 'sub_number', 'ussd_code', 'mask')),
    value            text        NOT NULL,
    -- Comparison key: digits for numbers and USSD codes, the look-alike skeleton for masks.
    match_key        text        NOT NULL,
    agency_id        uuid        NOT NULL REFERENCES agencies (id),
    parent_id        bigint      REFERENCES numbering (id),
    label            text        NOT NULL DEFAULT '',
    allocated_at     timestamptz NOT NULL DEFAULT now(),
    allocated_by     text        NOT NULL,
    released_at      timestamptz,
    released_by      text,
    quarantine_until timestamptz
);
CREATE UNIQUE INDEX numbering_active_key ON numbering (kind, match_key) WHERE released_at IS NULL;
CREATE INDEX numbering_agency ON numbering (agency_id);
CREATE INDEX numbering_value ON numbering (value);

CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    outcome     text        NOT NULL,
    client_addr text        NOT NULL DEFAULT '',
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
