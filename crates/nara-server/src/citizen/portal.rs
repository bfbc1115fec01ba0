//! The citizen's side of a service: start (or resume) a draft kept on the
//! server, fill its pages (each checked as it is saved), review what nara
//! will fetch and consent, submit — the evidence is fetched through the
//! exchange and eligibility decided — and follow the application's status.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::Lang;
use nara_core::exchange::Purpose;
use nara_core::service_def::{self, Definition, Field};
use nara_store::applications::Application;
use serde_json::{Map, Value};

use crate::AppState;
use crate::citizen::applying::{Refusal, answers_of, complete, fetch_evidence_item, new_reference};
use crate::identity::auth::Principal;
use crate::web::csrf::{CsrfForm, csrf_ok, csrf_refused};
use crate::web::{Layout, PageCtx, PageError, render, store_failed};

/// The citizen's own application and its definition; anyone else's is 404.
pub(crate) async fn owned(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    reference: &str,
) -> Result<(Application, std::sync::Arc<Definition>), PageError> {
    let app = state
        .store
        .application(reference)
        .await
        .map_err(store_failed(ctx.lang))?
        .filter(|a| a.account_id == who.account_id)
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let def = state
        .store
        .definition_versions(&app.service_code)
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .find(|p| p.version == app.version)
        .and_then(|p| state.definitions.of(&p))
        .ok_or_else(|| PageError::internal(ctx.lang))?;
    Ok((app, def))
}

/// A form posted to the citizen's own draft: `None` when the anti-forgery
/// token is wrong; 404 when it is not their draft (or no longer a draft).
async fn posted_draft(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    reference: &str,
    pairs: &[(String, String)],
) -> Result<Option<(Application, std::sync::Arc<Definition>)>, PageError> {
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if !csrf_ok(&ctx.caller, csrf) {
        return Ok(None);
    }
    let (app, def) = owned(ctx, state, who, reference).await?;
    if app.state != "draft" {
        return Err(PageError::not_found(ctx.lang));
    }
    Ok(Some((app, def)))
}

/// The evidence ids a posted form consents to (`consent.{id}=yes`).
fn consents_in(pairs: &[(String, String)]) -> impl Fn(&str) -> bool + Sync + '_ {
    move |id| {
        pairs
            .iter()
            .any(|(k, v)| k.strip_prefix("consent.") == Some(id) && v == "yes")
    }
}

#[derive(serde::Deserialize)]
pub struct CsrfOnly {}

/// `POST /apply/{code}/start`: resumes the citizen's draft of this service
/// (on any device), or starts one under the latest version.
pub async fn start(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(code): Path<String>,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    let fail = store_failed(ctx.lang);
    let draft = match state.store.draft_of(who.account_id, &code).await {
        Ok(d) => d,
        Err(e) => return Err(fail(e)),
    };
    let app = match draft {
        Some(d) => d,
        None => {
            let latest = state
                .store
                .definition_versions(&code)
                .await
                .map_err(store_failed(ctx.lang))?
                .into_iter()
                .next()
                .ok_or_else(|| PageError::not_found(ctx.lang))?;
            // A reference drawn twice is drawn again.
            let mut attempt = 0;
            loop {
                match state
                    .store
                    .create_draft(
                        &new_reference(&latest.agency_id),
                        who.account_id,
                        &code,
                        latest.version,
                        &latest.agency_id,
                    )
                    .await
                {
                    Err(nara_store::StoreError::Conflict(_)) if attempt < 3 => attempt += 1,
                    other => break other.map_err(store_failed(ctx.lang))?,
                }
            }
        }
    };
    Ok(Redirect::to(&format!("/applications/{}/pages/1", app.reference)).into_response())
}

/// One question as the form shows it.
pub struct Input {
    pub name: String,
    pub label: String,
    pub kind: String,
    pub required: bool,
    pub value: String,
    /// A choice's options: (code, words in the reader's language, selected).
    pub options: Vec<(String, String, bool)>,
    pub error: Option<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// File fields: the media types accepted and the size limit.
    pub accept: String,
    pub max_kib: u32,
    /// Group rows: each a list of inputs.
    pub rows: Vec<Vec<Input>>,
}

