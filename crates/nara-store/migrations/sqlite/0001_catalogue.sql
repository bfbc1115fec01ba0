-- The national catalogue. Timestamps are milliseconds since the Unix epoch.
-- search_text is the lower-cased concatenation of everything a search may match,
-- kept by the store on every write so that search is one LIKE on one column.
CREATE TABLE agencies (
    id          TEXT PRIMARY KEY,
    name_en     TEXT NOT NULL,
    name_es     TEXT NOT NULL,
    name_ko     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    search_text TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE systems (
    id           INTEGER PRIMARY KEY,
    agency_id    TEXT NOT NULL REFERENCES agencies (id),
    code         TEXT NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    grade        INTEGER NOT NULL CHECK (grade BETWEEN 1 AND 4),
    environment  TEXT NOT NULL,
    endpoint_url TEXT,
    status       TEXT NOT NULL,
    search_text  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (agency_id, code)
) STRICT;
CREATE INDEX systems_by_grade ON systems (grade, id);
CREATE INDEX systems_by_kind ON systems (kind, id);

CREATE TABLE services (
    id             INTEGER PRIMARY KEY,
    agency_id      TEXT NOT NULL REFERENCES agencies (id),
    code           TEXT NOT NULL,
    name_en        TEXT NOT NULL,
    name_es        TEXT NOT NULL,
    name_ko        TEXT NOT NULL,
    description_en TEXT NOT NULL,
    description_es TEXT NOT NULL,
    description_ko TEXT NOT NULL,
    audience       TEXT NOT NULL,
    legal_basis    TEXT NOT NULL,
    channel        TEXT NOT NULL,
    status         TEXT NOT NULL,
    search_text    TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (agency_id, code)
) STRICT;
