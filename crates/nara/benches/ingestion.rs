//! Event ingestion end to end, measured against a baseline in the same run.
//!
//!     cargo bench -p nara --bench ingestion
//!
//! Starts the real `nara demo` with its syslog intake on loopback and measures:
//! 1. throughput: RFC 5424 messages sent over one TCP connection until every
//!    one is stored (`nara_syslog_messages_total{outcome="stored"}` on
//!    `/metrics`), against the same bytes sent to a bare TCP reader in this
//!    process (what the sender and loopback alone allow: an upper bound, not a
//!    peer), rounds interleaved,
//!    medians;
//! 2. arrival to alert: five agency-system sign-in failures from one new
//!    address (the starter rule's threshold) sent at once, then the time until
//!    the alert is in the node's database (read through one read-only
//!    connection); p50 and p99 over the trials. Detection reads new events
//!    every two seconds, which bounds it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESSAGES: usize = 20_000;
const ROUNDS: usize = 3;
const TRIALS: usize = 12;

fn message(round: usize, n: usize) -> String {
    format!(
        "<38>1 2026-12-01T10:00:00.000Z web-01 sso 4242 session.refreshed [nara@32473 user=\"bench-{round}-{n}\" src=\"192.0.2.10\"] token refreshed\n"
    )
}

async fn stored(client: &reqwest::Client, base: &str, token: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("nara_syslog_messages_total") && l.contains("outcome=\"stored\""))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The same bytes into a bare reader: messages a second.
async fn baseline(bytes: &[u8]) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let total = bytes.len();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut seen = 0;
        while seen < total {
            seen += s.read(&mut buf).await.unwrap();
        }
    });
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(address).await.unwrap();
    s.write_all(bytes).await.unwrap();
    reader.await.unwrap();
    MESSAGES as f64 / started.elapsed().as_secs_f64()
}

#[derive(serde::Deserialize)]
struct DemoAccount {
    api_token: Option<String>,
}

#[tokio::main]
async fn main() {
    let nara = env!("CARGO_BIN_EXE_nara");
    let syslog = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let syslog_arg = syslog.to_string();
    let (_server, base, dir) = start_demo_env(
        nara,
        &["--no-backups"],
        &[
            ("NARA_SYSLOG_LISTEN", &syslog_arg),
            ("NARA_SYSLOG_SENDERS", "[\"127.0.0.0/8\"]"),
        ],
    )
    .await;
    let accounts: Vec<DemoAccount> =
        serde_json::from_slice(&std::fs::read(dir.path().join("demo-accounts.json")).unwrap())
            .unwrap();
    let token = accounts.iter().find_map(|a| a.api_token.clone()).unwrap();
    let client = reqwest::Client::new();

    println!("ingestion: {MESSAGES} RFC 5424 messages over one TCP connection, {ROUNDS} rounds");
    let (mut intake, mut bare) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let bytes: Vec<u8> = (0..MESSAGES)
            .flat_map(|n| message(round, n).into_bytes())
            .collect();
        bare.push(baseline(&bytes).await);
        let before = stored(&client, &base, &token).await;
        let started = Instant::now();
        let mut s = tokio::net::TcpStream::connect(syslog).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        s.shutdown().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while stored(&client, &base, &token).await < before + MESSAGES as u64 {
            assert!(Instant::now() < deadline, "not every message was stored");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rate = MESSAGES as f64 / started.elapsed().as_secs_f64();
        println!(
            "  round {}: received and stored {rate:>9.0} messages/s; bare TCP reader {:>9.0}/s",
            round + 1,
            bare[round]
        );
        intake.push(rate);
    }
    let (intake, bare) = (median(intake), median(bare));
    println!(
        "syslog intake: {intake:.0} messages/s stored (median), {:.3} of a bare TCP reader ({bare:.0}/s)",
        intake / bare
    );

    println!("arrival to alert: {TRIALS} trials of five failures from one new address");
    use sqlx::Connection;
    // Read-only, and open for the whole run: it never checkpoints the node's log.
    let mut db = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("nara.db"))
            .read_only(true),
    )
    .await
    .unwrap();
    let mut alerts = async || -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM alerts")
            .fetch_one(&mut db)
            .await
            .unwrap()
    };
    let mut latencies = Vec::new();
    for trial in 0..TRIALS {
        let alerts_before = alerts().await;
        let source = format!("198.51.100.{}", trial + 1);
        let burst: String = (0..5)
            .map(|n| format!(
                "<38>1 2026-12-01T10:00:00.000Z web-01 sso 4242 login.failed [nara@32473 user=\"trial{trial}-{n}\" src=\"{source}\"] bad password\n"
            ))
            .collect();
        let started = Instant::now();
        let mut s = tokio::net::TcpStream::connect(syslog).await.unwrap();
        s.write_all(burst.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if alerts().await > alerts_before {
                break;
            }
            assert!(Instant::now() < deadline, "no alert for trial {trial}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "arrival to alert: p50 {:.2} s, p99 {:.2} s over {TRIALS} trials (detection reads every 2 s)",
        percentile(&latencies, 0.5).as_secs_f64(),
        percentile(&latencies, 0.99).as_secs_f64()
    );
}
