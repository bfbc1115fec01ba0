//! Signing up (demo mode only): a citizen's account, never confirming that
//! a resident registration number is registered.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::identity::{self, AccountKind, Grant, Role, check_new_password, normalize_username};
use nara_store::identity::NewAccount;
use serde::Deserialize;

use crate::AppState;
use crate::identity::auth::{self};
use crate::identity::request::{ClientAddress, end_current, event};
use crate::problem::Problem;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

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
