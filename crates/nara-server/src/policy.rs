//! The one policy point. Every route is declared with its [`Rule`] in
//! [`crate::routes`] (the router and the rule table come from the same
//! declaration), and [`enforce`] runs before every handler: it identifies
//! the caller, finds the route's rule and allows or denies. A route without a
//! rule is denied to everyone (deny by default), and the authorization matrix
//! test checks every declared route against every role.
//!
//! Rules decide on roles; where a role is held *for an agency*, the handler
//! narrows further with [`Principal::has_role_for`] on the agency the request
//! concerns (and answers 404 rather than reveal what it may not see).

use std::collections::HashMap;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::identity::Role;

use crate::AppState;
use crate::identity::auth::{Caller, Credential, Principal, identify};
use crate::problem::Problem;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone, signed in or not.
    Public,
    /// A person part-way through signing in (second factor or its set-up),
    /// or signed in.
    SigningIn,
    /// Any signed-in person (a session, not an API token).
    SignedIn,
    /// A signed-in person holding one of these roles (for some agency, where
    /// the role is scoped; the handler checks which).
    Roles(&'static [Role]),
    /// Holders of one of these roles, through a session (reads only) or an
    /// API token that carries the scope.
    Api(&'static [Role], &'static str),
    /// An agency system whose request is signed with a registered key
    /// (RFC 9421, [`crate::identity::machine`]); the signature is claimed
    /// against replay, for every node, as the [`Claim`] says.
    Machine(Claim),
    /// The exchange gateway (`/r1/…`): it authenticates client systems and
    /// peer gateways itself, because every refusal must be an X-Road error.
    Exchange,
}

/// When a signed request's signature is claimed against replay for every
/// node (`seen_signatures`). This node refuses a repeat at once either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Before the handler runs, in a commit of its own.
    OnArrival,
    /// In the transaction that records what the request does (one commit
    /// instead of two): the handler takes it from the request's
    /// [`crate::identity::machine::UnclaimedSignature`]; if it answers
    /// without taking it (a refusal), it is claimed before the answer leaves.
    /// Only for handlers that write nothing durable without taking it.
    WithRecord,
}

/// One declared route and its rule.
#[derive(Debug, Clone, Copy)]
pub struct RouteRule {
    pub method: &'static str,
    pub path: &'static str,
    pub rule: Rule,
}

/// The rule table: by route template, then method.
#[derive(Debug, Default)]
pub struct Rules(HashMap<&'static str, Vec<(&'static str, Rule)>>);

impl Rules {
    pub fn new(table: &[RouteRule]) -> Rules {
        let mut map: HashMap<&'static str, Vec<(&'static str, Rule)>> = HashMap::new();
        for r in table {
            map.entry(r.path).or_default().push((r.method, r.rule));
        }
        Rules(map)
    }

    /// The methods a route template serves, as declared.
    pub fn methods(&self, path: &str) -> Vec<&'static str> {
        self.0
            .get(path)
            .map(|rules| rules.iter().map(|(m, _)| *m).collect())
            .unwrap_or_default()
    }

    /// Every declared route template with its methods and rules.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str, Rule)> + '_ {
        self.0
            .iter()
            .flat_map(|(path, rules)| rules.iter().map(move |(m, r)| (*path, *m, *r)))
    }

    fn get(&self, method: &Method, path: &str) -> Option<Rule> {
        // axum answers HEAD with the GET handler, so HEAD follows GET's rule.
        let method = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        self.0
            .get(path)?
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, r)| *r)
    }
}

/// 405 Method Not Allowed, naming in `Allow` the methods the path serves.
fn method_not_allowed(methods: &[&'static str]) -> Response {
    let mut allow = methods.to_vec();
    if allow.contains(&"GET") {
        allow.push("HEAD");
    }
    let mut response = Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "This method is not allowed here",
    )
    .detail(format!("this address answers {}", allow.join(", ")))
    .into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&allow.join(", ")) {
        response
            .headers_mut()
            .insert(axum::http::header::ALLOW, value);
    }
    response
}

