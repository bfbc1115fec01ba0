//! Backups of a node: a consistent snapshot of the database taken while it
//! serves, every file of the data directory (the node's secrets, uploads),
//! each encrypted with age to a recipient whose private key is kept apart
//! from the backups, stored content-addressed in a destination so unchanged
//! files (uploads, keys) are stored once. A backup is a manifest naming its
//! objects and the newest ledger checkpoint it holds; [`restore`] proves a
//! restore complete by the ledger ([`restore::verify`]).
//!
//! Layout of a destination (a directory: another disk, a mount):
//!
//! ```text
//! objects/ab/ab12….age     one object per distinct file content (SHA-256 of the plaintext)
//! backups/ID.json          a manifest, written last: a backup exists once it is complete
//! backups/ID.verified.json what the last verification of that backup found
//! streams/ID/SEQ-MS.age    the log shipped after backup ID, in order (see [`stream`])
//! ```
//!
//! Every file is written beside its place and renamed into it after an
//! fsync, so an interrupted backup leaves no manifest naming a missing
//! object, and the next run starts clean.

mod destination;
pub mod page;
pub mod pg;
pub mod restore;
pub mod schedule;
pub mod stream;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use destination::Destination;

/// The manifest format this code writes and reads.
const FORMAT: u32 = 1;

/// Files of a data directory that are never copied as they are: the live
/// database (the snapshot stands for it) and its journals.
const LIVE_DATABASE: &[&str] = &["nara.db", "nara.db-wal", "nara.db-shm", "nara.db-journal"];

/// Why a backup, a restore or a verification failed; each names what.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the backup key: {0}")]
    Key(String),
    #[error("encrypting {0}: {1}")]
    Encrypt(String, String),
    #[error("object {object} (for {path}) does not decrypt with this key, or is damaged: {why}")]
    Decrypt {
        object: String,
        path: String,
        why: String,
    },
    #[error("object {object} (for {path}) is damaged: its content does not match its name")]
    Damaged { object: String, path: String },
    #[error("object {object} (for {path}) is missing from the destination")]
    Missing { object: String, path: String },
    #[error("manifest {0}: {1}")]
    Manifest(String, String),
    #[error("no backup {0} in the destination")]
    NoSuchBackup(String),
    #[error("the destination has no backup yet")]
    NoBackups,
    #[error("{0} is not empty: restore into an empty directory, or pass --replace")]
    TargetNotEmpty(PathBuf),
    #[error("the database: {0}")]
    Store(#[from] nara_store::StoreError),
    #[error("the destination: {0}")]
    Remote(String),
    #[error("the ledger does not prove this backup: {0}")]
    Ledger(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

// ------------------------------------------------------------------- keys

/// Makes a backup key (an age X25519 identity) at `path`, mode 0600,
/// refusing to overwrite one; returns its public recipient (`age1…`), which
/// is all that taking a backup needs.
pub fn keygen(path: &Path) -> Result<String, BackupError> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = format!(
        "# nara backup key: restores need it; keep a copy apart from the backups.\n# public key: {recipient}\n{}\n",
        secrecy::ExposeSecret::expose_secret(&identity.to_string())
    );
    crate::keyfile::write_private(path, &text).map_err(|e| BackupError::Key(e.to_string()))?;
    Ok(recipient)
}

/// Reads a backup key file (comments allowed), as written by [`keygen`].
pub fn read_identity(path: &Path) -> Result<age::x25519::Identity, BackupError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| {
            BackupError::Key(format!("{} holds no AGE-SECRET-KEY line", path.display()))
        })?
        .parse::<age::x25519::Identity>()
        .map_err(|e| BackupError::Key(format!("{}: {e}", path.display())))
}

/// A recipient, `age1…`, or the public half of a key file.
pub fn read_recipient(text_or_path: &str) -> Result<age::x25519::Recipient, BackupError> {
    if text_or_path.starts_with("age1") {
        return text_or_path
            .parse::<age::x25519::Recipient>()
            .map_err(|e| BackupError::Key(e.to_string()));
    }
    Ok(read_identity(Path::new(text_or_path))?.to_public())
}

// -------------------------------------------------------------- manifests

/// What one backup holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `YYYYMMDDTHHMMSSZ-xxxxxxxx`: sorts by time.
    pub id: String,
    pub created_at: String,
    /// The same moment, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// `sqlite` (PostgreSQL is backed up by pgBackRest).
    pub backend: String,
    /// The database file is the node's own at a log position, and the log
    /// after it is shipped to `streams/ID/` ([`stream`]); otherwise a
    /// compacted snapshot that stands alone.
    #[serde(default)]
    pub continuous: bool,
    /// Where in the node's log the database file stands (continuous only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<nara_store::wal::WalPosition>,
    /// The pgBackRest backup holding the database (PostgreSQL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgbackrest: Option<String>,
    /// The newest checkpoint in the snapshot: a restore must reproduce it.
    pub ledger: LedgerPoint,
    pub files: Vec<FileEntry>,
}

/// A ledger checkpoint as a backup records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerPoint {
    pub size: u64,
    /// Hex SHA-256 root.
    pub root: String,
    /// The signed note, as the node published it.
    pub checkpoint: String,
}

