//! The exchange gateway: X-Road Message Protocol for REST (r1) in front of
//! every data service, with nara's rules on top (docs/exchange.md).
//!
//! One request, in order: read the body (bounded) → parse the target
//! strictly → verify the client system's RFC 9421 signature → `X-Road-Client`
//! must name the signer → refuse a replayed `X-Road-Id` or signature → find
//! the service (or the node that serves it) → the client needs an unrevoked
//! access right → personal data needs a purpose the service accepts, and a
//! valid consent of the subject or a legal basis the service lists → call
//! the provider (a registry nara hosts, or the agency's registered URL, with
//! a timeout and a circuit breaker) → sign the record → write the message
//! log and the ledger entry (group commit) → only then answer. Every refusal
//! is an X-Road error (`X-Road-Error`, the protocol's JSON body) and, when it
//! is the caller's doing, a security event; none reaches the provider.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use nara_core::consent;
use nara_core::exchange::{self, ClientId, Endpoint, Fault, FaultKind, ServiceDetails, Target};
use nara_store::exchange::{AccessRight, Consent, DataService, ExchangeRecord, Registry};
use nara_store::{Store, StoreError};
use sha2::{Digest, Sha512};

use super::{Answer, Basis, Call, entitlement, read_limited, record_digest, terms};
use crate::AppState;
use crate::identity::machine::{self, SignedRequest};

/// Consecutive provider failures that open a service's circuit, and for how long.
const BREAKER_FAILURES: u32 = 5;
const BREAKER_OPEN: Duration = Duration::from_secs(30);
/// The most records one group commit writes.
const LOG_BATCH: usize = 1_000;

/// The services, rights and registries every exchange reads, in memory.
#[derive(Debug, Default)]
pub struct Directory {
    pub services: BTreeMap<String, DataService>,
    /// Unrevoked rights by service id.
    pub rights: HashMap<String, Vec<AccessRight>>,
    pub registries: BTreeMap<String, Registry>,
}

impl Directory {
    /// The right `client` holds to `service`: one granted to the subsystem,
    /// or to the whole member.
    pub fn right(&self, service: &str, client: &ClientId) -> Option<&AccessRight> {
        let whole = client.member.as_str();
        let exact = client.to_string();
        self.rights
            .get(service)?
            .iter()
            .find(|r| r.client_id == exact || r.client_id == whole)
    }

    /// The services a provider subsystem publishes.
    pub fn of_provider<'a>(
        &'a self,
        provider: &'a ClientId,
    ) -> impl Iterator<Item = &'a DataService> + 'a {
        self.services.values().filter(move |s| {
            s.agency_id == provider.member.as_str()
                && Some(s.subsystem.as_str()) == provider.subsystem.as_deref()
        })
    }
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// One record for the message log, with the signature it claims (if the
/// request's replay key was not claimed before it was served).
#[derive(Clone)]
struct LogWrite {
    record: ExchangeRecord,
    claim: Option<String>,
}

fn write_log(store: Store, writes: Vec<LogWrite>) -> crate::group_commit::BatchFuture<()> {
    Box::pin(async move {
        let n = writes.len();
        let claims: Vec<String> = writes.iter().filter_map(|w| w.claim.clone()).collect();
        let records: Vec<ExchangeRecord> = writes.into_iter().map(|w| w.record).collect();
        let now = nara_core::Timestamp::now().0;
        store
            .append_exchanges_claiming(&records, &claims, now, now - machine::REPLAY_WINDOW_MS)
            .await?;
        Ok(vec![(); n])
    })
}

/// The gateway's shared state (one per node).
pub struct Exchange {
    directory: tokio::sync::RwLock<Option<Arc<Directory>>>,
    stale: AtomicBool,
    seen_version: AtomicI64,
    /// Signatures and `X-Road-Id`s already used (shared with `Rule::Machine` routes).
    pub replay: machine::ReplayGuard,
    breakers: Mutex<HashMap<String, Breaker>>,
    http: reqwest::Client,
    /// The message log's group commit (up to [`LOG_BATCH`] records a transaction).
    log: crate::group_commit::GroupCommit<LogWrite, ()>,
    key: SigningKey,
    /// `gateway:NODE`, naming [`Exchange::key`] in signatures and the global configuration.
    pub key_id: String,
    pub keys: machine::KeyCache,
    pub federation: Option<crate::exchange::federation::Federation>,
}

