//! nara's configuration: one typed struct read from an optional `nara.toml`
//! and then `NARA_*` environment variables (which win). Secrets are wrapped in
//! [`SecretString`] so that neither `Debug` nor a log line can print them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Everything an operator can set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite:PATH` or `postgres://…`; defaults to `nara.db` in the data directory.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// Where to listen for HTTP.
    pub listen: SocketAddr,
    /// Where nara keeps its files (the SQLite database, keys).
    pub data_dir: PathBuf,
    /// The X-Road instance this deployment belongs to, e.g. `KR`.
    pub instance: String,
    /// Demo mode (`nara demo`): citizens may sign up, and staff may sign in
    /// without a second factor. Never set in production.
    #[serde(default)]
    pub demo: bool,
    /// The address citizens use, e.g. `https://gov.example`; `https` turns on
    /// HSTS and `Secure` cookies.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The ledger's checkpoint origin and key name, e.g. `gov.example/ledger`;
    /// by default derived from `public_url`.
    #[serde(default)]
    pub ledger_origin: Option<String>,
    /// The ledger signing key file (C2SP skey format, mode 0600); by default
    /// `ledger.key` in the data directory. Nodes sharing a database share it.
    #[serde(default)]
    pub ledger_key: Option<PathBuf>,
    #[serde(default)]
    /// The identity key file (default `DATA_DIR/identity.key`): nodes that
    /// share a database share it, so a cluster mounts one copy (a secret).
    pub identity_key: Option<PathBuf>,
    /// How long the exchange gateway waits for a provider's system before
    /// answering `Server.ServerProxy.NetworkError`, in milliseconds.
    #[serde(default = "default_exchange_timeout")]
    pub exchange_timeout_ms: u64,
    /// The signed global configuration (members, nodes, addresses, keys)
    /// that federates this node with others; see `docs/exchange.md`.
    #[serde(default)]
    pub global_conf: Option<PathBuf>,
    /// The key that signs the global configuration (C2SP vkey). Required
    /// with `global_conf`.
    #[serde(default)]
    pub global_conf_key: Option<String>,
    /// This node's name in the global configuration.
    #[serde(default)]
    pub node_id: Option<String>,
    /// The SMTP relay citizens' notifications are emailed through,
    /// `smtp://host[:port]` (a relay on the government network, which
    /// delivers onward itself). Unset: the inbox only.
    #[serde(default)]
    pub smtp_url: Option<SecretString>,
    /// The sender address of those emails.
    #[serde(default = "default_smtp_from")]
    pub smtp_from: String,
    /// Reverse proxies and load balancers in front of nara (CIDR, e.g.
    /// `["10.0.0.0/8"]`): only from these is `Forwarded` / `X-Forwarded-For`
    /// read for the client's address. Empty: the connection's peer.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Where scheduled backups go: a directory on another disk or mount
    /// (docs/operations.md). Unset: the node takes none (`nara demo` sets it).
    #[serde(default)]
    pub backup_to: Option<PathBuf>,
    /// Whom backups are encrypted to: `age1…`, or a backup key file.
    #[serde(default)]
    pub backup_recipient: Option<String>,
    /// The backup key file (its private half), if this node may verify its
    /// backups by restoring them; unset: verify elsewhere.
    #[serde(default)]
    pub backup_key: Option<PathBuf>,
    /// Seconds between scheduled backups (at least 60): between bases when
    /// backups are continuous (the log is shipped every second between
    /// them), between snapshots otherwise. Six hours by default: a base is
    /// the whole database, and retention keeps every one of the last 48 h.
    #[serde(default = "default_backup_every")]
    pub backup_every_seconds: u64,
    /// A PostgreSQL node's pgBackRest configuration, as `nara backup
    /// pg-setup` wrote it: base backups go through it.
    #[serde(default)]
    pub pgbackrest_config: Option<PathBuf>,
    /// The operating-system user pgBackRest runs as (through `runuser`,
    /// when nara runs as root); unset: nara's own.
    #[serde(default)]
    pub pgbackrest_run_as: Option<String>,
    /// A directory of Sigma rule files (`*.yml`) run beside the starter set
    /// (docs/security-operations.md); a file that does not load is left out
    /// and shown to analysts.
    #[serde(default)]
    pub detection_rules: Option<PathBuf>,
    /// Requests a minute one client address may make to the public routes
    /// (pages and API reads open to anyone, sign-in) at the normal alert
    /// level; higher levels allow ¾, ½, ¼, ⅛ of it. 0 turns the limit off
    /// (load tests). Behind a proxy, set `trusted_proxies` too, or every
    /// client shares the proxy's allowance.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_minute: u32,
    /// Where to hear agency systems' syslog (RFC 5424/3164), UDP and TCP on
    /// the same port, e.g. `0.0.0.0:6514`. Unset: no syslog intake.
    #[serde(default)]
    pub syslog_listen: Option<SocketAddr>,
    /// Who may send syslog (CIDR): syslog carries no credential, so only
    /// these networks are heard. Empty: nobody.
    #[serde(default)]
    pub syslog_senders: Vec<ipnet::IpNet>,
    /// Probe every system in the inventory that has an endpoint. Off: only
    /// endpoints on this machine's loopback are probed — nara contacts no
    /// other address until an operator turns this on.
    #[serde(default)]
    pub probe_whole_inventory: bool,
    /// Certificates (PEM) the probes trust beside the system's roots, for
    /// agencies whose https endpoints use the government's own CA.
    #[serde(default)]
    pub probe_ca_file: Option<PathBuf>,
    /// Days security events are kept once detection has read them (at
    /// least 1; 400 by default: a year and a month, for audits).
    #[serde(default = "default_event_retention")]
    pub security_event_retention_days: u32,
    /// Days the message log keeps an exchange in the database, and so in
    /// citizens' data-access history (1,825 by default: five years). Older
    /// months leave it only once archived (`DATA_DIR/exchange-archive`).
    #[serde(default = "default_exchange_retention")]
    pub exchange_log_retention_days: u32,
    /// Days an image that matched an authority's hash list is kept once its
    /// record is settled (reviewed, and any appeal decided), for its
    /// reviewer to look again; then it is deleted (90 by default; 0: at the
    /// next hourly sweep). Never while a review or an appeal waits.
    #[serde(default = "default_review_image_days")]
    pub review_image_days: u32,
}

