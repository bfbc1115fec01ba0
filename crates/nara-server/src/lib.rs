//! nara's HTTP layer: the JSON API, the pages, the operations endpoints and
//! the middleware around them. [`router`] builds the whole application from
//! an [`AppState`]; the binary and the integration tests both call it.

pub mod api;
pub mod auth;
pub mod config;
pub mod extract;
pub mod i18n;
pub mod ledger;
pub mod metrics;
pub mod pages;
pub mod problem;
mod security;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nara_store::Store;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use config::Config;
pub use metrics::Metrics;
use problem::Problem;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub ledger: Arc<ledger::LedgerKeys>,
}

impl AppState {
    pub fn new(store: Store, config: Config, ledger: ledger::LedgerKeys) -> Self {
        AppState {
            store,
            config: Arc::new(config),
            metrics: Metrics::new(),
            ledger: Arc::new(ledger),
        }
    }
}

/// A request extension marking a deployment reached over TLS.
#[derive(Clone, Copy)]
pub struct Https;

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "The database is not reachable",
            )
            .into_response()
        }
    }
}

async fn stylesheet() -> Response {
    static_asset(
        "text/css; charset=utf-8",
        include_str!("../static/style.css"),
    )
}

async fn favicon() -> Response {
    static_asset("image/svg+xml", include_str!("../static/favicon.svg"))
}

async fn htmx() -> Response {
    static_asset(
        "text/javascript; charset=utf-8",
        include_str!("../static/htmx.min.js"),
    )
}

fn static_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Unknown addresses: a problem under `/api/`, a page elsewhere.
async fn fallback(uri: Uri, headers: axum::http::HeaderMap) -> Response {
    if uri.path().starts_with("/api/") {
        Problem::not_found(&format!("route {}", uri.path())).into_response()
    } else {
        pages::not_found(headers).await
    }
}

async fn mark_https(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if state.config.is_https() {
        request.extensions_mut().insert(Https);
    }
    next.run(request).await
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    use axum::routing::{get as g, post};

    let api = Router::new()
        .route(
            "/api/v1/agencies",
            g(api::list_agencies).post(api::create_agency),
        )
        .route(
            "/api/v1/agencies/{*id}",
            g(api::get_agency).put(api::update_agency),
        )
        .route(
            "/api/v1/systems",
            g(api::list_systems).post(api::create_system),
        )
        .route(
            "/api/v1/systems/{id}",
            g(api::get_system).put(api::update_system),
        )
        .route(
            "/api/v1/services",
            g(api::list_services).post(api::create_service),
        )
        .route(
            "/api/v1/services/{id}",
            g(api::get_service).put(api::update_service),
        )
        .route("/api/v1/ledger/entries/{index}", g(ledger::entry))
        .route("/api/v1/ledger/consistency", g(ledger::consistency))
        .route("/openapi.json", g(api::openapi));

    // C2SP tlog-tiles, served as the spec names them.
    let tiles = Router::new()
        .route("/ledger/checkpoint", g(ledger::checkpoint))
        .route("/ledger/vkey", g(ledger::vkey))
        .route("/ledger/vkeys", g(ledger::vkeys))
        .route("/ledger/tile/{*path}", g(ledger::tile));

    let pages = Router::new()
        .route("/", g(pages::home))
        .route("/services", g(pages::services))
        .route("/services/{id}", g(pages::service))
        .route("/agencies", g(pages::agencies))
        .route("/agencies/{*id}", g(pages::agency))
        .route("/systems", g(pages::systems))
        .route("/ledger", g(pages::ledger))
        .route(
            "/operator/sign-in",
            g(pages::sign_in_form).post(pages::sign_in),
        )
        .route("/operator/sign-out", post(pages::sign_out))
        .layer(middleware::from_fn(pages::same_origin_only))
        .layer(middleware::from_fn(pages::remember_language));

    let operations = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::scrape))
        .route("/static/style.css", get(stylesheet))
        .route("/static/htmx.min.js", get(htmx))
        .route("/static/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon));

    let max_body = state.config.max_body_bytes;
    Router::new()
        .merge(api)
        .merge(tiles)
        .merge(pages)
        .merge(operations)
        .fallback(fallback)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), mark_https))
        .layer(middleware::from_fn(security::headers))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish
/// (for at most 30 seconds) before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = state.store.clone();
    let integrator = ledger::spawn_integrator(store.clone(), state.ledger.clone());
    let app = router(state);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = done_tx.send(());
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful);
    let server = tokio::spawn(async move { server.await });
    // Once shutdown starts, give in-flight requests a bounded time to finish.
    let result = match done_rx.await {
        Ok(()) => match tokio::time::timeout(Duration::from_secs(30), server).await {
            Ok(joined) => joined.unwrap_or(Ok(())),
            Err(_) => {
                tracing::warn!("in-flight requests did not finish within 30 s");
                Ok(())
            }
        },
        Err(_) => server.await.unwrap_or(Ok(())),
    };
    integrator.abort();
    store.close().await;
    result
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
