//! Security operations over real HTTP: failed sign-ins against many accounts
//! from one address raise a credential-stuffing alert (a Sigma correlation
//! rule), which an analyst acknowledges and closes; a move the triage rule
//! forbids is refused; every move is a ledger entry.

use reqwest::StatusCode;

use crate::backends;
use crate::common::{TestApp, post_form};

backends! {
    async fn credential_stuffing_raises_an_alert_analysts_triage(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        // Six accounts tried from one address (loopback), each once.
        for n in 0..6 {
            let user = format!("stuffed-{n}");
            let r = post_form(&app, "/sign-in", None, &[("username", &user), ("password", "from-a-leaked-list-1")]).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        // Detection reads the events every two seconds.
        let mut alerts = Vec::new();
        for _ in 0..100 {
            alerts = app.store.alerts(None, 10).await.unwrap();
            if !alerts.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let alert = &alerts[0];
        assert!(alert.title.contains("credential stuffing"), "{}", alert.title);
        assert_eq!(alert.level, "high");
        assert_eq!(alert.group_key, "source_ip=127.0.0.1");
        assert_eq!(alert.status, "open");
        assert!(alert.event_ids().len() >= 5, "{:?}", alert.events);
        let subject = format!("alert:{}", alert.id);
        assert!(app.has_entry(200, |e| e.kind == "secops.alert.raised" && e.subjects.contains(&subject)).await);

        // The analyst sees it, acknowledges it, closes it as a true positive.
        let accounts = app.demo_accounts().await;
        let analyst = accounts.iter().find(|a| a.role == "security_analyst").unwrap();
        let session = app.signed_in(&analyst.username).await;
        let page = app.client.get(app.url("/security/alerts?status=open")).header("cookie", &session.cookie)
            .send().await.unwrap().text().await.unwrap();
        assert!(page.contains("credential stuffing"), "the open alert is listed");
        let path = format!("/security/alerts/{}", alert.id);
        for to in ["acknowledged", "true_positive"] {
            let r = post_form(&app, &path, Some(&session.cookie), &[("csrf", &session.csrf), ("to", to), ("note", "one address, six accounts")]).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "to {to}");
        }
        let closed = app.store.alert(alert.id).await.unwrap().unwrap();
        assert_eq!(closed.status, "true_positive");
        assert!(closed.updated_by.starts_with("account:"));
        assert!(app.has_entry(200, |e| e.kind == "secops.alert.triaged" && e.subjects.contains(&subject)).await);

        // Not back to acknowledged from closed (reopen first); not without the form's token;
        // not a state that does not exist; not an alert that does not exist.
        let r = post_form(&app, &path, Some(&session.cookie), &[("csrf", &session.csrf), ("to", "acknowledged")]).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = post_form(&app, &path, Some(&session.cookie), &[("csrf", "forged"), ("to", "open")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = post_form(&app, &path, Some(&session.cookie), &[("csrf", &session.csrf), ("to", "closed")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = post_form(&app, "/security/alerts/999999", Some(&session.cookie), &[("csrf", &session.csrf), ("to", "open")]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.store.alert(alert.id).await.unwrap().unwrap().status, "true_positive");

        // The API lists it with its events, for analysts and auditors.
        let listed: serde_json::Value = app.client.get(app.url("/api/v1/security/alerts?status=true_positive"))
            .header("cookie", &session.cookie).send().await.unwrap().json().await.unwrap();
        assert_eq!(listed[0]["id"], alert.id);
        assert_eq!(listed[0]["status"], "true_positive");
        assert!(listed[0]["events"].as_array().unwrap().len() >= 5);
        let bad = app.client.get(app.url("/api/v1/security/alerts?status=closed"))
            .header("cookie", &session.cookie).send().await.unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

        // More failures from the same address within ten minutes: suppressed, not a second alert.
        for n in 6..9 {
            let user = format!("stuffed-{n}");
            post_form(&app, "/sign-in", None, &[("username", &user), ("password", "from-a-leaked-list-1")]).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        assert_eq!(app.store.alerts(None, 10).await.unwrap().len(), 1);
    }
}
