//! Security events from agency systems: JSON lines, POSTed by a system that
//! signs its requests (RFC 9421, as every machine call), checked line by
//! line, stored all or none, and evaluated by the same detection rules as
//! nara's own events. A system's event kinds are namespaced `system.…` so no
//! system can pose as nara itself; the detail names the system.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nara_store::secops::ReportedEvent;
use serde::Deserialize;

use crate::AppState;
use crate::identity::machine::MachineCaller;
use crate::problem::Problem;

/// At most this many events a request.
pub const MAX_LINES: usize = 1_000;

/// One line as a system sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    /// What happened, e.g. `login.failed` (stored as `system.login.failed`).
    kind: String,
    /// The account concerned, if any.
    #[serde(default)]
    user: String,
    /// The address the action came from, if known.
    #[serde(default)]
    source_ip: Option<String>,
    #[serde(default)]
    detail: String,
    /// When it happened (RFC 3339); when received if absent.
    #[serde(default)]
    at: Option<String>,
}

/// A system's event kind: 1–64 of a–z, 0–9, `.`, `_`, `-`, starting with
/// a letter or digit (stored under `system.`).
pub(crate) fn kind_ok(kind: &str) -> bool {
    (1..=64).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && kind.as_bytes()[0].is_ascii_alphanumeric()
}

/// Checks a body of JSON lines into events from `system`; the first bad
/// line is named.
pub fn parse(body: &[u8], system: &str, now_ms: i64) -> Result<Vec<ReportedEvent>, Problem> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Problem::bad_request("body", "JSON lines must be UTF-8"))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return Err(Problem::bad_request(
            "body",
            "no events: send one JSON object a line",
        ));
    }
    if lines.len() > MAX_LINES {
        return Err(Problem::bad_request(
            "body",
            format!("{} events; at most {MAX_LINES} a request", lines.len()),
        ));
    }
    lines
        .into_iter()
        .map(|(i, line)| {
            let n = i + 1;
            let bad =
                |field: &str, why: String| Problem::bad_request(&format!("line {n}: {field}"), why);
            let l: Line = serde_json::from_str(line).map_err(|e| bad("json", e.to_string()))?;
            if !kind_ok(&l.kind) {
                return Err(bad("kind", "1–64 of a–z, 0–9, '.', '_', '-'".into()));
            }
            if l.user.chars().count() > 128 || l.user.chars().any(char::is_control) {
                return Err(bad(
                    "user",
                    "at most 128 characters, none of them control characters".into(),
                ));
            }
            if l.detail.chars().count() > 1000 {
                return Err(bad("detail", "at most 1,000 characters".into()));
            }
            let address = match l.source_ip.as_deref() {
                None | Some("") => String::new(),
                Some(ip) => ip
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| bad("source_ip", format!("{ip:?} is not an IP address")))?
                    .to_string(),
            };
            let at = match l.at.as_deref() {
                None => now_ms,
                Some(t) => {
                    let ms = humantime::parse_rfc3339_weak(t)
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_millis() as i64)
                        .ok_or_else(|| bad("at", format!("{t:?} is not an RFC 3339 moment")))?;
                    if ms > now_ms + 5 * 60_000 {
                        return Err(bad("at", "more than five minutes in the future".into()));
                    }
                    ms
                }
            };
            let detail: String = l.detail.chars().filter(|c| !c.is_control()).collect();
            Ok(ReportedEvent {
                at,
                kind: format!("system.{}", l.kind),
                username: l.user,
                address,
                detail: format!("from {system}: {detail}"),
            })
        })
        .collect()
}

/// Reports security events (JSON lines, one object a line: `kind`,
/// `user`, `source_ip`, `detail`, `at`), as a signed agency system.
#[utoipa::path(post, path = "/api/v1/security/intake", tag = "identity",
    request_body(content = String, content_type = "application/x-ndjson", description = "One JSON object a line: kind (required), user, source_ip, detail, at (RFC 3339); at most 1,000 lines"),
    responses(
        (status = 202, description = "Stored; detection reads them within seconds"),
        (status = 400, description = "A line that cannot be used (named); nothing was stored", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unsigned, or the signature is refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn json_lines(State(state): State<AppState>, request: Request) -> Response {
    let Some(system) = request
        .extensions()
        .get::<MachineCaller>()
        .map(MachineCaller::client_id)
    else {
        return Problem::unauthorized().into_response();
    };
    let body = match Bytes::from_request(request, &state).await {
        Ok(b) => b,
        Err(_) => {
            return Problem::bad_request("body", "the body could not be read").into_response();
        }
    };
    let events = match parse(&body, &system, nara_core::Timestamp::now().0) {
        Ok(e) => e,
        Err(p) => return p.into_response(),
    };
    match state.store.record_reported_events(&events).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({ "accepted": events.len() })),
        )
            .into_response(),
        Err(e) => Problem::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn lines_become_namespaced_events_or_the_first_bad_line_is_named() {
        let body = b"{\"kind\":\"login.failed\",\"user\":\"kim\",\"source_ip\":\"203.0.113.9\"}\n\n{\"kind\":\"vpn.connect\",\"at\":\"2027-01-15T08:00:00Z\",\"detail\":\"ok\"}\n";
        let events = parse(body, "KR/GOV/MOIS/traffic", NOW).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, "system.login.failed");
        assert_eq!(events[0].address, "203.0.113.9");
        assert_eq!(events[0].at, NOW);
        assert!(events[1].detail.starts_with("from KR/GOV/MOIS/traffic: "));
        for (bad, field) in [
            (&b"{\"kind\":\"Login\"}"[..], "line 1: kind"),
            (
                b"{\"kind\":\"a\"}\n{\"kind\":\"b\",\"source_ip\":\"localhost\"}",
                "line 2: source_ip",
            ),
            (b"{\"kind\":\"a\",\"extra\":1}", "line 1: json"),
            (
                b"{\"kind\":\"a\",\"at\":\"2099-01-01T00:00:00Z\"}",
                "line 1: at",
            ),
            (b"not json", "line 1: json"),
            (b"\xff\xfe", "body"),
            (b"\n\n", "body"),
        ] {
            let p = parse(bad, "s", NOW).unwrap_err();
            assert_eq!(p.errors[0].field, field, "{}", String::from_utf8_lossy(bad));
        }
        let many = "{\"kind\":\"a\"}\n".repeat(MAX_LINES + 1);
        assert!(parse(many.as_bytes(), "s", NOW).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_body_panics_or_yields_an_unnamespaced_kind(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(events) = parse(&body, "s", NOW) {
                for e in events {
                    proptest::prop_assert!(e.kind.starts_with("system."));
                }
            }
        }
    }
}
