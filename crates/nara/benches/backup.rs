//! Backups of the national-scale seed, against a plain file copy of the same
//! bytes measured in the same run.
//!
//!     cargo bench -p nara --bench backup
//!
//! Seeds the national country (45 agencies, 1,460 services, 45,000 systems,
//! a ledger entry for each, integrated under signed checkpoints) into SQLite,
//! plus 1 million applications and 1 million exchange-log rows (bulk-loaded,
//! generated), then, in interleaved rounds: copies the data directory's files as they are
//! (the baseline), takes a backup (snapshot, hashing, age encryption) into a
//! fresh destination, restores it, and verifies it (restore, integrity check,
//! every checkpoint's root recomputed). Figures are medians over rounds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use nara_server::backup::stream::Until;
use std::path::Path;
use std::time::Instant;

use nara_server::backup::{self, Destination};
use nara_store::Store;

const ROUNDS: usize = 3;
/// Generated applications and exchange-log rows beside the seed.
const BULK_ROWS: u64 = 1_000_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn quiet(_: u64, _: u64) {}

/// Copies every file under `from` into `to` and syncs each, as a backup
/// tool without snapshots or encryption would; returns the bytes copied.
fn plain_copy(from: &Path, to: &Path) -> u64 {
    std::fs::create_dir_all(to).unwrap();
    let mut bytes = 0;
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            bytes += plain_copy(&entry.path(), &target);
        } else {
            bytes += std::fs::copy(entry.path(), &target).unwrap();
            std::fs::File::open(&target).unwrap().sync_all().unwrap();
        }
    }
    let f = std::fs::File::open(to).unwrap();
    f.sync_all().unwrap();
    bytes
}

/// Loads generated applications and exchange-log rows into the database
/// file in one transaction each (foreign keys off: the rows name one
/// placeholder account). What a national node's busiest tables hold.
async fn bulk_rows(db: &Path) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BULK_ROWS})
         INSERT INTO applications (reference, service_code, version, agency_id, account_id, state,
             answers, evidence, created_at, updated_at, submitted_at)
         SELECT 'BENCH-' || i, 'phishing-report', 1, 'KR/GOV/MOIS', 1, 'submitted',
             '{{\"channel\":\"sms\",\"sender\":\"+82 10-' || (i % 10000) || '\",\"content\":\"report ' || i || '\"}}',
             '[]', 1796000000000 + i, 1796000000000 + i, 1796000000000 + i FROM n"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BULK_ROWS})
         INSERT INTO exchange_log (xroad_id, request_id, client_id, service_id, method, path,
             purpose, consent_id, legal_basis, subject_hash, user_id, issue, request_hash,
             response_hash, client_signature, gateway_signature, peer_signature, status, outcome,
             started_at, duration_us)
         SELECT 'x-' || i, 'r-' || i, 'KR/GOV/MOHW/benefits', 'KR/GOV/MOIS/residents/record', 'GET',
             '/record', 'benefit-eligibility', '', 'Resident Registration Act art. 29',
             hex(randomblob(16)), 'official-' || (i % 500), '', hex(randomblob(32)),
             hex(randomblob(32)), hex(randomblob(64)), hex(randomblob(64)), '', 200, 'ok',
             1796000000000 + i, 900 + i % 400 FROM n"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

#[tokio::main]
async fn main() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    println!("nara backup benchmark (SQLite, the national seed, {ROUNDS} interleaved rounds)");

    let t = Instant::now();
    let store = Store::connect(&Store::sqlite_url(&data)).await.unwrap();
    store
        .seed(&nara_core::seed::national(7).unwrap(), &|_| {})
        .await
        .unwrap();
    let signer = nara_ledger::note::Signer::new("bench.example/ledger", &[3u8; 32]).unwrap();
    std::fs::write(data.join("ledger.key"), signer.skey()).unwrap();
    while store.integrate(&signer).await.unwrap().is_some() {}
    let entries = store
        .latest_checkpoint()
        .await
        .unwrap()
        .map_or(0, |c| c.size);
    println!(
        "seeded and integrated: {entries} ledger entries in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    bulk_rows(&data.join("nara.db")).await;
    println!(
        "bulk-loaded {BULK_ROWS} applications and {BULK_ROWS} exchange-log rows in {:.1} s ({:.0} MiB database)",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(data.join("nara.db")).unwrap().len() as f64 / 1048576.0
    );

    let key = work.path().join("backup.key");
    let recipient = backup::read_recipient(&backup::keygen(&key).unwrap()).unwrap();
    let identity = backup::read_identity(&key).unwrap();

    let (mut copy_s, mut take_s, mut restore_s, mut verify_s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut copied = 0u64;
    let mut backed_up = 0u64;
    for round in 0..ROUNDS {
        let t = Instant::now();
        copied = plain_copy(&data, &work.path().join(format!("copy-{round}")));
        copy_s.push(t.elapsed().as_secs_f64());

        let destination = Destination::new(work.path().join(format!("site-{round}")));
        let t = Instant::now();
        let taken = backup::take(&store, &data, &destination, &recipient, &quiet)
            .await
            .unwrap();
        take_s.push(t.elapsed().as_secs_f64());
        backed_up = taken.manifest.files.iter().map(|f| f.bytes).sum();

        let target = work.path().join(format!("restored-{round}"));
        let t = Instant::now();
        backup::restore::restore(
            &destination,
            None,
            Until::Latest,
            &identity,
            &target,
            false,
            &quiet,
        )
        .await
        .unwrap();
        restore_s.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let proof = backup::restore::verify(&destination, None, &identity, None, &quiet)
            .await
            .unwrap();
        verify_s.push(t.elapsed().as_secs_f64());
        assert_eq!(proof.entries, entries);
        // A round's copies are gigabytes: only the figures stay.
        for dir in ["copy", "site", "restored"] {
            std::fs::remove_dir_all(work.path().join(format!("{dir}-{round}"))).unwrap();
        }
    }
    let (copy, take, restore, verify) = (
        median(copy_s),
        median(take_s),
        median(restore_s),
        median(verify_s),
    );
    let mib = |bytes: u64, s: f64| bytes as f64 / s / (1024.0 * 1024.0);
    println!();
    println!(
        "plain file copy (baseline):   {copy:6.2} s  {:7.1} MiB/s  ({:.1} MiB, the live files)",
        mib(copied, copy),
        copied as f64 / 1048576.0
    );
    println!(
        "backup (snapshot + age):      {take:6.2} s  {:7.1} MiB/s  ratio {:.2} of the copy's rate ({:.1} MiB backed up)",
        mib(backed_up, take),
        mib(backed_up, take) / mib(copied, copy),
        backed_up as f64 / 1048576.0
    );
    println!(
        "restore:                      {restore:6.2} s  {:7.1} MiB/s  ratio {:.2}",
        mib(backed_up, restore),
        mib(backed_up, restore) / mib(copied, copy)
    );
    println!("verify (restore + integrity + {entries} entries, every checkpoint): {verify:.2} s");
}
