//! Agency administrators' side of the exchange: access rights granted and
//! revoked, data services published, registries created.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nara_core::MemberId;
use nara_core::exchange::Purpose;
use serde::Deserialize;

use crate::AppState;
use crate::admin::{AdminAgency, AdminForm, agency_name};
use crate::identity::auth::Principal;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};
use crate::web::{status_for, when};

pub struct RightView {
    pub id: i64,
    pub service: String,
    pub client: String,
    pub fields: String,
    /// What the client may invoke: purposes, and legal bases (`; `-joined).
    pub purposes: String,
    pub legal_bases: String,
    pub granted: String,
    pub revoked: bool,
}

#[derive(Template)]
#[template(path = "exchange_access.html")]
struct AccessPage {
    layout: Layout,
    agency: String,
    agency_name: String,
    services: Vec<nara_store::exchange::DataService>,
    registries: Vec<nara_store::exchange::Registry>,
    purposes: Vec<(&'static str, &'static str)>,
    rights: Vec<RightView>,
    csrf: String,
    message: Option<String>,
    error: Option<String>,
}

async fn access_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    agency: &MemberId,
    message: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let directory = state
        .exchange
        .directory(&state.store)
        .await
        .map_err(store_failed(ctx.lang))?;
    let services: Vec<_> = directory
        .services
        .values()
        .filter(|s| s.agency_id == agency.as_str())
        .cloned()
        .collect();
    let rights = state
        .store
        .access_rights()
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .filter(|r| services.iter().any(|s| s.id == r.service_id))
        .map(|r| RightView {
            purposes: r.purpose_list().collect::<Vec<_>>().join(" "),
            legal_bases: r.legal_basis_list().collect::<Vec<_>>().join("; "),
            id: r.id,
            service: r.service_id,
            client: r.client_id,
            fields: r.fields,
            granted: when(r.granted_at),
            revoked: r.revoked_at.is_some(),
        })
        .collect();
    let status = status_for(&error);
    let page = AccessPage {
        layout: ctx.layout(ctx.tr().s("exchange.access_title"), "admin"),
        agency: agency.to_string(),
        agency_name: agency_name(ctx, state, agency).await?,
        registries: directory
            .registries
            .values()
            .filter(|r| r.agency_id == agency.as_str())
            .cloned()
            .collect(),
        purposes: Purpose::ALL
            .iter()
            .map(|p| (p.as_str(), p.describe()))
            .collect(),
        services,
        rights,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        message,
        error,
    };
    Ok((status, render(&page)).into_response())
}

/// After a change to the agency's services, registries or rights: reload
/// the gateway's directory and show the page with the outcome (a conflict
/// is the admin's to fix; anything else is ours).
async fn after_change(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    agency: &MemberId,
    result: Result<(), nara_store::StoreError>,
    done: String,
) -> Result<Response, PageError> {
    match result {
        Ok(()) => {
            state.exchange.changed();
            access_view(ctx, state, who, agency, Some(done), None).await
        }
        Err(nara_store::StoreError::Conflict(m)) => {
            access_view(ctx, state, who, agency, None, Some(m)).await
        }
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

pub async fn access_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminAgency(agency): AdminAgency,
) -> Result<Response, PageError> {
    access_view(&ctx, &state, &who, &agency, None, None).await
}

/// A form's first value for `name`, trimmed (empty when absent), from a
/// form read as pairs (which keeps repeated names such as `purpose`).
fn form_field(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

/// An access right as an agency administrator asks for it.
pub struct RightRequest<'a> {
    /// The client subsystem, `INSTANCE/CLASS/MEMBER/SUBSYSTEM`.
    pub client: &'a str,
    /// Field names, separated by spaces or commas; none: every field.
    pub fields: &'a str,
    /// Purpose codes the client may invoke.
    pub purposes: &'a [&'a str],
    /// Legal bases the client may cite, one a line.
    pub legal_bases: &'a str,
}

