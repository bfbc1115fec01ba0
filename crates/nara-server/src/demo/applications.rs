//! A year of the demo country's applications: residents who apply to the
//! demo services on working days, officials who move the cases through each
//! service's own workflow (asking for more, deciding within or past the
//! deadline), cases still open in every state, and the ratings applicants
//! gave. Generated deterministically, so that statistics, queues, charts and
//! timelines are not empty the first time someone opens them.
//!
//! Every application passes the checks a live one does: its answers pass
//! `check_answers`, its evidence comes from the demo registries' records of
//! its applicant, and the eligibility rule holds. A file answer is one
//! generated PDF (`attachment.pdf`, stored like any upload) where the field
//! takes PDFs; a service that requires another kind of file, or a group of
//! entries, is left out.

use std::collections::{BTreeMap, HashSet};

use nara_core::identity::{AccountKind, Grant, Role};
use nara_core::service_def::{self, Definition, END_STATES, Field};
use nara_store::Store;
use nara_store::applications::{Application, PastApplication, PastStep, Upload};
use nara_store::identity::NewAccount;
use serde_json::{Map, Value};

use super::{REGISTRIES, Rng, demo_record, demo_subject};
use crate::identity::auth::IdentityKeys;

/// Residents with an account who apply (registry people 2.. are "Resident n").
pub const RESIDENTS: u64 = 120;
const DAY_MS: i64 = 86_400_000;
/// A resident account's password hash: not a PHC string, so no password
/// ever matches it (these fictional people never sign in).
const NO_PASSWORD: &str = "!demo-resident";

/// Who applies: the registry's index of the person, their account, name.
struct Applicant {
    index: u64,
    account: i64,
    name: String,
    birth: String,
    /// One of the demo's own citizens (minji, junho), who rate themselves.
    demo_citizen: bool,
    /// The keyed hash of their resident registration number.
    subject_hash: String,
}

/// The file behind every generated file answer.
const ATTACHMENT: &[u8] = include_bytes!("attachment.pdf");

/// A stored file that answers take: its content address and size.
#[derive(Clone)]
struct Attachment {
    hash: String,
    size: i64,
}

/// Writes the year unless it is there (`resident.000` exists), its one
/// attachment into `data`'s upload store; returns how many applications
/// were written.
pub async fn ensure_applications(
    store: &Store,
    keys: &IdentityKeys,
    data: &std::path::Path,
    today_ms: i64,
) -> anyhow::Result<usize> {
    if store.account_by_username("resident.000").await?.is_some() {
        return Ok(0);
    }
    let attachment = Attachment {
        hash: crate::citizen::uploads::store_bytes(data, ATTACHMENT).await?,
        size: ATTACHMENT.len() as i64,
    };
    let mut applicants = Vec::new();
    let hash = |rrn: &str| -> anyhow::Result<String> {
        Ok(keys.national_id_hash(&nara_core::identity::normalize_national_id(rrn)?))
    };
    for (index, username, name, birth, rrn) in [
        (0, "minji", "Kim Minji", "1990-01-01", "900101-2345678"),
        (1, "junho", "Lee Junho", "1985-03-15", "850315-1234567"),
    ] {
        if let Some(a) = store.account_by_username(username).await? {
            applicants.push(Applicant {
                index,
                account: a.id,
                name: name.into(),
                birth: birth.into(),
                demo_citizen: true,
                subject_hash: hash(rrn)?,
            });
        }
    }
    for n in 0..RESIDENTS {
        let (rrn, birth) = demo_subject(n);
        let account = store
            .create_account(
                &NewAccount {
                    kind: AccountKind::Citizen,
                    username: format!("resident.{n:03}"),
                    display_name: format!("Resident {n}"),
                    national_id_hash: Some(hash(&rrn)?),
                    agency: None,
                    password_hash: NO_PASSWORD.into(),
                    totp_secret: None,
                    grants: vec![Grant::new(Role::Citizen, None)?],
                },
                "demo",
            )
            .await?;
        applicants.push(Applicant {
            index: n + 2,
            account: account.id,
            name: format!("Resident {n}"),
            birth,
            demo_citizen: false,
            subject_hash: hash(&rrn)?,
        });
    }
    // The staff who act, by agency and step role.
    let mut staff: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (agency, by, username) in [
        ("KR/GOV/MOIS", "official", "official.mois"),
        ("KR/GOV/NTS", "official", "official.nts"),
        ("KR/GOV/MOHW", "official", "official.mohw"),
        ("KR/GOV/MOHW", "reviewer", "reviewer.mohw"),
        ("KR/GOV/MOE", "official", "official.moe"),
        ("KR/GOV/KNPA", "official", "official.knpa"),
        ("KR/GOV/KNPA", "security_analyst", "analyst"),
        ("KR/LOC/SEOUL", "official", "official.seoul"),
    ] {
        if let Some(a) = store.account_by_username(username).await? {
            staff.insert((agency.into(), by.into()), a.id);
        }
    }
    let mut defs = Vec::new();
    for (_, source) in service_def::DEMO {
        let def = service_def::check(source)
            .map_err(|p| anyhow::anyhow!("a demo service definition: {p:?}"))?;
        let published = !store
            .definition_versions(def.code.get_ref())
            .await?
            .is_empty();
        if published && takes_part(&def) {
            defs.push(def);
        }
    }
    let history = generate(&defs, &applicants, &staff, &attachment, today_ms);
    for chunk in history.chunks(200) {
        store.insert_history(chunk).await?;
    }
    fetched(store, keys, &defs, &applicants, &history).await?;
    Ok(history.len())
}

