//! Citizens' phishing and smishing reports turned into a blocklist: every
//! few seconds the new reports' sender and message are read for web
//! addresses, domains and telephone numbers ([`nara_core::indicators`]),
//! counted once per report; analysts review them by score (reports, halved
//! each week since the last); listed ones are published while reported
//! within 90 days — as plain text, JSON and a STIX 2.1 bundle — with their
//! first and last report.

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::indicators::{IndicatorKind, extract, score};
use nara_store::blocklist::{ReportIndicators, StoredIndicator};
use serde::Deserialize;

use crate::AppState;
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, render, store_failed, when};

/// The one rule of review: from each state, where an analyst may move an
/// indicator (a listed one may be taken off, a rejected one listed).
const REVIEW: [(&str, &[&str]); 3] = [
    ("pending", &["listed", "rejected"]),
    ("listed", &["rejected"]),
    ("rejected", &["listed"]),
];

/// Reports read a round at most.
const BATCH: i64 = 500;

/// Reads new reports every three seconds.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = round(&state).await {
                tracing::warn!(error = %e, "blocklist: reading phishing reports");
            }
        }
    })
}

/// What a report points at: its sender and its message.
pub fn report_indicators(answers: &str) -> Vec<nara_core::indicators::Indicator> {
    let answers: serde_json::Value = serde_json::from_str(answers).unwrap_or_default();
    let field = |name: &str| answers.get(name).and_then(|v| v.as_str()).unwrap_or("");
    extract(&format!("{}\n{}", field("sender"), field("content")))
}

/// One round: every report since the last, counted; how many were read.
pub async fn round(state: &AppState) -> Result<usize, nara_store::StoreError> {
    let mut read = 0;
    loop {
        let cursor = state.store.blocklist_cursor().await?;
        let reports = state.store.phishing_reports_after(cursor, BATCH).await?;
        let Some(last) = reports.last().map(|r| r.id) else {
            return Ok(read);
        };
        let found: Vec<ReportIndicators> = reports
            .iter()
            .map(|r| ReportIndicators {
                report: r.reference.clone(),
                at: r.submitted_at,
                indicators: report_indicators(&r.answers),
            })
            .collect();
        state.store.record_report_indicators(&found, last).await?;
        read += reports.len();
    }
}

/// Indicators in one state, and where review may move them.
pub struct Section {
    pub name: &'static str,
    pub list: Vec<IndicatorView>,
    pub moves: &'static [&'static str],
}

pub struct IndicatorView {
    pub indicator: StoredIndicator,
    pub score: String,
    pub first: String,
    pub last: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "security_blocklist.html")]
struct BlocklistPage {
    layout: Layout,
    sections: Vec<Section>,
    may_review: bool,
    csrf: String,
}

fn views(mut list: Vec<StoredIndicator>, now: i64) -> Vec<IndicatorView> {
    list.sort_by(|a, b| {
        score(b.reports, b.last_reported, now).total_cmp(&score(a.reports, a.last_reported, now))
    });
    list.into_iter()
        .map(|i| IndicatorView {
            score: format!("{:.1}", score(i.reports, i.last_reported, now)),
            first: when(i.first_reported),
            last: when(i.last_reported),
            expires: when(i.expires_at()),
            indicator: i,
        })
        .collect()
}

pub async fn blocklist_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let now = nara_core::Timestamp::now().0;
    let mut sections = Vec::new();
    for (name, moves) in REVIEW {
        let list = state
            .store
            .indicators(Some(name), 500)
            .await
            .map_err(store_failed(ctx.lang))?;
        sections.push(Section {
            name,
            list: views(list, now),
            moves,
        });
    }
    let person = ctx.caller.person();
    Ok(render(&BlocklistPage {
        layout: ctx.layout(ctx.tr().s("blocklist.title"), "security"),
        sections,
        may_review: person.is_some_and(|p| p.has_role(nara_core::identity::Role::SecurityAnalyst)),
        csrf: person.and_then(|p| p.csrf()).unwrap_or_default().to_owned(),
    }))
}

#[derive(Deserialize)]
pub struct ReviewForm {
    from: String,
    to: String,
}

