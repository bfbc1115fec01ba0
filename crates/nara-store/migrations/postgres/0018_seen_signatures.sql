-- Signed requests already accepted (RFC 9421 signatures, by key and
-- signature digest), so that a captured request is refused on every node.
-- Rows older than the replay window are pruned: a signature that old is
-- refused by its created time anyway.
CREATE TABLE seen_signatures (
    replay_key TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
CREATE INDEX seen_signatures_age ON seen_signatures (seen_at);