fn inputs(
    fields: &[Field],
    answers: &Map<String, Value>,
    errors: &[(String, String)],
    lang: Lang,
    prefix: &str,
) -> Vec<Input> {
    fields
        .iter()
        .map(|f| {
            let id = f.id.get_ref();
            let name = format!("{prefix}{id}");
            let value = match answers.get(id) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_owned(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            let rows = if f.kind.get_ref() == "group" {
                let entries = answers
                    .get(id)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let max = f.max.unwrap_or(3).clamp(1, 10) as usize;
                (0..max)
                    .map(|i| {
                        let entry = entries
                            .get(i)
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default();
                        inputs(&f.fields, &entry, errors, lang, &format!("{name}.{i}."))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Input {
                error: errors
                    .iter()
                    .find(|(field, _)| *field == name || field.starts_with(&format!("{name}.")))
                    .map(|(_, m)| m.clone()),
                label: f.label.get(lang),
                kind: f.kind.get_ref().clone(),
                required: f.required,
                options: f
                    .options
                    .iter()
                    .map(|o| {
                        let words = f.answer_text(&Value::String(o.get_ref().clone()), lang);
                        (o.get_ref().clone(), words, *o.get_ref() == value)
                    })
                    .collect(),
                min: f.min,
                max: f.max,
                accept: f
                    .accept
                    .iter()
                    .map(|a| a.get_ref().as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                max_kib: f.max_kib.unwrap_or(0),
                value,
                rows,
                name,
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "application_page.html")]
struct FormPage {
    layout: Layout,
    reference: String,
    service: String,
    number: usize,
    pages: usize,
    inputs: Vec<Input>,
    /// The files attached so far: (field, media type, KiB, scan status).
    uploads: Vec<(String, String, i64, String)>,
    /// On the first page: evidence that can fill in answers, and which.
    prefill: Vec<(EvidencePlan, String)>,
    csrf: String,
    has_errors: bool,
}

#[allow(clippy::too_many_arguments)] // the page's whole state, in one place
pub(crate) async fn form_view(
    ctx: &PageCtx,
    state: &AppState,
    app: &Application,
    def: &Definition,
    n: usize,
    answers: &Map<String, Value>,
    errors: Vec<(String, String)>,
    who: &Principal,
) -> Result<Response, PageError> {
    let page = def
        .pages
        .get(n.wrapping_sub(1))
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let uploads = state
        .store
        .uploads_of(app.id)
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        // Only files still attached (the answer names this content).
        .filter(|u| answers.get(&u.field).and_then(Value::as_str) == Some(u.hash.as_str()))
        .map(|u| (u.field, u.media_type, (u.size + 1023) / 1024, u.scan))
        .collect();
    let prefill = if n == 1 {
        let plans = evidence_plan(state, def, ctx.lang, |e| !e.prefill.is_empty())
            .await
            .map_err(store_failed(ctx.lang))?;
        plans
            .into_iter()
            .map(|p| {
                let fills = def
                    .evidence
                    .iter()
                    .find(|e| *e.id.get_ref() == p.id)
                    .map(|e| {
                        e.prefill
                            .keys()
                            .map(|k| {
                                def.pages
                                    .iter()
                                    .flat_map(|pg| pg.fields.iter())
                                    .find(|f| f.id.get_ref() == k)
                                    .map_or(k.clone(), |f| f.label.get(ctx.lang))
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                (p, fills)
            })
            .collect()
    } else {
        Vec::new()
    };
    let view = FormPage {
        prefill,
        uploads,
        layout: ctx.layout(&page.title.get(ctx.lang), "my-applications"),
        reference: app.reference.clone(),
        service: def.title.get(ctx.lang),
        number: n,
        pages: def.pages.len(),
        inputs: inputs(&page.fields, answers, &errors, ctx.lang, ""),
        csrf: who.csrf().unwrap_or_default().to_owned(),
        has_errors: !errors.is_empty(),
    };
    Ok((status, render(&view)).into_response())
}

/// `GET /applications/{ref}/pages/{n}`.
pub async fn page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path((reference, n)): Path<(String, usize)>,
) -> Result<Response, PageError> {
    let (app, def) = owned(&ctx, &state, &who, &reference).await?;
    if app.state != "draft" {
        return Ok(Redirect::to(&format!("/applications/{reference}")).into_response());
    }
    form_view(
        &ctx,
        &state,
        &app,
        &def,
        n,
        &answers_of(&app),
        Vec::new(),
        &who,
    )
    .await
}

/// Reads one field's answer from the posted pairs.
fn read_field(f: &Field, name: &str, pairs: &[(String, String)]) -> Option<Value> {
    let get = |n: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.trim().to_owned())
    };
    if f.kind.get_ref() == "group" {
        let max = f.max.unwrap_or(3).clamp(1, 10) as usize;
        let mut rows = Vec::new();
        for i in 0..max {
            let mut entry = Map::new();
            for sub in &f.fields {
                if let Some(v) = read_field(sub, &format!("{name}.{i}.{}", sub.id.get_ref()), pairs)
                {
                    entry.insert(sub.id.get_ref().clone(), v);
                }
            }
            if !entry.is_empty() {
                rows.push(Value::Object(entry));
            }
        }
        return (!rows.is_empty()).then_some(Value::Array(rows));
    }
    let v = get(name).filter(|v| !v.is_empty())?;
    Some(Value::String(v))
}

/// `POST /applications/{ref}/pages/{n}`: checks this page's answers, saves
/// them to the draft, and goes on (or shows the problems beside the fields).
pub async fn save_page(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path((reference, n)): Path<(String, usize)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let Some((app, def)) = posted_draft(&ctx, &state, &who, &reference, &pairs).await? else {
        return Ok(csrf_refused(ctx.lang));
    };
    let page = def
        .pages
        .get(n.wrapping_sub(1))
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let mut answers = answers_of(&app);
    for f in &page.fields {
        match read_field(f, f.id.get_ref(), &pairs) {
            Some(v) => answers.insert(f.id.get_ref().clone(), v),
            None => answers.remove(f.id.get_ref()),
        };
    }
    let problems = service_def::check_answers(
        &def,
        Some(&[page.id.get_ref().as_str()]),
        &answers,
        &Map::new(),
    );
    if !problems.is_empty() {
        let errors = problems.into_iter().map(|p| (p.field, p.message)).collect();
        return form_view(&ctx, &state, &app, &def, n, &answers, errors, &who).await;
    }
    let text = Value::Object(answers).to_string();
    if text.len() > 256 * 1024 {
        return Err(PageError::not_found(ctx.lang));
    }
    state
        .store
        .save_answers(app.id, who.account_id, &text)
        .await
        .map_err(store_failed(ctx.lang))?;
    let next = if n < def.pages.len() {
        format!("/applications/{reference}/pages/{}", n + 1)
    } else {
        format!("/applications/{reference}/review")
    };
    Ok(Redirect::to(&next).into_response())
}

pub struct EvidencePlan {
    pub id: String,
    pub what: String,
    pub from: String,
    pub why: String,
    pub fields: String,
    /// The legal basis, when no consent is asked.
    pub legal_basis: Option<String>,
}

#[derive(Template)]
#[template(path = "application_review.html")]
struct ReviewPage {
    layout: Layout,
    reference: String,
    answers: Vec<(String, String)>,
    evidence: Vec<EvidencePlan>,
    csrf: String,
    error: Option<String>,
}

/// `POST /applications/{ref}/prefill`: after the citizen has seen what
/// would be fetched, from whom and why (and consented where needed), fetch
/// the evidence that fills in answers, and fill them in on the draft.
pub async fn prefill(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(reference): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let Some((app, def)) = posted_draft(&ctx, &state, &who, &reference, &pairs).await? else {
        return Ok(csrf_refused(ctx.lang));
    };
    let consented = consents_in(&pairs);
    let mut answers = answers_of(&app);
    for e in def.evidence.iter().filter(|e| !e.prefill.is_empty()) {
        match fetch_evidence_item(&state, &who, &def, e, &reference, &consented).await {
            Ok(record) => {
                for (target, source) in &e.prefill {
                    if let Some(v) = record.get(source.get_ref()).filter(|v| !v.is_null()) {
                        answers.insert(target.clone(), v.clone());
                    }
                }
            }
            Err(Refusal::Store(e)) => return Err(store_failed(ctx.lang)(e)),
            Err(refusal) => {
                let field = e.prefill.keys().next().cloned().unwrap_or_default();
                return form_view(
                    &ctx,
                    &state,
                    &app,
                    &def,
                    1,
                    &answers,
                    vec![(field, refusal.message(ctx.lang))],
                    &who,
                )
                .await;
            }
        }
    }
    state
        .store
        .save_answers(app.id, who.account_id, &Value::Object(answers).to_string())
        .await
        .map_err(store_failed(ctx.lang))?;
    Ok(Redirect::to(&format!("/applications/{reference}/pages/1")).into_response())
}

/// What nara fetches for a definition's evidence (those `which` selects):
/// the service, from which agency, why, which fields, on what basis.
async fn evidence_plan(
    state: &AppState,
    def: &Definition,
    lang: Lang,
    which: impl Fn(&service_def::Evidence) -> bool,
) -> nara_store::Result<Vec<EvidencePlan>> {
    let directory = state.exchange.directory(&state.store).await?;
    let agencies = state.store.all_agencies().await?;
    Ok(def
        .evidence
        .iter()
        .filter(|e| which(e))
        .map(|e| {
            let member: String = e
                .service
                .get_ref()
                .split('/')
                .take(3)
                .collect::<Vec<_>>()
                .join("/");
            EvidencePlan {
                id: e.id.get_ref().clone(),
                what: directory
                    .services
                    .get(e.service.get_ref())
                    .map(|s| s.title.clone())
                    .unwrap_or_else(|| e.service.get_ref().clone()),
                from: agencies
                    .iter()
                    .find(|a| a.id.as_str() == member)
                    .map(|a| a.name.get(lang).to_owned())
                    .unwrap_or(member),
                why: e
                    .purpose
                    .get_ref()
                    .parse::<Purpose>()
                    .map(|p| p.describe().to_owned())
                    .unwrap_or_default(),
                fields: e
                    .fields
                    .iter()
                    .map(|f| f.get_ref().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                legal_basis: e.legal_basis.as_ref().map(|l| l.get_ref().clone()),
            }
        })
        .collect())
}

async fn review_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    app: &Application,
    def: &Definition,
    error: Option<String>,
) -> Result<Response, PageError> {
    let answers = answers_of(app);
    let mut shown = Vec::new();
    for page in &def.pages {
        for f in &page.fields {
            if let Some(v) = answers.get(f.id.get_ref()) {
                shown.push((f.label.get(ctx.lang), f.answer_text(v, ctx.lang)));
            }
        }
    }
    let evidence = evidence_plan(state, def, ctx.lang, |_| true)
        .await
        .map_err(store_failed(ctx.lang))?;
    let status = crate::web::status_for(&error);
    let page = ReviewPage {
        layout: ctx.layout(ctx.tr().s("application.review_title"), "my-applications"),
        reference: app.reference.clone(),
        answers: shown,
        evidence,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        error,
    };
    Ok((status, render(&page)).into_response())
}

/// `GET /applications/{ref}/review`.
pub async fn review(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(reference): Path<String>,
) -> Result<Response, PageError> {
    let (app, def) = owned(&ctx, &state, &who, &reference).await?;
    if app.state != "draft" {
        return Ok(Redirect::to(&format!("/applications/{reference}")).into_response());
    }
    review_view(&ctx, &state, &who, &app, &def, None).await
}

/// `POST /applications/{ref}/submit`: every answer checked; the evidence
/// fetched through the exchange (with the consents just given); eligibility
/// decided; then submitted (and for an automatic service, approved).
pub async fn submit(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(reference): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let Some((app, def)) = posted_draft(&ctx, &state, &who, &reference, &pairs).await? else {
        return Ok(csrf_refused(ctx.lang));
    };
    let consented = consents_in(&pairs);
    match complete(&state, &who, &app, &def, &consented).await {
        Ok(_) => {}
        Err(Refusal::Store(e)) => return Err(store_failed(ctx.lang)(e)),
        Err(refusal) => {
            let message = refusal.message(ctx.lang);
            return review_view(&ctx, &state, &who, &app, &def, Some(message)).await;
        }
    }
    Ok(Redirect::to(&format!("/applications/{reference}")).into_response())
}
