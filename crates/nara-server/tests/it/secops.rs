//! Security operations over real HTTP: failed sign-ins against many accounts
//! from one address raise a credential-stuffing alert (a Sigma correlation
//! rule), which an analyst acknowledges and closes; a move the triage rule
//! forbids is refused; every move is a ledger entry.

use reqwest::StatusCode;

use crate::backends;
use crate::common::{TestApp, post_form, smtp_sink};

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

    async fn analysts_switch_rules_and_test_them_against_recent_events(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let accounts = app.demo_accounts().await;
        let analyst = accounts.iter().find(|a| a.role == "security_analyst").unwrap();
        let auditor = accounts.iter().find(|a| a.role == "auditor").unwrap();
        let session = app.signed_in(&analyst.username).await;
        let stuffing = nara_server::secops::detection::Detector::starter().unwrap().listed().iter()
            .find(|r| r.title.starts_with("nara credential stuffing")).unwrap().id.clone();
        let page = app.client.get(app.url("/security/rules")).header("cookie", &session.cookie)
            .send().await.unwrap().text().await.unwrap();
        assert!(page.contains(&format!("id=\"rule-{stuffing}\"")), "every rule is listed");

        // Switched off with a reason: credential stuffing then raises nothing.
        let path = format!("/security/rules/{stuffing}");
        let r = post_form(&app, &path, Some(&session.cookie), &[("csrf", &session.csrf), ("on", "false"), ("reason", "short")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a reason of 10 characters at least");
        let r = post_form(&app, "/security/rules/no-such-rule", Some(&session.cookie), &[("csrf", &session.csrf), ("on", "false"), ("reason", "a rule that does not run")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = post_form(&app, &path, Some(&session.cookie), &[("csrf", "forged"), ("on", "false"), ("reason", "pen test from the office today")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = post_form(&app, &path, Some(&session.cookie), &[("csrf", &session.csrf), ("on", "false"), ("reason", "pen test from the office today")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let subject = format!("rule:{stuffing}");
        assert!(app.has_entry(200, |e| e.kind == "secops.rule.switched" && e.subjects.contains(&subject)).await);
        for n in 0..6 {
            let user = format!("pentest-{n}");
            post_form(&app, "/sign-in", None, &[("username", &user), ("password", "from-a-leaked-list-1")]).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(4_500)).await;
        assert!(app.store.alerts(None, 10).await.unwrap().iter().all(|a| a.rule_id != stuffing),
            "a rule switched off raises no alert");
        let page = app.client.get(app.url("/security/rules")).header("cookie", &session.cookie)
            .send().await.unwrap().text().await.unwrap();
        assert!(page.contains("pen test from the office today"), "who switched it and why is shown");

        // The running rule, on the test bench, would have raised it.
        let bench = app.client.get(app.url(&format!("/security/rules?test={stuffing}"))).header("cookie", &session.cookie)
            .send().await.unwrap().text().await.unwrap();
        assert!(bench.contains("credential_stuffing.yml"));
        let yaml = nara_server::secops::detection::STARTER_RULES.iter()
            .find(|(f, _)| *f == "credential_stuffing.yml").unwrap().1;
        let r = post_form(&app, "/security/rules/test", Some(&session.cookie),
            &[("csrf", &session.csrf), ("file", "credential_stuffing.yml"), ("yaml", yaml)]).await;
        assert_eq!(r.status(), StatusCode::OK);
        let outcome = r.text().await.unwrap();
        assert!(outcome.contains("source_ip=127.0.0.1"), "the test raises what the rule would have");
        // An edited threshold no run reaches: nothing; a broken file: why, and nothing changed.
        let edited = yaml.replace("gte: 5", "gte: 50");
        assert_ne!(edited, yaml);
        let outcome = post_form(&app, "/security/rules/test", Some(&session.cookie),
            &[("csrf", &session.csrf), ("file", "credential_stuffing.yml"), ("yaml", &edited)]).await.text().await.unwrap();
        assert!(!outcome.contains("source_ip=127.0.0.1"), "the edited rule raises nothing");
        assert!(outcome.contains("Matches: 0."), "the edited rule's outcome is shown");
        let outcome = post_form(&app, "/security/rules/test", Some(&session.cookie),
            &[("csrf", &session.csrf), ("file", ""), ("yaml", "title: x\nlogsource:\n  product: nara\ndetection:\n  sel:\n    kind|nosuchmodifier: a\n  condition: sel\n")]).await.text().await.unwrap();
        assert!(outcome.contains("This file does not load"), "an unknown modifier is named");
        // A draft: an informational rule shows its matches too.
        let outcome = post_form(&app, "/security/rules/test", Some(&session.cookie),
            &[("csrf", &session.csrf), ("yaml", "title: pentest accounts\nid: 6c1f0a7e-2b9d-4e51-9a43-2f0c3d5e7a10\nlogsource:\n  product: nara\n  service: security\ndetection:\n  sel:\n    user|startswith: pentest-\n  condition: sel\nlevel: informational\n")]).await.text().await.unwrap();
        assert!(outcome.contains("Matches: 6."), "each event the draft matches");
        assert_eq!(app.store.alerts(None, 10).await.unwrap().iter().filter(|a| a.rule_id == stuffing).count(), 0,
            "a test stores nothing");

        // Auditors read and test, but do not switch.
        let audit = app.signed_in(&auditor.username).await;
        let r = post_form(&app, &path, Some(&audit.cookie), &[("csrf", &audit.csrf), ("on", "true"), ("reason", "an auditor may not do this")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = post_form(&app, "/security/rules/test", Some(&audit.cookie), &[("csrf", &audit.csrf), ("yaml", yaml)]).await;
        assert_eq!(r.status(), StatusCode::OK);

        // Back on (the engine's own test shows it raising again).
        let r = post_form(&app, &path, Some(&session.cookie), &[("csrf", &session.csrf), ("on", "true"), ("reason", "the pen test is over")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(app.store.rules_switched_off().await.unwrap().is_empty());
    }

    async fn the_alert_level_tightens_the_per_address_limit(backend: &str) {
        // 40 a minute at normal: a burst of 10; at serious, 5 a minute: a burst of 2.
        // Loopback is a trusted proxy here, so each test client is its own address.
        let config = nara_server::Config {
            max_body_bytes: 64 * 1024,
            rate_limit_per_minute: 40,
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            ..nara_server::Config::default()
        };
        let Some(app) = TestApp::on(backend).config(config).start().await else { return };
        let from = |client: &'static str, path: &'static str| {
            app.client.get(app.url(path)).header("x-forwarded-for", client).send()
        };
        let mut admitted = 0;
        for _ in 0..12 {
            let r = from("198.51.100.7", "/api/v1/services").await.unwrap();
            if r.status() == StatusCode::OK {
                admitted += 1;
                continue;
            }
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["status"], 429);
        }
        assert_eq!(admitted, 10, "the burst at normal");
        // A page answers in words, in the reader's language; another address is unaffected;
        // health checks and static files are never limited.
        let page = app.client.get(app.url("/services")).header("x-forwarded-for", "198.51.100.7")
            .header("accept-language", "ko").send().await.unwrap();
        assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(page.text().await.unwrap().contains("요청이 너무 많습니다"));
        assert_eq!(from("198.51.100.8", "/services").await.unwrap().status(), StatusCode::OK);
        assert_eq!(from("198.51.100.7", "/healthz").await.unwrap().status(), StatusCode::OK);
        assert_eq!(from("198.51.100.7", "/static/style.css").await.unwrap().status(), StatusCode::OK);
        assert_eq!(from("198.51.100.7", "/ledger/checkpoint").await.unwrap().status(), StatusCode::OK, "verification material is not limited");
        // The refusals are one security event, not one each.
        let mut limited = Vec::new();
        for _ in 0..50 {
            limited = app.store.security_events_after(0, 1000).await.unwrap()
                .into_iter().filter(|e| e.kind == "rate_limit.exceeded").collect::<Vec<_>>();
            if !limited.is_empty() { break }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(limited.len(), 1, "{limited:?}");
        assert_eq!(limited[0].address, "198.51.100.7");

        // An auditor reads the level but may not set it; an analyst sets it, with a reason.
        let accounts = app.demo_accounts().await;
        let auditor = accounts.iter().find(|a| a.role == "auditor").unwrap();
        let auditor = app.signed_in(&auditor.username).await;
        let page = app.client.get(app.url("/security/level")).header("cookie", &auditor.cookie)
            .send().await.unwrap().text().await.unwrap();
        assert!(page.contains("40 public requests a minute"), "{page}");
        assert!(!page.contains("name=\"reason\""), "auditors read only");
        let r = post_form(&app, "/security/level", Some(&auditor.cookie), &[("csrf", &auditor.csrf), ("from", "normal"), ("to", "serious"), ("reason", "a national campaign")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let analyst = accounts.iter().find(|a| a.role == "security_analyst").unwrap();
        let analyst = app.signed_in(&analyst.username).await;
        // No reason, a level that does not exist, a stale "from": refused, nothing changes.
        for (from, to, reason, status) in [
            ("normal", "serious", "short", StatusCode::BAD_REQUEST),
            ("normal", "doomed", "a national campaign", StatusCode::BAD_REQUEST),
            ("caution", "serious", "a national campaign", StatusCode::CONFLICT),
        ] {
            let r = post_form(&app, "/security/level", Some(&analyst.cookie), &[("csrf", &analyst.csrf), ("from", from), ("to", to), ("reason", reason)]).await;
            assert_eq!(r.status(), status, "{from} → {to}");
        }
        assert_eq!(app.store.alert_level().await.unwrap(), nara_core::secops::AlertLevel::Normal);
        let r = post_form(&app, "/security/level", Some(&analyst.cookie), &[("csrf", &analyst.csrf), ("from", "normal"), ("to", "serious"), ("reason", "credential stuffing from many networks")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.store.alert_level().await.unwrap(), nara_core::secops::AlertLevel::Serious);
        assert!(app.has_entry(200, |e| e.kind == "secops.alert_level.set").await);

        // At once on this node: a new address gets a burst of 2.
        let mut admitted = 0;
        for _ in 0..4 {
            if from("198.51.100.9", "/api/v1/services").await.unwrap().status() == StatusCode::OK {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 2, "the burst at serious");
        // Staff see the level on every page; the public status page shows it too.
        let page = app.client.get(app.url("/security/alerts")).header("cookie", &auditor.cookie)
            .send().await.unwrap().text().await.unwrap();
        assert!(page.contains("alert-level-bar level-serious"), "the banner");
        let status = app.client.get(app.url("/status?lang=es")).header("x-forwarded-for", "198.51.100.10")
            .send().await.unwrap().text().await.unwrap();
        assert!(status.contains("Grave"), "{status}");
        assert!(!status.contains("credential stuffing"), "the reason stays with the analysts");
    }

    async fn agency_syslog_over_udp_and_tcp_raises_alerts(backend: &str) {
        // util-linux's `logger` is the independent sender: RFC 5424 and 3164, UDP and TCP
        // (newline-ended and octet-counted frames).
        if std::process::Command::new("logger").arg("--version").output().is_err() {
            eprintln!("logger (util-linux) not installed: skipped");
            return;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = nara_server::Config {
            max_body_bytes: 64 * 1024,
            rate_limit_per_minute: 0,
            syslog_listen: Some(format!("127.0.0.1:{port}").parse().unwrap()),
            syslog_senders: vec!["127.0.0.1/32".parse().unwrap()],
            ..nara_server::Config::default()
        };
        let Some(app) = TestApp::on(backend).config(config).start().await else { return };
        let logger = |args: &[&str], message: &str| {
            let status = std::process::Command::new("logger")
                .args(["--server", "127.0.0.1", "--port", &port.to_string()])
                .args(args)
                .arg(message)
                .status()
                .unwrap();
            assert!(status.success(), "logger {args:?}");
        };
        // Five accounts tried from one address, reported by an agency's SSO over syslog.
        for (n, transport) in ["--udp", "--tcp", "--udp", "--tcp", "--udp"].into_iter().enumerate() {
            let user = format!("user=\"citizen-{n}\"");
            let mut args = vec![transport, "--rfc5424", "--tag", "sso", "--msgid", "login.failed",
                "--sd-id", "nara@32473", "--sd-param", &user, "--sd-param", "src=\"203.0.113.77\""];
            if n == 3 {
                args.push("--octet-count");
            }
            logger(&args, "bad password");
        }
        logger(&["--udp", "--rfc3164", "--tag", "sshd"], "Failed password for root from 203.0.113.78 port 22");
        // Not syslog, not UTF-8, and a sender outside syslog_senders: counted, not stored.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.send_to(b"hello, not syslog", ("127.0.0.1", port)).unwrap();
        udp.send_to(b"<34>1 \xff\xfe\xfd", ("127.0.0.1", port)).unwrap();
        let stranger = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        stranger.send_to(b"<34>1 - h app - login.failed - from a stranger", ("127.0.0.1", port)).unwrap();

        let mut events = Vec::new();
        for _ in 0..100 {
            events = app.store.security_events_after(0, 1000).await.unwrap()
                .into_iter().filter(|e| e.kind.starts_with("system.")).collect::<Vec<_>>();
            if events.len() >= 6 { break }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(events.len(), 6, "{events:?}");
        let failed: Vec<_> = events.iter().filter(|e| e.kind == "system.login.failed").collect();
        assert_eq!(failed.len(), 5);
        assert!(failed.iter().all(|e| e.address == "203.0.113.77" && e.username.starts_with("citizen-")));
        assert!(events.iter().any(|e| e.kind == "system.syslog.sshd" && e.detail.contains("Failed password for root")));
        assert!(!events.iter().any(|e| e.detail.contains("stranger")));

        // The starter rule for agency systems' credential stuffing fires.
        let mut alerts = Vec::new();
        for _ in 0..100 {
            alerts = app.store.alerts(None, 10).await.unwrap();
            if !alerts.is_empty() { break }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(alerts[0].title.contains("agency system credential stuffing"), "{}", alerts[0].title);
        assert_eq!(alerts[0].group_key, "source_ip=203.0.113.77");
        // Operators see what was refused.
        let metrics = app.get_as_operator("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("nara_syslog_messages_total{transport=\"udp\",outcome=\"malformed\"} 2"), "{metrics}");
        assert!(metrics.contains("nara_syslog_messages_total{transport=\"udp\",outcome=\"refused_sender\"} 1"));
    }

    async fn analysts_group_alerts_into_an_incident_and_work_it(backend: &str) {
        let Some(app) = TestApp::start(backend).await else { return };
        let alert = |rule: &str, level: &str| nara_store::secops::NewAlert {
            rule_id: rule.into(), title: format!("rule {rule}"), level: level.into(),
            group_key: "source_ip=203.0.113.5".into(), events: vec![], first_at: 1, last_at: 2,
        };
        let ids = app.store.record_alerts(&[alert("a", "medium"), alert("b", "critical")], 0).await.unwrap();
        let accounts = app.demo_accounts().await;
        let analyst = accounts.iter().find(|a| a.role == "security_analyst").unwrap();
        let s = app.signed_in(&analyst.username).await;
        let form = |pairs: Vec<(&'static str, String)>| {
            let mut all = vec![("csrf", s.csrf.clone())];
            all.extend(pairs);
            all
        };
        let post = |path: String, pairs: Vec<(&'static str, String)>| {
            let app = &app;
            let cookie = s.cookie.clone();
            async move {
                let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                post_form(app, &path, Some(&cookie), &pairs).await
            }
        };
        // A new incident around the first alert, titled by the analyst; the second joins it.
        let r = post("/security/incidents".into(), form(vec![("alert", ids[0].to_string()), ("incident", "new".into()), ("title", "Stuffing against the portal".into())])).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let at = r.headers()["location"].to_str().unwrap().to_owned();
        let id: i64 = at.rsplit('/').next().unwrap().parse().unwrap();
        let r = post("/security/incidents".into(), form(vec![("alert", ids[1].to_string()), ("incident", id.to_string())])).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        // Not twice, not into an incident that does not exist.
        let r = post("/security/incidents".into(), form(vec![("alert", ids[1].to_string()), ("incident", "new".into())])).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = post("/security/incidents".into(), form(vec![("alert", ids[0].to_string()), ("incident", "999999".into())])).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let incident = app.store.incident(id).await.unwrap().unwrap();
        assert_eq!((incident.alerts, incident.level.as_str(), incident.status.as_str()), (2, "critical", "open"));

        // Assigned to the analyst; a citizen cannot be assigned.
        let me = app.store.account_by_username(&analyst.username).await.unwrap().unwrap().id;
        let citizen = accounts.iter().find(|a| a.role == "citizen").unwrap();
        let citizen = app.store.account_by_username(&citizen.username).await.unwrap().unwrap().id;
        let path = format!("/security/incidents/{id}");
        let r = post(path.clone(), form(vec![("change", "assign".into()), ("analyst", citizen.to_string())])).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = post(path.clone(), form(vec![("change", "assign".into()), ("analyst", me.to_string())])).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = post(path.clone(), form(vec![("change", "note".into()), ("note", "Blocked 203.0.113.5 at the edge <script>".into())])).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        for (from, to) in [("open", "contained"), ("contained", "resolved")] {
            let r = post(path.clone(), form(vec![("change", "move".into()), ("from", from.into()), ("to", to.into())])).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{from} → {to}");
        }
        // A stale move, a note on a resolved incident, an empty note: refused.
        let r = post(path.clone(), form(vec![("change", "move".into()), ("from", "open".into()), ("to", "contained".into())])).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = post(path.clone(), form(vec![("change", "note".into()), ("note", "late".into())])).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = post(path.clone(), form(vec![("change", "note".into()), ("note", "  ".into())])).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        let timeline: Vec<String> = app.store.incident_timeline(id).await.unwrap().into_iter().map(|s| s.kind).collect();
        assert_eq!(timeline, ["created", "alert_added", "alert_added", "assigned", "note", "status", "status"]);
        for kind in ["secops.incident.opened", "secops.incident.assigned", "secops.incident.note", "secops.incident.status"] {
            assert!(app.has_entry(300, |e| e.kind == kind && e.subjects.contains(&format!("incident:{id}"))).await, "{kind}");
        }
        // An auditor reads it all, escaped.
        let auditor = accounts.iter().find(|a| a.role == "auditor").unwrap();
        let auditor = app.signed_in(&auditor.username).await;
        let page = app.client.get(app.url(&path)).header("cookie", &auditor.cookie).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("Stuffing against the portal") && page.contains("Blocked 203.0.113.5 at the edge &#60;script&#62;") && !page.contains("edge <script>"), "{page}");
        assert!(!page.contains("name=\"change\""), "auditors read only");
        let list = app.client.get(app.url("/security/alerts")).header("cookie", &auditor.cookie).send().await.unwrap().text().await.unwrap();
        assert!(list.contains(&format!("/security/incidents/{id}")), "alerts link to their incident");
    }

    async fn phishing_reports_become_a_reviewed_blocklist(backend: &str) {
        let Some(app) = TestApp::on(backend).services().exchange(3).start().await else { return };
        let report = |who: &'static str, sender: &'static str, content: &'static str| {
            let app = &app;
            async move {
                let s = app.signed_in(who).await;
                let r = app.client.post(app.url("/api/v1/services/phishing-report/applications"))
                    .header("cookie", &s.cookie).header("x-csrf-token", &s.csrf)
                    .json(&serde_json::json!({"data": {"channel": "sms", "sender": sender, "content": content, "lost_money": "no"}}))
                    .send().await.unwrap();
                assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
            }
        };
        // Two citizens, the same scam written two ways; a third text names a bank's real site only.
        report("minji", "010-9876-5432", "[택배] 주소 불일치. 확인: http://Bad-Parcel.example/pay#now 문의 1588-0000").await;
        report("junho", "+82 10 9876 5432", "Your parcel is held: pay at bad-parcel.example/pay.").await;
        report("minji", "alerts@naver.com", "see https://www.gov.kr for help").await;

        let mut pending = Vec::new();
        for _ in 0..100 {
            pending = app.store.indicators(Some("pending"), 100).await.unwrap();
            if pending.len() >= 4 { break }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let got: Vec<(&str, &str, i64)> = pending.iter().map(|i| (i.kind.as_str(), i.value.as_str(), i.reports)).collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got.contains(&("url", "http://bad-parcel.example/pay", 2)), "{got:?}");
        assert!(got.contains(&("domain", "bad-parcel.example", 2)));
        assert!(got.contains(&("phone", "+821098765432", 2)));
        assert!(got.contains(&("phone", "+8215880000", 1)));

        // An analyst lists the address and the number, rejects the domain; a stale decision is refused.
        let analyst = app.demo_accounts().await.into_iter().find(|a| a.role == "security_analyst").unwrap();
        let s = app.signed_in(&analyst.username).await;
        let id = |kind: &str, value: &str| pending.iter().find(|i| i.kind == kind && i.value == value).unwrap().id;
        for (kind, value, to) in [("url", "http://bad-parcel.example/pay", "listed"), ("phone", "+821098765432", "listed"), ("domain", "bad-parcel.example", "rejected")] {
            let r = post_form(&app, &format!("/security/blocklist/{}", id(kind, value)), Some(&s.cookie), &[("csrf", &s.csrf), ("from", "pending"), ("to", to)]).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{value}");
        }
        let r = post_form(&app, &format!("/security/blocklist/{}", id("url", "http://bad-parcel.example/pay")), Some(&s.cookie), &[("csrf", &s.csrf), ("from", "pending"), ("to", "rejected")]).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = post_form(&app, &format!("/security/blocklist/{}", id("url", "http://bad-parcel.example/pay")), Some(&s.cookie), &[("csrf", &s.csrf), ("from", "pending"), ("to", "deleted")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(app.has_entry(200, |e| e.kind == "secops.blocklist.listed").await);

        // The feeds, to anyone.
        let text = app.get("/blocklist.txt").await.text().await.unwrap();
        assert!(text.contains("url\thttp://bad-parcel.example/pay\t") && text.contains("phone\t+821098765432\t"), "{text}");
        assert!(!text.contains("bad-parcel.example\t") || !text.contains("domain\t"), "the rejected domain is not listed");
        let json: serde_json::Value = app.get("/blocklist.json").await.json().await.unwrap();
        assert_eq!(json["entries"].as_array().unwrap().len(), 2);
        assert_eq!(json["entries"][0]["reports"], 2);
        let stix = app.get("/blocklist.stix.json").await;
        assert_eq!(stix.headers()["content-type"], "application/stix+json;version=2.1");
        let bundle: serde_json::Value = stix.json().await.unwrap();
        assert_eq!(bundle["type"], "bundle");
        let patterns: Vec<&str> = bundle["objects"].as_array().unwrap().iter().filter_map(|o| o["pattern"].as_str()).collect();
        assert_eq!(patterns, ["[url:value = 'http://bad-parcel.example/pay']", "[x-nara-phone-number:value = '+821098765432']"]);
        // The OASIS validator (PyPI stix2-validator), when CI provides it.
        if let Ok(validator) = std::env::var("NARA_STIX_VALIDATOR") {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("blocklist.json");
            std::fs::write(&file, bundle.to_string()).unwrap();
            // Strict: warnings (an id that is not a UUIDv4, say) fail too.
            let out = std::process::Command::new(validator).arg("--strict").arg(&file).output().unwrap();
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "stix2_validator: {said}{}", String::from_utf8_lossy(&out.stderr));
        }
    }

    async fn probed_systems_decide_their_services_health(backend: &str) {
        // The agency systems: a real HTTP server on loopback, one healthy, one slow, one failing.
        let targets = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route("/slow", axum::routing::get(|| async {
                tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
                "slow"
            }))
            .route("/fail", axum::routing::get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, targets).await });

        let Some(app) = TestApp::start(backend).await else { return };
        let agency: nara_core::MemberId = "KR/GOV/MOIS".parse().unwrap();
        let systems = app.store.list_systems(&nara_core::catalogue::SystemFilter { agency: Some(agency.clone()), ..Default::default() },
            nara_core::catalogue::PageRequest { page: 1, per_page: 4 }).await.unwrap().items;
        let services = app.store.list_services(&nara_core::catalogue::ServiceFilter { agency: Some(agency), ..Default::default() },
            nara_core::catalogue::PageRequest { page: 1, per_page: 2 }).await.unwrap().items;
        // Three point at the loopback server; the fourth at a seeded, real-looking host that
        // must never be contacted.
        for (system, endpoint) in systems.iter().zip([format!("{at}/ok"), format!("{at}/slow"), format!("{at}/ok"), "https://resreg.mois.go.kr/health".into()]) {
            let mut d = system.details.clone();
            d.endpoint_url = Some(endpoint);
            app.store.update_system(system.id, &d, "test").await.unwrap();
        }
        app.store.add_service_dependency(services[0].id, systems[0].id).await.unwrap();
        app.store.add_service_dependency(services[0].id, systems[1].id).await.unwrap();
        app.store.add_service_dependency(services[1].id, systems[2].id).await.unwrap();

        let health = || {
            let app = &app;
            async move {
                let now = nara_core::Timestamp::now().0;
                app.store.systems_health(now).await.unwrap().into_iter().map(|h| (h.system_id, h.state)).collect::<Vec<_>>()
            }
        };
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen = health().await;
            if seen.len() >= 3 { break }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let state_of = |seen: &[(i64, String)], id: i64| seen.iter().find(|(s, _)| *s == id).map(|(_, h)| h.clone());
        assert_eq!(seen.len(), 3, "only the loopback endpoints were probed: {seen:?}");
        assert_eq!(state_of(&seen, systems[0].id).as_deref(), Some("up"));
        assert_eq!(state_of(&seen, systems[1].id).as_deref(), Some("degraded"));
        assert_eq!(state_of(&seen, systems[3].id), None, "the seeded host was never contacted");
        // Without the whole inventory, only loopback endpoints are even selected: thousands of
        // seeded hosts never probed cannot fill every round and starve them.
        let later = nara_core::Timestamp::now().0 + 3_600_000;
        let mut due: Vec<i64> = app.store.probe_targets(later, 10_000, true).await.unwrap().into_iter().map(|t| t.id).collect();
        due.sort();
        let mut loopback = vec![systems[0].id, systems[1].id, systems[2].id];
        loopback.sort();
        assert_eq!(due, loopback);
        assert!(app.store.probe_targets(later, 10_000, false).await.unwrap().len() > 3);

        // The first service is degraded (a slow dependency); the second up.
        let page = app.get(&format!("/services/{}?lang=en", services[0].id)).await.text().await.unwrap();
        assert!(page.contains("health-degraded"), "{page}");
        // A system goes down: its endpoint now fails; the service shows it at once.
        let mut d = systems[2].details.clone();
        d.endpoint_url = Some(format!("{at}/fail"));
        let r = app.client.put(app.url(&format!("/api/v1/systems/{}", systems[2].id))).bearer_auth(crate::common::TOKEN)
            .json(&d).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let mut down = None;
        for _ in 0..100 {
            down = state_of(&health().await, systems[2].id);
            if down.as_deref() == Some("down") { break }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(down.as_deref(), Some("down"));
        let page = app.get(&format!("/services/{}?lang=ko", services[1].id)).await.text().await.unwrap();
        assert!(page.contains("health-down") && page.contains("중단"), "{page}");
        let status = app.get("/status?lang=en").await.text().await.unwrap();
        assert!(status.contains(&format!("/services/{}", services[1].id)) && status.contains("Down"), "{status}");
        let operator = app.demo_accounts().await.into_iter().find(|a| a.role == "operator").unwrap();
        let operator = app.signed_in(&operator.username).await;
        let ops = app.client.get(app.url("/operations/health")).header("cookie", &operator.cookie).send().await.unwrap().text().await.unwrap();
        assert!(ops.contains("uptime-title") && ops.contains("HTTP 503"), "{ops}");
        // Going down is a security event, the agency named (the starter rules count them).
        let events = app.store.security_events(Some("probe.down"), 10).await.unwrap();
        assert_eq!(events.len(), 1, "once, when it went down: {events:?}");
        assert_eq!((events[0].username.as_str(), events[0].detail.as_str()), ("KR/GOV/MOIS", systems[2].details.code.as_str()));
    }

    async fn high_alerts_are_emailed_to_the_analysts_on_call(backend: &str) {
        let (port, mailbox) = smtp_sink().await;
        let config = nara_server::Config {
            smtp_url: Some(format!("smtp://127.0.0.1:{port}").into()),
            rate_limit_per_minute: 0,
            ..nara_server::Config::default()
        };
        let Some(app) = TestApp::on(backend).config(config).start().await else { return };
        let analyst = app.demo_accounts().await.into_iter().find(|a| a.role == "security_analyst").unwrap();
        let s = app.signed_in(&analyst.username).await;
        let r = post_form(&app, "/security/on-call", Some(&s.cookie), &[("csrf", &s.csrf), ("email", "not an address")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = post_form(&app, "/security/on-call", Some(&s.cookie), &[("csrf", &s.csrf), ("email", "soc@security.example")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let page = app.client.get(app.url("/security/alerts")).header("cookie", &s.cookie).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("High and critical alerts are emailed to:"), "{page}");
        let alert = |title: &str, level: &str| nara_store::secops::NewAlert {
            rule_id: "r".into(), title: title.into(), level: level.into(),
            group_key: "source_ip=203.0.113.9".into(), events: vec![], first_at: 1, last_at: 2,
        };
        app.store.record_alerts(&[alert("medium noise", "medium"), alert("critical stuffing", "critical")], 0).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while mailbox.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        let mail = mailbox.lock().unwrap().clone();
        assert_eq!(mail.len(), 1, "only the critical alert: {mail:?}");
        assert!(mail[0].contains("soc@security.example") && mail[0].contains("critical stuffing"), "{}", mail[0]);
        assert!(mail[0].contains("/security/alerts#alert-"), "{}", mail[0]);
    }

    async fn events_past_retention_go_only_once_detection_has_read_them(backend: &str) {
        // A bare store: no detection running beside the test to move the read position.
        let Some((store, _dir)) = crate::common::fresh_store(backend).await else { return };
        let now = nara_core::Timestamp::now().0;
        let old = now - 500 * 86_400_000;
        let event = |at: i64, kind: &str| nara_store::secops::ReportedEvent {
            at, kind: kind.into(), username: String::new(), address: String::new(), detail: String::new(),
        };
        store.record_reported_events(&[event(old, "system.a"), event(old, "system.b"), event(old, "system.c"), event(now, "system.d")]).await.unwrap();
        let ids: Vec<i64> = store.security_events_after(0, 10).await.unwrap().into_iter().map(|e| e.id).collect();
        let before = now - 400 * 86_400_000;
        // Detection's own round may have read them already; set the read position explicitly.
        store.record_alerts(&[], ids[1]).await.unwrap();
        assert_eq!(store.prune_security_events(before, 10_000).await.unwrap(), 2, "the two old ones read");
        let left: Vec<String> = store.security_events_after(0, 10).await.unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(left, ["system.c", "system.d"], "an unread old one and the new one stay");
    }
}

/// Probes over TLS and TCP against real servers on loopback: a certificate
/// about to expire degrades its system, one from a CA nobody configured is
/// down with the reason, an open port is up and a closed one down.
#[tokio::test]
async fn probes_read_certificates_and_tcp_ports() {
    use nara_core::secops::Health;
    use nara_server::secops::probes;
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca) = probes::serve_demo_tls(dir.path()).await.unwrap();
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let target = |endpoint_url: String| nara_store::health::ProbeTarget {
        id: 1,
        grade: 1,
        endpoint_url,
    };
    let trusting = probes::client(Some(&ca)).unwrap();
    let https = format!("https://{tls}/demo/probe/ok");
    let r = probes::probe(&trusting, target(https.clone())).await;
    assert_eq!(r.health, Health::Degraded, "{}", r.detail);
    assert_eq!(r.status_code, Some(200));
    assert!(
        r.detail.contains(&format!(
            "expires in {} days",
            probes::DEMO_CERTIFICATE_DAYS
        )),
        "{}",
        r.detail
    );
    let r = probes::probe(&probes::client(None).unwrap(), target(https)).await;
    assert_eq!(r.health, Health::Down);
    assert!(
        r.detail.to_lowercase().contains("certificate") || r.detail.contains("Issuer"),
        "{}",
        r.detail
    );

    let r = probes::probe(
        &trusting,
        target(format!("tcp://{}", open.local_addr().unwrap())),
    )
    .await;
    assert_eq!(
        (r.health, r.status_code),
        (Health::Up, None),
        "{}",
        r.detail
    );
    let r = probes::probe(&trusting, target(format!("tcp://{closed}"))).await;
    assert_eq!(r.health, Health::Down);
    assert!(r.detail.starts_with("TCP: "), "{}", r.detail);
    // A bad extra-roots file is refused, naming it.
    let bad = dir.path().join("missing.pem");
    let e = probes::client(Some(&bad)).unwrap_err().to_string();
    assert!(e.contains("missing.pem"), "{e}");
}
