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
//!
//! Growth: `NARA_BENCH_SCALES=tenth,national,10x` measures submissions on
//! the catalogue seeded at each scale with applications added (see
//! [`growth`]).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const ROUNDS: usize = 5;
const PAGE_CLIENTS: usize = 200;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A client for `clients` connections (redirects not followed) and the
/// baseline request, `/healthz`.
fn client_and_healthz(base: &str, clients: usize) -> (reqwest::Client, Request) {
    let plain = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let healthz: Request = {
        let (c, url) = (plain.clone(), format!("{base}/healthz"));
        Arc::new(move || c.get(&url))
    };
    (plain, healthz)
}

/// Interleaved rounds of `/healthz` and full submissions: their median
/// rates and the submissions' latencies, sorted.
async fn submissions_against_healthz(
    healthz: &Request,
    submit: &Request,
) -> (f64, f64, Vec<Duration>) {
    let (mut base_rates, mut sub_rates, mut sub_lat) = (Vec::new(), Vec::new(), Vec::new());
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
    (median(base_rates), median(sub_rates), sub_lat)
}

/// Fills `applications` with `rows` more, copied in shape from the year
/// the demo wrote (each service, version, agency and state in the demo's
/// proportions, their answers and evidence), spread over the demo's
/// citizens and the last year, a million a transaction.
async fn fill_applications(database_url: &str, rows: u64) {
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(database_url).await.unwrap();
    for sql in [
        "CREATE TEMP TABLE bulk_citizens AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, id \
         FROM accounts WHERE kind = 'citizen'",
        "CREATE TEMP TABLE bulk_shapes AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, service_code, version, \
         agency_id, state, answers, evidence, due_at IS NOT NULL AS due, decided_at IS NOT NULL AS decided \
         FROM applications WHERE state <> 'draft'",
    ] {
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }
    let (citizens, shapes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM bulk_citizens), (SELECT COUNT(*) FROM bulk_shapes)",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert!(
        citizens > 0 && shapes > 0,
        "the demo wrote its citizens and a year of applications"
    );
    let now = nara_core::Timestamp::now().0;
    let year = 365 * 86_400_000i64;
    let started = Instant::now();
    let mut done = 0u64;
    while done < rows {
        let n = (rows - done).min(1_000_000);
        sqlx::query(
            "INSERT INTO applications (reference, service_code, version, agency_id, account_id, state, answers, \
               evidence, created_at, updated_at, submitted_at, due_at, decided_at, assigned_to) \
             WITH RECURSIVE k(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM k WHERE i < $2) \
             SELECT 'BULK-' || i, s.service_code, s.version, s.agency_id, c.id, s.state, s.answers, s.evidence, \
               $3 + (i * 7919) % $4, $3 + (i * 7919) % $4 + 3600000, $3 + (i * 7919) % $4, \
               CASE WHEN s.due THEN $3 + (i * 7919) % $4 + 30 * 86400000 END, \
               CASE WHEN s.decided THEN $3 + (i * 7919) % $4 + 3600000 END, NULL \
             FROM k JOIN bulk_shapes s ON s.n = i % $5 JOIN bulk_citizens c ON c.n = (i / $5) % $6",
        )
        .bind((done + 1) as i64)
        .bind((done + n) as i64)
        .bind(now - year)
        .bind(year)
        .bind(shapes)
        .bind(citizens)
        .execute(&mut db)
        .await
        .unwrap();
        done += n;
        println!(
            "  applications: {done} of {rows} more ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
}

/// Growth (`NARA_BENCH_SCALES=tenth,national,10x`): for each scale, the
/// catalogue seeded (`nara seed --scale`), the demo set up on it,
/// applications added (100,000, a million and 10 million: the issue's
/// 10 million at ten times the nation), the node restarted, then rounds of
/// submissions against `/healthz`; a submission's cost relative to
/// `/healthz` at each scale and its growth from the first to the last
/// (goal ≤ 1.5).
async fn growth(nara: &str, scales: &str) {
    let mut costs = Vec::new();
    for scale in scales.split(',').map(str::trim) {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().join("nara.db").display());
        let t = Instant::now();
        seed_at(nara, &database_url, scale);
        println!(
            "scale {scale}: seeded in {:.0} s",
            t.elapsed().as_secs_f64()
        );
        let port = free_port();
        let (server, _, dir) = start_demo_in(nara, dir, port, &[], &[]).await;
        drop(server);
        let rows = activity_rows(scale, 100_000);
        fill_applications(&database_url, rows).await;
        let (server, base, dir) = start_demo_in(nara, dir, port, &[], &[]).await;
        let (plain, healthz) = client_and_healthz(&base, CONCURRENCY);
        let Citizen { submit, .. } = citizen(&plain, &base, dir.path()).await;
        load(CONCURRENCY, 0.5, 200, healthz.clone()).await;
        load(CONCURRENCY, 0.5, 201, submit.clone()).await;
        let (h, s, sub_lat) = submissions_against_healthz(&healthz, &submit).await;
        println!(
            "scale {scale}, {rows} applications added: /healthz {h:.0}/s, submissions {s:.0}/s (p99 {:.2} ms), ratio {:.3}",
            ms(percentile(&sub_lat, 0.99)),
            s / h
        );
        costs.push((scale.to_owned(), h / s));
        drop(server);
    }
    print_growth("a submission's cost (relative to /healthz)", &costs);
}

#[tokio::main]
async fn main() {
    if let Ok(scales) = std::env::var("NARA_BENCH_SCALES") {
        growth(env!("CARGO_BIN_EXE_nara"), &scales).await;
        return;
    }
    let (server, base, dir) = start_demo(env!("CARGO_BIN_EXE_nara")).await;
    let (plain, healthz) = client_and_healthz(&base, PAGE_CLIENTS);
    let Citizen { submit, portal } = citizen(&plain, &base, dir.path()).await;
    // Warm up both paths (connections, caches, the first WAL checkpoint).
    load(CONCURRENCY, 0.5, 200, healthz.clone()).await;
    load(CONCURRENCY, 0.5, 201, submit.clone()).await;

    println!(
        "nara citizen services benchmark (SQLite, synchronous=FULL; {CONCURRENCY} clients, {ROUNDS} interleaved rounds of {ROUND_SECONDS} s)"
    );
    let (h, s, sub_lat) = submissions_against_healthz(&healthz, &submit).await;
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