/// One file of the data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the data directory, `/`-separated.
    pub path: String,
    /// Hex SHA-256 of the plaintext: the object's name.
    pub object: String,
    pub bytes: u64,
}

/// What the last verification of a backup found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub at: String,
    pub at_ms: i64,
    pub ok: bool,
    pub detail: String,
}

/// A destination's state at a glance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub backups: usize,
    pub last_backup_ms: Option<i64>,
    pub last_verified_ms: Option<i64>,
    /// The most recent verification failed.
    pub last_verification_failed: bool,
}

/// Which backups to keep: every one of the last `recent_hours`, then the
/// newest of each day for `daily_days`; always the newest, and the newest
/// that was verified.
#[derive(Debug, Clone)]
pub struct Retention {
    pub recent_hours: i64,
    pub daily_days: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            recent_hours: 48,
            daily_days: 35,
        }
    }
}

impl Retention {
    /// For each backup (oldest first), whether it is kept at `now_ms`.
    pub fn keep(&self, backups: &[(Manifest, Option<Verified>)], now_ms: i64) -> Vec<bool> {
        const HOUR: i64 = 3_600_000;
        const DAY: i64 = 24 * HOUR;
        let mut keep: Vec<bool> = backups
            .iter()
            .map(|(m, _)| now_ms - m.created_ms <= self.recent_hours * HOUR)
            .collect();
        // The newest of each day within the daily window.
        let mut newest_of_day = std::collections::HashMap::new();
        for (i, (m, _)) in backups.iter().enumerate() {
            if now_ms - m.created_ms <= self.daily_days * DAY {
                newest_of_day.insert(m.created_ms.div_euclid(DAY), i);
            }
        }
        for i in newest_of_day.into_values() {
            keep[i] = true;
        }
        if let Some(last) = keep.last_mut() {
            *last = true;
        }
        if let Some(i) = backups
            .iter()
            .rposition(|(_, v)| v.as_ref().is_some_and(|v| v.ok))
        {
            keep[i] = true;
        }
        keep
    }
}

/// What pruning removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub backups: usize,
    pub objects: usize,
}

