//! Decisions as their callers and the people they are about see them:
//! agency systems ask a registered model through a signed request and get
//! the record back (and read it again later, to learn the official's
//! review — nothing may act on a record still awaiting one); a citizen
//! reads the decisions about her, with the main factors in her language,
//! and appeals one, once.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::algorithms::{AppealState, DecisionState, Factor, may_appeal};
use nara_store::algorithms::DecisionRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::oversight::{RecordView, model_names};
use super::{Requested, RunError, factor_text, factors_of, register_entries, run_claiming};
use crate::AppState;
use crate::extract::{ApiPath, parse_json};
use crate::identity::auth::{Caller, Principal};
use crate::problem::Problem;
use crate::web::csrf::CsrfForm;
use crate::web::i18n::Tr;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

/// What an agency system asks a model.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The model's input (see the register entry and the model's example;
    /// the image model takes `image`, a PNG or JPEG in base64, or the PDQ
    /// hash and quality a system computed itself).
    pub input: serde_json::Value,
    /// The affected person's resident registration number, when a person is
    /// affected: she then sees the decision on her account and may appeal.
    pub subject: Option<String>,
    /// The system's own reference: a model decides a reference once.
    pub reference: Option<String>,
}

/// A factor as the API gives it: the key, its arguments and its English text.
#[derive(Debug, Serialize, ToSchema)]
pub struct FactorDocument {
    pub key: String,
    pub args: Vec<String>,
    pub weight: f64,
    pub text: String,
}

/// A decision record as the API gives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionDocument {
    pub id: String,
    pub algorithm: String,
    pub register_version: i64,
    pub model_version: String,
    pub model_sha256: String,
    /// SHA-256 of the input as recorded (the ledger holds this, never the input).
    pub input_sha256: String,
    pub score: f64,
    pub threshold: f64,
    pub outcome: String,
    pub flagged: bool,
    pub factors: Vec<FactorDocument>,
    /// `awaiting_review`, `accepted`, `overridden` or `automatic`.
    pub state: String,
    /// Whether anything may act on it yet (false while awaiting review).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The outcome that stands, once final.
    pub final_outcome: Option<String>,
    pub review_reason: Option<String>,
    pub reviewed_at: Option<String>,
    /// When the person affected was told (her account shows it).
    pub notified_at: Option<String>,
    /// `open`, `upheld` or `reversed`.
    pub appeal: Option<String>,
    pub created_at: String,
}

fn moment(ms: Option<i64>) -> Option<String> {
    ms.map(|m| nara_core::Timestamp(m).rfc3339())
}

impl DecisionDocument {
    pub fn of(r: &DecisionRecord) -> DecisionDocument {
        let tr = Tr(nara_core::Lang::En);
        DecisionDocument {
            id: r.id.clone(),
            algorithm: r.code.clone(),
            register_version: r.register_version,
            model_version: r.model_version.clone(),
            model_sha256: r.model_sha256.clone(),
            input_sha256: r.input_sha256.clone(),
            score: r.score,
            threshold: r.threshold,
            outcome: r.outcome.clone(),
            flagged: r.flagged != 0,
            factors: factors_of(r)
                .into_iter()
                .map(|f: Factor| FactorDocument {
                    text: factor_text(&tr, &f),
                    key: f.key,
                    args: f.args,
                    weight: f.weight,
                })
                .collect(),
            is_final: r.state != DecisionState::AwaitingReview.as_str(),
            state: r.state.clone(),
            final_outcome: r.final_outcome.clone(),
            review_reason: r.review_reason.clone(),
            reviewed_at: moment(r.reviewed_at),
            notified_at: moment(r.notified_at),
            appeal: r.appeal_state.clone(),
            created_at: nara_core::Timestamp(r.created_at).rfc3339(),
        }
    }
}

