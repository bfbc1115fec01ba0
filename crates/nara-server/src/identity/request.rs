//! What every identity page reads of a request and writes back: where to
//! go next (local paths only), the client's address behind trusted proxies,
//! the user agent, cookies, the security events these pages record, and the
//! session a proven second factor promotes.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;

use crate::AppState;
use crate::identity::auth::{self, Caller, session_cookie};
use crate::problem::Problem;

/// Where to go after signing in: a local path only, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/account".to_owned(),
    }
}

/// The client's address, for throttling and security events: the peer of
/// the connection, unless that peer is one of `trusted_proxies`, in which
/// case the nearest address in `Forwarded` (RFC 7239) or `X-Forwarded-For`
/// that is not a trusted proxy. A forwarded header from anyone else is the
/// client's own claim and is ignored.
pub struct ClientAddress(pub String);

impl axum::extract::FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddress(match peer {
            Some(peer) => {
                client_ip(peer, &parts.headers, &state.config.trusted_proxies).to_string()
            }
            None => "unknown".into(),
        }))
    }
}

/// The client behind `peer`: walking the forwarded chain from the nearest
/// hop, the first address that is not a trusted proxy (or the last one
/// that could be read).
pub fn client_ip(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_chain(headers).into_iter().rev() {
        let Some(ip) = hop else {
            // "unknown" or an obfuscated name: nothing nearer to trust.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// The `for` addresses of `Forwarded` (RFC 7239 §5.2), or else of
/// `X-Forwarded-For`, from the farthest hop to the nearest; `None` for a
/// hop that names no address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<std::net::IpAddr>> {
    fn address(text: &str) -> Option<std::net::IpAddr> {
        let t = text.trim().trim_matches('"');
        if let Some(rest) = t.strip_prefix('[') {
            return rest.split(']').next()?.parse().ok();
        }
        t.parse()
            .ok()
            .or_else(|| t.parse::<SocketAddr>().ok().map(|s| s.ip()))
    }
    let values = |name: header::HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::to_owned)
            .collect()
    };
    let forwarded = values(header::FORWARDED);
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| address(v))
            })
            .collect();
    }
    values(header::HeaderName::from_static("x-forwarded-for"))
        .iter()
        .map(|hop| address(hop))
        .collect()
}

#[cfg(test)]
mod client_address_tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let proxy: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        let lb = "10.0.0.5".parse().unwrap();
        let stranger = "203.0.113.9".parse().unwrap();
        let spoof = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(
            client_ip(stranger, &spoof, &[proxy]),
            stranger,
            "a client's own claim is ignored"
        );
        assert_eq!(
            client_ip(lb, &spoof, &[]),
            lb,
            "no proxy configured: the peer"
        );
        assert_eq!(client_ip(lb, &spoof, &[proxy]).to_string(), "198.51.100.1");
        // The client prepends a lie; the proxy appends what it saw.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.1, 10.0.0.7")]);
        assert_eq!(client_ip(lb, &chain, &[proxy]).to_string(), "198.51.100.1");
        let rfc = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::1]:4711\";proto=https",
        )]);
        assert_eq!(client_ip(lb, &rfc, &[proxy]).to_string(), "2001:db8::1");
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_ip(lb, &unknown, &[proxy]), lb);
        let port = headers(&[("x-forwarded-for", "198.51.100.2:5555")]);
        assert_eq!(client_ip(lb, &port, &[proxy]).to_string(), "198.51.100.2");
    }
}

pub fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

pub fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub async fn event(
    state: &AppState,
    kind: &str,
    account: Option<i64>,
    username: &str,
    addr: &str,
    detail: &str,
) {
    if let Err(e) = state
        .store
        .record_security_event(kind, account, username, addr, detail)
        .await
    {
        tracing::error!(error = %e, kind, "could not record a security event");
    }
}

/// Ends the caller's current session, if any (before a new one starts).
pub async fn end_current(state: &AppState, caller: &Caller) {
    let hash = match caller {
        Caller::Signed(p) => p.session_hash().map(str::to_owned),
        Caller::Pending { session, .. } => Some(session.id_hash.clone()),
        Caller::Anonymous | Caller::Machine(_) => None,
    };
    if let Some(h) = hash {
        let _ = state.store.delete_session(&h).await;
    }
}

/// Ends the pending session and starts a full one under a new id, with the
/// methods proven (`amr`); returns its `Set-Cookie` value.
pub async fn promote_session(
    state: &AppState,
    caller: &Caller,
    account_id: i64,
    amr: &str,
    addr: &str,
    headers: &HeaderMap,
) -> Result<String, Problem> {
    end_current(state, caller).await;
    let id = auth::start_session(
        &state.store,
        account_id,
        "full",
        amr,
        addr,
        &user_agent(headers),
    )
    .await?;
    Ok(session_cookie(
        state.config.is_https(),
        &id,
        auth::SESSION_ABSOLUTE_MS / 1000,
    ))
}

/// The `Set-Cookie` value that ends the session cookie.
pub fn cleared_cookie(state: &AppState) -> String {
    session_cookie(state.config.is_https(), "", 0)
}

/// A form with nothing but its anti-forgery token.
#[derive(Deserialize)]
pub struct CsrfOnly {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_site() {
        assert_eq!(safe_next(Some("/systems?grade=1")), "/systems?grade=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/account");
        assert_eq!(safe_next(Some("https://evil.example/")), "/account");
        assert_eq!(safe_next(Some("/\\evil.example")), "/account");
        assert_eq!(safe_next(Some("/x\r\nSet-Cookie: a=b")), "/account");
        assert_eq!(safe_next(None), "/account");
    }
}
