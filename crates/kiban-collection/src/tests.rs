use super::*;

struct Env {
    _dir: tempfile::TempDir,
    clock: Arc<FixedClock>,
    collection: Collection,
    provider: ProviderId,
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn env_on(today: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let keys = kiban_store::KeyFile::load_or_generate(&dir.path().join("keys/master.key")).unwrap();
    let data = dir.path().join("data");
    let store = Arc::new(Store::open(&data, Arc::new(keys)).unwrap());
    let meta = Metadata::open_in_dir(&data).await.unwrap();
    let clock = Arc::new(FixedClock::on_date(d(today)));
    let collection = Collection::new(meta, store, clock.clone(), CollectionPolicy::default());
    let (provider, _token) = collection
        .add_provider(
            &NewProviderRegistration::new("東都大学病院", ProviderKind::UniversityHospital),
            "staff:test",
        )
        .await
        .unwrap();
    Env {
        _dir: dir,
        clock,
        collection,
        provider,
    }
}

fn staff_refusal(provider: &ProviderId, patient_id: &str, on: &str) -> RefusalRequest {
    RefusalRequest {
        provider: provider.clone(),
        provider_patient_id: patient_id.into(),
        refused_on: d(on),
        requester: Requester::Patient,
        channel: RefusalChannel::Phone,
        actor: "staff:sato".into(),
    }
}

/// No event, error or report may carry a patient id, birth date or notice code.
async fn assert_no_identity_in_events(c: &Collection, secrets: &[&str]) {
    for e in c.events(10_000).await.unwrap() {
        let text = format!("{e:?}");
        for s in secrets {
            assert!(
                !text.contains(s),
                "event {} leaks an identity value",
                e.action
            );
        }
    }
}

#[tokio::test]
async fn providers_get_sequential_ids_and_tokens_authenticate() {
    let env = env_on("2026-03-20").await;
    let c = &env.collection;
    assert_eq!(env.provider.as_str(), "prov-001");
    let mut reg = NewProviderRegistration::new("みなと市", ProviderKind::Municipality);
    reg.contact = Some("kenko@example.jp".into());
    reg.name_en = Some("Minato City".into());
    let (second, token) = c.add_provider(&reg, "cli").await.unwrap();
    assert_eq!(second.as_str(), "prov-002");
    assert!(token.expose_secret().starts_with(TOKEN_PREFIX));
    assert!(!format!("{token:?}").contains(token.expose_secret()));
    assert_eq!(c.authenticate(token.expose_secret()).await.unwrap(), second);
    let regs = c.providers().await.unwrap();
    assert_eq!(regs.len(), 2);
    assert_eq!(regs[1].contact.as_deref(), Some("kenko@example.jp"));

    // A token with one character changed is unknown, and the error does not echo it.
    let mut forged = token.expose_secret().to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let err = c.authenticate(&forged).await.unwrap_err();
    assert!(matches!(err, AuthError::Unknown));
    assert!(!err.to_string().contains(&forged[10..]));
    assert!(matches!(
        c.authenticate("Bearer nonsense").await.unwrap_err(),
        AuthError::Malformed
    ));

    // An additional token keeps the first valid; rotation revokes both.
    let extra = c.issue_token(&second, Some("backup"), "cli").await.unwrap();
    assert_eq!(c.authenticate(token.expose_secret()).await.unwrap(), second);
    assert_eq!(c.authenticate(extra.expose_secret()).await.unwrap(), second);
    let rotated = c.rotate_token(&second, "cli").await.unwrap();
    assert!(matches!(
        c.authenticate(token.expose_secret()).await.unwrap_err(),
        AuthError::Revoked
    ));
    assert!(matches!(
        c.authenticate(extra.expose_secret()).await.unwrap_err(),
        AuthError::Revoked
    ));
    assert_eq!(
        c.authenticate(rotated.expose_secret()).await.unwrap(),
        second
    );
    c.revoke_token(rotated.token_id(), "cli").await.unwrap();
    assert!(matches!(
        c.authenticate(rotated.expose_secret()).await.unwrap_err(),
        AuthError::Revoked
    ));
    assert!(matches!(
        c.revoke_token(rotated.token_id(), "cli").await.unwrap_err(),
        CollectionError::UnknownToken { .. }
    ));
    assert_eq!(c.tokens(&second).await.unwrap().len(), 3);

    // A provider whose filing is withdrawn cannot send.
    let fresh = c.issue_token(&second, None, "cli").await.unwrap();
    c.update_provider(&second, FilingStatus::Withdrawn, None, "staff:sato")
        .await
        .unwrap();
    assert!(matches!(
        c.authenticate(fresh.expose_secret()).await.unwrap_err(),
        AuthError::NotFiled { .. }
    ));
    assert!(matches!(
        c.issue_token(&ProviderId::from("prov-404"), None, "cli")
            .await
            .unwrap_err(),
        CollectionError::UnknownProvider { .. }
    ));

    let actions: Vec<String> = c
        .provider_events(&second, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in [
        "provider.added",
        "token.issued",
        "token.rotated",
        "token.revoked",
        "provider.updated",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action} not logged");
    }
    // No event carries a secret.
    for e in c.events(100).await.unwrap() {
        assert!(!format!("{e:?}").contains(&fresh.expose_secret()[17..]));
    }
}

#[tokio::test]
async fn patients_notified_ten_days_ago_are_held_then_eligible() {
    let env = env_on("2026-03-20").await;
    let c = &env.collection;
    let p = &env.provider;
    let held = c.patient_key(p, "000123");
    c.record_notification(
        p,
        "000123",
        d("2026-03-10"),
        NotificationMeans::Letter,
        "cli",
    )
    .await
    .unwrap();
    assert_eq!(
        c.eligibility(p, &held).await.unwrap(),
        Eligibility::Held {
            until: Some(d("2026-04-10"))
        }
    );
    let never = c.patient_key(p, "999999");
    assert_eq!(
        c.eligibility(p, &never).await.unwrap(),
        Eligibility::Held { until: None }
    );
    env.clock.advance_days(20);
    assert!(!c.eligibility(p, &held).await.unwrap().is_eligible());
    env.clock.advance_days(1);
    assert_eq!(
        c.eligibility(p, &held).await.unwrap(),
        Eligibility::Eligible {
            notified_on: d("2026-03-10")
        }
    );
    // Patient ids are normalized like ingest does (full-width digits, spaces).
    assert_eq!(c.patient_key(p, " ０００１２３ "), held);

    // Notices in the future are refused; a later notice does not postpone.
    assert!(matches!(
        c.record_notification(p, "000123", d("2026-12-01"), NotificationMeans::Web, "cli")
            .await
            .unwrap_err(),
        CollectionError::DateInFuture {
            field: "notified_on"
        }
    ));
    let n = c
        .record_notification(p, "000123", d("2026-03-30"), NotificationMeans::Web, "cli")
        .await
        .unwrap();
    assert_eq!(n.notified_on, d("2026-03-10"));
    assert_eq!(n.means, NotificationMeans::Letter);
    assert!(c.eligibility(p, &held).await.unwrap().is_eligible());
    assert!(matches!(
        c.record_notification(p, "  ", d("2026-03-01"), NotificationMeans::Web, "cli")
            .await
            .unwrap_err(),
        CollectionError::EmptyPatientId
    ));
    assert_no_identity_in_events(c, &["000123"]).await;
}

#[tokio::test]
async fn refusal_wins_and_is_idempotent() {
    let env = env_on("2026-06-01").await;
    let c = &env.collection;
    let p = &env.provider;
    c.record_notification(p, "A-77", d("2026-01-05"), NotificationMeans::Poster, "cli")
        .await
        .unwrap();
    let key = c.patient_key(p, "A-77");
    assert!(c.eligibility(p, &key).await.unwrap().is_eligible());
    let receipt = c
        .refuse(&staff_refusal(p, "A-77", "2026-05-30"))
        .await
        .unwrap();
    assert!(receipt.newly_recorded);
    assert!(receipt.receipt_number.starts_with("OPT-2026-"));
    assert_eq!(
        c.eligibility(p, &key).await.unwrap(),
        Eligibility::Refused {
            receipt_number: receipt.receipt_number.clone()
        }
    );
    // Refusing again returns the first receipt and logs the repetition.
    let mut again = staff_refusal(p, "A-77", "2026-06-01");
    again.channel = RefusalChannel::Api;
    again.requester = Requester::Provider;
    let second = c.refuse(&again).await.unwrap();
    assert_eq!(second.receipt_number, receipt.receipt_number);
    assert_eq!(second.refused_on, d("2026-05-30"));
    assert!(!second.newly_recorded);
    let actions: Vec<String> = c
        .events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions[0], "refusal.repeated");
    assert_eq!(actions[1], "refusal.recorded");

