//! Detection on one core: syslog messages parsed into security events and
//! evaluated by 100 Sigma rules (the starter set, 13, and 87 more using
//! the standard modifiers and correlation rules), against parsing the same
//! messages alone, in the same run.
//!
//!     cargo bench -p nara --bench detection
//!
//! Goal (issue 15): at least 100,000 events/s with 100 rules, and at least
//! 0.5 of parse-only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use std::fmt::Write;
use std::net::IpAddr;
use std::time::Instant;

use nara_server::secops::detection::{Detector, STARTER_RULES};
use nara_server::secops::syslog;
use nara_store::identity::SecurityEvent;

const EVENTS: usize = 200_000;
const RUNS: usize = 5;
/// Events evaluated together, as the node reads them.
const BATCH: usize = 5_000;
const NOW: i64 = 1_800_000_000_000;

/// 87 rules beside the starter set, in the shapes analysts write: exact
/// values, `contains`, `startswith`, `endswith`, `re`, `cidr`, lists, and
/// counts over time windows.
fn more_rules() -> String {
    let mut yaml = String::new();
    let mut n = 0;
    let mut doc = |body: String, yaml: &mut String| {
        n += 1;
        let id = format!("00000000-0000-4000-8000-{n:012}");
        write!(
            yaml,
            "title: bench rule {n}\nid: {id}\nstatus: experimental\nlogsource:\n    product: nara\n    service: security\n{body}---\n"
        )
        .unwrap();
        id
    };
    for i in 0..20 {
        doc(
            format!(
                "detection:\n    selection:\n        kind: system.app{i}.event\n        detail|contains: 'pattern-{i}'\n    condition: selection\nlevel: low\n"
            ),
            &mut yaml,
        );
    }
    for i in 0..15 {
        doc(
            format!(
                "detection:\n    selection:\n        detail|re: 'err(or)?-{i}[0-9]+'\n    condition: selection\nlevel: medium\n"
            ),
            &mut yaml,
        );
    }
    for i in 0..15 {
        doc(
            format!(
                "detection:\n    selection:\n        source_ip|cidr: '10.{i}.{i}.0/24'\n        kind|endswith: '.denied'\n    condition: selection\nlevel: medium\n"
            ),
            &mut yaml,
        );
    }
    for i in 0..15 {
        doc(
            format!(
                "detection:\n    selection:\n        user|startswith: 'svc-{i}-'\n        kind:\n            - system.login.failed\n            - system.mfa.failed\n    filter:\n        detail|contains: 'maintenance'\n    condition: selection and not filter\nlevel: high\n"
            ),
            &mut yaml,
        );
    }
    for i in 0..11 {
        let base = doc(
            format!(
                "detection:\n    selection:\n        kind: system.syslog.app{i}\n    condition: selection\nlevel: informational\n"
            ),
            &mut yaml,
        );
        let body = format!(
            "correlation:\n    type: event_count\n    rules:\n        - {base}\n    group-by:\n        - source_ip\n    timespan: 5m\n    condition:\n        gte: 500\nlevel: high\n"
        );
        doc(body, &mut yaml);
    }
    yaml.trim_end_matches("---\n").to_owned()
}

/// Syslog messages of the kinds agency systems send, most matching nothing.
fn messages() -> Vec<Vec<u8>> {
    (0..EVENTS)
        .map(|i| {
            let app = i % 13;
            let ip = format!("10.{}.{}.{}", i % 40, (i / 40) % 250, i % 200 + 1);
            let line = match i % 5 {
                0 => format!("<38>1 2027-01-15T08:00:00.{:03}Z web-{app} sso {i} login.failed [nara@32473 user=\"user-{}\" src=\"{ip}\"] bad password", i % 1000, i % 5000),
                1 => format!("<86>Jan 15 08:00:00 host-{app} sshd[{i}]: Accepted publickey for deploy from {ip} port 22"),
                2 => format!("<38>1 2027-01-15T08:00:00Z gw-{app} app{app} - - [nara@32473 src=\"{ip}\"] request {i} served in 12 ms"),
                3 => format!("<35>1 2027-01-15T08:00:00Z fw-{app} fw - access.denied [nara@32473 src=\"{ip}\"] rule 7 dropped tcp/443"),
                _ => format!("<38>1 2027-01-15T08:00:00Z mail-{app} app{app}.event - - [nara@32473 user=\"svc-{app}-relay\"] queue flushed, code {}", if i % 1000 == 4 { "err-1234" } else { "ok" }),
            };
            line.into_bytes()
        })
        .collect()
}

fn parse(messages: &[Vec<u8>]) -> Vec<SecurityEvent> {
    let sender = IpAddr::from([10, 255, 0, 1]);
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let e = syslog::event(m, sender, NOW).expect("every bench message parses");
            SecurityEvent {
                id: i as i64 + 1,
                at: e.at,
                kind: e.kind,
                account_id: None,
                username: e.username,
                address: e.address,
                detail: e.detail,
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let extra = more_rules();
    let mut files: Vec<(&str, &str)> = STARTER_RULES.to_vec();
    files.push(("bench.yml", &extra));
    let rules = Detector::new(&files).expect("the bench rules load").rules();
    let messages = messages();
    println!(
        "detection: {EVENTS} syslog messages, {rules} Sigma rules, one core, median of {RUNS}"
    );

    let (mut parse_only, mut detected, mut rules_alone, mut alerts) =
        (Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..RUNS {
        let started = Instant::now();
        let events = parse(&messages);
        parse_only.push(EVENTS as f64 / started.elapsed().as_secs_f64());
        std::hint::black_box(events);

        // A fresh engine each run: correlation windows start empty.
        let detector = Detector::new(&files).unwrap();
        let started = Instant::now();
        let events = parse(&messages);
        let parsed_in = started.elapsed();
        alerts = 0;
        for batch in events.chunks(BATCH) {
            alerts += detector.evaluate(batch).len();
        }
        let took = started.elapsed();
        detected.push(EVENTS as f64 / took.as_secs_f64());
        rules_alone.push(EVENTS as f64 / (took - parsed_in).as_secs_f64());
    }
    let (p, d, r) = (median(parse_only), median(detected), median(rules_alone));
    println!("  parse only (baseline):        {p:>10.0} events/s");
    println!("  parse + {rules} rules:           {d:>10.0} events/s  ({alerts} alerts a run)");
    println!("  the rules alone (parsed):     {r:>10.0} events/s");
    println!(
        "  ratio to parse only:          {:>10.2}  (goal ≥ 0.5; ≥ 100,000 events/s)",
        d / p
    );
}
