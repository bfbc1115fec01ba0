-- The citizen's inbox: one row per thing that happened to their
-- application (received, a decision, a request for more information, a
-- document issued), written in the same transaction as the change itself,
-- and worded at reading time in the reader's language.
CREATE TABLE notifications (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts (id),
    application_id INTEGER NOT NULL REFERENCES applications (id),
    at             INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    state          TEXT NOT NULL,
    read_at        INTEGER
) STRICT;
CREATE INDEX notifications_by_account ON notifications (account_id, id);
