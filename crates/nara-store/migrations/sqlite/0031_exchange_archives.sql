-- The message log over years: closed months archived to signed, compressed
-- files (each file's digest also a ledger entry), and a month's rows deleted
-- from exchange_log only once it is archived and past the retention period.
CREATE INDEX exchange_log_by_time ON exchange_log (started_at);
CREATE TABLE exchange_archives (
    period      TEXT PRIMARY KEY,          -- 'YYYY-MM', UTC
    starts_at   INTEGER NOT NULL,          -- ms since the epoch, inclusive
    ends_at     INTEGER NOT NULL,          -- ms since the epoch, exclusive
    exchanges   INTEGER NOT NULL,
    file        TEXT NOT NULL,             -- name under DATA_DIR/exchange-archive
    sha256      TEXT NOT NULL,             -- of the compressed file
    bytes       INTEGER NOT NULL,
    archived_at INTEGER NOT NULL,
    pruned_at   INTEGER                    -- when its rows left exchange_log
) STRICT;