    // Refused without ever being notified: still refused.
    let other = c.patient_key(p, "B-1");
    c.refuse(&staff_refusal(p, "B-1", "2026-06-01"))
        .await
        .unwrap();
    assert!(c.eligibility(p, &other).await.unwrap().is_refused());
    assert_eq!(
        c.refused_patient_keys().await.unwrap(),
        HashSet::from([(p.clone(), key.clone()), (p.clone(), other.clone())])
    );

    // The receipt can be checked however it is typed; it shows no identity.
    let status = c
        .check_receipt(&receipt.receipt_number.to_lowercase())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.provider_name, "東都大学病院");
    assert_eq!(status.refused_on, d("2026-05-30"));
    assert_eq!(status.channel, RefusalChannel::Phone);
    assert!(
        c.check_receipt("OPT-2026-00000000")
            .await
            .unwrap()
            .is_none()
    );
    assert!(c.check_receipt("rubbish").await.unwrap().is_none());
    assert!(matches!(
        c.refuse(&staff_refusal(p, "A-78", "2026-06-02"))
            .await
            .unwrap_err(),
        CollectionError::DateInFuture {
            field: "refused_on"
        }
    ));
    assert_no_identity_in_events(c, &["A-77", "B-1"]).await;
}

#[tokio::test]
async fn eligibility_of_many_patients_in_one_call() {
    let env = env_on("2026-06-01").await;
    let c = &env.collection;
    let p = &env.provider;
    let mut csv = String::from("provider_patient_id,notified_on,means\n");
    for i in 0..1200 {
        let on = if i % 2 == 0 {
            "2026-01-10"
        } else {
            "2026-05-20"
        };
        csv.push_str(&format!("P{i:05},{on},letter\n"));
    }
    let report = c
        .import_notifications_csv(p, csv.as_bytes(), "provider:prov-001")
        .await
        .unwrap();
    assert_eq!((report.rows_read, report.recorded), (1200, 1200));
    c.refuse(&staff_refusal(p, "P00004", "2026-05-01"))
        .await
        .unwrap();
    let keys: Vec<PatientKey> = (0..1300)
        .map(|i| c.patient_key(p, &format!("P{i:05}")))
        .collect();
    let all = c.eligibility_many(p, &keys).await.unwrap();
    assert_eq!(all.len(), 1300);
    assert!(all[&keys[0]].is_eligible());
    assert_eq!(
        all[&keys[1]],
        Eligibility::Held {
            until: Some(d("2026-06-20"))
        }
    );
    assert!(all[&keys[4]].is_refused());
    assert_eq!(all[&keys[1250]], Eligibility::Held { until: None });
    // Another provider's register does not apply.
    let other = ProviderId::from("prov-999");
    assert!(
        c.eligibility_many(&other, &keys[..3])
            .await
            .unwrap()
            .values()
            .all(|e| *e == Eligibility::Held { until: None })
    );
}

