-- Files attached to applications: stored by content (data_dir/uploads, by
-- SHA-256), their type as read from the content, and whether ClamAV scanned
-- them ('clean') or could not ('not_scanned'). One file per file field.
CREATE TABLE uploads (
    application_id BIGINT NOT NULL REFERENCES applications (id),
    field          TEXT NOT NULL,
    hash           TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    size           BIGINT NOT NULL,
    scan           TEXT NOT NULL,
    uploaded_at    BIGINT NOT NULL,
    PRIMARY KEY (application_id, field)
);
