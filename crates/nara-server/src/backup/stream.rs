//! Continuous backup of an SQLite node: a base backup whose database file is
//! the node's own at a known log position, then every committed transaction
//! shipped within about a second as an encrypted segment of SQLite's log
//! (see [`nara_store::wal`] for why no frame can be lost between them). A
//! restore copies the base and replays the segments — all of them, or up to
//! a moment or a ledger size — so a disaster loses only what was committed
//! since the last segment: the recovery point, in seconds.
//!
//! A generation is one base and its segments (`streams/ID/SEQ-MS.age`, SEQ
//! from 0 without gaps, MS when it was shipped). A new generation begins at
//! start, every backup interval, and whenever the stream cannot continue
//! (the destination failed, or the log restarted unseen); the old one stays
//! restorable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nara_store::wal::{self, Segment, WalPosition, WalTap};
use serde::{Deserialize, Serialize};

use super::{BackupError, Destination, Manifest, Taken, Taking, io, new_id};
use crate::background::Background;

/// How often the log is read and what was committed shipped.
pub const SHIP_EVERY: Duration = Duration::from_secs(1);
/// A checkpoint (the log folded into the database file) after this many
/// frames shipped (SQLite's own default), or after [`CHECKPOINT_AFTER`]
/// with any.
const CHECKPOINT_FRAMES: u32 = 1000;
const CHECKPOINT_AFTER: Duration = Duration::from_secs(30);
/// The largest buffer kept between reads of the log: a saturated node's
/// second is some 70 MB here, read into a buffer grown by doubling (to
/// 135 MB); a larger one is freed after its segment.
const KEEP_BUFFER: usize = 256 << 20;
/// Rounds (seconds) that read under a quarter of the kept buffer, after
/// which it is freed.
const QUIET_ROUNDS: u32 = 60;
/// A segment's first bytes.
const MAGIC: &[u8] = b"nara-wal-segment/1\n";

/// What a segment holds besides its frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub salt: [u32; 2],
    pub page_size: u32,
    pub first_frame: u32,
    pub frames: u32,
    pub commits: u32,
    pub shipped_ms: i64,
}

/// A stored segment, as its name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    pub seq: u64,
    pub shipped_ms: i64,
    key: String,
}

impl SegmentHeader {
    fn of(segment: &Segment, shipped_ms: i64) -> SegmentHeader {
        SegmentHeader {
            salt: segment.salt,
            page_size: segment.page_size,
            first_frame: segment.first_frame,
            frames: segment.count,
            commits: segment.commits,
            shipped_ms,
        }
    }
}

/// Writes a segment as it is stored (before sealing): the magic, its
/// header as a JSON line, its frames.
fn encode(
    out: &mut dyn std::io::Write,
    header: &SegmentHeader,
    frames: &[u8],
) -> std::io::Result<()> {
    out.write_all(MAGIC)?;
    serde_json::to_writer(&mut *out, header)?;
    out.write_all(b"\n")?;
    out.write_all(frames)
}

fn decode<'a>(name: &str, bytes: &'a [u8]) -> Result<(SegmentHeader, &'a [u8]), BackupError> {
    let bad = |why: &str| BackupError::Manifest(name.to_owned(), why.to_owned());
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("not a log segment"))?;
    let newline = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| bad("a segment without its header"))?;
    let header: SegmentHeader =
        serde_json::from_slice(&rest[..newline]).map_err(|e| bad(&e.to_string()))?;
    let frames = &rest[newline + 1..];
    let frame_bytes = wal::FRAME_HEADER_BYTES + header.page_size as usize;
    if frames.len() != header.frames as usize * frame_bytes {
        return Err(bad("its frames are not the ones its header counts"));
    }
    Ok((header, frames))
}

/// Seals bytes with age to `recipient`.
pub(super) fn encrypt(
    plaintext: &[u8],
    recipient: &age::x25519::Recipient,
) -> Result<Vec<u8>, BackupError> {
    seal(recipient, plaintext.len(), |w| w.write_all(plaintext))
}

