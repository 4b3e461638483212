-- 0007: leases shared by the gateway nodes of one database (gateway/leases.py).
--
-- An SMSC allows a bounded number of binds per system_id, and two nodes binding the same slot
-- would fight (the SMSC refuses or drops one). Each bind slot 'smpp:<operator>:<n>' is held by
-- exactly one node: the holder renews its row well before expires_at; a node that dies stops
-- renewing and another takes the slot once expires_at has passed. Rows 'node:<holder>' are the
-- nodes' heartbeats, so each node can take its fair share of the slots.
CREATE TABLE leases (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);
