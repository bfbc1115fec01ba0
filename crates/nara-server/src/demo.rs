//! Demo accounts for every role and a sample agency app, so that people,
//! scripts and tests can sign in to `nara demo` at once. Made on first start
//! and written to `DATA_DIR/demo-accounts.json` (mode 0600); later starts
//! reuse the file.

use std::path::Path;
use std::time::Duration;

use nara_core::MemberId;
use nara_core::identity::{AccountKind, Grant, Role};
use nara_store::Store;
use nara_store::identity::NewAccount;
use nara_store::oidc::Client;
use serde::{Deserialize, Serialize};

use crate::auth::{self, IdentityKeys, PasswordWork, digest};

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

struct Plan {
    role: Role,
    username: &'static str,
    display_name: &'static str,
    kind: AccountKind,
    /// Index into the two demo agencies, for agency-scoped roles.
    agency: Option<usize>,
    extra: &'static [Role],
    national_id: Option<&'static str>,
}

const PLANS: &[Plan] = &[
    Plan {
        role: Role::Citizen,
        username: "minji",
        display_name: "김민지 Kim Minji",
        kind: AccountKind::Citizen,
        agency: None,
        extra: &[],
        national_id: Some("900101-2345678"),
    },
    Plan {
        role: Role::Citizen,
        username: "junho",
        display_name: "이준호 Lee Junho",
        kind: AccountKind::Citizen,
        agency: None,
        extra: &[],
        national_id: Some("850315-1234567"),
    },
    Plan {
        role: Role::Official,
        username: "official.a",
        display_name: "박서연 Park Seoyeon",
        kind: AccountKind::Official,
        agency: Some(0),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::AgencyAdmin,
        username: "admin.a",
        display_name: "최도윤 Choi Doyun",
        kind: AccountKind::Official,
        agency: Some(0),
        extra: &[Role::Official],
        national_id: None,
    },
    Plan {
        role: Role::ServiceDesigner,
        username: "designer.a",
        display_name: "정하은 Jung Haeun",
        kind: AccountKind::Official,
        agency: Some(0),
        extra: &[Role::Official],
        national_id: None,
    },
    Plan {
        role: Role::Official,
        username: "official.b",
        display_name: "강민준 Kang Minjun",
        kind: AccountKind::Official,
        agency: Some(1),
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::AgencyAdmin,
        username: "admin.b",
        display_name: "윤지우 Yoon Jiwoo",
        kind: AccountKind::Official,
        agency: Some(1),
        extra: &[Role::Official],
        national_id: None,
    },
    Plan {
        role: Role::Operator,
        username: "operator",
        display_name: "Platform Operator",
        kind: AccountKind::Operator,
        agency: None,
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::SecurityAnalyst,
        username: "analyst",
        display_name: "Security Analyst",
        kind: AccountKind::Operator,
        agency: None,
        extra: &[],
        national_id: None,
    },
    Plan {
        role: Role::Auditor,
        username: "auditor",
        display_name: "Auditor",
        kind: AccountKind::Official,
        agency: None,
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
        let agency = plan.agency.map(|i| pick[i].clone());
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
    crate::ledger::write_private(&accounts_path, &serde_json::to_string_pretty(&out)?)?;
    crate::ledger::write_private(&app_path, &serde_json::to_string_pretty(&app)?)?;
    Ok((out, app))
}