/// What the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Not signed in (or not far enough): sign in first.
    Unauthenticated,
    /// Signed in, but not allowed.
    Forbidden,
}

/// The decision for `caller` on a route with `rule`, for a request of `method`.
pub fn decide(rule: Rule, caller: &Caller, method: &Method) -> Decision {
    let principal = match caller {
        Caller::Signed(p) => Some(p.as_ref()),
        _ => None,
    };
    let session = principal.filter(|p| matches!(p.credential, Credential::Session { .. }));
    let any_role = |p: &Principal, roles: &[Role]| roles.iter().any(|r| p.has_role(*r));
    if let Caller::Machine(_) = caller {
        return match rule {
            Rule::Public | Rule::Machine(_) | Rule::Exchange => Decision::Allow,
            _ => Decision::Forbidden,
        };
    }
    match rule {
        Rule::Public | Rule::Exchange => Decision::Allow,
        Rule::Machine(_) => match principal {
            None => Decision::Unauthenticated,
            Some(_) => Decision::Forbidden,
        },
        Rule::SigningIn => match caller {
            Caller::Anonymous => Decision::Unauthenticated,
            Caller::Pending { .. } => Decision::Allow,
            Caller::Signed(_) if session.is_some() => Decision::Allow,
            Caller::Signed(_) | Caller::Machine(_) => Decision::Forbidden,
        },
        Rule::SignedIn => match (principal, session) {
            (None, _) => Decision::Unauthenticated,
            (Some(_), None) => Decision::Forbidden,
            (Some(_), Some(_)) => Decision::Allow,
        },
        Rule::Roles(roles) => match (principal, session) {
            (None, _) => Decision::Unauthenticated,
            (Some(_), None) => Decision::Forbidden,
            (Some(p), Some(_)) if any_role(p, roles) => Decision::Allow,
            (Some(_), Some(_)) => Decision::Forbidden,
        },
        Rule::Api(roles, scope) => {
            let Some(p) = principal else {
                return Decision::Unauthenticated;
            };
            if !any_role(p, roles) {
                return Decision::Forbidden;
            }
            match &p.credential {
                Credential::Token { scopes, .. } if scopes.iter().any(|s| s == scope) => {
                    Decision::Allow
                }
                // Sessions may read through the API; changes need a token, so a
                // cookie riding on a cross-site request can never write.
                Credential::Session { .. } if method == Method::GET || method == Method::HEAD => {
                    Decision::Allow
                }
                _ => Decision::Forbidden,
            }
        }
    }
}

/// The middleware every routed request passes through.
/// Whether a route open to anyone counts against the per-address limit:
/// all do but the load balancer's health checks, the static files a page
/// load fetches with it, and the ledger's verification material — its
/// checkpoint, keys and immutable tiles, which a monitor or witness must
/// fetch by the thousand to check the log (C2SP tlog-tiles) and which cost
/// the node a lookup each.
pub fn per_address_limited(rule: Rule, route: &str) -> bool {
    matches!(rule, Rule::Public | Rule::SigningIn) && per_address_limited_route(route)
}

fn per_address_limited_route(route: &str) -> bool {
    !matches!(
        route,
        "/healthz"
            | "/readyz"
            | "/favicon.ico"
            | "/ledger/checkpoint"
            | "/ledger/vkey"
            | "/ledger/vkeys"
    ) && !route.starts_with("/static/")
        && !route.starts_with("/ledger/tile/")
}

