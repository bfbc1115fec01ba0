//! Public figures per service: applications, completion time (median and
//! p90), SLA compliance and the share of satisfied applicants (4–5 of 5), as
//! a page with server-rendered SVG charts, CSV, and on each service's page.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nara_store::applications::ServiceFigures;

use crate::AppState;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

/// One service's figures as shown.
pub struct FiguresView {
    pub code: String,
    pub title: String,
    pub applications: u64,
    pub decided: u64,
    pub median: String,
    pub p90: String,
    /// Percentages, or "—" with nothing to measure.
    pub sla: String,
    pub satisfied: String,
    pub ratings: u64,
    /// Bar widths (0–300 px) for the charts.
    pub sla_bar: u32,
    pub satisfied_bar: u32,
}

fn hours(h: Option<f64>) -> String {
    match h {
        None => "—".into(),
        Some(h) if h < 1.0 => format!("{:.0} min", h * 60.0),
        Some(h) if h < 48.0 => format!("{h:.1} h"),
        Some(h) => format!("{:.1} d", h / 24.0),
    }
}

fn percent(share: Option<f64>) -> String {
    share.map_or("—".into(), |s| format!("{:.0}%", s * 100.0))
}

fn bar(share: Option<f64>) -> u32 {
    (share.unwrap_or(0.0).clamp(0.0, 1.0) * 300.0).round() as u32
}

pub fn view(f: &ServiceFigures, title: String) -> FiguresView {
    FiguresView {
        code: f.service_code.clone(),
        title,
        applications: f.applications,
        decided: f.decided,
        median: hours(f.median_hours),
        p90: hours(f.p90_hours),
        sla: percent(f.sla_share()),
        satisfied: percent(f.satisfied_share()),
        ratings: f.ratings,
        sla_bar: bar(f.sla_share()),
        satisfied_bar: bar(f.satisfied_share()),
    }
}

/// How long computed figures are served before they are computed again:
/// statistics need not be to the second, and a full scan per page view
/// would let anyone load the database.
const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Figures of every service (`None`) or one, at most [`FRESH_FOR`] old.
#[derive(Default)]
pub struct FiguresCache(std::sync::Mutex<Cached>);

/// Service (or all) → when computed, what.
type Cached = std::collections::HashMap<Option<String>, (std::time::Instant, Vec<ServiceFigures>)>;

impl FiguresCache {
    /// A decision or a rating: the next view computes afresh (new
    /// applications alone show within [`FRESH_FOR`]).
    pub fn changed(&self) {
        if let Ok(mut cache) = self.0.lock() {
            cache.clear();
        }
    }
}

pub async fn figures(
    state: &AppState,
    only: Option<&str>,
) -> nara_store::Result<Vec<ServiceFigures>> {
    let key = only.map(str::to_owned);
    if let Ok(cache) = state.figures.0.lock()
        && let Some((at, f)) = cache.get(&key)
        && at.elapsed() < FRESH_FOR
    {
        return Ok(f.clone());
    }
    let f = state.store.service_figures(only).await?;
    if let Ok(mut cache) = state.figures.0.lock() {
        // Bounded: one entry per published service and one for all.
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, (std::time::Instant::now(), f.clone()));
    }
    Ok(f)
}

/// Every published service's figures (zeros for one without applications).
pub async fn all(state: &AppState, lang: nara_core::Lang) -> nara_store::Result<Vec<FiguresView>> {
    let figures = figures(state, None).await?;
    let defs = state.store.latest_definitions().await?;
    Ok(defs
        .iter()
        .map(|d| {
            let title = state.definitions.title(&defs, &d.code, lang);
            let f = figures
                .iter()
                .find(|f| f.service_code == d.code)
                .cloned()
                .unwrap_or_else(|| ServiceFigures {
                    service_code: d.code.clone(),
                    ..Default::default()
                });
            view(&f, title)
        })
        .collect())
}

#[derive(Template)]
#[template(path = "statistics.html")]
struct StatisticsPage {
    layout: Layout,
    rows: Vec<FiguresView>,
}

/// `GET /statistics`.
pub async fn page(ctx: PageCtx, State(state): State<AppState>) -> Result<Response, PageError> {
    let rows = all(&state, ctx.lang)
        .await
        .map_err(store_failed(ctx.lang))?;
    Ok(render(&StatisticsPage {
        layout: ctx.layout(ctx.tr().s("stats.title"), "statistics"),
        rows,
    }))
}

/// A CSV cell: quoted, and a leading formula character defused.
fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `GET /statistics.csv`: the same figures, numbers unformatted.
pub async fn csv(State(state): State<AppState>) -> Response {
    let Ok(figures) = figures(&state, None).await else {
        return crate::problem::Problem::internal().into_response();
    };
    let mut out = String::from(
        "service,applications,decided,median_hours,p90_hours,sla_compliance,ratings,satisfied_share,mean_score\n",
    );
    let num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
    for f in &figures {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            cell(&f.service_code),
            f.applications,
            f.decided,
            num(f.median_hours),
            num(f.p90_hours),
            num(f.sla_share()),
            f.ratings,
            num(f.satisfied_share()),
            num(f.mean_score),
        ));
    }
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"nara-service-statistics.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_read_them() {
        assert_eq!(hours(None), "—");
        assert_eq!(hours(Some(0.5)), "30 min");
        assert_eq!(hours(Some(5.0)), "5.0 h");
        assert_eq!(hours(Some(72.0)), "3.0 d");
        assert_eq!(percent(Some(0.935)), "94%");
        assert_eq!(bar(Some(1.5)), 300);
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    }
}
