//! The server-rendered catalogue pages: home, service catalogue, service,
//! agencies, agency, the staff's systems inventory and the public ledger.
//! Sign-in and account pages are in [`crate::identity::account`]; the page framework
//! they all use is [`crate::web`].

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nara_core::{
    Agency, Audience, FieldError, Grade, Lang, MemberId, Page, PageRequest, Service, ServiceFilter,
    System, SystemFilter, SystemKind, SystemStatus,
};
use serde::Deserialize;

use crate::AppState;
use crate::extract::parse_query;
use crate::problem::Problem;
use crate::web::{Layout, PageCtx, PageError, Pager, render, store_failed};

// ------------------------------------------------------------------ home

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    stats: nara_store::CatalogueStats,
    agencies: Vec<Agency>,
}

pub async fn home(ctx: PageCtx, State(state): State<AppState>) -> Result<Response, PageError> {
    let stats = state
        .store
        .catalogue_stats(None)
        .await
        .map_err(store_failed(ctx.lang))?;
    let agencies = state
        .store
        .all_agencies()
        .await
        .map_err(store_failed(ctx.lang))?;
    Ok(render(&HomePage {
        layout: ctx.layout(ctx.tr().s("home.title"), "home"),
        stats,
        agencies,
    }))
}

// ------------------------------------------------------------------ catalogue

/// The raw values of a filter form, to show them back as they were typed.
#[derive(Debug, Default, Deserialize)]
struct FormValues {
    #[serde(default)]
    q: String,
    #[serde(default)]
    agency: String,
    #[serde(default)]
    audience: String,
    #[serde(default)]
    grade: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    status: String,
}

/// Parses a list page's filter and page number; on failure, the field error to show.
fn parse_list<F: serde::de::DeserializeOwned + Default>(
    query: &str,
) -> (F, PageRequest, Option<FieldError>) {
    let first_error = |p: Problem| p.errors.into_iter().next();
    let filter = parse_query::<F>(query);
    let page = parse_query::<PageRequest>(query)
        .and_then(|p| p.validate().map(|()| p).map_err(Problem::from));
    match (filter, page) {
        (Ok(f), Ok(p)) => (f, p, None),
        (Err(e), _) => (F::default(), PageRequest::default(), first_error(e)),
        (_, Err(e)) => (F::default(), PageRequest::default(), first_error(e)),
    }
}

/// An agency's name in the page's language, or its identifier if unknown.
fn agency_label<'a>(agencies: &'a [Agency], lang: Lang, id: &'a str) -> &'a str {
    agencies
        .iter()
        .find(|a| a.id.as_str() == id)
        .map(|a| a.name.get(lang))
        .unwrap_or(id)
}

#[derive(Template)]
#[template(path = "services.html")]
struct ServicesPage<'a> {
    layout: Layout,
    q: String,
    agency: String,
    audience: String,
    audiences: &'static [Audience],
    agencies: &'a [Agency],
    page: Page<&'a Service>,
    pager: Pager,
    form_error: Option<FieldError>,
}

impl ServicesPage<'_> {
    fn agency_name<'b>(&'b self, id: &'b str) -> &'b str {
        agency_label(self.agencies, self.layout.lang, id)
    }

    fn error_for(&self, field: &str) -> bool {
        self.form_error.as_ref().is_some_and(|e| e.field == field)
    }
}

