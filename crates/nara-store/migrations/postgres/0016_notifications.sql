-- The citizen's inbox: one row per thing that happened to their
-- application (received, a decision, a request for more information, a
-- document issued), written in the same transaction as the change itself,
-- and worded at reading time in the reader's language.
CREATE TABLE notifications (
    id             BIGSERIAL PRIMARY KEY,
    account_id     BIGINT NOT NULL REFERENCES accounts (id),
    application_id BIGINT NOT NULL REFERENCES applications (id),
    at             BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    state          TEXT NOT NULL,
    read_at        BIGINT
);
CREATE INDEX notifications_by_account ON notifications (account_id, id);
