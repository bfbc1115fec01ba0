//! The public ledger over HTTP: the signing key, the integrator task, the
//! C2SP tlog-tiles endpoints (`/ledger/checkpoint`, `/ledger/tile/…`,
//! `/ledger/vkey`), JSON conveniences (an entry with its inclusion proof, a
//! consistency proof), and the auditor's client that verifies a log over
//! HTTP with nothing but its verifier key.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use nara_ledger::audit::{self, AuditError};
use nara_ledger::note::{self, NoteError, Signer, Verifier};
use nara_ledger::tile::{
    TileKind, TilePath, WIDTH, decode_bundle, encode_bundle, hashes_of, tile_width,
};
use nara_ledger::{Checkpoint, Entry, Hash, leaf_hash};
use nara_store::Store;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::extract::{ApiPath, ApiQuery};
use crate::problem::Problem;

/// The ledger's signing key and the verifier keys of retired ones.
pub struct LedgerKeys {
    pub signer: Signer,
    pub retired: Vec<Verifier>,
}

impl LedgerKeys {
    /// A throwaway key, for tests.
    pub fn ephemeral(origin: &str) -> Result<LedgerKeys, NoteError> {
        let seed: [u8; 32] = rand::random();
        Ok(LedgerKeys {
            signer: Signer::new(origin, &seed)?,
            retired: Vec::new(),
        })
    }

    /// Loads the key at `path`, creating it (mode 0600) on first start, and
    /// the verifier keys of rotated-out keys kept beside it.
    pub fn load_or_create(path: &FsPath, origin: &str) -> anyhow::Result<LedgerKeys> {
        let signer = match std::fs::read_to_string(path) {
            Ok(text) => {
                Signer::from_skey(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let seed: [u8; 32] = rand::random();
                let signer = Signer::new(origin, &seed)
                    .map_err(|e| anyhow::anyhow!("ledger origin {origin:?}: {e}"))?;
                crate::keyfile::write_private(path, &signer.skey())?;
                tracing::info!(key = %path.display(), "created the ledger signing key");
                signer
            }
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        };
        if signer.verifier().name() != origin {
            anyhow::bail!(
                "the ledger key {} is for origin {:?}, but this node's origin is {origin:?}",
                path.display(),
                signer.verifier().name()
            );
        }
        Ok(LedgerKeys {
            signer,
            retired: retired_keys(path),
        })
    }

    /// Retires the key at `path` (kept beside it as `<file>.<key id>.retired`
    /// so its verifier key stays published) and makes a new one.
    pub fn rotate(path: &FsPath, origin: &str) -> anyhow::Result<LedgerKeys> {
        let old = LedgerKeys::load_or_create(path, origin)?;
        let retired = retired_path(path, old.signer.verifier().key_id());
        std::fs::rename(path, &retired)?;
        LedgerKeys::load_or_create(path, origin)
    }

    /// Every verifier key: the current one first.
    pub fn vkeys(&self) -> Vec<String> {
        std::iter::once(self.signer.verifier())
            .chain(self.retired.iter().cloned())
            .map(|v| v.vkey())
            .collect()
    }
}

fn retired_path(path: &FsPath, id: u32) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{id:08x}.retired"));
    path.with_file_name(name)
}

fn retired_keys(path: &FsPath) -> Vec<Verifier> {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        FsPath::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut keys: Vec<Verifier> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(stem) && n.ends_with(".retired"))
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|text| Signer::from_skey(&text).ok().map(|s| s.verifier()))
        .collect();
    keys.sort_by_key(Verifier::key_id);
    keys
}

/// How often the integrator looks for new entries: a checkpoint follows an
/// append within about this long (plus the integration itself).
pub const INTEGRATE_EVERY: Duration = Duration::from_millis(200);

/// Integrates pending entries and signs checkpoints until the store closes.
pub fn spawn_integrator(store: Store, keys: Arc<LedgerKeys>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !store.is_closed() {
            match store.integrate(&keys.signer).await {
                // More is waiting beyond one batch: go again at once.
                Ok(Some(done)) if done.more_waiting => continue,
                Ok(_) => {}
                Err(e) => {
                    if store.is_closed() {
                        break;
                    }
                    tracing::error!(error = %e, "ledger integration failed");
                }
            }
            tokio::time::sleep(INTEGRATE_EVERY).await;
        }
    })
}

