-- Indicators found in citizens' phishing and smishing reports (docs/security-operations.md):
-- deduplicated by kind and normalised value, reviewed by an analyst, published while listed
-- and reported within 90 days. Each review is a ledger entry.
CREATE TABLE indicators (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,    -- url, domain, phone
    value          TEXT NOT NULL,
    first_reported INTEGER NOT NULL,
    last_reported  INTEGER NOT NULL,
    reports        INTEGER NOT NULL,
    status         TEXT NOT NULL,    -- pending, listed, rejected
    reviewed_by    TEXT,
    reviewed_at    INTEGER,
    UNIQUE (kind, value)
) STRICT;
CREATE INDEX indicators_by_status ON indicators (status, last_reported);

-- Which report named which indicator: a report counts once per indicator.
CREATE TABLE indicator_reports (
    indicator_id INTEGER NOT NULL REFERENCES indicators (id),
    report       TEXT NOT NULL,      -- the application's reference
    PRIMARY KEY (indicator_id, report)
) STRICT;

-- How far the blocklist has read the phishing reports (one row).
CREATE TABLE blocklist_cursor (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    last_report INTEGER NOT NULL
) STRICT;
