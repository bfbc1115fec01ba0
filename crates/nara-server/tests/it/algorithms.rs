//! Algorithms under public rules, over real HTTP: the register published
//! and versioned (incomplete entries refused, nothing changed), the Dutch
//! export; an agency system asks a model through a signed request and gets
//! its record (another agency's system is told there is no such model;
//! input out of range is refused with the range); a citizen's phone-call
//! report screened; an official overrides it with a reason; the citizen
//! sees it and appeals; the reviewer may not decide the appeal, another
//! official does; every step is in the ledger.

use reqwest::StatusCode;

use crate::backends;
use crate::common::{TestApp, post_form};

/// A signed agency system of `agency`, registered on the spot.
struct System {
    key_id: String,
    key: ed25519_dalek::SigningKey,
}

impl System {
    async fn new(app: &TestApp, agency: &str, subsystem: &str) -> System {
        let key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let public = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            key.verifying_key().as_bytes(),
        );
        let registered = nara_server::identity::machine::register(
            &app.store,
            &agency.parse().unwrap(),
            subsystem,
            &public,
            "test",
        )
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
        System {
            key_id: registered.key_id,
            key,
        }
    }

    async fn send(
        &self,
        app: &TestApp,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let request = self.signed(app, method, path, body);
        app.client.execute(request).await.unwrap()
    }

    /// A signed request, built but not sent (to send again, or elsewhere).
    fn signed(
        &self,
        app: &TestApp,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Request {
        let url = app.url(path);
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let fields: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("content-type", "application/json")]
        };
        let headers = nara_server::identity::machine::sign_request(
            method,
            &url,
            fields,
            &body,
            &self.key_id,
            &self.key,
            nara_server::identity::auth::unix_now(),
        );
        let mut r = app.client.request(method.parse().unwrap(), &url);
        for (name, value) in headers {
            r = r.header(name, value);
        }
        if !body.is_empty() {
            r = r.header("content-type", "application/json").body(body);
        }
        r.build().unwrap()
    }
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> (StatusCode, String) {
    let r = app
        .client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

backends! {
    /// The register: shipped entries published once, new versions only
    /// when complete, the Dutch shape, every version in the ledger.
    async fn the_register_is_public_versioned_and_complete(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        // A node's register is empty until published (`nara seed` and the demo do).
        assert_eq!(app.get("/api/v1/algorithms").await.json::<serde_json::Value>().await.unwrap(), serde_json::json!([]));
        nara_server::algorithms::publish_shipped(&app.store).await.unwrap();
        // Published past the node (as `nara seed` or another node does): the
        // node's copy of the register is at most a second old.
        let mut list = serde_json::json!([]);
        for _ in 0..30 {
            list = app.get("/api/v1/algorithms").await.json().await.unwrap();
            if list.as_array().is_some_and(|l| !l.is_empty()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let codes: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["elderly-protection-zones", "extended-hour-schools", "grooming-risk", "image-hash-matching", "traffic-signals", "voice-phishing"]);
        assert!(app.has_entry(5000, |e| e.kind == "algorithm.published" && e.subjects.contains(&"algorithm:voice-phishing".to_owned())).await);

        let page = app.get("/algorithms/voice-phishing").await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("Voice-phishing call screening"));
        assert!(html.contains("f1 unseen paraphrases"));
        assert_eq!(app.get("/algorithms/no-such-thing").await.status(), StatusCode::NOT_FOUND);
        let ko = app.get("/algorithms?lang=ko").await.text().await.unwrap();
        assert!(ko.contains("보이스피싱 통화 선별"));

        let dutch: serde_json::Value = app.get("/api/v1/algorithms/voice-phishing/algoritmeregister").await.json().await.unwrap();
        assert_eq!(dutch["publication_category"], "impactvolle algoritmes");
        assert_eq!(dutch["status"], "In gebruik");
        assert_eq!(dutch["organization"], "KR/GOV/KNPA");

        // An incomplete entry is refused with every field named; nothing changes.
        let document: serde_json::Value = app.get("/api/v1/algorithms/traffic-signals").await.json().await.unwrap();
        let mut entry = document["versions"][0]["entry"].clone();
        let mut broken = entry.clone();
        broken["purpose"] = "".into();
        broken["contact"] = "nobody".into();
        broken["risks"] = serde_json::json!([]);
        let r = app.send_json(reqwest::Method::POST, "/api/v1/algorithms", &broken).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: serde_json::Value = r.json().await.unwrap();
        let fields: Vec<&str> = problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["purpose", "contact", "risks"]);
        // An entry for a model nara runs must name the artefact that runs.
        let mut wrong = entry.clone();
        wrong["artefact_sha256"] = "0".repeat(64).into();
        assert_eq!(app.send_json(reqwest::Method::POST, "/api/v1/algorithms", &wrong).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let versions = app.store.algorithm_versions("traffic-signals").await.unwrap();
        assert_eq!(versions.len(), 1);

        // A complete change is the next version; the same again is not.
        entry["review_schedule"] = "Every quarter.".into();
        let r = app.send_json(reqwest::Method::POST, "/api/v1/algorithms", &entry).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = app.send_json(reqwest::Method::POST, "/api/v1/algorithms", &entry).await;
        assert_eq!(r.status(), StatusCode::OK);
        let document: serde_json::Value = app.get("/api/v1/algorithms/traffic-signals").await.json().await.unwrap();
        let versions = document["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0]["version"], 2);
        assert_eq!(versions[1]["entry"]["review_schedule"], "Yearly, and after any change of a junction's layout.");
    }

    /// An agency system asks a model; the record comes first; review and
    /// appeal by different officials; the person sees it all.
    async fn decisions_are_recorded_reviewed_and_appealed(backend: &str) {
        let Some(app) = TestApp::on(backend).services().start().await else { return };
        nara_server::algorithms::publish_shipped(&app.store).await.unwrap();
        let seoul = System::new(&app, "KR/LOC/SEOUL", "signals").await;
        let knpa = System::new(&app, "KR/GOV/KNPA", "fraud-desk").await;
        let model = nara_algorithms::model("traffic-signals").unwrap();

        // A plan: recorded, final (not near saturation), factors in words.
        let r = seoul.send(&app, "POST", "/api/v1/algorithms/traffic-signals/decisions", Some(serde_json::json!({"input": model.example(), "reference": "junction-17"}))).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        let record: serde_json::Value = r.json().await.unwrap();
        assert_eq!(record["final"], true, "{record}");
        assert!(record["factors"][0]["text"].as_str().unwrap().contains("Webster"));
        let id = record["id"].as_str().unwrap().to_owned();
        assert!(app.has_entry(200, |e| e.kind == "algorithm.decided" && e.subjects.contains(&format!("decision:{id}"))).await);
        // The same reference again: decided once.
        let r = seoul.send(&app, "POST", "/api/v1/algorithms/traffic-signals/decisions", Some(serde_json::json!({"input": model.example(), "reference": "junction-17"}))).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        // Out of range: refused with the range, nothing recorded.
        let before = app.store.decisions_of("traffic-signals", 100).await.unwrap().len();
        let r = seoul.send(&app, "POST", "/api/v1/algorithms/traffic-signals/decisions", Some(serde_json::json!({"input": {"phases": [
            {"name": "a", "flow_veh_h": 1700, "saturation_veh_h": 3600}, {"name": "b", "flow_veh_h": 1600, "saturation_veh_h": 3600}]}}))).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let problem: serde_json::Value = r.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "input.phases");
        assert!(problem["errors"][0]["detail"].as_str().unwrap().contains("0.9"));
        for bad in [serde_json::json!({"input": {}, "extra": 1}), serde_json::json!({"input": {}, "subject": "not-a-number"})] {
            let r = seoul.send(&app, "POST", "/api/v1/algorithms/traffic-signals/decisions", Some(bad)).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        }
        assert_eq!(app.store.decisions_of("traffic-signals", 100).await.unwrap().len(), before);
        // A replay is refused on this node and on another that has not seen
        // it: the signature was claimed in the record's own transaction. A
        // refused request's signature is claimed too, before its answer.
        let path = "/api/v1/algorithms/traffic-signals/decisions";
        let asked = seoul.signed(&app, "POST", path, Some(serde_json::json!({"input": model.example()})));
        let refused = seoul.signed(&app, "POST", path, Some(serde_json::json!({"input": {"phases": []}})));
        let (again, elsewhere, refused_elsewhere) = (asked.try_clone().unwrap(), asked.try_clone().unwrap(), refused.try_clone().unwrap());
        let r = app.client.execute(asked).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = app.client.execute(refused).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let decided = app.store.decisions_of("traffic-signals", 100).await.unwrap().len();
        let r = app.client.execute(again).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.text().await.unwrap().contains("already used"));
        let node2 = app.second_node().await;
        for mut replay in [elsewhere, refused_elsewhere] {
            *replay.url_mut() = reqwest::Url::parse(&node2.url(replay.url().path())).unwrap();
            // Behind one load balancer, both nodes see the same authority.
            replay.headers_mut().insert("host", app.addr.to_string().parse().unwrap());
            let r = app.client.execute(replay).await.unwrap();
            let status = r.status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", r.text().await.unwrap());
        }
        assert_eq!(app.store.decisions_of("traffic-signals", 100).await.unwrap().len(), decided, "a replay records nothing");
        // Signed anew, the same ask is decided again.
        let fresh = seoul.signed(&app, "POST", path, Some(serde_json::json!({"input": model.example()})));
        let r = app.client.execute(fresh).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        // Another agency's system: no such model for it. Unsigned: sign first.
        let r = knpa.send(&app, "POST", "/api/v1/algorithms/traffic-signals/decisions", Some(serde_json::json!({"input": model.example()}))).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = knpa.send(&app, "GET", &format!("/api/v1/algorithms/traffic-signals/decisions/{id}"), None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = app.client.post(app.url("/api/v1/algorithms/traffic-signals/decisions")).json(&serde_json::json!({"input": {}})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

        // A scam call about Minji, flagged: it waits for an official.
        let call = "여보세요. 서울중앙지검 수사관입니다. 고객님 명의 계좌가 범죄에 연루되어 있습니다. 안전계좌로 이체하셔야 합니다";
        let r = knpa.send(&app, "POST", "/api/v1/algorithms/voice-phishing/decisions", Some(serde_json::json!({"input": {"transcript": call}, "subject": "900101-2345678"}))).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let record: serde_json::Value = r.json().await.unwrap();
        assert_eq!(record["state"], "awaiting_review");
        assert_eq!(record["final"], false);
        assert!(record["notified_at"].is_null());
        let id = record["id"].as_str().unwrap().to_owned();
        // The ledger holds the input's digest, never the transcript.
        let recent = app.entries_with("algorithm.decided", 50).await;
        assert!(recent.iter().all(|(_, e)| !String::from_utf8_lossy(e).contains("수사관")));

        // The reviewer's queue; another agency's official does not see it.
        let reviewer = app.signed_in("official.knpa").await;
        let (status, queue) = page(&app, "/oversight", &reviewer.cookie).await;
        assert_eq!(status, StatusCode::OK);
        assert!(queue.contains(&id), "{queue}");
        let stranger = app.signed_in("official.seoul").await;
        assert!(!page(&app, "/oversight", &stranger.cookie).await.1.contains(&id));
        assert_eq!(page(&app, &format!("/oversight/{id}"), &stranger.cookie).await.0, StatusCode::NOT_FOUND);
        let (_, record_page) = page(&app, &format!("/oversight/{id}"), &reviewer.cookie).await;
        assert!(record_page.contains("안전계좌로"), "the reviewer reads the transcript");

        // An override without a reason is refused; with one it stands.
        let act = |cookie: String, csrf: String, step: &'static str, outcome: &'static str, reason: &'static str| {
            let app = &app;
            let id = id.clone();
            async move {
                post_form(app, &format!("/oversight/{id}"), Some(&cookie), &[("csrf", &csrf), ("step", step), ("outcome", outcome), ("reason", reason)]).await
            }
        };
        let r = act(reviewer.cookie.clone(), reviewer.csrf.clone(), "change", "ordinary_call", "no").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("needs a reason"));
        assert_eq!(app.store.decision(&id).await.unwrap().unwrap().state, "awaiting_review");
        let r = act(reviewer.cookie.clone(), reviewer.csrf.clone(), "change", "ordinary_call", "The caller was the bank's real fraud desk; number checked.").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let stored = app.store.decision(&id).await.unwrap().unwrap();
        assert_eq!(stored.state, "overridden");
        assert_eq!(stored.final_outcome.as_deref(), Some("ordinary_call"));
        assert!(stored.notified_at.is_some(), "Minji has an account: told");
        // Reviewed once: a second review is refused.
        let r = act(reviewer.cookie.clone(), reviewer.csrf.clone(), "confirm", "", "").await;
        assert!(r.text().await.unwrap().contains("reviewed already"));

        // The system reads the record again: final now, with the override.
        let r = knpa.send(&app, "GET", &format!("/api/v1/algorithms/voice-phishing/decisions/{id}"), None).await;
        let record: serde_json::Value = r.json().await.unwrap();
        assert_eq!(record["final"], true);
        assert_eq!(record["final_outcome"], "ordinary_call");

        // Minji sees it, in Korean too, and appeals; Junho cannot.
        let minji = app.signed_in("minji").await;
        let (_, mine) = page(&app, "/my/decisions", &minji.cookie).await;
        assert!(mine.contains(&id) && mine.contains("Overridden by an official"), "{mine}");
        let (_, mine_ko) = page(&app, "/my/decisions?lang=ko", &minji.cookie).await;
        assert!(mine_ko.contains("공무원이 변경"));
        let junho = app.signed_in("junho").await;
        assert!(!page(&app, "/my/decisions", &junho.cookie).await.1.contains(&id));
        let appeal = |cookie: String, csrf: String, reason: &'static str| {
            let app = &app;
            let id = id.clone();
            async move { post_form(app, &format!("/my/decisions/{id}/appeal"), Some(&cookie), &[("csrf", &csrf), ("reason", reason)]).await }
        };
        assert_eq!(appeal(junho.cookie.clone(), junho.csrf.clone(), "This is not about me at all.").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(appeal(minji.cookie.clone(), minji.csrf.clone(), "short").await.status(), StatusCode::BAD_REQUEST);
        assert_eq!(appeal(minji.cookie.clone(), minji.csrf.clone(), "It was a scam: I lost money after that call.").await.status(), StatusCode::SEE_OTHER);
        assert_eq!(appeal(minji.cookie.clone(), minji.csrf.clone(), "And I appeal again, once more.").await.status(), StatusCode::CONFLICT);

        // The reviewer may not decide the appeal; another official reverses it.
        let r = act(reviewer.cookie.clone(), reviewer.csrf.clone(), "confirm", "", "").await;
        assert!(r.text().await.unwrap().contains("another official decides"));
        let second = app.signed_in("reviewer.knpa").await;
        let (_, queue) = page(&app, "/oversight", &second.cookie).await;
        assert!(queue.contains(&id));
        let r = act(second.cookie.clone(), second.csrf.clone(), "change", "scam_likely", "The bank has no such desk; the reporter lost money. Reversed.").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let stored = app.store.decision(&id).await.unwrap().unwrap();
        assert_eq!(stored.appeal_state.as_deref(), Some("reversed"));
        assert_eq!(stored.final_outcome.as_deref(), Some("scam_likely"));

        // The register counts the review and the appeal.
        let document: serde_json::Value = app.get("/api/v1/algorithms/voice-phishing").await.json().await.unwrap();
        assert_eq!(document["oversight"]["overridden"], 1);
        assert_eq!(document["oversight"]["override_rate"], 1.0);
        assert_eq!(document["oversight"]["appeals_reversed"], 1);
        for kind in ["algorithm.reviewed", "algorithm.notified", "algorithm.appealed", "algorithm.appeal_decided"] {
            assert!(app.has_entry(300, |e| e.kind == kind && e.subjects.contains(&format!("decision:{id}"))).await, "{kind}");
        }
        // Her appeal names her by a commitment, never her account.
        assert!(app.has_entry(300, |e| e.kind == "algorithm.appealed" && e.actor.starts_with("citizen:")).await);
    }

    /// A citizen's phone-call report is screened within seconds, once.
    async fn phone_call_reports_are_screened(backend: &str) {
        let Some(app) = TestApp::on(backend).services().start().await else { return };
        nara_server::algorithms::publish_shipped(&app.store).await.unwrap();
        let minji = app.signed_in("minji").await;
        let report = serde_json::json!({"data": {
            "channel": "phone_call", "sender": "+82 2-0000-0000",
            "transcript": "검찰청에서 연락드렸습니다. 본인 명의 계좌가 자금세탁 사건에 연루되어 있습니다. 예금을 국가 안전계좌로 옮겨 두세요. 가족에게도 말하면 안 됩니다",
            "lost_money": "no"}});
        let r = app.client.post(app.url("/api/v1/services/phishing-report/applications"))
            .header("cookie", &minji.cookie).header("x-csrf-token", &minji.csrf)
            .json(&report).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        let hash = app.subject_hash("900101-2345678");
        let mut screened = Vec::new();
        for _ in 0..100 {
            screened = app.store.decisions_about(&hash).await.unwrap();
            if !screened.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(screened.len(), 1);
        assert_eq!(screened[0].code, "voice-phishing");
        assert_eq!(screened[0].state, "awaiting_review");
        assert!(screened[0].source.as_deref().unwrap().starts_with("application:"));
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        assert_eq!(app.store.decisions_about(&hash).await.unwrap().len(), 1, "screened once");
        let (_, mine) = page(&app, "/my/decisions", &minji.cookie).await;
        assert!(mine.contains("An official is reviewing this decision"));

        // Rounds read what was submitted since the newest report they read: a
        // later report is screened too, and nothing is left behind.
        let r = app.client.post(app.url("/api/v1/services/phishing-report/applications"))
            .header("cookie", &minji.cookie).header("x-csrf-token", &minji.csrf)
            .json(&report).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        let mut count = 0;
        for _ in 0..100 {
            count = app.store.decisions_about(&hash).await.unwrap().len();
            if count == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(count, 2, "the later report screened as well");
        assert!(app.store.unscreened_reports(&nara_server::algorithms::screening::SCREENS[0], 0, 10).await.unwrap().is_empty());
    }

    /// An official checks images from the run page: the upload rules
    /// refuse what is not an image or would expand too far; a resized copy
    /// of a listed picture matches and is kept for its reviewers only (not
    /// auditors, not another agency, not once reviewed by someone else); a
    /// picture that matches nothing is not kept.
    async fn images_are_checked_and_seen_by_reviewers_only(backend: &str) {
        use nara_algorithms::images::{generated_picture, jpeg};
        let Some(app) = TestApp::start(backend).await else { return };
        nara_server::algorithms::publish_shipped(&app.store).await.unwrap();
        nara_server::algorithms::demo::write_stand_in_list(app.data_dir()).unwrap();
        nara_server::algorithms::load_hash_lists(app.data_dir()).unwrap();
        let official = app.signed_in("official.knpa").await;
        let (status, form) = page(&app, "/algorithms/image-hash-matching/run", &official.cookie).await;
        assert_eq!(status, StatusCode::OK);
        assert!(form.contains("action=\"/algorithms/image-hash-matching/image\""), "{form}");
        // Only the image model takes an image.
        assert!(!page(&app, "/algorithms/voice-phishing/run", &official.cookie).await.1.contains("/image\""));
        let send = |session: &crate::common::Session, code: &'static str, bytes: Vec<u8>| {
            let form = reqwest::multipart::Form::new()
                .text("csrf", session.csrf.clone())
                .part("file", reqwest::multipart::Part::bytes(bytes).file_name("picture"));
            app.client.post(app.url(&format!("/algorithms/{code}/image")))
                .header("cookie", &session.cookie).multipart(form).send()
        };
        // Refused, each with why, and nothing recorded.
        let text = send(&official, "image-hash-matching", b"just some words, not a picture".to_vec()).await.unwrap();
        assert_eq!(text.status(), StatusCode::BAD_REQUEST);
        assert!(text.text().await.unwrap().contains("file-error"));
        let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bomb.extend_from_slice(&100_000u32.to_be_bytes());
        bomb.extend_from_slice(&100_000u32.to_be_bytes());
        bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        let r = send(&official, "image-hash-matching", bomb).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("too large to process"));
        let matching = jpeg(640, 480, &generated_picture(3, 640, 480), 80);
        assert_eq!(send(&official, "voice-phishing", matching.clone()).await.unwrap().status(), StatusCode::NOT_FOUND);
        assert!(app.store.decisions_of("image-hash-matching", 10).await.unwrap().is_empty(), "nothing recorded");

        // A resized stand-in matches: kept, shown blurred to the reviewers.
        let r = send(&official, "image-hash-matching", matching.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        let id = to.trim_start_matches("/oversight/").to_owned();
        let record = app.store.decision(&id).await.unwrap().unwrap();
        assert_eq!((record.outcome.as_str(), record.state.as_str()), ("match_found", "awaiting_review"));
        let digest = format!("sha256:{}", nara_core::algorithms::sha256_hex(&matching));
        assert!(record.input.contains(&digest), "the record names the image by its digest");
        let (_, shown) = page(&app, &to, &official.cookie).await;
        assert!(shown.contains(&format!("/oversight/{id}/image")), "{shown}");
        let image = app.get_in(&official, &format!("/oversight/{id}/image")).await;
        assert_eq!(image.status(), StatusCode::OK);
        assert_eq!(image.headers()["content-type"], "image/jpeg");
        assert_eq!(image.headers()["cache-control"], "private, no-store");
        assert_eq!(image.bytes().await.unwrap().as_ref(), matching.as_slice());
        let auditor = app.signed_in("auditor").await;
        let (status, audited) = page(&app, &to, &auditor.cookie).await;
        assert_eq!(status, StatusCode::OK, "auditors read the record");
        assert!(!audited.contains(&format!("/oversight/{id}/image")));
        assert_eq!(app.get_in(&auditor, &format!("/oversight/{id}/image")).await.status(), StatusCode::FORBIDDEN);
        let stranger = app.signed_in("official.seoul").await;
        assert_eq!(app.get_in(&stranger, &format!("/oversight/{id}/image")).await.status(), StatusCode::NOT_FOUND);
        // Reviewed: the reviewer still may, another official no longer.
        let r = post_form(&app, &to, Some(&official.cookie), &[("csrf", &official.csrf), ("step", "confirm")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let second = app.signed_in("reviewer.knpa").await;
        assert_eq!(app.get_in(&second, &format!("/oversight/{id}/image")).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.get_in(&official, &format!("/oversight/{id}/image")).await.status(), StatusCode::OK);

        // An unrelated picture matches nothing and is not kept.
        let unrelated = jpeg(640, 480, &generated_picture(500, 640, 480), 80);
        let r = send(&official, "image-hash-matching", unrelated.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let id = r.headers()["location"].to_str().unwrap().trim_start_matches("/oversight/").to_owned();
        assert_eq!(app.store.decision(&id).await.unwrap().unwrap().outcome, "no_match");
        let hex = nara_core::algorithms::sha256_hex(&unrelated);
        assert!(!app.data_dir().join("review-images").join(&hex[..2]).join(&hex).exists());
        let hex = nara_core::algorithms::sha256_hex(&matching);
        assert!(app.data_dir().join("review-images").join(&hex[..2]).join(&hex).exists());

        // An agency system sends the picture in base64 through the signed
        // API: the same rules, the same record, kept only on a match.
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let small = jpeg(320, 240, &generated_picture(7, 320, 240), 85);
        let uploads = System::new(&app, "KR/GOV/KNPA", "uploads").await;
        let path = "/api/v1/algorithms/image-hash-matching/decisions";
        let r = uploads.send(&app, "POST", path, Some(serde_json::json!({"input": {"image": b64(&small)}, "reference": "upload-7"}))).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        let record: serde_json::Value = r.json().await.unwrap();
        assert_eq!((record["outcome"].as_str(), record["state"].as_str()), (Some("match_found"), Some("awaiting_review")));
        let hex = nara_core::algorithms::sha256_hex(&small);
        assert!(app.data_dir().join("review-images").join(&hex[..2]).join(&hex).exists());
        // A copy mirrored and turned matches too, and the record says how
        // it was changed.
        let listed = image::RgbImage::from_raw(320, 240, generated_picture(7, 320, 240)).unwrap();
        let changed = image::imageops::rotate90(&image::imageops::flip_horizontal(&listed));
        let changed = jpeg(changed.width(), changed.height(), changed.as_raw(), 85);
        let r = uploads.send(&app, "POST", path, Some(serde_json::json!({"input": {"image": b64(&changed)}, "reference": "upload-8"}))).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let record: serde_json::Value = r.json().await.unwrap();
        assert_eq!(record["outcome"], "match_found", "{record}");
        let stored = app.store.decision(record["id"].as_str().unwrap()).await.unwrap().unwrap();
        assert!(stored.factors.contains("image_mirrored"), "{}", stored.factors);
        assert!(stored.input.contains("pdq_turned"), "the record holds the eight hashes");
        for (input, needle) in [
            (serde_json::json!({"image": format!("sha256:{hex}")}), "base64"),
            (serde_json::json!({"image": b64(&small), "pdq": "00", "quality": 90}), "not both"),
            (serde_json::json!({"image": b64(&small), "pdq_turned": []}), "not both"),
            (serde_json::json!({"image": b64(b"plain words, not a picture")}), "PNG or JPEG"),
            (serde_json::json!({"image": 42}), "base64"),
        ] {
            let r = uploads.send(&app, "POST", path, Some(serde_json::json!({"input": input}))).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            let problem: serde_json::Value = r.json().await.unwrap();
            assert!(problem.to_string().contains(needle), "{problem}");
        }
        // A page's JSON may not name a kept image either.
        let r = post_form(&app, "/algorithms/image-hash-matching/run", Some(&official.cookie), &[("csrf", &official.csrf), ("input", &format!("{{\"pdq\": \"{}\", \"quality\": 90, \"image\": \"sha256:{hex}\"}}", "0".repeat(64)))]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    /// A matched image is kept while its review waits, and deleted by the
    /// sweep once the record is settled and `review_image_days` have
    /// passed (0 here): the page says when, nobody can open it again, and a
    /// new match of the same picture keeps it anew. A file no record names
    /// goes too.
    async fn matched_images_are_deleted_once_settled(backend: &str) {
        use nara_algorithms::images::{generated_picture, jpeg};
        use nara_server::algorithms::review_images::sweep;
        let config = nara_server::Config { review_image_days: 0, ..Default::default() };
        let Some(app) = TestApp::start_with(backend, config).await else { return };
        nara_server::algorithms::publish_shipped(&app.store).await.unwrap();
        nara_server::algorithms::demo::write_stand_in_list(app.data_dir()).unwrap();
        nara_server::algorithms::load_hash_lists(app.data_dir()).unwrap();
        let official = app.signed_in("official.knpa").await;
        let matching = jpeg(640, 480, &generated_picture(3, 640, 480), 80);
        let check = || {
            let form = reqwest::multipart::Form::new()
                .text("csrf", official.csrf.clone())
                .part("file", reqwest::multipart::Part::bytes(matching.clone()).file_name("picture"));
            app.client.post(app.url("/algorithms/image-hash-matching/image"))
                .header("cookie", &official.cookie).multipart(form).send()
        };
        let r = check().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        let hex = nara_core::algorithms::sha256_hex(&matching);
        let kept = app.data_dir().join("review-images").join(&hex[..2]).join(&hex);
        // A file no record names (left by a crash, say).
        let stray = app.data_dir().join("review-images").join("ab").join("ab".repeat(32));
        std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
        std::fs::write(&stray, b"not anything a record names").unwrap();
        let now = || nara_core::Timestamp::now().0;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;

        // Waiting for its review: kept, whatever the time.
        assert_eq!(sweep(&app.state, now()).await.unwrap(), 1, "only the stray file");
        assert!(kept.exists() && !stray.exists());
        assert_eq!(sweep(&app.state, i64::MAX / 2).await.unwrap(), 0);
        assert!(kept.exists());
        assert_eq!(app.get_in(&official, &format!("{to}/image")).await.status(), StatusCode::OK);

        // Reviewed with nothing to keep it for: the next sweep deletes it.
        let r = post_form(&app, &to, Some(&official.cookie), &[("csrf", &official.csrf), ("step", "confirm")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.get_in(&official, &format!("{to}/image")).await.status(), StatusCode::NOT_FOUND);
        assert!(kept.exists(), "not before the sweep");
        assert_eq!(sweep(&app.state, now()).await.unwrap(), 1);
        assert!(!kept.exists());
        let (_, shown) = page(&app, &to, &official.cookie).await;
        assert!(shown.contains("The image was deleted on") && shown.contains("kept 0 days"), "{shown}");
        assert!(!shown.contains(&format!("{to}/image")));

        // The same picture matched again: kept anew for the new review.
        let r = check().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let again = r.headers()["location"].to_str().unwrap().to_owned();
        assert_ne!(again, to);
        assert!(kept.exists());
        assert_eq!(sweep(&app.state, now()).await.unwrap(), 0);
        assert_eq!(app.get_in(&official, &format!("{again}/image")).await.status(), StatusCode::OK);
    }

    /// A parent's report of a chat is scored by the grooming-risk model,
    /// once, and waits for a police official; an ordinary chat is scored
    /// too, and the two scores differ as the model says.
    async fn grooming_reports_are_screened(backend: &str) {
        let Some(app) = TestApp::on(backend).services().start().await else { return };
        nara_server::algorithms::publish_shipped(&app.store).await.unwrap();
        let minji = app.signed_in("minji").await;
        let report = |excerpt: &str| serde_json::json!({"data": {
            "platform": "game", "handle": "sky_star07", "excerpt": excerpt, "met_offline": "no"}});
        let send = |body: serde_json::Value| {
            app.client.post(app.url("/api/v1/services/grooming-report/applications"))
                .header("cookie", &minji.cookie).header("x-csrf-token", &minji.csrf)
                .json(&body).send()
        };
        // Too short for the form: refused before anything is screened.
        let r = send(report("안녕")).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let grooming = "너 진짜 어른스럽다 또래랑 달라. 집에 혼자 있는 시간 많아. 우리 얘기는 부모님한테 비밀로 하자. 게임 아이템 사줄게 사진 한 장만 보내줘";
        let ordinary = "내일 수학 숙제 몇 쪽까지야. 삼십 쪽까지래 같이 하자. 토요일에 축구 몇 시야. 열 시 운동장";
        for excerpt in [grooming, ordinary] {
            let r = send(report(excerpt)).await.unwrap();
            assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        }
        let hash = app.subject_hash("900101-2345678");
        let mut screened = Vec::new();
        for _ in 0..100 {
            screened = app.store.decisions_about(&hash).await.unwrap();
            if screened.len() >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(screened.len(), 2);
        assert!(screened.iter().all(|d| d.code == "grooming-risk"
            && d.source.as_deref().unwrap().starts_with("application:")));
        let flagged: Vec<_> = screened.iter().filter(|d| d.state == "awaiting_review").collect();
        assert_eq!(flagged.len(), 1, "the grooming chat, not the homework");
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        assert_eq!(app.store.decisions_about(&hash).await.unwrap().len(), 2, "screened once");
        assert!(app.store.unscreened_reports(&nara_server::algorithms::screening::SCREENS[1], 0, 10).await.unwrap().is_empty());
        // The police official's queue holds the flagged chat; the reporter
        // sees that an official is reviewing it.
        let reviewer = app.signed_in("official.knpa").await;
        let (_, queue) = page(&app, "/oversight", &reviewer.cookie).await;
        assert!(queue.contains(&flagged[0].id), "{queue}");
        let (_, mine) = page(&app, "/my/decisions", &minji.cookie).await;
        assert!(mine.contains("An official is reviewing this decision"));
    }
}