/// The evidence of each application, fetched through the exchange minutes
/// before it was submitted: the portal's message-log records (signed by the
/// gateway, the application's reference as their issue) and, where the
/// evidence needs it, the applicant's consent, valid 30 days. So a
/// citizen's data-access history and consents match their applications.
async fn fetched(
    store: &Store,
    keys: &IdentityKeys,
    defs: &[Definition],
    applicants: &[Applicant],
    history: &[PastApplication],
) -> anyhow::Result<()> {
    let gateway = keys.gateway_key();
    let mut rng = Rng(0x6e61_7261_6665_7463);
    let (mut records, mut consents) = (Vec::new(), Vec::new());
    for p in history {
        let (Some(def), Some(who), Some(submitted)) = (
            defs.iter()
                .find(|d| *d.code.get_ref() == p.app.service_code),
            applicants.iter().find(|a| a.account == p.app.account_id),
            p.app.submitted_at,
        ) else {
            continue;
        };
        for e in &def.evidence {
            let at = submitted - 60_000 - rng.below(10 * 60_000) as i64;
            let legal_basis = e.legal_basis.as_ref().map(|b| b.get_ref().clone());
            let consent = match legal_basis {
                Some(_) => String::new(),
                None => {
                    let id = format!(
                        "cns_{:032x}",
                        u128::from(rng.next()) << 64 | u128::from(rng.next())
                    );
                    consents.push(nara_store::exchange::Consent {
                        id: id.clone(),
                        account_id: who.account,
                        subject_hash: who.subject_hash.clone(),
                        client_agency: def.agency.get_ref().clone(),
                        service_id: e.service.get_ref().clone(),
                        purpose: e.purpose.get_ref().clone(),
                        granted_at: at,
                        expires_at: at + 30 * DAY_MS,
                        revoked_at: None,
                    });
                    id
                }
            };
            records.push(super::past_exchange(
                &gateway,
                super::PastExchange {
                    xroad_id: format!("{}-{}", p.app.reference, e.id.get_ref()),
                    request_id: format!(
                        "{:032x}",
                        u128::from(rng.next()) << 64 | u128::from(rng.next())
                    ),
                    client: format!("{}/portal", def.agency.get_ref()),
                    service: e.service.get_ref().clone(),
                    purpose: e.purpose.get_ref().clone(),
                    consent,
                    legal_basis: legal_basis.unwrap_or_default(),
                    subject_hash: who.subject_hash.clone(),
                    issue: p.app.reference.clone(),
                    at,
                    duration_us: 900 + rng.below(8_000) as i64,
                },
            ));
        }
    }
    for chunk in consents.chunks(500) {
        store.grant_consents(chunk).await?;
    }
    for chunk in records.chunks(500) {
        store.append_exchanges(chunk).await?;
    }
    Ok(())
}

