//! The pages: languages, catalogue, sign-in, forgery protection.

use reqwest::StatusCode;

use crate::common::TestApp;

async fn page(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = app.client.get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let h = r.headers().clone();
    (status, h, r.text().await.unwrap())
}

#[tokio::test]
async fn pages_speak_three_languages() {
    let app = TestApp::start("sqlite").await.unwrap();
    for (lang, heading, agency) in [
        (
            "en",
            "Service catalogue",
            "Ministry of the Interior and Safety",
        ),
        (
            "es",
            "Catálogo de servicios",
            "Ministerio del Interior y Seguridad",
        ),
        ("ko", "서비스 목록", "행정안전부"),
    ] {
        let (status, headers, html) = page(&app, &format!("/services?lang={lang}"), &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(&format!("<html lang=\"{lang}\">")));
        assert!(html.contains(heading), "{lang}: {heading}");
        assert!(html.contains(agency), "{lang}: {agency}");
        let cookie = headers["set-cookie"].to_str().unwrap();
        assert!(
            cookie.starts_with(&format!("nara_lang={lang};")) && cookie.contains("SameSite=Lax")
        );
        // The choice is remembered by the cookie.
        let (_, _, home) = page(&app, "/", &[("cookie", &format!("nara_lang={lang}"))]).await;
        assert!(home.contains(&format!("<html lang=\"{lang}\">")));
    }
    // Accept-Language is honoured by quality; the cookie wins over it.
    let (_, _, html) = page(
        &app,
        "/",
        &[("accept-language", "fr;q=1, ko;q=0.8, es;q=0.5")],
    )
    .await;
    assert!(html.contains("<html lang=\"ko\">"));
    let (_, _, html) = page(
        &app,
        "/",
        &[("accept-language", "ko"), ("cookie", "nara_lang=es")],
    )
    .await;
    assert!(html.contains("<html lang=\"es\">"));
    // An unknown language code is a clear error, not a silent fallback.
    let (status, _, html) = page(&app, "/services?lang=zz", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("The address has a value we cannot use."));
}

#[tokio::test]
async fn catalogue_search_filters_and_pages() {
    let app = TestApp::start("sqlite").await.unwrap();
    let (status, _, html) = page(&app, "/services?q=certificate&agency=KR/GOV/NTS", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Tax payment certificate"));
    assert!(!html.contains("Resident registration certificate"));
    assert!(html.contains("<option value=\"KR/GOV/NTS\" selected>"));
    let (_, _, html) = page(&app, "/services?per_page=5&page=2", &[]).await;
    assert!(html.contains("rel=\"prev\"") && html.contains("rel=\"next\""));
    assert!(html.contains("Page 2 of 6"));
    // A bad filter value re-renders the form with the error beside the field.
    let (status, _, html) = page(&app, "/services?audience=aliens", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("id=\"audience-error\""));
    assert!(html.contains("aria-describedby=\"audience-error\""));

    let (status, _, html) = page(&app, "/services/1?lang=ko", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("주민등록표 등본 발급")
            && html.contains("Resident Registration Act, Article 29")
    );
    let (status, _, html) = page(&app, "/agencies/KR/GOV/MOIS?lang=es", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Ministerio del Interior y Seguridad")
            && html.contains("Certificado de empadronamiento")
    );
    assert_eq!(
        page(&app, "/services/424242", &[]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        page(&app, "/services/abc", &[]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        page(&app, "/agencies/nope", &[]).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _, html) = page(&app, "/no/such/page", &[("accept-language", "es")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("No encontramos esta página."));
}

#[tokio::test]
async fn the_inventory_is_for_signed_in_staff() {
    let app = TestApp::start("sqlite").await.unwrap();
    let (status, headers, _) = page(&app, "/systems?grade=1", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/sign-in?next=%2Fsystems%3Fgrade%3D1");

    let accounts = app.demo_accounts().await;
    let operator = accounts.iter().find(|a| a.role == "operator").unwrap();
    let wrong = app
        .client
        .post(app.url("/sign-in"))
        .form(&[
            ("username", "operator"),
            ("password", "guess-guess-guess"),
            ("next", "/systems"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let html = wrong.text().await.unwrap();
    assert!(html.contains("aria-invalid=\"true\"") && html.contains("id=\"signin-error\""));

    let session = app.sign_in(operator).await;
    let (status, _, html) = page(&app, "/systems?grade=1", &[("cookie", &session.cookie)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<table>") && html.contains("<svg role=\"img\""));
    assert!(html.contains("<option value=\"1\" selected>"));
    let (status, _, html) = page(&app, "/systems?grade=9", &[("cookie", &session.cookie)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("id=\"grade-error\""));

    // A text search counts ten pages past the one shown (the demo's 200
    // systems and 5 more all hold "kr/"); beyond, the count says "more than"
    // and the pager offers the next page without a last one.
    for k in 0..5 {
        let mut extra = nara_core::seed::demo().unwrap().systems[0].clone();
        extra.code = format!("EXTRA-{k}");
        app.store.create_system(&extra, "test").await.unwrap();
    }
    let cookie = [("cookie", session.cookie.as_str())];
    let (_, _, html) = page(&app, "/systems?q=kr%2F&per_page=1&page=2", &cookie).await;
    assert!(html.contains("More than 202 systems found"), "{html}");
    assert!(html.contains("Page 2</li>") && html.contains("rel=\"next\""));
    let (_, _, html) = page(
        &app,
        "/systems?q=kr%2F&per_page=100&page=2&lang=es",
        &cookie,
    )
    .await;
    assert!(html.contains("205 sistemas encontrados") && html.contains("Página 2 de 3"));
    let body: serde_json::Value = app
        .get_in(&session, "/api/v1/systems?q=kr%2F&per_page=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&body["total"], &body["total_relation"]),
        (&serde_json::json!(201), &serde_json::json!("gte"))
    );
    // A forged session id is no session.
    let (status, _, _) = page(&app, "/systems", &[("cookie", "nara_session=forged")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // A citizen is signed in but may not see the inventory.
    let citizen = accounts.iter().find(|a| a.role == "citizen").unwrap();
    let c = app.sign_in(citizen).await;
    let (status, _, _) = page(&app, "/systems", &[("cookie", &c.cookie)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn cross_site_form_posts_are_refused() {
    let app = TestApp::start("sqlite").await.unwrap();
    let accounts = app.demo_accounts().await;
    let citizen = accounts.iter().find(|a| a.role == "citizen").unwrap();
    let form = [
        ("username", citizen.username.as_str()),
        ("password", citizen.password.as_str()),
    ];
    let r = app
        .client
        .post(app.url("/sign-in"))
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());
    let r = app
        .client
        .post(app.url("/sign-in"))
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .client
        .post(app.url("/sign-in"))
        .header("origin", format!("http://{}", app.addr))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_ledger_page_shows_the_checkpoint_in_three_languages() {
    let app = TestApp::start("sqlite").await.unwrap();
    for _ in 0..100 {
        let note = app.get("/ledger/checkpoint").await.text().await.unwrap();
        if note.lines().nth(1) == Some("240") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (lang, heading) in [
        ("en", "Public ledger"),
        ("es", "Registro público"),
        ("ko", "공개 원장"),
    ] {
        let (status, _, html) = page(&app, &format!("/ledger?lang={lang}"), &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(heading));
        assert!(html.contains("catalogue.system.created"));
        assert!(html.contains("nara ledger verify --url"));
        assert!(
            html.contains("— nara.localhost/kr/ledger "),
            "the signed note is shown"
        );
    }
}
