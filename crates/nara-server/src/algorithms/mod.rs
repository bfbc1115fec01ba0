//! Algorithms under public rules: the register, decision records, human
//! oversight and appeals. This module is the use case without HTTP:
//! [`run`] is the one way any caller — an agency system's signed request,
//! an official's page, the screening of phishing reports — gets a model's
//! output, and it stores the record (and its ledger entry) before the output
//! is returned. A model runs only while its register entry is in use and
//! names the very version and artefact that runs.
//!
//! `register` (the public register: pages, JSON, the Dutch standard's
//! export, publishing), `oversight` (officials' queues, reviews, appeals,
//! running a model from a page), `decisions` (the agency systems' API and the
//! citizen's own decisions), `screening` (phone-call phishing reports),
//! `demo` (the demo's decisions, so nothing is empty at first sight).

pub mod decisions;
pub mod demo;
pub mod oversight;
pub mod register;
pub mod review_images;
pub mod screening;

use nara_core::algorithms::{
    DecisionState, Factor, Lifecycle, OutOfRange, RegisterEntry, sha256_hex,
};
use nara_store::StoreError;
use nara_store::algorithms::{AlgorithmVersion, DecisionRecord};
use rand::RngCore;
use std::sync::Arc;

use crate::AppState;
use crate::web::i18n::Tr;

/// A published register entry, parsed.
#[derive(Clone)]
pub struct Registered {
    pub version: i64,
    pub entry: RegisterEntry,
    pub entry_sha256: String,
    pub published_at: i64,
    pub published_by: String,
}

impl Registered {
    fn of(v: AlgorithmVersion) -> Result<Registered, StoreError> {
        let entry = serde_json::from_str(&v.entry)
            .map_err(|e| StoreError::Corrupt(format!("register entry {}: {e}", v.code)))?;
        Ok(Registered {
            version: v.version,
            entry,
            entry_sha256: v.entry_sha256,
            published_at: v.published_at,
            published_by: v.published_by,
        })
    }
}

/// The latest version of every register entry, from the node's cache.
pub async fn register_entries(state: &AppState) -> Result<Arc<Vec<Registered>>, StoreError> {
    state.register.latest(&state.store).await
}

/// How long a node trusts its copy of the register: every decision reads
/// its entry, and a second is how late another node's publication (a model
/// withdrawn from use, say) takes effect here. Publishing on this node
/// forgets the copy at once.
const REGISTER_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The register's latest entries, parsed once a second at most.
#[derive(Default)]
pub struct RegisterCache(std::sync::RwLock<Option<(std::time::Instant, Arc<Vec<Registered>>)>>);

impl RegisterCache {
    /// The latest version of every entry: the copy while it is fresh, else
    /// read and parsed again.
    pub async fn latest(
        &self,
        store: &nara_store::Store,
    ) -> Result<Arc<Vec<Registered>>, StoreError> {
        if let Ok(copy) = self.0.read()
            && let Some((read_at, entries)) = copy.as_ref()
            && read_at.elapsed() < REGISTER_FRESH
        {
            return Ok(entries.clone());
        }
        let read_at = std::time::Instant::now();
        let entries: Arc<Vec<Registered>> = Arc::new(
            store
                .algorithms()
                .await?
                .into_iter()
                .map(Registered::of)
                .collect::<Result<_, _>>()?,
        );
        if let Ok(mut copy) = self.0.write() {
            *copy = Some((read_at, entries.clone()));
        }
        Ok(entries)
    }

    /// Drops the copy (after publishing), so the next read sees the change.
    pub fn forget(&self) {
        if let Ok(mut copy) = self.0.write() {
            *copy = None;
        }
    }
}

/// Every version of one entry, newest first (empty: not registered).
pub async fn versions(state: &AppState, code: &str) -> Result<Vec<Registered>, StoreError> {
    state
        .store
        .algorithm_versions(code)
        .await?
        .into_iter()
        .map(Registered::of)
        .collect()
}

/// Publishes the shipped entries of the reference models (those not
/// already published as they are). Every node does it at start; an entry
/// identical to the latest version is not published again.
pub async fn publish_shipped(store: &nara_store::Store) -> anyhow::Result<()> {
    let entries = nara_algorithms::register::shipped().map_err(anyhow::Error::msg)?;
    for entry in entries {
        entry.validate()?;
        let json = serde_json::to_string(&entry)?;
        store
            .publish_algorithm(&entry.code, &entry.organisation, &json, "system")
            .await?;
    }
    Ok(())
}

/// Where a node reads the hash lists authorities supply (one file a list).
pub fn hash_lists_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("hash-lists")
}

