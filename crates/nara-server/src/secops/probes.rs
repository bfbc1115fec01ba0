//! Health of the inventory: every system with an endpoint is probed (an
//! HTTP GET: status and latency) on a schedule by its grade — grade 1 every
//! 30 s … grade 4 every 15 min — at most [`CONCURRENCY`] at a time, so the
//! node keeps serving. Only loopback endpoints unless the operator set
//! `probe_whole_inventory` ([`may_probe`]): nothing contacts an address an
//! operator did not choose. A service is as healthy as the worst system it
//! depends on ([`service_health`]); operators see it on
//! `/operations/health`, everyone on the service's page and `/status`.

use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use nara_core::secops::{Health, classify, may_probe};
use nara_store::Store;
use nara_store::health::{ProbeResult, ProbeTarget, SystemHealth};

use crate::AppState;
use crate::web::{Bar, BarChart, Layout, PageCtx, PageError, render, store_failed, when};

/// Probes in flight at most.
pub const CONCURRENCY: usize = 64;
/// Systems taken a round at most.
const ROUND: i64 = 2_000;
/// A probe gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Probes what is due every two seconds.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("nara-probe")
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "probes: no HTTP client; systems are not probed");
                return;
            }
        };
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = round(&state.store, &client, state.config.probe_whole_inventory).await {
                tracing::warn!(error = %e, "probes");
            }
        }
    })
}

/// One round: every system due, probed (at most [`CONCURRENCY`] at a
/// time); how many were probed.
pub async fn round(
    store: &Store,
    client: &reqwest::Client,
    whole_inventory: bool,
) -> Result<usize, nara_store::StoreError> {
    let now = nara_core::Timestamp::now().0;
    let due: Vec<ProbeTarget> = store
        .probe_targets(now, ROUND, !whole_inventory)
        .await?
        .into_iter()
        .filter(|t| may_probe(&t.endpoint_url, whole_inventory))
        .collect();
    let results: Vec<ProbeResult> = futures_util::stream::iter(due)
        .map(|t| probe(client, t))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    store.record_probes(&results).await?;
    Ok(results.len())
}

async fn probe(client: &reqwest::Client, target: ProbeTarget) -> ProbeResult {
    let started = Instant::now();
    let answer = client.get(&target.endpoint_url).send().await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (status, detail) = match answer {
        Ok(r) => (
            Some(r.status().as_u16()),
            format!("HTTP {}", r.status().as_u16()),
        ),
        Err(e) if e.is_timeout() => (None, format!("no answer within {} s", TIMEOUT.as_secs())),
        Err(e) if e.is_connect() => (None, "connection refused or unreachable".to_owned()),
        Err(_) => (None, "the request failed".to_owned()),
    };
    ProbeResult {
        system_id: target.id,
        at: nara_core::Timestamp::now().0,
        health: classify(status, latency_ms),
        latency_ms: latency_ms as i64,
        status_code: status.map(i64::from),
        detail,
    }
}

pub struct HealthRow {
    pub system: SystemHealth,
    pub since: String,
    pub checked: String,
    pub uptime: String,
}

#[derive(Template)]
#[template(path = "operations_health.html")]
struct HealthPage {
    layout: Layout,
    systems: Vec<HealthRow>,
    services: Vec<(i64, String, String)>,
    chart: BarChart,
    whole_inventory: bool,
}

pub fn rows(systems: Vec<SystemHealth>) -> Vec<HealthRow> {
    systems
        .into_iter()
        .map(|s| HealthRow {
            since: when(s.since),
            checked: when(s.checked_at),
            uptime: format!("{:.1} %", s.uptime() * 100.0),
            system: s,
        })
        .collect()
}

/// The probed systems and the services they hold up (operators, analysts,
/// auditors).
pub async fn health_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let now = nara_core::Timestamp::now().0;
    let systems = state
        .store
        .systems_health(now)
        .await
        .map_err(store_failed(ctx.lang))?;
    let services = state
        .store
        .services_not_up()
        .await
        .map_err(store_failed(ctx.lang))?;
    // Uptime over the last day, the least available first (as listed).
    let chart = BarChart {
        id: "uptime-title",
        title: ctx.tr().s("health.chart").into(),
        bars: systems
            .iter()
            .take(20)
            .map(|s| Bar {
                width: (s.uptime() * 100.0).round() as i64,
                label: format!("{:.1} % · {}", s.uptime() * 100.0, s.name),
            })
            .collect(),
    };
    Ok(render(&HealthPage {
        layout: ctx.layout(ctx.tr().s("health.title"), "health"),
        systems: rows(systems),
        services,
        chart,
        whole_inventory: state.config.probe_whole_inventory,
    }))
}

/// The demo's own systems to probe (`nara demo` only): `ok` answers at
/// once, `slow` after 1.5 s, `fail` with 503.
pub async fn demo_target(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if !state.config.demo {
        return StatusCode::NOT_FOUND.into_response();
    }
    match name.as_str() {
        "ok" => (StatusCode::OK, "ok").into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            (StatusCode::OK, "slow but ok").into_response()
        }
        "fail" => (StatusCode::SERVICE_UNAVAILABLE, "failing").into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Points four of the demo's Ministry of the Interior systems at the
/// demo's own probe targets on `listen` (healthy, healthy, slow, failing)
/// and has three of its services depend on them, so the health pages are
/// lived in; each start, as the port may change.
pub async fn ensure_demo(store: &Store, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let agency: nara_core::MemberId = "KR/GOV/MOIS".parse()?;
    let page = nara_core::catalogue::PageRequest {
        page: 1,
        per_page: 4,
    };
    let systems = store
        .list_systems(
            &nara_core::catalogue::SystemFilter {
                agency: Some(agency.clone()),
                ..Default::default()
            },
            page,
        )
        .await?
        .items;
    let services = store
        .list_services(
            &nara_core::catalogue::ServiceFilter {
                agency: Some(agency),
                ..Default::default()
            },
            nara_core::catalogue::PageRequest {
                page: 1,
                per_page: 3,
            },
        )
        .await?
        .items;
    if systems.len() < 4 || services.len() < 3 {
        return Ok(());
    }
    let ip = if listen.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        listen.ip()
    };
    let base = format!("http://{}", std::net::SocketAddr::new(ip, listen.port()));
    for (system, target) in systems.iter().zip(["ok", "ok", "slow", "fail"]) {
        let mut details = system.details.clone();
        details.endpoint_url = Some(format!("{base}/demo/probe/{target}"));
        store.update_system(system.id, &details, "demo").await?;
    }
    for (service, deps) in services.iter().zip([&[0usize, 1][..], &[0, 2], &[3]]) {
        for d in deps {
            store
                .add_service_dependency(service.id, systems[*d].id)
                .await?;
        }
    }
    Ok(())
}

/// A service's health for its page: its state and the probed systems it
/// depends on (none: nothing to show).
pub async fn service_health(
    store: &Store,
    service_id: i64,
) -> Result<Option<(Health, Vec<HealthRow>)>, nara_store::StoreError> {
    let deps = store
        .service_dependencies_health(service_id, nara_core::Timestamp::now().0)
        .await?;
    if deps.is_empty() {
        return Ok(None);
    }
    let health = nara_core::secops::service_health(deps.iter().map(SystemHealth::health));
    Ok(Some((health, rows(deps))))
}
