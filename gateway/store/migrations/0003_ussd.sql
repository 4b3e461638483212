-- 0003: USSD under *4 (Art 1d) — agency menu definitions and the shared session state.

-- One menu tree per agency, as uploaded (validated by adapters/ussd/menus.py before storing).
-- version increases on every upload so a session can tell that its menu changed under it.
CREATE TABLE ussd_menus (
    agency_id  uuid        PRIMARY KEY REFERENCES agencies (id),
    definition jsonb       NOT NULL,
    version    integer     NOT NULL DEFAULT 1,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per live (or recently ended) dialog. Several gateway nodes may serve one operator, so
-- the state lives here, not in memory; rev makes updates compare-and-set (a node that lost a
-- race re-reads instead of overwriting). history is the user's inputs so far: a request that
-- repeats it gets the stored reply again (operators retry). Rows of ended or idle sessions are
-- purged after the idle timeout.
CREATE TABLE ussd_sessions (
    operator     text        NOT NULL,
    msisdn       text        NOT NULL,
    session_id   text        NOT NULL,
    agency_id    uuid,
    menu_version integer     NOT NULL DEFAULT 0,
    screen       text        NOT NULL DEFAULT '',
    page         smallint    NOT NULL DEFAULT 0,
    inputs       jsonb       NOT NULL DEFAULT '{}',
    history      text[]      NOT NULL DEFAULT '{}',
    reply        text        NOT NULL DEFAULT '',
    ended        boolean     NOT NULL DEFAULT false,
    rev          integer     NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator, msisdn, session_id)
);
CREATE INDEX ussd_sessions_updated ON ussd_sessions (updated_at);