/// A right that may be granted, in its stored form.
#[derive(Debug, PartialEq, Eq)]
pub struct CheckedRight {
    pub client: nara_core::exchange::ClientId,
    pub fields: String,
    pub purposes: String,
    pub legal_bases: String,
}

/// Why a right may not be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RightRefused {
    /// Not a subsystem identifier, or a field name that is not one.
    BadClient,
    /// A purpose or legal basis the service does not accept, or a
    /// personal-data right without a purpose.
    BadBasis,
}

impl RightRefused {
    pub fn message_key(self) -> &'static str {
        match self {
            RightRefused::BadClient => "exchange.bad_client",
            RightRefused::BadBasis => "exchange.bad_basis",
        }
    }
}

/// The rule for granting a right on `service`: a valid client, plain field
/// names, and only purposes and legal bases the service accepts; a right to
/// personal data names at least one purpose.
pub fn check_right(
    service: &nara_store::exchange::DataService,
    asked: &RightRequest,
) -> Result<CheckedRight, RightRefused> {
    let client =
        nara_core::exchange::ClientId::parse(asked.client).map_err(|_| RightRefused::BadClient)?;
    let fields: Vec<&str> = asked
        .fields
        .split([' ', ','])
        .filter(|f| !f.is_empty())
        .collect();
    let plain =
        |f: &&str| f.len() <= 64 && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !fields.iter().all(plain) {
        return Err(RightRefused::BadClient);
    }
    let purposes: Vec<&str> = asked.purposes.iter().map(|p| p.trim()).collect();
    let bases: Vec<&str> = asked
        .legal_bases
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let accepted = purposes
        .iter()
        .all(|p| service.purpose_list().any(|x| x == *p))
        && bases
            .iter()
            .all(|b| service.legal_basis_list().any(|x| x == *b))
        && (service.personal == 0 || !purposes.is_empty());
    if !accepted {
        return Err(RightRefused::BadBasis);
    }
    Ok(CheckedRight {
        client,
        fields: fields.join(" "),
        purposes: purposes.join(" "),
        legal_bases: bases.join("\n"),
    })
}

/// Grants a client subsystem (or a whole member) one of the agency's
/// services: the fields it sees, the purposes it may state (`purpose`,
/// repeated) and the legal bases it may name instead of consent
/// (`legal_bases`, one a line), each among those the service accepts.
pub async fn grant_access(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminForm {
        agency,
        form: pairs,
    }: AdminForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let field = |name: &str| form_field(&pairs, name);
    let tr = ctx.tr();
    let directory = state
        .exchange
        .directory(&state.store)
        .await
        .map_err(store_failed(ctx.lang))?;
    let Some(service) = directory
        .services
        .get(&field("service"))
        .filter(|s| s.agency_id == agency.as_str())
    else {
        return Err(PageError::not_found(ctx.lang));
    };
    let purposes: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "purpose")
        .map(|(_, v)| v.as_str())
        .collect();
    let asked = RightRequest {
        client: &field("client"),
        fields: &field("fields"),
        purposes: &purposes,
        legal_bases: &field("legal_bases"),
    };
    let right = match check_right(service, &asked) {
        Ok(right) => right,
        Err(refused) => {
            let error = Some(tr.s(refused.message_key()).into());
            return access_view(&ctx, &state, &who, &agency, None, error).await;
        }
    };
    let result = state
        .store
        .grant_access(
            &nara_store::exchange::NewAccessRight {
                service_id: &service.id,
                client_id: &right.client.to_string(),
                fields: &right.fields,
                purposes: &right.purposes,
                legal_bases: &right.legal_bases,
            },
            &who.actor(),
        )
        .await;
    let client = right.client;
    let done = format!("{client} → {}", service.id);
    after_change(&ctx, &state, &who, &agency, result, done).await
}

#[derive(Deserialize)]
pub struct RevokeAccess {
    #[serde(default)]
    id: i64,
}

