//! Federation without a central data hub: nodes learn each other from a
//! signed global configuration (X-Road's central-server role, as a file,
//! never on the data path), and one node's gateway forwards to another's.
//!
//! The global configuration is a C2SP signed note whose text is one line of
//! JSON: the instance, a version, the nodes (name, address, gateway public
//! key) and which node serves which member. A node refuses to start with a
//! configuration whose signature does not verify under `global_conf_key`.
//!
//! Forwarding: node A signs the request with its gateway key (RFC 9421,
//! keyid `gateway:A`) and, for a consented exchange, adds a consent
//! assertion it signs (`Nara-Consent-Assertion`: consent id, service,
//! client member, purpose, expiry and a digest binding the subject to this
//! `X-Road-Id`), since consents live on the node where the citizen gave
//! them. Node B checks A's signature, that A serves the client, the access
//! right, purpose and consent or legal basis, calls the provider, logs and
//! signs; A checks B's signature over the same record digest and logs too.

use std::collections::HashMap;

use axum::http::{HeaderName, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use nara_core::MemberId;
use nara_core::exchange::{Fault, FaultKind};
use nara_store::exchange::{DataService, ExchangeRecord};
use nara_store::identity::MachineClient;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use super::{Answer, Basis, Call};
use crate::AppState;
use crate::identity::machine::{Signatures, SignedRequest};

/// The global configuration's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConf {
    pub instance: String,
    pub version: u64,
    pub nodes: Vec<Node>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: String,
    /// Base URL of the node's gateway, e.g. `https://busan.gov.example`.
    pub address: String,
    /// The node's gateway key (Ed25519, base64url).
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: MemberId,
    pub node: String,
    #[serde(default)]
    pub name: String,
}

/// A loaded, verified global configuration, from this node's point of view.
pub struct Federation {
    pub node: String,
    conf: GlobalConf,
    keys: HashMap<String, VerifyingKey>,
    members: HashMap<String, String>,
}

/// What a consent assertion says (signed by the consumer's node).
#[derive(Debug, Serialize, Deserialize)]
struct Assertion {
    consent: String,
    service: String,
    client: String,
    purpose: String,
    expires_at: i64,
    /// SHA-256 of `X-Road-Id`, newline, the subject's digits: binds the
    /// assertion to one exchange about one person.
    subject: String,
}

impl Federation {
    /// Opens a signed configuration note with the trusted key and takes this
    /// node's place in it.
    pub fn load(note: &str, vkey: &str, node: &str) -> anyhow::Result<Federation> {
        let verifier = nara_ledger::note::Verifier::from_vkey(vkey.trim())
            .map_err(|e| anyhow::anyhow!("global_conf_key: {e}"))?;
        let text = nara_ledger::note::open(note, &[verifier])
            .map_err(|e| anyhow::anyhow!("the global configuration's signature: {e}"))?;
        let conf: GlobalConf = serde_json::from_str(text.trim())?;
        let mut keys = HashMap::new();
        for n in &conf.nodes {
            let k = crate::identity::machine::decode_key(&n.key)
                .and_then(|k| VerifyingKey::from_bytes(&k).ok())
                .ok_or_else(|| anyhow::anyhow!("node {}: not an Ed25519 key", n.id))?;
            url::Url::parse(&n.address)
                .map_err(|e| anyhow::anyhow!("node {}: address: {e}", n.id))?;
            keys.insert(n.id.clone(), k);
        }
        anyhow::ensure!(
            keys.contains_key(node),
            "this node ({node}) is not in the global configuration"
        );
        let mut members = HashMap::new();
        for m in &conf.members {
            anyhow::ensure!(
                keys.contains_key(&m.node),
                "member {} is on an unknown node {}",
                m.id,
                m.node
            );
            members.insert(m.id.to_string(), m.node.clone());
        }
        Ok(Federation {
            node: node.to_owned(),
            conf,
            keys,
            members,
        })
    }

    pub fn version(&self) -> u64 {
        self.conf.version
    }

    /// The node that serves a member, if the configuration names one.
    pub fn node_of(&self, member: &MemberId) -> Option<&str> {
        self.members.get(member.as_str()).map(String::as_str)
    }

