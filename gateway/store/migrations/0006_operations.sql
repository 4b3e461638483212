-- 0006: operators' controls and reports (issue 8) — operations flags shared by every node,
-- per-agency SLA targets (Art 9).

-- Flags an administrator sets for the whole platform: "crisis" {"on": bool}, and
-- "operator:<name>" {"paused": bool, "drained_binds": [int]}. Every node re-reads them each
-- ops.refresh_seconds, so a pause set on one node holds on all.
CREATE TABLE ops_flags (
    name       text        PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- SLA targets agreed with an agency (Art 9); agencies without a row get ops.sla_* defaults.
CREATE TABLE agency_sla (
    agency_id            uuid             PRIMARY KEY REFERENCES agencies (id),
    latency_p95_seconds  double precision NOT NULL CHECK (latency_p95_seconds > 0),
    delivery_ratio       double precision NOT NULL
                                          CHECK (delivery_ratio >= 0 AND delivery_ratio <= 1),
    updated_at           timestamptz      NOT NULL DEFAULT now()
);

-- Reports read messages by finish time (SLA) and creation time (usage) over whole periods.
CREATE INDEX messages_final_at ON messages (final_at) WHERE final_at IS NOT NULL;

-- USSD dialogs started per agency, operator and Tehran day, for usage statements (Art 6):
-- ussd_sessions rows are purged minutes after a dialog ends, so they cannot be counted later.
CREATE TABLE ussd_usage (
    agency_id uuid    NOT NULL,
    day       date    NOT NULL,
    operator  text    NOT NULL,
    sessions  bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (agency_id, day, operator)
);

-- Agency API requests (/v1/...) per Tehran day and how many were answered with a server error
-- (5xx), summed over nodes: the API availability of the SLA report (Art 9).
CREATE TABLE api_availability (
    day           date   PRIMARY KEY,
    requests      bigint NOT NULL DEFAULT 0,
    server_errors bigint NOT NULL DEFAULT 0
);
