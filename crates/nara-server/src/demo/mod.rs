//! Demo accounts for every role and a sample agency app, so that people,
//! scripts and tests can sign in to `nara demo` at once. Made on first start
//! and written to `DATA_DIR/demo-accounts.json` (mode 0600); later starts
//! reuse the file.

use std::path::Path;
use std::time::Duration;

use nara_core::MemberId;
use nara_core::identity::{AccountKind, Grant, Role};
use nara_store::Store;
use nara_store::exchange::NewAccessRight;
use nara_store::identity::NewAccount;
use nara_store::oidc::Client;
use serde::{Deserialize, Serialize};

use crate::identity::auth::{self, IdentityKeys, PasswordWork, digest};

mod applications;
pub use applications::{RESIDENTS, ensure_applications};

/// One demo account as written to `demo-accounts.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoAccount {
    pub role: String,
    pub username: String,
    pub password: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<String>,
    /// For the operator: an API token with every scope, valid 30 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
}

/// The sample agency app, registered for the first agency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoApp {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub agency: String,
}

pub const SAMPLE_APP_REDIRECT: &str = "http://127.0.0.1:8090/callback";

/// Where an agency-scoped demo account works.
enum Home {
    None,
    /// One of the first two agencies, whatever the catalogue holds.
    Pick(usize),
    /// A named agency, when the catalogue has it (the national seed does):
    /// the demo services' own officials, so every demo service can be
    /// decided and its documents revoked.
    Named(&'static str),
}

struct Plan {
    role: Role,
    username: &'static str,
    display_name: &'static str,
    kind: AccountKind,
    /// The agency of an agency-scoped role.
    agency: Home,
    extra: &'static [Role],
    national_id: Option<&'static str>,
}

const PLANS: &[Plan] = &[
    Plan {
        role: Role::Citizen,
        username: "minji",
        display_name: "김민지 Kim Minji",
        kind: AccountKind::Citizen,
        agency: Home::None,
        extra: &[],
        national_id: Some("900101-2345678"),
    },
    Plan {
        role: Role::Citizen,
        username: "junho",
        display_name: "이준호 Lee Junho",
        kind: AccountKind::Citizen,
        agency: Home::None,
        extra: &[],
        national_id: Some("850315-1234567"),
    },
    Plan {
        role: Role::Official,
        username: "official.a",
        display_name: "박서연 Park Seoyeon",
        kind: AccountKind::Official,
        agency: Home::Pick(0),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::AgencyAdmin,
        username: "admin.a",
        display_name: "최도윤 Choi Doyun",
        kind: AccountKind::Official,
        agency: Home::Pick(0),
        extra: &[Role::Official],
        national_id: None,
    },
    Plan {
        role: Role::ServiceDesigner,
        username: "designer.a",
        display_name: "정하은 Jung Haeun",
        kind: AccountKind::Official,
        agency: Home::Pick(0),
        extra: &[Role::Official],
        national_id: None,
    },
    Plan {
        role: Role::Official,
        username: "official.b",
        display_name: "강민준 Kang Minjun",
        kind: AccountKind::Official,
        agency: Home::Pick(1),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::AgencyAdmin,
        username: "admin.b",
        display_name: "윤지우 Yoon Jiwoo",
        kind: AccountKind::Official,
        agency: Home::Pick(1),
        extra: &[Role::Official],
        national_id: None,
    },
    Plan {
        role: Role::Operator,
        username: "operator",
        display_name: "Platform Operator",
        kind: AccountKind::Operator,
        agency: Home::None,
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::SecurityAnalyst,
        username: "analyst",
        display_name: "Security Analyst",
        kind: AccountKind::Operator,
        agency: Home::None,
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::Auditor,
        username: "auditor",
        display_name: "Auditor",
        kind: AccountKind::Official,
        agency: Home::None,
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::Official,
        username: "official.mois",
        display_name: "한지민 Han Jimin",
        kind: AccountKind::Official,
        agency: Home::Named("KR/GOV/MOIS"),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::Official,
        username: "official.nts",
        display_name: "오세훈 Oh Sehun",
        kind: AccountKind::Official,
        agency: Home::Named("KR/GOV/NTS"),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::Official,
        username: "official.mohw",
        display_name: "서지호 Seo Jiho",
        kind: AccountKind::Official,
        agency: Home::Named("KR/GOV/MOHW"),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::Official,
        username: "reviewer.mohw",
        display_name: "임수아 Lim Sua",
        kind: AccountKind::Official,
        agency: Home::Named("KR/GOV/MOHW"),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::Official,
        username: "official.moe",
        display_name: "문가영 Moon Gayoung",
        kind: AccountKind::Official,
        agency: Home::Named("KR/GOV/MOE"),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::Official,
        username: "official.knpa",
        display_name: "윤도현 Yoon Dohyun",
        kind: AccountKind::Official,
        agency: Home::Named("KR/GOV/KNPA"),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::Official,
        username: "reviewer.knpa",
        display_name: "배수지 Bae Suji",
        kind: AccountKind::Official,
        agency: Home::Named("KR/GOV/KNPA"),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::Official,
        username: "official.seoul",
        display_name: "장예준 Jang Yejun",
        kind: AccountKind::Official,
        agency: Home::Named("KR/LOC/SEOUL"),
        extra: &[],
        national_id: None,
    },
];

/// A readable random password: four groups of five letters and digits.
fn demo_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..4)
        .map(|_| {
            (0..5)
                .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Creates the demo accounts and sample app if `demo-accounts.json` does not
/// exist yet in `data`; returns what the file holds either way.
pub async fn ensure(
    store: &Store,
    keys: &IdentityKeys,
    data: &Path,
) -> anyhow::Result<(Vec<DemoAccount>, DemoApp)> {
    let accounts_path = data.join("demo-accounts.json");
    let app_path = data.join("demo-app.json");
    if let (Ok(a), Ok(b)) = (
        std::fs::read_to_string(&accounts_path),
        std::fs::read_to_string(&app_path),
    ) {
        return Ok((serde_json::from_str(&a)?, serde_json::from_str(&b)?));
    }
    let agencies = store.all_agencies().await?;
    let pick: Vec<MemberId> = agencies.iter().take(2).map(|a| a.id.clone()).collect();
    anyhow::ensure!(pick.len() == 2, "the demo needs two agencies");
    let passwords = PasswordWork::default();
    let mut out = Vec::new();
    for plan in PLANS {
        let agency = match plan.agency {
            Home::None => None,
            Home::Pick(i) => Some(pick[i].clone()),
            Home::Named(id) => match agencies.iter().find(|a| a.id.as_str() == id) {
                Some(a) => Some(a.id.clone()),
                None => continue,
            },
        };
        let password = demo_password();
        let staff = plan.kind != AccountKind::Citizen;
        let totp_secret = staff.then(auth::new_totp_secret);
        let mut grants = vec![Grant::new(plan.role, agency.clone())?];
        for r in plan.extra {
            grants.push(Grant::new(
                *r,
                r.agency_scoped().then(|| agency.clone()).flatten(),
            )?);
        }
        let account = store
            .create_account(
                &NewAccount {
                    kind: plan.kind,
                    username: plan.username.into(),
                    display_name: plan.display_name.into(),
                    national_id_hash: plan
                        .national_id
                        .map(nara_core::identity::normalize_national_id)
                        .transpose()?
                        .map(|n| keys.national_id_hash(&n)),
                    agency: agency.clone(),
                    password_hash: passwords
                        .hash(&password)
                        .await
                        .map_err(|_| anyhow::anyhow!("hashing a demo password"))?,
                    // Set below, sealed, with its recovery codes.
                    totp_secret: None,
                    grants,
                },
                "demo",
            )
            .await?;
        if let Some(secret) = &totp_secret {
            let codes: Vec<String> = auth::new_recovery_codes()
                .iter()
                .map(|c| digest(&auth::normalize_recovery_code(c)))
                .collect();
            let sealed = keys
                .seal_totp(secret)
                .ok_or_else(|| anyhow::anyhow!("sealing a TOTP secret"))?;
            store
                .set_second_factor(account.id, Some(&sealed), &codes)
                .await?;
        }
        let api_token = if plan.role == Role::Operator {
            Some(
                auth::issue_api_token(
                    store,
                    account.id,
                    "demo",
                    auth::SCOPES,
                    Duration::from_secs(30 * 86_400),
                )
                .await?,
            )
        } else {
            None
        };
        out.push(DemoAccount {
            role: plan.role.as_str().into(),
            username: plan.username.into(),
            password,
            agency: agency.map(|a| a.to_string()),
            totp_secret,
            api_token,
        });
    }
    let secret = auth::random_secret("nara_cs_");
    let app = DemoApp {
        client_id: "app_sample_agency".into(),
        client_secret: secret.clone(),
        redirect_uri: SAMPLE_APP_REDIRECT.into(),
        agency: pick[0].to_string(),
    };
    store
        .register_client(
            &Client {
                client_id: app.client_id.clone(),
                agency: pick[0].clone(),
                name: "Sample agency app".into(),
                redirect_uris: vec![SAMPLE_APP_REDIRECT.into()],
                secret_hash: Some(digest(&secret)),
                created_at: nara_core::Timestamp::now(),
                revoked: false,
            },
            "demo",
        )
        .await?;
    crate::keyfile::write_private(&accounts_path, &serde_json::to_string_pretty(&out)?)?;
    crate::keyfile::write_private(&app_path, &serde_json::to_string_pretty(&app)?)?;
    Ok((out, app))
}

// ------------------------------------------------------------ the exchange

/// Grants one of the demo's own rights, or brings an existing one's purposes
/// and legal bases up to date (a demo directory started by an older nara).
pub async fn grant_or_update(store: &Store, right: &NewAccessRight<'_>) -> anyhow::Result<()> {
    match store.grant_access(right, "demo").await {
        Ok(()) => Ok(()),
        Err(nara_store::StoreError::Conflict(_)) => {
            store.set_access_bases(right, "demo").await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The demo's exchange: registries, data services, access rights and a
/// client system's key, written to `DATA_DIR/demo-exchange.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoExchange {
    /// The client subsystem (`KR/LOC/SEOUL/welfare-portal`).
    pub client: String,
    /// Its RFC 9421 key id and Ed25519 private key (32-byte seed, base64url).
    pub key_id: String,
    pub private_key: String,
    /// The residents registry's service, which the client may call.
    pub residents_service: String,
    /// Resident registration numbers of the demo citizens (fictional).
    pub subjects: Vec<String>,
}

/// A hosted registry of the demo: owner, code, title, schema and the data
/// service that serves it.
pub struct RegistryPlan {
    pub agency: &'static str,
    pub subsystem: &'static str,
    pub code: &'static str,
    pub service: &'static str,
    pub title: &'static str,
    pub purposes: &'static str,
    pub legal_bases: &'static str,
    /// (field, JSON type)
    pub fields: &'static [(&'static str, &'static str)],
}

pub const REGISTRIES: &[RegistryPlan] = &[
    RegistryPlan {
        agency: "KR/GOV/MOIS",
        subsystem: "resident-registry",
        code: "residents",
        service: "residents",
        title: "Resident register",
        purposes: "certificate-issuance benefit-eligibility school-enrolment public-safety",
        legal_bases: "Resident Registration Act art. 29\nElectronic Government Act art. 36",
        fields: &[
            ("name", "string"),
            ("birth_date", "string"),
            ("sex", "string"),
            ("address", "string"),
            ("household_head", "boolean"),
            ("moved_in", "string"),
        ],
    },
    RegistryPlan {
        agency: "KR/GOV/MOIS",
        subsystem: "family-registry",
        code: "family-relations",
        service: "family-relations",
        title: "Family relations register",
        purposes: "benefit-eligibility school-enrolment certificate-issuance",
        legal_bases: "Act on the Registration of Family Relationships art. 14",
        fields: &[
            ("spouse", "string"),
            ("children", "array"),
            ("parents", "array"),
        ],
    },
    RegistryPlan {
        agency: "KR/GOV/NTS",
        subsystem: "business-registry",
        code: "businesses",
        service: "businesses",
        title: "Business register",
        purposes: "business-licensing tax-administration benefit-eligibility",
        legal_bases: "Value-Added Tax Act art. 8",
        fields: &[
            ("business_number", "string"),
            ("trade_name", "string"),
            ("kind", "string"),
            ("opened", "string"),
            ("status", "string"),
        ],
    },
    RegistryPlan {
        agency: "KR/GOV/MOLIT",
        subsystem: "vehicle-registry",
        code: "vehicles",
        service: "vehicles",
        title: "Motor vehicle register",
        purposes: "vehicle-administration public-safety benefit-eligibility",
        legal_bases: "Motor Vehicle Management Act art. 7",
        fields: &[("vehicles", "array")],
    },
    RegistryPlan {
        agency: "KR/GOV/NTS",
        subsystem: "tax-registry",
        code: "tax-payment-status",
        service: "tax-payment-status",
        title: "Tax payment status",
        purposes: "tax-administration business-licensing benefit-eligibility",
        legal_bases: "Framework Act on National Taxes art. 81-13\nValue-Added Tax Act art. 8",
        fields: &[
            ("in_arrears", "boolean"),
            ("amount_due", "integer"),
            ("last_payment", "string"),
        ],
    },
    RegistryPlan {
        agency: "KR/GOV/MOHW",
        subsystem: "disability-registry",
        code: "disability-status",
        service: "disability-status",
        title: "Disability register",
        purposes: "benefit-eligibility",
        legal_bases: "Act on Welfare of Persons with Disabilities art. 32",
        fields: &[
            ("registered", "boolean"),
            ("degree", "string"),
            ("since", "string"),
        ],
    },
    RegistryPlan {
        agency: "KR/GOV/MOEL",
        subsystem: "employment-registry",
        code: "employment-status",
        service: "employment-status",
        title: "Employment insurance register",
        purposes: "employment-support benefit-eligibility school-enrolment",
        legal_bases: "Employment Insurance Act art. 15",
        fields: &[
            ("employed", "boolean"),
            ("employer", "string"),
            ("since", "string"),
            ("insured", "boolean"),
        ],
    },
];

impl RegistryPlan {
    pub fn service_id(&self) -> String {
        format!("{}/{}/{}", self.agency, self.subsystem, self.service)
    }

    /// The registry's JSON Schema.
    pub fn schema(&self) -> serde_json::Value {
        let properties: serde_json::Map<String, serde_json::Value> = self
            .fields
            .iter()
            .map(|(n, t)| ((*n).to_owned(), serde_json::json!({ "type": t })))
            .collect();
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.title,
            "type": "object",
            "additionalProperties": false,
            "properties": properties,
        })
    }

    /// The OpenAPI 3.1 description of its data service.
    pub fn openapi(&self) -> serde_json::Value {
        nara_core::exchange::registry_openapi(self.title, self.code, &self.schema())
    }
}

/// A deterministic, fictional record of `plan`'s registry for person `n`.
pub fn demo_record(plan: &RegistryPlan, n: u64, name: &str, birth: &str) -> serde_json::Value {
    const DISTRICTS: &[&str] = &[
        "Jongno-gu",
        "Mapo-gu",
        "Gangnam-gu",
        "Haeundae-gu",
        "Suseong-gu",
    ];
    const EMPLOYERS: &[&str] = &[
        "Hanbit Logistics",
        "Seoul Metro",
        "Daehan Foods",
        "Mirae Software",
    ];
    match plan.code {
        "residents" => serde_json::json!({
            "name": name, "birth_date": birth, "sex": if n.is_multiple_of(2) { "F" } else { "M" },
            "address": format!("{} {}-ro {}", DISTRICTS[(n % 5) as usize], 10 + n % 90, 1 + n % 40),
            "household_head": n.is_multiple_of(3), "moved_in": format!("20{:02}-0{}-1{}", 10 + n % 15, 1 + n % 9, n % 10),
        }),
        "family-relations" => serde_json::json!({
            "spouse": if n.is_multiple_of(2) { "Lee Jiho" } else { "Kim Soyeon" },
            "children": if n.is_multiple_of(3) { serde_json::json!([{"name": "Kim Yuna", "birth_date": "2018-04-02"}]) } else { serde_json::json!([]) },
            "parents": ["Kim Youngho", "Park Mikyung"],
        }),
        "businesses" => serde_json::json!({
            "business_number": format!("{:03}-{:02}-{:05}", 100 + n % 800, n % 90 + 10, n % 90_000),
            "trade_name": format!("{name} Trading"), "kind": "sole proprietorship",
            "opened": "2019-03-15", "status": if n.is_multiple_of(7) { "closed" } else { "active" },
        }),
        "vehicles" => serde_json::json!({
            "vehicles": [{"plate": format!("{}가 {:04}", 10 + n % 89, n % 10_000), "make": "Hyundai", "year": 2015 + (n % 10)}],
        }),
        "tax-payment-status" => serde_json::json!({
            "in_arrears": n.is_multiple_of(11), "amount_due": if n.is_multiple_of(11) { 125_000 } else { 0 }, "last_payment": "2026-05-31",
        }),
        "disability-status" => serde_json::json!({
            "registered": n.is_multiple_of(5), "degree": if n.is_multiple_of(10) { "severe" } else { "mild" }, "since": "2012-09-01",
        }),
        _ => serde_json::json!({
            "employed": !n.is_multiple_of(4), "employer": EMPLOYERS[(n % 4) as usize], "since": "2021-02-01", "insured": !n.is_multiple_of(4),
        }),
    }
}

/// A fictional but well-formed resident registration number for person `n`.
pub fn demo_subject(n: u64) -> (String, String) {
    let year = 1950 + n % 55;
    let month = 1 + (n / 55) % 12;
    let day = 1 + (n / 7) % 28;
    let century = if year >= 2000 { 3 + n % 2 } else { 1 + n % 2 };
    let rrn = format!(
        "{:02}{month:02}{day:02}-{century}{:06}",
        year % 100,
        n % 1_000_000
    );
    (rrn, format!("{year}-{month:02}-{day:02}"))
}

/// Creates the registries, data services, records, access rights and the
/// demo client's key, unless `demo-exchange.json` exists; returns it.
pub async fn ensure_exchange(
    store: &Store,
    keys: &IdentityKeys,
    data: &Path,
    residents: u64,
) -> anyhow::Result<DemoExchange> {
    let path = data.join("demo-exchange.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(serde_json::from_str(&text)?);
    }
    let now = nara_core::Timestamp::now().0;
    let people: Vec<(String, String, String)> = [
        ("900101-2345678", "Kim Minji", "1990-01-01"),
        ("850315-1234567", "Lee Junho", "1985-03-15"),
    ]
    .iter()
    .map(|(r, n, b)| ((*r).to_owned(), (*n).to_owned(), (*b).to_owned()))
    .chain((0..residents).map(|n| {
        let (rrn, birth) = demo_subject(n);
        (rrn, format!("Resident {n}"), birth)
    }))
    .collect();
    for plan in REGISTRIES {
        store
            .create_registry(
                &nara_store::exchange::Registry {
                    code: plan.code.into(),
                    agency_id: plan.agency.into(),
                    title: plan.title.into(),
                    schema: plan.schema().to_string(),
                    created_at: now,
                },
                "demo",
            )
            .await?;
        let records: Vec<(String, String)> = people
            .iter()
            .enumerate()
            .map(|(n, (rrn, name, birth))| {
                let digits = nara_core::identity::normalize_national_id(rrn)
                    .unwrap_or_else(|_| rrn.replace('-', ""));
                (
                    keys.national_id_hash(&digits),
                    demo_record(plan, n as u64, name, birth).to_string(),
                )
            })
            .collect();
        store
            .put_registry_records(plan.code, &records, "demo")
            .await?;
        store
            .register_data_service(
                &nara_store::exchange::DataService {
                    id: plan.service_id(),
                    agency_id: plan.agency.into(),
                    subsystem: plan.subsystem.into(),
                    service_code: plan.service.into(),
                    version: "1".into(),
                    title: plan.title.into(),
                    openapi: plan.openapi().to_string(),
                    personal: 1,
                    purposes: plan.purposes.into(),
                    legal_bases: plan.legal_bases.into(),
                    endpoint_kind: "registry".into(),
                    endpoint: plan.code.into(),
                    created_at: now,
                },
                "demo",
            )
            .await?;
    }
    // Seoul's welfare portal checks eligibility; the education office's
    // enrolment system needs residence, family and employment only.
    let grants: &[(&str, &str, &str)] = &[
        (
            "KR/LOC/SEOUL/welfare-portal",
            "residents",
            "name birth_date address household_head",
        ),
        ("KR/LOC/SEOUL/welfare-portal", "family-relations", ""),
        ("KR/LOC/SEOUL/welfare-portal", "disability-status", ""),
        (
            "KR/LOC/SEOUL/welfare-portal",
            "employment-status",
            "employed insured",
        ),
        (
            "KR/LOC/SEOUL/welfare-portal",
            "tax-payment-status",
            "in_arrears",
        ),
        ("KR/LOC/SEOUL/welfare-portal", "vehicles", ""),
        (
            "KR/GOV/MOE/school-enrolment",
            "residents",
            "name birth_date address",
        ),
        (
            "KR/GOV/MOE/school-enrolment",
            "family-relations",
            "children",
        ),
        (
            "KR/GOV/MOE/school-enrolment",
            "employment-status",
            "employed",
        ),
    ];
    for (client, code, fields) in grants {
        let plan = REGISTRIES
            .iter()
            .find(|p| p.code == *code)
            .ok_or_else(|| anyhow::anyhow!("no registry {code}"))?;
        // Each client is approved for its own purpose; only the welfare
        // portal's reading of the resident register rests on a law without
        // the citizen's consent (Resident Registration Act art. 29).
        let (purposes, legal_bases) = if client.ends_with("/welfare-portal") {
            (
                "benefit-eligibility",
                if *code == "residents" {
                    "Resident Registration Act art. 29"
                } else {
                    ""
                },
            )
        } else {
            ("school-enrolment", "")
        };
        grant_or_update(
            store,
            &NewAccessRight {
                service_id: &plan.service_id(),
                client_id: client,
                fields,
                purposes,
                legal_bases,
            },
        )
        .await?;
    }
    let seed: [u8; 32] = rand::random();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        key.verifying_key().as_bytes(),
    );
    let seoul: MemberId = "KR/LOC/SEOUL".parse()?;
    let client =
        crate::identity::machine::register(store, &seoul, "welfare-portal", &public, "demo")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let demo = DemoExchange {
        client: "KR/LOC/SEOUL/welfare-portal".into(),
        key_id: client.key_id,
        private_key: base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            seed,
        ),
        residents_service: REGISTRIES[0].service_id(),
        subjects: people.iter().take(2).map(|p| p.0.clone()).collect(),
    };
    crate::keyfile::write_private(&path, &serde_json::to_string_pretty(&demo)?)?;
    Ok(demo)
}