pub async fn revoke_access(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminForm { agency, form }: AdminForm<RevokeAccess>,
) -> Result<Response, PageError> {
    match state
        .store
        .revoke_access(form.id, agency.as_str(), &who.actor())
        .await
    {
        Ok(true) => {
            state.exchange.changed();
            access_view(
                &ctx,
                &state,
                &who,
                &agency,
                Some(format!("#{} ✕", form.id)),
                None,
            )
            .await
        }
        Ok(false) => Err(PageError::not_found(ctx.lang)),
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

/// Publishes a data service of the admin's agency: a hosted registry or the
/// agency's own system at a fixed URL; a ledger entry.
pub async fn publish_service(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminForm {
        agency,
        form: pairs,
    }: AdminForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let field = |name: &str| form_field(&pairs, name);
    let directory = state
        .exchange
        .directory(&state.store)
        .await
        .map_err(store_failed(ctx.lang))?;
    let purposes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "purpose")
        .filter(|(_, v)| v.parse::<Purpose>().is_ok())
        .map(|(_, v)| v.clone())
        .collect();
    let (subsystem, code, title) = (field("subsystem"), field("service_code"), field("title"));
    let personal = field("personal") == "1";
    let legal: Vec<String> = field("legal_bases")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let mut problems: Vec<String> = Vec::new();
    let id = nara_core::exchange::ServiceId::new(agency.clone(), &subsystem, &code);
    if id.is_err() {
        problems
            .push("subsystem and service code: 1 to 64 letters, digits, '-', '_' or '.'".into());
    }
    if let Ok(id) = &id
        && (id.is_metaservice() || directory.services.contains_key(&id.to_string()))
    {
        problems.push(format!("{id} exists already (or is a metaservice name)"));
    }
    if title.is_empty() || title.len() > 200 {
        problems.push("title: 1 to 200 characters".into());
    }
    if personal && purposes.is_empty() {
        problems.push("a personal-data service accepts at least one purpose".into());
    }
    if legal
        .iter()
        .any(|l| !nara_core::exchange::valid_legal_basis(l))
    {
        problems.push("a legal basis is 3 to 120 letters, digits, spaces and .,-()§/".into());
    }
    let (kind, endpoint, openapi) = match field("endpoint_kind").as_str() {
        "registry" => {
            let registry = directory
                .registries
                .get(&field("registry"))
                .filter(|r| r.agency_id == agency.as_str());
            match registry {
                Some(r) => {
                    let schema: serde_json::Value =
                        serde_json::from_str(&r.schema).unwrap_or_default();
                    let doc = nara_core::exchange::registry_openapi(&r.title, &r.code, &schema);
                    ("registry", r.code.clone(), doc.to_string())
                }
                None => {
                    problems.push("choose one of your agency's registries".into());
                    ("registry", String::new(), String::new())
                }
            }
        }
        _ => {
            if let Err(e) = nara_core::exchange::check_endpoint_url(&field("url")) {
                problems.push(format!("URL: {e}"));
            }
            let doc = field("openapi");
            if let Err(e) = nara_core::exchange::check_openapi(&doc) {
                problems.push(e.into());
            }
            ("url", field("url"), doc)
        }
    };
    let version = field("version");
    if !nara_core::exchange::valid_part(&version) {
        problems.push("version: 1 to 64 letters, digits, '-', '_' or '.'".into());
    }
    let Ok(id) = id else {
        return access_view(&ctx, &state, &who, &agency, None, Some(problems.join("; "))).await;
    };
    if !problems.is_empty() {
        return access_view(&ctx, &state, &who, &agency, None, Some(problems.join("; "))).await;
    }
    let service = nara_store::exchange::DataService {
        id: id.to_string(),
        agency_id: agency.to_string(),
        subsystem,
        service_code: code,
        version,
        title,
        openapi,
        personal: i64::from(personal),
        purposes: purposes.join(" "),
        legal_bases: legal.join("\n"),
        endpoint_kind: kind.into(),
        endpoint,
        created_at: nara_core::Timestamp::now().0,
    };
    let result = state
        .store
        .register_data_service(&service, &who.actor())
        .await;
    after_change(&ctx, &state, &who, &agency, result, service.id.clone()).await
}

#[derive(Deserialize)]
pub struct NewRegistry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    title: String,
    /// One `name type` per line.
    #[serde(default)]
    fields: String,
}