#[tokio::test]
async fn patients_refuse_with_the_code_on_their_notice() {
    let env = env_on("2026-06-01").await;
    let c = &env.collection;
    let p = &env.provider;
    let code = c.notice_code(p, "00042");
    assert_eq!(code.len(), 11);
    assert_eq!(&code[5..6], "-");
    assert_eq!(c.notice_code(p, "００042"), code);
    assert_ne!(c.notice_code(p, "00043"), code);
    let request = |code: &str, requester| PatientRefusal {
        provider: p.clone(),
        provider_patient_id: "00042".into(),
        birth_date: d("2015-04-02"),
        notice_code: code.into(),
        requester,
    };

    // A wrong code is refused without saying which detail is wrong, and logged.
    let mut wrong = code.replace('-', "");
    let first = wrong.remove(0);
    wrong.insert(0, if first == 'A' { 'B' } else { 'A' });
    let err = c
        .refuse_by_patient(&request(&wrong, Requester::Patient))
        .await
        .unwrap_err();
    assert!(matches!(err, CollectionError::NotVerified));
    assert!(!err.to_string().contains("00042"));
    assert_eq!(
        c.events(1).await.unwrap()[0].action,
        "refusal.verification_failed"
    );
    assert!(!format!("{:?}", request(&code, Requester::Patient)).contains("00042"));

    // A guardian of an 11-year-old may refuse; the code may be typed loosely.
    let loose = code.to_lowercase().replace('-', " ");
    let receipt = c
        .refuse_by_patient(&request(&loose, Requester::Guardian))
        .await
        .unwrap();
    assert!(receipt.newly_recorded);
    assert_eq!(receipt.refused_on, d("2026-06-01"));
    let key = c.patient_key(p, "00042");
    assert!(c.eligibility(p, &key).await.unwrap().is_refused());
    assert_eq!(
        c.refusal_birth_date_matches(p, "00042", d("2015-04-02"))
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        c.refusal_birth_date_matches(p, "00042", d("2015-04-03"))
            .await
            .unwrap(),
        Some(false)
    );
    let status = c
        .check_receipt(&receipt.receipt_number)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.requester, Requester::Guardian);
    assert_eq!(status.channel, RefusalChannel::Web);

    // A guardian cannot refuse for a person of 16 or over.
    let teen = PatientRefusal {
        provider_patient_id: "00077".into(),
        birth_date: d("2010-06-01"),
        notice_code: c.notice_code(p, "00077"),
        ..request("", Requester::Guardian)
    };
    assert!(matches!(
        c.refuse_by_patient(&teen).await.unwrap_err(),
        CollectionError::GuardianOfAdult
    ));
    // One day before the 16th birthday the guardian still may.
    let child = PatientRefusal {
        birth_date: d("2010-06-02"),
        ..teen.clone()
    };
    c.refuse_by_patient(&child).await.unwrap();
    // The person themselves may at any age; providers cannot use the patient page.
    let provider_on_web = PatientRefusal {
        requester: Requester::Provider,
        ..teen.clone()
    };
    assert!(matches!(
        c.refuse_by_patient(&provider_on_web).await.unwrap_err(),
        CollectionError::RequesterNotAllowed { .. }
    ));
    assert_no_identity_in_events(
        c,
        &["00042", "00077", "2015-04-02", "2010-06-0", &code[..5]],
    )
    .await;
}

