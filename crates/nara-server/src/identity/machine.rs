//! Agency systems as callers: every request signed with HTTP Message
//! Signatures (RFC 9421), algorithm `ed25519`, by a key the agency's admin
//! registered for one of its subsystems (X-Road's
//! `INSTANCE/CLASS/CODE/SUBSYSTEM`).
//!
//! nara requires, of the signature it checks (the first one whose `keyid`
//! it knows): the covered components `@method` and `@target-uri` (or
//! `@authority` and `@path`, plus `@query` when there is one),
//! `content-digest` (RFC 9530, `sha-256` or `sha-512`) whenever there is a
//! body, which it recomputes, and every header of [`MEANINGFUL_HEADERS`]
//! the request carries, so that nothing that changes what a request means
//! can be altered on a captured one; a `created` time within five minutes
//! of now and no `expires` in the past; `alg`, if given, `ed25519`. A
//! signature is accepted once ([`ReplayGuard`], keyed on the key and the
//! signature's decoded bytes, shared by every node through the database).

use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use nara_store::Store;
use nara_store::identity::MachineClient;
use sfv::{BareItem, ListEntry, Parser, SerializeValue};
use sha2::{Digest, Sha256, Sha512};

/// How far a signature's `created` may be from now.
pub const CLOCK_WINDOW: Duration = Duration::from_secs(300);

/// Header fields that change what a signed request means, to nara or to
/// the provider behind the gateway: whenever a request carries one, its
/// signature must cover it (docs/exchange.md lists them per route).
pub const MEANINGFUL_HEADERS: &[&str] = &[
    "x-road-client",
    "x-road-id",
    "x-road-userid",
    "x-road-issue",
    "nara-subject",
    "nara-purpose",
    "nara-consent",
    "nara-legal-basis",
    "nara-consent-assertion",
    "content-type",
];

/// A signature that verified: what it proves and what identifies it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The components the signature covers, lower-case, as listed.
    pub covered: Vec<String>,
    /// `sig\nKEYID\nSHA-256(signature bytes)`: the same signature however
    /// its header is relabelled, re-parameterised or padded with others.
    pub replay_key: String,
}

impl Verified {
    /// Whether the signature covers header field `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.covered.iter().any(|c| c == name)
    }
}

/// A verified agency system.
#[derive(Debug, Clone)]
pub struct MachineCaller {
    pub key_id: String,
    pub agency: String,
    pub subsystem: String,
    pub signature: Verified,
}

impl MachineCaller {
    /// `INSTANCE/CLASS/CODE/SUBSYSTEM`, as X-Road names a client.
    pub fn client_id(&self) -> String {
        format!("{}/{}", self.agency, self.subsystem)
    }
}

/// Why a signed request was refused (told to the caller: it helps
/// integrators and reveals nothing a signer does not know).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("Signature-Input and Signature are required, as RFC 9421 structured dictionaries")]
    Malformed,
    #[error("no signature names a registered, unrevoked key (keyid)")]
    UnknownKey,
    #[error("the signature must cover {0}")]
    NotCovered(&'static str),
    #[error(
        "the signature's created time is missing or more than 5 minutes from now, or it has expired"
    )]
    Stale,
    #[error("a component the signature covers is absent from the request")]
    Absent,
    #[error("only alg=\"ed25519\" is accepted")]
    Algorithm,
    #[error("Content-Digest does not match the body (sha-256 or sha-512 expected)")]
    Digest,
    #[error("the signature does not verify")]
    BadSignature,
}

/// What the checker needs of a request.
pub struct SignedRequest<'a> {
    pub method: &'a Method,
    /// The target URI as the client addressed it (`scheme://authority/path?query`).
    pub target_uri: String,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The target URI as the client addressed it: nara's scheme, the `Host` header, path and query.
pub fn target_uri(https: bool, headers: &HeaderMap, uri: &Uri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    format!("{}://{host}{pq}", if https { "https" } else { "http" })
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().map(str::trim))
        .collect::<Result<_, _>>()
        .ok()?;
    (!values.is_empty()).then(|| values.join(", "))
}

