-- Alerts raised by the Sigma rules over security events (docs/security-operations.md):
-- triaged by analysts; every change of state is a ledger entry.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    rule_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    level       TEXT NOT NULL,
    group_key   TEXT NOT NULL,
    events      TEXT NOT NULL,   -- JSON array of security_events ids
    first_at    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,
    status      TEXT NOT NULL,   -- open, acknowledged, true_positive, false_positive
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL
) STRICT;
CREATE INDEX alerts_by_status ON alerts (status, id);

-- How far detection has read the security events (one row).
CREATE TABLE detection_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    last_event INTEGER NOT NULL
) STRICT;
