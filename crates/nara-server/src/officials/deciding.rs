//! Deciding a case, the use case without HTTP: which of the workflow's
//! steps an official may take ([`permitted`], one pure rule) and taking it
//! ([`act`]: the state change, with the document an approval issues, in one
//! transaction). The officials' pages call it; so would an API.

use nara_core::service_def::{Definition, Transition};
use nara_store::applications::Application;

use crate::AppState;
use crate::identity::auth::Principal;

/// Why an official may not take a step; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPermitted {
    /// No officials' step of the workflow leads from the case's state there.
    NotAStep,
    /// The step needs one of its reason codes.
    ReasonNeeded,
    /// Another official holds the case; it must be claimed first.
    ClaimedByOther,
    /// Four eyes: a review step is not taken by who brought the case to it.
    FourEyes,
}

impl NotPermitted {
    /// The message's key in the locales.
    pub fn message_key(self) -> &'static str {
        match self {
            NotPermitted::NotAStep => "cases.not_a_step",
            NotPermitted::ReasonNeeded => "cases.reason_needed",
            NotPermitted::ClaimedByOther => "cases.claimed_by_other",
            NotPermitted::FourEyes => "cases.four_eyes",
        }
    }
}

/// Why an action did not happen.
#[derive(Debug)]
pub enum ActError {
    NotPermitted(NotPermitted),
    Store(nara_store::StoreError),
}

impl From<nara_store::StoreError> for ActError {
    fn from(e: nara_store::StoreError) -> Self {
        ActError::Store(e)
    }
}

/// Whether a step is taken by officials (not the citizen, not the system).
pub fn officials_step(by: &str) -> bool {
    by != "citizen" && by != "system"
}

/// The rule: the step from the case's state `to`, if an official
/// (`account`, acting as `actor`) may take it with `reason`, given who took
/// the last step (`last_actor`).
pub fn permitted<'d>(
    def: &'d Definition,
    app: &Application,
    account: i64,
    actor: &str,
    last_actor: Option<&str>,
    to: &str,
    reason: &str,
) -> Result<&'d Transition, NotPermitted> {
    let step = def
        .workflow
        .transitions
        .iter()
        .find(|t| {
            *t.from.get_ref() == app.state
                && *t.to.get_ref() == to
                && officials_step(t.by.get_ref())
        })
        .ok_or(NotPermitted::NotAStep)?;
    if !step.reasons.is_empty() && !step.reasons.iter().any(|r| *r.get_ref() == reason) {
        return Err(NotPermitted::ReasonNeeded);
    }
    if app.assigned_to.is_some_and(|a| a != account) {
        return Err(NotPermitted::ClaimedByOther);
    }
    if step.by.get_ref() != "official" && last_actor == Some(actor) {
        return Err(NotPermitted::FourEyes);
    }
    Ok(step)
}

/// Takes the step `to` on the case: checked by [`permitted`], then written
/// with its reason and note (at most 2,000 characters); an approval's
/// document is signed first and stored in the same transaction.
pub async fn act(
    state: &AppState,
    who: &Principal,
    app: &Application,
    def: &Definition,
    to: &str,
    reason: &str,
    note: &str,
) -> Result<(), ActError> {
    let events = state.store.application_events(app.id).await?;
    let last_actor = events.last().map(|e| e.actor.as_str());
    let actor = who.actor();
    let step = permitted(def, app, who.account_id, &actor, last_actor, to, reason)
        .map_err(ActError::NotPermitted)?;
    let note: String = note.trim().chars().take(2_000).collect();
    let reason = if step.reasons.is_empty() { "" } else { reason };
    let mut attempts = 0;
    loop {
        let credential = if to == "approved" {
            crate::citizen::credentials::prepare(state, app, def).await?
        } else {
            None
        };
        let acted = state
            .store
            .act_on_application(app, to, who.account_id, reason, &note, credential.as_ref())
            .await;
        match acted {
            // Only the document's status position was taken meanwhile: draw another.
            Err(nara_store::StoreError::Conflict(_))
                if credential.is_some()
                    && attempts < 3
                    && crate::citizen::applying::still_in(state, app, &app.state).await =>
            {
                attempts += 1;
            }
            other => {
                other?;
                state.figures.changed();
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disability_benefit() -> Definition {
        let source = nara_core::service_def::DEMO
            .iter()
            .find(|(file, _)| *file == "disability-benefit.toml")
            .map(|(_, source)| *source)
            .unwrap_or_default();
        nara_core::service_def::check(source).unwrap_or_else(|p| panic!("{p:?}"))
    }

    fn case(state: &str, assigned_to: Option<i64>) -> Application {
        Application {
            id: 1,
            reference: "MOHW-2026-00000001".into(),
            service_code: "disability-benefit".into(),
            version: 1,
            agency_id: "KR/GOV/MOHW".into(),
            account_id: 9,
            state: state.into(),
            answers: "{}".into(),
            evidence: "{}".into(),
            created_at: 0,
            updated_at: 0,
            submitted_at: Some(0),
            due_at: None,
            decided_at: None,
            assigned_to,
        }
    }

    #[test]
    fn only_the_workflows_officials_steps_are_permitted() {
        let def = disability_benefit();
        let app = case("submitted", None);
        let take = |to, reason| permitted(&def, &app, 2, "account:2", None, to, reason);
        assert!(take("caseworker_review", "").is_ok());
        assert_eq!(take("approved", "").err(), Some(NotPermitted::NotAStep));
        let back = case("more_info", None);
        // The citizen's step is hers alone.
        let citizen_step = permitted(&def, &back, 2, "account:2", None, "caseworker_review", "");
        assert_eq!(citizen_step.err(), Some(NotPermitted::NotAStep));
    }

    #[test]
    fn reasons_claims_and_four_eyes_are_enforced() {
        let def = disability_benefit();
        let review = case("caseworker_review", None);
        let more = |reason| permitted(&def, &review, 2, "account:2", None, "more_info", reason);
        assert_eq!(more("").err(), Some(NotPermitted::ReasonNeeded));
        assert_eq!(more("made_up").err(), Some(NotPermitted::ReasonNeeded));
        assert!(more("report_missing").is_ok());

        let held = case("caseworker_review", Some(3));
        let by_other = permitted(&def, &held, 2, "account:2", None, "second_review", "");
        assert_eq!(by_other.err(), Some(NotPermitted::ClaimedByOther));
        assert!(permitted(&def, &held, 3, "account:3", None, "second_review", "").is_ok());

        let second = case("second_review", None);
        let approve = |last| permitted(&def, &second, 2, "account:2", last, "approved", "");
        assert_eq!(
            approve(Some("account:2")).err(),
            Some(NotPermitted::FourEyes)
        );
        assert!(approve(Some("account:3")).is_ok());
    }
}
