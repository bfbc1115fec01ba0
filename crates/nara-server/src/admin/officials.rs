//! An agency's officials and their roles.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nara_core::MemberId;
use nara_core::identity::{self, AccountKind, Grant, Role, check_new_password, normalize_username};
use nara_store::identity::NewAccount;
use serde::Deserialize;

use crate::AppState;
use crate::identity::auth::{self, Principal};
use crate::problem::Problem;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

use super::{AdminAgency, AdminForm};
use crate::web::status_for;

pub struct OfficialView {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<(String, String)>,
    pub second_factor: bool,
}

#[derive(Template)]
#[template(path = "officials.html")]
struct OfficialsPage {
    layout: Layout,
    agency: String,
    agency_name: String,
    admin_agencies: Vec<(String, String)>,
    officials: Vec<OfficialView>,
    scoped_roles: Vec<(&'static str, &'static str)>,
    csrf: String,
    message: Option<String>,
    error: Option<String>,
}

async fn officials_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    agency: &MemberId,
    message: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let tr = ctx.tr();
    let accounts = state
        .store
        .accounts_of_agency(agency)
        .await
        .map_err(store_failed(ctx.lang))?;
    let mut officials = Vec::new();
    for a in accounts {
        let grants = state
            .store
            .grants(a.id)
            .await
            .map_err(store_failed(ctx.lang))?;
        officials.push(OfficialView {
            id: a.id,
            username: a.username,
            display_name: a.display_name,
            second_factor: a.totp_secret.is_some(),
            roles: grants
                .into_iter()
                .filter(|g| g.agency.as_ref() == Some(agency))
                .map(|g| {
                    (
                        g.role.as_str().to_owned(),
                        tr.s(&format!("role.{}", g.role)).to_owned(),
                    )
                })
                .collect(),
        });
    }
    let agencies = state
        .store
        .all_agencies()
        .await
        .map_err(store_failed(ctx.lang))?;
    let name = |id: &MemberId| {
        agencies
            .iter()
            .find(|a| &a.id == id)
            .map(|a| a.name.get(ctx.lang).to_owned())
            .unwrap_or_else(|| id.to_string())
    };
    let scoped_roles = [Role::Official, Role::AgencyAdmin, Role::ServiceDesigner]
        .iter()
        .map(|r| (r.as_str(), tr.s(&format!("role.{r}"))))
        .collect();
    let status = status_for(&error);
    let page = OfficialsPage {
        layout: ctx.layout(tr.s("admin.officials_title"), "admin"),
        agency: agency.to_string(),
        agency_name: name(agency),
        admin_agencies: who
            .agencies_for(Role::AgencyAdmin)
            .iter()
            .map(|a| (a.to_string(), name(a)))
            .collect(),
        officials,
        scoped_roles,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        message,
        error,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn officials_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminAgency(agency): AdminAgency,
) -> Result<Response, PageError> {
    officials_view(&ctx, &state, &who, &agency, None, None).await
}

#[derive(Deserialize)]
pub struct NewOfficial {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
}

pub async fn create_official(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminForm { agency, form }: AdminForm<NewOfficial>,
) -> Result<Response, PageError> {
    let tr = ctx.tr();
    let username = normalize_username(&form.username);
    let display = identity::check_display_name(&form.display_name);
    let error = match (&username, &display) {
        (Err(_), _) => Some(tr.s("signup.bad_username").to_owned()),
        (_, Err(_)) => Some(tr.s("signup.bad_display_name").to_owned()),
        (Ok(u), Ok(_)) => check_new_password(&form.password, u)
            .err()
            .map(|p| tr.s(p.key()).to_owned()),
    };
    let (Ok(username), Ok(display), None) = (username, display, error.clone()) else {
        return officials_view(&ctx, &state, &who, &agency, None, error).await;
    };
    let hash = match state.passwords.hash(&form.password).await {
        Ok(h) => h,
        Err(auth::Busy) => return Ok(Problem::busy().into_response()),
    };
    let new = NewAccount {
        kind: AccountKind::Official,
        username,
        display_name: display,
        national_id_hash: None,
        agency: Some(agency.clone()),
        password_hash: hash,
        totp_secret: None,
        grants: vec![Grant {
            role: Role::Official,
            agency: Some(agency.clone()),
        }],
    };
    match state.store.create_account(&new, &who.actor()).await {
        Ok(a) => {
            officials_view(
                &ctx,
                &state,
                &who,
                &agency,
                Some(format!("{} ✓", a.username)),
                None,
            )
            .await
        }
        Err(nara_store::StoreError::Conflict(_)) => {
            officials_view(
                &ctx,
                &state,
                &who,
                &agency,
                None,
                Some(tr.s("signup.taken").into()),
            )
            .await
        }
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

#[derive(Deserialize)]
pub struct ChangeRole {
    #[serde(default)]
    account_id: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    action: String,
}

pub async fn change_role(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminForm { agency, form }: AdminForm<ChangeRole>,
) -> Result<Response, PageError> {
    let tr = ctx.tr();
    let bad = |key: &str| Some(tr.s(key).to_owned());
    let role: Option<Role> = form.role.parse().ok().filter(|r: &Role| r.agency_scoped());
    let target = match form.account_id.parse::<i64>() {
        Ok(id) => state
            .store
            .account(id)
            .await
            .map_err(store_failed(ctx.lang))?,
        Err(_) => None,
    };
    let (Some(role), Some(target)) = (role, target) else {
        return officials_view(&ctx, &state, &who, &agency, None, bad("admin.bad_role")).await;
    };
    if !target.kind.may_hold(role) || target.agency.as_ref() != Some(&agency) {
        return officials_view(&ctx, &state, &who, &agency, None, bad("admin.bad_role")).await;
    }
    if target.id == who.account_id && role == Role::AgencyAdmin && form.action == "revoke" {
        // An admin cannot lock their agency out by revoking themselves.
        return officials_view(&ctx, &state, &who, &agency, None, bad("admin.not_self")).await;
    }
    let grant = Grant {
        role,
        agency: Some(agency.clone()),
    };
    let done = match form.action.as_str() {
        "grant" => {
            state
                .store
                .grant_role(target.id, &grant, &who.actor())
                .await
        }
        "revoke" => {
            state
                .store
                .revoke_role(target.id, &grant, &who.actor())
                .await
        }
        _ => return officials_view(&ctx, &state, &who, &agency, None, bad("admin.bad_role")).await,
    };
    match done {
        Ok(()) => {
            officials_view(
                &ctx,
                &state,
                &who,
                &agency,
                Some(format!("{} ✓", target.username)),
                None,
            )
            .await
        }
        Err(nara_store::StoreError::Conflict(_)) | Err(nara_store::StoreError::NotFound(_)) => {
            officials_view(&ctx, &state, &who, &agency, None, bad("admin.no_change")).await
        }
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}
