-- Bumped in the same transaction as every change that can end or narrow a
-- session or token (sign-out, role changes, second factor, token revocation),
-- so each node's cache of callers notices other nodes' changes within a poll.
CREATE TABLE identity_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO identity_version (id, version) VALUES (1, 0);
