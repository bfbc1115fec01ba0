//! The authorization matrix: every route the router declares, called as
//! every role, against a hand-written table of who may call it. A route
//! added without a row here fails this test, and so does a row whose route
//! is gone; a route whose enforcement differs from the table fails too.

use std::collections::HashMap;

use reqwest::StatusCode;

use crate::common::{TOKEN, TestApp};

/// Callers: anonymous, one session per role, and an operator API token.
const CALLERS: &[&str] = &[
    "anon",
    "citizen",
    "official",
    "agency_admin",
    "service_designer",
    "operator",
    "security_analyst",
    "auditor",
    "token",
];
const ALL: &str =
    "anon citizen official agency_admin service_designer operator security_analyst auditor token";
const SESSIONS: &str =
    "citizen official agency_admin service_designer operator security_analyst auditor";
const INVENTORY: &str = "operator security_analyst auditor";
/// Routes for signed agency systems: no person or token is allowed, and
/// each is told to sign (401), not that it lacks a role.
const MACHINE: &str = "machine";
const INVENTORY_API: &str = "operator security_analyst auditor token";
/// The demo's agency admin and service designer are officials of their agency too.
const OFFICIALS: &str = "official agency_admin service_designer";

/// Who may call each route (method, route template) — written by hand.
fn matrix() -> HashMap<(&'static str, &'static str), &'static str> {
    HashMap::from([
        (("GET", "/api/v1/agencies"), ALL),
        (("POST", "/api/v1/agencies"), "token"),
        (("GET", "/api/v1/agencies/{*id}"), ALL),
        (("PUT", "/api/v1/agencies/{*id}"), "token"),
        (("GET", "/api/v1/systems"), INVENTORY_API),
        (("POST", "/api/v1/systems"), "token"),
        (("GET", "/api/v1/systems/{id}"), INVENTORY_API),
        (("PUT", "/api/v1/systems/{id}"), "token"),
        (("GET", "/api/v1/services"), ALL),
        (("POST", "/api/v1/services"), "token"),
        (("GET", "/api/v1/services/{id}"), ALL),
        (("PUT", "/api/v1/services/{id}"), "token"),
        (("GET", "/api/v1/ledger/entries/{index}"), ALL),
        (("GET", "/api/v1/ledger/consistency"), ALL),
        (
            ("GET", "/api/v1/security/events"),
            "security_analyst auditor",
        ),
        (
            ("GET", "/api/v1/security/alerts"),
            "security_analyst auditor",
        ),
        // Signed agency systems only (tests/it/machine.rs): everyone here must sign first.
        (("GET", "/api/v1/machine/whoami"), MACHINE),
        (("POST", "/api/v1/machine/whoami"), MACHINE),
        (("POST", "/api/v1/security/intake"), MACHINE),
        (("GET", "/openapi.json"), ALL),
        (("GET", "/ledger/checkpoint"), ALL),
        (("GET", "/ledger/vkey"), ALL),
        (("GET", "/ledger/vkeys"), ALL),
        (("GET", "/ledger/tile/{*path}"), ALL),
        (("GET", "/.well-known/openid-configuration"), ALL),
        (("GET", "/oidc/jwks"), ALL),
        (("GET", "/credentials/contexts/v1"), ALL),
        (
            ("GET", "/.well-known/jwt-vc-issuer/agencies/{*agency}"),
            ALL,
        ),
        // The OAuth endpoints authenticate the client themselves (RFC 6749).
        (("POST", "/oidc/token"), ALL),
        (("GET", "/oidc/userinfo"), ALL),
        (("POST", "/oidc/userinfo"), ALL),
        (("POST", "/oidc/revoke"), ALL),
        (("GET", "/oidc/authorize"), SESSIONS),
        (("POST", "/oidc/authorize"), SESSIONS),
        (("GET", "/"), ALL),
        (("GET", "/services"), ALL),
        (("GET", "/services/{id}"), ALL),
        (("GET", "/agencies"), ALL),
        (("GET", "/agencies/{*id}"), ALL),
        (("GET", "/systems"), INVENTORY),
        (("GET", "/ledger"), ALL),
        (("GET", "/sign-in"), ALL),
        (("POST", "/sign-in"), ALL),
        (("GET", "/sign-in/second-factor"), SESSIONS),
        (("POST", "/sign-in/second-factor"), SESSIONS),
        (("GET", "/sign-in/set-up-second-factor"), SESSIONS),
        (("POST", "/sign-in/set-up-second-factor"), SESSIONS),
        (("GET", "/sign-up"), ALL),
        (("POST", "/sign-up"), ALL),
        (("POST", "/sign-out"), SESSIONS),
        (("GET", "/account"), SESSIONS),
        (("GET", "/account/second-factor"), SESSIONS),
        (("POST", "/account/second-factor"), SESSIONS),
        (("POST", "/account/sessions/end"), SESSIONS),
        (("POST", "/account/apps/revoke"), SESSIONS),
        (("POST", "/account/tokens"), "operator"),
        (("POST", "/account/passkeys/begin"), SESSIONS),
        (("POST", "/account/passkeys/finish"), SESSIONS),
        (("POST", "/account/passkeys/remove"), SESSIONS),
        (("POST", "/sign-in/passkey/begin"), SESSIONS),
        (("POST", "/sign-in/passkey/finish"), SESSIONS),
        (("POST", "/account/tokens/revoke"), "operator"),
        (("GET", "/admin/officials"), "agency_admin"),
        (("POST", "/admin/officials"), "agency_admin"),
        (("POST", "/admin/roles"), "agency_admin"),
        (("GET", "/admin/apps"), "agency_admin"),
        (("POST", "/admin/apps"), "agency_admin"),
        (("GET", "/admin/machine-clients"), "agency_admin"),
        (("POST", "/admin/machine-clients"), "agency_admin"),
        (("POST", "/admin/machine-clients/revoke"), "agency_admin"),
        (("GET", "/security/events"), "security_analyst auditor"),
        (("GET", "/security/alerts"), "security_analyst auditor"),
        (("POST", "/security/alerts/{id}"), "security_analyst"),
        (("GET", "/security/level"), "security_analyst auditor"),
        (("POST", "/security/level"), "security_analyst"),
        (("GET", "/security/incidents"), "security_analyst auditor"),
        (("GET", "/security/blocklist"), "security_analyst auditor"),
        (("POST", "/security/on-call"), "security_analyst"),
        (("GET", "/security/rules"), "security_analyst auditor"),
        (("POST", "/security/rules/test"), "security_analyst auditor"),
        (("POST", "/security/rules/{id}"), "security_analyst"),
        (("GET", "/operations/health"), INVENTORY),
        (("GET", "/demo/probe/{name}"), ALL),
        (("POST", "/security/blocklist/{id}"), "security_analyst"),
        (("GET", "/blocklist.txt"), ALL),
        (("GET", "/blocklist.json"), ALL),
        (("GET", "/blocklist.stix.json"), ALL),
        (("POST", "/security/incidents"), "security_analyst"),
        (
            ("GET", "/security/incidents/{id}"),
            "security_analyst auditor",
        ),
        (("POST", "/security/incidents/{id}"), "security_analyst"),
        (
            ("POST", "/security/machine-keys/approve"),
            "security_analyst",
        ),
        (("GET", "/healthz"), ALL),
        (("GET", "/readyz"), ALL),
        (("GET", "/metrics"), INVENTORY_API),
        (("GET", "/static/style.css"), ALL),
        (("GET", "/static/htmx.min.js"), ALL),
        (("GET", "/static/passkey.js"), ALL),
        (("GET", "/static/favicon.svg"), ALL),
        (("GET", "/favicon.ico"), ALL),
        // The exchange gateway authenticates agency systems itself and
        // answers everyone else with an X-Road error (tests/it/exchange.rs).
        (("GET", "/r1/{*rest}"), ALL),
        (("POST", "/r1/{*rest}"), ALL),
        (("PUT", "/r1/{*rest}"), ALL),
        (("DELETE", "/r1/{*rest}"), ALL),
        (("GET", "/listClients"), ALL),
        (("GET", "/api/v1/registries"), ALL),
        (("GET", "/api/v1/registries/{code}/record"), MACHINE),
        (("PUT", "/api/v1/registries/{code}/record"), MACHINE),
        (("GET", "/api/v1/me/consents"), "citizen"),
        (("POST", "/api/v1/me/consents"), "citizen"),
        (("POST", "/api/v1/me/consents/{id}/revoke"), "citizen"),
        (("GET", "/api/v1/me/data-access"), "citizen"),
        (("GET", "/api/v1/me/ledger-openings"), "citizen"),
        (("GET", "/api/v1/ledger/openings/{commitment}"), "auditor"),
        (("GET", "/registries"), ALL),
        (("GET", "/api/v1/service-definitions"), ALL),
        (("POST", "/api/v1/service-definitions"), "token"),
        (("GET", "/api/v1/service-definitions/{code}"), ALL),
        (("GET", "/apply"), ALL),
        (("GET", "/apply/{code}"), ALL),
        (("POST", "/apply/{code}/start"), "citizen"),
        (("GET", "/applications/{reference}"), "citizen"),
        (("GET", "/applications/{reference}/pages/{n}"), "citizen"),
        (("POST", "/applications/{reference}/pages/{n}"), "citizen"),
        (("GET", "/applications/{reference}/review"), "citizen"),
        (("POST", "/applications/{reference}/submit"), "citizen"),
        (("GET", "/my/applications"), "citizen"),
        (("GET", "/statistics"), ALL),
        (("GET", "/statistics.csv"), ALL),
        (("POST", "/applications/{reference}/rate"), "citizen"),
        (("POST", "/applications/{reference}/reply"), "citizen"),
        (("POST", "/applications/{reference}/prefill"), "citizen"),
        (("GET", "/my/inbox"), "citizen"),
        (("POST", "/my/inbox/read"), "citizen"),
        (("POST", "/my/inbox/email"), "citizen"),
        (
            ("POST", "/cases/{reference}/assign"),
            "official agency_admin service_designer",
        ),
        (
            ("GET", "/applications/{reference}/files/{field}"),
            "citizen",
        ),
        (
            ("POST", "/applications/{reference}/files/{field}"),
            "citizen",
        ),
        (
            ("GET", "/cases/{reference}/files/{field}"),
            "official agency_admin service_designer",
        ),
        (("POST", "/api/v1/services/{code}/applications"), "citizen"),
        (("GET", "/api/v1/me/applications"), "citizen"),
        (("GET", "/api/v1/applications/{reference}"), "citizen"),
        (("POST", "/api/v1/credentials/verify"), ALL),
        (("GET", "/status"), ALL),
        (("GET", "/verify"), ALL),
        (("POST", "/verify"), ALL),
        (("POST", "/verify/file"), ALL),
        (("GET", "/documents/{id}"), "citizen"),
        (("GET", "/credentials/jwks.json"), ALL),
        (("GET", "/credentials/status/{*list}"), ALL),
        (
            ("POST", "/cases/{reference}/revoke"),
            "official agency_admin service_designer",
        ),
        (("GET", "/cases"), "official agency_admin service_designer"),
        (
            ("GET", "/cases/{reference}"),
            "official agency_admin service_designer",
        ),
        (
            ("POST", "/cases/{reference}/act"),
            "official agency_admin service_designer",
        ),
        (("GET", "/designer/services"), "service_designer"),
        (("POST", "/designer/services"), "service_designer"),
        (("GET", "/my/data-access"), "citizen"),
        (("GET", "/my/consents"), "citizen"),
        (("POST", "/my/consents"), "citizen"),
        (("POST", "/my/consents/revoke"), "citizen"),
        (("GET", "/admin/exchange"), "agency_admin"),
        (("POST", "/admin/exchange"), "agency_admin"),
        (("POST", "/admin/exchange/revoke"), "agency_admin"),
        (("POST", "/admin/exchange/services"), "agency_admin"),
        (("POST", "/admin/exchange/registries"), "agency_admin"),
        (("GET", "/operations/exchange"), INVENTORY),
        (("GET", "/operations/backups"), INVENTORY),
        (("GET", "/api/v1/algorithms"), ALL),
        (("POST", "/api/v1/algorithms"), "token"),
        (("GET", "/api/v1/algorithms/{code}"), ALL),
        (("GET", "/api/v1/algorithms/{code}/algoritmeregister"), ALL),
        (("POST", "/api/v1/algorithms/{code}/decisions"), MACHINE),
        (("GET", "/api/v1/algorithms/{code}/decisions/{id}"), MACHINE),
        (("GET", "/algorithms"), ALL),
        (("GET", "/algorithms/{code}"), ALL),
        (("GET", "/algorithms/{code}/run"), OFFICIALS),
        (("POST", "/algorithms/{code}/run"), OFFICIALS),
        (("POST", "/algorithms/{code}/image"), OFFICIALS),
        (("GET", "/oversight"), OFFICIALS),
        (
            ("GET", "/oversight/{id}"),
            "official agency_admin service_designer auditor",
        ),
        (("POST", "/oversight/{id}"), OFFICIALS),
        (("GET", "/oversight/{id}/image"), OFFICIALS),
        (("GET", "/my/decisions"), "citizen"),
        (("POST", "/my/decisions/{id}/appeal"), "citizen"),
    ])
}

