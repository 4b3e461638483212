-- 0002: the SMS core — messages, the durable queue, parts and receipts, policy state, replies,
-- callbacks, number portability and the local citizen directory.

-- An agency may mark messages "mandatory" (no opt-out hint, not blocked by opt-outs) only when
-- the platform allows it, e.g. court notices and tax deadlines.
ALTER TABLE agencies ADD COLUMN mandatory_allowed boolean NOT NULL DEFAULT false;

CREATE TABLE batches (
    id          uuid        PRIMARY KEY,
    agency_id   uuid        NOT NULL REFERENCES agencies (id),
    is_test     boolean     NOT NULL,
    total       integer     NOT NULL,
    rejected    integer     NOT NULL DEFAULT 0,
    client_ref  text        NOT NULL DEFAULT '',
    cancelled_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_agency ON batches (agency_id, created_at);

-- One row per recipient message. Status moves through the state machine in gateway/status.py.
-- The hot tables (messages, queue, message_parts, message_events) carry no foreign keys on
-- purpose: per-row RI checks more than halve the insert rate of a large batch (measured: 100k
-- rows 3.9 s with them, 1.7 s without). The store is their only writer.
CREATE TABLE messages (
    -- Random (v4): ids are unguessable. Batches let the server draw them.
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id     uuid        NOT NULL,
    batch_id      uuid,
    key_id        text        NOT NULL,
    is_test       boolean     NOT NULL,
    recipient     text        NOT NULL,
    sender        text        NOT NULL,
    body          text        NOT NULL,
    encoding      text        NOT NULL,
    parts         smallint    NOT NULL,
    priority      smallint    NOT NULL,
    mandatory     boolean     NOT NULL DEFAULT false,
    status        text        NOT NULL,
    operator      text        NOT NULL DEFAULT '',
    send_at       timestamptz,
    valid_until   timestamptz NOT NULL,
    client_ref    text        NOT NULL DEFAULT '',
    callback_url  text        NOT NULL DEFAULT '',
    attempts      smallint    NOT NULL DEFAULT 0,
    error_code    text        NOT NULL DEFAULT '',
    parts_done    smallint    NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    final_at      timestamptz
);
CREATE INDEX messages_agency_created ON messages (agency_id, created_at DESC);
CREATE INDEX messages_batch ON messages (batch_id) WHERE batch_id IS NOT NULL;
-- Threading replies and duplicate suppression look up the latest message per recipient.
CREATE INDEX messages_agency_recipient ON messages (agency_id, recipient, created_at DESC);
-- The sweeper that ends "pending forever": submitted messages whose receipt never came.
CREATE INDEX messages_awaiting_receipt ON messages (valid_until) WHERE status = 'submitted';
CREATE INDEX messages_scheduled ON messages (send_at) WHERE status = 'scheduled';

-- The durable queue: one row per message that still has to be submitted. Claims lease rows
-- (leased_until) so a crashed node's claims come back; rows are deleted once the submit result
-- is stored. vt is the virtual time of weighted fair queuing between agencies (see queue.py).
CREATE TABLE queue (
    message_id   uuid        PRIMARY KEY,
    lane         smallint    NOT NULL,
    agency_id    uuid        NOT NULL,
    vt           timestamptz NOT NULL,
    leased_until timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX queue_claim ON queue (lane, vt);

CREATE TABLE message_events (
    message_id uuid        NOT NULL,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    status     text        NOT NULL,
    detail     jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX message_events_message ON message_events (message_id, at);

-- Each submitted part and the operator's id for it, canonicalised (dlr.canonical_id) so that a
-- receipt in hex, decimal, other case or with leading zeros still matches.
CREATE TABLE message_parts (
    message_id  uuid        NOT NULL,
    part_no     smallint    NOT NULL,
    operator    text        NOT NULL,
    smsc_id     text        NOT NULL,
    state       text        NOT NULL DEFAULT 'submitted',
    submitted_at timestamptz NOT NULL DEFAULT now(),
    receipt_at  timestamptz,
    PRIMARY KEY (message_id, part_no)
);
CREATE UNIQUE INDEX message_parts_smsc ON message_parts (operator, smsc_id);

-- Receipts land here first (durably, before deliver_sm_resp) and are matched in batches; a
-- receipt that arrives before its submit_sm_resp was stored waits here until it matches.
CREATE TABLE receipts_inbox (
    id          bigserial   PRIMARY KEY,
    operator    text        NOT NULL,
    smsc_id     text        NOT NULL,
    state       text        NOT NULL,
    stat        text        NOT NULL DEFAULT '',
    error       text        NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX receipts_inbox_key ON receipts_inbox (operator, smsc_id);

CREATE TABLE idempotency_keys (
    agency_id    uuid        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       smallint    NOT NULL,
    response     bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, key)
);

CREATE TABLE opt_outs (
    agency_id  uuid        NOT NULL,
    msisdn     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, msisdn)
);

-- SMS fragments accepted per agency and Tehran calendar day (the daily quota counts fragments).
CREATE TABLE daily_usage (
    agency_id uuid    NOT NULL,
    day       date    NOT NULL,
    fragments bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (agency_id, day)
);

-- Ported numbers: the operator a number now belongs to (prefix defaults cover the rest).
CREATE TABLE portability (
    msisdn     text        PRIMARY KEY,
    operator   text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Local citizen directory: national code -> mobile number. Stands in for Shahkar in development
-- and tests, behind the gateway.recipients.CitizenDirectory interface.
CREATE TABLE citizens (
    national_code char(10) PRIMARY KEY,
    msisdn        text     NOT NULL
);

CREATE TABLE replies (
    id            uuid        PRIMARY KEY,
    seq           bigserial   UNIQUE,
    agency_id     uuid        NOT NULL REFERENCES agencies (id),
    number        text        NOT NULL,
    msisdn        text        NOT NULL,
    body          text        NOT NULL,
    operator      text        NOT NULL,
    in_reply_to   uuid,
    keyword       text        NOT NULL DEFAULT '',
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replies_agency_seq ON replies (agency_id, seq);

-- Partial concatenated MO messages waiting for their other parts.
CREATE TABLE mo_fragments (
    operator    text        NOT NULL,
    msisdn      text        NOT NULL,
    number      text        NOT NULL,
    ref         integer     NOT NULL,
    total       smallint    NOT NULL,
    seq         smallint    NOT NULL,
    body        text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator, msisdn, number, ref, seq)
);

-- Outgoing signed callbacks. Enqueued in the same transaction as the status change or reply
-- they announce, so a crash cannot lose one; kept after delivery (outcome) for support.
CREATE TABLE callbacks (
    id              bigserial   PRIMARY KEY,
    agency_id       uuid        NOT NULL,
    kind            text        NOT NULL,
    url             text        NOT NULL,
    body            bytea       NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    give_up_at      timestamptz NOT NULL,
    leased_until    timestamptz NOT NULL DEFAULT '-infinity',
    outcome         text        NOT NULL DEFAULT 'pending',
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE outcome = 'pending';
