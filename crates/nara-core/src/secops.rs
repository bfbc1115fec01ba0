//! Security operations' rules that decide something: how an alert's triage
//! may move. Pure; the pages, the API and the store all ask here.

use serde::{Deserialize, Serialize};

/// Where an alert stands in its triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Raised by a rule; nobody has looked yet.
    Open,
    /// An analyst is on it.
    Acknowledged,
    /// Closed: it was an attack (or a real fault).
    TruePositive,
    /// Closed: the rule fired on something harmless.
    FalsePositive,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 4] = [
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::TruePositive,
        AlertStatus::FalsePositive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::TruePositive => "true_positive",
            AlertStatus::FalsePositive => "false_positive",
        }
    }

    pub fn parse(text: &str) -> Option<AlertStatus> {
        AlertStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_closed(self) -> bool {
        matches!(self, AlertStatus::TruePositive | AlertStatus::FalsePositive)
    }

    /// Whether triage may move an alert from `self` to `to`: forward from
    /// open to acknowledged to closed (either way), or a closed alert
    /// reopened; never to where it already is.
    pub fn may_become(self, to: AlertStatus) -> bool {
        use AlertStatus::*;
        matches!(
            (self, to),
            (Open, Acknowledged | TruePositive | FalsePositive)
                | (Acknowledged, TruePositive | FalsePositive)
                | (TruePositive | FalsePositive, Open)
        )
    }
}

/// A probed system's health, and a service's (the worst of the systems it
/// depends on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Up,
    /// Answering, but slowly.
    Degraded,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }

    pub fn parse(text: &str) -> Option<Health> {
        [Health::Up, Health::Degraded, Health::Down]
            .into_iter()
            .find(|h| h.as_str() == text)
    }
}

/// Slower than this, a system that answers is degraded.
pub const SLOW_MS: u64 = 1_000;

/// What one probe found: an HTTP status (none: no answer) after `latency_ms`.
pub fn classify(status: Option<u16>, latency_ms: u64) -> Health {
    match status {
        Some(200..=399) if latency_ms <= SLOW_MS => Health::Up,
        Some(200..=399) => Health::Degraded,
        _ => Health::Down,
    }
}

/// Fewer days than this before its certificate expires, a system is degraded.
pub const CERTIFICATE_WARN_DAYS: i64 = 14;

/// A probe's verdict given the days left on the endpoint's certificate
/// (https): one about to expire degrades a system that answers; an expired
/// one is down.
pub fn with_certificate(health: Health, days_left: Option<i64>) -> Health {
    match days_left {
        Some(d) if d < 0 => Health::Down,
        Some(d) if d < CERTIFICATE_WARN_DAYS => health.max(Health::Degraded),
        _ => health,
    }
}

/// A service is down when a system it depends on is, degraded when one is
/// slow; with nothing probed it is up as far as anyone knows.
pub fn service_health(systems: impl IntoIterator<Item = Health>) -> Health {
    systems.into_iter().max().unwrap_or(Health::Up)
}

/// How often a system is probed, by its grade (1 most critical): 30 s,
/// 2 min, 5 min, 15 min.
pub fn probe_every_ms(grade: u8) -> i64 {
    match grade {
        1 => 30_000,
        2 => 120_000,
        3 => 300_000,
        _ => 900_000,
    }
}

/// Whether nara may probe `endpoint`: http(s) or tcp only, and — unless the
/// operator turned probing of the whole inventory on — only an IP literal on
/// this machine's loopback. No name is resolved to decide: a seeded or
/// mistyped address is never contacted by default.
pub fn may_probe(endpoint: &str, whole_inventory: bool) -> bool {
    let Ok(url) = url::Url::parse(endpoint) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https" | "tcp") {
        return false;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => true,
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => true,
        // A tcp:// URL's host is opaque to the URL standard: an IPv4
        // literal arrives as a name.
        Some(url::Host::Domain(name))
            if name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback()) =>
        {
            true
        }
        Some(_) => whole_inventory,
        None => false,
    }
}

