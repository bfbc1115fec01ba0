//! What identity costs, measured against baselines in the same run.
//!
//!     cargo bench -p nara --bench identity
//!
//! Starts the real `nara demo` as a child process and measures, over loopback:
//! 1. the catalogue page requested with a citizen's session cookie against the
//!    same page without one (the session lookup and policy check), rounds
//!    interleaved, medians;
//! 2. the login cost: one argon2id verification on one core, in ms;
//! 3. `/healthz` p99 while 100 logins arrive at once, against `/healthz` p99
//!    with nothing else running.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const ROUNDS: usize = 5;
const LOGINS: usize = 100;

#[derive(serde::Deserialize)]
struct DemoAccount {
    role: String,
    username: String,
    password: String,
}

async fn healthz_p99_while(
    client: &reqwest::Client,
    base: &str,
    busy: impl Future<Output = ()>,
) -> (Duration, usize) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let (client, base, stop) = (client.clone(), base.to_owned(), stop.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = client.get(format!("{base}/healthz")).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
                lat.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat
        })
    };
    busy.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lat = probe.await.unwrap();
    lat.sort();
    (percentile(&lat, 0.99), lat.len())
}

#[tokio::main]
async fn main() {
    let (_server, base, dir) = start_demo(env!("CARGO_BIN_EXE_nara")).await;
    let plain = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let accounts: Vec<DemoAccount> = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("demo-accounts.json")).unwrap(),
    )
    .unwrap();
    let citizens: Vec<&DemoAccount> = accounts.iter().filter(|a| a.role == "citizen").collect();

    // A citizen's session.
    let cookie = session_cookie(&base, &citizens[0].username, &citizens[0].password).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, cookie.parse().unwrap());
    let signed_in = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .default_headers(headers)
        .build()
        .unwrap();
    let page = Arc::new(vec!["/services?lang=ko".to_owned()]);
    // The signed-in page must really be signed in.
    let html = signed_in
        .get(format!("{base}/services"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("/sign-out"),
        "the session cookie did not sign in"
    );

    println!(
        "nara identity benchmark (SQLite, {CONCURRENCY} clients, {ROUNDS} interleaved rounds of {ROUND_SECONDS} s)"
    );
    let (mut anon, mut auth) = (Vec::new(), Vec::new());
    let (mut anon_lat, mut auth_lat) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (rate, lat) = round(&plain, &base, page.clone()).await;
        anon.push(rate);
        anon_lat.extend(lat);
        let (rate, lat) = round(&signed_in, &base, page.clone()).await;
        auth.push(rate);
        auth_lat.extend(lat);
    }
    anon_lat.sort();
    auth_lat.sort();
    let (a, s) = (median(anon), median(auth));
    println!(
        "catalogue page (ko), anonymous:  {a:>9.0} req/s  p99 {:>6.2} ms  (baseline)",
        percentile(&anon_lat, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "catalogue page (ko), signed in:  {s:>9.0} req/s  p99 {:>6.2} ms  ratio {:.2}; session + policy cost {:.1}% (goal < 20%)",
        percentile(&auth_lat, 0.99).as_secs_f64() * 1e3,
        s / a,
        (1.0 - s / a) * 100.0
    );

    // Login cost: argon2id verification on one core, with nara's parameters.
    let password = "a long walk by the han river";
    let hash = nara_server::identity::auth::hash_password_now(password).unwrap();
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        assert!(nara_server::identity::auth::verify_password_now(
            &hash, password
        ));
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "login cost: argon2id (m = 19 MiB, t = 2, p = 1) verification, median of 15 on one core: {:.1} ms",
        median(times)
    );

    // /healthz p99 idle, then under 100 logins at once.
    let (idle, n_idle) =
        healthz_p99_while(&plain, &base, tokio::time::sleep(Duration::from_secs(2))).await;
    let storm = async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..LOGINS {
            let a = citizens[i % citizens.len()];
            let (client, base, user, pass) = (
                plain.clone(),
                base.clone(),
                a.username.clone(),
                a.password.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let r = client
                    .post(format!("{base}/sign-in"))
                    .form(&[("username", user), ("password", pass)])
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap() == 303 {
                ok += 1;
            }
        }
        println!(
            "{LOGINS} concurrent logins: {ok} signed in (others refused with 503 if the hashing queue was full) in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    };
    let (busy, n_busy) = healthz_p99_while(&plain, &base, storm).await;
    println!(
        "/healthz p99 idle: {:.2} ms ({n_idle} probes); during {LOGINS} logins: {:.2} ms ({n_busy} probes) (goal < 50 ms)",
        idle.as_secs_f64() * 1e3,
        busy.as_secs_f64() * 1e3
    );
}