/// Creates a registry of the admin's agency; a ledger entry.
pub async fn create_registry(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    AdminForm { agency, form }: AdminForm<NewRegistry>,
) -> Result<Response, PageError> {
    let title = form.title.trim();
    let schema = nara_core::exchange::registry_schema(title, &form.fields);
    let error = if !nara_core::exchange::valid_part(form.code.trim()) {
        Some("code: 1 to 64 letters, digits, '-', '_' or '.'".to_owned())
    } else if title.is_empty() || title.len() > 200 {
        Some("title: 1 to 200 characters".to_owned())
    } else {
        schema.as_ref().err().map(ToString::to_string)
    };
    let Ok(schema) = schema else {
        return access_view(&ctx, &state, &who, &agency, None, error).await;
    };
    if error.is_some() {
        return access_view(&ctx, &state, &who, &agency, None, error).await;
    }
    let registry = nara_store::exchange::Registry {
        code: form.code.trim().to_owned(),
        agency_id: agency.to_string(),
        title: title.to_owned(),
        schema: schema.to_string(),
        created_at: nara_core::Timestamp::now().0,
    };
    let result = state.store.create_registry(&registry, &who.actor()).await;
    after_change(&ctx, &state, &who, &agency, result, registry.code.clone()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn residents() -> nara_store::exchange::DataService {
        nara_store::exchange::DataService {
            id: "KR/GOV/MOIS/residents/record".into(),
            agency_id: "KR/GOV/MOIS".into(),
            subsystem: "residents".into(),
            service_code: "record".into(),
            version: "v1".into(),
            title: "Resident record".into(),
            openapi: String::new(),
            personal: 1,
            purposes: "welfare-eligibility tax-assessment".into(),
            legal_bases: "Resident Registration Act, Article 29".into(),
            endpoint_kind: "registry".into(),
            endpoint: "residents".into(),
            created_at: 0,
        }
    }

    #[test]
    fn a_right_names_only_what_its_service_accepts() {
        let service = residents();
        let ask = |client, fields, purposes: &[&str], bases| {
            let asked = RightRequest {
                client,
                fields,
                purposes,
                legal_bases: bases,
            };
            check_right(&service, &asked)
        };
        let client = "KR/LOC/SEOUL/welfare-portal";
        let right = ask(client, "name, address", &["welfare-eligibility"], "").unwrap();
        assert_eq!(right.fields, "name address");
        assert_eq!(right.purposes, "welfare-eligibility");
        let cited = ask(
            client,
            "",
            &["welfare-eligibility"],
            "\n Resident Registration Act, Article 29 \n",
        )
        .unwrap();
        assert_eq!(cited.legal_bases, "Resident Registration Act, Article 29");

        assert_eq!(
            ask("not a client", "", &["welfare-eligibility"], ""),
            Err(RightRefused::BadClient)
        );
        assert_eq!(
            ask(client, "name; DROP", &["welfare-eligibility"], ""),
            Err(RightRefused::BadClient)
        );
        assert_eq!(
            ask(client, "", &["marketing"], ""),
            Err(RightRefused::BadBasis)
        );
        assert_eq!(
            ask(
                client,
                "",
                &["welfare-eligibility"],
                "A law it does not list"
            ),
            Err(RightRefused::BadBasis)
        );
        // Personal data is never granted without a purpose.
        assert_eq!(ask(client, "", &[], ""), Err(RightRefused::BadBasis));
    }
}
