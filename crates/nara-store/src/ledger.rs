//! The ledger's storage: appending entries in the transaction of the change
//! they record, integrating them into the Merkle tree (tiles) with a signed
//! checkpoint, and reading tiles, entries and proofs back.
//!
//! Integration is one transaction: take pending entries, give them indexes,
//! extend the right edge of every tile level, sign the new tree head. On
//! PostgreSQL an advisory lock lets exactly one node integrate at a time.

use std::collections::HashMap;

use nara_ledger::merkle::{self, Hash, ProofError, SubtreeHashes, leaf_hash, root_of};
use nara_ledger::note::Signer;
use nara_ledger::tile::{HEIGHT, TileError, TileHashes, WIDTH};
use nara_ledger::{Checkpoint, Entry};

use crate::{BackendKind, Result, Store, StoreError, with_pool, write_tx};

/// Entries integrated per transaction.
const BATCH: i64 = 20_000;
/// The advisory lock key that elects the one integrating node.
const INTEGRATOR_LOCK: i64 = 0x6e61_7261_6c65_6467; // "naraledg"

/// Appends entries in the caller's transaction (`$sqlite`: the store is on
/// SQLite). On SQLite, whose one writer makes commit order the log's order,
/// each entry gets its index here, so it is written once and integration
/// only hashes it. On PostgreSQL, where concurrent writers commit in an order
/// none of them can know, entries wait in `ledger_pending` for the integrator
/// to sequence them.
macro_rules! append_in_tx {
    ($tx:ident, $sqlite:expr, $entries:expr) => {{
        let entries: &[Vec<u8>] = $entries;
        let sqlite: bool = $sqlite;
        let base: i64 = if sqlite {
            sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM ledger_entries")
                .fetch_one(&mut *$tx)
                .await?
        } else {
            0
        };
        let mut offset = 0i64;
        for chunk in crate::sql::chunks(entries) {
            let mut sql = crate::sql::Sql::new(if sqlite {
                "INSERT INTO ledger_entries (idx, entry) VALUES "
            } else {
                "INSERT INTO ledger_pending (entry) VALUES "
            });
            for (i, e) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                if sqlite {
                    sql.bind(crate::sql::Arg::Int(base + offset + i as i64))
                        .push(", ");
                }
                sql.bind(crate::sql::Arg::Bytes(e.clone())).push(")");
            }
            crate::sql::bind_args!(crate::sql::query(&sql), sql)
                .execute(&mut *$tx)
                .await?;
            offset += chunk.len() as i64;
        }
    }};
}
pub(crate) use append_in_tx;

/// Finishes a change inside its transaction: appends the change's ledger
/// entry and commits. One step, so no path commits a change without its entry
/// (DESIGN.md invariant 2).
macro_rules! commit_with_entry {
    ($store:ident, $tx:ident, $entry:expr) => {{
        let entry: Vec<u8> = $entry;
        crate::ledger::append_in_tx!(
            $tx,
            $store.kind() == crate::BackendKind::Sqlite,
            std::slice::from_ref(&entry)
        );
        $tx.commit().await?;
    }};
}
pub(crate) use commit_with_entry;

/// A signed tree head as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The signed note, ready to serve.
    pub note: String,
    pub created_at: i64,
}

/// Entries read and hashed before taking the write turn (SQLite).
struct Prepared {
    /// The latest checkpoint's size when they were read.
    last: Option<i64>,
    rows: Vec<(i64, Vec<u8>)>,
    leaves: Vec<Hash>,
}

/// What one integration did.
#[derive(Debug, Clone)]
pub struct Integrated {
    pub checkpoint: StoredCheckpoint,
    /// Entries integrated.
    pub entries: u64,
    /// The batch was full: more entries may be waiting.
    pub more_waiting: bool,
}

/// A tile's hashes never change once written (a partial tile only grows), so
/// proofs read them from memory after the first time; a cached prefix too
/// short for a request is read again. Bounded: at 8,192 tiles (64 MiB) it
/// starts afresh.
#[derive(Default)]
pub(crate) struct TileCache(std::sync::Mutex<HashMap<TileKey, std::sync::Arc<Vec<Hash>>>>);

/// (level, index) of a hash tile.
type TileKey = (u8, u64);

impl TileCache {
    const MAX: usize = 8_192;

    fn get(&self, key: (u8, u64)) -> Option<std::sync::Arc<Vec<Hash>>> {
        self.0.lock().ok()?.get(&key).cloned()
    }

