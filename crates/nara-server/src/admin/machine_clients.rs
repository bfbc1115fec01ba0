//! An agency's systems' signing keys (RFC 9421): registration and revocation.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nara_core::MemberId;
use serde::Deserialize;

use crate::AppState;
use crate::identity::auth::Principal;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

use super::{AdminAgency, AdminForm, agency_name};
use crate::web::status_for;

#[derive(Template)]
#[template(path = "machine_clients.html")]
struct MachineClientsPage {
    layout: Layout,
    agency: String,
    agency_name: String,
    clients: Vec<nara_store::identity::MachineClient>,
    csrf: String,
    message: Option<String>,
    error: Option<String>,
}

async fn machine_clients_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    agency: &MemberId,
    message: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let clients = state
        .store
        .machine_clients_of(agency)
        .await
        .map_err(store_failed(ctx.lang))?;
    let agency_name = agency_name(ctx, state, agency).await?;
    let status = status_for(&error);
    let page = MachineClientsPage {
        layout: ctx.layout(ctx.tr().s("machine.title"), "admin"),
        agency: agency.to_string(),
        agency_name,
        clients,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        message,
        error,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn machine_clients_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminAgency(agency): AdminAgency,
) -> Result<Response, PageError> {
    machine_clients_view(&ctx, &state, &who, &agency, None, None).await
}

#[derive(Deserialize)]
pub struct RegisterKey {
    #[serde(default)]
    subsystem: String,
    #[serde(default)]
    public_key: String,
}

/// Registers a subsystem's Ed25519 public key (raw base64 or PEM).
pub async fn register_machine_client(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminForm { agency, form }: AdminForm<RegisterKey>,
) -> Result<Response, PageError> {
    let tr = ctx.tr();
    match crate::identity::machine::register(
        &state.store,
        &agency,
        &form.subsystem,
        &form.public_key,
        &who.actor(),
    )
    .await
    {
        Ok(client) => {
            machine_clients_view(&ctx, &state, &who, &agency, Some(client.key_id), None).await
        }
        Err(crate::identity::machine::NotRegistered::Subsystem) => {
            machine_clients_view(
                &ctx,
                &state,
                &who,
                &agency,
                None,
                Some(tr.s("machine.bad_subsystem").into()),
            )
            .await
        }
        Err(crate::identity::machine::NotRegistered::Key) => {
            machine_clients_view(
                &ctx,
                &state,
                &who,
                &agency,
                None,
                Some(tr.s("machine.bad_key").into()),
            )
            .await
        }
        Err(crate::identity::machine::NotRegistered::Store(e)) => Err(store_failed(ctx.lang)(e)),
    }
}

#[derive(Deserialize)]
pub struct RevokeKey {
    #[serde(default)]
    key_id: String,
}

pub async fn revoke_machine_client(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminForm { agency, form }: AdminForm<RevokeKey>,
) -> Result<Response, PageError> {
    match state
        .store
        .revoke_machine_client(&agency, &form.key_id, &who.actor())
        .await
    {
        Ok(true) => {
            machine_clients_view(
                &ctx,
                &state,
                &who,
                &agency,
                Some(format!("{} ✕", form.key_id)),
                None,
            )
            .await
        }
        Ok(false) => Err(PageError::not_found(ctx.lang)),
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}
