-- WebAuthn passkeys (a second factor for staff, and for anyone who adds one),
-- stored as webauthn-rs serialises them (public key, counter; no secret), and
-- each session's one ceremony in progress (its challenge state, short-lived).
CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY,
    account_id    BIGINT NOT NULL REFERENCES accounts (id),
    name          TEXT NOT NULL,
    passkey       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_by_account ON passkeys (account_id);

CREATE TABLE webauthn_ceremonies (
    session_hash TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);
