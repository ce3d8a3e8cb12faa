//! Tests of the provider portal over a real (temporary) store, metadata database and collection.

use super::*;
use crate::router;
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use kiban_collection::{
    Collection, CollectionPolicy, FixedClock, NewProviderRegistration, NotificationMeans,
};
use kiban_ingest::{IngestOptions, UploadBody};
use kiban_metadata::Metadata;
use kiban_model::ProviderKind;
use kiban_store::{KeyFile, Store};
use tower::ServiceExt;

const PATIENT_NUMBER: &str = "00000123";
const SECRET_NAME: &str = "髙橋 花子";

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    app: Router,
    collection: Arc<Collection>,
    provider: ProviderId,
    token: String,
    other_token: String,
}

fn ndjson_with_a_bad_line() -> String {
    let patient = serde_json::json!({
        "resourceType": "Patient", "id": "p1",
        "identifier": [{"system": "urn:oid:1.2.392.100495.20.3.51.11312345678", "value": PATIENT_NUMBER}],
        "name": [{"text": SECRET_NAME}],
        "gender": "female", "birthDate": "1950-01-01"
    });
    format!("{patient}\n{{\"resourceType\": \"Observation\", \"id\": \"broken\"}}\n")
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
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
    let (provider, token) = collection
        .add_provider(&registration, "test")
        .await
        .unwrap();
    let (other, other_token) = collection
        .add_provider(
            &NewProviderRegistration::new("西都病院", ProviderKind::GeneralHospital),
            "test",
        )
        .await
        .unwrap();
    for p in [&provider, &other] {
        collection
            .record_notification(
                p,
                PATIENT_NUMBER,
                "2026-01-10".parse().unwrap(),
                NotificationMeans::Letter,
                "test",
            )
            .await
            .unwrap();
        kiban_ingest::ingest_upload(
            store.clone(),
            &collection,
            p.as_str(),
            &format!("{}/api/fhir/$import", p.as_str()),
            UploadBody::Ndjson(ndjson_with_a_bad_line().into_bytes()),
            &IngestOptions::default(),
        )
        .await
        .unwrap();
    }
    let state = AppState::new(meta, "test-data").with_collection(CollectionState {
        store,
        collection: collection.clone(),
        ingest_options: IngestOptions::default(),
    });
    Fixture {
        _dir: dir,
        app: router(state.clone()),
        state,
        collection,
        provider,
        token: token.expose_secret().to_owned(),
        other_token: other_token.expose_secret().to_owned(),
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with(&format!("{name}=")))
    }

    fn location(&self) -> &str {
        self.headers[header::LOCATION].to_str().unwrap()
    }
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

