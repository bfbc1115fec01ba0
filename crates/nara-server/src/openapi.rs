//! The API's OpenAPI 3.1 document at `/openapi.json`: what the handlers
//! annotate, plus what every route answers because of its rule in the route
//! table (401 and 403 where a credential is needed, 400/413/415 where a
//! parameter or body is read). Deriving those from the same table the policy
//! enforces keeps the document true as routes change; the conformance test
//! (`tests/conformance/openapi.sh`, in CI) fuzzes every operation against it.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use nara_core::{Agency, Page, Service, System};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::policy::{Rule, Rules};
use crate::problem::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "nara",
        description = "The national catalogue of agencies, their systems and their public services. \
                       Errors are RFC 9457 problem details.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::catalogue::api::list_agencies, crate::catalogue::api::create_agency,
        crate::catalogue::api::get_agency, crate::catalogue::api::update_agency,
        crate::catalogue::api::list_systems, crate::catalogue::api::create_system,
        crate::catalogue::api::get_system, crate::catalogue::api::update_system,
        crate::catalogue::api::list_services, crate::catalogue::api::create_service,
        crate::catalogue::api::get_service, crate::catalogue::api::update_service,
        crate::ledger::entry, crate::ledger::consistency,
        crate::ledger::my_openings, crate::ledger::open_commitment,
        crate::secops::events::security_events_api, crate::secops::alerts::alerts_api,
        crate::secops::intake::json_lines,
        crate::identity::machine::whoami,
        crate::exchange::registries::registries_api, crate::exchange::registries::registry_record,
        crate::exchange::registries::put_registry_record, crate::exchange::data_access::data_access_api,
        crate::exchange::consents::my_consents_api, crate::exchange::consents::grant_consent_api,
        crate::exchange::consents::revoke_consent_api, crate::exchange::gateway::exchange,
        crate::catalogue::services::definitions_api, crate::catalogue::services::definition_api, crate::catalogue::services::publish_api,
        crate::citizen::credentials::verify_api,
        crate::citizen::application_api::create, crate::citizen::application_api::mine, crate::citizen::application_api::one,
        crate::algorithms::register::list_api, crate::algorithms::register::entry_api,
        crate::algorithms::register::dutch_api, crate::algorithms::register::publish_entry_api,
        crate::algorithms::decisions::decide_api, crate::algorithms::decisions::decision_api,
    ),
    components(schemas(Problem, Page<Agency>, Page<System>, Page<Service>)),
    modifiers(&Credentials),
    tags(
        (name = "agencies", description = "Ministries, local governments and public bodies"),
        (name = "systems", description = "The inventory of agency systems and assets (operators only)"),
        (name = "services", description = "The public services agencies offer, and the definitions of those citizens apply for online (docs/services.md)"),
        (name = "identity", description = "Security events and the alerts detection rules raise, for analysts and auditors; agency systems' signed requests \
            (RFC 9421 HTTP Message Signatures, Ed25519, keys registered per subsystem). The OpenID Connect provider is \
            described by /.well-known/openid-configuration"),
        (name = "exchange", description = "Once-only exchange between agencies: the X-Road REST r1 gateway, \
            registries nara hosts, and each citizen's consents and data-access history (docs/exchange.md)"),
        (name = "algorithms", description = "The algorithm register (UK ATRS and Dutch Algorithm Register fields), and decisions of \
            registered models: every output recorded in the ledger before it is returned, reviewed by officials where the register says so (docs/algorithms.md)"),
        (name = "ledger", description = "The public ledger: entries with inclusion proofs, consistency proofs. \
            The C2SP tlog-tiles resources are at /ledger/checkpoint, /ledger/tile/… and /ledger/vkey"),
    )
)]
pub struct ApiDoc;

struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "api_token",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("An operator API token (`nara_at_…`), scoped and expiring, made on the account page or with `nara token create`"))
                        .build(),
                ),
            );
            components.add_security_scheme(
                "session",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    "nara_session",
                    "A signed-in person's session (`__Host-nara_session` over HTTPS); \
                     a write also needs the X-CSRF-Token the session's pages carry",
                ))),
            );
        }
    }
}

/// `GET /openapi.json`: built once per process from the annotations and the
/// route table.
pub async fn document(State(state): State<AppState>) -> Response {
    static DOCUMENT: OnceLock<Option<String>> = OnceLock::new();
    match DOCUMENT.get_or_init(|| build(&state.rules).to_json().ok()) {
        Some(json) => ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response(),
        None => Problem::internal().into_response(),
    }
}

/// The document: the annotations, completed from each operation's rule.
pub fn build(rules: &Rules) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let mut uses = std::collections::HashMap::<String, usize>::new();
    for item in doc.paths.paths.values() {
        for op in [&item.get, &item.post, &item.put, &item.delete]
            .into_iter()
            .flatten()
        {
            if let Some(id) = &op.operation_id {
                *uses.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("DELETE", &mut item.delete),
        ] {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let rule = rules
                .iter()
                .find(|(route, m, _)| *m == method && same_route(path, route))
                .map(|(_, _, rule)| rule);
            if let Some(rule) = rule {
                complete(operation, rule);
                if crate::policy::per_address_limited(rule, path) {
                    operation
                        .responses
                        .responses
                        .entry("429".to_owned())
                        .or_insert_with(too_many_requests);
                }
            }
            // One handler may serve several methods (`method(get, post)`);
            // operation ids must still be unique (OpenAPI 3.1 §4.8.10).
            if let Some(id) = operation.operation_id.as_mut()
                && uses.get(id.as_str()).is_some_and(|n| *n > 1)
            {
                *id = format!("{id}_{}", method.to_ascii_lowercase());
            }
        }
    }
    doc
}

