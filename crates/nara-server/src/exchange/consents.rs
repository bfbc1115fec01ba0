//! A citizen's consents: given, listed and revoked, on pages and through
//! the API, each for one purpose of one service.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nara_core::exchange::Purpose;
use nara_core::identity::Role;
use nara_store::exchange::Consent;
use serde::Deserialize;

use crate::AppState;
use crate::extract::ApiPath;
use crate::identity::auth::Principal;
use crate::problem::Problem;
use crate::web::csrf::{CsrfForm, CsrfHeader};
use crate::web::{Layout, PageCtx, PageError, render, store_failed};
use crate::web::{status_for, when};

/// Why a consent could not be given (a message key).
fn check_consent(
    state: &AppState,
    directory: &crate::exchange::gateway::Directory,
    agencies: &[nara_core::Agency],
    input: &ConsentInput,
) -> Result<(), &'static str> {
    if !(1..=365).contains(&input.days) {
        return Err("exchange.bad_days");
    }
    if input.purpose.parse::<Purpose>().is_err() {
        return Err("exchange.bad_purpose");
    }
    let Some(service) = directory
        .services
        .get(&input.service)
        .filter(|s| s.personal == 1)
    else {
        // A service another node serves: that node checks the purpose
        // against its service when the exchange comes.
        let remote = nara_core::exchange::ServiceId::parse(&input.service)
            .ok()
            .filter(|id| {
                state
                    .exchange
                    .federation
                    .as_ref()
                    .is_some_and(|f| f.remote_node(&id.member).is_some())
            })
            .ok_or("exchange.bad_service")?;
        if input.agency == remote.member.as_str()
            || !agencies.iter().any(|a| a.id.as_str() == input.agency)
        {
            return Err("exchange.bad_agency");
        }
        return Ok(());
    };
    if !agencies.iter().any(|a| a.id.as_str() == input.agency) || input.agency == service.agency_id
    {
        return Err("exchange.bad_agency");
    }
    if !service.purpose_list().any(|p| p == input.purpose) {
        return Err("exchange.bad_purpose");
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct ConsentInput {
    /// The agency that may fetch (`INSTANCE/CLASS/CODE`).
    agency: String,
    /// The service (`INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`).
    service: String,
    purpose: String,
    /// How many days the consent lasts (1–365).
    days: i64,
}

/// Gives a consent; the error is a message key.
async fn give_consent(
    state: &AppState,
    who: &Principal,
    input: &ConsentInput,
) -> Result<Consent, &'static str> {
    let subject = super::subject_of(state, who)
        .await
        .map_err(|_| "error.internal")?
        .ok_or("exchange.no_id")?;
    let directory = state
        .exchange
        .directory(&state.store)
        .await
        .map_err(|_| "error.internal")?;
    let agencies = state
        .store
        .all_agencies()
        .await
        .map_err(|_| "error.internal")?;
    check_consent(state, &directory, &agencies, input)?;
    let now = nara_core::Timestamp::now().0;
    let consent = Consent {
        id: format!("cns_{}", uuid::Uuid::new_v4().simple()),
        account_id: who.account_id,
        subject_hash: subject,
        client_agency: input.agency.clone(),
        service_id: input.service.clone(),
        purpose: input.purpose.clone(),
        granted_at: now,
        expires_at: now + input.days * 86_400_000,
        revoked_at: None,
    };
    state
        .store
        .grant_consent(&consent)
        .await
        .map_err(|_| "error.internal")?;
    Ok(consent)
}

pub struct ConsentView {
    pub id: String,
    pub agency: String,
    pub service: String,
    pub purpose: String,
    pub granted: String,
    pub until: String,
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "consents.html")]
struct ConsentsPage {
    layout: Layout,
    consents: Vec<ConsentView>,
    services: Vec<(String, String)>,
    agencies: Vec<(String, String)>,
    purposes: Vec<(&'static str, &'static str)>,
    csrf: String,
    message: Option<String>,
    error: Option<&'static str>,
    has_id: bool,
}

