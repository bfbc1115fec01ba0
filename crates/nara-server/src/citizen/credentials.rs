//! Documents as W3C Verifiable Credentials 2.0 secured with JOSE
//! (VC-JOSE-COSE: a compact JWS, `typ: vc+jwt`, `cty: vc`, EdDSA), signed by
//! the issuing agency's key, published with its `kid` at
//! `/credentials/jwks.json`, so anyone verifies offline with the key;
//! revocation published as a W3C Bitstring Status List credential per
//! agency; and the `/verify` page and API.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, Verifier};
use nara_core::service_def::Definition;
use nara_store::applications::{Application, IssuedCredential};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use std::sync::Arc;

use crate::AppState;
use crate::identity::auth::Principal;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

/// The issuer's identifier: a URL naming the agency on this node.
pub fn issuer_id(state: &AppState, agency: &str) -> String {
    format!("{}/agencies/{agency}", state.config.issuer())
}

fn kid(state: &AppState, agency: &str) -> String {
    format!("{}#key-1", issuer_id(state, agency))
}

/// nara's JSON-LD context for credentials, version 1: every term nara's
/// credentials use beyond the VC 2.0 context (credential types, claims such
/// as `address` or `birth_date`) is defined, under this node's vocabulary.
/// Published at this URL and never changed in place: a new meaning gets `v2`.
pub fn context_url(state: &AppState) -> String {
    format!("{}/credentials/contexts/v1", state.config.issuer())
}

/// `GET /credentials/contexts/v1` (`application/ld+json`).
pub async fn context(State(state): State<AppState>) -> Response {
    let vocab = format!("{}/credentials/vocab#", state.config.issuer());
    let body = json!({
        "@context": {
            "@version": 1.1,
            // Terms the VC 2.0 context leaves to the issuer: nara defines
            // them all in its own vocabulary, so a JSON-LD processor keeps
            // every claim (VC Data Model 2.0 §5.2).
            "@vocab": vocab,
            "nara": vocab,
        }
    });
    (
        [
            (axum::http::header::CONTENT_TYPE, "application/ld+json"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `GET /.well-known/jwt-vc-issuer/agencies/{agency}`: JWT VC Issuer
/// Metadata for an issuer (`{base}/agencies/{agency}`): the path of the
/// issuer's URL after the well-known prefix, so that a verifier holding only
/// a credential finds the key set that verifies it.
pub async fn issuer_metadata(
    State(state): State<AppState>,
    Path(agency): Path<String>,
) -> Response {
    let Ok(id) = agency.parse::<nara_core::MemberId>() else {
        return crate::problem::Problem::not_found("issuer").into_response();
    };
    match state.store.get_agency(&id).await {
        Ok(Some(_)) => {}
        _ => return crate::problem::Problem::not_found("issuer").into_response(),
    }
    let agency = id.as_str();
    let key = state.identity.credential_key(agency).verifying_key();
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=3600")],
        axum::Json(json!({
            "issuer": issuer_id(&state, agency),
            "jwks": {"keys": [json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
                "kid": kid(&state, agency), "alg": "EdDSA", "use": "sig"})]},
        })),
    )
        .into_response()
}

/// Positions in one status list: 16 KiB, the minimum the Bitstring Status
/// List recommends for herd privacy.
pub const STATUS_LIST_BITS: i64 = 131_072;

/// The URL of an agency's status list number `list`.
pub fn status_list_url(state: &AppState, agency: &str, list: i64) -> String {
    format!(
        "{}/credentials/status/{agency}/{list}",
        state.config.issuer()
    )
}

/// Signs a credential as a compact JWS (`typ: vc+jwt`, `cty: vc`) with the
/// agency's key.
fn sign_vc(state: &AppState, agency: &str, vc: &Value) -> String {
    let header = json!({"alg": "EdDSA", "typ": "vc+jwt", "cty": "vc", "kid": kid(state, agency)});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(vc.to_string())
    );
    let key = state.identity.credential_key(agency);
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(signing_input.as_bytes()).to_bytes())
    )
}

/// Attempts at a free random status position: four in each list before
/// moving to the next, so lists fill up one after another.
const STATUS_ATTEMPTS: i64 = 64;

