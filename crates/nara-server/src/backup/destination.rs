//! Where backups go: a directory (another disk, a mount) or S3-compatible
//! object storage (`s3://bucket/prefix`, through the Apache Arrow project's
//! `object_store`, configured from the standard `AWS_*` variables —
//! `AWS_ENDPOINT_URL` for a store other than Amazon's). Both hold the same
//! keys:
//!
//! ```text
//! objects/ab/ab12….age     one object per distinct file content (SHA-256 of the plaintext)
//! backups/ID.json          a manifest, written last: a backup exists once it is complete
//! backups/ID.verified.json what the last verification of that backup found
//! streams/ID/SEQ-MS.age    the log shipped after backup ID, in order (see [`super::stream`])
//! ```
//!
//! A directory's files are written beside their place, synced and renamed
//! into it; an S3 object appears whole or not at all. So an interrupted
//! backup never leaves a manifest naming a missing object.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};

use super::{BackupError, FORMAT, FileEntry, Manifest, Pruned, Retention, Status, Verified, io};

/// A backup destination.
#[derive(Clone)]
pub struct Destination {
    place: Place,
    /// As the operator wrote it, for messages and pages.
    shown: String,
}

#[derive(Clone)]
enum Place {
    Dir(PathBuf),
    S3 {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("at", &self.shown)
            .finish()
    }
}

/// A listed key and when it was last written.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub key: String,
    pub modified: std::time::SystemTime,
}

/// An object's bytes on local disk, to decrypt: the directory's own file,
/// or a download removed when dropped.
pub(super) enum Local {
    Borrowed(PathBuf),
    Downloaded(tempfile::TempPath),
}

impl Local {
    fn path(&self) -> &Path {
        match self {
            Local::Borrowed(p) => p,
            Local::Downloaded(t) => t,
        }
    }
}

fn remote(e: object_store::Error) -> BackupError {
    BackupError::Remote(e.to_string())
}

impl Destination {
    /// A directory destination.
    pub fn new(root: impl Into<PathBuf>) -> Destination {
        let root = root.into();
        Destination {
            shown: root.display().to_string(),
            place: Place::Dir(root),
        }
    }

    /// `s3://bucket/prefix` (credentials, region and endpoint from the
    /// `AWS_*` variables), or else a directory.
    pub fn open(text: &str) -> Result<Destination, BackupError> {
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(Destination::new(text));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BackupError::Remote(format!("{text}: no bucket named")));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        // A plain-HTTP endpoint (a store on loopback, in tests) must be allowed
        // explicitly; path-style requests are what most S3-compatible stores speak.
        if std::env::var("AWS_ENDPOINT_URL").is_ok_and(|u| u.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        if std::env::var("AWS_ENDPOINT_URL").is_ok() {
            builder = builder.with_virtual_hosted_style_request(false);
        }
        // A destination that is away is reported within half a minute, not
        // after the client's default three minutes of retries.
        let store = builder
            .with_retry(object_store::RetryConfig {
                max_retries: 4,
                retry_timeout: std::time::Duration::from_secs(30),
                ..Default::default()
            })
            .build()
            .map_err(remote)?;
        Ok(Destination {
            place: Place::S3 {
                store: Arc::new(store),
                prefix: prefix.trim_matches('/').to_owned(),
            },
            shown: text.to_owned(),
        })
    }

    /// Where it is, as the operator wrote it.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The directory, if it is one.
    pub fn dir(&self) -> Option<&Path> {
        match &self.place {
            Place::Dir(root) => Some(root),
            Place::S3 { .. } => None,
        }
    }

    fn s3_path(prefix: &str, key: &str) -> object_store::path::Path {
        if prefix.is_empty() {
            object_store::path::Path::from(key)
        } else {
            object_store::path::Path::from(format!("{prefix}/{key}"))
        }
    }

    fn file(root: &Path, key: &str) -> PathBuf {
        key.split('/').fold(root.to_owned(), |p, part| p.join(part))
    }

    /// Where `key` is stored, if the destination is a directory.
    pub(super) fn local_file(&self, key: &str) -> Option<PathBuf> {
        match &self.place {
            Place::Dir(root) => Some(Self::file(root, key)),
            Place::S3 { .. } => None,
        }
    }

    // ------------------------------------------------------ the storage

