//! Backups of a SQLite node: taken while writes go on, restored into an
//! empty directory, proven by the ledger; damage, a missing object, a wrong
//! key and a non-empty target are refused with what is wrong named.

use nara_server::backup::stream::Until;
use std::path::Path;

use nara_ledger::note::Signer;
use nara_server::backup::{self, BackupError, Destination};
use nara_store::Store;

const ORIGIN: &str = "backup.test/ledger";

/// A node's data directory: the database with `entries` ledger entries
/// integrated under signed checkpoints, its ledger key, an uploaded file.
async fn node(dir: &Path, entries: usize) -> (Store, Signer) {
    let store = Store::connect(&Store::sqlite_url(dir)).await.unwrap();
    let signer = Signer::new(ORIGIN, &[7u8; 32]).unwrap();
    std::fs::write(dir.join("ledger.key"), signer.skey()).unwrap();
    std::fs::create_dir_all(dir.join("uploads/ab")).unwrap();
    std::fs::write(
        dir.join("uploads/ab/abcdef"),
        b"a citizen's uploaded evidence",
    )
    .unwrap();
    append(&store, &signer, 0, entries).await;
    (store, signer)
}

/// Appends entries `from..from + count` in batches, a checkpoint per batch.
async fn append(store: &Store, signer: &Signer, from: usize, count: usize) {
    for chunk in (from..from + count).collect::<Vec<_>>().chunks(250) {
        let batch: Vec<Vec<u8>> = chunk
            .iter()
            .map(|i| {
                nara_ledger::Entry {
                    kind: "catalogue.system.created".into(),
                    time_ms: 1_800_000_000_000 + *i as i64,
                    actor: "role:operator".into(),
                    subjects: vec![format!("system:{i}")],
                    digest: nara_ledger::entry::digest(format!("state {i}").as_bytes()),
                }
                .encode()
                .unwrap()
            })
            .collect();
        store.append_entries(&batch).await.unwrap();
        while store.integrate(signer).await.unwrap().is_some() {}
    }
}

fn keys(dir: &Path) -> (age::x25519::Identity, age::x25519::Recipient) {
    let path = dir.join("backup.key");
    let recipient = backup::keygen(&path).unwrap();
    (
        backup::read_identity(&path).unwrap(),
        backup::read_recipient(&recipient).unwrap(),
    )
}

fn quiet(_: u64, _: u64) {}

/// A node taking continuous backups into a directory: `entries` ledger
/// entries under signed checkpoints, and its shipper (no base yet).
struct Streaming {
    data: tempfile::TempDir,
    site: tempfile::TempDir,
    _vault: tempfile::TempDir,
    store: Store,
    signer: Signer,
    identity: age::x25519::Identity,
    destination: Destination,
    live: std::sync::Arc<backup::stream::Live>,
    shipper: backup::stream::Shipper,
}

