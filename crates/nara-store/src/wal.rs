//! SQLite's write-ahead log read as a stream of committed transactions, for
//! continuous backup (the way Litestream ships a database): the node stops
//! SQLite from checkpointing by itself ([`Checkpoints::Shipped`]), a
//! shipper reads each new committed frame from the `-wal` file, and only
//! the shipper checkpoints — holding the write lock while it reads the last
//! frames and checkpoints them, so the log can restart (and overwrite its
//! frames) only after every frame in it was read. A restore copies a
//! database file taken at a known log position and writes the shipped
//! frames' pages into it in order, as a checkpoint would.
//!
//! The file formats are SQLite's (sqlite.org/fileformat2.html#walformat):
//! a 32-byte header (magic, version, page size, checkpoint sequence, two
//! salts, a checksum), then frames of a 24-byte header (page number, the
//! database size in pages for a commit's last frame, the salts, a running
//! checksum) and one page. A frame counts only if its salts match the
//! header's and its checksum continues the chain; a transaction counts only
//! once its commit frame does — exactly SQLite's own recovery rule.
//!
//! [`Checkpoints::Shipped`]: crate::Checkpoints::Shipped

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::{Result, StoreError};

/// The WAL header's size.
pub const HEADER_BYTES: usize = 32;
/// A frame header's size.
pub const FRAME_HEADER_BYTES: usize = 24;
const MAGIC_LITTLE: u32 = 0x377f_0682;
const MAGIC_BIG: u32 = 0x377f_0683;

/// Why a log or a segment cannot be read or applied.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How far a log has been read: its salts (which change when the log
/// restarts), the frames read, and the running checksum after the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalPosition {
    pub salt: [u32; 2],
    pub frames: u32,
    pub checksum: [u32; 2],
}

/// Committed frames read from a log: whole transactions only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub salt: [u32; 2],
    pub page_size: u32,
    /// The first frame's index in its log (0-based).
    pub first_frame: u32,
    /// Frames, each a 24-byte header and a page, as in the log.
    pub frames: Vec<u8>,
    pub count: u32,
    pub commits: u32,
    /// The log restarted (new salts) since the position read from.
    pub restarted: bool,
    /// Where the next read starts.
    pub end: WalPosition,
}

impl Segment {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(word)
}

/// SQLite's WAL checksum: pairs of 32-bit words, in the byte order the
/// header's magic names, folded into two running sums.
fn checksum(big_endian: bool, data: &[u8], mut s: [u32; 2]) -> [u32; 2] {
    for pair in data.chunks_exact(8) {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&pair[i..i + 4]);
            if big_endian {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            }
        };
        s[0] = s[0].wrapping_add(word(0)).wrapping_add(s[1]);
        s[1] = s[1].wrapping_add(word(4)).wrapping_add(s[0]);
    }
    s
}

/// The parts of a WAL header a reader needs.
#[derive(Debug, Clone, Copy)]
struct Header {
    big_endian: bool,
    page_size: u32,
    salt: [u32; 2],
    checksum: [u32; 2],
}

/// Parses a WAL header; `None` if it is not a valid one (a log being
/// created, or none at all).
fn header(bytes: &[u8]) -> Option<Header> {
    if bytes.len() < HEADER_BYTES {
        return None;
    }
    let magic = be32(bytes, 0);
    if magic != MAGIC_LITTLE && magic != MAGIC_BIG {
        return None;
    }
    let big_endian = magic == MAGIC_BIG;
    let page_size = be32(bytes, 8);
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return None;
    }
    let stored = [be32(bytes, 24), be32(bytes, 28)];
    if checksum(big_endian, &bytes[..24], [0, 0]) != stored {
        return None;
    }
    Some(Header {
        big_endian,
        page_size,
        salt: [be32(bytes, 16), be32(bytes, 20)],
        checksum: stored,
    })
}

/// Reads the committed frames of the log `bytes` after `from` (all of them
/// if `from` is `None` or names other salts: the log restarted). `None`
/// when there is no valid log.
pub fn committed_after(bytes: &[u8], from: Option<&WalPosition>) -> Option<Segment> {
    let h = header(bytes)?;
    let start = start_of(&h, from);
    let offset = frame_offset(&h, start.0);
    Some(scan(
        &h,
        from,
        start,
        bytes.get(offset..).unwrap_or_default().to_vec(),
    ))
}

