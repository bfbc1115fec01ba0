//! Detection: Sigma rules (SigmaHQ's format, correlation rules included)
//! evaluated by a maintained engine (`rsigma`) over nara's own security
//! events, in the order they were recorded. A rule that fires is an alert
//! for analysts ([`super::alerts`]). The starter rules are in
//! `crates/nara-server/rules/` (logsource `product: nara, service:
//! security`; the fields `kind`, `user`, `source_ip`, `detail`).

use std::sync::Mutex;
use std::time::Duration;

use nara_store::identity::SecurityEvent;
use nara_store::secops::NewAlert;
use std::borrow::Cow;

use rsigma_eval::{CorrelationConfig, CorrelationEngine, CorrelationEventMode, EventValue};

use crate::AppState;

/// The starter rules, as shipped.
pub const STARTER_RULES: &[(&str, &str)] = &[
    (
        "login_failed.yml",
        include_str!("../../rules/login_failed.yml"),
    ),
    (
        "credential_stuffing.yml",
        include_str!("../../rules/credential_stuffing.yml"),
    ),
    (
        "password_guessing.yml",
        include_str!("../../rules/password_guessing.yml"),
    ),
    (
        "account_locked.yml",
        include_str!("../../rules/account_locked.yml"),
    ),
    (
        "second_factor.yml",
        include_str!("../../rules/second_factor.yml"),
    ),
    (
        "exchange_refusals.yml",
        include_str!("../../rules/exchange_refusals.yml"),
    ),
    (
        "backup_failures.yml",
        include_str!("../../rules/backup_failures.yml"),
    ),
    (
        "system_sign_in.yml",
        include_str!("../../rules/system_sign_in.yml"),
    ),
    (
        "rate_limited.yml",
        include_str!("../../rules/rate_limited.yml"),
    ),
    (
        "password_spraying.yml",
        include_str!("../../rules/password_spraying.yml"),
    ),
    (
        "machine_key_two_places.yml",
        include_str!("../../rules/machine_key_two_places.yml"),
    ),
    (
        "personal_data_reads.yml",
        include_str!("../../rules/personal_data_reads.yml"),
    ),
    (
        "probes_failing.yml",
        include_str!("../../rules/probes_failing.yml"),
    ),
];

/// How often new security events are read.
const EVERY: Duration = Duration::from_secs(2);
/// At most this many events a round.
const BATCH: i64 = 5_000;

/// A rule file that does not load: which, and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {why}")]
pub struct RuleError {
    pub file: String,
    pub why: String,
}

/// A loaded rule, as the analysts' page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub file: String,
    pub id: String,
    pub title: String,
    pub level: String,
    /// `detection` or `correlation`.
    pub kind: &'static str,
}

/// The loaded rules and their state (correlation windows).
pub struct Detector {
    engine: Mutex<CorrelationEngine>,
    rules: usize,
    listed: Vec<RuleInfo>,
    /// Rule files that were refused when loading, with why.
    refused: Vec<RuleError>,
    /// Every file given, loaded or not (name, YAML): what a test of a
    /// changed rule runs beside.
    sources: Vec<(String, String)>,
    /// Rules an analyst switched off: they raise no alerts (correlations
    /// built on them still count their matches). Read from the store
    /// each round, so every node agrees within one.
    switched_off: std::sync::RwLock<std::collections::HashSet<String>>,
    /// A trial engine: every rule's match is reported, building blocks and
    /// informational rules too.
    trial: bool,
}

/// What a rule raised when tested against recent events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialMatch {
    pub rule_id: String,
    pub title: String,
    pub level: String,
    pub group_key: String,
    pub events: usize,
    pub first_at: i64,
    pub last_at: i64,
}

/// A test of one rule file against recent events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    /// The rules the file holds.
    pub rules: Vec<RuleInfo>,
    /// Events evaluated, and the span of time they cover.
    pub events: usize,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// What the file's rules raised, in order.
    pub matches: Vec<TrialMatch>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("rules", &self.rules)
            .finish()
    }
}

