//! Service definitions on the web: the public list and service pages (what
//! a service asks, what it fetches for you, from whom and why), the JSON API,
//! and service designers' page to check and publish versions.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nara_core::Lang;
use nara_core::exchange::Purpose;
use nara_core::identity::Role;
use nara_core::service_def::{self, Definition};
use nara_store::services::PublishedDefinition;
use serde::Deserialize;

use crate::AppState;
use crate::extract::{ApiPath, ApiQuery};
use crate::identity::auth::Principal;
use crate::problem::Problem;
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};
use crate::web::{query_value, when};

/// Why a definition was not published; nothing was.
#[derive(Debug)]
pub enum PublishError {
    /// The definition has problems, each with its line.
    Problems(Vec<service_def::Problem>),
    /// A designer publishes for their own agency only: (line, theirs, named).
    OtherAgency(usize, String, String),
    /// The code and version are already published.
    Conflict(String),
    /// The agency it names is not registered.
    UnknownAgency(String),
    Store(nara_store::StoreError),
}

impl PublishError {
    /// What the designer reads: one line each, with the source's line.
    pub fn messages(&self) -> Vec<String> {
        match self {
            PublishError::Problems(ps) => ps.iter().map(ToString::to_string).collect(),
            PublishError::OtherAgency(line, theirs, named) => {
                vec![format!(
                    "line {line}: you publish for {theirs}, not {named}"
                )]
            }
            PublishError::Conflict(m) => vec![m.clone()],
            PublishError::UnknownAgency(a) => vec![format!("no agency {a}")],
            PublishError::Store(_) => vec!["the database is unavailable".into()],
        }
    }
}

/// Publishing a definition, the use case: checked whole (every problem with
/// its line), owned by `agency` when a designer publishes, stored as a new
/// version (the ledger records it in the same transaction).
pub async fn publish(
    state: &AppState,
    source: &str,
    agency: Option<&nara_core::MemberId>,
    actor: &str,
) -> Result<Definition, PublishError> {
    let def = service_def::check(source).map_err(PublishError::Problems)?;
    if let Some(a) = agency
        && def.agency.get_ref() != a.as_str()
    {
        let line = source[..def.agency.span().start].matches('\n').count() + 1;
        return Err(PublishError::OtherAgency(
            line,
            a.to_string(),
            def.agency.get_ref().clone(),
        ));
    }
    let record = PublishedDefinition {
        code: def.code.get_ref().clone(),
        version: i64::from(*def.version.get_ref()),
        agency_id: def.agency.get_ref().clone(),
        source: source.to_owned(),
        published_by: actor.to_owned(),
        published_at: nara_core::Timestamp::now().0,
    };
    match state.store.publish_definition(&record).await {
        Ok(()) => Ok(def),
        Err(nara_store::StoreError::Conflict(m)) => Err(PublishError::Conflict(m)),
        Err(nara_store::StoreError::Invalid(_)) => {
            Err(PublishError::UnknownAgency(def.agency.get_ref().clone()))
        }
        Err(e) => {
            tracing::error!(error = %e, "publishing a service definition");
            Err(PublishError::Store(e))
        }
    }
}

/// The JSON summary of a definition.
fn summary(p: &PublishedDefinition, d: &Definition) -> serde_json::Value {
    serde_json::json!({
        "code": p.code,
        "version": p.version,
        "agency": p.agency_id,
        "title": {"en": d.title.en, "es": d.title.es, "ko": d.title.ko},
        "summary": {"en": d.summary.en, "es": d.summary.es, "ko": d.summary.ko},
        "automatic": d.automatic,
        "sla_working_days": d.workflow.sla_working_days.get_ref(),
        "fee": d.fee.as_ref().map(|f| serde_json::json!({"amount": f.amount.get_ref(), "currency": f.currency.get_ref()})),
        "evidence": d.evidence.iter().map(|e| serde_json::json!({
            "id": e.id.get_ref(), "service": e.service.get_ref(), "purpose": e.purpose.get_ref(),
            "fields": e.fields.iter().map(|f| f.get_ref()).collect::<Vec<_>>(),
            "legal_basis": e.legal_basis.as_ref().map(|l| l.get_ref()),
        })).collect::<Vec<_>>(),
        "document": d.document.as_ref().map(|doc| doc.credential_type.get_ref()),
        "published_at": nara_core::Timestamp(p.published_at).rfc3339(),
    })
}