/// Where reading starts: the position's frame, or the first after a restart.
fn start_of(h: &Header, from: Option<&WalPosition>) -> (u32, [u32; 2]) {
    match from.filter(|p| p.salt == h.salt) {
        Some(p) => (p.frames, p.checksum),
        None => (0, h.checksum),
    }
}

fn frame_offset(h: &Header, frame: u32) -> usize {
    HEADER_BYTES + frame as usize * (FRAME_HEADER_BYTES + h.page_size as usize)
}

/// The committed frames in `tail`, which begins at frame `start.0` whose
/// running checksum before it is `start.1`.
/// `tail` becomes the segment's frames, cut after the last commit.
fn scan(
    h: &Header,
    from: Option<&WalPosition>,
    start: (u32, [u32; 2]),
    mut tail: Vec<u8>,
) -> Segment {
    let (first, mut running) = start;
    let restarted = from.is_some_and(|p| p.salt != h.salt);
    let frame_bytes = FRAME_HEADER_BYTES + h.page_size as usize;
    let (mut end, mut end_checksum, mut commits, mut pending_commits) = (first, running, 0u32, 0);
    let mut frame = first;
    for f in tail.chunks_exact(frame_bytes) {
        if [be32(f, 8), be32(f, 12)] != h.salt {
            break;
        }
        running = checksum(h.big_endian, &f[..8], running);
        running = checksum(h.big_endian, &f[FRAME_HEADER_BYTES..], running);
        if running != [be32(f, 16), be32(f, 20)] {
            break;
        }
        frame += 1;
        if be32(f, 4) != 0 {
            pending_commits += 1;
            end = frame;
            end_checksum = running;
            commits = pending_commits;
        }
    }
    tail.truncate((end - first) as usize * frame_bytes);
    Segment {
        salt: h.salt,
        page_size: h.page_size,
        first_frame: first,
        frames: tail,
        count: end - first,
        commits,
        restarted,
        end: WalPosition {
            salt: h.salt,
            frames: end,
            checksum: end_checksum,
        },
    }
}

/// Reads a log file's committed frames after `from`, reading only the
/// header and what follows the position, into `buffer` (its contents
/// dropped; the segment's frames are `buffer` itself). A shipper hands back
/// the last segment's frames: a busy second's log is tens of megabytes, and
/// memory allocated afresh each second came zeroed by the kernel, page by
/// page — a sixth of the node's CPU at saturation.
pub fn read_committed(
    wal: &Path,
    from: Option<&WalPosition>,
    buffer: Vec<u8>,
) -> Result<Option<Segment>, WalError> {
    let mut file = match std::fs::File::open(wal) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(wal)(e)),
    };
    let mut head = [0u8; HEADER_BYTES];
    match file.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(wal)(e)),
    }
    let Some(h) = header(&head) else {
        return Ok(None);
    };
    let start = start_of(&h, from);
    file.seek(SeekFrom::Start(frame_offset(&h, start.0) as u64))
        .map_err(io(wal))?;
    // A restarted log keeps the file's length: past its last frame lie the
    // frames of earlier logs (other salts), megabytes of them after a busy
    // spell. Read a chunk at a time and stop at the first such frame,
    // rather than the whole file every second.
    let frame_bytes = FRAME_HEADER_BYTES + h.page_size as usize;
    let chunk = frame_bytes * READ_FRAMES;
    let mut tail = buffer;
    tail.clear();
    loop {
        let before = tail.len();
        tail.reserve(chunk);
        (&mut file)
            .take(chunk as u64)
            .read_to_end(&mut tail)
            .map_err(io(wal))?;
        let filled = tail.len() - before;
        tail.truncate(before + filled - filled % frame_bytes);
        let stale = tail[before..]
            .chunks_exact(frame_bytes)
            .any(|f| [be32(f, 8), be32(f, 12)] != h.salt);
        if filled < chunk || stale {
            break;
        }
    }
    Ok(Some(scan(&h, from, start, tail)))
}

/// Frames read from a log file at a time.
const READ_FRAMES: usize = 256;