/// The refusal for a client over its per-address limit (reported as a
/// security event at most once a minute per address), or `None`.
fn over_the_limit(state: &AppState, request: &Request, api: bool) -> Option<Response> {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?
        .0
        .ip();
    let headers = request.headers();
    let client = crate::identity::request::client_ip(peer, headers, &state.config.trusted_proxies);
    let (wait, report) = state.posture.admit(client).err()?;
    let refusal = crate::secops::level::refused(headers, api, wait);
    if report {
        let detail = format!(
            "{} {} over {} a minute at level {}",
            request.method(),
            request.uri().path(),
            state.posture.per_minute(),
            state.posture.level().as_str()
        );
        let state = state.clone();
        // Recorded off the request: a refusal must stay cheap under a flood.
        tokio::spawn(async move {
            crate::identity::request::event(
                &state,
                "rate_limit.exceeded",
                None,
                "",
                &client.to_string(),
                &detail,
            )
            .await;
        });
    }
    Some(refusal)
}

pub async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        // Unmatched: the fallback answers 404.
        return next.run(request).await;
    };
    // Machine routes answer a denial with a problem; pages with a redirect or page.
    let api = !crate::web::is_page(&route);
    let Some(rule) = state.rules.get(request.method(), &route) else {
        // The path is routed, the method is not (TRACE, PATCH, an invented
        // one): 405 with the methods that are, as RFC 9110 §15.5.6 asks.
        return method_not_allowed(&state.rules.methods(&route));
    };
    if per_address_limited(rule, &route)
        && let Some(refusal) = over_the_limit(&state, &request, api)
    {
        return refusal;
    }
    request.extensions_mut().insert(state.posture.level());
    let https = request.extensions().get::<crate::Https>().is_some();
    if let Rule::Machine(claim) = rule {
        return machine_request(state, request, next, https, claim).await;
    }
    if rule == Rule::Exchange {
        return next.run(request).await;
    }
    let caller = if rule == Rule::Public && api {
        // Public machine endpoints (tiles, JSON reads) skip the lookup.
        Caller::Anonymous
    } else {
        match identify(&state.store, &state.callers, request.headers(), https).await {
            Ok(c) => c,
            Err(problem) => return problem.into_response(),
        }
    };
    match decide(rule, &caller, request.method()) {
        Decision::Allow => {
            if let Caller::Signed(p) = &caller {
                request.extensions_mut().insert(p.as_ref().clone());
            }
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Decision::Unauthenticated if api => Problem::unauthorized().into_response(),
        Decision::Unauthenticated => {
            let next_path = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into());
            // Back here after signing in (or finishing the second factor).
            let encoded: String = form_urlencoded::byte_serialize(next_path.as_bytes()).collect();
            let page = match &caller {
                Caller::Pending { session, .. } => {
                    crate::identity::auth::pending_page(&session.stage)
                }
                _ => "/sign-in",
            };
            Redirect::to(&format!("{page}?next={encoded}")).into_response()
        }
        Decision::Forbidden if api => Problem::forbidden().into_response(),
        Decision::Forbidden => crate::web::forbidden(request.headers(), &caller).await,
    }
}