    fn insert(&self, key: (u8, u64), hashes: &[Hash]) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= Self::MAX {
                map.clear();
            }
            map.insert(key, std::sync::Arc::new(hashes.to_vec()));
        }
    }
}

/// Builds the canonical bytes of a catalogue change's entry.
/// A citizen's commitment in one public entry, and what opens it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Opening {
    /// `citizen:…`, as the entry names the actor.
    pub commitment: String,
    pub account_id: i64,
    /// Hex of the entry's 16-byte salt.
    pub salt: String,
    pub created_at: i64,
}

impl Opening {
    fn new(account_id: i64) -> Opening {
        let salt: [u8; 16] = rand::random();
        Opening {
            commitment: nara_ledger::entry::actor_commitment(
                &format!("account:{account_id}"),
                &salt,
            ),
            account_id,
            salt: salt.iter().map(|b| format!("{b:02x}")).collect(),
            created_at: nara_core::Timestamp::now().0,
        }
    }

    /// Whether this opening opens its commitment (what an auditor checks).
    pub fn opens(&self) -> bool {
        let salt: Option<Vec<u8>> = (0..self.salt.len())
            .step_by(2)
            .map(|i| {
                self.salt
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect();
        salt.is_some_and(|salt| {
            nara_ledger::entry::actor_commitment(&format!("account:{}", self.account_id), &salt)
                == self.commitment
        })
    }
}

/// The actor a public entry names: `citizen`'s own action as a fresh
/// commitment (its opening added to `openings`, stored in the entry's
/// transaction), anyone else's (officials, operators, systems) as it is.
pub(crate) fn public_actor(actor: &str, citizen: i64, openings: &mut Vec<Opening>) -> String {
    if actor == format!("account:{citizen}") {
        let o = Opening::new(citizen);
        let named = o.commitment.clone();
        openings.push(o);
        named
    } else {
        actor.to_owned()
    }
}

/// Stores the openings of a transaction's entries, in that transaction.
macro_rules! record_openings {
    ($tx:ident, $openings:expr) => {{
        for o in $openings {
            sqlx::query(
                "INSERT INTO actor_openings (commitment, account_id, salt, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&o.commitment)
            .bind(o.account_id)
            .bind(&o.salt)
            .bind(o.created_at)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
pub(crate) use record_openings;

pub(crate) fn entry_bytes(
    kind: &str,
    actor: &str,
    subjects: Vec<String>,
    state: &impl serde::Serialize,
) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(state)
        .map_err(|e| StoreError::Corrupt(format!("serialising state: {e}")))?;
    let entry = Entry {
        kind: kind.to_owned(),
        time_ms: nara_core::Timestamp::now().0,
        actor: actor.to_owned(),
        subjects,
        digest: nara_ledger::entry::digest(&json),
    };
    entry
        .encode()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn hashes_from(bytes: &[u8]) -> Result<Vec<Hash>> {
    nara_ledger::tile::hashes_of(bytes)
        .ok_or_else(|| StoreError::Corrupt("a stored tile is not whole hashes".into()))
}

fn concat(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flatten().copied().collect()
}

/// The right edge of the tree: the last (partial) tile of each level, and
/// the tiles that filled up during this integration.
struct Edge {
    /// level → (tile index, hashes)
    tiles: Vec<(u64, Vec<Hash>)>,
    /// Tiles completed during this integration: (level, index) → 256 hashes.
    full: HashMap<(u8, u64), Vec<Hash>>,
}

impl Edge {
    fn push(&mut self, level: usize, hash: Hash) {
        if self.tiles.len() <= level {
            self.tiles.push((0, Vec::new()));
        }
        let (index, hashes) = &mut self.tiles[level];
        hashes.push(hash);
        if hashes.len() as u64 == WIDTH {
            let full = std::mem::take(hashes);
            let key = (level as u8, *index);
            *index += 1;
            let root = root_of(&full);
            self.full.insert(key, full);
            self.push(level + 1, root);
        }
    }

    /// Every tile to write back: the completed ones and the non-empty edge.
    fn to_write(&self) -> impl Iterator<Item = ((u8, u64), &Vec<Hash>)> {
        let edge = self
            .tiles
            .iter()
            .enumerate()
            .filter(|(_, (_, h))| !h.is_empty())
            .map(|(l, (i, h))| ((l as u8, *i), h));
        self.full.iter().map(|(k, v)| (*k, v)).chain(edge)
    }

    fn fetch(
        &self,
        level: u8,
        index: u64,
        width: u64,
    ) -> std::result::Result<Vec<Hash>, (u8, u64)> {
        let hashes = match self.full.get(&(level, index)) {
            Some(h) => h,
            None => match self.tiles.get(usize::from(level)) {
                Some((i, h)) if *i == index => h,
                _ => return Err((level, index)),
            },
        };
        Ok(hashes[..(width as usize).min(hashes.len())].to_vec())
    }
}

impl Store {
    /// Moves pending entries into the log and signs a checkpoint of the new
    /// tree. Returns `None` when there was nothing to do (or, on PostgreSQL,
    /// another node holds the integrator lock).
    pub async fn integrate(&self, signer: &Signer) -> Result<Option<Integrated>> {
        let postgres = self.kind() == BackendKind::Postgres;
        // On SQLite the entries already have their indexes: read and hash them
        // before taking the write turn, so appenders wait only for the tiles
        // and the checkpoint to be written.
        let prepared: Option<Prepared> = if postgres {
            None
        } else {
            let last: Option<i64> = with_pool!(self, |pool| sqlx::query_scalar(
                "SELECT MAX(size) FROM ledger_checkpoints"
            )
            .fetch_one(pool)
            .await?);
            let size = last.unwrap_or(0);
            let rows: Vec<(i64, Vec<u8>)> = with_pool!(self, |pool| sqlx::query_as(
                "SELECT idx, entry FROM ledger_entries WHERE idx >= $1 ORDER BY idx LIMIT $2",
            )
            .bind(size)
            .bind(BATCH)
            .fetch_all(pool)
            .await?);
            if let Some((i, (idx, _))) = rows
                .iter()
                .enumerate()
                .find(|(i, (idx, _))| *idx != size + *i as i64)
            {
                return Err(StoreError::Corrupt(format!(
                    "ledger entry {} is missing before entry {idx}",
                    size + i as i64
                )));
            }
            let leaves = rows.iter().map(|(_, e)| leaf_hash(e)).collect();
            Some(Prepared { last, rows, leaves })
        };
        let result: Option<Integrated> = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            if postgres {
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(INTEGRATOR_LOCK)
                    .fetch_one(&mut *tx)
                    .await?;
                if !locked {
                    return Ok(None);
                }
            }
            let last: Option<i64> = sqlx::query_scalar("SELECT MAX(size) FROM ledger_checkpoints")
                .fetch_one(&mut *tx)
                .await?;
            // The entries to integrate, in order, and the tree size they extend.
            let (size, pending): (i64, Vec<(i64, Vec<u8>)>) = if postgres {
                let mut pending: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                    "DELETE FROM ledger_pending WHERE id IN (SELECT id FROM ledger_pending ORDER BY id LIMIT $1) RETURNING id, entry",
                )
                .bind(BATCH)
                .fetch_all(&mut *tx)
                .await?;
                pending.sort_by_key(|(id, _)| *id);
                let size: i64 =
                    sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM ledger_entries")
                        .fetch_one(&mut *tx)
                        .await?;
                (size, pending)
            } else {
                // Read before the write turn; if another integrator moved the
                // tree on meanwhile, this round has nothing to do.
                let Some(prepared) = &prepared else {
                    return Err(StoreError::Corrupt("no prepared entries".into()));
                };
                if prepared.last != last {
                    return Ok(None);
                }
                (last.unwrap_or(0), prepared.rows.clone())
            };
            if pending.is_empty() && last == Some(size) {
                return Ok(None);
            }
            let size = size as u64;

            // Load the right edge of every level.
            let mut edge = Edge {
                tiles: Vec::new(),
                full: HashMap::new(),
            };
            let mut level = 0u32;
            loop {
                let at_level = if level * HEIGHT >= 64 {
                    0
                } else {
                    size >> (level * HEIGHT)
                };
                let (index, width) = (at_level / WIDTH, at_level % WIDTH);
                let hashes = if width > 0 {
                    let stored: Option<Vec<u8>> = sqlx::query_scalar(
                        "SELECT hashes FROM ledger_tiles WHERE level = $1 AND idx = $2",
                    )
                    .bind(level as i32)
                    .bind(index as i64)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let hashes = hashes_from(&stored.unwrap_or_default())?;
                    if (hashes.len() as u64) < width {
                        return Err(StoreError::Corrupt(format!(
                            "ledger tile {level}/{index} has {} hashes, expected {width}",
                            hashes.len()
                        )));
                    }
                    hashes[..width as usize].to_vec()
                } else {
                    Vec::new()
                };
                edge.tiles.push((index, hashes));
                if at_level < WIDTH {
                    break;
                }
                level += 1;
            }

            // Sequence the entries (PostgreSQL) and extend the tiles.
            let new_size = size + pending.len() as u64;
            let to_insert: &[(i64, Vec<u8>)] = if postgres { &pending } else { &[] };
            for chunk in to_insert
                .chunks(1_000)
                .enumerate()
                .map(|(c, chunk)| (size + (c * 1_000) as u64, chunk))
            {
                let (first, rows) = chunk;
                let mut sql = String::from("INSERT INTO ledger_entries (idx, entry) VALUES ");
                for i in 0..rows.len() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
                }
                let mut q = sqlx::query(&sql);
                for (i, (_, entry)) in rows.iter().enumerate() {
                    q = q.bind((first + i as u64) as i64).bind(entry.as_slice());
                }
                q.execute(&mut *tx).await?;
            }
            match &prepared {
                Some(prepared) => prepared.leaves.iter().for_each(|h| edge.push(0, *h)),
                None => pending
                    .iter()
                    .for_each(|(_, entry)| edge.push(0, leaf_hash(entry))),
            }
            for ((level, index), hashes) in edge.to_write() {
                sqlx::query(
                    "INSERT INTO ledger_tiles (level, idx, hashes) VALUES ($1, $2, $3) \
                     ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes",
                )
                .bind(i32::from(level))
                .bind(index as i64)
                .bind(concat(hashes))
                .execute(&mut *tx)
                .await?;
            }

            // The new tree head, from the right edge alone.
            let mut src = TileHashes::new(new_size, |l, i, w| edge.fetch(l, i, w));
            let root = merkle::tree_root(&mut src, new_size)
                .map_err(|e| StoreError::Corrupt(format!("computing the tree head: {e:?}")))?;
            let checkpoint = Checkpoint {
                origin: signer.verifier().name().to_owned(),
                size: new_size,
                root,
                extensions: Vec::new(),
            };
            let note = signer
                .sign(&checkpoint.body())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let now = nara_core::Timestamp::now().0;
            sqlx::query("INSERT INTO ledger_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)")
                .bind(new_size as i64)
                .bind(root.as_slice())
                .bind(&note)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Some(Integrated {
                checkpoint: StoredCheckpoint {
                    size: new_size,
                    root,
                    note,
                    created_at: now,
                },
                entries: pending.len() as u64,
                more_waiting: pending.len() as i64 == BATCH,
            })
        });
        Ok(result)
    }

    /// Appends entries (canonical bytes) durably in one transaction: for
    /// records that are not catalogue changes, and bulk paths. Catalogue
    /// writes append their own entry inside their own transaction instead.
    pub async fn append_entries(&self, entries: &[Vec<u8>]) -> Result<()> {
        for e in entries {
            Entry::check(e).map_err(|e| {
                StoreError::Invalid(nara_core::Invalid::one("entry", e.to_string()))
            })?;
        }
        let sqlite = self.kind() == BackendKind::Sqlite;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            append_in_tx!(tx, sqlite, entries);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The latest signed checkpoint, if any was published.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>> {
        let row: Option<(i64, Vec<u8>, String, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT size, root, note, created_at FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"
        )
        .fetch_optional(pool)
        .await?
        });
        row.map(|(size, root, note, created_at)| {
            let root: Hash = root
                .try_into()
                .map_err(|_| StoreError::Corrupt("a checkpoint root is not 32 bytes".into()))?;
            Ok(StoredCheckpoint {
                size: size as u64,
                root,
                note,
                created_at,
            })
        })
        .transpose()
    }

    /// Every published checkpoint's size and root, oldest first (what a
    /// restored log must reproduce).
    pub async fn ledger_checkpoint_roots(&self) -> Result<Vec<(u64, Hash)>> {
        let rows: Vec<(i64, Vec<u8>)> = with_pool!(self, |pool| sqlx::query_as(
            "SELECT size, root FROM ledger_checkpoints ORDER BY size"
        )
        .fetch_all(pool)
        .await?);
        rows.into_iter()
            .map(|(size, root)| {
                let root: Hash = root
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("a checkpoint root is not 32 bytes".into()))?;
                Ok((size as u64, root))
            })
            .collect()
    }

    /// A stored hash tile, as served (whole hashes, full or the partial edge).
    pub async fn ledger_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT hashes FROM ledger_tiles WHERE level = $1 AND idx = $2"
        )
        .bind(i32::from(level))
        .bind(index as i64)
        .fetch_optional(pool)
        .await?))
    }

    /// Entries `start..start + count` of the log, in order.
    pub async fn ledger_entries(&self, start: u64, count: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> = with_pool!(self, |pool| sqlx::query_as(
            "SELECT idx, entry FROM ledger_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx"
        )
        .bind(start as i64)
        .bind(start.saturating_add(count).min(i64::MAX as u64) as i64)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|(i, e)| (i as u64, e)).collect())
    }

    /// The newest entries, newest first.
    pub async fn recent_ledger_entries(&self, limit: u32) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> = with_pool!(self, |pool| sqlx::query_as(
            "SELECT idx, entry FROM ledger_entries ORDER BY idx DESC LIMIT $1"
        )
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|(i, e)| (i as u64, e)).collect())
    }

    /// Entries written but not yet in a checkpoint.
    pub async fn ledger_pending_count(&self) -> Result<u64> {
        let n: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(
            if self.kind() == BackendKind::Sqlite {
                "SELECT COUNT(*) FROM ledger_entries WHERE idx >= COALESCE((SELECT MAX(size) FROM ledger_checkpoints), 0)"
            } else {
                "SELECT COUNT(*) FROM ledger_pending"
            }
        )
        .fetch_one(pool)
        .await?
        });
        Ok(n.max(0) as u64)
    }

    /// Runs `f` over subtree hashes read from the stored tiles of a tree of
    /// `size` leaves, loading the tiles it asks for.
    async fn with_stored_tiles<T>(
        &self,
        size: u64,
        f: impl Fn(
            &mut dyn SubtreeHashes<Error = TileError<(u8, u64)>>,
        ) -> std::result::Result<T, TileError<(u8, u64)>>,
    ) -> Result<T> {
        let mut have: HashMap<(u8, u64), Vec<Hash>> = HashMap::new();
        // Each round loads at least one more tile; a proof needs a few per level.
        for _ in 0..1_000 {
            // Tiles already read (this call, or cached by earlier ones) are
            // used at once; only a tile never seen costs a round to load.
            let mut src = TileHashes::new(size, |l, i, w| {
                if let Some(t) = have.get(&(l, i)) {
                    return if t.len() as u64 >= w {
                        Ok(t[..w as usize].to_vec())
                    } else {
                        Err((l, u64::MAX))
                    };
                }
                match self.tiles.get((l, i)) {
                    Some(t) if t.len() as u64 >= w => Ok(t[..w as usize].to_vec()),
                    _ => Err((l, i)),
                }
            });
            match f(&mut src) {
                Ok(v) => return Ok(v),
                Err(TileError::Fetch((level, index))) if index != u64::MAX => {
                    let bytes = self.ledger_tile(level, index).await?.ok_or_else(|| {
                        StoreError::Corrupt(format!("ledger tile {level}/{index} is missing"))
                    })?;
                    let hashes = hashes_from(&bytes)?;
                    self.tiles.insert((level, index), &hashes);
                    have.insert((level, index), hashes);
                }
                Err(e) => {
                    return Err(StoreError::Corrupt(format!(
                        "ledger tiles are inconsistent: {e:?}"
                    )));
                }
            }
        }
        Err(StoreError::Corrupt("a proof needed too many tiles".into()))
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<std::result::Result<Vec<Hash>, ProofError>> {
        self.with_stored_tiles(size, |src| merkle::inclusion_proof(src, index, size))
            .await
    }

    /// The consistency proof between the trees of `first` and `second` entries.
    pub async fn consistency_proof(
        &self,
        first: u64,
        second: u64,
    ) -> Result<std::result::Result<Vec<Hash>, ProofError>> {
        self.with_stored_tiles(second, |src| merkle::consistency_proof(src, first, second))
            .await
    }

    /// The root hash of the tree of `size` entries, from the stored tiles.
    pub async fn ledger_root(&self, size: u64) -> Result<Hash> {
        self.with_stored_tiles(size, |src| merkle::tree_root(src, size))
            .await
    }
}

impl Store {
    /// What opens the commitments naming `account_id`, newest first (the
    /// citizen's own view).
    pub async fn openings_of(&self, account_id: i64, limit: i64) -> Result<Vec<Opening>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT commitment, account_id, salt, created_at FROM actor_openings \
             WHERE account_id = $1 ORDER BY created_at DESC LIMIT $2"
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// What opens one commitment (an auditor's question).
    pub async fn opening(&self, commitment: &str) -> Result<Option<Opening>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT commitment, account_id, salt, created_at FROM actor_openings WHERE commitment = $1"
        )
        .bind(commitment)
        .fetch_optional(pool)
        .await?
        }))
    }
}
