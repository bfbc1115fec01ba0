//! The test harness: a fresh database per test, and the real server on a free port.

use std::net::SocketAddr;

use nara_server::identity::auth::IdentityKeys;
use nara_server::{AppState, Config};
use nara_store::Store;
/// An operator API token with every scope, installed in every test database.
pub const TOKEN: &str = "nara_at_test-operator-token-0123456789abcdef";

/// The URL of a fresh, empty database of the named backend, or `None` when
/// PostgreSQL is not available outside CI. Keep the directory while testing.
pub async fn fresh_database(backend: &str) -> Option<(String, Option<tempfile::TempDir>)> {
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir().expect("tempdir");
            Some((Store::sqlite_url(dir.path()), Some(dir)))
        }
        "postgres" => {
            let Ok(admin_url) = std::env::var("NARA_TEST_POSTGRES_URL") else {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!(
                        "CI=true but NARA_TEST_POSTGRES_URL is not set: the PostgreSQL tests must run in CI"
                    );
                }
                eprintln!("NOTICE: NARA_TEST_POSTGRES_URL is not set; skipping a PostgreSQL test");
                return None;
            };
            let name = format!("nara_test_{}", rand::random::<u64>());
            let admin = sqlx::PgPool::connect(&admin_url)
                .await
                .expect("connect to the PostgreSQL admin URL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .expect("create test database");
            admin.close().await;
            let (base, _) = admin_url
                .rsplit_once('/')
                .expect("admin URL has a database path");
            Some((format!("{base}/{name}"), None))
        }
        other => panic!("unknown backend {other}"),
    }
}

/// A fresh, migrated store of the named backend (see [`fresh_database`]).
pub async fn fresh_store(backend: &str) -> Option<(Store, Option<tempfile::TempDir>)> {
    let (url, dir) = fresh_database(backend).await?;
    let store = Store::connect(&url).await.expect("open the test database");
    Some((store, dir))
}

/// The real server, listening on a free port.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The database's URL, for tests that must reach past the store (tampering).
    pub url: String,
    pub store: Store,
    pub client: reqwest::Client,
    /// The node's state, for tests that run its periodic work at a chosen
    /// time (a sweep) instead of waiting for it.
    pub state: AppState,
    _dir: Option<tempfile::TempDir>,
    /// The server's identity key (demo accounts are made with it).
    identity: IdentityKeys,
    /// Where the demo accounts' files go (fresh per app: ports are reused).
    demo_dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// What a test needs, said in one line, e.g.
/// `TestApp::on(backend).services().exchange(3).start().await`: the demo
/// country, the demo's service definitions, the demo
/// exchange with its accounts (and the gateway's directory caught up).
pub struct Builder {
    backend: String,
    config: Config,
    services: bool,
    exchange: Option<u64>,
}

impl Builder {
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The demo's published service definitions.
    pub fn services(mut self) -> Self {
        self.services = true;
        self
    }

    /// The demo exchange: registries, rights, the client system, `residents`
    /// synthetic people besides the demo citizens.
    pub fn exchange(mut self, residents: u64) -> Self {
        self.exchange = Some(residents);
        self
    }

    /// `None` when the backend is not available here (PostgreSQL unset).
    pub async fn start(self) -> Option<TestApp> {
        let app = TestApp::start_empty_with(&self.backend, self.config).await?;
        app.store
            .seed(&nara_core::seed::demo().unwrap(), &|_| {})
            .await
            .expect("seed demo");
        if let Some(residents) = self.exchange {
            // The demo's order: accounts (the citizens the registries know), then the exchange.
            app.demo_accounts().await;
            app.demo_exchange(residents).await;
        }
        if self.services {
            nara_server::catalogue::services::ensure_demo(&app.store)
                .await
                .expect("demo services");
        }
        if self.exchange.is_some() {
            app.wait_for_directory().await;
        }
        Some(app)
    }
}

impl TestApp {
    /// A test app on `backend`, described with [`Builder`].
    pub fn on(backend: &str) -> Builder {
        Builder {
            backend: backend.to_owned(),
            config: Config {
                max_body_bytes: 64 * 1024,
                // Tests measure behaviour, not the per-address limit (one
                // address, loopback, sends them all); its own test sets it.
                rate_limit_per_minute: 0,
                ..Config::default()
            },
            services: false,
            exchange: None,
        }
    }

    /// A server on `backend` with the demo country seeded.
    pub async fn start(backend: &str) -> Option<TestApp> {
        TestApp::on(backend).start().await
    }

