-- Identity and access (issue 4). Secrets are never stored: passwords as
-- argon2id PHC strings, national identifiers as keyed HMAC-SHA-256, session
-- ids, API tokens, recovery codes, OAuth codes and tokens as SHA-256 digests.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE accounts (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,
    username         TEXT NOT NULL UNIQUE,
    display_name     TEXT NOT NULL,
    national_id_hash TEXT UNIQUE,
    agency_id        TEXT REFERENCES agencies (id),
    password_hash    TEXT NOT NULL,
    totp_secret      TEXT,
    totp_last_step   INTEGER,
    status           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE role_grants (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    role       TEXT NOT NULL,
    agency_id  TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (account_id, role, agency_id)
) STRICT;
CREATE INDEX role_grants_by_agency ON role_grants (agency_id, role);

CREATE TABLE recovery_codes (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    code_hash  TEXT NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (account_id, code_hash)
) STRICT;

CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts (id),
    csrf          TEXT NOT NULL,
    stage         TEXT NOT NULL,
    amr           TEXT NOT NULL,
    address       TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_by_account ON sessions (account_id);

CREATE TABLE security_events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    account_id INTEGER,
    username   TEXT NOT NULL,
    address    TEXT NOT NULL,
    detail     TEXT NOT NULL
) STRICT;
CREATE INDEX security_events_by_time ON security_events (at);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;

CREATE TABLE oidc_clients (
    client_id     TEXT PRIMARY KEY,
    agency_id     TEXT NOT NULL REFERENCES agencies (id),
    name          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    secret_hash   TEXT,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
) STRICT;

CREATE TABLE oidc_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    account_id     INTEGER NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    nonce          TEXT,
    scope          TEXT NOT NULL,
    amr            TEXT NOT NULL,
    auth_time      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    family         TEXT NOT NULL
) STRICT;

CREATE TABLE oidc_tokens (
    token_hash TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    family     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    account_id INTEGER NOT NULL,
    scope      TEXT NOT NULL,
    amr        TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE INDEX oidc_tokens_by_family ON oidc_tokens (family);
CREATE INDEX oidc_tokens_by_account ON oidc_tokens (account_id, client_id);

CREATE TABLE oidc_consents (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    client_id  TEXT NOT NULL REFERENCES oidc_clients (client_id),
    scope      TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, client_id)
) STRICT;