/// Whether a service can be in the history: nothing required that a
/// generated answer cannot give (a file other than a PDF, a group).
fn takes_part(def: &Definition) -> bool {
    def.pages.iter().flat_map(|p| &p.fields).all(|f| {
        !f.required
            || match f.kind.get_ref().as_str() {
                "file" => takes_pdf(f),
                "group" => false,
                _ => true,
            }
    })
}

fn takes_pdf(f: &Field) -> bool {
    f.accept.iter().any(|a| a.get_ref() == "application/pdf")
}

/// Applications a day on a working day, by service (the certificate is
/// automatic and the most used; a petition is rare).
fn daily(code: &str) -> (u64, u64) {
    match code {
        "resident-registration-certificate" => (3, 5),
        "disability-benefit" => (1, 3),
        "extended-hour-school-enrolment" => (1, 2),
        "phishing-report" => (1, 3),
        "grooming-report" => (0, 1),
        _ => (0, 2),
    }
}

fn generate(
    defs: &[Definition],
    applicants: &[Applicant],
    staff: &BTreeMap<(String, String), i64>,
    attachment: &Attachment,
    today_ms: i64,
) -> Vec<PastApplication> {
    let mut rng = Rng(0x6e61_7261_7965_6172);
    let midnight = today_ms - today_ms.rem_euclid(DAY_MS);
    let mut references = HashSet::new();
    let mut out = Vec::new();
    for day in (0..=super::HISTORY_DAYS).rev() {
        let start = midnight - day * DAY_MS;
        let working = nara_core::calendar::is_working_day((start + 9 * 3_600_000) / DAY_MS);
        for def in defs {
            let (base, spread) = daily(def.code.get_ref());
            let count = if working {
                base + rng.below(spread + 1)
            } else {
                u64::from(rng.chance(15))
            };
            for _ in 0..count {
                // 09:00–21:00 KST is 00:00–12:00 UTC; not after now.
                let at = start + rng.below(12 * 3_600_000) as i64;
                if at >= today_ms {
                    continue;
                }
                if let Some(p) = one(def, applicants, staff, attachment, at, today_ms, &mut rng)
                    && references.insert(p.app.reference.clone())
                {
                    out.push(p);
                }
            }
        }
    }
    // The newest cases are open, some in each state a person still has to
    // act in: each stops there.
    let mut held = HashSet::new();
    for def in defs {
        for open in open_states(def) {
            let mut n = 0;
            for p in out.iter_mut().rev() {
                if n == 3
                    || p.app
                        .submitted_at
                        .is_some_and(|s| s < midnight - 30 * DAY_MS)
                {
                    break;
                }
                if p.app.service_code == *def.code.get_ref()
                    && !held.contains(&p.app.reference)
                    && hold_at(p, &open)
                {
                    held.insert(p.app.reference.clone());
                    n += 1;
                }
            }
        }
    }
    out
}

/// The states of `def`'s workflow a case can wait in: not an end, not one
/// the system leaves at once.
fn open_states(def: &Definition) -> Vec<String> {
    def.workflow
        .states
        .iter()
        .map(|s| s.get_ref().clone())
        .filter(|s| {
            let out: Vec<_> = def
                .workflow
                .transitions
                .iter()
                .filter(|t| t.from.get_ref() == s)
                .collect();
            !END_STATES.contains(&s.as_str())
                && !out.is_empty()
                && !out.iter().all(|t| t.by.get_ref() == "system")
        })
        .collect()
}

