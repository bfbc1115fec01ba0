//! Restoring a backup into an empty data directory, and verifying one: a
//! restore into scratch space, the database's own integrity check, then the
//! proof by the ledger — the restored log must reproduce the root of every
//! checkpoint the node published up to the backup, the newest one signed by
//! the ledger key (the restored one, or a verifier key the operator trusts).

use std::path::Path;

use nara_ledger::merkle::RootAccumulator;
use nara_ledger::note::{Signer, Verifier};

use super::stream::{Replayed, Until};
use super::{BackupError, Destination, Manifest, Verified};

/// What a restore wrote.
#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest: Manifest,
    pub files: usize,
    pub bytes: u64,
    /// The log replayed after the backup (continuous backups).
    pub replayed: Replayed,
}

/// Which backup a restore starts from: `id`, or the newest that is not past
/// `until` (taken by that moment, or holding at most that many ledger
/// entries), whose stream then brings it to `until`.
pub async fn choose(
    destination: &Destination,
    id: Option<&str>,
    until: Until,
) -> Result<Manifest, BackupError> {
    if id.is_some() {
        return destination.manifest_or_latest(id).await;
    }
    let backups = destination.list_backups().await?;
    if backups.is_empty() {
        return Err(BackupError::NoBackups);
    }
    let fits = |m: &Manifest| match until {
        Until::Latest => true,
        Until::At(at) => m.created_ms <= at,
        Until::LedgerSize(n) => m.ledger.size <= n,
    };
    backups
        .into_iter()
        .rev()
        .map(|(m, _)| m)
        .find(fits)
        .ok_or_else(|| {
            BackupError::NoSuchBackup(match until {
                Until::At(at) => format!("taken by {}", nara_core::Timestamp(at).rfc3339()),
                Until::LedgerSize(n) => format!("with a ledger of at most {n} entries"),
                Until::Latest => "at all".into(),
            })
        })
}

/// Where a PostgreSQL backup's database is restored, and as whom the
/// PostgreSQL tools run.
#[derive(Debug, Clone)]
pub struct PgRestore {
    pub pg_data: std::path::PathBuf,
    pub run_as: Option<String>,
}

