//! nara's HTTP layer: the JSON API, the pages, the operations endpoints and
//! the middleware around them. [`router`] builds the whole application from
//! an [`AppState`]; the binary and the integration tests both call it.

pub mod account;
pub mod api;
pub mod application_api;
pub mod auth;
pub mod cases;
pub mod config;
pub mod credentials;
pub mod definitions;
pub mod demo;
pub mod exchange;
pub mod exchange_pages;
pub mod extract;
pub mod group_commit;
pub mod i18n;
pub mod keyfile;
pub mod ledger;
pub mod machine;
pub mod mailer;
pub mod media;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod passkey;
pub mod policy;
pub mod portal;
pub mod problem;
pub mod security;
pub mod services;
pub mod statistics;
pub mod uploads;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
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
    pub identity: Arc<auth::IdentityKeys>,
    pub rules: Arc<policy::Rules>,
    pub passwords: Arc<auth::PasswordWork>,
    /// Failed sign-ins by account and by address.
    pub account_throttle: Arc<auth::Throttle>,
    /// Published service definitions, parsed once.
    pub definitions: Arc<definitions::Definitions>,
    /// `/verify/file`'s bounded QR decoding.
    pub qr: Arc<credentials::QrGate>,
    pub address_throttle: Arc<auth::Throttle>,
    pub callers: Arc<auth::CallerCache>,
    /// The WebAuthn relying party, when the public URL has a domain name.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// The exchange gateway (directory, replay window, message log writer).
    pub exchange: Arc<exchange::gateway::Exchange>,
    /// Submissions through the API, group-committed.
    pub submissions: Arc<application_api::Submissions>,
    /// Service figures, recomputed at most every 30 s.
    pub figures: Arc<statistics::FiguresCache>,
}

impl AppState {
    pub fn new(
        store: Store,
        config: Config,
        ledger: ledger::LedgerKeys,
        identity: auth::IdentityKeys,
    ) -> Self {
        let webauthn = passkey::relying_party(&config).map(Arc::new);
        let exchange = exchange::gateway::Exchange::new(
            identity.gateway_key(),
            config.node_id.as_deref().unwrap_or("local"),
            Duration::from_millis(config.exchange_timeout_ms),
            None,
        );
        AppState {
            exchange: Arc::new(exchange),
            store,
            webauthn,
            config: Arc::new(config),
            metrics: Metrics::new(),
            ledger: Arc::new(ledger),
            identity: Arc::new(identity),
            rules: Arc::new(policy::Rules::new(&route_rules())),
            passwords: Arc::new(auth::PasswordWork::default()),
            account_throttle: Arc::new(auth::Throttle::new(auth::ACCOUNT_FREE_FAILURES)),
            qr: Arc::default(),
            definitions: Arc::default(),
            address_throttle: Arc::new(auth::Throttle::new(auth::ADDRESS_FREE_FAILURES)),
            callers: Arc::default(),
            submissions: Arc::new(application_api::submissions()),
            figures: Arc::default(),
        }
    }
}

