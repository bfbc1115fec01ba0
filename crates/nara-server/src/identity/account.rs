//! The identity pages: sign in (password, then a second factor), sign up
//! (demo mode only), sign out, and the account page (sessions, second
//! factor, API tokens, connected apps); the client's address behind trusted
//! proxies and the security events these pages record. Agency
//! administration is in [`crate::admin`], the security events' pages in
//! [`crate::secops`].
//!
//! Forms are taken through [`crate::web::csrf::CsrfForm`], on top of the
//! same-origin check every page form passes ([`crate::web::same_origin_only`]).

use std::net::SocketAddr;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::MemberId;
use nara_core::identity::{
    self, AccountKind, Grant, PASSWORD_MAX, Role, check_new_password, normalize_username,
};
use nara_store::identity::{Account, NewAccount};
use serde::Deserialize;

use crate::AppState;
use crate::identity::auth::{self, Caller, Principal, digest, session_cookie};
use crate::problem::Problem;
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, render, store_failed, when};

/// Where to go after signing in: a local path only, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/account".to_owned(),
    }
}

/// The client's address, for throttling and security events: the peer of
/// the connection, unless that peer is one of `trusted_proxies`, in which
/// case the nearest address in `Forwarded` (RFC 7239) or `X-Forwarded-For`
/// that is not a trusted proxy. A forwarded header from anyone else is the
/// client's own claim and is ignored.
pub struct ClientAddress(pub String);

impl axum::extract::FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddress(match peer {
            Some(peer) => {
                client_ip(peer, &parts.headers, &state.config.trusted_proxies).to_string()
            }
            None => "unknown".into(),
        }))
    }
}

/// The client behind `peer`: walking the forwarded chain from the nearest
/// hop, the first address that is not a trusted proxy (or the last one
/// that could be read).
pub fn client_ip(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_chain(headers).into_iter().rev() {
        let Some(ip) = hop else {
            // "unknown" or an obfuscated name: nothing nearer to trust.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// The `for` addresses of `Forwarded` (RFC 7239 §5.2), or else of
/// `X-Forwarded-For`, from the farthest hop to the nearest; `None` for a
/// hop that names no address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<std::net::IpAddr>> {
    fn address(text: &str) -> Option<std::net::IpAddr> {
        let t = text.trim().trim_matches('"');
        if let Some(rest) = t.strip_prefix('[') {
            return rest.split(']').next()?.parse().ok();
        }
        t.parse()
            .ok()
            .or_else(|| t.parse::<SocketAddr>().ok().map(|s| s.ip()))
    }
    let values = |name: header::HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::to_owned)
            .collect()
    };
    let forwarded = values(header::FORWARDED);
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| address(v))
            })
            .collect();
    }
    values(header::HeaderName::from_static("x-forwarded-for"))
        .iter()
        .map(|hop| address(hop))
        .collect()
}

#[cfg(test)]
mod client_address_tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let proxy: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        let lb = "10.0.0.5".parse().unwrap();
        let stranger = "203.0.113.9".parse().unwrap();
        let spoof = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(
            client_ip(stranger, &spoof, &[proxy]),
            stranger,
            "a client's own claim is ignored"
        );
        assert_eq!(
            client_ip(lb, &spoof, &[]),
            lb,
            "no proxy configured: the peer"
        );
        assert_eq!(client_ip(lb, &spoof, &[proxy]).to_string(), "198.51.100.1");
        // The client prepends a lie; the proxy appends what it saw.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.1, 10.0.0.7")]);
        assert_eq!(client_ip(lb, &chain, &[proxy]).to_string(), "198.51.100.1");
        let rfc = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::1]:4711\";proto=https",
        )]);
        assert_eq!(client_ip(lb, &rfc, &[proxy]).to_string(), "2001:db8::1");
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_ip(lb, &unknown, &[proxy]), lb);
        let port = headers(&[("x-forwarded-for", "198.51.100.2:5555")]);
        assert_eq!(client_ip(lb, &port, &[proxy]).to_string(), "198.51.100.2");
    }
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

pub fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub async fn event(
    state: &AppState,
    kind: &str,
    account: Option<i64>,
    username: &str,
    addr: &str,
    detail: &str,
) {
    if let Err(e) = state
        .store
        .record_security_event(kind, account, username, addr, detail)
        .await
    {
        tracing::error!(error = %e, kind, "could not record a security event");
    }
}

