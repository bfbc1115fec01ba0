//! Security events (sign-in failures, lock-outs, refused exchanges, openings
//! of ledger commitments…): the page and the API analysts and auditors read.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use nara_store::identity::SecurityEvent;
use serde::Deserialize;

use crate::AppState;
use crate::problem::Problem;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

use crate::web::{query_value, when};

#[derive(Template)]
#[template(path = "security_events.html")]
struct SecurityEventsPage {
    layout: Layout,
    events: Vec<(String, SecurityEvent)>,
}

pub async fn security_events_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let kind = query_value(&ctx, "kind").filter(|k| k.len() <= 64);
    let events = state
        .store
        .security_events(kind.as_deref(), 200)
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .map(|e| (when(e.at), e))
        .collect();
    Ok(render(&SecurityEventsPage {
        layout: ctx.layout(ctx.tr().s("events.title"), "security"),
        events,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events of this kind, e.g. `login.failed`.
    kind: Option<String>,
    /// At most this many, newest first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// Security events, newest first (security analysts and auditors).
#[utoipa::path(get, path = "/api/v1/security/events", tag = "identity", params(EventsQuery), security(("api_token" = [])),
    responses(
        (status = 200, description = "Events, newest first"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a security analyst or auditor", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn security_events_api(
    State(state): State<AppState>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<EventsQuery>,
) -> Result<Json<Vec<SecurityEvent>>, Problem> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit", "must be 1 to 1000"));
    }
    Ok(Json(
        state
            .store
            .security_events(q.kind.as_deref(), limit)
            .await?,
    ))
}