#[tokio::test]
async fn csv_imports_report_bad_rows_by_line_without_values() {
    let env = env_on("2026-06-01").await;
    let c = &env.collection;
    let p = &env.provider;
    let notifications = "provider_patient_id,notified_on,means\n\
                         SECRET-1,2026-01-10,letter\n\
                         SECRET-2,2026-13-45,letter\n\
                         SECRET-3,2026-01-10,pigeon\n\
                         ,2026-01-10,poster\n\
                         SECRET-5,2099-01-01,web\n\
                         SECRET-6,2026/02/01,EMAIL\n";
    let report = c
        .import_notifications_csv(p, notifications.as_bytes(), "provider:prov-001")
        .await
        .unwrap();
    assert_eq!(report.rows_read, 6);
    assert_eq!(report.recorded, 2);
    let lines: Vec<u64> = report.problems.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6]);
    assert_eq!(
        report.problems[0].reason,
        "notified_on: not a date (YYYY-MM-DD)"
    );
    assert_eq!(
        report.problems[1].reason,
        "means: not one of letter, email, poster, web"
    );
    assert_eq!(report.problems[2].reason, "provider_patient_id: empty");
    assert_eq!(report.problems[3].reason, "notified_on: after today");
    let text = format!("{report:?}");
    for secret in ["SECRET", "2026-13-45", "pigeon", "2099"] {
        assert!(!text.contains(secret));
    }
    let six = c.patient_key(p, "SECRET-6");
    assert!(c.eligibility(p, &six).await.unwrap().is_eligible());

    let refusals = "provider_patient_id,refused_on,by\n\
                    SECRET-1,2026-05-01,patient\n\
                    SECRET-7,2026-05-02,bereaved_family\n\
                    SECRET-8,2026-05-03,neighbour\n\
                    SECRET-1,2026-05-04,guardian\n";
    let report = c
        .import_refusals_csv(p, refusals.as_bytes(), "provider:prov-001")
        .await
        .unwrap();
    assert_eq!(
        (report.rows_read, report.recorded, report.unchanged),
        (4, 2, 1)
    );
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].line, 4);
    assert!(
        report.problems[0]
            .reason
            .starts_with("by: not one of patient")
    );
    assert!(
        c.eligibility(p, &c.patient_key(p, "SECRET-1"))
            .await
            .unwrap()
            .is_refused()
    );
    let bad_header = c
        .import_refusals_csv(p, "id,date\nx,y\n".as_bytes(), "cli")
        .await
        .unwrap_err();
    assert_eq!(
        bad_header.to_string(),
        "CSV header: required column provider_patient_id is missing"
    );
    assert_no_identity_in_events(c, &["SECRET"]).await;
}

