-- Bumped in the same transaction as every change that can end or narrow a
-- session or token (sign-out, role changes, second factor, token revocation),
-- so each node's cache of callers notices other nodes' changes within a poll.
CREATE TABLE identity_version (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO identity_version (id, version) VALUES (1, 0);