impl AppState {
    /// Joins the federation a signed global configuration describes: this
    /// node's gateway forwards to the nodes that serve other members.
    pub fn federated(mut self, federation: exchange::federation::Federation) -> Self {
        let node = federation.node.clone();
        self.exchange = Arc::new(exchange::gateway::Exchange::new(
            self.identity.gateway_key(),
            &node,
            Duration::from_millis(self.config.exchange_timeout_ms),
            Some(federation),
        ));
        self
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

async fn passkey_js() -> Response {
    static_asset(
        "text/javascript; charset=utf-8",
        include_str!("../static/passkey.js"),
    )
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
        web::not_found(headers).await
    }
}

async fn mark_https(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if state.config.is_https() {
        request.extensions_mut().insert(Https);
    }
    next.run(request).await
}

/// Declares routes and their policy rules together, so neither exists
/// without the other: `"/path" => get(handler): Rule, post(handler): Rule;`.
/// Yields the router and the rule table.
macro_rules! routes {
    ($( $path:literal => $( $method:ident ( $handler:expr ) : $rule:expr ),+ ;)*) => {{
        let mut router: Router<AppState> = Router::new();
        let mut table: Vec<policy::RouteRule> = Vec::new();
        $(
            let mut on = axum::routing::MethodRouter::<AppState>::new();
            $(
                on = on.$method($handler);
                table.push(policy::RouteRule {
                    method: policy_method(stringify!($method)),
                    path: $path,
                    rule: $rule,
                });
            )+
            router = router.route($path, on);
        )*
        (router, table)
    }};
}

const fn policy_method(m: &'static str) -> &'static str {
    match m.as_bytes() {
        b"get" => "GET",
        b"post" => "POST",
        b"put" => "PUT",
        b"delete" => "DELETE",
        _ => "UNKNOWN",
    }
}

/// Every route with its rule, in groups that share middleware.
fn routes() -> (Router<AppState>, Vec<policy::RouteRule>) {
    use nara_core::identity::Role::*;
    use policy::Rule::*;
    const STAFF_INVENTORY: &[nara_core::identity::Role] = &[Operator, SecurityAnalyst, Auditor];
    const OPERATORS: &[nara_core::identity::Role] = &[Operator];
    const DESIGNERS: &[nara_core::identity::Role] = &[Operator, ServiceDesigner];

    let (api, mut table) = routes! {
        "/api/v1/agencies" => get(api::list_agencies): Public, post(api::create_agency): Api(OPERATORS, "catalogue:write");
        "/api/v1/agencies/{*id}" => get(api::get_agency): Public, put(api::update_agency): Api(OPERATORS, "catalogue:write");
        "/api/v1/systems" => get(api::list_systems): Api(STAFF_INVENTORY, "systems:read"), post(api::create_system): Api(OPERATORS, "catalogue:write");
        "/api/v1/systems/{id}" => get(api::get_system): Api(STAFF_INVENTORY, "systems:read"), put(api::update_system): Api(OPERATORS, "catalogue:write");
        "/api/v1/services" => get(api::list_services): Public, post(api::create_service): Api(DESIGNERS, "catalogue:write");
        "/api/v1/services/{id}" => get(api::get_service): Public, put(api::update_service): Api(DESIGNERS, "catalogue:write");
        "/api/v1/ledger/entries/{index}" => get(ledger::entry): Public;
        "/api/v1/ledger/consistency" => get(ledger::consistency): Public;
        "/api/v1/security/events" => get(account::security_events_api): Api(&[SecurityAnalyst, Auditor], "identity:read");
        "/api/v1/machine/whoami" => get(machine::whoami): Machine, post(machine::whoami): Machine;
        "/api/v1/registries" => get(exchange_pages::registries_api): Public;
        "/api/v1/service-definitions" => get(services::definitions_api): Public, post(services::publish_api): Api(DESIGNERS, "catalogue:write");
        "/api/v1/service-definitions/{code}" => get(services::definition_api): Public;
        "/api/v1/credentials/verify" => post(credentials::verify_api): Public;
        "/api/v1/registries/{code}/record" => get(exchange_pages::registry_record): Machine, put(exchange_pages::put_registry_record): Machine;
        "/api/v1/me/consents" => get(exchange_pages::my_consents_api): Roles(&[Citizen]), post(exchange_pages::grant_consent_api): Roles(&[Citizen]);
        "/api/v1/me/consents/{id}/revoke" => post(exchange_pages::revoke_consent_api): Roles(&[Citizen]);
        "/api/v1/services/{code}/applications" => post(application_api::create): Roles(&[Citizen]);
        "/api/v1/me/applications" => get(application_api::mine): Roles(&[Citizen]);
        "/api/v1/applications/{reference}" => get(application_api::one): Roles(&[Citizen]);
        "/api/v1/me/data-access" => get(exchange_pages::data_access_api): Roles(&[Citizen]);
        "/api/v1/me/ledger-openings" => get(ledger::my_openings): Roles(&[Citizen]);
        "/api/v1/ledger/openings/{commitment}" => get(ledger::open_commitment): Roles(&[Auditor]);
        "/openapi.json" => get(api::openapi): Public;
    };

    // C2SP tlog-tiles, served as the spec names them.
    let (tiles, t) = routes! {
        "/ledger/checkpoint" => get(ledger::checkpoint): Public;
        "/ledger/vkey" => get(ledger::vkey): Public;
        "/ledger/vkeys" => get(ledger::vkeys): Public;
        "/ledger/tile/{*path}" => get(ledger::tile): Public;
    };
    table.extend(t);

    // The OpenID Connect provider's machine endpoints (CORS-free, no cookies
    // except on the authorization endpoint, which is a page).
    // The exchange gateway speaks X-Road's protocol, errors included, and
    // authenticates its callers itself.
    let (xroad, t) = routes! {
        "/r1/{*rest}" => get(exchange::gateway::exchange): Exchange, post(exchange::gateway::exchange): Exchange, put(exchange::gateway::exchange): Exchange, delete(exchange::gateway::exchange): Exchange;
        "/listClients" => get(exchange::gateway::list_clients): Public;
    };
    table.extend(t);

    let (oidc, t) = routes! {
        "/.well-known/openid-configuration" => get(oidc::discovery): Public;
        "/oidc/jwks" => get(oidc::jwks): Public;
        "/credentials/jwks.json" => get(credentials::jwks): Public;
        "/credentials/contexts/v1" => get(credentials::context): Public;
        "/.well-known/jwt-vc-issuer/agencies/{*agency}" => get(credentials::issuer_metadata): Public;
        "/credentials/status/{*list}" => get(credentials::status_list): Public;
        "/oidc/token" => post(oidc::token): Public;
        "/oidc/userinfo" => get(oidc::userinfo): Public, post(oidc::userinfo): Public;
        "/oidc/revoke" => post(oidc::revoke): Public;
    };
    table.extend(t);

    let (pages, t) = routes! {
        "/" => get(pages::home): Public;
        "/services" => get(pages::services): Public;
        "/services/{id}" => get(pages::service): Public;
        "/agencies" => get(pages::agencies): Public;
        "/agencies/{*id}" => get(pages::agency): Public;
        "/systems" => get(pages::systems): Roles(STAFF_INVENTORY);
        "/ledger" => get(pages::ledger): Public;
        "/sign-in" => get(account::sign_in_form): Public, post(account::sign_in): Public;
        "/sign-in/second-factor" => get(account::second_factor_form): SigningIn, post(account::second_factor): SigningIn;
        "/sign-in/set-up-second-factor" => get(account::enrol_form): SigningIn, post(account::enrol): SigningIn;
        "/sign-up" => get(account::sign_up_form): Public, post(account::sign_up): Public;
        "/sign-out" => post(account::sign_out): SigningIn;
        "/account" => get(account::account_page): SignedIn;
        "/account/second-factor" => get(account::enrol_form): SignedIn, post(account::enrol): SignedIn;
        "/account/sessions/end" => post(account::end_sessions): SignedIn;
        "/account/apps/revoke" => post(account::revoke_app): SignedIn;
        "/account/tokens" => post(account::create_token): Roles(OPERATORS);
        "/account/passkeys/begin" => post(passkey::register_begin): SignedIn;
        "/account/passkeys/finish" => post(passkey::register_finish): SignedIn;
        "/account/passkeys/remove" => post(passkey::remove): SignedIn;
        "/sign-in/passkey/begin" => post(passkey::sign_in_begin): SigningIn;
        "/sign-in/passkey/finish" => post(passkey::sign_in_finish): SigningIn;
        "/account/tokens/revoke" => post(account::revoke_token): Roles(OPERATORS);
        "/admin/officials" => get(account::officials_page): Roles(&[AgencyAdmin]), post(account::create_official): Roles(&[AgencyAdmin]);
        "/admin/roles" => post(account::change_role): Roles(&[AgencyAdmin]);
        "/admin/apps" => get(account::apps_page): Roles(&[AgencyAdmin]), post(account::register_app): Roles(&[AgencyAdmin]);
        "/admin/machine-clients" => get(account::machine_clients_page): Roles(&[AgencyAdmin]), post(account::register_machine_client): Roles(&[AgencyAdmin]);
        "/admin/machine-clients/revoke" => post(account::revoke_machine_client): Roles(&[AgencyAdmin]);
        "/security/events" => get(account::security_events_page): Roles(&[SecurityAnalyst, Auditor]);
        "/registries" => get(exchange_pages::registries_page): Public;
        "/apply" => get(services::apply_list): Public;
        "/statistics" => get(statistics::page): Public;
        "/statistics.csv" => get(statistics::csv): Public;
        "/applications/{reference}/rate" => post(portal::rate): Roles(&[Citizen]);
        "/applications/{reference}/files/{field}" => get(uploads::download): Roles(&[Citizen]),
            post(axum::handler::Handler::layer(uploads::upload, DefaultBodyLimit::max(uploads::UPLOAD_BODY))): Roles(&[Citizen]);
        "/cases/{reference}/files/{field}" => get(uploads::case_file): Roles(&[Official]);
        "/apply/{code}" => get(services::apply_service): Public;
        "/apply/{code}/start" => post(portal::start): Roles(&[Citizen]);
        "/applications/{reference}" => get(portal::receipt): Roles(&[Citizen]);
        "/applications/{reference}/pages/{n}" => get(portal::page): Roles(&[Citizen]), post(portal::save_page): Roles(&[Citizen]);
        "/applications/{reference}/review" => get(portal::review): Roles(&[Citizen]);
        "/applications/{reference}/submit" => post(portal::submit): Roles(&[Citizen]);
        "/my/applications" => get(portal::mine): Roles(&[Citizen]);
        "/cases" => get(cases::queue): Roles(&[Official]);
        "/verify" => get(credentials::verify_form): Public, post(credentials::verify_page): Public;
        "/verify/file" => post(axum::handler::Handler::layer(credentials::verify_file, DefaultBodyLimit::max(credentials::VERIFY_FILE_BYTES + 64 * 1024))): Public;
        "/documents/{id}" => get(credentials::document): Roles(&[Citizen]);
        "/cases/{reference}" => get(cases::case): Roles(&[Official]);
        "/cases/{reference}/act" => post(cases::act): Roles(&[Official]);
        "/cases/{reference}/revoke" => post(cases::revoke): Roles(&[Official]);
        "/cases/{reference}/assign" => post(cases::assign): Roles(&[Official]);
        "/applications/{reference}/reply" => post(portal::reply): Roles(&[Citizen]);
        "/applications/{reference}/prefill" => post(portal::prefill): Roles(&[Citizen]);
        "/my/inbox" => get(portal::inbox): Roles(&[Citizen]);
        "/my/inbox/read" => post(portal::inbox_read): Roles(&[Citizen]);
        "/my/inbox/email" => post(portal::inbox_email): Roles(&[Citizen]);
        "/designer/services" => get(services::designer_page): Roles(&[ServiceDesigner]), post(services::designer_submit): Roles(&[ServiceDesigner]);
        "/my/data-access" => get(exchange_pages::data_access_page): Roles(&[Citizen]);
        "/my/consents" => get(exchange_pages::consents_page): Roles(&[Citizen]), post(exchange_pages::grant_consent): Roles(&[Citizen]);
        "/my/consents/revoke" => post(exchange_pages::revoke_consent): Roles(&[Citizen]);
        "/admin/exchange" => get(exchange_pages::access_page): Roles(&[AgencyAdmin]), post(exchange_pages::grant_access): Roles(&[AgencyAdmin]);
        "/admin/exchange/revoke" => post(exchange_pages::revoke_access): Roles(&[AgencyAdmin]);
        "/admin/exchange/services" => post(exchange_pages::publish_service): Roles(&[AgencyAdmin]);
        "/admin/exchange/registries" => post(exchange_pages::create_registry): Roles(&[AgencyAdmin]);
        "/operations/exchange" => get(exchange_pages::operations_page): Roles(&[Operator, SecurityAnalyst, Auditor]);
        "/oidc/authorize" => get(oidc::authorize): SignedIn, post(oidc::decide): SignedIn;
    };
    table.extend(t);
    let pages = pages
        .layer(middleware::from_fn(web::same_origin_only))
        .layer(middleware::from_fn(web::remember_language));

    let (operations, t) = routes! {
        "/healthz" => get(healthz): Public;
        "/readyz" => get(readyz): Public;
        "/metrics" => get(metrics::scrape): Api(STAFF_INVENTORY, "metrics:read");
        "/static/style.css" => get(stylesheet): Public;
        "/static/htmx.min.js" => get(htmx): Public;
        "/static/passkey.js" => get(passkey_js): Public;
        "/static/favicon.svg" => get(favicon): Public;
        "/favicon.ico" => get(favicon): Public;
    };
    table.extend(t);

    let router = Router::new()
        .merge(api)
        .merge(tiles)
        .merge(xroad)
        .merge(oidc)
        .merge(pages)
        .merge(operations);
    (router, table)
}

/// Every declared route and its rule (for the policy point and the
/// authorization matrix test).
pub fn route_rules() -> Vec<policy::RouteRule> {
    routes().1
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let (routes, _) = routes();
    let max_body = state.config.max_body_bytes;
    routes
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            policy::enforce,
        ))
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
    let identity_poll = spawn_identity_poll(store.clone());
    let exchange_poll = exchange::gateway::spawn_poll(state.clone());
    let mailer = mailer::spawn(state.clone());
    let app = router(state);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = done_tx.send(());
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(graceful);
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
    identity_poll.abort();
    exchange_poll.abort();
    if let Some(m) = mailer {
        m.abort();
    }
    store.close().await;
    result
}

/// Notices other nodes' sign-outs, role changes and token revocations
/// (`identity_version`) once a second, so cached callers go stale in time;
/// every five minutes purges expired sessions, ceremonies and codes.
fn spawn_identity_poll(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0u64.. {
            tick.tick().await;
            if let Err(e) = store.poll_identity_version().await {
                tracing::warn!(error = %e, "polling identity_version");
            }
            // Every five minutes, clear out what has expired.
            if n % 300 == 0
                && let Err(e) = store.purge_expired(nara_core::Timestamp::now().0).await
            {
                tracing::warn!(error = %e, "purging expired sessions");
            }
        }
    })
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