/// Whether a documented path (`/api/v1/agencies/{id}`) is the route template
/// (`/api/v1/agencies/{*id}`): literals equal, a parameter for a parameter,
/// a catch-all for the rest.
pub fn same_route(documented: &str, route: &str) -> bool {
    let mut doc = documented.split('/');
    let mut tpl = route.split('/');
    loop {
        match (doc.next(), tpl.next()) {
            (None, None) => return true,
            (Some(d), Some(t)) if t.starts_with("{*") => return !d.is_empty(),
            (Some(d), Some(t)) if t.starts_with('{') => {
                if !d.starts_with('{') {
                    return false;
                }
            }
            (Some(d), Some(t)) if d == t => {}
            _ => return false,
        }
    }
}

/// Adds the answers an operation gives because of its rule and inputs,
/// where the annotation does not already describe that status.
fn complete(operation: &mut Operation, rule: Rule) {
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let body = operation.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(description));
    };
    if rule == Rule::Exchange {
        // The gateway answers in X-Road's protocol; its annotation says how.
        return;
    }
    if has_parameters || body {
        add("400", "A parameter or the body cannot be read");
    }
    if body {
        add("413", "The body is larger than the server accepts");
        add(
            "415",
            "The body is not of a media type this operation reads",
        );
    }
    match rule {
        Rule::Public | Rule::Exchange => {}
        Rule::Api(..) | Rule::Roles(_) | Rule::SignedIn | Rule::SigningIn => {
            add("401", "No valid credential: sign in, or send an API token");
            add("403", "The credential's roles or scopes do not allow this");
        }
        Rule::Machine(_) => {
            add(
                "401",
                "The request is not signed with a registered key (RFC 9421), or repeats a signature",
            );
            add("403", "The signing system may not do this");
            add(
                "503",
                "The signature could not be recorded against replay; nothing was done",
            );
        }
    }
    if matches!(rule, Rule::Roles(_) | Rule::SignedIn) && operation.security.is_none() {
        operation.security = Some(vec![SecurityRequirement::new(
            "session",
            Vec::<String>::new(),
        )]);
    }
}

/// What every route open to anyone may answer: the per-address limit
/// (which the national alert level tightens) was reached.
fn too_many_requests() -> RefOr<utoipa::openapi::Response> {
    let RefOr::T(mut response) = problem(
        "Too many requests from this address (the limit tightens with the national alert level); \
         retry after the seconds in Retry-After",
    ) else {
        return problem("Too many requests from this address");
    };
    response.headers.insert(
        "Retry-After".to_owned(),
        utoipa::openapi::HeaderBuilder::new()
            .schema(
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Integer),
            )
            .description(Some("Seconds until this address may make another request"))
            .build(),
    );
    RefOr::T(response)
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_paths_match_route_templates() {
        assert!(same_route(
            "/api/v1/agencies/{id}",
            "/api/v1/agencies/{*id}"
        ));
        assert!(same_route("/r1/{serviceId}", "/r1/{*rest}"));
        assert!(same_route("/api/v1/systems/{id}", "/api/v1/systems/{id}"));
        assert!(!same_route("/api/v1/systems", "/api/v1/systems/{id}"));
        assert!(!same_route("/api/v1/services/{id}", "/api/v1/systems/{id}"));
        assert!(!same_route(
            "/api/v1/me/consents",
            "/api/v1/me/consents/{id}/revoke"
        ));
    }

    /// Every operation id is unique (OpenAPI 3.1 §4.8.10): two handlers of
    /// the same name in different modules would otherwise collide.
    #[test]
    fn operation_ids_are_unique() {
        let (_, table) = crate::routes();
        let doc = build(&Rules::new(&table));
        let mut seen = std::collections::HashSet::new();
        for item in doc.paths.paths.values() {
            for op in [&item.get, &item.post, &item.put, &item.delete]
                .into_iter()
                .flatten()
            {
                if let Some(id) = &op.operation_id {
                    assert!(seen.insert(id.clone()), "operation id {id} is not unique");
                }
            }
        }
    }

    /// The document and the route table tell the same story: every routed
    /// API operation is documented, every documented one is routed.
    #[test]
    fn every_api_route_is_documented_and_every_documented_operation_routed() {
        let (_, table) = crate::routes();
        let rules = Rules::new(&table);
        let doc = build(&rules);
        let mut documented = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("DELETE", &item.delete),
            ] {
                if op.is_some() {
                    documented.push((method, path.clone()));
                }
            }
        }
        for (path, method, _) in rules.iter() {
            if !path.starts_with("/api/") {
                continue;
            }
            assert!(
                documented
                    .iter()
                    .any(|(m, d)| *m == method && same_route(d, path)),
                "{method} {path} is routed but not in the OpenAPI document"
            );
        }
        for (method, path) in &documented {
            assert!(
                rules
                    .iter()
                    .any(|(route, m, _)| m == *method && same_route(path, route)),
                "{method} {path} is documented but not routed"
            );
        }
    }

    #[test]
    fn protected_operations_document_their_refusals() {
        let (_, table) = crate::routes();
        let doc = build(&Rules::new(&table));
        let op = |path: &str| doc.paths.paths[path].get.clone().unwrap_or_default();
        let events = op("/api/v1/security/events");
        for status in ["401", "403"] {
            assert!(events.responses.responses.contains_key(status), "{status}");
        }
        let agencies = op("/api/v1/agencies");
        assert!(!agencies.responses.responses.contains_key("401"));
        let mine = op("/api/v1/me/applications");
        assert!(
            mine.security.is_some(),
            "a citizen's route names the session"
        );
    }
}
