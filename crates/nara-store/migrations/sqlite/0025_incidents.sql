-- Incidents (docs/security-operations.md): alerts grouped, assigned to a
-- security analyst, worked through a timeline; every change is also a ledger entry.
CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY,
    title       TEXT NOT NULL,
    level       TEXT NOT NULL,   -- the highest level of its alerts, as Sigma names them
    status      TEXT NOT NULL,   -- open, contained, resolved
    assignee    INTEGER REFERENCES accounts (id),
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX incidents_by_status ON incidents (status, id);

-- An alert belongs to at most one incident.
CREATE TABLE incident_alerts (
    alert_id    INTEGER PRIMARY KEY REFERENCES alerts (id),
    incident_id INTEGER NOT NULL REFERENCES incidents (id)
) STRICT;
CREATE INDEX incident_alerts_by_incident ON incident_alerts (incident_id);

CREATE TABLE incident_timeline (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,   -- created, alert_added, assigned, status, note
    detail      TEXT NOT NULL
) STRICT;
CREATE INDEX incident_timeline_by_incident ON incident_timeline (incident_id, id);
