//! WebAuthn passkeys (webauthn-rs) as a second factor: anyone signed in may
//! add one on the account page, and staff then prove their second step with
//! it instead of a TOTP code. The browser side is `static/passkey.js`.
//!
//! A relying party needs a domain name: with an IP address in the public URL
//! (the demo's default `http://127.0.0.1:8080`) passkeys are off and the
//! routes answer 404; `NARA_PUBLIC_URL=http://localhost:8080` turns them on.
//! Each session has at most one ceremony in progress, kept in the database
//! for five minutes and answered once. The JSON routes take the session's
//! anti-forgery token in `X-CSRF-Token`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use nara_store::identity::PasskeyRecord;
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::AppState;
use crate::extract::ApiJson;
use crate::identity::auth::Caller;
use crate::identity::request::{ClientAddress, event, with_cookie};
use crate::problem::Problem;
use crate::web::csrf::csrf_ok;

/// How long a ceremony may take (WebAuthn's recommended timeout).
const CEREMONY_MS: i64 = 5 * 60 * 1000;

/// The relying party for nara's public URL, or `None` when its host is not
/// a domain name (browsers refuse IP addresses as relying-party ids).
pub fn relying_party(config: &crate::Config) -> Option<Webauthn> {
    let origin = Url::parse(&config.issuer()).ok()?;
    let rp_id = origin.domain()?.to_owned();
    WebauthnBuilder::new(&rp_id, &origin)
        .ok()?
        .rp_name("nara")
        .build()
        .ok()
}

/// What every passkey JSON route starts with: passkeys on (else 404), the
/// caller, and the caller's anti-forgery token in `X-CSRF-Token` (else 403).
pub struct Ceremony {
    rp: std::sync::Arc<Webauthn>,
    caller: Caller,
}

impl axum::extract::FromRequestParts<AppState> for Ceremony {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Problem> {
        let rp = state.webauthn.clone().ok_or_else(|| {
            Problem::not_found("passkeys on this node (its public URL has no domain name)")
        })?;
        let caller = crate::identity::auth::caller_of(&parts.extensions);
        csrf_header(&caller, &parts.headers)?;
        Ok(Ceremony { rp, caller })
    }
}

fn csrf_header(caller: &Caller, headers: &HeaderMap) -> Result<(), Problem> {
    let given = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if csrf_ok(caller, given) {
        Ok(())
    } else {
        Err(Problem::forbidden().detail("send the page's anti-forgery token in X-CSRF-Token"))
    }
}

fn session_of(caller: &Caller) -> Option<(&str, i64, String, String)> {
    match caller {
        Caller::Signed(p) => Some((
            p.session_hash()?,
            p.account_id,
            p.username.clone(),
            p.display_name.clone(),
        )),
        Caller::Pending { session, account } => Some((
            &session.id_hash,
            account.id,
            account.username.clone(),
            account.display_name.clone(),
        )),
        _ => None,
    }
}

fn bad(detail: &str) -> Problem {
    Problem::bad_request("credential", detail)
}

/// The user handle an authenticator stores: stable per account, opaque
/// (derived with the identity key, so it reveals nothing).
fn user_handle(state: &AppState, account_id: i64) -> Uuid {
    let h = state
        .identity
        .national_id_hash(&format!("webauthn-user:{account_id}"));
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&h[i * 2..i * 2 + 2], 16).unwrap_or(0);
    }
    Uuid::from_bytes(b)
}

fn passkeys(records: &[PasskeyRecord]) -> Vec<Passkey> {
    records
        .iter()
        .filter_map(|r| serde_json::from_str(&r.passkey).ok())
        .collect()
}

fn credential_id(p: &Passkey) -> String {
    serde_json::to_value(p.cred_id())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `POST /account/passkeys/begin`: options for `navigator.credentials.create`.
pub async fn register_begin(
    State(state): State<AppState>,
    Ceremony { rp, caller }: Ceremony,
) -> Result<Response, Problem> {
    let (session, account_id, username, display) =
        session_of(&caller).ok_or_else(Problem::unauthorized)?;
    let existing = state.store.passkeys_of(account_id).await?;
    let exclude = passkeys(&existing)
        .iter()
        .map(|p| p.cred_id().clone())
        .collect();
    let (options, registration) = rp
        .start_passkey_registration(
            user_handle(&state, account_id),
            &username,
            &display,
            Some(exclude),
        )
        .map_err(|e| bad(&e.to_string()))?;
    let saved = serde_json::to_string(&registration).map_err(|_| Problem::internal())?;
    let expires = nara_core::Timestamp::now().0 + CEREMONY_MS;
    state
        .store
        .put_ceremony(session, "register", &saved, expires)
        .await?;
    Ok(Json(options).into_response())
}

#[derive(Deserialize)]
pub struct Registered {
    credential: RegisterPublicKeyCredential,
    #[serde(default)]
    name: String,
}

/// `POST /account/passkeys/finish`: stores the new passkey.
pub async fn register_finish(
    State(state): State<AppState>,
    ClientAddress(addr): ClientAddress,
    Ceremony { rp, caller }: Ceremony,
    ApiJson(form): ApiJson<Registered>,
) -> Result<Response, Problem> {
    let (session, account_id, username, _) =
        session_of(&caller).ok_or_else(Problem::unauthorized)?;
    let session = session.to_owned();
    let saved = state
        .store
        .take_ceremony(&session, "register", nara_core::Timestamp::now().0)
        .await?
        .ok_or_else(|| bad("no passkey registration is in progress (or it expired)"))?;
    let registration: PasskeyRegistration =
        serde_json::from_str(&saved).map_err(|_| Problem::internal())?;
    let passkey = rp
        .finish_passkey_registration(&form.credential, &registration)
        .map_err(|e| bad(&format!("the authenticator's answer does not verify: {e}")))?;
    let name =
        nara_core::identity::check_display_name(&form.name).unwrap_or_else(|_| "passkey".into());
    let record = PasskeyRecord {
        credential_id: credential_id(&passkey),
        account_id,
        name,
        passkey: serde_json::to_string(&passkey).map_err(|_| Problem::internal())?,
        created_at: nara_core::Timestamp::now().0,
        last_used_at: None,
    };
    state.store.add_passkey(&record).await?;
    event(
        &state,
        "passkey.added",
        Some(account_id),
        &username,
        &addr,
        &record.credential_id,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"credential_id": record.credential_id})),
    )
        .into_response())
}