/// Seals with age to `recipient` what `write` writes (`size` bytes, about),
/// streamed through the cipher: no plaintext copy of a 12 MB segment.
fn seal(
    recipient: &age::x25519::Recipient,
    size: usize,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<Vec<u8>, BackupError> {
    // age adds a header and 16 bytes for each 64 KiB chunk.
    let out = Vec::with_capacity(size + size / 4096 + 512);
    seal_to(recipient, out, write)
        .map_err(|e| BackupError::Encrypt("segment".into(), e.to_string()))
}

/// Seals with age to `recipient`, into `out`, what `write` writes.
fn seal_to<W: std::io::Write>(
    recipient: &age::x25519::Recipient,
    out: W,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<W> {
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
            .map_err(std::io::Error::other)?;
    let mut writer = encryptor.wrap_output(out)?;
    write(&mut writer)?;
    writer.finish()
}

/// Opens bytes sealed by [`encrypt`]; `name` says what, in an error.
pub(super) fn decrypt(
    sealed: &[u8],
    identity: &age::x25519::Identity,
    name: &str,
) -> Result<Vec<u8>, BackupError> {
    let undecryptable = |why: String| BackupError::Decrypt {
        object: name.to_owned(),
        path: name.to_owned(),
        why,
    };
    let decryptor = age::Decryptor::new(sealed).map_err(|e| undecryptable(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| undecryptable(e.to_string()))?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut out).map_err(|e| undecryptable(e.to_string()))?;
    Ok(out)
}

impl Destination {
    /// Stores segment `seq` of backup `base`'s stream, sealed (and, to a
    /// directory, written) on the background thread `lane`; gives back
    /// `frames` for the next read.
    async fn put_segment(
        &self,
        lane: &Background,
        (base, seq): (&str, u64),
        header: SegmentHeader,
        frames: Vec<u8>,
        recipient: age::x25519::Recipient,
    ) -> Result<Vec<u8>, BackupError> {
        let key = format!(
            "{}/{seq:010}-{}.age",
            Self::stream_key(base),
            header.shipped_ms
        );
        let unfinished = |e: crate::background::Unfinished| broken(&e.to_string());
        match self.local_file(&key) {
            // Sealed straight into the file: no sealed copy in memory.
            Some(path) => lane
                .run(move || {
                    super::destination::write_atomically_with(&path, |file| {
                        seal_to(&recipient, file, |w| encode(w, &header, &frames)).map(|_| ())
                    })
                    .map(|()| frames)
                })
                .await
                .map_err(unfinished)?,
            None => {
                let (sealed, frames) = lane
                    .run(move || {
                        seal(&recipient, frames.len(), |w| encode(w, &header, &frames))
                            .map(|sealed| (sealed, frames))
                    })
                    .await
                    .map_err(unfinished)??;
                self.put_bytes(&key, sealed).await?;
                Ok(frames)
            }
        }
    }

    /// The segments of backup `id`'s stream, in order.
    pub async fn segments(&self, id: &str) -> Result<Vec<SegmentRef>, BackupError> {
        let mut out: Vec<SegmentRef> = self
            .list(&Self::stream_key(id))
            .await?
            .into_iter()
            .filter_map(|l| {
                let name = l.key.rsplit('/').next()?.to_owned();
                let (seq, ms) = name.strip_suffix(".age")?.split_once('-')?;
                Some(SegmentRef {
                    seq: seq.parse().ok()?,
                    shipped_ms: ms.parse().ok()?,
                    key: l.key.clone(),
                })
            })
            .collect();
        out.sort_by_key(|s| s.seq);
        Ok(out)
    }

    async fn read_segment(
        &self,
        segment: &SegmentRef,
        identity: &age::x25519::Identity,
    ) -> Result<Vec<u8>, BackupError> {
        let name = format!("segment {}", segment.seq);
        let Some(sealed) = self.get_bytes(&segment.key).await? else {
            return Err(BackupError::Missing {
                object: name.clone(),
                path: "the log".into(),
            });
        };
        decrypt(&sealed, identity, &name)
    }
}

/// How far a restore replays a backup's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Everything shipped.
    Latest,
    /// What was shipped by this moment (milliseconds since the epoch).
    At(i64),
    /// The first transaction after which the ledger holds this many entries.
    LedgerSize(u64),
}

/// What replaying a stream did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    pub segments: usize,
    pub transactions: u64,
    /// When the last segment replayed was shipped.
    pub shipped_ms: Option<i64>,
}

