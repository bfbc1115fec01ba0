//! The store's contract: the same tests against SQLite and PostgreSQL.

use nara_core::*;
use nara_store::{Store, StoreError};

use crate::backends;
use crate::common::fresh_store;

fn agency(id: &str) -> NewAgency {
    NewAgency {
        id: MemberId::parse(id).unwrap(),
        name: Localized::new("Ministry of Tests", "Ministerio de Pruebas", "시험부"),
        kind: AgencyKind::Ministry,
    }
}

fn system(agency: &str, code: &str, grade: i64) -> SystemInput {
    SystemInput {
        agency: MemberId::parse(agency).unwrap(),
        code: code.into(),
        name: format!("System {code}"),
        kind: SystemKind::Database,
        grade: Grade::new(grade).unwrap(),
        environment: Environment::Production,
        endpoint_url: Some("https://db.test.go.kr/".into()),
        status: SystemStatus::Operational,
    }
}

fn service(agency: &str, code: &str) -> ServiceInput {
    ServiceInput {
        agency: MemberId::parse(agency).unwrap(),
        code: code.into(),
        name: Localized::new("Dog licence", "Licencia canina", "반려견 등록"),
        description: Localized::new(
            "Register your dog.",
            "Registre a su perro.",
            "반려견을 등록합니다.",
        ),
        audience: Audience::Citizen,
        legal_basis: "Animal Protection Act, Article 15".into(),
        channel: Channel::Online,
        status: ServiceStatus::Active,
    }
}

async fn store(backend: &str) -> Option<(Store, Option<tempfile::TempDir>)> {
    fresh_store(backend).await
}

