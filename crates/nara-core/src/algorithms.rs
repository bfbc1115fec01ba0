//! Algorithms in public services under public rules: what a register entry
//! must hold before it may be published (the fields of the UK's Algorithmic
//! Transparency Recording Standard and the Dutch Algorithm Register's
//! publication standard 1.0 together), Korea's high-impact test (AI Basic
//! Act, art. 2(4)), and the one rule each for how a decision record moves —
//! review by an official, the affected person's appeal to a different one.
//! No I/O: the store keeps entries and records, the models live in
//! `nara-algorithms`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalogue::{Localized, domain_enum};
use crate::validation::{Checker, Invalid};

domain_enum!(
    /// The Dutch register's publication category: A high-risk AI (EU AI Act
    /// annex III), B impactful algorithms, C the others.
    Category { HighRiskAi = "high_risk_ai", Impactful = "impactful", Other = "other" }
);

domain_enum!(
    /// Where an algorithm is in its life.
    Lifecycle { Development = "development", InUse = "in_use", Retired = "retired" }
);

domain_enum!(
    /// Which outputs wait for an official before anything acts on them.
    Oversight { EveryDecision = "every_decision", FlaggedOnly = "flagged_only" }
);

domain_enum!(
    /// The areas Korea's AI Basic Act (art. 2(4)) names for high-impact AI.
    HighImpactArea {
        Energy = "energy",
        DrinkingWater = "drinking_water",
        Health = "health",
        MedicalDevices = "medical_devices",
        Nuclear = "nuclear",
        BiometricsInInvestigation = "biometrics_in_investigation",
        HiringAndCredit = "hiring_and_credit",
        Transport = "transport",
        PublicDecisions = "public_decisions",
        Education = "education",
        OtherRights = "other_rights"
    }
);

impl Category {
    /// The category as the Dutch standard writes it.
    pub fn dutch(self) -> &'static str {
        match self {
            Category::HighRiskAi => "hoog-risico AI-systeem",
            Category::Impactful => "impactvolle algoritmes",
            Category::Other => "overige algoritmes",
        }
    }
}

/// Korea's high-impact test: an area the Act names, and a significant effect
/// on people's life, safety or basic rights there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HighImpact {
    pub area: Option<HighImpactArea>,
    pub significant_effect: bool,
    /// Why the answer is what it is, in plain words.
    pub reasoning: String,
}

impl HighImpact {
    pub fn is_high_impact(&self) -> bool {
        self.area.is_some() && self.significant_effect
    }
}

/// One source of the data a model was built or runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    pub name: String,
    pub licence: String,
    /// How it was collected.
    pub collection: String,
    /// How complete it is, and what is missing.
    pub completeness: String,
    /// Made by a generator, not gathered from people.
    pub generated: bool,
}

/// One measured figure: overall, or for a subgroup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    /// `None` for the whole evaluation set.
    pub subgroup: Option<String>,
    pub metric: String,
    pub value: f64,
}

/// A risk and what is done about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Risk {
    pub risk: String,
    pub mitigation: String,
}

/// An assessment made of the algorithm (an impact assessment, a DPIA…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assessment {
    pub name: String,
    /// When it was made (YYYY-MM-DD).
    pub date: String,
    pub summary: String,
}

/// A register entry as an agency publishes it. Every published version is
/// immutable; the store numbers versions and appends a ledger entry each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterEntry {
    /// A stable identifier: lower-case letters, digits and hyphens.
    pub code: String,
    pub name: Localized,
    pub summary: Localized,
    /// The agency responsible (`INSTANCE/CLASS/CODE`).
    pub organisation: String,
    pub team: String,
    pub senior_responsible_owner: String,
    pub supplier: String,
    pub purpose: String,
    pub benefit: String,
    pub scope: String,
    pub previous_process: String,
    pub alternatives: String,
    pub legal_basis: String,
    pub category: Category,
    pub high_impact: HighImpact,
    pub status: Lifecycle,
    /// In use since (YYYY-MM-DD).
    pub start_date: String,
    pub end_date: Option<String>,
    /// How it fits the decision process: what it decides, what people do.
    pub decision_process: String,
    pub oversight: Oversight,
    /// Who reviews and how they were trained.
    pub human_review: String,
    pub appeal_route: String,
    pub model_type: String,
    pub model_version: String,
    /// SHA-256 of the model's artefact (its parameters as shipped), hex.
    pub artefact_sha256: String,
    pub data_sources: Vec<DataSource>,
    pub performance: Vec<Figure>,
    pub risks: Vec<Risk>,
    pub impact_assessments: Vec<Assessment>,
    pub review_schedule: String,
    pub contact: String,
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