/// Replays backup `manifest`'s stream onto the restored database file `db`.
pub async fn replay(
    destination: &Destination,
    manifest: &Manifest,
    identity: &age::x25519::Identity,
    db: &Path,
    until: Until,
) -> Result<Replayed, BackupError> {
    let mut replayed = Replayed::default();
    if !manifest.continuous {
        return Ok(replayed);
    }
    if let Until::LedgerSize(n) = until
        && manifest.ledger.size >= n
    {
        return Ok(replayed);
    }
    let broken = |why: String| BackupError::Manifest(manifest.id.clone(), why);
    let mut position = manifest.log.map(|p| (p.salt, p.frames));
    for (expected, segment) in destination.segments(&manifest.id).await?.iter().enumerate() {
        if segment.seq != expected as u64 {
            return Err(BackupError::Missing {
                object: format!("segment {expected}"),
                path: format!("the log after backup {}", manifest.id),
            });
        }
        if let Until::At(at) = until
            && segment.shipped_ms > at
        {
            break;
        }
        let bytes = destination.read_segment(segment, identity).await?;
        let (header, frames) = decode(&format!("segment {}", segment.seq), &bytes)?;
        let continues = match position {
            Some((salt, frames)) if salt == header.salt => header.first_frame == frames,
            _ => header.first_frame == 0,
        };
        if !continues {
            return Err(broken(format!(
                "segment {} does not continue the log where segment {} ended",
                segment.seq,
                expected.saturating_sub(1)
            )));
        }
        position = Some((header.salt, header.first_frame + header.frames));
        let apply = |frames: &[u8], undo: Option<&mut wal::Undo>| {
            wal::apply(db, header.page_size, frames, None, undo)
                .map_err(|e| broken(format!("segment {}: {e}", segment.seq)))
        };
        match until {
            Until::LedgerSize(n) => {
                let mut undo = wal::Undo::default();
                let applied = apply(frames, Some(&mut undo))?;
                if ledger_size(db).await? >= n {
                    // Back to before this segment, then one transaction at a time.
                    wal::undo(db, header.page_size, &undo)
                        .map_err(|e| broken(format!("segment {}: {e}", segment.seq)))?;
                    for transaction in transactions(frames, header.page_size) {
                        apply(transaction, None)?;
                        replayed.transactions += 1;
                        if ledger_size(db).await? >= n {
                            break;
                        }
                    }
                    replayed.segments += 1;
                    replayed.shipped_ms = Some(segment.shipped_ms);
                    return Ok(replayed);
                }
                replayed.transactions += u64::from(applied.commits);
            }
            Until::Latest | Until::At(_) => {
                replayed.transactions += u64::from(apply(frames, None)?.commits);
            }
        }
        replayed.segments += 1;
        replayed.shipped_ms = Some(segment.shipped_ms);
    }
    if let Until::LedgerSize(n) = until {
        let reached = ledger_size(db).await?;
        return Err(BackupError::Ledger(format!(
            "the backups reach a ledger of {reached} entries, not {n}"
        )));
    }
    Ok(replayed)
}

async fn ledger_size(db: &Path) -> Result<u64, BackupError> {
    Ok(wal::ledger_size_at(db).await?)
}