/// Loads every `*.txt` hash list of `data_dir/hash-lists` into the image
/// matcher; a list with a bad line is an error naming the file and line.
/// How many lists and hashes were loaded.
pub fn load_hash_lists(data_dir: &std::path::Path) -> anyhow::Result<(usize, usize)> {
    let dir = hash_lists_dir(data_dir);
    // No folder, nothing to load: what the process holds stays (empty in a
    // node's own process; in tests, the lists of another node in it).
    if !dir.is_dir() {
        return Ok((0, 0));
    }
    let mut lists = Vec::new();
    {
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        for file in files {
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&file)?;
            let list = nara_algorithms::images::parse_list(&name, &text)
                .map_err(|e| anyhow::anyhow!("hash list {}: {e}", file.display()))?;
            lists.push(list);
        }
    }
    let counts = (lists.len(), lists.iter().map(|l| l.hashes.len()).sum());
    nara_algorithms::images::load_lists(lists);
    Ok(counts)
}

/// One decision record to write, with the signature of the request that
/// asked for it when that is claimed in the same transaction.
#[derive(Clone)]
pub struct DecisionWrite {
    record: DecisionRecord,
    claim: Option<String>,
}

/// Decision records, group-committed: up to 256 a transaction (with the
/// signatures they claim), each caller answered once its record and ledger
/// entry are durable.
pub type Decisions = crate::group_commit::GroupCommit<DecisionWrite, ()>;

pub fn decisions_writer() -> Decisions {
    crate::group_commit::GroupCommit::new(256, |store, batch| {
        Box::pin(async move {
            let n = batch.len();
            let claims: Vec<String> = batch.iter().filter_map(|w| w.claim.clone()).collect();
            let records: Vec<DecisionRecord> = batch.into_iter().map(|w| w.record).collect();
            let now = nara_core::Timestamp::now().0;
            store
                .record_decisions_claiming(
                    &records,
                    &claims,
                    now,
                    now - crate::identity::machine::REPLAY_WINDOW_MS,
                )
                .await?;
            Ok(vec![(); n])
        })
    })
}

/// Why a model gave no output (and nothing was recorded).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no algorithm {0} is registered and run here")]
    NotRegistered(String),
    #[error("algorithm {0} is not in use (its register entry says so)")]
    NotInUse(String),
    #[error(
        "the model that runs ({running}) is not the one registered ({registered}); nothing was decided"
    )]
    NotAsRegistered { running: String, registered: String },
    #[error("input out of the model's range: {0}")]
    OutOfRange(OutOfRange),
    /// The signed request that asked was a replay: nothing was recorded.
    #[error("this signature was already used: a replay is refused")]
    Replayed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who asks, about whom, and for what.
pub struct Requested {
    /// The affected person's national identifier hash, when there is one.
    pub subject_hash: Option<String>,
    /// What the decision is part of (`application:REF`, a system's own
    /// reference): a model decides a source once.
    pub source: Option<String>,
    /// The ledger's actor: `subsystem:…`, `account:…` or `system`.
    pub requested_by: String,
}

/// Runs registered model `code` on `input` and records the output — the
/// record and its ledger entry committed before anything is returned. A
/// record the register marks for review waits for an official; one that
/// does not is final at once, and its person told on her account.
pub async fn run(
    state: &AppState,
    code: &str,
    input: serde_json::Value,
    requested: Requested,
) -> Result<DecisionRecord, RunError> {
    run_claiming(state, code, input, requested, None).await
}

