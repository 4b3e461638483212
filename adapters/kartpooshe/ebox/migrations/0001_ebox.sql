-- The reference e-box's own database (EBOX-PROTOCOL v1). Nothing here is shared with the
-- gateway: the e-box is a separate party and keeps only what a mailbox needs.

-- One box per person (10-digit national code) or company (11-digit legal-entity id), made on
-- the first letter deposited for it.
CREATE TABLE boxes (
    owner_id   text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('person', 'company')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE letters (
    letter_id        text PRIMARY KEY,
    owner_id         text NOT NULL REFERENCES boxes (owner_id),
    tracking_number  text NOT NULL,
    agency_id        uuid NOT NULL,
    agency_name_fa   text NOT NULL,
    agency_name_en   text NOT NULL,
    subject          text NOT NULL,
    body             text NOT NULL,
    reply_allowed    boolean NOT NULL,
    accepted_at      timestamptz NOT NULL,
    content_sha256   text NOT NULL,
    deposited_at     timestamptz NOT NULL DEFAULT now(),
    -- First opening only: later openings change nothing (the protocol sends "opened" once).
    first_opened_at  timestamptz,
    opened_by        text CHECK (opened_by IN ('owner', 'attorney', 'representative'))
);
CREATE INDEX letters_by_box ON letters (owner_id, deposited_at DESC);

CREATE TABLE attachments (
    letter_id    text NOT NULL REFERENCES letters (letter_id) ON DELETE CASCADE,
    position     integer NOT NULL,
    name         text NOT NULL,
    content_type text NOT NULL,
    size         bigint NOT NULL,
    sha256       text NOT NULL,
    data         bytea NOT NULL,
    PRIMARY KEY (letter_id, position)
);

CREATE TABLE replies (
    reply_id        uuid PRIMARY KEY,
    letter_id       text NOT NULL REFERENCES letters (letter_id),
    actor           text NOT NULL CHECK (actor IN ('owner', 'attorney', 'representative')),
    text            text NOT NULL,
    attachment_name text,
    attachment_type text,
    attachment_data bytea,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replies_by_letter ON replies (letter_id, created_at);

-- Outbox of events for the gateway: written in the same transaction as the opening or reply,
-- so an event is never lost; delivered by a background loop with backoff.
CREATE TABLE events (
    event_id        uuid PRIMARY KEY,
    letter_id       text NOT NULL REFERENCES letters (letter_id),
    type            text NOT NULL CHECK (type IN ('opened', 'replied')),
    at              timestamptz NOT NULL,
    actor           text NOT NULL,
    reply_id        uuid REFERENCES replies (reply_id),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz
);
CREATE INDEX events_due ON events (next_attempt_at) WHERE status = 'pending';

-- Attorneys: another national code that may read a person's box until revoked.
CREATE TABLE attorneys (
    id            bigserial PRIMARY KEY,
    owner_id      text NOT NULL REFERENCES boxes (owner_id),
    national_code text NOT NULL,
    granted_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE UNIQUE INDEX attorneys_active ON attorneys (owner_id, national_code)
    WHERE revoked_at IS NULL;
CREATE INDEX attorneys_by_code ON attorneys (national_code) WHERE revoked_at IS NULL;

-- Representatives: the people who read and answer a company's box.
CREATE TABLE representatives (
    id            bigserial PRIMARY KEY,
    owner_id      text NOT NULL REFERENCES boxes (owner_id),
    national_code text NOT NULL,
    added_at      timestamptz NOT NULL DEFAULT now(),
    added_by      text NOT NULL,
    removed_at    timestamptz
);
CREATE UNIQUE INDEX representatives_active ON representatives (owner_id, national_code)
    WHERE removed_at IS NULL;
CREATE INDEX representatives_by_code ON representatives (national_code)
    WHERE removed_at IS NULL;

-- One-time login codes, stored as scrypt hashes; expired rows are purged.
CREATE TABLE login_codes (
    login_id      uuid PRIMARY KEY,
    national_code text NOT NULL,
    salt          bytea NOT NULL,
    code_hash     bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    used_at       timestamptz
);
CREATE INDEX login_codes_by_code ON login_codes (national_code, created_at DESC);

-- Web sessions: only the SHA-256 of the cookie value is kept.
CREATE TABLE sessions (
    token_hash    bytea PRIMARY KEY,
    national_code text NOT NULL,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
