//! Applying, the use case without HTTP: a submission's checks ([`decide`]:
//! answers, consents, evidence through the exchange, eligibility) and its one
//! write ([`complete`]: the state change, with the document of an automatic
//! service in the same transaction). The portal and the JSON API both call it.

use nara_core::Lang;
use nara_core::calendar::add_working_days;
use nara_core::exchange::ClientId;
use nara_core::service_def::{self, Definition};
use nara_store::applications::Application;
use serde_json::{Map, Value};

use crate::AppState;
use crate::identity::auth::Principal;

/// A new reference number: agency code, year, 8 random digits.
pub(crate) fn new_reference(agency: &str) -> String {
    let code = agency.rsplit('/').next().unwrap_or(agency);
    let year = &nara_core::Timestamp::now().rfc3339()[..4];
    format!("{code}-{year}-{:08}", rand::random::<u32>() % 100_000_000)
}

pub(crate) fn answers_of(app: &Application) -> Map<String, Value> {
    serde_json::from_str(&app.answers).unwrap_or_default()
}

/// Fetches one evidence item for the citizen through the exchange, as the
/// agency's portal subsystem: a consent-based item needs the citizen's
/// consent (recorded here), a legal-basis item cites it.
pub(crate) async fn fetch_evidence_item(
    state: &AppState,
    who: &Principal,
    def: &Definition,
    e: &service_def::Evidence,
    reference: &str,
    consented: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Value, Refusal> {
    let subject = state
        .store
        .national_id_hash_of(who.account_id)
        .await?
        .ok_or(Refusal::NoNationalId)?;
    let client = ClientId {
        member: def
            .agency
            .get_ref()
            .parse()
            .map_err(|_| Refusal::EvidenceFailed(def.agency.get_ref().clone()))?,
        subsystem: Some("portal".into()),
    };
    let mut consent_id = None;
    if e.legal_basis.is_none() {
        if !consented(e.id.get_ref()) {
            return Err(Refusal::ConsentNeeded(e.id.get_ref().clone()));
        }
        let now = nara_core::Timestamp::now().0;
        let consent = nara_store::exchange::Consent {
            id: format!("cns_{}", uuid::Uuid::new_v4().simple()),
            account_id: who.account_id,
            subject_hash: subject.clone(),
            client_agency: def.agency.get_ref().clone(),
            service_id: e.service.get_ref().clone(),
            purpose: e.purpose.get_ref().clone(),
            granted_at: now,
            expires_at: now + 30 * 86_400_000,
            revoked_at: None,
        };
        state.store.grant_consent(&consent).await?;
        consent_id = Some(consent.id);
    }
    let request = crate::exchange::gateway::EvidenceRequest {
        client,
        service_id: e.service.get_ref(),
        subject_hash: &subject,
        purpose: e.purpose.get_ref(),
        consent_id: consent_id.as_deref(),
        legal_basis: e.legal_basis.as_ref().map(|l| l.get_ref().as_str()),
        issue: reference,
    };
    crate::exchange::gateway::fetch_evidence(state, &request)
        .await
        .map_err(|fault| {
            tracing::warn!(%fault, %reference, "evidence for an application");
            Refusal::EvidenceFailed(e.service.get_ref().clone())
        })
}

/// Why a submission was refused; nothing was submitted.
#[derive(Debug)]
pub enum Refusal {
    /// An answer fails its field's rules: (field, message).
    Answer(String, String),
    /// The service fetches personal evidence and the account has no national identifier.
    NoNationalId,
    /// Consent-based evidence the citizen did not consent to: its id.
    ConsentNeeded(String),
    /// The exchange could not deliver this evidence service.
    EvidenceFailed(String),
    NotEligible,
    Store(nara_store::StoreError),
}

impl Refusal {
    pub fn message(&self, lang: Lang) -> String {
        let tr = crate::web::i18n::Tr(lang);
        match self {
            Refusal::Answer(field, message) => format!("{field}: {message}"),
            Refusal::NoNationalId => tr.s("exchange.no_id").into(),
            Refusal::ConsentNeeded(_) => tr.s("application.consent_needed").into(),
            Refusal::EvidenceFailed(service) => {
                format!("{} ({service})", tr.s("application.evidence_failed"))
            }
            Refusal::NotEligible => tr.s("application.not_eligible").into(),
            Refusal::Store(_) => tr.s("error.internal").into(),
        }
    }
}

impl From<nara_store::StoreError> for Refusal {
    fn from(e: nara_store::StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// What a submission comes to once checked: the evidence fetched, the
/// states it moves through, its due date.
pub struct Decision {
    pub evidence: String,
    pub states: Vec<(&'static str, &'static str)>,
    pub due: Option<i64>,
}

/// The checks of a submission, the one path for the portal and the API:
/// every answer checked, consents recorded for consent-based evidence, the
/// evidence fetched through the exchange by the agency's portal subsystem,
/// the eligibility rule decided. Nothing of the application is written.
pub async fn decide(
    state: &AppState,
    who: &Principal,
    reference: &str,
    answers: &Map<String, Value>,
    def: &Definition,
    consented: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Decision, Refusal> {
    if let Some(p) = service_def::check_answers(def, None, answers, &Map::new()).first() {
        return Err(Refusal::Answer(p.field.clone(), p.message.clone()));
    }
    let mut evidence = Map::new();
    for e in &def.evidence {
        let record = fetch_evidence_item(state, who, def, e, reference, consented).await?;
        evidence.insert(e.id.get_ref().clone(), record);
    }
    let value_of = |name: &str| service_def::condition_value(name, answers, &evidence);
    if let Some(rule) = &def.eligible_if
        && !rule.get_ref().expr.eval(&value_of)
    {
        return Err(Refusal::NotEligible);
    }
    let now = nara_core::Timestamp::now().0;
    Ok(Decision {
        evidence: Value::Object(evidence).to_string(),
        states: if def.automatic {
            vec![("submitted", "citizen"), ("approved", "system")]
        } else {
            vec![("submitted", "citizen")]
        },
        due: (!def.automatic)
            .then(|| add_working_days(now, *def.workflow.sla_working_days.get_ref())),
    })
}

/// Whether `app` is still in `state` (after a conflict: was it the
/// application that moved, or only the document's status position?).
pub(crate) async fn still_in(state: &AppState, app: &Application, in_state: &str) -> bool {
    matches!(state.store.application(&app.reference).await, Ok(Some(a)) if a.state == in_state)
}

/// Submits the citizen's draft ([`decide`], then the state change; approved
/// at once and the document issued for automatic services).
pub async fn complete(
    state: &AppState,
    who: &Principal,
    app: &Application,
    def: &Definition,
    consented: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(), Refusal> {
    let d = decide(state, who, &app.reference, &answers_of(app), def, consented).await?;
    let approved = Application {
        evidence: d.evidence.clone(),
        ..app.clone()
    };
    let mut attempts = 0;
    loop {
        // An automatic service's document is stored with the submission.
        let credential = if def.automatic {
            crate::citizen::credentials::prepare(state, &approved, def).await?
        } else {
            None
        };
        let submitted = state
            .store
            .submit_application(
                app,
                &d.evidence,
                d.due,
                &d.states,
                &who.actor(),
                credential.as_ref(),
            )
            .await;
        match submitted {
            // Another document took the status position meanwhile: draw another.
            Err(nara_store::StoreError::Conflict(_))
                if credential.is_some() && attempts < 3 && still_in(state, app, "draft").await =>
            {
                attempts += 1;
            }
            other => return Ok(other?),
        }
    }
}