/// The calling system's agency, and that it may use `code` (its agency's
/// own registered models only; another agency's is "not found").
async fn caller_for(
    state: &AppState,
    parts: &axum::http::request::Parts,
    code: &str,
) -> Result<String, Problem> {
    let Some(Caller::Machine(m)) = parts.extensions.get::<Caller>() else {
        return Err(Problem::unauthorized());
    };
    let owned = register_entries(state)
        .await?
        .iter()
        .any(|r| r.entry.code == code && r.entry.organisation == m.agency);
    if !owned || nara_algorithms::model(code).is_none() {
        return Err(Problem::not_found(&format!("algorithm {code}")));
    }
    Ok(format!("subsystem:{}", m.client_id()))
}

/// Asks a registered model for a decision: the record (and its ledger
/// entry) is written before the answer. A record the register marks for
/// review comes back `final: false`; read it again for the official's review.
#[utoipa::path(post, path = "/api/v1/algorithms/{code}/decisions", tag = "algorithms",
    params(("code" = String, Path, description = "The register entry's code")),
    request_body = DecisionRequest,
    responses((status = 201, description = "Decided and recorded", body = DecisionDocument),
              (status = 400, description = "Input out of the model's documented range (named), or malformed", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such model for the calling agency", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "This reference was decided already", body = Problem, content_type = "application/problem+json")))]
pub async fn decide_api(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let actor = match caller_for(&state, &parts, &code).await {
        Ok(a) => a,
        Err(p) => return p.into_response(),
    };
    let Ok(body) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
        return Problem::bad_request("body", "too large").into_response();
    };
    let asked: DecisionRequest = match parse_json(&body) {
        Ok(a) => a,
        Err(p) => return p.into_response(),
    };
    let subject_hash = match asked.subject.as_deref() {
        None => None,
        Some(raw) => match nara_core::identity::normalize_national_id(raw) {
            Ok(digits) => Some(state.identity.national_id_hash(&digits)),
            Err(_) => {
                return Problem::bad_request("subject", "not a valid resident registration number")
                    .into_response();
            }
        },
    };
    if let Some(r) = &asked.reference
        && (r.is_empty() || r.len() > 100 || r.chars().any(char::is_control))
    {
        return Problem::bad_request("reference", "must be 1 to 100 printable characters")
            .into_response();
    }
    let requested = Requested {
        subject_hash,
        source: asked.reference.map(|r| format!("{actor}:{r}")),
        requested_by: actor,
    };
    let unclaimed = parts
        .extensions
        .get::<crate::identity::machine::UnclaimedSignature>();
    let (input, image) = match super::review_images::api_input(&code, asked.input).await {
        Ok(prepared) => prepared,
        Err(detail) => return Problem::bad_request("input.image", &detail).into_response(),
    };
    match run_claiming(&state, &code, input, requested, unclaimed).await {
        Ok(record) => {
            if let Some(bytes) = image {
                super::review_images::keep_if_matched(&state, &record, &bytes).await;
            }
            (StatusCode::CREATED, Json(DecisionDocument::of(&record))).into_response()
        }
        Err(RunError::OutOfRange(e)) => {
            Problem::bad_request(&format!("input.{}", e.field), e.detail).into_response()
        }
        Err(RunError::Store(e)) => Problem::from(e).into_response(),
        Err(RunError::Replayed) => Problem::replayed().into_response(),
        Err(e @ (RunError::NotInUse(_) | RunError::NotAsRegistered { .. })) => Problem::new(
            StatusCode::CONFLICT,
            "not-as-registered",
            "Not as registered",
        )
        .detail(e.to_string())
        .into_response(),
        Err(RunError::NotRegistered(c)) => {
            Problem::not_found(&format!("algorithm {c}")).into_response()
        }
    }
}

/// A decision record, for the systems of the agency whose model made it.
#[utoipa::path(get, path = "/api/v1/algorithms/{code}/decisions/{id}", tag = "algorithms",
    params(("code" = String, Path, description = "The register entry's code"),
           ("id" = String, Path, description = "The record")),
    responses((status = 200, body = DecisionDocument),
              (status = 404, description = "No such record for the calling agency", body = Problem, content_type = "application/problem+json")))]
