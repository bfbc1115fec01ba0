//! The web layer shared by every page and form, below the page modules
//! (none of its parts imports one): the page context and layout, the error
//! page, rendering, the language a visitor reads, which routes are pages,
//! and the middleware every page passes (`same_origin_only`,
//! `remember_language`). `csrf` proves a form came from the session's own page.
//!
//! Every page speaks the visitor's language: `?lang=` (remembered in a
//! cookie), else the cookie, else `Accept-Language`, else English. A form's
//! bad value re-renders the form with the error beside its field (status 400).

pub mod csrf;
pub mod i18n;
pub mod security;

use askama::Template;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use nara_core::Lang;

use crate::AppState;
use crate::identity::auth::{self, Caller};
use crate::web::i18n::{Tr, negotiate};

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
    /// The national alert level, shown to staff on every page.
    pub alert_level: nara_core::secops::AlertLevel,
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
    /// More pages may follow `pages` (a search stopped counting).
    pub more: bool,
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
    /// The national alert level as the policy point read it.
    pub alert_level: nara_core::secops::AlertLevel,
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The language from cookie or `Accept-Language`, ignoring the query.
pub fn preferred_lang(headers: &HeaderMap) -> Lang {
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
            caller: crate::identity::auth::caller_of(&parts.extensions),
            alert_level: parts
                .extensions
                .get::<nara_core::secops::AlertLevel>()
                .copied()
                .unwrap_or_default(),
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
            alert_level: self.alert_level,
        }
    }

    pub fn pager<T>(&self, page: &nara_core::Page<T>) -> Pager {
        let pages = page.pages();
        let link = |n: u32| self.href_with("page", Some(&n.to_string()));
        Pager {
            page: page.page,
            pages,
            more: page.total_is_lower_bound(),
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

    /// The change does not apply to the thing as it now is (another person
    /// changed it first, or the rule does not allow it from here).
    /// Too many requests from this address (the per-address limit).
    pub fn too_many(lang: Lang) -> Self {
        PageError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "error.too_many",
            lang,
        }
    }

    pub fn conflict(lang: Lang) -> Self {
        PageError {
            status: StatusCode::CONFLICT,
            message: "error.conflict",
            lang,
        }
    }

    pub fn forbidden(lang: Lang) -> Self {
        PageError {
            status: StatusCode::FORBIDDEN,
            message: "error.not_allowed",
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
            alert_level: Default::default(),
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
        alert_level: Default::default(),
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

/// A timestamp as pages show it: `YYYY-MM-DD HH:MM` (UTC).
/// A horizontal bar chart for a page (`{% include "bars.html" %}` with the
/// page's `chart`): an SVG a screen reader announces by its title.
pub struct BarChart {
    /// The title element's id, unique on the page.
    pub id: &'static str,
    pub title: String,
    pub bars: Vec<Bar>,
}

/// One bar: its width (0–100, against the largest) and its label.
pub struct Bar {
    pub width: i64,
    pub label: String,
}

pub fn when(ms: i64) -> String {
    nara_core::Timestamp(ms)
        .rfc3339()
        .chars()
        .take(16)
        .collect::<String>()
        .replace('T', " ")
}

/// 400 when a form's error is shown, else 200.
pub fn status_for(error: &Option<String>) -> StatusCode {
    if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// One value of the page's query string.
pub fn query_value(ctx: &PageCtx, name: &str) -> Option<String> {
    form_urlencoded::parse(ctx.query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
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