/// Cuts `p`'s past at its first arrival in `state`, if it passes there:
/// open again, undecided, unrated, held by whoever acted last.
fn hold_at(p: &mut PastApplication, state: &str) -> bool {
    let Some(i) = p.steps.iter().position(|s| s.to == state) else {
        return false;
    };
    p.steps.truncate(i + 1);
    let citizen = format!("account:{}", p.app.account_id);
    p.app.state = state.to_owned();
    p.app.updated_at = p.steps[i].at;
    p.app.decided_at = None;
    p.app.assigned_to = p
        .steps
        .iter()
        .rev()
        .find(|s| s.actor != citizen && s.actor != "system")
        .and_then(|s| s.actor.strip_prefix("account:")?.parse().ok());
    p.rating = None;
    true
}

/// One application to `def` submitted at `submitted`, moved through its
/// workflow as far as the time until `today` allows.
fn one(
    def: &Definition,
    applicants: &[Applicant],
    staff: &BTreeMap<(String, String), i64>,
    attachment: &Attachment,
    submitted: i64,
    today: i64,
    rng: &mut Rng,
) -> Option<PastApplication> {
    let agency = def.agency.get_ref();
    // The demo's own citizens apply now and then, never to an automatic
    // service (its document would be missing from their page).
    let (applicant, evidence) = (0..10).find_map(|_| {
        let pick = match rng.below(500) {
            0 if !def.automatic => applicants.iter().find(|a| a.index == 0),
            1 if !def.automatic => applicants.iter().find(|a| a.index == 1),
            _ => applicants
                .iter()
                .filter(|a| !a.demo_citizen)
                .nth(rng.below(RESIDENTS) as usize),
        }?;
        let evidence = evidence_of(def, pick);
        let value = |name: &str| service_def::condition_value(name, &Map::new(), &evidence);
        let eligible = def
            .eligible_if
            .as_ref()
            .is_none_or(|rule| rule.get_ref().expr.eval(&value));
        eligible.then_some((pick, evidence))
    })?;
    let answers = answers_for(def, &evidence, &attachment.hash, submitted, rng);
    let created_at = submitted - 300_000 - rng.below(3_600_000) as i64;
    // Each file answer's upload, attached while the form was filled in.
    let uploads = def
        .pages
        .iter()
        .flat_map(|p| &p.fields)
        .filter(|f| f.kind.get_ref() == "file" && answers.contains_key(f.id.get_ref()))
        .map(|f| Upload {
            application_id: 0,
            field: f.id.get_ref().clone(),
            hash: attachment.hash.clone(),
            media_type: "application/pdf".into(),
            size: attachment.size,
            scan: "not_scanned".into(),
            uploaded_at: created_at + 60_000,
        })
        .collect();
    let citizen = format!("account:{}", applicant.account);
    let sla = *def.workflow.sla_working_days.get_ref();
    let due = (!def.automatic).then(|| nara_core::calendar::add_working_days(submitted, sla));
    // A tenth of cases take far longer than the deadline allows.
    let slow = rng.chance(10);
    let step_ms = |rng: &mut Rng| {
        let days = f64::from(sla.max(1)) * (0.1 + rng.below(40) as f64 / 100.0);
        let days = if slow { days * 2.5 } else { days };
        (days * DAY_MS as f64) as i64 + rng.below(6 * 3_600_000) as i64
    };
    let mut steps = vec![PastStep {
        to: "submitted".into(),
        actor: citizen.clone(),
        at: submitted,
        reason: String::new(),
    }];
    let mut state = "submitted".to_owned();
    let mut at = submitted;
    let mut asked_more = false;
    let mut assigned = None;
    while !END_STATES.contains(&state.as_str()) {
        let options: Vec<_> = def
            .workflow
            .transitions
            .iter()
            .filter(|t| *t.from.get_ref() == state)
            .collect();
        let weight =
            |t: &&service_def::Transition| match (t.by.get_ref().as_str(), t.to.get_ref().as_str())
            {
                ("citizen", _) => 10,
                (_, "rejected") => 2,
                (_, to) if to.contains("info") => u64::from(!asked_more) * 2,
                _ => 6,
            };
        let total: u64 = options.iter().map(weight).sum();
        if total == 0 {
            break;
        }
        let mut pick = rng.below(total);
        let Some(t) = options.iter().find(|t| {
            let w = weight(t);
            if pick < w {
                true
            } else {
                pick -= w;
                false
            }
        }) else {
            break;
        };
        let by = t.by.get_ref().as_str();
        let next = match by {
            "system" => at,
            // Most answer within days; some take weeks.
            "citizen" if rng.chance(70) => at + DAY_MS / 2 + rng.below(3 * DAY_MS as u64) as i64,
            "citizen" => at + 3 * DAY_MS + rng.below(12 * DAY_MS as u64) as i64,
            // A new case waits in the queue before anyone opens it.
            _ if state == "submitted" => {
                at + step_ms(rng) + rng.below(u64::from(sla.max(1)) * DAY_MS as u64 * 3 / 10) as i64
            }
            _ => at + step_ms(rng),
        };
        // Still waiting for this step: the case is open in `state`.
        if next >= today {
            break;
        }
        let actor = match by {
            "system" => "system".to_owned(),
            "citizen" => citizen.clone(),
            role => {
                let id = staff
                    .get(&(agency.clone(), role.to_owned()))
                    .or_else(|| staff.get(&(agency.clone(), "official".to_owned())))?;
                assigned = Some(*id);
                format!("account:{id}")
            }
        };
        let reason = if t.reasons.is_empty() {
            String::new()
        } else {
            t.reasons[rng.below(t.reasons.len() as u64) as usize]
                .get_ref()
                .clone()
        };
        asked_more |= t.to.get_ref().contains("info");
        state = t.to.get_ref().clone();
        at = next;
        steps.push(PastStep {
            to: state.clone(),
            actor,
            at,
            reason,
        });
    }
    let decided = END_STATES.contains(&state.as_str()).then_some(at);
    // Most applicants who hear back do not rate; those who do are kinder when
    // approved and on time. The demo's own citizens rate for themselves.
    let rating = decided
        .filter(|_| !applicant.demo_citizen && rng.chance(55))
        .map(|d| {
            let late = due.is_some_and(|due| d > due);
            let base: i64 = match state.as_str() {
                "approved" | "closed" => 4,
                _ => 2,
            };
            let score =
                (base + rng.below(2) as i64 - i64::from(late) - i64::from(asked_more)).clamp(1, 5);
            (
                score,
                (d + DAY_MS / 4 + rng.below(2 * DAY_MS as u64) as i64).min(today - 1),
            )
        });
    let code = agency.rsplit('/').next().unwrap_or(agency);
    let year = &nara_core::Timestamp(submitted).rfc3339()[..4];
    Some(PastApplication {
        app: Application {
            id: 0,
            reference: format!("{code}-{year}-{:08}", rng.below(100_000_000)),
            service_code: def.code.get_ref().clone(),
            version: i64::from(*def.version.get_ref()),
            agency_id: agency.clone(),
            account_id: applicant.account,
            state,
            answers: Value::Object(answers).to_string(),
            evidence: Value::Object(evidence).to_string(),
            created_at,
            updated_at: at,
            submitted_at: Some(submitted),
            due_at: due,
            decided_at: decided,
            assigned_to: assigned,
        },
        steps,
        rating,
        uploads,
    })
}

