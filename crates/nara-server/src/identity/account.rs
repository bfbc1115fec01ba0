//! The account page: sessions (and signing out everywhere), the second
//! factor, API tokens for operators, connected apps.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::MemberId;
use nara_core::identity::{self, Role};
use serde::Deserialize;

use crate::AppState;
use crate::identity::auth::{self, Principal};
use crate::identity::request::{ClientAddress, CsrfOnly, cleared_cookie, event, with_cookie};
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, render, store_failed, when};

// ---------------------------------------------------------------- account

pub struct SessionView {
    pub current: bool,
    pub created: String,
    pub last_seen: String,
    pub address: String,
    pub device: String,
}

pub struct AppView {
    pub client_id: String,
    pub name: String,
    pub agency: String,
    pub scope: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    display_name: String,
    username: String,
    kind: &'static str,
    roles: Vec<(String, String)>,
    second_factor: bool,
    recovery_left: i64,
    sessions: Vec<SessionView>,
    apps: Vec<AppView>,
    csrf: String,
    /// Operators only: their API tokens, and one just made (shown once).
    tokens: Option<Vec<TokenView>>,
    new_token: Option<String>,
    scopes: &'static [&'static str],
    /// (credential id, name, added, last used)
    passkeys: Vec<(String, String, String, String)>,
    passkeys_enabled: bool,
}

pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scopes: String,
    pub expires: String,
    pub live: bool,
}

pub async fn account_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    account_view(&ctx, &state, &who, None).await
}

async fn account_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    new_token: Option<String>,
) -> Result<Response, PageError> {
    let fail = store_failed(ctx.lang);
    let account = state
        .store
        .account(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let sessions = state
        .store
        .sessions_of(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .map(|s| SessionView {
            current: Some(s.id_hash.as_str()) == who.session_hash(),
            created: when(s.created_at),
            last_seen: when(s.last_seen_at),
            address: s.address,
            device: s.user_agent,
        })
        .collect();
    let agencies = state
        .store
        .all_agencies()
        .await
        .map_err(store_failed(ctx.lang))?;
    let agency_name = |id: &MemberId| {
        agencies
            .iter()
            .find(|a| &a.id == id)
            .map(|a| a.name.get(ctx.lang).to_owned())
            .unwrap_or_else(|| id.to_string())
    };
    let apps = state
        .store
        .connected_apps(who.account_id)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|(c, scope, at)| AppView {
            agency: agency_name(&c.agency),
            client_id: c.client_id,
            name: c.name,
            scope,
            since: when(at),
        })
        .collect();
    let tr = ctx.tr();
    let roles = who
        .grants
        .iter()
        .map(|g| {
            (
                tr.s(&format!("role.{}", g.role)).to_owned(),
                g.agency.as_ref().map(&agency_name).unwrap_or_default(),
            )
        })
        .collect();
    let recovery_left = state
        .store
        .recovery_codes_left(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let now = nara_core::Timestamp::now().0;
    let tokens = if who.has_role(Role::Operator) {
        Some(
            state
                .store
                .api_tokens_of(who.account_id)
                .await
                .map_err(store_failed(ctx.lang))?
                .into_iter()
                .map(|t| TokenView {
                    id: t.id,
                    name: t.name,
                    scopes: t.scopes,
                    expires: when(t.expires_at),
                    live: t.revoked_at.is_none() && t.expires_at > now,
                })
                .collect(),
        )
    } else {
        None
    };
    let page = AccountPage {
        layout: ctx.layout(tr.s("account.title"), "account"),
        display_name: account.display_name,
        username: account.username,
        kind: tr.s(&format!("account_kind.{}", account.kind)),
        roles,
        second_factor: account.totp_secret.is_some(),
        recovery_left,
        sessions,
        apps,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        tokens,
        new_token,
        scopes: auth::SCOPES,
        passkeys: state
            .store
            .passkeys_of(who.account_id)
            .await
            .map_err(store_failed(ctx.lang))?
            .into_iter()
            .map(|p| {
                (
                    p.credential_id,
                    p.name,
                    when(p.created_at),
                    p.last_used_at.map(when).unwrap_or_default(),
                )
            })
            .collect(),
        passkeys_enabled: state.webauthn.is_some(),
    };
    let mut r = render(&page);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[derive(Deserialize)]
pub struct NewToken {
    #[serde(default)]
    name: String,
    /// Checkboxes: each checked scope arrives as its own `scope` field.
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    days: String,
}

/// An operator makes an API token: named, scoped, expiring (1–90 days),
/// shown once and kept as a digest.
pub async fn create_token(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    // Repeated `scope` fields need a parser that collects them.
    let mut form = NewToken {
        name: String::new(),
        scope: Vec::new(),
        days: String::new(),
    };
    for (k, v) in pairs {
        match &*k {
            "name" => form.name = v,
            "scope" => form.scope.push(v),
            "days" => form.days = v,
            _ => {}
        }
    }
    let days: u64 = form.days.parse().unwrap_or(0);
    let scopes: Vec<&str> = auth::SCOPES
        .iter()
        .copied()
        .filter(|s| form.scope.iter().any(|x| x == s))
        .collect();
    let valid = (1..=90).contains(&days)
        && !scopes.is_empty()
        && scopes.len() == form.scope.len()
        && identity::check_display_name(&form.name).is_ok();
    if !valid {
        return Err(PageError {
            status: StatusCode::BAD_REQUEST,
            message: "account.bad_token",
            lang: ctx.lang,
        });
    }
    let token = auth::issue_api_token(
        &state.store,
        who.account_id,
        form.name.trim(),
        &scopes,
        std::time::Duration::from_secs(days * 86_400),
    )
    .await
    .map_err(store_failed(ctx.lang))?;
    account_view(&ctx, &state, &who, Some(token)).await
}

#[derive(Deserialize)]
pub struct RevokeToken {
    #[serde(default)]
    id: String,
}

pub async fn revoke_token(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(form): CsrfForm<RevokeToken>,
) -> Result<Response, PageError> {
    let id: i64 = form
        .id
        .parse()
        .map_err(|_| PageError::not_found(ctx.lang))?;
    match state.store.revoke_api_token(who.account_id, id).await {
        Ok(true) => Ok(Redirect::to("/account").into_response()),
        Ok(false) => Err(PageError::not_found(ctx.lang)),
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

/// "Sign out everywhere": ends every session of the account, this one too.
pub async fn end_sessions(
    ctx: PageCtx,
    State(state): State<AppState>,
    ClientAddress(addr): ClientAddress,
    who: Principal,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    match state.store.delete_sessions_of(who.account_id).await {
        Ok(n) => {
            event(
                &state,
                "sessions.ended",
                Some(who.account_id),
                &who.username,
                &addr,
                &format!("{n} sessions"),
            )
            .await;
            with_cookie(
                Redirect::to("/sign-in").into_response(),
                &cleared_cookie(&state),
            )
        }
        Err(e) => store_failed(ctx.lang)(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct RevokeApp {
    #[serde(default)]
    client_id: String,
}

pub async fn revoke_app(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(form): CsrfForm<RevokeApp>,
) -> Response {
    match state
        .store
        .disconnect_app(who.account_id, &form.client_id)
        .await
    {
        Ok(true) => Redirect::to("/account").into_response(),
        Ok(false) => PageError::not_found(ctx.lang).into_response(),
        Err(e) => store_failed(ctx.lang)(e).into_response(),
    }
}