/// `POST /sign-in/passkey/begin`: options for `navigator.credentials.get`,
/// for a person whose password is proven and second factor is due.
pub async fn sign_in_begin(
    State(state): State<AppState>,
    Ceremony { rp, caller }: Ceremony,
) -> Result<Response, Problem> {
    let Caller::Pending { session, account } = &caller else {
        return Err(bad(
            "a passkey is the second step: sign in with your password first",
        ));
    };
    let keys = passkeys(&state.store.passkeys_of(account.id).await?);
    if keys.is_empty() {
        return Err(bad("this account has no passkey"));
    }
    let (options, authentication) = rp
        .start_passkey_authentication(&keys)
        .map_err(|e| bad(&e.to_string()))?;
    let saved = serde_json::to_string(&authentication).map_err(|_| Problem::internal())?;
    let expires = nara_core::Timestamp::now().0 + CEREMONY_MS;
    state
        .store
        .put_ceremony(&session.id_hash, "authenticate", &saved, expires)
        .await?;
    Ok(Json(options).into_response())
}

#[derive(Deserialize)]
pub struct Asserted {
    credential: PublicKeyCredential,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /sign-in/passkey/finish`: checks the assertion; the session becomes
/// full under a new id (amr `pwd hwk`), and the answer names where to go.
pub async fn sign_in_finish(
    State(state): State<AppState>,
    ClientAddress(addr): ClientAddress,
    headers: HeaderMap,
    Ceremony { rp, caller }: Ceremony,
    ApiJson(form): ApiJson<Asserted>,
) -> Result<Response, Problem> {
    let Caller::Pending { session, account } = &caller else {
        return Err(bad(
            "a passkey is the second step: sign in with your password first",
        ));
    };
    let attempt = crate::identity::sign_in::SecondFactorAttempt::new(&state, account, &addr);
    if attempt.throttled().await {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "Too many failed attempts",
        ));
    }
    let saved = state
        .store
        .take_ceremony(
            &session.id_hash,
            "authenticate",
            nara_core::Timestamp::now().0,
        )
        .await?
        .ok_or_else(|| bad("no passkey sign-in is in progress (or it expired)"))?;
    let authentication: PasskeyAuthentication =
        serde_json::from_str(&saved).map_err(|_| Problem::internal())?;
    let result = match rp.finish_passkey_authentication(&form.credential, &authentication) {
        Ok(r) => r,
        Err(e) => {
            attempt.failed("passkey").await;
            return Err(Problem::unauthorized()
                .detail(format!("the passkey's answer does not verify: {e}")));
        }
    };
    // Keep the signature counter current (a cloned authenticator shows up as a stale counter).
    for record in state.store.passkeys_of(account.id).await? {
        if let Ok(mut p) = serde_json::from_str::<Passkey>(&record.passkey)
            && p.cred_id() == result.cred_id()
        {
            p.update_credential(&result);
            let json = serde_json::to_string(&p).map_err(|_| Problem::internal())?;
            state
                .store
                .passkey_used(&record.credential_id, &json)
                .await?;
        }
    }
    let cookie = attempt.succeeded(&caller, "pwd hwk", &headers).await?;
    let next = crate::identity::request::safe_next(form.next.as_deref());
    Ok(with_cookie(
        Json(json!({"next": next})).into_response(),
        &cookie,
    ))
}

#[derive(Deserialize)]
pub struct Remove {
    #[serde(default)]
    credential_id: String,
}

/// `POST /account/passkeys/remove` (a form on the account page).
pub async fn remove(
    State(state): State<AppState>,
    ctx: crate::web::PageCtx,
    crate::web::csrf::CsrfForm(form): crate::web::csrf::CsrfForm<Remove>,
) -> Response {
    let Some((_, account_id, _, _)) = session_of(&ctx.caller) else {
        return Problem::unauthorized().into_response();
    };
    match state
        .store
        .remove_passkey(account_id, &form.credential_id)
        .await
    {
        Ok(true) => axum::response::Redirect::to("/account").into_response(),
        Ok(false) => crate::web::PageError::not_found(ctx.lang).into_response(),
        Err(e) => Problem::from(e).into_response(),
    }
}
