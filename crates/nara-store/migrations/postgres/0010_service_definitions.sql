-- Service definitions (docs/services.md): each published version kept, never
-- changed, so an application always finds the version it was made under.
CREATE TABLE service_definitions (
    code          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    agency_id     TEXT NOT NULL REFERENCES agencies (id),
    source        TEXT NOT NULL,
    published_by  TEXT NOT NULL,
    published_at  BIGINT NOT NULL,
    PRIMARY KEY (code, version)
);
