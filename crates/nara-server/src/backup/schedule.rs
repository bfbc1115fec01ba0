//! Backups inside `nara serve` and `nara demo`: one every
//! `backup_every_seconds` into `backup_to`, encrypted to `backup_recipient`;
//! when the node holds the backup key (`backup_key`), the newest backup is
//! verified by the ledger once a day. Old backups are pruned, never the
//! newest verified one. A failure, or a newest backup older than two
//! intervals, is logged and recorded as a security event; serving goes on.
//!
//! When the store lets the node own its checkpoints
//! ([`nara_store::Checkpoints::Shipped`]), backups are continuous: each
//! interval begins a generation ([`super::stream`]) and every committed
//! transaction is shipped within about a second.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Destination, restore, stream};
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
            destination: match Destination::open(&config.backup_to.as_ref()?.to_string_lossy()) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "the backup destination");
                    return None;
                }
            },
            recipient: config.backup_recipient.clone()?,
            key: config.backup_key.clone(),
            every: Duration::from_secs(config.backup_every_seconds.max(60)),
        })
    }
}

/// The running schedule; [`Schedule::stop`] ships the last transactions.
pub struct Schedule {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
    /// Becomes true once a continuous backup's first base is stored (at
    /// once for periodic backups, which promise no recovery point).
    first_base: tokio::sync::watch::Receiver<bool>,
}

/// How long a starting node waits for its first base before it serves
/// anyway (a destination that is away must not keep a node down).
const FIRST_BASE_WITHIN: Duration = Duration::from_secs(30);

impl Schedule {
    /// Waits until the first base is stored, or [`FIRST_BASE_WITHIN`].
    /// A node killed mid-stream restarts with committed transactions that
    /// only its own disk holds: until a new base holds them, a second
    /// death would lose writes acknowledged long before it. So a node
    /// takes writes only after that base (the stream crash test found a
    /// write acknowledged 5 s before a kill missing at the second site).
    pub async fn first_base(&self) {
        let mut ready = self.first_base.clone();
        let waited =
            tokio::time::timeout(FIRST_BASE_WITHIN, ready.wait_for(|stored| *stored)).await;
        if waited.is_err() {
            tracing::warn!(
                "no continuous backup base within {} s; serving anyway, without the promised recovery point until one is stored",
                FIRST_BASE_WITHIN.as_secs()
            );
        }
    }

