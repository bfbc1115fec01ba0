//! Human oversight as officials' work: the queue of records that wait for
//! a review and of appeals that wait for a decision, for the agencies the
//! official works for; a record's page (its input, which may be personal
//! data, read only by the agency's officials and auditors, each reading a
//! security event); the review (accept, or override with a reason) and the
//! appeal (uphold, or reverse with an answer — never by the reviewer), both
//! through [`nara_core::algorithms::may_take`]; and running a model from a
//! page, which records like every other call.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::algorithms::{
    AppealState, DecisionState, ImageHold, Step, StepRefused, image_hold, may_see_image, may_take,
};
use nara_core::identity::Role;
use nara_store::algorithms::{DecisionRecord, Official};
use serde::Deserialize;

use super::{Requested, RunError, factor_text, factors_of, outcome_text, register_entries, run};
use crate::AppState;
use crate::identity::auth::Principal;
use crate::identity::request::ClientAddress;
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, render, store_failed, when};

/// A record as a page shows it.
pub struct RecordView {
    pub id: String,
    pub code: String,
    pub model_name: String,
    pub register_version: i64,
    pub model_version: String,
    pub model_sha256: String,
    pub input_sha256: String,
    pub score: String,
    pub threshold: String,
    pub outcome: &'static str,
    pub flagged: bool,
    pub factors: Vec<String>,
    pub state: &'static str,
    pub awaiting: bool,
    pub final_outcome: Option<&'static str>,
    pub reviewer: Option<String>,
    pub review_reason: Option<String>,
    pub reviewed_at: Option<String>,
    pub notified_at: Option<String>,
    pub appeal: Option<&'static str>,
    pub appeal_open: bool,
    pub appeal_reason: Option<String>,
    pub appealed_at: Option<String>,
    pub appeal_answer: Option<String>,
    pub appeal_decided_at: Option<String>,
    pub created_at: String,
    pub source: Option<String>,
    pub requested_by: String,
}

/// Model names in the reader's language, by code.
pub async fn model_names(
    state: &AppState,
    lang: nara_core::Lang,
) -> Result<Vec<(String, String)>, nara_store::StoreError> {
    Ok(register_entries(state)
        .await?
        .iter()
        .map(|r| (r.entry.code.clone(), r.entry.name.get(lang).to_owned()))
        .collect())
}

