//! The applications API for agencies' own front ends, shaped after GovStack's
//! Registration building block where it fits: a service's applications are
//! created (and submitted) with the whole form's data in one request, and
//! each application is a "file" with an id, its service, status and history.
//! The citizen's session authorises it (with `X-CSRF-Token` for writes), the
//! same checks run as in the portal (`portal::decide`), and another
//! person's application is 404.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nara_core::identity::Role;
use nara_core::service_def;
use nara_store::applications::{Application, NewSubmission};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::AppState;
use crate::citizen::applying::Refusal;
use crate::extract::ApiPath;
use crate::identity::auth::Principal;
use crate::problem::Problem;

/// API submissions, group-committed: up to 256 a transaction.
pub type Submissions = crate::group_commit::GroupCommit<NewSubmission, Application>;

pub fn submissions() -> Submissions {
    crate::group_commit::GroupCommit::new(256, |store, batch| {
        Box::pin(async move { store.insert_submitted(&batch).await })
    })
}

/// `POST /api/v1/services/{code}/applications`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApplication {
    /// The form's answers: field id → value (groups: a list of objects).
    #[serde(default)]
    pub data: Map<String, Value>,
    /// The evidence ids (consent-based items of the service) consented to.
    #[serde(default)]
    pub consents: Vec<String>,
    /// `false` keeps it as a draft, to be finished in the portal.
    #[serde(default = "yes")]
    pub submit: bool,
}

fn yes() -> bool {
    true
}

/// One step of an application's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct Step {
    pub at: String,
    pub status: String,
    pub reason: String,
}

/// An application as the API shows it to its applicant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationFile {
    /// The reference number.
    pub file_id: String,
    pub service_id: String,
    pub service_version: i64,
    pub agency: String,
    /// `draft`, then the workflow's states.
    pub status: String,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Step>,
    /// Issued documents: `/documents/{id}` for the holder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<String>,
}

fn iso(ms: i64) -> String {
    nara_core::Timestamp(ms).rfc3339()
}

fn file_of(app: &Application) -> ApplicationFile {
    ApplicationFile {
        file_id: app.reference.clone(),
        service_id: app.service_code.clone(),
        service_version: app.version,
        agency: app.agency_id.clone(),
        status: app.state.clone(),
        created: iso(app.created_at),
        submitted: app.submitted_at.map(iso),
        due: app.due_at.map(iso),
        decided: app.decided_at.map(iso),
        history: Vec::new(),
        documents: Vec::new(),
    }
}

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::Store(e) => Problem::from(e).into_response(),
        Refusal::EvidenceFailed(_) => Problem::new(
            StatusCode::BAD_GATEWAY,
            "evidence-unavailable",
            "The evidence could not be fetched",
        )
        .detail(r.message(nara_core::Lang::En))
        .into_response(),
        Refusal::Answer(field, detail) => Problem::invalid(nara_core::Invalid {
            errors: vec![nara_core::FieldError { field, detail }],
        })
        .into_response(),
        other => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not-submitted",
            "The application cannot be submitted",
        )
        .detail(other.message(nara_core::Lang::En))
        .into_response(),
    }
}