/// Where an incident stands: open (being analysed), contained (the harm
/// is stopped, the cause not yet removed), resolved; a resolved incident
/// may be reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Contained,
    Resolved,
}

impl IncidentStatus {
    pub const ALL: [IncidentStatus; 3] = [
        IncidentStatus::Open,
        IncidentStatus::Contained,
        IncidentStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Contained => "contained",
            IncidentStatus::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<IncidentStatus> {
        IncidentStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Forward (open → contained → resolved, or open → resolved), or a
    /// resolved incident reopened; never in place, never backwards from
    /// contained (containment is not undone by a form).
    pub fn may_become(self, to: IncidentStatus) -> bool {
        use IncidentStatus::*;
        matches!(
            (self, to),
            (Open, Contained | Resolved) | (Contained, Resolved) | (Resolved, Open)
        )
    }

    /// Alerts may be added, notes written and the incident assigned only
    /// while it is not resolved.
    pub fn is_active(self) -> bool {
        self != IncidentStatus::Resolved
    }
}

/// The national cyber alert level (Korea's five: 정상, 관심, 주의, 경계, 심각),
/// set by a security analyst with a reason. It acts: per-address limits
/// tighten with it, and from `Caution` a new machine key needs a second
/// analyst's approval.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    #[default]
    Normal,
    Attention,
    Caution,
    Alert,
    Serious,
}

impl AlertLevel {
    pub const ALL: [AlertLevel; 5] = [
        AlertLevel::Normal,
        AlertLevel::Attention,
        AlertLevel::Caution,
        AlertLevel::Alert,
        AlertLevel::Serious,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Normal => "normal",
            AlertLevel::Attention => "attention",
            AlertLevel::Caution => "caution",
            AlertLevel::Alert => "alert",
            AlertLevel::Serious => "serious",
        }
    }

    pub fn parse(text: &str) -> Option<AlertLevel> {
        AlertLevel::ALL.into_iter().find(|l| l.as_str() == text)
    }

    /// 0 (normal) to 4 (serious).
    pub fn rank(self) -> u8 {
        self as u8
    }

    pub fn from_rank(rank: u8) -> AlertLevel {
        AlertLevel::ALL
            .get(usize::from(rank))
            .copied()
            .unwrap_or(AlertLevel::Serious)
    }

    /// How many requests a minute one address may make to the public
    /// routes at this level, given the operator's `normal` figure: all of it
    /// at normal, then ¾, ½, ¼ and ⅛ — never below one.
    pub fn per_address_limit(self, normal: u32) -> u32 {
        let (num, den) = match self {
            AlertLevel::Normal => (1, 1),
            AlertLevel::Attention => (3, 4),
            AlertLevel::Caution => (1, 2),
            AlertLevel::Alert => (1, 4),
            AlertLevel::Serious => (1, 8),
        };
        (u64::from(normal) * num / den).clamp(1, u64::from(u32::MAX)) as u32
    }

    /// Whether a new machine key needs a second analyst's approval before
    /// it may sign: from caution up.
    pub fn machine_keys_need_second_approval(self) -> bool {
        self >= AlertLevel::Caution
    }
}