/// What the exchange would have fetched: the minimal view of the
/// applicant's record in each registry the service names.
fn evidence_of(def: &Definition, who: &Applicant) -> Map<String, Value> {
    let mut evidence = Map::new();
    for e in &def.evidence {
        let Some(plan) = REGISTRIES
            .iter()
            .find(|r| r.service_id() == *e.service.get_ref())
        else {
            continue;
        };
        let record = demo_record(plan, who.index, &who.name, &who.birth);
        let fields: Vec<String> = e.fields.iter().map(|f| f.get_ref().clone()).collect();
        evidence.insert(
            e.id.get_ref().clone(),
            nara_core::exchange::minimal_view(record, &fields),
        );
    }
    evidence
}

/// Answers of each field's type and bounds; optional fields answered about
/// half the time; fields a condition hides left out.
fn answers_for(
    def: &Definition,
    evidence: &Map<String, Value>,
    attachment: &str,
    submitted: i64,
    rng: &mut Rng,
) -> Map<String, Value> {
    let fields: Vec<&Field> = def.pages.iter().flat_map(|p| &p.fields).collect();
    let mut answers = Map::new();
    for f in &fields {
        if !f.required && !rng.chance(50) {
            continue;
        }
        if let Some(v) = sample(f, attachment, submitted, rng) {
            answers.insert(f.id.get_ref().clone(), v);
        }
    }
    // A field shown only for another's answer: dropped while hidden (twice,
    // for a condition on a field that was itself hidden).
    for _ in 0..2 {
        let hidden: Vec<String> = fields
            .iter()
            .filter(|f| {
                f.visible_if.as_ref().is_some_and(|c| {
                    let value = |n: &str| service_def::condition_value(n, &answers, evidence);
                    !c.get_ref().expr.eval(&value)
                })
            })
            .map(|f| f.id.get_ref().clone())
            .collect();
        for id in hidden {
            answers.remove(&id);
        }
    }
    answers
}

