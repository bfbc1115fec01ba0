//! Hostile and malformed input: each class gets a clear 4xx problem (naming
//! the field where there is one) and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backends;
use crate::common::{TOKEN, TestApp};

fn system() -> Value {
    json!({"agency": "KR/GOV/MOIS", "code": "NEW-DB-01", "name": "New database", "kind": "database", "grade": 2,
           "environment": "production", "endpoint_url": "https://db.mois.go.kr/", "status": "operational"})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

async fn expect_problem(r: reqwest::Response, status: StatusCode, field: Option<&str>) {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], status.as_u16());
    assert!(p["title"].is_string() && p["type"].is_string());
    if let Some(field) = field {
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "expected field {field} in {p}");
    }
}

backends! {
    async fn bad_bodies_change_nothing(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let before = app.snapshot().await;
        let raw = |body: &'static str| app.client.post(app.url("/api/v1/systems")).bearer_auth(TOKEN)
            .header("content-type", "application/json").body(body).send();

        // Malformed JSON, trailing garbage, an empty body.
        expect_problem(raw("{\"agency\": ").await.unwrap(), StatusCode::BAD_REQUEST, None).await;
        expect_problem(raw("{} {}").await.unwrap(), StatusCode::BAD_REQUEST, None).await;
        expect_problem(raw("").await.unwrap(), StatusCode::BAD_REQUEST, None).await;
        // Wrong types.
        let r = app.send_json(Method::POST, "/api/v1/systems", &with(system(), "grade", json!("high"))).await;
        expect_problem(r, StatusCode::BAD_REQUEST, Some("grade")).await;
        let r = app.send_json(Method::POST, "/api/v1/systems", &with(system(), "name", json!(42))).await;
        expect_problem(r, StatusCode::BAD_REQUEST, Some("name")).await;
        // Out-of-range and unknown enum values.
        let r = app.send_json(Method::POST, "/api/v1/systems", &with(system(), "grade", json!(9))).await;
        expect_problem(r, StatusCode::BAD_REQUEST, Some("grade")).await;
        let r = app.send_json(Method::POST, "/api/v1/systems", &with(system(), "kind", json!("mainframe"))).await;
        expect_problem(r, StatusCode::BAD_REQUEST, Some("kind")).await;
        // Unknown fields.
        let r = app.send_json(Method::POST, "/api/v1/systems", &with(system(), "owner", json!("me"))).await;
        expect_problem(r, StatusCode::BAD_REQUEST, None).await;
        // Invalid identifiers and values that parse but break the rules.
        let r = app.send_json(Method::POST, "/api/v1/systems", &with(system(), "agency", json!("KR//MOIS"))).await;
        expect_problem(r, StatusCode::BAD_REQUEST, Some("agency")).await;
        let r = app.send_json(Method::POST, "/api/v1/systems", &with(system(), "agency", json!("KR/GOV/NOBODY"))).await;
        expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, Some("agency")).await;
        let r = app.send_json(Method::POST, "/api/v1/systems", &with(system(), "endpoint_url", json!("javascript:alert(1)"))).await;
        expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, Some("endpoint_url")).await;
        let r = app.send_json(Method::POST, "/api/v1/systems", &with(system(), "code", json!("'; DROP TABLE systems; --"))).await;
        expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, Some("code")).await;
        let r = app.send_json(Method::POST, "/api/v1/agencies", &json!({"id": "KR/GOV/X", "name": {"en": "", "es": "x", "ko": "x"}, "kind": "ministry"})).await;
        expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, Some("name.en")).await;
        let r = app.send_json(Method::POST, "/api/v1/agencies", &json!({"id": "KR/GOV/X", "name": {"en": "x", "es": "x"}, "kind": "ministry"})).await;
        expect_problem(r, StatusCode::BAD_REQUEST, Some("name")).await;
        // Not JSON at all.
        let r = app.client.post(app.url("/api/v1/systems")).bearer_auth(TOKEN).body(system().to_string()).send().await.unwrap();
        expect_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, None).await;
        // Oversize body (the test server allows 64 KiB).
        let huge = with(system(), "name", json!("x".repeat(200_000)));
        let r = app.send_json(Method::POST, "/api/v1/systems", &huge).await;
        expect_problem(r, StatusCode::PAYLOAD_TOO_LARGE, None).await;
        // Bad path ids.
        for path in ["/api/v1/systems/abc", "/api/v1/systems/-1", "/api/v1/systems/99999999999999999999999"] {
            expect_problem(app.send_json(Method::PUT, path, &system()).await, StatusCode::BAD_REQUEST, Some("id")).await;
        }
        expect_problem(app.get("/api/v1/agencies/KR/GOV").await, StatusCode::BAD_REQUEST, Some("id")).await;

        assert_eq!(app.snapshot().await, before, "no bad request changed anything");
    }

    async fn bad_queries_are_refused(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        for (path, field) in [
            ("/api/v1/services?page=0", "page"),
            ("/api/v1/services?per_page=1000", "per_page"),
            ("/api/v1/services?page=abc", "page"),
            ("/api/v1/services?page=-3", "page"),
            ("/api/v1/services?audience=aliens", "audience"),
            ("/api/v1/services?agency=not-an-id", "agency"),
            ("/api/v1/agencies?kind=empire", "kind"),
        ] {
            let r = app.get(path).await;
            assert!(r.status().is_client_error(), "{path} gave {}", r.status());
            expect_problem(r, if path.contains("page=0") || path.contains("per_page") { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST }, Some(field)).await;
        }
        let r = app.get_as_operator("/api/v1/systems?grade=5").await;
        expect_problem(r, StatusCode::BAD_REQUEST, Some("grade")).await;
        let long = format!("/api/v1/services?q={}", "a".repeat(201));
        expect_problem(app.get(&long).await, StatusCode::BAD_REQUEST, Some("q")).await;
        // SQL metacharacters in a search are just text.
        let before = app.snapshot().await;
        for q in ["%27%20OR%20%271%27%3D%271", "%25", "%3B%20DROP%20TABLE%20services%3B--", "%5C"] {
            let r = app.get(&format!("/api/v1/services?q={q}")).await;
            assert_eq!(r.status(), StatusCode::OK);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["total"], 0, "q={q}");
        }
        assert_eq!(app.snapshot().await, before);
        // An unknown API route is a problem, not a page.
        expect_problem(app.get("/api/v1/nothing-here").await, StatusCode::NOT_FOUND, None).await;
    }
}
