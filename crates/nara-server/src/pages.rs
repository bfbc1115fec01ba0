//! The server-rendered pages: home, service catalogue, service, agencies,
//! agency, the staff's systems inventory and the public ledger. Sign-in and
//! account pages are in [`crate::account`].
//!
//! Every page speaks the visitor's language: `?lang=` (remembered in a
//! cookie), else the cookie, else `Accept-Language`, else English. A form's
//! bad value re-renders the form with the error beside its field (status 400).

use askama::Template;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use nara_core::{
    Agency, Audience, FieldError, Grade, Lang, MemberId, Page, PageRequest, Service, ServiceFilter,
    System, SystemFilter, SystemKind, SystemStatus,
};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{self, Caller};
use crate::extract::parse_query;
use crate::i18n::{Tr, negotiate};
use crate::problem::Problem;

const LANG_COOKIE: &str = "nara_lang";

/// A link of the language switch.
pub struct LangLink {
    pub code: &'static str,
    pub name: &'static str,
    pub href: String,
    pub current: bool,
}

/// What the page frame (header, navigation, footer) needs.
pub struct Layout {
    pub lang: Lang,
    pub tr: Tr,
    pub title: String,
    pub nav: &'static str,
    pub switch: Vec<LangLink>,
    pub user: Option<NavUser>,
}

/// The signed-in person as the page frame shows them.
pub struct NavUser {
    pub display_name: String,
    pub csrf: String,
    /// May see the systems inventory.
    pub staff: bool,
    pub agency_admin: bool,
    pub security: bool,
    /// An official: sees the case work queue.
    pub official: bool,
    /// A service designer: sees the service design page.
    pub designer: bool,
    /// A citizen: sees their data-access history and consents.
    pub citizen: bool,
    /// Sees exchange operations.
    pub operations: bool,
    /// Part-way through sign-in: only "sign out" is offered.
    pub pending: bool,
}

impl NavUser {
    fn of(caller: &Caller) -> Option<NavUser> {
        use nara_core::identity::Role;
        match caller {
            Caller::Anonymous | Caller::Machine(_) => None,
            Caller::Pending { session, account } => Some(NavUser {
                display_name: account.display_name.clone(),
                csrf: session.csrf.clone(),
                staff: false,
                agency_admin: false,
                security: false,
                citizen: false,
                official: false,
                designer: false,
                operations: false,
                pending: true,
            }),
            Caller::Signed(p) => Some(NavUser {
                display_name: p.display_name.clone(),
                csrf: p.csrf().unwrap_or_default().to_owned(),
                staff: [Role::Operator, Role::SecurityAnalyst, Role::Auditor]
                    .iter()
                    .any(|r| p.has_role(*r)),
                agency_admin: p.has_role(Role::AgencyAdmin),
                security: p.has_role(Role::SecurityAnalyst) || p.has_role(Role::Auditor),
                citizen: p.has_role(Role::Citizen),
                designer: p.has_role(Role::ServiceDesigner),
                official: p.has_role(Role::Official),
                operations: [Role::Operator, Role::SecurityAnalyst, Role::Auditor]
                    .iter()
                    .any(|r| p.has_role(*r)),
                pending: false,
            }),
        }
    }
}

/// Links to the neighbouring pages of a list.
pub struct Pager {
    pub page: u32,
    pub pages: u32,
    pub previous: Option<String>,
    pub next: Option<String>,
}

/// The request as a page sees it: language, address and who is calling
/// (as decided by the policy point).
pub struct PageCtx {
    pub lang: Lang,
    pub path: String,
    pub query: String,
    pub caller: Caller,
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The language from cookie or `Accept-Language`, ignoring the query.
fn preferred_lang(headers: &HeaderMap) -> Lang {
    auth::cookie(headers, LANG_COOKIE)
        .and_then(|c| c.parse().ok())
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(negotiate)
        })
        .unwrap_or_default()
}

impl PageCtx {
    pub fn from_parts(parts: &Parts) -> Result<PageCtx, PageError> {
        let query = parts.uri.query().unwrap_or("").to_owned();
        let fallback = preferred_lang(&parts.headers);
        let lang = match query_param(&query, "lang") {
            Some(code) => code.parse::<Lang>().map_err(|_| PageError {
                status: StatusCode::BAD_REQUEST,
                message: "error.bad_request",
                lang: fallback,
            })?,
            None => fallback,
        };
        Ok(PageCtx {
            lang,
            path: parts.uri.path().to_owned(),
            query,
            caller: crate::policy::caller_of(&parts.extensions),
        })
    }

