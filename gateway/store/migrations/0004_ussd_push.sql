-- 0004: network-initiated USSD push (issue 4 item 5) — an agency's urgent notice sent to a phone
-- as USSN (notify) or USSR (request, an answer wanted), with an SMS fallback when the phone is
-- busy in another USSD dialog, the push fails or no confirmation comes.
--
-- status: pending (accepted, not yet claimed) → submitting (a node holds it until lease_until)
-- → sent (the SMSC took the submit_sm) → delivered | answered | busy | failed | timeout.
-- fallback: none (not needed) | off (the agency did not want one) | pending (to be sent) |
-- queued (the SMS was accepted: fallback_message_id) | refused (fallback_error holds the code).
-- The SMS goes through the normal send path under the idempotency key 'ussd-push:<id>', so it
-- is created exactly once even if two nodes (or a retry after a crash) both try.
CREATE TABLE ussd_pushes (
    id                  uuid        PRIMARY KEY,
    agency_id           uuid        NOT NULL REFERENCES agencies (id),
    key_id              text        NOT NULL,
    -- Pushes under a test key never reach an operator: they end as delivered at once.
    is_test             boolean     NOT NULL DEFAULT false,
    msisdn              text        NOT NULL,
    mode                text        NOT NULL CHECK (mode IN ('notify', 'request')),
    text                text        NOT NULL,
    service_code        text        NOT NULL,
    client_ref          text        NOT NULL DEFAULT '',
    fallback_text       text        NOT NULL DEFAULT '',
    fallback_priority   text        NOT NULL DEFAULT 'high',
    fallback_mandatory  boolean     NOT NULL DEFAULT false,
    status              text        NOT NULL DEFAULT 'pending',
    operator            text        NOT NULL DEFAULT '',
    session_number      smallint,
    error_code          text        NOT NULL DEFAULT '',
    answer              text,
    fallback            text        NOT NULL DEFAULT 'none',
    fallback_message_id uuid,
    fallback_error      text        NOT NULL DEFAULT '',
    lease_until         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    final_at            timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Work for the push workers: unclaimed pushes and expired claims, oldest first.
CREATE INDEX ussd_pushes_open ON ussd_pushes (created_at)
    WHERE status IN ('pending', 'submitting');
-- A confirmation (deliver_sm op 19, or 18 for a request) finds its push by the phone and the
-- session number of its_session_info.
CREATE INDEX ussd_pushes_waiting ON ussd_pushes (operator, msisdn, session_number)
    WHERE status IN ('submitting', 'sent');
CREATE INDEX ussd_pushes_sent ON ussd_pushes (sent_at) WHERE status = 'sent';
CREATE INDEX ussd_pushes_fallback ON ussd_pushes (updated_at) WHERE fallback = 'pending';

-- «۰ بازگشت» on the first page of a menu goes back to the previous screen (docs/USSD.md): the
-- screens the dialog came through, oldest first.
ALTER TABLE ussd_sessions ADD COLUMN trail text[] NOT NULL DEFAULT '{}';
