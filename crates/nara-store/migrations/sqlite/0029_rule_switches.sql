-- Detection rules an analyst switched off (or back on) on /security/rules, with why. A rule
-- switched off raises no alerts; correlations built on it still count its matches.
CREATE TABLE detection_rule_switches (
    rule_id    TEXT PRIMARY KEY,
    enabled    INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    changed_by TEXT NOT NULL
) STRICT;
