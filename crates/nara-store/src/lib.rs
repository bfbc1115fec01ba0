//! nara's persistence: one [`Store`] API over two backends, chosen by the
//! database URL's scheme — SQLite (embedded, the default) and PostgreSQL (for
//! scale-out). Each backend has its own migrations, run at start.
//!
//! Every query is written once: SQL text with `$n` placeholders, which both
//! SQLite and PostgreSQL accept, and the [`with_pool!`] macro expands the code
//! that runs it once per backend so that types are resolved per driver.

mod cache;
mod catalogue;
pub mod exchange;
pub mod exchange_archive;
pub mod health;
pub mod identity;
pub mod ledger;
pub mod oidc;
pub mod secops;
pub use catalogue::CatalogueStats;
pub mod algorithms;
pub mod applications;
pub mod blocklist;
mod seed;
pub mod services;
mod sql;
pub mod wal;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use nara_core::Invalid;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use seed::SeedReport;

/// Everything that can go wrong in the store, in terms a handler can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Names only the scheme: the rest of a URL may hold a password.
    #[error("unsupported database URL scheme {0:?}: use sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The PostgreSQL server is a standby in recovery: every write would
    /// fail, so the node neither starts nor says it is ready on it.
    #[error(
        "the database server is a read-only standby, not the primary: point the database URL at the primary, or at a load balancer that routes to it (HAProxy checking Patroni's /primary)"
    )]
    Standby,
    /// A signed request's signature was claimed already (by this node or
    /// another): the request is a replay, and nothing it would have written
    /// was written.
    #[error("this signature was already used: a replay is refused")]
    Replayed,
}

impl StoreError {
    /// The database could not be reached or would not take the write (a
    /// failover in progress, a standby, a pool exhausted): nothing was
    /// committed, so the caller may retry. A failed statement or a conflict
    /// is not this.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Standby => true,
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    // 08: connection exceptions; 57P01–57P03: the server is
                    // shutting down or starting; 25006: read-only (a standby).
                    code.starts_with("08") || code.starts_with("57P") || code == "25006"
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Who checkpoints an SQLite log into its database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoints {
    /// SQLite, after each commit that leaves the log over 1,000 pages.
    Automatic,
    /// Only a shipper ([`wal::WalTap::checkpoint`]), after reading every
    /// frame: nothing is checkpointed, and so overwritten, unshipped.
    Shipped,
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the store's pool, once per backend.
/// The body is compiled twice, so the same query text serves both drivers.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite($pool) => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Starts a write transaction on `$pool`: on SQLite it first takes this
/// node's write turn, then `BEGIN IMMEDIATE` takes SQLite's write lock up
/// front, so a transaction that reads before it writes (the ledger's next
/// index) never works from a stale snapshot. Yields `(turn, tx)`.
macro_rules! write_tx {
    ($store:expr, $pool:ident) => {{
        let turn = $store.writer().await;
        let tx = if turn.is_some() {
            $pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            $pool.begin().await?
        };
        (turn, tx)
    }};
}
pub(crate) use write_tx;

/// How many connections a pool holds, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// The handle to nara's database; cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    max_connections: u32,
    cache: std::sync::Arc<cache::Cache>,
    tiles: std::sync::Arc<ledger::TileCache>,
    /// SQLite has one writer at a time; writers queue here, in order, rather
    /// than sleeping in SQLite's busy handler (which backs off up to 100 ms).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Changes to sessions, roles and tokens, for callers' caches.
    identity_epoch: std::sync::Arc<identity::IdentityEpoch>,
    checkpoints: Checkpoints,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.kind())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database the URL names (`sqlite:PATH`, `sqlite://PATH`,
    /// `postgres://…` or `postgresql://…`) and runs its pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, Checkpoints::Automatic).await
    }