pub async fn decision_api(
    State(state): State<AppState>,
    ApiPath((code, id)): ApiPath<(String, String)>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    if let Err(p) = caller_for(&state, &parts, &code).await {
        return p.into_response();
    }
    match state.store.decision(&id).await {
        Ok(Some(r)) if r.code == code => Json(DecisionDocument::of(&r)).into_response(),
        Ok(_) => Problem::not_found(&format!("decision {id}")).into_response(),
        Err(e) => Problem::from(e).into_response(),
    }
}

/// A decision as its person sees it.
pub struct MyDecision {
    pub record: RecordView,
    pub may_appeal: bool,
}

#[derive(Template)]
#[template(path = "my_decisions.html")]
struct MyDecisionsPage {
    layout: Layout,
    decisions: Vec<MyDecision>,
    /// The account has no national identifier: nothing can be about her.
    unidentified: bool,
    csrf: String,
    error: Option<(String, String)>,
}

async fn my_page(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    error: Option<(String, String)>,
) -> Result<Response, PageError> {
    let hash = crate::exchange::subject_of(state, who)
        .await
        .map_err(store_failed(ctx.lang))?;
    let records = match &hash {
        Some(h) => state
            .store
            .decisions_about(h)
            .await
            .map_err(store_failed(ctx.lang))?,
        None => Vec::new(),
    };
    let names = model_names(state, ctx.lang)
        .await
        .map_err(store_failed(ctx.lang))?;
    let decisions = records
        .iter()
        .map(|r| MyDecision {
            may_appeal: may_appeal(
                r.state.parse().unwrap_or(DecisionState::AwaitingReview),
                r.appeal_state
                    .as_deref()
                    .and_then(|a| a.parse::<AppealState>().ok()),
            ),
            record: RecordView::of(r, ctx, &names),
        })
        .collect();
    let mut response = render(&MyDecisionsPage {
        layout: ctx.layout(ctx.tr().s("my_decisions.title"), "my-decisions"),
        decisions,
        unidentified: hash.is_none(),
        csrf: who.csrf().unwrap_or_default().to_owned(),
        error: error.clone(),
    });
    if error.is_some() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

/// The decisions registered models made about the signed-in citizen.
pub async fn my_decisions(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    my_page(&ctx, &state, &who, None).await
}

#[derive(Deserialize)]
pub struct AppealForm {
    #[serde(default)]
    reason: String,
}

/// The citizen appeals a decision about her: once, after it is final, with
/// her reason; an official other than the reviewer decides it.
pub async fn appeal(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<AppealForm>,
) -> Result<Response, PageError> {
    let reason = form.reason.trim();
    if !(10..=1000).contains(&reason.chars().count()) {
        let message = ctx.tr().s("my_decisions.reason_needed").to_owned();
        return my_page(&ctx, &state, &who, Some((id, message))).await;
    }
    let Some(hash) = crate::exchange::subject_of(&state, &who)
        .await
        .map_err(store_failed(ctx.lang))?
    else {
        return Err(PageError::not_found(ctx.lang));
    };
    let appealed = state
        .store
        .appeal_decision(&id, who.account_id, &hash, reason)
        .await
        .map_err(store_failed(ctx.lang))?;
    if !appealed {
        // Not hers (404), or not open to appeal now.
        let hers = state
            .store
            .decision(&id)
            .await
            .map_err(store_failed(ctx.lang))?
            .is_some_and(|r| r.subject_hash.as_deref() == Some(hash.as_str()));
        return Err(if hers {
            PageError::conflict(ctx.lang)
        } else {
            PageError::not_found(ctx.lang)
        });
    }
    Ok(Redirect::to(&format!("/my/decisions#{id}")).into_response())
}