async fn streaming(entries: usize) -> Streaming {
    let (data, site, vault) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let store = Store::connect_with(
        &Store::sqlite_url(data.path()),
        nara_store::Checkpoints::Shipped,
    )
    .await
    .unwrap();
    let signer = Signer::new(ORIGIN, &[7u8; 32]).unwrap();
    std::fs::write(data.path().join("ledger.key"), signer.skey()).unwrap();
    append(&store, &signer, 0, entries).await;
    let (identity, recipient) = keys(vault.path());
    let destination = Destination::new(site.path());
    let live = std::sync::Arc::new(backup::stream::Live::default());
    let shipper = backup::stream::Shipper::new(
        &store,
        data.path(),
        destination.clone(),
        recipient,
        live.clone(),
    )
    .await
    .unwrap();
    Streaming {
        data,
        site,
        _vault: vault,
        store,
        signer,
        identity,
        destination,
        live,
        shipper,
    }
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_and_is_proven_by_the_ledger() {
    let (data, site, vault) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (store, signer) = node(data.path(), 1_000).await;
    let (identity, recipient) = keys(vault.path());
    let destination = Destination::new(site.path());

    // Writes go on while the backup is taken: the snapshot is one consistent moment.
    let writer = {
        let (store, signer) = (store.clone(), Signer::from_skey(&signer.skey()).unwrap());
        tokio::spawn(async move { append(&store, &signer, 1_000, 2_000).await })
    };
    let taken = backup::take(&store, data.path(), &destination, &recipient, &quiet)
        .await
        .unwrap();
    writer.await.unwrap();
    assert!(
        taken.manifest.ledger.size >= 1_000,
        "{:?}",
        taken.manifest.ledger
    );
    let paths: Vec<&str> = taken
        .manifest
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    for expected in ["nara.db", "ledger.key", "uploads/ab/abcdef"] {
        assert!(paths.contains(&expected), "{paths:?}");
    }
    assert!(
        !paths.iter().any(|p| p.starts_with("nara.db-")),
        "the live journals are not copied: {paths:?}"
    );
    // Nothing in the destination is in the clear.
    for entry in walk(site.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !contains(&bytes, b"citizen's uploaded evidence"),
            "{}",
            entry.display()
        );
        assert!(
            !contains(&bytes, signer.skey().as_bytes()),
            "{}",
            entry.display()
        );
    }

    // A second backup stores only what changed.
    let again = backup::take(&store, data.path(), &destination, &recipient, &quiet)
        .await
        .unwrap();
    assert!(
        again.reused_objects >= 2,
        "the key and the upload are stored once"
    );
    assert_eq!(destination.list_backups().await.unwrap().len(), 2);
    assert!(
        destination.verified(&again.manifest.id).await.is_none(),
        "never verified yet"
    );

    // Verification restores and proves the newest backup by the ledger.
    let proof = backup::restore::verify(&destination, None, &identity, None, &quiet)
        .await
        .unwrap();
    assert_eq!(proof.manifest.id, again.manifest.id);
    assert_eq!(proof.entries, again.manifest.ledger.size);
    assert!(
        proof.checkpoints >= 12,
        "every checkpoint reproduced: {}",
        proof.checkpoints
    );
    assert_eq!(proof.signed_by, signer.verifier().vkey());
    assert!(destination.verified(&again.manifest.id).await.unwrap().ok);
    // With a verifier key the operator trusts, and with a foreign one.
    let vkey = signer.verifier().vkey();
    backup::restore::verify(&destination, None, &identity, Some(&vkey), &quiet)
        .await
        .unwrap();
    let stranger = Signer::new(ORIGIN, &[9u8; 32]).unwrap().verifier().vkey();
    let refused =
        backup::restore::verify(&destination, None, &identity, Some(&stranger), &quiet).await;
    assert!(
        matches!(refused, Err(BackupError::Ledger(_))),
        "{refused:?}"
    );
    assert!(
        !destination.verified(&again.manifest.id).await.unwrap().ok,
        "a failed verification is recorded"
    );

    // Restore into an empty directory: the same ledger, the same files.
    let target = tempfile::tempdir().unwrap();
    let restored = backup::restore::restore(
        &destination,
        Some(&taken.manifest.id),
        Until::Latest,
        &identity,
        target.path(),
        false,
        &quiet,
    )
    .await
    .unwrap();
    assert_eq!(restored.manifest.id, taken.manifest.id);
    assert_eq!(
        std::fs::read(target.path().join("uploads/ab/abcdef")).unwrap(),
        b"a citizen's uploaded evidence"
    );
    let copy = Store::connect(&Store::sqlite_url(target.path()))
        .await
        .unwrap();
    let checkpoint = copy.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(checkpoint.size, taken.manifest.ledger.size);
    assert_eq!(hex::encode(checkpoint.root), taken.manifest.ledger.root);
    assert_eq!(
        copy.ledger_root(checkpoint.size).await.unwrap(),
        store.ledger_root(checkpoint.size).await.unwrap()
    );
    copy.close().await;

    // Not over a directory that is in use.
    let occupied = backup::restore::restore(
        &destination,
        None,
        Until::Latest,
        &identity,
        data.path(),
        false,
        &quiet,
    )
    .await;
    assert!(
        matches!(occupied, Err(BackupError::TargetNotEmpty(_))),
        "{occupied:?}"
    );
}

