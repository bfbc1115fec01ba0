//! The blocklist's storage: indicators found in citizens' phishing reports,
//! counted once per report, reviewed by analysts (a ledger entry each), and
//! the read position in the reports.

use nara_core::Timestamp;
use nara_core::indicators::{Indicator, LISTED_FOR_MS};

use crate::ledger::{commit_with_entry, entry_bytes};
use crate::{Result, Store, StoreError, with_pool, write_tx};

/// The service whose submissions are phishing reports.
pub const REPORT_SERVICE: &str = "phishing-report";

/// A submitted phishing report, as the blocklist reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PhishingReport {
    pub id: i64,
    pub reference: String,
    /// The answers, JSON.
    pub answers: String,
    pub submitted_at: i64,
}

/// What one report pointed at.
#[derive(Debug, Clone)]
pub struct ReportIndicators {
    pub report: String,
    pub at: i64,
    pub indicators: Vec<Indicator>,
}

/// A stored indicator.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct StoredIndicator {
    pub id: i64,
    pub kind: String,
    pub value: String,
    pub first_reported: i64,
    pub last_reported: i64,
    pub reports: i64,
    /// `pending`, `listed`, `rejected`.
    pub status: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<i64>,
}

impl StoredIndicator {
    /// When a listed indicator leaves the blocklist unless reported again.
    pub fn expires_at(&self) -> i64 {
        self.last_reported + LISTED_FOR_MS
    }
}

const COLUMNS: &str =
    "id, kind, value, first_reported, last_reported, reports, status, reviewed_by, reviewed_at";

impl Store {
    /// Submitted phishing reports after application id `after`, oldest first.
    pub async fn phishing_reports_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<PhishingReport>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, reference, answers, submitted_at FROM applications \
             WHERE service_code = $1 AND submitted_at IS NOT NULL AND id > $2 ORDER BY id LIMIT $3"
        )
        .bind(REPORT_SERVICE)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// The last phishing report the blocklist has read (0: none).
    pub async fn blocklist_cursor(&self) -> Result<i64> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar::<_, i64>(
            "SELECT last_report FROM blocklist_cursor WHERE id = 1"
        )
        .fetch_optional(pool)
        .await?
        .unwrap_or(0)))
    }

    /// Counts each report's indicators (new ones wait for review) and moves
    /// the read position to `cursor`, in one transaction: a report is never
    /// counted twice nor skipped.
    pub async fn record_report_indicators(
        &self,
        reports: &[ReportIndicators],
        cursor: i64,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            for r in reports {
                for i in &r.indicators {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO indicators (kind, value, first_reported, last_reported, reports, status) \
                         VALUES ($1, $2, $3, $3, 0, 'pending') \
                         ON CONFLICT (kind, value) DO UPDATE SET kind = excluded.kind RETURNING id",
                    )
                    .bind(i.kind.as_str())
                    .bind(&i.value)
                    .bind(r.at)
                    .fetch_one(&mut *tx)
                    .await?;
                    let new = sqlx::query(
                        "INSERT INTO indicator_reports (indicator_id, report) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(&r.report)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if new == 1 {
                        sqlx::query(
                            "UPDATE indicators SET reports = reports + 1, \
                             first_reported = CASE WHEN $2 < first_reported THEN $2 ELSE first_reported END, \
                             last_reported = CASE WHEN $2 > last_reported THEN $2 ELSE last_reported END \
                             WHERE id = $1",
                        )
                        .bind(id)
                        .bind(r.at)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            sqlx::query(
                "INSERT INTO blocklist_cursor (id, last_report) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET last_report = excluded.last_report",
            )
            .bind(cursor)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Indicators in one state (or all), the most reported first.
    pub async fn indicators(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredIndicator>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM indicators WHERE ($1 IS NULL OR status = $1) \
             ORDER BY reports DESC, last_reported DESC, id LIMIT $2"
        ))
        .bind(status)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// The blocklist at `now`: listed indicators reported within the
    /// listing period, oldest listed first.
    pub async fn blocklist(&self, now: i64) -> Result<Vec<StoredIndicator>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM indicators WHERE status = 'listed' AND last_reported > $1 \
             ORDER BY id"
        ))
        .bind(now - LISTED_FOR_MS)
        .fetch_all(pool)
        .await?))
    }

    /// An analyst's decision on an indicator (`listed` or `rejected`, from
    /// the state they saw); a ledger entry. Another analyst's decision in
    /// between is a conflict.
    pub async fn review_indicator(&self, id: i64, from: &str, to: &str, actor: &str) -> Result<()> {
        let now = Timestamp::now().0;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let row: Option<(String, String)> = sqlx::query_as(
                "UPDATE indicators SET status = $1, reviewed_by = $2, reviewed_at = $3 \
                 WHERE id = $4 AND status = $5 RETURNING kind, value",
            )
            .bind(to)
            .bind(actor)
            .bind(now)
            .bind(id)
            .bind(from)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((kind, value)) = row else {
                return Err(StoreError::Conflict(format!(
                    "indicator {id} is no longer {from}"
                )));
            };
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    &format!("secops.blocklist.{to}"),
                    actor,
                    vec![format!("indicator:{id}")],
                    &(kind, value, from, to)
                )?
            );
        });
        Ok(())
    }
}
