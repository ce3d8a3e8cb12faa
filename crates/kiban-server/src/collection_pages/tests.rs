//! Tests of the opt-out and register pages over a real (temporary) store and collection.

use super::staff_pages::tests as staff_tests;
use super::*;
use crate::{AppState, CollectionState, router};
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use kiban_collection::{
    Collection, CollectionPolicy, FixedClock, NewProviderRegistration, NotificationMeans,
};
use kiban_ingest::IngestOptions;
use kiban_metadata::Metadata;
use kiban_model::ProviderKind;
use kiban_store::{KeyFile, Store};
use tower::ServiceExt;

const ADULT_ID: &str = "000123";
const ADULT_BIRTH: &str = "1980-05-01";
const CHILD_ID: &str = "777001";
const CHILD_BIRTH: &str = "2015-02-03";

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    app: Router,
    collection: Arc<Collection>,
    provider: ProviderId,
    /// Cookies of a signed-in acquisition manager (CSRF token and staff session).
    staff_cookies: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // The key lives apart from the data directory, as in production.
    let keys = KeyFile::generate(&dir.path().join("keys/master.key")).unwrap();
    let data = dir.path().join("data");
    let store = Arc::new(Store::open(&data, Arc::new(keys)).unwrap());
    let meta = Metadata::open_in_dir(&data).await.unwrap();
    let clock = Arc::new(FixedClock::on_date("2026-03-20".parse().unwrap()));
    let collection = Arc::new(Collection::new(
        meta.clone(),
        store.clone(),
        clock,
        CollectionPolicy::default(),
    ));
    let mut registration = NewProviderRegistration::new("東都クリニック", ProviderKind::Clinic);
    registration.name_en = Some("Toto Clinic".into());
    let (provider, _token) = collection
        .add_provider(&registration, "staff:test")
        .await
        .unwrap();
    for id in [ADULT_ID, CHILD_ID] {
        collection
            .record_notification(
                &provider,
                id,
                "2026-03-01".parse().unwrap(),
                NotificationMeans::Letter,
                "test",
            )
            .await
            .unwrap();
    }
    let state = AppState::new(meta, "/srv/kiban/data")
        .with_collection(CollectionState {
            store,
            collection: collection.clone(),
            ingest_options: IngestOptions::default(),
        })
        .with_staff_auth(staff_tests::test_staff_auth(staff_tests::test_config()));
    let app = router(state.clone());
    let secret = staff_tests::add_staff(
        &state,
        "clerk",
        &[kiban_metadata::StaffRole::AcquisitionManager],
    )
    .await;
    let staff_cookies = staff_tests::signed_in_cookies(&app, "clerk", &secret, 0).await;
    Fixture {
        _dir: dir,
        app,
        state,
        collection,
        provider,
        staff_cookies,
    }
}

/// A staff page as the signed-in acquisition manager.
async fn get_staff(f: &Fixture, uri: &str) -> Reply {
    let reply = staff_tests::get_with(&f.app, uri, &f.staff_cookies).await;
    Reply {
        status: reply.status,
        headers: reply.headers,
        body: reply.body,
    }
}