/// The value of a derived component (RFC 9421 §2.2) or header field (§2.1).
fn component(req: &SignedRequest<'_>, name: &str) -> Option<String> {
    let url = url::Url::parse(&req.target_uri).ok()?;
    Some(match name {
        "@method" => req.method.as_str().to_owned(),
        "@target-uri" => req.target_uri.clone(),
        "@authority" => match url.port() {
            Some(p) => format!("{}:{p}", url.host_str()?),
            None => url.host_str()?.to_owned(),
        }
        .to_lowercase(),
        "@scheme" => url.scheme().to_owned(),
        "@path" => url.path().to_owned(),
        "@query" => format!("?{}", url.query().unwrap_or("")),
        "@request-target" => match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        },
        n if n.starts_with('@') => return None,
        field => header_value(req.headers, field)?,
    })
}

/// Checks `Content-Digest` against the body (RFC 9530).
fn digest_matches(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(value) = header_value(headers, "content-digest") else {
        return false;
    };
    let Ok(dict) = Parser::parse_dictionary(value.as_bytes()) else {
        return false;
    };
    let mut checked = false;
    for (alg, entry) in &dict {
        let ListEntry::Item(item) = entry else {
            return false;
        };
        let BareItem::ByteSeq(given) = &item.bare_item else {
            return false;
        };
        let ok = match alg.as_str() {
            "sha-256" => Sha256::digest(body).as_slice() == given.as_slice(),
            "sha-512" => Sha512::digest(body).as_slice() == given.as_slice(),
            _ => continue,
        };
        if !ok {
            return false;
        }
        checked = true;
    }
    checked
}

/// A request's `Signature-Input` and `Signature` dictionaries, parsed.
pub struct Signatures {
    input: sfv::Dictionary,
    signatures: sfv::Dictionary,
}

impl Signatures {
    pub fn parse(headers: &HeaderMap) -> Result<Signatures, Refused> {
        let input = header_value(headers, "signature-input").ok_or(Refused::Malformed)?;
        let signatures = header_value(headers, "signature").ok_or(Refused::Malformed)?;
        Ok(Signatures {
            input: Parser::parse_dictionary(input.as_bytes()).map_err(|_| Refused::Malformed)?,
            signatures: Parser::parse_dictionary(signatures.as_bytes())
                .map_err(|_| Refused::Malformed)?,
        })
    }

    /// Each signature's label and `keyid`, in order (those without a keyid skipped).
    pub fn key_ids(&self) -> Result<Vec<(String, String)>, Refused> {
        let mut out = Vec::new();
        for (label, entry) in &self.input {
            let ListEntry::InnerList(params) = entry else {
                return Err(Refused::Malformed);
            };
            if let Some(BareItem::String(key_id)) = params.params.get("keyid") {
                out.push((label.clone(), key_id.clone()));
            }
        }
        Ok(out)
    }

    /// Checks the signature `label` against `client`'s key.
    pub fn check(
        &self,
        req: &SignedRequest<'_>,
        label: &str,
        client: &MachineClient,
        now_s: i64,
    ) -> Result<Verified, Refused> {
        let key = verifying_key(&client.public_key);
        self.check_key(req, label, &client.key_id, key.as_ref(), now_s)
    }

    /// [`Signatures::check`] with the key already decoded (none: the
    /// registered key is not an Ed25519 key, so no signature verifies).
    pub fn check_key(
        &self,
        req: &SignedRequest<'_>,
        label: &str,
        key_id: &str,
        key: Option<&VerifyingKey>,
        now_s: i64,
    ) -> Result<Verified, Refused> {
        let Some(ListEntry::InnerList(params)) = self.input.get(label) else {
            return Err(Refused::Malformed);
        };
        check_one(req, label, params, &self.signatures, key_id, key, now_s)
    }
}

/// A registered key as a verifying key (none if it is not Ed25519).
pub fn verifying_key(registered: &str) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&decode_key(registered)?).ok()
}