async fn consents_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    message: Option<String>,
    error: Option<&'static str>,
) -> Result<Response, PageError> {
    let fail = store_failed(ctx.lang);
    let consents = match state.store.consents_of(who.account_id).await {
        Ok(c) => c,
        Err(e) => return Err(fail(e)),
    };
    let directory = state
        .exchange
        .directory(&state.store)
        .await
        .map_err(store_failed(ctx.lang))?;
    let agencies = state
        .store
        .all_agencies()
        .await
        .map_err(store_failed(ctx.lang))?;
    let has_id = super::subject_of(state, who)
        .await
        .map_err(store_failed(ctx.lang))?
        .is_some();
    let name_of = |id: &str| {
        agencies
            .iter()
            .find(|a| a.id.as_str() == id)
            .map(|a| a.name.get(ctx.lang).to_owned())
            .unwrap_or_else(|| id.to_owned())
    };
    let now = nara_core::Timestamp::now().0;
    let views = consents
        .iter()
        .map(|c| ConsentView {
            id: c.id.clone(),
            agency: name_of(&c.client_agency),
            service: directory
                .services
                .get(&c.service_id)
                .map(|s| s.title.clone())
                .unwrap_or_else(|| c.service_id.clone()),
            purpose: c
                .purpose
                .parse::<Purpose>()
                .map(|p| p.describe().to_owned())
                .unwrap_or_default(),
            granted: when(c.granted_at),
            until: when(c.expires_at),
            state: if c.revoked_at.is_some() {
                "exchange.revoked"
            } else if c.expires_at <= now {
                "exchange.expired"
            } else {
                "exchange.active"
            },
        })
        .collect();
    let page = ConsentsPage {
        layout: ctx.layout(ctx.tr().s("exchange.consents_title"), "my-data"),
        consents: views,
        services: directory
            .services
            .values()
            .filter(|s| s.personal == 1)
            .map(|s| {
                (
                    s.id.clone(),
                    format!("{} — {}", s.title, name_of(&s.agency_id)),
                )
            })
            .collect(),
        agencies: agencies
            .iter()
            .map(|a| (a.id.to_string(), a.name.get(ctx.lang).to_owned()))
            .collect(),
        purposes: Purpose::ALL
            .iter()
            .map(|p| (p.as_str(), p.describe()))
            .collect(),
        csrf: who.csrf().unwrap_or_default().to_owned(),
        message,
        error,
        has_id,
    };
    let status = status_for(&error.map(str::to_owned));
    Ok((status, render(&page)).into_response())
}

pub async fn consents_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    consents_view(&ctx, &state, &who, None, None).await
}

pub async fn grant_consent(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(form): CsrfForm<ConsentInput>,
) -> Result<Response, PageError> {
    match give_consent(&state, &who, &form).await {
        Ok(c) => consents_view(&ctx, &state, &who, Some(c.id), None).await,
        Err(key) => consents_view(&ctx, &state, &who, None, Some(key)).await,
    }
}

#[derive(Deserialize)]
pub struct RevokeConsent {
    #[serde(default)]
    id: String,
}

pub async fn revoke_consent(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(form): CsrfForm<RevokeConsent>,
) -> Result<Response, PageError> {
    match state.store.revoke_consent(&form.id, who.account_id).await {
        Ok(true) => consents_view(&ctx, &state, &who, None, None).await,
        Ok(false) => Err(PageError::not_found(ctx.lang)),
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

/// `GET /api/v1/me/consents`: the signed-in person's consents, all of them.
#[utoipa::path(get, path = "/api/v1/me/consents", tag = "exchange",
    responses((status = 200, description = "{consents: [{id, client_agency, service_id, purpose, granted_at, expires_at, revoked_at}]}, newest first, revoked ones kept")))]
pub async fn my_consents_api(State(state): State<AppState>, who: Principal) -> Response {
    match state.store.consents_of(who.account_id).await {
        Ok(c) => Json(serde_json::json!({ "consents": c })).into_response(),
        Err(_) => Problem::internal().into_response(),
    }
}

/// `POST /api/v1/me/consents` (JSON: agency, service, purpose, days; the
/// session's CSRF token in `X-CSRF-Token`).
#[utoipa::path(post, path = "/api/v1/me/consents", tag = "exchange",
    params(("X-CSRF-Token" = String, Header, description = "The session's anti-forgery token")),
    request_body(content = serde_json::Value, description = "{agency: INSTANCE/CLASS/CODE that may fetch, service: INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE, purpose, days: 1–365}"),
    responses((status = 201, description = "The consent, with its id for Nara-Consent"),
              (status = 400, description = "Not a personal-data service, a purpose it does not accept, …", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn grant_consent_api(
    State(state): State<AppState>,
    who: Principal,
    _csrf: CsrfHeader,
    crate::extract::ApiJson(input): crate::extract::ApiJson<ConsentInput>,
) -> Response {
    if !who.has_role(Role::Citizen) {
        return Problem::forbidden()
            .detail("a citizen's session is required")
            .into_response();
    }
    match give_consent(&state, &who, &input).await {
        Ok(c) => (StatusCode::CREATED, Json(c)).into_response(),
        Err("error.internal") => Problem::internal().into_response(),
        Err(key) => {
            Problem::bad_request("consent", crate::web::i18n::Tr(nara_core::Lang::En).s(key))
                .into_response()
        }
    }
}

/// `POST /api/v1/me/consents/{id}/revoke`: takes effect at once.
#[utoipa::path(post, path = "/api/v1/me/consents/{id}/revoke", tag = "exchange",
    params(("id" = String, Path, description = "The consent id"),
           ("X-CSRF-Token" = String, Header, description = "The session's anti-forgery token")),
    responses((status = 204, description = "Revoked; the next exchange relying on it is refused"),
              (status = 404, description = "Not one of yours, or already revoked", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn revoke_consent_api(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
    _csrf: CsrfHeader,
) -> Response {
    match state.store.revoke_consent(&id, who.account_id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => Problem::not_found(&format!("consent {id}")).into_response(),
        Err(_) => Problem::internal().into_response(),
    }
}
