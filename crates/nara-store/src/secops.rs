//! Security operations' storage: the security events detection reads in
//! order, the alerts its rules raise, and their triage. Raising an alert and
//! every change of its state are ledger entries.

use nara_core::Timestamp;
use nara_core::secops::{AlertLevel, AlertStatus, IncidentStatus};

use crate::identity::SecurityEvent;
use crate::ledger::{append_in_tx, commit_with_entry, entry_bytes};
use crate::{Result, Store, StoreError, with_pool, write_tx};

/// An alert a rule raised, before it is stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewAlert {
    pub rule_id: String,
    pub title: String,
    pub level: String,
    /// What the rule grouped by, `field=value` pairs (`source.ip=203.0.113.9`).
    pub group_key: String,
    /// The security events that made it.
    pub events: Vec<i64>,
    pub first_at: i64,
    pub last_at: i64,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Alert {
    pub id: i64,
    pub rule_id: String,
    pub title: String,
    pub level: String,
    pub group_key: String,
    /// JSON array of security event ids.
    pub events: String,
    pub first_at: i64,
    pub last_at: i64,
    pub status: String,
    pub updated_at: i64,
    pub updated_by: String,
    /// The incident it was grouped into, if any.
    pub incident_id: Option<i64>,
}

impl Alert {
    pub fn status(&self) -> Option<AlertStatus> {
        AlertStatus::parse(&self.status)
    }

    pub fn event_ids(&self) -> Vec<i64> {
        serde_json::from_str(&self.events).unwrap_or_default()
    }
}

const ALERT_COLUMNS: &str = "id, rule_id, title, level, group_key, events, first_at, last_at, \
                             status, updated_at, updated_by, incident_id";
/// Alerts with the incident each belongs to.
const ALERTS: &str = "alerts LEFT JOIN incident_alerts ON incident_alerts.alert_id = alerts.id";

/// An incident: alerts grouped, assigned, worked through its timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Incident {
    pub id: i64,
    pub title: String,
    pub level: String,
    pub status: String,
    pub assignee: Option<i64>,
    /// The assignee's display name.
    pub assignee_name: Option<String>,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    /// How many alerts it groups.
    pub alerts: i64,
}

impl Incident {
    pub fn status(&self) -> Option<IncidentStatus> {
        IncidentStatus::parse(&self.status)
    }
}

const INCIDENT_SELECT: &str = "SELECT i.id, i.title, i.level, i.status, i.assignee, \
     a.display_name AS assignee_name, i.created_at, i.created_by, i.updated_at, \
     (SELECT COUNT(*) FROM incident_alerts ia WHERE ia.incident_id = i.id) AS alerts \
     FROM incidents i LEFT JOIN accounts a ON a.id = i.assignee";

/// One step on an incident's timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct TimelineStep {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    /// `created`, `alert_added`, `assigned`, `status`, `note`.
    pub kind: String,
    pub detail: String,
}

/// A change to an incident, as the analyst asks it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum IncidentChange {
    /// Group another alert into it.
    AddAlert {
        alert: i64,
    },
    /// Give it to a security analyst (an account id).
    Assign {
        analyst: i64,
    },
    /// Move it; the caller checked the move with `may_become`.
    Move {
        from: IncidentStatus,
        to: IncidentStatus,
        note: String,
    },
    Note {
        note: String,
    },
}

/// A detection rule an analyst switched off or back on, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct RuleSwitch {
    pub rule_id: String,
    pub enabled: i64,
    pub reason: String,
    pub changed_at: i64,
    pub changed_by: String,
}

impl RuleSwitch {
    pub fn is_enabled(&self) -> bool {
        self.enabled != 0
    }
}

/// One setting of the national alert level.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct AlertLevelSet {
    pub id: i64,
    pub level: String,
    pub reason: String,
    pub set_at: i64,
    pub set_by: String,
}

impl AlertLevelSet {
    pub fn level(&self) -> AlertLevel {
        // A level this build does not know is read as the highest: an
        // unknown state of alarm is never relaxed by accident.
        AlertLevel::parse(&self.level).unwrap_or(AlertLevel::Serious)
    }
}

