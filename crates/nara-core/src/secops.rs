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
}