    /// The current address with one query parameter replaced (or removed).
    fn href_with(&self, name: &str, value: Option<&str>) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form_urlencoded::parse(self.query.as_bytes()) {
            if k != name {
                out.append_pair(&k, &v);
            }
        }
        if let Some(value) = value {
            out.append_pair(name, value);
        }
        let query = out.finish();
        if query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, query)
        }
    }

    pub fn layout(&self, title: &str, nav: &'static str) -> Layout {
        Layout {
            lang: self.lang,
            tr: Tr(self.lang),
            title: title.to_owned(),
            nav,
            switch: Lang::ALL
                .into_iter()
                .map(|l| LangLink {
                    code: l.code(),
                    name: l.endonym(),
                    href: self.href_with("lang", Some(l.code())),
                    current: l == self.lang,
                })
                .collect(),
            user: NavUser::of(&self.caller),
        }
    }

    fn pager<T>(&self, page: &Page<T>) -> Pager {
        let pages = page.pages();
        let link = |n: u32| self.href_with("page", Some(&n.to_string()));
        Pager {
            page: page.page,
            pages,
            previous: (page.page > 1).then(|| link(page.page - 1)),
            next: (page.page < pages).then(|| link(page.page + 1)),
        }
    }

    pub fn tr(&self) -> Tr {
        Tr(self.lang)
    }
}

impl FromRequestParts<AppState> for PageCtx {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, PageError> {
        PageCtx::from_parts(parts)
    }
}

/// A page that could not be shown, rendered as an error page in the visitor's language.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: &'static str,
    pub lang: Lang,
}

impl PageError {
    pub fn not_found(lang: Lang) -> Self {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: "error.not_found",
            lang,
        }
    }

    pub fn payload_too_large(lang: Lang) -> Self {
        PageError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "upload.too_large",
            lang,
        }
    }

    pub fn bad_request(lang: Lang) -> Self {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: "error.bad_request",
            lang,
        }
    }

    pub fn internal(lang: Lang) -> Self {
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "error.internal",
            lang,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    message: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let ctx = PageCtx {
            lang: self.lang,
            path: "/".into(),
            query: String::new(),
            caller: Caller::Anonymous,
        };
        let page = ErrorPage {
            layout: ctx.layout(Tr(self.lang).s("error.title"), ""),
            message: self.message,
        };
        (self.status, render(&page)).into_response()
    }
}

/// Logs a store failure and shows the "our fault" page.
pub fn store_failed(lang: Lang) -> impl FnOnce(nara_store::StoreError) -> PageError {
    move |e| {
        tracing::error!(error = %e, "store error while rendering a page");
        PageError::internal(lang)
    }
}