impl RecordView {
    pub fn of(r: &DecisionRecord, ctx: &PageCtx, names: &[(String, String)]) -> RecordView {
        let tr = ctx.tr();
        let state = r.state.parse::<DecisionState>().ok();
        let appeal = r
            .appeal_state
            .as_deref()
            .and_then(|a| a.parse::<AppealState>().ok());
        RecordView {
            id: r.id.clone(),
            code: r.code.clone(),
            model_name: names
                .iter()
                .find(|(c, _)| *c == r.code)
                .map_or_else(|| r.code.clone(), |(_, n)| n.clone()),
            register_version: r.register_version,
            model_version: r.model_version.clone(),
            model_sha256: r.model_sha256.clone(),
            input_sha256: r.input_sha256.clone(),
            score: format!("{:.3}", r.score),
            threshold: format!("{:.3}", r.threshold),
            outcome: outcome_text(&tr, &r.outcome),
            flagged: r.flagged != 0,
            factors: factors_of(r).iter().map(|f| factor_text(&tr, f)).collect(),
            state: tr.of("algorithms.state", &r.state),
            awaiting: state == Some(DecisionState::AwaitingReview),
            final_outcome: r.final_outcome.as_deref().map(|o| outcome_text(&tr, o)),
            reviewer: r.reviewer_name.clone(),
            review_reason: r.review_reason.clone(),
            reviewed_at: r.reviewed_at.map(when),
            notified_at: r.notified_at.map(when),
            appeal: appeal.map(|a| tr.of("algorithms.appeal_state", a.as_str())),
            appeal_open: appeal == Some(AppealState::Open),
            appeal_reason: r.appeal_reason.clone(),
            appealed_at: r.appealed_at.map(when),
            appeal_answer: r.appeal_answer.clone(),
            appeal_decided_at: r.appeal_decided_at.map(when),
            created_at: when(r.created_at),
            source: r.source.clone(),
            requested_by: r.requested_by.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "oversight.html")]
struct QueuePage {
    layout: Layout,
    reviews: Vec<RecordView>,
    appeals: Vec<RecordView>,
    /// The models this official may run from a page.
    runnable: Vec<(String, String)>,
}

fn agencies_of(who: &Principal) -> Vec<String> {
    who.agencies_for(Role::Official)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The official's queue: reviews and appeals for her agencies, oldest first.
pub async fn queue(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    let agencies = agencies_of(&who);
    let waiting = state
        .store
        .oversight_queue(&agencies)
        .await
        .map_err(store_failed(ctx.lang))?;
    let names = model_names(&state, ctx.lang)
        .await
        .map_err(store_failed(ctx.lang))?;
    let (appeals, reviews): (Vec<_>, Vec<_>) = waiting
        .iter()
        .partition(|r| r.appeal_state.as_deref() == Some(AppealState::Open.as_str()));
    let runnable = register_entries(&state)
        .await
        .map_err(store_failed(ctx.lang))?
        .iter()
        .filter(|r| agencies.contains(&r.entry.organisation))
        .filter(|r| nara_algorithms::model(&r.entry.code).is_some())
        .map(|r| (r.entry.code.clone(), r.entry.name.get(ctx.lang).to_owned()))
        .collect();
    Ok(render(&QueuePage {
        layout: ctx.layout(ctx.tr().s("oversight.title"), "oversight"),
        reviews: reviews
            .iter()
            .map(|r| RecordView::of(r, &ctx, &names))
            .collect(),
        appeals: appeals
            .iter()
            .map(|r| RecordView::of(r, &ctx, &names))
            .collect(),
        runnable,
    }))
}

#[derive(Template)]
#[template(path = "decision.html")]
struct RecordPage {
    layout: Layout,
    record: RecordView,
    /// The input as the official reads it: a transcript or a chat excerpt
    /// as text, anything
    /// else as indented JSON.
    transcript: Option<String>,
    input: String,
    /// The image the record was made from is held, and this official may
    /// see it (`nara_core::algorithms::may_see_image`).
    image: bool,
    /// Until when a settled record's image is kept, as the page says it.
    image_kept_until: Option<String>,
    /// When the image a match was made from was deleted (`image_hold`).
    image_deleted: Option<String>,
    /// `review_image_days`, as the page explains a deletion.
    keep_days: u32,
    csrf: String,
    /// What this official may do here.
    may_review: bool,
    may_decide_appeal: bool,
    /// She reviewed it; another official decides the appeal.
    own_review: bool,
    /// Outcomes an override may choose (key, text).
    outcomes: Vec<(String, &'static str)>,
    message: Option<String>,
}

/// The record, for the agency's officials (and auditors), or 404.
pub(super) async fn record_for(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<DecisionRecord, PageError> {
    let record = state
        .store
        .decision(id)
        .await
        .map_err(store_failed(ctx.lang))?
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let agency = nara_core::MemberId::parse(&record.organisation)
        .map_err(|_| PageError::not_found(ctx.lang))?;
    if who.has_role_for(Role::Official, &agency) || who.has_role(Role::Auditor) {
        Ok(record)
    } else {
        Err(PageError::not_found(ctx.lang))
    }
}

/// Whether `who` may see the image `record` was made from: an official of
/// its agency, a match (nothing else is kept) still kept, and the one rule.
pub(super) fn sees_image(record: &DecisionRecord, who: &Principal, keep_days: u32) -> bool {
    let official = nara_core::MemberId::parse(&record.organisation)
        .is_ok_and(|a| who.has_role_for(Role::Official, &a));
    let (state, appeal) = states_of(record);
    official
        && record.flagged != 0
        && image_hold_of(record, keep_days).kept_at(nara_core::Timestamp::now().0)
        && may_see_image(state, appeal, record.reviewer_id, who.account_id)
}

/// How long the image a match was made from is kept: the one rule
/// ([`image_hold`]) from the record's last step.
pub(super) fn image_hold_of(record: &DecisionRecord, keep_days: u32) -> ImageHold {
    let (state, appeal) = states_of(record);
    let settled_at = [record.reviewed_at, record.appeal_decided_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(record.created_at);
    image_hold(state, appeal, settled_at, keep_days)
}

/// A record's review and appeal states, parsed.
fn states_of(record: &DecisionRecord) -> (DecisionState, Option<AppealState>) {
    let state = record
        .state
        .parse::<DecisionState>()
        .unwrap_or(DecisionState::Automatic);
    let appeal = record
        .appeal_state
        .as_deref()
        .and_then(|a| a.parse::<AppealState>().ok());
    (state, appeal)
}

async fn record_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    record: &DecisionRecord,
    message: Option<String>,
) -> Result<Response, PageError> {
    let names = model_names(state, ctx.lang)
        .await
        .map_err(store_failed(ctx.lang))?;
    let input: serde_json::Value = serde_json::from_str(&record.input).unwrap_or_default();
    let official = nara_core::MemberId::parse(&record.organisation)
        .is_ok_and(|a| who.has_role_for(Role::Official, &a));
    let (decision_state, appeal) = states_of(record);
    let allowed = |step| {
        may_take(
            decision_state,
            appeal,
            record.reviewer_id,
            who.account_id,
            step,
            "a reason long enough",
        )
    };
    let tr = ctx.tr();
    let view = RecordView::of(record, ctx, &names);
    // Only a match's image is kept; the page says until when, or since when
    // it is gone.
    let holds_image = record.flagged != 0 && input.get("image").is_some();
    let keep_days = state.config.review_image_days;
    let (hold, now) = (
        image_hold_of(record, keep_days),
        nara_core::Timestamp::now().0,
    );
    Ok(render(&RecordPage {
        layout: ctx.layout(
            &tr.s("oversight.record_title").replace("{id}", &record.id),
            "oversight",
        ),
        transcript: input
            .get("transcript")
            .or_else(|| input.get("excerpt"))
            .and_then(|t| t.as_str())
            .map(str::to_owned),
        input: serde_json::to_string_pretty(&input).unwrap_or_default(),
        image: holds_image && sees_image(record, who, keep_days),
        image_kept_until: match hold {
            ImageHold::Until(until) if holds_image && hold.kept_at(now) => Some(when(until)),
            _ => None,
        },
        image_deleted: match hold {
            ImageHold::Until(until) if holds_image && !hold.kept_at(now) => Some(when(until)),
            _ => None,
        },
        keep_days,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        may_review: official && appeal.is_none() && allowed(Step::Confirm).is_ok(),
        may_decide_appeal: official && appeal.is_some() && allowed(Step::Confirm).is_ok(),
        own_review: official
            && appeal == Some(AppealState::Open)
            && allowed(Step::Confirm) == Err(StepRefused::SameOfficial),
        outcomes: nara_algorithms::model(&record.code)
            .map(|m| m.outcomes())
            .unwrap_or_default()
            .iter()
            .filter(|o| **o != record.final_outcome.as_deref().unwrap_or(&record.outcome))
            .map(|o| ((*o).to_owned(), outcome_text(&tr, o)))
            .collect(),
        record: view,
        message,
    }))
}

/// A record: its input, output, factors, review and appeal.
pub async fn record_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    ClientAddress(address): ClientAddress,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let record = record_for(&ctx, &state, &who, &id).await?;
    if record.subject_hash.is_some() {
        crate::secops::watch::personal_data_read(&state, &who, &address, &format!("decision {id}"))
            .await;
    }
    record_view(&ctx, &state, &who, &record, None).await
}

#[derive(Deserialize)]
pub struct StepForm {
    /// `confirm` (accept, uphold) or `change` (override, reverse).
    step: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    reason: String,
}

/// An official reviews a record or decides its appeal.
pub async fn act(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<StepForm>,
) -> Result<Response, PageError> {
    let record = record_for(&ctx, &state, &who, &id).await?;
    let agency = nara_core::MemberId::parse(&record.organisation)
        .map_err(|_| PageError::not_found(ctx.lang))?;
    if !who.has_role_for(Role::Official, &agency) {
        return Err(PageError::forbidden(ctx.lang));
    }
    let step = match form.step.as_str() {
        "confirm" => Step::Confirm,
        "change" => Step::Change,
        _ => return Err(PageError::bad_request(ctx.lang)),
    };
    let decision_state = record
        .state
        .parse::<DecisionState>()
        .map_err(|_| PageError::internal(ctx.lang))?;
    let appeal = record
        .appeal_state
        .as_deref()
        .and_then(|a| a.parse::<AppealState>().ok());
    let reason = form.reason.trim();
    if let Err(refused) = may_take(
        decision_state,
        appeal,
        record.reviewer_id,
        who.account_id,
        step,
        reason,
    ) {
        let message = ctx
            .tr()
            .of("oversight.refused", refused_key(refused))
            .to_owned();
        return record_view(&ctx, &state, &who, &record, Some(message)).await;
    }
    let current = record
        .final_outcome
        .clone()
        .unwrap_or(record.outcome.clone());
    let outcome = match step {
        Step::Confirm => current.clone(),
        Step::Change => {
            let allowed = nara_algorithms::model(&record.code)
                .is_some_and(|m| m.outcomes().contains(&form.outcome.as_str()));
            if !allowed || form.outcome == current {
                let message = ctx.tr().s("oversight.choose_outcome").to_owned();
                return record_view(&ctx, &state, &who, &record, Some(message)).await;
            }
            form.outcome.clone()
        }
    };
    let official = Official {
        account_id: who.account_id,
        name: &who.display_name,
    };
    let reason = (!reason.is_empty()).then_some(reason);
    let written = if appeal.is_some() {
        let to = match step {
            Step::Confirm => AppealState::Upheld,
            Step::Change => AppealState::Reversed,
        };
        state
            .store
            .decide_appeal(&id, &official, to.as_str(), &outcome, reason.unwrap_or(""))
            .await
    } else {
        let to = match step {
            Step::Confirm => DecisionState::Accepted,
            Step::Change => DecisionState::Overridden,
        };
        state
            .store
            .review_decision(&id, &official, to.as_str(), &outcome, reason)
            .await
    };
    match written {
        Ok(()) => {}
        Err(nara_store::StoreError::Conflict(_)) => return Err(PageError::conflict(ctx.lang)),
        Err(e) => return Err(store_failed(ctx.lang)(e)),
    }
    super::tell(&state, &id).await;
    Ok(Redirect::to(&format!("/oversight/{id}")).into_response())
}

fn refused_key(refused: StepRefused) -> &'static str {
    match refused {
        StepRefused::NotAwaiting => "not_awaiting",
        StepRefused::NoAppeal => "no_appeal",
        StepRefused::SameOfficial => "same_official",
        StepRefused::ReasonNeeded => "reason_needed",
    }
}

#[derive(Template)]
#[template(path = "algorithm_run.html")]
struct RunPage {
    layout: Layout,
    code: String,
    name: String,
    input: String,
    csrf: String,
    error: Option<String>,
    /// The model matches images: the page also takes an image to check.
    takes_image: bool,
    /// Why the image last sent was refused.
    image_error: Option<String>,
}

/// What the run page shows again after a refused input or image: 400.
pub(super) struct RunAgain<'a> {
    pub name: &'a str,
    pub code: &'a str,
    pub input: String,
    pub error: Option<String>,
    pub image_error: Option<String>,
}

impl<'a> RunAgain<'a> {
    /// The page as first shown: the model's example as the input.
    pub fn example(name: &'a str, code: &'a str) -> RunAgain<'a> {
        RunAgain {
            name,
            code,
            input: nara_algorithms::model(code)
                .map(|m| serde_json::to_string_pretty(&m.example()).unwrap_or_default())
                .unwrap_or_default(),
            error: None,
            image_error: None,
        }
    }
}

