//! Setting up the second factor (an authenticator app's secret as a QR
//! code, recovery codes shown once), at first sign-in or from the account.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::AppState;
use crate::identity::auth::{self, Caller, digest};
use crate::identity::request::{ClientAddress, event, promote_session, safe_next, with_cookie};
use crate::identity::sign_in::next_of;
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

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