#[tokio::test]
async fn synth_files_import_as_written() {
    let dir = tempfile::tempdir().unwrap();
    // The notification file of a small synthetic population, in synth's exact format.
    let mut notifications = String::from("provider_patient_id,notified_on,means\n");
    let mut refusals = String::from("provider_patient_id,refused_on,by\n");
    for (i, means) in ["letter", "email", "poster", "web"].iter().enumerate() {
        notifications.push_str(&format!("{:08},2025-0{}-15,{means}\n", i + 1, i + 1));
    }
    for (i, by) in ["patient", "bereaved_family", "guardian"]
        .iter()
        .enumerate()
    {
        refusals.push_str(&format!("{:08},2025-06-0{},{by}\n", i + 1, i + 1));
    }
    std::fs::write(dir.path().join("notifications.csv"), notifications).unwrap();
    std::fs::write(dir.path().join("refusals.csv"), refusals).unwrap();
    let env = env_on("2026-01-01").await;
    let c = &env.collection;
    let file = std::fs::File::open(dir.path().join("notifications.csv")).unwrap();
    let n = c
        .import_notifications_csv(&env.provider, file, "cli")
        .await
        .unwrap();
    assert_eq!((n.recorded, n.problems.len()), (4, 0));
    let file = std::fs::File::open(dir.path().join("refusals.csv")).unwrap();
    let r = c
        .import_refusals_csv(&env.provider, file, "cli")
        .await
        .unwrap();
    assert_eq!((r.recorded, r.problems.len()), (3, 0));
    assert_eq!(c.refused_patient_keys().await.unwrap().len(), 3);
}