/// How bad an alert is, as Sigma's `level` says.
pub fn level_rank(level: &str) -> u8 {
    match level {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triage_moves_forward_or_reopens_never_in_place() {
        use AlertStatus::*;
        for from in AlertStatus::ALL {
            assert!(!from.may_become(from), "{from:?} to itself");
            assert_eq!(AlertStatus::parse(from.as_str()), Some(from));
        }
        assert!(Open.may_become(Acknowledged));
        assert!(Open.may_become(FalsePositive));
        assert!(Acknowledged.may_become(TruePositive));
        assert!(!Acknowledged.may_become(Open), "acknowledged stays owned");
        assert!(TruePositive.may_become(Open));
        assert!(!TruePositive.may_become(FalsePositive), "reopen first");
        assert_eq!(AlertStatus::parse("closed"), None);
    }

    #[test]
    fn probes_classify_and_services_take_the_worst() {
        assert_eq!(classify(Some(200), 20), Health::Up);
        assert_eq!(classify(Some(302), SLOW_MS + 1), Health::Degraded);
        assert_eq!(classify(Some(503), 5), Health::Down);
        assert_eq!(classify(None, 5), Health::Down);
        assert_eq!(
            service_health([Health::Up, Health::Degraded]),
            Health::Degraded
        );
        assert_eq!(service_health([Health::Down, Health::Up]), Health::Down);
        assert_eq!(service_health([]), Health::Up);
        assert!(probe_every_ms(1) < probe_every_ms(2) && probe_every_ms(3) < probe_every_ms(4));
    }

    #[test]
    fn only_loopback_is_probed_unless_the_operator_says_otherwise() {
        assert!(may_probe("http://127.0.0.1:8080/demo/probe/ok", false));
        assert!(may_probe("https://[::1]/health", false));
        assert!(!may_probe("https://resreg.mois.go.kr/health", false));
        assert!(
            !may_probe("http://localhost/health", false),
            "no name is resolved"
        );
        assert!(!may_probe("http://10.0.0.1/", false));
        assert!(may_probe("https://resreg.mois.go.kr/health", true));
        assert!(!may_probe("ftp://127.0.0.1/", true));
        assert!(!may_probe("not a url", true));
        assert!(
            may_probe("tcp://127.0.0.1:5432", false),
            "a TCP port on loopback"
        );
        assert!(may_probe("tcp://[::1]:5432", false));
        assert!(!may_probe("tcp://10.0.0.1:5432", false));
        assert!(
            !may_probe("tcp://localhost:5432", false),
            "no name is resolved"
        );
        assert!(may_probe("tcp://db.mois.go.kr:5432", true));
    }

    #[test]
    fn a_certificate_about_to_expire_degrades_and_an_expired_one_is_down() {
        assert_eq!(with_certificate(Health::Up, None), Health::Up);
        assert_eq!(with_certificate(Health::Up, Some(90)), Health::Up);
        assert_eq!(
            with_certificate(Health::Up, Some(CERTIFICATE_WARN_DAYS - 1)),
            Health::Degraded
        );
        assert_eq!(
            with_certificate(Health::Down, Some(3)),
            Health::Down,
            "never better than the answer"
        );
        assert_eq!(with_certificate(Health::Up, Some(-1)), Health::Down);
    }

    #[test]
    fn incidents_move_forward_or_reopen() {
        use IncidentStatus::*;
        for s in IncidentStatus::ALL {
            assert!(!s.may_become(s));
            assert_eq!(IncidentStatus::parse(s.as_str()), Some(s));
        }
        assert!(Open.may_become(Contained) && Contained.may_become(Resolved));
        assert!(Resolved.may_become(Open) && !Contained.may_become(Open));
        assert!(Open.is_active() && !Resolved.is_active());
    }

    #[test]
    fn higher_levels_only_tighten() {
        for normal in [1u32, 7, 600, 1200, u32::MAX] {
            let limits: Vec<u32> = AlertLevel::ALL
                .iter()
                .map(|l| l.per_address_limit(normal))
                .collect();
            assert_eq!(limits[0], normal);
            assert!(limits.windows(2).all(|w| w[1] <= w[0]), "{limits:?}");
            assert!(limits.iter().all(|l| *l >= 1));
        }
        assert_eq!(AlertLevel::Serious.per_address_limit(1200), 150);
        for l in AlertLevel::ALL {
            assert_eq!(AlertLevel::parse(l.as_str()), Some(l));
            assert_eq!(AlertLevel::from_rank(l.rank()), l);
        }
        assert!(!AlertLevel::Attention.machine_keys_need_second_approval());
        assert!(AlertLevel::Caution.machine_keys_need_second_approval());
    }
}
