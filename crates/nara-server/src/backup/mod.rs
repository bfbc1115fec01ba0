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

pub mod page;
pub mod restore;
pub mod schedule;
pub mod stream;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// A destination directory.
#[derive(Debug, Clone)]
pub struct Destination {
    root: PathBuf,
}

impl Destination {
    pub fn new(root: impl Into<PathBuf>) -> Destination {
        Destination { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn object_path(&self, object: &str) -> PathBuf {
        let prefix = object.get(..2).unwrap_or("00");
        self.root
            .join("objects")
            .join(prefix)
            .join(format!("{object}.age"))
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.root.join("backups").join(format!("{id}.json"))
    }

    fn stream_dir(&self, id: &str) -> PathBuf {
        self.root.join("streams").join(id)
    }

    fn verified_path(&self, id: &str) -> PathBuf {
        self.root
            .join("backups")
            .join(format!("{id}.verified.json"))
    }

    /// Every complete backup, oldest first, with its last verification.
    pub fn list(&self) -> Result<Vec<(Manifest, Option<Verified>)>, BackupError> {
        let dir = self.root.join("backups");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| {
                n.strip_suffix(".json")
                    .filter(|id| !id.ends_with(".verified"))
                    .map(str::to_owned)
            })
            .collect();
        let mut backups = ids
            .iter()
            .map(|id| Ok((self.manifest(id)?, self.verified(id))))
            .collect::<Result<Vec<_>, BackupError>>()?;
        // By when they were taken; the id breaks a tie.
        backups.sort_by(|(a, _), (b, _)| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(backups)
    }

    /// The backup `id`, or the newest.
    pub fn manifest_or_latest(&self, id: Option<&str>) -> Result<Manifest, BackupError> {
        match id {
            Some(id) => self.manifest(id),
            None => self
                .list()?
                .pop()
                .map(|(m, _)| m)
                .ok_or(BackupError::NoBackups),
        }
    }

    pub fn manifest(&self, id: &str) -> Result<Manifest, BackupError> {
        let safe = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'T' || b == b'Z');
        if !safe {
            return Err(BackupError::NoSuchBackup(id.to_owned()));
        }
        let path = self.manifest_path(id);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::NoSuchBackup(id.to_owned()));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| BackupError::Manifest(id.to_owned(), e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(BackupError::Manifest(
                id.to_owned(),
                format!("format {} is not {FORMAT}", manifest.format),
            ));
        }
        Ok(manifest)
    }

