//! Cross-site request forgery. Every state-changing form of a signed-in
//! (or half-signed-in) person carries the session's anti-forgery token, and
//! the JSON API takes it in `X-CSRF-Token`. The extractors here are the
//! proof a handler needs: a handler that takes [`CsrfForm`] or [`CsrfHeader`]
//! cannot run unless the token matched (checked in constant time), so none
//! can forget the check. `same_origin_only` (Fetch Metadata / `Origin`)
//! guards every page form besides.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use nara_core::Lang;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::identity::auth::{Caller, constant_time_eq};
use crate::problem::Problem;
use crate::web::{PageCtx, PageError};

/// Whether `given` is the caller's session token.
pub fn csrf_ok(caller: &Caller, given: &str) -> bool {
    let expected = match caller {
        Caller::Signed(p) => p.csrf(),
        Caller::Pending { session, .. } => Some(session.csrf.as_str()),
        Caller::Anonymous | Caller::Machine(_) => None,
    };
    expected.is_some_and(|e| constant_time_eq(e, given))
}

/// The page a forged form gets.
pub fn csrf_refused(lang: Lang) -> Response {
    PageError {
        status: StatusCode::FORBIDDEN,
        message: "error.forbidden",
        lang,
    }
    .into_response()
}

/// A URL-encoded form whose `csrf` field is the caller's session token; the
/// rest deserialised into `T` (a form read as `Vec<(String, String)>` keeps
/// repeated names). A forged form gets the refusal page; a malformed one 400.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (ctx, form) = checked_form(req, state).await?;
        form.parse(&ctx)
            .map(CsrfForm)
            .map_err(IntoResponse::into_response)
    }
}

/// A form's body whose anti-forgery token matched; read it with [`parse`]
/// or [`field`].
///
/// [`parse`]: CheckedForm::parse
/// [`field`]: CheckedForm::field
pub struct CheckedForm(Bytes);

impl CheckedForm {
    pub fn parse<T: DeserializeOwned>(&self, ctx: &PageCtx) -> Result<T, PageError> {
        serde_urlencoded::from_bytes(&self.0).map_err(|_| PageError::bad_request(ctx.lang))
    }

    /// The first value of field `name`, if any.
    pub fn field(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(&self.0)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Reads a form and checks its `csrf` field against the caller's session
/// (the one place that check is made for forms).
pub async fn checked_form(
    req: Request,
    state: &AppState,
) -> Result<(PageCtx, CheckedForm), Response> {
    let (parts, body) = req.into_parts();
    let ctx = PageCtx::from_parts(&parts).map_err(IntoResponse::into_response)?;
    let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(|_| PageError::payload_too_large(ctx.lang).into_response())?;
    let form = CheckedForm(bytes);
    if !csrf_ok(&ctx.caller, &form.field("csrf").unwrap_or_default()) {
        return Err(csrf_refused(ctx.lang));
    }
    Ok((ctx, form))
}

/// Proof that a JSON API request carries the caller's session token in
/// `X-CSRF-Token` (a session's cookie alone could ride a cross-site request).
pub struct CsrfHeader;

impl FromRequestParts<AppState> for CsrfHeader {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Problem> {
        let caller = crate::identity::auth::caller_of(&parts.extensions);
        let given = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if csrf_ok(&caller, given) {
            Ok(CsrfHeader)
        } else {
            Err(Problem::forbidden()
                .detail("send the session's anti-forgery token in X-CSRF-Token"))
        }
    }
}
