//! What backups cost a node that serves, measured in one run.
//!
//!     cargo bench -p nara --bench backup_serving
//!
//! Starts two real `nara demo` nodes (SQLite, synchronous=FULL): one without
//! backups (the baseline), one with continuous backup (every committed
//! transaction shipped within a second, encrypted). In interleaved rounds it
//! measures full API submissions per second and a portal page's p99 on
//!   1. the node without backups,
//!   2. the node shipping its log continuously,
//!   3. the node without backups while `nara backup create` takes snapshots
//!      of it back to back (the snapshot's cost, apart from the stream's),
//!
//! and, during the shipping rounds, the recovery point the node reports
//! (`nara_backup_recovery_point_seconds`: seconds of committed writes not yet
//! shipped), sampled every 100 ms: p50/p99. Goal: ≥ 0.8 of the rate, p99
//! within 2×. Medians over rounds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::*;

const ROUNDS: usize = 5;
const PAGE_CLIENTS: usize = 50;

#[derive(serde::Deserialize)]
struct DemoAccount {
    #[serde(default)]
    api_token: Option<String>,
}

/// What a node needs to be loaded: a submission and a portal page request.
struct Node {
    base: String,
    dir: tempfile::TempDir,
    submit: Request,
    page: Request,
    token: String,
    _server: DemoServer,
}

async fn node(extra: &[&str]) -> Node {
    let (server, base, dir) = start_demo_with(env!("CARGO_BIN_EXE_nara"), extra).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(PAGE_CLIENTS)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = serde_json::from_str::<Vec<DemoAccount>>(
        &std::fs::read_to_string(dir.path().join("demo-accounts.json")).unwrap(),
    )
    .unwrap()
    .into_iter()
    .find_map(|a| a.api_token)
    .expect("the demo's operator token");
    let Citizen {
        submit,
        portal: page,
    } = citizen(&client, &base, dir.path()).await;
    // Warm up: connections, caches, the first base backup.
    load(CONCURRENCY, 1.0, 201, submit.clone()).await;
    load(PAGE_CLIENTS, 0.5, 200, page.clone()).await;
    Node {
        base,
        dir,
        submit,
        page,
        token,
        _server: server,
    }
}

/// The node's reported recovery point, in seconds.
async fn recovery_point(client: &reqwest::Client, base: &str, token: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("nara_backup_recovery_point_seconds "))
        .and_then(|v| v.trim().parse().ok())
}

/// One round on `node`: submissions for ROUND_SECONDS, then the page; the
/// submission rate and the page's p99 in milliseconds.
async fn round(node: &Node) -> (f64, f64) {
    let (rate, _) = load(CONCURRENCY, ROUND_SECONDS, 201, node.submit.clone()).await;
    let (_, lat) = load(PAGE_CLIENTS, ROUND_SECONDS / 2.0, 200, node.page.clone()).await;
    (rate, percentile(&lat, 0.99).as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let plain = node(&["--no-backups"]).await;
    let shipping = node(&[]).await;
    let client = reqwest::Client::new();
    assert!(
        recovery_point(&client, &shipping.base, &shipping.token)
            .await
            .is_some(),
        "the shipping node reports its recovery point"
    );
    println!(
        "nara backups while serving (SQLite, synchronous=FULL; {CONCURRENCY} submitting clients, {PAGE_CLIENTS} page clients, {ROUNDS} interleaved rounds of {ROUND_SECONDS} s)"
    );
    let key = plain.dir.path().join("bench-backup.key");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nara"))
        .args(["backup", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let site = tempfile::tempdir().unwrap();

    let (mut base_rate, mut base_p99) = (Vec::new(), Vec::new());
    let (mut ship_rate, mut ship_p99) = (Vec::new(), Vec::new());
    let (mut snap_rate, mut snap_p99) = (Vec::new(), Vec::new());
    let mut points = Vec::new();
    let mut snapshots = 0usize;
    for _ in 0..ROUNDS {
        let (r, p) = round(&plain).await;
        base_rate.push(r);
        base_p99.push(p);

        // Shipping: sample the recovery point while the round runs.
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (sampling, client, base, token) = (
                sampling.clone(),
                client.clone(),
                shipping.base.clone(),
                shipping.token.clone(),
            );
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while sampling.load(Ordering::Relaxed) {
                    if let Some(s) = recovery_point(&client, &base, &token).await {
                        seen.push(s);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                seen
            })
        };
        let (r, p) = round(&shipping).await;
        sampling.store(false, Ordering::Relaxed);
        points.extend(sampler.await.unwrap());
        ship_rate.push(r);
        ship_p99.push(p);

        // Snapshots of the plain node, back to back, while it serves.
        let snapping = Arc::new(AtomicBool::new(true));
        let snapper = {
            let (snapping, data, site, key) = (
                snapping.clone(),
                plain.dir.path().to_owned(),
                site.path().to_owned(),
                key.clone(),
            );
            std::thread::spawn(move || {
                let mut taken = 0;
                while snapping.load(Ordering::Relaxed) {
                    let status = std::process::Command::new(env!("CARGO_BIN_EXE_nara"))
                        .args(["backup", "create", "--to"])
                        .arg(&site)
                        .arg("--recipient")
                        .arg(&key)
                        .arg("--data")
                        .arg(&data)
                        .stdout(std::process::Stdio::null())
                        .status()
                        .unwrap();
                    assert!(status.success());
                    taken += 1;
                }
                taken
            })
        };
        let (r, p) = round(&plain).await;
        snapping.store(false, Ordering::Relaxed);
        snapshots += snapper.join().unwrap();
        snap_rate.push(r);
        snap_p99.push(p);
    }
    let (br, bp) = (median(base_rate), median(base_p99));
    let (sr, sp) = (median(ship_rate), median(ship_p99));
    let (nr, np) = (median(snap_rate), median(snap_p99));
    println!("without backups:        {br:>7.0} submissions/s  page p99 {bp:>7.2} ms  (baseline)");
    println!(
        "continuous shipping:    {sr:>7.0} submissions/s  page p99 {sp:>7.2} ms  ratio {:.2} of the rate, p99 ×{:.2} (goal ≥ 0.8, ≤ 2)",
        sr / br,
        sp / bp
    );
    println!(
        "snapshots back to back: {nr:>7.0} submissions/s  page p99 {np:>7.2} ms  ratio {:.2} of the rate, p99 ×{:.2} ({snapshots} snapshots taken)",
        nr / br,
        np / bp
    );
    points.sort_by(f64::total_cmp);
    let at = |q: f64| points[((points.len() - 1) as f64 * q).round() as usize];
    println!(
        "recovery point under load (seconds of committed writes not yet shipped, {} samples): p50 {:.2} s  p99 {:.2} s  max {:.2} s",
        points.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