// ------------------------------------------------------------------ C2SP endpoints

fn text(body: String, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

fn plain_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

fn store_error(e: nara_store::StoreError) -> Response {
    tracing::error!(error = %e, "ledger read failed");
    plain_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// `GET /ledger/checkpoint`: the latest signed checkpoint (mutable: cached a second).
pub async fn checkpoint(State(state): State<AppState>) -> Response {
    match state.store.latest_checkpoint().await {
        Ok(Some(cp)) => text(cp.note, "public, max-age=1"),
        Ok(None) => plain_error(
            StatusCode::NOT_FOUND,
            "no checkpoint has been published yet",
        ),
        Err(e) => store_error(e),
    }
}

/// `GET /ledger/vkey`: the verifier key of the current signing key.
pub async fn vkey(State(state): State<AppState>) -> Response {
    text(
        format!("{}\n", state.ledger.signer.verifier().vkey()),
        "public, max-age=300",
    )
}

/// `GET /ledger/vkeys`: every verifier key, current first, then retired ones.
pub async fn vkeys(State(state): State<AppState>) -> Response {
    text(
        state.ledger.vkeys().join("\n") + "\n",
        "public, max-age=300",
    )
}

/// `GET /ledger/tile/<L>/<N>[.p/<W>]` and `/ledger/tile/entries/<N>[.p/<W>]`.
pub async fn tile(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    let tile = match TilePath::parse(&path) {
        Ok(t) => t,
        Err(e) => return plain_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let size = match state.store.latest_checkpoint().await {
        Ok(cp) => cp.map(|c| c.size).unwrap_or(0),
        Err(e) => return store_error(e),
    };
    let level = match tile.kind {
        TileKind::Hashes { level } => level,
        TileKind::Entries => 0,
    };
    let available = tile_width(level, tile.index, size);
    let width = match tile.width {
        None if available == WIDTH => WIDTH,
        Some(w) if u64::from(w) <= available => u64::from(w),
        // Not published (yet): a full tile still partial, or wider than the tree.
        _ => return plain_error(StatusCode::NOT_FOUND, "no such tile in the published tree"),
    };
    let body = match tile.kind {
        TileKind::Hashes { level } => match state.store.ledger_tile(level, tile.index).await {
            Ok(Some(bytes)) if bytes.len() as u64 >= width * 32 => {
                bytes[..(width * 32) as usize].to_vec()
            }
            Ok(_) => return plain_error(StatusCode::NOT_FOUND, "no such tile"),
            Err(e) => return store_error(e),
        },
        TileKind::Entries => match state.store.ledger_entries(tile.index * WIDTH, width).await {
            Ok(rows) if rows.len() as u64 == width => {
                encode_bundle(rows.iter().map(|(_, e)| e.as_slice()))
            }
            Ok(_) => return plain_error(StatusCode::NOT_FOUND, "no such entry bundle"),
            Err(e) => return store_error(e),
        },
    };
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

// ------------------------------------------------------------------ JSON conveniences

fn b64(h: &Hash) -> String {
    B64.encode(h)
}

/// An entry with its inclusion proof against the latest checkpoint.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryProof {
    pub index: u64,
    /// The entry, decoded.
    #[schema(value_type = Object)]
    pub entry: serde_json::Value,
    /// The entry's canonical bytes, base64.
    pub entry_base64: String,
    /// RFC 9162 leaf hash, base64.
    pub leaf_hash: String,
    pub tree_size: u64,
    /// The signed checkpoint the proof is against.
    pub checkpoint: String,
    /// RFC 9162 inclusion proof, base64 hashes from the leaf up.
    pub inclusion_proof: Vec<String>,
}

/// A citizen's commitments in the public ledger, with what opens them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyOpenings {
    /// The citizen's own actor name, which the commitments hide.
    pub actor: String,
    pub openings: Vec<MyOpening>,
    /// How a commitment is computed from the actor and a salt.
    pub how_to_open: &'static str,
}

/// One commitment and its salt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyOpening {
    /// `citizen:` and 64 hex digits, as the ledger entry names the actor.
    pub commitment: String,
    /// Hex.
    pub salt: String,
    pub created_at: nara_core::Timestamp,
}

/// An opened commitment: the account it names.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenedCommitment {
    pub commitment: String,
    /// `account:ID`.
    pub actor: String,
    pub salt: String,
    /// Always true: a commitment that does not open is not found.
    pub opens: bool,
}

