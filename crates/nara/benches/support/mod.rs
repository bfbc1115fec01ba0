//! What the HTTP benchmarks share: the server child process, ports, and
//! rounds of concurrent keep-alive requests with their latencies.
#![allow(dead_code)] // each benchmark uses its own subset

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const CONCURRENCY: usize = 16;
pub const ROUND_SECONDS: f64 = 2.0;

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `nara demo` server whose data directory is `data`: when dropped it
/// also removes the backups `nara demo` keeps beside that directory (never
/// inside it), which would otherwise outlive the temporary directory.
pub struct DemoServer {
    pub server: Server,
    data: std::path::PathBuf,
}

impl DemoServer {
    pub fn new(child: Child, data: &std::path::Path) -> Self {
        DemoServer {
            server: Server(child),
            data: data.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.server.0.id()
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.server.0.kill();
        let _ = self.server.0.wait();
        let name = self.data.file_name().unwrap_or_default().to_string_lossy();
        if let Some(parent) = self.data.parent() {
            let _ = std::fs::remove_dir_all(parent.join(format!("{name}-backups")));
            let _ = std::fs::remove_file(parent.join(format!("{name}-backup.key")));
        }
    }
}

/// The nodes' log filter: warnings, or `NARA_BENCH_RUST_LOG` (e.g.
/// `warn,nara_server::backup=debug` to see each checkpoint's duration).
pub fn server_log_filter() -> String {
    std::env::var("NARA_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".to_owned())
}

pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `paths` round-robin with CONCURRENCY clients for ROUND_SECONDS.
pub async fn round(
    client: &reqwest::Client,
    base: &str,
    paths: Arc<Vec<String>>,
) -> (f64, Vec<Duration>) {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(ROUND_SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, base, paths, next) =
            (client.clone(), base.to_owned(), paths.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let path = &paths[next.fetch_add(1, Ordering::Relaxed) % paths.len()];
                let t = Instant::now();
                let r = client.get(format!("{base}{path}")).send().await.unwrap();
                assert!(r.status().is_success(), "{path}: {}", r.status());
                r.bytes().await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    (rate, all)
}

/// `nara demo` as a child process on a free port, once it answers and has
/// written its demo accounts: (the server, its base URL, its data folder).
/// The server binary: this build's, or `NARA_BENCH_BIN` (another build, to
/// compare two in alternating runs, or one with frame pointers, for
/// profiling).
pub fn nara_bin() -> String {
    std::env::var("NARA_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_nara").to_owned())
}

pub async fn start_demo(nara: &str) -> (DemoServer, String, tempfile::TempDir) {
    start_demo_with(nara, &[]).await
}

/// Signs a demo account in with its password; its session cookie
/// (`nara_session=…`).
pub async fn session_cookie(base: &str, username: &str, password: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/sign-in"))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signing {username} in");
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("nara_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// `clients` keep-alive clients, each sending `request` in a loop for
/// `seconds`; every answer must have `status`. Returns (rate, latencies).
pub async fn load(
    clients: usize,
    seconds: f64,
    status: u16,
    request: Arc<dyn Fn() -> reqwest::RequestBuilder + Send + Sync>,
) -> (f64, Vec<Duration>) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = request().send().await.unwrap();
                let got = r.status().as_u16();
                let body = r.bytes().await.unwrap();
                assert_eq!(got, status, "{}", String::from_utf8_lossy(&body));
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    (all.len() as f64 / started.elapsed().as_secs_f64(), all)
}

/// `nara demo` as a child process with extra arguments (see [`start_demo`]).
pub async fn start_demo_with(
    nara: &str,
    extra: &[&str],
) -> (DemoServer, String, tempfile::TempDir) {
    start_demo_env(nara, extra, &[]).await
}

/// `nara demo` with extra arguments and environment variables.
pub async fn start_demo_env(
    nara: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (DemoServer, String, tempfile::TempDir) {
    start_demo_in(nara, tempfile::tempdir().unwrap(), free_port(), extra, env).await
}

/// `nara demo` on the data folder `dir` (a database already there is
/// reused: seeded at a scale, say) at `port`.
pub async fn start_demo_in(
    nara: &str,
    dir: tempfile::TempDir,
    port: u16,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (DemoServer, String, tempfile::TempDir) {
    let child = std::process::Command::new(nara)
        .args(["demo", "--data"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("RUST_LOG", server_log_filter())
        // The load comes from one address: measure the server, not its limit.
        .env("NARA_RATE_LIMIT_PER_MINUTE", "0")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = DemoServer::new(child, dir.path());
    let base = format!("http://127.0.0.1:{port}");
    let accounts = dir.path().join("demo-accounts.json");
    wait_ready(&base, || accounts.exists()).await;
    (server, base, dir)
}

/// A request, made afresh for each send.
pub type Request = Arc<dyn Fn() -> reqwest::RequestBuilder + Send + Sync>;

#[derive(serde::Deserialize)]
struct DemoAccount {
    username: String,
    password: String,
}

/// What a signed-in demo citizen (minji) sends: a full submission of the
/// phishing report through the API (with her session's CSRF token), and a
/// service's portal page in Korean.
pub struct Citizen {
    pub submit: Request,
    pub portal: Request,
}

pub async fn citizen(client: &reqwest::Client, base: &str, demo: &std::path::Path) -> Citizen {
    let accounts: Vec<DemoAccount> =
        serde_json::from_str(&std::fs::read_to_string(demo.join("demo-accounts.json")).unwrap())
            .unwrap();
    let minji = accounts.iter().find(|a| a.username == "minji").unwrap();
    let cookie = session_cookie(base, &minji.username, &minji.password).await;
    let page = client
        .get(format!("{base}/apply/phishing-report"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a signed-in citizen's page carries the CSRF token")
        .to_owned();
    let body = serde_json::json!({"data": {
        "channel": "sms", "sender": "+82 10-0000-0000",
        "content": "Your parcel is held at customs: pay the fee at http://bad.example/pay",
        "lost_money": "yes", "amount": 35000}})
    .to_string();
    let submit: Request = {
        let (c, url, cookie) = (
            client.clone(),
            format!("{base}/api/v1/services/phishing-report/applications"),
            cookie.clone(),
        );
        Arc::new(move || {
            c.post(&url)
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .header("content-type", "application/json")
                .body(body.clone())
        })
    };
    let portal: Request = {
        let (c, url) = (
            client.clone(),
            format!("{base}/apply/resident-registration-certificate?lang=ko"),
        );
        Arc::new(move || c.get(&url).header("cookie", &cookie))
    };
    Citizen { submit, portal }
}

/// The national-scale country (45 agencies, 1,460 services, 45,000
/// systems; seed 7) written by the real `nara seed` into `database_url`.
pub fn seed_national(nara: &str, database_url: &str) {
    seed_at(nara, database_url, "national");
}

/// Prints how `what` grew from the first scale measured to the last
/// (`costs`: each scale's cost relative to its baseline; goal ≤ 1.5).
pub fn print_growth(what: &str, costs: &[(String, f64)]) {
    if let (Some((small, a)), Some((large, b))) = (costs.first(), costs.last())
        && costs.len() > 1
    {
        let growth = b / a;
        println!(
            "growth: {what} at {large} against {small}: {growth:.2}× {}",
            if growth <= 1.5 {
                "(goal ≤ 1.5)"
            } else {
                "(MISSED: goal ≤ 1.5)"
            }
        );
    }
}

/// Rows of recorded activity at `scale`: `per_tenth` at a tenth of the
/// nation, ten times that at its scale, a hundred times at ten times.
pub fn activity_rows(scale: &str, per_tenth: u64) -> u64 {
    let factor = match scale {
        "tenth" => 1,
        "national" => 10,
        "10x" => 100,
        other => panic!("unknown scale {other}"),
    };
    per_tenth * factor
}

/// `nara seed --scale SCALE` (tenth, national, 10x) with seed 7.
pub fn seed_at(nara: &str, database_url: &str, scale: &str) {
    let status = std::process::Command::new(nara)
        .args([
            "seed",
            "--scale",
            scale,
            "--seed",
            "7",
            "--database-url",
            database_url,
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "nara seed failed");
}

/// The real `nara serve` on `database_url` (its keys in `dir`), on a free
/// port, once it answers `/readyz`: the server and its base URL.
pub async fn serve(nara: &str, database_url: &str, dir: &std::path::Path) -> (Server, String) {
    let port = free_port();
    let child = std::process::Command::new(nara)
        .arg("serve")
        .env("NARA_DATABASE_URL", database_url)
        // Keys (ledger, identity) go to the throwaway directory, not the crate.
        .env("NARA_DATA_DIR", dir)
        .env("NARA_LISTEN", format!("127.0.0.1:{port}"))
        // The load comes from one address: measure the server, not its limit.
        .env("NARA_RATE_LIMIT_PER_MINUTE", "0")
        .env("RUST_LOG", server_log_filter())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, || true).await;
    (server, base)
}

/// Waits (at most 30 s) until the node at `base` answers `/readyz` and
/// `also` holds.
async fn wait_ready(base: &str, also: impl Fn() -> bool) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
            && also()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A POST of `body` to `url`, signed (RFC 9421) with an agency system's key,
/// covering `fields` too.
pub fn signed_post(
    client: &reqwest::Client,
    url: &str,
    fields: &[(&str, &str)],
    body: Vec<u8>,
    key_id: &str,
    key: &ed25519_dalek::SigningKey,
) -> reqwest::RequestBuilder {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let headers = nara_server::identity::machine::sign_request(
        "POST", url, fields, &body, key_id, key, created,
    );
    let mut request = client.post(url);
    for (name, value) in fields {
        request = request.header(*name, *value);
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.body(body)
}