    /// The other node that serves `member`, if it is not this one.
    pub fn remote_node(&self, member: &MemberId) -> Option<String> {
        self.node_of(member)
            .filter(|n| *n != self.node)
            .map(str::to_owned)
    }

    /// Members served by other nodes, with their names.
    pub fn remote_members(&self) -> Vec<(String, String)> {
        self.conf
            .members
            .iter()
            .filter(|m| m.node != self.node)
            .map(|m| (m.id.to_string(), m.name.clone()))
            .collect()
    }

    fn address(&self, node: &str) -> Option<&str> {
        self.conf
            .nodes
            .iter()
            .find(|n| n.id == node)
            .map(|n| n.address.trim_end_matches('/'))
    }

    /// If a request is signed by a peer gateway (`keyid="gateway:NODE"`),
    /// checks it and names the node; `None` for other signers.
    pub fn verify_peer(
        &self,
        req: &SignedRequest<'_>,
        now_s: i64,
    ) -> Result<Option<(String, crate::identity::machine::Verified)>, Fault> {
        let Ok(signatures) = Signatures::parse(req.headers) else {
            return Ok(None);
        };
        let Ok(ids) = signatures.key_ids() else {
            return Ok(None);
        };
        for (label, key_id) in ids {
            let Some(node) = key_id.strip_prefix("gateway:") else {
                continue;
            };
            let refuse = |why: String| Fault::new(FaultKind::InvalidSignature, why);
            if node == self.node {
                return Err(refuse("a request signed as this node itself".into()));
            }
            let key = self
                .keys
                .get(node)
                .ok_or_else(|| refuse(format!("no node {node} in the global configuration")))?;
            let as_client = MachineClient {
                key_id: key_id.clone(),
                agency_id: String::new(),
                subsystem: String::new(),
                public_key: URL_SAFE_NO_PAD.encode(key.as_bytes()),
                created_at: 0,
                revoked_at: None,
                pending_since: None,
            };
            let verified = signatures
                .check(req, &label, &as_client, now_s)
                .map_err(|e| refuse(format!("the peer gateway's signature: {e}")))?;
            return Ok(Some((node.to_owned(), verified)));
        }
        Ok(None)
    }

