//! The operators' view of backups (`/operations/backups`): the recovery
//! point, the last proof by the ledger, every backup kept with its
//! verification, and a chart of their sizes.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::schedule::Plan;
use crate::AppState;
use crate::web::{Layout, PageCtx, render, when};

pub struct BackupView {
    pub id: String,
    pub when: String,
    pub files: usize,
    pub size: String,
    pub entries: u64,
    /// `ok`, `failed` or `never`.
    pub verification: &'static str,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "backups.html")]
struct BackupsPage {
    layout: Layout,
    destination: Option<String>,
    every_minutes: u64,
    recovery_point: Option<String>,
    /// The destination answered.
    reachable: bool,
    /// The newest backup is older than two intervals.
    stale: bool,
    last_verified: Option<String>,
    verification_failed: bool,
    /// The log shipped since the node started: (segments, size), if streaming.
    shipped: Option<(u64, String)>,
    backups: Vec<BackupView>,
    chart: crate::web::BarChart,
}

/// How long ago `ms` was, in words a person reads at a glance.
fn ago(now: i64, ms: i64) -> String {
    let seconds = (now - ms).max(0) / 1000;
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

fn size(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

pub async fn backups_page(ctx: PageCtx, State(state): State<AppState>) -> Response {
    let plan = Plan::of(&state.config);
    let now = nara_core::Timestamp::now().0;
    let (listed, status, reachable) = match &plan {
        Some(p) => match p.destination.list_backups().await {
            Ok(listed) => {
                let status = p.destination.status().await;
                let reachable = status.is_some();
                (listed, status.unwrap_or_default(), reachable)
            }
            Err(_) => (Vec::new(), super::Status::default(), false),
        },
        None => (Vec::new(), super::Status::default(), true),
    };
    let largest = listed
        .iter()
        .map(|(m, _)| m.files.iter().map(|f| f.bytes).sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1);
    let bytes_of = |m: &super::Manifest| m.files.iter().map(|f| f.bytes).sum::<u64>();
    let chart = crate::web::BarChart {
        id: "backup-chart-title",
        title: ctx.tr().s("backup.chart_title").into(),
        bars: listed
            .iter()
            .rev()
            .map(|(m, _)| crate::web::Bar {
                width: (bytes_of(m) * 100 / largest) as i64,
                label: format!("{} · {}", size(bytes_of(m)), when(m.created_ms)),
            })
            .collect(),
    };
    let backups = listed
        .iter()
        .rev()
        .map(|(m, v)| {
            let bytes = bytes_of(m);
            BackupView {
                id: m.id.clone(),
                when: when(m.created_ms),
                files: m.files.len(),
                size: size(bytes),
                entries: m.ledger.size,
                verification: match v {
                    Some(v) if v.ok => "ok",
                    Some(_) => "failed",
                    None => "never",
                },
                detail: v.as_ref().map(|v| v.detail.clone()).unwrap_or_default(),
            }
        })
        .collect();
    render(&BackupsPage {
        layout: ctx.layout(ctx.tr().s("backup.title"), "backups"),
        destination: plan.as_ref().map(|p| p.destination.shown().to_owned()),
        reachable,
        every_minutes: plan.as_ref().map_or(0, |p| p.every.as_secs() / 60),
        recovery_point: match state.backup_stream.recovery_point_seconds(now) {
            Some(seconds) => Some(
                ctx.tr()
                    .s("backup.streaming")
                    .replace("{s}", &format!("{seconds:.0}")),
            ),
            None => status.last_backup_ms.map(|at| ago(now, at)),
        },
        stale: plan.as_ref().is_some_and(|p| {
            status
                .last_backup_ms
                .is_some_and(|_| super::schedule::stale(p, &status, now, now))
        }),
        last_verified: status.last_verified_ms.map(|at| ago(now, at)),
        verification_failed: status.last_verification_failed,
        shipped: state.backup_stream.recovery_point_seconds(now).map(|_| {
            let live = &state.backup_stream;
            (
                live.segments.load(std::sync::atomic::Ordering::Relaxed),
                size(live.bytes.load(std::sync::atomic::Ordering::Relaxed)),
            )
        }),
        backups,
        chart,
    })
}
