//! The public algorithm register: every entry's latest version as a page
//! (in the reader's language; the agency's prose in the language it was
//! written in, marked so), as JSON with every version, and in the shape of
//! the Dutch Algorithm Register's publication standard 1.0. Reviewers'
//! override rates per model come from the decision records. Operators
//! publish new versions through the API; a version is never changed.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nara_core::algorithms::{RegisterEntry, override_rate};
use nara_store::algorithms::ReviewCounts;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Registered, register_entries, versions};
use crate::AppState;
use crate::extract::{ApiJson, ApiPath};
use crate::problem::Problem;
use crate::web::{Bar, BarChart, Layout, PageCtx, PageError, render, store_failed, when};

/// How people's reviews went for one model, as the register shows it.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ReviewFigures {
    pub accepted: i64,
    pub overridden: i64,
    pub awaiting_review: i64,
    pub automatic: i64,
    pub appeals: i64,
    pub appeals_reversed: i64,
    /// Overridden among reviewed; none before the first review.
    pub override_rate: Option<f64>,
}

impl ReviewFigures {
    fn of(counts: &[ReviewCounts], code: &str) -> ReviewFigures {
        let c = counts
            .iter()
            .find(|c| c.code == code)
            .cloned()
            .unwrap_or_default();
        ReviewFigures {
            accepted: c.accepted,
            overridden: c.overridden,
            awaiting_review: c.awaiting,
            automatic: c.automatic,
            appeals: c.appeals,
            appeals_reversed: c.reversed,
            override_rate: override_rate(c.accepted as u64, c.overridden as u64),
        }
    }

    /// The rate as people read it, or a dash.
    pub fn rate_text(&self) -> String {
        self.override_rate
            .map_or_else(|| "–".to_owned(), |r| format!("{:.0}%", r * 100.0))
    }
}

/// One published version as the API gives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedEntry {
    pub version: i64,
    /// SHA-256 of the version's JSON as stored (the ledger entry's subject).
    pub entry_sha256: String,
    pub published_at: String,
    pub published_by: String,
    pub entry: RegisterEntry,
}

impl PublishedEntry {
    fn of(r: Registered) -> PublishedEntry {
        PublishedEntry {
            version: r.version,
            entry_sha256: r.entry_sha256,
            published_at: nara_core::Timestamp(r.published_at).rfc3339(),
            published_by: r.published_by,
            entry: r.entry,
        }
    }
}

/// A register entry with its history and oversight, as the API gives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlgorithmDocument {
    pub code: String,
    /// Whether nara runs this model (behind the decision-record API).
    pub runs_here: bool,
    pub oversight: ReviewFigures,
    /// Every published version, newest first.
    pub versions: Vec<PublishedEntry>,
}

async fn counts(state: &AppState) -> Result<Vec<ReviewCounts>, nara_store::StoreError> {
    state.store.review_counts().await
}

/// The register, each entry's latest version.
#[utoipa::path(get, path = "/api/v1/algorithms", tag = "algorithms",
    responses((status = 200, description = "Every register entry, latest version first in each", body = [AlgorithmDocument])))]
pub async fn list_api(
    State(state): State<AppState>,
) -> Result<Json<Vec<AlgorithmDocument>>, Problem> {
    let counts = counts(&state).await?;
    let entries = register_entries(&state).await?;
    Ok(Json(
        entries
            .iter()
            .map(|r| AlgorithmDocument {
                code: r.entry.code.clone(),
                runs_here: nara_algorithms::model(&r.entry.code).is_some(),
                oversight: ReviewFigures::of(&counts, &r.entry.code),
                versions: vec![PublishedEntry::of(r.clone())],
            })
            .collect(),
    ))
}

/// One register entry with every published version.
#[utoipa::path(get, path = "/api/v1/algorithms/{code}", tag = "algorithms",
    params(("code" = String, Path, description = "The entry's code")),
    responses((status = 200, body = AlgorithmDocument),
              (status = 404, description = "No such entry", body = Problem, content_type = "application/problem+json")))]
pub async fn entry_api(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<AlgorithmDocument>, Problem> {
    let all = versions(&state, &code).await?;
    if all.is_empty() {
        return Err(Problem::not_found(&format!("algorithm {code}")));
    }
    let counts = counts(&state).await?;
    Ok(Json(AlgorithmDocument {
        runs_here: nara_algorithms::model(&code).is_some(),
        oversight: ReviewFigures::of(&counts, &code),
        versions: all.into_iter().map(PublishedEntry::of).collect(),
        code,
    }))
}

/// The Dutch standard's status words.
fn dutch_status(entry: &RegisterEntry) -> &'static str {
    match entry.status {
        nara_core::algorithms::Lifecycle::Development => "In ontwikkeling",
        nara_core::algorithms::Lifecycle::InUse => "In gebruik",
        nara_core::algorithms::Lifecycle::Retired => "Buiten gebruik",
    }
}

