//! Identity and access over real HTTP: sign-in, throttling, sessions, the
//! second factor, forms' anti-forgery tokens, sign-up validation, API token
//! scopes, agency administration and the OpenID Connect provider's refusals.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Digest;

use crate::backends;
use crate::common::{Session, TOKEN, TestApp, post_form, session_cookie, totp_now};

fn find<'a>(
    accounts: &'a [nara_server::demo::DemoAccount],
    role: &str,
) -> &'a nara_server::demo::DemoAccount {
    accounts.iter().find(|a| a.role == role).unwrap()
}

async fn status_with(app: &TestApp, path: &str, cookie: &str) -> StatusCode {
    app.client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

backends! {
    async fn failed_sign_ins_back_off_and_are_recorded(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let accounts = app.demo_accounts().await;
        let citizen = find(&accounts, "citizen");
        for _ in 0..5 {
            let r = post_form(&app, "/sign-in", None, &[("username", &citizen.username), ("password", "wrong-password-123")]).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert!(session_cookie(&r).is_none());
        }
        // The sixth failure locks the account; even the right password now waits.
        let r = post_form(&app, "/sign-in", None, &[("username", &citizen.username), ("password", "wrong-password-123")]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = post_form(&app, "/sign-in", None, &[("username", &citizen.username), ("password", &citizen.password)]).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() > 0);
        assert!(session_cookie(&r).is_none());
        let failed = app.store.security_events(Some("login.failed"), 100).await.unwrap();
        assert_eq!(failed.len(), 6);
        assert!(failed.iter().all(|e| e.username == citizen.username && e.address == "127.0.0.1"));
        assert_eq!(app.store.security_events(Some("login.locked"), 100).await.unwrap().len(), 1);
        assert_eq!(app.store.security_events(Some("login.throttled"), 100).await.unwrap().len(), 1);
        // Another account is not affected.
        let other = accounts.iter().filter(|a| a.role == "citizen").nth(1).unwrap();
        let r = post_form(&app, "/sign-in", None, &[("username", &other.username), ("password", &other.password)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }

    async fn staff_need_the_second_factor_once_per_code(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let accounts = app.demo_accounts().await;
        let official = find(&accounts, "official");
        let r = post_form(&app, "/sign-in", None, &[("username", &official.username), ("password", &official.password), ("next", "/account")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/sign-in/second-factor?next=%2Faccount");
        let pending = session_cookie(&r).unwrap();
        // Half signed in is not signed in.
        let r = app.client.get(app.url("/account")).header("cookie", &pending).send().await.unwrap();
        assert_eq!(r.headers()["location"], "/sign-in/second-factor?next=%2Faccount");
        let csrf = app.csrf_of(&pending, "/sign-in/second-factor").await;
        let wrong = post_form(&app, "/sign-in/second-factor", Some(&pending), &[("code", "000000"), ("csrf", &csrf)]).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        // Without the form's anti-forgery token the code is not even tried.
        let code = totp_now(official.totp_secret.as_ref().unwrap(), &official.username);
        let forged = post_form(&app, "/sign-in/second-factor", Some(&pending), &[("code", &code), ("csrf", "forged")]).await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        let ok = post_form(&app, "/sign-in/second-factor", Some(&pending), &[("code", &code), ("csrf", &csrf)]).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        let full = session_cookie(&ok).unwrap();
        assert_ne!(full, pending, "the session id changes when the second factor is proven");
        assert_eq!(status_with(&app, "/account", &full).await, StatusCode::OK);
        assert_ne!(status_with(&app, "/account", &pending).await, StatusCode::OK, "the pending id is gone");
        // The same code cannot be used again (RFC 6238 §5.2).
        let r = post_form(&app, "/sign-in", None, &[("username", &official.username), ("password", &official.password)]).await;
        let pending2 = session_cookie(&r).unwrap();
        let csrf2 = app.csrf_of(&pending2, "/sign-in/second-factor").await;
        let replay = post_form(&app, "/sign-in/second-factor", Some(&pending2), &[("code", &code), ("csrf", &csrf2)]).await;
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.store.security_events(Some("second_factor.failed"), 10).await.unwrap().len(), 2);
    }

    async fn sessions_rotate_and_end_everywhere(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let accounts = app.demo_accounts().await;
        let citizen = find(&accounts, "citizen");
        // Session fixation: a planted id is never adopted; sign-in issues a new one.
        let planted = "nara_session=planted-by-an-attacker";
        let r = app.client.post(app.url("/sign-in")).header("cookie", planted)
            .form(&[("username", citizen.username.as_str()), ("password", citizen.password.as_str())]).send().await.unwrap();
        let issued = session_cookie(&r).unwrap();
        assert_ne!(issued, planted);
        assert_ne!(status_with(&app, "/account", planted).await, StatusCode::OK);
        let cookie_header = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie_header.contains("HttpOnly") && cookie_header.contains("SameSite=Lax") && cookie_header.contains("Path=/"));
        let a = Session { cookie: issued.clone(), csrf: app.csrf_of(&issued, "/account").await };
        let b = app.sign_in(citizen).await;
        assert_eq!(status_with(&app, "/account", &a.cookie).await, StatusCode::OK);
        // The account page lists both sessions.
        let html = app.client.get(app.url("/account")).header("cookie", &a.cookie).send().await.unwrap().text().await.unwrap();
        assert_eq!(html.matches("<td>127.0.0.1</td>").count(), 2);
        // Ending sessions needs the anti-forgery token …
        let forged = post_form(&app, "/account/sessions/end", Some(&b.cookie), &[("csrf", &a.csrf)]).await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "another session's token is not this session's");
        assert_eq!(status_with(&app, "/account", &a.cookie).await, StatusCode::OK);
        // … and then ends every one of them.
        let r = post_form(&app, "/account/sessions/end", Some(&b.cookie), &[("csrf", &b.csrf)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_ne!(status_with(&app, "/account", &a.cookie).await, StatusCode::OK);
        assert_ne!(status_with(&app, "/account", &b.cookie).await, StatusCode::OK);
        // Off-site `next` is refused.
        let r = post_form(&app, "/sign-in", None, &[("username", &citizen.username), ("password", &citizen.password), ("next", "//evil.example/")]).await;
        assert_eq!(r.headers()["location"], "/account");
    }

    async fn agency_admins_manage_only_their_agency(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let accounts = app.demo_accounts().await;
        let admin_a = find(&accounts, "agency_admin");
        let a = app.sign_in(admin_a).await;
        let agency_a = admin_a.agency.clone().unwrap();
        let agency_b = accounts.iter().find(|x| x.role == "agency_admin" && x.agency != admin_a.agency).unwrap().agency.clone().unwrap();
        assert_eq!(status_with(&app, &format!("/admin/officials?agency={agency_a}"), &a.cookie).await, StatusCode::OK);
        assert_eq!(status_with(&app, &format!("/admin/officials?agency={agency_b}"), &a.cookie).await, StatusCode::NOT_FOUND);
        // Every agency-admin page and form is narrowed the same way (AdminAgency, AdminForm):
        // another agency is not found, whatever else the form says.
        for page in ["/admin/officials", "/admin/apps", "/admin/machine-clients", "/admin/exchange"] {
            let other = format!("{page}?agency={agency_b}");
            assert_eq!(status_with(&app, &other, &a.cookie).await, StatusCode::NOT_FOUND, "{other}");
            let own = format!("{page}?agency={agency_a}");
            assert_eq!(status_with(&app, &own, &a.cookie).await, StatusCode::OK, "{own}");
        }
        for form in [
            "/admin/officials", "/admin/roles", "/admin/apps", "/admin/machine-clients",
            "/admin/machine-clients/revoke", "/admin/exchange", "/admin/exchange/revoke",
            "/admin/exchange/services", "/admin/exchange/registries",
        ] {
            let r = post_form(&app, form, Some(&a.cookie), &[("csrf", &a.csrf), ("agency", &agency_b)]).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{form} for another agency");
        }
        let official_b = app.store.account_by_username("official.b").await.unwrap().unwrap();
        let r = post_form(&app, "/admin/roles", Some(&a.cookie), &[("csrf", &a.csrf), ("agency", &agency_b), ("account_id", &official_b.id.to_string()), ("role", "agency_admin"), ("action", "grant")]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // Not across agencies through its own page either.
        let r = post_form(&app, "/admin/roles", Some(&a.cookie), &[("csrf", &a.csrf), ("agency", &agency_a), ("account_id", &official_b.id.to_string()), ("role", "agency_admin"), ("action", "grant")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        // A citizen can never become staff.
        let citizen = app.store.account_by_username("minji").await.unwrap().unwrap();
        let r = post_form(&app, "/admin/roles", Some(&a.cookie), &[("csrf", &a.csrf), ("agency", &agency_a), ("account_id", &citizen.id.to_string()), ("role", "official"), ("action", "grant")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(app.store.grants(official_b.id).await.unwrap().iter().all(|g| g.role != nara_core::identity::Role::AgencyAdmin));
        // Granting a role in its own agency works and is a ledger entry.
        let official_a = app.store.account_by_username("official.a").await.unwrap().unwrap();
        let r = post_form(&app, "/admin/roles", Some(&a.cookie), &[("csrf", &a.csrf), ("agency", &agency_a), ("account_id", &official_a.id.to_string()), ("role", "service_designer"), ("action", "grant")]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(app.store.grants(official_a.id).await.unwrap().iter().any(|g| g.role == nara_core::identity::Role::ServiceDesigner));
        let actor = format!("account:{}", app.store.account_by_username(&admin_a.username).await.unwrap().unwrap().id);
        let mut recorded = false;
        for _ in 0..50 {
            let recent = app.store.recent_ledger_entries(5).await.unwrap();
            if recent.iter().any(|(_, e)| nara_ledger::entry::Entry::decode(e).is_ok_and(|e| e.kind == "identity.role.granted" && e.actor == actor)) {
                recorded = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(recorded, "the role grant is a ledger entry naming the admin as actor");
        // Without the anti-forgery token nothing changes.
        let r = post_form(&app, "/admin/roles", Some(&a.cookie), &[("agency", &agency_a), ("account_id", &official_a.id.to_string()), ("role", "service_designer"), ("action", "revoke")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(app.store.grants(official_a.id).await.unwrap().iter().any(|g| g.role == nara_core::identity::Role::ServiceDesigner));
    }
}

#[tokio::test]
async fn api_tokens_are_scoped_and_sessions_cannot_write() {
    let app = TestApp::start("sqlite").await.unwrap();
    let accounts = app.demo_accounts().await;
    let operator = app
        .store
        .account_by_username("operator")
        .await
        .unwrap()
        .unwrap();
    let read_only = nara_server::identity::auth::issue_api_token(
        &app.store,
        operator.id,
        "t",
        &["systems:read"],
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let agency = serde_json::json!({"id": "KR/GOV/TOKEN", "name": {"en": "T", "es": "T", "ko": "T"}, "kind": "ministry"});
    let before = app.snapshot().await;
    let post = |token: String| {
        let app = &app;
        let agency = agency.clone();
        async move {
            app.client
                .post(app.url("/api/v1/agencies"))
                .bearer_auth(token)
                .json(&agency)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(post(read_only.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(
        post(format!("{read_only}x")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(post("nara_at_".into()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post("not-a-token".into()).await, StatusCode::UNAUTHORIZED);
    // Expired and revoked tokens.
    let expired = nara_server::identity::auth::issue_api_token(
        &app.store,
        operator.id,
        "t",
        &["catalogue:write"],
        std::time::Duration::from_millis(1),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(post(expired).await, StatusCode::UNAUTHORIZED);
    let revoked = nara_server::identity::auth::issue_api_token(
        &app.store,
        operator.id,
        "t",
        &["catalogue:write"],
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let id = app.store.api_tokens_of(operator.id).await.unwrap()[0].id;
    assert!(app.store.revoke_api_token(operator.id, id).await.unwrap());
    assert_eq!(post(revoked).await, StatusCode::UNAUTHORIZED);
    // An operator's browser session may read the API but never write through it.
    let session = app.sign_in(find(&accounts, "operator")).await;
    let r = app
        .client
        .post(app.url("/api/v1/agencies"))
        .header("cookie", &session.cookie)
        .json(&agency)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .client
        .get(app.url("/api/v1/systems"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.snapshot().await, before, "nothing changed");
    assert_eq!(post(TOKEN.into()).await, StatusCode::CREATED);
}

#[tokio::test]
async fn sign_up_is_demo_only_and_refuses_bad_input() {
    let (store, dir) = crate::common::fresh_store("sqlite").await.unwrap();
    store
        .seed(&nara_core::seed::demo().unwrap(), &|_| {})
        .await
        .unwrap();
    let demo = TestApp::serve(
        store,
        nara_server::Config {
            demo: true,
            ..Default::default()
        },
        dir,
    )
    .await;
    let good = [
        ("username", "new.citizen"),
        ("display_name", "새 시민"),
        ("national_id", "010203-3456789"),
        ("password", "a long walk by the han river"),
    ];
    let with = |field: &str, value: &str| -> Vec<(String, String)> {
        good.iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    if *k == field {
                        value.to_owned()
                    } else {
                        v.to_string()
                    },
                )
            })
            .collect()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("username", "\u{0430}dmin".into(), "username-error"), // Cyrillic look-alike
        ("username", "a".repeat(300), "username-error"),       // overlong
        ("username", "x' OR '1'='1".into(), "username-error"), // injection
        (
            "display_name",
            "<script>alert(1)</script>\u{0007}".into(),
            "display_name-error",
        ),
        ("national_id", "991340-1234567".into(), "national_id-error"), // no 13th month
        (
            "national_id",
            "'; DROP TABLE accounts; --".into(),
            "national_id-error",
        ),
        ("password", "short".into(), "password-error"),
        ("password", "password123456".into(), "password-error"), // common
        ("password", "p".repeat(257), "password-error"),         // overlong
    ];
    for (field, value, error_id) in cases {
        let r = demo
            .client
            .post(demo.url("/sign-up"))
            .form(&with(field, &value))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{field}={value:?}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains(&format!("id=\"{error_id}\"")),
            "{field}: no error shown"
        );
        assert!(!html.contains("<script>alert"), "text is escaped");
    }
    assert!(
        demo.store
            .account_by_username("new.citizen")
            .await
            .unwrap()
            .is_none()
    );
    let r = demo
        .client
        .post(demo.url("/sign-up"))
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let account = demo
        .store
        .account_by_username("new.citizen")
        .await
        .unwrap()
        .unwrap();
    assert!(account.password_hash.starts_with("$argon2id$"));
    // The same person (same number) cannot register twice; full-width letters are the same username.
    let again = with("username", "ＮＥＷ.ＣＩＴＩＺＥＮ");
    let r = demo
        .client
        .post(demo.url("/sign-up"))
        .form(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Review finding 8: a registered number is never confirmed. The answer
    // is the same as a fresh sign-up's; nothing is created; the holder sees
    // the attempt among their security events.
    let other_name = with("username", "someone.else");
    let r = demo
        .client
        .post(demo.url("/sign-up"))
        .form(&other_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the same answer as a fresh sign-up"
    );
    assert_eq!(r.headers()["location"], "/sign-in?registered=1");
    assert!(r.headers().get("set-cookie").is_none());
    let fresh = with("username", "third.citizen");
    let fresh: Vec<(String, String)> = fresh
        .into_iter()
        .map(|(k, v)| {
            if k == "national_id" {
                (k, "020304-4567891".into())
            } else {
                (k, v)
            }
        })
        .collect();
    let r2 = demo
        .client
        .post(demo.url("/sign-up"))
        .form(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status(), r.status());
    assert_eq!(r2.headers()["location"], r.headers()["location"]);
    assert!(
        demo.store
            .account_by_username("third.citizen")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        demo.store
            .account_by_username("someone.else")
            .await
            .unwrap()
            .is_none()
    );
    let events = demo
        .store
        .security_events(Some("account.sign_up_refused"), 10)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.account_id == Some(account.id)),
        "recorded against the holder"
    );
    let page = demo
        .get("/sign-in?registered=1")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("If these details were new"));

    // Outside demo mode there is no sign-up at all.
    let prod = TestApp::start("sqlite").await.unwrap();
    assert_eq!(prod.get("/sign-up").await.status(), StatusCode::NOT_FOUND);
    let r = prod
        .client
        .post(prod.url("/sign-up"))
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        prod.store
            .account_by_username("new.citizen")
            .await
            .unwrap()
            .is_none()
    );
}

// ------------------------------------------------------------------ OIDC

struct Flow {
    verifier: String,
    challenge: String,
}

fn pkce() -> Flow {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    Flow {
        verifier,
        challenge,
    }
}

fn authorize_url(client_id: &str, redirect: &str, challenge: &str, method: &str) -> String {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-1")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", method)
        .finish();
    format!("/oidc/authorize?{q}")
}

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    let q = location.split_once('?').map(|x| x.1).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

#[tokio::test]
async fn the_provider_refuses_what_it_must() {
    let app = TestApp::start("sqlite").await.unwrap();
    let accounts = app.demo_accounts().await;
    let dir = app.demo_dir();
    let demo_app: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("demo-app.json")).unwrap()).unwrap();
    let (client_id, secret, redirect) = (
        demo_app["client_id"].as_str().unwrap(),
        demo_app["client_secret"].as_str().unwrap(),
        demo_app["redirect_uri"].as_str().unwrap(),
    );
    let s = app.sign_in(find(&accounts, "citizen")).await;
    let get = |path: String| {
        let app = &app;
        let cookie = s.cookie.clone();
        async move {
            app.client
                .get(app.url(&path))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    let flow = pkce();

    // Unknown client or unregistered redirect URI: a page, never a redirect (no open redirect).
    let r = get(authorize_url(
        "no-such-app",
        redirect,
        &flow.challenge,
        "S256",
    ))
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());
    for evil in [
        "https://evil.example/callback",
        "http://127.0.0.1:8090/callback/../x",
        "http://127.0.0.1:8090/callbackx",
        "http://127.0.0.1:8090/CALLBACK",
    ] {
        let r = get(authorize_url(client_id, evil, &flow.challenge, "S256")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{evil}");
        assert!(r.headers().get("location").is_none(), "{evil}");
    }
    // PKCE downgrade: plain, or no challenge at all, is refused (back to the app with an error).
    for (challenge, method) in [
        (flow.verifier.as_str(), "plain"),
        ("", "S256"),
        ("short", "S256"),
    ] {
        let r = get(authorize_url(client_id, redirect, challenge, method)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let q = query_of(r.headers()["location"].to_str().unwrap());
        assert_eq!(q["error"], "invalid_request", "{method} {challenge}");
        assert_eq!(q["state"], "st-1");
        assert!(!q.contains_key("code"));
    }
    // The consent screen; answering it without the anti-forgery token does nothing.
    let r = get(authorize_url(client_id, redirect, &flow.challenge, "S256")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:8090"),
        "{csp}"
    );
    let consent = |csrf: &str, challenge: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("client_id", client_id.to_owned()),
            ("redirect_uri", redirect.to_owned()),
            ("response_type", "code".into()),
            ("scope", "openid profile".into()),
            ("state", "st-1".into()),
            ("nonce", "n-1".into()),
            ("code_challenge", challenge.to_owned()),
            ("code_challenge_method", "S256".into()),
            ("decision", "allow".into()),
        ]
    };
    let r = app
        .client
        .post(app.url("/oidc/authorize"))
        .header("cookie", &s.cookie)
        .form(&consent("forged", &flow.challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .client
        .post(app.url("/oidc/authorize"))
        .header("cookie", &s.cookie)
        .form(&consent(&s.csrf, &flow.challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let q = query_of(r.headers()["location"].to_str().unwrap());
    let code = q["code"].clone();
    assert_eq!(q["iss"], format!("http://{}", app.addr));

    let token = |form: Vec<(&'static str, String)>, basic: Option<(&str, &str)>| {
        let app = &app;
        let basic = basic.map(|(a, b)| (a.to_owned(), b.to_owned()));
        async move {
            let mut r = app.client.post(app.url("/oidc/token")).form(&form);
            if let Some((id, secret)) = basic {
                r = r.basic_auth(id, Some(secret));
            }
            let r = r.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let grant = |verifier: &str| {
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", redirect.to_owned()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    // Wrong client secret.
    let (status, body) = token(grant(&flow.verifier), Some((client_id, "wrong"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    // Wrong verifier: refused, and the code is spent.
    let (status, body) = token(grant(&pkce().verifier), Some((client_id, secret))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _) = token(grant(&flow.verifier), Some((client_id, secret))).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a code works once, even after a failed attempt"
    );

    // A fresh code: redeemed once, then replayed — the replay also revokes the tokens it issued.
    let flow = pkce();
    let r = get(authorize_url(client_id, redirect, &flow.challenge, "S256")).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "consent given before: straight back to the app"
    );
    let code = query_of(r.headers()["location"].to_str().unwrap())["code"].clone();
    let grant = vec![
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", redirect),
        ("code_verifier", &flow.verifier),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect::<Vec<_>>();
    let (status, tokens) = token(grant.clone(), Some((client_id, secret))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let userinfo = |t: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/oidc/userinfo"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(userinfo(access.clone()).await, StatusCode::OK);
    let (status, body) = token(grant, Some((client_id, secret))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        userinfo(access).await,
        StatusCode::UNAUTHORIZED,
        "code replay revoked the tokens"
    );
    // The ID token is an EdDSA JWS whose key is in the JWKS.
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(
                tokens["id_token"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let jwks: Value = app.get("/oidc/jwks").await.json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    // Unsupported grants and malformed bodies get OAuth errors.
    let (status, body) = token(
        vec![("grant_type", "password".into())],
        Some((client_id, secret)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );

    // Review findings 6 and 9: "sign out everywhere" revokes what the
    // sessions gave apps; RFC 7009 wants `token`; RFC 6749 §5.1 wants Pragma;
    // RFC 9864's Ed25519 is advertised beside EdDSA.
    let flow = pkce();
    let r = get(authorize_url(client_id, redirect, &flow.challenge, "S256")).await;
    let code = query_of(r.headers()["location"].to_str().unwrap())["code"].clone();
    let grant = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", redirect.to_owned()),
        ("code_verifier", flow.verifier.clone()),
    ];
    let r = app
        .client
        .post(app.url("/oidc/token"))
        .form(&grant)
        .basic_auth(client_id, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let tokens: Value = r.json().await.unwrap();
    let (access, refresh) = (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    );
    // A code issued but not yet redeemed when the citizen signs out everywhere.
    let pending = pkce();
    let r = get(authorize_url(
        client_id,
        redirect,
        &pending.challenge,
        "S256",
    ))
    .await;
    let pending_code = query_of(r.headers()["location"].to_str().unwrap())["code"].clone();
    assert_eq!(userinfo(access.clone()).await, StatusCode::OK);
    let r = post_form(
        &app,
        "/account/sessions/end",
        Some(&s.cookie),
        &[("csrf", &s.csrf)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        userinfo(access).await,
        StatusCode::UNAUTHORIZED,
        "the access token is revoked"
    );
    let (status, body) = token(
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh),
        ],
        Some((client_id, secret)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "the refresh token is revoked"
    );
    let (status, _) = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", pending_code),
            ("redirect_uri", redirect.to_owned()),
            ("code_verifier", pending.verifier.clone()),
        ],
        Some((client_id, secret)),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an unredeemed code is spent"
    );
    let r = app
        .client
        .post(app.url("/oidc/revoke"))
        .basic_auth(client_id, Some(secret))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "RFC 7009: token is required"
    );
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let discovery: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    let algs = discovery["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.contains(&Value::from("Ed25519")) && algs.contains(&Value::from("EdDSA")));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::start("sqlite").await.unwrap();
    for path in [
        "/",
        "/sign-in",
        "/api/v1/agencies",
        "/oidc/jwks",
        "/no/such/page",
        "/account",
    ] {
        let r = app.get(path).await;
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline")
                && csp.contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
        assert!(
            !h.contains_key("strict-transport-security"),
            "no HSTS over plain http"
        );
    }
}

backends! {
    async fn signing_out_everywhere_reaches_every_node(backend: &str) {
        let Some((url, _dir)) = crate::common::fresh_database(backend).await else { return };
        let a = TestApp::serve(nara_store::Store::connect(&url).await.unwrap(), nara_server::Config::default(), None).await;
        let b = TestApp::serve(nara_store::Store::connect(&url).await.unwrap(), nara_server::Config::default(), None).await;
        a.store.seed(&nara_core::seed::demo().unwrap(), &|_| {}).await.unwrap();
        let accounts = a.demo_accounts().await;
        let citizen = find(&accounts, "citizen");
        let s = a.sign_in(citizen).await;
        // Node B knows the session (and caches it).
        assert_eq!(status_with(&b, "/account", &s.cookie).await, StatusCode::OK);
        assert_eq!(status_with(&b, "/account", &s.cookie).await, StatusCode::OK);
        let r = post_form(&a, "/account/sessions/end", Some(&s.cookie), &[("csrf", &s.csrf)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_ne!(status_with(&a, "/account", &s.cookie).await, StatusCode::OK, "at once on the node that ended it");
        let started = std::time::Instant::now();
        while status_with(&b, "/account", &s.cookie).await == StatusCode::OK {
            assert!(started.elapsed() < std::time::Duration::from_secs(3), "node B still honours the ended session");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        println!("the other node refused the ended session after {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn operators_make_and_revoke_tokens_on_their_account_page() {
    let app = TestApp::start("sqlite").await.unwrap();
    let accounts = app.demo_accounts().await;
    let s = app.sign_in(find(&accounts, "operator")).await;
    let make = |body: String| {
        let app = &app;
        let cookie = s.cookie.clone();
        async move {
            app.client
                .post(app.url("/account/tokens"))
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let csrf = s.csrf.clone();
    // Bad input: unknown scope, no scope, too long, no name, no anti-forgery token.
    for body in [
        format!("csrf={csrf}&name=ci&scope=everything&days=30"),
        format!("csrf={csrf}&name=ci&days=30"),
        format!("csrf={csrf}&name=ci&scope=systems%3Aread&days=91"),
        format!("csrf={csrf}&name=&scope=systems%3Aread&days=30"),
    ] {
        assert_eq!(
            make(body.clone()).await.status(),
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    assert_eq!(
        make("name=ci&scope=systems%3Aread&days=30".into())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let operator = app
        .store
        .account_by_username("operator")
        .await
        .unwrap()
        .unwrap();
    let before = app.store.api_tokens_of(operator.id).await.unwrap().len();
    let r = make(format!(
        "csrf={csrf}&name=ci&scope=systems%3Aread&scope=identity%3Aread&days=7"
    ))
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    let at = html.find("id=\"new-token\">").unwrap() + "id=\"new-token\">".len();
    let token = html[at..at + html[at..].find('<').unwrap()].to_owned();
    assert!(token.starts_with("nara_at_"));
    assert_eq!(
        app.store.api_tokens_of(operator.id).await.unwrap().len(),
        before + 1
    );
    // It reads the inventory, and cannot write.
    let read = app
        .client
        .get(app.url("/api/v1/systems"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let write = app
        .client
        .post(app.url("/api/v1/agencies"))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::FORBIDDEN);
    // Revoked from the page: refused at once.
    let id = app.store.api_tokens_of(operator.id).await.unwrap()[0]
        .id
        .to_string();
    let r = post_form(
        &app,
        "/account/tokens/revoke",
        Some(&s.cookie),
        &[("csrf", &s.csrf), ("id", &id)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let read = app
        .client
        .get(app.url("/api/v1/systems"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::UNAUTHORIZED);
    // A citizen has no token form and cannot post one.
    let c = app.sign_in(find(&accounts, "citizen")).await;
    let r = post_form(
        &app,
        "/account/tokens",
        Some(&c.cookie),
        &[
            ("csrf", &c.csrf),
            ("name", "x"),
            ("scope", "systems:read"),
            ("days", "1"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn passkey_ceremonies_refuse_what_they_must() {
    // With an IP address as the public URL there is no relying party: 404.
    let app = TestApp::start("sqlite").await.unwrap();
    let accounts = app.demo_accounts().await;
    let s = app.sign_in(find(&accounts, "citizen")).await;
    let post = |app: &TestApp, path: &str, cookie: &str, csrf: Option<&str>, body: &str| {
        let mut r = app
            .client
            .post(app.url(path))
            .header("cookie", cookie)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.send()
    };
    let r = post(
        &app,
        "/account/passkeys/begin",
        &s.cookie,
        Some(&s.csrf),
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // With a domain name, passkeys are on; bad ceremonies are refused and change nothing.
    let (store, dir) = crate::common::fresh_store("sqlite").await.unwrap();
    store
        .seed(&nara_core::seed::demo().unwrap(), &|_| {})
        .await
        .unwrap();
    let app = TestApp::serve(
        store,
        nara_server::Config {
            public_url: Some("http://localhost:1".into()),
            ..Default::default()
        },
        dir,
    )
    .await;
    let accounts = app.demo_accounts().await;
    let s = app.sign_in(find(&accounts, "citizen")).await;
    let r = post(&app, "/account/passkeys/begin", &s.cookie, None, "{}")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no anti-forgery header");
    let r = post(
        &app,
        "/account/passkeys/finish",
        &s.cookie,
        Some(&s.csrf),
        "{\"credential\": {}}",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "malformed credential");
    let r = post(
        &app,
        "/account/passkeys/begin",
        &s.cookie,
        Some(&s.csrf),
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let options: serde_json::Value = r.json().await.unwrap();
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    let forged = serde_json::json!({"name": "x", "credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}}});
    let r = post(
        &app,
        "/account/passkeys/finish",
        &s.cookie,
        Some(&s.csrf),
        &forged.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a forged attestation does not verify"
    );
    let r = post(
        &app,
        "/account/passkeys/finish",
        &s.cookie,
        Some(&s.csrf),
        &forged.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "the ceremony was answered once; there is none now"
    );
    let citizen = app
        .store
        .account_by_username("minji")
        .await
        .unwrap()
        .unwrap();
    assert!(app.store.passkeys_of(citizen.id).await.unwrap().is_empty());
    // A fully signed-in person has no second step to answer.
    let r = post(
        &app,
        "/sign-in/passkey/begin",
        &s.cookie,
        Some(&s.csrf),
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn replacing_the_authenticator_needs_a_code_from_the_old_one() {
    let app = TestApp::start("sqlite").await.unwrap();
    let accounts = app.demo_accounts().await;
    let official = find(&accounts, "official");
    let s = app.sign_in(official).await;
    let html = app
        .client
        .get(app.url("/account/second-factor"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("id=\"current\""),
        "the old authenticator's code is asked for"
    );
    let at = html.find("id=\"totp-secret\">").unwrap() + "id=\"totp-secret\">".len();
    let new_secret = html[at..at + html[at..].find('<').unwrap()].to_owned();
    let code_at = |secret: &str, t: u64| {
        let bytes = totp_rs::Secret::Encoded(secret.to_owned())
            .to_bytes()
            .unwrap();
        nara_server::identity::auth::totp(&bytes, &official.username)
            .unwrap()
            .generate(t)
    };
    let now = nara_server::identity::auth::unix_now() as u64;
    let new_code = code_at(&new_secret, now);
    let before = app
        .store
        .account_by_username(&official.username)
        .await
        .unwrap()
        .unwrap()
        .totp_secret;
    assert!(
        before.as_deref().is_some_and(|s| s.starts_with("v1:")),
        "stored sealed, never in the clear"
    );
    let r = post_form(
        &app,
        "/account/second-factor",
        Some(&s.cookie),
        &[
            ("csrf", &s.csrf),
            ("secret", &new_secret),
            ("code", &new_code),
            ("current", "000000"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.store
            .account_by_username(&official.username)
            .await
            .unwrap()
            .unwrap()
            .totp_secret,
        before,
        "unchanged"
    );
    // The sign-in used this window's code; the old authenticator's next code is accepted.
    let current = code_at(official.totp_secret.as_ref().unwrap(), now + 30);
    let r = post_form(
        &app,
        "/account/second-factor",
        Some(&s.cookie),
        &[
            ("csrf", &s.csrf),
            ("secret", &new_secret),
            ("code", &new_code),
            ("current", &current),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("id=\"recovery-codes\""));
    let after = app
        .store
        .account_by_username(&official.username)
        .await
        .unwrap()
        .unwrap()
        .totp_secret;
    assert_ne!(after, before);
}

backends! {
    async fn expired_sessions_are_purged(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let accounts = app.demo_accounts().await;
        let s = app.sign_in(find(&accounts, "citizen")).await;
        let citizen = app.store.account_by_username("minji").await.unwrap().unwrap();
        let now = nara_core::Timestamp::now().0;
        app.store.create_session(&nara_store::identity::SessionRecord {
            id_hash: "expired".into(), account_id: citizen.id, csrf: "c".into(), stage: "full".into(), amr: "pwd".into(),
            address: "127.0.0.1".into(), user_agent: "t".into(), created_at: now - 1000, last_seen_at: now - 1000, expires_at: now - 1,
        }).await.unwrap();
        assert_eq!(app.store.sessions_of(citizen.id).await.unwrap().len(), 2);
        assert_eq!(app.store.purge_expired(now).await.unwrap(), 1);
        assert_eq!(app.store.sessions_of(citizen.id).await.unwrap().len(), 1);
        assert_eq!(status_with(&app, "/account", &s.cookie).await, StatusCode::OK, "the live session stays");
    }
}