/// Signs a request as an agency system (or a gateway) does: covers
/// `@method`, `@target-uri`, every header in `fields` (which the caller
/// sends as given) and, with a body, `content-digest` (SHA-256); returns
/// the headers to add (`content-digest`, `signature-input`, `signature`).
pub fn sign_request(
    method: &str,
    target_uri: &str,
    fields: &[(&str, &str)],
    body: &[u8],
    key_id: &str,
    key: &ed25519_dalek::SigningKey,
    created: i64,
) -> Vec<(&'static str, String)> {
    use ed25519_dalek::Signer;
    let mut headers = Vec::new();
    let mut base = format!("\"@method\": {method}\n\"@target-uri\": {target_uri}\n");
    let mut covered = "\"@method\" \"@target-uri\"".to_owned();
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in fields {
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            continue;
        }
        // Repeated fields are covered as one, their values joined (RFC 9421 §2.1).
        let value = fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.trim())
            .collect::<Vec<_>>()
            .join(", ");
        base.push_str(&format!("\"{name}\": {value}\n"));
        covered.push_str(&format!(" \"{name}\""));
        seen.push(name);
    }
    if !body.is_empty() {
        let digest = format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)));
        base.push_str(&format!("\"content-digest\": {digest}\n"));
        covered.push_str(" \"content-digest\"");
        headers.push(("content-digest", digest));
    }
    // A nonce makes two identical requests in one second distinct signatures.
    let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
    let params = format!(
        "({covered});created={created};keyid=\"{key_id}\";alg=\"ed25519\";nonce=\"{nonce}\""
    );
    base.push_str(&format!("\"@signature-params\": {params}"));
    let sig = key.sign(base.as_bytes());
    headers.push(("signature-input", format!("sig1={params}")));
    headers.push((
        "signature",
        format!("sig1=:{}:", STANDARD.encode(sig.to_bytes())),
    ));
    headers
}

/// Registered keys by key id, decoded once, valid while the identity epoch
/// is unchanged (every revocation bumps it), so a busy gateway neither
/// reads nor decompresses the key on every request.
#[derive(Default)]
pub struct KeyCache(std::sync::RwLock<std::collections::HashMap<String, (CachedKey, u64)>>);

/// A registered client with its key decoded (none: not an Ed25519 key).
#[derive(Clone)]
struct CachedKey {
    client: MachineClient,
    key: Option<VerifyingKey>,
}

impl KeyCache {
    async fn get(&self, store: &Store, key_id: &str) -> Option<CachedKey> {
        let epoch = store.identity_epoch();
        if let Ok(map) = self.0.read()
            && let Some((c, e)) = map.get(key_id)
            && *e == epoch
        {
            return Some(c.clone());
        }
        let client = store.machine_client(key_id).await.ok()??;
        let cached = CachedKey {
            key: verifying_key(&client.public_key),
            client,
        };
        if let Ok(mut map) = self.0.write() {
            if map.len() > 10_000 {
                map.clear();
            }
            map.insert(key_id.to_owned(), (cached.clone(), epoch));
        }
        Some(cached)
    }
}

/// How long an accepted signature (or `X-Road-Id`) is remembered: longer
/// than the signature's clock window on either side, after which it is
/// refused by its `created` time anyway.
pub const REPLAY_WINDOW_MS: i64 = 11 * 60 * 1000;

fn claim_batch(store: Store, keys: Vec<String>) -> crate::group_commit::BatchFuture<bool> {
    Box::pin(async move {
        let now = nara_core::Timestamp::now().0;
        store
            .claim_signatures(&keys, now, now - REPLAY_WINDOW_MS)
            .await
    })
}

/// Refuses a signed request seen before, on this node or any other: an
/// in-memory map answers repeats at once, and the database (`seen_signatures`,
/// group-committed) decides across nodes and restarts.
pub struct ReplayGuard {
    /// Keys admitted here lately (see [`crate::recent`]).
    seen: std::sync::Mutex<crate::recent::Recent<String>>,
    shared: crate::group_commit::GroupCommit<String, bool>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard {
            seen: std::sync::Mutex::new(crate::recent::Recent::new(REPLAY_WINDOW_MS)),
            shared: crate::group_commit::GroupCommit::new(1_000, claim_batch),
        }
    }
}

