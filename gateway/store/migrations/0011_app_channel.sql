-- 0011: the app and portal channel (issue 6, Art 1(b): "Dowlat Hamrah" and other providers of
-- smart-government services receive and send messages in their apps). docs/APP_CHANNEL.md.

-- Providers registered by the platform's operators. The push secret signs every push to
-- push_url (Payam-Signature, as agency callbacks); sealed under the master key like webhook
-- secrets. scopes: what the provider may do (notices: receive pushes and pull; replies: send a
-- citizen's answer). agencies: whose notices it may carry; empty means every agency.
CREATE TABLE app_providers (
    id                 uuid        PRIMARY KEY,
    name               text        NOT NULL UNIQUE,
    push_url           text        NOT NULL,
    push_secret_sealed bytea       NOT NULL,
    scopes             text[]      NOT NULL,
    agencies           uuid[]      NOT NULL DEFAULT '{}',
    status             text        NOT NULL DEFAULT 'active'
                                   CHECK (status IN ('active', 'suspended')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Providers' API keys: the agencies' HS256 JWT scheme in a key space of its own (key ids
-- "app_…", a table of their own), so an agency key can never act as a provider or back.
CREATE TABLE app_provider_keys (
    key_id        text        PRIMARY KEY,
    provider_id   uuid        NOT NULL REFERENCES app_providers (id),
    name          text        NOT NULL,
    secret_hash   bytea       NOT NULL,
    secret_sealed bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX app_provider_keys_provider ON app_provider_keys (provider_id);

-- Which citizens are signed in on which app. Collect no more than needed: citizen_key is an
-- HMAC of the national code under a key derived from the master key (as verification codes),
-- never the code; citizen_ref is the provider's own opaque id of the account, the address of
-- its pushes. A sign-out deletes the row.
CREATE TABLE app_registrations (
    citizen_key   bytea       NOT NULL,
    provider_id   uuid        NOT NULL REFERENCES app_providers (id),
    citizen_ref   text        NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (citizen_key, provider_id)
);

-- One row per message routed to the app channel. The message's SMS queue row is held (vt =
-- infinity) until the app confirms (state delivered, queue row deleted) or the push is given up
-- (fallen_back: vt = now, the dispatcher sends the SMS). Both are conditional on state =
-- 'pending', so on any number of nodes exactly one of them happens, and the SMS at most once.
CREATE TABLE app_deliveries (
    message_id      uuid        PRIMARY KEY,
    seq             bigserial   UNIQUE,
    agency_id       uuid        NOT NULL,
    provider_id     uuid        NOT NULL REFERENCES app_providers (id),
    citizen_key     bytea       NOT NULL,
    fallback        text        NOT NULL CHECK (fallback IN ('', 'sms')),
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'delivered', 'fallen_back',
                                                 'failed', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    deadline        timestamptz NOT NULL,
    leased_until    timestamptz NOT NULL DEFAULT '-infinity',
    last_error      text        NOT NULL DEFAULT '',
    delivered_at    timestamptz,
    read_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_deliveries_due ON app_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX app_deliveries_inbox ON app_deliveries (provider_id, citizen_key, seq);
