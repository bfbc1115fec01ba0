//! Officials' case work: the agency's queue with SLA countdown and breaches
//! highlighted, a case view limited to the fields the next steps need, and
//! decisions with reason codes — each a ledger entry; a second review step
//! must be taken by another official (four eyes).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::identity::Role;
use nara_core::service_def::{self, Definition};
use nara_store::applications::Application;
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::identity::auth::Principal;
use crate::officials::deciding::{self, officials_step};
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};
use crate::web::{query_value, when};

async fn definition(state: &AppState, app: &Application) -> Option<std::sync::Arc<Definition>> {
    state
        .store
        .definition_versions(&app.service_code)
        .await
        .ok()?
        .into_iter()
        .find(|p| p.version == app.version)
        .and_then(|p| state.definitions.of(&p))
}

pub struct QueueRow {
    pub reference: String,
    pub service: String,
    pub state: String,
    pub submitted: String,
    pub due: String,
    /// Working days left (negative: overdue).
    pub days_left: i64,
    pub breached: bool,
    /// Who holds the case ("—" when no one has claimed it).
    pub assignee: String,
}

#[derive(Template)]
#[template(path = "cases.html")]
struct QueuePage {
    layout: Layout,
    agency: String,
    rows: Vec<QueueRow>,
    services: Vec<(String, String, bool)>,
    breached: usize,
    mine: bool,
}

fn agency_of(ctx: &PageCtx, who: &Principal) -> Result<nara_core::MemberId, PageError> {
    who.agencies_for(Role::Official)
        .into_iter()
        .next()
        .ok_or_else(|| PageError::not_found(ctx.lang))
}

/// `GET /cases[?service=CODE]`: the agency's open applications, most urgent first.
pub async fn queue(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    let agency = agency_of(&ctx, &who)?;
    let service = query_value(&ctx, "service").filter(|s| s.len() <= 64);
    let mine = query_value(&ctx, "mine").is_some_and(|v| v == "1");
    let apps: Vec<Application> = state
        .store
        .queue(agency.as_str(), service.as_deref())
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .filter(|a| !mine || a.assigned_to == Some(who.account_id))
        .collect();
    let officials = agency_officials(&state, &agency)
        .await
        .map_err(store_failed(ctx.lang))?;
    let name_of = |id: Option<i64>| {
        id.and_then(|id| officials.iter().find(|(i, _)| *i == id))
            .map_or("—".to_owned(), |(_, n)| n.clone())
    };
    let defs = state
        .store
        .latest_definitions()
        .await
        .map_err(store_failed(ctx.lang))?;
    let title = |code: &str| state.definitions.title(&defs, code, ctx.lang);
    let now = nara_core::Timestamp::now().0;
    let rows: Vec<QueueRow> = apps
        .iter()
        .map(|a| {
            let due = a.due_at.unwrap_or(now);
            let days_left = working_days_between(now, due);
            QueueRow {
                reference: a.reference.clone(),
                service: title(&a.service_code),
                state: a.state.clone(),
                submitted: a.submitted_at.map(when).unwrap_or_default(),
                due: a.due_at.map(when).unwrap_or_default(),
                days_left,
                breached: a.due_at.is_some_and(|d| d < now),
                assignee: name_of(a.assigned_to),
            }
        })
        .collect();
    let page = QueuePage {
        layout: ctx.layout(ctx.tr().s("cases.title"), "cases"),
        agency: agency.to_string(),
        breached: rows.iter().filter(|r| r.breached).count(),
        mine,
        rows,
        services: defs
            .iter()
            .filter(|d| d.agency_id == agency.as_str())
            .map(|d| {
                (
                    d.code.clone(),
                    title(&d.code),
                    service.as_deref() == Some(d.code.as_str()),
                )
            })
            .collect(),
    };
    Ok(render(&page))
}

/// The agency's officials: (account id, display name).
async fn agency_officials(
    state: &AppState,
    agency: &nara_core::MemberId,
) -> nara_store::Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    for a in state.store.accounts_of_agency(agency).await? {
        let grants = state.store.grants(a.id).await?;
        if grants
            .iter()
            .any(|g| g.role == Role::Official && g.agency.as_ref() == Some(agency))
        {
            out.push((a.id, a.display_name));
        }
    }
    Ok(out)
}

pub use nara_core::calendar::working_days_between;

pub struct DocumentRow {
    pub id: String,
    pub credential_type: String,
    pub issued: String,
    pub revoked: Option<String>,
}

/// Why an issuer revokes a document (recorded in the ledger entry).
pub const REVOKE_REASONS: [&str; 3] = ["issued_in_error", "facts_changed", "fraud"];

