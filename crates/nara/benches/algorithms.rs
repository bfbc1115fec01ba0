//! Decisions of registered models, measured against bare prediction in the
//! same run.
//!
//!     cargo bench -p nara --bench algorithms
//!
//! For each reference model, three figures from the same inputs, rounds
//! interleaved, medians quoted, from 64 concurrent clients (as the exchange's
//! benchmark):
//! 1. in-process: `Model::decide` called in a loop (what the arithmetic costs);
//! 2. bare over HTTP (the baseline): the same `decide` behind a minimal axum
//!    route in this process, JSON in and out, no signature, no record — what
//!    serving a prediction over HTTP costs on this machine;
//! 3. signed over HTTP (the record's baseline): the same route, but each
//!    request signed (RFC 9421) and its signature verified with nara's own
//!    code against the system's registered key before `decide` — everything
//!    an agency system's call must cost, without the record;
//! 4. through nara: `POST /api/v1/algorithms/{code}/decisions` on a real
//!    `nara demo`, signed by the model's own agency system, each answer after
//!    its record and ledger entry are committed.
//!
//! The goal (issue 16): the record costs at most 2× the bare prediction for
//! the cheap models: through nara ≥ 0.5 of bare over HTTP, and (what the
//! record alone costs) ≥ 0.5 of signed over HTTP. The client, the baselines
//! and the node share the machine's two cores.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const ROUNDS: usize = 3;
const CLIENTS: usize = 64;
const PER_ROUND: usize = 3_200;

/// Inputs of each model: varied, all in range.
fn inputs(code: &str) -> Vec<serde_json::Value> {
    let model = nara_algorithms::model(code).unwrap();
    match code {
        "voice-phishing" => (0..64)
            .map(|i| {
                let (train, _, _) = nara_algorithms::phishing::corpus(1_000 + i);
                serde_json::json!({"transcript": train[0].text})
            })
            .collect(),
        "traffic-signals" => (0..64)
            .map(|i| {
                let f = 600 + i * 7;
                serde_json::json!({"phases": [
                    {"name": "north-south", "flow_veh_h": f, "saturation_veh_h": 3600},
                    {"name": "east-west", "saturation_veh_h": 3600, "recent_counts": [180, 190 + i, 200, 210, 220 + i]},
                    {"name": "left turns", "flow_veh_h": 120 + i, "saturation_veh_h": 1700}]})
            })
            .collect(),
        _ => vec![model.example()],
    }
}

/// Sends `bodies` round-robin from CLIENTS tasks, `PER_ROUND` in all;
/// decisions a second and the latencies.
async fn drive(
    send: Arc<dyn Fn(serde_json::Value) -> reqwest::RequestBuilder + Send + Sync>,
    bodies: Arc<Vec<serde_json::Value>>,
) -> (f64, Vec<Duration>) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (send, bodies) = (send.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            for n in (c..PER_ROUND).step_by(CLIENTS) {
                let t = Instant::now();
                let r = send(bodies[n % bodies.len()].clone()).send().await.unwrap();
                let status = r.status();
                let text = r.text().await.unwrap();
                assert!(status.is_success(), "{status}: {text}");
                took.push(t.elapsed());
            }
            took
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort();
    (
        PER_ROUND as f64 / started.elapsed().as_secs_f64(),
        latencies,
    )
}

