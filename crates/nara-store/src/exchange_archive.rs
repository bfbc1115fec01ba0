//! The message log over years: a closed month of `exchange_log` is read out
//! in id order (for the archive file the server writes), recorded as
//! archived with its file's digest (a ledger entry), and — once past the
//! retention period — its rows are deleted in batches (a ledger entry when
//! the month is gone). A month's rows are never deleted before it is
//! archived.

use serde::Serialize;

use crate::exchange::ExchangeRecord;
use crate::ledger::{commit_with_entry, entry_bytes};
use crate::{Result, Store, StoreError, with_pool, write_tx};

/// An archived month of the message log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ExchangeArchive {
    /// `YYYY-MM` (UTC).
    pub period: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub exchanges: i64,
    /// The file's name under `DATA_DIR/exchange-archive`.
    pub file: String,
    /// SHA-256 of the compressed file, hex.
    pub sha256: String,
    pub bytes: i64,
    pub archived_at: i64,
    /// When its rows left `exchange_log` (past retention).
    pub pruned_at: Option<i64>,
}

const ARCHIVE_COLUMNS: &str =
    "period, starts_at, ends_at, exchanges, file, sha256, bytes, archived_at, pruned_at";

/// The ledger's record of an archive or a pruning: the file's digest, not
/// the file.
#[derive(Serialize)]
struct ArchivedState<'a> {
    period: &'a str,
    exchanges: i64,
    sha256: &'a str,
    bytes: i64,
}

impl Store {
    /// When the oldest exchange still in the log started (ms), if any.
    pub async fn oldest_exchange_at(&self) -> Result<Option<i64>> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT MIN(started_at) FROM exchange_log"
        )
        .fetch_one(pool)
        .await?))
    }

    /// Up to `limit` exchanges that started in `[from, until)` with an id
    /// above `after_id`, in id order: read a month page by page.
    pub async fn exchanges_between(
        &self,
        from: i64,
        until: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ExchangeRecord>> {
        let sql = format!(
            "SELECT id, {} FROM exchange_log WHERE started_at >= $1 AND started_at < $2 AND id > $3 \
             ORDER BY id LIMIT $4",
            crate::exchange::LOG_COLUMNS
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(from)
            .bind(until)
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// Every archived month, oldest first.
    pub async fn exchange_archives(&self) -> Result<Vec<ExchangeArchive>> {
        let sql = format!("SELECT {ARCHIVE_COLUMNS} FROM exchange_archives ORDER BY period");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .fetch_all(pool)
            .await?))
    }

    /// Records a month as archived, with a ledger entry naming its file's
    /// digest. A month is archived once: a second time is a conflict.
    pub async fn record_exchange_archive(&self, a: &ExchangeArchive, actor: &str) -> Result<()> {
        let entry = entry_bytes(
            "exchange.archived",
            actor,
            vec![format!("exchange_archive:{}", a.period)],
            &ArchivedState {
                period: &a.period,
                exchanges: a.exchanges,
                sha256: &a.sha256,
                bytes: a.bytes,
            },
        )?;
        let sql = format!(
            "INSERT INTO exchange_archives ({ARCHIVE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL) \
             ON CONFLICT (period) DO NOTHING"
        );
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let inserted = sqlx::query(&sql)
                .bind(&a.period)
                .bind(a.starts_at)
                .bind(a.ends_at)
                .bind(a.exchanges)
                .bind(&a.file)
                .bind(&a.sha256)
                .bind(a.bytes)
                .bind(a.archived_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "the message log of {} is archived already",
                    a.period
                )));
            }
            commit_with_entry!(self, tx, entry);
        });
        Ok(())
    }

    /// Deletes up to `limit` rows of an archived month from the log; when
    /// none are left, marks the month pruned (a ledger entry). How many rows
    /// went. A month not archived is refused: nothing leaves the log
    /// unarchived.
    pub async fn prune_archived_exchanges(
        &self,
        period: &str,
        limit: i64,
        actor: &str,
    ) -> Result<u64> {
        let Some(archive) = self
            .exchange_archives()
            .await?
            .into_iter()
            .find(|a| a.period == period)
        else {
            return Err(StoreError::Conflict(format!(
                "the message log of {period} is not archived: nothing is deleted"
            )));
        };
        let entry = entry_bytes(
            "exchange.pruned",
            actor,
            vec![format!("exchange_archive:{period}")],
            &ArchivedState {
                period,
                exchanges: archive.exchanges,
                sha256: &archive.sha256,
                bytes: archive.bytes,
            },
        )?;
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query(
                "DELETE FROM exchange_log WHERE id IN (SELECT id FROM exchange_log \
                 WHERE started_at >= $1 AND started_at < $2 ORDER BY id LIMIT $3)",
            )
            .bind(archive.starts_at)
            .bind(archive.ends_at)
            .bind(limit)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 && archive.pruned_at.is_none() {
                sqlx::query("UPDATE exchange_archives SET pruned_at = $1 WHERE period = $2")
                    .bind(nara_core::Timestamp::now().0)
                    .bind(period)
                    .execute(&mut *tx)
                    .await?;
                commit_with_entry!(self, tx, entry);
            } else {
                tx.commit().await?;
            }
            n
        }))
    }
}
