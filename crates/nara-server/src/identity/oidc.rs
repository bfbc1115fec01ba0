//! nara as an OpenID Connect provider (OpenID Connect Core 1.0, Discovery
//! 1.0), so agency apps sign citizens and officials in with one national
//! login.
//!
//! Only the authorization code flow, and only with PKCE S256 (RFC 7636);
//! redirect URIs match exactly as registered; codes live 60 s and work once
//! (a replayed code revokes what it issued); ID tokens are EdDSA (Ed25519)
//! JWS; refresh tokens rotate on every use and a reused one revokes its whole
//! family; tokens are revocable (RFC 7009). The authorization response names
//! the issuer (RFC 9207). Errors follow RFC 6749 §4.1.2.1 and §5.2.

use askama::Template;
use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::Signer;
use nara_store::oidc::{Client, CodeRecord, Redeemed, Refreshed, TokenRecord};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::identity::auth::{Principal, constant_time_eq, digest, random_secret};
use crate::web::{Layout, PageCtx, PageError, render};

pub const CODE_LIFETIME_MS: i64 = 60 * 1000;
pub const ACCESS_LIFETIME_MS: i64 = 10 * 60 * 1000;
pub const REFRESH_LIFETIME_MS: i64 = 30 * 24 * 3600 * 1000;
pub const ID_TOKEN_LIFETIME_S: i64 = 10 * 60;

/// The scopes nara grants, and the claims each releases.
pub const SCOPES: &[(&str, &[&str])] = &[
    ("openid", &["sub"]),
    ("profile", &["name", "preferred_username"]),
];

fn issuer(state: &AppState) -> String {
    state.config.issuer()
}

pub async fn discovery(State(state): State<AppState>) -> Response {
    let iss = issuer(&state);
    let doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oidc/authorize"),
        "token_endpoint": format!("{iss}/oidc/token"),
        "userinfo_endpoint": format!("{iss}/oidc/userinfo"),
        "revocation_endpoint": format!("{iss}/oidc/revoke"),
        "jwks_uri": format!("{iss}/oidc/jwks"),
        "scopes_supported": SCOPES.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "name", "preferred_username"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise"],
        // RFC 9864 names the algorithm Ed25519 and deprecates EdDSA; ID
        // tokens say EdDSA, which every client library still expects, and
        // the key is the same for both.
        "id_token_signing_alg_values_supported": ["EdDSA", "Ed25519"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "ui_locales_supported": ["en", "es", "ko"],
    });
    json_response(StatusCode::OK, &doc, "public, max-age=300")
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    let key = state.identity.oidc.verifying_key();
    let doc = json!({ "keys": [{
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
        "kid": state.identity.oidc_kid(),
        "use": "sig",
        "alg": "EdDSA",
    }]});
    json_response(StatusCode::OK, &doc, "public, max-age=300")
}

fn json_response(status: StatusCode, body: &Value, cache: &'static str) -> Response {
    let mut r = (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, cache),
        ],
        body.to_string(),
    )
        .into_response();
    if cache == "no-store" {
        // RFC 6749 §5.1: for HTTP/1.0 caches too.
        r.headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    r
}

/// An OAuth error response from the token, userinfo or revocation endpoint.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = json_response(
        status,
        &json!({"error": error, "error_description": description}),
        "no-store",
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"nara\""),
        );
    }
    r
}

// ------------------------------------------------------------ authorize

/// The authorization request's parameters (query on GET, form on POST).
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
    #[serde(default)]
    prompt: Option<String>,
    // The consent form's own fields.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

/// A checked authorization request.
struct Request {
    client: Client,
    redirect_uri: String,
    scope: Vec<&'static str>,
    state: Option<String>,
    nonce: Option<String>,
    challenge: String,
}

