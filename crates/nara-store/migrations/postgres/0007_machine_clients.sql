-- Agency systems that call nara as programs: an Ed25519 public key per
-- subsystem (X-Road's INSTANCE/CLASS/CODE/SUBSYSTEM), registered by the
-- agency's admin. Requests are signed with HTTP Message Signatures (RFC 9421).
CREATE TABLE machine_clients (
    key_id     TEXT PRIMARY KEY,
    agency_id  TEXT NOT NULL REFERENCES agencies (id),
    subsystem  TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX machine_clients_by_agency ON machine_clients (agency_id, subsystem);