/// A database file, opened once per path for the life of the process and
/// never closed. SQLite's locks are POSIX advisory locks, and a process
/// loses every one it holds on a file the moment it closes *any* descriptor
/// of that file (fcntl(2)): a node that opened its own database with
/// `std::fs` to read it and closed it again would silently drop the locks
/// its connections hold, and another process (`nara backup create`, an
/// operator's `sqlite3`) closing last would then checkpoint and delete the
/// log the node is still writing to. So a node reads its database file only
/// through this descriptor.
pub fn held_open(db: &Path) -> std::io::Result<std::sync::Arc<std::fs::File>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static HELD: OnceLock<Mutex<HashMap<std::path::PathBuf, Arc<std::fs::File>>>> = OnceLock::new();
    let key = std::fs::canonicalize(db)?;
    let mut held = HELD
        .get_or_init(Mutex::default)
        .lock()
        .map_err(|_| std::io::Error::other("the held database files' lock is poisoned"))?;
    if let Some(f) = held.get(&key) {
        return Ok(f.clone());
    }
    let f = Arc::new(std::fs::File::open(&key)?);
    held.insert(key, f.clone());
    Ok(f)
}

/// Copies a live database file (through [`held_open`]) to `to`; the bytes
/// copied. Only what the last checkpoint put in the file is copied; the
/// continuous backup takes a base right after a whole checkpoint, and only
/// its shipper checkpoints.
pub fn copy_database(db: &Path, to: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let from = held_open(db)?;
    let len = from.metadata()?.len();
    let mut out = std::fs::File::create(to)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = from.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        at += n as u64;
    }
    out.sync_all()?;
    Ok(at)
}

/// The page size a database file's header names (a file being restored,
/// which no node serves: a live node's goes through [`held_open`]).
pub fn database_page_size(db: &Path) -> Result<u32, WalError> {
    let mut head = [0u8; 100];
    std::fs::File::open(db)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(io(db))?;
    if &head[..16] != b"SQLite format 3\0" {
        return Err(WalError::Format(format!(
            "{} is not an SQLite database",
            db.display()
        )));
    }
    let size = u32::from(u16::from_be_bytes([head[16], head[17]]));
    Ok(if size == 1 { 65536 } else { size })
}

/// What writing frames into a database file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub frames: u32,
    pub commits: u32,
}

/// The pages a run of frames overwrote, to put them back.
#[derive(Debug, Default)]
pub struct Undo {
    length: u64,
    pages: std::collections::BTreeMap<u32, Vec<u8>>,
}

/// Writes the pages of `frames` (whole transactions, as shipped) into the
/// database file `db`, as a checkpoint does, stopping after `max_commits`
/// transactions if given. With `undo`, first keeps each page it overwrites.
pub fn apply(
    db: &Path,
    page_size: u32,
    frames: &[u8],
    max_commits: Option<u32>,
    mut undo: Option<&mut Undo>,
) -> Result<Applied, WalError> {
    let on_disk = database_page_size(db)?;
    if on_disk != page_size {
        return Err(WalError::Format(format!(
            "the frames are of {page_size}-byte pages, the database's are {on_disk}"
        )));
    }
    let ps = page_size as usize;
    let frame_bytes = FRAME_HEADER_BYTES + ps;
    if !frames.len().is_multiple_of(frame_bytes) {
        return Err(WalError::Format(
            "a segment's frames are not whole frames".into(),
        ));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db)
        .map_err(io(db))?;
    let length = file.metadata().map_err(io(db))?.len();
    if let Some(u) = undo.as_deref_mut() {
        u.length = length;
        u.pages.clear();
    }
    let mut applied = Applied::default();
    for f in frames.chunks_exact(frame_bytes) {
        if max_commits.is_some_and(|max| applied.commits >= max) {
            break;
        }
        let page = be32(f, 0);
        if page == 0 {
            return Err(WalError::Format("a frame names page 0".into()));
        }
        let at = u64::from(page - 1) * page_size as u64;
        if let Some(u) = undo.as_deref_mut()
            && !u.pages.contains_key(&page)
        {
            let mut old = vec![0u8; ps];
            if at < length {
                file.seek(SeekFrom::Start(at)).map_err(io(db))?;
                file.read_exact(&mut old).map_err(io(db))?;
            }
            u.pages.insert(page, old);
        }
        file.seek(SeekFrom::Start(at)).map_err(io(db))?;
        file.write_all(&f[FRAME_HEADER_BYTES..]).map_err(io(db))?;
        applied.frames += 1;
        let size_after_commit = be32(f, 4);
        if size_after_commit != 0 {
            file.set_len(u64::from(size_after_commit) * page_size as u64)
                .map_err(io(db))?;
            applied.commits += 1;
        }
    }
    file.sync_all().map_err(io(db))?;
    Ok(applied)
}

