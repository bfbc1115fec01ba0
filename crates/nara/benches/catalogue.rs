//! Catalogue search under load, against `/healthz` measured in the same run;
//! beside it, the other reads whose cost could grow with the country: the
//! sign-in page and a ledger entry with its inclusion proof.
//!
//!     cargo bench -p nara --bench catalogue
//!
//! Seeds the national-scale country (45 agencies, 1,460 services, 45,000
//! systems) with the real `nara seed`, starts the real `nara serve` as a child
//! process, and drives it over loopback with concurrent keep-alive clients.
//! Rounds interleave the scenarios so that noise from this shared machine hits
//! them alike; figures are medians over rounds, p99 over all requests.
//! Set NARA_BENCH_DATABASE_URL to a PostgreSQL URL to measure that backend.
//!
//! Growth: `NARA_BENCH_SCALES=tenth,national,10x` (SQLite) seeds and measures
//! each scale in turn (`nara seed --scale`: 4,500, 45,000 and 450,000
//! systems) and prints each scenario's cost per request relative to
//! `/healthz` at 10× against 1/10 (goal: within 1.5×), and the prober's
//! read of the systems due a probe (every system due: never probed) in
//! /healthz requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;
use support::*;

const ROUNDS: usize = 5;

#[tokio::main]
async fn main() {
    let scales = std::env::var("NARA_BENCH_SCALES").unwrap_or_else(|_| "national".into());
    let scales: Vec<&str> = scales.split(',').map(str::trim).collect();
    let shared = std::env::var("NARA_BENCH_DATABASE_URL").ok();
    assert!(
        shared.is_none() || scales.len() == 1,
        "one scale at a time on a shared database"
    );
    // Cost per request relative to /healthz, by scenario, for each scale.
    let mut costs: Vec<(&str, Vec<(String, f64)>)> = Vec::new();
    for scale in &scales {
        costs.push((scale, at_scale(scale, shared.clone()).await));
    }
    if let (Some((small, first)), Some((large, last))) = (costs.first(), costs.last())
        && costs.len() > 1
    {
        println!();
        println!(
            "growth: cost per request (relative to /healthz) at {large} against {small} (goal ≤ 1.5):"
        );
        for ((name, a), (_, b)) in first.iter().zip(last) {
            let growth = b / a;
            println!(
                "  {name:<34} {growth:>5.2}× {}",
                if growth <= 1.5 { "" } else { "(MISSED)" }
            );
        }
    }
}

