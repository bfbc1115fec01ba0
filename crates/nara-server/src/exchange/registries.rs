//! Registries nara hosts for agencies: the records' API agency systems call
//! with signed requests, the public list of registries, and the schema a
//! record must follow.

use askama::Template;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::extract::ApiPath;
use crate::identity::auth::Caller;
use crate::problem::Problem;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

/// The hosted registries: owner, schema, size, and the services that serve them.
#[utoipa::path(get, path = "/api/v1/registries", tag = "exchange",
    responses((status = 200, description = "Every registry nara hosts: code, agency, title, JSON Schema, record count, data services")))]
pub async fn registries_api(State(state): State<AppState>) -> Response {
    match registry_views(&state).await {
        Ok(views) => Json(
            views
                .into_iter()
                .map(|v| {
                    serde_json::json!({
                        "code": v.code, "agency": v.agency, "title": v.title,
                        "records": v.records, "services": v.services,
                        "schema": serde_json::from_str::<serde_json::Value>(&v.schema).unwrap_or_default(),
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "registries");
            Problem::internal().into_response()
        }
    }
}

pub struct RegistryView {
    pub code: String,
    pub agency: String,
    pub title: String,
    pub schema: String,
    pub fields: Vec<(String, String)>,
    pub records: i64,
    pub services: Vec<String>,
}

async fn registry_views(state: &AppState) -> Result<Vec<RegistryView>, nara_store::StoreError> {
    let directory = state.exchange.directory(&state.store).await?;
    let mut out = Vec::new();
    for r in directory.registries.values() {
        let schema: serde_json::Value = serde_json::from_str(&r.schema).unwrap_or_default();
        let fields = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.clone(), v["type"].as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        out.push(RegistryView {
            code: r.code.clone(),
            agency: r.agency_id.clone(),
            title: r.title.clone(),
            schema: r.schema.clone(),
            fields,
            records: state.store.registry_size(&r.code).await?,
            services: directory
                .services
                .values()
                .filter(|s| s.endpoint_kind == "registry" && s.endpoint == r.code)
                .map(|s| s.id.clone())
                .collect(),
        });
    }
    Ok(out)
}

#[derive(Template)]
#[template(path = "registries.html")]
struct RegistriesPage {
    layout: Layout,
    registries: Vec<RegistryView>,
}

pub async fn registries_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let registries = registry_views(&state)
        .await
        .map_err(store_failed(ctx.lang))?;
    let page = RegistriesPage {
        layout: ctx.layout(ctx.tr().s("exchange.registries_title"), "registries"),
        registries,
    };
    Ok(render(&page))
}

/// The registry a machine caller's agency owns, and the subject it names.
async fn owned_registry(
    state: &AppState,
    code: &str,
    request: &axum::http::request::Parts,
) -> Result<(nara_store::exchange::Registry, String), Problem> {
    let Some(Caller::Machine(m)) = request.extensions.get::<Caller>() else {
        return Err(Problem::unauthorized());
    };
    let directory = state
        .exchange
        .directory(&state.store)
        .await
        .map_err(|_| Problem::internal())?;
    // Another agency's registry is "not found", not "forbidden".
    let registry = directory
        .registries
        .get(code)
        .filter(|r| r.agency_id == m.agency)
        .cloned()
        .ok_or_else(|| Problem::not_found(&format!("registry {code}")))?;
    let subject = request
        .headers
        .get("nara-subject")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| nara_core::identity::normalize_national_id(s).ok())
        .ok_or_else(|| {
            Problem::bad_request(
                "Nara-Subject",
                "name the person by a valid resident registration number",
            )
        })?;
    Ok((registry, state.identity.national_id_hash(&subject)))
}

/// `GET /api/v1/registries/{code}/record`: the owning agency's systems read
/// a record directly (signed, RFC 9421).
#[utoipa::path(get, path = "/api/v1/registries/{code}/record", tag = "exchange",
    params(("code" = String, Path, description = "The registry, e.g. residents"),
           ("Nara-Subject" = String, Header, description = "The person's resident registration number")),
    responses((status = 200, description = "The record"),
              (status = 401, description = "Unsigned or refused signature", body = crate::problem::Problem, content_type = "application/problem+json"),
              (status = 404, description = "Not this agency's registry, or no record of this person", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn registry_record(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let (registry, subject) = match owned_registry(&state, &code, &parts).await {
        Ok(x) => x,
        Err(p) => return p.into_response(),
    };
    match state.store.registry_record(&registry.code, &subject).await {
        Ok(Some(text)) => (
            [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
            text,
        )
            .into_response(),
        Ok(None) => Problem::not_found("a record of this person").into_response(),
        Err(_) => Problem::internal().into_response(),
    }
}

/// `PUT /api/v1/registries/{code}/record`: the owning agency writes a
/// record, checked against the registry's schema; a ledger entry.
#[utoipa::path(put, path = "/api/v1/registries/{code}/record", tag = "exchange",
    params(("code" = String, Path, description = "The registry"),
           ("Nara-Subject" = String, Header, description = "The person's resident registration number")),
    request_body(content = serde_json::Value, description = "The record, valid under the registry's schema"),
    responses((status = 204, description = "Written"),
              (status = 400, description = "Not valid under the schema", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn put_registry_record(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (registry, subject) = match owned_registry(&state, &code, &parts).await {
        Ok(x) => x,
        Err(p) => return p.into_response(),
    };
    let actor = match parts.extensions.get::<Caller>() {
        Some(Caller::Machine(m)) => format!("subsystem:{}", m.client_id()),
        _ => return Problem::unauthorized().into_response(),
    };
    let Ok(body) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
        return Problem::bad_request("body", "too large").into_response();
    };
    let record: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return Problem::bad_request("body", format!("not JSON: {e}")).into_response(),
    };
    let schema: serde_json::Value = serde_json::from_str(&registry.schema).unwrap_or_default();
    if let Err(why) = nara_core::exchange::check_record(&schema, &record) {
        return Problem::bad_request("body", why.to_string()).into_response();
    }
    match state
        .store
        .put_registry_records(&registry.code, &[(subject, record.to_string())], &actor)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => Problem::internal().into_response(),
    }
}
