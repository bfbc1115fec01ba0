//! Incidents: analysts group alerts into an incident, assign it to a
//! security analyst, write notes and move it from open to contained to
//! resolved (the one rule: [`IncidentStatus::may_become`]). Every change is
//! a step on the incident's timeline and a ledger entry; auditors read.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::secops::IncidentStatus;
use nara_store::secops::{Incident, IncidentChange};
use serde::Deserialize;

use crate::AppState;
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, query_value, render, store_failed, when};

/// The longest title or note kept.
const TEXT_MAX: usize = 1000;

pub struct IncidentRow {
    pub incident: Incident,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "security_incidents.html")]
struct IncidentsPage {
    layout: Layout,
    incidents: Vec<IncidentRow>,
    showing: Option<&'static str>,
    states: Vec<&'static str>,
}

pub async fn incidents_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let showing = query_value(&ctx, "status")
        .as_deref()
        .and_then(IncidentStatus::parse);
    let incidents = state
        .store
        .incidents(showing, 200)
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .map(|incident| IncidentRow {
            updated: when(incident.updated_at),
            incident,
        })
        .collect();
    Ok(render(&IncidentsPage {
        layout: ctx.layout(ctx.tr().s("incidents.title"), "security"),
        incidents,
        showing: showing.map(IncidentStatus::as_str),
        states: IncidentStatus::ALL
            .into_iter()
            .map(IncidentStatus::as_str)
            .collect(),
    }))
}

pub struct StepView {
    pub at: String,
    pub actor: String,
    pub kind: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "security_incident.html")]
struct IncidentPage {
    layout: Layout,
    incident: Incident,
    created: String,
    alerts: Vec<super::alerts::AlertView>,
    timeline: Vec<StepView>,
    /// Where it may move from here.
    moves: Vec<&'static str>,
    /// Analysts it may be assigned to, and whether it is theirs now.
    analysts: Vec<(i64, String, bool)>,
    /// Whether the caller may change it (analysts; auditors read).
    may_change: bool,
    active: bool,
    csrf: String,
}

pub async fn incident_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let failed = store_failed(ctx.lang);
    let Some(incident) = state.store.incident(id).await.map_err(failed)? else {
        return Err(PageError::not_found(ctx.lang));
    };
    let alerts = state
        .store
        .incident_alerts(id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let timeline = state
        .store
        .incident_timeline(id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let analysts = state
        .store
        .security_analysts()
        .await
        .map_err(store_failed(ctx.lang))?;
    let status = incident.status();
    let person = ctx.caller.person();
    Ok(render(&IncidentPage {
        layout: ctx.layout(&incident.title, "security"),
        created: when(incident.created_at),
        alerts: alerts.into_iter().map(super::alerts::view).collect(),
        timeline: timeline
            .into_iter()
            .map(|s| StepView {
                at: when(s.at),
                actor: s.actor,
                kind: s.kind,
                detail: s.detail,
            })
            .collect(),
        moves: status
            .map(|from| {
                IncidentStatus::ALL
                    .into_iter()
                    .filter(|to| from.may_become(*to))
                    .map(IncidentStatus::as_str)
                    .collect()
            })
            .unwrap_or_default(),
        active: status.is_some_and(IncidentStatus::is_active),
        analysts: analysts
            .into_iter()
            .map(|(id, name)| (id, name, incident.assignee == Some(id)))
            .collect(),
        may_change: person.is_some_and(|p| p.has_role(nara_core::identity::Role::SecurityAnalyst)),
        csrf: person.and_then(|p| p.csrf()).unwrap_or_default().to_owned(),
        incident,
    }))
}

fn text(raw: &str) -> String {
    raw.trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(TEXT_MAX)
        .collect()
}

#[derive(Deserialize)]
pub struct GroupForm {
    alert: i64,
    /// `new`, or the id of an active incident.
    incident: String,
    #[serde(default)]
    title: String,
}

/// Groups an alert: into a new incident (titled by the analyst, or after
/// the alert) or an existing active one.
pub async fn group(
    ctx: PageCtx,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<GroupForm>,
) -> Result<Response, PageError> {
    let Some(person) = ctx.caller.person() else {
        return Err(PageError::forbidden(ctx.lang));
    };
    let actor = person.actor();
    let result = if form.incident == "new" {
        let Some(alert) = state
            .store
            .alert(form.alert)
            .await
            .map_err(store_failed(ctx.lang))?
        else {
            return Err(PageError::not_found(ctx.lang));
        };
        let title = match text(&form.title) {
            t if t.is_empty() => alert.title.clone(),
            t => t,
        };
        state.store.open_incident(&title, alert.id, &actor).await
    } else {
        let Ok(id) = form.incident.parse::<i64>() else {
            return Err(PageError::bad_request(ctx.lang));
        };
        state
            .store
            .change_incident(id, &IncidentChange::AddAlert { alert: form.alert }, &actor)
            .await
            .map(|()| id)
    };
    match result {
        Ok(id) => Ok(Redirect::to(&format!("/security/incidents/{id}")).into_response()),
        Err(e) => Err(refusal(ctx.lang, e)),
    }
}

fn refusal(lang: nara_core::Lang, e: nara_store::StoreError) -> PageError {
    match e {
        nara_store::StoreError::Conflict(_) => PageError::conflict(lang),
        nara_store::StoreError::NotFound(_) => PageError::not_found(lang),
        e => store_failed(lang)(e),
    }
}

#[derive(Deserialize)]
pub struct ChangeForm {
    /// `note`, `assign` or `move`.
    change: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    analyst: Option<i64>,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// Changes an incident (analysts): a note, an assignment, a move.
pub async fn change(
    ctx: PageCtx,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<ChangeForm>,
) -> Result<Response, PageError> {
    let Some(person) = ctx.caller.person() else {
        return Err(PageError::forbidden(ctx.lang));
    };
    let note = text(&form.note);
    let change = match form.change.as_str() {
        "note" if !note.is_empty() => IncidentChange::Note { note },
        "assign" => match form.analyst {
            Some(analyst) => IncidentChange::Assign { analyst },
            None => return Err(PageError::bad_request(ctx.lang)),
        },
        "move" => match (
            IncidentStatus::parse(&form.from),
            IncidentStatus::parse(&form.to),
        ) {
            (Some(from), Some(to)) => IncidentChange::Move { from, to, note },
            _ => return Err(PageError::bad_request(ctx.lang)),
        },
        _ => return Err(PageError::bad_request(ctx.lang)),
    };
    match state
        .store
        .change_incident(id, &change, &person.actor())
        .await
    {
        Ok(()) => Ok(Redirect::to(&format!("/security/incidents/{id}#timeline")).into_response()),
        Err(e) => Err(refusal(ctx.lang, e)),
    }
}