/// [`run`], for a signed request whose signature is claimed against replay
/// in the record's own transaction (taken from `unclaimed` only when the
/// record is written: a refusal leaves it to the policy).
pub async fn run_claiming(
    state: &AppState,
    code: &str,
    input: serde_json::Value,
    requested: Requested,
    unclaimed: Option<&crate::identity::machine::UnclaimedSignature>,
) -> Result<DecisionRecord, RunError> {
    let entries = register_entries(state).await?;
    let registered = entries
        .iter()
        .find(|r| r.entry.code == code)
        .ok_or_else(|| RunError::NotRegistered(code.to_owned()))?;
    let model =
        nara_algorithms::model(code).ok_or_else(|| RunError::NotRegistered(code.to_owned()))?;
    if registered.entry.status != Lifecycle::InUse {
        return Err(RunError::NotInUse(code.to_owned()));
    }
    // Every model is trained by `nara_algorithms::model` above (once, when
    // the node publishes the shipped entries at start); a decision takes
    // microseconds, except a slow model's, which goes off the async threads.
    let (output, sha) = if model.slow() {
        tokio::task::spawn_blocking({
            let input = input.clone();
            move || (model.decide(&input), model.artefact_sha256())
        })
        .await
        .map_err(|_| StoreError::Corrupt("a model panicked".into()))?
    } else {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (model.decide(&input), model.artefact_sha256())
        }))
        .map_err(|_| StoreError::Corrupt("a model panicked".into()))?
    };
    if model.version() != registered.entry.model_version || sha != registered.entry.artefact_sha256
    {
        return Err(RunError::NotAsRegistered {
            running: format!("{} {}", model.version(), &sha[..12.min(sha.len())]),
            registered: format!(
                "{} {}",
                registered.entry.model_version,
                &registered.entry.artefact_sha256[..12.min(registered.entry.artefact_sha256.len())]
            ),
        });
    }
    let output = output.map_err(RunError::OutOfRange)?;
    let input_text = input.to_string();
    let decision_state = DecisionState::first(registered.entry.oversight, output.flagged);
    let mut id = [0u8; 8];
    rand::rng().fill_bytes(&mut id);
    let record = DecisionRecord {
        id: format!("AD-{}", hex::encode(id)),
        code: code.to_owned(),
        register_version: registered.version,
        organisation: registered.entry.organisation.clone(),
        model_version: model.version().to_owned(),
        model_sha256: sha,
        input_sha256: sha256_hex(input_text.as_bytes()),
        input: input_text,
        score: output.score,
        threshold: output.threshold,
        outcome: output.outcome.clone(),
        flagged: i64::from(output.flagged),
        factors: serde_json::to_string(&output.factors).unwrap_or_else(|_| "[]".into()),
        subject_hash: requested.subject_hash,
        source: requested.source,
        requested_by: requested.requested_by,
        state: decision_state.as_str().to_owned(),
        final_outcome: decision_state.is_final().then(|| output.outcome.clone()),
        reviewer_id: None,
        reviewer_name: None,
        review_reason: None,
        reviewed_at: None,
        notified_at: None,
        appeal_state: None,
        appeal_reason: None,
        appealed_at: None,
        appeal_official_id: None,
        appeal_answer: None,
        appeal_decided_at: None,
        created_at: nara_core::Timestamp::now().0,
    };
    let write = DecisionWrite {
        record: record.clone(),
        claim: unclaimed.and_then(crate::identity::machine::UnclaimedSignature::take),
    };
    match state.decisions.write(&state.store, write).await {
        Ok(()) => {}
        Err(crate::group_commit::WriteError::Conflict(why)) => {
            return Err(RunError::Store(StoreError::Conflict(why)));
        }
        Err(crate::group_commit::WriteError::Replayed) => return Err(RunError::Replayed),
        Err(e) => return Err(RunError::Store(StoreError::Corrupt(e.to_string()))),
    }
    state.metrics.decision(code, &record.state);
    if record.final_outcome.is_some() && record.subject_hash.is_some() {
        tell(state, &record.id).await;
        return Ok(state.store.decision(&record.id).await?.unwrap_or(record));
    }
    Ok(record)
}

/// Tells the person a final decision is about, when she has an account:
/// her decisions page shows it from now on (`notified_at`, a ledger
/// entry). A failure is logged; the page still shows the decision.
pub async fn tell(state: &AppState, id: &str) {
    let Ok(Some(record)) = state.store.decision(id).await else {
        return;
    };
    let Some(subject) = record.subject_hash.as_deref() else {
        return;
    };
    match state.store.account_id_by_national_hash(subject).await {
        Ok(Some(_)) => {
            if let Err(e) = state.store.mark_decision_notified(id).await {
                tracing::warn!(error = %e, decision = id, "marking a decision told");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, decision = id, "finding a decision's person"),
    }
}

/// A factor in the reader's language.
pub fn factor_text(tr: &Tr, factor: &Factor) -> String {
    let mut text = tr
        .s(&format!("algorithms.factor.{}", factor.key))
        .to_owned();
    for (i, arg) in factor.args.iter().enumerate() {
        text = text.replace(&format!("{{{i}}}"), arg);
    }
    text
}

/// An outcome in the reader's language.
pub fn outcome_text(tr: &Tr, outcome: &str) -> &'static str {
    tr.s(&format!("algorithms.outcome.{outcome}"))
}

/// A record's factors, parsed (stored by [`run`], so they parse).
pub fn factors_of(record: &DecisionRecord) -> Vec<Factor> {
    serde_json::from_str(&record.factors).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nara_core::Lang;

    #[test]
    fn every_outcome_and_factor_speaks_every_language() {
        let factors = [
            "scam_phrase",
            "no_scam_phrases",
            "signal_cycle",
            "signal_green",
            "signal_forecast",
            "zone_cell",
            "school_demand",
            "school_working_parents",
            "school_new_housing",
            "school_baseline",
            "image_match",
            "image_no_match",
            "image_turned",
            "image_mirrored",
            "image_list",
            "grooming_phrase",
            "no_grooming_phrases",
        ];
        for lang in Lang::ALL {
            let tr = Tr(lang);
            for m in nara_algorithms::models() {
                for o in m.outcomes() {
                    assert_ne!(outcome_text(&tr, o), "?", "{o} in {lang:?}");
                }
                let Ok(out) = m.decide(&m.example()) else {
                    // The image matcher needs a hash list; its factors are listed below.
                    continue;
                };
                for f in out.factors {
                    assert!(factors.contains(&f.key.as_str()), "{}", f.key);
                }
            }
            for key in factors {
                let f = Factor {
                    key: key.into(),
                    args: vec!["a".into(); 4],
                    weight: 0.0,
                };
                assert!(!factor_text(&tr, &f).contains('?'), "{key} in {lang:?}");
            }
        }
    }
}
