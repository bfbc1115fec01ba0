-- The algorithm register (docs/algorithms.md): every published version of an entry, immutable,
-- each a ledger entry. The entry is the JSON of nara_core::algorithms::RegisterEntry.
CREATE TABLE algorithm_versions (
    code          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    entry         TEXT NOT NULL,
    entry_sha256  TEXT NOT NULL,
    organisation  TEXT NOT NULL,
    published_at  BIGINT NOT NULL,
    published_by  TEXT NOT NULL,
    PRIMARY KEY (code, version)
);

-- A record of every output of a registered model: what ran, on what (the input is kept here for
-- the reviewing official; the ledger holds only its digest), what it said, the official's review,
-- when the person affected was told, and the appeal. Each change is a ledger entry.
CREATE TABLE algorithm_decisions (
    id                 TEXT PRIMARY KEY,
    code               TEXT NOT NULL,
    register_version   BIGINT NOT NULL,
    organisation       TEXT NOT NULL,
    model_version      TEXT NOT NULL,
    model_sha256       TEXT NOT NULL,
    input              TEXT NOT NULL,
    input_sha256       TEXT NOT NULL,
    score              DOUBLE PRECISION NOT NULL,
    threshold          DOUBLE PRECISION NOT NULL,
    outcome            TEXT NOT NULL,
    flagged            BIGINT NOT NULL,
    factors            TEXT NOT NULL,
    subject_hash       TEXT,
    source             TEXT,
    requested_by       TEXT NOT NULL,
    state              TEXT NOT NULL,   -- awaiting_review, accepted, overridden, automatic
    final_outcome      TEXT,
    reviewer_id        BIGINT,
    reviewer_name      TEXT,
    review_reason      TEXT,
    reviewed_at        BIGINT,
    notified_at        BIGINT,
    appeal_state       TEXT,            -- open, upheld, reversed
    appeal_reason      TEXT,
    appealed_at        BIGINT,
    appeal_official_id BIGINT,
    appeal_answer      TEXT,
    appeal_decided_at  BIGINT,
    created_at         BIGINT NOT NULL
);
CREATE INDEX algorithm_decisions_by_state ON algorithm_decisions (organisation, state, created_at);
CREATE INDEX algorithm_decisions_by_appeal ON algorithm_decisions (organisation, appeal_state);
CREATE INDEX algorithm_decisions_by_subject ON algorithm_decisions (subject_hash, created_at);
CREATE INDEX algorithm_decisions_by_code ON algorithm_decisions (code, state);
CREATE UNIQUE INDEX algorithm_decisions_by_source ON algorithm_decisions (code, source);