    /// The provider side's checks of a forwarded exchange's basis.
    pub fn peer_basis(
        &self,
        state: &AppState,
        call: &Call,
        service: &DataService,
        right: &nara_store::exchange::AccessRight,
        now_ms: i64,
    ) -> Result<Basis, Fault> {
        let text = |name: &str| {
            call.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let purpose = text("nara-purpose").filter(|p| !p.is_empty());
        let legal = text("nara-legal-basis");
        let mut basis = Basis {
            purpose: purpose.clone().unwrap_or_default(),
            ..Basis::default()
        };
        if let Some(raw) = text("nara-subject") {
            let digits = nara_core::identity::normalize_national_id(&raw).map_err(|_| {
                Fault::new(FaultKind::BadRequest, "Nara-Subject is not a valid number")
            })?;
            basis.subject_hash = state.identity.national_id_hash(&digits);
            basis.subject = Some(digits);
        }
        // The consent is kept where the citizen gave it: its node asserts
        // it, bound to this exchange and person, and signs the assertion.
        let assertion = match text("nara-consent-assertion") {
            Some(a) => Some(self.open_assertion(&a, call)?),
            None => None,
        };
        let binding = subject_binding(&call.xroad_id, basis.subject.as_deref().unwrap_or(""));
        let claim = match &assertion {
            None => nara_core::consent::Claim::Absent,
            Some(a) => nara_core::consent::Claim::Given(nara_core::consent::Given {
                id: &a.consent,
                service: &a.service,
                client_agency: &a.client,
                purpose: &a.purpose,
                subject: &a.subject,
                valid: a.expires_at > now_ms,
            }),
        };
        let ground = nara_core::consent::decide(
            &super::terms(service),
            &super::entitlement(right),
            &nara_core::consent::Asked {
                client_agency: call.client.member.as_str(),
                purpose: purpose.as_deref(),
                consent: claim,
                legal_basis: legal.as_deref(),
                subject: Some(&binding),
            },
        )?;
        Ok(basis.on(ground))
    }

    fn open_assertion(&self, text: &str, call: &Call) -> Result<Assertion, Fault> {
        let bad = || {
            Fault::new(
                FaultKind::ConsentRequired,
                "the consent assertion is invalid",
            )
        };
        let (node, rest) = text.split_once(':').ok_or_else(bad)?;
        let (payload, sig) = rest.split_once('.').ok_or_else(bad)?;
        let key = self.keys.get(node).ok_or_else(bad)?;
        // Only the node that serves the client may assert its consents.
        if self.node_of(&call.client.member) != Some(node) {
            return Err(bad());
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| bad())?;
        let sig = Signature::from_slice(&sig).map_err(|_| bad())?;
        key.verify(&payload, &sig).map_err(|_| bad())?;
        serde_json::from_slice(&payload).map_err(|_| bad())
    }

    /// Forwards an exchange to the node that serves its provider and checks
    /// that node's signature on the answer.
    pub async fn forward(
        &self,
        state: &AppState,
        call: &Call,
        node: &str,
        basis: &Basis,
    ) -> Result<Answer, Fault> {
        let address = self.address(node).ok_or_else(|| {
            Fault::new(
                FaultKind::OutdatedGlobalConf,
                format!("no address for node {node}"),
            )
        })?;
        let target = format!(
            "{address}/r1/{}{}",
            call.target.service,
            match &call.target.query {
                Some(q) => format!("{}?{q}", call.target.path),
                None => call.target.path.clone(),
            }
        );
        let mut headers: Vec<(String, String)> = vec![
            ("x-road-client".into(), call.client.to_string()),
            ("x-road-id".into(), call.xroad_id.clone()),
        ];
        for (name, value) in &call.headers {
            let n = name.as_str();
            let keep = !matches!(
                n,
                "host"
                    | "content-length"
                    | "connection"
                    | "signature"
                    | "signature-input"
                    | "content-digest"
                    | "x-road-client"
                    | "x-road-id"
                    | "nara-consent"
                    | "nara-consent-assertion"
                    | "transfer-encoding"
            );
            // Only what the client signed travels on.
            let signed = call.signed_headers.iter().any(|h| h == n);
            if keep
                && signed
                && let Ok(v) = value.to_str()
            {
                headers.push((n.to_owned(), v.to_owned()));
            }
        }
        if !basis.consent_id.is_empty() {
            let consent = state
                .store
                .exchange_consent(&basis.consent_id)
                .await
                .ok()
                .flatten()
                .ok_or_else(|| Fault::new(FaultKind::ConsentRequired, "consent vanished"))?;
            let a = Assertion {
                consent: format!("{}:{}", self.node, consent.id),
                service: consent.service_id,
                client: consent.client_agency,
                purpose: consent.purpose,
                expires_at: consent.expires_at,
                subject: subject_binding(&call.xroad_id, basis.subject.as_deref().unwrap_or("")),
            };
            let payload = serde_json::to_vec(&a).unwrap_or_default();
            let sig = ed25519_sign(state, &payload);
            headers.push((
                "nara-consent-assertion".into(),
                format!(
                    "{}:{}.{}",
                    self.node,
                    URL_SAFE_NO_PAD.encode(&payload),
                    URL_SAFE_NO_PAD.encode(sig)
                ),
            ));
        }
        // Everything forwarded is covered: the provider's node refuses
        // anything less, and forwards nothing unsigned to its provider.
        let fields: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let signature = crate::identity::machine::sign_request(
            call.method.as_str(),
            &target,
            &fields,
            &call.body,
            &state.exchange.key_id,
            state.exchange.signing_key(),
            crate::identity::auth::unix_now(),
        );
        let mut request = state
            .exchange
            .http()
            .request(call.method.clone(), &target)
            .body(call.body.clone());
        for (n, v) in headers.iter().map(|(n, v)| (n.as_str(), v.clone())) {
            request = request.header(n, v);
        }
        for (n, v) in signature {
            request = request.header(n, v);
        }
        let response = request.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "could not be reached"
            };
            Fault::new(FaultKind::NetworkError, format!("node {node} {what}"))
        })?;
        let status = response.status().as_u16();
        let h = response.headers().clone();
        let body = super::read_limited(response, state.config.max_body_bytes * 8).await?;
        // An X-Road error from the peer is passed on as it is.
        if h.contains_key("x-road-error") {
            return Ok(Answer {
                status,
                headers: pass_headers(&h, true),
                body,
                peer_signature: String::new(),
                request_hash: None,
            });
        }
        let text = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let request_hash = text("x-road-request-hash");
        let peer_signature = text("nara-gateway-signature");
        if !call.target.service.is_metaservice() {
            // B signed the same record digest A computes.
            let record = ExchangeRecord {
                xroad_id: call.xroad_id.clone(),
                client_id: call.client.to_string(),
                service_id: call.target.service.to_string(),
                request_hash: request_hash.clone(),
                response_hash: STANDARD.encode(Sha512::digest(&body)),
                status: i64::from(status),
                subject_hash: if basis.subject.is_some() {
                    "x".into()
                } else {
                    String::new()
                },
                ..blank_record()
            };
            let digest = super::record_digest(&record);
            let ok = self.keys.get(node).is_some_and(|k| {
                STANDARD
                    .decode(&peer_signature)
                    .ok()
                    .and_then(|s| Signature::from_slice(&s).ok())
                    .is_some_and(|s| k.verify(&digest, &s).is_ok())
            });
            if !ok {
                return Err(Fault::new(
                    FaultKind::ServiceFailed,
                    format!("node {node}'s signature on the response does not verify"),
                ));
            }
        }
        Ok(Answer {
            status,
            headers: pass_headers(&h, false),
            body,
            peer_signature,
            request_hash: Some(request_hash),
        })
    }
}

