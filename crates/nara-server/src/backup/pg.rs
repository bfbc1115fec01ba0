//! PostgreSQL nodes are backed up by pgBackRest, configured and driven by
//! nara: base backups (full, then incremental) and continuous WAL archiving
//! (PostgreSQL's `archive_command` pushes each segment; `archive_timeout`
//! bounds the recovery point) into `<destination>/pgbackrest`, encrypted by
//! pgBackRest with a passphrase that is itself stored sealed with age to the
//! backup key — so, as for SQLite, the backup key alone (kept apart) is
//! enough to restore. The node's files (its keys) go into the same
//! destination as age-encrypted objects, and a nara manifest names the
//! pgBackRest backup and the ledger checkpoint it must reproduce.
//!
//! pgBackRest and the PostgreSQL server programs run as the database's
//! operating-system user (`run_as`, through `runuser`, when nara runs as
//! root).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::stream::Until;
use super::{BackupError, Destination, Manifest, Taken, io};

/// The stanza nara configures.
pub const STANZA: &str = "nara";
/// The pgBackRest configuration `pg-setup` wrote (with its passphrase),
/// sealed to the backup key, in the destination.
const SEALED_CONFIG: &str = "pgbackrest/nara-config.age";
/// The folder of a data directory where a restored node's pgBackRest
/// configuration, logs and locks live (never backed up: it is rebuilt).
pub const LOCAL_FOLDER: &str = "pgbackrest";

/// How to run pgBackRest on this host.
#[derive(Debug, Clone)]
pub struct PgBackRest {
    pub config: PathBuf,
    pub run_as: Option<String>,
}

fn failed(what: &str, why: impl std::fmt::Display) -> BackupError {
    BackupError::Remote(format!("{what}: {why}"))
}