impl Detector {
    /// Loads rule files (name, YAML): each must parse and compile.
    pub fn new(files: &[(&str, &str)]) -> Result<Detector, RuleError> {
        let (detector, mut refused) = Detector::load(files);
        match refused.pop() {
            Some(e) => Err(e),
            None => Ok(detector),
        }
    }

    /// Loads what loads: a file that does not parse or compile is left out
    /// and reported, the others run.
    pub fn load(files: &[(&str, &str)]) -> (Detector, Vec<RuleError>) {
        Detector::load_as(files, false)
    }

    fn load_as(files: &[(&str, &str)], trial: bool) -> (Detector, Vec<RuleError>) {
        let config = CorrelationConfig {
            // A correlation's building blocks are not alerts by themselves
            // (a trial shows them too).
            emit_detections: trial,
            correlation_event_mode: CorrelationEventMode::Refs,
            max_correlation_events: 50,
            // One alert per group and rule every ten minutes, not one per event.
            suppress: Some(600),
            // Each event's time is given (`process_event_at`): nothing to
            // look for in its fields.
            timestamp_fields: Vec::new(),
            ..CorrelationConfig::default()
        };
        let mut parsed: Vec<(String, rsigma_parser::SigmaCollection)> = Vec::new();
        let mut refused = Vec::new();
        for (file, yaml) in files {
            let bad = |why: String| RuleError {
                file: (*file).to_owned(),
                why,
            };
            match rsigma_parser::parse_sigma_yaml(yaml) {
                Ok(c) if c.errors.is_empty() => parsed.push(((*file).to_owned(), c)),
                Ok(c) => refused.push(bad(c.errors.join("; "))),
                Err(e) => refused.push(bad(e.to_string())),
            }
        }
        // Each file is compiled with those accepted so far on a scratch
        // engine, so a bad file cannot leave half its rules in the one that
        // runs; files whose correlations name rules of files not yet
        // accepted are tried again until nothing more loads.
        let mut accepted: Vec<(String, rsigma_parser::SigmaCollection)> = Vec::new();
        let mut pending: Vec<(String, rsigma_parser::SigmaCollection, String)> = parsed
            .into_iter()
            .map(|(f, c)| (f, c, String::new()))
            .collect();
        loop {
            let before = pending.len();
            let mut still = Vec::new();
            for (file, collection, _) in pending {
                let mut trial = CorrelationEngine::new(CorrelationConfig::default());
                let compiled = accepted
                    .iter()
                    .map(|(_, c)| c)
                    .chain(std::iter::once(&collection))
                    .try_for_each(|c| trial.add_collection(c));
                match compiled {
                    Ok(()) => accepted.push((file, collection)),
                    Err(e) => still.push((file, collection, e.to_string())),
                }
            }
            pending = still;
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        refused.extend(
            pending
                .into_iter()
                .map(|(file, _, why)| RuleError { file, why }),
        );
        let mut engine = CorrelationEngine::new(config);
        let mut listed = Vec::new();
        let level = |l: Option<&rsigma_parser::Level>| {
            l.map(|l| format!("{l:?}").to_lowercase())
                .unwrap_or_default()
        };
        for (file, collection) in &accepted {
            if let Err(e) = engine.add_collection(collection) {
                refused.push(RuleError {
                    file: file.clone(),
                    why: e.to_string(),
                });
                continue;
            }
            listed.extend(collection.rules.iter().map(|r| RuleInfo {
                file: file.clone(),
                id: r.id.clone().unwrap_or_default(),
                title: r.title.clone(),
                level: level(r.level.as_ref()),
                kind: "detection",
            }));
            listed.extend(collection.correlations.iter().map(|r| RuleInfo {
                file: file.clone(),
                id: r.id.clone().unwrap_or_default(),
                title: r.title.clone(),
                level: level(r.level.as_ref()),
                kind: "correlation",
            }));
        }
        let detector = Detector {
            engine: Mutex::new(engine),
            rules: listed.len(),
            listed,
            refused: Vec::new(),
            sources: files
                .iter()
                .map(|(f, y)| ((*f).to_owned(), (*y).to_owned()))
                .collect(),
            switched_off: Default::default(),
            trial,
        };
        (detector, refused)
    }

    /// The starter rules and every `*.yml` file in `dir` (sorted by name);
    /// files that do not load are left out and kept to show.
    pub fn with_dir(dir: Option<&std::path::Path>) -> Detector {
        let mut owned: Vec<(String, String)> = STARTER_RULES
            .iter()
            .map(|(f, y)| ((*f).to_owned(), (*y).to_owned()))
            .collect();
        let mut unreadable = Vec::new();
        if let Some(dir) = dir {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut paths: Vec<_> = entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
                        .collect();
                    paths.sort();
                    for path in paths {
                        let name = path.display().to_string();
                        // A rule file is small; a huge one is a mistake, not a rule.
                        match std::fs::metadata(&path).map(|m| m.len()) {
                            Ok(len) if len > 1024 * 1024 => unreadable.push(RuleError {
                                file: name,
                                why: format!("{len} bytes: larger than a rule file can be (1 MiB)"),
                            }),
                            _ => match std::fs::read_to_string(&path) {
                                Ok(text) => owned.push((name, text)),
                                Err(e) => unreadable.push(RuleError {
                                    file: name,
                                    why: e.to_string(),
                                }),
                            },
                        }
                    }
                }
                Err(e) => unreadable.push(RuleError {
                    file: dir.display().to_string(),
                    why: e.to_string(),
                }),
            }
        }
        let files: Vec<(&str, &str)> = owned
            .iter()
            .map(|(f, y)| (f.as_str(), y.as_str()))
            .collect();
        let (mut detector, mut refused) = Detector::load(&files);
        refused.extend(unreadable);
        for e in &refused {
            tracing::error!(file = %e.file, error = %e.why, "a detection rule file was not loaded");
        }
        detector.refused = refused;
        detector
    }

    /// The rules loaded.
    pub fn listed(&self) -> &[RuleInfo] {
        &self.listed
    }

    /// Rule files left out, and why.
    pub fn refused(&self) -> &[RuleError] {
        &self.refused
    }

    /// No rules at all.
    pub fn empty() -> Detector {
        Detector::load(&[]).0
    }

    /// The YAML of the file that holds rule `id`, with the file's name.
    pub fn source_of(&self, id: &str) -> Option<(&str, &str)> {
        let file = &self.listed.iter().find(|r| r.id == id)?.file;
        self.sources
            .iter()
            .find(|(f, _)| f == file)
            .map(|(f, y)| (f.as_str(), y.as_str()))
    }

    /// Replaces the set of rules switched off.
    pub fn set_switched_off(&self, ids: impl IntoIterator<Item = String>) {
        if let Ok(mut off) = self.switched_off.write() {
            *off = ids.into_iter().collect();
        }
    }

    pub fn is_switched_off(&self, id: &str) -> bool {
        self.switched_off.read().is_ok_and(|off| off.contains(id))
    }

    /// Tests rule file `file` (YAML `yaml`) against `events` (oldest
    /// first) on a scratch engine, beside every other file this detector
    /// was given (a file of the same name is replaced: the edited version
    /// of a running rule). Nothing is stored and the running rules' state
    /// is untouched. Reports every match of the file's own rules.
    pub fn trial(
        &self,
        file: &str,
        yaml: &str,
        events: &[SecurityEvent],
    ) -> Result<Trial, RuleError> {
        let mut files: Vec<(&str, &str)> = self
            .sources
            .iter()
            .filter(|(f, _)| f != file)
            .map(|(f, y)| (f.as_str(), y.as_str()))
            .collect();
        files.push((file, yaml));
        let (scratch, refused) = Detector::load_as(&files, true);
        if let Some(e) = refused.into_iter().find(|e| e.file == file) {
            return Err(e);
        }
        let rules: Vec<RuleInfo> = scratch
            .listed
            .iter()
            .filter(|r| r.file == file)
            .cloned()
            .collect();
        if rules.is_empty() {
            return Err(RuleError {
                file: file.to_owned(),
                why: "holds no rule".into(),
            });
        }
        let matches = scratch
            .evaluate(events)
            .into_iter()
            .filter(|a| rules.iter().any(|r| r.id == a.rule_id))
            .map(|a| TrialMatch {
                rule_id: a.rule_id,
                title: a.title,
                level: a.level,
                group_key: a.group_key,
                events: a.events.len(),
                first_at: a.first_at,
                last_at: a.last_at,
            })
            .collect();
        Ok(Trial {
            rules,
            events: events.len(),
            from: events.first().map(|e| e.at),
            to: events.last().map(|e| e.at),
            matches,
        })
    }

    pub fn starter() -> Result<Detector, RuleError> {
        Detector::new(STARTER_RULES)
    }

    pub fn rules(&self) -> usize {
        self.rules
    }

    /// Evaluates events in order; the alerts they raise.
    pub fn evaluate(&self, events: &[SecurityEvent]) -> Vec<NewAlert> {
        let Ok(mut engine) = self.engine.lock() else {
            return Vec::new();
        };
        let mut alerts = Vec::new();
        for event in events {
            let fields = Fields::of(event);
            let results = engine.process_event_at(&fields, event.at / 1000);
            for result in results {
                let level = result
                    .header
                    .level
                    .map(|l| format!("{l:?}").to_lowercase())
                    .unwrap_or_else(|| "medium".into());
                if !self.trial
                    && (nara_core::secops::level_rank(&level) == 0
                        || result
                            .header
                            .rule_id
                            .as_deref()
                            .is_some_and(|id| self.is_switched_off(id)))
                {
                    continue;
                }
                let (group_key, ids) = match result.as_correlation() {
                    Some(c) => (
                        c.group_key
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        c.event_refs
                            .iter()
                            .flatten()
                            .filter_map(|r| r.id.as_deref()?.parse().ok())
                            .collect(),
                    ),
                    None => (
                        format!("user={} source_ip={}", event.username, event.address),
                        vec![event.id],
                    ),
                };
                let first_at = ids
                    .iter()
                    .min()
                    .and_then(|first| (*first != event.id).then_some(*first))
                    .and_then(|first| events.iter().find(|e| e.id == first).map(|e| e.at))
                    .unwrap_or(event.at);
                alerts.push(NewAlert {
                    rule_id: result.header.rule_id.clone().unwrap_or_default(),
                    title: result.header.rule_title.clone(),
                    level,
                    group_key,
                    events: if ids.is_empty() { vec![event.id] } else { ids },
                    first_at,
                    last_at: event.at,
                });
            }
        }
        alerts
    }
}