impl RegisterEntry {
    /// Every mandatory field present and well-formed; an entry that fails
    /// cannot be published. Collects every problem, not just the first.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::default();
        if self.code.is_empty()
            || self.code.len() > 60
            || !self
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            c.push(
                "code",
                "must be 1–60 lower-case letters, digits and hyphens",
            );
        }
        for lang in crate::Lang::ALL {
            c.text(&format!("name.{}", lang.code()), self.name.get(lang), 200);
            c.text(
                &format!("summary.{}", lang.code()),
                self.summary.get(lang),
                600,
            );
        }
        if crate::MemberId::parse(&self.organisation).is_err() {
            c.push(
                "organisation",
                "must be an agency identifier INSTANCE/CLASS/CODE",
            );
        }
        for (field, value) in [
            ("team", &self.team),
            ("senior_responsible_owner", &self.senior_responsible_owner),
            ("supplier", &self.supplier),
            ("purpose", &self.purpose),
            ("benefit", &self.benefit),
            ("scope", &self.scope),
            ("previous_process", &self.previous_process),
            ("alternatives", &self.alternatives),
            ("legal_basis", &self.legal_basis),
            ("decision_process", &self.decision_process),
            ("human_review", &self.human_review),
            ("appeal_route", &self.appeal_route),
            ("model_type", &self.model_type),
            ("model_version", &self.model_version),
            ("review_schedule", &self.review_schedule),
            ("high_impact.reasoning", &self.high_impact.reasoning),
        ] {
            c.text(field, value, 4000);
        }
        if !self.contact.contains('@') || self.contact.contains(char::is_whitespace) {
            c.push("contact", "must be an e-mail address");
        }
        if self.artefact_sha256.len() != 64
            || !self
                .artefact_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            c.push(
                "artefact_sha256",
                "must be 64 lower-case hexadecimal digits",
            );
        }
        if !is_date(&self.start_date) {
            c.push("start_date", "must be a date YYYY-MM-DD");
        }
        match (&self.end_date, self.status) {
            (Some(d), _) if !is_date(d) => c.push("end_date", "must be a date YYYY-MM-DD"),
            (Some(d), _) if d.as_str() < self.start_date.as_str() => {
                c.push("end_date", "must not be before the start date")
            }
            (None, Lifecycle::Retired) => {
                c.push("end_date", "a retired algorithm needs its end date")
            }
            _ => {}
        }
        if self.data_sources.is_empty() {
            c.push("data_sources", "name at least one source of data");
        }
        for (i, s) in self.data_sources.iter().enumerate() {
            for (field, value) in [
                ("name", &s.name),
                ("licence", &s.licence),
                ("collection", &s.collection),
                ("completeness", &s.completeness),
            ] {
                c.text(&format!("data_sources[{i}].{field}"), value, 2000);
            }
        }
        if self.performance.is_empty() {
            c.push("performance", "give at least one measured figure");
        }
        for (i, f) in self.performance.iter().enumerate() {
            c.text(&format!("performance[{i}].metric"), &f.metric, 200);
            if !f.value.is_finite() {
                c.push(format!("performance[{i}].value"), "must be a number");
            }
        }
        if self.risks.is_empty() {
            c.push("risks", "name at least one risk and its mitigation");
        }
        for (i, r) in self.risks.iter().enumerate() {
            c.text(&format!("risks[{i}].risk"), &r.risk, 2000);
            c.text(&format!("risks[{i}].mitigation"), &r.mitigation, 2000);
        }
        for (i, a) in self.impact_assessments.iter().enumerate() {
            c.text(&format!("impact_assessments[{i}].name"), &a.name, 200);
            if !is_date(&a.date) {
                c.push(
                    format!("impact_assessments[{i}].date"),
                    "must be a date YYYY-MM-DD",
                );
            }
        }
        // What the law asks of high-impact and high-risk systems.
        let demanding = self.high_impact.is_high_impact() || self.category == Category::HighRiskAi;
        if demanding && self.impact_assessments.is_empty() {
            c.push(
                "impact_assessments",
                "a high-impact or high-risk algorithm needs an impact assessment",
            );
        }
        if self.high_impact.area.is_none() && self.high_impact.significant_effect {
            c.push(
                "high_impact.area",
                "a significant effect is judged within one of the Act's areas",
            );
        }
        c.finish()
    }
}

/// One reason for a model's output, as a key the reader's language renders
/// (`algorithms.factor.<key>`) with its arguments, and how much it weighed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Factor {
    pub key: String,
    pub args: Vec<String>,
    pub weight: f64,
}

/// What a model said about one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Output {
    pub score: f64,
    pub threshold: f64,
    /// The outcome's key (`algorithms.outcome.<key>`).
    pub outcome: String,
    /// The outcome is the one the register's oversight looks at.
    pub flagged: bool,
    /// The main factors, heaviest first.
    pub factors: Vec<Factor>,
}

