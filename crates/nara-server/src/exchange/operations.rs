//! The operators' view of exchange traffic: volumes, refusals and latency
//! per service.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::AppState;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

pub struct StatView {
    pub service: String,
    pub client: String,
    pub exchanges: i64,
    pub errors: i64,
    pub mean_ms: String,
    pub max_ms: String,
}

#[derive(Template)]
#[template(path = "exchange_operations.html")]
struct OperationsPage {
    layout: Layout,
    stats: Vec<StatView>,
    chart: crate::web::BarChart,
    total: i64,
    errors: i64,
    node: String,
    federation: Option<u64>,
    retention_lead: String,
    archives: Vec<ArchiveView>,
}

/// An archived month, for the page.
pub struct ArchiveView {
    pub period: String,
    pub exchanges: i64,
    pub size: String,
    pub sha256: String,
    pub state: String,
}

/// Exchange traffic of the last 24 hours, per service and client.
pub async fn operations_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let since = nara_core::Timestamp::now().0 - 86_400_000;
    let stats = state
        .store
        .exchange_stats(since)
        .await
        .map_err(store_failed(ctx.lang))?;
    let busiest = stats.iter().map(|s| s.exchanges).max().unwrap_or(1).max(1);
    let chart = crate::web::BarChart {
        id: "chart-title",
        title: ctx.tr().s("exchange.chart_title").into(),
        bars: stats
            .iter()
            .map(|s| crate::web::Bar {
                width: s.exchanges * 100 / busiest,
                label: format!("{} · {}", s.exchanges, s.service_id),
            })
            .collect(),
    };
    let tr = ctx.tr();
    let archives = state
        .store
        .exchange_archives()
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .rev()
        .map(|a| ArchiveView {
            period: a.period,
            exchanges: a.exchanges,
            size: if a.bytes < 1_048_576 {
                format!("{:.0} KiB", (a.bytes as f64 / 1024.0).ceil())
            } else {
                format!("{:.1} MiB", a.bytes as f64 / 1_048_576.0)
            },
            sha256: a.sha256,
            state: match a.pruned_at {
                None => tr.s("exchange.archive_kept").to_owned(),
                Some(at) => tr
                    .s("exchange.archive_pruned")
                    .replace("{0}", &nara_core::Timestamp(at).date()),
            },
        })
        .collect();
    let retention_lead = tr
        .s("exchange.archive_lead")
        .replace("{0}", &state.config.exchange_log_retention_days.to_string());
    let page = OperationsPage {
        retention_lead,
        archives,
        layout: ctx.layout(ctx.tr().s("exchange.operations_title"), "exchange"),
        chart,
        total: stats.iter().map(|s| s.exchanges).sum(),
        errors: stats.iter().map(|s| s.errors).sum(),
        stats: stats
            .into_iter()
            .map(|s| StatView {
                service: s.service_id,
                client: s.client_id,
                exchanges: s.exchanges,
                errors: s.errors,
                mean_ms: format!("{:.2}", s.mean_us as f64 / 1000.0),
                max_ms: format!("{:.2}", s.max_us as f64 / 1000.0),
            })
            .collect(),
        node: state.exchange.key_id.clone(),
        federation: state.exchange.federation.as_ref().map(|f| f.version()),
    };
    Ok(render(&page))
}