impl PgBackRest {
    fn command(&self, program: &str) -> Command {
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", program]);
                c
            }
            None => Command::new(program),
        }
    }

    /// Runs `pgbackrest --config=… --stanza=nara ARGS`; its output, or an
    /// error with what it said.
    fn run(&self, args: &[&str]) -> Result<String, BackupError> {
        let config = format!("--config={}", self.config.display());
        let output = self
            .command("pgbackrest")
            .arg(&config)
            .arg(format!("--stanza={STANZA}"))
            .args(args)
            .output()
            .map_err(|e| failed("running pgbackrest", e))?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr).to_string()
                + &String::from_utf8_lossy(&output.stdout);
            let said: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
            return Err(failed(
                &format!("pgbackrest {}", args.first().copied().unwrap_or_default()),
                said.iter()
                    .rev()
                    .take(3)
                    .rev()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" / "),
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Creates the stanza if needed and checks that WAL archiving works.
    pub fn check(&self) -> Result<(), BackupError> {
        self.run(&["stanza-create"])?;
        self.run(&["check"])?;
        Ok(())
    }

    /// A base backup (incremental after the first full one); its label.
    pub fn backup(&self) -> Result<String, BackupError> {
        self.run(&["backup"])?;
        let info = self.run(&["info", "--output=json"])?;
        let parsed: serde_json::Value =
            serde_json::from_str(&info).map_err(|e| failed("pgbackrest info", e))?;
        parsed[0]["backup"]
            .as_array()
            .and_then(|b| b.last())
            .and_then(|b| b["label"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| failed("pgbackrest info", "no backup listed after taking one"))
    }

    /// Restores backup `label` into the empty directory `pg_data`: to the
    /// end of that backup, to a moment, or through all archived WAL.
    pub fn restore(&self, pg_data: &Path, label: &str, until: PgUntil) -> Result<(), BackupError> {
        let path = format!("--pg1-path={}", pg_data.display());
        let set = format!("--set={label}");
        let mut args = vec![path.as_str(), "restore"];
        let target;
        match until {
            PgUntil::EndOfBackup => {
                args.extend([set.as_str(), "--type=immediate", "--target-action=promote"]);
            }
            PgUntil::Latest => {}
            PgUntil::At(ms) => {
                target = format!("--target={}", pg_time(ms));
                args.extend(["--type=time", target.as_str(), "--target-action=promote"]);
            }
        }
        self.run(&args).map(|_| ())
    }
}

/// How far a PostgreSQL restore replays the archived WAL.
#[derive(Debug, Clone, Copy)]
pub enum PgUntil {
    EndOfBackup,
    Latest,
    At(i64),
}

/// A moment as PostgreSQL's recovery target reads it.
fn pg_time(ms: i64) -> String {
    // 2026-12-01T10:30:00.123Z → 2026-12-01 10:30:00.123+00
    let text = nara_core::Timestamp(ms).rfc3339();
    format!("{}+00", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// What `nara backup pg-setup` writes and prints.
#[derive(Debug)]
pub struct Setup {
    pub config: PathBuf,
    pub archive_command: String,
}

/// Writes a pgBackRest configuration for the cluster in `pg_data`
/// (listening on `pg_port`, its socket in `pg_socket`) backing up into
/// `destination` (a directory), with a new random passphrase sealed to
/// `recipient` beside the backups. Log and lock files go beside the config.
pub async fn setup(
    destination: &Destination,
    recipient: &age::x25519::Recipient,
    config: &Path,
    pg_data: &Path,
    pg_port: u16,
    pg_socket: Option<&Path>,
) -> Result<Setup, BackupError> {
    let Some(root) = destination.dir() else {
        return Err(failed(
            "pg-setup",
            "pgBackRest's repository is a directory here; point --to at one",
        ));
    };
    let pass = hex::encode(rand::random::<[u8; 32]>());
    let beside = config.parent().unwrap_or(Path::new(".")).to_owned();
    let text = config_text(
        &root.join("pgbackrest"),
        &pass,
        &beside,
        pg_data,
        pg_port,
        pg_socket,
    );
    let sealed = super::stream::encrypt(text.as_bytes(), recipient)?;
    destination.put_bytes(SEALED_CONFIG, sealed).await?;
    crate::keyfile::write_private(config, &text).map_err(|e| failed("writing the config", e))?;
    Ok(Setup {
        config: config.to_owned(),
        archive_command: format!(
            "pgbackrest --config={} --stanza={STANZA} archive-push %p",
            config.display()
        ),
    })
}

fn config_text(
    repo: &Path,
    pass: &str,
    beside: &Path,
    pg_data: &Path,
    pg_port: u16,
    pg_socket: Option<&Path>,
) -> String {
    let socket = pg_socket
        .map(|s| format!("pg1-socket-path={}\n", s.display()))
        .unwrap_or_default();
    format!(
        "# Written by nara (docs/operations.md). The passphrase is also in the\n\
         # destination, sealed to the backup key.\n\
         [global]\n\
         repo1-path={}\n\
         repo1-cipher-type=aes-256-cbc\n\
         repo1-cipher-pass={pass}\n\
         repo1-retention-full=4\n\
         compress-type=zst\n\
         start-fast=y\n\
         log-path={}\n\
         lock-path={}\n\
         log-level-console=warn\n\
         \n\
         [{STANZA}]\n\
         pg1-path={}\n\
         pg1-port={pg_port}\n\
         {socket}",
        repo.display(),
        beside.join("pgbackrest-log").display(),
        beside.join("pgbackrest-lock").display(),
        pg_data.display(),
    )
}

/// A pgBackRest configuration rebuilt from the destination alone (the
/// one `pg-setup` wrote, unsealed with the backup key) for the cluster
/// restored into `pg_data`, written with its logs and locks into `dir`.
pub async fn rebuild(
    destination: &Destination,
    identity: &age::x25519::Identity,
    dir: &Path,
    pg_data: &Path,
    run_as: Option<String>,
) -> Result<PgBackRest, BackupError> {
    let Some(root) = destination.dir() else {
        return Err(failed("restore", "pgBackRest's repository is a directory"));
    };
    let Some(sealed) = destination.get_bytes(SEALED_CONFIG).await? else {
        return Err(BackupError::Missing {
            object: SEALED_CONFIG.into(),
            path: "pgBackRest's configuration".into(),
        });
    };
    let original = super::stream::decrypt(&sealed, identity, SEALED_CONFIG)?;
    let original =
        String::from_utf8(original).map_err(|e| failed("the sealed configuration", e))?;
    let setting = |name: &str| {
        original
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::trim)
    };
    let pass = setting("repo1-cipher-pass")
        .ok_or_else(|| failed("the sealed configuration", "no passphrase in it"))?;
    let port = setting("pg1-port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    let socket = setting("pg1-socket-path").map(Path::new);
    for folder in ["pgbackrest-log", "pgbackrest-lock"] {
        let path = dir.join(folder);
        std::fs::create_dir_all(&path).map_err(io(&path))?;
    }
    let config = dir.join("pgbackrest.conf");
    let text = config_text(&root.join("pgbackrest"), pass, dir, pg_data, port, socket);
    let _ = std::fs::remove_file(&config);
    crate::keyfile::write_private(&config, &text).map_err(|e| failed("writing the config", e))?;
    let tool = PgBackRest { config, run_as };
    tool.hand_over(dir)?;
    Ok(tool)
}

impl PgBackRest {
    /// Gives `path` (recursively) to the user the tools run as.
    pub fn hand_over(&self, path: &Path) -> Result<(), BackupError> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        let status = Command::new("chown")
            .args(["-R", user])
            .arg(path)
            .status()
            .map_err(|e| failed("chown", e))?;
        if !status.success() {
            return Err(failed(
                "chown",
                format!("could not give {} to {user}", path.display()),
            ));
        }
        Ok(())
    }

    /// Makes `path` a directory PostgreSQL accepts for a cluster: private
    /// (0700) and owned by the user it runs as.
    pub fn cluster_directory(&self, path: &Path) -> Result<(), BackupError> {
        std::fs::create_dir_all(path).map_err(io(path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                .map_err(io(path))?;
        }
        self.hand_over(path)
    }

    /// The PostgreSQL server programs' directory: the newest under
    /// `/usr/lib/postgresql/*/bin`, or the `PATH`.
    fn pg_bin(program: &str) -> String {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin").join(program))
            .filter(|p| p.exists())
            .collect();
        found.sort();
        found
            .pop()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| program.to_owned())
    }

    /// Starts a throwaway server on a restored `pg_data` (archiving off: a
    /// copy must never push WAL into the repository) at `port`.
    pub fn start_scratch(&self, pg_data: &Path, port: u16) -> Result<(), BackupError> {
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c archive_mode=off",
            pg_data.display()
        );
        let output = self
            .command(&Self::pg_bin("pg_ctl"))
            .args(["-w", "-t", "120", "-D"])
            .arg(pg_data)
            .args(["-o", &options, "-l"])
            .arg(pg_data.join("scratch.log"))
            .arg("start")
            .output()
            .map_err(|e| failed("pg_ctl start", e))?;
        if !output.status.success() {
            let log = std::fs::read_to_string(pg_data.join("scratch.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            return Err(failed("starting the restored database", tail.join(" / ")));
        }
        Ok(())
    }

    pub fn stop_scratch(&self, pg_data: &Path) {
        let _ = self
            .command(&Self::pg_bin("pg_ctl"))
            .args(["-w", "-m", "fast", "-D"])
            .arg(pg_data)
            .arg("stop")
            .output();
    }
}

/// The PostgreSQL half of a backup: a pgBackRest base backup, and the ledger
/// point (read before it, so the restored database holds at least it).
pub async fn take(
    store: &nara_store::Store,
    data_dir: &Path,
    destination: &Destination,
    recipient: &age::x25519::Recipient,
    tool: &PgBackRest,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Taken, BackupError> {
    let ledger = super::ledger_point(store.latest_checkpoint().await?);
    let tool2 = tool.clone();
    let label = tokio::task::spawn_blocking(move || {
        tool2.check()?;
        tool2.backup()
    })
    .await
    .map_err(|e| failed("pgbackrest", e))??;
    let id = super::new_id();
    let scratch = destination.staging(&id)?;
    let result = super::store_files(
        &id,
        None,
        data_dir,
        destination,
        &scratch,
        recipient,
        progress,
        |m: &mut Manifest| {
            m.backend = "postgres".into();
            m.continuous = true;
            m.pgbackrest = Some(label.clone());
            m.ledger = ledger.clone();
        },
    )
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Which pgBackRest restore a nara `Until` asks for.
pub fn until(until: Until) -> Result<PgUntil, BackupError> {
    match until {
        Until::Latest => Ok(PgUntil::Latest),
        Until::At(ms) => Ok(PgUntil::At(ms)),
        Until::LedgerSize(_) => Err(failed(
            "restore",
            "a PostgreSQL node restores to a moment (--at), not to a ledger size",
        )),
    }
}
