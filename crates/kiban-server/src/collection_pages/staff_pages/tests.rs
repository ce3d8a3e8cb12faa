//! Tests of staff sign-in and the clerical review queue over a real (temporary) store.

use super::*;
use crate::staff_auth::{
    PasswordParams, StaffAuth, StaffAuthConfig, StaffSecretSealer, TotpSecret, create_staff_account,
};
use crate::{AppState, CollectionState, router};
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use kiban_collection::{Collection, CollectionPolicy, FixedClock, NewProviderRegistration};
use kiban_ingest::IngestOptions;
use kiban_metadata::{
    ChunkCommit, LinkageRun, Metadata, NewReviewPair, ReviewEvidence, SegmentRecord,
};
use kiban_model::{ProviderId, ProviderKind, RowCommon};
use kiban_store::{DataKey, KeyFile, Store};
use std::sync::Arc;
use tower::ServiceExt;

/// The password of every test account.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// Settings of the tests: cheap hashes, the default limits unless changed.
pub(crate) fn test_config() -> StaffAuthConfig {
    StaffAuthConfig {
        password_params: PasswordParams::insecure_for_tests(),
        ..StaffAuthConfig::default()
    }
}

/// Staff sign-in over a fresh key.
pub(crate) fn test_staff_auth(config: StaffAuthConfig) -> StaffAuth {
    StaffAuth::new(
        StaffSecretSealer::from_key(DataKey::generate().unwrap()),
        config,
    )
    .unwrap()
}

/// Adds a staff account to a state with staff sign-in; returns its TOTP secret.
pub(crate) async fn add_staff(state: &AppState, login: &str, roles: &[StaffRole]) -> TotpSecret {
    let auth = state.staff.as_ref().unwrap();
    let (_, secret) = create_staff_account(
        &state.meta,
        &auth.sealer,
        login,
        "山田 太郎",
        roles,
        PASSWORD,
        PasswordParams::insecure_for_tests(),
    )
    .await
    .unwrap();
    secret
}