    /// Stores `bytes` at `key`, whole or not at all.
    pub(super) async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
        match &self.place {
            Place::Dir(root) => {
                let path = Self::file(root, key);
                tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
                    .await
                    .map_err(|e| BackupError::Remote(e.to_string()))?
            }
            Place::S3 { store, prefix } => store
                .put(&Self::s3_path(prefix, key), bytes.into())
                .await
                .map(|_| ())
                .map_err(remote),
        }
    }

    /// Stores the file `staged` (made in [`Destination::staging`]) at
    /// `key`, and removes it.
    async fn put_staged(&self, key: &str, staged: &Path) -> Result<(), BackupError> {
        match &self.place {
            Place::Dir(root) => {
                let target = Self::file(root, key);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                std::fs::rename(staged, &target).map_err(io(&target))
            }
            Place::S3 { store, prefix } => {
                let path = Self::s3_path(prefix, key);
                let mut upload = object_store::WriteMultipart::new(
                    store.put_multipart(&path).await.map_err(remote)?,
                );
                let mut file = std::fs::File::open(staged).map_err(io(staged))?;
                let mut buf = vec![0u8; 8 * 1024 * 1024];
                loop {
                    let n = file.read(&mut buf).map_err(io(staged))?;
                    if n == 0 {
                        break;
                    }
                    upload.wait_for_capacity(4).await.map_err(remote)?;
                    upload.write(&buf[..n]);
                }
                upload.finish().await.map_err(remote)?;
                let _ = std::fs::remove_file(staged);
                Ok(())
            }
        }
    }

    /// The bytes at `key`, or `None` if there is nothing there.
    pub(super) async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, BackupError> {
        match &self.place {
            Place::Dir(root) => {
                let path = Self::file(root, key);
                match std::fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(&path)(e)),
                }
            }
            Place::S3 { store, prefix } => match store.get(&Self::s3_path(prefix, key)).await {
                Ok(got) => Ok(Some(got.bytes().await.map_err(remote)?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(remote(e)),
            },
        }
    }

    /// The object at `key` as a local file, or `None`.
    pub(super) async fn local(&self, key: &str) -> Result<Option<Local>, BackupError> {
        match &self.place {
            Place::Dir(root) => {
                let path = Self::file(root, key);
                Ok(path.exists().then_some(Local::Borrowed(path)))
            }
            Place::S3 { store, prefix } => {
                let got = match store.get(&Self::s3_path(prefix, key)).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(remote(e)),
                };
                let temp = tempfile::NamedTempFile::new()
                    .map_err(|e| BackupError::Remote(e.to_string()))?;
                let (mut file, path) = temp.into_parts();
                let mut chunks = got.into_stream();
                while let Some(chunk) = chunks.next().await {
                    file.write_all(&chunk.map_err(remote)?).map_err(io(&path))?;
                }
                Ok(Some(Local::Downloaded(path)))
            }
        }
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, BackupError> {
        match &self.place {
            Place::Dir(root) => Ok(Self::file(root, key).exists()),
            Place::S3 { store, prefix } => match store.head(&Self::s3_path(prefix, key)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(remote(e)),
            },
        }
    }

    /// Every key under `prefix` (a folder: `backups`, `streams/ID`).
    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<Listed>, BackupError> {
        match &self.place {
            Place::Dir(root) => {
                let mut out = Vec::new();
                let mut stack = vec![prefix.to_owned()];
                while let Some(folder) = stack.pop() {
                    let dir = Self::file(root, &folder);
                    let entries = match std::fs::read_dir(&dir) {
                        Ok(e) => e,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io(&dir)(e)),
                    };
                    for entry in entries.filter_map(Result::ok) {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        let key = format!("{folder}/{name}");
                        match entry.file_type() {
                            Ok(t) if t.is_dir() => stack.push(key),
                            Ok(_) => out.push(Listed {
                                key,
                                modified: entry
                                    .metadata()
                                    .and_then(|m| m.modified())
                                    .unwrap_or(std::time::UNIX_EPOCH),
                            }),
                            Err(_) => {}
                        }
                    }
                }
                Ok(out)
            }
            Place::S3 {
                store,
                prefix: base,
            } => {
                let path = Self::s3_path(base, prefix);
                let mut listing = store.list(Some(&path));
                let mut out = Vec::new();
                let strip = if base.is_empty() {
                    String::new()
                } else {
                    format!("{base}/")
                };
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(remote)?;
                    let key = meta.location.to_string();
                    out.push(Listed {
                        key: key.strip_prefix(&strip).unwrap_or(&key).to_owned(),
                        modified: meta.last_modified.into(),
                    });
                }
                Ok(out)
            }
        }
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), BackupError> {
        match &self.place {
            Place::Dir(root) => {
                let path = Self::file(root, key);
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io(&path)(e)),
                }
            }
            Place::S3 { store, prefix } => match store.delete(&Self::s3_path(prefix, key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(remote(e)),
            },
        }
    }

    /// Local scratch space for backup `id`: inside a directory destination
    /// (so a snapshot is as big as the destination allows and a staged
    /// object is renamed into place), in the system's temporary directory
    /// for object storage. What interrupted backups left is removed first.
    pub(super) fn staging(&self, id: &str) -> Result<PathBuf, BackupError> {
        let scratch = match &self.place {
            Place::Dir(root) => {
                self.remove_leftovers(std::time::Duration::from_secs(3600));
                root.join("tmp").join(id)
            }
            Place::S3 { .. } => std::env::temp_dir().join(format!("nara-backup-{id}")),
        };
        std::fs::create_dir_all(&scratch).map_err(io(&scratch))?;
        Ok(scratch)
    }

    // ---------------------------------------------------- backups in it

    fn object_key(object: &str) -> String {
        let prefix = object.get(..2).unwrap_or("00");
        format!("objects/{prefix}/{object}.age")
    }

    fn manifest_key(id: &str) -> String {
        format!("backups/{id}.json")
    }

    fn verified_key(id: &str) -> String {
        format!("backups/{id}.verified.json")
    }

    pub(super) fn stream_key(id: &str) -> String {
        format!("streams/{id}")
    }

    /// Every complete backup, oldest first, with its last verification.
    pub async fn list_backups(&self) -> Result<Vec<(Manifest, Option<Verified>)>, BackupError> {
        let ids: Vec<String> = self
            .list("backups")
            .await?
            .into_iter()
            .filter_map(|l| {
                let name = l.key.rsplit('/').next()?.to_owned();
                name.strip_suffix(".json")
                    .filter(|id| !id.ends_with(".verified"))
                    .map(str::to_owned)
            })
            .collect();
        let mut backups = Vec::with_capacity(ids.len());
        for id in &ids {
            backups.push((self.manifest(id).await?, self.verified(id).await));
        }
        // By when they were taken; the id breaks a tie.
        backups.sort_by(|(a, _), (b, _)| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(backups)
    }

    /// The backup `id`, or the newest.
    pub async fn manifest_or_latest(&self, id: Option<&str>) -> Result<Manifest, BackupError> {
        match id {
            Some(id) => self.manifest(id).await,
            None => self
                .list_backups()
                .await?
                .pop()
                .map(|(m, _)| m)
                .ok_or(BackupError::NoBackups),
        }
    }

    pub async fn manifest(&self, id: &str) -> Result<Manifest, BackupError> {
        let safe = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'T' || b == b'Z');
        if !safe {
            return Err(BackupError::NoSuchBackup(id.to_owned()));
        }
        let Some(bytes) = self.get_bytes(&Self::manifest_key(id)).await? else {
            return Err(BackupError::NoSuchBackup(id.to_owned()));
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| BackupError::Manifest(id.to_owned(), e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(BackupError::Manifest(
                id.to_owned(),
                format!("format {} is not {FORMAT}", manifest.format),
            ));
        }
        Ok(manifest)
    }

    pub(super) async fn write_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let json = serde_json::to_vec_pretty(manifest)
            .map_err(|e| BackupError::Manifest(manifest.id.clone(), e.to_string()))?;
        self.put_bytes(&Self::manifest_key(&manifest.id), json)
            .await
    }

    pub async fn verified(&self, id: &str) -> Option<Verified> {
        let bytes = self.get_bytes(&Self::verified_key(id)).await.ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    pub async fn record_verification(
        &self,
        id: &str,
        verified: &Verified,
    ) -> Result<(), BackupError> {
        let json = serde_json::to_vec_pretty(verified)
            .map_err(|e| BackupError::Manifest(id.to_owned(), e.to_string()))?;
        self.put_bytes(&Self::verified_key(id), json).await
    }

    /// The newest backup and the newest successful verification, for the
    /// operators' page and `/metrics`; `None` when the destination cannot
    /// be read.
    pub async fn status(&self) -> Option<Status> {
        let backups = self.list_backups().await.ok()?;
        Some(Status {
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
        })
    }

    /// Removes the backups `retention` does not keep (with their streams),
    /// then the objects no kept backup names (only those older than an
    /// hour: a backup being taken writes its objects before its manifest).
    /// Never removes the newest backup or the newest verified one.
    pub async fn prune(&self, retention: &Retention) -> Result<Pruned, BackupError> {
        let backups = self.list_backups().await?;
        let now = nara_core::Timestamp::now().0;
        let keep = retention.keep(&backups, now);
        let mut pruned = Pruned::default();
        let mut referenced = std::collections::HashSet::new();
        for ((manifest, _), kept) in backups.iter().zip(&keep) {
            if *kept {
                referenced.extend(manifest.files.iter().map(|f| f.object.clone()));
                continue;
            }
            // The manifest first: a backup half-pruned is no longer listed.
            self.delete(&Self::manifest_key(&manifest.id)).await?;
            self.delete(&Self::verified_key(&manifest.id)).await?;
            for segment in self.list(&Self::stream_key(&manifest.id)).await? {
                self.delete(&segment.key).await?;
            }
            if let Some(root) = self.dir() {
                let _ = std::fs::remove_dir(Self::file(root, &Self::stream_key(&manifest.id)));
            }
            pruned.backups += 1;
        }
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for listed in self.list("objects").await? {
            let Some(object) = listed
                .key
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_suffix(".age"))
            else {
                continue;
            };
            if !referenced.contains(object) && listed.modified < hour_ago {
                self.delete(&listed.key).await?;
                pruned.objects += 1;
            }
        }
        Ok(pruned)
    }

    /// Removes what interrupted backups left in a directory destination —
    /// scratch snapshots and partial files — once older than `age` (a
    /// backup still running beside this one keeps its own). Object storage
    /// keeps no partial objects.
    pub fn remove_leftovers(&self, age: std::time::Duration) {
        let Some(root) = self.dir() else { return };
        let Some(cutoff) = std::time::SystemTime::now().checked_sub(age) else {
            return;
        };
        let old = |path: &Path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff)
        };
        if let Ok(dirs) = std::fs::read_dir(root.join("tmp")) {
            for dir in dirs.filter_map(Result::ok).map(|d| d.path()) {
                if old(&dir) {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        for folder in ["objects", "streams", "backups"] {
            let mut stack = vec![root.join(folder)];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for path in entries.filter_map(Result::ok).map(|e| e.path()) {
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "partial") && old(&path) {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
    }

    /// Stores `plaintext_file` as an object unless one with its content is
    /// there, sealing it in `staging`; returns (object name, bytes, whether
    /// it was new).
    pub(super) async fn store_object(
        &self,
        plaintext_file: &Path,
        staging: &Path,
        recipient: &age::x25519::Recipient,
    ) -> Result<(String, u64, bool), BackupError> {
        let (object, bytes) = hash_file(plaintext_file)?;
        let key = Self::object_key(&object);
        if self.exists(&key).await? {
            return Ok((object, bytes, false));
        }
        let staged = staging.join(format!("{object}.age.partial"));
        seal_file(plaintext_file, &staged, recipient)
            .map_err(|e| BackupError::Encrypt(object.clone(), e.to_string()))?;
        self.put_staged(&key, &staged).await?;
        Ok((object, bytes, true))
    }

    /// Decrypts an object into `target` (beside it, then renamed), checking
    /// that its content is what its name says.
    pub(super) async fn fetch_object(
        &self,
        entry: &FileEntry,
        identity: &age::x25519::Identity,
        target: &Path,
    ) -> Result<(), BackupError> {
        let Some(local) = self.local(&Self::object_key(&entry.object)).await? else {
            return Err(BackupError::Missing {
                object: entry.object.clone(),
                path: entry.path.clone(),
            });
        };
        let (entry, identity, target) = (entry.clone(), identity.clone(), target.to_owned());
        tokio::task::spawn_blocking(move || open_file(local.path(), &entry, &identity, &target))
            .await
            .map_err(|e| BackupError::Remote(e.to_string()))?
    }
}

/// Encrypts `plaintext` into `sealed` (synced), to `recipient`.
fn seal_file(
    plaintext: &Path,
    sealed: &Path,
    recipient: &age::x25519::Recipient,
) -> Result<(), BackupError> {
    let out = std::fs::File::create(sealed).map_err(io(sealed))?;
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
            .map_err(|e| BackupError::Encrypt(plaintext.display().to_string(), e.to_string()))?;
    let mut writer = encryptor
        .wrap_output(std::io::BufWriter::new(out))
        .map_err(io(sealed))?;
    let mut input = std::fs::File::open(plaintext).map_err(io(plaintext))?;
    std::io::copy(&mut input, &mut writer).map_err(io(sealed))?;
    let buffered = writer.finish().map_err(io(sealed))?;
    let file = buffered
        .into_inner()
        .map_err(|e| io(sealed)(e.into_error()))?;
    file.sync_all().map_err(io(sealed))
}

fn open_file(
    source: &Path,
    entry: &FileEntry,
    identity: &age::x25519::Identity,
    target: &Path,
) -> Result<(), BackupError> {
    let file = std::fs::File::open(source).map_err(io(source))?;
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
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    write_atomically_with(path, |file| file.write_all(bytes))
}

/// [`write_atomically`] what `write` writes, as it writes it (a segment
/// sealed straight into its file, with no sealed copy in memory), around
/// the page cache where the file system allows it ([`DirectPieces`]).
pub(super) fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), BackupError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let partial = path.with_extension("partial");
    {
        let mut pieces = DirectPieces::create(&partial).map_err(io(&partial))?;
        write(&mut pieces).map_err(io(&partial))?;
        pieces.finish().map_err(io(&partial))?;
    }
    std::fs::rename(&partial, path).map_err(io(path))
}

/// A file written a [`SYNC_EVERY`] piece at a time from an aligned buffer
/// with `O_DIRECT`, so that its bytes go from the buffer to the disk and
/// never through the page cache. A saturated node ships some 60 MB of log a
/// second that it never reads again: cached, it only displaces the
/// database's pages, and in a profile of a freshly started node the copy into
/// the cache (`copy_folio_from_iter_atomic`) was a tenth of the node's CPU.
/// A file system that refuses `O_DIRECT`
/// (tmpfs, some network file systems) gets the same bytes through the page
/// cache, synced a piece at a time ([`SyncedPieces`]).
struct DirectPieces {
    file: std::fs::File,
    /// `SYNC_EVERY` bytes at `start`, aligned for `O_DIRECT`, inside `buffer`.
    buffer: Vec<u8>,
    start: usize,
    filled: usize,
    written: u64,
    /// Cleared if the file system refused a direct write: then the rest goes
    /// through the page cache.
    direct: bool,
    buffered: Option<SyncedPieces>,
}

/// What `O_DIRECT` asks of a buffer's address, a write's length and its
/// offset on the file systems this runs on (a page; 512 bytes on some).
const DIRECT_ALIGN: usize = 4096;

impl DirectPieces {
    fn create(path: &Path) -> std::io::Result<DirectPieces> {
        use std::os::unix::fs::OpenOptionsExt;
        let open = |flags: rustix::fs::OFlags| {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(flags.bits() as i32)
                .open(path)
        };
        let (file, direct) = match open(rustix::fs::OFlags::DIRECT) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                (open(rustix::fs::OFlags::empty())?, false)
            }
            Err(e) => return Err(e),
        };
        let buffer = if direct {
            vec![0u8; SYNC_EVERY + DIRECT_ALIGN]
        } else {
            Vec::new()
        };
        let start = buffer.as_ptr().align_offset(DIRECT_ALIGN);
        let buffered = if direct {
            None
        } else {
            Some(SyncedPieces {
                file: file.try_clone()?,
                unsynced: 0,
            })
        };
        Ok(DirectPieces {
            file,
            buffer,
            start,
            filled: 0,
            written: 0,
            direct,
            buffered,
        })
    }

    /// Writes the buffer's first `len` bytes (a multiple of
    /// [`DIRECT_ALIGN`]) directly, or through the page cache from here on if
    /// the file system refuses.
    fn write_piece(&mut self, len: usize) -> std::io::Result<()> {
        let piece = &self.buffer[self.start..self.start + len];
        match self.file.write_all(piece) {
            Ok(()) => {
                self.written += len as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput && self.written == 0 => {
                let flags = rustix::fs::fcntl_getfl(&self.file)?;
                rustix::fs::fcntl_setfl(&self.file, flags - rustix::fs::OFlags::DIRECT)?;
                // Whatever part of the piece went before the refusal is
                // written again from the start.
                self.file.set_len(0)?;
                std::io::Seek::seek(&mut self.file, std::io::SeekFrom::Start(0))?;
                self.direct = false;
                let mut buffered = SyncedPieces {
                    file: self.file.try_clone()?,
                    unsynced: 0,
                };
                buffered.write_all(&self.buffer[self.start..self.start + self.filled])?;
                self.buffered = Some(buffered);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Writes what is left (padded to the alignment, then cut to its
    /// length) and syncs the file, data and size.
    fn finish(mut self) -> std::io::Result<()> {
        if self.direct && self.filled > 0 {
            let len = self.filled.next_multiple_of(DIRECT_ALIGN);
            let end = self.start + len;
            self.buffer[self.start + self.filled..end].fill(0);
            let total = self.written + self.filled as u64;
            self.write_piece(len)?;
            if self.direct {
                self.file.set_len(total)?;
            }
        }
        self.file.sync_all()
    }
}

impl Write for DirectPieces {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Some(buffered) = &mut self.buffered {
            return buffered.write(bytes);
        }
        let n = bytes.len().min(SYNC_EVERY - self.filled);
        let at = self.start + self.filled;
        self.buffer[at..at + n].copy_from_slice(&bytes[..n]);
        self.filled += n;
        if self.filled == SYNC_EVERY {
            self.write_piece(SYNC_EVERY)?;
            if self.direct {
                self.filled = 0;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A file whose data is synced after every [`SYNC_EVERY`] bytes written.
struct SyncedPieces {
    file: std::fs::File,
    unsynced: usize,
}

impl Write for SyncedPieces {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let room = SYNC_EVERY - self.unsynced;
        let written = self.file.write(&bytes[..bytes.len().min(room)])?;
        self.unsynced += written;
        if self.unsynced == SYNC_EVERY {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Bytes written between syncs. A busy second's log segment is 12 MB
/// beside the node's database on the same disk (the demo's backups):
/// written whole and synced once, the file system's journal commit carried
/// all of it, and each of the node's commits (fsynced, `synchronous=FULL`)
/// waited behind it — every request stalled 40–60 ms once a second. Synced a
/// piece at a time, a commit waits for one piece at most.
const SYNC_EVERY: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_written_in_synced_pieces_is_whole_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("streams").join("0000000001-1.age");
        write_atomically(&path, b"an older segment").unwrap();
        // Two and a half pieces, each byte telling its place.
        let bytes: Vec<u8> = (0..SYNC_EVERY * 5 / 2).map(|i| (i % 251) as u8).collect();
        write_atomically(&path, &bytes).unwrap();
        assert!(std::fs::read(&path).unwrap() == bytes);
        assert!(!path.with_extension("partial").exists());
    }

    #[test]
    fn a_file_written_around_the_page_cache_keeps_its_exact_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment.age");
        // Lengths at, around and between the alignment and the piece, each
        // written in uneven slices as the cipher writes them.
        for len in [
            0,
            1,
            DIRECT_ALIGN - 1,
            DIRECT_ALIGN,
            DIRECT_ALIGN + 1,
            SYNC_EVERY - 1,
            SYNC_EVERY,
            SYNC_EVERY + 1,
            SYNC_EVERY * 2 + DIRECT_ALIGN * 3 + 17,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 241) as u8 ^ 0x5a).collect();
            write_atomically_with(&path, |file| {
                for slice in bytes.chunks(65_553) {
                    file.write_all(slice)?;
                }
                Ok(())
            })
            .unwrap();
            let read = std::fs::read(&path).unwrap();
            assert_eq!(read.len(), len, "length {len}");
            assert!(read == bytes, "the bytes of length {len}");
        }
    }
}
