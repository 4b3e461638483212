-- 0015: the accept function (0014) takes its batch as an array of a composite type, which
-- asyncpg sends in PostgreSQL's binary format, instead of one JSON document.
--
-- Measured (docs/PERFORMANCE.md, session 9), 26-message calls: the server spent 10-13 us per
-- message less (no JSON parse, no text-to-type input function per field, no base64 decode of
-- the sealed text and its MAC), and the gateway about the same as before (a tuple per message
-- instead of a dict, orjson and two base64 encodes). Same single call, same steps, same answers.
--
-- 0014's jsonb entry point stays for nodes still running the previous release while a rolling
-- upgrade reaches them, but as a conversion into this function (at the end of this file), so
-- that there is one body of accept logic; a later migration drops it.

CREATE TYPE payam_accept_item AS (
    jti          text,
    expires      timestamptz,
    opt_check    boolean,
    dup_since    timestamptz,
    day          date,
    quota        bigint,
    id           uuid,
    agency_id    uuid,
    batch_id     uuid,
    key_id       text,
    is_test      boolean,
    recipient    text,
    sender       text,
    body         text,
    encoding     text,
    parts        smallint,
    priority     smallint,
    mandatory    boolean,
    status       text,
    send_at      timestamptz,
    valid_until  timestamptz,
    client_ref   text,
    callback_url text,
    vt           timestamptz,
    data_key     integer,
    body_sealed  bytea,
    body_mac     bytea
);