#[tokio::test]
async fn idempotent_responses_are_remembered() {
    let env = env_on("2026-06-01").await;
    let c = &env.collection;
    let p = &env.provider;
    assert!(c.recall_response(p, "k-1").await.unwrap().is_none());
    let stored = c
        .remember_response(p, "k-1", "ab12", 202, "{\"intake\":\"x\"}")
        .await
        .unwrap();
    assert_eq!(c.recall_response(p, "k-1").await.unwrap(), Some(stored));
}

#[test]
fn ages_count_whole_years() {
    assert_eq!(age_on(d("2010-06-02"), d("2026-06-01")), 15);
    assert_eq!(age_on(d("2010-06-01"), d("2026-06-01")), 16);
    assert_eq!(age_on(d("2012-02-29"), d("2026-02-28")), 13);
    assert_eq!(age_on(d("2012-02-29"), d("2026-03-01")), 14);
    assert_eq!(age_on(d("2030-01-01"), d("2026-03-01")), 0);
}

#[tokio::test]
async fn notification_basis_is_the_first_notice_of_each_patient() {
    let env = env_on("2026-03-20").await;
    let c = &env.collection;
    c.record_notification(
        &env.provider,
        "000123",
        d("2026-01-10"),
        NotificationMeans::Letter,
        "cli",
    )
    .await
    .unwrap();
    // A later notice of the same patient changes nothing: the first one counts.
    c.record_notification(
        &env.provider,
        "000123",
        d("2026-02-10"),
        NotificationMeans::Email,
        "cli",
    )
    .await
    .unwrap();
    c.record_notification(
        &env.provider,
        "000456",
        d("2026-03-15"),
        NotificationMeans::Poster,
        "cli",
    )
    .await
    .unwrap();
    let notified = c.patient_key(&env.provider, "000123");
    let recent = c.patient_key(&env.provider, "000456");
    let never = c.patient_key(&env.provider, "000789");
    let basis = c
        .notification_basis_many(
            &env.provider,
            &[notified.clone(), recent.clone(), never.clone()],
        )
        .await
        .unwrap();
    assert_eq!(
        basis[&notified],
        NotificationBasis {
            notified_on: d("2026-01-10"),
            means: NotificationMeans::Letter
        }
    );
    // Held patients have a basis too (the record says why they are held).
    assert_eq!(basis[&recent].means, NotificationMeans::Poster);
    assert!(!basis.contains_key(&never));
    // Another provider's patient keys find nothing.
    let (other, _) = c
        .add_provider(
            &NewProviderRegistration::new("西都病院", ProviderKind::GeneralHospital),
            "staff:test",
        )
        .await
        .unwrap();
    assert!(
        c.notification_basis_many(&other, &[notified])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sessions_end_when_their_token_is_revoked_or_the_filing_lapses() {
    let env = env_on("2026-03-20").await;
    let c = &env.collection;
    let token = c
        .issue_token(&env.provider, Some("portal"), "staff:test")
        .await
        .unwrap();
    let id = token_id_of_bearer(token.expose_secret())
        .unwrap()
        .to_owned();
    assert_eq!(id, token.token_id());
    assert_eq!(token_id_of_bearer("Bearer nonsense"), None);
    assert_eq!(
        c.provider_of_active_token(&id).await.unwrap(),
        Some(env.provider.clone())
    );
    assert_eq!(
        c.provider_of_active_token("000000000000").await.unwrap(),
        None
    );
    c.update_provider(&env.provider, FilingStatus::Withdrawn, None, "staff:test")
        .await
        .unwrap();
    assert_eq!(c.provider_of_active_token(&id).await.unwrap(), None);
    c.update_provider(&env.provider, FilingStatus::Filed, None, "staff:test")
        .await
        .unwrap();
    c.revoke_token(&id, "staff:test").await.unwrap();
    assert_eq!(c.provider_of_active_token(&id).await.unwrap(), None);
}
