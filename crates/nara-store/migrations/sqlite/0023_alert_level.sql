-- The national alert level's history (docs/security-operations.md): the
-- newest row is the level now; each change is also a ledger entry.
CREATE TABLE alert_levels (
    id      INTEGER PRIMARY KEY,
    level   TEXT NOT NULL,   -- normal, attention, caution, alert, serious
    reason  TEXT NOT NULL,
    set_at  INTEGER NOT NULL,
    set_by  TEXT NOT NULL
) STRICT;