const SENDERS: &[&str] = &[
    "010-5821-3390",
    "010-7714-0268",
    "070-4410-8823",
    "+82 10-3381-0475",
    "1588-0000 Delivery",
    "010-2293-6617",
];

const LURES: &[&str] = &[
    "[Web발신] 택배 주소 불일치로 배송이 보류되었습니다. 주소 확인: http://parcel-redelivery.example/kr",
    "Your bank account is locked. Verify within 24 hours: http://secure-bank-login.example/verify",
    "[정부지원금] 긴급생활지원금 신청 대상입니다. 신청: http://gov-support-fund.example/apply",
    "엄마 나 폰 액정 깨져서 임시폰이야. 이 번호로 문자 줘",
    "Traffic fine unpaid. Pay now to avoid penalty: http://police-fine-pay.example/kr",
    "건강검진 결과 안내: http://health-checkup-result.example/view",
];

/// Chat excerpts a parent or teacher might report: half of them an adult
/// grooming a child, half ordinary chats that worried someone. Written for
/// the demo, like the grooming model's generated corpus; no real chat.
const CHATS: &[&str] = &[
    "너 진짜 어른스럽다 또래랑 달라. 집에 혼자 있는 시간 많아. 우리 얘기는 부모님한테 비밀로 하자. 게임 아이템 사줄게 사진 한 장만 보내줘",
    "내일 수학 숙제 몇 쪽까지야. 삼십 쪽까지래 같이 하자. 토요일에 축구 몇 시야. 열 시 운동장",
    "Eres muy madura para tu edad. A qué hora vuelven tus padres. Esto queda entre nosotros no se lo cuentes a nadie. Te mando saldo si me mandas una foto",
    "Mañana hay examen de ciencias. Sí estudiamos juntos en la biblioteca. Mi madre nos lleva a las cinco",
    "오빠가 너 제일 잘 이해해. 몇 살이야 학교는 어디 다녀. 다른 앱으로 옮겨서 얘기하자. 주말에 단둘이 만날래",
    "Nunca había hablado con alguien tan especial. Borra nuestros mensajes cuando termines. Podemos vernos el sábado tú sola",
];

const HANDLES: &[&str] = &[
    "sky_star07",
    "겨울바다_22",
    "chico.gamer99",
    "별빛오빠",
    "luna_dulce_12",
];

