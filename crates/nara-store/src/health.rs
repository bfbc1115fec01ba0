//! Health of the inventory: which systems each service depends on, what
//! the probes found (each system's state now and a week of results), and
//! which systems are due a probe by their grade.

use nara_core::secops::{Health, probe_every_ms};

use crate::{Result, Store, with_pool, write_tx};

/// How long probe results are kept (uptime is shown over the last day).
pub const KEEP_MS: i64 = 7 * 86_400_000;

/// A system due a probe.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProbeTarget {
    pub id: i64,
    pub grade: i64,
    pub endpoint_url: String,
}

/// What one probe found.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub system_id: i64,
    pub at: i64,
    pub health: Health,
    pub latency_ms: i64,
    pub status_code: Option<i64>,
    pub detail: String,
}

/// A probed system's state now, with its name and uptime over the last day.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SystemHealth {
    pub system_id: i64,
    pub agency_id: String,
    pub code: String,
    pub name: String,
    pub grade: i64,
    pub state: String,
    pub since: i64,
    pub checked_at: i64,
    pub latency_ms: i64,
    pub status_code: Option<i64>,
    pub detail: String,
    /// Probes in the last day, and how many found it up.
    pub probes_day: i64,
    pub up_day: i64,
}

impl SystemHealth {
    pub fn health(&self) -> Health {
        Health::parse(&self.state).unwrap_or(Health::Down)
    }

    /// Uptime over the last day, as a fraction (none probed: 1).
    pub fn uptime(&self) -> f64 {
        if self.probes_day == 0 {
            1.0
        } else {
            self.up_day as f64 / self.probes_day as f64
        }
    }
}

const HEALTH_SELECT: &str = "SELECT h.system_id, s.agency_id, s.code, s.name, CAST(s.grade AS BIGINT) AS grade, h.state, h.since, \
     h.checked_at, h.latency_ms, h.status_code, h.detail, \
     (SELECT COUNT(*) FROM probe_results p WHERE p.system_id = h.system_id AND p.at > $1) AS probes_day, \
     (SELECT COUNT(*) FROM probe_results p WHERE p.system_id = h.system_id AND p.at > $1 AND p.state = 'up') AS up_day \
     FROM system_health h JOIN systems s ON s.id = h.system_id";

/// After this long down, a system is probed less often.
pub const BACK_OFF_AFTER_MS: i64 = 10 * 60 * 1000;
/// How many times less often.
pub const BACK_OFF_FACTOR: i64 = 4;

impl Store {
    /// Systems with an endpoint due a probe (never probed, or their last
    /// probe older than their grade's interval), most critical first, the
    /// longest due first within a grade. A system down for more than
    /// [`BACK_OFF_AFTER_MS`] is probed [`BACK_OFF_FACTOR`] times less often
    /// until it answers. With `loopback_only`, only endpoints that name a
    /// loopback address literally (the caller still checks each with
    /// `may_probe`): the others, never probed, must not fill every round
    /// and starve these.
    ///
    /// Reads `probe_schedule` (kept by triggers as systems change and by
    /// [`Store::record_probes`]) one grade at a time from an index, so a
    /// round costs what it takes, not the size of the inventory.
    pub async fn probe_targets(
        &self,
        now: i64,
        limit: i64,
        loopback_only: bool,
    ) -> Result<Vec<ProbeTarget>> {
        let scope = if loopback_only {
            " AND loopback = TRUE"
        } else {
            ""
        };
        // Index-only: the endpoint is in the index (see the migration).
        let sql = format!(
            "SELECT system_id AS id, CAST(grade AS BIGINT) AS grade, endpoint AS endpoint_url \
             FROM probe_schedule WHERE grade = $1 AND due_at <= $2{scope} \
             ORDER BY due_at, system_id LIMIT $3"
        );
        // Grade by grade, the most critical first, until the round is full:
        // each an index range read of at most what is still wanted.
        let mut due: Vec<ProbeTarget> = Vec::new();
        for grade in 1..=4i64 {
            let wanted = limit - due.len() as i64;
            if wanted <= 0 {
                break;
            }
            let more: Vec<ProbeTarget> = with_pool!(self, |pool| {
                sqlx::query_as(&sql)
                    .bind(grade)
                    .bind(now)
                    .bind(wanted)
                    .fetch_all(pool)
                    .await?
            });
            due.extend(more);
        }
        Ok(due)
    }