/// Lists or rejects an indicator (analysts); a listed one may be taken off
/// (rejected), a rejected one listed.
pub async fn review(
    ctx: PageCtx,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<ReviewForm>,
) -> Result<Response, PageError> {
    let allowed = REVIEW
        .iter()
        .any(|(from, moves)| *from == form.from && moves.contains(&form.to.as_str()));
    if !allowed {
        return Err(PageError::bad_request(ctx.lang));
    }
    let Some(person) = ctx.caller.person() else {
        return Err(PageError::forbidden(ctx.lang));
    };
    match state
        .store
        .review_indicator(id, &form.from, &form.to, &person.actor())
        .await
    {
        Ok(()) => Ok(Redirect::to("/security/blocklist").into_response()),
        Err(nara_store::StoreError::Conflict(_)) => Err(PageError::conflict(ctx.lang)),
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

async fn current(state: &AppState) -> Result<Vec<StoredIndicator>, Response> {
    state
        .store
        .blocklist(nara_core::Timestamp::now().0)
        .await
        .map_err(|e| crate::problem::Problem::from(e).into_response())
}

fn feed(content_type: &'static str, body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Consumers poll; a minute's staleness is fine and spares the node.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    r
}

/// The blocklist as plain text: one indicator a line, `#` comments.
pub async fn feed_text(State(state): State<AppState>) -> Response {
    let list = match current(&state).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut body = format!(
        "# nara phishing and smishing blocklist: {} entries, reviewed by security analysts\n\
         # kind\tvalue\tfirst reported\tlast reported\treports\tlisted until\n",
        list.len()
    );
    for i in &list {
        body.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            i.kind,
            i.value,
            stix_time(i.first_reported),
            stix_time(i.last_reported),
            i.reports,
            stix_time(i.expires_at())
        ));
    }
    feed("text/plain; charset=utf-8", body)
}

/// The blocklist as JSON.
pub async fn feed_json(State(state): State<AppState>) -> Response {
    let list = match current(&state).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let entries: Vec<serde_json::Value> = list
        .iter()
        .map(|i| {
            serde_json::json!({
                "kind": i.kind,
                "value": i.value,
                "first_reported": stix_time(i.first_reported),
                "last_reported": stix_time(i.last_reported),
                "reports": i.reports,
                "listed_until": stix_time(i.expires_at()),
            })
        })
        .collect();
    feed(
        "application/json",
        serde_json::json!({ "generated": stix_time(nara_core::Timestamp::now().0), "entries": entries })
            .to_string(),
    )
}

/// The blocklist as a STIX 2.1 bundle: nara's identity and one indicator
/// object per entry (a STIX pattern over `url`, `domain-name`, or — STIX
/// having no telephone object — the custom `x-nara-phone-number`).
pub async fn feed_stix(State(state): State<AppState>) -> Response {
    let list = match current(&state).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    feed(
        "application/stix+json;version=2.1",
        stix_bundle(&list, nara_core::Timestamp::now().0).to_string(),
    )
}

/// A moment as STIX writes it (RFC 3339, UTC, milliseconds).
fn stix_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// STIX ids of domain objects should be UUIDv4: these take their 122
/// random bits from a SHA-256 of what they name, so the same indicator
/// keeps its id from one feed to the next.
fn stix_id(kind: &str, name: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("nara stix {kind} {name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    format!(
        "{kind}--{}",
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    )
}

pub fn stix_bundle(list: &[StoredIndicator], now: i64) -> serde_json::Value {
    let identity = stix_id("identity", "nara security operations");
    let epoch = stix_time(1_764_547_200_000); // 2025-12-01: when nara's identity object was first published
    let mut objects = vec![serde_json::json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": identity,
        "created": epoch,
        "modified": epoch,
        "name": "nara security operations",
        "identity_class": "organization",
    })];
    for i in list {
        let quoted = i.value.replace('\\', "\\\\").replace('\'', "\\'");
        let pattern = match IndicatorKind::parse(&i.kind) {
            Some(IndicatorKind::Url) => format!("[url:value = '{quoted}']"),
            Some(IndicatorKind::Domain) => format!("[domain-name:value = '{quoted}']"),
            Some(IndicatorKind::Phone) => format!("[x-nara-phone-number:value = '{quoted}']"),
            None => continue,
        };
        objects.push(serde_json::json!({
            "type": "indicator",
            "spec_version": "2.1",
            "id": stix_id("indicator", &format!("{}:{}", i.kind, i.value)),
            "created_by_ref": identity,
            "created": stix_time(i.reviewed_at.unwrap_or(i.first_reported)),
            "modified": stix_time(i.reviewed_at.unwrap_or(i.first_reported).max(i.last_reported)),
            "name": format!("Reported {}: {}", i.kind, i.value),
            "description": format!("Reported by citizens {} times, first {}, last {}; reviewed by a security analyst.", i.reports, stix_time(i.first_reported), stix_time(i.last_reported)),
            "indicator_types": ["malicious-activity"],
            "pattern": pattern,
            "pattern_type": "stix",
            "valid_from": stix_time(i.first_reported),
            "valid_until": stix_time(i.expires_at()),
        }));
    }
    serde_json::json!({
        "type": "bundle",
        "id": stix_id("bundle", &format!("blocklist at {now}")),
        "objects": objects,
    })
}