impl Exchange {
    pub fn new(
        key: SigningKey,
        node: &str,
        timeout: Duration,
        federation: Option<crate::exchange::federation::Federation>,
    ) -> Exchange {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // PR-REST §4.4: redirects are passed to the client, never followed.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Exchange {
            directory: tokio::sync::RwLock::new(None),
            stale: AtomicBool::new(true),
            seen_version: AtomicI64::new(-1),
            replay: machine::ReplayGuard::default(),
            breakers: Mutex::default(),
            http,
            log: crate::group_commit::GroupCommit::new(LOG_BATCH, write_log),
            key,
            key_id: format!("gateway:{node}"),
            keys: machine::KeyCache::default(),
            federation,
        }
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// A local change to services or rights: reload before the next exchange.
    pub fn changed(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Notices other nodes' changes (called once a second).
    pub async fn poll(&self, store: &Store) -> Result<(), StoreError> {
        let v = store.exchange_version().await?;
        if self.seen_version.swap(v, Ordering::AcqRel) != v {
            self.changed();
        }
        Ok(())
    }

    /// The current directory, reloaded if anything changed.
    pub async fn directory(&self, store: &Store) -> Result<Arc<Directory>, StoreError> {
        if !self.stale.load(Ordering::Acquire)
            && let Some(d) = self.directory.read().await.as_ref()
        {
            return Ok(d.clone());
        }
        let mut slot = self.directory.write().await;
        if !self.stale.load(Ordering::Acquire)
            && let Some(d) = slot.as_ref()
        {
            return Ok(d.clone());
        }
        self.stale.store(false, Ordering::Release);
        let mut rights: HashMap<String, Vec<AccessRight>> = HashMap::new();
        for r in store.access_rights().await? {
            if r.revoked_at.is_none() {
                rights.entry(r.service_id.clone()).or_default().push(r);
            }
        }
        let d = Arc::new(Directory {
            services: store
                .data_services()
                .await?
                .into_iter()
                .map(|s| (s.id.clone(), s))
                .collect(),
            rights,
            registries: store
                .registries()
                .await?
                .into_iter()
                .map(|r| (r.code.clone(), r))
                .collect(),
        });
        *slot = Some(d.clone());
        Ok(d)
    }

    fn circuit_open(&self, service: &str) -> bool {
        let mut b = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(breaker) = b.get_mut(service) else {
            return false;
        };
        match breaker.open_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                // Half-open: let one call through to try the provider again.
                breaker.open_until = None;
                breaker.failures = BREAKER_FAILURES - 1;
                false
            }
            None => false,
        }
    }

    fn provider_result(&self, service: &str, ok: bool) {
        let mut b = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let breaker = b.entry(service.to_owned()).or_default();
        if ok {
            *breaker = Breaker::default();
        } else {
            breaker.failures += 1;
            if breaker.failures >= BREAKER_FAILURES {
                breaker.open_until = Some(Instant::now() + BREAKER_OPEN);
            }
        }
    }

    /// Signs a record's digest with the gateway key.
    pub fn sign(&self, digest: &[u8]) -> String {
        STANDARD.encode(self.key.sign(digest).to_bytes())
    }

    /// Writes a record and its ledger entry (batched with others), returning
    /// once both are committed.
    async fn log(
        &self,
        store: &Store,
        record: ExchangeRecord,
        claim: Option<String>,
    ) -> Result<(), Fault> {
        match self.log.write(store, LogWrite { record, claim }).await {
            Ok(()) => Ok(()),
            // The log's only unique key is the client's X-Road-Id; the claim's
            // is the signature.
            Err(
                crate::group_commit::WriteError::Conflict(_)
                | crate::group_commit::WriteError::Replayed,
            ) => Err(Fault::new(
                FaultKind::DuplicateMessageId,
                "this X-Road-Id or signature was already used: a replay is refused",
            )),
            Err(e) => {
                tracing::error!(error = %e, "message log write failed");
                Err(Fault::new(
                    FaultKind::DatabaseError,
                    "the message log could not be written; no data was released",
                ))
            }
        }
    }
}

/// Headers a gateway reads itself and never forwards to a provider.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "user-agent",
    "server",
    "content-length",
    "signature",
    "signature-input",
    "content-digest",
    "authorization",
    "cookie",
    "x-road-request-hash",
    "x-road-request-id",
    "nara-subject",
    "nara-consent-assertion",
    "nara-peer-signature",
];

fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, Fault> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Fault::new(
            FaultKind::BadRequest,
            format!("{name} may be sent once"),
        ));
    }
    let text = first
        .to_str()
        .ok()
        .filter(|t| exchange::valid_header_text(t))
        .ok_or_else(|| {
            Fault::new(
                FaultKind::BadRequest,
                format!("{name} must be 1 to 200 visible ASCII characters"),
            )
        })?;
    Ok(Some(text.to_owned()))
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `{METHOD} /r1/{serviceId}[/path]`: the consumer interface.
#[utoipa::path(method(get, post, put, delete), path = "/r1/{serviceId}", tag = "exchange",
    description = "X-Road Message Protocol for REST r1 (any method). serviceId is \
        INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE, followed by the provider's path and query. \
        Sign the request with the client subsystem's registered Ed25519 key (RFC 9421). \
        Metaservices: SUBSYSTEM/listMethods, SUBSYSTEM/allowedMethods, SUBSYSTEM/getOpenAPI?serviceCode=. \
        Errors carry X-Road-Error and {type, message, detail}. See docs/exchange.md.",
    params(
        ("serviceId" = String, Path, description = "INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE[/path]"),
        ("X-Road-Client" = String, Header, description = "INSTANCE/CLASS/MEMBER/SUBSYSTEM: must be the signing subsystem"),
        ("X-Road-Id" = Option<String>, Header, description = "Unique message id (generated if absent); a repeat is refused"),
        ("X-Road-UserId" = Option<String>, Header, description = "The user whose action caused the request"),
        ("X-Road-Issue" = Option<String>, Header, description = "The case or application the request serves"),
        ("Nara-Purpose" = Option<String>, Header, description = "A registered purpose code; required for personal data"),
        ("Nara-Consent" = Option<String>, Header, description = "The id of the subject's consent"),
        ("Nara-Legal-Basis" = Option<String>, Header, description = "A legal basis the service lists, instead of consent"),
        ("Nara-Subject" = Option<String>, Header, description = "The resident registration number of the person the data is about"),
        ("Signature-Input" = String, Header, description = "RFC 9421"),
        ("Signature" = String, Header, description = "RFC 9421"),
    ),
    responses(
        (status = 200, description = "The provider's answer, with X-Road-Client, X-Road-Service, X-Road-Id, X-Road-Request-Id, X-Road-Request-Hash, Nara-Gateway-Signature"),
        (status = 400, description = "Client.* error (X-Road-Error header), e.g. an unsigned request", body = XRoadError, content_type = "application/json"),
        (status = 500, description = "Server.* error (X-Road-Error header), e.g. Server.ServerProxy.AccessDenied: X-Road answers every server-side refusal with 500", body = XRoadError, content_type = "application/json"),
    ))]