/// The code of `secret` `offset` steps from now.
pub(crate) fn code(secret: &TotpSecret, offset: i64) -> String {
    let now = chrono::Utc::now().timestamp() / 30;
    secret.code_at_step(u64::try_from(now + offset).unwrap())
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

pub(crate) async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn set_cookie(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value_of(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Posts a form with these cookies (`name=value; ...`).
pub(crate) async fn post_form(
    app: &Router,
    uri: &str,
    cookies: &str,
    fields: &[(&str, &str)],
) -> Reply {
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookies)
        .body(Body::from(form_body(fields)))
        .unwrap();
    send(app, request).await
}

/// Gets a page with these cookies.
pub(crate) async fn get_with(app: &Router, uri: &str, cookies: &str) -> Reply {
    let request = Request::get(uri)
        .header(header::COOKIE, cookies)
        .body(Body::empty())
        .unwrap();
    send(app, request).await
}

/// A CSRF token that the pages accept (any 256-bit hex value in cookie and form alike).
pub(crate) const CSRF: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Posts the sign-in form.
pub(crate) async fn sign_in_with(app: &Router, login: &str, password: &str, code: &str) -> Reply {
    post_form(
        app,
        "/staff/sign-in",
        &format!("kiban_csrf={CSRF}"),
        &[
            ("csrf", CSRF),
            ("login", login),
            ("password", password),
            ("code", code),
            ("next", ""),
        ],
    )
    .await
}

/// Signs in and returns the cookies of the session (`kiban_csrf=...; kiban_staff_session=...`).
pub(crate) async fn signed_in_cookies(
    app: &Router,
    login: &str,
    secret: &TotpSecret,
    offset: i64,
) -> String {
    let reply = sign_in_with(app, login, PASSWORD, &code(secret, offset)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let session = set_cookie(&reply, STAFF_SESSION_COOKIE).expect("a session cookie");
    format!(
        "kiban_csrf={CSRF}; {STAFF_SESSION_COOKIE}={}",
        cookie_value_of(&session)
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    app: Router,
    store: Arc<Store>,
    provider: ProviderId,
}

async fn fixture(config: StaffAuthConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyFile::generate(&dir.path().join("keys/master.key")).unwrap();
    let data = dir.path().join("data");
    let store = Arc::new(Store::open(&data, Arc::new(keys)).unwrap());
    let meta = Metadata::open_in_dir(&data).await.unwrap();
    let collection = Arc::new(Collection::new(
        meta.clone(),
        store.clone(),
        Arc::new(FixedClock::on_date("2026-03-20".parse().unwrap())),
        CollectionPolicy::default(),
    ));
    let (provider, _token) = collection
        .add_provider(
            &NewProviderRegistration::new("東都クリニック", ProviderKind::Clinic),
            "staff:test",
        )
        .await
        .unwrap();
    let state = AppState::new(meta, "/srv/kiban/data")
        .with_collection(CollectionState {
            store: store.clone(),
            collection,
            ingest_options: IngestOptions::default(),
        })
        .with_staff_auth(test_staff_auth(config));
    Fixture {
        _dir: dir,
        app: router(state.clone()),
        state,
        store,
        provider,
    }
}

async fn audit_outcomes(state: &AppState, action: &str) -> Vec<String> {
    let mut log = state.meta.staff_audit(100).await.unwrap();
    log.reverse();
    log.into_iter()
        .filter(|e| e.action == action)
        .map(|e| e.outcome)
        .collect()
}

fn location(reply: &Reply) -> String {
    reply
        .headers
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn sign_in_opens_a_session_with_a_strict_cookie() {
    let f = fixture(test_config()).await;
    let secret = add_staff(&f.state, "yamada", &[StaffRole::AcquisitionManager]).await;

    let form = get_with(&f.app, "/staff/sign-in", "").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("職員サインイン"));
    assert!(form.body.contains(r#"autocomplete="one-time-code""#));
    assert_eq!(form.headers[header::CACHE_CONTROL], "no-store");
    let english = get_with(&f.app, "/staff/sign-in?lang=en", "").await;
    assert!(english.body.contains("Staff sign-in"));

    let reply = sign_in_with(&f.app, "Yamada", PASSWORD, &code(&secret, 0)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&reply), "/staff?lang=ja");
    let cookie = set_cookie(&reply, STAFF_SESSION_COOKIE).unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/;", "Secure"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let cookies = format!(
        "kiban_csrf={CSRF}; {STAFF_SESSION_COOKIE}={}",
        cookie_value_of(&cookie)
    );
    let home = get_with(&f.app, "/staff", &cookies).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("山田 太郎"));
    assert!(home.body.contains("医療情報取得・整理責任者"));
    assert!(home.body.contains("/registers/refusals"));
    let register = get_with(&f.app, "/registers/refusals", &cookies).await;
    assert_eq!(register.status, StatusCode::OK);

    // Signing out ends the session.
    let out = post_form(&f.app, "/staff/sign-out", &cookies, &[("csrf", CSRF)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        set_cookie(&out, STAFF_SESSION_COOKIE)
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = get_with(&f.app, "/registers/refusals", &cookies).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(
        audit_outcomes(&f.state, "sign_in").await,
        vec!["success".to_owned()]
    );
    assert_eq!(
        audit_outcomes(&f.state, "sign_out").await,
        vec!["success".to_owned()]
    );

    // Without the secure flag (a loopback server) the cookie has no `Secure`.
    let local = fixture(StaffAuthConfig {
        secure_cookie: false,
        ..test_config()
    })
    .await;
    let secret = add_staff(&local.state, "sato", &[StaffRole::GeneralManager]).await;
    let reply = sign_in_with(&local.app, "sato", PASSWORD, &code(&secret, 0)).await;
    let cookie = set_cookie(&reply, STAFF_SESSION_COOKIE).unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn failures_look_alike_and_are_audited_by_cause() {
    let f = fixture(test_config()).await;
    let secret = add_staff(&f.state, "yamada", &[StaffRole::AcquisitionManager]).await;
    let right_code = code(&secret, 0);
    let wrong_code = if right_code == "000000" {
        "111111"
    } else {
        "000000"
    };

    let wrong_password = sign_in_with(&f.app, "yamada", "not the password!", &right_code).await;
    let wrong_totp = sign_in_with(&f.app, "yamada", PASSWORD, wrong_code).await;
    let unknown = sign_in_with(&f.app, "nobody", PASSWORD, &right_code).await;
    for reply in [&wrong_password, &wrong_totp, &unknown] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.body.contains("サインインできませんでした"));
        assert!(set_cookie(reply, STAFF_SESSION_COOKIE).is_none());
        assert!(!reply.body.contains(PASSWORD));
    }
    // The same message whichever factor failed.
    let message = |r: &Reply| {
        r.body
            .lines()
            .find(|l| l.contains("role=\"alert\""))
            .unwrap()
            .to_owned()
    };
    assert_eq!(message(&wrong_password), message(&wrong_totp));
    assert_eq!(message(&wrong_password), message(&unknown));

    // Replay: a code used once is refused the second time.
    let first = sign_in_with(&f.app, "yamada", PASSWORD, &right_code).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    let replay = sign_in_with(&f.app, "yamada", PASSWORD, &right_code).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        audit_outcomes(&f.state, "sign_in").await,
        vec![
            "wrong_password",
            "wrong_code",
            "unknown_login",
            "success",
            "replayed_code"
        ]
    );
    // No password or code reaches the audit log.
    let log = format!("{:?}", f.state.meta.staff_audit(100).await.unwrap());
    assert!(!log.contains(PASSWORD) && !log.contains(&right_code));
}

#[tokio::test]
async fn an_account_locks_after_repeated_failures() {
    let f = fixture(StaffAuthConfig {
        max_failures: 3,
        ..test_config()
    })
    .await;
    let secret = add_staff(&f.state, "yamada", &[StaffRole::AcquisitionManager]).await;
    for _ in 0..3 {
        let r = sign_in_with(&f.app, "yamada", "wrong password!!", &code(&secret, 0)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let account = f.state.meta.staff_account_by_login("yamada").await.unwrap();
    assert!(account.unwrap().is_locked_at(chrono::Utc::now()));
    // Even the right password and code are refused while locked, with the same message.
    let r = sign_in_with(&f.app, "yamada", PASSWORD, &code(&secret, 0)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("サインインできませんでした"));
    assert_eq!(
        audit_outcomes(&f.state, "sign_in").await.last().unwrap(),
        "locked"
    );
}

#[tokio::test]
async fn an_address_is_blocked_after_repeated_failures() {
    let f = fixture(StaffAuthConfig {
        address_failure_limit: 2,
        ..test_config()
    })
    .await;
    let secret = add_staff(&f.state, "yamada", &[StaffRole::AcquisitionManager]).await;
    for login in ["nobody", "someone"] {
        let r = sign_in_with(&f.app, login, PASSWORD, "123456").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = sign_in_with(&f.app, "yamada", PASSWORD, &code(&secret, 0)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let f = fixture(test_config()).await;
    let secret = add_staff(&f.state, "yamada", &[StaffRole::AcquisitionManager]).await;
    let r = post_form(
        &f.app,
        "/staff/sign-in",
        "",
        &[
            ("login", "yamada"),
            ("password", PASSWORD),
            ("code", &code(&secret, 0)),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&r, STAFF_SESSION_COOKIE).is_none());
    // The code was not spent by the refused form.
    let cookies = signed_in_cookies(&f.app, "yamada", &secret, 0).await;
    // Signed in, a form still needs its token.
    let only_session = cookies.split("; ").nth(1).unwrap().to_owned();
    let r = post_form(&f.app, "/staff/sign-out", &only_session, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(
        &f.app,
        "/registers/refusals/new",
        &only_session,
        &[("provider", f.provider.as_str()), ("patient_id", "1")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn pages_need_a_session_and_a_fitting_role() {
    let f = fixture(test_config()).await;
    // No session: pages send to the sign-in page and back, the API answers 401.
    let r = get_with(&f.app, "/registers/refusals?lang=en", "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        location(&r),
        "/staff/sign-in?lang=en&next=%2Fregisters%2Frefusals"
    );
    let form = get_with(&f.app, &location(&r), "").await;
    assert!(
        form.body
            .contains(r#"name="next" value="/registers/refusals""#)
    );
    for uri in [
        "/staff/review",
        "/staff/review/1",
        "/registers/events",
        "/staff",
    ] {
        assert_eq!(
            get_with(&f.app, uri, "").await.status,
            StatusCode::SEE_OTHER,
            "{uri}"
        );
    }
    let r = get_with(&f.app, "/api/v1/staff/review", "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("sign-in required"));
    // A forged or unknown session is no session.
    let forged = format!("{STAFF_SESSION_COOKIE}={}", "ab".repeat(32));
    assert_eq!(
        get_with(&f.app, "/registers/refusals", &forged)
            .await
            .status,
        StatusCode::SEE_OTHER
    );

    // A linkage reviewer reviews but does not keep the registers.
    let reviewer = add_staff(&f.state, "reviewer", &[StaffRole::LinkageReviewer]).await;
    let cookies = signed_in_cookies(&f.app, "reviewer", &reviewer, 0).await;
    assert_eq!(
        get_with(&f.app, "/staff/review", &cookies).await.status,
        StatusCode::OK
    );
    let refused = get_with(&f.app, "/registers/refusals", &cookies).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("権限がありません"));
    let home = get_with(&f.app, "/staff", &cookies).await;
    assert!(home.body.contains("/staff/review"));
    assert!(!home.body.contains("href=\"/registers/refusals?"));

    // A security officer reads the collection log but sees no identity.
    let officer = add_staff(&f.state, "officer", &[StaffRole::SecurityOfficer]).await;
    let cookies = signed_in_cookies(&f.app, "officer", &officer, 0).await;
    assert_eq!(
        get_with(&f.app, "/registers/events", &cookies).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_with(&f.app, "/staff/review", &cookies).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_with(&f.app, "/api/v1/staff/review", &cookies)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert!(
        audit_outcomes(&f.state, "access")
            .await
            .iter()
            .all(|o| o == "forbidden")
    );

    // A disabled account's session ends at once.
    f.state.meta.disable_staff_account("officer").await.unwrap();
    assert_eq!(
        get_with(&f.app, "/registers/events", &cookies).await.status,
        StatusCode::SEE_OTHER
    );
}

/// Writes identity rows into the store and commits them as one intake.
async fn store_identities(f: &Fixture, rows: &[IdentityRow]) {
    let meta = &f.state.meta;
    let intake = meta
        .begin_intake(f.provider.as_str(), "identity.ndjson", &"ab".repeat(32))
        .await
        .unwrap();
    let segment = f
        .store
        .write_segment(&format!("{}-0000", intake.id), rows)
        .unwrap();
    meta.commit_chunk(
        &intake.id,
        &ChunkCommit {
            chunk_index: 0,
            segments: vec![SegmentRecord {
                path: segment.relative_path,
                table_name: segment.table,
                rows: segment.rows as i64,
                bytes: segment.bytes as i64,
            }],
            ..ChunkCommit::default()
        },
    )
    .await
    .unwrap();
}

fn identity(provider: &ProviderId, key: &str, kanji: &str, birth: &str) -> IdentityRow {
    IdentityRow {
        common: RowCommon::new(provider.as_str(), "intake", key, &format!("pat-{key}")),
        provider_patient_id: format!("P-{key}"),
        name_kanji: Some(kanji.into()),
        name_kana: Some("ヤマダ タロウ".into()),
        birth_date: Some(birth.parse().unwrap()),
        sex: "male".into(),
        postal_code: Some("100-0001".into()),
        address: Some("東京都千代田区千代田1-1".into()),
        insurer_number: Some("06130012".into()),
        insured_symbol: Some("記号1".into()),
        insured_number: Some("12345".into()),
        insured_branch: Some("01".into()),
        ..Default::default()
    }
}

async fn add_pairs(f: &Fixture) -> Vec<ReviewPair> {
    let meta = &f.state.meta;
    let run = LinkageRun {
        id: "link-test".into(),
        started_at: "2026-03-20T00:00:00Z".into(),
        finished_at: "2026-03-20T00:00:01Z".into(),
        records: 3,
        persons: 3,
        new_persons: 3,
        merged_persons: 0,
        split_persons: 0,
        changed_records: 0,
        reverted_at: None,
    };
    meta.record_linkage_run(&run, &[]).await.unwrap();
    let record = |key: &str| ReviewRecord {
        provider_id: f.provider.0.clone(),
        patient_key: key.into(),
    };
    let evidence = vec![
        ReviewEvidence {
            field: "name".into(),
            level: "kana exact, kanji different".into(),
            weight_bits: 4.25,
        },
        ReviewEvidence {
            field: "birth_date".into(),
            level: "day and month swapped".into(),
            weight_bits: -1.5,
        },
    ];
    meta.insert_review_pairs(
        "link-test",
        &[
            NewReviewPair {
                left: record("key-a"),
                right: record("key-b"),
                match_probability: 0.52,
                evidence: evidence.clone(),
            },
            NewReviewPair {
                left: record("key-a"),
                right: record("key-c"),
                match_probability: 0.8,
                evidence,
            },
        ],
    )
    .await
    .unwrap();
    meta.open_review_pairs(10, 0).await.unwrap()
}

#[tokio::test]
async fn reviewers_see_identity_side_by_side_and_decide() {
    let f = fixture(test_config()).await;
    store_identities(
        &f,
        &[
            identity(&f.provider, "key-a", "山田 太郎", "1950-04-03"),
            identity(&f.provider, "key-b", "山田 太朗", "1950-03-04"),
        ],
    )
    .await;
    let pairs = add_pairs(&f).await;
    assert_eq!(pairs[0].match_probability, 0.52);
    let reviewer = add_staff(&f.state, "reviewer", &[StaffRole::LinkageReviewer]).await;
    let cookies = signed_in_cookies(&f.app, "reviewer", &reviewer, 0).await;

    // The list shows no identity value.
    let list = get_with(&f.app, "/staff/review", &cookies).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.headers[header::CACHE_CONTROL], "no-store");
    assert!(list.body.contains("52.0%") && list.body.contains("80.0%"));
    assert!(list.body.find("52.0%") < list.body.find("80.0%"));
    assert!(!list.body.contains("山田"));
    assert!(list.body.contains("+4.3") || list.body.contains("+4.2"));

    // The pair's page shows both records' identity with each field's comparison.
    let id = pairs[0].id;
    let page = get_with(&f.app, &format!("/staff/review/{id}"), &cookies).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    for value in [
        "山田 太郎",
        "山田 太朗",
        "1950-04-03",
        "1950-03-04",
        "06130012",
        "東京都千代田区千代田1-1",
        "day and month swapped",
        "-1.5",
    ] {
        assert!(page.body.contains(value), "{value}");
    }
    assert!(page.body.contains(r#"value="same_person""#));
    // The unknown record of the other pair is said to be missing.
    let other = get_with(&f.app, &format!("/staff/review/{}", pairs[1].id), &cookies).await;
    assert!(other.body.contains("識別情報が見つかりません"));

    // Without the CSRF token the decision is refused.
    let only_session = cookies.split("; ").nth(1).unwrap().to_owned();
    let r = post_form(
        &f.app,
        &format!("/staff/review/{id}"),
        &only_session,
        &[("decision", "same_person")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = post_form(
        &f.app,
        &format!("/staff/review/{id}"),
        &cookies,
        &[
            ("csrf", CSRF),
            ("decision", "same_person"),
            ("note", "異体字"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let decided = f.state.meta.review_pair(id).await.unwrap().unwrap();
    assert_eq!(decided.status, ReviewStatus::SamePerson);
    assert_eq!(decided.note.as_deref(), Some("異体字"));
    let decisions = f.state.meta.review_decisions().await.unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].decision, ReviewDecision::SamePerson);
    // Deciding again is a conflict.
    let r = post_form(
        &f.app,
        &format!("/staff/review/{id}"),
        &cookies,
        &[("csrf", CSRF), ("decision", "different_persons")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("すでに判定されています"));
    let r = get_with(&f.app, "/staff/review/999999", &cookies).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Views and decisions are audited by pair id, never with values.
    let log = f.state.meta.staff_audit(100).await.unwrap();
    let views: Vec<_> = log.iter().filter(|e| e.action == "review_view").collect();
    assert_eq!(views.len(), 2);
    assert!(
        views
            .iter()
            .any(|e| e.subject.as_deref() == Some(&format!("review-pair:{id}")))
    );
    let decides: Vec<&str> = log
        .iter()
        .filter(|e| e.action == "review_decide")
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(decides, vec!["already_decided", "same_person"]);
    assert!(!format!("{log:?}").contains("山田"));
}

#[tokio::test]
async fn the_review_api_lists_shows_and_decides() {
    let f = fixture(test_config()).await;
    store_identities(
        &f,
        &[identity(&f.provider, "key-a", "山田 太郎", "1950-04-03")],
    )
    .await;
    let pairs = add_pairs(&f).await;
    let manager = add_staff(&f.state, "manager", &[StaffRole::AcquisitionManager]).await;
    let cookies = signed_in_cookies(&f.app, "manager", &manager, 0).await;

    let list = get_with(&f.app, "/api/v1/staff/review?limit=1", &cookies).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.headers[header::CACHE_CONTROL], "no-store");
    let json: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    assert_eq!(json["open"], 2);
    assert_eq!(json["pairs"].as_array().unwrap().len(), 1);
    assert_eq!(json["pairs"][0]["evidence"][0]["weight_bits"], 4.25);

    let id = pairs[1].id;
    let one = get_with(&f.app, &format!("/api/v1/staff/review/{id}"), &cookies).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.headers[header::CACHE_CONTROL], "no-store");
    let json: serde_json::Value = serde_json::from_str(&one.body).unwrap();
    assert_eq!(json["records"][0]["name_kanji"], "山田 太郎");
    assert_eq!(json["records"][1]["found"], false);

    let decide = |body: &'static str, cross_site: bool| {
        let mut request = Request::post(format!("/api/v1/staff/review/{id}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::COOKIE, cookies.clone());
        if cross_site {
            request = request.header("sec-fetch-site", "cross-site");
        }
        send(&f.app, request.body(Body::from(body)).unwrap())
    };
    assert_eq!(
        decide(r#"{"decision":"different_persons"}"#, true)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        decide(r#"{"decision":"maybe"}"#, false).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = decide(
        r#"{"decision":"different_persons","note":"生年月日が異なる"}"#,
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["pair"]["status"], "different_persons");
    assert_eq!(
        decide(r#"{"decision":"same_person"}"#, false).await.status,
        StatusCode::CONFLICT
    );
    // A form post (not JSON) is refused.
    let r = post_form(
        &f.app,
        &format!("/api/v1/staff/review/{}", pairs[0].id),
        &cookies,
        &[("decision", "same_person")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[test]
fn next_pages_stay_on_the_site() {
    assert_eq!(safe_next("/registers/events"), Some("/registers/events"));
    assert_eq!(safe_next("/staff/review/12"), Some("/staff/review/12"));
    assert_eq!(safe_next("//evil.example/staff"), None);
    assert_eq!(safe_next("https://evil.example"), None);
    assert_eq!(safe_next("/staff?x=1"), None);
    assert_eq!(safe_next("/optout"), None);
    assert_eq!(safe_next("/staff//x"), None);
}
