//! Signing in: the password, then a second factor (a code, a recovery
//! code or a passkey: one [`SecondFactorAttempt`] for each, with its own
//! throttle count), and signing out.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::identity::{PASSWORD_MAX, normalize_username};
use nara_store::identity::Account;
use serde::Deserialize;

use crate::AppState;
use crate::identity::auth::{self, Caller, digest, session_cookie};
use crate::identity::request::{
    ClientAddress, CsrfOnly, cleared_cookie, end_current, event, promote_session, safe_next,
    user_agent, with_cookie,
};
use crate::problem::Problem;
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, render, store_failed};

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
pub(crate) async fn can_use_passkey(state: &AppState, account_id: i64) -> bool {
    state.webauthn.is_some()
        && state
            .store
            .passkeys_of(account_id)
            .await
            .is_ok_and(|p| !p.is_empty())
}

pub(crate) fn next_of(ctx: &PageCtx) -> String {
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

// --------------------------------------------------------------- sign out

pub async fn sign_out(
    ctx: PageCtx,
    State(state): State<AppState>,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    end_current(&state, &ctx.caller).await;
    with_cookie(Redirect::to("/").into_response(), &cleared_cookie(&state))
}
