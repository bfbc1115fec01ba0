//! Whether a person's data may leave a provider: the one decision every
//! path takes — an agency system's r1 request, a peer gateway's forwarded
//! request, the portal's evidence fetch, and the consumer side of a
//! federated exchange. Pure: the callers read the service, the access right
//! and the consent, and this decides.
//!
//! The rule (docs/exchange.md): the purpose stated must be one the service
//! accepts *and* the client's right names; personal data needs a purpose
//! and either a valid consent of the person, given to this client's agency
//! for this service and purpose, or a legal basis the service lists *and*
//! the right names. A consent, when one is sent, decides (a legal basis
//! beside it is not looked at). Refusals name only what the client is
//! entitled to.

use crate::exchange::{Fault, FaultKind, Purpose};

/// What the service accepts.
#[derive(Debug, Clone)]
pub struct Terms<'a> {
    pub service: &'a str,
    pub personal: bool,
    pub purposes: Vec<&'a str>,
    pub legal_bases: Vec<&'a str>,
}

/// What the client's access right lets it invoke.
#[derive(Debug, Clone)]
pub struct Entitlement<'a> {
    pub client: &'a str,
    pub purposes: Vec<&'a str>,
    pub legal_bases: Vec<&'a str>,
}

/// A consent as the provider's side knows it: stored here, or asserted by
/// the node that keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given<'a> {
    pub id: &'a str,
    pub service: &'a str,
    /// The member (agency) the person consented to.
    pub client_agency: &'a str,
    pub purpose: &'a str,
    /// Who gave it, as the caller's subject is compared (a keyed hash, or
    /// for an assertion its binding to the exchange).
    pub subject: &'a str,
    /// Not revoked and not expired at the time of the request.
    pub valid: bool,
}

/// The consent a request refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim<'a> {
    /// None was sent.
    Absent,
    /// One was named, but no consent with that id exists.
    Unknown,
    Given(Given<'a>),
}

/// What the caller asks with.
#[derive(Debug, Clone)]
pub struct Asked<'a> {
    /// The member the calling system belongs to.
    pub client_agency: &'a str,
    pub purpose: Option<&'a str>,
    pub consent: Claim<'a>,
    pub legal_basis: Option<&'a str>,
    /// The person the data is about, compared as [`Given::subject`] is.
    pub subject: Option<&'a str>,
}

/// On what ground the data may be released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ground {
    /// The service returns no personal data.
    NotPersonal,
    /// The person's consent, by id.
    Consent(String),
    /// A legal basis the service lists and the right names.
    LegalBasis(String),
}

/// The decision: on what ground `asked` may have `terms`' data under
/// `right`, or why not.
pub fn decide(
    terms: &Terms<'_>,
    right: &Entitlement<'_>,
    asked: &Asked<'_>,
) -> Result<Ground, Fault> {
    let named = match asked.consent {
        Claim::Absent => asked.legal_basis,
        _ => None,
    };
    entitled(terms, right, asked.purpose, named)?;
    if !terms.personal {
        return Ok(Ground::NotPersonal);
    }
    let Some(purpose) = asked.purpose else {
        return Err(Fault::new(
            FaultKind::PurposeRequired,
            "this service returns personal data: state a purpose in Nara-Purpose",
        ));
    };
    match (&asked.consent, named) {
        (Claim::Absent, Some(l)) => Ok(Ground::LegalBasis(l.to_owned())),
        (Claim::Absent, None) => Err(Fault::new(
            FaultKind::ConsentRequired,
            "personal data needs the subject's consent (Nara-Consent) or a legal basis (Nara-Legal-Basis)",
        )),
        (claim, _) => consent_covers(
            claim,
            terms.service,
            asked.client_agency,
            purpose,
            asked.subject,
        )
        .map(|id| Ground::Consent(id.to_owned())),
    }
}