    /// Opens and migrates the database, with SQLite's log checkpointed as
    /// `checkpoints` says (PostgreSQL ignores it).
    pub async fn connect_with(url: &str, checkpoints: Checkpoints) -> Result<Store> {
        let store = Store::open_with(url, checkpoints).await?;
        // Before migrating: on a standby the migration's first write would
        // fail with PostgreSQL's less telling "read-only transaction".
        store.ping().await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database without migrating it.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, Checkpoints::Automatic).await
    }

    async fn open_with(url: &str, checkpoints: Checkpoints) -> Result<Store> {
        if url.starts_with("sqlite:") {
            // WAL lets readers run beside the one writer; FULL synchronous makes
            // an acknowledged commit survive power loss, not just a crash of nara.
            let mut options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            if checkpoints == Checkpoints::Shipped {
                options = options.pragma("wal_autocheckpoint", "0");
            }
            let max = 8;
            // No liveness ping before each use: the database is a file in
            // this process, and the ping cost a round trip to the
            // connection's thread per query.
            let pool = SqlitePoolOptions::new()
                .max_connections(max)
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Ok(Store {
                backend: Backend::Sqlite(pool),
                max_connections: max,
                cache: Default::default(),
                tiles: Default::default(),
                writer: Default::default(),
                identity_epoch: Default::default(),
                checkpoints,
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let max = 16;
            let pool = PgPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Store {
                backend: Backend::Postgres(pool),
                max_connections: max,
                cache: Default::default(),
                tiles: Default::default(),
                writer: Default::default(),
                identity_epoch: Default::default(),
                checkpoints: Checkpoints::Automatic,
            })
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::UnsupportedUrl(
                scheme.chars().take(20).collect(),
            ))
        }
    }

    /// A handle on the SQLite log for shipping it (see [`wal`]); the store
    /// must have been opened with [`Checkpoints::Shipped`].
    pub async fn wal_tap(&self) -> Result<wal::WalTap> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                wal::WalTap::open(pool.connect_options().get_filename(), self.writer.clone()).await
            }
            Backend::Postgres(_) => Err(StoreError::Conflict(
                "a PostgreSQL database ships its log with pgBackRest".into(),
            )),
        }
    }

    /// The URL of an SQLite database file in a data directory.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("nara.db").display())
    }

    /// Writes a transactionally consistent copy of the whole database to
    /// `path` while it serves (SQLite's `VACUUM INTO`: a snapshot of one
    /// read transaction, compacted). PostgreSQL is backed up by its own tools.
    pub async fn snapshot_into(&self, path: &Path) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let target = path.to_str().ok_or_else(|| {
                    StoreError::Conflict(format!("{} is not a UTF-8 path", path.display()))
                })?;
                sqlx::query("VACUUM INTO $1")
                    .bind(target)
                    .execute(pool)
                    .await?;
                Ok(())
            }
            Backend::Postgres(_) => Err(StoreError::Conflict(
                "a PostgreSQL database is backed up with pgBackRest, not by a snapshot".into(),
            )),
        }
    }

    /// SQLite's own check of every page and index: `ok`, or what is wrong.
    pub async fn integrity_check(&self) -> Result<String> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_all(pool)
                    .await?;
                Ok(rows.join("; "))
            }
            Backend::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
                Ok("ok".into())
            }
        }
    }

    /// Who checkpoints the SQLite log (PostgreSQL: always `Automatic`).
    pub fn checkpoints(&self) -> Checkpoints {
        self.checkpoints
    }

    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Applies the backend's pending migrations; safe to run at every start.
    pub async fn migrate(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Backend::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Checks the database answers, for `/readyz`.
    /// The database answers and takes writes: a PostgreSQL standby in
    /// recovery (where a failover or a wrong URL points) is
    /// [`StoreError::Standby`].
    pub async fn ping(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Backend::Postgres(pool) => {
                let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                    .fetch_one(pool)
                    .await?;
                if standby {
                    return Err(StoreError::Standby);
                }
            }
        }
        Ok(())
    }

    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle) = with_pool!(self, |pool| (pool.size(), pool.num_idle() as u32));
        PoolStats {
            size,
            idle,
            max: self.max_connections,
        }
    }

    /// Holds the node's write turn for the length of a write transaction
    /// (SQLite only: PostgreSQL runs writers concurrently).
    pub(crate) async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite(_) => Some(self.writer.lock().await),
            Backend::Postgres(_) => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        with_pool!(self, |pool| pool.is_closed())
    }

    /// Waits for open connections to finish and closes the pool.
    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }
}

/// Turns the database's constraint violations into errors a caller can show.
fn constraint_error(e: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(format!("{what} already exists"));
        }
        if db.is_foreign_key_violation() {
            return StoreError::Invalid(Invalid::one("agency", "no agency has this identifier"));
        }
    }
    StoreError::Database(e)
}

fn parse_column<T: FromStr>(value: &str, column: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}