pub async fn services(
    ctx: PageCtx,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let query = query.unwrap_or_default();
    let values: FormValues = serde_urlencoded::from_str(&query).unwrap_or_default();
    let (filter, page_request, form_error) = parse_list::<ServiceFilter>(&query);
    let status = if form_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let invalid = form_error.is_some();
    // Rendered from the rows the store lends: nothing is cloned per row.
    let page_of = |agencies: &[Agency], page: Page<&Service>| {
        let view = ServicesPage {
            layout: ctx.layout(ctx.tr().s("services.title"), "services"),
            q: values.q,
            agency: values.agency,
            audience: values.audience,
            audiences: Audience::ALL,
            agencies,
            pager: ctx.pager(&page),
            page,
            form_error,
        };
        (status, render(&view)).into_response()
    };
    if invalid {
        let agencies = state
            .store
            .all_agencies()
            .await
            .map_err(store_failed(ctx.lang))?;
        return Ok(page_of(&agencies, Page::empty(page_request.per_page)));
    }
    state
        .store
        .view_services(&filter, page_request, page_of)
        .await
        .map_err(store_failed(ctx.lang))
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    layout: Layout,
    service: Service,
    agency_name: String,
    /// When citizens apply for it on nara: its figures.
    online: Option<crate::catalogue::statistics::FiguresView>,
    /// When systems it depends on are probed: its health and theirs.
    health: Option<(&'static str, Vec<crate::secops::probes::HealthRow>)>,
}

pub async fn service(
    ctx: PageCtx,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id: i64 = id.parse().map_err(|_| PageError::not_found(ctx.lang))?;
    let service = state
        .store
        .get_service(id)
        .await
        .map_err(store_failed(ctx.lang))?
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let agency = state
        .store
        .get_agency(&service.details.agency)
        .await
        .map_err(store_failed(ctx.lang))?;
    let agency_name = agency
        .map(|a| a.name.get(ctx.lang).to_owned())
        .unwrap_or_else(|| service.details.agency.to_string());
    let title = service.details.name.get(ctx.lang).to_owned();
    // The catalogue entry and the online service share agency and code.
    let online = match state
        .store
        .definition_versions(&service.details.code)
        .await
        .map_err(store_failed(ctx.lang))?
        .first()
    {
        Some(d) if d.agency_id == service.details.agency.as_str() => {
            let figures =
                crate::catalogue::statistics::figures(&state, Some(&service.details.code))
                    .await
                    .map_err(store_failed(ctx.lang))?
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| nara_store::applications::ServiceFigures {
                        service_code: service.details.code.clone(),
                        ..Default::default()
                    });
            Some(crate::catalogue::statistics::view(&figures, title.clone()))
        }
        _ => None,
    };
    let health = crate::secops::probes::service_health(&state.store, id)
        .await
        .map_err(store_failed(ctx.lang))?
        .map(|(h, systems)| (h.as_str(), systems));
    Ok(render(&ServicePage {
        health,
        online,
        layout: ctx.layout(&title, "services"),
        service,
        agency_name,
    }))
}

// ------------------------------------------------------------------ agencies

#[derive(Template)]
#[template(path = "agencies.html")]
struct AgenciesPage {
    layout: Layout,
    agencies: Vec<Agency>,
}

pub async fn agencies(ctx: PageCtx, State(state): State<AppState>) -> Result<Response, PageError> {
    let agencies = state
        .store
        .all_agencies()
        .await
        .map_err(store_failed(ctx.lang))?;
    Ok(render(&AgenciesPage {
        layout: ctx.layout(ctx.tr().s("agencies.title"), "agencies"),
        agencies,
    }))
}

#[derive(Template)]
#[template(path = "agency.html")]
struct AgencyPage {
    layout: Layout,
    agency: Agency,
    page: Page<Service>,
    pager: Pager,
}

pub async fn agency(
    ctx: PageCtx,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = MemberId::parse(&id).map_err(|_| PageError::not_found(ctx.lang))?;
    let agency = state
        .store
        .get_agency(&id)
        .await
        .map_err(store_failed(ctx.lang))?
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let page_request = parse_query::<PageRequest>(&ctx.query)
        .ok()
        .filter(|p| p.validate().is_ok())
        .unwrap_or_default();
    let filter = ServiceFilter {
        agency: Some(id),
        ..Default::default()
    };
    let page = state
        .store
        .list_services(&filter, page_request)
        .await
        .map_err(store_failed(ctx.lang))?;
    let title = agency.name.get(ctx.lang).to_owned();
    Ok(render(&AgencyPage {
        layout: ctx.layout(&title, "agencies"),
        agency,
        pager: ctx.pager(&page),
        page,
    }))
}

// ------------------------------------------------------------------ systems

pub struct Bar {
    pub grade: u8,
    pub count: u64,
    pub y: u32,
    pub width: u32,
}

pub struct Chart {
    pub bars: Vec<Bar>,
    pub height: u32,
}

impl Chart {
    /// Horizontal bars scaled to the largest count, 330 px at most.
    fn by_grade(counts: [u64; 4]) -> Chart {
        let max = counts.iter().copied().max().unwrap_or(0).max(1);
        let bars = counts
            .iter()
            .enumerate()
            .map(|(i, &count)| Bar {
                grade: i as u8 + 1,
                count,
                y: i as u32 * 34,
                width: ((count as f64 / max as f64) * 330.0).round() as u32,
            })
            .collect();
        Chart {
            bars,
            height: 4 * 34,
        }
    }
}