/// The published ledger's size once it stops growing (checked every two
/// seconds, for at most five minutes).
async fn published_size(client: &reqwest::Client, base: &str) -> u64 {
    let size = || async {
        let text = client
            .get(format!("{base}/ledger/checkpoint"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().nth(1)?.parse::<u64>().ok()
    };
    let started = Instant::now();
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = size().await.unwrap_or(0);
        if (now > 0 && now == last) || started.elapsed() > Duration::from_secs(300) {
            println!(
                "ledger published: {now} entries ({:.1} s after start)",
                started.elapsed().as_secs_f64()
            );
            return now.max(1);
        }
        last = now;
    }
}

/// Seeds `scale` and measures every scenario on it: each scenario's cost per
/// request relative to `/healthz` (the baseline's rate over the scenario's).
async fn at_scale(scale: &str, shared: Option<String>) -> Vec<(String, f64)> {
    let nara = env!("CARGO_BIN_EXE_nara");
    let dir = tempfile::tempdir().unwrap();
    let database_url =
        shared.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let backend = if database_url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };

    println!(
        "nara catalogue benchmark ({backend}, scale {scale}, {CONCURRENCY} clients, {ROUNDS} rounds of {ROUND_SECONDS} s per scenario)"
    );
    let t = Instant::now();
    seed_at(nara, &database_url, scale);
    let seed_seconds = t.elapsed().as_secs_f64();
    println!("seed at scale {scale} (`nara seed --scale {scale}`): {seed_seconds:.2} s");

    // An operator API token for the inventory reads, issued as an operator would.
    let out = Command::new(nara)
        .args([
            "operator-token",
            "--username",
            "bench",
            "--scopes",
            "systems:read",
            "--days",
            "1",
        ])
        .env("NARA_DATABASE_URL", &database_url)
        .output()
        .unwrap();
    assert!(out.status.success(), "nara operator-token failed");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let (server, base) = serve(nara, &database_url, dir.path()).await;
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .default_headers(auth)
        .build()
        .unwrap();
    let rss_idle = rss_mib(server.0.id());

    let agencies = [
        "KR/GOV/MOIS",
        "KR/GOV/NTS",
        "KR/LOC/SEOUL",
        "KR/LOC/BUSAN",
        "KR/GOV/MOHW",
        "KR/PUB/NHIS",
        "KR/GOV/KCS",
        "KR/LOC/JEJU",
    ];
    let system_words = [
        "database", "server", "tax", "web", "payment", "03", "backup", "https://",
    ];
    let service_words = [
        "certificate",
        "permit",
        "신청",
        "licencia",
        "renewal",
        "pension",
        "voucher",
        "appeal",
    ];
    let mut systems = Vec::new();
    let mut services = Vec::new();
    let mut pages = Vec::new();
    for a in agencies {
        for w in system_words {
            systems.push(format!(
                "/api/v1/systems?agency={a}&q={}",
                w.replace("://", "%3A%2F%2F")
            ));
        }
        for w in service_words {
            services.push(format!("/api/v1/services?agency={a}&q={w}"));
            pages.push(format!("/services?agency={a}&q={w}&lang=ko"));
        }
    }
    // The ledger holds an entry per seeded agency, service and system: wait
    // until the integrator has published them all (the size holds still).
    let ledger_size = published_size(&client, &base).await;
    let proofs: Vec<String> = (0..64u64)
        .map(|k| format!("/api/v1/ledger/entries/{}", (ledger_size - 1) * k / 63))
        .collect();
    let sign_in: Vec<String> = ["en", "es", "ko"]
        .iter()
        .map(|l| format!("/sign-in?lang={l}"))
        .collect();
    let scenarios: Vec<(&str, Arc<Vec<String>>)> = vec![
        (
            "GET /healthz (baseline)",
            Arc::new(vec!["/healthz".to_owned()]),
        ),
        ("search systems: text + agency", Arc::new(systems)),
        ("search services: text + agency", Arc::new(services)),
        // What a citizen types into the portal: every agency's services. Its
        // pages are full at every scale, where one agency's are nearly empty
        // at a tenth of the nation (three services each).
        (
            "search services: text, all agencies",
            Arc::new(
                service_words
                    .iter()
                    .map(|w| format!("/api/v1/services?q={w}"))
                    .collect(),
            ),
        ),
        ("catalogue page (HTML, ko)", Arc::new(pages)),
        ("sign-in page (HTML)", Arc::new(sign_in)),
        ("ledger entry + inclusion proof", Arc::new(proofs)),
    ];

    // Warm up every scenario once.
    for (_, paths) in &scenarios {
        round(&client, &base, paths.clone()).await;
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); scenarios.len()];
    for _ in 0..ROUNDS {
        for (i, (_, paths)) in scenarios.iter().enumerate() {
            let (rate, l) = round(&client, &base, paths.clone()).await;
            rates[i].push(rate);
            latencies[i].extend(l);
        }
    }
    let rss_loaded = rss_mib(server.0.id());
    // What the searches answered: their pages fill up as the country grows,
    // and a page of 20 rows costs more to send than one of 3, however the
    // rows were found.
    let mut answers = Vec::new();
    for (name, paths) in &scenarios[1..4] {
        let (mut rows, mut lower_bounds) = (0, 0);
        for path in paths.iter() {
            let body: serde_json::Value = client
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            rows += body["items"].as_array().map_or(0, Vec::len);
            lower_bounds += usize::from(body["total_relation"] == "gte");
        }
        answers.push(format!(
            "{name}: {:.1} rows per answer; {:.0}% of totals a lower bound",
            rows as f64 / paths.len() as f64,
            lower_bounds as f64 * 100.0 / paths.len() as f64
        ));
    }

    let baseline = median(rates[0].clone());
    println!();
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>12}",
        "scenario", "req/s", "p50 ms", "p99 ms", "vs healthz"
    );
    let mut verdicts = Vec::new();
    let mut costs = Vec::new();
    for (i, (name, _)) in scenarios.iter().enumerate() {
        let mut l = latencies[i].clone();
        l.sort();
        let rate = median(rates[i].clone());
        let p50 = percentile(&l, 0.50).as_secs_f64() * 1e3;
        let p99 = percentile(&l, 0.99).as_secs_f64() * 1e3;
        println!(
            "{name:<34} {rate:>10.0} {p50:>9.2} {p99:>9.2} {:>11.1}%",
            rate / baseline * 100.0
        );
        costs.push((name.to_string(), baseline / rate));
        if i > 0 {
            verdicts.push(format!(
                "{name}: p99 {p99:.2} ms {} 20 ms; rate {:.1}% of /healthz {} 30%",
                if p99 < 20.0 { "<" } else { "≥ (MISSED)" },
                rate / baseline * 100.0,
                if rate / baseline >= 0.30 {
                    "≥"
                } else {
                    "< (MISSED)"
                }
            ));
        }
    }
    // The prober's read of what is due, the worst case: the whole inventory
    // never probed, so every system is due. Its cost in /healthz requests.
    let store = nara_store::Store::connect(&database_url).await.unwrap();
    let mut reads = Vec::new();
    for _ in 0..9 {
        let t = Instant::now();
        let due = store
            .probe_targets(nara_core::Timestamp::now().0, 2_000, false)
            .await
            .unwrap();
        reads.push(t.elapsed().as_secs_f64());
        assert_eq!(due.len(), 2_000, "every seeded system is due");
    }
    let read = median(reads);
    println!(
        "{:<34} {:>10} {:>9.2} {:>9} {:>11.1}×",
        "prober: 2,000 systems due (store)",
        "",
        read * 1e3,
        "",
        read * baseline
    );
    costs.push(("prober: 2,000 systems due (store)".into(), read * baseline));
    println!();
    println!(
        "server resident memory: {rss_idle:.1} MiB after start on the seeded database, {rss_loaded:.1} MiB after the load"
    );
    for a in answers {
        println!("{a}");
    }
    println!("goals (each read's p99 under 20 ms and at least 30% of the /healthz rate):");
    for v in verdicts {
        println!("  {v}");
    }
    drop(server);
    costs
}