/// An input outside what a model was built for: refused with the range,
/// never extrapolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct OutOfRange {
    pub field: String,
    pub detail: String,
}

impl OutOfRange {
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

domain_enum!(
    /// Where a decision record is.
    DecisionState {
        AwaitingReview = "awaiting_review",
        Accepted = "accepted",
        Overridden = "overridden",
        Automatic = "automatic"
    }
);

domain_enum!(
    /// Where a decision's appeal is.
    AppealState { Open = "open", Upheld = "upheld", Reversed = "reversed" }
);

impl DecisionState {
    /// A new record's state: it waits for an official when the register's
    /// oversight says so; otherwise it stands as the model gave it.
    pub fn first(oversight: Oversight, flagged: bool) -> DecisionState {
        match (oversight, flagged) {
            (Oversight::EveryDecision, _) | (Oversight::FlaggedOnly, true) => {
                DecisionState::AwaitingReview
            }
            (Oversight::FlaggedOnly, false) => DecisionState::Automatic,
        }
    }

    /// Whether anything may act on the outcome yet.
    pub fn is_final(self) -> bool {
        self != DecisionState::AwaitingReview
    }
}

/// What an official may do with a record or its appeal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Accept the model's outcome (a review) or uphold it (an appeal).
    Confirm,
    /// Override it with a reason (a review), or reverse it (an appeal).
    Change,
}

/// Why an official may not take a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StepRefused {
    #[error("the decision has been reviewed already")]
    NotAwaiting,
    #[error("no open appeal")]
    NoAppeal,
    #[error("an appeal goes to an official other than the one who reviewed the decision")]
    SameOfficial,
    #[error("an override or reversal needs a reason of 10 to 1000 characters")]
    ReasonNeeded,
}

/// The one rule for reviews and appeals, for every page and API that takes
/// them: a record awaiting review gets one review; an open appeal is decided
/// by an official other than the reviewer; changing an outcome needs a reason.
pub fn may_take(
    state: DecisionState,
    appeal: Option<AppealState>,
    reviewer: Option<i64>,
    official: i64,
    step: Step,
    reason: &str,
) -> Result<(), StepRefused> {
    let reasoned = (10..=1000).contains(&reason.trim().chars().count());
    match appeal {
        Some(AppealState::Open) => {
            if reviewer == Some(official) {
                return Err(StepRefused::SameOfficial);
            }
        }
        Some(_) => return Err(StepRefused::NoAppeal),
        None => {
            if state != DecisionState::AwaitingReview {
                return Err(StepRefused::NotAwaiting);
            }
        }
    }
    if step == Step::Change && !reasoned {
        return Err(StepRefused::ReasonNeeded);
    }
    Ok(())
}

/// Whether an official may see the image a record was made from (held only
/// for a match, which always waits for review): the officials who may take
/// its next step (its review, or an open appeal's decision) and the official
/// who reviewed it. Nobody else, ever: not auditors, not the person
/// affected, not once the record is settled for anyone but its reviewer.
pub fn may_see_image(
    state: DecisionState,
    appeal: Option<AppealState>,
    reviewer: Option<i64>,
    official: i64,
) -> bool {
    reviewer == Some(official)
        || may_take(state, appeal, reviewer, official, Step::Confirm, "").is_ok()
}

/// How long the image a match was made from is kept (only a match's image
/// is kept at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageHold {
    /// A step waits for it: the review, or an open appeal's decision.
    Waiting,
    /// Settled: kept until then (Unix ms) for its reviewer to look again,
    /// then deleted.
    Until(i64),
}

impl ImageHold {
    /// Whether the image is still kept at `now_ms`.
    pub fn kept_at(self, now_ms: i64) -> bool {
        match self {
            ImageHold::Waiting => true,
            ImageHold::Until(until) => now_ms < until,
        }
    }
}

/// The one rule for keeping a matched image, for the record's page and the
/// sweep that deletes images: kept while its review or an open appeal
/// waits; once settled, `keep_days` after the record's last step
/// (`settled_at`, Unix ms), and then never again (an appeal opened later is
/// decided on the record without the picture).
pub fn image_hold(
    state: DecisionState,
    appeal: Option<AppealState>,
    settled_at: i64,
    keep_days: u32,
) -> ImageHold {
    if !state.is_final() || appeal == Some(AppealState::Open) {
        return ImageHold::Waiting;
    }
    ImageHold::Until(settled_at.saturating_add(i64::from(keep_days) * 86_400_000))
}

/// Whether the affected person may appeal now: once, after the decision
/// is final.
pub fn may_appeal(state: DecisionState, appeal: Option<AppealState>) -> bool {
    state.is_final() && appeal.is_none()
}

