//! A citizen applies: a draft kept on the server and resumed, each page
//! checked, evidence fetched through the exchange after consent (and shown
//! in the data-access history), eligibility decided, a reference and a
//! status timeline; nobody else can see or touch the application.

use reqwest::StatusCode;

use crate::backends;
use crate::common::{TestApp, post_form, smtp_sink};

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

backends! {
    async fn citizens_apply_with_evidence_fetched_once(backend: &str) {
        let Some(app) = TestApp::on(backend).services().exchange(3).start().await else { return };
        let minji = app.signed_in("minji").await;
        let junho = app.signed_in("junho").await;
        let get = |path: &str, cookie: &str| {
            let (c, path) = (cookie.to_owned(), app.url(path));
            let client = app.client.clone();
            async move { client.get(path).header("cookie", c).send().await.unwrap() }
        };

        // The service page offers to apply; starting makes a draft.
        let page = get("/apply/resident-registration-certificate", &minji.cookie)
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains("/apply/resident-registration-certificate/start"));
        let r = post_form(
            &app,
            "/apply/resident-registration-certificate/start",
            Some(&minji.cookie),
            &[("csrf", &minji.csrf)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let first = location(&r);
        let reference = first
            .trim_start_matches("/applications/")
            .trim_end_matches("/pages/1")
            .to_owned();
        assert!(reference.starts_with("MOIS-"), "{reference}");
        // Prefill: the first page says what can be filled in, from whom and
        // why; without the consent nothing is fetched; with it, the name comes
        // from the residents register.
        let page1 = get(&first, &minji.cookie).await.text().await.unwrap();
        assert!(page1.contains("id=\"prefill\"") && page1.contains("consent.residence"));
        let r = post_form(
            &app,
            &format!("/applications/{reference}/prefill"),
            Some(&minji.cookie),
            &[("csrf", &minji.csrf)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = post_form(
            &app,
            &format!("/applications/{reference}/prefill"),
            Some(&junho.cookie),
            &[("csrf", &junho.csrf), ("consent.residence", "yes")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "not his draft");
        let r = post_form(
            &app,
            &format!("/applications/{reference}/prefill"),
            Some(&minji.cookie),
            &[("csrf", &minji.csrf), ("consent.residence", "yes")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let draft = app.store.application(&reference).await.unwrap().unwrap();
        let answers: serde_json::Value = serde_json::from_str(&draft.answers).unwrap();
        assert_eq!(
            answers["full_name"], "Kim Minji",
            "filled in from the register"
        );
        // Checked as it is saved: a missing required answer, a choice not offered.
        let r = post_form(
            &app,
            &first,
            Some(&minji.cookie),
            &[("csrf", &minji.csrf), ("full_name", ""), ("use", "lottery")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let html = r.text().await.unwrap();
        assert!(html.contains("is required") && html.contains("must be one of the options"));
        let r = post_form(
            &app,
            &first,
            Some(&minji.cookie),
            &[
                ("csrf", &minji.csrf),
                ("full_name", "Kim Minji <b>"),
                ("use", "bank"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&r), format!("/applications/{reference}/review"));
        // Resumed, not duplicated, when started again (another device).
        let r = post_form(
            &app,
            "/apply/resident-registration-certificate/start",
            Some(&minji.cookie),
            &[("csrf", &minji.csrf)],
        )
        .await;
        assert_eq!(location(&r), first);
        let html = get(&first, &minji.cookie).await.text().await.unwrap();
        assert!(
            html.contains("Kim Minji &lt;b&gt;") || html.contains("Kim Minji &#60;b&#62;"),
            "the draft's answer, escaped"
        );

        // Nobody else sees or touches it.
        for path in [
            format!("/applications/{reference}"),
            first.clone(),
            format!("/applications/{reference}/review"),
        ] {
            assert_eq!(
                get(&path, &junho.cookie).await.status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        for path in [first.clone(), format!("/applications/{reference}/submit")] {
            let r = post_form(
                &app,
                &path,
                Some(&junho.cookie),
                &[("csrf", &junho.csrf), ("consent.residence", "yes")],
            )
            .await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        }

        // Review: what is fetched, from whom, why; without consent nothing is submitted.
        let review = get(&format!("/applications/{reference}/review"), &minji.cookie)
            .await
            .text()
            .await
            .unwrap();
        assert!(
            review.contains("Resident register")
                && review.contains("Ministry of the Interior and Safety")
                && review.contains("consent.residence")
        );
        let r = post_form(
            &app,
            &format!("/applications/{reference}/submit"),
            Some(&minji.cookie),
            &[("csrf", &minji.csrf)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            app.store
                .application(&reference)
                .await
                .unwrap()
                .unwrap()
                .state,
            "draft"
        );
        // With consent: fetched, issued at once.
        let r = post_form(
            &app,
            &format!("/applications/{reference}/submit"),
            Some(&minji.cookie),
            &[("csrf", &minji.csrf), ("consent.residence", "yes")],
        )
        .await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{}",
            r.text().await.unwrap_or_default()
        );
        let stored = app.store.application(&reference).await.unwrap().unwrap();
        assert_eq!(stored.state, "approved");
        let evidence: serde_json::Value = serde_json::from_str(&stored.evidence).unwrap();
        assert_eq!(evidence["residence"]["name"], "Kim Minji");
        let receipt = get(&format!("/applications/{reference}"), &minji.cookie)
            .await
            .text()
            .await
            .unwrap();
        assert!(
            receipt.contains(&reference)
                && receipt.contains("submitted")
                && receipt.contains("approved")
        );
        // Issued at once: a W3C Verifiable Credential (vc+jwt, EdDSA) with the claims the definition names.
        let marker = "href=\"/documents/";
        let at = receipt.find(marker).expect("a document link") + marker.len();
        let doc_id = receipt[at..at + receipt[at..].find('"').unwrap()].to_owned();
        let doc = get(&format!("/documents/{doc_id}"), &minji.cookie)
            .await
            .text()
            .await
            .unwrap();
        assert!(doc.contains("<svg"), "a QR code");
        assert_eq!(
            get(&format!("/documents/{doc_id}"), &junho.cookie)
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        let credential = app.store.credential(&doc_id).await.unwrap().unwrap();
        let verify = |token: String| {
            let client = app.client.clone();
            let url = app.url("/api/v1/credentials/verify");
            async move {
                client
                    .post(url)
                    .json(&serde_json::json!({"credential": token}))
                    .send()
                    .await
                    .unwrap()
                    .json::<serde_json::Value>()
                    .await
                    .unwrap()
            }
        };
        let v = verify(credential.jwt.clone()).await;
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!(v["subject"]["name"], "Kim Minji");
        assert!(
            v["types"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "ResidentRegistrationCertificate")
        );
        // Its signature verifies with the agency's published key, independently of the server's code path.
        let jwks: serde_json::Value = app
            .get("/credentials/jwks.json")
            .await
            .json()
            .await
            .unwrap();
        let header = header_of(&credential.jwt);
        assert_eq!(header["typ"], "vc+jwt");
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .expect("the kid is published")
            .clone();
        verify_with(&jwk, &credential.jwt);
        let parts: Vec<&str> = credential.jwt.split('.').collect();
        // Tampered: refused; revoked: refused.
        let mut payload: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])
                .unwrap(),
        )
        .unwrap();
        payload["credentialSubject"]["name"] = serde_json::json!("Someone Else");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                payload.to_string()
            ),
            parts[2]
        );
        let v = verify(forged).await;
        assert_eq!(v["valid"], false);
        assert!(v["problems"][0].as_str().unwrap().contains("signature"));
        assert_eq!(verify("not.a.token".into()).await["valid"], false);
        let page = app
            .client
            .post(app.url("/verify"))
            .form(&[("credential", credential.jwt.as_str())])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Valid: issued by this agency"));
        // Scanned: a photograph of the document's QR code (here rendered as a
        // PNG, 4 px a module, with its quiet zone) verifies the same way.
        let qr =
            qrcode::QrCode::with_error_correction_level(credential.jwt.as_bytes(), qrcode::EcLevel::L)
                .unwrap();
        let modules = qr.width() as u32;
        let colors = qr.to_colors();
        let side = (modules + 8) * 4;
        let png_of = |img: image::GrayImage| {
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Png).unwrap();
            out.into_inner()
        };
        let photo = png_of(image::GrayImage::from_fn(side, side, |x, y| {
            let (mx, my) = (x / 4, y / 4);
            let dark = mx >= 4
                && my >= 4
                && mx < modules + 4
                && my < modules + 4
                && colors[((my - 4) * modules + (mx - 4)) as usize] == qrcode::Color::Dark;
            image::Luma([if dark { 0 } else { 255 }])
        }));
        let scan = |bytes: Vec<u8>, name: &'static str| {
            let client = app.client.clone();
            let url = app.url("/verify/file");
            async move {
                let form = reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(bytes).file_name(name),
                );
                let r = client.post(url).multipart(form).send().await.unwrap();
                (r.status(), r.text().await.unwrap())
            }
        };
        let (status, page) = scan(photo, "photo.png").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("Valid: issued by this agency"),
            "a scanned QR code"
        );
        let (_, page) = scan(credential.jwt.clone().into_bytes(), "certificate.jwt").await;
        assert!(
            page.contains("Valid: issued by this agency"),
            "an uploaded token"
        );
        let (_, page) = scan(
            png_of(image::GrayImage::from_pixel(64, 64, image::Luma([255]))),
            "blank.png",
        )
        .await;
        assert!(page.contains("No readable QR code"));
        let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bomb.extend(100_000u32.to_be_bytes());
        bomb.extend(100_000u32.to_be_bytes());
        bomb.extend([8, 0, 0, 0, 0, 0, 0, 0, 0]);
        let (_, page) = scan(bomb, "bomb.png").await;
        assert!(page.contains("too large to process"));
        // Revocation through the agency's Bitstring Status List: the bit the
        // credential names is off, the issuing agency's official revokes, the
        // bit is on (read here as any verifier would: verify, gunzip, index).
        let status_bit = |token: String| {
            let app = &app;
            let jwk = jwk.clone();
            async move {
                let payload = payload_of(&token);
                let entry = &payload["credentialStatus"];
                assert_eq!(entry["type"], "BitstringStatusListEntry");
                assert_eq!(entry["statusPurpose"], "revocation");
                let url = entry["statusListCredential"].as_str().unwrap();
                let path = &url[url.find("/credentials/status/").unwrap()..];
                let r = app.get(path).await;
                assert_eq!(r.headers()["content-type"], "application/vc+jwt");
                let list = r.text().await.unwrap();
                verify_with(&jwk, &list);
                let list = payload_of(&list);
                assert_eq!(list["type"][1], "BitstringStatusListCredential");
                assert_eq!(list["credentialSubject"]["statusPurpose"], "revocation");
                let encoded = list["credentialSubject"]["encodedList"].as_str().unwrap();
                let zipped = base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    encoded.strip_prefix('u').expect("multibase base64url"),
                )
                .unwrap();
                let mut bits = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut bits)
                    .unwrap();
                assert_eq!(bits.len(), 16_384, "131,072 positions");
                let i: usize = entry["statusListIndex"].as_str().unwrap().parse().unwrap();
                bits[i / 8] & (0x80 >> (i % 8)) != 0
            }
        };
        assert!(!status_bit(credential.jwt.clone()).await, "not revoked yet");
        let (mois, mois_csrf) = official(&app, "KR/GOV/MOIS", "registrar.mois").await;
        let (nts, nts_csrf) = official(&app, "KR/GOV/NTS", "official.nts.revoke").await;
        let revoke = |cookie: String, csrf: String, reason: &'static str| {
            let app = &app;
            let path = format!("/cases/{reference}/revoke");
            let doc_id = doc_id.clone();
            async move {
                post_form(
                    app,
                    &path,
                    Some(&cookie),
                    &[("csrf", &csrf), ("credential", &doc_id), ("reason", reason)],
                )
                .await
            }
        };
        // Another agency cannot; a reason outside the list is refused; nothing changes.
        assert_eq!(
            revoke(nts.clone(), nts_csrf.clone(), "fraud")
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            revoke(mois.clone(), mois_csrf.clone(), "<script>")
                .await
                .status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            revoke(mois.clone(), "forged".into(), "fraud")
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(verify(credential.jwt.clone()).await["valid"], true);
        let r = revoke(mois.clone(), mois_csrf.clone(), "issued_in_error").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(
            status_bit(credential.jwt.clone()).await,
            "revoked in the list"
        );
        let v = verify(credential.jwt.clone()).await;
        assert_eq!(
            (v["valid"].clone(), v["revoked"].clone()),
            (serde_json::json!(false), serde_json::json!(true))
        );
        let again = revoke(mois.clone(), mois_csrf.clone(), "fraud").await;
        assert_eq!(again.status(), StatusCode::BAD_REQUEST);
        assert!(again.text().await.unwrap().contains("already revoked"));
        let recent = app.entries_with("credential.revoked", 5).await;
        assert!(
            recent
                .iter()
                .any(|e| String::from_utf8_lossy(&e.1).contains("credential.revoked"))
        );

        // The fetch is in her data-access history, as the ministry's portal.
        let json: serde_json::Value = get("/api/v1/me/data-access", &minji.cookie)
            .await
            .json()
            .await
            .unwrap();
        let first_access = &json["exchanges"][0];
        assert_eq!(first_access["client"], "KR/GOV/MOIS/portal");
        assert_eq!(first_access["purpose"], "certificate-issuance");
        // Every change of state is a ledger entry (waiting for PostgreSQL's integrator).
        app.has_entry(10, |e| e.kind == "application.state" && e.subjects.contains(&format!("application:{reference}")) && e.actor == "system").await;
        let recent = app.store.recent_ledger_entries(10).await.unwrap();
        let states = recent
            .iter()
            .filter(|(_, e)| {
                nara_ledger::entry::Entry::decode(e).is_ok_and(|e| {
                    e.kind == "application.state"
                        && e.subjects.contains(&format!("application:{reference}"))
                })
            })
            .count();
        assert_eq!(states, 2);
        // Submitted once only.
        let r = post_form(
            &app,
            &format!("/applications/{reference}/submit"),
            Some(&minji.cookie),
            &[("csrf", &minji.csrf), ("consent.residence", "yes")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        // A reviewed service: eligibility comes from the evidence and answers.
        let reference = start_draft(&app, &minji, "extended-hour-school-enrolment").await;
        let p1 = format!("/applications/{reference}/pages/1");
        let r = post_form(
            &app,
            &p1,
            Some(&minji.cookie),
            &[
                ("csrf", &minji.csrf),
                ("child_name", "Kim Yuna"),
                ("school", "Mapo Elementary"),
                ("grade", "7"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "grade 7 of 6");
        let r = post_form(
            &app,
            &p1,
            Some(&minji.cookie),
            &[
                ("csrf", &minji.csrf),
                ("child_name", "Kim Yuna"),
                ("school", "Mapo Elementary"),
                ("grade", "2"),
            ],
        )
        .await;
        assert_eq!(location(&r), format!("/applications/{reference}/pages/2"));
        let p2 = format!("/applications/{reference}/pages/2");
        let r = post_form(
            &app,
            &p2,
            Some(&minji.cookie),
            &[
                ("csrf", &minji.csrf),
                ("single_parent", "no"),
                ("pickup.0.pickup_name", "Kim Youngho"),
                ("pickup.0.pickup_relation", "grandparent"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let submit = format!("/applications/{reference}/submit");
        let consents = [
            ("csrf", minji.csrf.as_str()),
            ("consent.family", "yes"),
            ("consent.employment", "yes"),
        ];
        let r = post_form(&app, &submit, Some(&minji.cookie), &consents).await;
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "not employed (demo record) and not a single parent"
        );
        assert!(r.text().await.unwrap().contains("not eligible"));
        let r = post_form(
            &app,
            &p2,
            Some(&minji.cookie),
            &[("csrf", &minji.csrf), ("single_parent", "yes")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = post_form(&app, &submit, Some(&minji.cookie), &consents).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let stored = app.store.application(&reference).await.unwrap().unwrap();
        assert_eq!(stored.state, "submitted");
        let days = (stored.due_at.unwrap() - stored.submitted_at.unwrap()) / 86_400_000;
        assert!(
            (5..=9).contains(&days),
            "five working days: {days} calendar days"
        );
        let mine = get("/my/applications", &minji.cookie)
            .await
            .text()
            .await
            .unwrap();
        assert!(mine.contains(&reference));
        assert!(
            !get("/my/applications", &junho.cookie)
                .await
                .text()
                .await
                .unwrap()
                .contains(&reference)
        );
    }
}

fn decode_part(token: &str, n: usize) -> serde_json::Value {
    let part = token.split('.').nth(n).unwrap();
    serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap(),
    )
    .unwrap()
}

fn header_of(token: &str) -> serde_json::Value {
    decode_part(token, 0)
}

fn payload_of(token: &str) -> serde_json::Value {
    decode_part(token, 1)
}

/// Verifies a compact JWS with a published JWK, as an offline verifier would.
fn verify_with(jwk: &serde_json::Value, token: &str) {
    let x: [u8; 32] = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        jwk["x"].as_str().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let sig = ed25519_dalek::Signature::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[2])
            .unwrap(),
    )
    .unwrap();
    ed25519_dalek::Verifier::verify(
        &ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap(),
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
        &sig,
    )
    .expect("verifies offline with the JWK");
}

/// Starts (or resumes) the citizen's draft of a service; its reference.
async fn start_draft(app: &TestApp, citizen: &crate::common::Session, code: &str) -> String {
    let r = post_form(
        app,
        &format!("/apply/{code}/start"),
        Some(&citizen.cookie),
        &[("csrf", &citizen.csrf)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "starting {code}");
    location(&r)
        .trim_start_matches("/applications/")
        .trim_end_matches("/pages/1")
        .to_owned()
}

/// An official of `agency` with a signed-in session: (cookie, csrf).
async fn official(app: &TestApp, agency: &str, username: &str) -> (String, String) {
    use nara_core::identity::{AccountKind, Grant, Role};
    let account = app
        .store
        .create_account(
            &nara_store::identity::NewAccount {
                kind: AccountKind::Official,
                username: username.into(),
                display_name: username.into(),
                national_id_hash: None,
                agency: Some(agency.parse().unwrap()),
                password_hash: "!".into(),
                totp_secret: None,
                grants: vec![Grant::new(Role::Official, Some(agency.parse().unwrap())).unwrap()],
            },
            "test",
        )
        .await
        .unwrap();
    let id = nara_server::identity::auth::start_session(
        &app.store, account.id, "full", "pwd otp", "test", "test",
    )
    .await
    .unwrap();
    let csrf = app
        .store
        .session(&nara_server::identity::auth::digest(&id))
        .await
        .unwrap()
        .unwrap()
        .csrf;
    (format!("nara_session={id}"), csrf)
}

// Officials decide: the queue, a view limited to what each step needs,
// reason codes, a second review by another official, the citizen's
// timeline and inbox — on both backends.
backends! {
    async fn officials_decide_in_two_steps(backend: &str) {
    let Some(app) = TestApp::on(backend).services().exchange(3).start().await else { return };
    let minji = app.signed_in("minji").await;
    let reference = start_draft(&app, &minji, "disability-benefit").await;
    let p1 = format!("/applications/{reference}/pages/1");
    let r = post_form(
        &app,
        &p1,
        Some(&minji.cookie),
        &[("csrf", &minji.csrf), ("bank_account", "110-123-456789")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = post_form(
        &app,
        &format!("/applications/{reference}/submit"),
        Some(&minji.cookie),
        &[("csrf", &minji.csrf), ("consent.income", "yes")],
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap_or_default()
    );

    let (a, a_csrf) = official(&app, "KR/GOV/MOHW", "caseworker.a").await;
    let (b, b_csrf) = official(&app, "KR/GOV/MOHW", "reviewer.b").await;
    let (other, other_csrf) = official(&app, "KR/GOV/NTS", "another.nts").await;
    let get = |path: String, cookie: String| {
        let client = app.client.clone();
        let url = app.url(&path);
        async move {
            client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    let queue = get("/cases".into(), a.clone()).await.text().await.unwrap();
    assert!(queue.contains(&reference) && queue.contains("working days left"));
    assert!(
        !get("/cases".into(), other.clone())
            .await
            .text()
            .await
            .unwrap()
            .contains(&reference),
        "another agency's queue"
    );
    assert_eq!(
        get(format!("/cases/{reference}"), other.clone())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let r = post_form(
        &app,
        &format!("/cases/{reference}/act"),
        Some(&other),
        &[("csrf", &other_csrf), ("to", "caseworker_review")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Taking the case: nothing of the applicant is needed yet.
    let case = get(format!("/cases/{reference}"), a.clone())
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !case.contains("110-123-456789"),
        "the bank account is not shown before the step that needs it"
    );
    // Opening it is recorded (the starter rules watch officials reading many); another
    // agency's official, refused, read nothing.
    let reads = app
        .store
        .security_events(Some("personal_data.read"), 10)
        .await
        .unwrap();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].detail, format!("case {reference}"));
    let act = |cookie: String, csrf: String, to: &'static str, reason: &'static str| {
        let path = format!("/cases/{reference}/act");
        let app = &app;
        async move {
            post_form(
                app,
                &path,
                Some(&cookie),
                &[
                    ("csrf", &csrf),
                    ("to", to),
                    ("reason", reason),
                    ("note", ""),
                ],
            )
            .await
        }
    };
    assert_eq!(
        act(a.clone(), a_csrf.clone(), "approved", "")
            .await
            .status(),
        StatusCode::BAD_REQUEST,
        "not a step from submitted"
    );
    assert_eq!(
        act(a.clone(), a_csrf.clone(), "caseworker_review", "")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let case = get(format!("/cases/{reference}"), a.clone())
        .await
        .text()
        .await
        .unwrap();
    assert!(
        case.contains("severe") || case.contains("mild"),
        "the disability degree fetched from the register is shown now"
    );
    assert!(!case.contains("110-123-456789"));
    // More information: the official asks, the citizen answers on her receipt.
    let r = post_form(
        &app,
        &format!("/cases/{reference}/act"),
        Some(&a),
        &[
            ("csrf", &a_csrf),
            ("to", "more_info"),
            ("reason", "report_missing"),
            ("note", "Please send the <b>2026</b> medical report"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let receipt = app
        .client
        .get(app.url(&format!("/applications/{reference}")))
        .header("cookie", &minji.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(receipt.contains("id=\"asked\"") && receipt.contains("report_missing"));
    assert!(
        receipt.contains("&#60;b&#62;2026&#60;/b&#62;") && !receipt.contains("<b>2026"),
        "the official's note is text"
    );
    let reply = |cookie: String, csrf: String, note: &'static str| {
        let path = format!("/applications/{reference}/reply");
        let app = &app;
        async move {
            post_form(
                app,
                &path,
                Some(&cookie),
                &[("csrf", &csrf), ("note", note)],
            )
            .await
            .status()
        }
    };
    let junho = app.signed_in("junho").await;
    assert_eq!(
        reply(junho.cookie.clone(), junho.csrf.clone(), "not mine").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reply(minji.cookie.clone(), minji.csrf.clone(), "   ").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        reply(
            minji.cookie.clone(),
            minji.csrf.clone(),
            "Sent by post on 1 December"
        )
        .await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        reply(minji.cookie.clone(), minji.csrf.clone(), "twice").await,
        StatusCode::BAD_REQUEST,
        "no longer waiting for her"
    );
    let stored = app.store.application(&reference).await.unwrap().unwrap();
    assert_eq!(stored.state, "caseworker_review");
    let a_id = app
        .store
        .account_by_username("caseworker.a")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        stored.assigned_to,
        Some(a_id),
        "the case stays with its official"
    );
    assert_eq!(
        act(a.clone(), a_csrf.clone(), "second_review", "")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    // Four eyes: A cannot also take the second review; a reason must be one of the codes.
    let r = act(a.clone(), a_csrf.clone(), "approved", "").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("another official"));
    // Claimed by A: B must claim it first; then a reason must be one of the codes.
    let r = act(b.clone(), b_csrf.clone(), "approved", "").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("claim it first"));
    let mine = get("/cases?mine=1".into(), a.clone())
        .await
        .text()
        .await
        .unwrap();
    assert!(mine.contains(&reference), "A's own cases");
    let assign = |cookie: String, csrf: String, to: String| {
        let path = format!("/cases/{reference}/assign");
        let app = &app;
        async move {
            post_form(app, &path, Some(&cookie), &[("csrf", &csrf), ("to", &to)])
                .await
                .status()
        }
    };
    let minji_id = app
        .store
        .account_by_username("minji")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        assign(b.clone(), b_csrf.clone(), minji_id.to_string()).await,
        StatusCode::BAD_REQUEST,
        "only the agency's officials"
    );
    assert_eq!(
        assign(other.clone(), other_csrf.clone(), "me".into()).await,
        StatusCode::NOT_FOUND,
        "another agency"
    );
    assert_eq!(
        assign(b.clone(), b_csrf.clone(), "me".into()).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        act(b.clone(), b_csrf.clone(), "rejected", "because")
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let case = get(format!("/cases/{reference}"), b.clone())
        .await
        .text()
        .await
        .unwrap();
    assert!(
        case.contains("110-123-456789"),
        "the final step shows the account the pension goes to"
    );
    assert_eq!(
        act(b.clone(), b_csrf.clone(), "approved", "")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let stored = app.store.application(&reference).await.unwrap().unwrap();
    assert_eq!(stored.state, "approved");
    assert!(stored.decided_at.is_some());
    assert!(
        !get("/cases".into(), a.clone())
            .await
            .text()
            .await
            .unwrap()
            .contains(&reference),
        "decided: off the queue"
    );
    // The citizen's timeline shows every step.
    let receipt = app
        .client
        .get(app.url(&format!("/applications/{reference}")))
        .header("cookie", &minji.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for s in [
        "submitted",
        "caseworker_review",
        "more_info",
        "Sent by post on 1 December",
        "second_review",
        "approved",
    ] {
        assert!(receipt.contains(s), "{s}");
    }
    // Her inbox: received, more information asked, approved, the document —
    // and none of it in anyone else's.
    let inbox = |cookie: String| {
        let client = app.client.clone();
        let url = app.url("/my/inbox");
        async move {
            client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let hers = inbox(minji.cookie.clone()).await;
    for text in [
        "received",
        "needs more information",
        "approved.",
        "document is ready",
    ] {
        assert!(hers.contains(text), "{text}");
    }
    // received, caseworker_review, more_info, second_review, approved, document.
    assert!(hers.contains("6 unread"), "{hers}");
    assert!(!inbox(junho.cookie.clone()).await.contains(&reference));
    let r = post_form(
        &app,
        "/my/inbox/read",
        Some(&minji.cookie),
        &[("csrf", &minji.csrf)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(inbox(minji.cookie.clone()).await.contains("0 unread"));
}
}

backends! {
    /// The applications API: the same checks as the portal, one request per
    /// application, another person's application 404, bad input changes nothing.
    async fn the_api_applies_like_the_portal(backend: &str) {
        let Some(app) = TestApp::on(backend).services().exchange(3).start().await else { return };
        let minji = app.signed_in("minji").await;
        let junho = app.signed_in("junho").await;
        let post = |path: &str, csrf: Option<&str>, body: serde_json::Value| {
            let mut r = app
                .client
                .post(app.url(path))
                .header("cookie", &minji.cookie)
                .json(&body);
            if let Some(c) = csrf {
                r = r.header("x-csrf-token", c);
            }
            r.send()
        };
        let get = |path: String, cookie: &str| {
            app.client
                .get(app.url(&path))
                .header("cookie", cookie)
                .send()
        };
        let count = || async {
            get("/api/v1/me/applications".into(), &minji.cookie)
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["applications"]
                .as_array()
                .unwrap()
                .len()
        };
        let report = serde_json::json!({"data": {
            "channel": "sms", "sender": "+82 10-0000-0000",
            "content": "Your parcel is held: pay <script>alert(1)</script> at http://bad.example",
            "lost_money": "no"}});

        // Refused, nothing written: no CSRF token, wrong answers, unknown keys, unknown service.
        let r = post(
            "/api/v1/services/phishing-report/applications",
            None,
            report.clone(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = post(
            "/api/v1/services/phishing-report/applications",
            Some(&minji.csrf),
            serde_json::json!({"data": {"channel": "carrier pigeon", "lost_money": "maybe"}}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: serde_json::Value = r.json().await.unwrap();
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&"channel") && fields.contains(&"lost_money") && fields.contains(&"sender"),
            "{problem}"
        );
        let r = post(
            "/api/v1/services/phishing-report/applications",
            Some(&minji.csrf),
            serde_json::json!({"data": {}, "sneaky": true}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = post(
            "/api/v1/services/no-such-service/applications",
            Some(&minji.csrf),
            report.clone(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // Consent-based evidence without the consent: refused before anything is written.
        let certificate = serde_json::json!({"data": {"full_name": "Kim Minji", "use": "bank"}});
        let r = post(
            "/api/v1/services/resident-registration-certificate/applications",
            Some(&minji.csrf),
            certificate.clone(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(count().await, 0, "nothing was written");

        // Accepted: a report (reviewed) and a certificate (issued at once).
        let r = post(
            "/api/v1/services/phishing-report/applications",
            Some(&minji.csrf),
            report,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let file: serde_json::Value = r.json().await.unwrap();
        assert_eq!(file["status"], "submitted");
        assert_eq!(file["serviceId"], "phishing-report");
        assert!(file["due"].is_string());
        let mut with_consent = certificate.clone();
        with_consent["consents"] = serde_json::json!(["residence"]);
        let r = post(
            "/api/v1/services/resident-registration-certificate/applications",
            Some(&minji.csrf),
            with_consent,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let cert: serde_json::Value = r.json().await.unwrap();
        assert_eq!(cert["status"], "approved");
        let reference = cert["fileId"].as_str().unwrap();
        let one: serde_json::Value = get(format!("/api/v1/applications/{reference}"), &minji.cookie)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(one["history"][0]["status"], "submitted");
        assert_eq!(one["history"][1]["status"], "approved");
        assert_eq!(one["documents"].as_array().unwrap().len(), 1);
        assert_eq!(count().await, 2);
        // Another citizen: 404, and her list is not his.
        let r = get(format!("/api/v1/applications/{reference}"), &junho.cookie)
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let his: serde_json::Value = get("/api/v1/me/applications".into(), &junho.cookie)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(his["applications"].as_array().unwrap().len(), 0);
        // Satisfaction: a decided application is rated once, 1–5; not someone
        // else's, not an undecided one; the figures follow.
        async fn rate(
            app: &TestApp,
            cookie: &str,
            csrf: &str,
            reference: &str,
            score: &str,
        ) -> reqwest::Response {
            post_form(
                app,
                &format!("/applications/{reference}/rate"),
                Some(cookie),
                &[
                    ("csrf", csrf),
                    ("score", score),
                    ("comment", "<script>alert(1)</script>"),
                ],
            )
            .await
        }
        let report_ref = file["fileId"].as_str().unwrap();
        assert_eq!(
            rate(&app, &junho.cookie, &junho.csrf, reference, "1")
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            rate(&app, &minji.cookie, &minji.csrf, reference, "9")
                .await
                .status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            rate(&app, &minji.cookie, &minji.csrf, report_ref, "5")
                .await
                .status(),
            StatusCode::BAD_REQUEST,
            "not decided yet"
        );
        assert_eq!(
            rate(&app, &minji.cookie, "forged", reference, "5")
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            rate(&app, &minji.cookie, &minji.csrf, reference, "5")
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            rate(&app, &minji.cookie, &minji.csrf, reference, "4")
                .await
                .status(),
            StatusCode::BAD_REQUEST,
            "once"
        );
        let receipt = get(format!("/applications/{reference}"), &minji.cookie)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(receipt.contains("id=\"rated\"") && !receipt.contains("id=\"rate\""));
        let stats = app.get("/statistics").await.text().await.unwrap();
        assert!(stats.contains("<svg") && stats.contains("id=\"statistics\""));
        assert!(!stats.contains("<script>alert"), "comments are never shown");
        let csv = app.get("/statistics.csv").await.text().await.unwrap();
        let cert_line = csv
            .lines()
            .find(|l| l.starts_with("\"resident-registration-certificate\""))
            .expect("a line for the certificate");
        // 1 application, decided at once, within its SLA, one rating, satisfied.
        assert!(
            cert_line.starts_with("\"resident-registration-certificate\",1,1,"),
            "{cert_line}"
        );
        assert!(cert_line.ends_with(",1.000,1,1.000,5.000"), "{cert_line}");
        let report_line = csv
            .lines()
            .find(|l| l.starts_with("\"phishing-report\""))
            .unwrap();
        assert_eq!(report_line, "\"phishing-report\",1,0,,,,0,,");
        let page = app
            .get("/apply/resident-registration-certificate")
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains("id=\"figures\"") && page.contains("100%"));
        // And on the national catalogue's entry for the same service.
        let mut found = false;
        for id in 1..=60 {
            let entry = app
                .get(&format!("/services/{id}"))
                .await
                .text()
                .await
                .unwrap();
            if entry.contains("<code>resident-registration-certificate</code>") {
                assert!(entry.contains("id=\"online\"") && entry.contains("100%"));
                assert!(entry.contains("href=\"/apply/resident-registration-certificate\""));
                found = true;
                break;
            }
        }
        assert!(found, "the catalogue lists the certificate");

        // The API is described in /openapi.json.
        let spec: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
        assert!(spec["paths"]["/api/v1/services/{code}/applications"]["post"].is_object());
    }
}

backends! {
    /// Uploads: typed by content, size-limited, bombs refused, stored once by
    /// content hash, served only to the applicant and to the official whose
    /// step shows the field; another person gets 404 on every upload route.
    async fn uploads_are_checked_stored_by_content_and_kept_private(backend: &str) {
        let Some(app) = TestApp::on(backend).services().exchange(3).start().await else { return };
        let minji = app.signed_in("minji").await;
        let junho = app.signed_in("junho").await;
        let reference = start_draft(&app, &minji, "business-registration").await;
        let r = post_form(
            &app,
            &format!("/applications/{reference}/pages/1"),
            Some(&minji.cookie),
            &[
                ("csrf", &minji.csrf),
                ("trade_name", "Minji's Bakery"),
                ("kind", "sole_proprietorship"),
                ("opening_date", "2026-12-01"),
                ("premises", "12 Sejong-daero, Seoul"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let upload = |cookie: String, csrf: String, name: &'static str, bytes: Vec<u8>| {
            let url = app.url(&format!("/applications/{reference}/files/lease"));
            let client = app.client.clone();
            async move {
                let form = reqwest::multipart::Form::new().text("csrf", csrf).part(
                    "file",
                    reqwest::multipart::Part::bytes(bytes).file_name(name),
                );
                client
                    .post(url)
                    .header("cookie", cookie)
                    .multipart(form)
                    .send()
                    .await
                    .unwrap()
            }
        };
        let mine = || (minji.cookie.clone(), minji.csrf.clone());
        // The lease is required: page 2 cannot be passed without it.
        let r = post_form(
            &app,
            &format!("/applications/{reference}/pages/2"),
            Some(&minji.cookie),
            &[("csrf", &minji.csrf)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        // Refused, nothing attached: a script named .pdf, a zip (bomb or not),
        // an image of absurd dimensions, too large, no CSRF token.
        let (c, t) = mine();
        let r = upload(c, t, "lease.pdf", b"<script>alert(1)</script>".to_vec()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("judged by its content"));
        let (c, t) = mine();
        let r = upload(
            c,
            t,
            "lease.pdf",
            b"PK\x03\x04\x14\0\0\0\x08\0bomb".to_vec(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bomb.extend(200_000u32.to_be_bytes());
        bomb.extend(200_000u32.to_be_bytes());
        bomb.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        let (c, t) = mine();
        let r = upload(c, t, "lease.png", bomb).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("dimensions"));
        let mut big = b"%PDF-1.7\n".to_vec();
        big.resize(5120 * 1024 + 1, b' ');
        let (c, t) = mine();
        let r = upload(c, t, "lease.pdf", big).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let mut huge = b"%PDF-1.7\n".to_vec();
        huge.resize(nara_server::citizen::uploads::UPLOAD_BODY + 1, b' ');
        let (c, t) = mine();
        let r = upload(c, t, "lease.pdf", huge).await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let (c, _) = mine();
        let r = upload(c, "forged".into(), "lease.pdf", b"%PDF-1.7\n%%EOF".to_vec()).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // Someone else: 404 for upload and download alike.
        let r = upload(
            junho.cookie.clone(),
            junho.csrf.clone(),
            "lease.pdf",
            b"%PDF-1.7\n%%EOF".to_vec(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(
            app.store
                .uploads_of(app.store.application(&reference).await.unwrap().unwrap().id)
                .await
                .unwrap()
                .is_empty(),
            "nothing attached by refused uploads"
        );

        // Accepted: a PDF (whatever its name says), stored by its hash.
        let pdf = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n".to_vec();
        let (c, t) = mine();
        let r = upload(c, t, "lease.exe", pdf.clone()).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&r), format!("/applications/{reference}/pages/2"));
        let (c, t) = mine();
        assert_eq!(
            upload(c, t, "again.pdf", pdf.clone()).await.status(),
            StatusCode::SEE_OTHER
        );
        let hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&pdf))
        };
        let dir = app.data_dir().join("uploads").join(&hash[..2]);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "one copy per content"
        );
        let page2 = app
            .client
            .get(app.url(&format!("/applications/{reference}/pages/2")))
            .header("cookie", &minji.cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page2.contains("application/pdf") && page2.contains("not scanned"));
        let file = app
            .client
            .get(app.url(&format!("/applications/{reference}/files/lease")))
            .header("cookie", &minji.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(file.headers()["content-type"], "application/pdf");
        assert!(
            file.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("sandbox")
        );
        assert_eq!(file.bytes().await.unwrap().to_vec(), pdf);
        let r = app
            .client
            .get(app.url(&format!("/applications/{reference}/files/lease")))
            .header("cookie", &junho.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        // Submitted; the official sees the file at the step that shows it.
        let r = post_form(
            &app,
            &format!("/applications/{reference}/pages/2"),
            Some(&minji.cookie),
            &[("csrf", &minji.csrf), ("lease", &format!("sha256:{hash}"))],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = post_form(
            &app,
            &format!("/applications/{reference}/submit"),
            Some(&minji.cookie),
            &[("csrf", &minji.csrf)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (nts, nts_csrf) = official(&app, "KR/GOV/NTS", "files.nts").await;
        let (mois, _) = official(&app, "KR/GOV/MOIS", "files.mois").await;
        let case_file = |cookie: String| {
            let url = app.url(&format!("/cases/{reference}/files/lease"));
            let client = app.client.clone();
            async move {
                client
                    .get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        // At "submitted" the next step (to review) shows nothing.
        assert_eq!(case_file(nts.clone()).await, StatusCode::NOT_FOUND);
        let r = post_form(
            &app,
            &format!("/cases/{reference}/act"),
            Some(&nts),
            &[("csrf", &nts_csrf), ("to", "review")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let case = app
            .client
            .get(app.url(&format!("/cases/{reference}")))
            .header("cookie", &nts)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(case.contains(&format!("/cases/{reference}/files/lease")));
        assert_eq!(case_file(nts).await, StatusCode::OK);
        assert_eq!(
            case_file(mois).await,
            StatusCode::NOT_FOUND,
            "another agency"
        );
    }
}

backends! {
    /// What a citizen or an official types is text on every page that shows
    /// it: the form, the review, the receipt and its timeline, the case view,
    /// the document and `/verify`.
    async fn user_text_is_escaped_on_every_page(backend: &str) {
        let Some(app) = TestApp::on(backend).services().exchange(3).start().await else { return };
        let minji = app.signed_in("minji").await;
        const NAME: &str = "<script>alert('trade')</script>";
        const PLACE: &str = "<img src=x onerror=alert(1)>";
        const NOTE: &str = "<svg onload=alert('note')>";
        let raw = [NAME, PLACE, NOTE, "<script>", "<img src=x", "<svg onload"];
        let page = |path: String, cookie: String| {
            let client = app.client.clone();
            let url = app.url(&path);
            async move {
                let html = client
                    .get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                for r in raw {
                    assert!(!html.contains(r), "{path} shows {r:?} as markup");
                }
                html
            }
        };
        let reference = start_draft(&app, &minji, "business-registration").await;
        let r = post_form(
            &app,
            &format!("/applications/{reference}/pages/1"),
            Some(&minji.cookie),
            &[
                ("csrf", &minji.csrf),
                ("trade_name", NAME),
                ("kind", "sole_proprietorship"),
                ("opening_date", "2026-12-01"),
                ("premises", PLACE),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let form = reqwest::multipart::Form::new()
            .text("csrf", minji.csrf.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"%PDF-1.7\n%%EOF\n".to_vec()).file_name(NAME),
            );
        let r = app
            .client
            .post(app.url(&format!("/applications/{reference}/files/lease")))
            .header("cookie", &minji.cookie)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let html = page(
            format!("/applications/{reference}/pages/1"),
            minji.cookie.clone(),
        )
        .await;
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
        page(
            format!("/applications/{reference}/pages/2"),
            minji.cookie.clone(),
        )
        .await;
        let html = page(
            format!("/applications/{reference}/review"),
            minji.cookie.clone(),
        )
        .await;
        assert!(html.contains("alert(&#39;trade&#39;)") || html.contains("alert('trade')"));
        let r = post_form(
            &app,
            &format!("/applications/{reference}/submit"),
            Some(&minji.cookie),
            &[("csrf", &minji.csrf)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (nts, nts_csrf) = official(&app, "KR/GOV/NTS", "xss.nts").await;
        for (to, note) in [("review", NOTE), ("approved", NOTE)] {
            let r = post_form(
                &app,
                &format!("/cases/{reference}/act"),
                Some(&nts),
                &[("csrf", &nts_csrf), ("to", to), ("note", note)],
            )
            .await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{to}");
            page(format!("/cases/{reference}"), nts.clone()).await;
            page("/cases".into(), nts.clone()).await;
        }
        let receipt = page(format!("/applications/{reference}"), minji.cookie.clone()).await;
        assert!(
            receipt.contains("onload=alert"),
            "the note is there, as text"
        );
        page("/my/applications".into(), minji.cookie.clone()).await;
        page("/my/inbox".into(), minji.cookie.clone()).await;
        let at = receipt.find("/documents/").expect("a document");
        let id = &receipt[at + 11..at + 11 + receipt[at + 11..].find('"').unwrap()];
        let doc = page(format!("/documents/{id}"), minji.cookie.clone()).await;
        let token_at = doc.find("<textarea id=\"token\"").unwrap();
        let token_start = token_at + doc[token_at..].find('>').unwrap() + 1;
        let token = doc[token_start..token_start + doc[token_start..].find('<').unwrap()].trim();
        let verified = app
            .client
            .post(app.url("/verify"))
            .form(&[("credential", token)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for r in raw {
            assert!(!verified.contains(r), "/verify shows {r:?} as markup");
        }
        assert!(verified.contains("Valid"));
        // Pasted garbage with markup is shown back as text, too.
        let pasted = app
            .client
            .post(app.url("/verify"))
            .form(&[("credential", NAME)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!pasted.contains(NAME));
    }
}

backends! {
    /// With an SMTP relay configured, a citizen who gives an address gets her
    /// notifications by email too; one who does not, does not.
    async fn notifications_are_emailed_when_an_address_is_given(backend: &str) {
        let (port, mailbox) = smtp_sink().await;
        let config = nara_server::config::Config {
            smtp_url: Some(format!("smtp://127.0.0.1:{port}").into()),
            ..Default::default()
        };
        let Some(app) = TestApp::on(backend).config(config).services().start().await else { return };
        let minji = app.signed_in("minji").await;
        let junho = app.signed_in("junho").await;
        for (email, status) in [
            ("not an address <x>", StatusCode::BAD_REQUEST),
            ("minji@example.kr", StatusCode::SEE_OTHER),
        ] {
            let r = post_form(
                &app,
                "/my/inbox/email",
                Some(&minji.cookie),
                &[("csrf", &minji.csrf), ("email", email)],
            )
            .await;
            assert_eq!(r.status(), status, "{email}");
        }
        let report = serde_json::json!({"data": {
            "channel": "sms", "sender": "+82 10-0000-0000", "content": "pay at http://bad.example",
            "lost_money": "no"}});
        let mut references = Vec::new();
        for who in [&minji, &junho] {
            let r = app
                .client
                .post(app.url("/api/v1/services/phishing-report/applications"))
                .header("cookie", &who.cookie)
                .header("x-csrf-token", &who.csrf)
                .json(&report)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            let file: serde_json::Value = r.json().await.unwrap();
            references.push(file["fileId"].as_str().unwrap().to_owned());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while mailbox.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let got = mailbox.lock().unwrap().clone();
        assert_eq!(
            got.len(),
            1,
            "only the citizen who gave an address: {got:?}"
        );
        assert!(got[0].contains("minji@example.kr"));
        assert!(got[0].contains(&references[0]) && got[0].contains("received"));
        assert!(!got[0].contains("bad.example"), "no answers in the email");
        // The inbox page shows the address and the form.
        let inbox = app
            .client
            .get(app.url("/my/inbox"))
            .header("cookie", &minji.cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(inbox.contains("value=\"minji@example.kr\""));
    }
}

backends! {
    /// A decision and the document it issues commit together: when the
    /// document cannot be stored, the decision is not either.
    async fn an_approval_and_its_document_commit_together(backend: &str) {
        let Some(app) = TestApp::on(backend).services().start().await else { return };
        let minji = app.signed_in("minji").await;
        let junho = app.signed_in("junho").await;
        let first = start_draft(&app, &minji, "resident-registration-certificate").await;
        let second = start_draft(&app, &junho, "resident-registration-certificate").await;
        assert_ne!(first, second);
        let (a, b) = (
            app.store.application(&first).await.unwrap().unwrap(),
            app.store.application(&second).await.unwrap().unwrap(),
        );
        let document = |application: &nara_store::applications::Application, id: &str| {
            nara_store::applications::IssuedCredential {
                id: id.into(),
                application_id: application.id,
                agency_id: application.agency_id.clone(),
                credential_type: "ResidentRegistrationCertificate".into(),
                jwt: "header.payload.signature".into(),
                issued_at: 1,
                revoked_at: None,
                status_index: Some(42),
            }
        };
        let states = [("submitted", "citizen"), ("approved", "system")];
        app.store
            .submit_application(&a, "{}", None, &states, "account:1", Some(&document(&a, "doc-a")))
            .await
            .unwrap();
        // The second document wants the same status position: refused, and
        // the application is not approved without it.
        let refused = app
            .store
            .submit_application(&b, "{}", None, &states, "account:1", Some(&document(&b, "doc-b")))
            .await;
        assert!(matches!(refused, Err(nara_store::StoreError::Conflict(_))), "{refused:?}");
        let b = app.store.application(&second).await.unwrap().unwrap();
        assert_eq!(b.state, "draft", "no approval without its document");
        assert!(app.store.credentials_of_application(b.id).await.unwrap().is_empty());
        let a = app.store.application(&first).await.unwrap().unwrap();
        assert_eq!(a.state, "approved");
        assert_eq!(app.store.credentials_of_application(a.id).await.unwrap().len(), 1);
    }
}