/// One field's answer, or none for what cannot be generated (a file that
/// is not a PDF, a group).
fn sample(f: &Field, attachment: &str, submitted: i64, rng: &mut Rng) -> Option<Value> {
    const SENTENCES: &[&str] = &[
        "The crossing near the senior centre has no signal and cars do not slow down.",
        "A text message claimed to be from my bank and asked me to install an app.",
        "Opening hours are needed until 19:00 because both parents work.",
        "Please contact me by phone in the afternoon.",
        "Details as discussed with the district office.",
    ];
    let id = f.id.get_ref().as_str();
    let (min, max) = (f.min.unwrap_or(0), f.max);
    let text = |s: String| -> Value {
        let mut s = s;
        while (s.chars().count() as i64) < min {
            s.push_str(" (see above)");
        }
        if let Some(max) = max {
            s = s.chars().take(max as usize).collect();
        }
        Value::String(s)
    };
    let value = match f.kind.get_ref().as_str() {
        "text" if id.contains("account") => text(format!(
            "{:03}-{:03}-{:06}",
            100 + rng.below(900),
            rng.below(1000),
            rng.below(1_000_000)
        )),
        // A phishing report names one of a few running campaigns, as real
        // reports do (the blocklist counts them); `.example` hosts only.
        "text" if id == "sender" => text(SENDERS[rng.below(SENDERS.len() as u64) as usize].into()),
        "text" if id == "content" => text(LURES[rng.below(LURES.len() as u64) as usize].into()),
        // A grooming report: a chat excerpt, some grooming and some not,
        // in Korean and Spanish, and the handle it came from.
        "text" if id == "excerpt" => text(CHATS[rng.below(CHATS.len() as u64) as usize].into()),
        "text" if id == "handle" => text(HANDLES[rng.below(HANDLES.len() as u64) as usize].into()),
        "text" if id.contains("phone") => text(format!(
            "010-{:04}-{:04}",
            rng.below(10_000),
            rng.below(10_000)
        )),
        "text" if id.contains("name") => text(
            ["Kim Yuna", "Park Jisoo", "Choi Minho", "Lee Seojin"][rng.below(4) as usize].into(),
        ),
        "text" if id.contains("school") => text(
            [
                "Hanbit Elementary School",
                "Mapo Elementary School",
                "Seoul Saessak School",
            ][rng.below(3) as usize]
                .into(),
        ),
        "text" => text(SENTENCES[rng.below(SENTENCES.len() as u64) as usize].into()),
        "address" => text(format!(
            "{} {}-ro {}",
            ["Jongno-gu", "Mapo-gu", "Gangnam-gu", "Nowon-gu"][rng.below(4) as usize],
            10 + rng.below(90),
            1 + rng.below(40)
        )),
        "number" => {
            let lo = f.min.unwrap_or(0).max(0);
            let hi = f.max.unwrap_or(lo + 500_000).max(lo);
            Value::from(lo + rng.below((hi - lo + 1) as u64) as i64)
        }
        "date" => {
            // Within the month before submitting.
            let day = submitted - rng.below(30) as i64 * DAY_MS;
            Value::String(nara_core::Timestamp(day).rfc3339()[..10].to_owned())
        }
        "choice" if !f.options.is_empty() => Value::String(
            f.options[rng.below(f.options.len() as u64) as usize]
                .get_ref()
                .clone(),
        ),
        "national_id" => Value::String(demo_subject(500 + rng.below(400)).0),
        "yes_no" => Value::String(if rng.chance(30) { "yes" } else { "no" }.into()),
        "file" if takes_pdf(f) => Value::String(attachment.to_owned()),
        _ => return None,
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applicants() -> Vec<Applicant> {
        (0..RESIDENTS + 2)
            .map(|index| {
                let (_, birth) = demo_subject(index.saturating_sub(2));
                Applicant {
                    index,
                    account: index as i64 + 100,
                    name: format!("Resident {index}"),
                    birth,
                    demo_citizen: index < 2,
                    subject_hash: String::new(),
                }
            })
            .collect()
    }

    fn defs() -> Vec<Definition> {
        service_def::DEMO
            .iter()
            .map(|(_, s)| service_def::check(s).unwrap())
            .filter(takes_part)
            .collect()
    }

    fn staff() -> BTreeMap<(String, String), i64> {
        let mut staff = BTreeMap::new();
        for agency in [
            "KR/GOV/MOIS",
            "KR/GOV/NTS",
            "KR/GOV/MOHW",
            "KR/GOV/MOE",
            "KR/GOV/KNPA",
            "KR/LOC/SEOUL",
        ] {
            staff.insert((agency.to_owned(), "official".to_owned()), 7);
        }
        staff
    }

    const TODAY: i64 = 1_796_000_000_000; // 2026-11-29

    /// The year is the same on every machine, every answer passes the
    /// checks a live submission does, every state is reached, and the
    /// timeline is in order.
    #[test]
    fn a_year_of_applications_is_deterministic_valid_and_varied() {
        let (defs, people, staff) = (defs(), applicants(), staff());
        let file = Attachment {
            hash: format!("sha256:{}", "ab".repeat(32)),
            size: ATTACHMENT.len() as i64,
        };
        let year = generate(&defs, &people, &staff, &file, TODAY);
        let again = generate(&defs, &people, &staff, &file, TODAY);
        assert_eq!(year.len(), again.len());
        assert!(year.iter().zip(&again).all(|(a, b)| a.app == b.app));
        assert!(year.len() > 1_000, "{} applications", year.len());
        let mut states: BTreeMap<(String, String), usize> = BTreeMap::new();
        let (mut late, mut on_time, mut rated) = (0, 0, 0);
        for p in &year {
            let def = defs
                .iter()
                .find(|d| *d.code.get_ref() == p.app.service_code)
                .unwrap();
            let answers: Map<String, Value> = serde_json::from_str(&p.app.answers).unwrap();
            let evidence: Map<String, Value> = serde_json::from_str(&p.app.evidence).unwrap();
            let problems = service_def::check_answers(def, None, &answers, &Map::new());
            assert!(problems.is_empty(), "{}: {problems:?}", p.app.service_code);
            if let Some(rule) = &def.eligible_if {
                let value = |n: &str| service_def::condition_value(n, &answers, &evidence);
                assert!(rule.get_ref().expr.eval(&value), "eligible");
            }
            assert!(p.steps.windows(2).all(|w| w[0].at <= w[1].at), "in order");
            assert!(p.steps.last().unwrap().at < TODAY);
            assert_eq!(p.steps.last().unwrap().to, p.app.state);
            *states
                .entry((p.app.service_code.clone(), p.app.state.clone()))
                .or_default() += 1;
            if let (Some(d), Some(due)) = (p.app.decided_at, p.app.due_at) {
                if d > due { late += 1 } else { on_time += 1 }
            }
            if let Some((score, at)) = p.rating {
                assert!((1..=5).contains(&score));
                assert!(at >= p.app.decided_at.unwrap());
                rated += 1;
            }
        }
        // Every state a case can wait in holds some, and every end state.
        for def in &defs {
            let ends = def
                .workflow
                .states
                .iter()
                .map(|s| s.get_ref().clone())
                .filter(|s| END_STATES.contains(&s.as_str()));
            for s in open_states(def).into_iter().chain(ends) {
                let n = states.get(&(def.code.get_ref().clone(), s.clone()));
                assert!(n.is_some(), "{} has none in {s}", def.code.get_ref());
            }
        }
        assert!(
            late > 20 && on_time > late * 3,
            "late {late}, on time {on_time}"
        );
        assert!(rated > 200, "{rated} rated");
        // The demo's citizens have a few of their own, none automatic.
        let minji: Vec<_> = year.iter().filter(|p| p.app.account_id == 100).collect();
        assert!((3..40).contains(&minji.len()), "minji has {}", minji.len());
        assert!(
            minji
                .iter()
                .all(|p| p.app.service_code != "resident-registration-certificate")
        );
    }
}