    /// Records probe results: each system's state now (its `since` kept
    /// while the state holds) and the history; history older than a week
    /// goes.
    pub async fn record_probes(&self, results: &[ProbeResult]) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let (g1, g2, g3, g4) = (
                probe_every_ms(1),
                probe_every_ms(2),
                probe_every_ms(3),
                probe_every_ms(4),
            );
            for r in results {
                // A system going down is a security event too: the starter
                // rules watch for many of one agency's going down at once.
                if r.health == Health::Down {
                    let before: Option<(String, String, String)> = sqlx::query_as(
                        "SELECT COALESCE(h.state, ''), s.agency_id, s.code FROM systems s \
                         LEFT JOIN system_health h ON h.system_id = s.id WHERE s.id = $1",
                    )
                    .bind(r.system_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some((state, agency, code)) = before
                        && state != Health::Down.as_str()
                    {
                        sqlx::query(
                            "INSERT INTO security_events (at, kind, account_id, username, address, detail) \
                             VALUES ($1, 'probe.down', NULL, $2, '', $3)",
                        )
                        .bind(r.at)
                        .bind(&agency)
                        .bind(&code)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                sqlx::query(
                    "INSERT INTO system_health (system_id, state, since, checked_at, latency_ms, status_code, detail) \
                     VALUES ($1, $2, $3, $3, $4, $5, $6) \
                     ON CONFLICT (system_id) DO UPDATE SET \
                       since = CASE WHEN system_health.state = excluded.state THEN system_health.since ELSE excluded.since END, \
                       state = excluded.state, checked_at = excluded.checked_at, latency_ms = excluded.latency_ms, \
                       status_code = excluded.status_code, detail = excluded.detail",
                )
                .bind(r.system_id)
                .bind(r.health.as_str())
                .bind(r.at)
                .bind(r.latency_ms)
                .bind(r.status_code)
                .bind(&r.detail)
                .execute(&mut *tx)
                .await?;
                // Due again after its grade's interval; down for long, less often.
                sqlx::query(
                    "UPDATE probe_schedule SET due_at = $2 + \
                       CASE grade WHEN 1 THEN $3 WHEN 2 THEN $4 WHEN 3 THEN $5 ELSE $6 END * \
                       CASE WHEN EXISTS (SELECT 1 FROM system_health h WHERE h.system_id = $1 \
                         AND h.state = 'down' AND h.since <= $2 - $7) THEN $8 ELSE 1 END \
                     WHERE system_id = $1",
                )
                .bind(r.system_id)
                .bind(r.at)
                .bind(g1)
                .bind(g2)
                .bind(g3)
                .bind(g4)
                .bind(BACK_OFF_AFTER_MS)
                .bind(BACK_OFF_FACTOR)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO probe_results (system_id, at, state, latency_ms) VALUES ($1, $2, $3, $4)",
                )
                .bind(r.system_id)
                .bind(r.at)
                .bind(r.health.as_str())
                .bind(r.latency_ms)
                .execute(&mut *tx)
                .await?;
            }
            let newest = results.iter().map(|r| r.at).max().unwrap_or_default();
            sqlx::query("DELETE FROM probe_results WHERE at < $1")
                .bind(newest - KEEP_MS)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every probed system's state, the worst first.
    pub async fn systems_health(&self, now: i64) -> Result<Vec<SystemHealth>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(&format!(
            "{HEALTH_SELECT} ORDER BY CASE h.state WHEN 'down' THEN 0 WHEN 'degraded' THEN 1 ELSE 2 END, \
             s.grade, s.name"
        ))
        .bind(now - 86_400_000)
        .fetch_all(pool)
        .await?
        }))
    }

    /// The probed systems a service depends on.
    pub async fn service_dependencies_health(
        &self,
        service_id: i64,
        now: i64,
    ) -> Result<Vec<SystemHealth>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(&format!(
            "{HEALTH_SELECT} WHERE h.system_id IN \
             (SELECT system_id FROM service_dependencies WHERE service_id = $2) ORDER BY s.name"
        ))
        .bind(now - 86_400_000)
        .bind(service_id)
        .fetch_all(pool)
        .await?))
    }

    /// Services with a dependency that is not up: (service id, English
    /// name, the worst state among them).
    pub async fn services_not_up(&self) -> Result<Vec<(i64, String, String)>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT v.id, v.name_en, MAX(CASE h.state WHEN 'down' THEN 'down' ELSE 'degraded' END) \
             FROM service_dependencies d JOIN services v ON v.id = d.service_id \
             JOIN system_health h ON h.system_id = d.system_id \
             WHERE h.state <> 'up' GROUP BY v.id, v.name_en ORDER BY v.name_en"
        )
        .fetch_all(pool)
        .await?))
    }

    /// Records that a service depends on a system.
    pub async fn add_service_dependency(&self, service_id: i64, system_id: i64) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query(
                "INSERT INTO service_dependencies (service_id, system_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(service_id)
            .bind(system_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