backends! {
    async fn agencies_round_trip(backend: &str) {
        let Some((store, _dir)) = store(backend).await else { return };
        let created = store.create_agency(&agency("KR/GOV/MOT"), "test").await.unwrap();
        let got = store.get_agency(&created.id).await.unwrap().unwrap();
        assert_eq!(got, created);
        assert!(matches!(store.create_agency(&agency("KR/GOV/MOT"), "test").await, Err(StoreError::Conflict(_))));

        let changes = AgencyChanges { name: Localized::new("Ministry of Trials", "Ministerio de Ensayos", "시행부"), kind: AgencyKind::PublicBody };
        let updated = store.update_agency(&created.id, &changes, "test").await.unwrap();
        assert_eq!(updated.created_at, created.created_at);
        assert_eq!(store.get_agency(&created.id).await.unwrap().unwrap().name.ko, "시행부");
        let missing = MemberId::parse("KR/GOV/NOPE").unwrap();
        assert!(matches!(store.update_agency(&missing, &changes, "test").await, Err(StoreError::NotFound(_))));
        assert!(store.get_agency(&missing).await.unwrap().is_none());
    }

    async fn systems_round_trip_and_constraints(backend: &str) {
        let Some((store, _dir)) = store(backend).await else { return };
        store.create_agency(&agency("KR/GOV/MOT"), "test").await.unwrap();
        let s = store.create_system(&system("KR/GOV/MOT", "DB-1", 1), "test").await.unwrap();
        assert_eq!(store.get_system(s.id).await.unwrap().unwrap(), s);
        assert!(matches!(store.create_system(&system("KR/GOV/MOT", "DB-1", 2), "test").await, Err(StoreError::Conflict(_))));
        match store.create_system(&system("KR/GOV/NONE", "DB-2", 2), "test").await {
            Err(StoreError::Invalid(i)) => assert_eq!(i.errors[0].field, "agency"),
            other => panic!("expected an invalid agency, got {other:?}"),
        }
        let mut changed = system("KR/GOV/MOT", "DB-1", 3);
        changed.endpoint_url = None;
        let u = store.update_system(s.id, &changed, "test").await.unwrap();
        assert_eq!(u.details.grade.get(), 3);
        assert_eq!(store.get_system(s.id).await.unwrap().unwrap().details.endpoint_url, None);
        assert!(matches!(store.update_system(999_999, &changed, "test").await, Err(StoreError::NotFound(_))));
        // Invalid input is refused before the database is touched.
        let mut bad = system("KR/GOV/MOT", "DB 9", 1);
        bad.name = String::new();
        assert!(matches!(store.create_system(&bad, "test").await, Err(StoreError::Invalid(_))));
    }

    async fn services_round_trip(backend: &str) {
        let Some((store, _dir)) = store(backend).await else { return };
        store.create_agency(&agency("KR/LOC/TOWN"), "test").await.unwrap();
        let s = store.create_service(&service("KR/LOC/TOWN", "dog-licence"), "test").await.unwrap();
        assert_eq!(store.get_service(s.id).await.unwrap().unwrap(), s);
        let mut changed = service("KR/LOC/TOWN", "dog-licence");
        changed.status = ServiceStatus::Suspended;
        changed.name.es = "Licencia para perros".into();
        store.update_service(s.id, &changed, "test").await.unwrap();
        let got = store.get_service(s.id).await.unwrap().unwrap();
        assert_eq!(got.details.status, ServiceStatus::Suspended);
        assert_eq!(got.details.name.es, "Licencia para perros");
        assert!(matches!(store.create_service(&service("KR/LOC/TOWN", "dog-licence"), "test").await, Err(StoreError::Conflict(_))));
    }

    async fn filters_search_and_pages(backend: &str) {
        let Some((store, _dir)) = store(backend).await else { return };
        store.seed(&seed::demo().unwrap(), &|_| {}).await.unwrap();
        let all = store.list_systems(&SystemFilter::default(), PageRequest { page: 1, per_page: 7 }).await.unwrap();
        assert_eq!(all.total, 200);
        assert_eq!(all.items.len(), 7);
        assert_eq!(all.pages(), 29);
        let last = store.list_systems(&SystemFilter::default(), PageRequest { page: 29, per_page: 7 }).await.unwrap();
        assert_eq!(last.items.len(), 4);
        let beyond = store.list_systems(&SystemFilter::default(), PageRequest { page: 30, per_page: 7 }).await.unwrap();
        assert!(beyond.items.is_empty());

        let mois = MemberId::parse("KR/GOV/MOIS").unwrap();
        let f = SystemFilter { agency: Some(mois.clone()), grade: Some(Grade::new(3).unwrap()), ..Default::default() };
        let page = store.list_systems(&f, PageRequest { page: 1, per_page: 100 }).await.unwrap();
        assert!(page.total > 0);
        assert!(page.items.iter().all(|s| s.details.agency == mois && s.details.grade.get() == 3));
        let by_grade = store.count_systems_by_grade(&f).await.unwrap();
        assert_eq!(by_grade[2], page.total, "the grade count agrees with the list");

        // Search is case-insensitive and works in every language.
        let q = |s: &str| Some(s.parse::<catalogue::SearchText>().unwrap());
        let page1 = PageRequest::default();
        for needle in ["CERTIFICATE", "certificado", "등본", "kr/gov/nts"] {
            let found = store.list_services(&ServiceFilter { q: q(needle), ..Default::default() }, page1).await.unwrap();
            assert!(found.total > 0, "{needle} should match");
        }
        // LIKE wildcards and SQL metacharacters are literal text.
        for needle in ["%", "_", "' OR 1=1 --", "\\", "\"; DROP TABLE services; --"] {
            let found = store.list_services(&ServiceFilter { q: q(needle), ..Default::default() }, page1).await.unwrap();
            assert_eq!(found.total, 0, "{needle:?} must not match everything");
        }
        let svc = store.list_services(&ServiceFilter { agency: Some(mois.clone()), audience: Some(Audience::Citizen), ..Default::default() }, page1).await.unwrap();
        assert!(svc.total >= 3);
        assert!(svc.items.iter().all(|s| s.details.agency == mois && s.details.audience == Audience::Citizen));
        let ag = store.list_agencies(&AgencyFilter { kind: Some(AgencyKind::LocalGovernment), q: None }, page1).await.unwrap();
        assert_eq!(ag.total, 1);
    }

    async fn seeding_twice_changes_nothing(backend: &str) {
        let Some((store, _dir)) = store(backend).await else { return };
        let first = store.seed(&seed::demo().unwrap(), &|_| {}).await.unwrap();
        assert_eq!((first.agencies, first.services, first.systems), (10, 30, 200));
        let second = store.seed(&seed::demo().unwrap(), &|_| {}).await.unwrap();
        assert_eq!((second.agencies, second.services, second.systems), (0, 0, 0));
        let stats = store.catalogue_stats(None).await.unwrap();
        assert_eq!((stats.agencies, stats.services, stats.systems), (10, 30, 200));
        assert_eq!(stats.systems_by_grade.iter().sum::<u64>(), 200);
        assert!(!store.is_empty().await.unwrap());
        // Migrating an up-to-date database is a no-op.
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
    }

    async fn the_probe_schedule_follows_systems_and_probes(backend: &str) {
        use nara_core::secops::{Health, probe_every_ms};
        use nara_store::health::{BACK_OFF_AFTER_MS, BACK_OFF_FACTOR, ProbeResult};
        let Some((store, _dir)) = store(backend).await else { return };
        // Seeded systems (one multi-row insert) are due at once, the most critical first.
        store.seed(&seed::demo().unwrap(), &|_| {}).await.unwrap();
        let now = Timestamp::now().0;
        let seeded = store.probe_targets(now, 10_000, false).await.unwrap();
        let with_endpoint = seed::demo().unwrap().systems.iter().filter(|s| s.endpoint_url.is_some()).count();
        assert_eq!(seeded.len(), with_endpoint);
        assert!(seeded.windows(2).all(|w| w[0].grade <= w[1].grade), "most critical first");
        assert!(store.probe_targets(now, 10_000, true).await.unwrap().is_empty(), "no seeded endpoint is loopback");
        assert_eq!(store.probe_targets(now, 7, false).await.unwrap().len(), 7, "a round takes at most its limit");

        store.create_agency(&agency("KR/GOV/MOT"), "test").await.unwrap();
        let at = |code: &str, grade: i64, url: &str| {
            let mut s = system("KR/GOV/MOT", code, grade);
            s.endpoint_url = Some(url.into());
            s
        };
        let a = store.create_system(&at("A", 1, "http://127.0.0.1:9/a"), "test").await.unwrap();
        let b = store.create_system(&at("B", 3, "tcp://[::1]:9"), "test").await.unwrap();
        let due = |t: i64| {
            let store = &store;
            async move { store.probe_targets(t, 10_000, true).await.unwrap().into_iter().map(|t| t.id).collect::<Vec<_>>() }
        };
        assert_eq!(due(now).await, [a.id, b.id], "new loopback systems are due at once, grade 1 first");

        let probed = |id: i64, at: i64, health: Health| ProbeResult {
            system_id: id, at, health, latency_ms: 3, status_code: None, detail: String::new(),
        };
        store.record_probes(&[probed(a.id, now, Health::Up), probed(b.id, now, Health::Down)]).await.unwrap();
        assert!(due(now).await.is_empty(), "just probed");
        assert_eq!(due(now + probe_every_ms(1)).await, [a.id], "grade 1 again after its interval");
        assert_eq!(due(now + probe_every_ms(3)).await, [a.id, b.id]);

        // Down for longer than the back-off: probed less often until it answers.
        let later = now + BACK_OFF_AFTER_MS;
        store.record_probes(&[probed(b.id, later, Health::Down)]).await.unwrap();
        assert!(!due(later + probe_every_ms(3)).await.contains(&b.id), "backed off");
        assert!(due(later + probe_every_ms(3) * BACK_OFF_FACTOR).await.contains(&b.id));
        let answered = later + probe_every_ms(3) * BACK_OFF_FACTOR;
        store.record_probes(&[probed(b.id, answered, Health::Up)]).await.unwrap();
        assert!(due(answered + probe_every_ms(3)).await.contains(&b.id), "on time again once it answers");

        // A new grade keeps the time due; a new address is due at once; none, never.
        store.update_system(b.id, &at("B", 1, "tcp://[::1]:9"), "test").await.unwrap();
        assert!(!due(answered + probe_every_ms(3) - 1).await.contains(&b.id));
        assert!(due(answered + probe_every_ms(3)).await.contains(&b.id));
        store.update_system(b.id, &at("B", 1, "https://db.test.go.kr/"), "test").await.unwrap();
        assert!(due(now).await.is_empty(), "no longer loopback");
        let everyone: Vec<i64> = store.probe_targets(now, 10_000, false).await.unwrap().into_iter().map(|t| t.id).collect();
        assert!(everyone.contains(&b.id), "a new address is due at once");
        let mut none = at("B", 1, "");
        none.endpoint_url = None;
        store.update_system(b.id, &none, "test").await.unwrap();
        let everyone: Vec<i64> = store.probe_targets(answered * 2, 10_000, false).await.unwrap().into_iter().map(|t| t.id).collect();
        assert!(!everyone.contains(&b.id) && everyone.contains(&a.id), "no address, nothing to probe");
    }
}

