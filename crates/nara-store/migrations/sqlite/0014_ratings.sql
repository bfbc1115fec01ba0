-- Satisfaction: after a decision the applicant may rate the service 1-5
-- once, with an optional comment (kept private; the ledger records the score).
CREATE TABLE ratings (
    application_id INTEGER PRIMARY KEY REFERENCES applications (id),
    service_code   TEXT NOT NULL,
    score          INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment        TEXT NOT NULL,
    rated_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX ratings_by_service ON ratings (service_code);
CREATE INDEX applications_by_service ON applications (service_code, state);