/// Ends the caller's current session, if any (before a new one starts).
async fn end_current(state: &AppState, caller: &Caller) {
    let hash = match caller {
        Caller::Signed(p) => p.session_hash().map(str::to_owned),
        Caller::Pending { session, .. } => Some(session.id_hash.clone()),
        Caller::Anonymous | Caller::Machine(_) => None,
    };
    if let Some(h) = hash {
        let _ = state.store.delete_session(&h).await;
    }
}

// --------------------------------------------------------------- sign in

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    layout: Layout,
    next: String,
    username: String,
    error: Option<String>,
    demo: bool,
    /// Just after a sign-up request (whatever its outcome, which is not told).
    registered: bool,
}

pub async fn sign_in_form(ctx: PageCtx, State(state): State<AppState>) -> Response {
    let next = safe_next(
        form_urlencoded::parse(ctx.query.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
            .as_deref(),
    );
    let registered = state.config.demo
        && form_urlencoded::parse(ctx.query.as_bytes()).any(|(k, v)| k == "registered" && v == "1");
    render(&SignInPage {
        layout: ctx.layout(ctx.tr().s("signin.title"), "sign-in"),
        next,
        username: String::new(),
        error: None,
        demo: state.config.demo,
        registered,
    })
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn sign_in(
    ctx: PageCtx,
    State(state): State<AppState>,
    ClientAddress(addr): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let tr = ctx.tr();
    let page = |status: StatusCode, error: String| {
        let view = SignInPage {
            layout: ctx.layout(tr.s("signin.title"), "sign-in"),
            next: next.clone(),
            username: form.username.chars().take(64).collect(),
            error: Some(error),
            demo: state.config.demo,
            registered: false,
        };
        (status, render(&view)).into_response()
    };
    let username = normalize_username(&form.username).unwrap_or_default();
    // A browser this account signed in from before is held by its own
    // count only; strangers share the account's and their address's, so a
    // flood of wrong passwords slows them without locking the owner out.
    let device = auth::trusted_device(&headers, &state.identity, &username);
    let keys: Vec<(String, &auth::Throttle)> = match &device {
        Some(nonce) => vec![(format!("device:{nonce}"), &*state.account_throttle)],
        None => vec![
            (format!("account:{username}"), &*state.account_throttle),
            (format!("address:{addr}"), &*state.address_throttle),
        ],
    };
    let mut wait = None;
    for (key, throttle) in &keys {
        if let Some(w) = throttle.wait(&state.store, key).await {
            wait = Some(w);
            break;
        }
    }
    if let Some(wait) = wait {
        event(&state, "login.throttled", None, &username, &addr, "").await;
        let mut r = page(
            StatusCode::TOO_MANY_REQUESTS,
            tr.s("signin.throttled")
                .replace("{n}", &wait.as_secs().max(1).to_string()),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let account = if username.is_empty() || form.password.chars().count() > PASSWORD_MAX {
        None
    } else {
        match state.store.account_by_username(&username).await {
            Ok(a) => a.filter(Account::is_active),
            Err(e) => return store_failed(ctx.lang)(e).into_response(),
        }
    };
    let verified = match state
        .passwords
        .verify(
            account.as_ref().map(|a| a.password_hash.as_str()),
            &form.password,
        )
        .await
    {
        Ok(v) => v,
        Err(auth::Busy) => {
            let mut r = page(StatusCode::SERVICE_UNAVAILABLE, tr.s("signin.busy").into());
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
    };
    let Some(account) = account.filter(|_| verified) else {
        let id = None;
        event(
            &state,
            "login.failed",
            id,
            &username,
            &addr,
            "wrong username or password",
        )
        .await;
        for (key, throttle) in &keys {
            if let Some(lock) = throttle.fail(&state.store, key).await {
                let what = key.split(':').next().unwrap_or("key");
                event(
                    &state,
                    "login.locked",
                    id,
                    &username,
                    &addr,
                    &format!("{what} locked for {} s", lock.as_secs()),
                )
                .await;
            }
        }
        return page(StatusCode::UNAUTHORIZED, tr.s("signin.wrong").into());
    };
    for (key, throttle) in &keys {
        if !key.starts_with("address:") {
            throttle.succeed(&state.store, key).await;
        }
    }
    let grants = match state.store.grants(account.id).await {
        Ok(g) => g,
        Err(e) => return store_failed(ctx.lang)(e).into_response(),
    };
    let staff = grants.iter().any(|g| g.role.needs_second_factor());
    let has_passkey = !state
        .store
        .passkeys_of(account.id)
        .await
        .unwrap_or_default()
        .is_empty();
    let stage = if account.totp_secret.is_some() || (has_passkey && state.webauthn.is_some()) {
        "second_factor"
    } else if staff && !state.config.demo {
        "enrol"
    } else {
        "full"
    };
    // A new session id at every sign-in, and the old session ended.
    end_current(&state, &ctx.caller).await;
    let id = match auth::start_session(
        &state.store,
        account.id,
        stage,
        "pwd",
        &addr,
        &user_agent(&headers),
    )
    .await
    {
        Ok(id) => id,
        Err(p) => return p.into_response(),
    };
    event(
        &state,
        "login.password_ok",
        Some(account.id),
        &account.username,
        &addr,
        stage,
    )
    .await;
    let to = if stage == "full" {
        next
    } else {
        let n: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
        format!("{}?next={n}", auth::pending_page(stage))
    };
    let response = with_cookie(
        Redirect::to(&to).into_response(),
        &session_cookie(
            state.config.is_https(),
            &id,
            auth::SESSION_ABSOLUTE_MS / 1000,
        ),
    );
    // This browser now knows the account: a new device cookie (a fresh
    // nonce, so a cookie that leaked stops counting as this one).
    with_cookie(
        response,
        &auth::device_cookie(state.config.is_https(), &state.identity, &account.username),
    )
}

// ---------------------------------------------------------- second factor

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage {
    layout: Layout,
    next: String,
    csrf: String,
    error: bool,
    /// Offer "use a passkey" (the account has one and passkeys are on).
    passkey: bool,
}

/// Whether a person can answer the second step with a passkey.
async fn can_use_passkey(state: &AppState, account_id: i64) -> bool {
    state.webauthn.is_some()
        && state
            .store
            .passkeys_of(account_id)
            .await
            .is_ok_and(|p| !p.is_empty())
}

fn next_of(ctx: &PageCtx) -> String {
    safe_next(
        form_urlencoded::parse(ctx.query.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
            .as_deref(),
    )
}

pub async fn second_factor_form(ctx: PageCtx, State(state): State<AppState>) -> Response {
    let Caller::Pending { session, .. } = &ctx.caller else {
        return Redirect::to("/account").into_response();
    };
    if session.stage != "second_factor" {
        return Redirect::to(auth::pending_page(&session.stage)).into_response();
    }
    let passkey = can_use_passkey(&state, session.account_id).await;
    render(&SecondFactorPage {
        layout: ctx.layout(ctx.tr().s("second_factor.title"), ""),
        next: next_of(&ctx),
        csrf: session.csrf.clone(),
        error: false,
        passkey,
    })
}

#[derive(Deserialize)]
pub struct SecondFactor {
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn second_factor(
    ctx: PageCtx,
    State(state): State<AppState>,
    ClientAddress(addr): ClientAddress,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SecondFactor>,
) -> Response {
    let Caller::Pending { session, account } = &ctx.caller else {
        return Redirect::to("/account").into_response();
    };
    let next = safe_next(form.next.as_deref());
    let attempt = SecondFactorAttempt::new(&state, account, &addr);
    // The same page again, saying the code was not accepted.
    let again = async |status: StatusCode| {
        let page = SecondFactorPage {
            layout: ctx.layout(ctx.tr().s("second_factor.title"), ""),
            next: next.clone(),
            csrf: session.csrf.clone(),
            error: true,
            passkey: can_use_passkey(&state, account.id).await,
        };
        (status, render(&page)).into_response()
    };
    if attempt.throttled().await {
        return again(StatusCode::TOO_MANY_REQUESTS).await;
    }
    let secret = account
        .totp_secret
        .as_deref()
        .and_then(|sealed| state.identity.open_totp(sealed));
    let ok = match (&secret, form.code.trim().len()) {
        (Some(secret), 6) | (Some(secret), 7) => {
            match auth::totp_step(
                secret,
                &account.username,
                &form.code,
                auth::unix_now() as u64,
            ) {
                // A code works once, even within its 30 s window.
                Some(step) => state
                    .store
                    .use_totp_step(account.id, step)
                    .await
                    .unwrap_or(false),
                None => false,
            }
        }
        (Some(_), _) => state
            .store
            .use_recovery_code(
                account.id,
                &digest(&auth::normalize_recovery_code(&form.code)),
            )
            .await
            .unwrap_or(false),
        (None, _) => false,
    };
    if !ok {
        attempt.failed("").await;
        return again(StatusCode::UNAUTHORIZED).await;
    }
    match attempt.succeeded(&ctx.caller, "pwd otp", &headers).await {
        Ok(cookie) => with_cookie(Redirect::to(&next).into_response(), &cookie),
        Err(p) => p.into_response(),
    }
}

/// One attempt at a second factor (a code or a passkey) by someone who
/// knew the password: guesses have a throttle count of their own, apart from
/// the password's; each refusal, lock and success is a security event; a
/// success replaces the pending session with a full one.
pub struct SecondFactorAttempt<'a> {
    state: &'a AppState,
    account: &'a Account,
    addr: &'a str,
    key: String,
}

impl<'a> SecondFactorAttempt<'a> {
    pub fn new(state: &'a AppState, account: &'a Account, addr: &'a str) -> Self {
        SecondFactorAttempt {
            state,
            account,
            addr,
            key: format!("second_factor:{}", account.username),
        }
    }

    async fn event(&self, kind: &str, detail: &str) {
        event(
            self.state,
            kind,
            Some(self.account.id),
            &self.account.username,
            self.addr,
            detail,
        )
        .await;
    }

    /// Whether guessing must wait; a wait is recorded.
    pub async fn throttled(&self) -> bool {
        let throttle = &self.state.account_throttle;
        let wait = throttle.wait(&self.state.store, &self.key).await.is_some();
        if wait {
            self.event("second_factor.throttled", "").await;
        }
        wait
    }

    /// A wrong code or a passkey answer that does not verify (`how`).
    pub async fn failed(&self, how: &str) {
        self.event("second_factor.failed", how).await;
        let throttle = &self.state.account_throttle;
        if let Some(lock) = throttle.fail(&self.state.store, &self.key).await {
            let detail = format!("account locked for {} s", lock.as_secs());
            self.event("login.locked", &detail).await;
        }
    }

    /// The factor proven (`amr`, the methods): the count cleared, the
    /// sign-in recorded, a full session started; its `Set-Cookie` value.
    pub async fn succeeded(
        &self,
        caller: &Caller,
        amr: &str,
        headers: &HeaderMap,
    ) -> Result<String, Problem> {
        let throttle = &self.state.account_throttle;
        throttle.succeed(&self.state.store, &self.key).await;
        self.event("login.succeeded", amr).await;
        promote_session(self.state, caller, self.account.id, amr, self.addr, headers).await
    }
}

/// Ends the pending session and starts a full one under a new id, with the
/// methods proven (`amr`); returns its `Set-Cookie` value.
pub async fn promote_session(
    state: &AppState,
    caller: &Caller,
    account_id: i64,
    amr: &str,
    addr: &str,
    headers: &HeaderMap,
) -> Result<String, Problem> {
    end_current(state, caller).await;
    let id = auth::start_session(
        &state.store,
        account_id,
        "full",
        amr,
        addr,
        &user_agent(headers),
    )
    .await?;
    Ok(session_cookie(
        state.config.is_https(),
        &id,
        auth::SESSION_ABSOLUTE_MS / 1000,
    ))
}

// ------------------------------------------------------ second factor set-up

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage {
    layout: Layout,
    action: &'static str,
    csrf: String,
    secret: String,
    qr_svg: String,
    next: String,
    error: bool,
    /// Replacing an authenticator asks for a code from the current one.
    needs_current: bool,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryCodesPage {
    layout: Layout,
    codes: Vec<String>,
    next: String,
}

fn enrol_page(
    ctx: &PageCtx,
    csrf: &str,
    username: &str,
    secret: String,
    error: bool,
    needs_current: bool,
) -> Response {
    let uri = totp_rs::Secret::Encoded(secret.clone())
        .to_bytes()
        .ok()
        .and_then(|b| auth::totp(&b, username))
        .map(|t| t.get_url())
        .unwrap_or_default();
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map(|q| {
            q.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build()
        })
        .unwrap_or_default();
    let pending = matches!(ctx.caller, Caller::Pending { .. });
    let page = EnrolPage {
        layout: ctx.layout(ctx.tr().s("enrol.title"), ""),
        action: if pending {
            "/sign-in/set-up-second-factor"
        } else {
            "/account/second-factor"
        },
        csrf: csrf.to_owned(),
        secret,
        // The SVG is generated here from a URI we built: no user text in it.
        qr_svg: qr_svg.replace("<?xml version=\"1.0\" standalone=\"yes\"?>", ""),
        next: next_of(ctx),
        error,
        needs_current,
    };
    let status = if error {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, render(&page)).into_response()
}

fn caller_account(caller: &Caller) -> Option<(i64, String, String)> {
    match caller {
        Caller::Signed(p) => Some((
            p.account_id,
            p.username.clone(),
            p.csrf().unwrap_or_default().to_owned(),
        )),
        Caller::Pending { session, account } => {
            Some((account.id, account.username.clone(), session.csrf.clone()))
        }
        Caller::Anonymous | Caller::Machine(_) => None,
    }
}

/// The current TOTP secret of a signed-in person replacing it (step-up: the
/// new authenticator is accepted only with a code from the old one).
async fn current_totp(state: &AppState, caller: &Caller) -> Option<String> {
    let Caller::Signed(p) = caller else {
        return None;
    };
    let account = state.store.account(p.account_id).await.ok().flatten()?;
    state.identity.open_totp(account.totp_secret.as_deref()?)
}

pub async fn enrol_form(ctx: PageCtx, State(state): State<AppState>) -> Response {
    if let Caller::Pending { session, .. } = &ctx.caller
        && session.stage != "enrol"
    {
        return Redirect::to(auth::pending_page(&session.stage)).into_response();
    }
    let Some((_, username, csrf)) = caller_account(&ctx.caller) else {
        return Redirect::to("/sign-in").into_response();
    };
    let needs_current = current_totp(&state, &ctx.caller).await.is_some();
    enrol_page(
        &ctx,
        &csrf,
        &username,
        auth::new_totp_secret(),
        false,
        needs_current,
    )
}

#[derive(Deserialize)]
pub struct Enrol {
    #[serde(default)]
    secret: String,
    #[serde(default)]
    code: String,
    /// A code from the authenticator being replaced.
    #[serde(default)]
    current: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn enrol(
    ctx: PageCtx,
    State(state): State<AppState>,
    ClientAddress(addr): ClientAddress,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<Enrol>,
) -> Response {
    let Some((account_id, username, csrf)) = caller_account(&ctx.caller) else {
        return Redirect::to("/sign-in").into_response();
    };
    if let Caller::Pending { session, .. } = &ctx.caller
        && session.stage != "enrol"
    {
        return Redirect::to(auth::pending_page(&session.stage)).into_response();
    }
    let valid_secret = form.secret.len() == 32
        && totp_rs::Secret::Encoded(form.secret.clone())
            .to_bytes()
            .is_ok();
    let now = auth::unix_now() as u64;
    let step = valid_secret
        .then(|| auth::totp_step(&form.secret, &username, &form.code, now))
        .flatten();
    let current = current_totp(&state, &ctx.caller).await;
    let current_ok = match &current {
        None => true,
        Some(old) => match auth::totp_step(old, &username, &form.current, now) {
            Some(s) => state
                .store
                .use_totp_step(account_id, s)
                .await
                .unwrap_or(false),
            None => false,
        },
    };
    let (Some(step), true) = (step, current_ok) else {
        let secret = if valid_secret {
            form.secret
        } else {
            auth::new_totp_secret()
        };
        return enrol_page(&ctx, &csrf, &username, secret, true, current.is_some());
    };
    let codes = auth::new_recovery_codes();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| digest(&auth::normalize_recovery_code(c)))
        .collect();
    let Some(sealed) = state.identity.seal_totp(&form.secret) else {
        return PageError::internal(ctx.lang).into_response();
    };
    if let Err(e) = state
        .store
        .set_second_factor(account_id, Some(&sealed), &hashes)
        .await
    {
        return store_failed(ctx.lang)(e).into_response();
    }
    let _ = state.store.use_totp_step(account_id, step).await;
    event(
        &state,
        "second_factor.enrolled",
        Some(account_id),
        &username,
        &addr,
        "totp",
    )
    .await;
    let next = safe_next(form.next.as_deref());
    let page = RecoveryCodesPage {
        layout: ctx.layout(ctx.tr().s("recovery.title"), ""),
        codes,
        next: next.clone(),
    };
    let mut response = render(&page);
    if matches!(ctx.caller, Caller::Pending { .. }) {
        // Enrolment proved the second factor: the session becomes full, under a new id.
        // If that fails the codes are still shown (they are saved); the
        // person stays part-way signed in and signs in again.
        match promote_session(&state, &ctx.caller, account_id, "pwd otp", &addr, &headers).await {
            Ok(cookie) => response = with_cookie(response, &cookie),
            Err(_) => tracing::warn!(account_id, "enrolled, but the session was not promoted"),
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ---------------------------------------------------------------- sign up

#[derive(Template)]
#[template(path = "signup.html")]
struct SignUpPage {
    layout: Layout,
    fields: Vec<SignUpField>,
}

/// One field of the sign-up form, with its value and error (if any).
pub struct SignUpField {
    pub name: &'static str,
    pub kind: &'static str,
    pub autocomplete: &'static str,
    pub max: usize,
    pub value: String,
    pub error: Option<String>,
}

impl SignUpPage {
    fn new(layout: Layout, form: &SignUp, errors: &[(String, String)]) -> SignUpPage {
        let error = |f: &str| errors.iter().find(|(n, _)| n == f).map(|(_, d)| d.clone());
        let field = |name, kind, autocomplete, max, value: &str| SignUpField {
            name,
            kind,
            autocomplete,
            max,
            value: value.to_owned(),
            error: error(name),
        };
        SignUpPage {
            layout,
            fields: vec![
                field("username", "text", "username", 64, &form.username),
                field("display_name", "text", "name", 100, &form.display_name),
                field("national_id", "text", "off", 20, &form.national_id),
                // A password is never sent back.
                field("password", "password", "new-password", 256, ""),
            ],
        }
    }
}

#[derive(Deserialize, Default)]
pub struct SignUp {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    national_id: String,
    #[serde(default)]
    password: String,
}

pub async fn sign_up_form(ctx: PageCtx, State(state): State<AppState>) -> Response {
    if !state.config.demo {
        return PageError::not_found(ctx.lang).into_response();
    }
    render(&SignUpPage::new(
        ctx.layout(ctx.tr().s("signup.title"), "sign-up"),
        &SignUp::default(),
        &[],
    ))
}

/// Demo mode only: in production citizens are provisioned or federated.
pub async fn sign_up(
    ctx: PageCtx,
    State(state): State<AppState>,
    ClientAddress(addr): ClientAddress,
    Form(form): Form<SignUp>,
) -> Response {
    if !state.config.demo {
        return PageError::not_found(ctx.lang).into_response();
    }
    let tr = ctx.tr();
    let mut errors: Vec<(String, String)> = Vec::new();
    let username = match normalize_username(&form.username) {
        Ok(u) => Some(u),
        Err(_) => {
            errors.push(("username".into(), tr.s("signup.bad_username").into()));
            None
        }
    };
    let display = match identity::check_display_name(&form.display_name) {
        Ok(d) => Some(d),
        Err(_) => {
            errors.push((
                "display_name".into(),
                tr.s("signup.bad_display_name").into(),
            ));
            None
        }
    };
    let national = match identity::normalize_national_id(&form.national_id) {
        Ok(n) => Some(state.identity.national_id_hash(&n)),
        Err(_) => {
            errors.push(("national_id".into(), tr.s("signup.bad_national_id").into()));
            None
        }
    };
    if let Err(problem) = check_new_password(&form.password, username.as_deref().unwrap_or("")) {
        errors.push(("password".into(), tr.s(problem.key()).into()));
    }
    let refuse = |errors: Vec<(String, String)>, form: &SignUp| {
        let page = SignUpPage::new(ctx.layout(tr.s("signup.title"), "sign-up"), form, &errors);
        (StatusCode::BAD_REQUEST, render(&page)).into_response()
    };
    let (Some(username), Some(display), Some(national), true) =
        (username, display, national, errors.is_empty())
    else {
        return refuse(errors, &form);
    };
    // Usernames are chosen handles: saying one is taken reveals nobody.
    match state.store.account_by_username(&username).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return refuse(
                vec![("username".into(), tr.s("signup.taken").into())],
                &form,
            );
        }
        Err(e) => return store_failed(ctx.lang)(e).into_response(),
    }
    let hash = match state.passwords.hash(&form.password).await {
        Ok(h) => h,
        Err(auth::Busy) => return Problem::busy().into_response(),
    };
    let new = NewAccount {
        kind: AccountKind::Citizen,
        username: username.clone(),
        display_name: display,
        national_id_hash: Some(national.clone()),
        agency: None,
        password_hash: hash,
        totp_secret: None,
        grants: vec![Grant {
            role: Role::Citizen,
            agency: None,
        }],
    };
    // A resident registration number, though, is a person: whether one
    // already has an account is never told. Created or not, the answer is
    // the same (sign in with what you chose); the holder of an existing
    // account sees the attempt among their security events.
    match state.store.create_account(&new, "self-registration").await {
        Ok(account) => {
            event(
                &state,
                "account.created",
                Some(account.id),
                &username,
                &addr,
                "sign-up",
            )
            .await;
        }
        Err(nara_store::StoreError::Conflict(_)) => {
            let holder = state.store.account_id_by_national_hash(&national).await;
            if let Ok(Some(holder)) = holder {
                event(
                    &state,
                    "account.sign_up_refused",
                    Some(holder),
                    &username,
                    &addr,
                    "someone tried to create an account with your resident registration number",
                )
                .await;
            }
        }
        Err(e) => return store_failed(ctx.lang)(e).into_response(),
    }
    end_current(&state, &ctx.caller).await;
    Redirect::to("/sign-in?registered=1").into_response()
}

// --------------------------------------------------------------- sign out

#[derive(Deserialize)]
pub struct CsrfOnly {}

fn cleared_cookie(state: &AppState) -> String {
    session_cookie(state.config.is_https(), "", 0)
}

pub async fn sign_out(
    ctx: PageCtx,
    State(state): State<AppState>,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    end_current(&state, &ctx.caller).await;
    with_cookie(Redirect::to("/").into_response(), &cleared_cookie(&state))
}

// ---------------------------------------------------------------- account

pub struct SessionView {
    pub current: bool,
    pub created: String,
    pub last_seen: String,
    pub address: String,
    pub device: String,
}

pub struct AppView {
    pub client_id: String,
    pub name: String,
    pub agency: String,
    pub scope: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    display_name: String,
    username: String,
    kind: &'static str,
    roles: Vec<(String, String)>,
    second_factor: bool,
    recovery_left: i64,
    sessions: Vec<SessionView>,
    apps: Vec<AppView>,
    csrf: String,
    /// Operators only: their API tokens, and one just made (shown once).
    tokens: Option<Vec<TokenView>>,
    new_token: Option<String>,
    scopes: &'static [&'static str],
    /// (credential id, name, added, last used)
    passkeys: Vec<(String, String, String, String)>,
    passkeys_enabled: bool,
}

pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scopes: String,
    pub expires: String,
    pub live: bool,
}

pub async fn account_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    account_view(&ctx, &state, &who, None).await
}

async fn account_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    new_token: Option<String>,
) -> Result<Response, PageError> {
    let fail = store_failed(ctx.lang);
    let account = state
        .store
        .account(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let sessions = state
        .store
        .sessions_of(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .map(|s| SessionView {
            current: Some(s.id_hash.as_str()) == who.session_hash(),
            created: when(s.created_at),
            last_seen: when(s.last_seen_at),
            address: s.address,
            device: s.user_agent,
        })
        .collect();
    let agencies = state
        .store
        .all_agencies()
        .await
        .map_err(store_failed(ctx.lang))?;
    let agency_name = |id: &MemberId| {
        agencies
            .iter()
            .find(|a| &a.id == id)
            .map(|a| a.name.get(ctx.lang).to_owned())
            .unwrap_or_else(|| id.to_string())
    };
    let apps = state
        .store
        .connected_apps(who.account_id)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|(c, scope, at)| AppView {
            agency: agency_name(&c.agency),
            client_id: c.client_id,
            name: c.name,
            scope,
            since: when(at),
        })
        .collect();
    let tr = ctx.tr();
    let roles = who
        .grants
        .iter()
        .map(|g| {
            (
                tr.s(&format!("role.{}", g.role)).to_owned(),
                g.agency.as_ref().map(&agency_name).unwrap_or_default(),
            )
        })
        .collect();
    let recovery_left = state
        .store
        .recovery_codes_left(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let now = nara_core::Timestamp::now().0;
    let tokens = if who.has_role(Role::Operator) {
        Some(
            state
                .store
                .api_tokens_of(who.account_id)
                .await
                .map_err(store_failed(ctx.lang))?
                .into_iter()
                .map(|t| TokenView {
                    id: t.id,
                    name: t.name,
                    scopes: t.scopes,
                    expires: when(t.expires_at),
                    live: t.revoked_at.is_none() && t.expires_at > now,
                })
                .collect(),
        )
    } else {
        None
    };
    let page = AccountPage {
        layout: ctx.layout(tr.s("account.title"), "account"),
        display_name: account.display_name,
        username: account.username,
        kind: tr.s(&format!("account_kind.{}", account.kind)),
        roles,
        second_factor: account.totp_secret.is_some(),
        recovery_left,
        sessions,
        apps,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        tokens,
        new_token,
        scopes: auth::SCOPES,
        passkeys: state
            .store
            .passkeys_of(who.account_id)
            .await
            .map_err(store_failed(ctx.lang))?
            .into_iter()
            .map(|p| {
                (
                    p.credential_id,
                    p.name,
                    when(p.created_at),
                    p.last_used_at.map(when).unwrap_or_default(),
                )
            })
            .collect(),
        passkeys_enabled: state.webauthn.is_some(),
    };
    let mut r = render(&page);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[derive(Deserialize)]
pub struct NewToken {
    #[serde(default)]
    name: String,
    /// Checkboxes: each checked scope arrives as its own `scope` field.
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    days: String,
}

/// An operator makes an API token: named, scoped, expiring (1–90 days),
/// shown once and kept as a digest.
pub async fn create_token(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    // Repeated `scope` fields need a parser that collects them.
    let mut form = NewToken {
        name: String::new(),
        scope: Vec::new(),
        days: String::new(),
    };
    for (k, v) in pairs {
        match &*k {
            "name" => form.name = v,
            "scope" => form.scope.push(v),
            "days" => form.days = v,
            _ => {}
        }
    }
    let days: u64 = form.days.parse().unwrap_or(0);
    let scopes: Vec<&str> = auth::SCOPES
        .iter()
        .copied()
        .filter(|s| form.scope.iter().any(|x| x == s))
        .collect();
    let valid = (1..=90).contains(&days)
        && !scopes.is_empty()
        && scopes.len() == form.scope.len()
        && identity::check_display_name(&form.name).is_ok();
    if !valid {
        return Err(PageError {
            status: StatusCode::BAD_REQUEST,
            message: "account.bad_token",
            lang: ctx.lang,
        });
    }
    let token = auth::issue_api_token(
        &state.store,
        who.account_id,
        form.name.trim(),
        &scopes,
        std::time::Duration::from_secs(days * 86_400),
    )
    .await
    .map_err(store_failed(ctx.lang))?;
    account_view(&ctx, &state, &who, Some(token)).await
}

#[derive(Deserialize)]
pub struct RevokeToken {
    #[serde(default)]
    id: String,
}

pub async fn revoke_token(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(form): CsrfForm<RevokeToken>,
) -> Result<Response, PageError> {
    let id: i64 = form
        .id
        .parse()
        .map_err(|_| PageError::not_found(ctx.lang))?;
    match state.store.revoke_api_token(who.account_id, id).await {
        Ok(true) => Ok(Redirect::to("/account").into_response()),
        Ok(false) => Err(PageError::not_found(ctx.lang)),
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

/// "Sign out everywhere": ends every session of the account, this one too.
pub async fn end_sessions(
    ctx: PageCtx,
    State(state): State<AppState>,
    ClientAddress(addr): ClientAddress,
    who: Principal,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    match state.store.delete_sessions_of(who.account_id).await {
        Ok(n) => {
            event(
                &state,
                "sessions.ended",
                Some(who.account_id),
                &who.username,
                &addr,
                &format!("{n} sessions"),
            )
            .await;
            with_cookie(
                Redirect::to("/sign-in").into_response(),
                &cleared_cookie(&state),
            )
        }
        Err(e) => store_failed(ctx.lang)(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct RevokeApp {
    #[serde(default)]
    client_id: String,
}

pub async fn revoke_app(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(form): CsrfForm<RevokeApp>,
) -> Response {
    match state
        .store
        .disconnect_app(who.account_id, &form.client_id)
        .await
    {
        Ok(true) => Redirect::to("/account").into_response(),
        Ok(false) => PageError::not_found(ctx.lang).into_response(),
        Err(e) => store_failed(ctx.lang)(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_site() {
        assert_eq!(safe_next(Some("/systems?grade=1")), "/systems?grade=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/account");
        assert_eq!(safe_next(Some("https://evil.example/")), "/account");
        assert_eq!(safe_next(Some("/\\evil.example")), "/account");
        assert_eq!(safe_next(Some("/x\r\nSet-Cookie: a=b")), "/account");
        assert_eq!(safe_next(None), "/account");
    }
}