pub async fn exchange(
    State(state): State<AppState>,
    crate::identity::request::ClientAddress(address): crate::identity::request::ClientAddress,
    request: Request,
) -> Response {
    let started = Instant::now();
    let request_id = new_id();
    let (parts, body) = request.into_parts();
    match mediate(&state, parts, body, &request_id, started).await {
        Ok(response) => response,
        Err((fault, labels)) => {
            // Refused after being admitted here only: a replay elsewhere
            // must not find the signature unused.
            if let Some(key) = &labels.unclaimed {
                let _ = state.exchange.replay.claim(&state.store, key).await;
            }
            if fault.kind == FaultKind::DatabaseError
                && let Some(id) = &labels.admitted_id
            {
                state.exchange.replay.forget_here(id);
            }
            state.metrics.exchange(
                &labels.service,
                &labels.client,
                fault.kind.type_name(),
                started.elapsed(),
            );
            if fault.kind.is_security_event() {
                crate::identity::request::event(
                    &state,
                    "exchange.refused",
                    None,
                    &labels.claimed,
                    &address,
                    &format!("{} {fault}", labels.target),
                )
                .await;
            }
            fault_response(&fault, &request_id)
        }
    }
}

/// The body of the protocol's error response (PR-REST §4.6).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct XRoadError<'a> {
    /// The fault code, also in the `X-Road-Error` header: `Client.*` (400)
    /// or `Server.*` (500).
    #[schema(example = "Server.ServerProxy.AccessDenied")]
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
    /// The request's id, to quote to the gateway's operator.
    pub detail: &'a str,
}

