//! Agency administration: an agency's admins manage its officials and their
//! roles (`officials`), its OpenID Connect apps (`apps`) and its systems'
//! signing keys (`machine_clients`). Each page is about one agency the admin
//! holds; another agency is "not found".

pub mod apps;
pub mod machine_clients;
pub mod officials;

use nara_core::MemberId;
use nara_core::identity::Role;

use crate::AppState;
use crate::identity::auth::Principal;
use crate::web::{PageCtx, PageError, store_failed};

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
pub(crate) fn admin_agency(
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