    /// The demo catalogue, served with `config`.
    pub async fn start_with(backend: &str, config: Config) -> Option<TestApp> {
        TestApp::on(backend).config(config).start().await
    }

    /// Waits until the gateway's directory has the store's latest services
    /// and rights (changes made behind the server's back are polled).
    pub async fn wait_for_directory(&self) {
        tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    }

    /// Signs in the demo account `username` (see [`TestApp::sign_in`]).
    pub async fn signed_in(&self, username: &str) -> Session {
        let accounts = self.demo_accounts().await;
        let account = accounts
            .iter()
            .find(|a| a.username == username)
            .unwrap_or_else(|| panic!("no demo account {username}"));
        self.sign_in(account).await
    }

    async fn start_empty_with(backend: &str, config: Config) -> Option<TestApp> {
        // Quiet unless asked: NARA_TEST_LOG=nara_server=warn shows the server's log.
        if let Ok(filter) = std::env::var("NARA_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let (url, dir) = fresh_database(backend).await?;
        let store = Store::connect(&url).await.expect("open the test database");
        let mut app = TestApp::serve(store, config, dir).await;
        app.url = url;
        Some(app)
    }

    /// Serves like `nara serve`: with the catalogue read model enabled.
    pub async fn serve(store: Store, config: Config, dir: Option<tempfile::TempDir>) -> TestApp {
        let keys = nara_server::ledger::LedgerKeys::ephemeral(&config.ledger_origin())
            .expect("ledger key");
        TestApp::serve_with_keys(store, config, dir, keys).await
    }

    pub async fn serve_with_keys(
        store: Store,
        config: Config,
        dir: Option<tempfile::TempDir>,
        keys: nara_server::ledger::LedgerKeys,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        TestApp::serve_node(
            store,
            config,
            dir,
            keys,
            listener,
            IdentityKeys::ephemeral(),
            None,
        )
        .await
    }

    /// The newest `limit` ledger entries once one of them contains
    /// `needle` (on PostgreSQL entries are integrated a moment after their
    /// commit); what there is after 5 s otherwise.
    pub async fn entries_with(&self, needle: &str, limit: u32) -> Vec<(u64, Vec<u8>)> {
        let mut recent = Vec::new();
        for _ in 0..50 {
            recent = self
                .store
                .recent_ledger_entries(limit)
                .await
                .expect("ledger entries");
            if recent
                .iter()
                .any(|(_, e)| String::from_utf8_lossy(e).contains(needle))
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        recent
    }

    /// Whether an entry among the newest `limit` satisfies `pred`, waiting
    /// up to 5 s for it to be integrated.
    pub async fn has_entry(
        &self,
        limit: u32,
        pred: impl Fn(&nara_ledger::entry::Entry) -> bool,
    ) -> bool {
        for _ in 0..50 {
            let recent = self
                .store
                .recent_ledger_entries(limit)
                .await
                .expect("ledger entries");
            if recent
                .iter()
                .filter_map(|(_, e)| nara_ledger::entry::Entry::decode(e).ok())
                .any(|e| pred(&e))
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    /// Another node on this app's database, with the same keys (as nodes
    /// behind one load balancer share them).
    pub async fn second_node(&self) -> TestApp {
        let store = Store::connect(&self.url).await.expect("open the database");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let keys = nara_server::ledger::LedgerKeys::ephemeral(&Config::default().ledger_origin())
            .expect("ledger key");
        let mut node = TestApp::serve_node(
            store,
            Config {
                rate_limit_per_minute: 0,
                ..Config::default()
            },
            None,
            keys,
            listener,
            self.identity.clone(),
            None,
        )
        .await;
        node.url = self.url.clone();
        node
    }

    /// Serves on `listener` with `identity` (whose gateway key a global
    /// configuration may name), federated if `federation` is given.
    pub async fn serve_node(
        store: Store,
        config: Config,
        dir: Option<tempfile::TempDir>,
        keys: nara_server::ledger::LedgerKeys,
        listener: tokio::net::TcpListener,
        identity: IdentityKeys,
        federation: Option<nara_server::exchange::federation::Federation>,
    ) -> TestApp {
        store
            .enable_catalogue_cache()
            .await
            .expect("catalogue read model");
        install_operator_token(&store).await;
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut config = config;
        if config.public_url.is_none() {
            config.public_url = Some(format!("http://{addr}"));
        }
        // Files (uploads) go to the test's own directory, never the working one.
        let demo_dir = tempfile::tempdir().expect("tempdir");
        if config.data_dir == Config::default().data_dir {
            config.data_dir = demo_dir.path().to_owned();
        }
        let mut state = AppState::new(store.clone(), config, keys, identity.clone());
        if let Some(f) = federation {
            state = state.federated(f);
        }
        let serving = state.clone();
        tokio::spawn(async move {
            let _ = nara_server::serve(listener, serving, async {
                let _ = rx.await;
            })
            .await;
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        TestApp {
            addr,
            url: String::new(),
            store,
            client,
            state,
            _dir: dir,
            demo_dir,
            identity,
            _shutdown: tx,
        }
    }

    /// The node's data directory (uploads, demo files).
    /// The server's identity key (what the demo's generators hash with).
    pub fn identity(&self) -> &IdentityKeys {
        &self.identity
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.demo_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// GETs `path` in a signed-in session.
    pub async fn get_in(&self, session: &Session, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("cookie", &session.cookie)
            .send()
            .await
            .expect("GET in a session")
    }

    pub async fn get_as_operator(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET")
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("send")
    }

    /// Everything in the catalogue, for "nothing changed" checks.
    pub async fn snapshot(&self) -> String {
        use nara_core::*;
        let all = PageRequest {
            page: 1,
            per_page: 100,
        };
        let mut out = String::new();
        let agencies = self.store.all_agencies().await.unwrap();
        out.push_str(&serde_json::to_string(&agencies).unwrap());
        let mut page = 1;
        loop {
            let p = self
                .store
                .list_systems(&SystemFilter::default(), PageRequest { page, ..all })
                .await
                .unwrap();
            out.push_str(&serde_json::to_string(&p.items).unwrap());
            if page >= p.pages() {
                break;
            }
            page += 1;
        }
        let s = self
            .store
            .list_services(&ServiceFilter::default(), all)
            .await
            .unwrap();
        out.push_str(&serde_json::to_string(&s.items).unwrap());
        out
    }
}

/// Creates the test operator (no password: tokens only) holding [`TOKEN`],
/// once per database (several test nodes may share one).
pub async fn install_operator_token(store: &Store) {
    use nara_core::identity::{AccountKind, Grant, Role};
    if store
        .account_by_username("test-operator")
        .await
        .expect("lookup")
        .is_some()
    {
        return;
    }
    let created = store
        .create_account(
            &nara_store::identity::NewAccount {
                kind: AccountKind::Operator,
                username: "test-operator".into(),
                display_name: "Test Operator".into(),
                national_id_hash: None,
                agency: None,
                password_hash: "!".into(),
                totp_secret: None,
                grants: vec![Grant::new(Role::Operator, None).unwrap()],
            },
            "test",
        )
        .await;
    let account = match created {
        Ok(a) => a,
        // Another node of the same test created it first.
        Err(nara_store::StoreError::Conflict(_)) => return,
        Err(e) => panic!("creating the test operator: {e}"),
    };
    store
        .create_api_token(
            account.id,
            "test",
            &nara_server::identity::auth::digest(TOKEN),
            &nara_server::identity::auth::SCOPES.join(" "),
            nara_core::Timestamp::now().0 + 86_400_000,
        )
        .await
        .expect("test token");
}

/// A signed-in browser-like session: its cookie header and anti-forgery token.
#[derive(Clone, Debug)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl TestApp {
    pub fn demo_dir(&self) -> &std::path::Path {
        self.demo_dir.path()
    }

    /// The demo accounts (created on first call), as `nara demo` makes them.
    pub async fn demo_accounts(&self) -> Vec<nara_server::demo::DemoAccount> {
        let dir = self.demo_dir();
        nara_server::demo::ensure(&self.store, &self.identity, dir)
            .await
            .expect("demo accounts")
            .0
    }

    /// The demo's registries, services, rights and client key (with
    /// `residents` synthetic people besides the two demo citizens).
    pub async fn demo_exchange(&self, residents: u64) -> nara_server::demo::DemoExchange {
        nara_server::demo::ensure_exchange(&self.store, &self.identity, self.demo_dir(), residents)
            .await
            .expect("demo exchange")
    }

    /// The demo client system, calling this app's gateway.
    pub fn consumer(
        &self,
        demo: &nara_server::demo::DemoExchange,
    ) -> nara_server::exchange::gateway::Consumer {
        let seed = nara_server::identity::machine::decode_key(&demo.private_key).expect("seed");
        nara_server::exchange::gateway::Consumer {
            http: self.client.clone(),
            base: format!("http://{}", self.addr),
            client: demo.client.clone(),
            key_id: demo.key_id.clone(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// The keyed hash this app gives a national identifier.
    pub fn subject_hash(&self, rrn: &str) -> String {
        let digits = nara_core::identity::normalize_national_id(rrn).expect("rrn");
        self.identity.national_id_hash(&digits)
    }

    /// This app's gateway public key.
    pub fn gateway_key(&self) -> ed25519_dalek::VerifyingKey {
        self.identity.gateway_key().verifying_key()
    }

    /// Signs in over HTTP like a browser: password, then the TOTP code if
    /// the account has one. Panics if sign-in fails.
    pub async fn sign_in(&self, a: &nara_server::demo::DemoAccount) -> Session {
        let r = self
            .client
            .post(self.url("/sign-in"))
            .form(&[
                ("username", a.username.as_str()),
                ("password", a.password.as_str()),
                ("next", "/account"),
            ])
            .send()
            .await
            .unwrap();
        if r.status() != reqwest::StatusCode::SEE_OTHER {
            let status = r.status();
            panic!(
                "sign-in of {}: {status}: {}",
                a.username,
                r.text().await.unwrap_or_default()
            );
        }
        let mut cookie = session_cookie(&r).expect("session cookie");
        if let Some(secret) = &a.totp_secret {
            let csrf = self.csrf_of(&cookie, "/sign-in/second-factor").await;
            let code = totp_now(secret, &a.username);
            let r = self
                .client
                .post(self.url("/sign-in/second-factor"))
                .header("cookie", &cookie)
                .form(&[
                    ("code", code.as_str()),
                    ("csrf", csrf.as_str()),
                    ("next", "/account"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                reqwest::StatusCode::SEE_OTHER,
                "second factor of {}",
                a.username
            );
            cookie = session_cookie(&r).expect("rotated session cookie");
        }
        let csrf = self.csrf_of(&cookie, "/account").await;
        Session { cookie, csrf }
    }

    /// The anti-forgery token a page embeds for this session.
    pub async fn csrf_of(&self, cookie: &str, path: &str) -> String {
        let html = self
            .client
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let marker = "name=\"csrf\" value=\"";
        let at = html.find(marker).expect("a csrf field") + marker.len();
        html[at..at + html[at..].find('"').unwrap()].to_owned()
    }
}

/// A form post, as a browser sends it, with a session cookie if given.
pub async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = app.client.post(app.url(path)).form(form);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r.send().await.expect("POST")
}

/// `name=value` of the session cookie a response sets.
pub fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("nara_session=") && !v.starts_with("nara_session=;"))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// The current TOTP code for a base32 secret.
pub fn totp_now(secret: &str, username: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    nara_server::identity::auth::totp(&bytes, username)
        .unwrap()
        .generate_current()
        .unwrap()
}

/// Declares a test that runs once per backend: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! backends {
    ($($(#[doc = $doc:literal])* async fn $name:ident($backend:ident: &str) $body:block)+) => {
        $(
            $(#[doc = $doc])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($backend: &str) $body
                #[tokio::test]
                async fn sqlite() { run("sqlite").await }
                #[tokio::test]
                async fn postgres() { run("postgres").await }
            }
        )+
    };
}

/// Runs SQL on the test's database behind nara's back, as an attacker with
/// database access could.
pub async fn tamper(url: &str, sql: &str, bytes: Option<Vec<u8>>) {
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        let mut q = sqlx::query(sql);
        if let Some(b) = &bytes {
            q = q.bind(b.as_slice());
        }
        q.execute(&pool).await.expect("tamper");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let mut q = sqlx::query(sql);
        if let Some(b) = &bytes {
            q = q.bind(b.as_slice());
        }
        q.execute(&pool).await.expect("tamper");
        pool.close().await;
    }
}

/// An SMTP server's happy path (RFC 5321), recording each message: enough
/// for a real client (lettre) to deliver to it.
pub async fn smtp_sink() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut message: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(m) = message.as_mut() {
                        if line == "." {
                            sink.lock().unwrap().push(message.take().unwrap());
                            let _ = write.write_all(b"250 queued\r\n").await;
                        } else {
                            m.push_str(&line);
                            m.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "DATA" => {
                            message = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"250 OK\r\n",
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    (port, got)
}