/// The fields every event has, as the rules name them.
const FIELD_NAMES: [&str; 5] = ["id", "kind", "user", "source_ip", "detail"];

/// A security event as the rules read it: five flat fields, borrowed,
/// nothing executed, nothing rendered, no JSON object built per event (the
/// rules' hot path; see `benches/detection.rs`). The id is formatted only
/// if a rule or a correlation asks for it.
struct Fields<'a> {
    event: &'a SecurityEvent,
    id: std::cell::OnceCell<String>,
}

impl<'a> Fields<'a> {
    fn of(event: &'a SecurityEvent) -> Fields<'a> {
        Fields {
            event,
            id: std::cell::OnceCell::new(),
        }
    }

    fn id(&self) -> &str {
        self.id
            .get_or_init(|| itoa::Buffer::new().format(self.event.id).to_owned())
    }

    fn field(&self, name: &str) -> Option<&str> {
        Some(match name {
            "kind" => &self.event.kind,
            "user" => &self.event.username,
            "source_ip" => &self.event.address,
            "detail" => &self.event.detail,
            "id" => self.id(),
            _ => return None,
        })
    }

    fn values(&self) -> [(&'static str, &str); 5] {
        [
            ("id", self.id()),
            ("kind", &self.event.kind),
            ("user", &self.event.username),
            ("source_ip", &self.event.address),
            ("detail", &self.event.detail),
        ]
    }
}

impl rsigma_eval::Event for Fields<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.field(path).map(|v| EventValue::Str(Cow::Borrowed(v)))
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.values().into_iter().any(|(_, v)| pred(v))
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        self.values()
            .into_iter()
            .map(|(_, v)| Cow::Borrowed(v))
            .collect()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for (_, v) in self.values() {
            visit(v);
        }
    }

