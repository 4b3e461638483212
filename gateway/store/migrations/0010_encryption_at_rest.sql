-- 0010: encryption at rest and retention (issue 7 parts 4-5, docs/TRUST.md).
--
-- Texts are sealed in the gateway (gateway/vault.py) under data keys per (agency, channel,
-- month), stored here wrapped by a key-encryption key that never reaches the database. Rows
-- written before this migration keep their plaintext (data_key NULL means plaintext) until the
-- retention purge scrubs them; rows written after carry '' in the plaintext column.

CREATE TABLE data_keys (
    id          serial      PRIMARY KEY,
    agency_id   uuid        NOT NULL,
    channel     text        NOT NULL CHECK (channel IN ('sms', 'letter')),
    -- First day of the calendar month (UTC) the key seals.
    period      date        NOT NULL,
    -- Fingerprint of the KEK that wrapped it (gateway.vault.kek_id); re-wrapping changes both.
    kek_id      text        NOT NULL,
    wrapped     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agency_id, channel, period)
);

-- Per-agency retention overrides (days), per channel; config privacy.retention_* otherwise.
CREATE TABLE retention_settings (
    agency_id   uuid        NOT NULL REFERENCES agencies (id),
    channel     text        NOT NULL CHECK (channel IN ('sms', 'letter')),
    days        integer     NOT NULL CHECK (days > 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, channel)
);

-- Sealed texts: the data key's id, nonce ‖ ciphertext ‖ tag, and (messages) an HMAC of the text
-- for duplicate suppression. purged_at: the row's PII was replaced by keyed hashes.
ALTER TABLE messages ADD COLUMN data_key integer, ADD COLUMN body_sealed bytea,
    ADD COLUMN body_mac bytea, ADD COLUMN purged_at timestamptz;
ALTER TABLE replies ADD COLUMN data_key integer, ADD COLUMN body_sealed bytea,
    ADD COLUMN purged_at timestamptz;
-- Letters: subject and body sealed together (JSON); attachments sealed in place (data).
ALTER TABLE letters ADD COLUMN data_key integer, ADD COLUMN content_sealed bytea,
    ADD COLUMN purged_at timestamptz;
ALTER TABLE letter_attachments ADD COLUMN data_key integer;
ALTER TABLE letter_replies ADD COLUMN data_key integer, ADD COLUMN text_sealed bytea;
ALTER TABLE letter_reply_attachments ADD COLUMN data_key integer;
-- Reply callbacks repeat the reply's text: their body is sealed (status callbacks are built in
-- SQL from the message row and carry no text).
ALTER TABLE callbacks ADD COLUMN data_key integer;
-- The purge walks rows by age.
CREATE INDEX messages_unpurged ON messages (created_at) WHERE purged_at IS NULL;
CREATE INDEX replies_unpurged ON replies (received_at) WHERE purged_at IS NULL;
CREATE INDEX letters_unpurged ON letters (accepted_at) WHERE purged_at IS NULL;

