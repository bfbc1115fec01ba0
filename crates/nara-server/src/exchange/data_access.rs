//! The citizen's view of the exchange: every exchange that concerned her,
//! newest first, as a page, JSON or CSV.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use nara_core::exchange::Purpose;
use nara_store::exchange::ExchangeRecord;
use serde::Deserialize;

use crate::AppState;
use crate::extract::ApiQuery;
use crate::identity::auth::Principal;
use crate::problem::Problem;
use crate::web::when;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

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

async fn access_views(
    state: &AppState,
    who: &Principal,
    lang: nara_core::Lang,
) -> Result<Vec<(ExchangeRecord, AccessView)>, nara_store::StoreError> {
    let Some(subject) = super::subject_of(state, who).await? else {
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
    let has_id = super::subject_of(&state, &who)
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
}
