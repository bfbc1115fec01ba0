//! Health of the inventory: every system with an endpoint is probed (an
//! HTTP GET: status and latency; for https also the days left on the
//! certificate; `tcp://host:port`: a connection) on a schedule by its grade — grade 1 every
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
use nara_core::secops::{Health, classify, may_probe, with_certificate};
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
        let client = match client(state.config.probe_ca_file.as_deref()) {
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

/// The probes' HTTP client: no redirects followed, the certificate kept
/// for its expiry, the operator's extra roots (`probe_ca_file`) trusted.
pub fn client(ca_file: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("nara-probe")
        .tls_info(true);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("probe_ca_file {}: {e}", path.display()))?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder.build()?)
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

/// One probe of one system.
pub async fn probe(client: &reqwest::Client, target: ProbeTarget) -> ProbeResult {
    let started = Instant::now();
    let (health, status, detail) = if target.endpoint_url.starts_with("tcp://") {
        let (health, detail) = connect(&target.endpoint_url).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        // A connection is all a TCP service can show: as fast as an answer must be.
        let health = match health {
            Health::Up if latency_ms > nara_core::secops::SLOW_MS => Health::Degraded,
            h => h,
        };
        (health, None, detail)
    } else {
        let answer = client.get(&target.endpoint_url).send().await;
        let latency_ms = started.elapsed().as_millis() as u64;
        match answer {
            Ok(r) => {
                let status = r.status().as_u16();
                let days_left = r
                    .extensions()
                    .get::<reqwest::tls::TlsInfo>()
                    .and_then(|tls| tls.peer_certificate())
                    .and_then(days_left);
                let detail = match days_left {
                    Some(d) => format!("HTTP {status}; the certificate expires in {d} days"),
                    None => format!("HTTP {status}"),
                };
                let health = with_certificate(classify(Some(status), latency_ms), days_left);
                (health, Some(status), detail)
            }
            Err(e) if e.is_timeout() => (
                Health::Down,
                None,
                format!("no answer within {} s", TIMEOUT.as_secs()),
            ),
            // The innermost cause names it: refused, unreachable, a
            // certificate expired or not trusted.
            Err(e) => (Health::Down, None, innermost(&e)),
        }
    };
    ProbeResult {
        system_id: target.id,
        at: nara_core::Timestamp::now().0,
        health,
        latency_ms: started.elapsed().as_millis() as i64,
        status_code: status.map(i64::from),
        detail,
    }
}

/// A TCP connection to `tcp://host:port`.
async fn connect(endpoint: &str) -> (Health, String) {
    let Some((host, port)) = url::Url::parse(endpoint)
        .ok()
        .and_then(|u| Some((u.host()?.to_owned(), u.port()?)))
    else {
        return (Health::Down, "not a tcp://host:port address".into());
    };
    let address = match host {
        url::Host::Ipv4(ip) => std::net::SocketAddr::from((ip, port)).to_string(),
        url::Host::Ipv6(ip) => std::net::SocketAddr::from((ip, port)).to_string(),
        url::Host::Domain(name) => format!("{name}:{port}"),
    };
    match tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(&address)).await {
        Ok(Ok(_)) => (Health::Up, "TCP connection accepted".into()),
        Ok(Err(e)) => (Health::Down, format!("TCP: {e}")),
        Err(_) => (
            Health::Down,
            format!("TCP: no connection within {} s", TIMEOUT.as_secs()),
        ),
    }
}

/// Whole days until a DER certificate expires (negative: expired).
fn days_left(der: &[u8]) -> Option<i64> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let until = certificate.validity().not_after.timestamp();
    let now = nara_core::Timestamp::now().0 / 1000;
    Some((until - now).div_euclid(86_400))
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string().chars().take(200).collect()
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

/// Points six of the demo's Ministry of the Interior systems at the
/// demo's own probe targets on `listen` (healthy, healthy, slow, failing,
/// then `tls`'s certificate about to expire, and the demo's own TCP port)
/// and has three of its services depend on them, so the health pages are
/// lived in; each start, as the ports may change.
pub async fn ensure_demo(
    store: &Store,
    listen: std::net::SocketAddr,
    tls: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let agency: nara_core::MemberId = "KR/GOV/MOIS".parse()?;
    let page = nara_core::catalogue::PageRequest {
        page: 1,
        per_page: 6,
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
    if systems.len() < 6 || services.len() < 3 {
        return Ok(());
    }
    let ip = if listen.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        listen.ip()
    };
    let own = std::net::SocketAddr::new(ip, listen.port());
    let base = format!("http://{own}");
    let endpoints = ["ok", "ok", "slow", "fail"]
        .map(|target| format!("{base}/demo/probe/{target}"))
        .into_iter()
        .chain([
            format!("https://{tls}/demo/probe/ok"),
            format!("tcp://{own}"),
        ]);
    for (system, endpoint) in systems.iter().zip(endpoints) {
        let mut details = system.details.clone();
        details.endpoint_url = Some(endpoint);
        store.update_system(system.id, &details, "demo").await?;
    }
    for (service, deps) in services.iter().zip([&[0usize, 1, 5][..], &[0, 2, 4], &[3]]) {
        for d in deps {
            store
                .add_service_dependency(service.id, systems[*d].id)
                .await?;
        }
    }
    Ok(())
}

/// Days the demo's https probe target's certificate is valid for: under
/// [`nara_core::secops::CERTIFICATE_WARN_DAYS`], so its system shows degraded.
pub const DEMO_CERTIFICATE_DAYS: i64 = 9;

/// The demo's https probe target: a certificate from a CA made on the
/// spot, expiring in [`DEMO_CERTIFICATE_DAYS`], served on loopback (port
/// chosen by the system). The CA's certificate is written to
/// `data_dir/demo-probe-ca.pem` for `probe_ca_file`. Returns the address.
pub async fn serve_demo_tls(
    data_dir: &std::path::Path,
) -> anyhow::Result<(std::net::SocketAddr, std::path::PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use tokio_rustls::rustls;
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "nara demo probe CA");
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(365);
    let ca = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "expiring.demo.nara");
    leaf.not_before = now - time::Duration::days(1);
    // The half day keeps the whole days left at DEMO_CERTIFICATE_DAYS all day.
    leaf.not_after = now + time::Duration::days(DEMO_CERTIFICATE_DAYS) + time::Duration::hours(12);
    let leaf = leaf.signed_by(&key, &ca, &ca_key)?;
    let ca_path = data_dir.join("demo-probe-ca.pem");
    std::fs::write(&ca_path, ca.pem())?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )?;
    let tcp = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = tcp.local_addr()?;
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
    };
    let app = axum::Router::new().route(
        "/demo/probe/ok",
        axum::routing::get(|| async { "ok: served with a certificate that expires soon" }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((address, ca_path))
}

/// TLS over a TCP listener, for `axum::serve`: a handshake that fails or
/// stalls is dropped, never returned.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if let Ok(Ok(tls)) = tokio::time::timeout(TIMEOUT, self.acceptor.accept(stream)).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
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
