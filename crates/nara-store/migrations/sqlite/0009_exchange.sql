-- The exchange between agencies (X-Road REST r1): data services published by
-- provider subsystems, access rights granted to client subsystems, citizens'
-- consents, registries nara hosts, and the message log of every exchange.

-- A provider subsystem's data service. `endpoint_kind` is `registry` (a
-- registry nara hosts; `endpoint` is its code) or `url` (the agency's own
-- system; `endpoint` is fixed at registration and never taken from a request).
CREATE TABLE data_services (
    id            TEXT PRIMARY KEY,            -- INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE
    agency_id     TEXT NOT NULL REFERENCES agencies (id),
    subsystem     TEXT NOT NULL,
    service_code  TEXT NOT NULL,
    version       TEXT NOT NULL,
    title         TEXT NOT NULL,
    openapi       TEXT NOT NULL,
    personal      INTEGER NOT NULL,            -- 1: returns personal data
    purposes      TEXT NOT NULL,               -- space-separated purpose codes
    legal_bases   TEXT NOT NULL,               -- newline-separated
    endpoint_kind TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

-- Deny by default: a client subsystem may call a service only under an
-- unrevoked right; `fields` (space-separated, empty = all) is its minimal view.
CREATE TABLE access_rights (
    id          INTEGER PRIMARY KEY,
    service_id  TEXT NOT NULL REFERENCES data_services (id),
    client_id   TEXT NOT NULL,                 -- INSTANCE/CLASS/MEMBER[/SUBSYSTEM]
    fields      TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    granted_at  INTEGER NOT NULL,
    revoked_by  TEXT,
    revoked_at  INTEGER
) STRICT;
CREATE INDEX access_rights_by_service ON access_rights (service_id, client_id);

-- A citizen's consent: which agency may fetch which service's data about
-- them, for which purpose, until when. Kept after revocation (history).
CREATE TABLE consents (
    id            TEXT PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts (id),
    subject_hash  TEXT NOT NULL,
    client_agency TEXT NOT NULL REFERENCES agencies (id),
    service_id    TEXT NOT NULL,                 -- may be served by another node
    purpose       TEXT NOT NULL,
    granted_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER
) STRICT;
CREATE INDEX consents_by_account ON consents (account_id, granted_at);

-- Registries nara hosts for an agency (GovStack Digital Registries): a
-- schema and records keyed by the subject's keyed hash.
CREATE TABLE registries (
    code        TEXT PRIMARY KEY,
    agency_id   TEXT NOT NULL REFERENCES agencies (id),
    title       TEXT NOT NULL,
    schema      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE TABLE registry_records (
    registry     TEXT NOT NULL REFERENCES registries (code),
    subject_hash TEXT NOT NULL,
    record       TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (registry, subject_hash)
) STRICT;

-- The message log: metadata of every exchange, written with its ledger
-- entry in one transaction before the response is released.
CREATE TABLE exchange_log (
    id                 INTEGER PRIMARY KEY,
    xroad_id           TEXT NOT NULL,
    request_id         TEXT NOT NULL,
    client_id          TEXT NOT NULL,
    service_id         TEXT NOT NULL,
    method             TEXT NOT NULL,
    path               TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    consent_id         TEXT NOT NULL,
    legal_basis        TEXT NOT NULL,
    subject_hash       TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    issue              TEXT NOT NULL,
    request_hash       TEXT NOT NULL,
    response_hash      TEXT NOT NULL,
    client_signature   TEXT NOT NULL,
    gateway_signature  TEXT NOT NULL,
    peer_signature     TEXT NOT NULL,
    status             INTEGER NOT NULL,
    outcome            TEXT NOT NULL,
    started_at         INTEGER NOT NULL,       -- ms since the epoch
    duration_us        INTEGER NOT NULL,
    UNIQUE (client_id, xroad_id)
) STRICT;
CREATE INDEX exchange_log_by_subject ON exchange_log (subject_hash, id);
CREATE INDEX exchange_log_by_service ON exchange_log (service_id, started_at);

-- Bumped by every change to services and access rights, so each node's
-- directory reloads (polled once a second).
CREATE TABLE exchange_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO exchange_version (id, version) VALUES (1, 0);