/// The protocol's error response (PR-REST §4.6).
pub fn fault_response(fault: &Fault, request_id: &str) -> Response {
    let body = serde_json::json!(XRoadError {
        kind: fault.kind.type_name(),
        message: &fault.message,
        detail: request_id,
    });
    let mut r = (
        StatusCode::from_u16(fault.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(fault.kind.type_name()) {
        r.headers_mut().insert("x-road-error", v);
    }
    r
}

/// What is known of a refused request, for metrics and security events.
/// Metrics name only registered services and verified clients (else
/// `unregistered` / `unverified`), so a hostile caller cannot grow the
/// label sets; the event records what was claimed.
struct Labels {
    service: String,
    client: String,
    target: String,
    claimed: String,
    /// A signature admitted on this node only, to be claimed in the log's
    /// transaction: claimed for every node if the request is refused.
    unclaimed: Option<String>,
    /// The X-Road-Id as this node remembers it once admitted: forgotten if
    /// the exchange fails for want of the database (nothing logged, nothing
    /// released), so that a retry with the same id is not refused here as a
    /// duplicate while any other node would take it.
    admitted_id: Option<String>,
}

async fn mediate(
    state: &AppState,
    parts: axum::http::request::Parts,
    body: Body,
    request_id: &str,
    started: Instant,
) -> Result<Response, (Fault, Labels)> {
    let mut labels = Labels {
        service: "unregistered".into(),
        client: "unverified".into(),
        target: parts.uri.path().chars().take(300).collect(),
        claimed: String::new(),
        unclaimed: None,
        admitted_id: None,
    };
    macro_rules! fail {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(f) => return Err((f, labels)),
            }
        };
    }
    let max = state.config.max_body_bytes;
    let body = fail!(
        axum::body::to_bytes(body, max)
            .await
            .map_err(|_| Fault::new(
                FaultKind::BadRequest,
                format!("the request body is larger than {max} bytes")
            ))
    );
    let target = fail!(Target::parse(parts.uri.path(), parts.uri.query()));
    let https = parts.extensions.get::<crate::Https>().is_some();
    let signed = SignedRequest {
        method: &parts.method,
        target_uri: machine::target_uri(https, &parts.headers, &parts.uri),
        headers: &parts.headers,
        body: &body,
    };
    let now_s = crate::identity::auth::unix_now();
    let now_ms = nara_core::Timestamp::now().0;
    // A peer gateway forwarding for one of its clients, or a client system.
    let peer = match &state.exchange.federation {
        Some(f) => fail!(f.verify_peer(&signed, now_s)),
        None => None,
    };
    let verified;
    let claimed = fail!(header_text(&parts.headers, "x-road-client")).ok_or_else(|| {
        Fault::new(
            FaultKind::InvalidClientIdentifier,
            "X-Road-Client is required",
        )
    });
    labels.claimed = claimed
        .clone()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    let client = fail!(claimed.and_then(|c| ClientId::parse(&c)));
    if let Some((peer, signature)) = &peer {
        verified = signature.clone();
        // The peer vouches only for the members the global configuration
        // places on it.
        let f = state.exchange.federation.as_ref();
        if f.and_then(|f| f.node_of(&client.member)) != Some(peer.as_str()) {
            return Err((
                Fault::new(
                    FaultKind::InvalidClientIdentifier,
                    "the forwarding node does not serve this client",
                ),
                labels,
            ));
        }
    } else {
        let caller = fail!(
            machine::verify_cached(&state.store, &state.exchange.keys, &signed, now_s)
                .await
                .map_err(|r| Fault::new(
                    FaultKind::InvalidSignature,
                    format!("sign the request with the client subsystem's registered Ed25519 key (RFC 9421): {r}")
                ))
        );
        if client.member.as_str() != caller.agency
            || client.subsystem.as_deref() != Some(caller.subsystem.as_str())
        {
            return Err((
                Fault::new(
                    FaultKind::InvalidClientIdentifier,
                    format!(
                        "X-Road-Client must name the signing subsystem {}",
                        caller.client_id()
                    ),
                ),
                labels,
            ));
        }
        crate::secops::watch::key_used(state, &parts, &caller);
        verified = caller.signature;
    }
    labels.client = client.to_string();
    let xroad_id = fail!(header_text(&parts.headers, "x-road-id")).unwrap_or_else(new_id);
    let signature = parts
        .headers
        .get("signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let directory = fail!(
        state
            .exchange
            .directory(&state.store)
            .await
            .map_err(db_fault)
    );
    // A registry nara hosts answers from the database and nothing leaves the
    // node before the log commits, so the signature is claimed for every
    // node in that same transaction (one commit, not two); a request that
    // reaches a provider or another node is claimed before it goes.
    let hosted = peer.is_none()
        && !target.service.is_metaservice()
        && state
            .exchange
            .federation
            .as_ref()
            .is_none_or(|f| f.remote_node(&target.service.member).is_none())
        && directory
            .services
            .get(&target.service.to_string())
            .is_some_and(|s| s.endpoint_kind == "registry");
    let replay_keys = [format!("id\n{client}\n{xroad_id}")];
    let admitted = if hosted {
        state
            .exchange
            .replay
            .admit_here(&replay_keys, &verified.replay_key, now_ms)
    } else {
        state
            .exchange
            .replay
            .admit(&state.store, &replay_keys, &verified.replay_key, now_ms)
            .await
    };
    if admitted.is_ok() {
        labels.admitted_id = Some(replay_keys[0].clone());
    }
    match admitted {
        Ok(()) if hosted => labels.unclaimed = Some(verified.replay_key.clone()),
        Ok(()) => {}
        Err(machine::Replay::Repeated) => {
            return Err((
                Fault::new(
                    FaultKind::DuplicateMessageId,
                    "this X-Road-Id or signature was already used: a replay is refused",
                ),
                labels,
            ));
        }
        Err(machine::Replay::Unavailable) => {
            return Err((
                Fault::new(
                    FaultKind::DatabaseError,
                    "the gateway could not record the signature as used; nothing was done",
                ),
                labels,
            ));
        }
    }
    let call = Call {
        method: parts.method.clone(),
        user_id: fail!(header_text(&parts.headers, "x-road-userid")).unwrap_or_default(),
        issue: fail!(header_text(&parts.headers, "x-road-issue")).unwrap_or_default(),
        target,
        client,
        xroad_id,
        request_id: request_id.to_owned(),
        headers: parts.headers,
        body,
        client_signature: signature,
        signed_headers: verified.covered,
        started,
        started_ms: now_ms,
        claim: hosted.then(|| verified.replay_key.clone()),
    };
    if call.target.service.is_metaservice() {
        let remote = state
            .exchange
            .federation
            .as_ref()
            .and_then(|f| f.remote_node(&call.target.service.member));
        if peer.is_none()
            && let Some(node) = remote
        {
            labels.service = format!("metaservice@{node}");
            let answer = fail!(forward(state, &call, &node, &Basis::default()).await);
            let hash = answer.request_hash.clone().unwrap_or_default();
            return Ok(respond(&call, answer, &hash));
        }
        labels.service = "metaservice".into();
        return Ok(fail!(metaservice(&directory, &call)));
    }
    // The global configuration says where a member lives: a service of a
    // member another node serves is forwarded there, never served here.
    let remote = state
        .exchange
        .federation
        .as_ref()
        .and_then(|f| f.remote_node(&call.target.service.member))
        .filter(|_| peer.is_none());
    if let Some(node) = remote {
        // Consumer side of a federated exchange: this node checks its
        // client's consent, the provider's node checks access again.
        labels.service = format!("forwarded@{node}");
        let basis = fail!(consumer_basis(state, &call, now_ms).await);
        let answer = fail!(forward(state, &call, &node, &basis).await);
        return finish(state, &call, &basis, answer)
            .await
            .map_err(|f| (f, labels));
    }
    let Some(service) = directory.services.get(&call.target.service.to_string()) else {
        return Err((
            Fault::new(
                FaultKind::UnknownService,
                format!("no service {} is registered", call.target.service),
            ),
            labels,
        ));
    };
    labels.service = service.id.clone();
    let Some(right) = directory.right(&service.id, &call.client) else {
        return Err((
            Fault::new(
                FaultKind::AccessDenied,
                format!("{} holds no access right to {}", call.client, service.id),
            ),
            labels,
        ));
    };
    let basis = match &peer {
        Some(_) => fail!(
            state
                .exchange
                .federation
                .as_ref()
                .map(|f| f.peer_basis(state, &call, service, right, now_ms))
                .unwrap_or_else(|| Err(Fault::new(FaultKind::AccessDenied, "no federation")))
        ),
        None => fail!(basis(state, &call, service, right, now_ms).await),
    };
    let fields: Vec<String> = right.fields.split_whitespace().map(str::to_owned).collect();
    let answer = fail!(provide(state, &directory, service, &call, &basis, &fields).await);
    finish(state, &call, &basis, answer)
        .await
        .map_err(|f| (f, labels))
}

fn db_fault(e: StoreError) -> Fault {
    tracing::error!(error = %e, "exchange directory");
    Fault::new(
        FaultKind::DatabaseError,
        "the gateway's database is unavailable",
    )
}

/// The consent a request names (`None`: none named), read from the store.
async fn stored_consent(
    state: &AppState,
    id: Option<&str>,
) -> Result<Option<Option<Consent>>, Fault> {
    match id {
        None => Ok(None),
        Some(id) => Ok(Some(
            state.store.exchange_consent(id).await.map_err(db_fault)?,
        )),
    }
}