/// What is wrong with a request: shown on a page when the client or the
/// redirect URI cannot be trusted, else sent back to the app.
enum Refusal {
    Page(&'static str),
    Redirect(String, &'static str, &'static str),
}

fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

async fn check(state: &AppState, p: &AuthorizeParams) -> Result<Request, Refusal> {
    let client = state
        .store
        .client(&p.client_id)
        .await
        .ok()
        .flatten()
        .filter(|c| !c.revoked)
        .ok_or(Refusal::Page("oidc.unknown_client"))?;
    // Exact string match (OAuth 2.0 Security BCP §4.1.3): no prefixes, no
    // wildcards, so no open redirect through `redirect_uri`.
    if !client.redirect_uris.iter().any(|u| u == &p.redirect_uri) {
        return Err(Refusal::Page("oidc.bad_redirect"));
    }
    let back = |error, desc| Refusal::Redirect(p.redirect_uri.clone(), error, desc);
    if p.response_type != "code" {
        return Err(back(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    let requested: Vec<&str> = p.scope.split(' ').filter(|s| !s.is_empty()).collect();
    if !requested.contains(&"openid") {
        return Err(back("invalid_scope", "the openid scope is required"));
    }
    // Unknown scopes are ignored (OIDC Core §3.1.2.1); known ones kept in order.
    let scope: Vec<&'static str> = SCOPES
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| requested.contains(s))
        .collect();
    if p.code_challenge_method != "S256" {
        return Err(back(
            "invalid_request",
            "PKCE with code_challenge_method=S256 is required",
        ));
    }
    if p.code_challenge.len() != 43 || !is_pkce_value(&p.code_challenge) {
        return Err(back(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the verifier",
        ));
    }
    let bounded = |v: &Option<String>| v.as_ref().is_none_or(|s| s.len() <= 512);
    if !bounded(&p.state) || !bounded(&p.nonce) {
        return Err(back(
            "invalid_request",
            "state and nonce are limited to 512 bytes",
        ));
    }
    Ok(Request {
        client,
        redirect_uri: p.redirect_uri.clone(),
        scope,
        state: p.state.clone(),
        nonce: p.nonce.clone(),
        challenge: p.code_challenge.clone(),
    })
}

fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

fn refuse(state: &AppState, ctx: &PageCtx, refusal: Refusal, st: Option<&str>) -> Response {
    match refusal {
        Refusal::Page(message) => PageError {
            status: StatusCode::BAD_REQUEST,
            message,
            lang: ctx.lang,
        }
        .into_response(),
        Refusal::Redirect(uri, error, desc) => {
            let iss = issuer(state);
            let mut pairs = vec![("error", error), ("error_description", desc), ("iss", &iss)];
            if let Some(s) = st {
                pairs.push(("state", s));
            }
            redirect_with(&uri, &pairs)
        }
    }
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    layout: Layout,
    app: String,
    agency: String,
    claims: Vec<&'static str>,
    hidden: Vec<(&'static str, String)>,
    csrf: String,
}

/// `GET /oidc/authorize`: checks the request, then either answers at once
/// (the person already consented to these scopes) or asks.
pub async fn authorize(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    RawQuery(query): RawQuery,
) -> Response {
    let p: AuthorizeParams =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let req = match check(&state, &p).await {
        Ok(r) => r,
        Err(refusal) => return refuse(&state, &ctx, refusal, p.state.as_deref()),
    };
    let consented = state
        .store
        .consent(who.account_id, &req.client.client_id)
        .await
        .ok()
        .flatten()
        .is_some_and(|granted| {
            let granted: Vec<&str> = granted.split(' ').collect();
            req.scope.iter().all(|s| granted.contains(s))
        });
    if consented && p.prompt.as_deref() != Some("consent") {
        return issue_code(&state, &who, &req).await;
    }
    let agency = state
        .store
        .get_agency(&req.client.agency)
        .await
        .ok()
        .flatten()
        .map(|a| a.name.get(ctx.lang).to_owned())
        .unwrap_or_else(|| req.client.agency.to_string());
    let claims = SCOPES
        .iter()
        .filter(|(s, _)| req.scope.contains(s))
        .flat_map(|(_, c)| c.iter().copied())
        .collect();
    let mut hidden = vec![
        ("client_id", p.client_id.clone()),
        ("redirect_uri", p.redirect_uri.clone()),
        ("response_type", p.response_type.clone()),
        ("scope", req.scope.join(" ")),
        ("code_challenge", p.code_challenge.clone()),
        ("code_challenge_method", p.code_challenge_method.clone()),
    ];
    if let Some(s) = &p.state {
        hidden.push(("state", s.clone()));
    }
    if let Some(n) = &p.nonce {
        hidden.push(("nonce", n.clone()));
    }
    let page = ConsentPage {
        layout: ctx.layout(ctx.tr().s("consent.title"), ""),
        app: req.client.name.clone(),
        agency,
        claims,
        hidden,
        csrf: who.csrf().unwrap_or_default().to_owned(),
    };
    let mut response = render(&page);
    // The consent form's answer is a redirect to the app; browsers hold
    // that redirect to the page's form-action, so name the app's origin.
    if let Ok(url) = url::Url::parse(&req.redirect_uri) {
        let origin = url.origin().ascii_serialization();
        let csp = crate::web::security::csp_with_form_action(&origin);
        if let Ok(v) = HeaderValue::from_str(&csp) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    response
}

/// `POST /oidc/authorize`: the consent screen's answer. Everything is
/// checked again; the hidden fields are not trusted.
pub async fn decide(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Form(p): Form<AuthorizeParams>,
) -> Response {
    if !who.csrf().is_some_and(|c| constant_time_eq(c, &p.csrf)) {
        return crate::web::csrf::csrf_refused(ctx.lang);
    }
    let req = match check(&state, &p).await {
        Ok(r) => r,
        Err(refusal) => return refuse(&state, &ctx, refusal, p.state.as_deref()),
    };
    if p.decision != "allow" {
        let refusal = Refusal::Redirect(
            req.redirect_uri.clone(),
            "access_denied",
            "the person declined",
        );
        return refuse(&state, &ctx, refusal, p.state.as_deref());
    }
    if let Err(e) = state
        .store
        .set_consent(who.account_id, &req.client.client_id, &req.scope.join(" "))
        .await
    {
        tracing::error!(error = %e, "storing consent");
        return PageError::internal(ctx.lang).into_response();
    }
    issue_code(&state, &who, &req).await
}

async fn issue_code(state: &AppState, who: &Principal, req: &Request) -> Response {
    let code = random_secret("");
    let now = nara_core::Timestamp::now().0;
    let (amr, auth_time) = match &who.credential {
        crate::identity::auth::Credential::Session {
            amr, created_at, ..
        } => (amr.clone(), *created_at),
        crate::identity::auth::Credential::Token { .. } => ("pwd".into(), now),
    };
    let record = CodeRecord {
        code_hash: digest(&code),
        client_id: req.client.client_id.clone(),
        account_id: who.account_id,
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.challenge.clone(),
        nonce: req.nonce.clone(),
        scope: req.scope.join(" "),
        amr,
        auth_time,
        expires_at: now + CODE_LIFETIME_MS,
        used_at: None,
        family: random_secret(""),
    };
    if let Err(e) = state.store.insert_code(&record).await {
        tracing::error!(error = %e, "storing an authorization code");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let iss = issuer(state);
    let mut pairs = vec![("code", code.as_str()), ("iss", iss.as_str())];
    if let Some(s) = &req.state {
        pairs.push(("state", s));
    }
    redirect_with(&req.redirect_uri, &pairs)
}

// ---------------------------------------------------------------- token

#[derive(Debug, Default, Deserialize)]
pub struct TokenParams {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    code_verifier: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    // Revocation (RFC 7009).
    #[serde(default)]
    token: String,
    #[serde(default)]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// Authenticates the client: HTTP Basic, form secret, or none for a public
/// client (which must then prove possession with PKCE).
async fn client_of(
    state: &AppState,
    headers: &HeaderMap,
    p: &TokenParams,
) -> Result<Client, Response> {
    let invalid = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let dec = |x: &str| percent_decode(x);
            Some((dec(id), dec(secret)))
        });
    let (id, secret) = match (basic, &p.client_id) {
        (Some((id, secret)), _) => (id, Some(secret)),
        (None, Some(id)) => (id.clone(), p.client_secret.clone()),
        (None, None) => return Err(invalid()),
    };
    let client = state
        .store
        .client(&id)
        .await
        .ok()
        .flatten()
        .filter(|c| !c.revoked)
        .ok_or_else(invalid)?;
    match (&client.secret_hash, secret) {
        (Some(hash), Some(given)) if constant_time_eq(hash, &digest(&given)) => Ok(client),
        (None, None) => Ok(client),
        _ => Err(invalid()),
    }
}

/// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `POST /oidc/token`.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(p) = serde_urlencoded::from_bytes::<TokenParams>(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    };
    let client = match client_of(&state, &headers, &p).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now = nara_core::Timestamp::now().0;
    let grant_error = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    match p.grant_type.as_str() {
        "authorization_code" => {
            let code = match state.store.redeem_code(&digest(&p.code), now).await {
                Ok(Redeemed::Fresh(c)) => c,
                Ok(Redeemed::Replayed) => {
                    tracing::warn!(client = %client.client_id, "authorization code replayed; its tokens are revoked");
                    return grant_error("the code was already used");
                }
                Ok(Redeemed::Unknown) => return grant_error("unknown code"),
                Err(e) => return internal(e),
            };
            if code.client_id != client.client_id {
                return grant_error("the code was issued to another client");
            }
            if code.expires_at <= now {
                return grant_error("the code has expired");
            }
            if code.redirect_uri != p.redirect_uri {
                return grant_error("redirect_uri differs from the authorization request");
            }
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(p.code_verifier.as_bytes()));
            if !is_pkce_value(&p.code_verifier)
                || !constant_time_eq(&challenge, &code.code_challenge)
            {
                return grant_error("the PKCE code_verifier does not match");
            }
            let grant = Grant {
                family: code.family.clone(),
                client_id: client.client_id.clone(),
                account_id: code.account_id,
                scope: code.scope.clone(),
                amr: code.amr.clone(),
                auth_time: code.auth_time,
            };
            let (access, refresh, records) = new_tokens(&grant, now);
            for r in &records {
                if let Err(e) = state.store.insert_token(r).await {
                    return internal(e);
                }
            }
            token_response(
                &state,
                &grant,
                code.nonce.as_deref(),
                &access,
                &refresh,
                now,
            )
            .await
        }
        "refresh_token" => {
            let hash = digest(&p.refresh_token);
            match state.store.token(&hash).await {
                Ok(Some(t)) if t.client_id == client.client_id => {
                    let grant = Grant {
                        family: t.family.clone(),
                        client_id: t.client_id.clone(),
                        account_id: t.account_id,
                        scope: t.scope.clone(),
                        amr: t.amr.clone(),
                        auth_time: t.auth_time,
                    };
                    let (access, refresh, records) = new_tokens(&grant, now);
                    match state.store.rotate_refresh(&hash, now, &records).await {
                        Ok(Refreshed::Fresh(_)) => {
                            token_response(&state, &grant, None, &access, &refresh, now).await
                        }
                        Ok(Refreshed::Reused) => {
                            tracing::warn!(client = %client.client_id, "a rotated refresh token was reused; its family is revoked");
                            grant_error("the refresh token was already used")
                        }
                        Ok(Refreshed::Unknown) => {
                            grant_error("unknown, expired or revoked refresh token")
                        }
                        Err(e) => internal(e),
                    }
                }
                Ok(_) => grant_error("unknown refresh token"),
                Err(e) => internal(e),
            }
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "use authorization_code or refresh_token",
        ),
    }
}

fn internal(e: nara_store::StoreError) -> Response {
    tracing::error!(error = %e, "OIDC store error");
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "please try again",
    )
}

/// What a code or refresh token grants.
struct Grant {
    family: String,
    client_id: String,
    account_id: i64,
    scope: String,
    amr: String,
    auth_time: i64,
}

fn new_tokens(g: &Grant, now: i64) -> (String, String, Vec<TokenRecord>) {
    let access = random_secret("");
    let refresh = random_secret("");
    let record = |secret: &str, kind: &str, life: i64| TokenRecord {
        token_hash: digest(secret),
        kind: kind.into(),
        family: g.family.clone(),
        client_id: g.client_id.clone(),
        account_id: g.account_id,
        scope: g.scope.clone(),
        amr: g.amr.clone(),
        auth_time: g.auth_time,
        created_at: now,
        expires_at: now + life,
        used_at: None,
        revoked_at: None,
    };
    let records = vec![
        record(&access, "access", ACCESS_LIFETIME_MS),
        record(&refresh, "refresh", REFRESH_LIFETIME_MS),
    ];
    (access, refresh, records)
}

/// The subject identifier: pairwise per agency (OIDC Core §8.1), so two
/// agencies' apps cannot join their users on `sub`.
fn subject(state: &AppState, account_id: i64, client: &Client) -> String {
    state
        .identity
        .national_id_hash(&format!("sub:{}:{account_id}", client.agency))[..32]
        .to_owned()
}

async fn claims_for(
    state: &AppState,
    account_id: i64,
    client: &Client,
    scope: &str,
) -> Result<serde_json::Map<String, Value>, Response> {
    let account = match state.store.account(account_id).await {
        Ok(Some(a)) if a.is_active() => a,
        Ok(_) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the account is not active",
            ));
        }
        Err(e) => return Err(internal(e)),
    };
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), subject(state, account_id, client).into());
    if scope.split(' ').any(|s| s == "profile") {
        claims.insert("name".into(), account.display_name.into());
        claims.insert("preferred_username".into(), account.username.into());
    }
    Ok(claims)
}

