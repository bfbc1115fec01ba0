//! The ledger under load, with baselines measured in the same run.
//!
//!     cargo bench -p nara --bench ledger
//!     NARA_BENCH_DATABASE_URL=postgres://… cargo bench -p nara --bench ledger
//!
//! 1. Durable appends/s through `Store::append_entries` while the integrator
//!    runs, against plain multi-row inserts of same-size rows into a plain
//!    table of the same database, with the same batching (the baseline).
//! 2. Time from append to inclusion in a signed checkpoint, p50 and p99, with
//!    a steady stream of single appends and the integrator's real schedule.
//! 3. Inclusion proofs served/s (from stored tiles) and verifications/s,
//!    against raw SHA-256 node hashes/s.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use std::sync::Arc;
use std::time::{Duration, Instant};

use nara_ledger::merkle::{leaf_hash, node_hash, verify_inclusion};
use nara_ledger::note::Signer;
use nara_ledger::{Entry, Hash};
use nara_store::Store;

const APPENDERS: usize = 4;
const BATCH: usize = 200;
const ROUNDS: usize = 3;
const ROUND: Duration = Duration::from_secs(3);

fn entry(i: u64) -> Vec<u8> {
    Entry {
        kind: "bench.appended".into(),
        time_ms: 1_800_000_000_000 + i as i64,
        actor: "bench".into(),
        subjects: vec![format!("thing:{i}")],
        digest: nara_ledger::entry::digest(&i.to_be_bytes()),
    }
    .encode()
    .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

/// Plain inserts into a plain table, the same rows and batches, by raw SQL,
/// writers taking turns in process as the store's do on SQLite.
async fn plain_round(url: &str, size: usize) -> f64 {
    let gate: Arc<tokio::sync::Mutex<()>> = Arc::default();
    let rows: Vec<Vec<u8>> = (0..BATCH as u64).map(|i| vec![i as u8; size]).collect();
    let deadline = Instant::now() + ROUND;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..APPENDERS {
        let (url, rows, gate) = (url.to_owned(), rows.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let mut sql = String::from("INSERT INTO bench_plain (data) VALUES ");
            for i in 0..rows.len() {
                sql.push_str(if i == 0 { "(" } else { ", (" });
                sql.push_str(&format!("${})", i + 1));
            }
            let mut n = 0u64;
            // The same loop on either driver; SQLite writers take turns, as the store's do.
            macro_rules! insert_until_deadline {
                ($pool:expr, $take_turns:expr) => {{
                    let pool = $pool;
                    while Instant::now() < deadline {
                        let _turn = if $take_turns {
                            Some(gate.lock().await)
                        } else {
                            None
                        };
                        let mut tx = pool.begin().await.unwrap();
                        let mut q = sqlx::query(&sql);
                        for r in &rows {
                            q = q.bind(r.as_slice());
                        }
                        q.execute(&mut *tx).await.unwrap();
                        tx.commit().await.unwrap();
                        n += rows.len() as u64;
                    }
                }};
            }
            if url.starts_with("sqlite") {
                insert_until_deadline!(sqlx::SqlitePool::connect(&url).await.unwrap(), true);
            } else {
                insert_until_deadline!(sqlx::PgPool::connect(&url).await.unwrap(), false);
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn append_round(store: &Store, next: &Arc<std::sync::atomic::AtomicU64>) -> f64 {
    let deadline = Instant::now() + ROUND;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..APPENDERS {
        let (store, next) = (store.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            // Built once, as the baseline's rows are: the timed loop measures the store.
            let first = next.fetch_add(BATCH as u64, std::sync::atomic::Ordering::Relaxed);
            let batch: Vec<Vec<u8>> = (first..first + BATCH as u64).map(entry).collect();
            let mut n = 0u64;
            while Instant::now() < deadline {
                store.append_entries(&batch).await.unwrap();
                n += BATCH as u64;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("NARA_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("ledger-bench.db").display()));
    let backend = if url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let store = Store::connect(&url).await.unwrap();
    let signer = Arc::new(Signer::new("bench.example/ledger", &[3; 32]).unwrap());
    let size = entry(0).len();
    let blob = if backend == "sqlite" { "BLOB" } else { "BYTEA" };
    let id = if backend == "sqlite" {
        "INTEGER PRIMARY KEY"
    } else {
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    };
    let ddl = format!("CREATE TABLE IF NOT EXISTS bench_plain (id {id}, data {blob} NOT NULL)");
    if backend == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(&ddl).execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(&ddl).execute(&pool).await.unwrap();
    }
    println!(
        "nara ledger benchmark ({backend}; entries of {size} bytes; {APPENDERS} appenders, batches of {BATCH}, {ROUNDS} rounds of {} s)",
        ROUND.as_secs()
    );

    // The integrator, on its real schedule, throughout (NARA_BENCH_DIAGNOSE=1
    // leaves it off for the append rounds, to see what appending alone costs).
    let diagnose = std::env::var("NARA_BENCH_DIAGNOSE").is_ok();
    let start_integrator = || {
        let (store, signer) = (store.clone(), signer.clone());
        tokio::spawn(async move {
            loop {
                match store.integrate(&signer).await {
                    Ok(Some(done)) if done.more_waiting => continue,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Err(e) => panic!("integration failed: {e}"),
                }
            }
        })
    };
    let mut integrating = if diagnose {
        None
    } else {
        Some(start_integrator())
    };

    // 1. Appends against plain inserts, interleaved rounds.
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (mut appends, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        plain.push(plain_round(&url, size).await);
        appends.push(append_round(&store, &next).await);
    }
    let (a, p) = (median(appends), median(plain));
    // Let the integrator catch up, and time it.
    let caught_up = Instant::now();
    if integrating.is_none() {
        integrating = Some(start_integrator());
    }
    while store.ledger_pending_count().await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backlog = caught_up.elapsed();
    let appended = store
        .latest_checkpoint()
        .await
        .unwrap()
        .map(|c| c.size)
        .unwrap_or(0);
    println!();
    println!("durable appends (Store::append_entries): {a:>9.0} entries/s");
    println!("plain inserts, same rows and batches:   {p:>9.0} rows/s");
    println!(
        "ratio: {:.2} (goal ≥ 0.50); {appended} entries appended, integrator caught up {:.2} s after the last append",
        a / p,
        backlog.as_secs_f64()
    );

    // 2. Append → checkpoint latency, single appends at a steady 200/s.
    let base = store
        .latest_checkpoint()
        .await
        .unwrap()
        .map(|c| c.size)
        .unwrap_or(0);
    let count = 1_000u64;
    let appended_at: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let writer = {
        let (store, appended_at) = (store.clone(), appended_at.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            for i in 0..count {
                tick.tick().await;
                store
                    .append_entries(&[entry(10_000_000 + i)])
                    .await
                    .unwrap();
                appended_at.lock().unwrap().push(Instant::now());
            }
        })
    };
    let mut latencies = Vec::with_capacity(count as usize);
    let mut seen = base;
    while seen < base + count {
        let size = store
            .latest_checkpoint()
            .await
            .unwrap()
            .map(|c| c.size)
            .unwrap_or(0);
        let now = Instant::now();
        if size > seen {
            let times = appended_at.lock().unwrap();
            for k in seen..size.min(base + times.len() as u64) {
                latencies.push(now - times[(k - base) as usize]);
            }
            seen = base + latencies.len() as u64;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.await.unwrap();
    latencies.sort();
    println!();
    println!(
        "append → signed checkpoint: p50 {:.0} ms, p99 {:.0} ms over {count} appends (goal p99 < 1000 ms)",
        pct(&latencies, 0.5),
        pct(&latencies, 0.99)
    );
    if let Some(task) = integrating {
        task.abort();
    }

    // 3. Proofs served and verified.
    let cp = store.latest_checkpoint().await.unwrap().unwrap();
    let n = cp.size;
    let started = Instant::now();
    let mut proofs: Vec<(u64, Hash, Vec<Hash>)> = Vec::new();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        let index = (i * 7919) % n;
        let proof = store.inclusion_proof(index, n).await.unwrap().unwrap();
        let bytes = store.ledger_entries(index, 1).await.unwrap().remove(0).1;
        proofs.push((index, leaf_hash(&bytes), proof));
        i += 1;
    }
    let served = proofs.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut verified = 0u64;
    while started.elapsed() < Duration::from_secs(2) {
        for (index, leaf, proof) in &proofs {
            verify_inclusion(leaf, *index, n, proof, &cp.root).unwrap();
            verified += 1;
        }
    }
    let verifications = verified as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut h = [0u8; 32];
    let mut hashes = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..10_000 {
            h = node_hash(&h, &h);
        }
        hashes += 10_000;
    }
    let hash_rate = hashes as f64 / started.elapsed().as_secs_f64();
    let depth = proofs.iter().map(|p| p.2.len()).sum::<usize>() as f64 / proofs.len() as f64;
    println!();
    println!(
        "inclusion proofs served (entry + proof from stored tiles, tree of {n}): {served:>9.0} /s"
    );
    println!(
        "inclusion proof verifications:                                  {verifications:>9.0} /s (goal ≥ 50,000)"
    );
    println!(
        "baseline, raw SHA-256 node hashes:                              {hash_rate:>9.0} /s; a proof is {depth:.1} hashes, so the ceiling is {:.0} /s ({:.0}% reached)",
        hash_rate / (depth + 1.0),
        verifications / (hash_rate / (depth + 1.0)) * 100.0
    );
    let _ = h;
}