fn claim_of(stored: &Option<Option<Consent>>, now_ms: i64) -> consent::Claim<'_> {
    match stored {
        None => consent::Claim::Absent,
        Some(None) => consent::Claim::Unknown,
        Some(Some(c)) => consent::Claim::Given(consent::Given {
            id: &c.id,
            service: &c.service_id,
            client_agency: &c.client_agency,
            purpose: &c.purpose,
            subject: &c.subject_hash,
            valid: c.is_valid_at(now_ms),
        }),
    }
}

/// Purpose, consent or legal basis, and subject, checked against the service.
async fn basis(
    state: &AppState,
    call: &Call,
    service: &DataService,
    right: &AccessRight,
    now_ms: i64,
) -> Result<Basis, Fault> {
    let purpose = header_text(&call.headers, "nara-purpose")?;
    let consent_id = header_text(&call.headers, "nara-consent")?;
    let legal = header_text(&call.headers, "nara-legal-basis")?;
    let subject = subject_of(state, &call.headers)?;
    let stored = stored_consent(state, consent_id.as_deref()).await?;
    let ground = consent::decide(
        &terms(service),
        &entitlement(right),
        &consent::Asked {
            client_agency: call.client.member.as_str(),
            purpose: purpose.as_deref(),
            consent: claim_of(&stored, now_ms),
            legal_basis: legal.as_deref(),
            subject: subject.as_ref().map(|(_, hash)| hash.as_str()),
        },
    )?;
    let (subject, subject_hash) = subject.map_or((None, String::new()), |(d, h)| (Some(d), h));
    Ok(Basis {
        purpose: purpose.unwrap_or_default(),
        subject,
        subject_hash,
        ..Basis::default()
    }
    .on(ground))
}

/// The consumer side of a federated exchange: the purpose and the consent
/// (kept on this node) are checked here; the provider's node checks the
/// rest against its own service.
async fn consumer_basis(state: &AppState, call: &Call, now_ms: i64) -> Result<Basis, Fault> {
    let mut basis = Basis {
        purpose: header_text(&call.headers, "nara-purpose")?.unwrap_or_default(),
        legal_basis: header_text(&call.headers, "nara-legal-basis")?.unwrap_or_default(),
        ..Basis::default()
    };
    if let Some((digits, hash)) = subject_of(state, &call.headers)? {
        basis.subject = Some(digits);
        basis.subject_hash = hash;
    }
    let consent_id = header_text(&call.headers, "nara-consent")?;
    let stored = stored_consent(state, consent_id.as_deref()).await?;
    if stored.is_some() {
        basis.consent_id = consent::consent_covers(
            &claim_of(&stored, now_ms),
            &call.target.service.to_string(),
            call.client.member.as_str(),
            &basis.purpose,
            Some(basis.subject_hash.as_str()).filter(|h| !h.is_empty()),
        )?
        .to_owned();
    }
    Ok(basis)
}

/// `Nara-Subject`: the resident registration number of the person the data
/// is about, normalised, and its keyed hash (never stored in the clear).
fn subject_of(state: &AppState, headers: &HeaderMap) -> Result<Option<(String, String)>, Fault> {
    let Some(raw) = header_text(headers, "nara-subject")? else {
        return Ok(None);
    };
    let digits = nara_core::identity::normalize_national_id(&raw).map_err(|_| {
        Fault::new(
            FaultKind::BadRequest,
            "Nara-Subject must be a valid resident registration number",
        )
    })?;
    let hash = state.identity.national_id_hash(&digits);
    Ok(Some((digits, hash)))
}

/// Calls the provider: a registry nara hosts, or the agency's system.
async fn provide(
    state: &AppState,
    directory: &Directory,
    service: &DataService,
    call: &Call,
    basis: &Basis,
    fields: &[String],
) -> Result<Answer, Fault> {
    if service.endpoint_kind == "registry" {
        let registry = directory.registries.get(&service.endpoint).ok_or_else(|| {
            Fault::new(
                FaultKind::ServiceFailed,
                "the service's registry is missing",
            )
        })?;
        let (status, body) = registry_answer(
            &state.store,
            registry,
            &call.method,
            &call.target.path,
            basis.subject_hash.as_str(),
            fields,
        )
        .await?;
        return Ok(Answer {
            status,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json;charset=utf-8"),
            )],
            body,
            peer_signature: String::new(),
            request_hash: None,
        });
    }
    if state.exchange.circuit_open(&service.id) {
        return Err(Fault::new(
            FaultKind::ServiceFailed,
            "the provider failed repeatedly; calls are paused for 30 s (circuit open)",
        ));
    }
    // The URL is the registered base plus the checked path: the request
    // can never change the host (SSRF), and this is checked again.
    let base = url::Url::parse(&service.endpoint).map_err(|_| {
        Fault::new(
            FaultKind::ServiceFailed,
            "the registered endpoint is invalid",
        )
    })?;
    // With no path the provider sees its registered URL itself (PR-REST §4.1).
    let query = call
        .target
        .query
        .as_deref()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = if call.target.path.is_empty() {
        format!("{}{query}", service.endpoint)
    } else {
        format!(
            "{}{}{query}",
            service.endpoint.trim_end_matches('/'),
            call.target.path
        )
    };
    let parsed = url::Url::parse(&url).ok().filter(|u| {
        u.scheme() == base.scheme()
            && u.host_str() == base.host_str()
            && u.port_or_known_default() == base.port_or_known_default()
    });
    let Some(parsed) = parsed else {
        return Err(Fault::new(
            FaultKind::BadRequest,
            "the path would leave the registered endpoint",
        ));
    };
    let mut request = state
        .exchange
        .http
        .request(call.method.clone(), parsed)
        .body(call.body.clone());
    // A header the caller did not sign could have been added on the way: it
    // never reaches the provider.
    for (name, value) in &call.headers {
        if !NOT_FORWARDED.contains(&name.as_str())
            && call.signed_headers.iter().any(|h| h == name.as_str())
        {
            request = request.header(name, value);
        }
    }
    request = request
        .header("x-road-id", &call.xroad_id)
        .header("x-road-service", call.target.service.to_string());
    if let Some(subject) = &basis.subject {
        request = request.header("nara-subject", subject);
    }
    let result = request.send().await;
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            state.exchange.provider_result(&service.id, false);
            let kind = if e.is_timeout() {
                "timed out"
            } else {
                "could not be reached"
            };
            return Err(Fault::new(
                FaultKind::NetworkError,
                format!("the provider's system {kind}"),
            ));
        }
    };
    let status = response.status().as_u16();
    let headers: Vec<(HeaderName, HeaderValue)> = response
        .headers()
        .iter()
        .filter(|(n, _)| !n.as_str().starts_with("x-road-") && !NOT_FORWARDED.contains(&n.as_str()))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let body = match read_limited(response, state.config.max_body_bytes * 8).await {
        Ok(b) => b,
        Err(fault) => {
            state.exchange.provider_result(&service.id, false);
            return Err(fault);
        }
    };
    state.exchange.provider_result(&service.id, status < 500);
    Ok(Answer {
        status,
        headers,
        body,
        peer_signature: String::new(),
        request_hash: None,
    })
}