/// The signed-in citizen's own commitments in the public ledger (an entry
/// names a citizen as `citizen:…`, fresh per entry) with the salts that open
/// them, newest first, so that they can find and prove their own entries;
/// nobody else can link them.
#[utoipa::path(get, path = "/api/v1/me/ledger-openings", tag = "ledger",
    responses((status = 200, description = "The citizen's commitments, newest first (at most 1,000)", body = MyOpenings)))]
pub async fn my_openings(
    State(state): State<AppState>,
    who: crate::identity::auth::Principal,
) -> Result<Json<MyOpenings>, Problem> {
    let openings = state.store.openings_of(who.account_id, 1_000).await?;
    Ok(Json(MyOpenings {
        actor: who.actor(),
        openings: openings
            .iter()
            .map(|o| MyOpening {
                commitment: o.commitment.clone(),
                salt: o.salt.clone(),
                created_at: nara_core::Timestamp(o.created_at),
            })
            .collect(),
        how_to_open: "citizen:hex(SHA-256(\"nara actor commitment v1\\0\" || actor || \"\\0\" || salt bytes))",
    }))
}

/// An auditor opens one commitment: the account it names and the salt,
/// checked to open it. Each opening is a security event, so that opening is
/// itself accountable.
#[utoipa::path(get, path = "/api/v1/ledger/openings/{commitment}", tag = "ledger",
    params(("commitment" = String, Path, description = "A commitment as a ledger entry names it, `citizen:` and 64 hex digits")),
    responses(
        (status = 200, description = "The account the commitment names", body = OpenedCommitment),
        (status = 404, description = "No such commitment, or one that does not open", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn open_commitment(
    State(state): State<AppState>,
    who: crate::identity::auth::Principal,
    crate::identity::request::ClientAddress(address): crate::identity::request::ClientAddress,
    ApiPath(commitment): ApiPath<String>,
) -> Result<Json<OpenedCommitment>, Problem> {
    let opening = state
        .store
        .opening(&commitment)
        .await?
        .filter(nara_store::ledger::Opening::opens)
        .ok_or_else(|| Problem::not_found("commitment"))?;
    crate::identity::request::event(
        &state,
        "ledger.commitment_opened",
        Some(who.account_id),
        &who.username,
        &address,
        &commitment,
    )
    .await;
    Ok(Json(OpenedCommitment {
        commitment: opening.commitment,
        actor: format!("account:{}", opening.account_id),
        salt: opening.salt,
        opens: true,
    }))
}

/// Get a ledger entry with its inclusion proof against the latest checkpoint.
#[utoipa::path(get, path = "/api/v1/ledger/entries/{index}", tag = "ledger",
    params(("index" = u64, Path, description = "Entry index, from 0")),
    responses(
        (status = 200, description = "The entry and its proof", body = EntryProof),
        (status = 400, description = "The index is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry in the published tree", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn entry(
    State(state): State<AppState>,
    Path(index): Path<String>,
) -> Result<Json<EntryProof>, Problem> {
    let index: u64 = index
        .parse()
        .map_err(|_| Problem::bad_request("index", "must be a non-negative integer"))?;
    let cp = state
        .store
        .latest_checkpoint()
        .await?
        .ok_or_else(|| Problem::not_found("checkpoint"))?;
    if index >= cp.size {
        return Err(Problem::not_found(&format!(
            "entry {index} in a tree of {}",
            cp.size
        )));
    }
    let rows = state.store.ledger_entries(index, 1).await?;
    let Some((_, bytes)) = rows.into_iter().next() else {
        return Err(Problem::not_found(&format!("entry {index}")));
    };
    let proof = state
        .store
        .inclusion_proof(index, cp.size)
        .await?
        .map_err(|e| Problem::bad_request("index", e.to_string()))?;
    let entry = Entry::decode(&bytes)
        .ok()
        .and_then(|e| serde_json::to_value(e).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok(Json(EntryProof {
        index,
        entry,
        entry_base64: B64.encode(&bytes),
        leaf_hash: b64(&leaf_hash(&bytes)),
        tree_size: cp.size,
        checkpoint: cp.note,
        inclusion_proof: proof.iter().map(b64).collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The earlier tree size.
    pub first: u64,
    /// The later tree size; the latest checkpoint's by default.
    #[serde(default)]
    pub second: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    pub first: u64,
    pub second: u64,
    /// RFC 9162 consistency proof, base64 hashes.
    pub proof: Vec<String>,
}

/// Get a consistency proof between two tree sizes.
#[utoipa::path(get, path = "/api/v1/ledger/consistency", tag = "ledger", params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 400, description = "The sizes are not a valid pair", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn consistency(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>, Problem> {
    let latest = state
        .store
        .latest_checkpoint()
        .await?
        .map(|c| c.size)
        .unwrap_or(0);
    let second = q.second.unwrap_or(latest);
    if second > latest {
        return Err(Problem::bad_request(
            "second",
            format!("the published tree has {latest} entries"),
        ));
    }
    if q.first == 0 || q.first > second {
        return Err(Problem::bad_request(
            "first",
            format!("must be from 1 to {second}"),
        ));
    }
    let proof = state
        .store
        .consistency_proof(q.first, second)
        .await?
        .map_err(|e| Problem::bad_request("first", e.to_string()))?;
    Ok(Json(ConsistencyProof {
        first: q.first,
        second,
        proof: proof.iter().map(b64).collect(),
    }))
}

// ------------------------------------------------------------------ the auditor's client

/// What a verification established.
#[derive(Debug, Clone)]
pub struct Verified {
    pub checkpoint: Checkpoint,
    /// The verified note, to save for the next run's consistency check.
    pub note: String,
    pub entries: u64,
}

/// Why a verification failed, in words an auditor can act on.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("fetching {0}: {1}")]
    Fetch(String, String),
    #[error("the checkpoint's signature does not verify with the given key: {0}")]
    Signature(NoteError),
    #[error("the checkpoint is malformed: {0}")]
    Checkpoint(String),
    #[error("the checkpoint is for origin {got:?}, not {want:?}")]
    Origin { got: String, want: String },
    #[error("a tile or entry bundle is malformed: {0}")]
    Tile(String),
    #[error("the saved checkpoint is not valid: {0}")]
    Saved(String),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, VerifyError> {
    let r = client
        .get(url)
        .send()
        .await
        .map_err(|e| VerifyError::Fetch(url.to_owned(), e.to_string()))?;
    if !r.status().is_success() {
        return Err(VerifyError::Fetch(
            url.to_owned(),
            format!("HTTP {}", r.status()),
        ));
    }
    Ok(r.bytes()
        .await
        .map_err(|e| VerifyError::Fetch(url.to_owned(), e.to_string()))?
        .to_vec())
}

/// Verifies the log at `base` (e.g. `http://host/ledger`): the checkpoint's
/// signature, every entry against the served leaf hashes and the signed root,
/// and, given a checkpoint saved earlier, that the log still extends it.
/// `progress` is told how many entries were checked so far.
pub async fn verify_log(
    base: &str,
    vkey: &str,
    saved: Option<&str>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Verified, VerifyError> {
    verify_log_with(base, &[vkey], saved, progress).await
}

/// [`verify_log`] trusting several verifier keys of the same log (the current
/// one and retired ones), so checkpoints saved before a key rotation still check.
pub async fn verify_log_with(
    base: &str,
    vkeys: &[&str],
    saved: Option<&str>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Verified, VerifyError> {
    verify_log_against(base, vkeys, saved.as_slice(), progress).await
}

/// [`verify_log_with`] against many checkpoints saved earlier (a monitor's,
/// or a cluster test's through a failover): the log is fetched and checked
/// once, then shown to extend each. With more than one, a failure names the
/// checkpoint's size.
pub async fn verify_log_against(
    base: &str,
    vkeys: &[&str],
    saved: &[&str],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Verified, VerifyError> {
    let trusted = vkeys
        .iter()
        .flat_map(|k| k.lines())
        .filter(|k| !k.trim().is_empty())
        .map(|k| Verifier::from_vkey(k.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(VerifyError::Signature)?;
    let Some(verifier) = trusted.first().cloned() else {
        return Err(VerifyError::Signature(NoteError::BadKey(
            "no verifier key given",
        )));
    };
    if let Some(other) = trusted.iter().find(|k| k.name() != verifier.name()) {
        return Err(VerifyError::Origin {
            got: other.name().to_owned(),
            want: verifier.name().to_owned(),
        });
    }
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::new();
    let note_bytes = fetch(&client, &format!("{base}/checkpoint")).await?;
    let note_text =
        String::from_utf8(note_bytes).map_err(|_| VerifyError::Checkpoint("not UTF-8".into()))?;
    let body = note::open(&note_text, &trusted).map_err(VerifyError::Signature)?;
    let checkpoint = Checkpoint::parse(body).map_err(|e| VerifyError::Checkpoint(e.to_string()))?;
    if checkpoint.origin != verifier.name() {
        return Err(VerifyError::Origin {
            got: checkpoint.origin,
            want: verifier.name().to_owned(),
        });
    }
    let size = checkpoint.size;
    let mut entries: Vec<Vec<u8>> = Vec::with_capacity(size as usize);
    let mut served: Vec<Hash> = Vec::with_capacity(size as usize);
    let tiles = size.div_ceil(WIDTH);
    for n in 0..tiles {
        let width = tile_width(0, n, size);
        let path = TilePath {
            kind: TileKind::Entries,
            index: n,
            width: (width < WIDTH).then_some(width as u16),
        };
        let bundle = fetch(&client, &format!("{base}/tile/{}", path.to_path())).await?;
        let decoded = decode_bundle(&bundle).map_err(|e| VerifyError::Tile(e.to_string()))?;
        if decoded.len() as u64 != width {
            return Err(VerifyError::Tile(format!(
                "entry bundle {n} has {} entries, expected {width}",
                decoded.len()
            )));
        }
        entries.extend(decoded);
        let hashes_path = TilePath {
            kind: TileKind::Hashes { level: 0 },
            ..path
        };
        let tile = fetch(&client, &format!("{base}/tile/{}", hashes_path.to_path())).await?;
        let hashes = hashes_of(&tile)
            .filter(|h| h.len() as u64 == width)
            .ok_or_else(|| VerifyError::Tile(format!("tile 0/{n} is not {width} hashes")))?;
        served.extend(hashes);
        progress(entries.len() as u64, size);
    }
    let leaves = audit::check_entries(&checkpoint, &entries, &served)?;
    for note_text in saved {
        let body =
            note::open(note_text, &trusted).map_err(|e| VerifyError::Saved(e.to_string()))?;
        let earlier = Checkpoint::parse(body).map_err(|e| VerifyError::Saved(e.to_string()))?;
        match audit::check_extends(&earlier, &checkpoint, &leaves) {
            Ok(()) => {}
            Err(e) if saved.len() > 1 => {
                return Err(VerifyError::Saved(format!(
                    "the checkpoint of size {}: {}",
                    earlier.size,
                    VerifyError::from(e)
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Verified {
        checkpoint,
        note: note_text,
        entries: size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_private_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.key");
        let first = LedgerKeys::load_or_create(&path, "test.example/ledger").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let again = LedgerKeys::load_or_create(&path, "test.example/ledger").unwrap();
        assert_eq!(again.signer.verifier(), first.signer.verifier());
        assert!(LedgerKeys::load_or_create(&path, "other.example/ledger").is_err());
        let rotated = LedgerKeys::rotate(&path, "test.example/ledger").unwrap();
        assert_ne!(rotated.signer.verifier(), first.signer.verifier());
        assert_eq!(rotated.retired, vec![first.signer.verifier()]);
        assert_eq!(rotated.vkeys().len(), 2);
    }
}
