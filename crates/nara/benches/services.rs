//! What citizen services cost, measured against baselines in the same run.
//!
//!     cargo bench -p nara --bench services
//!
//! Starts the real `nara demo` (SQLite) as a child process and measures, over
//! loopback:
//! 1. full submissions per second — `POST /api/v1/services/phishing-report/
//!    applications`: every answer checked, the application stored, submitted,
//!    its event and ledger entry committed — against `/healthz` with the same
//!    clients, rounds interleaved, medians;
//! 2. a portal page (a service's page as a signed-in citizen sees it, Korean)
//!    at 200 concurrent clients: p50/p99, against `/healthz` at 200 clients.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::*;

const ROUNDS: usize = 5;
const PAGE_CLIENTS: usize = 200;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let (server, base, dir) = start_demo(env!("CARGO_BIN_EXE_nara")).await;
    let plain = reqwest::Client::builder()
        .pool_max_idle_per_host(PAGE_CLIENTS)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let healthz: Request = {
        let (c, url) = (plain.clone(), format!("{base}/healthz"));
        Arc::new(move || c.get(&url))
    };
    let Citizen { submit, portal } = citizen(&plain, &base, dir.path()).await;
    // Warm up both paths (connections, caches, the first WAL checkpoint).
    load(CONCURRENCY, 0.5, 200, healthz.clone()).await;
    load(CONCURRENCY, 0.5, 201, submit.clone()).await;

    println!(
        "nara citizen services benchmark (SQLite, synchronous=FULL; {CONCURRENCY} clients, {ROUNDS} interleaved rounds of {ROUND_SECONDS} s)"
    );
    let (mut base_rates, mut sub_rates) = (Vec::new(), Vec::new());
    let mut sub_lat = Vec::new();
    for _ in 0..ROUNDS {
        base_rates.push(
            load(CONCURRENCY, ROUND_SECONDS, 200, healthz.clone())
                .await
                .0,
        );
        let (rate, lat) = load(CONCURRENCY, ROUND_SECONDS, 201, submit.clone()).await;
        sub_rates.push(rate);
        sub_lat.extend(lat);
    }
    sub_lat.sort();
    let (h, s) = (median(base_rates), median(sub_rates));
    println!("/healthz:                         {h:>8.0} req/s  (baseline)");
    println!(
        "full submissions (check, store, submit, ledger): {s:>8.0} /s  p50 {:.2} ms  p99 {:.2} ms  ratio {:.3} (goal ≥ 2,000/s)",
        ms(percentile(&sub_lat, 0.5)),
        ms(percentile(&sub_lat, 0.99)),
        s / h
    );

    let (mut base_p99, mut page_p99, mut page_p50, mut page_rate) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let (_, lat) = load(PAGE_CLIENTS, ROUND_SECONDS, 200, healthz.clone()).await;
        base_p99.push(ms(percentile(&lat, 0.99)));
        let (rate, lat) = load(PAGE_CLIENTS, ROUND_SECONDS, 200, portal.clone()).await;
        page_p99.push(ms(percentile(&lat, 0.99)));
        page_p50.push(ms(percentile(&lat, 0.5)));
        page_rate.push(rate);
    }
    let (b99, p99) = (median(base_p99), median(page_p99));
    println!("/healthz at {PAGE_CLIENTS} clients:            p99 {b99:>6.2} ms  (baseline)");
    println!(
        "portal page (ko, signed in) at {PAGE_CLIENTS} clients: {:>6.0} req/s  p50 {:.2} ms  p99 {p99:.2} ms  ratio {:.2} (goal p99 < 50 ms)",
        median(page_rate),
        median(page_p50),
        p99 / b99
    );
    println!("server RSS: {:.0} MiB", rss_mib(server.pid()));
}
