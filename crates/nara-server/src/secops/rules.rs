//! The detection rules on a page: every rule that runs, its level and
//! file, whether an analyst switched it off (and who, and why: a ledger
//! entry), the files that did not load, and a test bench — a rule file,
//! as it runs or as edited, evaluated against the most recent security
//! events on a scratch engine, showing what it would have raised. A test
//! stores nothing and leaves the running rules' state alone. Analysts
//! switch; analysts and auditors read and test.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::detection::{RuleInfo, Trial};
use crate::AppState;
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, query_value, render, store_failed, when};

/// How many of the most recent security events a test reads.
pub const TRIAL_EVENTS: i64 = 10_000;
/// The largest rule file a test takes (the same bound as a rules directory's files).
const TRIAL_BYTES: usize = 64 * 1024;
/// The name a rule pasted without a file is tested under.
const DRAFT: &str = "draft.yml";

/// A rule as the page lists it.
pub struct RuleRow {
    pub rule: RuleInfo,
    pub on: bool,
    /// Who switched it last, when and why.
    pub switched: Option<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "security_rules.html")]
struct RulesPage {
    layout: Layout,
    rows: Vec<RuleRow>,
    off: usize,
    refused: Vec<(String, String)>,
    /// Analysts switch rules; auditors read and test.
    switch: bool,
    csrf: String,
    /// The test bench's file name and YAML (a running rule's, or as edited).
    file: String,
    yaml: String,
    /// A test's outcome: what it raised, or why the file does not load.
    tested: Option<Result<TrialView, String>>,
    trial_events: i64,
}

pub struct TrialView {
    pub trial: Trial,
    pub from: String,
    pub to: String,
    /// Each match's time span, formatted.
    pub spans: Vec<String>,
}

async fn page(
    ctx: &PageCtx,
    state: &AppState,
    file: String,
    yaml: String,
    tested: Option<Result<TrialView, String>>,
) -> Result<Response, PageError> {
    let switches = state
        .store
        .rule_switches()
        .await
        .map_err(store_failed(ctx.lang))?;
    let rows: Vec<RuleRow> = state
        .detector
        .listed()
        .iter()
        .map(|rule| {
            let switched = switches.iter().find(|s| s.rule_id == rule.id);
            RuleRow {
                on: switched.is_none_or(|s| s.is_enabled()),
                switched: switched
                    .map(|s| (s.changed_by.clone(), when(s.changed_at), s.reason.clone())),
                rule: rule.clone(),
            }
        })
        .collect();
    let person = ctx.caller.person();
    Ok(render(&RulesPage {
        layout: ctx.layout(ctx.tr().s("rules.title"), "security"),
        off: rows.iter().filter(|r| !r.on).count(),
        rows,
        refused: state
            .detector
            .refused()
            .iter()
            .map(|e| (e.file.clone(), e.why.clone()))
            .collect(),
        switch: person.is_some_and(|p| p.has_role(nara_core::identity::Role::SecurityAnalyst)),
        csrf: person.and_then(|p| p.csrf()).unwrap_or_default().to_owned(),
        file,
        yaml,
        tested,
        trial_events: TRIAL_EVENTS,
    }))
}

/// The rules page; `?test=RULE-ID` puts that rule's file on the test bench.
pub async fn rules_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let (file, yaml) = query_value(&ctx, "test")
        .and_then(|id| state.detector.source_of(&id))
        .map(|(f, y)| (f.to_owned(), y.to_owned()))
        .unwrap_or_else(|| (DRAFT.to_owned(), String::new()));
    page(&ctx, &state, file, yaml, None).await
}

#[derive(Deserialize)]
pub struct TrialForm {
    #[serde(default)]
    file: String,
    #[serde(default)]
    yaml: String,
}

/// Tests a rule file against the most recent security events.
pub async fn test_rule(
    ctx: PageCtx,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<TrialForm>,
) -> Result<Response, PageError> {
    // Only a file that runs may be replaced by name; anything else is a draft.
    let file = if state.detector.listed().iter().any(|r| r.file == form.file) {
        form.file
    } else {
        DRAFT.to_owned()
    };
    let tested = if form.yaml.len() > TRIAL_BYTES {
        Err(ctx
            .tr()
            .s("rules.too_large")
            .replace("{n}", &(TRIAL_BYTES / 1024).to_string()))
    } else if form.yaml.trim().is_empty() {
        Err(ctx.tr().s("rules.empty").to_owned())
    } else {
        let mut events = state
            .store
            .security_events(None, TRIAL_EVENTS)
            .await
            .map_err(store_failed(ctx.lang))?;
        events.reverse();
        let (node, name, yaml) = (state.clone(), file.clone(), form.yaml.clone());
        // Compiling and evaluating thousands of events is CPU work: off the
        // server's threads.
        let outcome =
            tokio::task::spawn_blocking(move || node.detector.trial(&name, &yaml, &events))
                .await
                .map_err(|_| PageError::internal(ctx.lang))?;
        outcome
            .map(|trial| TrialView {
                from: trial.from.map(when).unwrap_or_default(),
                to: trial.to.map(when).unwrap_or_default(),
                spans: trial
                    .matches
                    .iter()
                    .map(|m| {
                        if m.first_at == m.last_at {
                            when(m.last_at)
                        } else {
                            format!("{} – {}", when(m.first_at), when(m.last_at))
                        }
                    })
                    .collect(),
                trial,
            })
            .map_err(|e| e.why)
    };
    page(&ctx, &state, file, form.yaml, Some(tested)).await
}

#[derive(Deserialize)]
pub struct SwitchForm {
    on: String,
    #[serde(default)]
    reason: String,
}

/// Switches a running rule off or back on, with a reason (analysts).
pub async fn switch_rule(
    ctx: PageCtx,
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<SwitchForm>,
) -> Result<Response, PageError> {
    let on = match form.on.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(PageError::bad_request(ctx.lang)),
    };
    let reason = form.reason.trim();
    if id.is_empty()
        || !state.detector.listed().iter().any(|r| r.id == id)
        || !(10..=500).contains(&reason.chars().count())
    {
        return Err(PageError::bad_request(ctx.lang));
    }
    let Some(person) = ctx.caller.person() else {
        return Err(PageError::forbidden(ctx.lang));
    };
    state
        .store
        .switch_rule(&id, on, reason, &person.actor())
        .await
        .map_err(store_failed(ctx.lang))?;
    // This node at once; the others at their next round (two seconds).
    if let Ok(off) = state.store.rules_switched_off().await {
        state.detector.set_switched_off(off);
    }
    Ok(Redirect::to(&format!("/security/rules#rule-{id}")).into_response())
}
