//! The `nara` binary: a thin command line over the library crates.

mod algorithms;
mod drill;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use nara_server::{AppState, Config};
use nara_store::Store;
use secrecy::SecretString;

/// nara — a government's digital public services on one platform.
#[derive(Parser)]
#[command(
    name = "nara",
    version,
    about = "nara — a government's digital public services on one platform",
    long_about = "nara — a government's digital public services on one platform.\n\nStart with `nara demo`: a sample country on embedded SQLite, nothing else to install."
)]
struct Cli {
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Scale {
    /// 10 agencies, 30 services, 200 systems.
    Demo,
    /// A tenth of the nation: 45 agencies, 146 services, 4,500 systems.
    #[value(name = "tenth", alias = "1/10")]
    Tenth,
    /// 45 agencies, 1,460 services, 45,000 systems.
    National,
    /// Ten times the nation: 45 agencies, 14,600 services, 450,000 systems.
    #[value(name = "10x")]
    TenTimes,
}

#[derive(Subcommand)]
enum Command {
    /// Run a complete sample country on embedded SQLite: create the data
    /// directory, seed it on first start, serve, and print the address.
    Demo {
        /// Data directory (created if absent).
        #[arg(long, default_value = "./nara-data")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Take no backups (they are on by default, beside the data
        /// directory); for measuring what backups cost.
        #[arg(long)]
        no_backups: bool,
    },
    /// Serve with the configuration from a file and NARA_* variables.
    Serve {
        /// A nara.toml file; NARA_* environment variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides the configuration).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Load a sample country into the configured database.
    Seed {
        /// How big a country.
        #[arg(long, value_enum, default_value_t = Scale::Demo)]
        scale: Scale,
        /// Seed of the generator; the same seed gives the same country.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Database URL (overrides the configuration).
        #[arg(long, env = "NARA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Issue an operator API token (creating the operator account, without a
    /// password, if it does not exist): the bootstrap path for automation.
    /// Prints only the token; it is stored as a digest.
    OperatorToken {
        /// The operator's username.
        #[arg(long)]
        username: String,
        /// Scopes, comma-separated: catalogue:write, systems:read, identity:read, metrics:read.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "catalogue:write,systems:read"
        )]
        scopes: Vec<String>,
        /// Days the token is valid.
        #[arg(long, default_value_t = 30)]
        days: u64,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Database URL (overrides the configuration).
        #[arg(long, env = "NARA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Register an agency subsystem's Ed25519 public key for signed requests
    /// (RFC 9421); prints the key id to sign with. Agency admins do the same
    /// on /admin/machine-clients.
    MachineClient {
        /// The agency, INSTANCE/CLASS/CODE.
        #[arg(long)]
        agency: String,
        /// The subsystem code.
        #[arg(long)]
        subsystem: String,
        /// The public key: base64 of the 32 bytes, or PEM.
        #[arg(long)]
        public_key: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Database URL (overrides the configuration).
        #[arg(long, env = "NARA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// The public ledger: verify it, show it, manage its signing key.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// The exchange between agencies: call a data service through the
    /// gateway as an agency system, or show this node's gateway key.
    Exchange {
        #[command(subcommand)]
        command: ExchangeCommand,
    },
    /// The signed global configuration that federates nodes: make a signing
    /// key, sign a configuration.
    Globalconf {
        #[command(subcommand)]
        command: GlobalconfCommand,
    },
    /// Service definitions (TOML): check files before publishing them.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Backups of this node (database, secrets, uploads), encrypted with
    /// age to a key kept apart: take one, list them, verify one by restoring
    /// it and proving it with the ledger.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Detection rules: `nara rules check FILE|DIR…` loads Sigma rule files
    /// as the node would and says which load and which do not, and why.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// The reference models of the algorithm register: `nara algorithms
    /// evaluate [CODE…]` trains and evaluates them and prints the figures.
    Algorithms {
        #[command(subcommand)]
        command: algorithms::AlgorithmsCommand,
    },
    /// Disaster recovery: `nara dr drill` rehearses the whole disaster.
    Dr {
        #[command(subcommand)]
        command: DrCommand,
    },
    /// Restore a backup into an empty data directory (the newest, or --id).
    Restore {
        /// The backup destination.
        #[arg(long)]
        from: String,
        /// The backup key (its private half), kept apart from the backups.
        #[arg(long, default_value = "./nara-data-backup.key")]
        key: PathBuf,
        /// The data directory to restore into.
        #[arg(long, default_value = "./nara-data")]
        data: PathBuf,
        /// A backup's id, as `nara backup list` prints it.
        #[arg(long)]
        id: Option<String>,
        /// Restore over a data directory that is not empty.
        #[arg(long)]
        replace: bool,
        /// Restore the state as it was at this moment (RFC 3339, e.g.
        /// 2026-12-01T10:30:00Z), to within a second of continuous backup.
        #[arg(long, conflicts_with_all = ["ledger_size", "id"])]
        at: Option<String>,
        /// Restore the state just after the ledger reached this many entries.
        #[arg(long, conflicts_with_all = ["at", "id"])]
        ledger_size: Option<u64>,
        /// For a PostgreSQL backup: the empty directory pgBackRest restores
        /// the database cluster into.
        #[arg(long)]
        pg_data: Option<PathBuf>,
        /// For a PostgreSQL backup: the user PostgreSQL runs as.
        #[arg(long)]
        run_as: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Database URL (overrides the configuration).
        #[arg(long, env = "NARA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Load Sigma rule files (files, or directories of `*.yml`) beside the
    /// starter set; exit non-zero if any does not load.
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DrCommand {
    /// The whole disaster on one machine: a node takes writes, is backed up
    /// while serving, is killed and its data deleted, is restored, proven by
    /// the ledger and served again; prints the recovery point and time.
    Drill {
        /// A fresh directory for the drill (created; must be empty).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Seconds of writes around the backup.
        #[arg(long, default_value_t = 6)]
        seconds: u64,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Make a backup key; prints its public half, which is all taking a
    /// backup needs. Keep the file apart from the backups.
    Keygen {
        #[arg(long, default_value = "./nara-data-backup.key")]
        out: PathBuf,
    },
    /// Take a backup now: a snapshot of the database while it serves, and
    /// every file of the data directory, unchanged files stored once.
    Create {
        /// The destination directory (another disk or mount).
        #[arg(long)]
        to: String,
        /// Whom to encrypt to: `age1…`, or a backup key file.
        #[arg(
            long,
            env = "NARA_BACKUP_RECIPIENT",
            default_value = "./nara-data-backup.key"
        )]
        recipient: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// The data directory (overrides the configuration).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Configure pgBackRest for a PostgreSQL node: base backups and WAL
    /// archiving into the destination, encrypted with a passphrase sealed
    /// to the backup key; prints the postgresql.conf lines to add.
    PgSetup {
        /// The destination directory (pgBackRest's repository goes inside).
        #[arg(long)]
        to: String,
        /// Whom the passphrase is sealed to: `age1…`, or a backup key file.
        #[arg(long, default_value = "./nara-data-backup.key")]
        recipient: String,
        /// The PostgreSQL cluster's data directory.
        #[arg(long)]
        pg_data: PathBuf,
        #[arg(long, default_value_t = 5432)]
        pg_port: u16,
        /// The directory of PostgreSQL's Unix socket.
        #[arg(long)]
        pg_socket: Option<PathBuf>,
        /// Where to write the pgBackRest configuration.
        #[arg(long, default_value = "./pgbackrest.conf")]
        out: PathBuf,
        /// Give the written files to this user (the database's).
        #[arg(long)]
        run_as: Option<String>,
    },
    /// List the backups in a destination, newest last, with their last
    /// verification.
    List {
        #[arg(long)]
        to: String,
    },
    /// Restore a backup (the newest, or --id) into scratch space and prove
    /// it: integrity check, every checkpoint's root reproduced, the newest
    /// signed by the ledger key.
    Verify {
        #[arg(long)]
        from: String,
        #[arg(long, default_value = "./nara-data-backup.key")]
        key: PathBuf,
        #[arg(long)]
        id: Option<String>,
        /// A ledger verifier key to trust (as /ledger/vkey serves it)
        /// instead of the restored ledger key.
        #[arg(long)]
        vkey: Option<String>,
        /// For a PostgreSQL backup: the node's database URL (its user,
        /// password and database; the restored copy runs on another port).
        #[arg(long, env = "NARA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// For a PostgreSQL backup: the user PostgreSQL's tools run as.
        #[arg(long)]
        run_as: Option<String>,
    },
}

#[derive(Subcommand)]
enum ExchangeCommand {
    /// Call `/r1/…` as an agency system, signing with its key (by default
    /// the demo's client, from DATA/demo-exchange.json), and print the answer.
    Call {
        /// The path: /r1/INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE[/path]
        path: String,
        /// The gateway's address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Where demo-exchange.json is.
        #[arg(long, default_value = "./nara-data")]
        data: PathBuf,
        /// HTTP method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Nara-Subject: the person's resident registration number.
        #[arg(long)]
        subject: Option<String>,
        /// Nara-Purpose, e.g. benefit-eligibility.
        #[arg(long)]
        purpose: Option<String>,
        /// Nara-Consent: a consent id the person gave.
        #[arg(long)]
        consent: Option<String>,
        /// Nara-Legal-Basis, e.g. "Resident Registration Act art. 29".
        #[arg(long)]
        legal_basis: Option<String>,
        /// X-Road-Id (generated by the gateway if absent).
        #[arg(long)]
        id: Option<String>,
    },
    /// Set up the demo's exchange in the configured database, as `nara
    /// demo` does: the hosted registries with their records, the data
    /// services, the access rights and the demo client system's key (in
    /// DATA/demo-exchange.json, which `exchange call` reads). For nodes run
    /// with `nara serve` (a cluster's, say); does nothing if that file exists.
    SetUpDemo {
        #[arg(long)]
        config: Option<PathBuf>,
        /// How many fictional residents the registries hold.
        #[arg(long, default_value_t = 1_000)]
        residents: u64,
    },
    /// Print this node's gateway key id and public key (for the global configuration).
    NodeKey {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Archive the message log's closed months now (gzip JSON Lines under
    /// DATA/exchange-archive, each signed by the ledger key and its digest
    /// ledgered), then delete from the database the archived months past
    /// `exchange_log_retention_days`. A serving node does it hourly.
    Archive {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check archive files against their signed notes (FILE.sig) with the
    /// ledger's verifier key: signature, SHA-256 and the count of exchanges.
    VerifyArchive {
        /// The archive files (exchange-log-YYYY-MM.jsonl.gz).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The verifier key (C2SP vkey), or a file holding one or more.
        #[arg(long, required = true)]
        vkey: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Check service definition files: every problem with its line number;
    /// exits 1 if any file has one. `--demo` checks the shipped ones.
    Check {
        files: Vec<PathBuf>,
        #[arg(long)]
        demo: bool,
    },
}

#[derive(Subcommand)]
enum GlobalconfCommand {
    /// Make a signing key: writes the private key (C2SP skey, mode 0600) and
    /// prints the vkey nodes trust (their `global_conf_key`).
    Keygen {
        /// The key's name, e.g. `kr.gov/globalconf`.
        #[arg(long)]
        name: String,
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a configuration (JSON: instance, version, nodes, members) into a note.
    Sign {
        /// The skey file.
        #[arg(long)]
        key: PathBuf,
        /// The configuration, JSON.
        conf: PathBuf,
        /// Where to write the signed note.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Print the verifier key (C2SP vkey) of this node's ledger signing key.
    Vkey {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Verify a nara ledger over HTTP with nothing but its verifier key: the
    /// checkpoint's signature, every entry against the signed root, and that
    /// the log still extends a checkpoint saved earlier.
    Verify {
        /// The ledger's address, e.g. http://127.0.0.1:8080/ledger.
        #[arg(long)]
        url: String,
        /// The verifier key (C2SP vkey), or a file holding one or more (one a
        /// line, as /ledger/vkeys serves them: current and retired keys).
        #[arg(long, required = true)]
        vkey: Vec<String>,
        /// A checkpoint saved by an earlier run (see --save); repeat it to
        /// check the log extends each of several.
        #[arg(long)]
        checkpoint: Vec<PathBuf>,
        /// Where to save the verified checkpoint for the next run.
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Print the most recent entries readably.
    Show {
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        count: u32,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Database URL (overrides the configuration).
        #[arg(long, env = "NARA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Retire the signing key (its verifier key stays published at
    /// /ledger/vkeys, so old checkpoints stay verifiable) and make a new one.
    RotateKey {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

async fn ledger(command: LedgerCommand) -> anyhow::Result<()> {
    use nara_server::ledger::{LedgerKeys, verify_log_against};
    match command {
        LedgerCommand::Vkey { config } => {
            let config = load_config(config.as_deref(), None)?;
            let keys =
                LedgerKeys::load_or_create(&config.ledger_key_path(), &config.ledger_origin())?;
            println!("{}", keys.signer.verifier().vkey());
        }
        LedgerCommand::RotateKey { config } => {
            let config = load_config(config.as_deref(), None)?;
            let keys = LedgerKeys::rotate(&config.ledger_key_path(), &config.ledger_origin())?;
            println!("New ledger key; restart nara to sign with it. Verifier keys, current first:");
            for vkey in keys.vkeys() {
                println!("  {vkey}");
            }
        }
        LedgerCommand::Verify {
            url,
            vkey,
            checkpoint,
            save,
        } => {
            let vkeys: Vec<String> = vkey
                .into_iter()
                .map(|k| {
                    std::fs::read_to_string(&k)
                        .map(|t| t.trim().to_owned())
                        .unwrap_or(k)
                })
                .collect();
            let vkeys: Vec<&str> = vkeys.iter().map(String::as_str).collect();
            let base = if url.trim_end_matches('/').ends_with("/ledger") {
                url
            } else {
                format!("{}/ledger", url.trim_end_matches('/'))
            };
            let saved = checkpoint
                .iter()
                .map(|path| {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))
                })
                .collect::<anyhow::Result<Vec<String>>>()?;
            let saved: Vec<&str> = saved.iter().map(String::as_str).collect();
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} verifying [{bar:40}] {pos}/{len} entries")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let verified = verify_log_against(&base, &vkeys, &saved, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await;
            bar.finish_and_clear();
            let verified = verified.map_err(|e| anyhow::anyhow!("verification FAILED: {e}"))?;
            println!(
                "OK: {} entries of {} hash to the signed root {}",
                verified.entries,
                verified.checkpoint.origin,
                hex(&verified.checkpoint.root)
            );
            match saved.len() {
                0 => {}
                1 => println!("OK: the log is consistent with the saved checkpoint"),
                n => println!("OK: the log is consistent with all {n} saved checkpoints"),
            }
            if let Some(path) = save {
                std::fs::write(&path, &verified.note)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("Saved the checkpoint to {}", path.display());
            }
        }
        LedgerCommand::Show {
            count,
            config,
            database_url,
        } => {
            let config = load_config(config.as_deref(), database_url)?;
            let store = open_store(&config).await?;
            let checkpoint = store.latest_checkpoint().await?;
            match &checkpoint {
                Some(cp) => println!(
                    "Tree size {} (root {}); pending {}",
                    cp.size,
                    hex(&cp.root),
                    store.ledger_pending_count().await?
                ),
                None => println!(
                    "No checkpoint published yet; pending {}",
                    store.ledger_pending_count().await?
                ),
            }
            for (index, bytes) in store.recent_ledger_entries(count).await? {
                match nara_ledger::Entry::decode(&bytes) {
                    Ok(e) => println!(
                        "#{index:<8} {}  {:<28} {:<10} {}  digest {}",
                        nara_core::Timestamp(e.time_ms).rfc3339(),
                        e.kind,
                        e.actor,
                        e.subjects.join(" "),
                        &hex(&e.digest)[..16]
                    ),
                    Err(err) => println!("#{index:<8} (undecodable: {err})"),
                }
            }
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(file: Option<&Path>, database_url: Option<String>) -> anyhow::Result<Config> {
    let mut config = Config::load(file).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    if let Some(url) = database_url {
        config.database_url = Some(SecretString::from(url));
    }
    Ok(config)
}

/// Opens the store, creating the data directory a SQLite file lives in.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    }
    Store::connect(&config.database_url())
        .await
        .context("opening the database (the URL is in your configuration)")
}

/// Opens the store of a node that serves: when it backs up an SQLite
/// database, the node owns the log's checkpoints so that every committed
/// transaction is shipped before the log can restart (continuous backup).
async fn open_serving_store(config: &Config) -> anyhow::Result<Store> {
    if nara_server::backup::schedule::Plan::of(config).is_none() {
        return open_store(config).await;
    }
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    }
    Store::connect_with(&config.database_url(), nara_store::Checkpoints::Shipped)
        .await
        .context("opening the database (the URL is in your configuration)")
}

/// How long a node that starts during a failover (the database down, or a
/// standby where the primary was) waits for a writable primary before it
/// gives up; an orchestrator restarts it then.
const START_WAIT: Duration = Duration::from_secs(60);

/// Opens the serving store, waiting while the database is unreachable or a
/// read-only standby — said plainly every few seconds — rather than serving
/// on a database that refuses writes. Any other error (a wrong password, a
/// bad URL) ends the start at once.
async fn open_when_writable(config: &Config) -> anyhow::Result<Store> {
    let started = Instant::now();
    loop {
        match open_serving_store(config).await {
            Ok(store) => return Ok(store),
            Err(e) => {
                let unavailable = e
                    .downcast_ref::<nara_store::StoreError>()
                    .is_some_and(nara_store::StoreError::is_unavailable);
                if !unavailable || started.elapsed() > START_WAIT {
                    return Err(e);
                }
                tracing::warn!(error = %format!("{e:#}"), "waiting for a writable database primary");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

async fn operator_token(
    store: &Store,
    username: &str,
    scopes: &[String],
    days: u64,
) -> anyhow::Result<String> {
    use nara_core::identity::{AccountKind, Grant, Role};
    for s in scopes {
        anyhow::ensure!(
            nara_server::identity::auth::SCOPES.contains(&s.as_str()),
            "unknown scope {s:?}; known: {}",
            nara_server::identity::auth::SCOPES.join(", ")
        );
    }
    anyhow::ensure!((1..=365).contains(&days), "--days must be 1 to 365");
    let username = nara_core::identity::normalize_username(username)?;
    let account = match store.account_by_username(&username).await? {
        Some(a) => a,
        None => {
            store
                .create_account(
                    &nara_store::identity::NewAccount {
                        kind: AccountKind::Operator,
                        username: username.clone(),
                        display_name: username.clone(),
                        national_id_hash: None,
                        agency: None,
                        // No password can match: this account signs in only with tokens.
                        password_hash: "!".into(),
                        totp_secret: None,
                        grants: vec![Grant::new(Role::Operator, None)?],
                    },
                    "cli",
                )
                .await?
        }
    };
    anyhow::ensure!(
        store
            .grants(account.id)
            .await?
            .iter()
            .any(|g| g.role == Role::Operator),
        "{username} is not an operator"
    );
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    Ok(nara_server::identity::auth::issue_api_token(
        store,
        account.id,
        "cli",
        &scopes,
        std::time::Duration::from_secs(days * 86_400),
    )
    .await?)
}

async fn seed_with_progress(
    store: &Store,
    country: &nara_core::seed::Country,
) -> anyhow::Result<nara_store::SeedReport> {
    let bar = ProgressBar::new(country.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} seeding [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let report = store.seed(country, &|done| bar.set_position(done)).await?;
    bar.finish_and_clear();
    Ok(report)
}

async fn serve(config: Config, store: Store) -> anyhow::Result<()> {
    store
        .enable_catalogue_cache()
        .await
        .context("loading the catalogue into memory")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let keys = nara_server::ledger::LedgerKeys::load_or_create(
        &config.ledger_key_path(),
        &config.ledger_origin(),
    )?;
    let identity =
        nara_server::identity::auth::IdentityKeys::load_or_create(&config.identity_key_path())?;
    let federation = nara_server::exchange::federation::from_config(&config)?;
    let mut state = AppState::new(store, config, keys, identity);
    if let Some(f) = federation {
        println!(
            "Federated as node {} (global configuration version {}).",
            f.node,
            f.version()
        );
        state = state.federated(f);
    }
    nara_server::serve(listener, state, nara_server::shutdown_signal()).await?;
    Ok(())
}

/// mimalloc rather than glibc's allocator: a request allocates and frees
/// many small objects on several threads, and glibc's (`_int_malloc`,
/// `_int_free`, `malloc_consolidate`) was about 15% of the node's CPU under
/// load. With mimalloc the exchange bench's server CPU per request fell
/// 11–25% (direct 241–259 → 214–215 µs, mediated 476–504 → 358–425 µs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if let Err(e) = run(cli.command).await {
        // One readable line with its causes, not a backtrace.
        eprintln!("nara: {e:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo {
            data,
            listen,
            no_backups,
        } => {
            let mut config =
                Config::load(None).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
            config.data_dir = data.clone();
            config.listen = listen;
            config.database_url = None;
            // Backups on by default: beside the data directory, never inside it.
            let (to, key) = demo_backup_paths(&data);
            std::fs::create_dir_all(&data)
                .with_context(|| format!("creating data directory {}", data.display()))?;
            if !no_backups {
                if !key.exists() {
                    nara_server::backup::keygen(&key)?;
                }
                config.backup_to = Some(to.clone());
                config.backup_recipient = Some(key.display().to_string());
                config.backup_key = Some(key.clone());
                config.backup_every_seconds = 3600;
            }
            let store = open_serving_store(&config).await?;
            if store.is_empty().await? {
                let report = seed_with_progress(&store, &nara_core::seed::demo()?).await?;
                println!(
                    "Seeded the demo country: {} agencies, {} services, {} systems.",
                    report.agencies, report.services, report.systems
                );
            } else {
                println!("Reusing the data in {}.", data.display());
            }
            config.demo = true;
            let identity = nara_server::identity::auth::IdentityKeys::load_or_create(
                &config.identity_key_path(),
            )?;
            let (accounts, app) = nara_server::demo::ensure(&store, &identity, &data).await?;
            let exchange =
                nara_server::demo::ensure_exchange(&store, &identity, &data, 1_000).await?;
            let history = nara_server::demo::ensure_history(
                &store,
                &identity,
                &exchange.subjects,
                nara_core::Timestamp::now().0,
            )
            .await?;
            if history > 0 {
                println!(
                    "Wrote a year of exchanges ({history}, signed and ledgered, marked \"demo history\"): closed months are archived a minute after the start."
                );
            }
            nara_server::catalogue::services::ensure_demo(&store).await?;
            let applications = nara_server::demo::ensure_applications(
                &store,
                &identity,
                &data,
                nara_core::Timestamp::now().0,
            )
            .await?;
            if applications > 0 {
                println!(
                    "Wrote a year of applications ({applications}, by {} residents, in every state of their services' workflows, with ratings).",
                    nara_server::demo::RESIDENTS
                );
            }
            // Its own loopback endpoints for the prober: healthy, slow, failing, a
            // certificate about to expire (its CA trusted by the probes), a TCP port.
            let (tls, ca) = nara_server::secops::probes::serve_demo_tls(&data).await?;
            config.probe_ca_file = Some(ca);
            nara_server::secops::probes::ensure_demo(&store, listen, tls).await?;
            println!("nara demo is running at http://{listen}/");
            println!(
                "Demo accounts (also in {}; staff sign in with a TOTP code from totp_secret):",
                data.join("demo-accounts.json").display()
            );
            for a in &accounts {
                println!(
                    "  {:<17} {:<11} {}{}",
                    a.role,
                    a.username,
                    a.password,
                    a.agency
                        .as_deref()
                        .map(|g| format!("  ({g})"))
                        .unwrap_or_default()
                );
            }
            if let Some(token) = accounts.iter().find_map(|a| a.api_token.as_deref()) {
                println!("Operator API token: {token}");
            }
            println!(
                "Sample agency app (OIDC): client_id {} redirect {} (secret in {})",
                app.client_id,
                app.redirect_uri,
                data.join("demo-app.json").display()
            );
            println!(
                "Exchange: {} hosted registries (see /registries); client system {} signs with key {} (in {}). Try:",
                nara_server::demo::REGISTRIES.len(),
                exchange.client,
                exchange.key_id,
                data.join("demo-exchange.json").display()
            );
            println!(
                "  nara exchange call --url http://{listen} --data {} /r1/{}/record --subject {} --purpose benefit-eligibility --legal-basis \"Resident Registration Act art. 29\"",
                data.display(),
                exchange.residents_service,
                exchange.subjects[0]
            );
            if no_backups {
                println!("Backups: off (--no-backups).");
            } else {
                println!(
                    "Backups: continuous (every change shipped within a second, a new base every hour) into {}, encrypted to {} (keep that key apart; `nara backup list --to {}`).",
                    to.display(),
                    key.display(),
                    to.display()
                );
            }
            println!("Press Ctrl-C to stop.");
            serve(config, store).await
        }
        Command::Serve { config, listen } => {
            let mut config = load_config(config.as_deref(), None)?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            let store = open_when_writable(&config).await?;
            tracing::info!(listen = %config.listen, backend = store.kind().as_str(), "serving");
            serve(config, store).await
        }
        Command::Seed {
            scale,
            seed,
            config,
            database_url,
        } => {
            let config = load_config(config.as_deref(), database_url)?;
            let store = open_store(&config).await?;
            let started = Instant::now();
            let country = match scale {
                Scale::Demo => nara_core::seed::demo()?,
                Scale::Tenth => nara_core::seed::scaled(seed, 1, 10)?,
                Scale::National => nara_core::seed::national(seed)?,
                Scale::TenTimes => nara_core::seed::scaled(seed, 10, 1)?,
            };
            let report = seed_with_progress(&store, &country).await?;
            println!(
                "Wrote {} agencies, {} services and {} systems to {} in {:.1} s (rows already present were kept).",
                report.agencies,
                report.services,
                report.systems,
                store.kind().as_str(),
                started.elapsed().as_secs_f64()
            );
            // The reference models' register entries, so the node may run them.
            nara_server::algorithms::publish_shipped(&store).await?;
            println!(
                "Published the algorithm register's {} reference models (unchanged entries kept).",
                nara_algorithms::models().len()
            );
            Ok(())
        }
        Command::Ledger { command } => ledger(command).await,
        Command::MachineClient {
            agency,
            subsystem,
            public_key,
            config,
            database_url,
        } => {
            let config = load_config(config.as_deref(), database_url)?;
            let store = open_store(&config).await?;
            let agency: nara_core::MemberId = agency.parse()?;
            anyhow::ensure!(
                store.get_agency(&agency).await?.is_some(),
                "no agency {agency}"
            );
            let client = nara_server::identity::machine::register(
                &store,
                &agency,
                &subsystem,
                &public_key,
                "cli",
            )
            .await?;
            println!("{}", client.key_id);
            Ok(())
        }
        Command::OperatorToken {
            username,
            scopes,
            days,
            config,
            database_url,
        } => {
            let config = load_config(config.as_deref(), database_url)?;
            let store = open_store(&config).await?;
            let token = operator_token(&store, &username, &scopes, days).await?;
            println!("{token}");
            Ok(())
        }
        Command::Exchange { command } => exchange_command(command).await,
        Command::Globalconf { command } => globalconf_command(command),
        Command::Service {
            command: ServiceCommand::Check { files, demo },
        } => service_check(&files, demo),
        Command::Backup { command } => backup_command(command).await,
        Command::Algorithms { command } => algorithms::run(command),
        Command::Rules {
            command: RulesCommand::Check { paths },
        } => {
            use nara_server::secops::detection::Detector;
            let mut files = Vec::new();
            for path in &paths {
                if path.is_dir() {
                    let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
                        .collect();
                    found.sort();
                    files.extend(found);
                } else {
                    files.push(path.clone());
                }
            }
            let texts = files
                .iter()
                .map(|f| {
                    std::fs::read_to_string(f)
                        .map(|t| (f.display().to_string(), t))
                        .with_context(|| format!("reading {}", f.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let named: Vec<(&str, &str)> = texts
                .iter()
                .map(|(f, t)| (f.as_str(), t.as_str()))
                .collect();
            let (detector, refused) = Detector::load(&named);
            for rule in detector.listed() {
                println!(
                    "ok   {:<11} {:<13} {}  ({})",
                    rule.kind, rule.level, rule.title, rule.file
                );
            }
            for e in &refused {
                println!("FAIL {}: {}", e.file, e.why);
            }
            println!(
                "{} rules loaded from {} files; {} files refused.",
                detector.rules(),
                files.len() - refused.len(),
                refused.len()
            );
            anyhow::ensure!(
                refused.is_empty(),
                "{} rule files do not load",
                refused.len()
            );
            Ok(())
        }
        Command::Dr {
            command: DrCommand::Drill { dir, seconds },
        } => {
            let dir = dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("nara-drill-{}", std::process::id()))
            });
            drill::drill(dir, seconds.max(2)).await
        }
        Command::Restore {
            from,
            key,
            data,
            id,
            replace,
            at,
            ledger_size,
            pg_data,
            run_as,
        } => {
            use nara_server::backup::stream::Until;
            let until = match (at, ledger_size) {
                (Some(at), _) => Until::At(
                    humantime::parse_rfc3339_weak(&at)
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_millis() as i64)
                        .with_context(|| {
                            format!("--at {at:?} is not a moment like 2026-12-01T10:30:00Z")
                        })?,
                ),
                (None, Some(n)) => Until::LedgerSize(n),
                (None, None) => Until::Latest,
            };
            let identity = nara_server::backup::read_identity(&key)?;
            let destination = nara_server::backup::Destination::open(&from)?;
            let bar = bytes_bar("restoring");
            let pg =
                pg_data.map(|pg_data| nara_server::backup::restore::PgRestore { pg_data, run_as });
            let restored = nara_server::backup::restore::restore_with(
                &destination,
                id.as_deref(),
                until,
                &identity,
                &data,
                replace,
                pg.as_ref(),
                &|done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )
            .await?;
            bar.finish_and_clear();
            let m = &restored.manifest;
            println!(
                "Restored backup {} (taken {}) into {}: {} files, {}, the ledger at {} entries.",
                m.id,
                m.created_at,
                data.display(),
                restored.files,
                indicatif::HumanBytes(restored.bytes),
                m.ledger.size
            );
            if let Some(pg) = &pg {
                println!(
                    "pgBackRest restored the database cluster into {} ({}); start PostgreSQL on it — it replays the archived WAL, then serves.",
                    pg.pg_data.display(),
                    match until {
                        nara_server::backup::stream::Until::At(ms) =>
                            format!("to {}", nara_core::Timestamp(ms).rfc3339()),
                        _ => "to the end of the archived WAL".into(),
                    }
                );
            }
            let r = &restored.replayed;
            if let Some(shipped) = r.shipped_ms {
                let size = nara_store::wal::ledger_size_at(&data.join("nara.db")).await?;
                println!(
                    "Then replayed its log: {} transactions in {} segments, up to {} (the ledger now at {size} entries).",
                    r.transactions,
                    r.segments,
                    nara_core::Timestamp(shipped).rfc3339()
                );
            }
            println!(
                "Start it with `nara serve` (NARA_DATA_DIR={}), then `nara backup verify` proves the backup.",
                data.display()
            );
            Ok(())
        }
        Command::Migrate {
            config,
            database_url,
        } => {
            let config = load_config(config.as_deref(), database_url)?;
            let store = open_store(&config).await?;
            println!("The {} database is migrated.", store.kind().as_str());
            Ok(())
        }
    }
}

/// Where `nara demo --data DIR` keeps its backups and their key: beside the
/// data directory (`DIR-backups`, `DIR-backup.key`), so that losing the
/// directory does not lose them.
fn demo_backup_paths(data: &Path) -> (PathBuf, PathBuf) {
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "nara-data".into());
    let parent = data.parent().unwrap_or(Path::new("."));
    (
        parent.join(format!("{name}-backups")),
        parent.join(format!("{name}-backup.key")),
    )
}

/// A progress bar in bytes.
fn bytes_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:40}}] {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}} left)"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

async fn backup_command(command: BackupCommand) -> anyhow::Result<()> {
    use nara_server::backup;
    match command {
        BackupCommand::Keygen { out } => {
            let recipient = backup::keygen(&out)?;
            println!(
                "Made the backup key {} (keep a copy apart from the backups; without it no backup can be restored).",
                out.display()
            );
            println!("Its public half, for `nara backup create --recipient`: {recipient}");
            Ok(())
        }
        BackupCommand::Create {
            to,
            recipient,
            config,
            data,
        } => {
            let mut config = load_config(config.as_deref(), None)?;
            if let Some(dir) = data {
                config.data_dir = dir;
            }
            let recipient = backup::read_recipient(&recipient)?;
            let store = open_store(&config).await?;
            let destination = backup::Destination::open(&to)?;
            let bar = bytes_bar("backing up");
            let started = Instant::now();
            let progress = |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let taken = match store.kind() {
                nara_store::BackendKind::Sqlite => {
                    backup::take(
                        &store,
                        &config.data_dir,
                        &destination,
                        &recipient,
                        &progress,
                    )
                    .await?
                }
                nara_store::BackendKind::Postgres => {
                    let tool = backup::pg::PgBackRest {
                        config: config.pgbackrest_config.clone().context(
                            "a PostgreSQL node is backed up through pgBackRest: run `nara backup pg-setup` and set pgbackrest_config",
                        )?,
                        run_as: config.pgbackrest_run_as.clone(),
                    };
                    backup::pg::take(
                        &store,
                        &config.data_dir,
                        &destination,
                        &recipient,
                        &tool,
                        &progress,
                    )
                    .await?
                }
            };
            bar.finish_and_clear();
            let m = &taken.manifest;
            println!(
                "Backup {} in {}: {} files, {} new objects ({}), {} unchanged, the ledger at {} entries; {:.2} s.",
                m.id,
                destination.shown(),
                m.files.len(),
                taken.new_objects,
                indicatif::HumanBytes(taken.new_bytes),
                taken.reused_objects,
                m.ledger.size,
                started.elapsed().as_secs_f64()
            );
            println!(
                "Not verified yet: `nara backup verify --from {}` proves it.",
                destination.shown()
            );
            Ok(())
        }
        BackupCommand::PgSetup {
            to,
            recipient,
            pg_data,
            pg_port,
            pg_socket,
            out,
            run_as,
        } => {
            let destination = backup::Destination::open(&to)?;
            let recipient = backup::read_recipient(&recipient)?;
            let setup = backup::pg::setup(
                &destination,
                &recipient,
                &out,
                &pg_data,
                pg_port,
                pg_socket.as_deref(),
            )
            .await?;
            if let Some(user) = run_as {
                let tool = backup::pg::PgBackRest {
                    config: setup.config.clone(),
                    run_as: Some(user),
                };
                tool.hand_over(&setup.config)?;
                if let Some(root) = destination.dir() {
                    std::fs::create_dir_all(root.join("pgbackrest"))?;
                    tool.hand_over(&root.join("pgbackrest"))?;
                }
                for dir in ["pgbackrest-log", "pgbackrest-lock"] {
                    let path = out.parent().unwrap_or(Path::new(".")).join(dir);
                    std::fs::create_dir_all(&path)?;
                    tool.hand_over(&path)?;
                }
            }
            println!(
                "Wrote {} (its passphrase is also in {}, sealed to the backup key).",
                setup.config.display(),
                destination.shown()
            );
            println!("Add to postgresql.conf and restart PostgreSQL:");
            println!("  archive_mode = on");
            println!("  archive_command = '{}'", setup.archive_command);
            println!(
                "  archive_timeout = 5    # the recovery point, in seconds, when writes are few"
            );
            println!(
                "Then set pgbackrest_config = \"{}\" for nara; `nara backup create` takes base backups.",
                setup.config.display()
            );
            Ok(())
        }
        BackupCommand::List { to } => {
            let destination = backup::Destination::open(&to)?;
            let backups = destination.list_backups().await?;
            if backups.is_empty() {
                println!("No backups in {}.", destination.shown());
            }
            for (m, verified) in backups {
                let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
                let stream = if m.continuous {
                    let segments = destination.segments(&m.id).await?;
                    match segments.last() {
                        Some(last) => format!(
                            "  + {} log segments to {}",
                            segments.len(),
                            nara_core::Timestamp(last.shipped_ms).rfc3339()
                        ),
                        None => "  + its log (none shipped yet)".into(),
                    }
                } else {
                    String::new()
                };
                let status = match verified {
                    Some(v) if v.ok => format!("verified {}", v.at),
                    Some(v) => format!("FAILED verification {}: {}", v.at, v.detail),
                    None => "never verified".into(),
                };
                println!(
                    "{}  {}  {} files  {}  ledger {}{stream}  {status}",
                    m.id,
                    m.created_at,
                    m.files.len(),
                    indicatif::HumanBytes(bytes),
                    m.ledger.size
                );
            }
            Ok(())
        }
        BackupCommand::Verify {
            from,
            key,
            id,
            vkey,
            database_url,
            run_as,
        } => {
            let identity = backup::read_identity(&key)?;
            let destination = backup::Destination::open(&from)?;
            let bar = bytes_bar("restoring to verify");
            let pg = database_url.map(|database_url| backup::restore::PgVerify {
                database_url,
                run_as,
            });
            let proof = backup::restore::verify_with(
                &destination,
                id.as_deref(),
                &identity,
                vkey.as_deref(),
                pg.as_ref(),
                &|done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )
            .await;
            bar.finish_and_clear();
            let proof = proof?;
            println!(
                "Backup {} is proven: restored, integrity ok, {} ledger entries reproduce all {} checkpoints; the newest is signed by {}. {:.2} s.",
                proof.manifest.id, proof.entries, proof.checkpoints, proof.signed_by, proof.seconds
            );
            Ok(())
        }
    }
}

async fn exchange_command(command: ExchangeCommand) -> anyhow::Result<()> {
    match command {
        ExchangeCommand::Call {
            path,
            url,
            data,
            method,
            subject,
            purpose,
            consent,
            legal_basis,
            id,
        } => {
            let file = data.join("demo-exchange.json");
            let demo: nara_server::demo::DemoExchange = serde_json::from_str(
                &std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?,
            )?;
            let seed = nara_server::identity::machine::decode_key(&demo.private_key)
                .context("demo-exchange.json: private_key")?;
            let consumer = nara_server::exchange::gateway::Consumer {
                http: reqwest::Client::new(),
                base: url,
                client: demo.client,
                key_id: demo.key_id,
                key: ed25519_dalek::SigningKey::from_bytes(&seed),
            };
            let mut headers = Vec::new();
            for (name, value) in [
                ("nara-subject", &subject),
                ("nara-purpose", &purpose),
                ("nara-consent", &consent),
                ("nara-legal-basis", &legal_basis),
                ("x-road-id", &id),
            ] {
                if let Some(v) = value {
                    headers.push((name, v.as_str()));
                }
            }
            let method: reqwest::Method = method.parse().context("method")?;
            let response = consumer
                .request(method, &path, &headers, Vec::new())
                .send()
                .await?;
            println!("{}", response.status());
            for (n, v) in response.headers() {
                if n.as_str().starts_with("x-road") || n.as_str().starts_with("nara-") {
                    println!("{n}: {}", v.to_str().unwrap_or("?"));
                }
            }
            println!();
            println!("{}", response.text().await?);
            Ok(())
        }
        ExchangeCommand::SetUpDemo { config, residents } => {
            let config = load_config(config.as_deref(), None)?;
            let store = open_store(&config).await?;
            anyhow::ensure!(
                !store.is_empty().await?,
                "the database has no catalogue: run `nara seed` first"
            );
            let identity = nara_server::identity::auth::IdentityKeys::load_or_create(
                &config.identity_key_path(),
            )?;
            let exchange =
                nara_server::demo::ensure_exchange(&store, &identity, &config.data_dir, residents)
                    .await?;
            println!(
                "The demo exchange is set up: client system {} signs with key {} (in {}).",
                exchange.client,
                exchange.key_id,
                config.data_dir.join("demo-exchange.json").display()
            );
            Ok(())
        }
        ExchangeCommand::NodeKey { config } => {
            let config = load_config(config.as_deref(), None)?;
            let identity = nara_server::identity::auth::IdentityKeys::load_or_create(
                &config.identity_key_path(),
            )?;
            let key = identity.gateway_key();
            println!(
                "gateway:{} {}",
                config.node_id.as_deref().unwrap_or("local"),
                base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    key.verifying_key().as_bytes()
                )
            );
            Ok(())
        }
        ExchangeCommand::Archive { config } => {
            let config = load_config(config.as_deref(), None)?;
            let store = open_store(&config).await?;
            let keys = nara_server::ledger::LedgerKeys::load_or_create(
                &config.ledger_key_path(),
                &config.ledger_origin(),
            )?;
            let now = nara_core::Timestamp::now().0;
            let made = nara_server::exchange::archive::archive_closed_months(
                &store,
                &config.data_dir,
                &keys,
                now,
                "system",
            )
            .await?;
            for a in &made {
                println!(
                    "archived {}: {} exchanges, {} bytes, sha256 {} ({})",
                    a.period, a.exchanges, a.bytes, a.sha256, a.file
                );
            }
            let pruned = nara_server::exchange::archive::prune_past_retention(
                &store,
                config.exchange_log_retention_days,
                now,
                "system",
            )
            .await?;
            for period in &pruned {
                println!(
                    "deleted from the database (archived, past {} days): {period}",
                    config.exchange_log_retention_days
                );
            }
            if made.is_empty() && pruned.is_empty() {
                println!("Nothing to archive or delete: every closed month is archived already.");
            }
            store.close().await;
            Ok(())
        }
        ExchangeCommand::VerifyArchive { files, vkey } => {
            let trusted = vkey
                .iter()
                .map(|k| std::fs::read_to_string(k).unwrap_or_else(|_| k.clone()))
                .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    nara_ledger::note::Verifier::from_vkey(l.trim())
                        .map_err(|e| anyhow::anyhow!("verifier key: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut failed = 0;
            for file in &files {
                match nara_server::exchange::archive::verify_archive(file, &trusted) {
                    Ok(c) => println!(
                        "OK: {} holds the {} exchanges of {} (sha256 {})",
                        file.display(),
                        c.exchanges,
                        c.period,
                        c.sha256
                    ),
                    Err(e) => {
                        failed += 1;
                        eprintln!("FAILED: {}: {e:#}", file.display());
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} of {} archives failed", files.len());
            Ok(())
        }
    }
}

fn globalconf_command(command: GlobalconfCommand) -> anyhow::Result<()> {
    match command {
        GlobalconfCommand::Keygen { name, out } => {
            let signer = nara_ledger::note::Signer::new(&name, &rand::random::<[u8; 32]>())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            nara_server::keyfile::write_private(&out, &signer.skey())?;
            println!("{}", signer.verifier().vkey());
            Ok(())
        }
        GlobalconfCommand::Sign { key, conf, out } => {
            let signer =
                nara_ledger::note::Signer::from_skey(std::fs::read_to_string(&key)?.trim())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
            let conf: nara_server::exchange::federation::GlobalConf =
                serde_json::from_str(&std::fs::read_to_string(&conf)?)
                    .with_context(|| format!("{}", conf.display()))?;
            let note = nara_server::exchange::federation::sign_conf(&conf, &signer)?;
            std::fs::write(&out, note)?;
            println!("Signed version {} into {}.", conf.version, out.display());
            Ok(())
        }
    }
}

fn service_check(files: &[PathBuf], demo: bool) -> anyhow::Result<()> {
    let mut sources: Vec<(String, String)> = Vec::new();
    if demo {
        for (name, text) in nara_core::service_def::DEMO {
            sources.push(((*name).to_owned(), (*text).to_owned()));
        }
    }
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        sources.push((f.display().to_string(), text));
    }
    anyhow::ensure!(!sources.is_empty(), "name the files to check (or --demo)");
    let mut failed = 0;
    for (name, text) in &sources {
        match nara_core::service_def::check(text) {
            Ok(def) => {
                let fields: usize = def.pages.iter().map(|p| p.fields.len()).sum();
                println!(
                    "{name}: ok — {} v{}: pages {}, fields {fields}, evidence {}, states {}, SLA {} working days",
                    def.code.get_ref(),
                    def.version.get_ref(),
                    def.pages.len(),
                    def.evidence.len(),
                    def.workflow.states.len(),
                    def.workflow.sla_working_days.get_ref()
                );
            }
            Err(problems) => {
                failed += 1;
                for p in problems {
                    println!("{name}:{}: {}", p.line, p.message);
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} definitions have problems", sources.len());
    }
    Ok(())
}