/// Restores backup `id` (or the one [`choose`] picks for `until`) into
/// `target`, which must be empty or absent unless `replace`, and replays
/// its log up to `until`. `progress(done, total)` in bytes.
pub async fn restore(
    destination: &Destination,
    id: Option<&str>,
    until: Until,
    identity: &age::x25519::Identity,
    target: &Path,
    replace: bool,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Restored, BackupError> {
    restore_with(
        destination,
        id,
        until,
        identity,
        target,
        replace,
        None,
        progress,
    )
    .await
}

/// [`restore`], with where a PostgreSQL backup's database goes.
#[allow(clippy::too_many_arguments)]
pub async fn restore_with(
    destination: &Destination,
    id: Option<&str>,
    until: Until,
    identity: &age::x25519::Identity,
    target: &Path,
    replace: bool,
    pg: Option<&PgRestore>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Restored, BackupError> {
    let manifest = choose(destination, id, until).await?;
    let postgres = match (&manifest.pgbackrest, pg) {
        (Some(label), Some(pg)) => {
            let pg_until = super::pg::until(until)?;
            let occupied = std::fs::read_dir(&pg.pg_data)
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(false);
            if occupied {
                return Err(BackupError::TargetNotEmpty(pg.pg_data.clone()));
            }
            Some((label.clone(), pg_until, pg))
        }
        (Some(_), None) => {
            return Err(BackupError::Remote(format!(
                "backup {} is of a PostgreSQL database: restore it with --pg-data DIR",
                manifest.id
            )));
        }
        (None, _) => None,
    };
    let total = restore_files(destination, &manifest, identity, target, replace, progress).await?;
    let replayed = match postgres {
        Some((label, pg_until, pg)) => {
            restore_postgres(destination, identity, &label, pg_until, pg, target).await?;
            super::stream::Replayed::default()
        }
        None => {
            super::stream::replay(
                destination,
                &manifest,
                identity,
                &target.join("nara.db"),
                until,
            )
            .await?
        }
    };
    Ok(Restored {
        files: manifest.files.len(),
        bytes: total,
        manifest,
        replayed,
    })
}

/// Restores a backup's files (for SQLite, the database among them) into
/// `target`, empty unless `replace`; their total bytes.
async fn restore_files(
    destination: &Destination,
    manifest: &Manifest,
    identity: &age::x25519::Identity,
    target: &Path,
    replace: bool,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<u64, BackupError> {
    let occupied = std::fs::read_dir(target)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if occupied && !replace {
        return Err(BackupError::TargetNotEmpty(target.to_owned()));
    }
    std::fs::create_dir_all(target).map_err(super::io(target))?;
    if replace {
        // The old database's journals would be replayed onto the restored one.
        for name in super::LIVE_DATABASE {
            let _ = std::fs::remove_file(target.join(name));
        }
    }
    let total: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    let mut done = 0u64;
    for entry in &manifest.files {
        let relative = safe_relative(&entry.path).ok_or_else(|| {
            BackupError::Manifest(manifest.id.clone(), format!("unsafe path {:?}", entry.path))
        })?;
        destination
            .fetch_object(entry, identity, &target.join(relative))
            .await?;
        done += entry.bytes;
        progress(done, total);
    }
    Ok(total)
}

/// pgBackRest restores the database into `pg.pg_data`, configured from the
/// destination alone.
async fn restore_postgres(
    destination: &Destination,
    identity: &age::x25519::Identity,
    label: &str,
    until: super::pg::PgUntil,
    pg: &PgRestore,
    data: &Path,
) -> Result<(), BackupError> {
    // The restored cluster fetches archived WAL through this configuration
    // (PostgreSQL's restore_command names it): it stays, in the node's
    // data directory.
    let tool = super::pg::rebuild(
        destination,
        identity,
        &data.join(super::pg::LOCAL_FOLDER),
        &pg.pg_data,
        pg.run_as.clone(),
    )
    .await?;
    tool.cluster_directory(&pg.pg_data)?;
    let (label, pg_data) = (label.to_owned(), pg.pg_data.clone());
    tokio::task::spawn_blocking(move || tool.restore(&pg_data, &label, until))
        .await
        .map_err(|e| BackupError::Remote(e.to_string()))?
}

/// A manifest path as a relative path inside the target: no `..`, no root.
fn safe_relative(path: &str) -> Option<std::path::PathBuf> {
    let parts: Vec<&str> = path.split('/').collect();
    let ok = !path.is_empty()
        && parts
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains('\\'));
    ok.then(|| parts.iter().collect())
}

/// What a verification proved.
#[derive(Debug, Clone)]
pub struct Proof {
    pub manifest: Manifest,
    pub entries: u64,
    /// Checkpoints whose roots the restored log reproduced.
    pub checkpoints: usize,
    /// Whose key signed the newest checkpoint.
    pub signed_by: String,
    pub seconds: f64,
}

/// Restores backup `id` into a scratch directory and proves it: SQLite's
/// integrity check, every stored checkpoint's root recomputed from the
/// restored entries, the backup's checkpoint among them and signed by the
/// ledger key (`trusted`, a verifier key, or else the restored key). The
/// outcome is recorded beside the manifest.
pub async fn verify(
    destination: &Destination,
    id: Option<&str>,
    identity: &age::x25519::Identity,
    trusted: Option<&str>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Proof, BackupError> {
    verify_with(destination, id, identity, trusted, None, progress).await
}

/// How a PostgreSQL backup is verified: its database restored to the end of
/// the backup and served by a throwaway server, reached with the node's
/// database URL (its user, password and database) on another port.
#[derive(Debug, Clone)]
pub struct PgVerify {
    pub database_url: String,
    pub run_as: Option<String>,
}

/// [`verify`], with how to verify a PostgreSQL backup.
pub async fn verify_with(
    destination: &Destination,
    id: Option<&str>,
    identity: &age::x25519::Identity,
    trusted: Option<&str>,
    pg: Option<&PgVerify>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Proof, BackupError> {
    let manifest = destination.manifest_or_latest(id).await?;
    let started = std::time::Instant::now();
    let outcome = match (&manifest.pgbackrest, pg) {
        (Some(label), Some(pg)) => {
            prove_postgres(
                destination,
                &manifest,
                label,
                identity,
                trusted,
                pg,
                progress,
            )
            .await
        }
        (Some(_), None) => Err(BackupError::Remote(format!(
            "backup {} is of a PostgreSQL database: verify it with --database-url",
            manifest.id
        ))),
        (None, _) => prove(destination, &manifest, identity, trusted, progress).await,
    };
    let now = nara_core::Timestamp::now();
    let verified = Verified {
        at: now.rfc3339(),
        at_ms: now.0,
        ok: outcome.is_ok(),
        detail: match &outcome {
            Ok((entries, checkpoints, signer)) => format!(
                "{entries} entries, {checkpoints} checkpoints reproduced, signed by {signer}"
            ),
            Err(e) => e.to_string(),
        },
    };
    destination
        .record_verification(&manifest.id, &verified)
        .await?;
    let (entries, checkpoints, signed_by) = outcome?;
    Ok(Proof {
        manifest,
        entries,
        checkpoints,
        signed_by,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn prove(
    destination: &Destination,
    manifest: &Manifest,
    identity: &age::x25519::Identity,
    trusted: Option<&str>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(u64, usize, String), BackupError> {
    let scratch =
        tempfile::tempdir().map_err(|e| BackupError::Remote(format!("scratch space: {e}")))?;
    restore(
        destination,
        Some(&manifest.id),
        Until::Latest,
        identity,
        scratch.path(),
        false,
        progress,
    )
    .await?;
    let url = format!("sqlite://{}", scratch.path().join("nara.db").display());
    let store = nara_store::Store::connect(&url).await?;
    let result = prove_store(&store, scratch.path(), manifest, trusted).await;
    store.close().await;
    result
}

async fn prove_postgres(
    destination: &Destination,
    manifest: &Manifest,
    label: &str,
    identity: &age::x25519::Identity,
    trusted: Option<&str>,
    pg: &PgVerify,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(u64, usize, String), BackupError> {
    let scratch =
        tempfile::tempdir().map_err(|e| BackupError::Remote(format!("scratch space: {e}")))?;
    let files = scratch.path().join("data");
    restore_files(destination, manifest, identity, &files, false, progress).await?;
    let pg_data = scratch.path().join("pg");
    let tool = super::pg::rebuild(
        destination,
        identity,
        &scratch.path().join("conf"),
        &pg_data,
        pg.run_as.clone(),
    )
    .await?;
    tool.cluster_directory(&pg_data)?;
    tool.hand_over(scratch.path())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| BackupError::Remote(format!("a port for the restored database: {e}")))?;
    let (tool2, data2, label2) = (tool.clone(), pg_data.clone(), label.to_owned());
    tokio::task::spawn_blocking(move || {
        tool2.restore(&data2, &label2, super::pg::PgUntil::EndOfBackup)?;
        tool2.start_scratch(&data2, port)
    })
    .await
    .map_err(|e| BackupError::Remote(e.to_string()))??;
    let result = async {
        let mut url = url::Url::parse(&pg.database_url)
            .map_err(|e| BackupError::Remote(format!("the database URL: {e}")))?;
        url.set_host(Some("127.0.0.1"))
            .and_then(|()| {
                url.set_port(Some(port))
                    .map_err(|()| url::ParseError::InvalidPort)
            })
            .map_err(|e| BackupError::Remote(format!("the database URL: {e}")))?;
        // The server answers while it still replays WAL (read-only); the
        // copy is ready once it has promoted itself.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let store = loop {
            match nara_store::Store::connect(url.as_str()).await {
                Ok(store) => break store,
                Err(e) if std::time::Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        };
        let proved = prove_store(&store, &files, manifest, trusted).await;
        store.close().await;
        proved
    }
    .await;
    tool.stop_scratch(&pg_data);
    result
}

async fn prove_store(
    store: &nara_store::Store,
    restored: &Path,
    manifest: &Manifest,
    trusted: Option<&str>,
) -> Result<(u64, usize, String), BackupError> {
    let integrity = store.integrity_check().await?;
    if integrity != "ok" {
        return Err(BackupError::Ledger(format!(
            "the restored database fails its integrity check: {integrity}"
        )));
    }
    let checkpoints = store.ledger_checkpoint_roots().await?;
    let wanted = manifest.ledger.size;
    let newest = checkpoints.last().map(|(size, _)| *size).unwrap_or(0);
    // A continuous backup's log may carry the ledger past the base's
    // checkpoint; a snapshot stops exactly there.
    if newest < wanted || (!manifest.continuous && newest != wanted) {
        return Err(BackupError::Ledger(format!(
            "the backup names checkpoint {wanted} but the restored log's newest is {newest}"
        )));
    }
    // Every checkpoint's root, recomputed from the restored entries.
    let mut acc = RootAccumulator::default();
    let mut pending = checkpoints.iter().peekable();
    let mut reproduced = 0usize;
    let mut base_root_seen =
        wanted == 0 && manifest.ledger.root == hex::encode(nara_ledger::merkle::empty_root());
    while let Some((_, root)) = pending.peek().filter(|(size, _)| *size == 0) {
        if *root != acc.root() {
            return Err(BackupError::Ledger(
                "the empty tree's checkpoint is wrong".into(),
            ));
        }
        pending.next();
        reproduced += 1;
    }
    const CHUNK: u64 = 10_000;
    while acc.size() < newest {
        let batch = store
            .ledger_entries(acc.size(), CHUNK.min(newest - acc.size()))
            .await?;
        if batch.is_empty() {
            return Err(BackupError::Ledger(format!(
                "the restored log ends at {} entries, before checkpoint {newest}",
                acc.size()
            )));
        }
        for (index, entry) in batch {
            if index != acc.size() {
                return Err(BackupError::Ledger(format!(
                    "entry {} is missing",
                    acc.size()
                )));
            }
            acc.push(nara_ledger::leaf_hash(&entry));
            if acc.size() == wanted {
                base_root_seen = hex::encode(acc.root()) == manifest.ledger.root;
            }
            while let Some((size, root)) = pending.peek().filter(|(size, _)| *size == acc.size()) {
                if acc.root() != *root {
                    return Err(BackupError::Ledger(format!(
                        "the restored entries do not reproduce checkpoint {size}'s root"
                    )));
                }
                pending.next();
                reproduced += 1;
            }
        }
    }
    if !base_root_seen {
        return Err(BackupError::Ledger(format!(
            "the restored log's root at {wanted} is not the backup's checkpoint root"
        )));
    }
    // The newest checkpoint's signature: by the trusted verifier key, or by
    // the restored ledger key.
    let Some(latest) = store.latest_checkpoint().await? else {
        return Ok((acc.size(), reproduced, "nobody (an empty ledger)".into()));
    };
    let verifier = match trusted {
        Some(vkey) => Verifier::from_vkey(vkey.trim())
            .map_err(|e| BackupError::Ledger(format!("the verifier key: {e}")))?,
        None => {
            let path = restored.join("ledger.key");
            let text = std::fs::read_to_string(&path).map_err(super::io(&path))?;
            Signer::from_skey(text.trim())
                .map_err(|e| BackupError::Ledger(format!("the restored ledger key: {e}")))?
                .verifier()
        }
    };
    let body = nara_ledger::note::open(&latest.note, std::slice::from_ref(&verifier))
        .map_err(|e| BackupError::Ledger(format!("the checkpoint's signature: {e}")))?;
    let checkpoint =
        nara_ledger::Checkpoint::parse(body).map_err(|e| BackupError::Ledger(e.to_string()))?;
    if checkpoint.size != newest || checkpoint.root != acc.root() {
        return Err(BackupError::Ledger(
            "the signed checkpoint does not name the restored log".into(),
        ));
    }
    Ok((acc.size(), reproduced, verifier.vkey()))
}
