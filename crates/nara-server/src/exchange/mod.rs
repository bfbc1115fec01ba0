//! The exchange between agencies: the X-Road r1 gateway (`gateway`), the
//! federation of nodes (`federation`), and what both speak of — one call,
//! the basis its checks found, the provider's answer, the digest both
//! gateways sign. The consent decision itself is `nara_core::consent`.
//! The people-facing side: `registries`, `consents`, `data_access` (the
//! citizen's), `administration` (agency admins'), `operations` (operators').

pub mod administration;
pub mod archive;
pub mod consents;
pub mod data_access;
pub mod federation;
pub mod gateway;
pub mod operations;
pub mod registries;

use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use nara_core::consent;
use nara_core::exchange::{ClientId, Fault, FaultKind, Target};
use nara_store::exchange::{AccessRight, DataService, ExchangeRecord};
use sha2::{Digest, Sha256};

/// What the checks decided about one exchange.
#[derive(Debug, Clone, Default)]
pub struct Basis {
    pub purpose: String,
    pub consent_id: String,
    pub legal_basis: String,
    /// The subject's keyed hash, and their identifier for the provider.
    pub subject_hash: String,
    pub subject: Option<String>,
}

/// What one exchange is, once authenticated.
pub struct Call {
    pub method: Method,
    pub target: Target,
    pub client: ClientId,
    pub xroad_id: String,
    pub request_id: String,
    pub user_id: String,
    pub issue: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub client_signature: String,
    /// The header fields the caller's signature covers: only these reach a provider.
    pub signed_headers: Vec<String>,
    pub started: Instant,
    pub started_ms: i64,
    /// The signature's replay key, when it is claimed in the same
    /// transaction as the log record (see `ReplayGuard::admit_here`).
    pub claim: Option<String>,
}

/// A provider's answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// The peer gateway's signature (federated exchanges).
    pub peer_signature: String,
    /// The request hash the provider's gateway computed (federated exchanges).
    pub request_hash: Option<String>,
}

/// The service's terms and the right's entitlement, as the one consent
/// decision (`nara_core::consent`) reads them.
pub fn terms(service: &DataService) -> consent::Terms<'_> {
    consent::Terms {
        service: &service.id,
        personal: service.personal != 0,
        purposes: service.purpose_list().collect(),
        legal_bases: service.legal_basis_list().collect(),
    }
}

pub fn entitlement(right: &AccessRight) -> consent::Entitlement<'_> {
    consent::Entitlement {
        client: &right.client_id,
        purposes: right.purpose_list().collect(),
        legal_bases: right.legal_basis_list().collect(),
    }
}

impl Basis {
    /// Records the ground the decision found.
    pub fn on(mut self, ground: consent::Ground) -> Basis {
        match ground {
            consent::Ground::NotPersonal => {}
            consent::Ground::Consent(id) => self.consent_id = id,
            consent::Ground::LegalBasis(l) => self.legal_basis = l,
        }
        self
    }
}

/// Reads a provider's body, at most `max` bytes.
pub async fn read_limited(mut response: reqwest::Response, max: usize) -> Result<Bytes, Fault> {
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > max {
                    return Err(Fault::new(
                        FaultKind::ServiceFailed,
                        "the provider's response is too large",
                    ));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(out)),
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                return Err(Fault::new(
                    FaultKind::NetworkError,
                    format!("reading the provider's response {what}"),
                ));
            }
        }
    }
}

/// The signed digest of an exchange: what both gateways sign.
pub fn record_digest(record: &ExchangeRecord) -> Vec<u8> {
    let text = format!(
        "nara-exchange-v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        record.xroad_id,
        record.client_id,
        record.service_id,
        record.request_hash,
        record.response_hash,
        record.status,
        record.subject_hash.is_empty(),
    );
    Sha256::digest(text.as_bytes()).to_vec()
}

/// The signed-in citizen's subject key in the exchange: the keyed hash of
/// her national identifier, or none for an account without one.
pub async fn subject_of(
    state: &crate::AppState,
    who: &crate::identity::auth::Principal,
) -> Result<Option<String>, nara_store::StoreError> {
    state.store.national_id_hash_of(who.account_id).await
}