    /// The correlation engine asks for an event's JSON only to take its id
    /// for an alert's event references (`CorrelationEventMode::Refs`, and
    /// `include_event` is off): the id alone, not an object of every field
    /// built for each event a correlation counts, which was a fifth of
    /// detection's time in `benches/detection.rs`.
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "id": self.id() })
    }

    fn field_keys(&self) -> Vec<Cow<'_, str>> {
        FIELD_NAMES.into_iter().map(Cow::Borrowed).collect()
    }

    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        for k in FIELD_NAMES {
            visit(k);
        }
        true
    }
}

/// Reads new security events every two seconds, evaluates them and stores
/// the alerts with the read position, in one transaction.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0u64.. {
            tick.tick().await;
            if let Err(e) = round(&state).await {
                tracing::warn!(error = %e, "detection");
            }
            // Every ten minutes, events past their retention go (read ones only).
            if n % 300 == 0 {
                prune(&state).await;
            }
        }
    })
}

/// Deletes security events past `security_event_retention_days`, in
/// batches, never one detection has not read.
pub async fn prune(state: &AppState) {
    let days = i64::from(state.config.security_event_retention_days.max(1));
    let before = nara_core::Timestamp::now().0 - days * 86_400_000;
    loop {
        match state.store.prune_security_events(before, 10_000).await {
            Ok(n) if n > 0 => {
                tracing::info!(events = n, days, "security events past retention deleted")
            }
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "pruning security events");
                return;
            }
        }
    }
}