/// A hosted registry's answer to `GET /record` about `subject_hash`, as the
/// provider it is (status and JSON body, PR-REST category 1).
pub async fn registry_answer(
    store: &Store,
    registry: &Registry,
    method: &Method,
    path: &str,
    subject_hash: &str,
    fields: &[String],
) -> Result<(u16, Bytes), Fault> {
    let problem = |status: u16, error: &str, message: &str| {
        let body =
            serde_json::json!({"status": status, "error": error, "message": message, "path": path});
        Ok((status, Bytes::from(body.to_string())))
    };
    if path != "/record" {
        return problem(404, "Not Found", "this registry answers GET /record");
    }
    if method != Method::GET {
        return problem(
            405,
            "Method Not Allowed",
            "this registry answers GET /record",
        );
    }
    if subject_hash.is_empty() {
        return problem(
            400,
            "Bad Request",
            "name the person in Nara-Subject (or send a consent that names them)",
        );
    }
    let record = store
        .registry_record(&registry.code, subject_hash)
        .await
        .map_err(db_fault)?;
    match record {
        None => problem(
            404,
            "Not Found",
            "the registry holds no record of this person",
        ),
        Some(text) if fields.is_empty() => Ok((200, Bytes::from(text))),
        Some(text) => {
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|_| Fault::new(FaultKind::ServiceFailed, "a stored record is corrupt"))?;
            Ok((
                200,
                Bytes::from(exchange::minimal_view(value, fields).to_string()),
            ))
        }
    }
}

/// The headers the request hash covers, as the provider receives them.
fn hashed_head(call: &Call) -> String {
    let mut headers = vec![
        ("x-road-client".to_owned(), call.client.to_string()),
        ("x-road-id".to_owned(), call.xroad_id.clone()),
    ];
    for (name, value) in &call.headers {
        let n = name.as_str();
        if !NOT_FORWARDED.contains(&n)
            && n != "x-road-client"
            && n != "x-road-id"
            && let Ok(v) = value.to_str()
        {
            headers.push((n.to_owned(), v.to_owned()));
        }
    }
    exchange::request_head(
        call.method.as_str(),
        &call.target.path_and_query(),
        &headers,
    )
}

/// Signs, logs (with the ledger entry) and only then answers.
async fn finish(
    state: &AppState,
    call: &Call,
    basis: &Basis,
    answer: Answer,
) -> Result<Response, Fault> {
    let request_hash = match &answer.request_hash {
        Some(h) => h.clone(),
        None => exchange::request_hash(&hashed_head(call), &call.body),
    };
    let mut record = ExchangeRecord {
        id: 0,
        xroad_id: call.xroad_id.clone(),
        request_id: call.request_id.clone(),
        client_id: call.client.to_string(),
        service_id: call.target.service.to_string(),
        method: call.method.to_string(),
        path: call.target.path.chars().take(500).collect(),
        purpose: basis.purpose.clone(),
        consent_id: basis.consent_id.clone(),
        legal_basis: basis.legal_basis.clone(),
        subject_hash: basis.subject_hash.clone(),
        user_id: call.user_id.clone(),
        issue: call.issue.clone(),
        request_hash,
        response_hash: STANDARD.encode(Sha512::digest(&answer.body)),
        client_signature: call.client_signature.chars().take(400).collect(),
        gateway_signature: String::new(),
        peer_signature: answer.peer_signature.clone(),
        status: i64::from(answer.status),
        outcome: "ok".into(),
        started_at: call.started_ms,
        duration_us: 0,
    };
    record.gateway_signature = state.exchange.sign(&record_digest(&record));
    record.duration_us = call.started.elapsed().as_micros() as i64;
    let signature = record.gateway_signature.clone();
    let hash = record.request_hash.clone();
    state
        .exchange
        .log(&state.store, record, call.claim.clone())
        .await?;
    state.metrics.exchange(
        &call.target.service.to_string(),
        &call.client.to_string(),
        "ok",
        call.started.elapsed(),
    );
    let mut response = respond(call, answer, &hash);
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&signature) {
        h.insert("nara-gateway-signature", v);
    }
    if let Ok(v) = HeaderValue::from_str(&state.exchange.key_id) {
        h.insert("nara-gateway-key", v);
    }
    Ok(response)
}

