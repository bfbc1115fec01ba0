//! Event ingestion end to end, measured against a baseline in the same run.
//!
//!     cargo bench -p nara --bench ingestion
//!
//! Starts the real `nara demo` with its syslog intake on loopback and measures,
//! against one baseline measured in the same run — the same events written
//! straight into a store of their own (`Store::record_reported_events`, a
//! thousand a transaction: what storage alone allows):
//! 1. syslog: RFC 5424 messages sent over one TCP connection until every one
//!    is stored (`nara_syslog_messages_total{outcome="stored"}` on `/metrics`);
//! 2. HTTP: JSON lines POSTed to `/api/v1/security/intake`, 1,000 a request,
//!    each signed with the demo's agency system key (RFC 9421) and
//!    acknowledged once stored, four clients;
//! 3. arrival to alert: five agency-system sign-in failures from one new
//!    address (the starter rule's threshold) sent at once, then the time until
//!    the alert is in the node's database (read through one read-only
//!    connection); p50 and p99 over the trials. Detection reads new events
//!    every two seconds, which bounds it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::AsyncWriteExt;

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

/// The baseline: `MESSAGES` events written straight into a scratch store,
/// a thousand a transaction; events a second.
async fn store_alone(round: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = nara_store::Store::connect(&nara_store::Store::sqlite_url(dir.path()))
        .await
        .unwrap();
    let events: Vec<nara_store::secops::ReportedEvent> = (0..MESSAGES)
        .map(|n| nara_store::secops::ReportedEvent {
            at: 1_800_000_000_000,
            kind: "system.session.refreshed".into(),
            username: format!("baseline-{round}-{n}"),
            address: "192.0.2.10".into(),
            detail: "token refreshed".into(),
        })
        .collect();
    let started = Instant::now();
    for batch in events.chunks(1_000) {
        store.record_reported_events(batch).await.unwrap();
    }
    let rate = MESSAGES as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    rate
}

#[derive(serde::Deserialize)]
struct DemoAccount {
    api_token: Option<String>,
}

#[derive(serde::Deserialize)]
struct DemoSystem {
    key_id: String,
    private_key: String,
}

const LINES: usize = 1_000;
const REQUESTS: usize = 20;

/// `REQUESTS` bodies of `LINES` JSON lines each.
fn bodies(round: usize) -> Vec<Vec<u8>> {
    (0..REQUESTS)
        .map(|r| {
            (0..LINES)
                .map(|n| {
                    format!(
                        "{{\"kind\":\"session.refreshed\",\"user\":\"http-{round}-{r}-{n}\",\"source_ip\":\"192.0.2.20\",\"detail\":\"token refreshed\"}}\n"
                    )
                })
                .collect::<String>()
                .into_bytes()
        })
        .collect()
}

/// Sends every body to `url`, signed, four at a time; requests a second
/// and the events in them a second.
async fn post_all(
    client: &reqwest::Client,
    url: &str,
    bodies: Vec<Vec<u8>>,
    key_id: &str,
    key: &ed25519_dalek::SigningKey,
) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    let chunks: Vec<Vec<Vec<u8>>> = bodies.chunks(REQUESTS / 4).map(<[_]>::to_vec).collect();
    for chunk in chunks {
        let (client, url, key_id, key) = (
            client.clone(),
            url.to_owned(),
            key_id.to_owned(),
            key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for body in chunk {
                let r = signed_post(&client, &url, &[], body, &key_id, &key)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                assert!(status.is_success(), "{status}: {}", r.text().await.unwrap());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (REQUESTS * LINES) as f64 / started.elapsed().as_secs_f64()
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
    let (mut intake, mut alone) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let bytes: Vec<u8> = (0..MESSAGES)
            .flat_map(|n| message(round, n).into_bytes())
            .collect();
        alone.push(store_alone(round).await);
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
            "  round {}: received and stored {rate:>9.0} messages/s; the store alone {:>9.0}/s",
            round + 1,
            alone[round]
        );
        intake.push(rate);
    }
    let (intake, alone) = (median(intake), median(alone));
    println!(
        "syslog intake: {intake:.0} messages/s stored (median), {:.2} of the store alone ({alone:.0}/s)",
        intake / alone
    );

    // 2. Over HTTP, signed.
    let system: DemoSystem =
        serde_json::from_slice(&std::fs::read(dir.path().join("demo-exchange.json")).unwrap())
            .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(
        &nara_server::identity::machine::decode_key(&system.private_key).unwrap(),
    );
    let intake_url = format!("{base}/api/v1/security/intake");
    let (mut node, mut alone) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        alone.push(store_alone(round).await);
        node.push(post_all(&client, &intake_url, bodies(round), &system.key_id, &key).await);
        println!(
            "  round {}: {:>9.0} events/s stored through the signed intake; the store alone {:>9.0}/s",
            round + 1,
            node[round],
            alone[round]
        );
    }
    let (node, alone) = (median(node), median(alone));
    println!(
        "HTTP intake: {node:.0} events/s stored (median, {LINES} a request, 4 clients), {:.2} of the store alone ({alone:.0}/s)",
        node / alone
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