/// The latest version in the field names of the Dutch Algorithm Register's
/// publication standard 1.0 (`algoritmeregister`), prose in English.
pub fn dutch(entry: &RegisterEntry, version: i64, url: &str) -> serde_json::Value {
    let join = |parts: Vec<String>| parts.join("\n");
    serde_json::json!({
        "standard_version": "1.0",
        "lang": "en",
        "name": entry.name.en,
        "organization": entry.organisation,
        "department": entry.team,
        "description_short": entry.summary.en,
        "type": entry.model_type,
        "publication_category": entry.category.dutch(),
        "status": dutch_status(entry),
        "begin_date": entry.start_date,
        "end_date": entry.end_date,
        "goal": entry.purpose,
        "impact": entry.benefit,
        "proportionality": format!("{} Alternatives: {}", entry.scope, entry.alternatives),
        "decision_making_process": entry.decision_process,
        "documentation": url,
        "competent_authority": entry.senior_responsible_owner,
        "lawful_basis": entry.legal_basis,
        "iama": !entry.impact_assessments.is_empty(),
        "iama_description": join(entry.impact_assessments.iter().map(|a| format!("{} ({}): {}", a.name, a.date, a.summary)).collect()),
        "objection_procedure": entry.appeal_route,
        "source_data": join(entry.data_sources.iter().map(|s| format!("{} — {}; {}{}", s.name, s.licence, s.completeness, if s.generated { " (generated data)" } else { "" })).collect()),
        "methods_and_models": format!("{} — version {}, SHA-256 {}", entry.model_type, entry.model_version, entry.artefact_sha256),
        "monitoring": entry.review_schedule,
        "human_intervention": entry.human_review,
        "risk_management": join(entry.risks.iter().map(|r| format!("{} Mitigation: {}", r.risk, r.mitigation)).collect()),
        "provider": entry.supplier,
        "contact_email": entry.contact,
        "url": url,
        "nara_version": version,
    })
}

/// The entry in the Dutch standard's shape.
#[utoipa::path(get, path = "/api/v1/algorithms/{code}/algoritmeregister", tag = "algorithms",
    params(("code" = String, Path, description = "The entry's code")),
    responses((status = 200, description = "The latest version in the Dutch Algorithm Register's publication standard 1.0 field names", body = serde_json::Value),
              (status = 404, description = "No such entry", body = Problem, content_type = "application/problem+json")))]
pub async fn dutch_api(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let latest = versions(&state, &code)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Problem::not_found(&format!("algorithm {code}")))?;
    let url = format!("{}/algorithms/{code}", state.config.issuer());
    Ok(Json(dutch(&latest.entry, latest.version, &url)))
}

/// Publishes a new version of a register entry (operators). Refused, with
/// every missing or malformed field named, unless complete; an entry for a
/// model nara runs must name the version and artefact that run.
#[utoipa::path(post, path = "/api/v1/algorithms", tag = "algorithms",
    request_body = RegisterEntry,
    responses((status = 201, description = "Published as a new version", body = AlgorithmDocument),
              (status = 200, description = "Identical to the latest version: not published again", body = AlgorithmDocument),
              (status = 422, description = "Missing or malformed fields, each named; nothing published", body = Problem, content_type = "application/problem+json")))]
pub async fn publish_entry_api(
    State(state): State<AppState>,
    who: crate::identity::auth::Principal,
    ApiJson(entry): ApiJson<RegisterEntry>,
) -> Result<Response, Problem> {
    entry.validate().map_err(Problem::invalid)?;
    if let Some(model) = nara_algorithms::model(&entry.code)
        && (model.version() != entry.model_version
            || model.artefact_sha256() != entry.artefact_sha256)
    {
        return Err(Problem::invalid(nara_core::Invalid::one(
            "artefact_sha256",
            format!(
                "nara runs {} version {} with artefact {}; the entry must name them",
                entry.code,
                model.version(),
                model.artefact_sha256()
            ),
        )));
    }
    let json = serde_json::to_string(&entry).map_err(|_| Problem::internal())?;
    let (_, new) = state
        .store
        .publish_algorithm(&entry.code, &entry.organisation, &json, &who.actor())
        .await?;
    state.register.forget();
    let code = entry.code.clone();
    let Json(document) = entry_api(State(state), ApiPath(code)).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(document)).into_response())
}

/// A row of the register page.
pub struct RegisterRow {
    pub code: String,
    pub name: String,
    pub summary: String,
    pub organisation: String,
    pub category: &'static str,
    pub status: &'static str,
    pub high_impact: bool,
    pub oversight: ReviewFigures,
}

