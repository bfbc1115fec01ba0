//! nara's HTTP layer: the JSON API, the pages, the operations endpoints and
//! the middleware around them. [`router`] builds the whole application from
//! an [`AppState`]; the binary and the integration tests both call it.

pub mod admin;
pub mod algorithms;
pub mod background;
pub mod backup;
pub mod catalogue;
pub mod citizen;
pub mod config;
pub mod demo;
pub mod exchange;
pub mod extract;
pub mod group_commit;
pub mod identity;
pub mod keyfile;
pub mod ledger;
pub mod media;
pub mod metrics;
pub mod officials;
pub mod openapi;
pub mod policy;
pub mod problem;
pub mod recent;
pub mod secops;
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

/// What every handler shares, behind one reference count: the state is
/// cloned for each request by every layer that takes it, and a clone of two
/// dozen reference-counted parts (and their drops) was 3% of a saturated
/// node's CPU. Its parts are reached through [`std::ops::Deref`].
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub ledger: Arc<ledger::LedgerKeys>,
    pub identity: Arc<identity::auth::IdentityKeys>,
    pub rules: Arc<policy::Rules>,
    pub passwords: Arc<identity::auth::PasswordWork>,
    /// Failed sign-ins by account and by address.
    pub account_throttle: Arc<identity::auth::Throttle>,
    /// Published service definitions, parsed once.
    pub definitions: Arc<catalogue::definitions::Definitions>,
    /// `/verify/file`'s bounded QR decoding.
    pub qr: Arc<citizen::credentials::QrGate>,
    pub address_throttle: Arc<identity::auth::Throttle>,
    pub callers: Arc<identity::auth::CallerCache>,
    /// The WebAuthn relying party, when the public URL has a domain name.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// The exchange gateway (directory, replay window, message log writer).
    pub exchange: Arc<exchange::gateway::Exchange>,
    /// Submissions through the API, group-committed.
    pub submissions: Arc<citizen::application_api::Submissions>,
    /// Decision records, group-committed.
    pub decisions: Arc<algorithms::Decisions>,
    pub register: Arc<algorithms::RegisterCache>,
    /// Service figures, recomputed at most every 30 s.
    pub figures: Arc<catalogue::statistics::FiguresCache>,
    /// The continuous backup's state, for `/metrics` and the operators.
    pub backup_stream: Arc<backup::stream::Live>,
    /// The Sigma rules over security events, with their correlation windows.
    pub detector: Arc<secops::detection::Detector>,
    /// The national alert level and the per-address limits it sets.
    pub posture: Arc<secops::level::Posture>,
    /// Agency systems' keys and the addresses they signed from lately.
    pub key_sightings: Arc<secops::watch::KeySightings>,
}

impl AppState {
    pub fn new(
        store: Store,
        config: Config,
        ledger: ledger::LedgerKeys,
        identity: identity::auth::IdentityKeys,
    ) -> Self {
        let webauthn = identity::passkey::relying_party(&config).map(Arc::new);
        let config_limit = config.rate_limit_per_minute;
        let detector = secops::detection::Detector::with_dir(config.detection_rules.as_deref());
        let exchange = exchange::gateway::Exchange::new(
            identity.gateway_key(),
            config.node_id.as_deref().unwrap_or("local"),
            Duration::from_millis(config.exchange_timeout_ms),
            None,
        );
        AppState(Arc::new(Shared {
            exchange: Arc::new(exchange),
            store,
            webauthn,
            config: Arc::new(config),
            metrics: Metrics::new(),
            ledger: Arc::new(ledger),
            identity: Arc::new(identity),
            rules: Arc::new(policy::Rules::new(&route_rules())),
            passwords: Arc::new(identity::auth::PasswordWork::default()),
            account_throttle: Arc::new(identity::auth::Throttle::new(
                identity::auth::ACCOUNT_FREE_FAILURES,
            )),
            qr: Arc::default(),
            definitions: Arc::default(),
            address_throttle: Arc::new(identity::auth::Throttle::new(
                identity::auth::ADDRESS_FREE_FAILURES,
            )),
            callers: Arc::default(),
            submissions: Arc::new(citizen::application_api::submissions()),
            decisions: Arc::new(algorithms::decisions_writer()),
            register: Arc::default(),
            figures: Arc::default(),
            backup_stream: Arc::default(),
            detector: Arc::new(detector),
            posture: Arc::new(secops::level::Posture::new(config_limit)),
            key_sightings: Arc::default(),
        }))
    }
}