/// A signed request's replay key, admitted on this node but not yet
/// claimed for every node: a `Rule::Machine(Claim::WithRecord)` handler
/// takes it into the transaction that records what the request does, so
/// that the claim and the record are one commit. Whatever a handler leaves
/// untaken, the policy claims before the answer leaves.
#[derive(Debug, Clone)]
pub struct UnclaimedSignature(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl UnclaimedSignature {
    pub fn new(replay_key: String) -> UnclaimedSignature {
        UnclaimedSignature(std::sync::Arc::new(std::sync::Mutex::new(Some(replay_key))))
    }

    /// The replay key, once: whoever takes it must claim it before anything
    /// the request caused leaves the node.
    pub fn take(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Why a request could not be admitted as new.
#[derive(Debug, PartialEq, Eq)]
pub enum Replay {
    /// Seen before within the window.
    Repeated,
    /// The database could not be asked; refused rather than risk a replay.
    Unavailable,
}

impl ReplayGuard {
    /// Admits a request once: `local` keys (an `X-Road-Id`) are remembered
    /// on this node, `shared` (the signature's replay key) on every node.
    pub async fn admit(
        &self,
        store: &Store,
        local: &[String],
        shared: &str,
        now_ms: i64,
    ) -> Result<(), Replay> {
        self.admit_here(local, shared, now_ms)?;
        self.claim(store, shared).await
    }

    /// The second half of [`ReplayGuard::admit`]: records `shared` as seen
    /// for every node (group-committed).
    pub async fn claim(&self, store: &Store, shared: &str) -> Result<(), Replay> {
        match self.shared.write(store, shared.to_owned()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Replay::Repeated),
            Err(e) => {
                tracing::error!(error = %e, "recording a signature as seen");
                Err(Replay::Unavailable)
            }
        }
    }

    /// The first half of [`ReplayGuard::admit`]: refuses what this node has
    /// seen and remembers the keys. The caller must then claim `shared` in
    /// the database before anything the request causes leaves the node: the
    /// gateway does it in the same transaction as the exchange's log record
    /// when the answer comes from a registry nara hosts (read from the
    /// database, released only after that commit), or at once if the request
    /// is refused, so that a replay on another node meets the same refusal
    /// even after what refused it has changed.
    pub fn admit_here(&self, local: &[String], shared: &str, now_ms: i64) -> Result<(), Replay> {
        let keys = || local.iter().map(String::as_str).chain([shared]);
        let (expired, repeated) = {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let expired = seen.turn(now_ms);
            let repeated = keys().any(|k| seen.seen(k, now_ms));
            if !repeated {
                keys().for_each(|k| seen.insert(k.to_owned(), now_ms));
            }
            (expired, repeated)
        };
        expired.drop_later();
        if repeated {
            return Err(Replay::Repeated);
        }
        Ok(())
    }

    /// Forgets one key this node admitted, for a request that failed before
    /// anything was recorded or released (the database unavailable), so
    /// that a retry under the same key is taken here as on any other node.
    /// Never for a signature: a retry signs anew.
    pub fn forget_here(&self, key: &str) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Forgets what is past the window (called now and then).
    pub async fn prune(&self, store: &Store, now_ms: i64) {
        let expired = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .turn(now_ms);
        expired.drop_later();
        if let Err(e) = store.prune_signatures(now_ms - REPLAY_WINDOW_MS).await {
            tracing::warn!(error = %e, "pruning seen signatures");
        }
    }
}

/// Verifies a request's signature against the registered keys (read
/// through `cache`): the first signature whose keyid names a registered,
/// unrevoked key decides.
pub async fn verify_cached(
    store: &Store,
    cache: &KeyCache,
    req: &SignedRequest<'_>,
    now_s: i64,
) -> Result<MachineCaller, Refused> {
    let signatures = Signatures::parse(req.headers)?;
    for (label, key_id) in signatures.key_ids()? {
        let Some(CachedKey { client, key }) = cache.get(store, &key_id).await else {
            continue;
        };
        if client.revoked_at.is_some() || client.pending_since.is_some() {
            continue;
        }
        return signatures
            .check_key(req, &label, &client.key_id, key.as_ref(), now_s)
            .map(|signature| MachineCaller {
                key_id: client.key_id.clone(),
                agency: client.agency_id.clone(),
                subsystem: client.subsystem.clone(),
                signature,
            });
    }
    Err(Refused::UnknownKey)
}

fn check_one(
    req: &SignedRequest<'_>,
    label: &str,
    params: &sfv::InnerList,
    signatures: &sfv::Dictionary,
    key_id: &str,
    key: Option<&VerifyingKey>,
    now_s: i64,
) -> Result<Verified, Refused> {
    if let Some(alg) = params.params.get("alg")
        && alg != &BareItem::String("ed25519".into())
    {
        return Err(Refused::Algorithm);
    }
    let window = CLOCK_WINDOW.as_secs() as i64;
    match params.params.get("created") {
        Some(BareItem::Integer(c)) if (now_s - c).abs() <= window => {}
        _ => return Err(Refused::Stale),
    }
    if let Some(expires) = params.params.get("expires") {
        match expires {
            BareItem::Integer(e) if *e > now_s => {}
            _ => return Err(Refused::Stale),
        }
    }
    let mut covered = Vec::new();
    for item in &params.items {
        // Component parameters (`;sf`, `;key`, `;req`…) are not supported.
        match (&item.bare_item, item.params.is_empty()) {
            // Component names are lower-case (RFC 9421 §2.1); another
            // spelling would name a field the request's header map never holds.
            (BareItem::String(name), true)
                if !name.bytes().any(|b| b.is_ascii_uppercase())
                    && !covered.contains(&name.as_str()) =>
            {
                covered.push(name.as_str())
            }
            _ => return Err(Refused::Malformed),
        }
    }
    let has = |c: &str| covered.contains(&c);
    if !has("@method") {
        return Err(Refused::NotCovered("@method"));
    }
    let query = url::Url::parse(&req.target_uri)
        .ok()
        .and_then(|u| u.query().map(str::to_owned));
    if !(has("@target-uri")
        || (has("@authority") && has("@path") && (query.is_none() || has("@query"))))
    {
        return Err(Refused::NotCovered(
            "@target-uri (or @authority, @path and @query)",
        ));
    }
    for name in MEANINGFUL_HEADERS {
        if req.headers.contains_key(*name) && !has(name) {
            return Err(Refused::NotCovered(name));
        }
    }
    if !req.body.is_empty() {
        if !has("content-digest") {
            return Err(Refused::NotCovered("content-digest"));
        }
        if !digest_matches(req.headers, req.body) {
            return Err(Refused::Digest);
        }
    }
    // The signature base (RFC 9421 §2.5).
    let mut base = String::new();
    for name in &covered {
        let value = component(req, name).ok_or(Refused::Absent)?;
        if value.contains('\n') {
            return Err(Refused::Malformed);
        }
        base.push_str(&format!("\"{name}\": {value}\n"));
    }
    let params_text = vec![ListEntry::InnerList(params.clone())]
        .serialize_value()
        .map_err(|_| Refused::Malformed)?;
    base.push_str(&format!("\"@signature-params\": {params_text}"));
    let Some(ListEntry::Item(sig)) = signatures.get(label) else {
        return Err(Refused::Malformed);
    };
    let BareItem::ByteSeq(sig) = &sig.bare_item else {
        return Err(Refused::Malformed);
    };
    let sig = Signature::from_slice(sig).map_err(|_| Refused::BadSignature)?;
    let key = key.ok_or(Refused::BadSignature)?;
    key.verify(base.as_bytes(), &sig)
        .map_err(|_| Refused::BadSignature)?;
    Ok(Verified {
        covered: covered.iter().map(|c| c.to_string()).collect(),
        replay_key: format!(
            "sig\n{}\n{}",
            key_id,
            hex::encode(Sha256::digest(sig.to_bytes()))
        ),
    })
}

/// The signing rules as properties, for the fuzz target and the property
/// test: a request signed with `signed` fields, then given an `unsigned`
/// one and its `Signature` header rewritten (`rewrite` picks how), verifies
/// exactly when no meaningful header went unsigned, and every rewrite of the
/// same signature has the same replay key. Returns what broke.
#[doc(hidden)]
pub fn check_signing_rules(
    signed: &[(&str, &str)],
    unsigned: Option<(&str, &str)>,
    rewrite: u8,
) -> Result<(), String> {
    let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let client = MachineClient {
        key_id: "KR/GOV/X/s/1".into(),
        agency_id: "KR/GOV/X".into(),
        subsystem: "s".into(),
        public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        created_at: 0,
        revoked_at: None,
        pending_since: None,
    };
    let now = 1_800_000_000;
    let target = "http://127.0.0.1:8080/r1/KR/GOV/X/s/svc?x=1";
    let method = Method::GET;
    let mut headers = HeaderMap::new();
    let mut sent: Vec<(&str, &str)> = Vec::new();
    for (n, v) in signed {
        // Only what a client could send: valid names and visible values.
        let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(n.as_bytes()),
            header::HeaderValue::from_str(v.trim()),
        ) else {
            continue;
        };
        if name.as_str() != *n
            || !v.bytes().all(|b| (0x20..0x7f).contains(&b))
            || v.trim().is_empty()
            || v.trim() != *v
            || n.starts_with("signature")
            || *n == "content-digest"
        {
            continue;
        }
        headers.append(name, value);
        sent.push((n, v));
    }
    for (n, v) in sign_request("GET", target, &sent, b"", &client.key_id, &key, now) {
        headers.insert(
            n,
            header::HeaderValue::from_str(&v).map_err(|e| e.to_string())?,
        );
    }
    let mut leaked = false;
    if let Some((n, v)) = unsigned
        && let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(n.as_bytes()),
            header::HeaderValue::from_str(v),
        )
        && !headers.contains_key(&name)
    {
        leaked = MEANINGFUL_HEADERS.contains(&name.as_str());
        headers.insert(name, value);
    }
    let text = |h: &HeaderMap, n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (sig, input) = (
        text(&headers, "signature"),
        text(&headers, "signature-input"),
    );
    let rewritten = match rewrite % 4 {
        0 => (sig.clone(), input.clone()),
        1 => (format!("{sig}, r1=:AAAA:"), input.clone()),
        2 => (format!("{sig};x=1"), input.clone()),
        _ => (
            sig.replacen("sig1=", "sig2=", 1),
            input.replacen("sig1=", "sig2=", 1),
        ),
    };
    let verify = |h: &HeaderMap| {
        let req = SignedRequest {
            method: &method,
            target_uri: target.into(),
            headers: h,
            body: b"",
        };
        let sigs = Signatures::parse(h)?;
        let (label, _) = sigs
            .key_ids()?
            .into_iter()
            .next()
            .ok_or(Refused::UnknownKey)?;
        sigs.check(&req, &label, &client, now)
    };
    let original = verify(&headers);
    let mut again = headers.clone();
    for (n, v) in [
        ("signature", &rewritten.0),
        ("signature-input", &rewritten.1),
    ] {
        again.insert(
            n,
            header::HeaderValue::from_str(v).map_err(|e| e.to_string())?,
        );
    }
    let replayed = verify(&again);
    match (&original, leaked) {
        (Ok(_), true) => return Err("a meaningful header was accepted unsigned".into()),
        (Err(e), false) => return Err(format!("a well-signed request was refused: {e}")),
        _ => {}
    }
    if let (Ok(a), Ok(b)) = (&original, &replayed)
        && a.replay_key != b.replay_key
    {
        return Err("a rewritten Signature header escaped replay detection".into());
    }
    Ok(())
}

