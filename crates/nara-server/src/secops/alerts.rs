//! Alerts the detection rules raised, and their triage: analysts move an
//! alert from open to acknowledged to closed (a true or a false positive),
//! or reopen it — each move checked by the one rule
//! ([`AlertStatus::may_become`]), recorded with who and why, and a ledger
//! entry. Auditors read; only analysts move.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::secops::{AlertStatus, IncidentStatus};
use nara_store::secops::Alert;
use serde::Deserialize;

use crate::AppState;
use crate::problem::Problem;
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, query_value, render, store_failed, when};

/// An alert as the page shows it.
pub struct AlertView {
    pub alert: Alert,
    pub first: String,
    pub last: String,
    pub events: usize,
    /// Where triage may move it from here.
    pub moves: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "security_alerts.html")]
struct AlertsPage {
    layout: Layout,
    alerts: Vec<AlertView>,
    /// The state shown, or every state.
    showing: Option<&'static str>,
    states: Vec<&'static str>,
    /// Whether the caller may triage (analysts; auditors read).
    triage: bool,
    csrf: String,
    rules: usize,
    refused: Vec<(String, String)>,
    /// Active incidents an alert may be grouped into.
    incidents: Vec<(i64, String)>,
    /// Analysts who get high and critical alerts by email.
    on_call: Vec<String>,
    /// Whether this node can email at all.
    mail: bool,
    /// The caller's own address, if they are on call.
    my_email: String,
}

pub fn view(alert: Alert) -> AlertView {
    let moves = alert
        .status()
        .map(|from| {
            AlertStatus::ALL
                .into_iter()
                .filter(|to| from.may_become(*to))
                .map(AlertStatus::as_str)
                .collect()
        })
        .unwrap_or_default();
    AlertView {
        first: when(alert.first_at),
        last: when(alert.last_at),
        events: alert.event_ids().len(),
        moves,
        alert,
    }
}

pub async fn alerts_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let showing = query_value(&ctx, "status")
        .as_deref()
        .and_then(AlertStatus::parse);
    let alerts = state
        .store
        .alerts(showing, 200)
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .map(view)
        .collect();
    let incidents = state
        .store
        .incidents(None, 200)
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .filter(|i| i.status().is_some_and(IncidentStatus::is_active))
        .map(|i| (i.id, i.title))
        .collect();
    let person = ctx.caller.person();
    let on_call = state
        .store
        .analysts_on_call()
        .await
        .map_err(store_failed(ctx.lang))?;
    let my_email = match person {
        Some(p) => state
            .store
            .email_of(p.account_id)
            .await
            .map_err(store_failed(ctx.lang))?
            .unwrap_or_default(),
        None => String::new(),
    };
    Ok(render(&AlertsPage {
        on_call: on_call.into_iter().map(|(_, name)| name).collect(),
        mail: state.config.smtp_url.is_some(),
        my_email,
        incidents,
        layout: ctx.layout(ctx.tr().s("alerts.title"), "security"),
        alerts,
        showing: showing.map(AlertStatus::as_str),
        states: AlertStatus::ALL
            .into_iter()
            .map(AlertStatus::as_str)
            .collect(),
        triage: person.is_some_and(|p| p.has_role(nara_core::identity::Role::SecurityAnalyst)),
        csrf: person.and_then(|p| p.csrf()).unwrap_or_default().to_owned(),
        rules: state.detector.rules(),
        refused: state
            .detector
            .refused()
            .iter()
            .map(|e| (e.file.clone(), e.why.clone()))
            .collect(),
    }))
}

#[derive(Deserialize)]
pub struct TriageForm {
    to: String,
    #[serde(default)]
    note: String,
}

/// Moves an alert (analysts). A move the rule forbids, or one another
/// analyst made first, is refused with what is wrong.
pub async fn triage(
    ctx: PageCtx,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<TriageForm>,
) -> Result<Response, PageError> {
    let Some(to) = AlertStatus::parse(&form.to) else {
        return Err(PageError::bad_request(ctx.lang));
    };
    let note: String = form.note.trim().chars().take(500).collect();
    let Some(person) = ctx.caller.person() else {
        return Err(PageError::forbidden(ctx.lang));
    };
    let alert = state
        .store
        .alert(id)
        .await
        .map_err(store_failed(ctx.lang))?
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let Some(from) = alert.status() else {
        return Err(PageError::bad_request(ctx.lang));
    };
    if !from.may_become(to) {
        return Err(PageError::conflict(ctx.lang));
    }
    match state
        .store
        .triage_alert(id, from, to, &person.actor(), &note)
        .await
    {
        Ok(()) => Ok(Redirect::to(&format!("/security/alerts#alert-{id}")).into_response()),
        Err(nara_store::StoreError::Conflict(_)) => Err(PageError::conflict(ctx.lang)),
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// Only alerts in this state: `open`, `acknowledged`, `true_positive`, `false_positive`.
    status: Option<String>,
    /// At most this many, newest first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// One alert, as the API returns it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AlertBody {
    pub id: i64,
    /// The Sigma rule's id.
    pub rule_id: String,
    pub title: String,
    /// Sigma's level: `low`, `medium`, `high`, `critical`.
    pub level: String,
    /// What the rule grouped by, as `field=value` pairs.
    pub group_key: String,
    /// The security events that raised it.
    pub events: Vec<i64>,
    pub first_at: nara_core::Timestamp,
    pub last_at: nara_core::Timestamp,
    pub status: AlertStatus,
    pub updated_at: nara_core::Timestamp,
    pub updated_by: String,
}

/// Alerts raised by the detection rules, newest first (security analysts
/// and auditors).
#[utoipa::path(get, path = "/api/v1/security/alerts", tag = "identity", params(AlertsQuery), security(("api_token" = [])),
    responses(
        (status = 200, description = "Alerts, newest first", body = [AlertBody]),
        (status = 400, description = "An unknown state or a limit out of range", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a security analyst or auditor", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn alerts_api(
    State(state): State<AppState>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<AlertsQuery>,
) -> Result<Json<Vec<AlertBody>>, Problem> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit", "must be 1 to 1000"));
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(AlertStatus::parse(s).ok_or_else(|| {
            Problem::bad_request(
                "status",
                "must be open, acknowledged, true_positive or false_positive",
            )
        })?),
    };
    let alerts = state.store.alerts(status, limit).await?;
    Ok(Json(
        alerts
            .into_iter()
            .filter_map(|a| {
                Some(AlertBody {
                    id: a.id,
                    events: a.event_ids(),
                    status: a.status()?,
                    rule_id: a.rule_id,
                    title: a.title,
                    level: a.level,
                    group_key: a.group_key,
                    first_at: nara_core::Timestamp(a.first_at),
                    last_at: nara_core::Timestamp(a.last_at),
                    updated_at: nara_core::Timestamp(a.updated_at),
                    updated_by: a.updated_by,
                })
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct OnCallForm {
    #[serde(default)]
    email: String,
}

/// An analyst goes on call (an address for high and critical alerts) or
/// off (an empty address).
pub async fn on_call(
    ctx: PageCtx,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<OnCallForm>,
) -> Result<Response, PageError> {
    let Some(person) = ctx.caller.person() else {
        return Err(PageError::forbidden(ctx.lang));
    };
    let Ok(email) = crate::citizen::mailer::given_address(&form.email) else {
        return Err(PageError::bad_request(ctx.lang));
    };
    state
        .store
        .set_email(person.account_id, email)
        .await
        .map_err(store_failed(ctx.lang))?;
    Ok(Redirect::to("/security/alerts#on-call").into_response())
}