-- The accept path (0009) compares keyed hashes of texts instead of texts; same single call,
-- same steps, three more fields per row.
CREATE OR REPLACE FUNCTION payam_accept_messages(
    p_rows          jsonb,
    OUT codes       text[],
    OUT accepted_at timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    p_jti          text[];
    p_expires      timestamptz[];
    p_opt_check    boolean[];
    p_dup_since    timestamptz[];
    p_day          date[];
    p_quota        bigint[];
    p_id           uuid[];
    p_agency       uuid[];
    p_batch        uuid[];
    p_key          text[];
    p_test         boolean[];
    p_recipient    text[];
    p_sender       text[];
    p_body         text[];
    p_encoding     text[];
    p_parts        smallint[];
    p_priority     smallint[];
    p_mandatory    boolean[];
    p_status       text[];
    p_send_at      timestamptz[];
    p_valid_until  timestamptz[];
    p_client_ref   text[];
    p_callback_url text[];
    p_vt           timestamptz[];
    p_data_key     integer[];
    p_sealed       bytea[];
    p_mac          bytea[];
    g              record;
    idx            integer;
    refused        uuid[] := '{}';
BEGIN
    -- The batch arrives as one JSON array of objects: for the gateway, one orjson call is a
    -- fraction of the cost of encoding two dozen typed arrays (docs/PERFORMANCE.md).
    SELECT array_agg(r.jti ORDER BY e.ord), array_agg(r.expires ORDER BY e.ord),
           array_agg(r.opt_check ORDER BY e.ord), array_agg(r.dup_since ORDER BY e.ord),
           array_agg(r.day ORDER BY e.ord), array_agg(r.quota ORDER BY e.ord),
           array_agg(r.id ORDER BY e.ord), array_agg(r.agency_id ORDER BY e.ord),
           array_agg(r.batch_id ORDER BY e.ord), array_agg(r.key_id ORDER BY e.ord),
           array_agg(r.is_test ORDER BY e.ord), array_agg(r.recipient ORDER BY e.ord),
           array_agg(r.sender ORDER BY e.ord), array_agg(r.body ORDER BY e.ord),
           array_agg(r.encoding ORDER BY e.ord), array_agg(r.parts ORDER BY e.ord),
           array_agg(r.priority ORDER BY e.ord), array_agg(r.mandatory ORDER BY e.ord),
           array_agg(r.status ORDER BY e.ord), array_agg(r.send_at ORDER BY e.ord),
           array_agg(r.valid_until ORDER BY e.ord), array_agg(r.client_ref ORDER BY e.ord),
           array_agg(r.callback_url ORDER BY e.ord), array_agg(r.vt ORDER BY e.ord),
           array_agg(r.data_key ORDER BY e.ord),
           array_agg(decode(r.body_sealed, 'base64') ORDER BY e.ord),
           array_agg(decode(r.body_mac, 'base64') ORDER BY e.ord)
      INTO p_jti, p_expires, p_opt_check, p_dup_since, p_day, p_quota, p_id, p_agency,
           p_batch, p_key, p_test, p_recipient, p_sender, p_body, p_encoding, p_parts,
           p_priority, p_mandatory, p_status, p_send_at, p_valid_until, p_client_ref,
           p_callback_url, p_vt, p_data_key, p_sealed, p_mac
      FROM jsonb_array_elements(p_rows) WITH ORDINALITY AS e(v, ord),
           jsonb_to_record(e.v) AS r(
               jti text, expires timestamptz, opt_check boolean, dup_since timestamptz,
               day date, quota bigint, id uuid, agency_id uuid, batch_id uuid, key_id text,
               is_test boolean, recipient text, sender text, body text, encoding text,
               parts smallint, priority smallint, mandatory boolean, status text,
               send_at timestamptz, valid_until timestamptz, client_ref text,
               callback_url text, vt timestamptz, data_key integer, body_sealed text,
               body_mac text);
    accepted_at := now();
    -- 0. Duplicate suppression must hold between processes and nodes too, where two batches in
    --    flight cannot see each other's uncommitted rows: a transaction-scoped advisory lock per
    --    (agency, recipient, text) makes the second wait for the first to commit, and step 2
    --    (a new snapshot: plpgsql takes one per statement in READ COMMITTED) then sees its row.
    --    Taken in one sorted order, first, so that two batches never deadlock on them.
    --    The text enters as its keyed hash (body_mac, migration 0010): the plaintext is never
    --    stored, and a row sealed without a MAC (no vault) falls back to the text.
    PERFORM pg_advisory_xact_lock(h)
       FROM (SELECT DISTINCT hashtextextended(
                        a::text || '|' || r || '|' || coalesce(encode(mc, 'hex'), b), 7040) AS h
               FROM unnest(p_agency, p_recipient, p_body, p_mac, p_dup_since)
                    AS t(a, r, b, mc, since)
              WHERE since IS NOT NULL
              ORDER BY 1) AS k;

    -- 1. Token ids recorded (a replay, or the same jti twice in this batch, is refused); keys
    --    and agencies still live; senders still allocated to the agency (Art 3); opt-outs.
    WITH t AS (
        SELECT * FROM unnest(p_key, p_jti, p_expires, p_agency, p_sender, p_recipient, p_opt_check)
            WITH ORDINALITY AS t(k, j, x, a, s, r, c, i)),
    jt AS (
        INSERT INTO jwt_replay (key_id, jti, expires_at)
        SELECT DISTINCT ON (k, j) k, j, x FROM t
        ON CONFLICT DO NOTHING RETURNING key_id, jti),
    chk AS (
        SELECT t.i,
               f.jti IS NULL OR row_number() OVER (PARTITION BY t.k, t.j ORDER BY t.i) > 1
                   AS replayed,
               t.k, t.a, t.s, t.r, t.c
        FROM t LEFT JOIN jt f ON f.key_id = t.k AND f.jti = t.j)
    SELECT array_agg(
               CASE
                   WHEN chk.replayed THEN 'token_replayed'
                   WHEN NOT EXISTS (SELECT 1 FROM api_keys ak
                                    WHERE ak.key_id = chk.k AND ak.revoked_at IS NULL)
                       THEN 'key_revoked'
                   WHEN NOT EXISTS (SELECT 1 FROM agencies ag
                                    WHERE ag.id = chk.a AND ag.status = 'active')
                       THEN 'agency_suspended'
                   WHEN NOT EXISTS (SELECT 1 FROM numbering n
                                    WHERE n.agency_id = chk.a AND n.value = chk.s
                                      AND n.released_at IS NULL
                                      AND n.kind IN ('shortcode', 'sub_number', 'mask'))
                       THEN 'sender_not_registered'
                   WHEN chk.c AND EXISTS (SELECT 1 FROM opt_outs o
                                          WHERE o.agency_id = chk.a AND o.msisdn = chk.r)
                       THEN 'recipient_opted_out'
               END ORDER BY chk.i)
      INTO codes
      FROM chk;

    -- 2. Duplicates: the same agency, recipient and text within the window, or earlier in this
    --    batch (the first one still standing wins).
    IF EXISTS (SELECT 1 FROM unnest(p_dup_since) AS d WHERE d IS NOT NULL) THEN
        WITH t AS (
            SELECT * FROM unnest(p_agency, p_recipient, p_body, p_mac, p_dup_since, codes)
                WITH ORDINALITY AS t(a, r, b, mc, since, code, i)),
        d AS (
            SELECT t.i,
                   row_number() OVER (PARTITION BY t.a, t.r, t.b, t.mc ORDER BY t.i) > 1
                   OR EXISTS (SELECT 1 FROM messages m
                              WHERE m.agency_id = t.a AND m.recipient = t.r
                                AND m.created_at >= t.since
                                AND CASE WHEN t.mc IS NULL THEN m.body_mac IS NULL AND m.body = t.b
                                         ELSE m.body_mac = t.mc END
                                AND m.status <> 'cancelled') AS dup
            FROM t WHERE t.since IS NOT NULL AND t.code IS NULL)
        SELECT array_agg(CASE WHEN d.dup THEN 'duplicate_message' ELSE t.code END ORDER BY t.i)
          INTO codes
          FROM t LEFT JOIN d ON d.i = t.i;
    END IF;

    -- 3. The messages and their queue rows.
    WITH t AS (
        SELECT * FROM unnest(p_id, p_agency, p_batch, p_key, p_test, p_recipient, p_sender,
                             p_body, p_encoding, p_parts, p_priority, p_mandatory, p_status,
                             p_send_at, p_valid_until, p_client_ref, p_callback_url, p_vt,
                             p_data_key, p_sealed, p_mac, codes)
            AS t(id, agency_id, batch_id, key_id, is_test, recipient, sender, body, encoding,
                 parts, priority, mandatory, status, send_at, valid_until, client_ref,
                 callback_url, vt, data_key, body_sealed, body_mac, code)
        WHERE t.code IS NULL),
    m AS (
        INSERT INTO messages (id, agency_id, batch_id, key_id, is_test, recipient, sender, body,
                              encoding, parts, priority, mandatory, status, send_at,
                              valid_until, client_ref, callback_url, data_key, body_sealed,
                              body_mac)
        SELECT id, agency_id, batch_id, key_id, is_test, recipient, sender, body, encoding,
               parts, priority, mandatory, status, send_at, valid_until, client_ref,
               callback_url, data_key, body_sealed, body_mac
        FROM t)
    INSERT INTO queue (message_id, lane, agency_id, vt)
    SELECT id, priority, agency_id, vt FROM t;

    -- 4. Quotas last, per agency and day, counted in fragments, rows locked in (agency, day)
    --    order so that two batches in flight never deadlock. A group that would go over is
    --    admitted one by one in arrival order, and the rest is taken back out.
    FOR g IN
        SELECT a, d, max(q) AS quota, sum(n) AS total, array_agg(i ORDER BY i) AS items
        FROM unnest(p_agency, p_day, p_quota, p_parts, codes) WITH ORDINALITY
             AS t(a, d, q, n, code, i)
        WHERE code IS NULL
        GROUP BY a, d
        ORDER BY a, d
    LOOP
        INSERT INTO daily_usage AS u (agency_id, day, fragments)
        SELECT g.a, g.d, g.total WHERE g.total <= g.quota
        ON CONFLICT (agency_id, day) DO UPDATE
            SET fragments = u.fragments + EXCLUDED.fragments
            WHERE u.fragments + EXCLUDED.fragments <= g.quota;
        CONTINUE WHEN FOUND;
        FOREACH idx IN ARRAY g.items LOOP
            INSERT INTO daily_usage AS u (agency_id, day, fragments)
            SELECT g.a, g.d, p_parts[idx] WHERE p_parts[idx] <= g.quota
            ON CONFLICT (agency_id, day) DO UPDATE
                SET fragments = u.fragments + EXCLUDED.fragments
                WHERE u.fragments + EXCLUDED.fragments <= g.quota;
            IF NOT FOUND THEN
                codes[idx] := 'daily_quota_exceeded';
                refused := refused || p_id[idx];
            END IF;
        END LOOP;
    END LOOP;
    IF cardinality(refused) > 0 THEN
        DELETE FROM queue WHERE message_id = ANY (refused);
        DELETE FROM messages WHERE id = ANY (refused);
    END IF;

    -- 5. Wake the dispatchers on commit (NOTIFY is delivered only then) if anything is due now.
    IF EXISTS (SELECT 1 FROM unnest(p_send_at, codes) AS t(s, c) WHERE s IS NULL AND c IS NULL)
    THEN
        PERFORM pg_notify('payam_queue', '');
        IF EXISTS (SELECT 1 FROM unnest(p_send_at, p_priority, codes) AS t(s, p, c)
                   WHERE s IS NULL AND p = 0 AND c IS NULL) THEN
            PERFORM pg_notify('payam_crisis', '');
        END IF;
    END IF;
END
$$;
