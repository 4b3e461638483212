-- 0005: letters to the national e-box (Kartpooshe): letters and attachments, the signed
-- evidence chain, events from the e-box, citizens' replies and their delivery to office
-- automation, per-agency letter settings and SMTP credentials, one-time-code rate limits.
-- docs/KARTPOOSHE.md describes the flow; docs/KARTPOOSHE_PROTOCOL.md the wire contract.

-- Per-agency letter settings: the deemed-delivery default (MISSION §3: "on open" or N days
-- after deposit), the From addresses its office automation may send from, and where citizens'
-- replies go (signed webhook and/or the office-automation mailbox).
CREATE TABLE letter_settings (
    agency_id          uuid        PRIMARY KEY REFERENCES agencies (id),
    deemed_policy      text        NOT NULL DEFAULT 'after_days'
                                   CHECK (deemed_policy IN ('on_open', 'after_days')),
    deemed_days        integer,
    from_addresses     text[]      NOT NULL DEFAULT '{}',
    office_mailbox     text        NOT NULL DEFAULT '',
    reply_webhook_url  text        NOT NULL DEFAULT '',
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- SMTP AUTH credentials of an agency's office automation; only a scrypt hash is stored.
CREATE TABLE letter_smtp_credentials (
    username       text        PRIMARY KEY,
    agency_id      uuid        NOT NULL REFERENCES agencies (id),
    password_hash  text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
CREATE INDEX letter_smtp_credentials_agency ON letter_smtp_credentials (agency_id);

CREATE TABLE letters (
    id                 uuid        PRIMARY KEY,
    agency_id          uuid        NOT NULL REFERENCES agencies (id),
    tracking_number    text        NOT NULL UNIQUE,
    recipient_kind     text        NOT NULL CHECK (recipient_kind IN ('person', 'company')),
    recipient_id       text        NOT NULL,
    subject            text        NOT NULL,
    body               text        NOT NULL,
    reply_allowed      boolean     NOT NULL,
    deemed_policy      text        NOT NULL CHECK (deemed_policy IN ('on_open', 'after_days')),
    deemed_days        integer     NOT NULL,
    notify_sms         boolean     NOT NULL,
    content_sha256     text        NOT NULL,
    source             text        NOT NULL,
    -- RFC 5322 Message-ID replies are threaded to (the office automation's own, for mail).
    mail_message_id    text        NOT NULL,
    client_ref         text        NOT NULL DEFAULT '',
    status             text        NOT NULL,
    attempts           integer     NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    leased_until       timestamptz NOT NULL DEFAULT '-infinity',
    last_error         text        NOT NULL DEFAULT '',
    accepted_at        timestamptz NOT NULL,
    deposited_at       timestamptz,
    notified_at        timestamptz,
    opened_at          timestamptz,
    replied_at         timestamptz,
    deemed_at          timestamptz,
    failed_at          timestamptz,
    notice_message_id  uuid,
    notice_state       text        NOT NULL DEFAULT '',
    -- Sent with a test key: never reaches the e-box or a phone (docs/API.md), but goes through
    -- the same states and signed events, marked as test.
    is_test            boolean     NOT NULL DEFAULT false
);
CREATE INDEX letters_agency ON letters (agency_id, accepted_at DESC);
CREATE INDEX letters_due ON letters (next_attempt_at) WHERE status = 'accepted';
CREATE INDEX letters_notice ON letters (notice_message_id) WHERE notice_state = 'queued';
CREATE INDEX letters_deemed ON letters (deposited_at)
    WHERE deemed_at IS NULL AND deposited_at IS NOT NULL;

CREATE TABLE letter_attachments (
    letter_id     uuid    NOT NULL REFERENCES letters (id),
    idx           integer NOT NULL,
    name          text    NOT NULL,
    content_type  text    NOT NULL,
    size          integer NOT NULL,
    sha256        text    NOT NULL,
    data          bytea   NOT NULL,
    PRIMARY KEY (letter_id, idx)
);

CREATE TABLE letter_idempotency (
    agency_id     uuid        NOT NULL REFERENCES agencies (id),
    key           text        NOT NULL,
    request_hash  bytea       NOT NULL,
    letter_id     uuid        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, key)
);

-- The evidence chain: append-only, each event signed (Ed25519) and hashing the one before.
CREATE TABLE letter_events (
    letter_id       uuid        NOT NULL REFERENCES letters (id),
    seq             integer     NOT NULL,
    type            text        NOT NULL,
    at              timestamptz NOT NULL,
    content_sha256  text        NOT NULL,
    prev_sha256     text        NOT NULL,
    event_sha256    text        NOT NULL,
    key_id          text        NOT NULL,
    signature       text        NOT NULL,
    detail          jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (letter_id, seq)
);
-- One event of each type per letter (a retried deposit or a repeated "opened" adds nothing);
-- only "replied" may occur more than once.
CREATE UNIQUE INDEX letter_events_once ON letter_events (letter_id, type) WHERE type <> 'replied';

-- Events from the e-box, by their event_id (the e-box retries; each is applied once).
CREATE TABLE ebox_events_seen (
    event_id     uuid        PRIMARY KEY,
    letter_id    uuid        NOT NULL REFERENCES letters (id),
    type         text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE letter_replies (
    id            uuid        PRIMARY KEY,
    seq           bigserial   UNIQUE,
    agency_id     uuid        NOT NULL REFERENCES agencies (id),
    letter_id     uuid        NOT NULL REFERENCES letters (id),
    reply_id      text        NOT NULL,
    text          text        NOT NULL,
    actor_kind    text        NOT NULL,
    content_sha256 text       NOT NULL,
    replied_at    timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (letter_id, reply_id)
);
CREATE INDEX letter_replies_agency ON letter_replies (agency_id, seq);

CREATE TABLE letter_reply_attachments (
    reply_id      uuid    NOT NULL REFERENCES letter_replies (id),
    idx           integer NOT NULL,
    name          text    NOT NULL,
    content_type  text    NOT NULL,
    size          integer NOT NULL,
    sha256        text    NOT NULL,
    data          bytea   NOT NULL,
    PRIMARY KEY (reply_id, idx)
);

-- Deliveries of a reply to the agency, one row per way (webhook, smtp), retried with backoff.
CREATE TABLE letter_reply_deliveries (
    id               bigserial   PRIMARY KEY,
    reply_id         uuid        NOT NULL REFERENCES letter_replies (id),
    way              text        NOT NULL CHECK (way IN ('webhook', 'smtp')),
    target           text        NOT NULL,
    state            text        NOT NULL DEFAULT 'pending',
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz NOT NULL DEFAULT '-infinity',
    give_up_at       timestamptz NOT NULL,
    last_error       text        NOT NULL DEFAULT '',
    done_at          timestamptz
);
CREATE INDEX letter_reply_deliveries_due ON letter_reply_deliveries (next_attempt_at)
    WHERE state = 'pending';

-- One-time login codes sent, by a keyed hash of the national code (rate limit only; the code
-- itself is not kept here).
CREATE TABLE ebox_otp_sent (
    subject_hash  bytea       NOT NULL,
    sent_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ebox_otp_sent_subject ON ebox_otp_sent (subject_hash, sent_at);