/// The data directory's files to back up, relative, sorted: everything but
/// the live database, partial files and the backup key.
fn data_files(data_dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let dir = data_dir.join(&relative);
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = relative.join(&name);
            let kind = entry.file_type().map_err(io(&entry.path()))?;
            if kind.is_dir() {
                // A restored PostgreSQL node's pgBackRest folder is rebuilt, not kept.
                if !(relative.as_os_str().is_empty() && name == pg::LOCAL_FOLDER) {
                    stack.push(path);
                }
            } else if kind.is_file()
                && !(relative.as_os_str().is_empty() && LIVE_DATABASE.contains(&name.as_str()))
                && !name.ends_with(".partial")
                && name != "backup.key"
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What taking a backup did.
#[derive(Debug, Clone)]
pub struct Taken {
    pub manifest: Manifest,
    /// Objects written now, and their plaintext bytes.
    pub new_objects: usize,
    pub new_bytes: u64,
    /// Objects already in the destination (unchanged files).
    pub reused_objects: usize,
}

/// A new backup id: UTC time to the millisecond (so ids sort as backups
/// were taken) and 8 random hex digits.
fn new_id() -> String {
    let now = nara_core::Timestamp::now().rfc3339();
    // 2026-12-01T18:40:00.123Z → 20261201T184000123Z
    let compact: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("{compact}-{:08x}", rand::random::<u32>())
}

/// Takes a backup of the node whose database is `store` and whose files are
/// in `data_dir`, into `destination`, encrypted to `recipient`: a compacted
/// snapshot that stands alone. `progress(done, total)` is called as files
/// are stored.
pub async fn take(
    store: &nara_store::Store,
    data_dir: &Path,
    destination: &Destination,
    recipient: &age::x25519::Recipient,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Taken, BackupError> {
    let id = new_id();
    let scratch = destination.staging(&id)?;
    let snapshot = scratch.join("nara.db");
    let result = match store.snapshot_into(&snapshot).await {
        Ok(()) => {
            let taken = Taking {
                id: &id,
                snapshot: &snapshot,
                continuous: false,
                log: None,
            };
            taken
                .store(data_dir, destination, &scratch, recipient, progress)
                .await
        }
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// A backup being stored: its id and the database file that stands for
/// the live one.
struct Taking<'a> {
    id: &'a str,
    snapshot: &'a Path,
    continuous: bool,
    log: Option<nara_store::wal::WalPosition>,
}

impl Taking<'_> {
    async fn store(
        &self,
        data_dir: &Path,
        destination: &Destination,
        staging: &Path,
        recipient: &age::x25519::Recipient,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Taken, BackupError> {
        // The snapshot first: the files beside it are at least as new, and
        // the ledger point is read from the snapshot itself, without writing
        // to it.
        let ledger = ledger_point(checkpoint_in(self.snapshot).await?);
        let (continuous, log) = (self.continuous, self.log);
        store_files(
            self.id,
            Some(self.snapshot),
            data_dir,
            destination,
            staging,
            recipient,
            progress,
            |m: &mut Manifest| {
                m.ledger = ledger;
                m.continuous = continuous;
                m.log = log;
            },
        )
        .await
    }
}

/// A checkpoint as a backup records it (the empty tree's when none).
fn ledger_point(checkpoint: Option<nara_store::ledger::StoredCheckpoint>) -> LedgerPoint {
    match checkpoint {
        Some(c) => LedgerPoint {
            size: c.size,
            root: hex::encode(c.root),
            checkpoint: c.note,
        },
        None => LedgerPoint {
            size: 0,
            root: hex::encode(nara_ledger::merkle::empty_root()),
            checkpoint: String::new(),
        },
    }
}

/// Stores the database file `snapshot` (SQLite) and every file of
/// `data_dir` as objects, then the manifest `complete` finishes: written
/// last, so a backup exists once it is whole.
#[allow(clippy::too_many_arguments)]
async fn store_files(
    id: &str,
    snapshot: Option<&Path>,
    data_dir: &Path,
    destination: &Destination,
    staging: &Path,
    recipient: &age::x25519::Recipient,
    progress: &(dyn Fn(u64, u64) + Sync),
    complete: impl FnOnce(&mut Manifest),
) -> Result<Taken, BackupError> {
    let mut sources: Vec<(String, PathBuf)> = snapshot
        .map(|s| ("nara.db".to_owned(), s.to_owned()))
        .into_iter()
        .collect();
    for relative in data_files(data_dir)? {
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        sources.push((name, data_dir.join(relative)));
    }
    let total: u64 = sources
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let (mut done, mut new_objects, mut new_bytes, mut reused_objects) = (0u64, 0, 0u64, 0);
    let mut files = Vec::with_capacity(sources.len());
    for (name, path) in &sources {
        let (object, bytes, fresh) = destination.store_object(path, staging, recipient).await?;
        if fresh {
            new_objects += 1;
            new_bytes += bytes;
        } else {
            reused_objects += 1;
        }
        done += bytes;
        progress(done.min(total), total);
        files.push(FileEntry {
            path: name.clone(),
            object,
            bytes,
        });
    }
    let now = nara_core::Timestamp::now();
    let mut manifest = Manifest {
        format: FORMAT,
        id: id.to_owned(),
        created_at: now.rfc3339(),
        created_ms: now.0,
        backend: "sqlite".into(),
        continuous: false,
        log: None,
        pgbackrest: None,
        ledger: ledger_point(None),
        files,
    };
    complete(&mut manifest);
    destination.write_manifest(&manifest).await?;
    Ok(Taken {
        manifest,
        new_objects,
        new_bytes,
        reused_objects,
    })
}

/// The newest ledger checkpoint in a database file at rest.
async fn checkpoint_in(
    db: &Path,
) -> Result<Option<nara_store::ledger::StoredCheckpoint>, BackupError> {
    // Opened without migrating: reading it writes nothing to the file.
    let copy = nara_store::Store::open(&format!("sqlite://{}", db.display())).await?;
    let checkpoint = copy.latest_checkpoint().await;
    copy.close().await;
    Ok(checkpoint?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn backup(created_ms: i64, verified: Option<bool>) -> (Manifest, Option<Verified>) {
        let manifest = Manifest {
            format: FORMAT,
            id: format!("b{created_ms}"),
            created_at: String::new(),
            created_ms,
            backend: "sqlite".into(),
            continuous: false,
            log: None,
            pgbackrest: None,
            ledger: LedgerPoint {
                size: 0,
                root: String::new(),
                checkpoint: String::new(),
            },
            files: Vec::new(),
        };
        let verified = verified.map(|ok| Verified {
            at: String::new(),
            at_ms: created_ms + 1,
            ok,
            detail: String::new(),
        });
        (manifest, verified)
    }

    #[test]
    fn retention_keeps_recent_daily_newest_and_last_verified() {
        let now = 100 * 24 * HOUR;
        // Hourly backups over 60 days, one verified 50 days ago, the newest never.
        let backups: Vec<_> = (0..60 * 24)
            .map(|h| {
                let at = now - (60 * 24 - h) * HOUR;
                backup(at, (at == now - 50 * 24 * HOUR).then_some(true))
            })
            .collect();
        let keep = Retention::default().keep(&backups, now);
        let kept: Vec<i64> = backups
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(b, _)| b.0.created_ms)
            .collect();
        assert!(keep.last().copied().unwrap_or(false), "the newest is kept");
        assert!(
            kept.contains(&(now - 50 * 24 * HOUR)),
            "the last verified is kept, however old"
        );
        let recent = kept.iter().filter(|at| now - **at <= 48 * HOUR).count();
        assert_eq!(recent, 48, "every backup of the last 48 hours");
        let older = kept.iter().filter(|at| now - **at > 48 * HOUR).count();
        assert!(
            (33..=36).contains(&older),
            "one a day for 35 days, and the verified one: {older}"
        );
        assert!(kept.len() < backups.len() / 10);
    }
}
