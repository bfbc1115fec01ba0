//! The JSON API under `/api/v1/`: the national catalogue. Reads of agencies
//! and services are public; the systems inventory and every write need the
//! operator credential. Their annotations feed the OpenAPI document
//! ([`crate::openapi`]).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use nara_core::{
    Agency, AgencyChanges, AgencyFilter, MemberId, NewAgency, Page, PageRequest, Service,
    ServiceFilter, ServiceInput, System, SystemFilter, SystemInput,
};

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::identity::auth::Principal;
use crate::problem::Problem;
use nara_core::identity::Role;

fn created<T: serde::Serialize>(location: String, body: T) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

fn numeric_id(raw: &str) -> Result<i64, Problem> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Problem::bad_request("id", format!("{raw:?} is not a positive integer id")))
}

fn member_id(raw: &str) -> Result<MemberId, Problem> {
    MemberId::parse(raw).map_err(|e| Problem::bad_request("id", e.errors[0].detail.clone()))
}

// ------------------------------------------------------------------ agencies

/// List agencies.
#[utoipa::path(get, path = "/api/v1/agencies", tag = "agencies", params(AgencyFilter, PageRequest),
    responses(
        (status = 200, description = "A page of agencies", body = Page<Agency>),
        (status = 400, description = "A query parameter is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_agencies(
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<AgencyFilter>,
    ApiQuery(page): ApiQuery<PageRequest>,
) -> Result<Json<Page<Agency>>, Problem> {
    page.validate()?;
    Ok(Json(state.store.list_agencies(&filter, page).await?))
}

/// Register an agency.
#[utoipa::path(post, path = "/api/v1/agencies", tag = "agencies", request_body = NewAgency, security(("api_token" = [])),
    responses(
        (status = 201, description = "Registered", body = Agency),
        (status = 400, description = "The body is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The identifier is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_agency(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(new): ApiJson<NewAgency>,
) -> Result<Response, Problem> {
    let agency = state.store.create_agency(&new, &who.actor()).await?;
    Ok(created(format!("/api/v1/agencies/{}", agency.id), agency))
}

/// Get one agency by its member identifier (`KR/GOV/MOIS`).
#[utoipa::path(get, path = "/api/v1/agencies/{id}", tag = "agencies",
    params(("id" = String, Path, description = "Member identifier INSTANCE/CLASS/CODE", example = "KR/GOV/MOIS")),
    responses(
        (status = 200, description = "The agency", body = Agency),
        (status = 400, description = "The identifier is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such agency", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_agency(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Agency>, Problem> {
    let id = member_id(&id)?;
    let agency = state
        .store
        .get_agency(&id)
        .await?
        .ok_or_else(|| Problem::not_found(&format!("agency {id}")))?;
    Ok(Json(agency))
}

/// Replace an agency's names and kind.
#[utoipa::path(put, path = "/api/v1/agencies/{id}", tag = "agencies", request_body = AgencyChanges, security(("api_token" = [])),
    params(("id" = String, Path, description = "Member identifier INSTANCE/CLASS/CODE")),
    responses(
        (status = 200, description = "Updated", body = Agency),
        (status = 400, description = "The body or identifier is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such agency", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_agency(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(changes): ApiJson<AgencyChanges>,
) -> Result<Json<Agency>, Problem> {
    let id = member_id(&id)?;
    Ok(Json(
        state
            .store
            .update_agency(&id, &changes, &who.actor())
            .await?,
    ))
}

// ------------------------------------------------------------------ systems

/// List inventoried systems (operators only).
#[utoipa::path(get, path = "/api/v1/systems", tag = "systems", params(SystemFilter, PageRequest), security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of systems", body = Page<System>),
        (status = 400, description = "A query parameter is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_systems(
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<SystemFilter>,
    ApiQuery(page): ApiQuery<PageRequest>,
) -> Result<Response, Problem> {
    page.validate()?;
    let json = state.store.list_systems_json(&filter, page).await?;
    Ok(json_bytes(json))
}

/// Bytes already serialised as JSON, answered as [`Json`] would answer them.
fn json_bytes(json: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// Register a system.
#[utoipa::path(post, path = "/api/v1/systems", tag = "systems", request_body = SystemInput, security(("api_token" = [])),
    responses(
        (status = 201, description = "Registered", body = System),
        (status = 400, description = "The body is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The agency already has a system with this code", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid or the agency does not exist", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_system(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(input): ApiJson<SystemInput>,
) -> Result<Response, Problem> {
    let system = state.store.create_system(&input, &who.actor()).await?;
    Ok(created(format!("/api/v1/systems/{}", system.id), system))
}

/// Get one system (operators only).
#[utoipa::path(get, path = "/api/v1/systems/{id}", tag = "systems", security(("api_token" = [])),
    params(("id" = i64, Path, description = "System id")),
    responses(
        (status = 200, description = "The system", body = System),
        (status = 400, description = "The id is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such system", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_system(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<System>, Problem> {
    let id = numeric_id(&id)?;
    let system = state
        .store
        .get_system(id)
        .await?
        .ok_or_else(|| Problem::not_found(&format!("system {id}")))?;
    Ok(Json(system))
}

/// Replace a system's details.
#[utoipa::path(put, path = "/api/v1/systems/{id}", tag = "systems", request_body = SystemInput, security(("api_token" = [])),
    params(("id" = i64, Path, description = "System id")),
    responses(
        (status = 200, description = "Updated", body = System),
        (status = 400, description = "The body or id is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such system", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The agency already has a system with this code", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_system(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<SystemInput>,
) -> Result<Json<System>, Problem> {
    let id = numeric_id(&id)?;
    Ok(Json(
        state.store.update_system(id, &input, &who.actor()).await?,
    ))
}

// ------------------------------------------------------------------ services

/// Search the service catalogue.
#[utoipa::path(get, path = "/api/v1/services", tag = "services", params(ServiceFilter, PageRequest),
    responses(
        (status = 200, description = "A page of services", body = Page<Service>),
        (status = 400, description = "A query parameter is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_services(
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<ServiceFilter>,
    ApiQuery(page): ApiQuery<PageRequest>,
) -> Result<Response, Problem> {
    page.validate()?;
    let json = state.store.list_services_json(&filter, page).await?;
    Ok(json_bytes(json))
}

/// Register a service.
#[utoipa::path(post, path = "/api/v1/services", tag = "services", request_body = ServiceInput, security(("api_token" = [])),
    responses(
        (status = 201, description = "Registered", body = Service),
        (status = 400, description = "The body is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The agency already has a service with this code", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid or the agency does not exist", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_service(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(input): ApiJson<ServiceInput>,
) -> Result<Response, Problem> {
    may_design(&who, &input.agency)?;
    let service = state.store.create_service(&input, &who.actor()).await?;
    Ok(created(format!("/api/v1/services/{}", service.id), service))
}

/// Get one service.
#[utoipa::path(get, path = "/api/v1/services/{id}", tag = "services",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, description = "The service", body = Service),
        (status = 400, description = "The id is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such service", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_service(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Service>, Problem> {
    let id = numeric_id(&id)?;
    let service = state
        .store
        .get_service(id)
        .await?
        .ok_or_else(|| Problem::not_found(&format!("service {id}")))?;
    Ok(Json(service))
}

/// Replace a service's details.
#[utoipa::path(put, path = "/api/v1/services/{id}", tag = "services", request_body = ServiceInput, security(("api_token" = [])),
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, description = "Updated", body = Service),
        (status = 400, description = "The body or id is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such service", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The agency already has a service with this code", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_service(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<ServiceInput>,
) -> Result<Json<Service>, Problem> {
    let id = numeric_id(&id)?;
    may_design(&who, &input.agency)?;
    if let Some(current) = state.store.get_service(id).await? {
        may_design(&who, &current.details.agency)?;
    }
    Ok(Json(
        state.store.update_service(id, &input, &who.actor()).await?,
    ))
}

/// Operators may change any agency's services; a service designer only those
/// of the agencies they design for.
fn may_design(who: &Principal, agency: &nara_core::MemberId) -> Result<(), Problem> {
    if who.has_role(Role::Operator) || who.has_role_for(Role::ServiceDesigner, agency) {
        Ok(())
    } else {
        Err(Problem::forbidden().detail(format!("you do not design services for {agency}")))
    }
}
