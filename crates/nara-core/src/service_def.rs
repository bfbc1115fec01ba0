//! Service definitions: how an agency describes a citizen service without
//! code — a versioned TOML file of pages and fields, validation, conditions,
//! eligibility, evidence fetched through the exchange, the workflow with its
//! SLA, fees, and the document issued. `nara service check FILE` reports
//! every problem with its line number.
//!
//! Conditions (`visible_if`, `eligible_if`) are a small expression language:
//! `operand op operand`, joined by `and` / `or`, where an operand is a field
//! (`age`, `children.count`), an evidence value (`evidence.residence.household_head`),
//! a number, a `'string'`, `true` or `false`, and `op` is one of
//! `== != < <= > >=`. Every name an expression uses must exist.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use crate::exchange::{Purpose, ServiceId, valid_legal_basis};

/// A problem in a definition, at a line (1-based; 0 when the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Text in the three languages every page speaks.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub en: String,
    pub es: String,
    pub ko: String,
}

impl Text {
    /// The text in `lang`.
    pub fn get(&self, lang: crate::Lang) -> String {
        match lang {
            crate::Lang::En => self.en.clone(),
            crate::Lang::Es => self.es.clone(),
            crate::Lang::Ko => self.ko.clone(),
        }
    }
}

/// A whole definition, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Stable code, e.g. `resident-registration-certificate`.
    pub code: Spanned<String>,
    /// Increases with every published change; applications keep theirs.
    pub version: Spanned<u32>,
    /// The responsible agency, `INSTANCE/CLASS/CODE`.
    pub agency: Spanned<String>,
    pub title: Text,
    pub summary: Text,
    /// Issued at once on submission (no official's review).
    #[serde(default)]
    pub automatic: bool,
    #[serde(default)]
    pub fee: Option<Fee>,
    #[serde(default)]
    pub eligible_if: Option<Spanned<Condition>>,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    pub pages: Vec<Page>,
    pub workflow: Workflow,
    #[serde(default)]
    pub document: Option<Document>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fee {
    /// In the currency's minor unit where it has one (KRW has none).
    pub amount: Spanned<i64>,
    pub currency: Spanned<String>,
}