// ------------------------------------------------------ a year of history

/// How many days of exchanges the demo's first start writes.
pub const HISTORY_DAYS: i64 = 365;

/// A year of the demo country's exchanges, so that a citizen's data-access
/// history, the message log's archives and its statistics are not empty the
/// first time someone opens them: Seoul's welfare portal reading the
/// resident register for benefit eligibility under the Resident
/// Registration Act (the one right in the demo that rests on a law, not on
/// a consent), on weekdays more than at weekends, in office hours (KST).
/// Deterministic (the same records for the same `today_ms`), each record
/// signed by this node's gateway key and ledgered like a live one; marked
/// `issue = "demo history"` so nobody takes it for a live exchange. Written
/// only into an empty message log. How many records were written.
pub async fn ensure_history(
    store: &Store,
    keys: &IdentityKeys,
    subjects: &[String],
    today_ms: i64,
) -> anyhow::Result<usize> {
    if store.exchange_count().await? > 0 || subjects.is_empty() {
        return Ok(0);
    }
    let residents = REGISTRIES
        .iter()
        .find(|p| p.code == "residents")
        .ok_or_else(|| anyhow::anyhow!("no resident register"))?;
    let gateway = keys.gateway_key();
    // The demo citizens, then residents of the register.
    let hashes: Vec<String> = subjects
        .iter()
        .cloned()
        .chain((0..200).map(|n| demo_subject(n).0))
        .map(|rrn| {
            let digits = nara_core::identity::normalize_national_id(&rrn)
                .unwrap_or_else(|_| rrn.replace('-', ""));
            keys.national_id_hash(&digits)
        })
        .collect();
    let day_ms = 86_400_000i64;
    let midnight = today_ms - today_ms.rem_euclid(day_ms);
    let mut rng = Rng(0x6e61_7261_6869_7374);
    let mut next = move || rng.next();
    let mut records = Vec::new();
    for day in (1..=HISTORY_DAYS).rev() {
        let start = midnight - day * day_ms;
        // 1970-01-01 was a Thursday: day 0 of the week is Thursday.
        let weekday = (start / day_ms).rem_euclid(7);
        let weekend = weekday == 2 || weekday == 3;
        let count = if weekend { 1 } else { 5 } + (next() % 4) as i64;
        for n in 0..count {
            // The two demo citizens first: their history shows a few a month.
            let who = match next() % 100 {
                0..=2 => 0,
                3..=4 => 1,
                _ => 2 + (next() % (hashes.len().saturating_sub(2).max(1)) as u64) as usize,
            };
            let subject = &hashes[who.min(hashes.len() - 1)];
            // 09:00–18:00 KST is 00:00–09:00 UTC.
            let started_at = start + (next() % (9 * 3_600_000)) as i64;
            let request_id = format!("{:032x}", u128::from(next()) << 64 | u128::from(next()));
            records.push(past_exchange(
                &gateway,
                PastExchange {
                    xroad_id: format!("demo-history-{}-{n}", start / day_ms),
                    request_id,
                    client: "KR/LOC/SEOUL/welfare-portal".into(),
                    service: residents.service_id(),
                    purpose: "benefit-eligibility".into(),
                    consent: String::new(),
                    legal_basis: "Resident Registration Act art. 29".into(),
                    subject_hash: subject.clone(),
                    issue: "demo history".into(),
                    at: started_at,
                    duration_us: 700 + (next() % 6_000) as i64,
                },
            ));
        }
    }
    for chunk in records.chunks(500) {
        store.append_exchanges(chunk).await?;
    }
    Ok(records.len())
}

