//! Agency administration: an agency's admins manage its officials and their
//! roles (`officials`), its OpenID Connect apps (`apps`) and its systems'
//! signing keys (`machine_clients`). Each page is about one agency the admin
//! holds; another agency is "not found".

pub mod apps;
pub mod machine_clients;
pub mod officials;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use nara_core::MemberId;
use nara_core::identity::Role;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::identity::auth::Principal;
use crate::web::{PageCtx, PageError, query_value, store_failed};

/// The agency an admin page (`?agency=`) is about, already narrowed by
/// [`admin_agency`]: a handler that takes it cannot show another agency.
pub struct AdminAgency(pub MemberId);

impl FromRequestParts<AppState> for AdminAgency {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, PageError> {
        let ctx = PageCtx::from_parts(parts)?;
        let who = parts
            .extensions
            .get::<Principal>()
            .ok_or_else(|| PageError::not_found(ctx.lang))?;
        let asked = query_value(&ctx, "agency");
        admin_agency(&ctx, who, asked.as_deref()).map(AdminAgency)
    }
}

/// An admin's form: its anti-forgery token checked, its `agency` field
/// narrowed by [`admin_agency`] (another agency is 404), the rest read into
/// `T`. A handler that takes it can neither skip the token nor act for an
/// agency its admin does not hold.
pub struct AdminForm<T> {
    pub agency: MemberId,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for AdminForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let who = req.extensions().get::<Principal>().cloned();
        let (ctx, checked) = crate::web::csrf::checked_form(req, state).await?;
        let who = who.ok_or_else(|| PageError::not_found(ctx.lang).into_response())?;
        let asked = checked.field("agency").unwrap_or_default();
        let agency = admin_agency(&ctx, &who, Some(&asked)).map_err(IntoResponse::into_response)?;
        let form = checked.parse(&ctx).map_err(IntoResponse::into_response)?;
        Ok(AdminForm { agency, form })
    }
}

/// An agency's name in the page's language (empty if it is gone).
pub(crate) async fn agency_name(
    ctx: &PageCtx,
    state: &AppState,
    agency: &MemberId,
) -> Result<String, PageError> {
    Ok(state
        .store
        .get_agency(agency)
        .await
        .map_err(store_failed(ctx.lang))?
        .map(|a| a.name.get(ctx.lang).to_owned())
        .unwrap_or_default())
}

/// The agency an admin page is about: the one asked for, if the admin holds
/// it, else their first. Anything else is "not found" (not "forbidden"), so
/// an admin cannot probe other agencies.
fn admin_agency(
    ctx: &PageCtx,
    who: &Principal,
    asked: Option<&str>,
) -> Result<MemberId, PageError> {
    let held = who.agencies_for(Role::AgencyAdmin);
    match asked {
        Some(a) => held
            .into_iter()
            .find(|h| h.as_str() == a)
            .ok_or_else(|| PageError::not_found(ctx.lang)),
        None => held
            .into_iter()
            .next()
            .ok_or_else(|| PageError::not_found(ctx.lang)),
    }
}