/// SHA-256 of bytes in lower-case hex: how register entries, artefacts,
/// inputs and reasons are named in records and the ledger.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reviewers' override rate: overridden among reviewed, none when none was.
pub fn override_rate(accepted: u64, overridden: u64) -> Option<f64> {
    let reviewed = accepted + overridden;
    (reviewed > 0).then(|| overridden as f64 / reviewed as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_seen_by_its_reviewers_only() {
        use DecisionState::*;
        // Waiting: any official of the agency may open it to review.
        assert!(may_see_image(AwaitingReview, None, None, 7));
        // Reviewed: its reviewer only.
        assert!(may_see_image(Accepted, None, Some(7), 7));
        assert!(!may_see_image(Accepted, None, Some(7), 8));
        assert!(!may_see_image(Overridden, None, Some(7), 8));
        // An open appeal: the official who decides it, and the reviewer.
        let open = Some(AppealState::Open);
        assert!(may_see_image(Accepted, open, Some(7), 8));
        assert!(may_see_image(Accepted, open, Some(7), 7));
        // Settled appeal: the reviewer only; automatic: nobody.
        assert!(!may_see_image(
            Accepted,
            Some(AppealState::Reversed),
            Some(7),
            8
        ));
        assert!(!may_see_image(Automatic, None, None, 7));
    }

    #[test]
    fn an_image_is_kept_while_a_step_waits_and_for_a_while_after() {
        use DecisionState::*;
        const DAY: i64 = 86_400_000;
        let settled = 1_000 * DAY;
        assert_eq!(
            image_hold(AwaitingReview, None, settled, 90),
            ImageHold::Waiting
        );
        let open = Some(AppealState::Open);
        assert_eq!(image_hold(Accepted, open, settled, 90), ImageHold::Waiting);
        assert!(ImageHold::Waiting.kept_at(i64::MAX));
        for done in [None, Some(AppealState::Upheld), Some(AppealState::Reversed)] {
            let hold = image_hold(Overridden, done, settled, 90);
            assert_eq!(hold, ImageHold::Until(settled + 90 * DAY));
            assert!(hold.kept_at(settled + 90 * DAY - 1));
            assert!(!hold.kept_at(settled + 90 * DAY));
        }
        // Nothing kept: deleted at the first sweep after the last step.
        assert!(!image_hold(Accepted, None, settled, 0).kept_at(settled));
        assert!(image_hold(Accepted, None, i64::MAX, u32::MAX).kept_at(i64::MAX - 1));
    }

    #[test]
    fn review_and_appeal_follow_one_rule() {
        use DecisionState::*;
        let reason = "the caller was a real bank";
        assert!(may_take(AwaitingReview, None, None, 1, Step::Confirm, "").is_ok());
        assert_eq!(
            may_take(AwaitingReview, None, None, 1, Step::Change, "no"),
            Err(StepRefused::ReasonNeeded)
        );
        assert!(may_take(AwaitingReview, None, None, 1, Step::Change, reason).is_ok());
        assert_eq!(
            may_take(Accepted, None, Some(1), 1, Step::Confirm, ""),
            Err(StepRefused::NotAwaiting)
        );
        assert_eq!(
            may_take(
                Accepted,
                Some(AppealState::Open),
                Some(1),
                1,
                Step::Confirm,
                ""
            ),
            Err(StepRefused::SameOfficial)
        );
        assert!(
            may_take(
                Accepted,
                Some(AppealState::Open),
                Some(1),
                2,
                Step::Change,
                reason
            )
            .is_ok()
        );
        assert_eq!(
            may_take(
                Accepted,
                Some(AppealState::Upheld),
                Some(1),
                2,
                Step::Confirm,
                ""
            ),
            Err(StepRefused::NoAppeal)
        );
        assert!(may_appeal(Automatic, None));
        assert!(!may_appeal(AwaitingReview, None));
        assert!(!may_appeal(Accepted, Some(AppealState::Reversed)));
    }

    #[test]
    fn oversight_decides_what_waits() {
        assert_eq!(
            DecisionState::first(Oversight::EveryDecision, false),
            DecisionState::AwaitingReview
        );
        assert_eq!(
            DecisionState::first(Oversight::FlaggedOnly, true),
            DecisionState::AwaitingReview
        );
        assert_eq!(
            DecisionState::first(Oversight::FlaggedOnly, false),
            DecisionState::Automatic
        );
        assert_eq!(override_rate(0, 0), None);
        assert_eq!(override_rate(3, 1), Some(0.25));
    }

    #[test]
    fn high_impact_needs_an_area_and_an_effect() {
        let mut h = HighImpact {
            area: Some(HighImpactArea::PublicDecisions),
            significant_effect: true,
            reasoning: "x".into(),
        };
        assert!(h.is_high_impact());
        h.significant_effect = false;
        assert!(!h.is_high_impact());
        h.area = None;
        assert!(!h.is_high_impact());
    }
}