CREATE FUNCTION payam_accept_messages(
    p               payam_accept_item[],
    OUT codes       text[],
    OUT accepted_at timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    g        record;
    idx      integer;
    refused  uuid[] := '{}';
BEGIN
    accepted_at := now();

    -- 0. Duplicate suppression must hold between processes and nodes too, where two batches in
    --    flight cannot see each other's uncommitted rows: a transaction-scoped advisory lock per
    --    (agency, recipient, text) makes the second wait for the first to commit, and step 2
    --    (a new snapshot: plpgsql takes one per statement in READ COMMITTED) then sees its row.
    --    Taken in one sorted order, first, so that two batches never deadlock on them. The text
    --    enters as its keyed hash (body_mac, 0010), hashed as base64 exactly as 0014's body
    --    hashed it, so that a batch still running that body while this migration commits takes
    --    the same lock for the same message; a row without a MAC falls back to the text.
    PERFORM pg_advisory_xact_lock(h)
       FROM (SELECT DISTINCT hashtextextended(
                        t.agency_id::text || '|' || t.recipient || '|'
                        || coalesce(encode(t.body_mac, 'base64'), t.body),
                        7040) AS h
               FROM unnest(p) AS t
              WHERE t.dup_since IS NOT NULL
              ORDER BY 1) AS k;

    -- 1. Token ids recorded (a replay, or the same jti twice in this batch, is refused); keys
    --    and agencies still live; senders still allocated to the agency (Art 3); opt-outs.
    --    Keys, agencies and senders are looked up once per distinct triple in the batch.
    WITH t AS (
        SELECT * FROM unnest(p) WITH ORDINALITY AS t),
    jt AS (
        INSERT INTO jwt_replay (key_id, jti, expires_at)
        SELECT DISTINCT ON (t.key_id, t.jti) t.key_id, t.jti, t.expires FROM t
        ON CONFLICT DO NOTHING RETURNING key_id, jti),
    cred AS MATERIALIZED (
        SELECT c.key_id, c.agency_id, c.sender,
               CASE
                   WHEN NOT EXISTS (SELECT 1 FROM api_keys ak
                                    WHERE ak.key_id = c.key_id AND ak.revoked_at IS NULL)
                       THEN 'key_revoked'
                   WHEN NOT EXISTS (SELECT 1 FROM agencies ag
                                    WHERE ag.id = c.agency_id AND ag.status = 'active')
                       THEN 'agency_suspended'
                   WHEN NOT EXISTS (SELECT 1 FROM numbering n
                                    WHERE n.agency_id = c.agency_id AND n.value = c.sender
                                      AND n.released_at IS NULL
                                      AND n.kind IN ('shortcode', 'sub_number', 'mask'))
                       THEN 'sender_not_registered'
               END AS code
        FROM (SELECT DISTINCT t.key_id, t.agency_id, t.sender FROM t) AS c),
    chk AS (
        SELECT t.ordinality AS i,
               f.jti IS NULL
                   OR row_number() OVER (PARTITION BY t.key_id, t.jti ORDER BY t.ordinality) > 1
                   AS replayed,
               cred.code, t.agency_id, t.recipient, t.opt_check
        FROM t
        JOIN cred ON cred.key_id = t.key_id AND cred.agency_id = t.agency_id
                 AND cred.sender = t.sender
        LEFT JOIN jt f ON f.key_id = t.key_id AND f.jti = t.jti)
    SELECT array_agg(
               CASE
                   WHEN chk.replayed THEN 'token_replayed'
                   WHEN chk.code IS NOT NULL THEN chk.code
                   WHEN chk.opt_check AND EXISTS (SELECT 1 FROM opt_outs o
                                                  WHERE o.agency_id = chk.agency_id
                                                    AND o.msisdn = chk.recipient)
                       THEN 'recipient_opted_out'
               END ORDER BY chk.i)
      INTO codes
      FROM chk;

    -- 2. Duplicates: the same agency, recipient and text within the window, or earlier in this
    --    batch (the first one still standing wins).
    IF EXISTS (SELECT 1 FROM unnest(p) AS t WHERE t.dup_since IS NOT NULL) THEN
        WITH t AS (
            SELECT t.agency_id AS a, t.recipient AS r, t.body AS b,
                   t.body_mac AS mc, t.dup_since AS since,
                   codes[t.ordinality] AS code, t.ordinality AS i
            FROM unnest(p) WITH ORDINALITY AS t),
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
        SELECT t.* FROM unnest(p) WITH ORDINALITY AS t WHERE codes[t.ordinality] IS NULL),
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
        SELECT t.agency_id AS a, t.day AS d, max(t.quota) AS quota, sum(t.parts) AS total,
               array_agg(t.ordinality::integer ORDER BY t.ordinality) AS items
        FROM unnest(p) WITH ORDINALITY AS t
        WHERE codes[t.ordinality] IS NULL
        GROUP BY t.agency_id, t.day
        ORDER BY t.agency_id, t.day
    LOOP
        INSERT INTO daily_usage AS u (agency_id, day, fragments)
        SELECT g.a, g.d, g.total WHERE g.total <= g.quota
        ON CONFLICT (agency_id, day) DO UPDATE
            SET fragments = u.fragments + EXCLUDED.fragments
            WHERE u.fragments + EXCLUDED.fragments <= g.quota;
        CONTINUE WHEN FOUND;
        FOREACH idx IN ARRAY g.items LOOP
            INSERT INTO daily_usage AS u (agency_id, day, fragments)
            SELECT g.a, g.d, (p[idx]).parts WHERE (p[idx]).parts <= g.quota
            ON CONFLICT (agency_id, day) DO UPDATE
                SET fragments = u.fragments + EXCLUDED.fragments
                WHERE u.fragments + EXCLUDED.fragments <= g.quota;
            IF NOT FOUND THEN
                codes[idx] := 'daily_quota_exceeded';
                refused := refused || (p[idx]).id;
            END IF;
        END LOOP;
    END LOOP;
    IF cardinality(refused) > 0 THEN
        DELETE FROM queue WHERE message_id = ANY (refused);
        DELETE FROM messages WHERE id = ANY (refused);
    END IF;

    -- 5. Wake the dispatchers on commit (NOTIFY is delivered only then) if anything is due now.
    IF EXISTS (SELECT 1 FROM unnest(p) WITH ORDINALITY AS t
               WHERE t.send_at IS NULL AND codes[t.ordinality] IS NULL) THEN
        PERFORM pg_notify('payam_queue', '');
        IF EXISTS (SELECT 1 FROM unnest(p) WITH ORDINALITY AS t
                   WHERE t.send_at IS NULL AND t.priority = 0 AND codes[t.ordinality] IS NULL)
        THEN
            PERFORM pg_notify('payam_crisis', '');
        END IF;
    END IF;
END
$$;
ALTER FUNCTION payam_accept_messages(payam_accept_item[]) SET plan_cache_mode = force_generic_plan;

-- 0014's entry point, for nodes still on the previous release during a rolling upgrade: its
-- JSON rows (base64 for the sealed text and MAC) converted and passed to the function above.
CREATE OR REPLACE FUNCTION payam_accept_messages(
    p_rows          jsonb,
    OUT codes       text[],
    OUT accepted_at timestamptz
) LANGUAGE sql AS $$
    SELECT f.codes, f.accepted_at
      FROM payam_accept_messages(ARRAY(
               SELECT ROW(r.jti, r.expires, r.opt_check, r.dup_since, r.day, r.quota, r.id,
                          r.agency_id, r.batch_id, r.key_id, r.is_test, r.recipient, r.sender,
                          r.body, r.encoding, r.parts, r.priority, r.mandatory, r.status,
                          r.send_at, r.valid_until, r.client_ref, r.callback_url, r.vt,
                          r.data_key, decode(r.body_sealed, 'base64'),
                          decode(r.body_mac, 'base64'))::payam_accept_item
                 -- ARRAY() keeps the order the set-returning function produces (as in 0014).
                 FROM jsonb_populate_recordset(NULL::payam_accept_row, p_rows) AS r)) AS f
$$;
