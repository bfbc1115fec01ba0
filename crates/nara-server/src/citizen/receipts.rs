//! After applying: the receipt with the application's timeline, the
//! citizen's answer to a request for information, the rating, and the list
//! of her applications.

use crate::AppState;
use crate::citizen::portal::owned;
use crate::identity::auth::Principal;
use crate::web::csrf::CsrfForm;
use crate::web::when;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::service_def::Definition;
use nara_store::applications::Application;

pub struct TimelineView {
    pub when: String,
    pub state: String,
    pub by: String,
    pub reason: String,
    /// The official's note to the applicant, or her answer.
    pub note: String,
}

#[derive(Template)]
#[template(path = "application.html")]
struct ReceiptPage {
    layout: Layout,
    reference: String,
    service: String,
    code: String,
    version: i64,
    state: String,
    submitted: Option<String>,
    due: Option<String>,
    overdue: bool,
    timeline: Vec<TimelineView>,
    draft: bool,
    documents: Vec<(String, String)>,
    /// Decided and not yet rated: the rating form.
    may_rate: bool,
    rated: Option<i64>,
    /// The agency asked for more: its reason code and note, and the citizen may answer.
    asked: Option<(String, String)>,
    csrf: String,
    error: Option<String>,
}

/// `GET /applications/{ref}`: the receipt and the status timeline.
pub async fn receipt(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(reference): Path<String>,
) -> Result<Response, PageError> {
    let (app, def) = owned(&ctx, &state, &who, &reference).await?;
    receipt_view(&ctx, &state, &who, &app, &def, None).await
}

async fn receipt_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    app: &Application,
    def: &Definition,
    error: Option<String>,
) -> Result<Response, PageError> {
    let rated = state
        .store
        .rating_of(app.id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let events = state
        .store
        .application_events(app.id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let last_request = events.last().map(|e| (e.reason.clone(), e.note.clone()));
    let now = nara_core::Timestamp::now().0;
    let page = ReceiptPage {
        layout: ctx.layout(&def.title.get(ctx.lang), "my-applications"),
        reference: app.reference.clone(),
        service: def.title.get(ctx.lang),
        code: app.service_code.clone(),
        version: app.version,
        state: app.state.clone(),
        submitted: app.submitted_at.map(when),
        due: app.due_at.map(when),
        overdue: app.due_at.is_some_and(|d| d < now) && app.decided_at.is_none(),
        timeline: events
            .into_iter()
            .map(|e| TimelineView {
                when: when(e.at),
                state: e.to_state,
                by: e.actor,
                reason: e.reason,
                note: e.note,
            })
            .collect(),
        draft: app.state == "draft",
        documents: state
            .store
            .credentials_of_application(app.id)
            .await
            .map_err(store_failed(ctx.lang))?
            .into_iter()
            .map(|c| (c.id, c.credential_type))
            .collect(),
        may_rate: app.decided_at.is_some() && rated.is_none(),
        asked: citizen_step(def, app).and(last_request),
        rated,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        error: error.clone(),
    };
    Ok((crate::web::status_for(&error), render(&page)).into_response())
}

/// The step the citizen may take from the application's state (answering
/// a request for more information), if the workflow has one.
fn citizen_step<'a>(def: &'a Definition, app: &Application) -> Option<&'a str> {
    def.workflow
        .transitions
        .iter()
        .find(|t| *t.from.get_ref() == app.state && t.by.get_ref() == "citizen")
        .map(|t| t.to.get_ref().as_str())
}

#[derive(serde::Deserialize)]
pub struct Reply {
    #[serde(default)]
    note: String,
}

/// `POST /applications/{ref}/reply`: the citizen answers a request for
/// more information; the case goes back to the officials' step.
pub async fn reply(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(reference): Path<String>,
    CsrfForm(form): CsrfForm<Reply>,
) -> Result<Response, PageError> {
    let (app, def) = owned(&ctx, &state, &who, &reference).await?;
    let Some(to) = citizen_step(&def, &app) else {
        let error = Some(ctx.tr().s("reply.not_now").into());
        return receipt_view(&ctx, &state, &who, &app, &def, error).await;
    };
    let note: String = form.note.trim().chars().take(2_000).collect();
    if note.is_empty() {
        let error = Some(ctx.tr().s("reply.empty").into());
        return receipt_view(&ctx, &state, &who, &app, &def, error).await;
    }
    match state
        .store
        .act_on_application(&app, to, who.account_id, "", &note, None)
        .await
    {
        Ok(()) => Ok(Redirect::to(&format!("/applications/{reference}")).into_response()),
        Err(nara_store::StoreError::Conflict(m)) => {
            receipt_view(&ctx, &state, &who, &app, &def, Some(m)).await
        }
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

#[derive(serde::Deserialize)]
pub struct Rating {
    #[serde(default)]
    score: String,
    #[serde(default)]
    comment: String,
}

/// `POST /applications/{ref}/rate`: once decided, the applicant rates the
/// service 1–5 with an optional comment, once.
pub async fn rate(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(reference): Path<String>,
    CsrfForm(form): CsrfForm<Rating>,
) -> Result<Response, PageError> {
    let (app, def) = owned(&ctx, &state, &who, &reference).await?;
    let tr = ctx.tr();
    let Some(score) = form
        .score
        .parse::<i64>()
        .ok()
        .filter(|s| (1..=5).contains(s))
    else {
        let error = Some(tr.s("rating.choose").into());
        return receipt_view(&ctx, &state, &who, &app, &def, error).await;
    };
    let comment: String = form.comment.trim().chars().take(1_000).collect();
    match state
        .store
        .rate_application(&app, score, &comment, &who.actor())
        .await
    {
        Ok(()) => {
            state.figures.changed();
            Ok(Redirect::to(&format!("/applications/{reference}")).into_response())
        }
        Err(nara_store::StoreError::Conflict(_)) => {
            let error = Some(tr.s("rating.not_now").into());
            receipt_view(&ctx, &state, &who, &app, &def, error).await
        }
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

pub struct ApplicationRow {
    pub reference: String,
    pub service: String,
    pub state: String,
    pub updated: String,
    pub draft: bool,
}

#[derive(Template)]
#[template(path = "my_applications.html")]
struct MyApplications {
    layout: Layout,
    rows: Vec<ApplicationRow>,
}

/// `GET /my/applications`.
pub async fn mine(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    let apps = state
        .store
        .applications_of(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let defs = state
        .store
        .latest_definitions()
        .await
        .map_err(store_failed(ctx.lang))?;
    let rows = apps
        .into_iter()
        .map(|a| ApplicationRow {
            service: state.definitions.title(&defs, &a.service_code, ctx.lang),
            draft: a.state == "draft",
            updated: when(a.updated_at),
            state: a.state,
            reference: a.reference,
        })
        .collect();
    Ok(render(&MyApplications {
        layout: ctx.layout(ctx.tr().s("application.mine_title"), "my-applications"),
        rows,
    }))
}