fn blank_record() -> ExchangeRecord {
    ExchangeRecord {
        id: 0,
        xroad_id: String::new(),
        request_id: String::new(),
        client_id: String::new(),
        service_id: String::new(),
        method: String::new(),
        path: String::new(),
        purpose: String::new(),
        consent_id: String::new(),
        legal_basis: String::new(),
        subject_hash: String::new(),
        user_id: String::new(),
        issue: String::new(),
        request_hash: String::new(),
        response_hash: String::new(),
        client_signature: String::new(),
        gateway_signature: String::new(),
        peer_signature: String::new(),
        status: 0,
        outcome: String::new(),
        started_at: 0,
        duration_us: 0,
    }
}

/// The peer's response headers to pass on: its content headers, and for a
/// peer's X-Road error, the error header too.
fn pass_headers(h: &axum::http::HeaderMap, error: bool) -> Vec<(HeaderName, HeaderValue)> {
    h.iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            (error && n == "x-road-error")
                || !(n.starts_with("x-road-")
                    || n.starts_with("nara-gateway")
                    || matches!(
                        n,
                        "content-length" | "connection" | "transfer-encoding" | "date" | "server"
                    )
                    || n.starts_with("content-security")
                    || n.starts_with("strict-transport")
                    || n.starts_with("x-frame")
                    || n.starts_with("x-content-type")
                    || n.starts_with("referrer")
                    || n.starts_with("permissions")
                    || n.starts_with("cross-origin"))
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

fn subject_binding(xroad_id: &str, digits: &str) -> String {
    hex::encode(Sha256::digest(format!("{xroad_id}\n{digits}").as_bytes()))
}

fn ed25519_sign(state: &AppState, payload: &[u8]) -> Vec<u8> {
    use ed25519_dalek::Signer;
    state
        .exchange
        .signing_key()
        .sign(payload)
        .to_bytes()
        .to_vec()
}

/// Makes a signed global configuration note (for `nara globalconf sign`).
pub fn sign_conf(conf: &GlobalConf, signer: &nara_ledger::note::Signer) -> anyhow::Result<String> {
    let text = format!("{}\n", serde_json::to_string(conf)?);
    signer
        .sign(&text)
        .map_err(|e| anyhow::anyhow!("signing the global configuration: {e}"))
}

/// The federation the configuration names, if any: `global_conf` (a signed
/// note), `global_conf_key` (its vkey) and `node_id` must come together.
pub fn from_config(config: &crate::Config) -> anyhow::Result<Option<Federation>> {
    let Some(path) = &config.global_conf else {
        return Ok(None);
    };
    let note = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("global_conf {}: {e}", path.display()))?;
    let vkey = config
        .global_conf_key
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("global_conf needs global_conf_key (the signer's vkey)"))?;
    let node = config
        .node_id
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("global_conf needs node_id (this node's name in it)"))?;
    Federation::load(&note, vkey, node).map(Some)
}
