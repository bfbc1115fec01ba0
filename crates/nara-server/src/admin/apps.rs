//! An agency's OpenID Connect apps (relying parties): registration, with
//! the secret shown once.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use nara_core::MemberId;
use nara_core::identity::{self};
use nara_store::oidc::Client;
use serde::Deserialize;

use crate::AppState;
use crate::identity::auth::{Principal, digest, random_secret};
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

use super::{AdminAgency, AdminForm, agency_name};
use crate::web::status_for;

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    layout: Layout,
    agency: String,
    agency_name: String,
    apps: Vec<Client>,
    csrf: String,
    created: Option<(String, Option<String>)>,
    error: Option<String>,
    issuer: String,
}

async fn apps_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    agency: &MemberId,
    created: Option<(String, Option<String>)>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let apps = state
        .store
        .clients_of_agency(agency)
        .await
        .map_err(store_failed(ctx.lang))?;
    let agency_name = agency_name(ctx, state, agency).await?;
    let status = status_for(&error);
    let page = AppsPage {
        layout: ctx.layout(ctx.tr().s("apps.title"), "admin"),
        agency: agency.to_string(),
        agency_name,
        apps,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        created,
        error,
        issuer: state.config.issuer(),
    };
    let mut r = (status, render(&page)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

pub async fn apps_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminAgency(agency): AdminAgency,
) -> Result<Response, PageError> {
    apps_view(&ctx, &state, &who, &agency, None, None).await
}

#[derive(Deserialize)]
pub struct RegisterApp {
    #[serde(default)]
    name: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    client_type: String,
}

/// Registers an agency app as an OIDC client. Its secret is shown once.
pub async fn register_app(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminForm { agency, form }: AdminForm<RegisterApp>,
) -> Result<Response, PageError> {
    let tr = ctx.tr();
    let uris: Vec<String> = form
        .redirect_uris
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let name_ok = identity::check_display_name(&form.name).is_ok();
    let uris_ok = !uris.is_empty()
        && uris.len() <= 5
        && uris
            .iter()
            .all(|u| crate::identity::oidc::valid_redirect_uri(u));
    let confidential = match form.client_type.as_str() {
        "confidential" => Some(true),
        "public" => Some(false),
        _ => None,
    };
    let error = if !name_ok {
        Some(tr.s("apps.bad_name"))
    } else if !uris_ok {
        Some(tr.s("apps.bad_redirect"))
    } else if confidential.is_none() {
        Some(tr.s("apps.bad_type"))
    } else {
        None
    };
    if let Some(error) = error {
        return apps_view(&ctx, &state, &who, &agency, None, Some(error.to_owned())).await;
    }
    let client_id = random_secret("app_")[..24].to_owned();
    let secret = (confidential == Some(true)).then(|| random_secret("nara_cs_"));
    let client = Client {
        client_id: client_id.clone(),
        agency: agency.clone(),
        name: form.name.trim().to_owned(),
        redirect_uris: uris,
        secret_hash: secret.as_deref().map(digest),
        created_at: nara_core::Timestamp::now(),
        revoked: false,
    };
    state
        .store
        .register_client(&client, &who.actor())
        .await
        .map_err(store_failed(ctx.lang))?;
    apps_view(&ctx, &state, &who, &agency, Some((client_id, secret)), None).await
}