/// The definition's document for an application about to be approved, if
/// it has one: claims gathered, a free status position chosen, signed by the
/// agency's key — not yet stored. The decision that approves the application
/// stores it in the same transaction (`Store::submit_application`,
/// `Store::act_on_application`, `Store::insert_submitted`), so an approved
/// application never lacks its document.
pub async fn prepare(
    state: &AppState,
    app: &Application,
    def: &Definition,
) -> Result<Option<IssuedCredential>, nara_store::StoreError> {
    let Some(doc) = &def.document else {
        return Ok(None);
    };
    let answers: Map<String, Value> = serde_json::from_str(&app.answers).unwrap_or_default();
    let evidence: Map<String, Value> = serde_json::from_str(&app.evidence).unwrap_or_default();
    let mut subject = Map::new();
    for claim in &doc.claims {
        let name = claim.get_ref();
        if let Some(v) = nara_core::service_def::value_of(name, &answers, &evidence) {
            subject.insert(name.rsplit('.').next().unwrap_or(name).to_owned(), v);
        }
    }
    let now = nara_core::Timestamp::now();
    let agency = app.agency_id.as_str();
    for attempt in 0..STATUS_ATTEMPTS {
        let list = attempt / 4;
        let index = list * STATUS_LIST_BITS + rand::random_range(0..STATUS_LIST_BITS);
        if !state.store.status_index_free(agency, index).await? {
            continue;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let list_url = status_list_url(state, agency, list);
        let mut vc = json!({
            "@context": ["https://www.w3.org/ns/credentials/v2", context_url(state)],
            "id": format!("urn:uuid:{id}"),
            "type": ["VerifiableCredential", doc.credential_type.get_ref()],
            "issuer": {"id": issuer_id(state, agency)},
            "name": doc.title.en,
            "validFrom": now.rfc3339(),
            "credentialSubject": Value::Object(subject.clone()),
            "credentialStatus": {
                "id": format!("{list_url}#{}", index % STATUS_LIST_BITS),
                "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation",
                "statusListIndex": (index % STATUS_LIST_BITS).to_string(),
                "statusListCredential": list_url,
            },
        });
        if doc.valid_days > 0 {
            vc["validUntil"] = json!(
                nara_core::Timestamp(now.0 + i64::from(doc.valid_days) * 86_400_000).rfc3339()
            );
        }
        let credential = IssuedCredential {
            id,
            application_id: app.id,
            agency_id: app.agency_id.clone(),
            credential_type: doc.credential_type.get_ref().clone(),
            jwt: sign_vc(state, agency, &vc),
            issued_at: now.0,
            revoked_at: None,
            status_index: Some(index),
        };
        return Ok(Some(credential));
    }
    Err(nara_store::StoreError::Conflict(
        "no free status list position; the agency's lists are full".into(),
    ))
}

/// The gzip-compressed bitstring of revoked positions (`index 0` is the
/// left-most bit), multibase base64url (`u…`) as the standard requires.
pub fn encode_status_list(revoked: &[i64]) -> String {
    use std::io::Write;
    let mut bits = vec![0u8; (STATUS_LIST_BITS / 8) as usize];
    for &i in revoked {
        let i = i.rem_euclid(STATUS_LIST_BITS) as usize;
        bits[i / 8] |= 0x80 >> (i % 8);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(&bits);
    let zipped = gz.finish().unwrap_or_default();
    format!("u{}", URL_SAFE_NO_PAD.encode(zipped))
}

/// `GET /credentials/status/{agency}/{list}` (route `{*list}`): the agency's signed
/// `BitstringStatusListCredential` (`application/vc+jwt`), made fresh
/// from the credentials table, so a revocation shows at once.
pub async fn status_list(State(state): State<AppState>, Path(rest): Path<String>) -> Response {
    let not_found = || crate::problem::Problem::not_found("no such status list").into_response();
    let Some((agency, list)) = rest.rsplit_once('/') else {
        return not_found();
    };
    let Ok(list) = list.parse::<i64>() else {
        return not_found();
    };
    if !(0..STATUS_ATTEMPTS / 4).contains(&list) {
        return not_found();
    }
    let known = match agency.parse::<nara_core::MemberId>() {
        Ok(m) => state.store.get_agency(&m).await.ok().flatten().is_some(),
        Err(_) => false,
    };
    if !known {
        return not_found();
    }
    let from = list * STATUS_LIST_BITS;
    let revoked = match state
        .store
        .revoked_positions(agency, from, from + STATUS_LIST_BITS)
        .await
    {
        Ok(r) => r,
        Err(_) => return crate::problem::Problem::internal().into_response(),
    };
    let url = status_list_url(&state, agency, list);
    let now = nara_core::Timestamp::now();
    let vc = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": {"id": issuer_id(&state, agency)},
        "validFrom": now.rfc3339(),
        "credentialSubject": {
            "id": format!("{url}#list"),
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encode_status_list(&revoked),
            "ttl": 60_000,
        },
    });
    (
        [
            (axum::http::header::CONTENT_TYPE, "application/vc+jwt"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=60"),
        ],
        sign_vc(&state, agency, &vc),
    )
        .into_response()
}

/// `GET /credentials/jwks.json`: every agency's credential key (JWK, OKP
/// Ed25519, with its `kid`).
pub async fn jwks(State(state): State<AppState>) -> Response {
    let agencies = state.store.all_agencies().await.unwrap_or_default();
    let keys: Vec<Value> = agencies
        .iter()
        .map(|a| {
            let key = state.identity.credential_key(a.id.as_str()).verifying_key();
            json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
                   "kid": kid(&state, a.id.as_str()), "alg": "EdDSA", "use": "sig"})
        })
        .collect();
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=3600")],
        axum::Json(json!({ "keys": keys })),
    )
        .into_response()
}