/// What one past exchange was (see [`past_exchange`]).
pub(crate) struct PastExchange {
    pub xroad_id: String,
    pub request_id: String,
    pub client: String,
    pub service: String,
    pub purpose: String,
    pub consent: String,
    pub legal_basis: String,
    pub subject_hash: String,
    pub issue: String,
    pub at: i64,
    pub duration_us: i64,
}

/// The message-log record of a past `GET /record`, signed by the gateway
/// as a live one is (its hashes stand for a request and answer that were
/// never sent).
pub(crate) fn past_exchange(
    gateway: &ed25519_dalek::SigningKey,
    p: PastExchange,
) -> nara_store::exchange::ExchangeRecord {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::Signer;
    use sha2::{Digest, Sha512};
    let mut record = nara_store::exchange::ExchangeRecord {
        id: 0,
        request_hash: STANDARD.encode(Sha512::digest(format!("GET /record {}", p.xroad_id))),
        response_hash: STANDARD.encode(Sha512::digest(format!(
            "record {} {}",
            p.subject_hash, p.xroad_id
        ))),
        xroad_id: p.xroad_id,
        request_id: p.request_id,
        client_id: p.client,
        service_id: p.service,
        method: "GET".into(),
        path: "/record".into(),
        purpose: p.purpose,
        consent_id: p.consent,
        legal_basis: p.legal_basis,
        subject_hash: p.subject_hash,
        user_id: String::new(),
        issue: p.issue,
        client_signature: String::new(),
        gateway_signature: String::new(),
        peer_signature: String::new(),
        status: 200,
        outcome: "ok".into(),
        started_at: p.at,
        duration_us: p.duration_us,
    };
    record.gateway_signature = STANDARD.encode(
        gateway
            .sign(&crate::exchange::record_digest(&record))
            .to_bytes(),
    );
    record
}

