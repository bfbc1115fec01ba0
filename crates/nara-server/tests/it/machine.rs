//! Agency systems' signed requests (RFC 9421, Ed25519): registration by the
//! agency admin, and every way a signature can be wrong. The independent
//! check with another implementation is `tests/independent/http_signatures.py`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer, SigningKey};
use reqwest::StatusCode;
use sha2::Digest;

use crate::common::{TestApp, post_form};

struct Signing<'a> {
    key: &'a SigningKey,
    key_id: &'a str,
    created: i64,
    covered: &'a [&'a str],
}

/// Signs per RFC 9421 §2.5, written out by hand from the RFC's text.
fn signed(
    app: &TestApp,
    method: &str,
    path: &str,
    body: &[u8],
    s: &Signing<'_>,
    digest_of: &[u8],
) -> reqwest::RequestBuilder {
    let target = app.url(path);
    let digest = format!(
        "sha-256=:{}:",
        STANDARD.encode(sha2::Sha256::digest(digest_of))
    );
    let mut base = String::new();
    for c in s.covered {
        let value = match *c {
            "@method" => method.to_owned(),
            "@target-uri" => target.clone(),
            "@authority" => app.addr.to_string(),
            "@path" => path.split('?').next().unwrap().to_owned(),
            "content-digest" => digest.clone(),
            other => panic!("{other}"),
        };
        base.push_str(&format!("\"{c}\": {value}\n"));
    }
    let list = s
        .covered
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(" ");
    let params = format!(
        "({list});created={};keyid=\"{}\";alg=\"ed25519\"",
        s.created, s.key_id
    );
    base.push_str(&format!("\"@signature-params\": {params}"));
    let sig = s.key.sign(base.as_bytes());
    let mut r = app
        .client
        .request(method.parse().unwrap(), &target)
        .header("signature-input", format!("sig1={params}"))
        .header(
            "signature",
            format!("sig1=:{}:", STANDARD.encode(sig.to_bytes())),
        );
    if !body.is_empty() {
        r = r.header("content-digest", digest).body(body.to_vec());
    }
    r
}

