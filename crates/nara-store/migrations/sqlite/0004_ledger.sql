-- The public ledger (see docs/ledger.md). Writers append to ledger_pending in
-- the transaction of the change they record; the integrator moves pending
-- entries into the sequenced log, extends the tiles and signs a checkpoint,
-- all in one transaction.
CREATE TABLE ledger_pending (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    entry BLOB NOT NULL
) STRICT;

CREATE TABLE ledger_entries (
    idx   INTEGER PRIMARY KEY,
    entry BLOB NOT NULL
) STRICT;

-- C2SP tlog-tiles hash tiles: full tiles (256 hashes) and the partial tile
-- at the right edge of each level, as concatenated 32-byte hashes.
CREATE TABLE ledger_tiles (
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT;

CREATE TABLE ledger_checkpoints (
    size       INTEGER PRIMARY KEY,
    root       BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