async fn token_response(
    state: &AppState,
    g: &Grant,
    nonce: Option<&str>,
    access: &str,
    refresh: &str,
    now_ms: i64,
) -> Response {
    let client = match state.store.client(&g.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
        }
        Err(e) => return internal(e),
    };
    let mut claims = match claims_for(state, g.account_id, &client, &g.scope).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now = now_ms / 1000;
    claims.insert("iss".into(), issuer(state).into());
    claims.insert("aud".into(), client.client_id.clone().into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ID_TOKEN_LIFETIME_S).into());
    claims.insert("auth_time".into(), (g.auth_time / 1000).into());
    claims.insert(
        "amr".into(),
        g.amr
            .split(' ')
            .map(|s| Value::from(s.to_owned()))
            .collect(),
    );
    if let Some(n) = nonce {
        claims.insert("nonce".into(), n.into());
    }
    let id_token = sign_jwt(state, &Value::Object(claims));
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_LIFETIME_MS / 1000,
            "refresh_token": refresh,
            "id_token": id_token,
            "scope": g.scope,
        }),
        "no-store",
    )
}

/// A compact JWS, EdDSA over Ed25519 (RFC 8037).
fn sign_jwt(state: &AppState, claims: &Value) -> String {
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": state.identity.oidc_kid()});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = state.identity.oidc.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// `GET|POST /oidc/userinfo` with `Authorization: Bearer <access token>`.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let refused = || {
        let mut r = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_token"}),
            "no-store",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        r
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return refused();
    };
    let now = nara_core::Timestamp::now().0;
    let record = match state.store.token(&digest(token.trim())).await {
        Ok(Some(t)) if t.kind == "access" && t.revoked_at.is_none() && t.expires_at > now => t,
        Ok(_) => return refused(),
        Err(e) => return internal(e),
    };
    let client = match state.store.client(&record.client_id).await {
        Ok(Some(c)) if !c.revoked => c,
        Ok(_) => return refused(),
        Err(e) => return internal(e),
    };
    match claims_for(&state, record.account_id, &client, &record.scope).await {
        Ok(claims) => json_response(StatusCode::OK, &Value::Object(claims), "no-store"),
        Err(_) => refused(),
    }
}

