//! The message log over years. Once a month has ended (and an hour more,
//! so that an exchange under way at midnight is in), its exchanges are
//! written in id order as JSON Lines into a gzip file under
//! `DATA_DIR/exchange-archive/`, beside a note signed by the ledger key that
//! names the month, the count and the file's SHA-256; the same digest goes
//! into the ledger (`exchange.archived`). Rows leave `exchange_log` only when
//! their month is archived *and* past `exchange_log_retention_days`, so a
//! citizen's data-access history is complete for the whole retention period
//! and nothing is deleted that was not first archived.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{Datelike, TimeZone, Utc};
use nara_ledger::note::{self, Verifier};
use nara_store::Store;
use nara_store::exchange_archive::ExchangeArchive;
use sha2::{Digest, Sha256};

use crate::ledger::LedgerKeys;

/// Where a node keeps the archive files.
pub fn archive_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("exchange-archive")
}

/// A month is archived only this long after it ended (ms).
const SETTLE_MS: i64 = 3_600_000;
/// Rows read (and deleted) a transaction.
const PAGE: i64 = 5_000;
/// The signed note's first line.
const NOTE_TITLE: &str = "nara exchange log archive";

/// A calendar month, UTC: `[starts_at, ends_at)` in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    pub period: String,
    pub starts_at: i64,
    pub ends_at: i64,
}

impl Month {
    /// The month holding `ms`.
    pub fn of(ms: i64) -> Option<Month> {
        let t = Utc.timestamp_millis_opt(ms).single()?;
        Month::starting(t.year(), t.month())
    }

    fn starting(year: i32, month: u32) -> Option<Month> {
        let start = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single()?;
        let (ny, nm) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let end = Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0).single()?;
        Some(Month {
            period: format!("{year:04}-{month:02}"),
            starts_at: start.timestamp_millis(),
            ends_at: end.timestamp_millis(),
        })
    }

    /// The month after this one.
    pub fn next(&self) -> Option<Month> {
        Month::of(self.ends_at)
    }

    fn file_name(&self) -> String {
        format!("exchange-log-{}.jsonl.gz", self.period)
    }
}

/// The text the ledger key signs for an archive file.
fn note_text(origin: &str, a: &ExchangeArchive) -> String {
    format!(
        "{NOTE_TITLE}\n{origin}\nperiod {}\nexchanges {}\nsha256 {}\n",
        a.period, a.exchanges, a.sha256
    )
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

type Encoder = flate2::write::GzEncoder<Hashing<std::io::BufWriter<std::fs::File>>>;

/// Archives every closed month not archived yet; the new archives.
pub async fn archive_closed_months(
    store: &Store,
    data_dir: &Path,
    keys: &LedgerKeys,
    now_ms: i64,
    actor: &str,
) -> anyhow::Result<Vec<ExchangeArchive>> {
    let Some(oldest) = store.oldest_exchange_at().await? else {
        return Ok(Vec::new());
    };
    let done: std::collections::HashSet<String> = store
        .exchange_archives()
        .await?
        .into_iter()
        .map(|a| a.period)
        .collect();
    let dir = archive_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let mut made = Vec::new();
    let mut month = Month::of(oldest);
    while let Some(m) = month {
        if m.ends_at + SETTLE_MS > now_ms {
            break;
        }
        if !done.contains(&m.period)
            && let Some(archive) = archive_month(store, &dir, keys, &m, actor).await?
        {
            made.push(archive);
        }
        month = m.next();
    }
    Ok(made)
}

/// Writes one month's file and note and records it; `None` when the month
/// holds no exchange.
async fn archive_month(
    store: &Store,
    dir: &Path,
    keys: &LedgerKeys,
    month: &Month,
    actor: &str,
) -> anyhow::Result<Option<ExchangeArchive>> {
    let file = dir.join(month.file_name());
    let partial = dir.join(format!(
        "{}.{:016x}.partial",
        month.file_name(),
        rand::random::<u64>()
    ));
    let result = write_month(store, month, &partial).await;
    let (exchanges, sha256, bytes) = match result {
        Ok(Some(written)) => written,
        Ok(None) => {
            let _ = std::fs::remove_file(&partial);
            return Ok(None);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &file)?;
    let archive = ExchangeArchive {
        period: month.period.clone(),
        starts_at: month.starts_at,
        ends_at: month.ends_at,
        exchanges,
        file: month.file_name(),
        sha256,
        bytes,
        archived_at: nara_core::Timestamp::now().0,
        pruned_at: None,
    };
    let signed = keys
        .signer
        .sign(&note_text(keys.signer.verifier().name(), &archive))
        .map_err(|e| anyhow::anyhow!("signing the archive note: {e}"))?;
    write_synced(&signature_path(&file), signed.as_bytes())?;
    sync_dir(dir);
    store.record_exchange_archive(&archive, actor).await?;
    tracing::info!(period = %archive.period, exchanges, file = %file.display(), "message log archived");
    Ok(Some(archive))
}

/// The signed note beside an archive file.
pub fn signature_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".sig");
    file.with_file_name(name)
}

