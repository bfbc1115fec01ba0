//! The public ledger: every change is recorded, checkpoints and tiles verify
//! with the auditor's client, proofs verify, tampering is caught.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use nara_ledger::audit::AuditError;
use nara_ledger::{Checkpoint, merkle, note};
use nara_server::ledger::{VerifyError, verify_log};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backends;
use crate::common::{TestApp, tamper};

async fn wait_for_size(app: &TestApp, size: u64) -> String {
    for _ in 0..100 {
        let r = app.get("/ledger/checkpoint").await;
        if r.status() == StatusCode::OK {
            let note = r.text().await.unwrap();
            if note.lines().nth(1) == Some(&size.to_string()) {
                return note;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "no checkpoint of size {size} within 10 s (sizes count the test operator's account entry)"
    );
}

async fn vkey(app: &TestApp) -> String {
    app.get("/ledger/vkey").await.text().await.unwrap()
}

fn b64hash(s: &Value) -> [u8; 32] {
    B64.decode(s.as_str().unwrap()).unwrap().try_into().unwrap()
}

backends! {
    async fn two_nodes_share_one_log(backend: &str) {
        let Some((url, _dir)) = crate::common::fresh_database(backend).await else { return };
        let config = nara_server::Config::default;
        let seed = [42u8; 32];
        let origin = config().ledger_origin();
        let keys = || nara_server::ledger::LedgerKeys { signer: note::Signer::new(&origin, &seed).unwrap(), retired: vec![] };
        let a = TestApp::serve_with_keys(nara_store::Store::connect(&url).await.unwrap(), config(), None, keys()).await;
        let b = TestApp::serve_with_keys(nara_store::Store::connect(&url).await.unwrap(), config(), None, keys()).await;
        let agency = json!({"id": "KR/GOV/TWO", "name": {"en": "Two", "es": "Dos", "ko": "둘"}, "kind": "ministry"});
        assert_eq!(a.send_json(Method::POST, "/api/v1/agencies", &agency).await.status(), StatusCode::CREATED);
        // Both nodes take writes and both run an integrator; one integrates at a time.
        let bodies: Vec<Value> = (0..40)
            .map(|i| json!({"agency": "KR/GOV/TWO", "code": format!("N-{i}"), "name": "Node test", "kind": "server",
                            "grade": 4, "environment": "development", "status": "operational"}))
            .collect();
        let writes = bodies.iter().enumerate().map(|(i, body)| {
            let node = if i % 2 == 0 { &a } else { &b };
            node.send_json(Method::POST, "/api/v1/systems", body)
        });
        for w in futures_util::future::join_all(writes).await {
            assert_eq!(w.status(), StatusCode::CREATED);
        }
        let from_a = wait_for_size(&a, 42).await;
        let from_b = wait_for_size(&b, 42).await;
        assert_eq!(from_a, from_b, "both nodes serve the same signed checkpoint");
        let vkey = vkey(&a).await;
        let via_a = verify_log(&a.url("/ledger"), &vkey, None, &|_, _| {}).await.unwrap();
        let via_b = verify_log(&b.url("/ledger"), &vkey, Some(&from_a), &|_, _| {}).await.unwrap();
        assert_eq!(via_a.checkpoint, via_b.checkpoint);
        assert_eq!(via_a.entries, 42);
    }

    async fn every_change_is_recorded_and_verifies(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        // The demo country: 10 agencies, 30 services, 200 systems, an entry each.
        let first = wait_for_size(&app, 241).await;
        let base = app.url("/ledger");
        let vkey = vkey(&app).await;
        let verified = verify_log(&base, &vkey, None, &|_, _| {}).await.unwrap();
        assert_eq!(verified.entries, 241);

        let system = json!({"agency": "KR/GOV/MOIS", "code": "LEDGER-1", "name": "Ledger test", "kind": "server", "grade": 1,
                            "environment": "production", "status": "operational"});
        assert_eq!(app.send_json(Method::POST, "/api/v1/systems", &system).await.status(), StatusCode::CREATED);
        // A refused write records nothing.
        assert_eq!(app.send_json(Method::POST, "/api/v1/systems", &system).await.status(), StatusCode::CONFLICT);
        let second = wait_for_size(&app, 242).await;
        let again = verify_log(&base, &vkey, Some(&first), &|_, _| {}).await.unwrap();
        assert_eq!(again.entries, 242);

        // The newest entry, with its inclusion proof, verifies against the signed root.
        let proof: Value = app.get("/api/v1/ledger/entries/241").await.json().await.unwrap();
        assert_eq!(proof["entry"]["kind"], "catalogue.system.created");
        // The actor is the account behind the API token: the test operator, the first account.
        assert_eq!(proof["entry"]["actor"], "account:1");
        let verifier = note::Verifier::from_vkey(vkey.trim()).unwrap();
        let checkpoint = Checkpoint::parse(note::open(proof["checkpoint"].as_str().unwrap(), std::slice::from_ref(&verifier)).unwrap()).unwrap();
        let path: Vec<[u8; 32]> = proof["inclusion_proof"].as_array().unwrap().iter().map(b64hash).collect();
        merkle::verify_inclusion(&b64hash(&proof["leaf_hash"]), 241, checkpoint.size, &path, &checkpoint.root).unwrap();
        // And a consistency proof links the two checkpoints.
        let c: Value = app.get("/api/v1/ledger/consistency?first=241").await.json().await.unwrap();
        let earlier = Checkpoint::parse(note::open(&first, std::slice::from_ref(&verifier)).unwrap()).unwrap();
        let later = Checkpoint::parse(note::open(&second, &[verifier]).unwrap()).unwrap();
        let path: Vec<[u8; 32]> = c["proof"].as_array().unwrap().iter().map(b64hash).collect();
        merkle::verify_consistency(241, 242, &earlier.root, &later.root, &path).unwrap();

        // Tiles per C2SP tlog-tiles: a full tile is immutable, a missing one is 404, bad paths are 400.
        assert_eq!(app.get("/ledger/tile/0/000.p/242").await.status(), StatusCode::OK, "the published partial tile");
        assert_eq!(app.get("/ledger/tile/entries/000.p/242").await.status(), StatusCode::OK);
        assert_eq!(app.get("/ledger/tile/0/000.p/243").await.status(), StatusCode::NOT_FOUND, "wider than the tree");
        let full = app.get("/ledger/tile/0/000").await;
        assert_eq!(full.status(), StatusCode::NOT_FOUND, "tile 0/000 is not full at 242 entries");
        let ok = app.get("/ledger/tile/0/000.p/200").await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(ok.bytes().await.unwrap().len(), 200 * 32);
        for bad in ["/ledger/tile/0/0", "/ledger/tile/00/000", "/ledger/tile/0/000.p/0", "/ledger/tile/0/000.p/256",
                    "/ledger/tile/0/x000/000", "/ledger/tile/99/000", "/ledger/tile/entries/999999999999999999999999"] {
            assert_eq!(app.get(bad).await.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!(app.get("/ledger/tile/entries/001").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.get("/api/v1/ledger/entries/242").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.get("/api/v1/ledger/entries/-1").await.status(), StatusCode::BAD_REQUEST);
        assert_eq!(app.get("/api/v1/ledger/consistency?first=0").await.status(), StatusCode::BAD_REQUEST);
        assert_eq!(app.get("/api/v1/ledger/consistency?first=5&second=9999").await.status(), StatusCode::BAD_REQUEST);
    }

    async fn an_edited_entry_is_caught_and_named(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        wait_for_size(&app, 241).await;
        let base = app.url("/ledger");
        let vkey = vkey(&app).await;
        tamper(&app.url, "UPDATE ledger_entries SET entry = $1 WHERE idx = 37", Some(b"forged entry".to_vec())).await;
        tamper(&app.url, "UPDATE ledger_entries SET entry = $1 WHERE idx = 180", Some(b"forged too".to_vec())).await;
        match verify_log(&base, &vkey, None, &|_, _| {}).await {
            Err(VerifyError::Audit(AuditError::EntryMismatch { index })) => assert_eq!(index, 37),
            other => panic!("expected entry 37 to be named, got {other:?}"),
        }
        // A wrong key, or a forged checkpoint, fails at the signature.
        let other = nara_server::ledger::LedgerKeys::ephemeral("nara.localhost/kr/ledger").unwrap();
        let wrong = other.signer.verifier().vkey();
        assert!(matches!(verify_log(&base, &wrong, None, &|_, _| {}).await, Err(VerifyError::Signature(_))));
    }

    async fn rewritten_or_truncated_history_is_caught(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let saved = wait_for_size(&app, 241).await;
        let base = app.url("/ledger");
        let vkey = vkey(&app).await;
        // Truncate: drop the last 100 entries and the tree, as a database
        // administrator could, and let nara sign what is left. (On PostgreSQL
        // the integrator sequences from ledger_pending, so re-append there.)
        let sqlite = backend == "sqlite";
        tamper(&app.url, "DELETE FROM ledger_entries WHERE idx >= 140", None).await;
        tamper(&app.url, "DELETE FROM ledger_tiles", None).await;
        tamper(&app.url, "DELETE FROM ledger_checkpoints", None).await;
        if !sqlite {
            tamper(&app.url, "INSERT INTO ledger_pending (entry) SELECT entry FROM ledger_entries ORDER BY idx", None).await;
            tamper(&app.url, "DELETE FROM ledger_entries", None).await;
        }
        wait_for_size(&app, 140).await;
        match verify_log(&base, &vkey, Some(&saved), &|_, _| {}).await {
            Err(VerifyError::Audit(AuditError::Shrunk { saved: 241, current: 140 })) => {}
            other => panic!("expected the truncation to be caught, got {other:?}"),
        }
        // Rewrite: change an early entry and grow past the saved size.
        tamper(&app.url, "UPDATE ledger_entries SET entry = $1 WHERE idx = 3", Some(b"rewritten".to_vec())).await;
        tamper(&app.url, "DELETE FROM ledger_tiles", None).await;
        tamper(&app.url, "DELETE FROM ledger_checkpoints", None).await;
        if sqlite {
            tamper(&app.url, "INSERT INTO ledger_entries (idx, entry) SELECT idx + 140, entry FROM ledger_entries", None).await;
        } else {
            tamper(&app.url, "INSERT INTO ledger_pending (entry) SELECT entry FROM ledger_entries ORDER BY idx", None).await;
            tamper(&app.url, "INSERT INTO ledger_pending (entry) SELECT entry FROM ledger_entries ORDER BY idx", None).await;
            tamper(&app.url, "DELETE FROM ledger_entries", None).await;
        }
        wait_for_size(&app, 280).await;
        match verify_log(&base, &vkey, Some(&saved), &|_, _| {}).await {
            Err(VerifyError::Audit(AuditError::Rewritten { saved: 241 })) => {}
            other => panic!("expected the rewrite to be caught, got {other:?}"),
        }
    }
}