#[derive(Template)]
#[template(path = "algorithms.html")]
struct RegisterPage {
    layout: Layout,
    rows: Vec<RegisterRow>,
    chart: Option<BarChart>,
}

/// The public register.
pub async fn register_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let tr = ctx.tr();
    let counts = counts(&state).await.map_err(store_failed(ctx.lang))?;
    let entries = register_entries(&state)
        .await
        .map_err(store_failed(ctx.lang))?;
    let rows: Vec<RegisterRow> = entries
        .iter()
        .map(|r| RegisterRow {
            oversight: ReviewFigures::of(&counts, &r.entry.code),
            code: r.entry.code.clone(),
            name: r.entry.name.get(ctx.lang).to_owned(),
            summary: r.entry.summary.get(ctx.lang).to_owned(),
            organisation: r.entry.organisation.clone(),
            category: tr.of("algorithms.category", r.entry.category.as_str()),
            status: tr.of("algorithms.status", r.entry.status.as_str()),
            high_impact: r.entry.high_impact.is_high_impact(),
        })
        .collect();
    // Reviewed decisions per model: how much people looked, and changed.
    let most = rows
        .iter()
        .map(|r| r.oversight.accepted + r.oversight.overridden)
        .max()
        .unwrap_or(0);
    let chart = (most > 0).then(|| BarChart {
        id: "reviews-chart",
        title: tr.s("algorithms.reviews_chart").to_owned(),
        bars: rows
            .iter()
            .map(|r| {
                let reviewed = r.oversight.accepted + r.oversight.overridden;
                Bar {
                    width: reviewed * 100 / most,
                    label: tr
                        .s("algorithms.reviews_bar")
                        .replace("{name}", &r.name)
                        .replace("{n}", &reviewed.to_string())
                        .replace("{rate}", &r.oversight.rate_text()),
                }
            })
            .collect(),
    });
    Ok(render(&RegisterPage {
        layout: ctx.layout(tr.s("algorithms.title"), "algorithms"),
        rows,
        chart,
    }))
}

/// A figure as the entry page lists it.
pub struct FigureRow {
    pub subgroup: String,
    pub metric: String,
    pub value: String,
}

#[derive(Template)]
#[template(path = "algorithm.html")]
struct EntryPage {
    layout: Layout,
    entry: RegisterEntry,
    name: String,
    summary: String,
    version: i64,
    published_at: String,
    /// Prose is written in English: marked for screen readers when the page is not.
    prose_lang: &'static str,
    category: &'static str,
    status: &'static str,
    oversight_rule: &'static str,
    high_impact: bool,
    high_impact_area: &'static str,
    oversight: ReviewFigures,
    figures: Vec<FigureRow>,
    history: Vec<(i64, String, String)>,
    runs_here: bool,
}

/// One register entry, in full.
pub async fn entry_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    axum::extract::Path(code): axum::extract::Path<String>,
) -> Result<Response, PageError> {
    let tr = ctx.tr();
    let all = versions(&state, &code)
        .await
        .map_err(store_failed(ctx.lang))?;
    let Some(latest) = all.first() else {
        return Err(PageError::not_found(ctx.lang));
    };
    let counts = counts(&state).await.map_err(store_failed(ctx.lang))?;
    let entry = latest.entry.clone();
    Ok(render(&EntryPage {
        layout: ctx.layout(entry.name.get(ctx.lang), "algorithms"),
        name: entry.name.get(ctx.lang).to_owned(),
        summary: entry.summary.get(ctx.lang).to_owned(),
        version: latest.version,
        published_at: when(latest.published_at),
        prose_lang: "en",
        category: tr.of("algorithms.category", entry.category.as_str()),
        status: tr.of("algorithms.status", entry.status.as_str()),
        oversight_rule: tr.of("algorithms.oversight_rule", entry.oversight.as_str()),
        high_impact: entry.high_impact.is_high_impact(),
        high_impact_area: entry
            .high_impact
            .area
            .map_or("–", |a| tr.of("algorithms.area", a.as_str())),
        oversight: ReviewFigures::of(&counts, &code),
        figures: entry
            .performance
            .iter()
            .map(|f| FigureRow {
                subgroup: f
                    .subgroup
                    .clone()
                    .unwrap_or_else(|| tr.s("algorithms.overall").to_owned()),
                metric: f.metric.replace('_', " "),
                value: format!("{}", f.value),
            })
            .collect(),
        history: all
            .iter()
            .map(|v| (v.version, when(v.published_at), v.entry_sha256.clone()))
            .collect(),
        runs_here: nara_algorithms::model(&code).is_some(),
        entry,
    }))
}