fn default_review_image_days() -> u32 {
    90
}

fn default_exchange_retention() -> u32 {
    1_825
}

fn default_event_retention() -> u32 {
    400
}

fn default_rate_limit() -> u32 {
    1200
}

fn default_backup_every() -> u64 {
    6 * 3600
}

fn default_smtp_from() -> String {
    "nara <no-reply@nara.invalid>".into()
}

fn default_exchange_timeout() -> u64 {
    10_000
}

/// The defaults, as a provider figment merges under the file and environment.
#[derive(Serialize)]
struct Defaults {
    listen: &'static str,
    data_dir: &'static str,
    instance: &'static str,
    max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./nara-data"),
            instance: "KR".into(),
            demo: false,
            public_url: None,
            max_body_bytes: 1024 * 1024,
            ledger_origin: None,
            ledger_key: None,
            identity_key: None,
            exchange_timeout_ms: default_exchange_timeout(),
            global_conf: None,
            global_conf_key: None,
            node_id: None,
            rate_limit_per_minute: default_rate_limit(),
            syslog_listen: None,
            syslog_senders: Vec::new(),
            probe_whole_inventory: false,
            probe_ca_file: None,
            security_event_retention_days: default_event_retention(),
            exchange_log_retention_days: default_exchange_retention(),
            review_image_days: default_review_image_days(),
            smtp_url: None,
            smtp_from: default_smtp_from(),
            trusted_proxies: Vec::new(),
            backup_to: None,
            backup_recipient: None,
            backup_key: None,
            backup_every_seconds: default_backup_every(),
            pgbackrest_config: None,
            pgbackrest_run_as: None,
            detection_rules: None,
        }
    }
}

impl Config {
    /// Reads the defaults, then `file` if given (it must exist), then `NARA_*`.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let defaults = Defaults {
            listen: "127.0.0.1:8080",
            data_dir: "./nara-data",
            instance: "KR",
            max_body_bytes: 1024 * 1024,
        };
        let mut figment = Figment::from(Serialized::defaults(defaults));
        if let Some(path) = file {
            if !path.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "configuration file {} does not exist",
                    path.display()
                ))));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only the known keys: other NARA_* variables (a test's, say) are not config.
        let env = Env::prefixed("NARA_").only(&[
            "database_url",
            "listen",
            "data_dir",
            "instance",
            "demo",
            "public_url",
            "max_body_bytes",
            "ledger_origin",
            "ledger_key",
            "identity_key",
            "exchange_timeout_ms",
            "global_conf",
            "global_conf_key",
            "node_id",
            "smtp_url",
            "smtp_from",
            "backup_to",
            "backup_recipient",
            "backup_key",
            "backup_every_seconds",
            "pgbackrest_config",
            "pgbackrest_run_as",
            "detection_rules",
            "rate_limit_per_minute",
            "syslog_listen",
            "syslog_senders",
            "trusted_proxies",
            "probe_whole_inventory",
            "probe_ca_file",
            "security_event_retention_days",
            "exchange_log_retention_days",
            "review_image_days",
        ]);
        figment.merge(env).extract().map_err(Box::new)
    }

    /// The database URL: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        use secrecy::ExposeSecret;
        match &self.database_url {
            Some(url) => url.expose_secret().to_owned(),
            None => nara_store::Store::sqlite_url(&self.data_dir),
        }
    }

    /// The ledger's origin line (and signing key name).
    pub fn ledger_origin(&self) -> String {
        if let Some(origin) = &self.ledger_origin {
            return origin.clone();
        }
        match self.public_url.as_deref().and_then(|u| u.split_once("://")) {
            Some((_, rest)) => format!("{}/ledger", rest.trim_end_matches('/')),
            None => format!(
                "nara.localhost/{}/ledger",
                self.instance.to_ascii_lowercase()
            ),
        }
    }

    pub fn ledger_key_path(&self) -> PathBuf {
        self.ledger_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("ledger.key"))
    }

    /// The OpenID Connect issuer: the public URL without a trailing slash.
    pub fn issuer(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The identity key file (national-identifier hashing, OIDC signing).
    pub fn identity_key_path(&self) -> PathBuf {
        self.identity_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("identity.key"))
    }

    /// Whether citizens reach nara over TLS (HSTS, `Secure` cookies).
    pub fn is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return its large error
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "nara.toml",
                "listen = \"0.0.0.0:9000\"\ninstance = \"EE\"\ndemo = true\n",
            )?;
            jail.set_env("NARA_INSTANCE", "ES");
            let c = Config::load(Some(Path::new("nara.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.instance, "ES");
            assert!(c.demo);
            assert_eq!(c.data_dir, PathBuf::from("./nara-data"));
            Ok(())
        });
    }

    #[test]
    fn secrets_never_print() {
        let c = Config {
            database_url: Some(SecretString::from("postgres://u:pw-secret@h/db")),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("pw-secret"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("nara.toml", "lisen = \"0.0.0.0:9000\"\n")?;
            assert!(Config::load(Some(Path::new("nara.toml"))).is_err());
            Ok(())
        });
    }
}