#[derive(Template)]
#[template(path = "systems.html")]
struct SystemsPage<'a> {
    layout: Layout,
    form: FormValues,
    agencies: &'a [Agency],
    grades: [Grade; 4],
    kinds: &'static [SystemKind],
    statuses: &'static [SystemStatus],
    chart: Chart,
    page: Page<System>,
    pager: Pager,
    form_error: Option<FieldError>,
}

impl SystemsPage<'_> {
    fn agency_name<'b>(&'b self, id: &'b str) -> &'b str {
        agency_label(self.agencies, self.layout.lang, id)
    }

    fn error_for(&self, field: &str) -> bool {
        self.form_error.as_ref().is_some_and(|e| e.field == field)
    }
}

pub async fn systems(ctx: PageCtx, State(state): State<AppState>) -> Result<Response, PageError> {
    let form: FormValues = serde_urlencoded::from_str(&ctx.query).unwrap_or_default();
    let (filter, page_request, form_error) = parse_list::<SystemFilter>(&ctx.query);
    let agencies = state
        .store
        .all_agencies()
        .await
        .map_err(store_failed(ctx.lang))?;
    let (page, counts) = if form_error.is_some() {
        (Page::empty(page_request.per_page), [0; 4])
    } else {
        let page = state
            .store
            .list_systems(&filter, page_request)
            .await
            .map_err(store_failed(ctx.lang))?;
        let counts = state
            .store
            .count_systems_by_grade(&filter)
            .await
            .map_err(store_failed(ctx.lang))?;
        (page, counts)
    };
    let status = if form_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let view = SystemsPage {
        layout: ctx.layout(ctx.tr().s("systems.title"), "systems"),
        form,
        agencies: &agencies,
        grades: Grade::ALL,
        kinds: SystemKind::ALL,
        statuses: SystemStatus::ALL,
        chart: Chart::by_grade(counts),
        pager: ctx.pager(&page),
        page,
        form_error,
    };
    Ok((status, render(&view)).into_response())
}

// ------------------------------------------------------------------ ledger

pub struct LedgerRow {
    pub index: u64,
    pub time: String,
    pub kind: String,
    pub subjects: String,
    pub digest: String,
}

#[derive(Template)]
#[template(path = "ledger.html")]
struct LedgerPage {
    layout: Layout,
    checkpoint: Option<nara_store::ledger::StoredCheckpoint>,
    root_hex: String,
    signed_at: String,
    kinds: Vec<(String, usize)>,
    recent: Vec<LedgerRow>,
    base: String,
}

/// The public ledger page: the latest checkpoint, recent entries, how to verify.
pub async fn ledger(
    ctx: PageCtx,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let checkpoint = state
        .store
        .latest_checkpoint()
        .await
        .map_err(store_failed(ctx.lang))?;
    let recent_raw = state
        .store
        .recent_ledger_entries(50)
        .await
        .map_err(store_failed(ctx.lang))?;
    let mut kinds: Vec<(String, usize)> = Vec::new();
    let recent: Vec<LedgerRow> = recent_raw
        .iter()
        .filter_map(|(index, bytes)| {
            let e = nara_ledger::Entry::decode(bytes).ok()?;
            match kinds.iter_mut().find(|(k, _)| *k == e.kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((e.kind.clone(), 1)),
            }
            Some(LedgerRow {
                index: *index,
                time: nara_core::Timestamp(e.time_ms).rfc3339(),
                kind: e.kind,
                subjects: e.subjects.join(", "),
                digest: e
                    .digest
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            })
        })
        .collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let base = match &state.config.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost:8080");
            format!("http://{host}")
        }
    };
    let (root_hex, signed_at) = checkpoint
        .as_ref()
        .map(|cp| {
            (
                cp.root.iter().map(|b| format!("{b:02x}")).collect(),
                nara_core::Timestamp(cp.created_at).rfc3339(),
            )
        })
        .unwrap_or_default();
    Ok(render(&LedgerPage {
        layout: ctx.layout(ctx.tr().s("ledger.title"), "ledger"),
        checkpoint,
        root_hex,
        signed_at,
        kinds,
        recent,
        base,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_scales_to_the_largest_bar() {
        let c = Chart::by_grade([10, 20, 40, 0]);
        assert_eq!(c.bars[2].width, 330);
        assert_eq!(c.bars[0].width, 83);
        assert_eq!(c.bars[3].width, 0);
    }
}
