//! The exchange's people-facing side: hosted registries (their API and
//! page), the citizen's consents and data-access history (pages and API),
//! agency admins' access rights, and the operators' view of exchange traffic.

use askama::Template;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use nara_core::MemberId;
use nara_core::exchange::Purpose;
use nara_core::identity::Role;
use nara_store::exchange::{Consent, ExchangeRecord};
use serde::Deserialize;

use crate::AppState;
use crate::admin::{admin_agency, agency_name};
use crate::extract::{ApiPath, ApiQuery};
use crate::identity::auth::{Caller, Principal};
use crate::problem::Problem;
use crate::web::csrf::{CsrfForm, CsrfHeader};
use crate::web::{Layout, PageCtx, PageError, render, store_failed};
use crate::web::{query_value, status_for, when};

// ------------------------------------------------------------- registries

/// Checks a record against a registry's schema: a JSON object whose
/// `required` properties are present, whose properties are all declared
/// (`additionalProperties` is false) and of the declared `type`. This subset
/// of JSON Schema is what registries declare.
pub fn check_record(schema: &serde_json::Value, record: &serde_json::Value) -> Result<(), String> {
    let obj = record
        .as_object()
        .ok_or_else(|| "a record is a JSON object".to_owned())?;
    let props = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .ok_or_else(|| "the registry's schema declares no properties".to_owned())?;
    for r in schema
        .get("required")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(name) = r.as_str()
            && !obj.contains_key(name)
        {
            return Err(format!("{name} is required"));
        }
    }
    for (name, value) in obj {
        let declared = props
            .get(name)
            .ok_or_else(|| format!("{name} is not a field of this registry"))?;
        let ok = match declared.get("type").and_then(|t| t.as_str()) {
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            _ => true,
        };
        if !ok {
            return Err(format!("{name} must be of type {}", declared["type"]));
        }
    }
    Ok(())
}

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
    if let Err(why) = check_record(&schema, &record) {
        return Problem::bad_request("body", why).into_response();
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

// ------------------------------------------------------ the citizen's view

/// One exchange as the citizen sees it.
pub struct AccessView {
    pub when: String,
    pub agency: String,
    pub client: String,
    pub service: String,
    pub purpose: String,
    pub basis: String,
    pub outcome: String,
}

async fn subject_of(
    state: &AppState,
    who: &Principal,
) -> Result<Option<String>, nara_store::StoreError> {
    state.store.national_id_hash_of(who.account_id).await
}

async fn access_views(
    state: &AppState,
    who: &Principal,
    lang: nara_core::Lang,
) -> Result<Vec<(ExchangeRecord, AccessView)>, nara_store::StoreError> {
    let Some(subject) = subject_of(state, who).await? else {
        return Ok(Vec::new());
    };
    let records = state.store.exchanges_of_subject(&subject, 1_000).await?;
    let agencies = state.store.all_agencies().await?;
    let directory = state.exchange.directory(&state.store).await?;
    Ok(records
        .into_iter()
        .map(|r| {
            let member: String = r.client_id.split('/').take(3).collect::<Vec<_>>().join("/");
            let agency = agencies
                .iter()
                .find(|a| a.id.as_str() == member)
                .map(|a| a.name.get(lang).to_owned())
                .or_else(|| {
                    state.exchange.federation.as_ref().and_then(|f| {
                        f.remote_members()
                            .into_iter()
                            .find(|(m, _)| *m == member)
                            .map(|(_, n)| n)
                    })
                })
                .unwrap_or_else(|| member.clone());
            let service = directory
                .services
                .get(&r.service_id)
                .map(|s| s.title.clone())
                .unwrap_or_else(|| r.service_id.clone());
            let purpose = r
                .purpose
                .parse::<Purpose>()
                .map(|p| p.describe().to_owned())
                .unwrap_or_else(|_| r.purpose.clone());
            let basis = if !r.consent_id.is_empty() {
                format!("consent {}", r.consent_id)
            } else {
                r.legal_basis.clone()
            };
            let view = AccessView {
                when: when(r.started_at),
                agency,
                client: r.client_id.clone(),
                service,
                purpose,
                basis,
                outcome: if r.status < 400 {
                    "ok".into()
                } else {
                    format!("{}", r.status)
                },
            };
            (r, view)
        })
        .collect())
}

#[derive(Template)]
#[template(path = "data_access.html")]
struct DataAccessPage {
    layout: Layout,
    rows: Vec<AccessView>,
    has_id: bool,
}

pub async fn data_access_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    let has_id = subject_of(&state, &who)
        .await
        .map_err(store_failed(ctx.lang))?
        .is_some();
    let rows = access_views(&state, &who, ctx.lang)
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let page = DataAccessPage {
        layout: ctx.layout(ctx.tr().s("exchange.history_title"), "my-data"),
        rows,
        has_id,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct Format {
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/v1/me/data-access[?format=csv]`: every exchange that concerned
/// the signed-in person, newest first, as JSON or CSV.
#[utoipa::path(get, path = "/api/v1/me/data-access", tag = "exchange",
    params(("format" = Option<String>, Query, description = "json (default) or csv")),
    responses((status = 200, description = "{exchanges: [{time, agency, client, service, purpose, consent, legal_basis, x_road_id, status}]}, or CSV")))]
pub async fn data_access_api(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<Format>,
) -> Response {
    let rows = match access_views(&state, &who, nara_core::Lang::En).await {
        Ok(r) => r,
        Err(_) => return Problem::internal().into_response(),
    };
    match q.format.as_deref() {
        Some("csv") => {
            let mut out = String::from(
                "time,agency,client,service,purpose,consent,legal_basis,x_road_id,status\r\n",
            );
            for (r, v) in &rows {
                let fields = [
                    nara_core::Timestamp(r.started_at).rfc3339(),
                    v.agency.clone(),
                    r.client_id.clone(),
                    r.service_id.clone(),
                    r.purpose.clone(),
                    r.consent_id.clone(),
                    r.legal_basis.clone(),
                    r.xroad_id.clone(),
                    r.status.to_string(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                out.push_str(&line.join(","));
                out.push_str("\r\n");
            }
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"my-data-access.csv\"",
                    ),
                ],
                out,
            )
                .into_response()
        }
        None | Some("json") => Json(serde_json::json!({
            "exchanges": rows.iter().map(|(r, v)| serde_json::json!({
                "time": nara_core::Timestamp(r.started_at).rfc3339(),
                "agency": v.agency,
                "client": r.client_id,
                "service": r.service_id,
                "purpose": r.purpose,
                "consent": (!r.consent_id.is_empty()).then_some(&r.consent_id),
                "legal_basis": (!r.legal_basis.is_empty()).then_some(&r.legal_basis),
                "x_road_id": r.xroad_id,
                "status": r.status,
            })).collect::<Vec<_>>()
        }))
        .into_response(),
        Some(_) => Problem::bad_request("format", "json or csv").into_response(),
    }
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is prefixed with `'`
/// so a spreadsheet never runs it as a formula.
pub fn csv_field(value: &str) -> String {
    let mut v = value.to_owned();
    if v.starts_with(['=', '+', '-', '@']) {
        v.insert(0, '\'');
    }
    if v.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

// ---------------------------------------------------------------- consents

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
    let subject = subject_of(state, who)
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
    let has_id = subject_of(state, who)
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
    request: Request,
) -> Response {
    if !who.has_role(Role::Citizen) {
        return Problem::forbidden()
            .detail("a citizen's session is required")
            .into_response();
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), 16 * 1024).await else {
        return Problem::bad_request("body", "too large").into_response();
    };
    let input: ConsentInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return Problem::bad_request("body", e.to_string()).into_response(),
    };
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

// ------------------------------------------------------------ access rights

pub struct RightView {
    pub id: i64,
    pub service: String,
    pub client: String,
    pub fields: String,
    /// What the client may invoke: purposes, and legal bases (`; `-joined).
    pub purposes: String,
    pub legal_bases: String,
    pub granted: String,
    pub revoked: bool,
}

#[derive(Template)]
#[template(path = "exchange_access.html")]
struct AccessPage {
    layout: Layout,
    agency: String,
    agency_name: String,
    services: Vec<nara_store::exchange::DataService>,
    registries: Vec<nara_store::exchange::Registry>,
    purposes: Vec<(&'static str, &'static str)>,
    rights: Vec<RightView>,
    csrf: String,
    message: Option<String>,
    error: Option<String>,
}

async fn access_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    agency: &MemberId,
    message: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let directory = state
        .exchange
        .directory(&state.store)
        .await
        .map_err(store_failed(ctx.lang))?;
    let services: Vec<_> = directory
        .services
        .values()
        .filter(|s| s.agency_id == agency.as_str())
        .cloned()
        .collect();
    let rights = state
        .store
        .access_rights()
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .filter(|r| services.iter().any(|s| s.id == r.service_id))
        .map(|r| RightView {
            purposes: r.purpose_list().collect::<Vec<_>>().join(" "),
            legal_bases: r.legal_basis_list().collect::<Vec<_>>().join("; "),
            id: r.id,
            service: r.service_id,
            client: r.client_id,
            fields: r.fields,
            granted: when(r.granted_at),
            revoked: r.revoked_at.is_some(),
        })
        .collect();
    let status = status_for(&error);
    let page = AccessPage {
        layout: ctx.layout(ctx.tr().s("exchange.access_title"), "admin"),
        agency: agency.to_string(),
        agency_name: agency_name(ctx, state, agency).await?,
        registries: directory
            .registries
            .values()
            .filter(|r| r.agency_id == agency.as_str())
            .cloned()
            .collect(),
        purposes: Purpose::ALL
            .iter()
            .map(|p| (p.as_str(), p.describe()))
            .collect(),
        services,
        rights,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        message,
        error,
    };
    Ok((status, render(&page)).into_response())
}

/// After a change to the agency's services, registries or rights: reload
/// the gateway's directory and show the page with the outcome (a conflict
/// is the admin's to fix; anything else is ours).
async fn after_change(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    agency: &MemberId,
    result: Result<(), nara_store::StoreError>,
    done: String,
) -> Result<Response, PageError> {
    match result {
        Ok(()) => {
            state.exchange.changed();
            access_view(ctx, state, who, agency, Some(done), None).await
        }
        Err(nara_store::StoreError::Conflict(m)) => {
            access_view(ctx, state, who, agency, None, Some(m)).await
        }
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

pub async fn access_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    let agency = admin_agency(&ctx, &who, query_value(&ctx, "agency").as_deref())?;
    access_view(&ctx, &state, &who, &agency, None, None).await
}

/// A form's first value for `name`, trimmed (empty when absent), from a
/// form read as pairs (which keeps repeated names such as `purpose`).
fn form_field(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

/// Grants a client subsystem (or a whole member) one of the agency's
/// services: the fields it sees, the purposes it may state (`purpose`,
/// repeated) and the legal bases it may name instead of consent
/// (`legal_bases`, one a line), each among those the service accepts.
pub async fn grant_access(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let field = |name: &str| form_field(&pairs, name);
    let agency = admin_agency(&ctx, &who, Some(&field("agency")))?;
    let tr = ctx.tr();
    let directory = state
        .exchange
        .directory(&state.store)
        .await
        .map_err(store_failed(ctx.lang))?;
    let Some(service) = directory
        .services
        .get(&field("service"))
        .filter(|s| s.agency_id == agency.as_str())
    else {
        return Err(PageError::not_found(ctx.lang));
    };
    let client = nara_core::exchange::ClientId::parse(field("client").as_str());
    let fields_text = field("fields");
    let fields: Vec<&str> = fields_text
        .split([' ', ','])
        .filter(|f| !f.is_empty())
        .collect();
    let fields_ok = fields
        .iter()
        .all(|f| f.len() <= 64 && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let purposes: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "purpose")
        .map(|(_, v)| v.trim())
        .collect();
    let bases_text = field("legal_bases");
    let bases: Vec<&str> = bases_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // Only what the service accepts; a personal-data right names a purpose.
    let basis_ok = purposes
        .iter()
        .all(|p| service.purpose_list().any(|x| x == *p))
        && bases
            .iter()
            .all(|b| service.legal_basis_list().any(|x| x == *b))
        && (service.personal == 0 || !purposes.is_empty());
    let error = match (&client, fields_ok, basis_ok) {
        (Ok(_), true, true) => None,
        (Ok(_), true, false) => Some("exchange.bad_basis"),
        _ => Some("exchange.bad_client"),
    };
    let (Ok(client), None) = (client, error) else {
        return access_view(
            &ctx,
            &state,
            &who,
            &agency,
            None,
            Some(tr.s(error.unwrap_or("exchange.bad_client")).into()),
        )
        .await;
    };
    let result = state
        .store
        .grant_access(
            &nara_store::exchange::NewAccessRight {
                service_id: &service.id,
                client_id: &client.to_string(),
                fields: &fields.join(" "),
                purposes: &purposes.join(" "),
                legal_bases: &bases.join("\n"),
            },
            &who.actor(),
        )
        .await;
    let done = format!("{client} → {}", service.id);
    after_change(&ctx, &state, &who, &agency, result, done).await
}

#[derive(Deserialize)]
pub struct RevokeAccess {
    #[serde(default)]
    agency: String,
    #[serde(default)]
    id: i64,
}

pub async fn revoke_access(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(form): CsrfForm<RevokeAccess>,
) -> Result<Response, PageError> {
    let agency = admin_agency(&ctx, &who, Some(&form.agency))?;
    match state
        .store
        .revoke_access(form.id, agency.as_str(), &who.actor())
        .await
    {
        Ok(true) => {
            state.exchange.changed();
            access_view(
                &ctx,
                &state,
                &who,
                &agency,
                Some(format!("#{} ✕", form.id)),
                None,
            )
            .await
        }
        Ok(false) => Err(PageError::not_found(ctx.lang)),
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

/// Publishes a data service of the admin's agency: a hosted registry or the
/// agency's own system at a fixed URL; a ledger entry.
pub async fn publish_service(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let field = |name: &str| form_field(&pairs, name);
    let agency = admin_agency(&ctx, &who, Some(&field("agency")))?;
    let directory = state
        .exchange
        .directory(&state.store)
        .await
        .map_err(store_failed(ctx.lang))?;
    let purposes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "purpose")
        .filter(|(_, v)| v.parse::<Purpose>().is_ok())
        .map(|(_, v)| v.clone())
        .collect();
    let (subsystem, code, title) = (field("subsystem"), field("service_code"), field("title"));
    let personal = field("personal") == "1";
    let legal: Vec<String> = field("legal_bases")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let mut problems: Vec<String> = Vec::new();
    let id = nara_core::exchange::ServiceId::new(agency.clone(), &subsystem, &code);
    if id.is_err() {
        problems
            .push("subsystem and service code: 1 to 64 letters, digits, '-', '_' or '.'".into());
    }
    if let Ok(id) = &id
        && (id.is_metaservice() || directory.services.contains_key(&id.to_string()))
    {
        problems.push(format!("{id} exists already (or is a metaservice name)"));
    }
    if title.is_empty() || title.len() > 200 {
        problems.push("title: 1 to 200 characters".into());
    }
    if personal && purposes.is_empty() {
        problems.push("a personal-data service accepts at least one purpose".into());
    }
    if legal
        .iter()
        .any(|l| !nara_core::exchange::valid_legal_basis(l))
    {
        problems.push("a legal basis is 3 to 120 letters, digits, spaces and .,-()§/".into());
    }
    let (kind, endpoint, openapi) = match field("endpoint_kind").as_str() {
        "registry" => {
            let registry = directory
                .registries
                .get(&field("registry"))
                .filter(|r| r.agency_id == agency.as_str());
            match registry {
                Some(r) => {
                    let schema: serde_json::Value =
                        serde_json::from_str(&r.schema).unwrap_or_default();
                    let doc = nara_core::exchange::registry_openapi(&r.title, &r.code, &schema);
                    ("registry", r.code.clone(), doc.to_string())
                }
                None => {
                    problems.push("choose one of your agency's registries".into());
                    ("registry", String::new(), String::new())
                }
            }
        }
        _ => {
            if let Err(e) = nara_core::exchange::check_endpoint_url(&field("url")) {
                problems.push(format!("URL: {e}"));
            }
            let doc = field("openapi");
            if let Err(e) = nara_core::exchange::check_openapi(&doc) {
                problems.push(e.into());
            }
            ("url", field("url"), doc)
        }
    };
    let version = field("version");
    if !nara_core::exchange::valid_part(&version) {
        problems.push("version: 1 to 64 letters, digits, '-', '_' or '.'".into());
    }
    let Ok(id) = id else {
        return access_view(&ctx, &state, &who, &agency, None, Some(problems.join("; "))).await;
    };
    if !problems.is_empty() {
        return access_view(&ctx, &state, &who, &agency, None, Some(problems.join("; "))).await;
    }
    let service = nara_store::exchange::DataService {
        id: id.to_string(),
        agency_id: agency.to_string(),
        subsystem,
        service_code: code,
        version,
        title,
        openapi,
        personal: i64::from(personal),
        purposes: purposes.join(" "),
        legal_bases: legal.join("\n"),
        endpoint_kind: kind.into(),
        endpoint,
        created_at: nara_core::Timestamp::now().0,
    };
    let result = state
        .store
        .register_data_service(&service, &who.actor())
        .await;
    after_change(&ctx, &state, &who, &agency, result, service.id.clone()).await
}

#[derive(Deserialize)]
pub struct NewRegistry {
    #[serde(default)]
    agency: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    title: String,
    /// One `name type` per line.
    #[serde(default)]
    fields: String,
}

/// Creates a registry of the admin's agency; a ledger entry.
pub async fn create_registry(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(form): CsrfForm<NewRegistry>,
) -> Result<Response, PageError> {
    let agency = admin_agency(&ctx, &who, Some(&form.agency))?;
    let title = form.title.trim();
    let schema = nara_core::exchange::registry_schema(title, &form.fields);
    let error = if !nara_core::exchange::valid_part(form.code.trim()) {
        Some("code: 1 to 64 letters, digits, '-', '_' or '.'".to_owned())
    } else if title.is_empty() || title.len() > 200 {
        Some("title: 1 to 200 characters".to_owned())
    } else {
        schema.as_ref().err().cloned()
    };
    let Ok(schema) = schema else {
        return access_view(&ctx, &state, &who, &agency, None, error).await;
    };
    if error.is_some() {
        return access_view(&ctx, &state, &who, &agency, None, error).await;
    }
    let registry = nara_store::exchange::Registry {
        code: form.code.trim().to_owned(),
        agency_id: agency.to_string(),
        title: title.to_owned(),
        schema: schema.to_string(),
        created_at: nara_core::Timestamp::now().0,
    };
    let result = state.store.create_registry(&registry, &who.actor()).await;
    after_change(&ctx, &state, &who, &agency, result, registry.code.clone()).await
}

// ---------------------------------------------------------------- operations

pub struct StatView {
    pub service: String,
    pub client: String,
    pub exchanges: i64,
    pub errors: i64,
    pub mean_ms: String,
    pub max_ms: String,
    /// Bar width (0–100) against the busiest row, for the chart.
    pub bar: i64,
}

#[derive(Template)]
#[template(path = "exchange_operations.html")]
struct OperationsPage {
    layout: Layout,
    stats: Vec<StatView>,
    total: i64,
    errors: i64,
    node: String,
    federation: Option<u64>,
}

/// Exchange traffic of the last 24 hours, per service and client.
pub async fn operations_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let since = nara_core::Timestamp::now().0 - 86_400_000;
    let stats = state
        .store
        .exchange_stats(since)
        .await
        .map_err(store_failed(ctx.lang))?;
    let busiest = stats.iter().map(|s| s.exchanges).max().unwrap_or(1).max(1);
    let page = OperationsPage {
        layout: ctx.layout(ctx.tr().s("exchange.operations_title"), "exchange"),
        total: stats.iter().map(|s| s.exchanges).sum(),
        errors: stats.iter().map(|s| s.errors).sum(),
        stats: stats
            .into_iter()
            .map(|s| StatView {
                bar: s.exchanges * 100 / busiest,
                service: s.service_id,
                client: s.client_id,
                exchanges: s.exchanges,
                errors: s.errors,
                mean_ms: format!("{:.2}", s.mean_us as f64 / 1000.0),
                max_ms: format!("{:.2}", s.max_us as f64 / 1000.0),
            })
            .collect(),
        node: state.exchange.key_id.clone(),
        federation: state.exchange.federation.as_ref().map(|f| f.version()),
    };
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn records_follow_the_schema() {
        let schema = serde_json::json!({
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}
        });
        assert!(check_record(&schema, &serde_json::json!({"name": "a", "age": 3})).is_ok());
        assert!(check_record(&schema, &serde_json::json!({"age": 3})).is_err());
        assert!(check_record(&schema, &serde_json::json!({"name": 1})).is_err());
        assert!(check_record(&schema, &serde_json::json!({"name": "a", "x": 1})).is_err());
        assert!(check_record(&schema, &serde_json::json!([1])).is_err());
    }
}