/// Writes `path` whole or not at all: a synced temporary file renamed.
fn write_synced(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    let mut f = std::fs::File::create(&partial)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&partial, path)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Streams a month's rows into `path` (gzip JSON Lines, fsynced): count,
/// SHA-256 and size of the file; `None` for an empty month.
async fn write_month(
    store: &Store,
    month: &Month,
    path: &Path,
) -> anyhow::Result<Option<(i64, String, i64)>> {
    let out = std::fs::File::create(path)?;
    let mut encoder: Encoder = flate2::write::GzEncoder::new(
        Hashing {
            inner: std::io::BufWriter::new(out),
            hash: Sha256::new(),
            bytes: 0,
        },
        flate2::Compression::default(),
    );
    let (mut after, mut count) = (0i64, 0i64);
    loop {
        let rows = store
            .exchanges_between(month.starts_at, month.ends_at, after, PAGE)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        count += rows.len() as i64;
        // Compressing is CPU work: off the server's threads.
        encoder = tokio::task::spawn_blocking(move || -> std::io::Result<Encoder> {
            for r in &rows {
                serde_json::to_writer(&mut encoder, r)?;
                encoder.write_all(b"\n")?;
            }
            Ok(encoder)
        })
        .await??;
    }
    if count == 0 {
        return Ok(None);
    }
    let mut hashing = encoder.finish()?;
    hashing.flush()?;
    let file = hashing
        .inner
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing the archive: {}", e.error()))?;
    file.sync_all()?;
    Ok(Some((
        count,
        hex::encode(hashing.hash.finalize()),
        hashing.bytes as i64,
    )))
}

/// Deletes from the log the rows of archived months past the retention
/// period; the months pruned.
pub async fn prune_past_retention(
    store: &Store,
    retention_days: u32,
    now_ms: i64,
    actor: &str,
) -> anyhow::Result<Vec<String>> {
    let keep_from = now_ms - i64::from(retention_days.max(1)) * 86_400_000;
    let mut pruned = Vec::new();
    for archive in store.exchange_archives().await? {
        if archive.pruned_at.is_some() || archive.ends_at > keep_from {
            continue;
        }
        let mut rows = 0u64;
        loop {
            let n = store
                .prune_archived_exchanges(&archive.period, PAGE, actor)
                .await?;
            if n == 0 {
                break;
            }
            rows += n;
        }
        tracing::info!(period = %archive.period, rows, retention_days, "message log past retention deleted (archived)");
        pruned.push(archive.period);
    }
    Ok(pruned)
}

/// Archives what has closed and prunes what is past retention; logs, never
/// fails the caller (a background round).
pub async fn round(state: &crate::AppState) {
    // One round at a time on a node: an hour's round may outlast the hour.
    static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if RUNNING.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    archive_and_prune(state).await;
    RUNNING.store(false, std::sync::atomic::Ordering::Release);
}

async fn archive_and_prune(state: &crate::AppState) {
    let now = nara_core::Timestamp::now().0;
    if let Err(e) = archive_closed_months(
        &state.store,
        &state.config.data_dir,
        &state.ledger,
        now,
        "system",
    )
    .await
    {
        tracing::warn!(error = %format!("{e:#}"), "archiving the message log");
        return;
    }
    if let Err(e) = prune_past_retention(
        &state.store,
        state.config.exchange_log_retention_days,
        now,
        "system",
    )
    .await
    {
        tracing::warn!(error = %format!("{e:#}"), "pruning the message log");
    }
}

/// What checking an archive file found.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub period: String,
    pub exchanges: i64,
    pub sha256: String,
}

/// Checks an archive file against its signed note (`FILE.sig`) and the
/// trusted verifier keys: the signature, the digest, and the count of
/// records (each line one exchange). What an auditor runs, years later.
pub fn verify_archive(file: &Path, trusted: &[Verifier]) -> anyhow::Result<Checked> {
    let signed = std::fs::read_to_string(signature_path(file))
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", signature_path(file).display()))?;
    let text = note::open(&signed, trusted).map_err(|e| anyhow::anyhow!("the note: {e}"))?;
    let mut lines = text.lines();
    anyhow::ensure!(
        lines.next() == Some(NOTE_TITLE),
        "the note is not an exchange log archive's"
    );
    let _origin = lines.next();
    let field = |line: Option<&str>, name: &str| -> anyhow::Result<String> {
        line.and_then(|l| l.strip_prefix(&format!("{name} ")))
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("the note has no {name}"))
    };
    let period = field(lines.next(), "period")?;
    let exchanges: i64 = field(lines.next(), "exchanges")?.parse()?;
    let sha256 = field(lines.next(), "sha256")?;
    // Streamed: a busy month's file is larger than memory should hold.
    let mut hash = Sha256::new();
    std::io::copy(&mut std::fs::File::open(file)?, &mut hash)?;
    let actual = hex::encode(hash.finalize());
    anyhow::ensure!(
        actual == sha256,
        "the file's SHA-256 is {actual}, the signed note says {sha256}: the file was changed"
    );
    let lines = std::io::BufRead::lines(std::io::BufReader::new(flate2::read::GzDecoder::new(
        std::fs::File::open(file)?,
    )));
    let mut count = 0i64;
    for (n, line) in lines.enumerate() {
        serde_json::from_str::<serde_json::Value>(&line?)
            .map_err(|e| anyhow::anyhow!("record {}: {e}", n + 1))?;
        count += 1;
    }
    anyhow::ensure!(
        count == exchanges,
        "the file holds {count} exchanges, the signed note says {exchanges}"
    );
    Ok(Checked {
        period,
        exchanges,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        // 2026-02-15T12:00:00Z
        let m = Month::of(1_771_156_800_000).unwrap();
        assert_eq!(m.period, "2026-02");
        assert_eq!(m.ends_at - m.starts_at, 28 * 86_400_000);
        let next = m.next().unwrap();
        assert_eq!(next.period, "2026-03");
        assert_eq!(next.starts_at, m.ends_at);
        let dec = Month::of(
            Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59)
                .unwrap()
                .timestamp_millis(),
        )
        .unwrap();
        assert_eq!(dec.next().unwrap().period, "2027-01");
    }
}
