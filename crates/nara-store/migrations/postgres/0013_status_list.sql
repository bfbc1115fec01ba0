-- Bitstring Status List (W3C): each credential holds a position in its
-- issuing agency's revocation list, chosen at random (so a position says
-- nothing about when or to whom it was issued); unique per agency.
ALTER TABLE credentials ADD COLUMN status_index BIGINT;
CREATE UNIQUE INDEX credentials_status ON credentials (agency_id, status_index);
