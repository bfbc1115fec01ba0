//! Phone-call phishing reports screened by the registered voice-phishing
//! model: every few seconds, each submitted report with a transcript that
//! no record screened yet gets one (its source is the report, so a report
//! is screened once however many nodes run this). A flagged call waits for
//! a police official's review like any other record; the person who
//! reported sees the screening on her account.

use std::time::Duration;

use super::{Requested, RunError, run};
use crate::AppState;

/// The model that screens call transcripts.
pub const MODEL: &str = nara_algorithms::phishing::CODE;

/// Reports read a round at most.
const BATCH: i64 = 200;
/// How far before the newest report already read each round looks again:
/// a report committed late (a slow transaction, another node's clock) with
/// an earlier submission time is still screened.
const LOOK_BACK_MS: i64 = 60_000;

/// Screens new reports every three seconds.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Reports this node could not screen (a transcript out of the
        // model's range): not asked again until it restarts.
        let mut refused = std::collections::HashSet::new();
        // The newest submission read so far: the first round reads every
        // report once, the next ones what came since.
        let mut newest = 0;
        loop {
            tick.tick().await;
            if let Err(e) = round(&state, &mut refused, &mut newest).await {
                tracing::warn!(error = %e, "screening phishing reports");
            }
        }
    })
}

/// One round: the reports submitted since a minute before `newest` (the
/// newest submission an earlier round read; 0 at first) not screened yet;
/// how many were screened.
pub async fn round(
    state: &AppState,
    refused: &mut std::collections::HashSet<String>,
    newest: &mut i64,
) -> Result<usize, nara_store::StoreError> {
    let since = newest.saturating_sub(LOOK_BACK_MS);
    let reports = state
        .store
        .unscreened_call_reports(MODEL, since, BATCH)
        .await?;
    let mut screened = 0;
    for report in reports {
        *newest = (*newest).max(report.submitted_at);
        if refused.contains(&report.reference) {
            continue;
        }
        let answers: serde_json::Value = serde_json::from_str(&report.answers).unwrap_or_default();
        let Some(transcript) = answers.get("transcript").and_then(|t| t.as_str()) else {
            refused.insert(report.reference);
            continue;
        };
        let requested = Requested {
            subject_hash: report.national_id_hash.clone(),
            source: Some(format!("application:{}", report.reference)),
            requested_by: "system".into(),
        };
        match run(
            state,
            MODEL,
            serde_json::json!({ "transcript": transcript }),
            requested,
        )
        .await
        {
            Ok(_) => screened += 1,
            // Another node screened it first.
            Err(RunError::Store(nara_store::StoreError::Conflict(_))) => {}
            Err(RunError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::info!(report = %report.reference, why = %e, "a report the screen cannot read");
                refused.insert(report.reference);
            }
        }
    }
    Ok(screened)
}
