//! Sample countries: the demo's (hand-written services, 10 agencies, 200
//! systems) and the national scale (45 agencies, 1,460 services, 45,000
//! systems, the size of Korea's NIRS). Deterministic for a given seed, so a
//! benchmark or a bug report can be reproduced exactly.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use serde::Deserialize;

use crate::{
    Audience, Channel, Environment, Grade, Localized, MemberId, NewAgency, ServiceInput,
    ServiceStatus, SystemInput, SystemKind, SystemStatus,
};

/// The X-Road instance the sample countries use.
pub const INSTANCE: &str = "KR";

/// A whole sample country, ready to be written to a store.
#[derive(Debug, Clone)]
pub struct Country {
    pub agencies: Vec<NewAgency>,
    pub services: Vec<ServiceInput>,
    pub systems: Vec<SystemInput>,
}

impl Country {
    pub fn len(&self) -> usize {
        self.agencies.len() + self.services.len() + self.systems.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The tables the sample countries are drawn from, in `data/*.toml` so that
/// they read as data and change without touching code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Agencies {
    agency: Vec<NewAgency>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Services {
    service: Vec<HandWrittenService>,
}

/// A hand-written service; it is active.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandWrittenService {
    agency: MemberId,
    code: String,
    audience: Audience,
    channel: Channel,
    legal_basis: String,
    name: Localized,
    description: Localized,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vocabulary {
    /// What services are about; combined with actions.
    topic: Vec<Word>,
    /// What a citizen does about a topic; `{}` is where the topic goes.
    action: Vec<Word>,
    /// The functions agency systems serve.
    function: Vec<Function>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Word {
    slug: String,
    name: Localized,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Function {
    code: String,
    name: String,
}

/// The parsed tables.
struct Tables {
    agencies: Vec<NewAgency>,
    services: Vec<HandWrittenService>,
    vocabulary: Vocabulary,
}

/// A sample table that does not parse: a defect in `data/`, which the tests
/// catch before a release.
#[derive(Debug, thiserror::Error)]
#[error("sample data {file}: {source}")]
pub struct SeedDataError {
    file: &'static str,
    source: toml::de::Error,
}

fn tables() -> Result<&'static Tables, &'static SeedDataError> {
    static TABLES: std::sync::LazyLock<Result<Tables, SeedDataError>> =
        std::sync::LazyLock::new(|| {
            fn parse<T: serde::de::DeserializeOwned>(
                file: &'static str,
                text: &str,
            ) -> Result<T, SeedDataError> {
                toml::from_str(text).map_err(|source| SeedDataError { file, source })
            }
            Ok(Tables {
                agencies: parse::<Agencies>(
                    "agencies.toml",
                    include_str!("../data/agencies.toml"),
                )?
                .agency,
                services: parse::<Services>(
                    "services.toml",
                    include_str!("../data/services.toml"),
                )?
                .service,
                vocabulary: parse("vocabulary.toml", include_str!("../data/vocabulary.toml"))?,
            })
        });
    TABLES.as_ref()
}

const DEMO_AGENCIES: usize = 10;

fn hand_written_services(tables: &Tables, agencies: &[NewAgency]) -> Vec<ServiceInput> {
    tables
        .services
        .iter()
        .filter(|s| agencies.iter().any(|a| a.id == s.agency))
        .map(|s| ServiceInput {
            agency: s.agency.clone(),
            code: s.code.clone(),
            name: s.name.clone(),
            description: s.description.clone(),
            audience: s.audience,
            legal_basis: s.legal_basis.clone(),
            channel: s.channel,
            status: ServiceStatus::Active,
        })
        .collect()
}

/// Picks from `choices` with the given weights (which need not sum to 100).
fn weighted<T: Copy>(rng: &mut ChaCha8Rng, choices: &[(T, u32)]) -> T {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for (value, weight) in choices {
        if roll < *weight {
            return *value;
        }
        roll -= weight;
    }
    choices[0].0
}

fn generated_services(
    words: &Vocabulary,
    rng: &mut ChaCha8Rng,
    agencies: &[NewAgency],
    existing: &[ServiceInput],
    total: usize,
) -> Vec<ServiceInput> {
    let mut out = Vec::with_capacity(total.saturating_sub(existing.len()));
    let mut taken: std::collections::HashSet<(String, String)> = existing
        .iter()
        .map(|s| (s.agency.to_string(), s.code.clone()))
        .collect();
    // Beyond the nation an agency offers more services than the vocabulary
    // has topic-action pairs: once most pairs are taken, the agency's next
    // services are regional offices' editions of them (`-r2`, "region 2").
    let pairs = words.topic.len() * words.action.len();
    let mut per_agency = vec![0usize; agencies.len()];
    let mut i = 0usize;
    while existing.len() + out.len() < total {
        let a = i % agencies.len();
        let agency = &agencies[a];
        i += 1;
        let topic = &words.topic[rng.random_range(0..words.topic.len())];
        let action = &words.action[rng.random_range(0..words.action.len())];
        let region = per_agency[a] / (pairs * 3 / 4).max(1);
        let code = match region {
            0 => format!("{}-{}", topic.slug, action.slug),
            r => format!("{}-{}-r{}", topic.slug, action.slug, r + 1),
        };
        if !taken.insert((agency.id.to_string(), code.clone())) {
            continue;
        }
        per_agency[a] += 1;
        let name = Localized::new(
            &action.name.en.replace("{}", &topic.name.en),
            &action.name.es.replace("{}", &topic.name.es),
            &action.name.ko.replace("{}", &topic.name.ko),
        );
        let name = match region {
            0 => name,
            r => Localized::new(
                &format!("{} (region {})", name.en, r + 1),
                &format!("{} (región {})", name.es, r + 1),
                &format!("{} ({}권역)", name.ko, r + 1),
            ),
        };
        let description = Localized::new(
            &format!("{} — offered by the {}.", name.en, agency.name.en),
            &format!("{} — ofrecido por {}.", name.es, agency.name.es),
            &format!("{} 민원입니다. 담당 기관: {}.", name.ko, agency.name.ko),
        );
        out.push(ServiceInput {
            agency: agency.id.clone(),
            code,
            name,
            description,
            audience: weighted(
                rng,
                &[
                    (Audience::Citizen, 70),
                    (Audience::Business, 22),
                    (Audience::Agency, 8),
                ],
            ),
            legal_basis: format!(
                "Enforcement Decree on {}, Article {}",
                topic.name.en,
                rng.random_range(2..60)
            ),
            channel: weighted(
                rng,
                &[
                    (Channel::Online, 60),
                    (Channel::Mixed, 20),
                    (Channel::Mobile, 10),
                    (Channel::InPerson, 10),
                ],
            ),
            status: weighted(
                rng,
                &[
                    (ServiceStatus::Active, 90),
                    (ServiceStatus::Planned, 5),
                    (ServiceStatus::Suspended, 3),
                    (ServiceStatus::Retired, 2),
                ],
            ),
        });
    }
    out
}

fn systems(
    words: &Vocabulary,
    rng: &mut ChaCha8Rng,
    agencies: &[NewAgency],
    total: usize,
) -> Vec<SystemInput> {
    let grades: Vec<(Grade, u32)> = Grade::ALL.into_iter().zip([5, 15, 40, 40]).collect();
    (0..total)
        .map(|n| {
            let agency = &agencies[n % agencies.len()];
            let serial = n / agencies.len() + 1;
            let function = &words.function[rng.random_range(0..words.function.len())];
            let (func, func_name) = (&function.code, &function.name);
            let kind = weighted(
                rng,
                &[
                    (SystemKind::Application, 30),
                    (SystemKind::Server, 35),
                    (SystemKind::Database, 15),
                    (SystemKind::NetworkDevice, 12),
                    (SystemKind::Storage, 8),
                ],
            );
            let environment = weighted(
                rng,
                &[
                    (Environment::Production, 70),
                    (Environment::DisasterRecovery, 10),
                    (Environment::Staging, 12),
                    (Environment::Development, 8),
                ],
            );
            let code_part = agency.id.code().to_ascii_lowercase();
            let endpoint_url = match kind {
                SystemKind::Application => Some(format!(
                    "https://{}.{code_part}.go.kr/",
                    func.to_ascii_lowercase()
                )),
                SystemKind::Server | SystemKind::Database => Some(format!(
                    "https://10.{}.{}.{}:{}/",
                    rng.random_range(0..255),
                    rng.random_range(0..255),
                    rng.random_range(1..255),
                    if kind == SystemKind::Server {
                        443
                    } else {
                        5432
                    }
                )),
                SystemKind::NetworkDevice | SystemKind::Storage => None,
            };
            let kind_word = match kind {
                SystemKind::Application => "application",
                SystemKind::Server => "server",
                SystemKind::Database => "database",
                SystemKind::NetworkDevice => "switch",
                SystemKind::Storage => "storage array",
            };
            SystemInput {
                agency: agency.id.clone(),
                code: format!(
                    "{func}-{}-{serial:04}",
                    kind.as_str().to_ascii_uppercase().replace('_', "")
                ),
                name: format!("{func_name} {kind_word} {serial:02}"),
                kind,
                grade: weighted(rng, &grades),
                environment,
                endpoint_url,
                status: weighted(
                    rng,
                    &[
                        (SystemStatus::Operational, 90),
                        (SystemStatus::Degraded, 3),
                        (SystemStatus::Maintenance, 4),
                        (SystemStatus::Retired, 3),
                    ],
                ),
            }
        })
        .collect()
}

fn country(
    seed: u64,
    agency_count: usize,
    service_count: usize,
    system_count: usize,
) -> Result<Country, &'static SeedDataError> {
    let tables = tables()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let agencies: Vec<NewAgency> = tables.agencies.iter().take(agency_count).cloned().collect();
    let mut services = hand_written_services(tables, &agencies);
    services.truncate(service_count);
    let more = generated_services(
        &tables.vocabulary,
        &mut rng,
        &agencies,
        &services,
        service_count,
    );
    services.extend(more);
    let systems = systems(&tables.vocabulary, &mut rng, &agencies, system_count);
    Ok(Country {
        agencies,
        services,
        systems,
    })
}

/// The demo country: 10 agencies, 30 hand-written services, 200 systems.
pub fn demo() -> Result<Country, &'static SeedDataError> {
    let services = tables()?.services.len();
    country(2026, DEMO_AGENCIES, services, 200)
}

/// A whole country at Korea's scale: 45 agencies, 1,460 services, 45,000 systems.
pub fn national(seed: u64) -> Result<Country, &'static SeedDataError> {
    scaled(seed, 1, 1)
}

/// The nation's 45 agencies with `numerator / denominator` of its services
/// and systems: 1/10 (146 services, 4,500 systems) and 10× (14,600
/// services, 450,000 systems) measure how each hot path grows.
pub fn scaled(
    seed: u64,
    numerator: usize,
    denominator: usize,
) -> Result<Country, &'static SeedDataError> {
    let agencies = tables()?.agencies.len();
    let denominator = denominator.max(1);
    country(
        seed,
        agencies,
        1_460 * numerator / denominator,
        45_000 * numerator / denominator,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_country_is_complete_and_valid() {
        let c = demo().unwrap();
        assert_eq!(c.agencies.len(), 10);
        assert_eq!(c.services.len(), 30);
        assert_eq!(c.systems.len(), 200);
        for a in &c.agencies {
            a.validate().unwrap();
        }
        for s in &c.services {
            s.validate().unwrap();
        }
        for s in &c.systems {
            s.validate().unwrap();
        }
        for g in Grade::ALL {
            assert!(
                c.systems.iter().any(|s| s.grade == g),
                "grade {g:?} missing"
            );
        }
    }

    #[test]
    fn national_country_is_deterministic_and_unique() {
        let a = national(7).unwrap();
        let b = national(7).unwrap();
        assert_eq!(a.agencies.len(), 45);
        assert_eq!(a.services.len(), 1_460);
        assert_eq!(a.systems.len(), 45_000);
        assert_eq!(a.systems[12_345], b.systems[12_345]);
        assert_ne!(national(8).unwrap().systems[1..50], a.systems[1..50]);
        let codes: std::collections::HashSet<_> =
            a.systems.iter().map(|s| (&s.agency, &s.code)).collect();
        assert_eq!(codes.len(), a.systems.len());
        let codes: std::collections::HashSet<_> =
            a.services.iter().map(|s| (&s.agency, &s.code)).collect();
        assert_eq!(codes.len(), a.services.len());
        for s in a.services.iter().chain(b.services.iter().take(10)) {
            s.validate().unwrap();
        }
    }

    #[test]
    fn ten_times_the_nation_has_unique_valid_services() {
        let tenth = scaled(7, 1, 10).unwrap();
        assert_eq!((tenth.services.len(), tenth.systems.len()), (146, 4_500));
        let c = scaled(7, 10, 1).unwrap();
        assert_eq!(c.agencies.len(), 45);
        assert_eq!((c.services.len(), c.systems.len()), (14_600, 450_000));
        let codes: std::collections::HashSet<_> =
            c.services.iter().map(|s| (&s.agency, &s.code)).collect();
        assert_eq!(codes.len(), c.services.len());
        let codes: std::collections::HashSet<_> =
            c.systems.iter().map(|s| (&s.agency, &s.code)).collect();
        assert_eq!(codes.len(), c.systems.len());
        let regional = c.services.iter().find(|s| s.code.ends_with("-r2")).unwrap();
        assert!(
            regional.name.en.ends_with("(region 2)"),
            "{:?}",
            regional.name
        );
        for s in c.services.iter().step_by(97) {
            s.validate().unwrap();
        }
        for s in c.systems.iter().step_by(997) {
            s.validate().unwrap();
        }
    }
}