#[tokio::test]
async fn damage_a_missing_object_and_a_wrong_key_are_named() {
    let (data, site, vault) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (store, _) = node(data.path(), 300).await;
    let (identity, recipient) = keys(vault.path());
    let destination = Destination::new(site.path());
    let taken = backup::take(&store, data.path(), &destination, &recipient, &quiet)
        .await
        .unwrap();
    let object_of = |path: &str| {
        let entry = taken
            .manifest
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap();
        site.path()
            .join("objects")
            .join(&entry.object[..2])
            .join(format!("{}.age", entry.object))
    };

    // Another key cannot read it.
    let other = tempfile::tempdir().unwrap();
    let (stranger, _) = keys(other.path());
    let wrong = backup::restore::verify(&destination, None, &stranger, None, &quiet).await;
    assert!(
        matches!(wrong, Err(BackupError::Decrypt { .. })),
        "{wrong:?}"
    );

    // One bit flipped in the database's object: named, and recorded as a failure.
    let db = object_of("nara.db");
    let mut bytes = std::fs::read(&db).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&db, &bytes).unwrap();
    let flipped = backup::restore::verify(&destination, None, &identity, None, &quiet).await;
    match flipped {
        Err(BackupError::Decrypt { path, .. }) => assert_eq!(path, "nara.db"),
        other => panic!("a flipped bit must be named: {other:?}"),
    }
    let recorded = destination.verified(&taken.manifest.id).await.unwrap();
    assert!(
        !recorded.ok && recorded.detail.contains("nara.db"),
        "{recorded:?}"
    );

    // A missing object: named too; a restore leaves no half-written file behind as a success.
    std::fs::remove_file(object_of("ledger.key")).unwrap();
    let target = tempfile::tempdir().unwrap();
    let missing = backup::restore::restore(
        &destination,
        None,
        Until::Latest,
        &identity,
        target.path(),
        false,
        &quiet,
    )
    .await;
    assert!(
        matches!(
            missing,
            Err(BackupError::Decrypt { .. } | BackupError::Missing { .. })
        ),
        "{missing:?}"
    );

    // What an interrupted backup leaves (a scratch snapshot, a partial object) is
    // removed once old enough; complete objects stay.
    let scratch = site.path().join("tmp/20260101T000000000Z-deadbeef");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("nara.db"), b"half a snapshot").unwrap();
    let partial = site.path().join("objects/00/00.age.partial");
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, b"half an object").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    destination.remove_leftovers(std::time::Duration::from_millis(10));
    assert!(!scratch.exists() && !partial.exists());
    assert!(object_of("uploads/ab/abcdef").exists());

    // A backup id that is not one, and a destination without backups.
    assert!(matches!(
        destination.manifest("../../etc/passwd").await,
        Err(BackupError::NoSuchBackup(_))
    ));
    let empty = Destination::new(tempfile::tempdir().unwrap().path());
    assert!(matches!(
        empty.manifest_or_latest(None).await,
        Err(BackupError::NoBackups)
    ));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Continuous backup: a base, then the log shipped while writes go on and