/// Whether a claimed consent covers this service, client agency, purpose
/// and person, and is valid now; its id if so. The consumer side of a
/// federated exchange checks this alone (the provider's node decides the rest).
pub fn consent_covers<'a>(
    claim: &Claim<'a>,
    service: &str,
    client_agency: &str,
    purpose: &str,
    subject: Option<&str>,
) -> Result<&'a str, Fault> {
    let c = match claim {
        Claim::Given(c) if c.service == service && c.client_agency == client_agency => c,
        _ => {
            return Err(Fault::new(
                FaultKind::ConsentRequired,
                "no consent with this id covers this client and service",
            ));
        }
    };
    if !c.valid {
        return Err(Fault::new(
            FaultKind::ConsentRequired,
            "the consent has expired or was revoked",
        ));
    }
    if c.purpose != purpose {
        return Err(Fault::new(
            FaultKind::PurposeRequired,
            format!("the consent was given for {:?} only", c.purpose),
        ));
    }
    match subject {
        None => Err(Fault::new(
            FaultKind::BadRequest,
            "name the subject in Nara-Subject (it must match the consent)",
        )),
        Some(s) if s != c.subject => Err(Fault::new(
            FaultKind::ConsentRequired,
            "the consent was given by someone else than Nara-Subject",
        )),
        Some(_) => Ok(c.id),
    }
}

