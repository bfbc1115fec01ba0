//! Agency systems as callers: every request signed with HTTP Message
//! Signatures (RFC 9421), algorithm `ed25519`, by a key the agency's admin
//! registered for one of its subsystems (X-Road's
//! `INSTANCE/CLASS/CODE/SUBSYSTEM`).
//!
//! nara requires, of the signature it checks (the first one whose `keyid`
//! it knows): the covered components `@method` and `@target-uri` (or
//! `@authority` and `@path`, plus `@query` when there is one), and
//! `content-digest` (RFC 9530, `sha-256` or `sha-512`) whenever there is a
//! body, which it recomputes; a `created` time within five minutes of now
//! and no `expires` in the past; `alg`, if given, `ed25519`.

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

/// A verified agency system.
#[derive(Debug, Clone)]
pub struct MachineCaller {
    pub key_id: String,
    pub agency: String,
    pub subsystem: String,
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
    ) -> Result<(), Refused> {
        let Some(ListEntry::InnerList(params)) = self.input.get(label) else {
            return Err(Refused::Malformed);
        };
        check_one(req, label, params, &self.signatures, client, now_s)
    }
}

/// Signs a request as an agency system (or a gateway) does: covers
/// `@method`, `@target-uri` and, with a body, `content-digest` (SHA-256);
/// returns the headers to add (`content-digest`, `signature-input`, `signature`).
pub fn sign_request(
    method: &str,
    target_uri: &str,
    body: &[u8],
    key_id: &str,
    key: &ed25519_dalek::SigningKey,
    created: i64,
) -> Vec<(&'static str, String)> {
    use ed25519_dalek::Signer;
    let mut headers = Vec::new();
    let mut base = format!("\"@method\": {method}\n\"@target-uri\": {target_uri}\n");
    let mut covered = "\"@method\" \"@target-uri\"".to_owned();
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

/// Registered keys by key id, valid while the identity epoch is unchanged
/// (every revocation bumps it), so a busy gateway does not read the key on
/// every request.
#[derive(Default)]
pub struct KeyCache(std::sync::RwLock<std::collections::HashMap<String, (MachineClient, u64)>>);

impl KeyCache {
    async fn get(&self, store: &Store, key_id: &str) -> Option<MachineClient> {
        let epoch = store.identity_epoch();
        if let Ok(map) = self.0.read()
            && let Some((c, e)) = map.get(key_id)
            && *e == epoch
        {
            return Some(c.clone());
        }
        let client = store.machine_client(key_id).await.ok()??;
        if let Ok(mut map) = self.0.write() {
            if map.len() > 10_000 {
                map.clear();
            }
            map.insert(key_id.to_owned(), (client.clone(), epoch));
        }
        Some(client)
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
        let Some(client) = cache.get(store, &key_id).await else {
            continue;
        };
        if client.revoked_at.is_some() {
            continue;
        }
        return signatures
            .check(req, &label, &client, now_s)
            .map(|()| MachineCaller {
                key_id: client.key_id.clone(),
                agency: client.agency_id.clone(),
                subsystem: client.subsystem.clone(),
            });
    }
    Err(Refused::UnknownKey)
}

fn check_one(
    req: &SignedRequest<'_>,
    label: &str,
    params: &sfv::InnerList,
    signatures: &sfv::Dictionary,
    client: &MachineClient,
    now_s: i64,
) -> Result<(), Refused> {
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
            (BareItem::String(name), true) => covered.push(name.as_str()),
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
    let key_bytes: [u8; 32] = decode_key(&client.public_key).ok_or(Refused::BadSignature)?;
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| Refused::BadSignature)?;
    key.verify(base.as_bytes(), &sig)
        .map_err(|_| Refused::BadSignature)
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
/// the admin page and the CLI alike.
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
    let client = MachineClient {
        key_id: format!("{agency}/{subsystem}/{}", n + 1),
        agency_id: agency.to_string(),
        subsystem: subsystem.to_owned(),
        public_key: URL_SAFE_NO_PAD.encode(key),
        created_at: nara_core::Timestamp::now().0,
        revoked_at: None,
    };
    store.register_machine_client(&client, actor).await?;
    Ok(client)
}

/// Which registered subsystem signed this request — for agency integrators
/// to test their signing. POST works the same, with `Content-Digest` covered.
#[utoipa::path(get, path = "/api/v1/machine/whoami", tag = "identity",
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
    match request.extensions().get::<crate::auth::Caller>() {
        Some(crate::auth::Caller::Machine(m)) => axum::Json(serde_json::json!({
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
            };
            let _ = digest_matches(&headers, &body);
            if let (Ok(inputs), Ok(sigs)) = (
                Parser::parse_dictionary(input.as_bytes()),
                Parser::parse_dictionary(sig.as_bytes()),
            ) {
                for (label, entry) in &inputs {
                    if let ListEntry::InnerList(params) = entry {
                        // A random string never verifies.
                        proptest::prop_assert!(check_one(&req, label, params, &sigs, &client, 1_800_000_000).is_err());
                    }
                }
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