/// A run of frames cut after each commit frame.
fn transactions(frames: &[u8], page_size: u32) -> Vec<&[u8]> {
    let frame_bytes = wal::FRAME_HEADER_BYTES + page_size as usize;
    let mut out = Vec::new();
    let mut start = 0;
    for (i, frame) in frames.chunks_exact(frame_bytes).enumerate() {
        if frame[4..8] != [0, 0, 0, 0] {
            let end = (i + 1) * frame_bytes;
            out.push(&frames[start..end]);
            start = end;
        }
    }
    out
}

/// The stream's state for `/metrics` and the operators' page, shared by
/// the shipper and the handlers.
#[derive(Debug, Default)]
pub struct Live {
    /// When the shipper last had shipped every committed transaction
    /// (milliseconds since the epoch; 0: not streaming).
    pub caught_up_ms: AtomicI64,
    pub segments: AtomicU64,
    pub bytes: AtomicU64,
    /// Times the log restarted (after a complete checkpoint) and the stream
    /// followed it.
    pub restarts: AtomicU64,
    /// Checkpoints that folded every frame without the write lock, and
    /// those that took it (frames were committed meanwhile).
    pub folded_beside_writers: AtomicU64,
    pub folded_locked: AtomicU64,
}

impl Live {
    /// Seconds of committed writes not yet shipped, if streaming.
    pub fn recovery_point_seconds(&self, now_ms: i64) -> Option<f64> {
        let at = self.caught_up_ms.load(Ordering::Relaxed);
        (at > 0).then(|| (now_ms - at).max(0) as f64 / 1000.0)
    }
}

/// One generation being shipped.
#[derive(Debug)]
struct Generation {
    base: String,
    next_seq: u64,
    position: Option<WalPosition>,
    /// The last checkpoint left the log wholly in the database file at
    /// `position`: the log may restart (new salts) without a frame lost.
    restart_ok: bool,
    frames_since_checkpoint: u32,
    last_checkpoint: Instant,
    started: Instant,
}

/// Whether a log that restarted continues the stream at `position`: only
/// right after a checkpoint that left the whole log in the database file,
/// and only once — SQLite adds one to the first salt at each restart, so a
/// larger step means restarts (and their frames) went unseen.
fn restart_follows(position: Option<&WalPosition>, restart_ok: bool, segment: &Segment) -> bool {
    restart_ok && position.is_none_or(|p| segment.salt[0] == p.salt[0].wrapping_add(1))
}

/// Ships a node's log: owns its checkpoints.
pub struct Shipper {
    tap: WalTap,
    /// Reading, sealing and writing the log run here, not on the threads
    /// that answer requests.
    lane: Background,
    data_dir: PathBuf,
    destination: Destination,
    recipient: age::x25519::Recipient,
    generation: Option<Generation>,
    /// The last segment's frames, read into again (see
    /// [`wal::read_committed`]).
    spare: Vec<u8>,
    /// Rounds in a row that read far less than `spare` holds.
    quiet_rounds: u32,
    live: Arc<Live>,
    checkpoint_frames: u32,
    checkpoint_after: Duration,
}

/// Why the stream stopped; a new generation follows.
fn broken(why: &str) -> BackupError {
    BackupError::Manifest("the log stream".into(), why.to_owned())
}

impl Shipper {
    /// `store` must have been opened with [`nara_store::Checkpoints::Shipped`].
    pub async fn new(
        store: &nara_store::Store,
        data_dir: &Path,
        destination: Destination,
        recipient: age::x25519::Recipient,
        live: Arc<Live>,
    ) -> Result<Shipper, BackupError> {
        Ok(Shipper {
            tap: store.wal_tap().await?,
            lane: Background::start("nara-backup").map_err(|e| broken(&e.to_string()))?,
            data_dir: data_dir.to_owned(),
            destination,
            recipient,
            generation: None,
            spare: Vec::new(),
            quiet_rounds: 0,
            live,
            checkpoint_frames: CHECKPOINT_FRAMES,
            checkpoint_after: CHECKPOINT_AFTER,
        })
    }