backends! {
    async fn the_read_model_answers_like_the_database(backend: &str) {
        let Some((url, _dir)) = crate::common::fresh_database(backend).await else { return };
        let sql = Store::connect(&url).await.unwrap();
        sql.seed(&seed::national(11).unwrap(), &|_| {}).await.unwrap();
        // A second node on the same database, with the in-memory read model.
        let cached = Store::connect(&url).await.unwrap();
        cached.enable_catalogue_cache().await.unwrap();
        let q = |s: &str| Some(s.parse::<catalogue::SearchText>().unwrap());
        let agencies = [None, Some(MemberId::parse("KR/GOV/MOIS").unwrap()), Some(MemberId::parse("KR/LOC/JEJU").unwrap()), Some(MemberId::parse("KR/GOV/NOPE").unwrap())];
        let mut compared = 0;
        let mut relations = std::collections::HashSet::new();
        for agency in &agencies {
            for text in [None, q("database"), q("03"), q("https://"), q("%"), q("nothing-matches-this"), q("tax"), q("x"), q("신청")] {
                for grade in [None, Some(Grade::new(1).unwrap()), Some(Grade::new(4).unwrap())] {
                    for page in [PageRequest { page: 1, per_page: 20 }, PageRequest { page: 3, per_page: 7 }, PageRequest { page: 500, per_page: 100 }] {
                        let f = SystemFilter { agency: agency.clone(), grade, q: text.clone(), kind: Some(SystemKind::Server).filter(|_| grade.is_some()), status: None };
                        let a = sql.list_systems(&f, page).await.unwrap();
                        let b = cached.list_systems(&f, page).await.unwrap();
                        assert_eq!((a.total, a.total_relation, &a.items), (b.total, b.total_relation, &b.items), "{f:?} {page:?}");
                        assert_eq!(sql.count_systems_by_grade(&f).await.unwrap(), cached.count_systems_by_grade(&f).await.unwrap());
                        let (json_a, json_b) = (sql.list_systems_json(&f, page).await.unwrap(), cached.list_systems_json(&f, page).await.unwrap());
                        assert_eq!(String::from_utf8(json_a).unwrap(), String::from_utf8(json_b).unwrap(), "{f:?} {page:?}");
                        compared += 1;
                        relations.insert(a.total_relation);
                    }
                }
                for audience in [None, Some(Audience::Business)] {
                    let f = ServiceFilter { agency: agency.clone(), audience, status: None, q: text.clone() };
                    let a = sql.list_services(&f, PageRequest::default()).await.unwrap();
                    let b = cached.list_services(&f, PageRequest::default()).await.unwrap();
                    assert_eq!((a.total, a.total_relation, &a.items), (b.total, b.total_relation, &b.items), "{f:?}");
                    // The API's bytes: serialised from the database's rows,
                    // and laid end to end from the read model's.
                    for page in [PageRequest::default(), PageRequest { page: 2, per_page: 3 }] {
                        let a = sql.list_services_json(&f, page).await.unwrap();
                        let b = cached.list_services_json(&f, page).await.unwrap();
                        assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap(), "{f:?} {page:?}");
                    }
                }
            }
        }
        assert!(compared > 200);
        assert_eq!(relations.len(), 2, "some searches counted every match, some stopped at the limit");

        // Read your own writes at once; other nodes' writes within seconds.
        let mut new = SystemInput {
            agency: MemberId::parse("KR/GOV/MOIS").unwrap(), code: "FRESH-1".into(), name: "Freshly written".into(),
            kind: SystemKind::Server, grade: Grade::new(2).unwrap(), environment: Environment::Staging,
            endpoint_url: None, status: SystemStatus::Operational,
        };
        let find = SystemFilter { q: q("freshly written"), ..Default::default() };
        cached.create_system(&new, "test").await.unwrap();
        assert_eq!(cached.list_systems(&find, PageRequest::default()).await.unwrap().total, 1, "a node reads its own write");
        new.code = "FRESH-2".into();
        sql.create_system(&new, "test").await.unwrap();
        let mut seen = 0;
        for _ in 0..50 {
            seen = cached.list_systems(&find, PageRequest::default()).await.unwrap().total;
            if seen == 2 { break }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(seen, 2, "another node's write reaches the read model within seconds");
    }
}

#[tokio::test]
async fn unknown_database_schemes_are_refused() {
    assert!(matches!(
        Store::open("mysql://x").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}