pub struct ActionView {
    pub to: String,
    pub reasons: Vec<String>,
    pub second_review: bool,
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    layout: Layout,
    reference: String,
    service: String,
    state: String,
    due: String,
    breached: bool,
    /// (label, value, link to the file for file fields)
    shown: Vec<(String, String, Option<String>)>,
    actions: Vec<ActionView>,
    timeline: Vec<(String, String, String, String)>,
    documents: Vec<DocumentRow>,
    revoke_reasons: &'static [&'static str],
    /// Who holds the case, whether it is this official, and whom it can go to.
    assignee: String,
    mine: bool,
    officials: Vec<(i64, String)>,
    csrf: String,
    error: Option<String>,
}

/// The application, if it is this official's agency's (else 404).
async fn case_of(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    reference: &str,
) -> Result<(Application, std::sync::Arc<Definition>), PageError> {
    let agency = agency_of(ctx, who)?;
    let app = state
        .store
        .application(reference)
        .await
        .map_err(store_failed(ctx.lang))?
        .filter(|a| a.agency_id == agency.as_str() && a.state != "draft")
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let def = definition(state, &app)
        .await
        .ok_or_else(|| PageError::internal(ctx.lang))?;
    Ok((app, def))
}

/// The case (this official's agency's) and the fields its next steps show:
/// what an official may see of it now.
pub(crate) async fn shown_fields(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    reference: &str,
) -> Result<(Application, Vec<String>), PageError> {
    let (app, def) = case_of(ctx, state, who, reference).await?;
    let shown = shown_names(&def, &app);
    Ok((app, shown))
}

/// The fields the officials' next steps from the case's state show.
fn shown_names(def: &Definition, app: &Application) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for t in def
        .workflow
        .transitions
        .iter()
        .filter(|t| *t.from.get_ref() == app.state && officials_step(t.by.get_ref()))
    {
        for s in &t.shows {
            if !names.contains(s.get_ref()) {
                names.push(s.get_ref().clone());
            }
        }
    }
    names
}