pub fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Middleware: a valid `?lang=` is remembered for a year in a cookie.
pub async fn remember_language(request: Request, next: Next) -> Response {
    let chosen = request
        .uri()
        .query()
        .and_then(|q| query_param(q, "lang"))
        .and_then(|code| code.parse::<Lang>().ok());
    let secure = request.extensions().get::<crate::Https>().is_some();
    let mut response = next.run(request).await;
    if let Some(lang) = chosen {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly{}",
            lang.code(),
            if secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Middleware: state-changing requests to pages must come from this site
/// (Fetch Metadata, else `Origin` against `Host`). With `SameSite=Strict`
/// session cookies this closes cross-site request forgery.
pub async fn same_origin_only(request: Request, next: Next) -> Response {
    let method = request.method();
    if method == "GET" || method == "HEAD" || method == "OPTIONS" {
        return next.run(request).await;
    }
    let headers = request.headers();
    let https = request.extensions().get::<crate::Https>().is_some();
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let allowed = match site {
        Some(site) => site == "same-origin" || site == "none",
        None => match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
            (Some(origin), Some(host)) => match (origin.to_str(), host.to_str()) {
                (Ok(origin), Ok(host)) => same_origin(origin, host, https),
                _ => false,
            },
            // No Origin: not a browser form post (browsers send it on POST).
            (None, _) => true,
            (Some(_), None) => false,
        },
    };
    if allowed {
        next.run(request).await
    } else {
        tracing::warn!(path = %request.uri().path(), "cross-site form post refused");
        PageError {
            status: StatusCode::FORBIDDEN,
            message: "error.forbidden",
            lang: preferred_lang(headers),
        }
        .into_response()
    }
}

/// Whether `Origin` names this node: scheme, host and port (RFC 6454 §5),
/// the scheme being the one this request arrived by.
fn same_origin(origin: &str, host: &str, https: bool) -> bool {
    let scheme = if https { "https" } else { "http" };
    origin
        .split_once("://")
        .is_some_and(|(s, rest)| s.eq_ignore_ascii_case(scheme) && rest.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod origin_tests {
    #[test]
    fn the_scheme_is_part_of_the_origin() {
        use super::same_origin;
        assert!(same_origin(
            "http://127.0.0.1:8080",
            "127.0.0.1:8080",
            false
        ));
        assert!(same_origin("https://gov.example", "gov.example", true));
        assert!(
            !same_origin("https://127.0.0.1:8080", "127.0.0.1:8080", false),
            "review finding 9"
        );
        assert!(!same_origin("http://gov.example", "gov.example", true));
        assert!(!same_origin(
            "http://127.0.0.1:8081",
            "127.0.0.1:8080",
            false
        ));
        assert!(!same_origin("null", "127.0.0.1:8080", false));
        assert!(!same_origin(
            "http://evil.example/127.0.0.1:8080",
            "127.0.0.1:8080",
            false
        ));
    }
}

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
    page: Page<Service>,
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
    let agencies = state
        .store
        .all_agencies()
        .await
        .map_err(store_failed(ctx.lang))?;
    let page = if form_error.is_some() {
        Page {
            items: Vec::new(),
            total: 0,
            page: 1,
            per_page: page_request.per_page,
        }
    } else {
        state
            .store
            .list_services(&filter, page_request)
            .await
            .map_err(store_failed(ctx.lang))?
    };
    let status = if form_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let view = ServicesPage {
        layout: ctx.layout(ctx.tr().s("services.title"), "services"),
        q: values.q,
        agency: values.agency,
        audience: values.audience,
        audiences: Audience::ALL,
        agencies: &agencies,
        pager: ctx.pager(&page),
        page,
        form_error,
    };
    Ok((status, render(&view)).into_response())
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    layout: Layout,
    service: Service,
    agency_name: String,
    /// When citizens apply for it on nara: its figures.
    online: Option<crate::statistics::FiguresView>,
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
            let figures = crate::statistics::figures(&state, Some(&service.details.code))
                .await
                .map_err(store_failed(ctx.lang))?
                .into_iter()
                .next()
                .unwrap_or_else(|| nara_store::applications::ServiceFigures {
                    service_code: service.details.code.clone(),
                    ..Default::default()
                });
            Some(crate::statistics::view(&figures, title.clone()))
        }
        _ => None,
    };
    Ok(render(&ServicePage {
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
        (
            Page {
                items: Vec::new(),
                total: 0,
                page: 1,
                per_page: page_request.per_page,
            },
            [0; 4],
        )
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

/// Whether a route template is a page (whose frame shows who is signed in).
pub fn is_page(route: &str) -> bool {
    // The OIDC authorization endpoint is where people sign in and consent.
    route == "/oidc/authorize"
        || !(route.starts_with("/api/")
            || route.starts_with("/ledger/")
            || route.starts_with("/static/")
            || route.starts_with("/r1/")
            || route.starts_with("/oidc/")
            || route.starts_with("/credentials/")
            || route.starts_with("/.well-known/")
            || matches!(
                route,
                "/healthz"
                    | "/readyz"
                    | "/metrics"
                    | "/openapi.json"
                    | "/favicon.ico"
                    | "/listClients"
            ))
}

/// The page for a signed-in person who may not see what they asked for.
pub async fn forbidden(headers: &HeaderMap, caller: &Caller) -> Response {
    let lang = preferred_lang(headers);
    let ctx = PageCtx {
        lang,
        path: "/".into(),
        query: String::new(),
        caller: caller.clone(),
    };
    let page = ErrorPage {
        layout: ctx.layout(Tr(lang).s("error.title"), ""),
        message: "error.not_allowed",
    };
    (StatusCode::FORBIDDEN, render(&page)).into_response()
}

/// The page for an address nothing answers.
pub async fn not_found(headers: HeaderMap) -> Response {
    PageError::not_found(preferred_lang(&headers)).into_response()
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
