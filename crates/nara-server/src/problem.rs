//! API errors as RFC 9457 problem details (`application/problem+json`). Every
//! error a handler returns becomes a [`Problem`] here, in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nara_core::{FieldError, Invalid};
use nara_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem details object, with nara's `errors` extension naming
/// each offending field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The fields that were wrong, when the request body or query was invalid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str) -> Self {
        Problem {
            kind: format!("https://nara.dev/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn invalid(invalid: Invalid) -> Self {
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
            "The request has invalid fields",
        )
        .detail(invalid.to_string());
        p.errors = invalid.errors;
        p
    }

    pub fn bad_request(field: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut p = Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The request could not be read",
        )
        .detail(detail.clone());
        p.errors = vec![FieldError {
            field: field.to_owned(),
            detail,
        }];
        p
    }

    pub fn not_found(what: &str) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found")
            .detail(format!("{what} not found"))
    }

    pub fn unauthorized() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication is required",
        )
        .detail("sign in, or send `Authorization: Bearer <API token>`")
    }

    /// A signed request whose signature was used before, here or on
    /// another node: refused, and nothing it asked for was done.
    pub fn replayed() -> Self {
        Problem::unauthorized().detail(
            "this signature was already used: sign every request anew (a replay is refused)",
        )
    }

    pub fn forbidden() -> Self {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "You are not allowed to do this",
        )
        .detail("your roles (or your token's scopes) do not allow this request")
    }

    pub fn busy() -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "Too many sign-ins at once",
        )
        .detail("please try again in a few seconds")
    }

    /// The database is unreachable or read-only for now (a failover):
    /// nothing was done, and the same request may be sent again.
    pub fn unavailable() -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The database is unavailable for a moment",
        )
        .detail("nothing was done; send the same request again in a second")
    }

    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side",
        )
        .detail("the error has been logged; please try again later")
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"nara\""),
            );
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Problem::not_found(&what),
            StoreError::Conflict(what) => {
                Problem::new(StatusCode::CONFLICT, "conflict", "Conflict").detail(what)
            }
            StoreError::Invalid(invalid) => Problem::invalid(invalid),
            StoreError::Replayed => Problem::replayed(),
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "database unavailable");
                Problem::unavailable()
            }
            other => {
                tracing::error!(error = %other, "store error");
                Problem::internal()
            }
        }
    }
}

impl From<Invalid> for Problem {
    fn from(e: Invalid) -> Self {
        Problem::invalid(e)
    }
}