/// The provider's answer with the X-Road response headers (PR-REST §4.3).
fn respond(call: &Call, answer: Answer, request_hash: &str) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = response.headers_mut();
    for (n, v) in answer.headers {
        h.append(n, v);
    }
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set("x-road-client", &call.client.to_string());
    set("x-road-service", &call.target.service.to_string());
    set("x-road-id", &call.xroad_id);
    set("x-road-request-id", &call.request_id);
    if !request_hash.is_empty() {
        set("x-road-request-hash", request_hash);
    }
    response
}

/// Forwards to the node that serves the provider (federation).
async fn forward(
    state: &AppState,
    call: &Call,
    node: &str,
    basis: &Basis,
) -> Result<Answer, Fault> {
    let Some(f) = &state.exchange.federation else {
        return Err(Fault::new(FaultKind::OutdatedGlobalConf, "no federation"));
    };
    f.forward(state, call, node, basis).await
}

/// listMethods, allowedMethods and getOpenAPI (PR-MREST §4–5).
fn metaservice(directory: &Directory, call: &Call) -> Result<Response, Fault> {
    let provider = call.target.service.provider();
    let services: Vec<&DataService> = directory.of_provider(&provider).collect();
    let allowed = |s: &DataService| directory.right(&s.id, &call.client).is_some();
    let details = |s: &DataService| ServiceDetails {
        xroad_instance: provider
            .member
            .as_str()
            .split('/')
            .next()
            .unwrap_or("")
            .into(),
        member_class: provider
            .member
            .as_str()
            .split('/')
            .nth(1)
            .unwrap_or("")
            .into(),
        member_code: provider.member.code().into(),
        subsystem_code: s.subsystem.clone(),
        service_code: s.service_code.clone(),
        service_version: s.version.clone(),
        object_type: "SERVICE".into(),
        service_type: "OPENAPI".into(),
        endpoint_list: endpoints(&s.openapi),
    };
    let body = match call.target.service.code.as_str() {
        "listMethods" => serde_json::json!({
            "service": services.iter().map(|s| details(s)).collect::<Vec<_>>()
        })
        .to_string(),
        "allowedMethods" => serde_json::json!({
            "service": services.iter().filter(|s| allowed(s)).map(|s| details(s)).collect::<Vec<_>>()
        })
        .to_string(),
        _ => {
            let code = call
                .target
                .query
                .as_deref()
                .map(exchange::form_pairs)
                .transpose()?
                .unwrap_or_default()
                .into_iter()
                .find(|(n, _)| n == "serviceCode")
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    Fault::new(FaultKind::BadRequest, "getOpenAPI needs ?serviceCode=")
                })?;
            let s = services
                .iter()
                .find(|s| s.service_code == code)
                .ok_or_else(|| {
                    Fault::new(FaultKind::UnknownService, format!("no service {code:?}"))
                })?;
            if !allowed(s) {
                return Err(Fault::new(
                    FaultKind::AccessDenied,
                    format!("{} holds no access right to {}", call.client, s.id),
                ));
            }
            s.openapi.clone()
        }
    };
    let answer = Answer {
        status: 200,
        headers: vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=utf-8"),
        )],
        body: Bytes::from(body),
        peer_signature: String::new(),
        request_hash: None,
    };
    let hash = exchange::request_hash(&hashed_head(call), &call.body);
    Ok(respond(call, answer, &hash))
}

/// An OpenAPI document's operations as X-Road endpoints (`{param}` → `*`).
pub fn endpoints(openapi: &str) -> Vec<Endpoint> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(openapi) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) {
        for (path, ops) in paths {
            let path: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "*" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            for method in ["get", "put", "post", "delete", "patch"] {
                if ops.get(method).is_some() {
                    out.push(Endpoint {
                        method: method.to_uppercase(),
                        path: path.clone(),
                    });
                }
            }
        }
    }
    out
}

/// `GET /listClients` (PR-META): the members and subsystems of this
/// instance, as JSON.
pub async fn list_clients(State(state): State<AppState>) -> Response {
    let agencies = match state.store.all_agencies().await {
        Ok(a) => a,
        Err(e) => return fault_response(&db_fault(e), &new_id()),
    };
    let subsystems = state.store.subsystems().await.unwrap_or_default();
    let id = |member: &str, subsystem: Option<&str>| {
        let mut p = member.split('/');
        let mut v = serde_json::json!({
            "xroad_instance": p.next(),
            "member_class": p.next(),
            "member_code": p.next(),
            "object_type": if subsystem.is_some() { "SUBSYSTEM" } else { "MEMBER" },
        });
        if let Some(s) = subsystem {
            v["subsystem_code"] = serde_json::json!(s);
        }
        v
    };
    let mut members = Vec::new();
    for a in &agencies {
        members.push(serde_json::json!({"id": id(a.id.as_str(), None), "name": a.name.en}));
        for (agency, sub) in subsystems.iter().filter(|(g, _)| g == a.id.as_str()) {
            members.push(serde_json::json!({"id": id(agency, Some(sub)), "name": a.name.en}));
        }
    }
    if let Some(f) = &state.exchange.federation {
        for (member, name) in f.remote_members() {
            members.push(serde_json::json!({"id": id(&member, None), "name": name}));
        }
    }
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        serde_json::json!({ "member": members }).to_string(),
    )
        .into_response()
}

/// Spawns the once-a-second poll that notices other nodes' changes.
pub fn spawn_poll(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            tick.tick().await;
            if let Err(e) = state.exchange.poll(&state.store).await {
                tracing::warn!(error = %e, "polling exchange_version");
            }
            ticks += 1;
            if ticks.is_multiple_of(60) {
                let now = nara_core::Timestamp::now().0;
                state.exchange.replay.prune(&state.store, now).await;
            }
            // A minute after the start, then hourly: closed months archived,
            // archived ones past retention pruned (another node's archive
            // of the same month is a conflict, logged and skipped).
            // In its own task: a month of a busy log takes a while, and
            // this loop must keep polling every second.
            if ticks % 3_600 == 60 {
                let state = state.clone();
                tokio::spawn(async move { super::archive::round(&state).await });
            }
        }
    })
}