/// Puts back what [`apply`] overwrote.
pub fn undo(db: &Path, page_size: u32, undo: &Undo) -> Result<(), WalError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .map_err(io(db))?;
    for (page, bytes) in &undo.pages {
        file.seek(SeekFrom::Start(u64::from(page - 1) * page_size as u64))
            .map_err(io(db))?;
        file.write_all(bytes).map_err(io(db))?;
    }
    file.set_len(undo.length).map_err(io(db))?;
    file.sync_all().map_err(io(db))
}

/// The newest checkpoint's size in a database file at rest (a restore in
/// progress), read without writing to it.
pub async fn ledger_size_at(db: &Path) -> Result<u64> {
    let options = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .immutable(true);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let size: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(size), 0) FROM ledger_checkpoints")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(size.max(0) as u64)
}

/// A node's own handle on its log: two connections of its own, one to hold
/// the write lock, one to checkpoint.
#[derive(Debug)]
pub struct WalTap {
    db: PathBuf,
    wal: PathBuf,
    lock: SqliteConnection,
    checkpointer: SqliteConnection,
    /// The store's own queue of writers: the tap waits its turn in it, or
    /// it would rarely win SQLite's lock from a busy node.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// What the tap's last checkpoint left folded into the database file:
    /// the log (its salts) and how many of its frames. Nothing else
    /// checkpoints, so this is the log's own count until the next.
    backfilled: Option<([u32; 2], u32)>,
}

/// What a checkpoint by the tap did.
#[derive(Debug)]
pub struct Checkpointed {
    /// The frames read under the write lock, after the position given.
    pub segment: Option<Segment>,
    /// Every frame of the log is now in the database file, so the next
    /// writer restarts the log.
    pub complete: bool,
}

impl WalTap {
    pub(crate) async fn open(
        db: &Path,
        writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    ) -> Result<WalTap> {
        let options = SqliteConnectOptions::new()
            .filename(db)
            .busy_timeout(std::time::Duration::from_secs(10))
            .pragma("wal_autocheckpoint", "0");
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Ok(WalTap {
            db: db.to_owned(),
            wal: PathBuf::from(wal),
            lock: SqliteConnection::connect_with(&options).await?,
            checkpointer: SqliteConnection::connect_with(&options).await?,
            writer,
            backfilled: None,
        })
    }

    pub fn database_path(&self) -> &Path {
        &self.db
    }

    /// The `-wal` file.
    pub fn log_path(&self) -> &Path {
        &self.wal
    }

    /// The committed frames after `from`, read without any lock into
    /// `buffer` (taken; see [`read_committed`]), on a blocking thread: at
    /// saturation a second's frames are tens of megabytes.
    pub async fn read(
        &self,
        from: Option<&WalPosition>,
        buffer: &mut Vec<u8>,
    ) -> Result<Option<Segment>> {
        let (wal, from, buffer) = (self.wal.clone(), from.copied(), std::mem::take(buffer));
        tokio::task::spawn_blocking(move || read_committed(&wal, from.as_ref(), buffer))
            .await
            .map_err(|e| StoreError::Corrupt(format!("reading the log: {e}")))?
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Holding the write lock (no transaction can commit meanwhile), reads
    /// the frames after `from`, then checkpoints the log into the database
    /// file. Only when `complete` can the log restart; because nothing
    /// else checkpoints, every frame a restart overwrites was read here or
    /// before.
    /// The frames read go into `buffer` (taken), as in [`WalTap::read`].
    pub async fn checkpoint(
        &mut self,
        from: Option<&WalPosition>,
        buffer: &mut Vec<u8>,
    ) -> Result<Checkpointed> {
        let writer = self.writer.clone();
        let _turn = writer.lock().await;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.lock)
            .await?;
        let outcome = self.checkpoint_locked(from, buffer).await;
        let released = sqlx::query("ROLLBACK").execute(&mut self.lock).await;
        let outcome = outcome?;
        released?;
        Ok(outcome)
    }