/// `POST /api/v1/services/{code}/applications`: creates an application
/// under the service's latest version with all its data, and submits it
/// (evidence fetched, eligibility decided) unless `submit` is false.
#[utoipa::path(post, path = "/api/v1/services/{code}/applications", tag = "services",
    params(("code" = String, Path, description = "The service's code"),
           ("X-CSRF-Token" = String, Header, description = "The session's anti-forgery token")),
    request_body = NewApplication,
    responses((status = 201, description = "Created (and submitted)", body = ApplicationFile),
              (status = 422, description = "An answer is wrong, a consent is missing, or not eligible; nothing submitted", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such service", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(code): ApiPath<String>,
    _csrf: crate::web::csrf::CsrfHeader,
    crate::extract::ApiJson(input): crate::extract::ApiJson<NewApplication>,
) -> Response {
    if !who.has_role(Role::Citizen) {
        return Problem::forbidden()
            .detail("a citizen's session is required")
            .into_response();
    }
    let latest = match state.store.definition_versions(&code).await {
        Ok(v) => v.into_iter().next(),
        Err(e) => return Problem::from(e).into_response(),
    };
    let Some((published, def)) = latest.and_then(|p| state.definitions.of(&p).map(|d| (p, d)))
    else {
        return Problem::not_found("no such service").into_response();
    };
    // Everything that can be checked before anything is written.
    let problems = service_def::check_answers(&def, None, &input.data, &Map::new());
    if !problems.is_empty() {
        return Problem::invalid(nara_core::Invalid {
            errors: problems
                .into_iter()
                .map(|p| nara_core::FieldError {
                    field: p.field,
                    detail: p.message,
                })
                .collect(),
        })
        .into_response();
    }
    if input.submit
        && let Some(e) = def
            .evidence
            .iter()
            .find(|e| e.legal_basis.is_none() && !input.consents.contains(e.id.get_ref()))
    {
        return refused(Refusal::ConsentNeeded(e.id.get_ref().clone()));
    }
    let reference = crate::citizen::applying::new_reference(&published.agency_id);
    if !input.submit {
        let draft = match state
            .store
            .create_draft(
                &reference,
                who.account_id,
                &code,
                published.version,
                &published.agency_id,
            )
            .await
        {
            Ok(d) => d,
            Err(e) => return Problem::from(e).into_response(),
        };
        let answers = Value::Object(input.data).to_string();
        return match state
            .store
            .save_answers(draft.id, who.account_id, &answers)
            .await
        {
            Ok(_) => (StatusCode::CREATED, Json(file_of(&draft))).into_response(),
            Err(e) => Problem::from(e).into_response(),
        };
    }
    let consents = input.consents;
    let consented = |id: &str| consents.iter().any(|c| c == id);
    let decision = match crate::citizen::applying::decide(
        &state,
        &who,
        &reference,
        &input.data,
        &def,
        &consented,
    )
    .await
    {
        Ok(d) => d,
        Err(r) => return refused(r),
    };
    // One transaction (shared with whatever else is waiting): the
    // application, its events, its notification, its ledger entries.
    let now = nara_core::Timestamp::now().0;
    let last = decision.states.last().map_or("submitted", |s| s.0);
    let whole = Application {
        id: 0,
        reference,
        service_code: code,
        version: published.version,
        agency_id: published.agency_id.clone(),
        account_id: who.account_id,
        state: last.to_owned(),
        answers: Value::Object(input.data).to_string(),
        evidence: decision.evidence,
        created_at: now,
        updated_at: now,
        submitted_at: Some(now),
        due_at: decision.due,
        decided_at: service_def::END_STATES.contains(&last).then_some(now),
        assigned_to: None,
    };
    // An automatic service's document is stored in the submission's transaction.
    let credential = if def.automatic {
        match crate::citizen::credentials::prepare(&state, &whole, &def).await {
            Ok(c) => c,
            Err(e) => return Problem::from(e).into_response(),
        }
    } else {
        None
    };
    let mut submission = NewSubmission {
        app: whole,
        states: decision.states,
        actor: who.actor(),
        credential,
    };
    let mut attempts = 0;
    let app = loop {
        match state
            .submissions
            .write(&state.store, submission.clone())
            .await
        {
            Ok(a) => break a,
            // A reference drawn twice: draw another (its ledger entries name it).
            // A reference (or a document's status position) drawn twice: draw again.
            Err(crate::group_commit::WriteError::Conflict(_)) if attempts < 3 => {
                attempts += 1;
                submission.app.reference =
                    crate::citizen::applying::new_reference(&published.agency_id);
                if submission.credential.is_some() {
                    submission.credential =
                        match crate::citizen::credentials::prepare(&state, &submission.app, &def)
                            .await
                        {
                            Ok(c) => c,
                            Err(e) => return Problem::from(e).into_response(),
                        };
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "an API submission could not be stored");
                return Problem::internal().into_response();
            }
        }
    };
    (StatusCode::CREATED, Json(file_of(&app))).into_response()
}

/// `GET /api/v1/me/applications`: the citizen's applications, newest first.
#[utoipa::path(get, path = "/api/v1/me/applications", tag = "services",
    responses((status = 200, description = "{applications: [ApplicationFile]}")))]
pub async fn mine(State(state): State<AppState>, who: Principal) -> Response {
    match state.store.applications_of(who.account_id).await {
        Ok(apps) => Json(serde_json::json!({
            "applications": apps.iter().map(file_of).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => Problem::from(e).into_response(),
    }
}

/// `GET /api/v1/applications/{reference}`: one of the citizen's
/// applications with its history and documents; anyone else's is 404.
#[utoipa::path(get, path = "/api/v1/applications/{reference}", tag = "services",
    params(("reference" = String, Path, description = "The application's reference (fileId)")),
    responses((status = 200, description = "The application", body = ApplicationFile),
              (status = 404, description = "Not one of yours", body = Problem, content_type = "application/problem+json")))]
pub async fn one(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(reference): ApiPath<String>,
) -> Response {
    let app = match state.store.application(&reference).await {
        Ok(Some(a)) if a.account_id == who.account_id => a,
        Ok(_) => return Problem::not_found("no such application").into_response(),
        Err(e) => return Problem::from(e).into_response(),
    };
    let mut file = file_of(&app);
    match state.store.application_events(app.id).await {
        Ok(events) => {
            file.history = events
                .into_iter()
                .map(|e| Step {
                    at: iso(e.at),
                    status: e.to_state,
                    reason: e.reason,
                })
                .collect();
        }
        Err(e) => return Problem::from(e).into_response(),
    }
    match state.store.credentials_of_application(app.id).await {
        Ok(docs) => file.documents = docs.into_iter().map(|c| c.id).collect(),
        Err(e) => return Problem::from(e).into_response(),
    }
    Json(file).into_response()
}