/// What a verification found.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Verdict {
    /// True when there are no problems.
    pub valid: bool,
    /// Each reason the document is not valid, in English.
    pub problems: Vec<String>,
    /// The issuer's DID or URL, empty when the document cannot be read.
    pub issuer: String,
    pub types: Vec<String>,
    pub valid_from: String,
    pub valid_until: String,
    /// The claims about the holder.
    #[schema(value_type = Object)]
    pub subject: Map<String, Value>,
    pub revoked: bool,
}

/// Checks a credential: the compact JWS, the issuer's key by `kid`, the
/// media types, the validity period, and whether the issuer revoked it.
pub async fn verify_token(state: &AppState, token: &str) -> Verdict {
    let mut v = Verdict::default();
    let parts: Vec<&str> = token.trim().split('.').collect();
    let decoded = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let (Some(header), Some(payload), Some(sig)) = (
        parts.first().and_then(|h| decoded(h)),
        parts.get(1).and_then(|p| decoded(p)),
        parts.get(2).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok()),
    ) else {
        v.problems
            .push("not a compact JWS (header.payload.signature)".into());
        return v;
    };
    if parts.len() != 3 {
        v.problems.push("not a compact JWS".into());
        return v;
    }
    // RFC 9864: `Ed25519` is the algorithm's name now, `EdDSA` the old one; same key, same signature.
    if !(header["alg"] == "EdDSA" || header["alg"] == "Ed25519") || header["typ"] != "vc+jwt" {
        v.problems
            .push("expected alg Ed25519 (or EdDSA) and typ vc+jwt".into());
    }
    let kid = header["kid"].as_str().unwrap_or("");
    let prefix = format!("{}/agencies/", state.config.issuer());
    let agency = kid
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix("#key-1"))
        .unwrap_or("");
    let known = match agency.parse::<nara_core::MemberId>() {
        Ok(m) => state.store.get_agency(&m).await.ok().flatten().is_some(),
        Err(_) => false,
    };
    if !known {
        v.problems
            .push("the key (kid) is not one of this node's issuers".into());
        return v;
    }
    let key = state.identity.credential_key(agency).verifying_key();
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig_ok =
        Signature::from_slice(&sig).is_ok_and(|s| key.verify(signed.as_bytes(), &s).is_ok());
    if !sig_ok {
        v.problems.push("the signature does not verify".into());
    }
    v.issuer = payload["issuer"]["id"].as_str().unwrap_or("").to_owned();
    if v.issuer != issuer_id(state, agency) {
        v.problems.push("the issuer does not match the key".into());
    }
    v.types = payload["type"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !v.types.iter().any(|t| t == "VerifiableCredential") {
        v.problems.push("not a VerifiableCredential".into());
    }
    v.valid_from = payload["validFrom"].as_str().unwrap_or("").to_owned();
    v.valid_until = payload["validUntil"].as_str().unwrap_or("").to_owned();
    let now = nara_core::Timestamp::now().rfc3339();
    if !v.valid_until.is_empty() && v.valid_until < now {
        v.problems.push("it has expired".into());
    }
    if v.valid_from > now {
        v.problems.push("it is not valid yet".into());
    }
    v.subject = payload["credentialSubject"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let id = payload["id"]
        .as_str()
        .and_then(|i| i.strip_prefix("urn:uuid:"))
        .unwrap_or("");
    if let Ok(Some(c)) = state.store.credential(id).await
        && c.revoked_at.is_some()
    {
        v.revoked = true;
        v.problems.push("the issuer revoked it".into());
    }
    v.valid = v.problems.is_empty();
    v
}

/// A document to verify.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct VerifyInput {
    /// A W3C Verifiable Credential as a compact JWS (`typ` `vc+jwt`), at most 64 KiB.
    #[serde(default)]
    #[schema(max_length = 65536)]
    credential: String,
}

