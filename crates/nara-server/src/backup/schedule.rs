//! Backups inside `nara serve` and `nara demo`: one every
//! `backup_every_seconds` into `backup_to`, encrypted to `backup_recipient`;
//! when the node holds the backup key (`backup_key`), the newest backup is
//! verified by the ledger once a day. Old backups are pruned, never the
//! newest verified one. A failure, or a newest backup older than two
//! intervals, is logged and recorded as a security event; serving goes on.

use std::path::PathBuf;
use std::time::Duration;

use super::{Destination, restore};
use crate::AppState;

/// How often the newest backup is proven by a restore.
const VERIFY_EVERY: Duration = Duration::from_secs(24 * 3600);
/// The first backup after start.
const FIRST_AFTER: Duration = Duration::from_secs(10);

/// What the node backs up to, from its configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub destination: Destination,
    pub recipient: String,
    pub key: Option<PathBuf>,
    pub every: Duration,
}

impl Plan {
    pub fn of(config: &crate::Config) -> Option<Plan> {
        Some(Plan {
            destination: Destination::new(config.backup_to.clone()?),
            recipient: config.backup_recipient.clone()?,
            key: config.backup_key.clone(),
            every: Duration::from_secs(config.backup_every_seconds.max(60)),
        })
    }
}

/// Starts the schedule, if the configuration names a destination and a
/// recipient. PostgreSQL nodes are backed up by pgBackRest instead.
pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let plan = Plan::of(&state.config)?;
    if state.store.kind() != nara_store::BackendKind::Sqlite {
        tracing::warn!(
            "scheduled backups are for SQLite nodes; back PostgreSQL up with pgBackRest"
        );
        return None;
    }
    Some(tokio::spawn(async move {
        let started_ms = nara_core::Timestamp::now().0;
        tokio::time::sleep(FIRST_AFTER).await;
        let mut tick = tokio::time::interval(plan.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let status = plan.destination.status();
            if stale(&plan, &status, started_ms, nara_core::Timestamp::now().0) {
                let why = format!(
                    "no backup for more than {} s (two intervals)",
                    2 * plan.every.as_secs()
                );
                failed(&state, "backup.stale", &why).await;
            }
            run_once(&state, &plan).await;
        }
    }))
}

/// Whether the newest backup is older than two intervals (or there is none
/// `now_ms - started_ms` after the schedule began): what a disaster now
/// would lose is more than the schedule promises.
pub fn stale(plan: &Plan, status: &super::Status, started_ms: i64, now_ms: i64) -> bool {
    let allowed = 2 * plan.every.as_millis() as i64;
    let since = status.last_backup_ms.unwrap_or(started_ms);
    now_ms - since > allowed
}

/// One scheduled round: a backup, pruning, and the daily verification.
pub async fn run_once(state: &AppState, plan: &Plan) {
    let recipient = match super::read_recipient(&plan.recipient) {
        Ok(r) => r,
        Err(e) => return failed(state, "backup.failed", &e.to_string()).await,
    };
    let data_dir = state.config.data_dir.clone();
    match super::take(
        &state.store,
        &data_dir,
        &plan.destination,
        &recipient,
        &|_, _| {},
    )
    .await
    {
        Ok(taken) => tracing::info!(
            backup = %taken.manifest.id,
            new_objects = taken.new_objects,
            ledger = taken.manifest.ledger.size,
            "backup taken"
        ),
        Err(e) => return failed(state, "backup.failed", &e.to_string()).await,
    }
    if let Err(e) = plan.destination.prune(&super::Retention::default()) {
        tracing::warn!(error = %e, "pruning old backups");
    }
    let Some(key) = &plan.key else { return };
    let status = plan.destination.status();
    let due = status
        .last_verified_ms
        .is_none_or(|at| nara_core::Timestamp::now().0 - at >= VERIFY_EVERY.as_millis() as i64);
    if !due {
        return;
    }
    let identity = match super::read_identity(key) {
        Ok(i) => i,
        Err(e) => return failed(state, "backup.verify_failed", &e.to_string()).await,
    };
    match restore::verify(&plan.destination, None, &identity, None, &|_, _| {}).await {
        Ok(proof) => tracing::info!(
            backup = %proof.manifest.id,
            entries = proof.entries,
            checkpoints = proof.checkpoints,
            "backup verified by the ledger"
        ),
        Err(e) => failed(state, "backup.verify_failed", &e.to_string()).await,
    }
}

async fn failed(state: &AppState, kind: &str, why: &str) {
    tracing::error!(error = %why, "{kind}");
    crate::identity::request::event(state, kind, None, "system", "", why).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_older_than_two_intervals_is_stale() {
        let plan = Plan {
            destination: Destination::new("/nonexistent"),
            recipient: String::new(),
            key: None,
            every: Duration::from_secs(300),
        };
        let minute = 60_000;
        let at = |ms| super::super::Status {
            last_backup_ms: ms,
            ..Default::default()
        };
        let now = 1_000 * minute;
        assert!(!stale(&plan, &at(Some(now - 9 * minute)), 0, now));
        assert!(stale(&plan, &at(Some(now - 11 * minute)), 0, now));
        // None yet: counted from when the schedule began.
        assert!(!stale(&plan, &at(None), now - 5 * minute, now));
        assert!(stale(&plan, &at(None), now - 11 * minute, now));
    }
}
