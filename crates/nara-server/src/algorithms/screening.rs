//! Citizens' reports screened by registered models: a phone call's
//! transcript in a phishing report by the voice-phishing model, a chat
//! excerpt in a grooming report by the grooming-risk score. Every few
//! seconds, each submitted report that no record screened yet gets one
//! (its source is the report, so a report is screened once however many
//! nodes run this). A flagged report waits for a police official's review
//! like any other record; the person who reported sees the screening on
//! her account. Nothing is screened that nobody reported.

use std::collections::HashSet;
use std::time::Duration;

use nara_store::algorithms::ReportScreen;

use super::{Requested, RunError, run};
use crate::AppState;

/// The reports each model screens.
pub const SCREENS: &[ReportScreen<'static>] = &[
    ReportScreen {
        service: nara_store::blocklist::REPORT_SERVICE,
        model: nara_algorithms::phishing::CODE,
        field: "transcript",
        only_if: Some(("channel", "phone_call")),
    },
    ReportScreen {
        service: GROOMING_REPORT,
        model: nara_algorithms::grooming::CODE,
        field: "excerpt",
        only_if: None,
    },
];

/// The portal's service for reporting an adult who approaches a child
/// online.
pub const GROOMING_REPORT: &str = "grooming-report";

/// Reports read a round at most.
const BATCH: i64 = 200;
/// How far before the newest report already read each round looks again:
/// a report committed late (a slow transaction, another node's clock) with
/// an earlier submission time is still screened.
const LOOK_BACK_MS: i64 = 60_000;

/// What a node remembers of one screen between rounds.
#[derive(Default)]
pub struct Progress {
    /// The newest submission read so far: the first round reads every
    /// report once, the next ones what came since.
    newest: i64,
    /// Reports this node could not screen (text out of the model's range):
    /// not asked again until it restarts.
    refused: HashSet<String>,
}

/// Screens new reports every three seconds.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut progress: Vec<Progress> = SCREENS.iter().map(|_| Progress::default()).collect();
        loop {
            tick.tick().await;
            for (screen, progress) in SCREENS.iter().zip(&mut progress) {
                if let Err(e) = round(&state, screen, progress).await {
                    tracing::warn!(error = %e, model = screen.model, "screening reports");
                }
            }
        }
    })
}

/// The text a report gives the model, if it is one the screen reads.
fn text_to_screen<'a>(
    screen: &ReportScreen<'_>,
    answers: &'a serde_json::Value,
) -> Option<&'a str> {
    if let Some((id, value)) = screen.only_if
        && answers.get(id).and_then(|v| v.as_str()) != Some(value)
    {
        return None;
    }
    answers.get(screen.field).and_then(|t| t.as_str())
}

/// One round of one screen: the reports submitted since a minute before
/// the newest an earlier round read, not screened yet; how many were
/// screened.
pub async fn round(
    state: &AppState,
    screen: &ReportScreen<'static>,
    progress: &mut Progress,
) -> Result<usize, nara_store::StoreError> {
    let since = progress.newest.saturating_sub(LOOK_BACK_MS);
    let reports = state.store.unscreened_reports(screen, since, BATCH).await?;
    let mut screened = 0;
    for report in reports {
        progress.newest = progress.newest.max(report.submitted_at);
        if progress.refused.contains(&report.reference) {
            continue;
        }
        let answers: serde_json::Value = serde_json::from_str(&report.answers).unwrap_or_default();
        let Some(text) = text_to_screen(screen, &answers) else {
            progress.refused.insert(report.reference);
            continue;
        };
        let requested = Requested {
            subject_hash: report.national_id_hash.clone(),
            source: Some(format!("application:{}", report.reference)),
            requested_by: "system".into(),
        };
        match run(
            state,
            screen.model,
            serde_json::json!({ screen.field: text }),
            requested,
        )
        .await
        {
            Ok(_) => screened += 1,
            // Another node screened it first.
            Err(RunError::Store(nara_store::StoreError::Conflict(_))) => {}
            Err(RunError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::info!(report = %report.reference, model = screen.model, why = %e, "a report the screen cannot read");
                progress.refused.insert(report.reference);
            }
        }
    }
    Ok(screened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_screen_reads_only_the_reports_it_names() {
        let [calls, chats] = SCREENS else {
            panic!("two screens")
        };
        let call = serde_json::json!({"channel": "phone_call", "transcript": "hello there"});
        let sms =
            serde_json::json!({"channel": "sms", "transcript": "hello there", "content": "x"});
        assert_eq!(text_to_screen(calls, &call), Some("hello there"));
        assert_eq!(
            text_to_screen(calls, &sms),
            None,
            "only a phone call's transcript"
        );
        let chat = serde_json::json!({"platform": "game", "excerpt": "몇 살이야?"});
        assert_eq!(text_to_screen(chats, &chat), Some("몇 살이야?"));
        assert_eq!(
            text_to_screen(chats, &serde_json::json!({"excerpt": 5})),
            None
        );
        assert_eq!(text_to_screen(chats, &serde_json::json!({})), None);
    }
}