#[tokio::test]
async fn signed_requests_from_registered_subsystems() {
    let app = TestApp::start("sqlite").await.unwrap();
    let accounts = app.demo_accounts().await;
    let admin = accounts.iter().find(|a| a.role == "agency_admin").unwrap();
    let agency = admin.agency.clone().unwrap();
    let s = app.sign_in(admin).await;
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let public = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());

    // Registration: bad input is refused and changes nothing.
    for (subsystem, public_key) in [
        ("traffic", "not-a-key"),
        ("bad subsystem!", public.as_str()),
        ("traffic", &URL_SAFE_NO_PAD.encode([0u8; 31])),
    ] {
        let r = post_form(
            &app,
            "/admin/machine-clients",
            Some(&s.cookie),
            &[
                ("csrf", s.csrf.as_str()),
                ("agency", &agency),
                ("subsystem", subsystem),
                ("public_key", public_key),
            ],
        )
        .await;
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "{subsystem} {public_key}"
        );
    }
    let r = post_form(
        &app,
        "/admin/machine-clients",
        Some(&s.cookie),
        &[
            ("agency", agency.as_str()),
            ("subsystem", "traffic"),
            ("public_key", public.as_str()),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no anti-forgery token");
    assert!(
        app.store
            .machine_clients_of(&agency.parse().unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    let r = post_form(
        &app,
        "/admin/machine-clients",
        Some(&s.cookie),
        &[
            ("csrf", s.csrf.as_str()),
            ("agency", &agency),
            ("subsystem", "traffic"),
            ("public_key", &public),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let key_id = format!("{agency}/traffic/1");
    assert!(r.text().await.unwrap().contains(&key_id));

    let now = nara_server::identity::auth::unix_now();
    let good = Signing {
        key: &key,
        key_id: &key_id,
        created: now,
        covered: &["@method", "@target-uri", "content-digest"],
    };
    let body = br#"{"q": 1}"#;
    let r = signed(
        &app,
        "POST",
        "/api/v1/machine/whoami?x=1",
        body,
        &good,
        body,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let who: serde_json::Value = r.json().await.unwrap();
    assert_eq!(who["client"], format!("{agency}/traffic"));
    // The key signing from this address is reported once (the starter rules
    // watch for one key used from two places), off the request.
    let mut sightings = Vec::new();
    for _ in 0..50 {
        sightings = app
            .store
            .security_events(Some("machine.key_used"), 10)
            .await
            .unwrap();
        if !sightings.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sightings.len(), 1, "{sightings:?}");
    assert_eq!(
        (
            sightings[0].username.as_str(),
            sightings[0].address.as_str()
        ),
        (key_id.as_str(), "127.0.0.1")
    );
    // @authority + @path instead of @target-uri (no query).
    let split = Signing {
        covered: &["@method", "@authority", "@path"],
        ..good
    };
    assert_eq!(
        signed(&app, "GET", "/api/v1/machine/whoami", b"", &split, b"")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Security events as JSON lines: a bad line refuses the whole body; six
    // failed sign-ins to different accounts from one address raise an alert.
    let intake = "/api/v1/security/intake";
    let bad = b"{\"kind\":\"login.failed\",\"user\":\"a\"}\n{\"kind\":\"login.failed\",\"source_ip\":\"not-an-ip\"}\n";
    let r = signed(&app, "POST", intake, bad, &good, bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "line 2: source_ip");
    assert!(
        app.store
            .security_events(Some("system.login.failed"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let lines: String = (0..6)
        .map(|n| format!("{{\"kind\":\"login.failed\",\"user\":\"citizen-{n}\",\"source_ip\":\"198.51.100.23\",\"detail\":\"wrong password\"}}\n"))
        .collect();
    let r = signed(
        &app,
        "POST",
        intake,
        lines.as_bytes(),
        &good,
        lines.as_bytes(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let stored = app
        .store
        .security_events(Some("system.login.failed"), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 6);
    assert!(
        stored[0]
            .detail
            .starts_with(&format!("from {agency}/traffic: "))
    );
    let mut raised = Vec::new();
    for _ in 0..100 {
        raised = app.store.alerts(None, 10).await.unwrap();
        if !raised.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert!(
        raised[0]
            .title
            .starts_with("agency system credential stuffing")
    );
    assert_eq!(raised[0].group_key, "source_ip=198.51.100.23");
    // Unsigned: refused.
    let r = app
        .client
        .post(app.url(intake))
        .body(lines.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let get = Signing {
        covered: &["@method", "@target-uri"],
        ..good
    };
    let refused = |r: reqwest::Response| async move {
        let status = r.status();
        let detail = r.json::<serde_json::Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        (status, detail)
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, &str)> = vec![
        (
            "body changed after signing",
            signed(
                &app,
                "POST",
                "/api/v1/machine/whoami",
                body,
                &good,
                b"other",
            ),
            "Content-Digest",
        ),
        (
            "body not covered",
            signed(
                &app,
                "POST",
                "/api/v1/machine/whoami",
                body,
                &Signing {
                    covered: &["@method", "@target-uri"],
                    ..good
                },
                body,
            ),
            "content-digest",
        ),
        (
            "method not covered",
            signed(
                &app,
                "GET",
                "/api/v1/machine/whoami",
                b"",
                &Signing {
                    covered: &["@target-uri"],
                    ..good
                },
                b"",
            ),
            "@method",
        ),
        (
            "signed ten minutes ago",
            signed(
                &app,
                "GET",
                "/api/v1/machine/whoami",
                b"",
                &Signing {
                    created: now - 600,
                    ..get
                },
                b"",
            ),
            "created",
        ),
        (
            "another key",
            signed(
                &app,
                "GET",
                "/api/v1/machine/whoami",
                b"",
                &Signing {
                    key: &SigningKey::from_bytes(&[9; 32]),
                    ..get
                },
                b"",
            ),
            "does not verify",
        ),
        (
            "unknown key id",
            signed(
                &app,
                "GET",
                "/api/v1/machine/whoami",
                b"",
                &Signing {
                    key_id: "KR/GOV/X/y/1",
                    ..get
                },
                b"",
            ),
            "keyid",
        ),
        (
            "a covered header is absent",
            signed(&app, "GET", "/api/v1/machine/whoami", b"", &good, b""),
            "absent",
        ),
        (
            "no signature",
            app.client.get(app.url("/api/v1/machine/whoami")),
            "RFC 9421",
        ),
        (
            "garbage",
            app.client
                .get(app.url("/api/v1/machine/whoami"))
                .header("signature-input", "((((")
                .header("signature", "x=:@@:"),
            "structured",
        ),
    ];
    for (what, request, expected) in cases {
        let (status, detail) = refused(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(detail.contains(expected), "{what}: {detail}");
    }
    // A person's session or an API token is not an agency system.
    let r = app
        .client
        .get(app.url("/api/v1/machine/whoami"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Revoked: refused at once.
    let r = post_form(
        &app,
        "/admin/machine-clients/revoke",
        Some(&s.cookie),
        &[
            ("csrf", s.csrf.as_str()),
            ("agency", &agency),
            ("key_id", &key_id),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        app.store
            .machine_client(&key_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    let (status, _) = refused(
        signed(&app, "GET", "/api/v1/machine/whoami", b"", &get, b"")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// At the national alert level "caution" and above, a new key waits for a
/// security analyst other than its registrar; until then it signs nothing.
#[tokio::test]
async fn keys_registered_at_caution_wait_for_a_second_approval() {
    use nara_core::secops::AlertLevel;
    let app = TestApp::start("sqlite").await.unwrap();
    app.store
        .set_alert_level(
            AlertLevel::Normal,
            AlertLevel::Caution,
            "a campaign against agency keys",
            "account:0",
        )
        .await
        .unwrap();
    let accounts = app.demo_accounts().await;
    let admin = accounts.iter().find(|a| a.role == "agency_admin").unwrap();
    let agency = admin.agency.clone().unwrap();
    let s = app.sign_in(admin).await;
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let public = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let r = post_form(
        &app,
        "/admin/machine-clients",
        Some(&s.cookie),
        &[
            ("csrf", s.csrf.as_str()),
            ("agency", &agency),
            ("subsystem", "traffic"),
            ("public_key", &public),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("signs nothing until a security analyst approves it"),
        "{page}"
    );
    let key_id = format!("{agency}/traffic/1");
    let signing = Signing {
        key: &key,
        key_id: &key_id,
        created: nara_server::identity::auth::unix_now(),
        covered: &["@method", "@target-uri"],
    };
    let whoami = || signed(&app, "GET", "/api/v1/machine/whoami", b"", &signing, b"");
    assert_eq!(
        whoami().send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "pending: signs nothing"
    );

    // The registrar cannot be the second approval; an analyst can, once.
    let registrar = app.store.pending_machine_clients().await.unwrap();
    assert_eq!(registrar.len(), 1);
    assert!(matches!(
        app.store
            .approve_machine_client(&key_id, &registrar[0].1)
            .await,
        Err(nara_store::StoreError::Conflict(_))
    ));
    let analyst = accounts
        .iter()
        .find(|a| a.role == "security_analyst")
        .unwrap();
    let a = app.signed_in(&analyst.username).await;
    let listed = app
        .client
        .get(app.url("/security/level"))
        .header("cookie", &a.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains(&key_id), "the analyst sees the waiting key");
    let r = post_form(
        &app,
        "/security/machine-keys/approve",
        Some(&a.cookie),
        &[("csrf", a.csrf.as_str()), ("key_id", &key_id)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = post_form(
        &app,
        "/security/machine-keys/approve",
        Some(&a.cookie),
        &[("csrf", a.csrf.as_str()), ("key_id", &key_id)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "approved once");
    assert!(
        app.has_entry(200, |e| e.kind == "identity.machine_client.approved")
            .await
    );
    let mut status = StatusCode::UNAUTHORIZED;
    for _ in 0..30 {
        status = whoami().send().await.unwrap().status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK, "approved: it signs");
}