/// the log is checkpointed (and so restarts) many times; every shipped
/// write restores, to the end, to a moment, to a ledger size; a missing or
/// damaged segment is named.
#[tokio::test]
async fn continuous_backup_restores_every_shipped_write_to_any_point() {
    // Every directory bound: a field left to `..` would be dropped, and deleted, at once.
    let Streaming {
        data: _data,
        site,
        _vault,
        store,
        signer: _,
        identity,
        destination,
        live,
        mut shipper,
    } = streaming(100).await;
    // Checkpoint often, so the log restarts under the stream.
    shipper.checkpoint_every(8, std::time::Duration::from_millis(50));
    let base = shipper.begin().await.unwrap().expect("a base");
    assert!(base.manifest.continuous);
    assert_eq!(base.manifest.ledger.size, 100);

    // Writes (each batch acknowledged when `append` returns) beside the shipper.
    let writer = {
        let (store, signer) = (store.clone(), Signer::new(ORIGIN, &[7u8; 32]).unwrap());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for round in 0..40 {
                append(&store, &signer, 100 + round * 5, 5).await;
                acked.push((100 + round as u64 * 5 + 5, nara_core::Timestamp::now().0));
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            }
            acked
        })
    };
    while !writer.is_finished() {
        shipper.ship().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let acked = writer.await.unwrap();
    shipper.ship().await.unwrap();
    assert!(
        live.recovery_point_seconds(nara_core::Timestamp::now().0)
            .unwrap()
            < 1.0
    );
    let segments = destination.segments(&base.manifest.id).await.unwrap();
    assert!(segments.len() > 5, "{} segments", segments.len());
    let restarts = live.restarts.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        restarts >= 3,
        "the log restarted {restarts} times under the stream"
    );
    // Checkpoints fold beside the writers, and take the lock only when
    // frames were committed meanwhile.
    let beside = live
        .folded_beside_writers
        .load(std::sync::atomic::Ordering::Relaxed);
    let locked = live
        .folded_locked
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        beside >= 1,
        "{beside} checkpoints beside the writers, {locked} locked"
    );
    let checkpoints: Vec<u64> = store
        .ledger_checkpoint_roots()
        .await
        .unwrap()
        .into_iter()
        .map(|(size, _)| size)
        .collect();
    assert_eq!(checkpoints.last(), Some(&300));

    // To the end: every write, proven by the ledger.
    let latest = tempfile::tempdir().unwrap();
    let restored = backup::restore::restore(
        &destination,
        None,
        Until::Latest,
        &identity,
        latest.path(),
        false,
        &quiet,
    )
    .await
    .unwrap();
    assert_eq!(restored.replayed.segments, segments.len());
    assert_eq!(
        nara_store::wal::ledger_size_at(&latest.path().join("nara.db"))
            .await
            .unwrap(),
        300
    );
    let proof = backup::restore::verify(&destination, None, &identity, None, &quiet)
        .await
        .unwrap();
    assert_eq!(proof.entries, 300);

    // To a moment: what was acknowledged well before it, nothing after it.
    let (_, middle) = acked[acked.len() / 2];
    let at = tempfile::tempdir().unwrap();
    let restored = backup::restore::restore(
        &destination,
        None,
        Until::At(middle),
        &identity,
        at.path(),
        false,
        &quiet,
    )
    .await
    .unwrap();
    let size = nara_store::wal::ledger_size_at(&at.path().join("nara.db"))
        .await
        .unwrap();
    let shipped = restored.replayed.shipped_ms.unwrap();
    for (entries, acked_ms) in &acked {
        if *acked_ms < shipped - 100 {
            assert!(
                size >= *entries,
                "acknowledged at {acked_ms}, shipped by {shipped}: {size} < {entries}"
            );
        }
        if *acked_ms > middle {
            assert!(
                size < *entries,
                "written after the moment: {size} >= {entries}"
            );
        }
    }

    // To a ledger size: the first state that holds it, exactly a checkpoint.
    let wanted = checkpoints[checkpoints.len() / 2] - 2;
    let first = *checkpoints.iter().find(|s| **s >= wanted).unwrap();
    let by_size = tempfile::tempdir().unwrap();
    backup::restore::restore(
        &destination,
        None,
        Until::LedgerSize(wanted),
        &identity,
        by_size.path(),
        false,
        &quiet,
    )
    .await
    .unwrap();
    assert_eq!(
        nara_store::wal::ledger_size_at(&by_size.path().join("nara.db"))
            .await
            .unwrap(),
        first
    );
    let copy = Store::connect(&Store::sqlite_url(by_size.path()))
        .await
        .unwrap();
    assert_eq!(copy.integrity_check().await.unwrap(), "ok");
    assert_eq!(
        copy.ledger_root(first).await.unwrap(),
        store.ledger_root(first).await.unwrap()
    );
    copy.close().await;
    let beyond = backup::restore::restore(
        &destination,
        None,
        Until::LedgerSize(10_000),
        &identity,
        tempfile::tempdir().unwrap().path(),
        false,
        &quiet,
    )
    .await;
    assert!(matches!(beyond, Err(BackupError::Ledger(_))), "{beyond:?}");

    // A damaged segment, then a missing one: named, never a quiet partial restore.
    let victim = site
        .path()
        .join("streams")
        .join(&base.manifest.id)
        .read_dir()
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("0000000003-")
        })
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x04;
    std::fs::write(&victim, &bytes).unwrap();
    let damaged = backup::restore::restore(
        &destination,
        None,
        Until::Latest,
        &identity,
        tempfile::tempdir().unwrap().path(),
        false,
        &quiet,
    )
    .await;
    assert!(
        matches!(&damaged, Err(BackupError::Decrypt { object, .. }) if object == "segment 3"),
        "{damaged:?}"
    );
    std::fs::remove_file(&victim).unwrap();
    let missing = backup::restore::restore(
        &destination,
        None,
        Until::Latest,
        &identity,
        tempfile::tempdir().unwrap().path(),
        false,
        &quiet,
    )
    .await;
    assert!(
        matches!(&missing, Err(BackupError::Missing { object, .. }) if object == "segment 3"),
        "{missing:?}"
    );
    shipper.finish().await;
    store.close().await;
}