/// What a client may invoke under its right: the purpose it states must be
/// one the service accepts and its right names; a legal basis named instead
/// of consent must be one the service lists and its right names.
fn entitled(
    terms: &Terms<'_>,
    right: &Entitlement<'_>,
    purpose: Option<&str>,
    legal_basis: Option<&str>,
) -> Result<(), Fault> {
    if let Some(p) = purpose
        && (p.parse::<Purpose>().is_err()
            || !terms.purposes.contains(&p)
            || !right.purposes.contains(&p))
    {
        let allowed: Vec<&str> = right
            .purposes
            .iter()
            .copied()
            .filter(|x| terms.purposes.contains(x))
            .collect();
        return Err(Fault::new(
            FaultKind::PurposeRequired,
            format!(
                "purpose {p:?} is not one {} may state for {} (it may state: {})",
                right.client,
                terms.service,
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ),
        ));
    }
    if let Some(l) = legal_basis
        && !(terms.legal_bases.contains(&l) && right.legal_bases.contains(&l))
    {
        let allowed: Vec<&str> = right
            .legal_bases
            .iter()
            .copied()
            .filter(|x| terms.legal_bases.contains(x))
            .collect();
        return Err(Fault::new(
            FaultKind::ConsentRequired,
            if allowed.is_empty() {
                format!(
                    "{} may name no legal basis for {}: it needs the subject's consent",
                    right.client, terms.service
                )
            } else {
                format!(
                    "{l:?} is not a legal basis {} may name for {} (it may name: {})",
                    right.client,
                    terms.service,
                    allowed.join("; ")
                )
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PURPOSES: &[&str] = &[
        "benefit-eligibility",
        "public-safety",
        "school-enrolment",
        "made-up",
    ];
    const BASES: &[&str] = &["Act A art. 1", "Act B art. 2", "Act C art. 3"];

    fn subset() -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(PURPOSES, 0..=PURPOSES.len())
    }
    fn bases() -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(BASES, 0..=BASES.len())
    }
    fn maybe(of: &'static [&'static str]) -> impl Strategy<Value = Option<&'static str>> {
        proptest::option::of(proptest::sample::select(of))
    }

    proptest! {
        /// Whatever is asked, data leaves only on a ground the rule allows:
        /// a legal basis both the service and the right name, with no
        /// consent sent; a consent that covers exactly this service, agency,
        /// purpose and person and is valid; or a service without personal data.
        #[test]
        fn data_leaves_only_on_an_allowed_ground(
            personal in any::<bool>(),
            service_purposes in subset(), service_bases in bases(),
            right_purposes in subset(), right_bases in bases(),
            purpose in maybe(PURPOSES), legal in maybe(BASES),
            consent in proptest::option::of((
                any::<bool>(), // exists
                proptest::sample::select(&["svc", "other"][..]),
                proptest::sample::select(&["KR/LOC/SEOUL", "KR/GOV/X"][..]),
                proptest::sample::select(PURPOSES),
                proptest::sample::select(&["alice", "bob"][..]),
                any::<bool>(),
            )),
            subject in maybe(&["alice", "bob"]),
        ) {
            let terms = Terms { service: "svc", personal, purposes: service_purposes.clone(), legal_bases: service_bases.clone() };
            let right = Entitlement { client: "KR/LOC/SEOUL/app", purposes: right_purposes.clone(), legal_bases: right_bases.clone() };
            let claim = match &consent {
                None => Claim::Absent,
                Some((false, ..)) => Claim::Unknown,
                Some((true, s, a, p, who, valid)) => Claim::Given(Given { id: "c1", service: s, client_agency: a, purpose: p, subject: who, valid: *valid }),
            };
            let asked = Asked { client_agency: "KR/LOC/SEOUL", purpose, consent: claim.clone(), legal_basis: legal, subject };
            let stated_ok = purpose.is_none_or(|p| p != "made-up" && service_purposes.contains(&p) && right_purposes.contains(&p));
            match decide(&terms, &right, &asked) {
                Ok(Ground::NotPersonal) => prop_assert!(!personal && stated_ok),
                Ok(Ground::LegalBasis(l)) => {
                    prop_assert!(personal && stated_ok && purpose.is_some());
                    prop_assert_eq!(claim, Claim::Absent);
                    prop_assert!(service_bases.contains(&l.as_str()) && right_bases.contains(&l.as_str()));
                }
                Ok(Ground::Consent(id)) => {
                    prop_assert!(personal && stated_ok);
                    prop_assert_eq!(id, "c1");
                    let Claim::Given(c) = claim else { return Err(TestCaseError::fail("a consent ground without a consent")) };
                    prop_assert!(c.valid && c.service == "svc" && c.client_agency == "KR/LOC/SEOUL");
                    prop_assert_eq!(Some(c.purpose), purpose);
                    prop_assert_eq!(Some(c.subject), subject);
                }
                Err(f) => {
                    // A refusal lists only what the right names.
                    let listed = |marker: &str, sep: &str| -> Vec<String> {
                        f.message
                            .split_once(marker)
                            .map(|(_, rest)| rest.trim_end_matches(')').split(sep).map(str::to_owned).collect())
                            .unwrap_or_default()
                    };
                    for p in listed("may state: ", ", ") {
                        prop_assert!(p == "none" || right_purposes.contains(&p.as_str()), "{}", f.message);
                    }
                    for b in listed("may name: ", "; ") {
                        prop_assert!(right_bases.contains(&b.as_str()), "{}", f.message);
                    }
                }
            }
        }
    }

    #[test]
    fn a_consent_decides_when_one_is_sent() {
        let terms = Terms {
            service: "svc",
            personal: true,
            purposes: vec!["benefit-eligibility"],
            legal_bases: vec!["Act A art. 1"],
        };
        let right = Entitlement {
            client: "KR/LOC/SEOUL/app",
            purposes: vec!["benefit-eligibility"],
            legal_bases: vec!["Act A art. 1"],
        };
        let asked = Asked {
            client_agency: "KR/LOC/SEOUL",
            purpose: Some("benefit-eligibility"),
            consent: Claim::Unknown,
            legal_basis: Some("Act A art. 1"),
            subject: Some("alice"),
        };
        // A made-up consent id is not rescued by a legal basis beside it.
        assert_eq!(
            decide(&terms, &right, &asked).unwrap_err().kind,
            FaultKind::ConsentRequired
        );
        let asked = Asked {
            consent: Claim::Absent,
            ..asked
        };
        assert_eq!(
            decide(&terms, &right, &asked),
            Ok(Ground::LegalBasis("Act A art. 1".into()))
        );
    }
}