/// A security event an agency system reported, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedEvent {
    pub at: i64,
    pub kind: String,
    pub username: String,
    pub address: String,
    pub detail: String,
}

impl Store {
    /// Stores reported events, all or none.
    pub async fn record_reported_events(&self, events: &[ReportedEvent]) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            for e in events {
                sqlx::query(
                    "INSERT INTO security_events (at, kind, account_id, username, address, detail) \
                     VALUES ($1, $2, NULL, $3, $4, $5)",
                )
                .bind(e.at)
                .bind(&e.kind)
                .bind(&e.username)
                .bind(&e.address)
                .bind(&e.detail)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Security events after id `after`, oldest first.
    pub async fn security_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SecurityEvent>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, at, kind, account_id, username, address, detail FROM security_events \
             WHERE id > $1 ORDER BY id LIMIT $2"
        )
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// Deletes security events older than `before` (ms) that detection has
    /// already read — never one it has not — at most `limit` at a time;
    /// how many went.
    pub async fn prune_security_events(&self, before: i64, limit: i64) -> Result<u64> {
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query(
                "DELETE FROM security_events WHERE id IN (SELECT id FROM security_events \
                 WHERE at < $1 AND id <= (SELECT COALESCE(MAX(last_event), 0) FROM detection_cursor) \
                 ORDER BY id LIMIT $2)",
            )
            .bind(before)
            .bind(limit)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        }))
    }

    /// The last security event detection has read (0: none).
    pub async fn detection_cursor(&self) -> Result<i64> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar::<_, i64>(
            "SELECT last_event FROM detection_cursor WHERE id = 1"
        )
        .fetch_optional(pool)
        .await?
        .unwrap_or(0)))
    }

    /// Stores the alerts raised by the events up to `cursor` and moves the
    /// cursor there, in one transaction: an event is never read twice nor
    /// skipped. Each alert is a ledger entry.
    pub async fn record_alerts(&self, alerts: &[NewAlert], cursor: i64) -> Result<Vec<i64>> {
        let now = Timestamp::now().0;
        let ids = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let mut ids = Vec::with_capacity(alerts.len());
            let mut entries = Vec::with_capacity(alerts.len());
            for a in alerts {
                let events = serde_json::to_string(&a.events)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO alerts (rule_id, title, level, group_key, events, first_at, \
                     last_at, status, updated_at, updated_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, 'detection') RETURNING id",
                )
                .bind(&a.rule_id)
                .bind(&a.title)
                .bind(&a.level)
                .bind(&a.group_key)
                .bind(&events)
                .bind(a.first_at)
                .bind(a.last_at)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                if nara_core::secops::level_rank(&a.level) >= 3 {
                    // High and critical: to every analyst on call.
                    sqlx::query(
                        "INSERT INTO alert_mail (alert_id, account_id) SELECT $1, id FROM accounts \
                         WHERE status = 'active' AND email IS NOT NULL AND id IN \
                         (SELECT account_id FROM role_grants WHERE role = 'security_analyst')",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                entries.push(entry_bytes(
                    "secops.alert.raised",
                    "system:detection",
                    vec![format!("alert:{id}"), format!("rule:{}", a.rule_id)],
                    a,
                )?);
                ids.push(id);
            }
            sqlx::query(
                "INSERT INTO detection_cursor (id, last_event) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET last_event = excluded.last_event",
            )
            .bind(cursor)
            .execute(&mut *tx)
            .await?;
            append_in_tx!(tx, self.kind() == crate::BackendKind::Sqlite, &entries);
            tx.commit().await?;
            ids
        });
        Ok(ids)
    }

    /// Alerts, newest first, in one state or all.
    pub async fn alerts(&self, status: Option<AlertStatus>, limit: i64) -> Result<Vec<Alert>> {
        let status = status.map(AlertStatus::as_str);
        Ok(with_pool!(self, |pool| sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM {ALERTS} WHERE ($1 IS NULL OR status = $1) \
             ORDER BY id DESC LIMIT $2"
        ))
        .bind(status)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    pub async fn alert(&self, id: i64) -> Result<Option<Alert>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM {ALERTS} WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?))
    }

    /// Moves alert `id` from `from` to `to` (the caller checked the move
    /// with [`AlertStatus::may_become`]); a ledger entry. Another analyst's
    /// move in between is a conflict, not overwritten.
    pub async fn triage_alert(
        &self,
        id: i64,
        from: AlertStatus,
        to: AlertStatus,
        actor: &str,
        note: &str,
    ) -> Result<()> {
        let now = Timestamp::now().0;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let moved = sqlx::query(
                "UPDATE alerts SET status = $1, updated_at = $2, updated_by = $3 \
                 WHERE id = $4 AND status = $5",
            )
            .bind(to.as_str())
            .bind(now)
            .bind(actor)
            .bind(id)
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Err(StoreError::Conflict(format!(
                    "alert {id} is no longer {}",
                    from.as_str()
                )));
            }
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "secops.alert.triaged",
                    actor,
                    vec![format!("alert:{id}")],
                    &(id, from, to, note)
                )?
            );
        });
        Ok(())
    }

    /// Every rule an analyst ever switched, as it stands now.
    pub async fn rule_switches(&self) -> Result<Vec<RuleSwitch>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT rule_id, enabled, reason, changed_at, changed_by \
             FROM detection_rule_switches ORDER BY rule_id"
        )
        .fetch_all(pool)
        .await?))
    }

    /// The rules switched off now (read by detection every round).
    pub async fn rules_switched_off(&self) -> Result<Vec<String>> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT rule_id FROM detection_rule_switches WHERE enabled = 0"
        )
        .fetch_all(pool)
        .await?))
    }

    /// Switches detection rule `rule_id` off or on, with the analyst's
    /// reason; a ledger entry.
    pub async fn switch_rule(
        &self,
        rule_id: &str,
        enabled: bool,
        reason: &str,
        actor: &str,
    ) -> Result<()> {
        let now = Timestamp::now().0;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query(
                "INSERT INTO detection_rule_switches (rule_id, enabled, reason, changed_at, changed_by) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rule_id) DO UPDATE SET \
                 enabled = excluded.enabled, reason = excluded.reason, \
                 changed_at = excluded.changed_at, changed_by = excluded.changed_by",
            )
            .bind(rule_id)
            .bind(i64::from(enabled))
            .bind(reason)
            .bind(now)
            .bind(actor)
            .execute(&mut *tx)
            .await?;
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "secops.rule.switched",
                    actor,
                    vec![format!("rule:{rule_id}")],
                    &(rule_id, enabled, reason)
                )?
            );
        });
        Ok(())
    }

    /// The national alert level's settings, newest first (the first is the
    /// level now; none: normal).
    pub async fn alert_levels(&self, limit: i64) -> Result<Vec<AlertLevelSet>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, level, reason, set_at, set_by FROM alert_levels ORDER BY id DESC LIMIT $1"
        )
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// The national alert level now.
    pub async fn alert_level(&self) -> Result<AlertLevel> {
        Ok(self
            .alert_levels(1)
            .await?
            .first()
            .map_or(AlertLevel::Normal, AlertLevelSet::level))
    }

    /// Sets the national alert level, with the analyst's reason; a ledger
    /// entry. Setting it from `expected` only: another analyst's change in
    /// between is a conflict, not overwritten.
    pub async fn set_alert_level(
        &self,
        expected: AlertLevel,
        level: AlertLevel,
        reason: &str,
        actor: &str,
    ) -> Result<i64> {
        let now = Timestamp::now().0;
        let id = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let current: Option<String> =
                sqlx::query_scalar("SELECT level FROM alert_levels ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let current = current.as_deref().map_or(AlertLevel::Normal, |l| {
                AlertLevel::parse(l).unwrap_or(AlertLevel::Serious)
            });
            if current != expected {
                return Err(StoreError::Conflict(format!(
                    "the alert level is now {}",
                    current.as_str()
                )));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO alert_levels (level, reason, set_at, set_by) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(level.as_str())
            .bind(reason)
            .bind(now)
            .bind(actor)
            .fetch_one(&mut *tx)
            .await?;
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "secops.alert_level.set",
                    actor,
                    vec![format!("alert-level:{id}")],
                    &(expected, level, reason)
                )?
            );
            id
        });
        Ok(id)
    }

    /// Opens an incident around an alert not yet in one; a ledger entry.
    pub async fn open_incident(&self, title: &str, alert: i64, actor: &str) -> Result<i64> {
        let now = Timestamp::now().0;
        let id = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let level: Option<String> = sqlx::query_scalar(
                "SELECT level FROM alerts WHERE id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM incident_alerts WHERE alert_id = $1)",
            )
            .bind(alert)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(level) = level else {
                return Err(StoreError::Conflict(format!(
                    "alert {alert} does not exist or is already in an incident"
                )));
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO incidents (title, level, status, assignee, created_at, created_by, updated_at) \
                 VALUES ($1, $2, 'open', NULL, $3, $4, $3) RETURNING id",
            )
            .bind(title)
            .bind(&level)
            .bind(now)
            .bind(actor)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO incident_alerts (alert_id, incident_id) VALUES ($1, $2)")
                .bind(alert)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for (kind, detail) in [
                ("created", title.to_owned()),
                ("alert_added", format!("alert {alert}")),
            ] {
                sqlx::query(
                    "INSERT INTO incident_timeline (incident_id, at, actor, kind, detail) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(now)
                .bind(actor)
                .bind(kind)
                .bind(detail)
                .execute(&mut *tx)
                .await?;
            }
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "secops.incident.opened",
                    actor,
                    vec![format!("incident:{id}"), format!("alert:{alert}")],
                    &(id, title, alert)
                )?
            );
            id
        });
        Ok(id)
    }

    /// Changes an active incident (a resolved one may only be reopened);
    /// a timeline step and a ledger entry. What no longer applies — an
    /// alert already grouped, an assignee who is not a security analyst, a
    /// move from a state it has left — is a conflict.
    pub async fn change_incident(
        &self,
        id: i64,
        change: &IncidentChange,
        actor: &str,
    ) -> Result<()> {
        let now = Timestamp::now().0;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM incidents WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(status) = status.as_deref().and_then(IncidentStatus::parse) else {
                return Err(StoreError::NotFound(format!("incident {id}")));
            };
            let conflict = |why: String| Err(StoreError::Conflict(why));
            if !status.is_active() && !matches!(change, IncidentChange::Move { .. }) {
                return conflict(format!("incident {id} is resolved: reopen it first"));
            }
            let (kind, detail, mut subjects) = match change {
                IncidentChange::AddAlert { alert } => {
                    let level: Option<String> = sqlx::query_scalar(
                        "SELECT level FROM alerts WHERE id = $1 AND NOT EXISTS \
                         (SELECT 1 FROM incident_alerts WHERE alert_id = $1)",
                    )
                    .bind(alert)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(level) = level else {
                        return conflict(format!(
                            "alert {alert} does not exist or is already in an incident"
                        ));
                    };
                    sqlx::query(
                        "INSERT INTO incident_alerts (alert_id, incident_id) VALUES ($1, $2)",
                    )
                    .bind(alert)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    let current: String =
                        sqlx::query_scalar("SELECT level FROM incidents WHERE id = $1")
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await?;
                    if nara_core::secops::level_rank(&level)
                        > nara_core::secops::level_rank(&current)
                    {
                        sqlx::query("UPDATE incidents SET level = $1 WHERE id = $2")
                            .bind(&level)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    (
                        "alert_added",
                        format!("alert {alert}"),
                        vec![format!("alert:{alert}")],
                    )
                }
                IncidentChange::Assign { analyst } => {
                    let name: Option<String> = sqlx::query_scalar(
                        "SELECT display_name FROM accounts WHERE id = $1 AND status = 'active' \
                         AND id IN (SELECT account_id FROM role_grants WHERE role = 'security_analyst')",
                    )
                    .bind(analyst)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(name) = name else {
                        return conflict(format!(
                            "account {analyst} is not an active security analyst"
                        ));
                    };
                    sqlx::query("UPDATE incidents SET assignee = $1 WHERE id = $2")
                        .bind(analyst)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    ("assigned", name, vec![format!("account:{analyst}")])
                }
                IncidentChange::Move { from, to, note } => {
                    if status != *from || !from.may_become(*to) {
                        return conflict(format!("incident {id} is {}", status.as_str()));
                    }
                    sqlx::query("UPDATE incidents SET status = $1 WHERE id = $2")
                        .bind(to.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    let detail = if note.is_empty() {
                        format!("{} → {}", from.as_str(), to.as_str())
                    } else {
                        format!("{} → {}: {note}", from.as_str(), to.as_str())
                    };
                    ("status", detail, Vec::new())
                }
                IncidentChange::Note { note } => ("note", note.clone(), Vec::new()),
            };
            sqlx::query("UPDATE incidents SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO incident_timeline (incident_id, at, actor, kind, detail) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(now)
            .bind(actor)
            .bind(kind)
            .bind(&detail)
            .execute(&mut *tx)
            .await?;
            subjects.insert(0, format!("incident:{id}"));
            commit_with_entry!(
                self,
                tx,
                entry_bytes(&format!("secops.incident.{kind}"), actor, subjects, change)?
            );
        });
        Ok(())
    }

    /// Incidents, newest first, in one state or all.
    pub async fn incidents(
        &self,
        status: Option<IncidentStatus>,
        limit: i64,
    ) -> Result<Vec<Incident>> {
        let status = status.map(IncidentStatus::as_str);
        Ok(with_pool!(self, |pool| sqlx::query_as(&format!(
            "{INCIDENT_SELECT} WHERE ($1 IS NULL OR i.status = $1) ORDER BY i.id DESC LIMIT $2"
        ))
        .bind(status)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(&format!(
            "{INCIDENT_SELECT} WHERE i.id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?))
    }

    /// An incident's alerts, oldest first.
    pub async fn incident_alerts(&self, id: i64) -> Result<Vec<Alert>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM {ALERTS} WHERE incident_id = $1 ORDER BY id"
        ))
        .bind(id)
        .fetch_all(pool)
        .await?))
    }

    /// An incident's timeline, oldest first.
    pub async fn incident_timeline(&self, id: i64) -> Result<Vec<TimelineStep>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, at, actor, kind, detail FROM incident_timeline WHERE incident_id = $1 ORDER BY id"
        )
        .bind(id)
        .fetch_all(pool)
        .await?
        }))
    }

    /// Alert emails not yet sent, oldest first: (mail id, address, alert).
    pub async fn unsent_alert_mail(&self, limit: i64) -> Result<Vec<(i64, String, Alert)>> {
        let rows: Vec<(i64, String, i64)> = with_pool!(self, |pool| sqlx::query_as(
            "SELECT m.id, acc.email, m.alert_id FROM alert_mail m \
             JOIN accounts acc ON acc.id = m.account_id \
             WHERE m.emailed_at IS NULL AND acc.email IS NOT NULL ORDER BY m.id LIMIT $1"
        )
        .bind(limit)
        .fetch_all(pool)
        .await?);
        let mut out = Vec::with_capacity(rows.len());
        for (id, email, alert) in rows {
            if let Some(alert) = self.alert(alert).await? {
                out.push((id, email, alert));
            }
        }
        Ok(out)
    }

    pub async fn mark_alert_mailed(&self, id: i64) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query("UPDATE alert_mail SET emailed_at = $1 WHERE id = $2")
                .bind(Timestamp::now().0)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The analysts on call: active security analysts who gave an address.
    pub async fn analysts_on_call(&self) -> Result<Vec<(i64, String)>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, display_name FROM accounts WHERE status = 'active' AND email IS NOT NULL AND id IN \
             (SELECT account_id FROM role_grants WHERE role = 'security_analyst') ORDER BY display_name"
        )
        .fetch_all(pool)
        .await?
        }))
    }

    /// Active security analysts (id, display name), for assignment.
    pub async fn security_analysts(&self) -> Result<Vec<(i64, String)>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, display_name FROM accounts WHERE status = 'active' AND id IN \
             (SELECT account_id FROM role_grants WHERE role = 'security_analyst') ORDER BY display_name"
        )
        .fetch_all(pool)
        .await?
        }))
    }
}