/// The same backups to S3-compatible object storage: an S3 server the CI
/// starts on loopback (moto's server mode), named by `NARA_TEST_S3`
/// (`s3://bucket/prefix`, with the `AWS_*` variables for its endpoint and
/// credentials). A snapshot, a continuous stream, restores to the end and to
/// a moment, the proof by the ledger, pruning; then a store that is away is
/// a clear error, never a hang.
#[tokio::test]
async fn backups_to_s3_compatible_storage() {
    let Ok(url) = std::env::var("NARA_TEST_S3") else {
        eprintln!("skipped: NARA_TEST_S3 is not set (the CI starts an S3 server)");
        return;
    };
    let prefix = format!("{url}/run-{:08x}", rand::random::<u32>());
    let destination = Destination::open(&prefix).unwrap();
    assert!(destination.dir().is_none());
    let (data, vault) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = Store::connect_with(
        &Store::sqlite_url(data.path()),
        nara_store::Checkpoints::Shipped,
    )
    .await
    .unwrap();
    let signer = Signer::new(ORIGIN, &[7u8; 32]).unwrap();
    std::fs::write(data.path().join("ledger.key"), signer.skey()).unwrap();
    append(&store, &signer, 0, 300).await;
    let (identity, recipient) = keys(vault.path());

    // A snapshot, then a continuous stream.
    let snapshot = backup::take(&store, data.path(), &destination, &recipient, &quiet)
        .await
        .unwrap();
    assert!(snapshot.new_objects >= 2);
    let live = std::sync::Arc::new(backup::stream::Live::default());
    let mut shipper = backup::stream::Shipper::new(
        &store,
        data.path(),
        destination.clone(),
        recipient.clone(),
        live,
    )
    .await
    .unwrap();
    shipper.checkpoint_every(8, std::time::Duration::from_millis(10));
    let base = shipper.begin().await.unwrap().expect("a base");
    assert!(
        base.reused_objects >= 1,
        "the ledger key is stored once: {base:?}"
    );
    let mut marks = Vec::new();
    for round in 0..6 {
        append(&store, &signer, 300 + round * 10, 10).await;
        shipper.ship().await.unwrap();
        marks.push(nara_core::Timestamp::now().0);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        destination.segments(&base.manifest.id).await.unwrap().len(),
        6
    );
    let listed = destination.list_backups().await.unwrap();
    assert_eq!(listed.len(), 2);

    let latest = tempfile::tempdir().unwrap();
    let restored = backup::restore::restore(
        &destination,
        None,
        Until::Latest,
        &identity,
        latest.path(),
        false,
        &quiet,
    )
    .await
    .unwrap();
    assert_eq!(restored.manifest.id, base.manifest.id);
    assert_eq!(
        nara_store::wal::ledger_size_at(&latest.path().join("nara.db"))
            .await
            .unwrap(),
        360
    );
    let at = tempfile::tempdir().unwrap();
    backup::restore::restore(
        &destination,
        None,
        Until::At(marks[2]),
        &identity,
        at.path(),
        false,
        &quiet,
    )
    .await
    .unwrap();
    assert_eq!(
        nara_store::wal::ledger_size_at(&at.path().join("nara.db"))
            .await
            .unwrap(),
        330
    );
    let proof = backup::restore::verify(&destination, None, &identity, None, &quiet)
        .await
        .unwrap();
    assert_eq!(proof.entries, 360);
    assert!(destination.verified(&base.manifest.id).await.unwrap().ok);
    let status = destination.status().await.unwrap();
    assert_eq!(status.backups, 2);
    assert!(status.last_verified_ms.is_some());
    // Nothing old enough to prune: both kept.
    let pruned = destination
        .prune(&backup::Retention::default())
        .await
        .unwrap();
    assert_eq!(pruned, backup::Pruned::default());

    // A bucket that is not there: the destination is reported down, a
    // backup fails naming it, the node's data is untouched.
    let away = Destination::open(&format!("s3://no-bucket-{:08x}", rand::random::<u32>())).unwrap();
    assert!(away.status().await.is_none());
    let failed = backup::take(&store, data.path(), &away, &recipient, &quiet).await;
    assert!(matches!(failed, Err(BackupError::Remote(_))), "{failed:?}");
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    shipper.finish().await;
    store.close().await;
}