/// Verifies a document nara issued: its signature, validity period and
/// revocation. An unreadable document is a verdict with problems, not an error.
#[utoipa::path(post, path = "/api/v1/credentials/verify", tag = "services",
    request_body = VerifyInput,
    responses(
        (status = 200, description = "The verdict", body = Verdict),
        (status = 400, description = "The body is not `{credential}` or the document is over 64 KiB", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify_api(
    State(state): State<AppState>,
    crate::extract::ApiJson(input): crate::extract::ApiJson<VerifyInput>,
) -> Response {
    if input.credential.len() > 64 * 1024 {
        return crate::problem::Problem::bad_request("credential", "at most 64 KiB")
            .into_response();
    }
    axum::Json(verify_token(&state, &input.credential).await).into_response()
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage {
    layout: Layout,
    token: String,
    verdict: Option<Verdict>,
}

/// `GET /verify`: paste a document to check it.
pub async fn verify_form(ctx: PageCtx) -> Response {
    render(&VerifyPage {
        layout: ctx.layout(ctx.tr().s("verify.title"), "verify"),
        token: String::new(),
        verdict: None,
    })
}

/// `POST /verify`.
pub async fn verify_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    Form(input): Form<VerifyInput>,
) -> Response {
    let token: String = input.credential.chars().take(64 * 1024).collect();
    let verdict = verify_token(&state, &token).await;
    render(&VerifyPage {
        layout: ctx.layout(ctx.tr().s("verify.title"), "verify"),
        token,
        verdict: Some(verdict),
    })
}

/// The largest file `/verify` reads: a phone photograph.
pub const VERIFY_FILE_BYTES: usize = 12 * 1024 * 1024;
/// The most pixels `/verify` decodes: a 16-megapixel photograph. The header
/// is read first, so a larger image costs nothing.
pub const VERIFY_MAX_PIXELS: u64 = 4_096 * 4_096;
/// The longest side the QR finder works on: a photographed code stays
/// readable, and the finder's work is bounded by a small image.
const QR_SIDE: u32 = 1_280;
/// Decodes running at once on a node, decodes an address may start per
/// minute, and how long a request waits for its answer.
const QR_SLOTS: usize = 2;
const QR_PER_MINUTE: u32 = 20;
const QR_DEADLINE: std::time::Duration = std::time::Duration::from_millis(900);

/// Why an uploaded file yielded no credential (a message key).
pub type NoToken = &'static str;

/// The credential in an uploaded file: the token itself (text), or the QR
/// code of a printed or displayed document (a PNG or JPEG photograph).
/// Work is bounded whatever the file: the header's size is checked before
/// decoding, the image is scaled down before the finder runs, and the finder
/// (quirc's, ported) stops at 32 finder patterns and 8 grids.
pub fn token_from_file(bytes: &[u8]) -> Result<String, NoToken> {
    let media = crate::media::sniff(bytes);
    if media != "image/png" && media != "image/jpeg" {
        let text = std::str::from_utf8(bytes).map_err(|_| "verify.unreadable")?;
        return Ok(text.trim().chars().take(64 * 1024).collect());
    }
    // Refuse an image whose header promises more than a photograph would.
    match crate::media::image_dimensions(bytes, media) {
        Some((w, h)) if w > 0 && h > 0 && w.saturating_mul(h) <= VERIFY_MAX_PIXELS => {}
        _ => return Err("upload.bomb"),
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| "verify.unreadable")?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(8_192);
    limits.max_image_height = Some(8_192);
    limits.max_alloc = Some(96 * 1024 * 1024);
    reader.limits(limits);
    let grey = reader
        .decode()
        .map_err(|_| "verify.unreadable")?
        .into_luma8();
    let (w, h) = grey.dimensions();
    let grey = if w.max(h) > QR_SIDE {
        let scale = f64::from(QR_SIDE) / f64::from(w.max(h));
        let (nw, nh) = (
            ((f64::from(w) * scale) as u32).max(1),
            ((f64::from(h) * scale) as u32).max(1),
        );
        image::imageops::thumbnail(&grey, nw, nh)
    } else {
        grey
    };
    let (w, h) = grey.dimensions();
    let mut finder = quircs::Quirc::default();
    finder
        .identify(w as usize, h as usize, grey.as_raw())
        .filter_map(Result::ok)
        .find_map(|code| code.decode().ok())
        .and_then(|data| String::from_utf8(data.payload).ok())
        .ok_or("verify.no_qr")
}

/// The public `/verify/file`'s limits: a few decodes at a time per node,
/// a rate per address, and an answer within a second.
pub struct QrGate {
    slots: Arc<tokio::sync::Semaphore>,
    per_address: governor::DefaultKeyedRateLimiter<String>,
}

impl Default for QrGate {
    fn default() -> Self {
        QrGate {
            slots: Arc::new(tokio::sync::Semaphore::new(QR_SLOTS)),
            per_address: governor::RateLimiter::keyed(governor::Quota::per_minute(
                std::num::NonZeroU32::new(QR_PER_MINUTE).unwrap_or(std::num::NonZeroU32::MIN),
            )),
        }
    }
}

impl QrGate {
    /// Reads the credential in `bytes` for `address`, within the limits.
    pub async fn token(&self, address: &str, bytes: Vec<u8>) -> Result<String, NoToken> {
        if self.per_address.len() > 100_000 {
            self.per_address.retain_recent();
        }
        if self.per_address.check_key(&address.to_owned()).is_err() {
            return Err("verify.busy");
        }
        let deadline = tokio::time::Instant::now() + QR_DEADLINE;
        // The slot is held by the decode itself, so a slow one still counts
        // until it ends, however early its request was answered.
        let slot = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| "verify.busy")?
            .map_err(|_| "verify.busy")?;
        let decode = tokio::task::spawn_blocking(move || {
            let found = token_from_file(&bytes);
            drop(slot);
            found
        });
        match tokio::time::timeout_at(deadline, decode).await {
            Ok(Ok(found)) => found,
            Ok(Err(_)) => Err("verify.unreadable"),
            Err(_) => Err("verify.too_slow"),
        }
    }
}

/// `POST /verify/file` (multipart `file`): a file holding the credential,
/// or a photograph of its QR code (on a phone, the camera).
pub async fn verify_file(
    ctx: PageCtx,
    State(state): State<AppState>,
    crate::identity::request::ClientAddress(address): crate::identity::request::ClientAddress,
    mut multipart: axum::extract::Multipart,
) -> Response {
    let mut bytes = Vec::new();
    while let Ok(Some(part)) = multipart.next_field().await {
        if part.name() == Some("file") {
            match part.bytes().await {
                Ok(b) => bytes = b.to_vec(),
                Err(_) => return PageError::payload_too_large(ctx.lang).into_response(),
            }
        }
    }
    let tr = ctx.tr();
    let found = state.qr.token(&address, bytes).await;
    let (token, verdict) = match found {
        Ok(token) => {
            let verdict = verify_token(&state, &token).await;
            (token, verdict)
        }
        Err(key) => (
            String::new(),
            Verdict {
                problems: vec![tr.s(key).to_owned()],
                ..Verdict::default()
            },
        ),
    };
    // A verdict, valid or not, is the page's answer (as for a pasted one).
    render(&VerifyPage {
        layout: ctx.layout(tr.s("verify.title"), "verify"),
        token,
        verdict: Some(verdict),
    })
}

#[derive(Template)]
#[template(path = "document.html")]
struct DocumentPage {
    layout: Layout,
    token: String,
    qr: String,
    verdict: Verdict,
    reference: String,
}

/// `GET /documents/{id}`: the holder's printable document with a QR code of
/// the credential itself (verifiable offline with the issuer's key).
pub async fn document(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let c = state
        .store
        .credential(&id)
        .await
        .map_err(store_failed(ctx.lang))?
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let apps = state
        .store
        .applications_of(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let Some(app) = apps.iter().find(|a| a.id == c.application_id) else {
        return Err(PageError::not_found(ctx.lang));
    };
    let qr = qrcode::QrCode::with_error_correction_level(c.jwt.as_bytes(), qrcode::EcLevel::L)
        .map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(320, 320)
                .build()
        })
        .unwrap_or_default();
    let verdict = verify_token(&state, &c.jwt).await;
    Ok(render(&DocumentPage {
        layout: ctx.layout(ctx.tr().s("verify.document"), "my-applications"),
        token: c.jwt,
        qr,
        verdict,
        reference: app.reference.clone(),
    }))
}