    /// Checkpoints after `frames` shipped frames, or after `after` with any
    /// (by default 1,000 frames or 30 s).
    pub fn checkpoint_every(&mut self, frames: u32, after: Duration) {
        self.checkpoint_frames = frames.max(1);
        self.checkpoint_after = after;
    }

    /// The current generation's base backup and its age.
    pub fn generation(&self) -> Option<(&str, Duration)> {
        self.generation
            .as_ref()
            .map(|g| (g.base.as_str(), g.started.elapsed()))
    }

    /// Begins a new generation: checkpoints the whole log (closing the old
    /// generation with its last frames), then stores the database file as
    /// it is — nothing else changes it until the next checkpoint, which is
    /// this shipper's. `None`: a reader kept the checkpoint from taking the
    /// whole log, so the old generation goes on (what was read is shipped)
    /// and the base is tried again at the next call.
    pub async fn begin(&mut self) -> Result<Option<Taken>, BackupError> {
        let position = self.generation.as_ref().and_then(|g| g.position);
        let read_at = nara_core::Timestamp::now().0;
        let checkpointed = self
            .tap
            .checkpoint(position.as_ref(), &mut self.spare)
            .await?;
        self.live.folded_locked.fetch_add(1, Ordering::Relaxed);
        if !checkpointed.complete && self.generation.is_some() {
            // Under load a checkpoint can stop short of the whole log; the
            // stream must not stop with it, or the recovery point grows
            // until some checkpoint completes.
            if let Some(segment) = checkpointed.segment
                && let Err(e) = self.accept(segment).await
            {
                self.generation = None;
                self.live.caught_up_ms.store(0, Ordering::Relaxed);
                return Err(e);
            }
            self.live.caught_up_ms.store(read_at, Ordering::Relaxed);
            if let Some(g) = &mut self.generation {
                g.restart_ok = false;
                g.frames_since_checkpoint = 0;
                g.last_checkpoint = Instant::now();
            }
            return Ok(None);
        }
        let end = match checkpointed.segment {
            Some(segment) => {
                let end = segment.end;
                if let Some(g) = &self.generation
                    && !segment.is_empty()
                    && (!segment.restarted
                        || restart_follows(g.position.as_ref(), g.restart_ok, &segment))
                {
                    // The old generation's last transactions; if they cannot
                    // be stored, the new base holds them anyway.
                    let _ = self.put(segment).await;
                }
                Some(end)
            }
            None => position,
        };
        self.generation = None;
        self.live.caught_up_ms.store(0, Ordering::Relaxed);
        if !checkpointed.complete {
            return Err(broken(
                "a reader held the log; the next base is taken in a moment",
            ));
        }
        let id = new_id();
        let scratch = self.destination.staging(&id)?;
        let snapshot = scratch.join("nara.db");
        // Through the node's one descriptor of its database: closing another
        // would drop its SQLite locks (see `wal::held_open`).
        let result = match nara_store::wal::copy_database(self.tap.database_path(), &snapshot) {
            Ok(_) => {
                Taking {
                    id: &id,
                    snapshot: &snapshot,
                    continuous: true,
                    log: end,
                }
                .store(
                    &self.data_dir,
                    &self.destination,
                    &scratch,
                    &self.recipient,
                    &|_, _| {},
                )
                .await
            }
            Err(e) => Err(io(&snapshot)(e)),
        };
        let _ = std::fs::remove_dir_all(&scratch);
        let taken = result?;
        self.generation = Some(Generation {
            base: id,
            next_seq: 0,
            position: end,
            restart_ok: true,
            frames_since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            started: Instant::now(),
        });
        self.live
            .caught_up_ms
            .store(taken.manifest.created_ms, Ordering::Relaxed);
        Ok(Some(taken))
    }

    /// Ships what was committed since the last call, and checkpoints when
    /// due. An error ends the generation; call [`Shipper::begin`] next.
    pub async fn ship(&mut self) -> Result<u32, BackupError> {
        let read_at = nara_core::Timestamp::now().0;
        let result = self.ship_inner().await;
        match &result {
            Ok(_) => self.live.caught_up_ms.store(read_at, Ordering::Relaxed),
            Err(_) => self.generation = None,
        }
        result
    }

