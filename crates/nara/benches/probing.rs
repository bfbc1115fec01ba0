//! Probing the whole national inventory while serving pages, against the
//! same pages without probing, in the same run.
//!
//!     cargo bench -p nara --bench probing
//!
//! Seeds the national-scale country (45,000 systems) with the real `nara
//! seed`, points every system at its own endpoint on a loopback HTTP server in
//! this process and starts the real `nara serve`. None has been probed, so
//! all 45,000 are due at once: the node probes as fast as it lets itself
//! (64 in flight), several times the rate the national schedule needs once
//! settled (grade 1 every 30 s … grade 4 every 15 min; printed). Meanwhile
//! rounds of 200 clients reading catalogue pages alternate between probing
//! on and off (endpoints cleared). Prints the page p99 of each (median over
//! rounds), their ratio (goal: within 1.2), and the probes a second during
//! the rounds with probing on.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection;

mod support;
use support::*;

const ROUNDS: usize = 4;
const CLIENTS: usize = 200;
const ROUND_SECONDS: f64 = 6.0;
const SYSTEMS: i64 = 45_000;

async fn probed(db: &mut sqlx::SqliteConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM probe_results")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::main]
async fn main() {
    let nara = env!("CARGO_BIN_EXE_nara");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let database_url = format!("sqlite://{}", path.display());
    seed_national(nara, &database_url);

    // The agency systems: one loopback server answering every system's path.
    let targets = axum::Router::new().route("/{system}", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, targets).await });
    let mut db = sqlx::SqliteConnection::connect(&database_url)
        .await
        .unwrap();
    let point = format!("UPDATE systems SET endpoint_url = 'http://{target}/' || id");
    let n = sqlx::query(&point)
        .execute(&mut db)
        .await
        .unwrap()
        .rows_affected() as i64;
    assert_eq!(n, SYSTEMS, "the national seed's systems");

    let (server, base) = serve(nara, &database_url, dir.path()).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    println!(
        "probing: {SYSTEMS} systems on loopback, {CLIENTS} clients reading catalogue pages, {ROUNDS} rounds of {ROUND_SECONDS} s each way"
    );

    let grades: Vec<(i64, i64)> =
        sqlx::query_as("SELECT CAST(grade AS INTEGER), COUNT(*) FROM systems GROUP BY grade")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let scheduled: f64 = grades
        .iter()
        .map(|(g, n)| *n as f64 * 1000.0 / nara_core::secops::probe_every_ms(*g as u8) as f64)
        .sum();
    println!("  the national schedule, once settled: {scheduled:.0} probes/s");

    let pages: Arc<Vec<String>> = Arc::new(
        (1..=20)
            .map(|p| format!("/services?page={p}&lang=en"))
            .chain(["/agencies?lang=ko".to_owned(), "/?lang=es".to_owned()])
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let request: Request = {
        let (client, base, pages, next) = (client.clone(), base.clone(), pages.clone(), next);
        Arc::new(move || {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            client.get(format!("{base}{}", pages[i % pages.len()]))
        })
    };
    let (mut on, mut off, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for probing in [false, true] {
            let sql = if probing {
                point.as_str()
            } else {
                "UPDATE systems SET endpoint_url = NULL"
            };
            sqlx::query(sql).execute(&mut db).await.unwrap();
            if !probing {
                // Let the round in flight finish: off means no probe at all.
                let mut last = probed(&mut db).await;
                loop {
                    tokio::time::sleep(Duration::from_millis(2_500)).await;
                    let now = probed(&mut db).await;
                    if now == last {
                        break;
                    }
                    last = now;
                }
            }
            let before = probed(&mut db).await;
            let t = Instant::now();
            let (rate, latencies) = load(CLIENTS, ROUND_SECONDS, 200, request.clone()).await;
            let probes = (probed(&mut db).await - before) as f64 / t.elapsed().as_secs_f64();
            let p99 = percentile(&latencies, 0.99).as_secs_f64() * 1000.0;
            println!(
                "  round {} probing {:>3}: {rate:>6.0} pages/s, p99 {p99:>7.1} ms, {probes:>5.0} probes/s",
                round + 1,
                if probing { "on" } else { "off" }
            );
            if probing {
                on.push(p99);
                rates.push(probes);
            } else {
                off.push(p99);
            }
        }
    }
    let health: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM system_health")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(
        health < SYSTEMS,
        "the first pass ended before the last round: the rounds did not all probe at full speed"
    );
    let probing = median(rates);
    let (on, off) = (median(on), median(off));
    println!(
        "page p99 with probing {on:.1} ms, without {off:.1} ms: ratio {:.2} (goal ≤ 1.2), \
         while probing {probing:.0}/s (median), {:.1}× the settled national schedule",
        on / off,
        probing / scheduled
    );
    println!("node memory: {:.0} MiB", rss_mib(server.0.id()));
}
