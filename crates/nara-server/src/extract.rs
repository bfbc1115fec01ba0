//! Request extractors whose rejections are RFC 9457 problems naming the
//! offending field, instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON body, read with the field path of the first error kept.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The body must be JSON",
            )
            .detail("send `Content-Type: application/json`"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "The body is too large",
                )
                .detail(e.body_text())
            } else {
                Problem::bad_request("body", e.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON object, naming the path of the first bad field (`name.ko`,
/// `grade`). Every body the API reads is an object: serde would also read a
/// struct from an array of its fields in order, which no client means.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::bad_request("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        Problem::bad_request(&field, e.inner().to_string())
    })?;
    de.end()
        .map_err(|e| Problem::bad_request("body", e.to_string()))?;
    Ok(value)
}

/// Query parameters, parsed with the name of the first bad parameter kept.
/// Unknown parameters are ignored, as links carry tracking or language ones.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parse_query(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

/// A UTF-8 text body of at most 256 KiB, sent as `application/toml` or
/// `text/plain` (or without a media type, as `curl --data-binary` does):
/// what a generic client can produce for a TOML document.
pub struct TomlText(pub String);

pub const TOML_TEXT_BYTES: usize = 256 * 1024;

impl<S: Send + Sync> FromRequest<S> for TomlText {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        let mime = req.headers().get(header::CONTENT_TYPE).map(|v| {
            v.to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        if !matches!(
            mime.as_deref(),
            None | Some("application/toml" | "text/plain" | "application/x-www-form-urlencoded")
        ) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The body must be TOML",
            )
            .detail("send `Content-Type: application/toml` (or text/plain)"));
        }
        let bytes = axum::body::to_bytes(req.into_body(), TOML_TEXT_BYTES)
            .await
            .map_err(|_| {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "The body is too large",
                )
                .detail("at most 256 KiB")
            })?;
        String::from_utf8(bytes.to_vec())
            .map(TomlText)
            .map_err(|_| Problem::bad_request("body", "is not UTF-8 text"))
    }
}

/// Path parameters, with a problem (not axum's plain text) when a segment is
/// not valid percent-encoded UTF-8 or does not parse.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|e| Problem::bad_request("path", e.body_text()))
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, Problem> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner().to_string();
        let path = e.path().to_string();
        // serde_urlencoded reports the parameter in the message, not the path.
        let field = if path == "." {
            inner
                .split('`')
                .nth(1)
                .map(str::to_owned)
                .unwrap_or_else(|| "query".to_owned())
        } else {
            path
        };
        Problem::bad_request(&field, inner)
    })
}

#[cfg(test)]
mod properties {
    use super::*;
    use nara_core::{AgencyFilter, PageRequest, ServiceFilter, SystemFilter, SystemInput};
    use proptest::prelude::*;

    proptest! {
        // Hostile input gets an answer, never a panic.
        #[test]
        fn query_parsing_never_panics(q in any::<String>()) {
            let _ = parse_query::<SystemFilter>(&q);
            let _ = parse_query::<ServiceFilter>(&q);
            let _ = parse_query::<AgencyFilter>(&q);
            let _ = parse_query::<PageRequest>(&q);
        }

        #[test]
        fn query_parsing_of_likely_keys_never_panics(
            key in "(agency|grade|kind|status|q|page|per_page|audience)",
            value in any::<String>(),
        ) {
            let q: String = form_urlencoded::Serializer::new(String::new()).append_pair(&key, &value).finish();
            let _ = parse_query::<SystemFilter>(&q);
            let _ = parse_query::<PageRequest>(&q);
        }

        #[test]
        fn json_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_json::<SystemInput>(&bytes);
            let _ = parse_json::<nara_core::NewAgency>(&bytes);
        }

        #[test]
        fn only_objects_are_read(body in "[\\[\"0-9tfn -].*") {
            prop_assert!(parse_json::<SystemInput>(body.as_bytes()).is_err());
        }

        #[test]
        fn bad_problems_name_a_field(grade in 5i64..1000) {
            let body = format!(r#"{{"agency":"KR/GOV/MOIS","code":"A","name":"n","kind":"server","grade":{grade},"environment":"production","status":"operational"}}"#);
            let problem = parse_json::<SystemInput>(body.as_bytes()).err().unwrap();
            prop_assert_eq!(problem.errors[0].field.as_str(), "grade");
        }
    }
}
