//! The exchange: an agency system fetches a resident's record from another
//! agency's registry through X-Road REST r1, with the citizen's consent; the
//! citizen sees it; forged, replayed and unauthorised calls are refused with
//! X-Road errors, security events and no provider call; an agency's own
//! system behind a URL gets the same protection (SSRF, timeout, circuit
//! breaker); and two federated nodes exchange over HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use ed25519_dalek::Verifier;
use reqwest::{Method, StatusCode};

use crate::backends;
use crate::common::{TestApp, post_form};

const RESIDENTS: &str = "KR/GOV/MOIS/resident-registry/residents";
const MINJI: &str = "900101-2345678";
const SEOUL: &str = "KR/LOC/SEOUL/welfare-portal";

fn record_path(service: &str) -> String {
    format!("/r1/{service}/record")
}

/// Gives a consent through the portal page, as the citizen does; returns its id.
pub(crate) async fn consent_via_portal(
    app: &TestApp,
    cookie: &str,
    service: &str,
    purpose: &str,
) -> String {
    let csrf = app.csrf_of(cookie, "/my/consents").await;
    let r = post_form(
        app,
        "/my/consents",
        Some(cookie),
        &[
            ("csrf", csrf.as_str()),
            ("service", service),
            ("agency", "KR/LOC/SEOUL"),
            ("purpose", purpose),
            ("days", "30"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let marker = "id=\"new-consent\">";
    let at = html.find(marker).expect("the new consent's id") + marker.len();
    html[at..at + html[at..].find('<').unwrap()].to_owned()
}

fn xroad_error(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-road-error")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

backends! {
    async fn consented_exchange_end_to_end(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let accounts = app.demo_accounts().await;
        let demo = app.demo_exchange(5).await;
        let minji = accounts.iter().find(|a| a.username == "minji").unwrap();
        let session = app.sign_in(minji).await;
        let consent = consent_via_portal(&app, &session.cookie, RESIDENTS, "benefit-eligibility").await;
        let c = app.consumer(&demo);
        let headers = [
            ("nara-subject", MINJI),
            ("nara-purpose", "benefit-eligibility"),
            ("nara-consent", consent.as_str()),
            ("x-road-id", "test-exchange-1"),
            ("x-road-userid", "KR-official-42"),
            ("x-road-issue", "welfare-case-77"),
        ];
        let request = c.request(Method::GET, &record_path(RESIDENTS), &headers, vec![]).build().unwrap();
        let replay = request.try_clone().unwrap();
        let r = app.client.execute(request).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers().clone();
        assert_eq!(h["x-road-client"], SEOUL);
        assert_eq!(h["x-road-service"], RESIDENTS);
        assert_eq!(h["x-road-id"], "test-exchange-1");
        assert_eq!(h["x-road-request-id"].to_str().unwrap().len(), 36, "a UUID");
        let hash = base64::engine::general_purpose::STANDARD.decode(h["x-road-request-hash"].as_bytes()).unwrap();
        assert_eq!(hash.len(), 64, "SHA-512");
        assert!(h.get("x-road-error").is_none());
        let body: serde_json::Value = r.json().await.unwrap();
        // The access right's minimal view: these four fields, nothing else.
        let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["address", "birth_date", "household_head", "name"]);
        assert_eq!(body["name"], "Kim Minji");

        // The message log holds the record, signed by the gateway.
        let record = app.store.exchange_by_id(SEOUL, "test-exchange-1").await.unwrap().expect("logged");
        assert_eq!(record.consent_id, consent);
        assert_eq!(record.purpose, "benefit-eligibility");
        assert_eq!(record.subject_hash, app.subject_hash(MINJI));
        assert_eq!(record.user_id, "KR-official-42");
        assert_eq!(record.issue, "welfare-case-77");
        assert_eq!(record.request_hash, h["x-road-request-hash"].to_str().unwrap());
        assert_eq!(record.gateway_signature, h["nara-gateway-signature"].to_str().unwrap());
        let sig = base64::engine::general_purpose::STANDARD.decode(&record.gateway_signature).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        app.gateway_key().verify(&nara_server::exchange::record_digest(&record), &sig).expect("the gateway's signature verifies");
        assert!(!record.client_signature.is_empty());
        // ... and the ledger an entry for it, written in the same transaction.
        // (On PostgreSQL the integrator sequences it within a moment.)
        let mut recorded = false;
        for _ in 0..50 {
            let recent = app.store.recent_ledger_entries(20).await.unwrap();
            if recent.iter().any(|(_, e)| nara_ledger::entry::Entry::decode(e).is_ok_and(|e| e.kind == "exchange" && e.subjects.contains(&"xroad_id:test-exchange-1".to_owned()))) {
                recorded = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(recorded, "the exchange is a ledger entry");

        // The citizen sees it at once: page, JSON and CSV.
        let page = app.client.get(app.url("/my/data-access")).header("cookie", &session.cookie).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("Seoul Metropolitan Government"), "the agency is named");
        assert!(page.contains("deciding whether you can receive a benefit"), "the purpose is explained");
        let json: serde_json::Value = app.client.get(app.url("/api/v1/me/data-access")).header("cookie", &session.cookie).send().await.unwrap().json().await.unwrap();
        assert_eq!(json["exchanges"].as_array().unwrap().len(), 1);
        assert_eq!(json["exchanges"][0]["x_road_id"], "test-exchange-1");
        assert_eq!(json["exchanges"][0]["consent"], consent.as_str());
        let csv = app.client.get(app.url("/api/v1/me/data-access?format=csv")).header("cookie", &session.cookie).send().await.unwrap().text().await.unwrap();
        assert_eq!(csv.lines().count(), 2);
        assert!(csv.lines().nth(1).unwrap().contains("test-exchange-1"));
        // Another citizen sees nothing of it.
        let junho = accounts.iter().find(|a| a.username == "junho").unwrap();
        let other = app.sign_in(junho).await;
        let json: serde_json::Value = app.client.get(app.url("/api/v1/me/data-access")).header("cookie", &other.cookie).send().await.unwrap().json().await.unwrap();
        assert_eq!(json["exchanges"].as_array().unwrap().len(), 0);

        // A replay of the same signed request is refused; so is a new
        // signature reusing the X-Road-Id.
        let r = app.client.execute(replay).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(xroad_error(&r), "Client.DuplicateMessageId");
        let r = c.request(Method::GET, &record_path(RESIDENTS), &headers, vec![]).send().await.unwrap();
        assert_eq!(xroad_error(&r), "Client.DuplicateMessageId");
        // Another node on the same database, which has not seen it, refuses
        // a replay too, even one without an X-Road-Id (the gateway makes a
        // fresh one): the signature was claimed in the first exchange's log
        // transaction, and the replay's record is not released.
        let no_id: Vec<(&str, &str)> = headers.iter().copied().filter(|(n, _)| *n != "x-road-id").collect();
        let request = c.request(Method::GET, &record_path(RESIDENTS), &no_id, vec![]).build().unwrap();
        let mut elsewhere = request.try_clone().unwrap();
        let r = app.client.execute(request).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let node2 = app.second_node().await;
        node2.wait_for_directory().await;
        let there = reqwest::Url::parse(&node2.url(elsewhere.url().path())).unwrap();
        *elsewhere.url_mut() = there;
        // Behind one load balancer, both nodes see the same authority.
        elsewhere.headers_mut().insert("host", app.addr.to_string().parse().unwrap());
        let logged = app.store.exchange_count().await.unwrap();
        let r = app.client.execute(elsewhere).await.unwrap();
        assert_eq!(xroad_error(&r), "Client.DuplicateMessageId");
        assert!(!r.text().await.unwrap().contains("Kim Minji"), "no record released");
        assert_eq!(app.store.exchange_count().await.unwrap(), logged, "nothing logged");
        // A refused request's signature is claimed for every node too, so
        // that a replay elsewhere, once what refused it has changed, fails
        // at the log's commit instead of being served.
        let refused = c.request(Method::GET, &record_path(RESIDENTS), &[("nara-subject", "850315-1234567"), ("nara-purpose", "benefit-eligibility"), ("nara-consent", &consent)], vec![]).build().unwrap();
        let signature = refused.headers()["signature"].to_str().unwrap().to_owned();
        let r = app.client.execute(refused).await.unwrap();
        assert_eq!(xroad_error(&r), "Server.ServerProxy.ConsentRequired");
        let bytes = base64::engine::general_purpose::STANDARD.decode(signature.split(':').nth(1).unwrap()).unwrap();
        let key = format!("sig\n{}\n{}", demo.key_id, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
        let now = nara_core::Timestamp::now().0;
        let fresh = app.store.claim_signatures(&[key], now, now - nara_server::identity::machine::REPLAY_WINDOW_MS).await.unwrap();
        assert_eq!(fresh, [false], "the refused request's signature is already claimed");

        // The consent was for this purpose only.
        let r = c.request(Method::GET, &record_path(RESIDENTS), &[("nara-subject", MINJI), ("nara-purpose", "school-enrolment"), ("nara-consent", &consent)], vec![]).send().await.unwrap();
        assert_eq!(xroad_error(&r), "Server.ServerProxy.PurposeNotAllowed");
        // Not for another person.
        let r = c.request(Method::GET, &record_path(RESIDENTS), &[("nara-subject", "850315-1234567"), ("nara-purpose", "benefit-eligibility"), ("nara-consent", &consent)], vec![]).send().await.unwrap();
        assert_eq!(xroad_error(&r), "Server.ServerProxy.ConsentRequired");

        // Revoked through the API: refused at once, nothing logged.
        let logged = app.store.exchange_count().await.unwrap();
        let r = app.client.post(app.url(&format!("/api/v1/me/consents/{consent}/revoke"))).header("cookie", &session.cookie).header("x-csrf-token", &session.csrf).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let r = c.request(Method::GET, &record_path(RESIDENTS), &[("nara-subject", MINJI), ("nara-purpose", "benefit-eligibility"), ("nara-consent", &consent)], vec![]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(xroad_error(&r), "Server.ServerProxy.ConsentRequired");
        assert_eq!(app.store.exchange_count().await.unwrap(), logged);
        let consents: serde_json::Value = app.client.get(app.url("/api/v1/me/consents")).header("cookie", &session.cookie).send().await.unwrap().json().await.unwrap();
        assert!(consents["consents"][0]["revoked_at"].is_i64(), "history kept after revocation");

        // A named legal basis the service lists works without consent, and
        // still appears in the citizen's history.
        let r = c.request(Method::GET, &record_path(RESIDENTS), &[("nara-subject", MINJI), ("nara-purpose", "benefit-eligibility"), ("nara-legal-basis", "Resident Registration Act art. 29")], vec![]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let json: serde_json::Value = app.client.get(app.url("/api/v1/me/data-access")).header("cookie", &session.cookie).send().await.unwrap().json().await.unwrap();
        // Three: the first, the one without an X-Road-Id, this one.
        assert_eq!(json["exchanges"].as_array().unwrap().len(), 3);
        assert_eq!(json["exchanges"][0]["legal_basis"], "Resident Registration Act art. 29");
    }
}

backends! {
    /// Every refusal: an X-Road error with the protocol's body, a security
    /// event, nothing logged and no record released.
    async fn refusals_are_xroad_errors_and_security_events(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let _ = app.demo_accounts().await;
        let demo = app.demo_exchange(3).await;
        let c = app.consumer(&demo);
        let ok_headers = [
            ("nara-subject", MINJI),
            ("nara-purpose", "benefit-eligibility"),
            ("nara-legal-basis", "Resident Registration Act art. 29"),
        ];
        let events_before = app
            .store
            .security_events(Some("exchange.refused"), 1000)
            .await
            .unwrap()
            .len();
        let logged = app.store.exchange_count().await.unwrap();
        let mut refused = 0;
        let mut expect = |r: reqwest::Response, kind: &str| {
            refused += 1;
            let status = r.status();
            let error = xroad_error(&r);
            assert_eq!(error, kind, "HTTP {status}");
            assert_eq!(
                status.as_u16(),
                if kind.starts_with("Client.") {
                    400
                } else {
                    500
                }
            );
            assert_eq!(
                r.headers()["content-type"],
                "application/json;charset=utf-8"
            );
            r
        };
        // Unsigned, and signed by an unregistered key.
        let r = app
            .client
            .get(app.url(&record_path(RESIDENTS)))
            .header("x-road-client", SEOUL)
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = expect(r, "Client.InvalidSignatureValue")
            .json()
            .await
            .unwrap();
        assert_eq!(body["type"], "Client.InvalidSignatureValue");
        assert!(
            body["detail"].as_str().unwrap().len() == 36,
            "detail carries the request id"
        );
        let forger = nara_server::exchange::gateway::Consumer {
            key: ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]),
            ..app.consumer(&demo)
        };
        expect(
            forger
                .request(Method::GET, &record_path(RESIDENTS), &ok_headers, vec![])
                .send()
                .await
                .unwrap(),
            "Client.InvalidSignatureValue",
        );
        // X-Road-Client must name the signer.
        let liar = nara_server::exchange::gateway::Consumer {
            client: "KR/GOV/MOE/school-enrolment".into(),
            ..app.consumer(&demo)
        };
        expect(
            liar.request(Method::GET, &record_path(RESIDENTS), &ok_headers, vec![])
                .send()
                .await
                .unwrap(),
            "Client.InvalidClientIdentifier",
        );
        let bad_client = nara_server::exchange::gateway::Consumer {
            client: "KR/LOC/SEOUL/welfare portal".into(),
            ..app.consumer(&demo)
        };
        expect(
            bad_client
                .request(Method::GET, &record_path(RESIDENTS), &ok_headers, vec![])
                .send()
                .await
                .unwrap(),
            "Client.InvalidClientIdentifier",
        );
        // Malformed identifiers, traversal, pollution, oversize.
        for path in [
            "/r1/KR/GOV/MOIS/resident-registry",
            "/r1/KR/GOV/MO%20IS/resident-registry/residents/record",
            "/r1/KR%2FGOV%2FMOIS/resident-registry/residents/record",
            "/r1/KR/GOV/MOIS/resident-registry/residents/%2e%2e/%2e%2e/admin",
            "/r1/KR/GOV/MOIS/resident-registry/residents/a%2Fb",
            "/r1/KR/GOV/MOIS/resident-registry/residents/record?x=1&x=2",
            "/r1/KR/GOV/../resident-registry/residents/record",
        ] {
            let r = c
                .request(Method::GET, path, &ok_headers, vec![])
                .send()
                .await
                .unwrap();
            expect(r, "Client.BadRequest");
        }
        let r = c
            .request(
                Method::POST,
                &record_path(RESIDENTS),
                &ok_headers,
                vec![b'x'; 70 * 1024],
            )
            .send()
            .await
            .unwrap();
        expect(r, "Client.BadRequest");
        // Unknown service; no access right (the client may not call businesses).
        expect(
            c.request(
                Method::GET,
                "/r1/KR/GOV/MOIS/resident-registry/nothing/record",
                &ok_headers,
                vec![],
            )
            .send()
            .await
            .unwrap(),
            "Server.ServerProxy.UnknownService",
        );
        expect(
            c.request(
                Method::GET,
                &record_path("KR/GOV/NTS/business-registry/businesses"),
                &[
                    ("nara-subject", MINJI),
                    ("nara-purpose", "business-licensing"),
                    ("nara-legal-basis", "Value-Added Tax Act art. 8"),
                ],
                vec![],
            )
            .send()
            .await
            .unwrap(),
            "Server.ServerProxy.AccessDenied",
        );
        // Personal data: a purpose the service accepts, and consent or a listed legal basis.
        expect(
            c.request(
                Method::GET,
                &record_path(RESIDENTS),
                &[
                    ("nara-subject", MINJI),
                    ("nara-legal-basis", "Resident Registration Act art. 29"),
                ],
                vec![],
            )
            .send()
            .await
            .unwrap(),
            "Server.ServerProxy.PurposeNotAllowed",
        );
        expect(
            c.request(
                Method::GET,
                &record_path(RESIDENTS),
                &[
                    ("nara-subject", MINJI),
                    ("nara-purpose", "tax-administration"),
                    ("nara-legal-basis", "Resident Registration Act art. 29"),
                ],
                vec![],
            )
            .send()
            .await
            .unwrap(),
            "Server.ServerProxy.PurposeNotAllowed",
        );
        expect(
            c.request(
                Method::GET,
                &record_path(RESIDENTS),
                &[
                    ("nara-subject", MINJI),
                    ("nara-purpose", "benefit-eligibility"),
                ],
                vec![],
            )
            .send()
            .await
            .unwrap(),
            "Server.ServerProxy.ConsentRequired",
        );
        expect(
            c.request(
                Method::GET,
                &record_path(RESIDENTS),
                &[
                    ("nara-subject", MINJI),
                    ("nara-purpose", "benefit-eligibility"),
                    ("nara-legal-basis", "Because we want it"),
                ],
                vec![],
            )
            .send()
            .await
            .unwrap(),
            "Server.ServerProxy.ConsentRequired",
        );
        // An expired consent.
        let minji = app
            .store
            .account_by_username("minji")
            .await
            .unwrap()
            .unwrap();
        let now = nara_core::Timestamp::now().0;
        app.store
            .grant_consent(&nara_store::exchange::Consent {
                id: "cns_expired".into(),
                account_id: minji.id,
                subject_hash: app.subject_hash(MINJI),
                client_agency: "KR/LOC/SEOUL".into(),
                service_id: RESIDENTS.into(),
                purpose: "benefit-eligibility".into(),
                granted_at: now - 10_000,
                expires_at: now - 1_000,
                revoked_at: None,
            })
            .await
            .unwrap();
        expect(
            c.request(
                Method::GET,
                &record_path(RESIDENTS),
                &[
                    ("nara-subject", MINJI),
                    ("nara-purpose", "benefit-eligibility"),
                    ("nara-consent", "cns_expired"),
                ],
                vec![],
            )
            .send()
            .await
            .unwrap(),
            "Server.ServerProxy.ConsentRequired",
        );
        expect(
            c.request(
                Method::GET,
                &record_path(RESIDENTS),
                &[
                    ("nara-subject", "991399-1234567"),
                    ("nara-purpose", "benefit-eligibility"),
                    ("nara-legal-basis", "Resident Registration Act art. 29"),
                ],
                vec![],
            )
            .send()
            .await
            .unwrap(),
            "Client.BadRequest",
        );

        assert_eq!(
            app.store.exchange_count().await.unwrap(),
            logged,
            "no refused exchange is logged"
        );
        let events = app
            .store
            .security_events(Some("exchange.refused"), 1000)
            .await
            .unwrap();
        assert_eq!(
            events.len() - events_before,
            refused,
            "each refusal is a security event"
        );
        assert!(events.iter().any(|e| e.detail.contains("AccessDenied")));

        // The same request, correct, goes through.
        let r = c
            .request(Method::GET, &record_path(RESIDENTS), &ok_headers, vec![])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);

        // Metaservices as PR-MREST defines them.
        let list: serde_json::Value = c
            .request(
                Method::GET,
                "/r1/KR/GOV/MOIS/resident-registry/listMethods",
                &[],
                vec![],
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["service"][0]["service_code"], "residents");
        assert_eq!(list["service"][0]["object_type"], "SERVICE");
        assert_eq!(list["service"][0]["endpoint_list"][0]["path"], "/record");
        let allowed: serde_json::Value = c
            .request(
                Method::GET,
                "/r1/KR/GOV/NTS/business-registry/allowedMethods",
                &[],
                vec![],
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            allowed["service"].as_array().unwrap().len(),
            0,
            "no right, nothing allowed"
        );
        let api: serde_json::Value = c
            .request(
                Method::GET,
                "/r1/KR/GOV/MOIS/resident-registry/getOpenAPI?serviceCode=residents",
                &[],
                vec![],
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(api["openapi"], "3.1.0");
        let r = c
            .request(
                Method::GET,
                "/r1/KR/GOV/NTS/business-registry/getOpenAPI?serviceCode=businesses",
                &[],
                vec![],
            )
            .send()
            .await
            .unwrap();
        assert_eq!(xroad_error(&r), "Server.ServerProxy.AccessDenied");
        let clients: serde_json::Value = app.get("/listClients").await.json().await.unwrap();
        assert!(
            clients["member"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"]["subsystem_code"] == "welfare-portal"
                    && m["id"]["object_type"] == "SUBSYSTEM")
        );

        // Operations: per service and client, in /metrics and on the page.
        let metrics = app.get_as_operator("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("nara_exchanges_total{service=\"KR/GOV/MOIS/resident-registry/residents\",client=\"KR/LOC/SEOUL/welfare-portal\",outcome=\"ok\"}"), "{metrics}");
        assert!(metrics.contains("outcome=\"Server.ServerProxy.AccessDenied\""));
        assert!(
            !metrics.contains("welfare portal"),
            "unverified clients are not labels"
        );
    }
}

/// A tiny provider system: counts calls, echoes what it saw, can be slow.
async fn provider() -> (String, Arc<AtomicUsize>) {
    use axum::routing::get;
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(get(move |req: axum::extract::Request| {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            if req.uri().path() == "/slow" {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
            let seen: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), serde_json::json!(v.to_str().unwrap_or(""))))
                .collect();
            axum::Json(serde_json::json!({"path": req.uri().to_string(), "headers": seen}))
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

backends! {
    /// An agency's own system behind a registered URL: the request can never
    /// change where nara calls (SSRF), a slow provider times out in X-Road form,
    /// and a failing one is left alone for a while (circuit breaker).
    async fn agency_systems_behind_urls(backend: &str) {
        let Some((dir_url, dir)) = crate::common::fresh_database(backend).await else { return };
        let store = nara_store::Store::connect(&dir_url).await.unwrap();
        store.seed(&nara_core::seed::demo().unwrap(), &|_| {}).await.unwrap();
        let config = nara_server::Config {
            max_body_bytes: 64 * 1024,
            exchange_timeout_ms: 300,
            ..nara_server::Config::default()
        };
        let app = TestApp::serve(store, config, dir).await;
        let _ = app.demo_accounts().await;
        let demo = app.demo_exchange(1).await;
        let (base, hits) = provider().await;
        let now = nara_core::Timestamp::now().0;
        app.store
            .register_data_service(
                &nara_store::exchange::DataService {
                    id: "KR/GOV/KNPA/case-system/cases".into(),
                    agency_id: "KR/GOV/KNPA".into(),
                    subsystem: "case-system".into(),
                    service_code: "cases".into(),
                    version: "1".into(),
                    title: "Case lookup".into(),
                    openapi: r#"{"openapi":"3.1.0","paths":{"/cases/{id}":{"get":{}}}}"#.into(),
                    personal: 0,
                    purposes: "public-safety".into(),
                    legal_bases: String::new(),
                    endpoint_kind: "url".into(),
                    endpoint: format!("{base}/api"),
                    created_at: now,
                },
                "test",
            )
            .await
            .unwrap();
        app.store
            .grant_access(
                &nara_store::exchange::NewAccessRight {
                    service_id: "KR/GOV/KNPA/case-system/cases",
                    client_id: SEOUL,
                    fields: "",
                    purposes: "public-safety",
                    legal_bases: "",
                },
                "test",
            )
            .await
            .unwrap();
        app.wait_for_directory().await;
        let c = app.consumer(&demo);
        let r = c
            .request(
                Method::GET,
                "/r1/KR/GOV/KNPA/case-system/cases/cases/42?q=a%20b",
                &[("x-road-userid", "KR-7"), ("x-custom", "kept")],
                vec![],
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let seen: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            seen["path"], "/api/cases/42?q=a%20b",
            "the registered base plus the checked path"
        );
        assert_eq!(seen["headers"]["x-road-client"], SEOUL);
        assert_eq!(
            seen["headers"]["x-custom"], "kept",
            "user headers pass unmodified"
        );
        assert!(
            seen["headers"].get("signature").is_none(),
            "the client's signature is not forwarded"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // Attempts to leave the registered address never reach anything.
        for path in [
            "/r1/KR/GOV/KNPA/case-system/cases/..%2f..%2fadmin",
            "/r1/KR/GOV/KNPA/case-system/cases/%2e%2e",
            "/r1/KR/GOV/KNPA/case-system/cases//evil.example/x",
            "/r1/KR/GOV/KNPA/case-system/cases/@evil.example",
        ] {
            let r = c
                .request(Method::GET, path, &[], vec![])
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::OK {
                let seen: serde_json::Value = r.json().await.unwrap();
                assert!(
                    seen["path"].as_str().unwrap().starts_with("/api/"),
                    "{path} stayed on the provider: {seen}"
                );
            } else {
                assert_eq!(xroad_error(&r), "Client.BadRequest", "{path}");
            }
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1 + 1,
            "only the one path that stayed on the provider reached it"
        );
        // A slow provider: an X-Road timeout error, fast; after five failures
        // the circuit opens. The slow endpoint is a service of its own.
        app.store
            .register_data_service(
                &nara_store::exchange::DataService {
                    id: "KR/GOV/KNPA/case-system/slow".into(),
                    agency_id: "KR/GOV/KNPA".into(),
                    subsystem: "case-system".into(),
                    service_code: "slow".into(),
                    version: "1".into(),
                    title: "Slow".into(),
                    openapi: "{}".into(),
                    personal: 0,
                    purposes: String::new(),
                    legal_bases: String::new(),
                    endpoint_kind: "url".into(),
                    endpoint: format!("{base}/slow"),
                    created_at: now,
                },
                "test",
            )
            .await
            .unwrap();
        app.store
            .grant_access(
                &nara_store::exchange::NewAccessRight {
                    service_id: "KR/GOV/KNPA/case-system/slow",
                    client_id: SEOUL,
                    fields: "",
                    purposes: "public-safety",
                    legal_bases: "",
                },
                "test",
            )
            .await
            .unwrap();
        app.wait_for_directory().await;
        let before = hits.load(Ordering::SeqCst);
        let mut outcomes = Vec::new();
        for _ in 0..7 {
            let started = std::time::Instant::now();
            let r = c
                .request(Method::GET, "/r1/KR/GOV/KNPA/case-system/slow", &[], vec![])
                .send()
                .await
                .unwrap();
            assert!(
                started.elapsed() < std::time::Duration::from_secs(3),
                "never a hung client"
            );
            assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
            outcomes.push(xroad_error(&r));
        }
        assert_eq!(&outcomes[..5], ["Server.ServerProxy.NetworkError"; 5]);
        assert_eq!(
            &outcomes[5..],
            ["Server.ServerProxy.ServiceFailed"; 2],
            "the circuit opened after five failures"
        );
        assert_eq!(
            hits.load(Ordering::SeqCst) - before,
            5,
            "an open circuit does not call the provider"
        );
    }
}

/// Two nodes on loopback, each with its own database and log: node A serves
/// Seoul (the consumer), node B the ministries (the registries). They know
/// each other only from a signed global configuration.
#[tokio::test]
async fn federation_across_two_nodes() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let listener_a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener_b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr_a, addr_b) = (
        listener_a.local_addr().unwrap(),
        listener_b.local_addr().unwrap(),
    );
    let (id_a, id_b) = (
        nara_server::identity::auth::IdentityKeys::ephemeral(),
        nara_server::identity::auth::IdentityKeys::ephemeral(),
    );
    let key = |k: &nara_server::identity::auth::IdentityKeys| {
        URL_SAFE_NO_PAD.encode(k.gateway_key().verifying_key().as_bytes())
    };
    let member = |id: &str, node: &str| serde_json::json!({"id": id, "node": node, "name": id});
    let conf: nara_server::exchange::federation::GlobalConf = serde_json::from_value(serde_json::json!({
        "instance": "KR", "version": 3,
        "nodes": [
            {"id": "seoul", "address": format!("http://{addr_a}"), "key": key(&id_a)},
            {"id": "sejong", "address": format!("http://{addr_b}"), "key": key(&id_b)},
        ],
        "members": [
            member("KR/LOC/SEOUL", "seoul"),
            member("KR/GOV/MOIS", "sejong"), member("KR/GOV/NTS", "sejong"), member("KR/GOV/MOHW", "sejong"),
            member("KR/GOV/MOEL", "sejong"), member("KR/GOV/MOLIT", "sejong"),
        ],
    })).unwrap();
    let signer = nara_ledger::note::Signer::new("kr.gov/globalconf", &[5u8; 32]).unwrap();
    let note = nara_server::exchange::federation::sign_conf(&conf, &signer).unwrap();
    let vkey = signer.verifier().vkey();
    // A tampered configuration is refused.
    let tampered = note.replace(&format!("{addr_b}"), "127.0.0.1:1");
    assert!(
        nara_server::exchange::federation::Federation::load(&tampered, &vkey, "seoul").is_err()
    );

    let node = |listener, identity, name: &'static str| {
        let (note, vkey) = (note.clone(), vkey.clone());
        async move {
            let (url, dir) = crate::common::fresh_database("sqlite").await.unwrap();
            let store = nara_store::Store::connect(&url).await.unwrap();
            store
                .seed(&nara_core::seed::demo().unwrap(), &|_| {})
                .await
                .unwrap();
            let config = nara_server::Config {
                max_body_bytes: 64 * 1024,
                node_id: Some(name.into()),
                ..nara_server::Config::default()
            };
            let keys = nara_server::ledger::LedgerKeys::ephemeral(&config.ledger_origin()).unwrap();
            let f =
                nara_server::exchange::federation::Federation::load(&note, &vkey, name).unwrap();
            TestApp::serve_node(store, config, dir, keys, listener, identity, Some(f)).await
        }
    };
    let a = node(listener_a, id_a.clone(), "seoul").await;
    let b = node(listener_b, id_b.clone(), "sejong").await;
    // B hosts the registries and grants Seoul's welfare portal; A knows the
    // portal's key (registered by Seoul's admin on A).
    let demo = b.demo_exchange(3).await;
    let public = URL_SAFE_NO_PAD.encode(
        ed25519_dalek::SigningKey::from_bytes(
            &nara_server::identity::machine::decode_key(&demo.private_key).unwrap(),
        )
        .verifying_key()
        .as_bytes(),
    );
    let registered = nara_server::identity::machine::register(
        &a.store,
        &"KR/LOC/SEOUL".parse().unwrap(),
        "welfare-portal",
        &public,
        "test",
    )
    .await
    .unwrap();
    let demo_a = nara_server::demo::DemoExchange {
        key_id: registered.key_id,
        ..demo.clone()
    };
    let accounts = a.demo_accounts().await;
    let minji = accounts.iter().find(|x| x.username == "minji").unwrap();
    let session = a.sign_in(minji).await;
    // The citizen consents on her node (A), through the API.
    let r = a.client.post(a.url("/api/v1/me/consents")).header("cookie", &session.cookie).header("x-csrf-token", &session.csrf)
        .json(&serde_json::json!({"agency": "KR/LOC/SEOUL", "service": RESIDENTS, "purpose": "benefit-eligibility", "days": 7}))
        .send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let consent = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let c = a.consumer(&demo_a);
    let r = c
        .request(
            Method::GET,
            &record_path(RESIDENTS),
            &[
                ("nara-subject", MINJI),
                ("nara-purpose", "benefit-eligibility"),
                ("nara-consent", &consent),
                ("x-road-id", "fed-1"),
            ],
            vec![],
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    let h = r.headers().clone();
    let body = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["name"],
        "Kim Minji"
    );
    assert_eq!(h["x-road-service"], RESIDENTS);
    assert_eq!(h["nara-gateway-key"], "gateway:seoul");
    // Each node keeps its own log; B's names A's consent, A's holds B's signature.
    let on_a = a
        .store
        .exchange_by_id(SEOUL, "fed-1")
        .await
        .unwrap()
        .expect("logged on A");
    let on_b = b
        .store
        .exchange_by_id(SEOUL, "fed-1")
        .await
        .unwrap()
        .expect("logged on B");
    assert_eq!(on_a.consent_id, consent);
    assert_eq!(on_b.consent_id, format!("seoul:{consent}"));
    assert_eq!(on_a.request_hash, on_b.request_hash);
    assert_eq!(on_a.response_hash, on_b.response_hash);
    assert_eq!(on_a.peer_signature, on_b.gateway_signature);
    let digest = nara_server::exchange::record_digest(&on_a);
    for (record, key) in [(&on_a, a.gateway_key()), (&on_b, b.gateway_key())] {
        let sig = ed25519_dalek::Signature::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(&record.gateway_signature)
                .unwrap(),
        )
        .unwrap();
        key.verify(&digest, &sig)
            .expect("both gateways signed the same record");
    }
    // The citizen sees the access on her node.
    let json: serde_json::Value = a
        .get_in(&session, "/api/v1/me/data-access")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["exchanges"][0]["x_road_id"], "fed-1");
    // Revoked on A: the next exchange is refused before it leaves A.
    let r = a
        .client
        .post(a.url(&format!("/api/v1/me/consents/{consent}/revoke")))
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let logged_b = b.store.exchange_count().await.unwrap();
    let r = c
        .request(
            Method::GET,
            &record_path(RESIDENTS),
            &[
                ("nara-subject", MINJI),
                ("nara-purpose", "benefit-eligibility"),
                ("nara-consent", &consent),
            ],
            vec![],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(xroad_error(&r), "Server.ServerProxy.ConsentRequired");
    assert_eq!(b.store.exchange_count().await.unwrap(), logged_b);
    // B decides access: no right to businesses, refused by B, passed on.
    let r = c
        .request(
            Method::GET,
            &record_path("KR/GOV/NTS/business-registry/businesses"),
            &[
                ("nara-subject", MINJI),
                ("nara-purpose", "business-licensing"),
                ("nara-legal-basis", "Value-Added Tax Act art. 8"),
            ],
            vec![],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(xroad_error(&r), "Server.ServerProxy.AccessDenied");
    // Metaservices reach the provider's node too.
    let list: serde_json::Value = c
        .request(
            Method::GET,
            "/r1/KR/GOV/MOIS/resident-registry/listMethods",
            &[],
            vec![],
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["service"][0]["service_code"], "residents");

    // Straight to B: a forged peer, and a real peer speaking for a client it does not serve.
    let forged = nara_server::exchange::gateway::Consumer {
        http: b.client.clone(),
        base: format!("http://{addr_b}"),
        client: SEOUL.into(),
        key_id: "gateway:seoul".into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]),
    };
    let r = forged
        .request(
            Method::GET,
            &record_path(RESIDENTS),
            &[
                ("nara-subject", MINJI),
                ("nara-purpose", "benefit-eligibility"),
                ("nara-legal-basis", "Resident Registration Act art. 29"),
            ],
            vec![],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(xroad_error(&r), "Client.InvalidSignatureValue");
    let overreach = nara_server::exchange::gateway::Consumer {
        client: "KR/GOV/MOE/school-enrolment".into(),
        key: id_a.gateway_key(),
        ..forged
    };
    let r = overreach
        .request(
            Method::GET,
            &record_path(RESIDENTS),
            &[
                ("nara-subject", MINJI),
                ("nara-purpose", "benefit-eligibility"),
                ("nara-legal-basis", "Resident Registration Act art. 29"),
            ],
            vec![],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(xroad_error(&r), "Client.InvalidClientIdentifier");
}

backends! {
    /// An agency admin creates a registry, publishes it as a data service,
    /// grants a client; the agency's system writes a record (checked against the
    /// schema); the client fetches it through the gateway. Bad publications
    /// change nothing.
    async fn agency_admins_publish_registries_and_services(backend: &str) {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let Some(app) = TestApp::start(backend).await else { return };
        let accounts = app.demo_accounts().await;
        let demo = app.demo_exchange(1).await;
        let admin = accounts.iter().find(|a| a.role == "agency_admin").unwrap();
        let agency = admin.agency.clone().unwrap();
        let s = app.sign_in(admin).await;
        let csrf = app.csrf_of(&s.cookie, "/admin/exchange").await;
        let services_before = app.store.data_services().await.unwrap().len();
        // Refused: a URL with credentials, a description that is not OpenAPI 3, a bad schema.
        let r = post_form(
            &app,
            "/admin/exchange/services",
            Some(&s.cookie),
            &[
                ("csrf", &csrf),
                ("agency", &agency),
                ("subsystem", "cases"),
                ("service_code", "lookup"),
                ("version", "1"),
                ("title", "Lookup"),
                ("endpoint_kind", "url"),
                ("url", "http://user:pw@127.0.0.1:9/"),
                ("openapi", r#"{"swagger":"2.0"}"#),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = r.text().await.unwrap();
        assert!(
            body.contains("credentials") && body.contains("OpenAPI 3"),
            "{body}"
        );
        let r = post_form(
            &app,
            "/admin/exchange/registries",
            Some(&s.cookie),
            &[
                ("csrf", &csrf),
                ("agency", &agency),
                ("code", "permits"),
                ("title", "Permits"),
                ("fields", "holder strin"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            app.store.data_services().await.unwrap().len(),
            services_before
        );
        // Another agency's admin form is not found; no CSRF token, forbidden.
        let r = post_form(
            &app,
            "/admin/exchange/registries",
            Some(&s.cookie),
            &[
                ("csrf", &csrf),
                ("agency", "KR/GOV/MOIS"),
                ("code", "x"),
                ("title", "X"),
                ("fields", "a string"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = post_form(
            &app,
            "/admin/exchange/registries",
            Some(&s.cookie),
            &[
                ("agency", &agency),
                ("code", "x"),
                ("title", "X"),
                ("fields", "a string"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);

        // A registry, published as a personal-data service, granted to Seoul.
        let r = post_form(
            &app,
            "/admin/exchange/registries",
            Some(&s.cookie),
            &[
                ("csrf", &csrf),
                ("agency", &agency),
                ("code", "permits"),
                ("title", "Firearm permits"),
                ("fields", "holder string\nvalid_until string\ncount integer"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = post_form(
            &app,
            "/admin/exchange/services",
            Some(&s.cookie),
            &[
                ("csrf", &csrf),
                ("agency", &agency),
                ("subsystem", "permit-registry"),
                ("service_code", "permits"),
                ("version", "2"),
                ("title", "Firearm permits"),
                ("personal", "1"),
                ("purpose", "public-safety"),
                ("purpose", "benefit-eligibility"),
                ("legal_bases", "Firearms Act art. 12"),
                ("endpoint_kind", "registry"),
                ("registry", "permits"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let service = format!("{agency}/permit-registry/permits");
        let published = app
            .store
            .data_services()
            .await
            .unwrap()
            .into_iter()
            .find(|x| x.id == service)
            .expect("published");
        assert_eq!(published.purposes, "public-safety benefit-eligibility");
        assert_eq!(published.personal, 1);
        let r = post_form(
            &app,
            "/admin/exchange",
            Some(&s.cookie),
            &[
                ("csrf", &csrf),
                ("agency", &agency),
                ("service", &service),
                ("client", SEOUL),
                ("fields", "holder valid_until"),
            ],
        )
        .await;
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "a personal-data right names its purposes"
        );
        for bad_basis in ["Firearms Act art. 99", ""] {
            let mut form = vec![
                ("csrf", csrf.as_str()),
                ("agency", agency.as_str()),
                ("service", service.as_str()),
                ("client", SEOUL),
                ("fields", "holder valid_until"),
                ("legal_bases", bad_basis),
            ];
            if !bad_basis.is_empty() {
                form.push(("purpose", "public-safety"));
            } else {
                form.push(("purpose", "tax-collection"));
            }
            let r = post_form(&app, "/admin/exchange", Some(&s.cookie), &form).await;
            assert_eq!(
                r.status(),
                StatusCode::BAD_REQUEST,
                "only what the service accepts: {bad_basis:?}"
            );
        }
        let r = post_form(
            &app,
            "/admin/exchange",
            Some(&s.cookie),
            &[
                ("csrf", &csrf),
                ("agency", &agency),
                ("service", &service),
                ("client", SEOUL),
                ("fields", "holder valid_until"),
                ("purpose", "public-safety"),
                ("legal_bases", "Firearms Act art. 12"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let page = r.text().await.unwrap();
        assert!(
            page.contains("Firearms Act art. 12"),
            "the right shows what it allows"
        );

        // The agency's own system writes a record: checked against the schema.
        let key = ed25519_dalek::SigningKey::from_bytes(&[11u8; 32]);
        let own = nara_server::identity::machine::register(
            &app.store,
            &agency.parse().unwrap(),
            "permit-registry",
            &URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            "test",
        )
        .await
        .unwrap();
        let writer = nara_server::exchange::gateway::Consumer {
            key_id: own.key_id,
            key,
            client: format!("{agency}/permit-registry"),
            ..app.consumer(&demo)
        };
        let r = writer
            .request(
                Method::PUT,
                "/api/v1/registries/permits/record",
                &[
                    ("nara-subject", MINJI),
                    ("content-type", "application/json"),
                ],
                br#"{"holder":"Kim Minji","count":"two"}"#.to_vec(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "count must be an integer"
        );
        let r = writer
            .request(
                Method::PUT,
                "/api/v1/registries/permits/record",
                &[
                    ("nara-subject", MINJI),
                    ("content-type", "application/json"),
                ],
                br#"{"holder":"Kim Minji","valid_until":"2028-01-31","count":2}"#.to_vec(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        // Seoul's system may not write the agency's registry.
        let r = app
            .consumer(&demo)
            .request(
                Method::PUT,
                "/api/v1/registries/permits/record",
                &[("nara-subject", MINJI)],
                br#"{"holder":"X"}"#.to_vec(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        // Seoul fetches it through the gateway: its minimal view, nothing else.
        app.wait_for_directory().await;
        let c = app.consumer(&demo);
        let r = c
            .request(
                Method::GET,
                &format!("/r1/{service}/record"),
                &[
                    ("nara-subject", MINJI),
                    ("nara-purpose", "public-safety"),
                    ("nara-legal-basis", "Firearms Act art. 12"),
                ],
                vec![],
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap(),
            serde_json::json!({"holder": "Kim Minji", "valid_until": "2028-01-31"})
        );
        // A person the registry does not know: the provider's 404, not an X-Road error.
        let r = c
            .request(
                Method::GET,
                &format!("/r1/{service}/record"),
                &[
                    ("nara-subject", "850315-1234567"),
                    ("nara-purpose", "public-safety"),
                    ("nara-legal-basis", "Firearms Act art. 12"),
                ],
                vec![],
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(r.headers().get("x-road-error").is_none());
        let page = app.get("/registries").await.text().await.unwrap();
        assert!(page.contains("Firearm permits") && page.contains(&service));
    }
}

/// The message log over years: closed months archived to signed files,
/// their digests in the ledger; only archived months past retention leave
/// the database; the files verify, and a changed one does not.
mod log_over_years {
    use super::*;
    use nara_server::exchange::archive;

    fn record(n: i64, started_at: i64, subject: &str) -> nara_store::exchange::ExchangeRecord {
        nara_store::exchange::ExchangeRecord {
            id: 0,
            xroad_id: format!("archive-test-{n}"),
            request_id: format!("r{n}"),
            client_id: "KR/GOV/MOHW/welfare".into(),
            service_id: "KR/GOV/MOIS/resident-registry/residents".into(),
            method: "GET".into(),
            path: "/record".into(),
            purpose: "benefit-eligibility".into(),
            consent_id: String::new(),
            legal_basis: "Resident Registration Act art. 29".into(),
            subject_hash: subject.into(),
            user_id: String::new(),
            issue: String::new(),
            request_hash: "rq".into(),
            response_hash: "rs".into(),
            client_signature: "cs".into(),
            gateway_signature: "gs".into(),
            peer_signature: String::new(),
            status: 200,
            outcome: "ok".into(),
            started_at,
            duration_us: 900,
        }
    }

    backends! {
        async fn closed_months_are_archived_signed_and_pruned_only_past_retention(backend: &str) {
            let Some(app) = TestApp::start(backend).await else { return };
            let day = 86_400_000i64;
            let now = nara_core::Timestamp::now().0;
            let old = archive::Month::of(now - 400 * day).unwrap();
            let recent = archive::Month::of(now - 40 * day).unwrap();
            let current = archive::Month::of(now).unwrap();
            let mut records = Vec::new();
            for n in 0..1_200 {
                let (month, subject) = match n % 3 {
                    0 => (&old, "subject-a"),
                    1 => (&recent, "subject-a"),
                    _ => (&current, "subject-b"),
                };
                records.push(record(n, month.starts_at + n * 1_000, subject));
            }
            app.store.append_exchanges(&records).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let keys = nara_server::ledger::LedgerKeys::ephemeral("archive.test/ledger").unwrap();

            // Nothing leaves the log unarchived.
            let refused = app.store.prune_archived_exchanges(&old.period, 100, "test").await;
            assert!(matches!(refused, Err(nara_store::StoreError::Conflict(_))), "{refused:?}");

            let made = archive::archive_closed_months(&app.store, dir.path(), &keys, now, "test").await.unwrap();
            let periods: Vec<&str> = made.iter().map(|a| a.period.as_str()).collect();
            assert_eq!(periods, vec![old.period.as_str(), recent.period.as_str()], "the current month is not closed");
            assert!(made.iter().all(|a| a.exchanges == 400), "{made:?}");
            // Again: nothing new.
            assert!(archive::archive_closed_months(&app.store, dir.path(), &keys, now, "test").await.unwrap().is_empty());
            let digest = made[0].sha256.clone();
            assert!(app.has_entry(200, |e| e.kind == "exchange.archived" && e.subjects.contains(&format!("exchange_archive:{}", old.period))).await);

            // Each file verifies against its signed note and the ledger key.
            let trusted = [keys.signer.verifier()];
            for a in &made {
                let file = archive::archive_dir(dir.path()).join(&a.file);
                let checked = archive::verify_archive(&file, &trusted).unwrap();
                assert_eq!((checked.period.as_str(), checked.exchanges, checked.sha256.as_str()), (a.period.as_str(), 400, a.sha256.as_str()));
            }

            // A year's retention: the 400-day-old month goes, the 40-day-old stays.
            let pruned = archive::prune_past_retention(&app.store, 365, now, "test").await.unwrap();
            assert_eq!(pruned, vec![old.period.clone()]);
            let left = app.store.exchange_archives().await.unwrap();
            assert!(left.iter().find(|a| a.period == old.period).unwrap().pruned_at.is_some());
            assert!(left.iter().find(|a| a.period == recent.period).unwrap().pruned_at.is_none());
            assert_eq!(app.store.exchange_count().await.unwrap(), 800);
            // The citizen's history holds everything inside the retention period.
            let history = app.store.exchanges_of_subject("subject-a", 10_000).await.unwrap();
            assert_eq!(history.len(), 400);
            assert!(history.iter().all(|r| r.started_at >= recent.starts_at));
            assert!(app.has_entry(200, |e| e.kind == "exchange.pruned").await);
            assert!(archive::prune_past_retention(&app.store, 365, now, "test").await.unwrap().is_empty());

            // A changed file, or a note signed by another key, fails.
            let file = archive::archive_dir(dir.path()).join(&made[0].file);
            let mut bytes = std::fs::read(&file).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            std::fs::write(&file, &bytes).unwrap();
            let e = archive::verify_archive(&file, &trusted).unwrap_err().to_string();
            assert!(e.contains("was changed") && e.contains(&digest), "{e}");
            let stranger = nara_server::ledger::LedgerKeys::ephemeral("archive.test/ledger").unwrap();
            let other = archive::archive_dir(dir.path()).join(&made[1].file);
            assert!(archive::verify_archive(&other, &[stranger.signer.verifier()]).is_err());
        }
    }
}
