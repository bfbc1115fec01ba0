//! Service definitions: published versions, the public pages that explain a
//! service (what it asks, what it fetches, from whom and why), the API, and
//! the designer's check-and-publish page.

use reqwest::StatusCode;

use crate::backends;
use crate::common::{TOKEN, TestApp, post_form};

const MINJI: &str = "900101-2345678";

backends! {
    async fn definitions_are_published_versioned_and_explained(backend: &str) {
        let Some(app) = TestApp::on(backend).services().exchange(1).start().await else { return };
        let accounts = app.demo_accounts().await;
        nara_server::catalogue::services::ensure_demo(&app.store)
            .await
            .unwrap(); // idempotent

        let list: Vec<serde_json::Value> = app
            .get("/api/v1/service-definitions")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list.len(), 7);
        let page = app.get("/apply?lang=ko").await.text().await.unwrap();
        assert!(page.contains("주민등록표 등본 발급") && page.contains("피싱·스미싱 문자 신고"));
        let page = app.get("/apply?q=phishing").await.text().await.unwrap();
        assert!(page.contains("/apply/phishing-report") && !page.contains("/apply/disability-benefit"));
        // The service page says what is fetched, from whom, why and on what basis.
        let page = app
            .get("/apply/resident-registration-certificate?lang=en")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("Resident register"),
            "the evidence's data service"
        );
        assert!(
            page.contains("Ministry of the Interior and Safety"),
            "from whom"
        );
        assert!(page.contains("issuing a certificate you asked for"), "why");
        assert!(
            page.contains("your consent, asked before fetching"),
            "on what basis"
        );
        let page = app
            .get("/apply/disability-benefit?lang=en")
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains("Act on Welfare of Persons with Disabilities art. 32"));
        assert_eq!(
            app.get("/apply/no-such-service").await.status(),
            StatusCode::NOT_FOUND
        );

        // The designer of the first demo agency edits their service.
        let designer = accounts
            .iter()
            .find(|a| a.role == "service_designer")
            .unwrap();
        let agency = designer.agency.clone().unwrap();
        let (code, source) = nara_core::service_def::DEMO
            .iter()
            .map(|(_, s)| (nara_core::service_def::check(s).unwrap(), *s))
            .find(|(d, _)| d.agency.get_ref() == &agency)
            .map(|(d, s)| (d.code.get_ref().clone(), s.to_owned()))
            .expect("a demo service of the designer's agency");
        let s = app.sign_in(designer).await;
        let html = app
            .client
            .get(app.url(&format!("/designer/services?edit={code}")))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains(&format!("code = &quot;{code}&quot;"))
                || html.contains(&format!("code = &#34;{code}&#34;")),
            "the latest source is loaded for editing"
        );
        let csrf = app.csrf_of(&s.cookie, "/designer/services").await;
        // A broken draft: problems with line numbers, nothing published.
        let broken = source.replacen("type = \"text\"", "type = \"txet\"", 1);
        let r = post_form(
            &app,
            "/designer/services",
            Some(&s.cookie),
            &[("csrf", &csrf), ("source", &broken), ("action", "check")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let html = r.text().await.unwrap();
        let line = broken.lines().position(|l| l.contains("txet")).unwrap() + 1;
        assert!(
            html.contains(&format!("line {line}: unknown field type")),
            "{html}"
        );
        // Version 1 again: refused; version 2: published; version 1 stays.
        let r = post_form(
            &app,
            "/designer/services",
            Some(&s.cookie),
            &[("csrf", &csrf), ("source", &source), ("action", "publish")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("publish version 2"));
        let v2 = source.replacen("version = 1", "version = 2", 1).replacen(
            "title = { en = \"",
            "title = { en = \"New: ",
            1,
        );
        let r = post_form(
            &app,
            "/designer/services",
            Some(&s.cookie),
            &[("csrf", &csrf), ("source", &v2), ("action", "publish")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let one: serde_json::Value = app
            .get(&format!("/api/v1/service-definitions/{code}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(one["definition"]["version"], 2);
        assert_eq!(one["versions"].as_array().unwrap().len(), 2);
        let v1: serde_json::Value = app
            .get(&format!("/api/v1/service-definitions/{code}?version=1"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            v1["source"],
            source.as_str(),
            "applications in flight keep their version"
        );
        assert_eq!(
            app.get(&format!("/api/v1/service-definitions/{code}?version=9"))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        // Another agency's service: refused.
        let other = nara_core::service_def::DEMO
            .iter()
            .map(|(_, s)| *s)
            .find(|s| !s.contains(&format!("agency = \"{agency}\"")))
            .unwrap();
        let r = post_form(
            &app,
            "/designer/services",
            Some(&s.cookie),
            &[
                ("csrf", &csrf),
                ("source", &other.replacen("version = 1", "version = 2", 1)),
                ("action", "publish"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("you publish for"));
        // Without the anti-forgery token, nothing.
        let r = post_form(
            &app,
            "/designer/services",
            Some(&s.cookie),
            &[("source", &v2), ("action", "publish")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // Publication is a ledger entry naming the designer.
        let actor = format!(
            "account:{}",
            app.store
                .account_by_username(&designer.username)
                .await
                .unwrap()
                .unwrap()
                .id
        );
        assert!(
            app.has_entry(10, |e| e.kind == "service.definition.published" && e.actor == actor)
                .await
        );

        // Through the API (an operator token): problems carry their lines; text is escaped on pages.
        let r = app
            .client
            .post(app.url("/api/v1/service-definitions"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/toml")
            .body("code = \"x\"\nversion = \"one\"\n")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: serde_json::Value = r.json().await.unwrap();
        assert!(
            problem["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .starts_with("line 2:"),
            "{problem}"
        );
        let hostile = nara_core::service_def::DEMO[4]
            .1
            .replacen("code = \"phishing-report\"", "code = \"xss-test\"", 1)
            .replacen("agency = \"KR/GOV/KNPA\"", "agency = \"KR/GOV/MOIS\"", 1)
            .replacen(
                "en = \"Report a phishing or smishing message\"",
                "en = \"<script>alert(1)</script>\"",
                1,
            );
        let r = app
            .client
            .post(app.url("/api/v1/service-definitions"))
            .bearer_auth(TOKEN)
            .body(hostile)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        for path in ["/apply?lang=en", "/apply/xss-test?lang=en"] {
            let html = app.get(path).await.text().await.unwrap();
            assert!(
                !html.contains("<script>alert(1)</script>"),
                "{path} runs text as script"
            );
            assert!(
                html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                    || html.contains("&#60;script&#62;"),
                "{path}: {}",
                &html[html.find("xss").unwrap_or(0)..]
                    [..300.min(html.len() - html.find("xss").unwrap_or(0))]
            );
        }
    }

    /// `nara demo`'s year of applications: written once, on both backends,
    /// and seen where people look: figures with decisions on time and late
    /// and ratings, an official's queue with open cases in several states,
    /// each case's timeline in order.
    async fn the_demo_year_of_applications(backend: &str) {
        let Some(app) = TestApp::on(backend).exchange(3).services().start().await else { return };
        let today = nara_core::Timestamp::now().0;
        let written = nara_server::demo::ensure_applications(&app.store, app.identity(), app.data_dir(), today).await.unwrap();
        assert!(written > 1_000, "{written} applications");
        let again = nara_server::demo::ensure_applications(&app.store, app.identity(), app.data_dir(), today).await.unwrap();
        assert_eq!(again, 0, "written once");
        let figures = app.store.service_figures(None).await.unwrap();
        let disability = figures.iter().find(|f| f.service_code == "disability-benefit").unwrap();
        assert!(disability.decided > 100 && disability.ratings > 50, "{disability:?}");
        let on_time = disability.sla_share().unwrap();
        assert!(on_time > 0.5 && on_time < 1.0, "decided on time: {on_time}");
        let queue = app.store.queue("KR/GOV/MOHW", None).await.unwrap();
        let states: std::collections::BTreeSet<&str> = queue.iter().map(|a| a.state.as_str()).collect();
        assert!(states.contains("submitted") && states.contains("more_info"), "{states:?}");
        for case in &queue {
            let events = app.store.application_events(case.id).await.unwrap();
            assert_eq!(events.first().unwrap().to_state, "submitted");
            assert_eq!(events.last().unwrap().to_state, case.state);
            assert!(events.windows(2).all(|w| w[0].at <= w[1].at && w[0].to_state == w[1].from_state));
        }
        // A required file is a real upload, in the upload store, for the
        // official who reviews the business registration.
        let nts = app.store.queue("KR/GOV/NTS", Some("business-registration")).await.unwrap();
        let case = nts.first().expect("open business registrations");
        let uploads = app.store.uploads_of(case.id).await.unwrap();
        let lease = uploads.iter().find(|u| u.field == "lease").expect("the lease");
        let hex = lease.hash.strip_prefix("sha256:").unwrap();
        let bytes = std::fs::read(app.data_dir().join("uploads").join(&hex[..2]).join(hex)).unwrap();
        assert!(bytes.starts_with(b"%PDF-") && bytes.len() as i64 == lease.size);
        // The applicant's own list, and the public statistics.
        let minji = app.store.account_by_username("minji").await.unwrap().unwrap();
        let hers = app.store.applications_of(minji.id).await.unwrap();
        assert!(!hers.is_empty());
        // Her evidence was fetched through the exchange: her data-access
        // history names each application, and consent-based evidence has
        // her consent behind it.
        let fetched = app.store.exchanges_of_subject(&app.subject_hash(MINJI), 10_000).await.unwrap();
        let needs_evidence = |code: &str| {
            nara_core::service_def::DEMO.iter().map(|(_, s)| nara_core::service_def::check(s).unwrap()).any(|d| d.code.get_ref() == code && !d.evidence.is_empty())
        };
        let with_evidence: Vec<_> = hers.iter().filter(|a| needs_evidence(&a.service_code)).collect();
        assert!(!with_evidence.is_empty());
        for a in with_evidence {
            assert!(fetched.iter().any(|x| x.issue == a.reference), "no exchange for {}", a.reference);
        }
        let consents = app.store.consents_of(minji.id).await.unwrap();
        for x in fetched.iter().filter(|x| !x.consent_id.is_empty()) {
            assert!(consents.iter().any(|c| c.id == x.consent_id && c.granted_at <= x.started_at));
        }
        let stats = app.get("/statistics").await.text().await.unwrap();
        assert!(stats.contains("Disability pension"));
        assert!(app.store.recent_ledger_entries(5).await.unwrap().len() == 5);
    }
}