/// Verifies an agency system's signed request. The body is read here (within
/// the body limit) because the signature covers its digest, then handed on.
async fn machine_request(
    state: AppState,
    request: Request,
    next: Next,
    https: bool,
    claim: Claim,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
        return Problem::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The request body is too large",
        )
        .into_response();
    };
    let signed = crate::identity::machine::SignedRequest {
        method: &parts.method,
        target_uri: crate::identity::machine::target_uri(https, &parts.headers, &parts.uri),
        headers: &parts.headers,
        body: &bytes,
    };
    match crate::identity::machine::verify_cached(
        &state.store,
        &state.exchange.keys,
        &signed,
        crate::identity::auth::unix_now(),
    )
    .await
    {
        Ok(m) => {
            let now_ms = nara_core::Timestamp::now().0;
            let replay = &state.exchange.replay;
            let key = &m.signature.replay_key;
            let admitted = match claim {
                Claim::OnArrival => replay.admit(&state.store, &[], key, now_ms).await,
                Claim::WithRecord => replay.admit_here(&[], key, now_ms),
            };
            if let Err(why) = admitted {
                return replay_refused(parts.uri.path(), why);
            }
            let unclaimed = (claim == Claim::WithRecord)
                .then(|| crate::identity::machine::UnclaimedSignature::new(key.clone()));
            crate::secops::watch::key_used(&state, &parts, &m);
            let path = parts.uri.path().to_owned();
            let mut request = Request::from_parts(parts, axum::body::Body::from(bytes));
            if let Some(u) = &unclaimed {
                request.extensions_mut().insert(u.clone());
            }
            // The verified system itself too, for handlers that serve only machines.
            request.extensions_mut().insert(m.clone());
            request
                .extensions_mut()
                .insert(Caller::Machine(Box::new(m)));
            let response = next.run(request).await;
            // Left untaken: the handler refused without recording anything.
            // Claimed now, so that a replay on another node meets the same
            // refusal even after what refused it has changed.
            if let Some(key) = unclaimed.and_then(|u| u.take())
                && let Err(why) = replay.claim(&state.store, &key).await
            {
                return replay_refused(&path, why);
            }
            response
        }
        Err(refused) => {
            tracing::warn!(reason = %refused, path = %parts.uri.path(), "signed request refused");
            Problem::unauthorized()
                .detail(format!(
                    "sign the request with a registered Ed25519 key (RFC 9421): {refused}"
                ))
                .into_response()
        }
    }
}

/// The answer to a signed request that is a replay (or whose signature
/// could not be recorded as seen): nothing was done.
fn replay_refused(path: &str, why: crate::identity::machine::Replay) -> Response {
    tracing::warn!(path, ?why, "signed request refused: replay");
    match why {
        crate::identity::machine::Replay::Repeated => Problem::replayed(),
        crate::identity::machine::Replay::Unavailable => Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The request could not be recorded; nothing was done",
        ),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nara_core::identity::{AccountKind, Grant};

    fn principal(roles: &[Role], token_scopes: Option<&[&str]>) -> Caller {
        Caller::Signed(Box::new(Principal {
            account_id: 1,
            username: "u".into(),
            display_name: "U".into(),
            kind: AccountKind::Official,
            agency: None,
            grants: roles
                .iter()
                .map(|r| Grant {
                    role: *r,
                    agency: r.agency_scoped().then(|| "KR/GOV/1741000".parse().unwrap()),
                })
                .collect(),
            credential: match token_scopes {
                Some(s) => Credential::Token {
                    id: 1,
                    scopes: s.iter().map(|x| x.to_string()).collect(),
                    expires_at: i64::MAX,
                },
                None => Credential::Session {
                    id_hash: "h".into(),
                    csrf: "c".into(),
                    amr: "pwd".into(),
                    created_at: 0,
                    expires_at: i64::MAX,
                },
            },
        }))
    }

    #[test]
    fn deny_by_default_and_tokens_need_scopes() {
        let get = Method::GET;
        let post = Method::POST;
        let op = principal(&[Role::Operator], None);
        let citizen = principal(&[Role::Citizen], None);
        let rule = Rule::Roles(&[Role::Operator]);
        assert_eq!(
            decide(rule, &Caller::Anonymous, &get),
            Decision::Unauthenticated
        );
        assert_eq!(decide(rule, &citizen, &get), Decision::Forbidden);
        assert_eq!(decide(rule, &op, &get), Decision::Allow);

        let api = Rule::Api(&[Role::Operator], "catalogue:write");
        let token = principal(&[Role::Operator], Some(&["catalogue:write"]));
        let unscoped = principal(&[Role::Operator], Some(&["systems:read"]));
        assert_eq!(decide(api, &token, &post), Decision::Allow);
        assert_eq!(decide(api, &unscoped, &post), Decision::Forbidden);
        assert_eq!(
            decide(api, &op, &post),
            Decision::Forbidden,
            "sessions cannot write through the API"
        );
        assert_eq!(decide(api, &op, &get), Decision::Allow);
        // A token never opens a page.
        assert_eq!(decide(rule, &token, &get), Decision::Forbidden);
    }
}