/// One round of detection; how many alerts it raised.
pub async fn round(state: &AppState) -> Result<usize, nara_store::StoreError> {
    let mut raised = 0;
    state
        .detector
        .set_switched_off(state.store.rules_switched_off().await?);
    loop {
        let cursor = state.store.detection_cursor().await?;
        let events = state.store.security_events_after(cursor, BATCH).await?;
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(raised);
        };
        let alerts = state.detector.evaluate(&events);
        raised += alerts.len();
        for alert in &alerts {
            tracing::warn!(rule = %alert.title, level = %alert.level, group = %alert.group_key, "alert raised");
        }
        state.store.record_alerts(&alerts, last).await?;
        if (events.len() as i64) < BATCH {
            return Ok(raised);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(id: i64, user: &str, address: &str, at: i64) -> SecurityEvent {
        SecurityEvent {
            id,
            at,
            kind: "login.failed".into(),
            account_id: None,
            username: user.into(),
            address: address.into(),
            detail: "wrong password".into(),
        }
    }

    #[test]
    fn the_starter_rules_load() {
        let detector = Detector::starter().unwrap();
        assert!(detector.rules() >= 9, "{} rules", detector.rules());
    }

    #[test]
    fn credential_stuffing_from_one_address_raises_one_alert() {
        let detector = Detector::starter().unwrap();
        let at = 1_800_000_000_000;
        // Four accounts: below the threshold; then a fifth.
        let mut events: Vec<_> = (0..4)
            .map(|i| failed(i + 1, &format!("user{i}"), "203.0.113.9", at + i * 1000))
            .collect();
        assert!(detector.evaluate(&events).is_empty());
        events = vec![
            failed(5, "user4", "203.0.113.9", at + 5000),
            failed(6, "user5", "203.0.113.9", at + 6000),
        ];
        let alerts = detector.evaluate(&events);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let alert = &alerts[0];
        assert_eq!(alert.level, "high");
        assert!(alert.title.contains("credential stuffing"));
        assert_eq!(alert.group_key, "source_ip=203.0.113.9");
        assert!(alert.events.contains(&5), "{:?}", alert.events);
        // Another address, the same accounts: nothing yet.
        assert!(
            detector
                .evaluate(&[failed(7, "user0", "198.51.100.7", at + 7000)])
                .is_empty()
        );
    }

    fn event(
        id: i64,
        kind: &str,
        user: &str,
        address: &str,
        detail: &str,
        at: i64,
    ) -> SecurityEvent {
        SecurityEvent {
            id,
            at,
            kind: kind.into(),
            account_id: None,
            username: user.into(),
            address: address.into(),
            detail: detail.into(),
        }
    }

    /// The titles of the alerts `events` raise on the starter rules.
    fn raised(events: &[SecurityEvent]) -> Vec<String> {
        Detector::starter()
            .unwrap()
            .evaluate(events)
            .into_iter()
            .map(|a| a.title)
            .collect()
    }

    #[test]
    fn a_password_sprayed_slowly_across_accounts_is_seen_over_the_day() {
        let at = 1_800_000_000_000;
        // Twenty accounts, one every twenty minutes: never five in ten minutes.
        let events: Vec<_> = (0..20)
            .map(|i| {
                failed(
                    i + 1,
                    &format!("user{i}"),
                    "203.0.113.50",
                    at + i * 1_200_000,
                )
            })
            .collect();
        let titles = raised(&events);
        assert_eq!(titles.len(), 1, "{titles:?}");
        assert!(titles[0].starts_with("nara password spraying"));
        assert!(
            raised(&events[..19]).is_empty(),
            "nineteen accounts are not yet"
        );
    }

    #[test]
    fn one_key_signing_from_two_addresses_is_an_alert() {
        let at: i64 = 1_800_000_000_000;
        let key = |id: i64, address: &str, t: i64| {
            event(
                id,
                "machine.key_used",
                "mois-registry-2026",
                address,
                "KR/GOV/MOIS/registry",
                at + t,
            )
        };
        assert!(
            raised(&[key(1, "192.0.2.10", 0), key(2, "192.0.2.10", 700_000)]).is_empty(),
            "one place"
        );
        let titles = raised(&[key(1, "192.0.2.10", 0), key(2, "203.0.113.66", 60_000)]);
        assert_eq!(
            titles,
            vec!["nara agency system key used from two places".to_owned()]
        );
    }

    #[test]
    fn one_official_reading_a_hundred_records_in_an_hour_is_an_alert() {
        let at = 1_800_000_000_000;
        let read = |i: i64, user: &str| {
            event(
                i,
                "personal_data.read",
                user,
                "10.1.2.3",
                &format!("case MOIS-2026-{i}"),
                at + i * 30_000,
            )
        };
        let caseload: Vec<_> = (0..99).map(|i| read(i, "kim.official")).collect();
        assert!(raised(&caseload).is_empty(), "99 in an hour is a busy day");
        let mut browsing = caseload;
        browsing.push(read(99, "kim.official"));
        let titles = raised(&browsing);
        assert_eq!(
            titles,
            vec!["nara one official reading unusually many citizens' records".to_owned()]
        );
    }

    #[test]
    fn three_of_one_agencys_systems_down_within_fifteen_minutes_is_an_alert() {
        let at = 1_800_000_000_000;
        let down = |i: i64, agency: &str, code: &str| {
            event(i, "probe.down", agency, "", code, at + i * 60_000)
        };
        assert!(
            raised(&[
                down(1, "KR/GOV/MOIS", "mois-a"),
                down(2, "KR/GOV/MOIS", "mois-b"),
                down(3, "KR/GOV/MOF", "mof-a")
            ])
            .is_empty()
        );
        let titles = raised(&[
            down(1, "KR/GOV/MOIS", "mois-a"),
            down(2, "KR/GOV/MOIS", "mois-b"),
            down(3, "KR/GOV/MOIS", "mois-c"),
        ]);
        assert_eq!(
            titles,
            vec!["nara probes failing across an agency".to_owned()]
        );
    }

    #[test]
    fn a_rule_switched_off_raises_nothing_until_switched_back_on() {
        let detector = Detector::starter().unwrap();
        let stuffing = detector
            .listed()
            .iter()
            .find(|r| r.title.starts_with("nara credential stuffing"))
            .unwrap()
            .id
            .clone();
        detector.set_switched_off([stuffing.clone()]);
        let at = 1_800_000_000_000;
        let run = |first: i64, address: &str| -> Vec<SecurityEvent> {
            (0..6)
                .map(|i| failed(first + i, &format!("user{i}"), address, at + first + i))
                .collect()
        };
        assert!(detector.evaluate(&run(1, "203.0.113.9")).is_empty());
        detector.set_switched_off([]);
        let alerts = detector.evaluate(&run(10, "198.51.100.7"));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule_id, stuffing);
    }

    #[test]
    fn a_trial_reports_the_tested_files_matches_and_leaves_the_running_rules_alone() {
        let detector = Detector::starter().unwrap();
        let events: Vec<_> = (0..6)
            .map(|i| {
                failed(
                    i + 1,
                    &format!("user{i}"),
                    "203.0.113.9",
                    1_800_000_000_000 + i,
                )
            })
            .collect();
        let (file, yaml) = STARTER_RULES
            .iter()
            .find(|(f, _)| *f == "credential_stuffing.yml")
            .unwrap();
        let trial = detector.trial(file, yaml, &events).unwrap();
        assert_eq!(trial.events, 6);
        assert_eq!(trial.matches.len(), 1, "{trial:?}");
        assert_eq!(trial.matches[0].group_key, "source_ip=203.0.113.9");
        // The building block of a correlation is tested on its own too.
        let (file, yaml) = STARTER_RULES
            .iter()
            .find(|(f, _)| *f == "login_failed.yml")
            .unwrap();
        assert_eq!(
            detector.trial(file, yaml, &events).unwrap().matches.len(),
            6
        );
        // A file that does not load says why; one with no rule is refused.
        let bad = detector.trial("draft.yml", "title: [unclosed", &events);
        assert!(matches!(bad, Err(RuleError { file, .. }) if file == "draft.yml"));
        // The running engine saw none of it: the same events raise the alert now.
        assert_eq!(detector.evaluate(&events).len(), 1);
    }

    #[test]
    fn agency_systems_reported_failures_correlate_too() {
        let detector = Detector::starter().unwrap();
        let events: Vec<_> = (0..6)
            .map(|i| {
                let mut e = failed(
                    i + 1,
                    &format!("citizen-{i}"),
                    "198.51.100.23",
                    1_800_000_000_000 + i,
                );
                e.kind = "system.login.failed".into();
                e
            })
            .collect();
        let alerts = detector.evaluate(&events);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(
            alerts[0]
                .title
                .starts_with("agency system credential stuffing")
        );
    }

    #[test]
    fn a_standalone_rule_alerts_on_one_event_and_informational_ones_never() {
        let detector = Detector::starter().unwrap();
        let mut locked = failed(1, "minji", "192.0.2.1", 1_800_000_000_000);
        locked.kind = "login.locked".into();
        let alerts = detector.evaluate(&[locked]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].level, "medium");
        assert_eq!(alerts[0].events, vec![1]);
        assert!(
            detector
                .evaluate(&[failed(2, "minji", "192.0.2.1", 1_800_000_001_000)])
                .is_empty()
        );
    }

    #[test]
    fn rules_from_a_directory_join_the_starter_set_and_bad_files_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.yml"),
            "title: An agency's own\nid: 0b7e7c52-6f7e-4b37-9d0e-111111111111\nlogsource:\n  product: nara\n  service: security\ndetection:\n  sel:\n    kind: account.created\n  condition: sel\nlevel: low\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.yml"), "title: [unclosed").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a rule").unwrap();
        let detector = Detector::with_dir(Some(dir.path()));
        let starter = Detector::starter().unwrap().rules();
        assert_eq!(detector.rules(), starter + 1);
        assert!(
            detector
                .listed()
                .iter()
                .any(|r| r.title == "An agency's own" && r.level == "low")
        );
        assert_eq!(detector.refused().len(), 1);
        assert!(detector.refused()[0].file.ends_with("broken.yml"));
        let mut created = failed(1, "new-official", "192.0.2.1", 1_800_000_000_000);
        created.kind = "account.created".into();
        assert_eq!(
            detector.evaluate(&[created]).len(),
            1,
            "the agency's rule runs"
        );
    }

    #[test]
    fn a_rule_that_does_not_parse_is_named() {
        let bad = Detector::new(&[("broken.yml", "title: x\ndetection: [unclosed")]);
        assert!(matches!(bad, Err(RuleError { file, .. }) if file == "broken.yml"));
        let unknown = Detector::new(&[(
            "modifier.yml",
            "title: x\nlogsource:\n  product: nara\ndetection:\n  sel:\n    kind|nosuchmodifier: a\n  condition: sel\n",
        )]);
        assert!(unknown.is_err(), "an unknown modifier is refused");
    }
}
