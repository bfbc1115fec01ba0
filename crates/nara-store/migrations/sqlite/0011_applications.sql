-- Citizens' applications under a published service definition version.
-- Answers stay private (never in the ledger); submission and every change
-- of state are ledger entries naming the reference, service and state only.
CREATE TABLE applications (
    id            INTEGER PRIMARY KEY,
    reference     TEXT NOT NULL UNIQUE,
    service_code  TEXT NOT NULL,
    version       INTEGER NOT NULL,
    agency_id     TEXT NOT NULL REFERENCES agencies (id),
    account_id    INTEGER NOT NULL REFERENCES accounts (id),
    state         TEXT NOT NULL,
    answers       TEXT NOT NULL,
    evidence      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    submitted_at  INTEGER,
    due_at        INTEGER,
    decided_at    INTEGER,
    assigned_to   INTEGER
) STRICT;
CREATE INDEX applications_by_account ON applications (account_id, updated_at);
CREATE INDEX applications_by_agency ON applications (agency_id, state, due_at);

CREATE TABLE application_events (
    id              INTEGER PRIMARY KEY,
    application_id  INTEGER NOT NULL REFERENCES applications (id),
    at              INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    from_state      TEXT NOT NULL,
    to_state        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    note            TEXT NOT NULL
) STRICT;
CREATE INDEX application_events_by_application ON application_events (application_id, id);