    async fn ship_inner(&mut self) -> Result<u32, BackupError> {
        let Some(g) = &self.generation else {
            return Err(broken("no generation begun"));
        };
        let started = Instant::now();
        let (log, position) = (self.tap.log_path().to_owned(), g.position);
        let buffer = std::mem::take(&mut self.spare);
        let segment = self
            .lane
            .run(move || wal::read_committed(&log, position.as_ref(), buffer))
            .await
            .map_err(|e| broken(&e.to_string()))?
            .map_err(|e| broken(&e.to_string()))?;
        let read = started.elapsed();
        // A buffer far larger than the seconds lately read is given back
        // after a quiet minute.
        let needed = segment.as_ref().map_or(0, |s| s.frames.len());
        let roomy = segment.as_ref().map_or(0, |s| s.frames.capacity()) / 4;
        self.quiet_rounds = if needed < roomy {
            self.quiet_rounds + 1
        } else {
            0
        };
        let mut shipped = match segment {
            Some(s) => self.accept(s).await?,
            None => 0,
        };
        if self.quiet_rounds >= QUIET_ROUNDS {
            self.spare = Vec::new();
            self.quiet_rounds = 0;
        }
        tracing::debug!(frames = shipped, ?read, took = ?started.elapsed(), "shipped the log");
        let due = self.generation.as_ref().is_some_and(|g| {
            g.frames_since_checkpoint >= self.checkpoint_frames
                || (g.frames_since_checkpoint > 0
                    && g.last_checkpoint.elapsed() >= self.checkpoint_after)
        });
        if due {
            // Fold beside the writers what was read; only if frames were
            // committed meanwhile, fold those with the write lock held, so
            // that the log can restart (a checkpoint of a busy second's
            // frames under the lock held every writer for tens of ms).
            let started = Instant::now();
            let mut complete = false;
            if let Some(position) = self.generation.as_ref().and_then(|g| g.position)
                && let Some(folded) = self
                    .tap
                    .checkpoint_beside_writers(&position, &mut self.spare)
                    .await?
            {
                tracing::debug!(complete = folded.complete, took = ?started.elapsed(), "checkpointed the log beside the writers");
                if let Some(s) = folded.segment {
                    shipped += self.accept(s).await?;
                }
                complete = folded.complete;
                if complete {
                    self.live
                        .folded_beside_writers
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            if !complete {
                let position = self.generation.as_ref().and_then(|g| g.position);
                let started = Instant::now();
                let checkpointed = self
                    .tap
                    .checkpoint(position.as_ref(), &mut self.spare)
                    .await?;
                tracing::debug!(complete = checkpointed.complete, took = ?started.elapsed(), "checkpointed the log");
                if let Some(s) = checkpointed.segment {
                    shipped += self.accept(s).await?;
                }
                complete = checkpointed.complete;
                self.live.folded_locked.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(g) = &mut self.generation {
                // Every frame folded and read: the next writer may restart the log.
                g.restart_ok = complete;
                g.frames_since_checkpoint = 0;
                g.last_checkpoint = Instant::now();
            }
        }
        Ok(shipped)
    }

    /// Stores a segment read from the log and moves the position past it.
    async fn accept(&mut self, segment: Segment) -> Result<u32, BackupError> {
        let Some(g) = &self.generation else {
            return Err(broken("no generation begun"));
        };
        if segment.restarted && !restart_follows(g.position.as_ref(), g.restart_ok, &segment) {
            return Err(broken(
                "the log restarted before it was all shipped; a new base follows",
            ));
        }
        let (restarted, end, count) = (segment.restarted, segment.end, segment.count);
        if segment.is_empty() {
            self.keep_buffer(segment.frames);
        } else {
            self.put(segment).await?;
        }
        if restarted {
            self.live.restarts.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(g) = &mut self.generation
            && g.position != Some(end)
        {
            g.position = Some(end);
            g.restart_ok = false;
            g.frames_since_checkpoint += count;
        }
        Ok(count)
    }

    async fn put(&mut self, segment: Segment) -> Result<(), BackupError> {
        let Some(g) = &mut self.generation else {
            return Ok(());
        };
        let header = SegmentHeader::of(&segment, nara_core::Timestamp::now().0);
        let bytes = segment.frames.len() as u64;
        let frames = self
            .destination
            .put_segment(
                &self.lane,
                (&g.base, g.next_seq),
                header,
                segment.frames,
                self.recipient.clone(),
            )
            .await?;
        g.next_seq += 1;
        self.live.segments.fetch_add(1, Ordering::Relaxed);
        self.live.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.keep_buffer(frames);
        Ok(())
    }

    /// Keeps a segment's buffer for the next read of the log. A
    /// checkpoint's few frames (or none) follow a second's many in the same
    /// round, read into the same buffer: keep the larger.
    fn keep_buffer(&mut self, frames: Vec<u8>) {
        if frames.capacity() > self.spare.capacity() && frames.capacity() <= KEEP_BUFFER {
            self.spare = frames;
        }
    }

    /// Folds the log into the database file without shipping it: when the
    /// destination cannot take it, the log must not grow without bound.
    /// The stream is broken; the next generation starts from a new base.
    pub async fn checkpoint_unshipped(&mut self) -> Result<(), BackupError> {
        self.generation = None;
        self.live.caught_up_ms.store(0, Ordering::Relaxed);
        self.tap.checkpoint(None, &mut Vec::new()).await?;
        Ok(())
    }

    /// Ships the last transactions and lets the connections go.
    pub async fn finish(mut self) {
        if self.generation.is_some() {
            let _ = self.ship().await;
        }
        self.live.caught_up_ms.store(0, Ordering::Relaxed);
        self.tap.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_continues_the_stream_only_once_and_only_after_a_whole_checkpoint() {
        let at = |salt0| WalPosition {
            salt: [salt0, 7],
            frames: 10,
            checksum: [0, 0],
        };
        let restarted = |salt0| Segment {
            salt: [salt0, 99],
            page_size: 4096,
            first_frame: 0,
            frames: Vec::new(),
            count: 0,
            commits: 0,
            restarted: true,
            end: at(salt0),
        };
        assert!(restart_follows(Some(&at(5)), true, &restarted(6)));
        assert!(
            !restart_follows(Some(&at(5)), false, &restarted(6)),
            "frames went unshipped"
        );
        assert!(
            !restart_follows(Some(&at(5)), true, &restarted(7)),
            "two restarts, one unseen"
        );
        assert!(
            !restart_follows(Some(&at(5)), true, &restarted(123)),
            "a new log file"
        );
        assert!(restart_follows(Some(&at(u32::MAX)), true, &restarted(0)));
    }

    #[test]
    fn a_segment_round_trips_and_rejects_a_miscount() {
        let segment = Segment {
            salt: [1, 2],
            page_size: 512,
            first_frame: 3,
            frames: vec![7u8; 2 * (24 + 512)],
            count: 2,
            commits: 1,
            restarted: false,
            end: WalPosition {
                salt: [1, 2],
                frames: 5,
                checksum: [0, 0],
            },
        };
        let mut bytes = Vec::new();
        encode(
            &mut bytes,
            &SegmentHeader::of(&segment, 42),
            &segment.frames,
        )
        .unwrap();
        let (header, frames) = decode("s", &bytes).unwrap();
        assert_eq!(
            (header.first_frame, header.frames, header.shipped_ms),
            (3, 2, 42)
        );
        assert_eq!(frames, &segment.frames[..]);
        assert!(decode("s", &bytes[..bytes.len() - 1]).is_err());
        assert!(decode("s", b"garbage").is_err());
    }
}