async fn get(app: &Router, uri: &str, cookies: &str) -> Reply {
    let mut request = Request::get(uri);
    if !cookies.is_empty() {
        request = request.header(header::COOKIE, cookies);
    }
    send(app, request.body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, uri: &str, cookies: &str, body: String) -> Reply {
    let mut request =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if !cookies.is_empty() {
        request = request.header(header::COOKIE, cookies);
    }
    send(app, request.body(Body::from(body)).unwrap()).await
}

/// The CSRF token of the sign-in form (cookie value, equal to the hidden field).
async fn csrf(app: &Router) -> String {
    let reply = get(app, "/provider", "").await;
    assert_eq!(reply.status, StatusCode::OK);
    let cookie = reply.cookie("kiban_csrf").expect("a CSRF cookie");
    let token = cookie["kiban_csrf=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        reply
            .body
            .contains(&format!(r#"name="csrf" value="{token}""#))
    );
    token
}

/// Signs in with `token`; the session cookie pair (`name=value`) when it worked.
async fn sign_in(app: &Router, csrf: &str, token: &str) -> (Reply, Option<String>) {
    let reply = post(
        app,
        "/provider/signin",
        &format!("kiban_csrf={csrf}"),
        format!("csrf={csrf}&token={}", percent_encode(token)),
    )
    .await;
    let session = reply
        .cookie(SESSION_COOKIE)
        .map(|c| c.split(';').next().unwrap().to_owned());
    (reply, session)
}

#[tokio::test]
async fn a_provider_signs_in_and_sees_only_its_own_records() {
    let f = fixture().await;
    let csrf = csrf(&f.app).await;
    let (reply, session) = sign_in(&f.app, &csrf, &f.token).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert!(reply.location().starts_with("/provider/intakes"));
    let set = reply.cookie(SESSION_COOKIE).unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/provider",
        "Max-Age=3600",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    let session = session.unwrap();
    // The token itself never goes into a cookie.
    assert!(!set.contains(&f.token) && !session.contains("kbn_"));
    let cookies = format!("{session}; kiban_csrf={csrf}");

    // Intakes, in Japanese and English.
    let page = get(&f.app, "/provider/intakes", &cookies).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("提供記録"));
    assert!(
        page.body
            .contains(&format!("{}/api/fhir/$import", f.provider.as_str()))
    );
    assert!(page.body.contains("/provider/provision-record.csv"));
    assert!(
        !page.body.contains("prov-002/api"),
        "another provider's intake is shown"
    );
    assert!(!page.body.contains(SECRET_NAME) && !page.body.contains(PATIENT_NUMBER));
    let page = get(&f.app, "/provider/intakes?lang=en", &cookies).await;
    assert!(page.body.contains("Provision record (Art. 32)"));
    assert!(page.body.contains("Toto Clinic"));

    // The CSV download.
    let csv = get(&f.app, "/provider/provision-record.csv", &cookies).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(csv.body.starts_with("intake_id,received_at,"));
    assert_eq!(csv.body.trim_end().split("\r\n").count(), 2, "{}", csv.body);
    assert!(!csv.body.contains("prov-002"));

    // The quarantine and an original.
    let page = get(&f.app, "/provider/quarantine", &cookies).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Observation"));
    let href_start = page.body.find("/provider/quarantine/prov-").unwrap();
    let href: String = page.body[href_start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    assert!(href.contains(f.provider.as_str()), "{href}");
    let original = get(&f.app, &href, &cookies).await;
    assert_eq!(original.status, StatusCode::OK, "{}", original.body);
    assert!(
        original.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let json: serde_json::Value = serde_json::from_str(&original.body).unwrap();
    assert!(json["original"].as_str().unwrap().contains("broken"));
    // The other provider's entry is not found with this session.
    let theirs = href.replace(f.provider.as_str(), "prov-002");
    assert_eq!(
        get(&f.app, &theirs, &cookies).await.status,
        StatusCode::NOT_FOUND
    );

    // Sign-out ends the session.
    let out = post(
        &f.app,
        "/provider/signout",
        &cookies,
        format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.cookie(SESSION_COOKIE).unwrap().contains("Max-Age=0"));
    let after = get(&f.app, "/provider/intakes", &cookies).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(after.location().starts_with("/provider"));
}

#[tokio::test]
async fn pages_need_a_session_and_a_revoked_token_ends_it() {
    let f = fixture().await;
    for path in [
        "/provider/intakes",
        "/provider/provision-record.csv",
        "/provider/quarantine",
        "/provider/quarantine/x.1.0",
    ] {
        let reply = get(&f.app, path, "").await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
        let forged = format!("{SESSION_COOKIE}={}", "ab".repeat(32));
        let reply = get(&f.app, path, &forged).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
    }
    let csrf = csrf(&f.app).await;
    let (_, session) = sign_in(&f.app, &csrf, &f.other_token).await;
    let cookies = session.unwrap();
    assert_eq!(
        get(&f.app, "/provider/intakes", &cookies).await.status,
        StatusCode::OK
    );
    // A signed-in visitor opening the sign-in page goes to its records.
    assert_eq!(
        get(&f.app, "/provider", &cookies).await.status,
        StatusCode::SEE_OTHER
    );
    let token_id = kiban_collection::token_id_of_bearer(&f.other_token).unwrap();
    f.collection
        .revoke_token(token_id, "staff:test")
        .await
        .unwrap();
    let reply = get(&f.app, "/provider/intakes", &cookies).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn wrong_tokens_fail_and_are_limited_per_client() {
    let f = fixture().await;
    let csrf = csrf(&f.app).await;
    let (reply, session) = sign_in(&f.app, &csrf, "kbn_000000000000_0000").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(session.is_none());
    assert!(reply.body.contains("トークンを確認できませんでした"));
    // The typed token is not echoed back into the form.
    let (reply, _) = sign_in(&f.app, &csrf, "not-a-token-at-all").await;
    assert!(!reply.body.contains("not-a-token-at-all"));
    let revoked = f
        .collection
        .issue_token(&f.provider, None, "test")
        .await
        .unwrap();
    f.collection
        .revoke_token(revoked.token_id(), "test")
        .await
        .unwrap();
    let (reply, _) = sign_in(&f.app, &csrf, revoked.expose_secret()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    for _ in 3..FAILED_ATTEMPT_LIMIT_FOR_TESTS {
        sign_in(&f.app, &csrf, "kbn_wrong").await;
    }
    // Over the limit even the right token waits.
    let (reply, session) = sign_in(&f.app, &csrf, &f.token).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(session.is_none());
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
}

/// The failed-attempt limit of the collection pages.
const FAILED_ATTEMPT_LIMIT_FOR_TESTS: usize = super::super::FAILED_ATTEMPT_LIMIT;

#[tokio::test]
async fn sign_in_needs_the_form_token_and_the_same_site() {
    let f = fixture().await;
    let csrf = csrf(&f.app).await;
    // No CSRF cookie.
    let reply = post(
        &f.app,
        "/provider/signin",
        "",
        format!("csrf={csrf}&token={}", percent_encode(&f.token)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.cookie(SESSION_COOKIE).is_none());
    // Another site.
    let request = Request::post("/provider/signin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("kiban_csrf={csrf}"))
        .header(header::ORIGIN, "https://evil.example")
        .header(header::HOST, "kiban.example")
        .body(Body::from(format!(
            "csrf={csrf}&token={}",
            percent_encode(&f.token)
        )))
        .unwrap();
    let reply = send(&f.app, request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.cookie(SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn the_staff_intake_page_shows_the_notification_basis() {
    let f = fixture().await;
    let meta = f.state.meta.clone();
    let intake = meta
        .provider_intakes(f.provider.as_str(), 10)
        .await
        .unwrap()
        .remove(0);
    let patient = f.collection.patient_key(&f.provider, PATIENT_NUMBER);
    let basis = f
        .collection
        .notification_basis_many(&f.provider, std::slice::from_ref(&patient))
        .await
        .unwrap();
    meta.record_intake_notification_basis(
        &intake.id,
        &[kiban_metadata::IntakePatientBasis {
            patient_key: patient.0.clone(),
            notified_on: basis[&patient].notified_on,
            means: basis[&patient].means,
        }],
    )
    .await
    .unwrap();
    let page = get(&f.app, &format!("/intakes/{}", intake.id), "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"id="notification-basis""#));
    assert!(page.body.contains("書面") && page.body.contains("2026-01-10"));
    let page = get(&f.app, &format!("/intakes/{}?lang=en", intake.id), "").await;
    assert!(page.body.contains("Letter"));
    assert!(
        !page.body.contains(&patient.0),
        "patient keys are not shown"
    );
}