async fn case_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    app: &Application,
    def: &Definition,
    error: Option<String>,
) -> Result<Response, PageError> {
    let answers: serde_json::Map<String, Value> =
        serde_json::from_str(&app.answers).unwrap_or_default();
    let evidence: serde_json::Map<String, Value> =
        serde_json::from_str(&app.evidence).unwrap_or_default();
    let steps: Vec<&service_def::Transition> = def
        .workflow
        .transitions
        .iter()
        .filter(|t| *t.from.get_ref() == app.state && officials_step(t.by.get_ref()))
        .collect();
    // Data minimisation: only what the next steps show.
    let names = shown_names(def, app);
    let is_file = |name: &str| {
        def.pages
            .iter()
            .flat_map(|p| p.fields.iter())
            .any(|f| f.id.get_ref() == name && f.kind.get_ref() == "file")
    };
    let field = |name: &str| {
        def.pages
            .iter()
            .flat_map(|p| p.fields.iter())
            .find(|f| f.id.get_ref() == name)
    };
    let shown = names
        .iter()
        .map(|name| {
            let value = service_def::value_of(name, &answers, &evidence);
            let link = (is_file(name) && value.is_some())
                .then(|| format!("/cases/{}/files/{name}", app.reference));
            let text = match (value, field(name)) {
                (Some(v), Some(f)) => f.answer_text(&v, ctx.lang),
                (Some(Value::String(s)), None) => s,
                (Some(other), None) => other.to_string(),
                (None, _) => "—".into(),
            };
            let label = field(name).map_or_else(|| name.to_owned(), |f| f.label.get(ctx.lang));
            (label, text, link)
        })
        .collect();
    let events = state
        .store
        .application_events(app.id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let documents = state
        .store
        .credentials_of_application(app.id)
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .map(|c| DocumentRow {
            id: c.id,
            credential_type: c.credential_type,
            issued: when(c.issued_at),
            revoked: c.revoked_at.map(when),
        })
        .collect();
    let now = nara_core::Timestamp::now().0;
    let agency: nara_core::MemberId = app
        .agency_id
        .parse()
        .map_err(|_| PageError::internal(ctx.lang))?;
    let officials = agency_officials(state, &agency)
        .await
        .map_err(store_failed(ctx.lang))?;
    let page = CasePage {
        assignee: app
            .assigned_to
            .and_then(|id| officials.iter().find(|(i, _)| *i == id))
            .map_or("—".to_owned(), |(_, n)| n.clone()),
        mine: app.assigned_to == Some(who.account_id),
        officials,
        documents,
        revoke_reasons: &REVOKE_REASONS,
        layout: ctx.layout(ctx.tr().s("cases.case"), "cases"),
        reference: app.reference.clone(),
        service: def.title.get(ctx.lang),
        state: app.state.clone(),
        due: app.due_at.map(when).unwrap_or_default(),
        breached: app.due_at.is_some_and(|d| d < now),
        shown,
        actions: steps
            .iter()
            .map(|t| ActionView {
                to: t.to.get_ref().clone(),
                reasons: t.reasons.iter().map(|r| r.get_ref().clone()).collect(),
                second_review: t.by.get_ref() != "official",
            })
            .collect(),
        timeline: events
            .into_iter()
            .map(|e| (when(e.at), e.to_state, e.reason, e.note))
            .collect(),
        csrf: who.csrf().unwrap_or_default().to_owned(),
        error: error.clone(),
    };
    Ok((crate::web::status_for(&error), render(&page)).into_response())
}

/// `GET /cases/{reference}`.
pub async fn case(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    crate::identity::request::ClientAddress(address): crate::identity::request::ClientAddress,
    Path(reference): Path<String>,
) -> Result<Response, PageError> {
    let (app, def) = case_of(&ctx, &state, &who, &reference).await?;
    crate::secops::watch::personal_data_read(&state, &who, &address, &format!("case {reference}"))
        .await;
    case_view(&ctx, &state, &who, &app, &def, None).await
}

#[derive(Deserialize)]
pub struct Act {
    #[serde(default)]
    to: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    note: String,
}

/// `POST /cases/{reference}/act`: moves the case along one of the
/// workflow's officials' transitions from its current state.
pub async fn act(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(reference): Path<String>,
    CsrfForm(form): CsrfForm<Act>,
) -> Result<Response, PageError> {
    let (app, def) = case_of(&ctx, &state, &who, &reference).await?;
    let acted = deciding::act(&state, &who, &app, &def, &form.to, &form.reason, &form.note).await;
    match acted {
        Err(deciding::ActError::NotPermitted(why)) => {
            let message = Some(ctx.tr().s(why.message_key()).into());
            case_view(&ctx, &state, &who, &app, &def, message).await
        }
        Err(deciding::ActError::Store(e)) => {
            after_action(&ctx, &state, &who, &app, &def, Err(e)).await
        }
        Ok(()) => after_action(&ctx, &state, &who, &app, &def, Ok(())).await,
    }
}

/// Where an official's action on a case leads: back to the case, or, when
/// someone else changed it first (a conflict), the case again with why.
async fn after_action(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    app: &Application,
    def: &Definition,
    done: Result<(), nara_store::StoreError>,
) -> Result<Response, PageError> {
    match done {
        Ok(()) => Ok(Redirect::to(&format!("/cases/{}", app.reference)).into_response()),
        Err(nara_store::StoreError::Conflict(m)) => {
            case_view(ctx, state, who, app, def, Some(m)).await
        }
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

#[derive(Deserialize)]
pub struct Revoke {
    #[serde(default)]
    credential: String,
    #[serde(default)]
    reason: String,
}

/// `POST /cases/{reference}/revoke`: the issuing agency revokes a document
/// of the case; its bit in the agency's status list turns on at once.
pub async fn revoke(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(reference): Path<String>,
    CsrfForm(form): CsrfForm<Revoke>,
) -> Result<Response, PageError> {
    let (app, def) = case_of(&ctx, &state, &who, &reference).await?;
    let belongs = state
        .store
        .credentials_of_application(app.id)
        .await
        .map_err(store_failed(ctx.lang))?
        .iter()
        .any(|c| c.id == form.credential);
    if !belongs {
        return Err(PageError::not_found(ctx.lang));
    }
    if !REVOKE_REASONS.contains(&form.reason.as_str()) {
        let error = Some(ctx.tr().s("cases.reason_needed").into());
        return case_view(&ctx, &state, &who, &app, &def, error).await;
    }
    let revoked = state
        .store
        .revoke_credential(&form.credential, &app.agency_id, &who.actor(), &form.reason)
        .await;
    after_action(&ctx, &state, &who, &app, &def, revoked).await
}

#[derive(Deserialize)]
pub struct Assign {
    /// An official's account id, `me`, or empty to release the case.
    #[serde(default)]
    to: String,
}

/// `POST /cases/{reference}/assign`: claim a case (`to=me`), give it to
/// another official of the agency, or release it (`to=`).
pub async fn assign(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(reference): Path<String>,
    CsrfForm(form): CsrfForm<Assign>,
) -> Result<Response, PageError> {
    let (app, def) = case_of(&ctx, &state, &who, &reference).await?;
    let agency: nara_core::MemberId = app
        .agency_id
        .parse()
        .map_err(|_| PageError::internal(ctx.lang))?;
    let assignee = match form.to.as_str() {
        "" => None,
        "me" => Some(who.account_id),
        id => {
            let officials = agency_officials(&state, &agency)
                .await
                .map_err(store_failed(ctx.lang))?;
            match id
                .parse::<i64>()
                .ok()
                .filter(|i| officials.iter().any(|(o, _)| o == i))
            {
                Some(i) => Some(i),
                None => {
                    let error = Some(ctx.tr().s("cases.not_an_official").into());
                    return case_view(&ctx, &state, &who, &app, &def, error).await;
                }
            }
        }
    };
    let assigned = state
        .store
        .assign_application(&app, assignee, &who.actor())
        .await;
    after_action(&ctx, &state, &who, &app, &def, assigned).await
}
