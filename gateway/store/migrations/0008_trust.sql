-- Citizen trust (docs/TRUST.md): the tamper-evident audit chain and message verification.

-- Audit chain ---------------------------------------------------------------------------------
-- Each row carries its position in the chain (seq, gapless, in commit order) and
-- hash = SHA-256(previous row's hash || canonical content). The canonical content is spelled
-- out in audit_canonical() and again in gateway/audit_chain.py (which must agree with it).
ALTER TABLE audit_log ADD COLUMN seq bigint, ADD COLUMN hash bytea;

CREATE FUNCTION audit_canonical(
    p_seq bigint, p_at timestamptz, p_actor text, p_action text, p_target text, p_outcome text,
    p_client_addr text, p_detail jsonb
) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    f text;
    out text := '';
BEGIN
    -- Each field as <length>:<value>; so no field can borrow from its neighbour.
    FOREACH f IN ARRAY ARRAY[
        p_seq::text, ((extract(epoch FROM p_at) * 1000000)::bigint)::text,
        p_actor, p_action, p_target, p_outcome, p_client_addr, p_detail::text]
    LOOP
        out := out || length(f) || ':' || f || ';';
    END LOOP;
    RETURN out;
END $$;

-- The chain's head: one row. Updating it inside the inserting transaction takes its row lock,
-- so concurrent appends queue here and each one hashes over the previous committed head.
CREATE TABLE audit_chain_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint  NOT NULL,
    hash bytea   NOT NULL
);

-- Rows written before the chain existed are chained now, in id order.
DO $$
DECLARE
    r record;
    h bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    n bigint := 0;
BEGIN
    FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        n := n + 1;
        h := sha256(h || convert_to(audit_canonical(
            n, r.at, r.actor, r.action, r.target, r.outcome, r.client_addr, r.detail), 'UTF8'));
        UPDATE audit_log SET seq = n, hash = h WHERE id = r.id;
    END LOOP;
    INSERT INTO audit_chain_head (one, seq, hash) VALUES (true, n, h);
END $$;

ALTER TABLE audit_log ALTER COLUMN seq SET NOT NULL, ALTER COLUMN hash SET NOT NULL;
CREATE INDEX audit_log_seq ON audit_log (seq);

CREATE FUNCTION audit_chain_append() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    canonical text;
BEGIN
    FOR attempt IN 1..2 LOOP
        UPDATE audit_chain_head
           SET seq = seq + 1,
               hash = sha256(hash || convert_to(audit_canonical(
                   seq + 1, NEW.at, NEW.actor, NEW.action, NEW.target, NEW.outcome,
                   NEW.client_addr, NEW.detail), 'UTF8'))
         WHERE one
        RETURNING seq, hash INTO NEW.seq, NEW.hash;
        IF FOUND THEN
            RETURN NEW;
        END IF;
        -- No head (an emptied database): start the chain from the zero hash.
        INSERT INTO audit_chain_head (one, seq, hash)
        VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
        ON CONFLICT DO NOTHING;
    END LOOP;
    RAISE EXCEPTION 'audit chain head missing';
END $$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();

-- Append-only: the database refuses UPDATE, DELETE and TRUNCATE (statement triggers, so even a
-- statement that matches no row is refused) of the audit rows, and any
-- change of the head except by the append trigger. A superuser can still switch triggers off;
-- that is what the signed checkpoints and `payam audit verify` are for.
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'audit_chain_head' AND pg_trigger_depth() > 1 THEN
        RETURN NULL;  -- the append trigger moving the head (statement trigger: ignored)
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_head_guard BEFORE UPDATE OR DELETE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, audit_chain_head FROM PUBLIC;

-- Checkpoints: the head signed with the platform's Ed25519 audit key (outside the database).
CREATE TABLE audit_checkpoints (
    id        bigserial   PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    seq       bigint      NOT NULL,
    hash      bytea       NOT NULL,
    key_id    text        NOT NULL,
    signature bytea       NOT NULL
);
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- Verification codes ---------------------------------------------------------------------------
-- Only what verifying needs: keyed hashes (HMAC-SHA256 under a key derived from the master
-- key) of the code and of the recipient's number, the agency, the sender and the time. No text:
-- nothing here needs encrypting or crypto-shredding (issue 7 parts 4-5).
CREATE TABLE verification_codes (
    code_hash      bytea       PRIMARY KEY,
    recipient_hash bytea       NOT NULL,
    agency_id      uuid        NOT NULL REFERENCES agencies (id),
    sender         text        NOT NULL,
    sent_at        timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);
CREATE INDEX verification_codes_expires ON verification_codes (expires_at);

-- Attempts per citizen number per hour window, shared by every process and path.
CREATE TABLE verification_attempts (
    recipient_hash bytea       NOT NULL,
    window_start   timestamptz NOT NULL,
    attempts       integer     NOT NULL,
    PRIMARY KEY (recipient_hash, window_start)
);

-- Per-agency policy: always, never, or per message ("verify": true in the request).
CREATE TABLE agency_verification (
    agency_id  uuid        PRIMARY KEY REFERENCES agencies (id),
    policy     text        NOT NULL CHECK (policy IN ('always', 'never', 'per_message')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