/// `POST /oidc/revoke` (RFC 7009): always 200 for an authenticated client,
/// whether or not the token existed, so it reveals nothing.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(p) = serde_urlencoded::from_bytes::<TokenParams>(&body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "malformed body");
    };
    let client = match client_of(&state, &headers, &p).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if p.token.is_empty() {
        // RFC 7009 §2.1: `token` is required.
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    }
    if let Err(e) = state
        .store
        .revoke_token_family(&digest(&p.token), &client.client_id)
        .await
    {
        return internal(e);
    }
    (
        StatusCode::OK,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
    )
        .into_response()
}

/// Checks a redirect URI for registration: absolute, no fragment, https
/// except for loopback development addresses.
pub fn valid_redirect_uri(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    if url.fragment().is_some() || uri.len() > 500 || url.as_str() != uri {
        return false;
    }
    match url.scheme() {
        "https" => url.host_str().is_some(),
        "http" => matches!(
            url.host_str(),
            Some("127.0.0.1") | Some("localhost") | Some("[::1]")
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_strict() {
        assert!(valid_redirect_uri("https://app.gov.example/callback"));
        assert!(valid_redirect_uri("http://127.0.0.1:8090/callback"));
        assert!(!valid_redirect_uri("http://app.gov.example/callback"));
        assert!(!valid_redirect_uri("https://app.gov.example/cb#frag"));
        assert!(!valid_redirect_uri("javascript:alert(1)"));
        assert!(!valid_redirect_uri("/relative"));
        assert!(
            !valid_redirect_uri("https://APP.gov.example/callback"),
            "must be canonical"
        );
    }

    #[test]
    fn pkce_values() {
        assert!(is_pkce_value(&"a".repeat(43)));
        assert!(!is_pkce_value(&"a".repeat(42)));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}=", "a".repeat(43))));
        // RFC 7636 Appendix B.
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