    async fn checkpoint_locked(
        &mut self,
        from: Option<&WalPosition>,
        buffer: &mut Vec<u8>,
    ) -> Result<Checkpointed> {
        let segment = self.read(from, buffer).await?;
        self.fold(from, segment).await
    }

    /// Checkpoints the frames read so far without stopping writers (a
    /// checkpoint of a second's frames takes tens of milliseconds, every
    /// writer waiting, under the lock). Unless it is complete — frames were
    /// committed meanwhile — the caller follows it with the locked
    /// [`WalTap::checkpoint`], which then has only those few to fold. `None`
    /// when it cannot be done safely (see below); then only the locked
    /// checkpoint runs.
    ///
    /// A checkpoint folds frames up to the oldest snapshot a reader holds
    /// (SQLite's read marks), so the tap holds a read transaction begun
    /// before it reads the log: whatever this checkpoint folds was in that
    /// snapshot, so it was read — and a restart, which overwrites only
    /// folded frames, loses nothing unread. A reader holds a mark only if
    /// the log had unfolded frames when it began (else it reads the file
    /// alone, and bounds nothing): true when frames were read past
    /// [`WalTap::backfilled`] in the same log, or any in a log restarted
    /// since, since only this tap folds frames.
    pub async fn checkpoint_beside_writers(
        &mut self,
        from: &WalPosition,
        buffer: &mut Vec<u8>,
    ) -> Result<Option<Checkpointed>> {
        let unfolded = match self.backfilled {
            Some((salt, folded)) if salt == from.salt => from.frames > folded,
            Some(_) => from.frames > 0,
            None => false,
        };
        if !unfolded {
            return Ok(None);
        }
        sqlx::query("BEGIN").execute(&mut self.lock).await?;
        let outcome = self.checkpoint_under_snapshot(from, buffer).await;
        let released = sqlx::query("ROLLBACK").execute(&mut self.lock).await;
        let outcome = outcome?;
        released?;
        Ok(Some(outcome))
    }

    async fn checkpoint_under_snapshot(
        &mut self,
        from: &WalPosition,
        buffer: &mut Vec<u8>,
    ) -> Result<Checkpointed> {
        // The snapshot is taken at the first read, not at BEGIN.
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_schema")
            .fetch_one(&mut self.lock)
            .await?;
        let segment = self.read(Some(from), buffer).await?;
        if segment.as_ref().is_some_and(|s| s.restarted) {
            // Cannot be while frames are unfolded; refuse rather than fold.
            return Err(StoreError::Corrupt(
                "the log restarted while frames were unfolded".into(),
            ));
        }
        self.fold(Some(from), segment).await
    }

    /// Folds the log into the database file (a passive checkpoint) and
    /// says whether every frame, each of them read, is now in it. A
    /// checkpoint past the frames read breaks the invariant this module
    /// keeps, and is an error: the stream must begin again from a base.
    async fn fold(
        &mut self,
        from: Option<&WalPosition>,
        segment: Option<Segment>,
    ) -> Result<Checkpointed> {
        let (busy, log, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut self.checkpointer)
            .await?;
        let end = segment.as_ref().map(|s| s.end).or(from.copied());
        let read_to = end.map_or(0, |p| p.frames);
        self.backfilled = end.and_then(|p| Some((p.salt, u32::try_from(done).ok()?)));
        if done > i64::from(read_to) && from.is_some() {
            self.backfilled = None;
            return Err(StoreError::Corrupt(format!(
                "a checkpoint folded {done} frames of the log, {read_to} of them read"
            )));
        }
        let complete = busy == 0 && log == done && log == i64::from(read_to);
        Ok(Checkpointed { segment, complete })
    }