/// A concrete address for a route template.
fn concrete(path: &str) -> String {
    path.replace("{*id}", "KR/GOV/KNPA")
        .replace("{id}", "1")
        .replace("{index}", "0")
        .replace("{*path}", "0/000.p/1")
        .replace("{*list}", "KR/GOV/MOIS/0")
        .replace("{*rest}", "KR/GOV/MOIS/resident-registry/residents/record")
        .replace("{code}", "residents")
        .replace("{reference}", "MOIS-2026-00000000")
        .replace("{n}", "1")
        .replace("{field}", "lease")
}

#[derive(Debug, PartialEq)]
enum Seen {
    Allowed,
    SignInFirst,
    Forbidden,
}

fn classify(r: &reqwest::Response) -> Seen {
    let problem = r.headers().get("content-type").is_some_and(|v| {
        v.to_str()
            .unwrap_or("")
            .starts_with("application/problem+json")
    });
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    match r.status() {
        StatusCode::FORBIDDEN => Seen::Forbidden,
        StatusCode::UNAUTHORIZED if problem => Seen::SignInFirst,
        StatusCode::SEE_OTHER if location.starts_with("/sign-in?") => Seen::SignInFirst,
        _ => Seen::Allowed,
    }
}

#[tokio::test]
async fn every_route_for_every_role() {
    let app = TestApp::start("sqlite").await.unwrap();
    let accounts = app.demo_accounts().await;
    let rules = nara_server::route_rules();
    let matrix = matrix();

    // Completeness, both ways.
    for r in &rules {
        assert!(
            matrix.contains_key(&(r.method, r.path)),
            "{} {} has no row in the authorization matrix: decide who may call it",
            r.method,
            r.path
        );
    }
    for (method, path) in matrix.keys() {
        assert!(
            rules.iter().any(|r| r.method == *method && r.path == *path),
            "the matrix names {method} {path}, which the router no longer has"
        );
    }

    let mut checked = 0;
    for r in &rules {
        let allowed: Vec<&str> = matrix[&(r.method, r.path)].split(' ').collect();
        for caller in CALLERS {
            // A fresh session per request: some routes end the session they are called with.
            let session = match *caller {
                "anon" | "token" => None,
                role => {
                    let a = accounts.iter().find(|a| a.role == role).unwrap();
                    let account = app
                        .store
                        .account_by_username(&a.username)
                        .await
                        .unwrap()
                        .unwrap();
                    let id = nara_server::identity::auth::start_session(
                        &app.store, account.id, "full", "pwd otp", "test", "matrix",
                    )
                    .await
                    .unwrap();
                    let csrf = app
                        .store
                        .session(&nara_server::identity::auth::digest(&id))
                        .await
                        .unwrap()
                        .unwrap()
                        .csrf;
                    Some((format!("nara_session={id}"), csrf))
                }
            };
            let url = app.url(&concrete(r.path));
            let mut req = app.client.request(r.method.parse().unwrap(), &url);
            if let Some((cookie, _)) = &session {
                req = req.header("cookie", cookie);
            }
            if *caller == "token" {
                req = req.bearer_auth(TOKEN);
            }
            if r.method != "GET" {
                if r.path.starts_with("/api/") {
                    req = req.json(&serde_json::json!({}));
                    // Sessions write through the API only with their CSRF token.
                    if let Some((_, csrf)) = &session {
                        req = req.header("x-csrf-token", csrf);
                    }
                } else {
                    let csrf = session.as_ref().map(|s| s.1.clone()).unwrap_or_default();
                    req = req.form(&[("csrf", csrf)]);
                }
            }
            let response = req.send().await.unwrap();
            let status = response.status();
            let seen = classify(&response);
            let expected = if allowed.contains(caller) {
                Seen::Allowed
            } else if *caller == "anon" || allowed == [MACHINE] {
                Seen::SignInFirst
            } else {
                Seen::Forbidden
            };
            assert_eq!(
                seen, expected,
                "{} {} as {caller}: HTTP {status}",
                r.method, r.path
            );
            checked += 1;
        }
    }
    println!(
        "authorization matrix: {} routes × {} callers = {checked} requests, all as expected",
        rules.len(),
        CALLERS.len()
    );
    assert_eq!(checked, rules.len() * CALLERS.len());
}

/// No `.route(` call outside the `routes!` declarations: every route comes
/// with its rule.
#[test]
fn routes_are_only_declared_with_rules() {
    let source = include_str!("../../src/lib.rs");
    assert!(
        !source.contains(".route(\""),
        "a route added with Router::route bypasses the policy table; declare it in routes! with a Rule"
    );
}
