-- Verifiable credentials issued on approval (W3C VC 2.0, secured with JOSE):
-- the signed token as issued, by the agency's key.
CREATE TABLE credentials (
    id              TEXT PRIMARY KEY,
    application_id  BIGINT NOT NULL REFERENCES applications (id),
    agency_id       TEXT NOT NULL REFERENCES agencies (id),
    credential_type TEXT NOT NULL,
    jwt             TEXT NOT NULL,
    issued_at       BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX credentials_by_application ON credentials (application_id);