/// Evidence for an application: the agency's portal subsystem (`client`)
/// fetches one record through the same checks as any exchange — access
/// right, purpose, the citizen's consent or a legal basis the service lists —
/// from the same provider, logged and ledgered the same way, so it appears
/// in the citizen's data-access history. Services of other nodes are not
/// fetched this way yet.
pub struct EvidenceRequest<'a> {
    pub client: ClientId,
    pub service_id: &'a str,
    pub subject_hash: &'a str,
    pub purpose: &'a str,
    pub consent_id: Option<&'a str>,
    pub legal_basis: Option<&'a str>,
    /// The application's reference (`X-Road-Issue`).
    pub issue: &'a str,
}

pub async fn fetch_evidence(
    state: &AppState,
    req: &EvidenceRequest<'_>,
) -> Result<serde_json::Value, Fault> {
    let started = Instant::now();
    let now_ms = nara_core::Timestamp::now().0;
    let directory = state
        .exchange
        .directory(&state.store)
        .await
        .map_err(db_fault)?;
    let Some(service) = directory.services.get(req.service_id) else {
        return Err(Fault::new(
            FaultKind::UnknownService,
            format!("no service {} on this node", req.service_id),
        ));
    };
    let right = directory.right(&service.id, &req.client).ok_or_else(|| {
        Fault::new(
            FaultKind::AccessDenied,
            format!("{} holds no access right to {}", req.client, service.id),
        )
    })?;
    let stored = stored_consent(state, req.consent_id).await?;
    let ground = consent::decide(
        &terms(service),
        &entitlement(right),
        &consent::Asked {
            client_agency: req.client.member.as_str(),
            purpose: Some(req.purpose),
            consent: claim_of(&stored, now_ms),
            legal_basis: req.legal_basis,
            subject: Some(req.subject_hash),
        },
    )?;
    let basis = Basis {
        purpose: req.purpose.to_owned(),
        subject_hash: req.subject_hash.to_owned(),
        ..Basis::default()
    }
    .on(ground);
    let target = Target::parse(&format!("/r1/{}/record", service.id), None)?;
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("nara-purpose", basis.purpose.as_str()),
        ("nara-consent", basis.consent_id.as_str()),
        ("nara-legal-basis", basis.legal_basis.as_str()),
        ("x-road-issue", req.issue),
    ] {
        if !value.is_empty()
            && let Ok(v) = HeaderValue::from_str(value)
        {
            headers.insert(name, v);
        }
    }
    let signed_headers = headers.keys().map(|h| h.as_str().to_owned()).collect();
    let call = Call {
        method: Method::GET,
        target,
        client: req.client.clone(),
        xroad_id: new_id(),
        request_id: new_id(),
        user_id: String::new(),
        issue: req.issue.to_owned(),
        headers,
        body: Bytes::new(),
        client_signature: "nara-portal".into(),
        // Built here, from checked values: nothing to distrust.
        signed_headers,
        started,
        started_ms: now_ms,
        // Signed by no one: the citizen's session asked for it.
        claim: None,
    };
    let fields: Vec<String> = right.fields.split_whitespace().map(str::to_owned).collect();
    let answer = provide(state, &directory, service, &call, &basis, &fields).await?;
    let (status, body) = (answer.status, answer.body.clone());
    finish(state, &call, &basis, answer).await?;
    if status != 200 {
        return Err(Fault::new(
            FaultKind::ServiceFailed,
            format!("{} answered {status}", service.id),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|_| Fault::new(FaultKind::ServiceFailed, "the record is not JSON"))
}

/// An agency system calling the gateway: signs each request with its
/// subsystem's key (RFC 9421) and names itself in `X-Road-Client`. Used by
/// `nara exchange call`, the tests and the benchmark.
pub struct Consumer {
    pub http: reqwest::Client,
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    pub client: String,
    pub key_id: String,
    pub key: SigningKey,
}

impl Consumer {
    /// A signed request to `path` (`/r1/…`), with `headers` added.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let mut fields = vec![("x-road-client", self.client.as_str())];
        fields.extend_from_slice(headers);
        let signature = machine::sign_request(
            method.as_str(),
            &url,
            &fields,
            &body,
            &self.key_id,
            &self.key,
            crate::identity::auth::unix_now(),
        );
        let mut r = self.http.request(method, &url);
        for (n, v) in fields {
            r = r.header(n, v);
        }
        for (n, v) in signature {
            r = r.header(n, v);
        }
        if !body.is_empty() {
            r = r.body(body);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_paths_become_endpoints() {
        let e = endpoints(
            r#"{"paths": {"/pets/{id}": {"get": {}, "delete": {}}, "/pets": {"post": {}}}}"#,
        );
        let shown: Vec<String> = e
            .iter()
            .map(|e| format!("{} {}", e.method, e.path))
            .collect();
        assert!(shown.contains(&"GET /pets/*".to_string()));
        assert!(shown.contains(&"DELETE /pets/*".to_string()));
        assert!(shown.contains(&"POST /pets".to_string()));
    }

    #[test]
    fn faults_follow_the_protocol() {
        let r = fault_response(&Fault::new(FaultKind::AccessDenied, "no"), "rid");
        assert_eq!(r.status(), 500);
        assert_eq!(
            r.headers()["x-road-error"],
            "Server.ServerProxy.AccessDenied"
        );
        let r = fault_response(&Fault::new(FaultKind::BadRequest, "no"), "rid");
        assert_eq!(r.status(), 400);
        assert_eq!(
            r.headers()["content-type"],
            "application/json;charset=utf-8"
        );
    }
}