    pub fn verified(&self, id: &str) -> Option<Verified> {
        let text = std::fs::read_to_string(self.verified_path(id)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn record_verification(&self, id: &str, verified: &Verified) -> Result<(), BackupError> {
        let json = serde_json::to_vec_pretty(verified)
            .map_err(|e| BackupError::Manifest(id.to_owned(), e.to_string()))?;
        write_atomically(&self.verified_path(id), &json)
    }

    /// The newest backup and the newest successful verification, for the
    /// operators' page and `/metrics`.
    pub fn status(&self) -> Status {
        let backups = self.list().unwrap_or_default();
        Status {
            backups: backups.len(),
            last_backup_ms: backups.last().map(|(m, _)| m.created_ms),
            last_verified_ms: backups
                .iter()
                .filter_map(|(_, v)| v.as_ref().filter(|v| v.ok).map(|v| v.at_ms))
                .max(),
            last_verification_failed: backups
                .iter()
                .filter_map(|(_, v)| v.as_ref())
                .max_by_key(|v| v.at_ms)
                .is_some_and(|v| !v.ok),
        }
    }

    /// Removes the backups `retention` does not keep, then the objects no
    /// kept backup names (only those older than an hour: a backup being
    /// taken writes its objects before its manifest). Never removes the
    /// newest backup or the newest verified one.
    pub fn prune(&self, retention: &Retention) -> Result<Pruned, BackupError> {
        let backups = self.list()?;
        let now = nara_core::Timestamp::now().0;
        let keep = retention.keep(&backups, now);
        let mut pruned = Pruned::default();
        let mut referenced = std::collections::HashSet::new();
        for ((manifest, _), kept) in backups.iter().zip(&keep) {
            if *kept {
                referenced.extend(manifest.files.iter().map(|f| f.object.clone()));
            } else {
                for path in [
                    self.manifest_path(&manifest.id),
                    self.verified_path(&manifest.id),
                ] {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(&path)(e)),
                    }
                }
                let stream = self.stream_dir(&manifest.id);
                match std::fs::remove_dir_all(&stream) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&stream)(e)),
                }
                pruned.backups += 1;
            }
        }
        let objects = self.root.join("objects");
        let Ok(prefixes) = std::fs::read_dir(&objects) else {
            return Ok(pruned);
        };
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for prefix in prefixes.filter_map(Result::ok) {
            let Ok(files) = std::fs::read_dir(prefix.path()) else {
                continue;
            };
            for file in files.filter_map(Result::ok) {
                let name = file.file_name().to_string_lossy().into_owned();
                let Some(object) = name.strip_suffix(".age") else {
                    continue;
                };
                let old = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < hour_ago);
                if !referenced.contains(object) && old {
                    std::fs::remove_file(file.path()).map_err(io(&file.path()))?;
                    pruned.objects += 1;
                }
            }
        }
        Ok(pruned)
    }

    /// Removes what interrupted backups left behind — their scratch
    /// snapshots and partial objects — once older than `age` (a backup still
    /// running beside this one keeps its own).
    pub fn remove_leftovers(&self, age: std::time::Duration) {
        let Some(cutoff) = std::time::SystemTime::now().checked_sub(age) else {
            return;
        };
        let old = |path: &Path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff)
        };
        if let Ok(dirs) = std::fs::read_dir(self.root.join("tmp")) {
            for dir in dirs.filter_map(Result::ok).map(|d| d.path()) {
                if old(&dir) {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        if let Ok(prefixes) = std::fs::read_dir(self.root.join("objects")) {
            for prefix in prefixes.filter_map(Result::ok) {
                let Ok(files) = std::fs::read_dir(prefix.path()) else {
                    continue;
                };
                for file in files.filter_map(Result::ok).map(|f| f.path()) {
                    let partial = file.extension().is_some_and(|e| e == "partial");
                    if partial && old(&file) {
                        let _ = std::fs::remove_file(&file);
                    }
                }
            }
        }
    }

    /// Stores `plaintext_file` as an object unless one with its content is
    /// there; returns (object name, bytes, whether it was new).
    fn store_object(
        &self,
        plaintext_file: &Path,
        recipient: &age::x25519::Recipient,
    ) -> Result<(String, u64, bool), BackupError> {
        let (object, bytes) = hash_file(plaintext_file)?;
        let target = self.object_path(&object);
        if target.exists() {
            return Ok((object, bytes, false));
        }
        let parent = target.parent().unwrap_or(&self.root).to_owned();
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let partial = target.with_extension("age.partial");
        {
            let out = std::fs::File::create(&partial).map_err(io(&partial))?;
            let encryptor =
                age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
                    .map_err(|e| BackupError::Encrypt(object.clone(), e.to_string()))?;
            let mut writer = encryptor
                .wrap_output(std::io::BufWriter::new(out))
                .map_err(io(&partial))?;
            let mut input = std::fs::File::open(plaintext_file).map_err(io(plaintext_file))?;
            std::io::copy(&mut input, &mut writer).map_err(io(&partial))?;
            let buffered = writer.finish().map_err(io(&partial))?;
            let file = buffered
                .into_inner()
                .map_err(|e| io(&partial)(e.into_error()))?;
            file.sync_all().map_err(io(&partial))?;
        }
        std::fs::rename(&partial, &target).map_err(io(&target))?;
        Ok((object, bytes, true))
    }

    /// Decrypts an object into `target` (beside it, then renamed), checking
    /// that its content is what its name says.
    fn fetch_object(
        &self,
        entry: &FileEntry,
        identity: &age::x25519::Identity,
        target: &Path,
    ) -> Result<(), BackupError> {
        let source = self.object_path(&entry.object);
        let file = match std::fs::File::open(&source) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::Missing {
                    object: entry.object.clone(),
                    path: entry.path.clone(),
                });
            }
            Err(e) => return Err(io(&source)(e)),
        };
        let undecryptable = |why: String| BackupError::Decrypt {
            object: entry.object.clone(),
            path: entry.path.clone(),
            why,
        };
        let decryptor = age::Decryptor::new(std::io::BufReader::new(file))
            .map_err(|e| undecryptable(e.to_string()))?;
        let mut reader = decryptor
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .map_err(|e| undecryptable(e.to_string()))?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let partial = target.with_extension("restore-partial");
        let mut hasher = Sha256::new();
        {
            let mut out = std::fs::File::create(&partial).map_err(io(&partial))?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(|e| undecryptable(e.to_string()))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io(&partial))?;
            }
            out.sync_all().map_err(io(&partial))?;
        }
        if hex::encode(hasher.finalize()) != entry.object {
            let _ = std::fs::remove_file(&partial);
            return Err(BackupError::Damaged {
                object: entry.object.clone(),
                path: entry.path.clone(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600));
        }
        std::fs::rename(&partial, target).map_err(io(target))
    }
}

/// SHA-256 and length of a file, read in blocks.
fn hash_file(path: &Path) -> Result<(String, u64), BackupError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// Writes `bytes` to `path` through a synced neighbour and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let partial = path.with_extension("partial");
    {
        let mut f = std::fs::File::create(&partial).map_err(io(&partial))?;
        f.write_all(bytes).map_err(io(&partial))?;
        f.sync_all().map_err(io(&partial))?;
    }
    std::fs::rename(&partial, path).map_err(io(path))
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
                stack.push(path);
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
    let scratch = destination.scratch(&id)?;
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
                .store(data_dir, destination, recipient, progress)
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
        recipient: &age::x25519::Recipient,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Taken, BackupError> {
        // The snapshot first: the files beside it are at least as new, and
        // the ledger point is read from the snapshot itself, without writing
        // to it.
        let ledger = match checkpoint_in(self.snapshot).await? {
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
        };
        let mut sources: Vec<(String, PathBuf)> =
            vec![("nara.db".into(), self.snapshot.to_owned())];
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
            let (object, bytes, fresh) = destination.store_object(path, recipient)?;
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
        let manifest = Manifest {
            format: FORMAT,
            id: self.id.to_owned(),
            created_at: now.rfc3339(),
            created_ms: now.0,
            backend: "sqlite".into(),
            continuous: self.continuous,
            log: self.log,
            ledger,
            files,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BackupError::Manifest(self.id.to_owned(), e.to_string()))?;
        write_atomically(&destination.manifest_path(self.id), &json)?;
        Ok(Taken {
            manifest,
            new_objects,
            new_bytes,
            reused_objects,
        })
    }
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

impl Destination {
    /// A scratch directory for backup `id` inside the destination (so a
    /// snapshot is as big as the destination allows, not the node's disk),
    /// after removing what interrupted backups left there.
    fn scratch(&self, id: &str) -> Result<PathBuf, BackupError> {
        self.remove_leftovers(std::time::Duration::from_secs(3600));
        let scratch = self.root.join("tmp").join(id);
        std::fs::create_dir_all(&scratch).map_err(io(&scratch))?;
        Ok(scratch)
    }
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