/// A 32-byte Ed25519 public key from base64 (standard or URL-safe, with or
/// without padding) or from a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
pub fn decode_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let b64: String = if text.starts_with("-----BEGIN PUBLIC KEY-----") {
        text.lines().filter(|l| !l.starts_with("-----")).collect()
    } else {
        text.to_owned()
    };
    let raw = URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(&b64))
        .ok()?;
    // SPKI for Ed25519 is a fixed 12-byte prefix before the key (RFC 8410).
    const SPKI: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    match raw.len() {
        32 => raw.try_into().ok(),
        44 if raw[..12] == SPKI => raw[12..].try_into().ok(),
        _ => None,
    }
}

/// Why a key could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum NotRegistered {
    #[error("the subsystem code must be 1 to 64 letters, digits, '-', '_' or '.'")]
    Subsystem,
    #[error("this is not an Ed25519 public key")]
    Key,
    #[error(transparent)]
    Store(#[from] nara_store::StoreError),
}

/// Registers a subsystem's key under the next free key id
/// (`AGENCY/SUBSYSTEM/N`); a ledger entry. The one way keys come in, for
/// the admin page and the CLI alike. At the alert level `caution` and up
/// the key waits for a security analyst's approval before it signs.
pub async fn register(
    store: &Store,
    agency: &nara_core::MemberId,
    subsystem: &str,
    public_key: &str,
    actor: &str,
) -> Result<MachineClient, NotRegistered> {
    let mut check = nara_core::validation::Checker::default();
    check.code("subsystem", subsystem, 64);
    check.finish().map_err(|_| NotRegistered::Subsystem)?;
    let key = decode_key(public_key)
        .filter(|k| VerifyingKey::from_bytes(k).is_ok())
        .ok_or(NotRegistered::Key)?;
    let n = store
        .machine_clients_of(agency)
        .await?
        .iter()
        .filter(|c| c.subsystem == subsystem)
        .count();
    let now = nara_core::Timestamp::now().0;
    // The level as stored, not a node's copy: the rule must hold the moment
    // an analyst raises it, on every node and in the CLI.
    let second_approval = store
        .alert_level()
        .await?
        .machine_keys_need_second_approval();
    let client = MachineClient {
        key_id: format!("{agency}/{subsystem}/{}", n + 1),
        agency_id: agency.to_string(),
        subsystem: subsystem.to_owned(),
        public_key: URL_SAFE_NO_PAD.encode(key),
        created_at: now,
        revoked_at: None,
        pending_since: second_approval.then_some(now),
    };
    store.register_machine_client(&client, actor).await?;
    Ok(client)
}