    pub async fn stop(self) {
        self.stop.notify_one();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(10), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Starts the schedule, if the configuration names a destination and a
/// recipient. PostgreSQL nodes are backed up by pgBackRest instead.
pub fn spawn(state: AppState) -> Option<Schedule> {
    let plan = Plan::of(&state.config)?;
    if state.store.kind() == nara_store::BackendKind::Postgres
        && state.config.pgbackrest_config.is_none()
    {
        tracing::warn!(
            "a PostgreSQL node is backed up through pgBackRest: run `nara backup pg-setup` and set pgbackrest_config"
        );
        return None;
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let (stored, first_base) = tokio::sync::watch::channel(false);
    let task = if state.store.checkpoints() == nara_store::Checkpoints::Shipped {
        tokio::spawn(async move { continuous(state, plan, stopped, stored).await })
    } else {
        let _ = stored.send(true);
        tokio::spawn(async move {
            tokio::select! {
                () = periodic(state, plan) => {}
                () = stopped.notified() => {}
            }
        })
    };
    Some(Schedule {
        stop,
        task,
        first_base,
    })
}

async fn periodic(state: AppState, plan: Plan) {
    let started_ms = nara_core::Timestamp::now().0;
    tokio::time::sleep(FIRST_AFTER).await;
    let mut tick = tokio::time::interval(plan.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        check_stale(&state, &plan, started_ms).await;
        let recipient = match super::read_recipient(&plan.recipient) {
            Ok(r) => r,
            Err(e) => {
                failed(&state, "backup.failed", &e.to_string()).await;
                continue;
            }
        };
        let data_dir = state.config.data_dir.clone();
        let taken = match pgbackrest(&state) {
            // PostgreSQL archives its WAL continuously itself; this is the base backup.
            Some(tool) => {
                super::pg::take(
                    &state.store,
                    &data_dir,
                    &plan.destination,
                    &recipient,
                    &tool,
                    &|_, _| {},
                )
                .await
            }
            None => {
                super::take(
                    &state.store,
                    &data_dir,
                    &plan.destination,
                    &recipient,
                    &|_, _| {},
                )
                .await
            }
        };
        match taken {
            Ok(taken) => tracing::info!(
                backup = %taken.manifest.id,
                new_objects = taken.new_objects,
                ledger = taken.manifest.ledger.size,
                "backup taken"
            ),
            Err(e) => {
                failed(&state, "backup.failed", &e.to_string()).await;
                continue;
            }
        }
        after_backup(&state, &plan).await;
    }
}

async fn check_stale(state: &AppState, plan: &Plan, started_ms: i64) {
    let Some(status) = plan.destination.status().await else {
        let why = format!(
            "the destination {} cannot be read",
            plan.destination.shown()
        );
        return failed(state, "backup.failed", &why).await;
    };
    if stale(plan, &status, started_ms, nara_core::Timestamp::now().0) {
        let why = format!(
            "no backup for more than {} s (two intervals)",
            2 * plan.every.as_secs()
        );
        failed(state, "backup.stale", &why).await;
    }
}

/// How long the stream may fail before it is a security event, and before
/// the log is folded into the database unshipped (so it cannot grow
/// without bound while the destination is away).
const FAILING_FOR: Duration = Duration::from_secs(30);

/// Continuous backup: a base every interval, the log shipped every second.
async fn continuous(
    state: AppState,
    plan: Plan,
    stop: Arc<tokio::sync::Notify>,
    first_base: tokio::sync::watch::Sender<bool>,
) {
    let live = state.backup_stream.clone();
    let started_ms = nara_core::Timestamp::now().0;
    let shipper = match super::read_recipient(&plan.recipient) {
        Ok(recipient) => {
            stream::Shipper::new(
                &state.store,
                &state.config.data_dir,
                plan.destination.clone(),
                recipient,
                live,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let mut shipper = match shipper {
        Ok(s) => s,
        Err(e) => {
            failed(&state, "backup.failed", &e.to_string()).await;
            return checkpoint_only(&state, stop).await;
        }
    };
    let mut tick = tokio::time::interval(stream::SHIP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing_since: Option<Instant> = None;
    let mut reported = false;
    let mut last_stale_check = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.notified() => break,
        }
        let due = shipper
            .generation()
            .is_none_or(|(_, age)| age >= plan.every);
        let outcome = if due {
            shipper.begin().await.map(|taken| match taken {
                Some(taken) => {
                    tracing::info!(
                        backup = %taken.manifest.id,
                        new_objects = taken.new_objects,
                        ledger = taken.manifest.ledger.size,
                        "continuous backup: a new base"
                    );
                    true
                }
                None => {
                    tracing::debug!(
                        "a reader held the log: the new base waits, the stream goes on"
                    );
                    false
                }
            })
        } else {
            shipper.ship().await.map(|_| false)
        };
        match outcome {
            Ok(new_base) => {
                failing_since = None;
                reported = false;
                if new_base {
                    first_base.send_replace(true);
                    let (state, plan) = (state.clone(), plan.clone());
                    tokio::spawn(async move { after_backup(&state, &plan).await });
                }
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                tracing::warn!(error = %e, "continuous backup");
                if since.elapsed() >= FAILING_FOR {
                    if !reported {
                        failed(&state, "backup.failed", &e.to_string()).await;
                        reported = true;
                    }
                    if let Err(e) = shipper.checkpoint_unshipped().await {
                        tracing::warn!(error = %e, "checkpointing the log");
                    }
                    failing_since = Some(Instant::now());
                }
            }
        }
        if last_stale_check.elapsed() >= Duration::from_secs(60) {
            last_stale_check = Instant::now();
            check_stale(&state, &plan, started_ms).await;
        }
    }
    shipper.finish().await;
}

/// Without a way to ship, the node still folds its log into the database.
async fn checkpoint_only(state: &AppState, stop: Arc<tokio::sync::Notify>) {
    let Ok(mut tap) = state.store.wal_tap().await else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.notified() => break,
        }
        if let Err(e) = tap.checkpoint(None, &mut Vec::new()).await {
            tracing::warn!(error = %e, "checkpointing the log");
        }
    }
    tap.close().await;
}

/// Whether the newest backup is older than two intervals (or there is none
/// `now_ms - started_ms` after the schedule began): what a disaster now
/// would lose is more than the schedule promises.
pub fn stale(plan: &Plan, status: &super::Status, started_ms: i64, now_ms: i64) -> bool {
    let allowed = 2 * plan.every.as_millis() as i64;
    let since = status.last_backup_ms.unwrap_or(started_ms);
    now_ms - since > allowed
}

/// pgBackRest, when this is a PostgreSQL node that has it configured.
fn pgbackrest(state: &AppState) -> Option<super::pg::PgBackRest> {
    if state.store.kind() != nara_store::BackendKind::Postgres {
        return None;
    }
    Some(super::pg::PgBackRest {
        config: state.config.pgbackrest_config.clone()?,
        run_as: state.config.pgbackrest_run_as.clone(),
    })
}

/// After a backup: pruning, and the daily verification.
async fn after_backup(state: &AppState, plan: &Plan) {
    if let Err(e) = plan.destination.prune(&super::Retention::default()).await {
        tracing::warn!(error = %e, "pruning old backups");
    }
    let Some(key) = &plan.key else { return };
    let status = plan.destination.status().await.unwrap_or_default();
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
    let pg = pgbackrest(state).map(|tool| restore::PgVerify {
        database_url: state.config.database_url(),
        run_as: tool.run_as,
    });
    match restore::verify_with(
        &plan.destination,
        None,
        &identity,
        None,
        pg.as_ref(),
        &|_, _| {},
    )
    .await
    {
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