    pub async fn close(self) {
        let _ = self.lock.close().await;
        let _ = self.checkpointer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of `pages` one-page transactions, as SQLite writes one.
    fn log(big_endian: bool, salt: [u32; 2], pages: &[(u32, u8)], ps: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let magic = if big_endian { MAGIC_BIG } else { MAGIC_LITTLE };
        for w in [magic, 3_007_000, ps as u32, 0, salt[0], salt[1]] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        let mut s = checksum(big_endian, &out, [0, 0]);
        out.extend_from_slice(&s[0].to_be_bytes());
        out.extend_from_slice(&s[1].to_be_bytes());
        for (page, fill) in pages {
            let mut f = Vec::new();
            f.extend_from_slice(&page.to_be_bytes());
            f.extend_from_slice(&4u32.to_be_bytes());
            f.extend_from_slice(&salt[0].to_be_bytes());
            f.extend_from_slice(&salt[1].to_be_bytes());
            let data = vec![*fill; ps];
            s = checksum(big_endian, &f[..8], s);
            s = checksum(big_endian, &data, s);
            f.extend_from_slice(&s[0].to_be_bytes());
            f.extend_from_slice(&s[1].to_be_bytes());
            f.extend_from_slice(&data);
            out.extend_from_slice(&f);
        }
        out
    }

    #[test]
    fn reads_whole_transactions_and_continues_from_a_position() {
        for big in [false, true] {
            let bytes = log(big, [7, 9], &[(1, 1), (2, 2), (3, 3)], 512);
            let all = committed_after(&bytes, None).unwrap();
            assert_eq!((all.count, all.commits, all.first_frame), (3, 3, 0));
            // A torn last frame: the transaction does not count.
            let torn = &bytes[..bytes.len() - 100];
            let some = committed_after(torn, None).unwrap();
            assert_eq!(some.count, 2);
            let rest = committed_after(&bytes, Some(&some.end)).unwrap();
            assert_eq!(
                (rest.first_frame, rest.count, rest.restarted),
                (2, 1, false)
            );
            assert_eq!(rest.end, all.end);
            // New salts: the log restarted, read from its first frame.
            let again = log(big, [8, 1], &[(4, 4)], 512);
            let restarted = committed_after(&again, Some(&all.end)).unwrap();
            assert!(restarted.restarted);
            assert_eq!((restarted.first_frame, restarted.count), (0, 1));
        }
    }

    #[test]
    fn a_file_is_read_in_chunks_up_to_the_frames_of_an_earlier_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-wal");
        let pages = |n: u32| (1..=n).map(|p| (p, p as u8)).collect::<Vec<_>>();
        // A log longer than a chunk, read whole.
        let old = log(false, [1, 2], &pages(600), 512);
        std::fs::write(&path, &old).unwrap();
        let all = read_committed(&path, None, Vec::new()).unwrap().unwrap();
        assert_eq!((all.count, all.commits), (600, 600));
        // It restarted with new salts and 300 frames; the file keeps its
        // length, the old log's last 300 frames after the new log's.
        let new = log(false, [2, 9], &pages(300), 512);
        let mut file = new.clone();
        file.extend_from_slice(&old[new.len()..]);
        std::fs::write(&path, &file).unwrap();
        // Into the last read's buffer, as a shipper reads: what it held is
        // dropped, not shipped again.
        let restarted = read_committed(&path, Some(&all.end), all.frames)
            .unwrap()
            .unwrap();
        assert!(restarted.restarted);
        assert_eq!((restarted.first_frame, restarted.count), (0, 300));
        assert_eq!(restarted.frames, new[HEADER_BYTES..]);
        let ten = read_committed(&path, None, Vec::new()).unwrap().unwrap();
        let first_ten = committed_after(&new[..frame_offset_of(512, 10)], None).unwrap();
        let rest = read_committed(&path, Some(&first_ten.end), Vec::new())
            .unwrap()
            .unwrap();
        assert_eq!((rest.first_frame, rest.count), (10, 290));
        assert_eq!(rest.end, ten.end);
    }

    fn frame_offset_of(page_size: usize, frame: usize) -> usize {
        HEADER_BYTES + frame * (FRAME_HEADER_BYTES + page_size)
    }

    #[test]
    fn a_flipped_bit_ends_the_valid_log() {
        let mut bytes = log(false, [1, 2], &[(1, 1), (2, 2), (3, 3)], 512);
        let second = HEADER_BYTES + (FRAME_HEADER_BYTES + 512) + FRAME_HEADER_BYTES + 10;
        bytes[second] ^= 0x10;
        assert_eq!(committed_after(&bytes, None).unwrap().count, 1);
        bytes[3] ^= 1;
        assert!(committed_after(&bytes, None).is_none(), "a broken header");
    }
}