/// Which registered subsystem signed this request — for agency integrators
/// to test their signing. POST works the same, with `Content-Digest` covered.
#[utoipa::path(method(get, post), path = "/api/v1/machine/whoami", tag = "identity",
    params(
        ("Signature-Input" = String, Header, description = "RFC 9421, e.g. sig1=(\"@method\" \"@target-uri\");created=…;keyid=\"KR/GOV/MOIS/app/1\";alg=\"ed25519\""),
        ("Signature" = String, Header, description = "RFC 9421, e.g. sig1=:BASE64:"),
    ),
    responses(
        (status = 200, description = "The signing subsystem: client, agency, subsystem, key_id"),
        (status = 401, description = "Unsigned, or the signature is refused (the detail says why)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn whoami(request: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    match request.extensions().get::<MachineCaller>() {
        Some(m) => axum::Json(serde_json::json!({
            "client": m.client_id(),
            "agency": m.agency,
            "subsystem": m.subsystem,
            "key_id": m.key_id,
        }))
        .into_response(),
        _ => crate::problem::Problem::unauthorized().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_forgotten_after_a_failed_attempt_is_taken_again_but_never_a_signature() {
        let guard = ReplayGuard::default();
        let id = ["id\nKR/LOC/SEOUL/portal\nx-1".to_owned()];
        assert!(guard.admit_here(&id, "sig-1", 1_000).is_ok());
        assert!(matches!(
            guard.admit_here(&id, "sig-2", 1_001),
            Err(Replay::Repeated)
        ));
        // The first attempt failed for want of the database: its id is free again here.
        guard.forget_here(&id[0]);
        assert!(guard.admit_here(&id, "sig-3", 1_002).is_ok());
        // Its signature is not: a request replayed as it was is still refused.
        let other = ["id\nKR/LOC/SEOUL/portal\nx-2".to_owned()];
        assert!(matches!(
            guard.admit_here(&other, "sig-1", 1_003),
            Err(Replay::Repeated)
        ));
    }

    #[test]
    fn keys_decode_from_raw_or_pem() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let raw = URL_SAFE_NO_PAD.encode(key.as_bytes());
        assert_eq!(decode_key(&raw), Some(*key.as_bytes()));
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(key.as_bytes());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&spki)
        );
        assert_eq!(decode_key(&pem), Some(*key.as_bytes()));
        assert_eq!(decode_key("not a key"), None);
        assert_eq!(decode_key(&URL_SAFE_NO_PAD.encode([1u8; 31])), None);
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        /// Hostile headers never panic the checker; they are refused. Half of
        /// the inputs are well-formed signature parameters with random parts.
        #[test]
        fn hostile_signature_headers_are_refused(
            input in proptest::prop_oneof![
                "[ -~]{0,200}",
                (
                    proptest::collection::vec(proptest::sample::select(vec![
                        "@method", "@target-uri", "@authority", "@path", "@query", "@scheme",
                        "@request-target", "@status", "content-digest", "host", "x-missing", "@bogus",
                    ]), 0..6),
                    proptest::num::i64::ANY,
                    "[a-z\"]{0,8}",
                ).prop_map(|(items, created, alg)| format!(
                    "sig=({});created={created};keyid=\"KR/GOV/X/s/1\";alg=\"{alg}\"",
                    items.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(" ")
                )),
            ],
            sig in "[ -~]{0,200}",
            digest in "[ -~]{0,100}",
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut headers = HeaderMap::new();
            for (name, value) in [("signature-input", &input), ("signature", &sig), ("content-digest", &digest)] {
                if let Ok(v) = value.parse() {
                    headers.insert(name, v);
                }
            }
            let method = Method::POST;
            let req = SignedRequest {
                method: &method,
                target_uri: "http://127.0.0.1:1/api/v1/machine/whoami?x=1".into(),
                headers: &headers,
                body: &body,
            };
            let client = MachineClient {
                key_id: "KR/GOV/X/s/1".into(),
                agency_id: "KR/GOV/X".into(),
                subsystem: "s".into(),
                public_key: URL_SAFE_NO_PAD.encode([3u8; 32]),
                created_at: 0,
                revoked_at: None,
                pending_since: None,
            };
            let _ = digest_matches(&headers, &body);
            if let (Ok(inputs), Ok(sigs)) = (
                Parser::parse_dictionary(input.as_bytes()),
                Parser::parse_dictionary(sig.as_bytes()),
            ) {
                for (label, entry) in &inputs {
                    if let ListEntry::InnerList(params) = entry {
                        // A random string never verifies.
                        proptest::prop_assert!(check_one(&req, label, params, &sigs, &client.key_id, verifying_key(&client.public_key).as_ref(), 1_800_000_000).is_err());
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// Coverage and replay: whatever a client signs, a meaningful header
        /// added afterwards is refused, and rewriting the Signature header
        /// never makes the same signature new.
        #[test]
        fn captured_requests_cannot_be_altered_or_replayed(
            signed in proptest::collection::vec((
                proptest::sample::select(vec![
                    "x-road-client", "x-road-id", "x-road-userid", "x-road-issue", "nara-subject",
                    "nara-purpose", "nara-consent", "nara-legal-basis", "content-type", "accept", "x-other",
                ]),
                "[ -~]{0,20}",
            ), 0..6),
            unsigned in proptest::option::of((
                proptest::sample::select(vec!["nara-subject", "nara-purpose", "x-road-id", "nara-legal-basis", "accept", "x-trace"]),
                "[!-~]{1,20}",
            )),
            rewrite in proptest::num::u8::ANY,
        ) {
            let signed: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let unsigned = unsigned.as_ref().map(|(n, v)| (*n, v.as_str()));
            if let Err(e) = check_signing_rules(&signed, unsigned, rewrite) {
                proptest::prop_assert!(false, "{e}");
            }
        }
    }

    #[test]
    fn content_digest_is_checked() {
        let mut h = HeaderMap::new();
        let body = b"{\"hello\": \"world\"}";
        h.insert(
            "content-digest",
            format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
                .parse()
                .unwrap(),
        );
        assert!(digest_matches(&h, body));
        assert!(!digest_matches(&h, b"{\"hello\": \"World\"}"));
        h.insert("content-digest", "md5=:AAAA:".parse().unwrap());
        assert!(!digest_matches(&h, body), "no known algorithm, no match");
    }
}
