-- What opens each citizen commitment in the public ledger (an entry names a
-- citizen as citizen:SHA-256(label, account, salt), fresh per entry): kept
-- private, shown to the citizen and to auditors, never published.
CREATE TABLE actor_openings (
    commitment TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL,
    salt       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX actor_openings_by_account ON actor_openings (account_id, created_at);