/// Data fetched through the exchange after the citizen sees what, from
/// whom and why, and consents (or under the named legal basis).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub id: Spanned<String>,
    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`.
    pub service: Spanned<String>,
    pub fields: Vec<Spanned<String>>,
    pub purpose: Spanned<String>,
    /// Without it, the citizen's consent is asked.
    #[serde(default)]
    pub legal_basis: Option<Spanned<String>>,
    /// Prefill these form fields from the evidence: form field → evidence field.
    #[serde(default)]
    pub prefill: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub id: Spanned<String>,
    pub title: Text,
    pub fields: Vec<Field>,
}

/// One question.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub id: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub label: Text,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub visible_if: Option<Spanned<Condition>>,
    /// text: length bounds; number: value bounds.
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    /// choice: the allowed values.
    #[serde(default)]
    pub options: Vec<Spanned<String>>,
    /// choice: each option in words, in every language (none, or one for
    /// every option; without them a reader sees the option's code).
    #[serde(default)]
    pub option_labels: Option<Spanned<BTreeMap<String, Text>>>,
    /// file: allowed media types and the largest size in KiB.
    #[serde(default)]
    pub accept: Vec<Spanned<String>>,
    #[serde(default)]
    pub max_kib: Option<u32>,
    /// group: its fields, repeated up to `max` times.
    #[serde(default)]
    pub fields: Vec<Field>,
}

impl Field {
    /// An answer as a reader sees it: a choice's option in words in `lang`
    /// (its code when the definition gives none), anything else as given.
    pub fn answer_text(&self, value: &serde_json::Value, lang: crate::Lang) -> String {
        match value {
            serde_json::Value::String(s) => self
                .option_labels
                .as_ref()
                .and_then(|l| l.get_ref().get(s))
                .map_or_else(|| s.clone(), |t| t.get(lang)),
            other => other.to_string(),
        }
    }
}

/// The field types.
pub const FIELD_TYPES: &[&str] = &[
    "text",
    "number",
    "date",
    "choice",
    "address",
    "national_id",
    "yes_no",
    "file",
    "group",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// Working days from submission to decision (0: immediate).
    pub sla_working_days: Spanned<u32>,
    pub states: Vec<Spanned<String>>,
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub from: Spanned<String>,
    pub to: Spanned<String>,
    /// `citizen`, `official`, `system`, or a named step role, e.g. `reviewer`.
    pub by: Spanned<String>,
    /// The fields the actor sees at this step (data minimisation); empty: none.
    #[serde(default)]
    pub shows: Vec<Spanned<String>>,
    /// Reason codes an official picks from (rejections, requests for more).
    #[serde(default)]
    pub reasons: Vec<Spanned<String>>,
}

/// The states every workflow has.
pub const START: &str = "submitted";
pub const END_STATES: &[&str] = &["approved", "rejected", "withdrawn", "closed"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The verifiable credential's type, e.g. `ResidentRegistrationCertificate`.
    pub credential_type: Spanned<String>,
    pub title: Text,
    /// Days it is valid (0: no expiry).
    #[serde(default)]
    pub valid_days: u32,
    /// What it states: form fields and `evidence.ID.FIELD` values.
    pub claims: Vec<Spanned<String>>,
}

/// The 1-based line of a byte offset.
fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

/// Parses and checks a definition; every problem found, with its line.
pub fn check(source: &str) -> Result<Definition, Vec<Problem>> {
    let def: Definition = toml::from_str(source).map_err(|e| {
        vec![Problem {
            line: e.span().map_or(0, |s| line_of(source, s.start)),
            message: e.message().to_owned(),
        }]
    })?;
    let mut problems = Vec::new();
    let mut at = |span: std::ops::Range<usize>, message: String| {
        problems.push(Problem {
            line: line_of(source, span.start),
            message,
        });
    };
    let ident = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if !ident(def.code.get_ref()) {
        at(
            def.code.span(),
            "code: 1–64 lower-case letters, digits, '-' or '_'".into(),
        );
    }
    if *def.version.get_ref() == 0 {
        at(def.version.span(), "version starts at 1".into());
    }
    if crate::MemberId::parse(def.agency.get_ref()).is_err() {
        at(
            def.agency.span(),
            "agency must be INSTANCE/CLASS/CODE".into(),
        );
    }
    if let Some(fee) = &def.fee {
        if *fee.amount.get_ref() < 0 {
            at(fee.amount.span(), "a fee cannot be negative".into());
        }
        let c = fee.currency.get_ref();
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            at(
                fee.currency.span(),
                "currency: an ISO 4217 code such as KRW".into(),
            );
        }
    }

    // Fields: unique ids across the form; their kinds and options.
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut fields: Vec<&Field> = Vec::new();
    fn walk<'a>(list: &'a [Field], out: &mut Vec<&'a Field>) {
        for f in list {
            out.push(f);
            walk(&f.fields, out);
        }
    }
    let mut page_ids = BTreeSet::new();
    for page in &def.pages {
        if !ident(page.id.get_ref()) || !page_ids.insert(page.id.get_ref().clone()) {
            at(
                page.id.span(),
                format!("page id {:?} is not a new identifier", page.id.get_ref()),
            );
        }
        if page.fields.is_empty() {
            at(page.id.span(), "a page needs at least one field".into());
        }
        walk(&page.fields, &mut fields);
    }
    if def.pages.is_empty() {
        at(0..0, "a service needs at least one page".into());
    }
    for f in &fields {
        let id = f.id.get_ref();
        if !ident(id) || !names.insert(id.clone()) {
            at(
                f.id.span(),
                format!("field id {id:?} is not a new identifier"),
            );
        }
        let kind = f.kind.get_ref().as_str();
        if !FIELD_TYPES.contains(&kind) {
            at(
                f.kind.span(),
                format!(
                    "unknown field type {kind:?}; one of {}",
                    FIELD_TYPES.join(", ")
                ),
            );
        }
        if kind == "choice" && f.options.len() < 2 {
            at(
                f.kind.span(),
                format!("{id}: a choice needs at least two options"),
            );
        }
        if kind != "choice" && !f.options.is_empty() {
            at(f.kind.span(), format!("{id}: only a choice has options"));
        }
        if let Some(labels) = &f.option_labels {
            let span = labels.span();
            let labels = labels.get_ref();
            for name in labels.keys() {
                if !f.options.iter().any(|o| o.get_ref() == name) {
                    at(
                        span.clone(),
                        format!("{id}: option_labels names {name:?}, which is not an option"),
                    );
                }
            }
            for o in &f.options {
                if !labels.contains_key(o.get_ref()) {
                    at(
                        o.span(),
                        format!(
                            "{id}: option {:?} has no label; label every option or none",
                            o.get_ref()
                        ),
                    );
                }
            }
        }
        if kind == "group" && f.fields.is_empty() {
            at(f.kind.span(), format!("{id}: a group needs fields"));
        }
        if kind != "group" && !f.fields.is_empty() {
            at(f.kind.span(), format!("{id}: only a group has fields"));
        }
        if kind == "file" {
            if f.accept.is_empty() {
                at(
                    f.kind.span(),
                    format!("{id}: a file field lists the media types it accepts"),
                );
            }
            for a in &f.accept {
                if !["application/pdf", "image/png", "image/jpeg"].contains(&a.get_ref().as_str()) {
                    at(
                        a.span(),
                        format!(
                            "{:?}: accepted are application/pdf, image/png, image/jpeg",
                            a.get_ref()
                        ),
                    );
                }
            }
            if f.max_kib.is_none_or(|k| k == 0 || k > 20 * 1024) {
                at(f.kind.span(), format!("{id}: max_kib between 1 and 20480"));
            }
        }
        if let (Some(min), Some(max)) = (f.min, f.max)
            && min > max
        {
            at(f.id.span(), format!("{id}: min is above max"));
        }
    }

    // Evidence: real service ids, purposes, legal bases, prefill targets.
    let mut evidence: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &def.evidence {
        let id = e.id.get_ref();
        if !ident(id) || evidence.contains_key(id) {
            at(
                e.id.span(),
                format!("evidence id {id:?} is not a new identifier"),
            );
        }
        if ServiceId::parse(e.service.get_ref()).is_err() {
            at(
                e.service.span(),
                "service must be INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE".into(),
            );
        }
        if e.purpose.get_ref().parse::<Purpose>().is_err() {
            at(
                e.purpose.span(),
                format!("unknown purpose {:?}", e.purpose.get_ref()),
            );
        }
        if let Some(l) = &e.legal_basis
            && !valid_legal_basis(l.get_ref())
        {
            at(
                l.span(),
                "a legal basis is 3–120 letters, digits, spaces and .,-()§/".into(),
            );
        }
        if e.fields.is_empty() {
            at(
                e.service.span(),
                format!("{id}: name the fields to fetch (data minimisation)"),
            );
        }
        let set: BTreeSet<String> = e.fields.iter().map(|f| f.get_ref().clone()).collect();
        for (target, source_field) in &e.prefill {
            if !names.contains(target) {
                at(
                    source_field.span(),
                    format!("prefill: no form field {target:?}"),
                );
            }
            if !set.contains(source_field.get_ref()) {
                at(
                    source_field.span(),
                    format!(
                        "prefill: {:?} is not fetched by {id}",
                        source_field.get_ref()
                    ),
                );
            }
        }
        evidence.insert(id.clone(), set);
    }

    // Expressions: parse, and every name must exist.
    let known = |name: &str| -> bool {
        if let Some(rest) = name.strip_prefix("evidence.") {
            let (e, f) = rest.split_once('.').unwrap_or((rest, ""));
            return evidence.get(e).is_some_and(|fs| fs.contains(f));
        }
        names.contains(name.split('.').next().unwrap_or(name))
    };
    let mut expressions: Vec<&Spanned<Condition>> = fields
        .iter()
        .filter_map(|f| f.visible_if.as_ref())
        .collect();
    expressions.extend(def.eligible_if.as_ref());
    for e in expressions {
        for name in e.get_ref().expr.names() {
            if !known(name) {
                at(
                    e.span(),
                    format!("{name:?} is neither a field nor fetched evidence"),
                );
            }
        }
    }

    // Workflow: states include the start and an end; transitions between
    // known states; every state reachable; an end reachable.
    let states: BTreeSet<String> = def
        .workflow
        .states
        .iter()
        .map(|s| s.get_ref().clone())
        .collect();
    if states.len() != def.workflow.states.len() {
        at(
            def.workflow.sla_working_days.span(),
            "workflow: a state is listed twice".into(),
        );
    }
    if !states.contains(START) {
        at(
            def.workflow.sla_working_days.span(),
            format!("workflow: the states must include {START:?}"),
        );
    }
    if !states.iter().any(|s| END_STATES.contains(&s.as_str())) {
        at(
            def.workflow.sla_working_days.span(),
            format!(
                "workflow: the states must include an end: {}",
                END_STATES.join(", ")
            ),
        );
    }
    for t in &def.workflow.transitions {
        for s in [&t.from, &t.to] {
            if !states.contains(s.get_ref()) {
                at(s.span(), format!("workflow: no state {:?}", s.get_ref()));
            }
        }
        if END_STATES.contains(&t.from.get_ref().as_str()) && t.from.get_ref() != "approved" {
            at(
                t.from.span(),
                format!("workflow: {:?} is an end", t.from.get_ref()),
            );
        }
        if !ident(t.by.get_ref()) {
            at(
                t.by.span(),
                "workflow: by names a role: citizen, official, system or a step role".into(),
            );
        }
        for s in &t.shows {
            let name = s.get_ref();
            if !known(name) {
                at(
                    s.span(),
                    format!("workflow: shows {name:?}, which is neither a field nor evidence"),
                );
            }
        }
        for r in &t.reasons {
            if !ident(r.get_ref()) {
                at(r.span(), "workflow: reason codes are identifiers".into());
            }
        }
    }
    let mut reached: BTreeSet<&str> = BTreeSet::from([START]);
    loop {
        let before = reached.len();
        for t in &def.workflow.transitions {
            if reached.contains(t.from.get_ref().as_str()) {
                reached.insert(t.to.get_ref().as_str());
            }
        }
        if reached.len() == before {
            break;
        }
    }
    for s in &def.workflow.states {
        if !reached.contains(s.get_ref().as_str()) {
            at(
                s.span(),
                format!(
                    "workflow: {:?} cannot be reached from {START:?}",
                    s.get_ref()
                ),
            );
        }
    }
    if def.automatic
        && !def.workflow.transitions.iter().any(|t| {
            t.from.get_ref() == START && t.to.get_ref() == "approved" && t.by.get_ref() == "system"
        })
    {
        at(
            def.workflow.sla_working_days.span(),
            "an automatic service has submitted → approved by system".into(),
        );
    }
    if let Some(doc) = &def.document {
        let c = doc.credential_type.get_ref();
        if c.is_empty()
            || !c.bytes().all(|b| b.is_ascii_alphanumeric())
            || !c.as_bytes()[0].is_ascii_uppercase()
        {
            at(
                doc.credential_type.span(),
                "credential_type: UpperCamelCase letters and digits".into(),
            );
        }
        for claim in &doc.claims {
            if !known(claim.get_ref()) {
                at(
                    claim.span(),
                    format!(
                        "document claims {:?}, which is neither a field nor evidence",
                        claim.get_ref()
                    ),
                );
            }
        }
        if !states.contains("approved") {
            at(
                doc.credential_type.span(),
                "a document is issued on approval: add the state \"approved\"".into(),
            );
        }
    }
    if problems.is_empty() {
        Ok(def)
    } else {
        problems.sort_by_key(|p| p.line);
        Err(problems)
    }
}

/// The value a name refers to: a form field's answer, or
/// `evidence.ID.FIELD` from the fetched evidence.
pub fn value_of(
    name: &str,
    answers: &serde_json::Map<String, serde_json::Value>,
    evidence: &serde_json::Map<String, serde_json::Value>,
) -> Option<serde_json::Value> {
    if let Some(rest) = name.strip_prefix("evidence.") {
        let (e, f) = rest.split_once('.')?;
        return evidence.get(e)?.get(f).cloned();
    }
    answers.get(name).cloned()
}

/// [`value_of`] as conditions read it: a yes/no answer posted as `"yes"`
/// or `"no"` is a boolean.
pub fn condition_value(
    name: &str,
    answers: &serde_json::Map<String, serde_json::Value>,
    evidence: &serde_json::Map<String, serde_json::Value>,
) -> Option<serde_json::Value> {
    match value_of(name, answers, evidence)? {
        serde_json::Value::String(s) if s == "yes" => Some(serde_json::Value::Bool(true)),
        serde_json::Value::String(s) if s == "no" => Some(serde_json::Value::Bool(false)),
        other => Some(other),
    }
}

/// One answer that is not acceptable: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerProblem {
    pub field: String,
    pub message: String,
}

/// Checks answers (a JSON object: field id → value) against the fields of
/// `pages` (all pages when `None`): required fields present, every value of
/// its type and bounds; fields hidden by `visible_if` must be absent or are
/// ignored; unknown keys are refused. `evidence` supplies values conditions
/// may read (`evidence.ID.FIELD`). Every problem is reported.
pub fn check_answers(
    def: &Definition,
    pages: Option<&[&str]>,
    answers: &serde_json::Map<String, serde_json::Value>,
    evidence: &serde_json::Map<String, serde_json::Value>,
) -> Vec<AnswerProblem> {
    let mut problems = Vec::new();
    let value = |name: &str| condition_value(name, answers, evidence);
    let visible = |f: &Field| {
        f.visible_if
            .as_ref()
            .is_none_or(|c| c.get_ref().expr.eval(&value))
    };
    let mut known = BTreeSet::new();
    for page in &def.pages {
        if pages.is_some_and(|ps| !ps.contains(&page.id.get_ref().as_str())) {
            continue;
        }
        for f in &page.fields {
            known.insert(f.id.get_ref().clone());
            if !visible(f) {
                continue;
            }
            check_value(
                f,
                answers.get(f.id.get_ref()),
                f.id.get_ref(),
                &mut problems,
            );
        }
    }
    for key in answers.keys() {
        let anywhere = def
            .pages
            .iter()
            .any(|p| p.fields.iter().any(|f| f.id.get_ref() == key));
        if !anywhere || (pages.is_none() && !known.contains(key)) {
            problems.push(AnswerProblem {
                field: key.chars().take(64).collect(),
                message: "not a question of this service".into(),
            });
        }
    }
    problems
}

fn check_value(
    f: &Field,
    value: Option<&serde_json::Value>,
    path: &str,
    out: &mut Vec<AnswerProblem>,
) {
    use serde_json::Value;
    let mut bad = |message: String| {
        out.push(AnswerProblem {
            field: path.to_owned(),
            message,
        })
    };
    let empty = match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    if empty {
        if f.required {
            bad("is required".into());
        }
        return;
    }
    let Some(value) = value else { return };
    let text = value.as_str();
    match f.kind.get_ref().as_str() {
        "text" | "address" => {
            let Some(t) = text else {
                return bad("must be text".into());
            };
            let n = t.chars().count() as i64;
            let (min, max) = (
                f.min.unwrap_or(0),
                f.max.unwrap_or(if f.kind.get_ref() == "address" {
                    300
                } else {
                    2_000
                }),
            );
            if n < min || n > max {
                bad(format!("must be {min} to {max} characters"));
            }
            if t.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
            {
                bad("may not contain control characters".into());
            }
        }
        "number" => {
            let n = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match n.filter(|n| n.is_finite()) {
                None => bad("must be a number".into()),
                Some(n) => {
                    if f.min.is_some_and(|m| n < m as f64) || f.max.is_some_and(|m| n > m as f64) {
                        bad(format!(
                            "must be between {} and {}",
                            f.min.map_or("-∞".into(), |m| m.to_string()),
                            f.max.map_or("∞".into(), |m| m.to_string())
                        ));
                    }
                }
            }
        }
        "date" => {
            if !text.is_some_and(valid_date) {
                bad("must be a date, YYYY-MM-DD".into());
            }
        }
        "choice" => {
            if !text.is_some_and(|t| f.options.iter().any(|o| o.get_ref() == t)) {
                bad("must be one of the options".into());
            }
        }
        "national_id" => {
            if text.is_none_or(|t| crate::identity::normalize_national_id(t).is_err()) {
                bad("must be a resident registration number".into());
            }
        }
        "yes_no" => match value {
            Value::Bool(_) => {}
            Value::String(s) if s == "yes" || s == "no" => {}
            _ => bad("must be yes or no".into()),
        },
        "file" => {
            // An upload's content address, as the upload route returns it.
            let ok = text.is_some_and(|t| {
                t.len() == 71
                    && t.starts_with("sha256:")
                    && t[7..]
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            });
            if !ok {
                bad("must be an uploaded file".into());
            }
        }
        "group" => {
            let Value::Array(items) = value else {
                out.push(AnswerProblem {
                    field: path.to_owned(),
                    message: "must be a list of entries".into(),
                });
                return;
            };
            let max = f.max.unwrap_or(20).clamp(1, 100) as usize;
            if items.len() > max {
                out.push(AnswerProblem {
                    field: path.to_owned(),
                    message: format!("at most {max} entries"),
                });
            }
            for (i, item) in items.iter().take(max).enumerate() {
                let Value::Object(entry) = item else {
                    out.push(AnswerProblem {
                        field: format!("{path}.{i}"),
                        message: "an entry must be an object".into(),
                    });
                    continue;
                };
                for sub in &f.fields {
                    check_value(
                        sub,
                        entry.get(sub.id.get_ref()),
                        &format!("{path}.{i}.{}", sub.id.get_ref()),
                        out,
                    );
                }
                for key in entry.keys() {
                    if !f.fields.iter().any(|s| s.id.get_ref() == key) {
                        out.push(AnswerProblem {
                            field: format!("{path}.{i}"),
                            message: "an entry has an unknown key".into(),
                        });
                    }
                }
            }
        }
        _ => bad("has an unknown type".into()),
    }
}

/// `YYYY-MM-DD`, a real calendar date between 1900 and 2199.
pub fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        s.get(r)
            .filter(|t| t.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|t| t.parse::<u32>().ok())
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..2200).contains(&y) && (1..=days).contains(&d)
}

/// A condition as its definition writes it, parsed when the definition is
/// read (a condition that does not parse is a problem at its line), so no
/// request path parses it again.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub source: String,
    pub expr: Expr,
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        let expr = parse_expr(&source)
            .map_err(|why| serde::de::Error::custom(format!("condition: {why}")))?;
        Ok(Condition { source, expr })
    }
}

/// Why a condition does not parse: what the parser met, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConditionError(pub String);

/// A condition, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Compare(Operand, Op, Operand),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Name(String),
    Number(f64),
    Text(String),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Expr {
    /// The names the expression reads.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Expr::Compare(a, _, b) => [a, b]
                .into_iter()
                .filter_map(|o| match o {
                    Operand::Name(n) => Some(n.as_str()),
                    _ => None,
                })
                .collect(),
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut v = a.names();
                v.extend(b.names());
                v
            }
        }
    }

    /// Evaluates against values (absent names compare as false).
    pub fn eval(&self, value: &dyn Fn(&str) -> Option<serde_json::Value>) -> bool {
        use serde_json::Value;
        let get = |o: &Operand| match o {
            Operand::Name(n) => value(n),
            Operand::Number(x) => serde_json::Number::from_f64(*x).map(Value::Number),
            Operand::Text(t) => Some(Value::String(t.clone())),
            Operand::Bool(b) => Some(Value::Bool(*b)),
        };
        match self {
            Expr::And(a, b) => a.eval(value) && b.eval(value),
            Expr::Or(a, b) => a.eval(value) || b.eval(value),
            Expr::Compare(a, op, b) => {
                let (Some(x), Some(y)) = (get(a), get(b)) else {
                    return false;
                };
                let ord = match (&x, &y) {
                    (Value::Number(p), Value::Number(q)) => p
                        .as_f64()
                        .zip(q.as_f64())
                        .and_then(|(p, q)| p.partial_cmp(&q)),
                    (Value::String(p), Value::String(q)) => Some(p.cmp(q)),
                    (Value::Bool(p), Value::Bool(q)) => Some(p.cmp(q)),
                    _ => None,
                };
                let Some(ord) = ord else {
                    return *op == Op::Ne;
                };
                match op {
                    Op::Eq => ord.is_eq(),
                    Op::Ne => !ord.is_eq(),
                    Op::Lt => ord.is_lt(),
                    Op::Le => ord.is_le(),
                    Op::Gt => ord.is_gt(),
                    Op::Ge => ord.is_ge(),
                }
            }
        }
    }
}

/// Parses a condition (at most 500 characters): `a op b`, `and`, `or`
/// (`and` binds tighter), no parentheses.
pub fn parse_expr(text: &str) -> Result<Expr, ConditionError> {
    parse_condition(text).map_err(ConditionError)
}

fn parse_condition(text: &str) -> Result<Expr, String> {
    if text.len() > 500 {
        return Err("longer than 500 characters".into());
    }
    let tokens = tokenize(text)?;
    let mut ors = Vec::new();
    for or_part in tokens.split(|t| t == "or") {
        let mut ands = Vec::new();
        for and_part in or_part.split(|t| t == "and") {
            let [a, op, b] = and_part else {
                return Err(format!(
                    "expected `operand op operand`, found {:?}",
                    and_part.join(" ")
                ));
            };
            let op = match op.as_str() {
                "==" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                other => return Err(format!("unknown operator {other:?}")),
            };
            ands.push(Expr::Compare(operand(a)?, op, operand(b)?));
        }
        let mut it = ands.into_iter();
        let first = it.next().ok_or("empty condition")?;
        ors.push(it.fold(first, |acc, e| Expr::And(Box::new(acc), Box::new(e))));
    }
    let mut it = ors.into_iter();
    let first = it.next().ok_or("empty condition")?;
    Ok(it.fold(first, |acc, e| Expr::Or(Box::new(acc), Box::new(e))))
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::from("'");
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(ch) => s.push(ch),
                    None => return Err("a string is not closed".into()),
                }
            }
            out.push(s);
        } else if "=!<>".contains(c) {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if "=!<>".contains(ch) {
                    s.push(ch);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(s);
        } else if c.is_ascii_alphanumeric() || "_.-".contains(c) {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_ascii_alphanumeric() || "_.-".contains(ch) {
                    s.push(ch);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(s);
        } else {
            return Err(format!("unexpected {c:?}"));
        }
    }
    Ok(out)
}

fn operand(token: &str) -> Result<Operand, String> {
    if let Some(s) = token.strip_prefix('\'') {
        return Ok(Operand::Text(s.to_owned()));
    }
    match token {
        "true" => return Ok(Operand::Bool(true)),
        "false" => return Ok(Operand::Bool(false)),
        _ => {}
    }
    if let Ok(n) = token.parse::<f64>() {
        return Ok(Operand::Number(n));
    }
    let ok = token.split('.').all(|p| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    });
    if ok {
        Ok(Operand::Name(token.to_owned()))
    } else {
        Err(format!(
            "{token:?} is not a name, number, 'string' or boolean"
        ))
    }
}

/// The demo's service definitions, shipped with nara.
pub const DEMO: &[(&str, &str)] = &[
    (
        "resident-registration-certificate.toml",
        include_str!("../services/resident-registration-certificate.toml"),
    ),
    (
        "business-registration.toml",
        include_str!("../services/business-registration.toml"),
    ),
    (
        "extended-hour-school-enrolment.toml",
        include_str!("../services/extended-hour-school-enrolment.toml"),
    ),
    (
        "disability-benefit.toml",
        include_str!("../services/disability-benefit.toml"),
    ),
    (
        "phishing-report.toml",
        include_str!("../services/phishing-report.toml"),
    ),
    (
        "elderly-protection-zone-petition.toml",
        include_str!("../services/elderly-protection-zone-petition.toml"),
    ),
    (
        "grooming-report.toml",
        include_str!("../services/grooming-report.toml"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_services_are_valid() {
        for (name, source) in DEMO {
            if let Err(problems) = check(source) {
                panic!("{name}: {problems:?}");
            }
        }
    }

    #[test]
    fn problems_name_their_lines() {
        let (_, good) = DEMO[0];
        let bad = good.replacen("type = \"choice\"", "type = \"chioce\"", 1);
        let problems = check(&bad).unwrap_err();
        let line = bad.lines().position(|l| l.contains("chioce")).unwrap() + 1;
        assert!(
            problems
                .iter()
                .any(|p| p.line == line && p.message.contains("unknown field type")),
            "{problems:?}"
        );
        let bad = format!("{good}\nunknown_key = 1\n");
        let problems = check(&bad).unwrap_err();
        assert!(problems[0].message.contains("unknown"), "{problems:?}");
        let bad = good.replacen("to = \"approved\"", "to = \"aproved\"", 1);
        assert!(
            check(&bad)
                .unwrap_err()
                .iter()
                .any(|p| p.message.contains("no state \"aproved\""))
        );
    }

    #[test]
    fn a_choice_is_labelled_for_every_option_or_none() {
        let (_, source) = DEMO
            .iter()
            .find(|(file, _)| *file == "phishing-report.toml")
            .copied()
            .unwrap();
        let def = check(source).unwrap();
        let channel = &def.pages[0].fields[0];
        let call = serde_json::json!("phone_call");
        assert_eq!(channel.answer_text(&call, crate::Lang::Ko), "전화");
        assert_eq!(
            channel.answer_text(&call, crate::Lang::Es),
            "Llamada telefónica"
        );
        // A value the definition does not label is shown as given.
        assert_eq!(
            channel.answer_text(&serde_json::json!("fax"), crate::Lang::En),
            "fax"
        );
        let one_missing = source.replacen(
            ", email = { en = \"Email\", es = \"Correo electrónico\", ko = \"이메일\" }",
            "",
            1,
        );
        assert_ne!(one_missing, source);
        let problems = check(&one_missing).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("option \"email\" has no label")),
            "{problems:?}"
        );
        let stray = source.replacen("email = {", "e_mail = {", 1);
        let problems = check(&stray).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("\"e_mail\", which is not an option")),
            "{problems:?}"
        );
        // Unlabelled choices stay valid: labels are optional.
        let unlabelled: String = source
            .lines()
            .filter(|l| !l.starts_with("option_labels"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(check(&unlabelled).is_ok());
    }

    #[test]
    fn a_condition_that_does_not_parse_is_a_problem_at_its_line() {
        let (_, source) = DEMO
            .iter()
            .find(|(file, _)| *file == "disability-benefit.toml")
            .copied()
            .unwrap();
        let eligible = source
            .lines()
            .find(|l| l.starts_with("eligible_if"))
            .unwrap();
        let bad = source.replacen(eligible, "eligible_if = \"degree >= \"", 1);
        let line = bad
            .lines()
            .position(|l| l.starts_with("eligible_if"))
            .unwrap()
            + 1;
        let problems = check(&bad).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.line == line && p.message.contains("condition:")),
            "{problems:?}"
        );
        // Parsed once, when read: the definition carries the expression.
        let def = check(source).unwrap();
        assert!(!def.eligible_if.unwrap().get_ref().expr.names().is_empty());
    }

    #[test]
    fn conditions_parse_and_evaluate() {
        let e = parse_expr("age >= 18 and resident == true or kind == 'other'").unwrap();
        assert_eq!(e.names(), ["age", "resident", "kind"]);
        let v = |n: &str| match n {
            "age" => Some(serde_json::json!(20)),
            "resident" => Some(serde_json::json!(true)),
            _ => None,
        };
        assert!(e.eval(&v));
        assert!(!parse_expr("age < 18").unwrap().eval(&v));
        for bad in [
            "",
            "age",
            "age >= ",
            "age => 1",
            "age == 'x",
            "a == b c",
            "A == 1",
            "x == (1)",
        ] {
            assert!(parse_expr(bad).is_err(), "{bad:?}");
        }
    }

    fn def(i: usize) -> Definition {
        check(DEMO[i].1).unwrap()
    }

    fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn answers_are_checked_field_by_field() {
        let none = serde_json::Map::new();
        // Business registration: text bounds, choice, date, address, file.
        let d = def(1);
        let good = obj(serde_json::json!({
            "trade_name": "Hanbit Foods", "kind": "corporation", "opening_date": "2026-03-01",
            "premises": "Mapo-gu 10-ro 1, Seoul", "lease": format!("sha256:{}", "a".repeat(64)),
        }));
        assert_eq!(check_answers(&d, None, &good, &none), vec![]);
        let bad = obj(serde_json::json!({
            "trade_name": "H", "kind": "cooperative", "opening_date": "2026-02-30",
            "premises": "", "lease": "../../etc/passwd", "extra": 1,
        }));
        let problems: Vec<String> = check_answers(&d, None, &bad, &none)
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            problems,
            [
                "trade_name",
                "kind",
                "opening_date",
                "premises",
                "lease",
                "extra"
            ]
        );
        // One page at a time: the other page's questions are not required yet.
        let page = obj(
            serde_json::json!({"trade_name": "Hanbit Foods", "kind": "corporation", "opening_date": "2026-03-01", "premises": "Mapo-gu 10-ro 1"}),
        );
        assert_eq!(check_answers(&d, Some(&["business"]), &page, &none), vec![]);
        // Phishing report: conditions decide what is asked.
        let d = def(4);
        let call = obj(
            serde_json::json!({"channel": "phone_call", "sender": "010-0000-0000", "lost_money": "no"}),
        );
        assert_eq!(check_answers(&d, None, &call, &none), vec![]);
        let lost = obj(
            serde_json::json!({"channel": "sms", "sender": "x", "lost_money": true, "amount": "-5"}),
        );
        let p = check_answers(&d, None, &lost, &none);
        assert_eq!(
            p.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(),
            ["amount"]
        );
        // School care: a repeatable group, national ids in the pension.
        let d = def(2);
        let a = obj(
            serde_json::json!({"child_name": "Yuna", "school": "Mapo Elementary", "grade": 7, "single_parent": "yes",
            "pickup": [{"pickup_name": "Kim", "pickup_relation": "parent"}, {"pickup_name": ""}, {"pickup_name": "Lee", "x": 1}, {}]}),
        );
        let fields: Vec<String> = check_answers(&d, None, &a, &none)
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            ["grade", "pickup", "pickup.1.pickup_name", "pickup.2"],
            "four entries of at most three; the fourth is not read"
        );
        let d = def(3);
        let a = obj(
            serde_json::json!({"bank_account": "110-123-456789", "representative": "901301-1234567"}),
        );
        assert_eq!(
            check_answers(&d, None, &a, &none)[0].field,
            "representative"
        );
    }

    #[test]
    fn dates_are_calendar_dates() {
        for ok in ["2024-02-29", "1900-01-01", "2199-12-31"] {
            assert!(valid_date(ok), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "24-01-01",
            "2024-1-01",
            "2024-01-32",
            "１９９０-01-01",
            "2024/01/01",
        ] {
            assert!(!valid_date(bad), "{bad}");
        }
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Every field type, fed any JSON value: never a panic, and a value
        /// accepted for a field is of its type.
        #[test]
        fn any_answer_to_any_field(i in 0usize..6, key in 0usize..40, v in proptest::prop_oneof![
            proptest::strategy::Just(serde_json::Value::Null),
            proptest::bool::ANY.prop_map(serde_json::Value::Bool),
            proptest::num::i64::ANY.prop_map(|n| serde_json::json!(n)),
            proptest::num::f64::ANY.prop_map(|n| serde_json::json!(n)),
            "[ -~가-힣]{0,40}".prop_map(serde_json::Value::String),
            proptest::collection::vec("[a-z_]{0,8}", 0..4).prop_map(|v| serde_json::json!([{ "pickup_name": v.join(" ") }])),
        ]) {
            let d = def(i);
            let mut fields: Vec<&Field> = Vec::new();
            for p in &d.pages { for f in &p.fields { fields.push(f); } }
            let f = fields[key % fields.len()];
            let answers = obj(serde_json::json!({ f.id.get_ref().clone(): v.clone() }));
            let problems = check_answers(&d, None, &answers, &serde_json::Map::new());
            let accepted = !problems.iter().any(|p| p.field.starts_with(f.id.get_ref().as_str()));
            if accepted && !v.is_null() {
                let ok = match f.kind.get_ref().as_str() {
                    "date" => v.as_str().is_some_and(valid_date),
                    "choice" => v.as_str().is_some_and(|t| f.options.iter().any(|o| o.get_ref() == t)),
                    "national_id" => v.as_str().is_some_and(|t| crate::identity::normalize_national_id(t).is_ok()),
                    "yes_no" => v.is_boolean() || v == "yes" || v == "no",
                    "file" => v.as_str().is_some_and(|t| t.starts_with("sha256:")),
                    "group" => v.is_array(),
                    _ => true,
                };
                proptest::prop_assert!(ok || v.as_str().is_some_and(|t| t.trim().is_empty()), "{} accepted {v}", f.kind.get_ref());
            }
        }

        #[test]
        fn hostile_definitions_never_panic(s in "[ -~\n]{0,400}") {
            let _ = check(&s);
            let _ = parse_expr(&s);
        }

        #[test]
        fn mutated_demo_definitions_never_panic(i in 0usize..6, at in 0usize..4000, junk in "[ -~\n]{0,12}") {
            let source = DEMO[i].1;
            let at = at.min(source.len());
            if source.is_char_boundary(at) {
                let mutated = format!("{}{junk}{}", &source[..at], &source[at..]);
                let _ = check(&mutated);
            }
        }
    }
}