impl AppState {
    /// Joins the federation a signed global configuration describes: this
    /// node's gateway forwards to the nodes that serve other members.
    pub fn federated(mut self, federation: exchange::federation::Federation) -> Self {
        let node = federation.node.clone();
        let shared = Arc::make_mut(&mut self.0);
        shared.exchange = Arc::new(exchange::gateway::Exchange::new(
            shared.identity.gateway_key(),
            &node,
            Duration::from_millis(shared.config.exchange_timeout_ms),
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
            tracing::warn!(error = %e, "not ready: the database");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "The database is not reachable or does not take writes",
            )
            .detail(e.to_string())
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
    use policy::Claim::*;
    use policy::Rule::*;
    const STAFF_INVENTORY: &[nara_core::identity::Role] = &[Operator, SecurityAnalyst, Auditor];
    const OPERATORS: &[nara_core::identity::Role] = &[Operator];
    const DESIGNERS: &[nara_core::identity::Role] = &[Operator, ServiceDesigner];

    let (api, mut table) = routes! {
        "/api/v1/agencies" => get(catalogue::api::list_agencies): Public, post(catalogue::api::create_agency): Api(OPERATORS, "catalogue:write");
        "/api/v1/agencies/{*id}" => get(catalogue::api::get_agency): Public, put(catalogue::api::update_agency): Api(OPERATORS, "catalogue:write");
        "/api/v1/systems" => get(catalogue::api::list_systems): Api(STAFF_INVENTORY, "systems:read"), post(catalogue::api::create_system): Api(OPERATORS, "catalogue:write");
        "/api/v1/systems/{id}" => get(catalogue::api::get_system): Api(STAFF_INVENTORY, "systems:read"), put(catalogue::api::update_system): Api(OPERATORS, "catalogue:write");
        "/api/v1/services" => get(catalogue::api::list_services): Public, post(catalogue::api::create_service): Api(DESIGNERS, "catalogue:write");
        "/api/v1/services/{id}" => get(catalogue::api::get_service): Public, put(catalogue::api::update_service): Api(DESIGNERS, "catalogue:write");
        "/api/v1/ledger/entries/{index}" => get(ledger::entry): Public;
        "/api/v1/ledger/consistency" => get(ledger::consistency): Public;
        "/api/v1/security/events" => get(secops::events::security_events_api): Api(&[SecurityAnalyst, Auditor], "identity:read");
        "/api/v1/security/alerts" => get(secops::alerts::alerts_api): Api(&[SecurityAnalyst, Auditor], "identity:read");
        "/api/v1/security/intake" => post(secops::intake::json_lines): Machine(OnArrival);
        "/api/v1/machine/whoami" => get(identity::machine::whoami): Machine(OnArrival), post(identity::machine::whoami): Machine(OnArrival);
        "/api/v1/registries" => get(exchange::registries::registries_api): Public;
        "/api/v1/algorithms" => get(algorithms::register::list_api): Public, post(algorithms::register::publish_entry_api): Api(OPERATORS, "catalogue:write");
        "/api/v1/algorithms/{code}" => get(algorithms::register::entry_api): Public;
        "/api/v1/algorithms/{code}/algoritmeregister" => get(algorithms::register::dutch_api): Public;
        "/api/v1/algorithms/{code}/decisions" => post(algorithms::decisions::decide_api): Machine(WithRecord);
        "/api/v1/algorithms/{code}/decisions/{id}" => get(algorithms::decisions::decision_api): Machine(OnArrival);
        "/api/v1/service-definitions" => get(catalogue::services::definitions_api): Public, post(catalogue::services::publish_api): Api(DESIGNERS, "catalogue:write");
        "/api/v1/service-definitions/{code}" => get(catalogue::services::definition_api): Public;
        "/api/v1/credentials/verify" => post(citizen::credentials::verify_api): Public;
        "/api/v1/registries/{code}/record" => get(exchange::registries::registry_record): Machine(OnArrival), put(exchange::registries::put_registry_record): Machine(OnArrival);
        "/api/v1/me/consents" => get(exchange::consents::my_consents_api): Roles(&[Citizen]), post(exchange::consents::grant_consent_api): Roles(&[Citizen]);
        "/api/v1/me/consents/{id}/revoke" => post(exchange::consents::revoke_consent_api): Roles(&[Citizen]);
        "/api/v1/services/{code}/applications" => post(citizen::application_api::create): Roles(&[Citizen]);
        "/api/v1/me/applications" => get(citizen::application_api::mine): Roles(&[Citizen]);
        "/api/v1/applications/{reference}" => get(citizen::application_api::one): Roles(&[Citizen]);
        "/api/v1/me/data-access" => get(exchange::data_access::data_access_api): Roles(&[Citizen]);
        "/api/v1/me/ledger-openings" => get(ledger::my_openings): Roles(&[Citizen]);
        "/api/v1/ledger/openings/{commitment}" => get(ledger::open_commitment): Roles(&[Auditor]);
        "/openapi.json" => get(openapi::document): Public;
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
        "/.well-known/openid-configuration" => get(identity::oidc::discovery): Public;
        "/oidc/jwks" => get(identity::oidc::jwks): Public;
        "/credentials/jwks.json" => get(citizen::credentials::jwks): Public;
        "/credentials/contexts/v1" => get(citizen::credentials::context): Public;
        "/.well-known/jwt-vc-issuer/agencies/{*agency}" => get(citizen::credentials::issuer_metadata): Public;
        "/credentials/status/{*list}" => get(citizen::credentials::status_list): Public;
        "/oidc/token" => post(identity::oidc::token): Public;
        "/oidc/userinfo" => get(identity::oidc::userinfo): Public, post(identity::oidc::userinfo): Public;
        "/oidc/revoke" => post(identity::oidc::revoke): Public;
    };
    table.extend(t);

    let (pages, t) = routes! {
        "/" => get(catalogue::pages::home): Public;
        "/services" => get(catalogue::pages::services): Public;
        "/services/{id}" => get(catalogue::pages::service): Public;
        "/agencies" => get(catalogue::pages::agencies): Public;
        "/agencies/{*id}" => get(catalogue::pages::agency): Public;
        "/systems" => get(catalogue::pages::systems): Roles(STAFF_INVENTORY);
        "/ledger" => get(catalogue::pages::ledger): Public;
        "/sign-in" => get(identity::sign_in::sign_in_form): Public, post(identity::sign_in::sign_in): Public;
        "/sign-in/second-factor" => get(identity::sign_in::second_factor_form): SigningIn, post(identity::sign_in::second_factor): SigningIn;
        "/sign-in/set-up-second-factor" => get(identity::enrolment::enrol_form): SigningIn, post(identity::enrolment::enrol): SigningIn;
        "/sign-up" => get(identity::sign_up::sign_up_form): Public, post(identity::sign_up::sign_up): Public;
        "/sign-out" => post(identity::sign_in::sign_out): SigningIn;
        "/account" => get(identity::account::account_page): SignedIn;
        "/account/second-factor" => get(identity::enrolment::enrol_form): SignedIn, post(identity::enrolment::enrol): SignedIn;
        "/account/sessions/end" => post(identity::account::end_sessions): SignedIn;
        "/account/apps/revoke" => post(identity::account::revoke_app): SignedIn;
        "/account/tokens" => post(identity::account::create_token): Roles(OPERATORS);
        "/account/passkeys/begin" => post(identity::passkey::register_begin): SignedIn;
        "/account/passkeys/finish" => post(identity::passkey::register_finish): SignedIn;
        "/account/passkeys/remove" => post(identity::passkey::remove): SignedIn;
        "/sign-in/passkey/begin" => post(identity::passkey::sign_in_begin): SigningIn;
        "/sign-in/passkey/finish" => post(identity::passkey::sign_in_finish): SigningIn;
        "/account/tokens/revoke" => post(identity::account::revoke_token): Roles(OPERATORS);
        "/admin/officials" => get(admin::officials::officials_page): Roles(&[AgencyAdmin]), post(admin::officials::create_official): Roles(&[AgencyAdmin]);
        "/admin/roles" => post(admin::officials::change_role): Roles(&[AgencyAdmin]);
        "/admin/apps" => get(admin::apps::apps_page): Roles(&[AgencyAdmin]), post(admin::apps::register_app): Roles(&[AgencyAdmin]);
        "/admin/machine-clients" => get(admin::machine_clients::machine_clients_page): Roles(&[AgencyAdmin]), post(admin::machine_clients::register_machine_client): Roles(&[AgencyAdmin]);
        "/admin/machine-clients/revoke" => post(admin::machine_clients::revoke_machine_client): Roles(&[AgencyAdmin]);
        "/security/events" => get(secops::events::security_events_page): Roles(&[SecurityAnalyst, Auditor]);
        "/security/alerts" => get(secops::alerts::alerts_page): Roles(&[SecurityAnalyst, Auditor]);
        "/security/level" => get(secops::level::level_page): Roles(&[SecurityAnalyst, Auditor]), post(secops::level::set_level): Roles(&[SecurityAnalyst]);
        "/status" => get(secops::level::status_page): Public;
        "/security/on-call" => post(secops::alerts::on_call): Roles(&[SecurityAnalyst]);
        "/security/blocklist" => get(secops::blocklist::blocklist_page): Roles(&[SecurityAnalyst, Auditor]);
        "/security/blocklist/{id}" => post(secops::blocklist::review): Roles(&[SecurityAnalyst]);
        "/security/incidents" => get(secops::incidents::incidents_page): Roles(&[SecurityAnalyst, Auditor]), post(secops::incidents::group): Roles(&[SecurityAnalyst]);
        "/security/incidents/{id}" => get(secops::incidents::incident_page): Roles(&[SecurityAnalyst, Auditor]), post(secops::incidents::change): Roles(&[SecurityAnalyst]);
        "/security/machine-keys/approve" => post(secops::level::approve_key): Roles(&[SecurityAnalyst]);
        "/security/alerts/{id}" => post(secops::alerts::triage): Roles(&[SecurityAnalyst]);
        "/security/rules" => get(secops::rules::rules_page): Roles(&[SecurityAnalyst, Auditor]);
        "/security/rules/test" => post(secops::rules::test_rule): Roles(&[SecurityAnalyst, Auditor]);
        "/security/rules/{id}" => post(secops::rules::switch_rule): Roles(&[SecurityAnalyst]);
        "/registries" => get(exchange::registries::registries_page): Public;
        "/algorithms" => get(algorithms::register::register_page): Public;
        "/algorithms/{code}" => get(algorithms::register::entry_page): Public;
        "/algorithms/{code}/run" => get(algorithms::oversight::run_form): Roles(&[Official]), post(algorithms::oversight::run_submit): Roles(&[Official]);
        "/algorithms/{code}/image" => post(axum::handler::Handler::layer(algorithms::review_images::check_image, DefaultBodyLimit::max(algorithms::review_images::BODY))): Roles(&[Official]);
        "/oversight" => get(algorithms::oversight::queue): Roles(&[Official]);
        "/oversight/{id}" => get(algorithms::oversight::record_page): Roles(&[Official, Auditor]), post(algorithms::oversight::act): Roles(&[Official]);
        "/oversight/{id}/image" => get(algorithms::review_images::record_image): Roles(&[Official]);
        "/my/decisions" => get(algorithms::decisions::my_decisions): Roles(&[Citizen]);
        "/my/decisions/{id}/appeal" => post(algorithms::decisions::appeal): Roles(&[Citizen]);
        "/apply" => get(catalogue::services::apply_list): Public;
        "/statistics" => get(catalogue::statistics::page): Public;
        "/statistics.csv" => get(catalogue::statistics::csv): Public;
        "/applications/{reference}/rate" => post(citizen::receipts::rate): Roles(&[Citizen]);
        "/applications/{reference}/files/{field}" => get(citizen::uploads::download): Roles(&[Citizen]),
            post(axum::handler::Handler::layer(citizen::uploads::upload, DefaultBodyLimit::max(citizen::uploads::UPLOAD_BODY))): Roles(&[Citizen]);
        "/cases/{reference}/files/{field}" => get(citizen::uploads::case_file): Roles(&[Official]);
        "/apply/{code}" => get(catalogue::services::apply_service): Public;
        "/apply/{code}/start" => post(citizen::portal::start): Roles(&[Citizen]);
        "/applications/{reference}" => get(citizen::receipts::receipt): Roles(&[Citizen]);
        "/applications/{reference}/pages/{n}" => get(citizen::portal::page): Roles(&[Citizen]), post(citizen::portal::save_page): Roles(&[Citizen]);
        "/applications/{reference}/review" => get(citizen::portal::review): Roles(&[Citizen]);
        "/applications/{reference}/submit" => post(citizen::portal::submit): Roles(&[Citizen]);
        "/my/applications" => get(citizen::receipts::mine): Roles(&[Citizen]);
        "/cases" => get(officials::cases::queue): Roles(&[Official]);
        "/verify" => get(citizen::credentials::verify_form): Public, post(citizen::credentials::verify_page): Public;
        "/verify/file" => post(axum::handler::Handler::layer(citizen::credentials::verify_file, DefaultBodyLimit::max(citizen::credentials::VERIFY_FILE_BYTES + 64 * 1024))): Public;
        "/documents/{id}" => get(citizen::credentials::document): Roles(&[Citizen]);
        "/cases/{reference}" => get(officials::cases::case): Roles(&[Official]);
        "/cases/{reference}/act" => post(officials::cases::act): Roles(&[Official]);
        "/cases/{reference}/revoke" => post(officials::cases::revoke): Roles(&[Official]);
        "/cases/{reference}/assign" => post(officials::cases::assign): Roles(&[Official]);
        "/applications/{reference}/reply" => post(citizen::receipts::reply): Roles(&[Citizen]);
        "/applications/{reference}/prefill" => post(citizen::portal::prefill): Roles(&[Citizen]);
        "/my/inbox" => get(citizen::inbox::inbox): Roles(&[Citizen]);
        "/my/inbox/read" => post(citizen::inbox::inbox_read): Roles(&[Citizen]);
        "/my/inbox/email" => post(citizen::inbox::inbox_email): Roles(&[Citizen]);
        "/designer/services" => get(catalogue::services::designer_page): Roles(&[ServiceDesigner]), post(catalogue::services::designer_submit): Roles(&[ServiceDesigner]);
        "/my/data-access" => get(exchange::data_access::data_access_page): Roles(&[Citizen]);
        "/my/consents" => get(exchange::consents::consents_page): Roles(&[Citizen]), post(exchange::consents::grant_consent): Roles(&[Citizen]);
        "/my/consents/revoke" => post(exchange::consents::revoke_consent): Roles(&[Citizen]);
        "/admin/exchange" => get(exchange::administration::access_page): Roles(&[AgencyAdmin]), post(exchange::administration::grant_access): Roles(&[AgencyAdmin]);
        "/admin/exchange/revoke" => post(exchange::administration::revoke_access): Roles(&[AgencyAdmin]);
        "/admin/exchange/services" => post(exchange::administration::publish_service): Roles(&[AgencyAdmin]);
        "/admin/exchange/registries" => post(exchange::administration::create_registry): Roles(&[AgencyAdmin]);
        "/operations/exchange" => get(exchange::operations::operations_page): Roles(&[Operator, SecurityAnalyst, Auditor]);
        "/operations/backups" => get(backup::page::backups_page): Roles(&[Operator, SecurityAnalyst, Auditor]);
        "/operations/health" => get(secops::probes::health_page): Roles(&[Operator, SecurityAnalyst, Auditor]);
        "/oidc/authorize" => get(identity::oidc::authorize): SignedIn, post(identity::oidc::decide): SignedIn;
    };
    table.extend(t);
    let pages = pages
        .layer(middleware::from_fn(web::same_origin_only))
        .layer(middleware::from_fn(web::remember_language));

    let (operations, t) = routes! {
        "/healthz" => get(healthz): Public;
        "/blocklist.txt" => get(secops::blocklist::feed_text): Public;
        "/demo/probe/{name}" => get(secops::probes::demo_target): Public;
        "/blocklist.json" => get(secops::blocklist::feed_json): Public;
        "/blocklist.stix.json" => get(secops::blocklist::feed_stix): Public;
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
        .layer(middleware::from_fn(web::security::headers))
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
    // The demo's register names the models this build runs, and shows them
    // at work: published and decided before the first request. (Elsewhere
    // `nara seed` publishes the register; a node whose register lacks a model
    // refuses to run it.)
    if state.config.demo
        && let Err(e) = algorithms::demo::write_stand_in_list(&state.config.data_dir)
    {
        tracing::warn!(error = %e, "the demo's stand-in hash list");
    }
    match algorithms::load_hash_lists(&state.config.data_dir) {
        Ok((0, _)) => {}
        Ok((lists, hashes)) => {
            tracing::info!(lists, hashes, "hash lists loaded for image matching")
        }
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    }
    if state.config.demo {
        if let Err(e) = algorithms::publish_shipped(&store).await {
            return Err(std::io::Error::other(format!(
                "publishing the algorithm register: {e}"
            )));
        }
        if let Err(e) = algorithms::demo::ensure(&state).await {
            tracing::warn!(error = %e, "the demo's algorithm decisions");
        }
    }
    let integrator = ledger::spawn_integrator(store.clone(), state.ledger.clone());
    let identity_poll = spawn_identity_poll(store.clone());
    let exchange_poll = exchange::gateway::spawn_poll(state.clone());
    let mailer = citizen::mailer::spawn(state.clone());
    let backups = backup::schedule::spawn(state.clone());
    if let Some(b) = &backups {
        b.first_base().await;
    }
    let detection = secops::detection::spawn(state.clone());
    let posture = secops::level::spawn(state.clone());
    let blocklist = secops::blocklist::spawn(state.clone());
    let screening = algorithms::screening::spawn(state.clone());
    let image_sweep = algorithms::review_images::spawn(state.clone());
    let probes = secops::probes::spawn(state.clone());
    let syslog = match state.config.syslog_listen {
        Some(addr) => Some(secops::syslog::listen(state.clone(), addr).await?),
        None => None,
    };
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
    detection.abort();
    posture.abort();
    blocklist.abort();
    screening.abort();
    image_sweep.abort();
    probes.abort();
    if let Some(s) = &syslog {
        s.abort();
    }
    identity_poll.abort();
    exchange_poll.abort();
    if let Some(m) = mailer {
        m.abort();
    }
    if let Some(b) = backups {
        b.stop().await;
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
