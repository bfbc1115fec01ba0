//! `nara dr drill`: the whole disaster on one machine, timed. A node (a
//! real `nara serve` process) takes writes; a backup is taken while it
//! serves (the real `nara backup create`); the node is killed with SIGKILL
//! and its data directory deleted; the backup is restored onto a fresh
//! directory, proven by the ledger, and served again. Every write
//! acknowledged before the backup began must be there; the restored ledger
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

/// Starts `nara serve` on `data` at `port`, and waits until it is ready.
async fn serve(exe: &Path, data: &Path, port: u16, log: &Path) -> anyhow::Result<Child> {
    let child = Command::new(exe)
        .arg("serve")
        .env("NARA_DATA_DIR", data)
        .env("NARA_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("starting nara serve")?;
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
    let mut server = serve(&exe, &node, port, &dir.join("node.log")).await?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let vkey = client
        .get(format!("{base}/ledger/vkey"))
        .send()
        .await?
        .text()
        .await?;

    println!("2. writes for {seconds} s; a backup taken while they go on");
    let acked: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
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
                    a.push((id, Instant::now()));
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    let backup_started = Instant::now();
    let node_arg = node.display().to_string();
    let site_arg = site.display().to_string();
    let key_arg = key.display().to_string();
    println!(
        "{}",
        run(
            &exe,
            &[
                "backup",
                "create",
                "--to",
                &site_arg,
                "--recipient",
                &key_arg,
                "--data",
                &node_arg
            ]
        )?
    );
    let backup_took = backup_started.elapsed();
    tokio::time::sleep(Duration::from_secs(seconds - seconds / 2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.await;

    println!("3. the disaster: the node killed with SIGKILL, its data directory deleted");
    let disaster = Instant::now();
    server.kill()?;
    server.wait()?;
    std::fs::remove_dir_all(&node)?;

    println!("4. recovery: restore onto a fresh directory, prove by the ledger, serve again");
    let identity = backup::read_identity(&key)?;
    let destination = Destination::new(&site);
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
    let mut server = serve(&exe, &node, port, &dir.join("restored.log")).await?;
    let recovery_time = disaster.elapsed();

    println!("5. checks");
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let before = acked.iter().filter(|(_, at)| *at < backup_started).count();
    let after = acked.len() - before;
    let mut missing = Vec::new();
    let mut lost_after = 0usize;
    for (id, at) in &acked {
        let r = client
            .get(format!("{base}/api/v1/systems/{id}"))
            .bearer_auth(&token)
            .send()
            .await?;
        let present = r.status().is_success();
        if *at < backup_started && !present {
            missing.push(*id);
        }
        if *at >= backup_started && !present {
            lost_after += 1;
        }
    }
    let ledger = nara_server::ledger::verify_log(
        &format!("{base}/ledger"),
        vkey.trim(),
        Some(&restored.manifest.ledger.checkpoint),
        &|_, _| {},
    )
    .await;
    let _ = server.kill();
    let _ = server.wait();

    println!(
        "   writes acknowledged: {} ({} before the backup began, {} after)",
        acked.len(),
        before,
        after
    );
    println!(
        "   restored {} ({} files, the ledger at {} entries); proven: {} entries reproduce {} checkpoints",
        restored.manifest.id,
        restored.files,
        restored.manifest.ledger.size,
        proof.entries,
        proof.checkpoints
    );
    println!(
        "recovery point: {:.1} s of writes ({} acknowledged writes after the backup began are not in it; the backup took {:.2} s)",
        disaster.duration_since(backup_started).as_secs_f64(),
        lost_after,
        backup_took.as_secs_f64()
    );
    println!(
        "recovery time: {:.2} s from the disaster to serving again",
        recovery_time.as_secs_f64()
    );
    anyhow::ensure!(
        missing.is_empty(),
        "{} writes acknowledged before the backup are missing: {missing:?}",
        missing.len()
    );
    let verified = ledger.map_err(|e| anyhow::anyhow!("the restored ledger: {e}"))?;
    println!(
        "ledger: the restored node's log ({} entries) extends the backup's signed checkpoint",
        verified.checkpoint.size
    );
    println!("The drill passed.");
    Ok(())
}
