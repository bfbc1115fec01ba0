-- Failed sign-ins by key (an account's name for clients it does not know,
-- a device cookie, an address), shared by every node and kept across
-- restarts. Rows fade after a quiet hour (purged with expired sessions).
CREATE TABLE sign_in_failures (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    last_at      INTEGER NOT NULL,
    locked_until INTEGER
);
CREATE INDEX sign_in_failures_age ON sign_in_failures (last_at);