/// The latest version of every service definition.
#[utoipa::path(get, path = "/api/v1/service-definitions", tag = "services",
    responses((status = 200, description = "Every service's latest version: code, version, agency, title, summary, SLA, fee, evidence, document")))]
pub async fn definitions_api(State(state): State<AppState>) -> Response {
    match state.store.latest_definitions().await {
        Ok(list) => Json(
            list.iter()
                .filter_map(|p| state.definitions.of(p).map(|d| summary(p, &d)))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(_) => Problem::internal().into_response(),
    }
}

#[derive(Deserialize)]
pub struct VersionQuery {
    #[serde(default)]
    version: Option<i64>,
}

/// One service definition: a version (the latest by default), its TOML
/// source and every version published.
#[utoipa::path(get, path = "/api/v1/service-definitions/{code}", tag = "services",
    params(("code" = String, Path, description = "The service's code"),
           ("version" = Option<i64>, Query, description = "A published version (the latest if absent)")),
    responses((status = 200, description = "{definition, source, versions}"),
              (status = 404, description = "No such service or version", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn definition_api(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Response {
    let versions = match state.store.definition_versions(&code).await {
        Ok(v) => v,
        Err(_) => return Problem::internal().into_response(),
    };
    let chosen = match q.version {
        Some(v) => versions.iter().find(|p| p.version == v),
        None => versions.first(),
    };
    let Some((p, d)) = chosen.and_then(|p| state.definitions.of(p).map(|d| (p, d))) else {
        return Problem::not_found(&format!("service definition {code}")).into_response();
    };
    Json(serde_json::json!({
        "definition": summary(p, &d),
        "source": p.source,
        "versions": versions.iter().map(|v| serde_json::json!({
            "version": v.version, "published_at": nara_core::Timestamp(v.published_at).rfc3339(), "published_by": v.published_by,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// What publishing made: the service's code and its new version.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Published {
    #[schema(example = "resident-registration-certificate")]
    pub code: String,
    #[schema(example = 2)]
    pub version: i64,
}

/// Publishes a definition, a TOML document (docs/services.md), sent as
/// `application/toml` or `text/plain`. Problems come back with their line
/// numbers, and nothing is published.
#[utoipa::path(post, path = "/api/v1/service-definitions", tag = "services",
    request_body(description = "A service definition in TOML (docs/services.md), at most 256 KiB", content(
        (String = "application/toml"),
        (String = "text/plain"),
    )),
    responses((status = 201, description = "Published", body = Published),
              (status = 400, description = "The body is not UTF-8 text", body = crate::problem::Problem, content_type = "application/problem+json"),
              (status = 422, description = "The definition has problems, each with its line; nothing was published", body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("api_token" = [])))]
pub async fn publish_api(
    State(state): State<AppState>,
    who: Principal,
    crate::extract::TomlText(source): crate::extract::TomlText,
) -> Response {
    match publish(&state, &source, None, &who.actor()).await {
        Ok(d) => (
            StatusCode::CREATED,
            Json(Published {
                code: d.code.get_ref().to_string(),
                version: i64::from(*d.version.get_ref()),
            }),
        )
            .into_response(),
        Err(PublishError::Store(_)) => Problem::internal().into_response(),
        Err(refused) => Problem::invalid(nara_core::Invalid {
            errors: refused
                .messages()
                .into_iter()
                .map(|detail| nara_core::FieldError {
                    field: "definition".into(),
                    detail,
                })
                .collect(),
        })
        .into_response(),
    }
}

// --------------------------------------------------------------- portal pages

pub struct ServiceCard {
    pub code: String,
    pub title: String,
    pub summary: String,
    pub agency: String,
    pub sla: u32,
    pub automatic: bool,
}

#[derive(Template)]
#[template(path = "apply_list.html")]
struct ApplyList {
    layout: Layout,
    services: Vec<ServiceCard>,
    q: String,
}

async fn agency_names(state: &AppState, lang: Lang) -> std::collections::HashMap<String, String> {
    state
        .store
        .all_agencies()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.id.to_string(), a.name.get(lang).to_owned()))
        .collect()
}

/// The services citizens can apply for online, searchable.
pub async fn apply_list(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let q = query_value(&ctx, "q")
        .unwrap_or_default()
        .chars()
        .take(100)
        .collect::<String>();
    let needle = q.to_lowercase();
    let names = agency_names(&state, ctx.lang).await;
    let services = state
        .store
        .latest_definitions()
        .await
        .map_err(store_failed(ctx.lang))?
        .iter()
        .filter_map(|p| state.definitions.of(p).map(|d| (p, d)))
        .map(|(p, d)| ServiceCard {
            code: p.code.clone(),
            title: d.title.get(ctx.lang),
            summary: d.summary.get(ctx.lang),
            agency: names
                .get(&p.agency_id)
                .cloned()
                .unwrap_or_else(|| p.agency_id.clone()),
            sla: *d.workflow.sla_working_days.get_ref(),
            automatic: d.automatic,
        })
        .filter(|c| {
            needle.is_empty()
                || c.title.to_lowercase().contains(&needle)
                || c.summary.to_lowercase().contains(&needle)
                || c.agency.to_lowercase().contains(&needle)
        })
        .collect();
    Ok(render(&ApplyList {
        layout: ctx.layout(ctx.tr().s("apply.title"), "apply"),
        services,
        q,
    }))
}

pub struct QuestionView {
    pub label: String,
    pub kind: String,
    pub required: bool,
    pub conditional: bool,
}

pub struct EvidenceView {
    pub what: String,
    pub from: String,
    pub why: String,
    pub basis: String,
    pub fields: String,
}

#[derive(Template)]
#[template(path = "apply_service.html")]
struct ApplyService {
    layout: Layout,
    code: String,
    version: i64,
    published: String,
    agency: String,
    summary: String,
    fee: Option<String>,
    sla: u32,
    automatic: bool,
    pages: Vec<(String, Vec<QuestionView>)>,
    evidence: Vec<EvidenceView>,
    document: Option<String>,
    /// A signed-in citizen's CSRF token: they may start an application.
    citizen_csrf: Option<String>,
    figures: crate::catalogue::statistics::FiguresView,
}

/// A service's page: what it asks, what nara fetches for you (from whom,
/// why, on what basis), how long it takes, what you receive.
pub async fn apply_service(
    ctx: PageCtx,
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    let versions = state
        .store
        .definition_versions(&code)
        .await
        .map_err(store_failed(ctx.lang))?;
    let Some((p, d)) = versions
        .first()
        .and_then(|p| state.definitions.of(p).map(|d| (p, d)))
    else {
        return Err(PageError::not_found(ctx.lang));
    };
    let names = agency_names(&state, ctx.lang).await;
    let directory = state.exchange.directory(&state.store).await.ok();
    let tr = ctx.tr();
    let evidence = d
        .evidence
        .iter()
        .map(|e| {
            let member: String = e
                .service
                .get_ref()
                .split('/')
                .take(3)
                .collect::<Vec<_>>()
                .join("/");
            EvidenceView {
                what: directory
                    .as_ref()
                    .and_then(|dir| {
                        dir.services
                            .get(e.service.get_ref())
                            .map(|s| s.title.clone())
                    })
                    .unwrap_or_else(|| e.service.get_ref().clone()),
                from: names.get(&member).cloned().unwrap_or(member),
                why: e
                    .purpose
                    .get_ref()
                    .parse::<Purpose>()
                    .map(|p| p.describe().to_owned())
                    .unwrap_or_default(),
                basis: match &e.legal_basis {
                    Some(l) => l.get_ref().clone(),
                    None => tr.s("apply.asks_consent").to_owned(),
                },
                fields: e
                    .fields
                    .iter()
                    .map(|f| f.get_ref().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })
        .collect();
    fn questions(fields: &[service_def::Field], lang: Lang, out: &mut Vec<QuestionView>) {
        for f in fields {
            out.push(QuestionView {
                label: f.label.get(lang),
                kind: f.kind.get_ref().clone(),
                required: f.required,
                conditional: f.visible_if.is_some(),
            });
            questions(&f.fields, lang, out);
        }
    }
    let pages = d
        .pages
        .iter()
        .map(|page| {
            let mut qs = Vec::new();
            questions(&page.fields, ctx.lang, &mut qs);
            (page.title.get(ctx.lang), qs)
        })
        .collect();
    let figures = crate::catalogue::statistics::figures(&state, Some(&code))
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .find(|f| f.service_code == code)
        .unwrap_or_else(|| nara_store::applications::ServiceFigures {
            service_code: code.clone(),
            ..Default::default()
        });
    let page = ApplyService {
        figures: crate::catalogue::statistics::view(&figures, d.title.get(ctx.lang)),
        layout: ctx.layout(&d.title.get(ctx.lang), "apply"),
        code: p.code.clone(),
        version: p.version,
        published: when(p.published_at),
        agency: names
            .get(&p.agency_id)
            .cloned()
            .unwrap_or_else(|| p.agency_id.clone()),
        summary: d.summary.get(ctx.lang),
        fee: d.fee.as_ref().map(|f| {
            if *f.amount.get_ref() == 0 {
                tr.s("apply.free").to_owned()
            } else {
                format!("{} {}", f.amount.get_ref(), f.currency.get_ref())
            }
        }),
        sla: *d.workflow.sla_working_days.get_ref(),
        automatic: d.automatic,
        pages,
        evidence,
        document: d.document.as_ref().map(|doc| doc.title.get(ctx.lang)),
        citizen_csrf: match &ctx.caller {
            crate::identity::auth::Caller::Signed(p) if p.has_role(Role::Citizen) => {
                p.csrf().map(str::to_owned)
            }
            _ => None,
        },
    };
    Ok(render(&page))
}

// ------------------------------------------------------------ the designer

pub struct DesignView {
    pub code: String,
    pub version: i64,
    pub title: String,
    pub published: String,
}

#[derive(Template)]
#[template(path = "designer.html")]
struct DesignerPage {
    layout: Layout,
    agency: String,
    services: Vec<DesignView>,
    source: String,
    problems: Vec<String>,
    message: Option<String>,
    csrf: String,
}

fn designer_agency(ctx: &PageCtx, who: &Principal) -> Result<nara_core::MemberId, PageError> {
    who.agencies_for(Role::ServiceDesigner)
        .into_iter()
        .next()
        .ok_or_else(|| PageError::not_found(ctx.lang))
}

async fn designer_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    source: String,
    problems: Vec<String>,
    message: Option<String>,
) -> Result<Response, PageError> {
    let agency = designer_agency(ctx, who)?;
    let services = state
        .store
        .latest_definitions()
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .filter(|p| p.agency_id == agency.as_str())
        .map(|p| DesignView {
            title: state
                .definitions
                .of(&p)
                .map(|d| d.title.get(ctx.lang))
                .unwrap_or_default(),
            code: p.code,
            version: p.version,
            published: when(p.published_at),
        })
        .collect();
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = DesignerPage {
        layout: ctx.layout(ctx.tr().s("designer.title"), "designer"),
        agency: agency.to_string(),
        services,
        source,
        problems,
        message,
        csrf: who.csrf().unwrap_or_default().to_owned(),
    };
    Ok((status, render(&page)).into_response())
}

/// The designer's page; `?edit=CODE` loads that service's latest source.
pub async fn designer_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    let agency = designer_agency(&ctx, &who)?;
    let mut source = String::new();
    if let Some(code) = query_value(&ctx, "edit") {
        let versions = state
            .store
            .definition_versions(&code)
            .await
            .map_err(store_failed(ctx.lang))?;
        match versions.first() {
            Some(p) if p.agency_id == agency.as_str() => source = p.source.clone(),
            _ => return Err(PageError::not_found(ctx.lang)),
        }
    }
    designer_view(&ctx, &state, &who, source, Vec::new(), None).await
}

#[derive(Deserialize)]
pub struct DesignForm {
    #[serde(default)]
    source: String,
    /// `check` or `publish`.
    #[serde(default)]
    action: String,
}

/// Checks (and on `publish`, publishes) a definition of the designer's agency.
pub async fn designer_submit(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(form): CsrfForm<DesignForm>,
) -> Result<Response, PageError> {
    let agency = designer_agency(&ctx, &who)?;
    if form.source.len() > 256 * 1024 {
        return designer_view(
            &ctx,
            &state,
            &who,
            String::new(),
            vec!["at most 256 KiB".into()],
            None,
        )
        .await;
    }
    if form.action != "publish" {
        let problems = match service_def::check(&form.source) {
            Ok(_) => Vec::new(),
            Err(ps) => ps.iter().map(|p| p.to_string()).collect(),
        };
        let message = problems
            .is_empty()
            .then(|| ctx.tr().s("designer.no_problems").to_owned());
        return designer_view(&ctx, &state, &who, form.source, problems, message).await;
    }
    match publish(&state, &form.source, Some(&agency), &who.actor()).await {
        Ok(d) => {
            let message = format!("{} v{}", d.code.get_ref(), d.version.get_ref());
            designer_view(&ctx, &state, &who, form.source, Vec::new(), Some(message)).await
        }
        Err(PublishError::Store(e)) => Err(store_failed(ctx.lang)(e)),
        Err(refused) => {
            designer_view(&ctx, &state, &who, form.source, refused.messages(), None).await
        }
    }
}

/// Publishes the demo's service definitions (once), and grants each
/// agency's portal subsystem (`AGENCY/portal`, through which nara fetches
/// an application's evidence) the evidence its services name.
pub async fn ensure_demo(store: &nara_store::Store) -> anyhow::Result<()> {
    // What each portal needs of each service, over all the agency's demo
    // services: the fields, the purposes and the legal bases their evidence names.
    type Needs = (
        std::collections::BTreeSet<String>,
        std::collections::BTreeSet<String>,
        std::collections::BTreeSet<String>,
    );
    let mut needs: std::collections::BTreeMap<(String, String), Needs> = Default::default();
    let services = store.data_services().await?;
    for (_, source) in service_def::DEMO {
        let def = service_def::check(source)
            .map_err(|p| anyhow::anyhow!("a demo service definition: {p:?}"))?;
        for e in &def.evidence {
            if !services.iter().any(|s| s.id == *e.service.get_ref()) {
                continue;
            }
            let client = format!("{}/portal", def.agency.get_ref());
            let n = needs
                .entry((e.service.get_ref().clone(), client))
                .or_default();
            n.0.extend(e.fields.iter().map(|f| f.get_ref().clone()));
            n.1.insert(e.purpose.get_ref().clone());
            n.2.extend(e.legal_basis.iter().map(|l| l.get_ref().clone()));
        }
    }
    for ((service, client), (fields, purposes, bases)) in &needs {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let purposes: Vec<&str> = purposes.iter().map(String::as_str).collect();
        let bases: Vec<&str> = bases.iter().map(String::as_str).collect();
        crate::demo::grant_or_update(
            store,
            &nara_store::exchange::NewAccessRight {
                service_id: service,
                client_id: client,
                fields: &fields.join(" "),
                purposes: &purposes.join(" "),
                legal_bases: &bases.join("\n"),
            },
        )
        .await?;
    }
    for (_, source) in service_def::DEMO {
        let def = service_def::check(source)
            .map_err(|p| anyhow::anyhow!("a demo service definition: {p:?}"))?;
        if !store
            .definition_versions(def.code.get_ref())
            .await?
            .is_empty()
        {
            continue;
        }
        store
            .publish_definition(&PublishedDefinition {
                code: def.code.get_ref().clone(),
                version: i64::from(*def.version.get_ref()),
                agency_id: def.agency.get_ref().clone(),
                source: (*source).to_owned(),
                published_by: "demo".into(),
                published_at: nara_core::Timestamp::now().0,
            })
            .await?;
    }
    Ok(())
}
