-- Bumped by every catalogue write in the same transaction, so that each node's
-- in-memory read model can tell when another node changed the catalogue.
CREATE TABLE catalogue_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO catalogue_version (id, version) VALUES (1, 0);
