-- High and critical alerts emailed to the security analysts on call (those who gave an
-- address on the alerts page): one row per alert and analyst, sent once.
CREATE TABLE alert_mail (
    id         INTEGER PRIMARY KEY,
    alert_id   INTEGER NOT NULL REFERENCES alerts (id),
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    emailed_at INTEGER
) STRICT;
CREATE INDEX alert_mail_unsent ON alert_mail (emailed_at, id);
