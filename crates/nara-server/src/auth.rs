//! The bootstrap operator credential: until accounts and roles exist, the
//! operator token from configuration authorises writes (as a bearer token) and
//! the operator pages (through a signed, expiring session cookie).
//!
//! Without a configured token there is no operator at all: every write is
//! refused. Tokens are compared as SHA-256 digests in constant time, so
//! neither their content nor their length leaks through timing.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::problem::Problem;

pub const SESSION_COOKIE: &str = "nara_operator";
/// An operator page session lasts eight hours: a working day, no more.
pub const SESSION_SECONDS: i64 = 8 * 3600;

/// Proof that the request carries the operator's bearer token.
#[derive(Debug)]
pub struct Operator;

pub fn token_matches(expected: &SecretString, given: &str) -> bool {
    let a = Sha256::digest(expected.expose_secret().as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.ct_eq(&b).into()
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Some(expected) = &state.config.operator_token else {
            return Err(Problem::unauthorized()
                .detail("no operator token is configured on this node, so writes are disabled"));
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(Problem::unauthorized)?;
        if token_matches(expected, given.trim()) {
            Ok(Operator)
        } else {
            tracing::warn!(path = %parts.uri.path(), "operator token refused");
            Err(Problem::unauthorized().detail("the operator token is not valid"))
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

fn session_mac(token: &SecretString) -> Option<HmacSha256> {
    // A key derived from the token: rotating the token ends every session.
    let key = Sha256::new()
        .chain_update(b"nara operator session v1\0")
        .chain_update(token.expose_secret().as_bytes())
        .finalize();
    HmacSha256::new_from_slice(&key).ok()
}

/// A session cookie value `EXPIRY.MAC` valid until `expiry` (Unix seconds).
pub fn issue_session(token: &SecretString, expiry: i64) -> Option<String> {
    let mut mac = session_mac(token)?;
    mac.update(expiry.to_string().as_bytes());
    Some(format!(
        "{expiry}.{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Whether a session cookie value is genuine and not expired at `now`.
pub fn session_valid(token: &SecretString, value: &str, now: i64) -> bool {
    let Some((expiry, tag)) = value.split_once('.') else {
        return false;
    };
    let (Ok(expiry_n), Ok(tag)) = (expiry.parse::<i64>(), hex::decode(tag)) else {
        return false;
    };
    let Some(mut mac) = session_mac(token) else {
        return false;
    };
    mac.update(expiry.as_bytes());
    mac.verify_slice(&tag).is_ok() && now < expiry_n && expiry_n <= now + SESSION_SECONDS
}

/// Reads one cookie from a request's `Cookie` headers.
pub fn cookie<'a>(parts: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    parts
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_and_expire() {
        let token = SecretString::from("a-long-operator-token");
        let now = 1_800_000_000;
        let v = issue_session(&token, now + 60).unwrap();
        assert!(session_valid(&token, &v, now));
        assert!(!session_valid(&token, &v, now + 61));
        assert!(!session_valid(
            &SecretString::from("another-token"),
            &v,
            now
        ));
        let forged = v.replacen(&(now + 60).to_string(), &(now + 600).to_string(), 1);
        assert!(!session_valid(&token, &forged, now));
        assert!(!session_valid(&token, "garbage", now));
    }

    #[test]
    fn tokens_compare() {
        let token = SecretString::from("abc");
        assert!(token_matches(&token, "abc"));
        assert!(!token_matches(&token, "abcd"));
        assert!(!token_matches(&token, ""));
    }
}