/// A staff form posted by the signed-in acquisition manager, with the CSRF token or without.
async fn post_staff(f: &Fixture, uri: &str, with_csrf: bool, fields: &[(&str, &str)]) -> Reply {
    let cookies = if with_csrf {
        f.staff_cookies.clone()
    } else {
        f.staff_cookies
            .split("; ")
            .filter(|c| !c.starts_with("kiban_csrf="))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut fields = fields.to_vec();
    if with_csrf {
        fields.push(("csrf", staff_tests::CSRF));
    }
    let reply = staff_tests::post_form(&f.app, uri, &cookies, &fields).await;
    Reply {
        status: reply.status,
        headers: reply.headers,
        body: reply.body,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
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

async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// The CSRF token set by a form page (cookie) and the one in its hidden field.
fn csrf_of(reply: &Reply) -> String {
    let cookie = reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("kiban_csrf="))
        .expect("a CSRF cookie");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let token = cookie["kiban_csrf=".len()..].split(';').next().unwrap();
    assert!(
        reply
            .body
            .contains(&format!(r#"name="csrf" value="{token}""#)),
        "the form carries the cookie's token"
    );
    token.to_owned()
}

fn encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn post(app: &Router, uri: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Reply {
    let mut request =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(token) = cookie {
        request = request.header(header::COOKIE, format!("kiban_csrf={token}"));
    }
    send(app, request.body(Body::from(encode(fields))).unwrap()).await
}

struct Applicant<'a> {
    patient_id: &'a str,
    birth_date: &'a str,
    code: String,
    requester: &'a str,
}

async fn apply(f: &Fixture, csrf: &str, a: &Applicant<'_>) -> Reply {
    post(
        &f.app,
        "/optout",
        Some(csrf),
        &[
            ("csrf", csrf),
            ("provider", f.provider.as_str()),
            ("patient_id", a.patient_id),
            ("birth_date", a.birth_date),
            ("notice_code", &a.code),
            ("requester", a.requester),
            ("consent", "yes"),
        ],
    )
    .await
}

fn assert_no_identity(body: &str, a: &Applicant<'_>) {
    assert!(!body.contains(a.patient_id), "patient id echoed");
    assert!(!body.contains(a.birth_date), "birth date echoed");
    assert!(!body.contains(&a.code), "notice code echoed");
    assert!(
        !body.contains(&a.code.replace('-', "")),
        "notice code echoed"
    );
}

async fn csrf_from_form(f: &Fixture) -> String {
    let form = get(&f.app, "/optout").await;
    assert_eq!(form.status, StatusCode::OK);
    csrf_of(&form)
}

#[tokio::test]
async fn optout_page_renders_in_japanese_and_english() {
    let f = fixture().await;
    let ja = get(&f.app, "/optout").await;
    assert_eq!(ja.status, StatusCode::OK);
    assert!(ja.body.contains(r#"<html lang="ja">"#));
    assert!(ja.body.contains("通知に記載のコード"));
    assert!(ja.body.contains("不利益"));
    assert!(ja.body.contains("東都クリニック"));
    assert!(ja.body.contains(r#"type="date""#));
    assert!(ja.body.contains("親権者・法定代理人"));
    assert!(
        ja.body
            .contains(&format!(r#"value="{}""#, f.provider.as_str()))
    );
    csrf_of(&ja);

    let en = get(&f.app, "/optout?lang=en").await;
    assert_eq!(en.status, StatusCode::OK);
    assert!(en.body.contains(r#"<html lang="en">"#));
    assert!(en.body.contains("Code printed on the notice"));
    assert!(en.body.contains("Toto Clinic"));
    assert!(en.body.contains(r#"action="/optout?lang=en""#));
    // The English choice is remembered like on the other pages.
    assert!(
        en.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("lang=en"))
    );
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let f = fixture().await;
    let csrf = csrf_from_form(&f).await;
    let applicant = Applicant {
        patient_id: ADULT_ID,
        birth_date: ADULT_BIRTH,
        code: f.collection.notice_code(&f.provider, ADULT_ID),
        requester: "patient",
    };
    let fields = |token: &'static str| {
        vec![
            ("csrf", token),
            ("provider", "prov-001"),
            ("patient_id", ADULT_ID),
            ("birth_date", ADULT_BIRTH),
            ("requester", "patient"),
            ("consent", "yes"),
        ]
    };
    // No cookie, no field.
    let r = post(&f.app, "/optout", None, &fields("")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A field that does not match the cookie.
    let r = post(&f.app, "/optout", Some(&csrf), &fields("0000")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The right token, but the browser says another site sent the form.
    let mut body = vec![("csrf", csrf.as_str()), ("notice_code", &applicant.code)];
    body.extend(fields("").into_iter().skip(1));
    let request = Request::post("/optout")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("kiban_csrf={csrf}"))
        .header(header::HOST, "kiban.example")
        .header(header::ORIGIN, "https://evil.example")
        .body(Body::from(encode(&body)))
        .unwrap();
    let r = send(&f.app, request).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_no_identity(&r.body, &applicant);
    let request = Request::post("/optout")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("kiban_csrf={csrf}"))
        .header(header::ORIGIN, "null")
        .header("sec-fetch-site", "cross-site")
        .body(Body::from(encode(&body)))
        .unwrap();
    assert_eq!(send(&f.app, request).await.status, StatusCode::FORBIDDEN);
    // The phone form is protected the same way.
    let r = post_staff(
        &f,
        "/registers/refusals/new",
        false,
        &[("provider", f.provider.as_str()), ("patient_id", ADULT_ID)],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        f.collection
            .metadata()
            .refusals(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn correct_details_give_a_receipt_that_can_be_checked() {
    let f = fixture().await;
    let csrf = csrf_from_form(&f).await;
    let applicant = Applicant {
        patient_id: ADULT_ID,
        birth_date: ADULT_BIRTH,
        code: f.collection.notice_code(&f.provider, ADULT_ID),
        requester: "patient",
    };
    // What a browser sends under `Referrer-Policy: no-referrer`: `Origin: null`, same origin.
    let request = Request::post("/optout")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("kiban_csrf={csrf}"))
        .header(header::ORIGIN, "null")
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(encode(&[
            ("csrf", &csrf),
            ("provider", f.provider.as_str()),
            ("patient_id", applicant.patient_id),
            ("birth_date", applicant.birth_date),
            ("notice_code", &applicant.code),
            ("requester", applicant.requester),
            ("consent", "yes"),
        ])))
        .unwrap();
    let r = send(&f.app, request).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("提供停止を受け付けました"));
    assert_no_identity(&r.body, &applicant);
    let start = r.body.find("OPT-").expect("a receipt number");
    let receipt: String = r.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let status = f
        .collection
        .check_receipt(&receipt)
        .await
        .unwrap()
        .expect("the receipt is on record");
    assert_eq!(status.provider_id, f.provider);
    assert_eq!(status.requester, Requester::Patient);
    assert_eq!(status.channel, RefusalChannel::Web);

    let check = get(&f.app, &format!("/optout/receipt?number={receipt}")).await;
    assert_eq!(check.status, StatusCode::OK);
    assert!(check.body.contains("受け付けられています"));
    assert!(check.body.contains("東都クリニック"));
    assert!(check.body.contains("2026-03-20"));
    assert!(check.body.contains("ウェブ"));
    let en = get(&f.app, &format!("/optout/receipt?number={receipt}&lang=en")).await;
    assert!(
        en.body
            .contains("The refusal with this receipt number is recorded.")
    );

    // Applying again returns the first receipt.
    let again = apply(&f, &csrf, &applicant).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains(&receipt));
    assert!(again.body.contains("以前に受け付けています"));

    // Staff see it in the register by receipt number only.
    let register = get_staff(&f, "/registers/refusals").await;
    assert_eq!(register.status, StatusCode::OK);
    assert!(register.body.contains(&receipt));
    assert!(register.body.contains("R-A2"));
    assert_no_identity(&register.body, &applicant);
    let events = get_staff(&f, "/registers/events").await;
    assert_eq!(events.status, StatusCode::OK);
    assert!(events.body.contains("refusal.recorded"));
    assert_no_identity(&events.body, &applicant);
}

#[tokio::test]
async fn a_wrong_code_is_a_mismatch_without_receipt() {
    let f = fixture().await;
    let csrf = csrf_from_form(&f).await;
    let right = f.collection.notice_code(&f.provider, ADULT_ID);
    let wrong = f.collection.notice_code(&f.provider, CHILD_ID);
    assert_ne!(right, wrong);
    let applicant = Applicant {
        patient_id: ADULT_ID,
        birth_date: ADULT_BIRTH,
        code: wrong,
        requester: "patient",
    };
    let r = apply(&f, &csrf, &applicant).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("一致しませんでした"));
    assert!(!r.body.contains("OPT-"));
    assert_no_identity(&r.body, &applicant);
    assert!(!r.body.contains(&right));
    assert!(
        f.collection
            .metadata()
            .refusals(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let events = get_staff(&f, "/registers/events").await;
    assert!(events.body.contains("refusal.verification_failed"));
}

#[tokio::test]
async fn a_guardian_cannot_refuse_for_an_adult_but_can_for_a_child() {
    let f = fixture().await;
    let csrf = csrf_from_form(&f).await;
    let adult = Applicant {
        patient_id: ADULT_ID,
        birth_date: ADULT_BIRTH,
        code: f.collection.notice_code(&f.provider, ADULT_ID),
        requester: "guardian",
    };
    let r = apply(&f, &csrf, &adult).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("16歳未満"));
    assert!(!r.body.contains("OPT-"));
    assert_no_identity(&r.body, &adult);

    let child = Applicant {
        patient_id: CHILD_ID,
        birth_date: CHILD_BIRTH,
        code: f.collection.notice_code(&f.provider, CHILD_ID),
        requester: "guardian",
    };
    let r = apply(&f, &csrf, &child).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("OPT-"));
    assert_no_identity(&r.body, &child);
}

#[tokio::test]
async fn incomplete_forms_are_shown_again_without_identity() {
    let f = fixture().await;
    let csrf = csrf_from_form(&f).await;
    let code = f.collection.notice_code(&f.provider, ADULT_ID);
    // No consent ticked.
    let r = post(
        &f.app,
        "/optout",
        Some(&csrf),
        &[
            ("csrf", &csrf),
            ("provider", f.provider.as_str()),
            ("patient_id", ADULT_ID),
            ("birth_date", ADULT_BIRTH),
            ("notice_code", &code),
            ("requester", "patient"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("未入力の項目があります"));
    assert!(r.body.contains(r#"<form class="optout-form""#));
    assert!(!r.body.contains(ADULT_ID) && !r.body.contains(&code));
    // A birth date that is not a date.
    let r = post(
        &f.app,
        "/optout",
        Some(&csrf),
        &[
            ("csrf", &csrf),
            ("provider", f.provider.as_str()),
            ("patient_id", ADULT_ID),
            ("birth_date", "1980-13-45"),
            ("notice_code", &code),
            ("requester", "bereaved_family"),
            ("consent", "yes"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("生年月日を正しく入力してください"));
    assert!(r.body.contains(r#"value="bereaved_family" checked"#));
    // Staff or provider cannot be chosen on the patient page.
    let r = post(
        &f.app,
        "/optout",
        Some(&csrf),
        &[
            ("csrf", &csrf),
            ("provider", f.provider.as_str()),
            ("patient_id", ADULT_ID),
            ("birth_date", ADULT_BIRTH),
            ("notice_code", &code),
            ("requester", "staff"),
            ("consent", "yes"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn repeated_failures_are_rate_limited() {
    let f = fixture().await;
    let csrf = csrf_from_form(&f).await;
    let applicant = Applicant {
        patient_id: ADULT_ID,
        birth_date: ADULT_BIRTH,
        code: "AAAAA-AAAAA".into(),
        requester: "patient",
    };
    for _ in 0..FAILED_ATTEMPT_LIMIT {
        let r = apply(&f, &csrf, &applicant).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Even the right code is refused now, and receipt guessing too.
    let right = Applicant {
        code: f.collection.notice_code(&f.provider, ADULT_ID),
        ..applicant
    };
    let r = apply(&f, &csrf, &right).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert!(!r.body.contains("OPT-"));
    let r = get(&f.app, "/optout/receipt?number=OPT-2026-AAAAAAAA").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn failures_age_out_of_the_window() {
    let limiter = FailedAttempts::new(2, Duration::from_millis(30));
    limiter.record("a");
    limiter.record("a");
    assert!(limiter.is_blocked("a"));
    assert!(!limiter.is_blocked("b"));
    std::thread::sleep(Duration::from_millis(40));
    assert!(!limiter.is_blocked("a"));
}

#[tokio::test]
async fn unknown_receipts_are_not_found() {
    let f = fixture().await;
    let r = get(&f.app, "/optout/receipt?number=OPT-2026-ZZZZZZZZ").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("この受付番号の記録はありません"));
    let r = get(&f.app, "/optout/receipt").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(r#"name="number""#));
    let long = "X".repeat(200);
    let r = get(&f.app, &format!("/optout/receipt?number={long}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.body.contains(&long));
}

#[tokio::test]
async fn staff_record_phone_refusals() {
    let f = fixture().await;
    let form = get_staff(&f, "/registers/refusals/new").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("電話による提供停止の受付"));
    assert!(
        form.body
            .contains(&format!(r#"name="csrf" value="{}""#, staff_tests::CSRF))
    );
    let r = post_staff(
        &f,
        "/registers/refusals/new",
        true,
        &[
            ("provider", f.provider.as_str()),
            ("patient_id", "555001"),
            ("refused_on", "2026-03-18"),
            ("requester", "staff"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("提供停止を記録しました"));
    assert!(!r.body.contains("555001"));
    let key = f.collection.patient_key(&f.provider, "555001");
    let refusal = f
        .collection
        .metadata()
        .refusal_of(f.provider.as_str(), key.as_str())
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(refusal.channel, RefusalChannel::Phone);
    assert_eq!(refusal.requester, Requester::Staff);
    assert_eq!(refusal.refused_on.to_string(), "2026-03-18");
    // The refusal names the staff member who took the call.
    assert_eq!(refusal.recorded_by, "staff:clerk");
    assert!(r.body.contains(&refusal.receipt_number));

    // A day in the future is refused.
    let r = post_staff(
        &f,
        "/registers/refusals/new",
        true,
        &[
            ("provider", f.provider.as_str()),
            ("patient_id", "555002"),
            ("refused_on", "2026-04-01"),
            ("requester", "patient"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("未来の日付"));
    assert!(!r.body.contains("555002"));
}

#[tokio::test]
async fn a_read_only_server_answers_503() {
    let f = fixture().await;
    let read_only = AppState::new(f.state.meta.clone(), "/srv/kiban/data");
    let app = router(read_only);
    for uri in [
        "/optout",
        "/optout/receipt?number=OPT-2026-AAAAAAAA",
        "/registers/refusals",
        "/registers/refusals/new",
        "/registers/events",
    ] {
        let r = get(&app, uri).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert!(r.body.contains("読み取り専用"), "{uri}");
    }
    let r = post(&app, "/optout", None, &[("csrf", "x")]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn constant_time_comparison() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    let token = new_csrf_token().unwrap();
    assert!(is_csrf_token(&token));
    assert_ne!(token, new_csrf_token().unwrap());
    assert!(!is_csrf_token("zz"));
}