/// A small, fixed generator (SplitMix64): the same history on every machine.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[cfg(test)]
mod tests {
    use super::REGISTRIES;

    /// Every demo service's evidence names a demo registry, fields it has,
    /// a purpose it accepts and a legal basis it lists: otherwise the demo
    /// service could never be submitted.
    #[test]
    fn demo_evidence_is_served_by_demo_registries() {
        for (file, source) in nara_core::service_def::DEMO {
            let def = nara_core::service_def::check(source).unwrap();
            for e in &def.evidence {
                let registry = REGISTRIES
                    .iter()
                    .find(|r| {
                        format!("{}/{}/{}", r.agency, r.subsystem, r.service)
                            == *e.service.get_ref()
                    })
                    .unwrap_or_else(|| {
                        panic!("{file}: no demo registry serves {}", e.service.get_ref())
                    });
                for f in &e.fields {
                    assert!(
                        registry.fields.iter().any(|(n, _)| n == f.get_ref()),
                        "{file}: {} has no field {}",
                        registry.code,
                        f.get_ref()
                    );
                }
                assert!(
                    registry
                        .purposes
                        .split(' ')
                        .any(|p| p == e.purpose.get_ref()),
                    "{file}: {} does not accept the purpose {}",
                    registry.code,
                    e.purpose.get_ref()
                );
                if let Some(basis) = &e.legal_basis {
                    assert!(
                        registry.legal_bases.lines().any(|l| l == basis.get_ref()),
                        "{file}: {} does not list the legal basis {}",
                        registry.code,
                        basis.get_ref()
                    );
                }
            }
        }
    }
}