/// The baseline server: each model's `decide` behind `POST /decide/{code}`
/// and, for signed requests from `systems` (their keys decoded once, as
/// nara's key cache does), `POST /signed/{code}`.
async fn bare_server(systems: Vec<nara_store::identity::MachineClient>) -> String {
    type Systems = Arc<std::collections::HashMap<String, Option<ed25519_dalek::VerifyingKey>>>;
    async fn signed(
        axum::extract::State(systems): axum::extract::State<Systems>,
        axum::extract::Path(code): axum::extract::Path<String>,
        request: axum::extract::Request,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        use nara_server::identity::machine::{Signatures, SignedRequest, target_uri};
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let signed = SignedRequest {
            method: &parts.method,
            target_uri: target_uri(false, &parts.headers, &parts.uri),
            headers: &parts.headers,
            body: &body,
        };
        let now = nara_server::identity::auth::unix_now();
        let verified = Signatures::parse(&parts.headers).and_then(|s| {
            let (label, key_id) = s.key_ids()?.into_iter().next().unwrap();
            s.check_key(&signed, &label, &key_id, systems[&key_id].as_ref(), now)
        });
        if verified.is_err() {
            return axum::http::StatusCode::UNAUTHORIZED.into_response();
        }
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        match nara_algorithms::model(&code)
            .unwrap()
            .decide(&body["input"])
        {
            Ok(out) => axum::Json(out).into_response(),
            Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    }
    async fn decide(
        axum::extract::Path(code): axum::extract::Path<String>,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let model = nara_algorithms::model(&code).unwrap();
        match model.decide(&body["input"]) {
            Ok(out) => axum::Json(out).into_response(),
            Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    }
    let systems: Systems = Arc::new(
        systems
            .into_iter()
            .map(|s| {
                let key = nara_server::identity::machine::verifying_key(&s.public_key);
                (s.key_id, key)
            })
            .collect(),
    );
    let app = axum::Router::new()
        .route("/decide/{code}", axum::routing::post(decide))
        .route("/signed/{code}", axum::routing::post(signed))
        .with_state(systems);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

struct Signer {
    key_id: String,
    key: ed25519_dalek::SigningKey,
}

/// Requests to `url` signed (RFC 9421) by `signer`, one for each body.
fn signed_sender(
    client: &reqwest::Client,
    url: String,
    signer: &Arc<Signer>,
) -> Arc<dyn Fn(serde_json::Value) -> reqwest::RequestBuilder + Send + Sync> {
    let (client, signer) = (client.clone(), signer.clone());
    Arc::new(move |body| {
        signed_post(
            &client,
            &url,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
            &signer.key_id,
            &signer.key,
        )
    })
}

/// PDQ matching of a 1-megapixel JPEG against a list of a million hashes,
/// as nara matches an image it is given: decode, hash in the eight
/// orientations, compare each hash of the list with all eight; p50 and p99
/// over the trials
/// (goal: p99 ≤ 50 ms). The list is random hashes plus the picture's own
/// hash, so every trial finds its match.
fn pdq_million() {
    use nara_algorithms::images::{
        Pdq, generated_picture, hash_image_turned, hash_rgb, nearest_any,
    };
    const TRIALS: usize = 60;
    let (w, h) = (1024u32, 1024u32);
    let mut jpegs = Vec::new();
    let mut list: Vec<Pdq> = Vec::with_capacity(1_000_000);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while list.len() < 1_000_000 - TRIALS {
        list.push(Pdq([next(), next(), next(), next()]));
    }
    for seed in 0..TRIALS as u64 {
        let px = generated_picture(seed, w, h);
        jpegs.push(nara_algorithms::images::jpeg(w, h, &px, 85));
        list.push(hash_rgb(w, h, px).unwrap().0);
    }
    let (mut hashing, mut matching, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for jpeg in &jpegs {
        let started = Instant::now();
        let (hashes, _) = hash_image_turned(jpeg).unwrap();
        let hashed = started.elapsed();
        let (_, distance, _) = nearest_any(&list, &hashes).unwrap();
        assert!(distance <= 31, "a re-encoded picture matched at {distance}");
        total.push(started.elapsed());
        hashing.push(hashed);
        matching.push(started.elapsed() - hashed);
    }
    for v in [&mut hashing, &mut matching, &mut total] {
        v.sort();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  PDQ, a 1 MP JPEG in 8 orientations against {} hashes, {TRIALS} trials: p50 {:.1} ms, p99 {:.1} ms (goal p99 ≤ 50 ms) — decoding and hashing p50 {:.1} ms, comparing p50 {:.1} ms",
        list.len(),
        ms(percentile(&total, 0.5)),
        ms(percentile(&total, 0.99)),
        ms(percentile(&hashing, 0.5)),
        ms(percentile(&matching, 0.5)),
    );
}

#[tokio::main]
async fn main() {
    let nara = nara_bin();
    let (_server, base, dir) = start_demo_with(&nara, &["--no-backups"]).await;
    // Each model's agency gets a signing key for a benchmark system (the
    // node reads keys through its cache, refreshed within a second).
    let store = nara_store::Store::connect(&nara_store::Store::sqlite_url(dir.path()))
        .await
        .unwrap();
    let mut signers = std::collections::HashMap::new();
    let mut systems = Vec::new();
    for agency in ["KR/GOV/KNPA", "KR/LOC/SEOUL"] {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let public = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            key.verifying_key().as_bytes(),
        );
        let registered = nara_server::identity::machine::register(
            &store,
            &agency.parse().unwrap(),
            "bench",
            &public,
            "benchmark",
        )
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
        systems.push(
            store
                .machine_client(&registered.key_id)
                .await
                .unwrap()
                .unwrap(),
        );
        signers.insert(
            agency,
            Arc::new(Signer {
                key_id: registered.key_id,
                key,
            }),
        );
    }
    store.close().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pdq_million();
    let bare = bare_server(systems).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();

    println!(
        "algorithms: {PER_ROUND} decisions a round from {CLIENTS} clients, {ROUNDS} rounds interleaved"
    );
    for (code, agency) in [
        ("traffic-signals", "KR/LOC/SEOUL"),
        ("voice-phishing", "KR/GOV/KNPA"),
        ("elderly-protection-zones", "KR/LOC/SEOUL"),
    ] {
        let model = nara_algorithms::model(code).unwrap();
        let bodies: Arc<Vec<serde_json::Value>> = Arc::new(
            inputs(code)
                .into_iter()
                .map(|input| serde_json::json!({ "input": input }))
                .collect(),
        );
        // Warm up: trains the model in both processes.
        let _ = model.decide(&bodies[0]["input"]);
        let (mut local, mut over_http, mut through_nara) = (Vec::new(), Vec::new(), Vec::new());
        let mut signed_http = Vec::new();
        let (mut bare_latency, mut nara_latency) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let started = Instant::now();
            for n in 0..PER_ROUND {
                std::hint::black_box(model.decide(&bodies[n % bodies.len()]["input"]).unwrap());
            }
            local.push(PER_ROUND as f64 / started.elapsed().as_secs_f64());

            let (c, url) = (client.clone(), format!("{bare}/decide/{code}"));
            let (rate, latencies) = drive(
                Arc::new(move |body| c.post(&url).json(&body)),
                bodies.clone(),
            )
            .await;
            over_http.push(rate);
            bare_latency.extend(latencies);

            let (rate, _) = drive(
                signed_sender(&client, format!("{bare}/signed/{code}"), &signers[agency]),
                bodies.clone(),
            )
            .await;
            signed_http.push(rate);

            let (rate, latencies) = drive(
                signed_sender(
                    &client,
                    format!("{base}/api/v1/algorithms/{code}/decisions"),
                    &signers[agency],
                ),
                bodies.clone(),
            )
            .await;
            through_nara.push(rate);
            nara_latency.extend(latencies);
            println!(
                "  {code} round {}: in-process {:>9.0}/s; bare over HTTP {:>7.0}/s; signed over HTTP {:>6.0}/s; through nara (signed, recorded, ledgered) {:>6.0}/s",
                round + 1,
                local[round],
                over_http[round],
                signed_http[round],
                through_nara[round]
            );
        }
        bare_latency.sort();
        nara_latency.sort();
        let (l, h, n) = (median(local), median(over_http), median(through_nara));
        let s = median(signed_http);
        println!(
            "  {code}: median {n:.0} decisions/s through nara = {:.2} of bare over HTTP ({h:.0}/s; goal ≥ 0.5), {:.2} of signed over HTTP ({s:.0}/s: the record's cost), {:.4} of in-process ({l:.0}/s); p50 {:.1} ms against {:.1} ms, p99 {:.1} ms against {:.1} ms",
            n / h,
            n / s,
            n / l,
            percentile(&nara_latency, 0.5).as_secs_f64() * 1e3,
            percentile(&bare_latency, 0.5).as_secs_f64() * 1e3,
            percentile(&nara_latency, 0.99).as_secs_f64() * 1e3,
            percentile(&bare_latency, 0.99).as_secs_f64() * 1e3,
        );
    }
}
