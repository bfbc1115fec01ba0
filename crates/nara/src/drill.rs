//! `nara dr drill`: the whole disaster on one machine, timed. A node (a
//! real `nara serve` process) takes writes while it is continuously backed
//! up to a second site; mid-write it is killed with SIGKILL and its data
//! directory deleted; the second site is restored onto a fresh directory,
//! proven by the ledger, and served again. No write acknowledged more than
//! three seconds before the disaster may be missing; the restored ledger
//! must extend the backup's signed checkpoint. Prints the recovery point and
//! the recovery time. Only loopback is used.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use nara_server::backup::{self, Destination};

fn run(exe: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(exe)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running nara {}", args.join(" ")))?;
    anyhow::ensure!(out.status.success(), "nara {} failed", args.join(" "));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `nara serve` on `data` at `port`, continuously backed up to
/// `site` when given, and waits until it is ready.
async fn serve(
    exe: &Path,
    data: &Path,
    port: u16,
    log: &Path,
    backup: Option<(&Path, &str)>,
) -> anyhow::Result<Child> {
    let mut command = Command::new(exe);
    command
        .arg("serve")
        .env("NARA_DATA_DIR", data)
        .env("NARA_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    if let Some((site, recipient)) = backup {
        command
            .env("NARA_BACKUP_TO", site)
            .env("NARA_BACKUP_RECIPIENT", recipient)
            .env("NARA_BACKUP_EVERY_SECONDS", "3600");
    }
    let child = command.spawn().context("starting nara serve")?;
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let ready = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(child);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("nara serve did not become ready (see {})", log.display())
}

/// Runs the drill in `dir` (which must not exist or be empty), with
/// `seconds` of writes around the backup.
pub async fn drill(dir: PathBuf, seconds: u64) -> anyhow::Result<()> {
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        anyhow::bail!(
            "{} is not empty: the drill needs a fresh directory",
            dir.display()
        );
    }
    let exe = std::env::current_exe()?;
    let node = dir.join("node");
    let site = dir.join("second-site");
    let key = dir.join("vault").join("backup.key");
    std::fs::create_dir_all(&node)?;
    let db = format!("sqlite://{}", node.join("nara.db").display());
    println!(
        "1. a node: the demo country, served by `nara serve` in {}",
        node.display()
    );
    run(&exe, &["seed", "--scale", "demo", "--database-url", &db])?;
    let token = run(
        &exe,
        &[
            "operator-token",
            "--username",
            "drill",
            "--database-url",
            &db,
        ],
    )?;
    backup::keygen(&key)?;
    let port = free_port()?;
    let recipient = backup::read_recipient(&key.display().to_string())?.to_string();
    let mut server = serve(
        &exe,
        &node,
        port,
        &dir.join("node.log"),
        Some((&site, recipient.as_str())),
    )
    .await?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let vkey = client
        .get(format!("{base}/ledger/vkey"))
        .send()
        .await?
        .text()
        .await?;
    let destination = Destination::new(&site);
    for _ in 0..300 {
        if !destination.list_backups().await?.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(
        !destination.list_backups().await?.is_empty(),
        "the node took no base backup (see {})",
        dir.join("node.log").display()
    );

    println!(
        "2. writes for {seconds} s, shipped continuously to the second site {}",
        site.display()
    );
    let acked: Arc<Mutex<Vec<(i64, i64)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acked, stop, client, base, token) = (
            acked.clone(),
            stop.clone(),
            client.clone(),
            base.clone(),
            token.clone(),
        );
        tokio::spawn(async move {
            for n in 0u64.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let body = serde_json::json!({
                    "agency": "KR/GOV/MOIS", "code": format!("DRILL-{n}"), "name": "Drill",
                    "kind": "server", "grade": 3, "environment": "staging", "status": "operational"
                });
                let answer = client
                    .post(format!("{base}/api/v1/systems"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                if let Ok(r) = answer
                    && r.status() == reqwest::StatusCode::CREATED
                    && let Ok(v) = r.json::<serde_json::Value>().await
                    && let Some(id) = v["id"].as_i64()
                    && let Ok(mut a) = acked.lock()
                {
                    a.push((id, nara_core::Timestamp::now().0));
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;

    println!(
        "3. the disaster, mid-write: the node killed with SIGKILL, its data directory deleted"
    );
    let disaster_ms = nara_core::Timestamp::now().0;
    let disaster = Instant::now();
    server.kill()?;
    server.wait()?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.await;
    std::fs::remove_dir_all(&node)?;

    println!("4. recovery: restore onto a fresh directory, prove by the ledger, serve again");
    let identity = backup::read_identity(&key)?;
    let restored = backup::restore::restore(
        &destination,
        None,
        backup::stream::Until::Latest,
        &identity,
        &node,
        false,
        &|_, _| {},
    )
    .await?;
    let proof =
        backup::restore::verify(&destination, None, &identity, Some(vkey.trim()), &|_, _| {})
            .await?;
    let mut server = serve(&exe, &node, port, &dir.join("restored.log"), None).await?;
    let recovery_time = disaster.elapsed();

    println!("5. checks");
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let mut lost = Vec::new();
    for (id, at) in &acked {
        let r = client
            .get(format!("{base}/api/v1/systems/{id}"))
            .bearer_auth(&token)
            .send()
            .await?;
        if !r.status().is_success() {
            lost.push((*id, disaster_ms - at));
        }
    }
    let ledger = nara_server::ledger::verify_log(
        &format!("{base}/ledger"),
        vkey.trim(),
        Some(restored.manifest.ledger.checkpoint.as_str()).filter(|c| !c.is_empty()),
        &|_, _| {},
    )
    .await;
    let _ = server.kill();
    let _ = server.wait();

    let shipped_ms = restored
        .replayed
        .shipped_ms
        .unwrap_or(restored.manifest.created_ms);
    let oldest_lost_ms = lost.iter().map(|(_, age)| *age).max().unwrap_or(0);
    println!(
        "   writes acknowledged: {}; restored {} then {} transactions from {} log segments; proven: {} entries reproduce {} checkpoints",
        acked.len(),
        restored.manifest.id,
        restored.replayed.transactions,
        restored.replayed.segments,
        proof.entries,
        proof.checkpoints
    );
    println!(
        "recovery point: {:.2} s (the last segment was shipped that long before the disaster; {} acknowledged writes lost, the oldest {:.2} s before it)",
        (disaster_ms - shipped_ms).max(0) as f64 / 1000.0,
        lost.len(),
        oldest_lost_ms as f64 / 1000.0
    );
    println!(
        "recovery time: {:.2} s from the disaster to serving again",
        recovery_time.as_secs_f64()
    );
    // The promise: at most a few seconds of acknowledged writes.
    anyhow::ensure!(
        oldest_lost_ms <= RECOVERY_POINT_PROMISE_MS,
        "{} acknowledged writes lost, the oldest {oldest_lost_ms} ms before the disaster (promised: {RECOVERY_POINT_PROMISE_MS} ms)",
        lost.len()
    );
    let verified = ledger.map_err(|e| anyhow::anyhow!("the restored ledger: {e}"))?;
    println!(
        "ledger: the restored node's log ({} entries) extends the backup's signed checkpoint",
        verified.checkpoint.size
    );
    println!("The drill passed.");
    Ok(())
}

/// No acknowledged write older than this may be lost.
const RECOVERY_POINT_PROMISE_MS: i64 = 3_000;