pub(super) fn run_page(ctx: &PageCtx, who: &Principal, again: RunAgain<'_>) -> Response {
    let refused = again.error.is_some() || again.image_error.is_some();
    let mut page = render(&RunPage {
        layout: ctx.layout(again.name, "oversight"),
        name: again.name.to_owned(),
        code: again.code.to_owned(),
        input: again.input,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        error: again.error,
        takes_image: again.code == nara_algorithms::images::CODE,
        image_error: again.image_error,
    });
    if refused && page.status().is_success() {
        *page.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    page
}

/// The register entry `code` if this official's agency runs it here.
pub(super) async fn runnable(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    code: &str,
) -> Result<String, PageError> {
    let entries = register_entries(state)
        .await
        .map_err(store_failed(ctx.lang))?;
    let entry = entries
        .iter()
        .find(|r| r.entry.code == code)
        .filter(|_| nara_algorithms::model(code).is_some())
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let agency = nara_core::MemberId::parse(&entry.entry.organisation)
        .map_err(|_| PageError::not_found(ctx.lang))?;
    if !who.has_role_for(Role::Official, &agency) {
        return Err(PageError::not_found(ctx.lang));
    }
    Ok(entry.entry.name.get(ctx.lang).to_owned())
}

/// The form to run a model on an input (its example filled in).
pub async fn run_form(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    let name = runnable(&ctx, &state, &who, &code).await?;
    Ok(run_page(&ctx, &who, RunAgain::example(&name, &code)))
}

#[derive(Deserialize)]
pub struct RunForm {
    #[serde(default)]
    input: String,
}

/// Runs a model from the page: recorded like any other call.
pub async fn run_submit(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(code): Path<String>,
    CsrfForm(form): CsrfForm<RunForm>,
) -> Result<Response, PageError> {
    let name = runnable(&ctx, &state, &who, &code).await?;
    let again = |error: String| {
        run_page(
            &ctx,
            &who,
            RunAgain {
                name: &name,
                code: &code,
                input: form.input.clone(),
                error: Some(error),
                image_error: None,
            },
        )
    };
    let input: serde_json::Value = match serde_json::from_str(&form.input) {
        Ok(v) => v,
        Err(e) => return Ok(again(format!("JSON: {e}"))),
    };
    // Only nara names a kept image: a picture is sent with "Check an image".
    if code == nara_algorithms::images::CODE && input.get("image").is_some() {
        return Ok(again(
            "image: send the picture itself with \"Check an image\"".into(),
        ));
    }
    let requested = Requested {
        subject_hash: None,
        source: None,
        requested_by: who.actor(),
    };
    match run(&state, &code, input, requested).await {
        Ok(record) => Ok(Redirect::to(&format!("/oversight/{}", record.id)).into_response()),
        Err(RunError::OutOfRange(e)) => Ok(again(e.to_string())),
        Err(RunError::Store(e)) => Err(store_failed(ctx.lang)(e)),
        Err(e) => Ok(again(e.to_string())),
    }
}
