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
use rsigma_eval::event::JsonEvent;
use rsigma_eval::{CorrelationConfig, CorrelationEngine, CorrelationEventMode};

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

/// The loaded rules and their state (correlation windows).
pub struct Detector {
    engine: Mutex<CorrelationEngine>,
    rules: usize,
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
        let config = CorrelationConfig {
            // A correlation's building blocks are not alerts by themselves.
            emit_detections: false,
            correlation_event_mode: CorrelationEventMode::Refs,
            max_correlation_events: 50,
            // One alert per group and rule every ten minutes, not one per event.
            suppress: Some(600),
            ..CorrelationConfig::default()
        };
        let mut engine = CorrelationEngine::new(config);
        let mut rules = 0;
        for (file, yaml) in files {
            let bad = |why: String| RuleError {
                file: (*file).to_owned(),
                why,
            };
            let collection =
                rsigma_parser::parse_sigma_yaml(yaml).map_err(|e| bad(e.to_string()))?;
            if !collection.errors.is_empty() {
                return Err(bad(collection.errors.join("; ")));
            }
            rules += collection.rules.len() + collection.correlations.len();
            engine
                .add_collection(&collection)
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(Detector {
            engine: Mutex::new(engine),
            rules,
        })
    }

    /// No rules at all.
    pub fn empty() -> Detector {
        Detector {
            engine: Mutex::new(CorrelationEngine::new(CorrelationConfig::default())),
            rules: 0,
        }
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
            let fields = normalize(event);
            let results = engine.process_event_at(&JsonEvent::borrow(&fields), event.at / 1000);
            for result in results {
                let level = result
                    .header
                    .level
                    .map(|l| format!("{l:?}").to_lowercase())
                    .unwrap_or_else(|| "medium".into());
                if nara_core::secops::level_rank(&level) == 0 {
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

/// A security event as the rules see it: flat fields, nothing executed,
/// nothing rendered.
pub fn normalize(event: &SecurityEvent) -> serde_json::Value {
    serde_json::json!({
        "id": event.id.to_string(),
        "kind": event.kind,
        "user": event.username,
        "source_ip": event.address,
        "detail": event.detail,
    })
}

/// Reads new security events every two seconds, evaluates them and stores
/// the alerts with the read position, in one transaction.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = round(&state).await {
                tracing::warn!(error = %e, "detection");
            }
        }
    })
}

/// One round of detection; how many alerts it raised.
pub async fn round(state: &AppState) -> Result<usize, nara_store::StoreError> {
    let mut raised = 0;
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
