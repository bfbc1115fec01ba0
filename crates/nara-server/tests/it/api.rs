//! The JSON API, the OpenAPI document and the operations endpoints.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backends;
use crate::common::{TOKEN, TestApp};

fn new_agency() -> Value {
    json!({"id": "KR/GOV/MOT", "name": {"en": "Ministry of Tests", "es": "Ministerio de Pruebas", "ko": "시험부"}, "kind": "ministry"})
}

fn new_system() -> Value {
    json!({"agency": "KR/GOV/MOIS", "code": "NEW-DB-01", "name": "New database", "kind": "database", "grade": 2,
           "environment": "production", "endpoint_url": "https://db.mois.go.kr/", "status": "operational"})
}

fn new_service() -> Value {
    json!({"agency": "KR/GOV/MOIS", "code": "dog-licence",
           "name": {"en": "Dog licence", "es": "Licencia canina", "ko": "반려견 등록"},
           "description": {"en": "Register a dog.", "es": "Registre un perro.", "ko": "반려견을 등록합니다."},
           "audience": "citizen", "legal_basis": "Animal Protection Act, Article 15", "channel": "online", "status": "active"})
}

backends! {
    async fn catalogue_reads_are_public_and_paged(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let r = app.get("/api/v1/agencies?per_page=3&page=2").await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!((&body["total"], &body["total_relation"]), (&json!(10), &json!("eq")));
        assert_eq!(body["items"].as_array().unwrap().len(), 3);
        assert_eq!(body["page"], 2);

        let body: Value = app.get("/api/v1/services?agency=KR/GOV/NTS&q=certificate").await.json().await.unwrap();
        assert!(body["total"].as_u64().unwrap() >= 2);
        for s in body["items"].as_array().unwrap() {
            assert_eq!(s["agency"], "KR/GOV/NTS");
        }
        let one: Value = app.get("/api/v1/agencies/KR/GOV/MOIS").await.json().await.unwrap();
        assert_eq!(one["name"]["ko"], "행정안전부");
        let encoded = app.get("/api/v1/agencies/KR%2FGOV%2FMOIS").await;
        assert_eq!(encoded.status(), StatusCode::OK);
        let svc = app.get("/api/v1/services/1").await;
        assert_eq!(svc.status(), StatusCode::OK);
        assert_eq!(app.get("/api/v1/services/99999").await.status(), StatusCode::NOT_FOUND);
    }

    async fn the_inventory_and_every_write_need_the_operator(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let before = app.snapshot().await;
        assert_eq!(app.get("/api/v1/systems").await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.get("/api/v1/systems/1").await.status(), StatusCode::UNAUTHORIZED);
        let wrong = app.client.get(app.url("/api/v1/systems")).bearer_auth("not-the-token").send().await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.headers()["content-type"], "application/problem+json");
        for (method, path, body) in [
            (Method::POST, "/api/v1/agencies", new_agency()),
            (Method::PUT, "/api/v1/agencies/KR/GOV/MOIS", json!({"name": {"en": "x", "es": "x", "ko": "x"}, "kind": "ministry"})),
            (Method::POST, "/api/v1/systems", new_system()),
            (Method::PUT, "/api/v1/systems/1", new_system()),
            (Method::POST, "/api/v1/services", new_service()),
            (Method::PUT, "/api/v1/services/1", new_service()),
        ] {
            let anonymous = app.client.request(method.clone(), app.url(path)).json(&body).send().await.unwrap();
            assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{method} {path} without a token");
            let forged = app.client.request(method.clone(), app.url(path)).bearer_auth(format!("{TOKEN}x")).json(&body).send().await.unwrap();
            assert_eq!(forged.status(), StatusCode::UNAUTHORIZED, "{method} {path} with a wrong token");
        }
        assert_eq!(app.snapshot().await, before, "refused writes changed nothing");
        assert_eq!(app.get_as_operator("/api/v1/systems?grade=1").await.status(), StatusCode::OK);
    }

    async fn operators_create_and_update(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let r = app.send_json(Method::POST, "/api/v1/agencies", &new_agency()).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["location"], "/api/v1/agencies/KR/GOV/MOT");
        let again = app.send_json(Method::POST, "/api/v1/agencies", &new_agency()).await;
        assert_eq!(again.status(), StatusCode::CONFLICT);

        let r = app.send_json(Method::POST, "/api/v1/systems", &new_system()).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let created: Value = r.json().await.unwrap();
        let id = created["id"].as_i64().unwrap();
        let mut changed = new_system();
        changed["grade"] = json!(1);
        changed["status"] = json!("maintenance");
        let r = app.send_json(Method::PUT, &format!("/api/v1/systems/{id}"), &changed).await;
        assert_eq!(r.status(), StatusCode::OK);
        let got: Value = app.get_as_operator(&format!("/api/v1/systems/{id}")).await.json().await.unwrap();
        assert_eq!(got["grade"], 1);
        assert_eq!(got["status"], "maintenance");
        assert!(got["created_at"].as_str().unwrap().ends_with('Z'));

        let r = app.send_json(Method::POST, "/api/v1/services", &new_service()).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let sid = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        let mut svc = new_service();
        svc["name"]["ko"] = json!("반려동물 등록");
        assert_eq!(app.send_json(Method::PUT, &format!("/api/v1/services/{sid}"), &svc).await.status(), StatusCode::OK);
        let got: Value = app.get(&format!("/api/v1/services/{sid}")).await.json().await.unwrap();
        assert_eq!(got["name"]["ko"], "반려동물 등록");

        let r = app.send_json(Method::PUT, "/api/v1/agencies/KR/GOV/MOT",
            &json!({"name": {"en": "Ministry of Trials", "es": "Ministerio de Ensayos", "ko": "시행부"}, "kind": "public_body"})).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(app.send_json(Method::PUT, "/api/v1/systems/424242", &new_system()).await.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn openapi_documents_every_api_route() {
    let Some(app) = TestApp::start("sqlite").await else {
        return;
    };
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/agencies", &["get", "post"][..]),
        ("/api/v1/agencies/{id}", &["get", "put"]),
        ("/api/v1/systems", &["get", "post"]),
        ("/api/v1/systems/{id}", &["get", "put"]),
        ("/api/v1/services", &["get", "post"]),
        ("/api/v1/services/{id}", &["get", "put"]),
        ("/api/v1/security/events", &["get"]),
        ("/api/v1/machine/whoami", &["get"]),
    ] {
        for m in methods {
            assert!(paths[path][m].is_object(), "{m} {path} is not documented");
        }
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_token"].is_object());
    // Routes open to anyone say they may be limited per address, with Retry-After;
    // routes behind a credential do not.
    let limited = &paths["/api/v1/services"]["get"]["responses"]["429"];
    assert_eq!(
        limited["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert!(limited["headers"]["Retry-After"].is_object(), "{limited}");
    assert!(paths["/api/v1/systems"]["post"]["responses"]["429"].is_null());
}

#[tokio::test]
async fn operations_endpoints() {
    let Some(app) = TestApp::start("sqlite").await else {
        return;
    };
    assert_eq!(app.get("/healthz").await.text().await.unwrap(), "ok");
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    app.get("/api/v1/services?q=x").await;
    app.get("/api/v1/services/1").await;
    // Metrics are for operators and analysts (a scoped token, as Prometheus sends).
    assert_eq!(app.get("/metrics").await.status(), StatusCode::UNAUTHORIZED);
    let r = app.get_as_operator("/metrics").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains(
            r#"nara_http_requests_total{method="GET",route="/api/v1/services/{id}",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("nara_http_request_duration_seconds_bucket"));
    assert!(text.contains("nara_db_pool_max_connections 8"));
    assert!(text.contains("nara_ledger_pending_entries"));
    assert!(text.contains("nara_ledger_checkpoint_age_seconds"));
    let headers = app.get("/").await.headers().clone();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_and_stops() {
    let (store, _dir) = crate::common::fresh_store("sqlite").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(nara_server::serve(
        listener,
        nara_server::AppState::new(
            store,
            Default::default(),
            nara_server::ledger::LedgerKeys::ephemeral("test/ledger").unwrap(),
            nara_server::identity::auth::IdentityKeys::ephemeral(),
        ),
        async {
            let _ = rx.await;
        },
    ));
    assert_eq!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .is_err()
    );
}