/// A node that takes continuous backups reads its own database file for
/// each base. Were it to open and close that file like any other, POSIX
/// would drop every SQLite lock the node holds on it, and the next other
/// process to close the database (`nara backup create`, an operator's
/// sqlite3 — here Python's) would checkpoint and delete the log the node is
/// still writing to: everything after would be invisible outside the node.
#[tokio::test]
async fn another_process_closing_the_database_never_hides_the_nodes_writes() {
    let (data, site, vault) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let store = Store::connect_with(
        &Store::sqlite_url(data.path()),
        nara_store::Checkpoints::Shipped,
    )
    .await
    .unwrap();
    let signer = Signer::new(ORIGIN, &[7u8; 32]).unwrap();
    std::fs::write(data.path().join("ledger.key"), signer.skey()).unwrap();
    append(&store, &signer, 0, 10).await;
    let (_, recipient) = keys(vault.path());
    let live = std::sync::Arc::new(backup::stream::Live::default());
    let mut shipper = backup::stream::Shipper::new(
        &store,
        data.path(),
        Destination::new(site.path()),
        recipient,
        live,
    )
    .await
    .unwrap();
    shipper.begin().await.unwrap().expect("a base");
    let db = data.path().join("nara.db");
    let outside = |sql: &str| {
        let out = std::process::Command::new("python3")
            .args(["-c", &format!("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute({sql:?}).fetchone()[0]); c.close()")])
            .arg(&db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(outside("SELECT COUNT(*) FROM ledger_entries"), "10");
    append(&store, &signer, 10, 5).await;
    assert!(
        data.path().join("nara.db-wal").exists(),
        "the node's log is still there"
    );
    assert_eq!(
        outside("SELECT COUNT(*) FROM ledger_entries"),
        "15",
        "another process sees the node's writes"
    );
}

/// Under load a checkpoint can stop short of the log: a reader still reads
/// an older snapshot. A new base then waits, but the stream must not: what
/// was committed meanwhile is shipped in the old generation and restores.
#[tokio::test]
async fn a_reader_holding_the_log_postpones_the_next_base_never_the_stream() {
    use sqlx::Connection;
    let Streaming {
        data,
        site: _site,
        _vault,
        store,
        signer,
        identity,
        destination,
        live,
        mut shipper,
    } = streaming(10).await;
    let first = shipper.begin().await.unwrap().expect("a base");
    assert_eq!(first.manifest.ledger.size, 10);

    // A reader's snapshot at 10 entries, then 10 more committed after it.
    let mut reader = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        data.path().join("nara.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert_eq!(seen, 10);
    append(&store, &signer, 10, 10).await;

    assert!(
        shipper.begin().await.unwrap().is_none(),
        "the checkpoint cannot pass the reader, so no base"
    );
    assert_eq!(shipper.generation().unwrap().0, first.manifest.id);
    assert!(
        live.recovery_point_seconds(nara_core::Timestamp::now().0)
            .unwrap()
            < 1.0,
        "the stream is caught up"
    );
    let restored = tempfile::tempdir().unwrap();
    let outcome = backup::restore::restore(
        &destination,
        None,
        Until::Latest,
        &identity,
        restored.path(),
        false,
        &quiet,
    )
    .await
    .unwrap();
    assert_eq!(outcome.manifest.id, first.manifest.id);
    assert_eq!(
        nara_store::wal::ledger_size_at(&restored.path().join("nara.db"))
            .await
            .unwrap(),
        20,
        "the writes after the reader's snapshot were shipped"
    );

    // Once the reader lets go, the next base is taken.
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    let second = shipper.begin().await.unwrap().expect("a base");
    assert_eq!(second.manifest.ledger.size, 20);
    reader.close().await.unwrap();
    shipper.finish().await;
    store.close().await;
}
