//! Tests of the intake API over a real (temporary) store, metadata database and collection.

use super::*;
use crate::operation_outcome::FHIR_JSON;
use axum::http::Request;
use kiban_collection::{
    Collection, CollectionPolicy, FixedClock, NewProviderRegistration, NotificationMeans,
};
use kiban_ingest::IngestOptions;
use kiban_metadata::Metadata;
use kiban_model::ProviderKind;
use kiban_store::{KeyFile, Store};
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

const JP_PATIENT_SYSTEM: &str = "urn:oid:1.2.392.100495.20.3.51.11312345678";
const PATIENT_NUMBER: &str = "00000123";
const SECRET_NAME: &str = "髙橋 花子";

struct Fixture {
    _keys: TempDir,
    _data: TempDir,
    state: AppState,
    meta: Metadata,
    collection: Arc<Collection>,
    provider: ProviderId,
    token: String,
}

async fn fixture() -> Fixture {
    let keys = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let key_file = KeyFile::generate(&keys.path().join("master.key")).unwrap();
    let store = Arc::new(Store::open(data.path(), Arc::new(key_file)).unwrap());
    let meta = Metadata::open_in_dir(data.path()).await.unwrap();
    let clock = Arc::new(FixedClock::on_date("2026-03-20".parse().unwrap()));
    let collection = Arc::new(Collection::new(
        meta.clone(),
        store.clone(),
        clock,
        CollectionPolicy::default(),
    ));
    let (provider, token) = collection
        .add_provider(
            &NewProviderRegistration::new("東都大学病院", ProviderKind::UniversityHospital),
            "test",
        )
        .await
        .unwrap();
    collection
        .record_notification(
            &provider,
            PATIENT_NUMBER,
            "2026-01-10".parse().unwrap(),
            NotificationMeans::Letter,
            "test",
        )
        .await
        .unwrap();
    let state = AppState::new(meta.clone(), "test-data").with_collection(CollectionState {
        store,
        collection: collection.clone(),
        ingest_options: IngestOptions::default(),
    });
    Fixture {
        _keys: keys,
        _data: data,
        state,
        meta,
        collection,
        provider,
        token: token.expose_secret().to_owned(),
    }
}

impl Fixture {
    fn app(&self, config: FhirApiConfig) -> Router {
        Router::new()
            .merge(routes(config))
            .with_state(self.state.clone())
    }

    async fn send(&self, app: Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(
            !text.contains(&self.token) && !text.contains(SECRET_NAME),
            "a response echoed a secret: {text}"
        );
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, headers, json)
    }

    fn post(&self, path: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
        Request::post(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap()
    }

    async fn intakes(&self) -> Vec<kiban_metadata::Intake> {
        self.meta.intake_log(100).await.unwrap()
    }
}

fn urn(n: u32) -> String {
    format!("urn:uuid:00000000-0000-4000-8000-{n:012}")
}

fn entry(full_url: &str, resource: Value) -> Value {
    let kind = resource["resourceType"].clone();
    json!({"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": kind}})
}

/// A transaction Bundle of the notified patient with one Condition.
fn transaction() -> Value {
    let patient = urn(1);
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        entry(&patient, json!({
            "resourceType": "Patient", "id": "pat-1",
            "identifier": [{"system": JP_PATIENT_SYSTEM, "value": PATIENT_NUMBER}],
            "name": [{"use": "official", "text": SECRET_NAME}],
            "gender": "female", "birthDate": "1948-02-29"
        })),
        entry(&urn(2), json!({
            "resourceType": "Condition", "id": "cond-1",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [
                {"system": "http://medis.or.jp/CodeSystem/master-disease-exCode", "code": "ND6F", "display": "2型糖尿病"},
                {"system": "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full", "code": "E11.9"}],
                "text": "2型糖尿病"},
            "subject": {"reference": patient},
            "onsetDateTime": "2023-12-01", "recordedDate": "2024-01-10"
        })),
    ]})
}

fn issues(outcome: &Value) -> &Vec<Value> {
    assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
    outcome["issue"].as_array().unwrap()
}

#[tokio::test]
async fn a_request_without_a_token_is_401() {
    let f = fixture().await;
    let request = Request::post("/fhir")
        .header(header::CONTENT_TYPE, FHIR_JSON)
        .body(Body::from(transaction().to_string()))
        .unwrap();
    let (status, headers, outcome) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(issues(&outcome)[0]["code"], "login");
    assert!(f.intakes().await.is_empty());
}

#[tokio::test]
async fn an_unknown_or_revoked_token_is_401() {
    let f = fixture().await;
    let mut request = f.post("/fhir", FHIR_JSON, transaction().to_string());
    let forged = format!("Bearer {}x", f.token);
    request.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&forged).unwrap(),
    );
    let (status, _, _) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let tokens = f.collection.tokens(&f.provider).await.unwrap();
    f.collection
        .revoke_token(&tokens[0].token_id, "test")
        .await
        .unwrap();
    let request = f.post("/fhir", FHIR_JSON, transaction().to_string());
    let (status, headers, outcome) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    assert_eq!(issues(&outcome)[0]["severity"], "error");
    assert!(f.intakes().await.is_empty());
}

#[tokio::test]
async fn a_wrong_content_type_is_415() {
    let f = fixture().await;
    let request = f.post("/fhir", "text/plain", transaction().to_string());
    let (status, _, outcome) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(issues(&outcome)[0]["code"], "not-supported");
    let request = f.post("/fhir/$import", FHIR_JSON, "{}\n");
    let (status, _, _) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn an_oversized_body_is_413_and_nothing_is_written() {
    let f = fixture().await;
    let config = FhirApiConfig {
        max_body_bytes: 100,
        ..FhirApiConfig::default()
    };
    let request = f.post("/fhir", FHIR_JSON, transaction().to_string());
    let (status, _, outcome) = f.send(f.app(config.clone()), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(issues(&outcome)[0]["code"], "too-costly");
    // The request above had no Content-Length (the body was cut while read); a declared
    // length over the limit is refused before reading.
    let mut request = f.post("/fhir", FHIR_JSON, "{}");
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("1000000"));
    let (status, _, _) = f.send(f.app(config), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(f.intakes().await.is_empty());
}

#[tokio::test]
async fn malformed_json_is_400_and_nothing_is_written() {
    let f = fixture().await;
    let app = || f.app(FhirApiConfig::default());
    let cases: Vec<(&str, &str, String)> = vec![
        (
            "/fhir",
            FHIR_JSON,
            format!("{{\"resourceType\": \"Bundle\", \"x\": \"{SECRET_NAME}\""),
        ),
        ("/fhir", FHIR_JSON, "[1, 2]".to_owned()),
        ("/fhir", FHIR_JSON, "{\"resourceType\": 5}".to_owned()),
        ("/fhir", FHIR_JSON, "{\"type\": \"transaction\"}".to_owned()),
        ("/fhir", FHIR_JSON, "   ".to_owned()),
        (
            "/fhir",
            FHIR_JSON,
            json!({"resourceType": "Patient"}).to_string(),
        ),
        (
            "/fhir/Condition",
            FHIR_JSON,
            json!({"resourceType": "Patient"}).to_string(),
        ),
        (
            "/fhir/$import",
            "application/fhir+ndjson",
            "{}\n\n{\"resourceType\": \"Patient\",\n".to_owned(),
        ),
        ("/fhir/$import", "application/x-ndjson", "\n \n".to_owned()),
    ];
    for (path, content_type, body) in cases {
        let (status, _, outcome) = f
            .send(app(), f.post(path, content_type, body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {outcome}");
        let text = outcome.to_string();
        assert!(!text.contains(SECRET_NAME));
        assert_eq!(issues(&outcome)[0]["severity"], "error");
    }
    let invalid_utf8 = Body::from(vec![b'{', 0xff, b'}']);
    let (status, _, _) = f
        .send(app(), f.post("/fhir", FHIR_JSON, invalid_utf8))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let ndjson = "{}\n\n{\"resourceType\": \"Patient\",\n";
    let (_, _, outcome) = f
        .send(
            app(),
            f.post("/fhir/$import", "application/fhir+ndjson", ndjson),
        )
        .await;
    assert_eq!(issues(&outcome)[0]["location"][0], "line 3");
    assert!(f.intakes().await.is_empty(), "nothing may be recorded");
}

#[tokio::test]
async fn a_valid_transaction_is_taken() {
    let f = fixture().await;
    // Through the whole router: the portal's small body limit must not apply to /fhir.
    let mut bundle = transaction();
    bundle["meta"] =
        json!({"tag": [{"system": "http://example.jp/tags", "code": "x".repeat(8 * 1024)}]});
    let request = f.post(
        "/fhir",
        "application/fhir+json; charset=utf-8",
        bundle.to_string(),
    );
    let (status, _, outcome) = f.send(crate::router(f.state.clone()), request).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    let summary = issues(&outcome)[0]["diagnostics"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(summary.contains("2 accepted"), "{summary}");
    assert!(summary.contains("0 rejected"), "{summary}");
    let intakes = f.intakes().await;
    assert_eq!(intakes.len(), 1);
    assert_eq!(intakes[0].provider_id, f.provider.as_str());
    assert_eq!(
        intakes[0].source,
        format!("{}/api/fhir", f.provider.as_str())
    );
    assert_eq!(intakes[0].resources_accepted, 2);
    assert!(summary.contains(&intakes[0].id));

    // The same body again: taken before, nothing read.
    let request = f.post("/fhir", FHIR_JSON, bundle.to_string());
    let (status, _, outcome) = f.send(crate::router(f.state.clone()), request).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert!(
        issues(&outcome)[0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("taken completely before")
    );
}

#[tokio::test]
async fn a_single_resource_is_taken_at_its_type() {
    let f = fixture().await;
    let patient = transaction()["entry"][0]["resource"].clone();
    let request = f.post("/fhir/Patient", FHIR_JSON, patient.to_string());
    let (status, _, outcome) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(f.intakes().await[0].resources_accepted, 1);
}

#[tokio::test]
async fn an_invalid_entry_rejects_the_transaction_with_its_path() {
    let f = fixture().await;
    let mut bundle = transaction();
    bundle["entry"][1]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("code");
    bundle["entry"][1]["resource"]["clinicalStatus"] = json!(42);
    let request = f.post("/fhir", FHIR_JSON, bundle.to_string());
    let (status, _, outcome) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{outcome}");
    let all = issues(&outcome);
    assert_eq!(all[0]["severity"], "error");
    let entry1: Vec<&Value> = all
        .iter()
        .filter(|i| i["expression"][0] == "Bundle.entry[1]")
        .collect();
    assert_eq!(entry1.len(), 1, "{outcome}");
    assert_eq!(entry1[0]["code"], "invalid");
    assert!(
        entry1[0]["diagnostics"]
            .as_str()
            .unwrap()
            .starts_with("Condition rejected")
    );
    let entry0: Vec<&Value> = all
        .iter()
        .filter(|i| i["expression"][0] == "Bundle.entry[0]")
        .collect();
    assert_eq!(
        entry0.len(),
        1,
        "the valid entry goes with its bundle: {outcome}"
    );
    assert_eq!(entry0[0]["code"], "processing");
    let intakes = f.intakes().await;
    assert_eq!(intakes[0].resources_accepted, 0);
    assert_eq!(intakes[0].resources_rejected, 2);
}

#[tokio::test]
async fn a_partly_bad_ndjson_upload_is_200_with_the_lines() {
    let f = fixture().await;
    let good = transaction();
    let mut bad = transaction();
    bad["type"] = json!("batch");
    bad["entry"][1]["resource"]["id"] = json!("cond-2");
    bad["entry"][1]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("subject");
    let body = format!("{good}\n\n{bad}\n");
    let request = f.post("/fhir/$import", "application/fhir+ndjson", body);
    let (status, _, outcome) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    let all = issues(&outcome);
    assert_eq!(all[0]["severity"], "warning");
    let rejected: Vec<&Value> = all.iter().filter(|i| i["severity"] == "error").collect();
    assert_eq!(rejected.len(), 1, "{outcome}");
    assert_eq!(rejected[0]["location"][0], "line 3");
    assert_eq!(rejected[0]["expression"][0], "Bundle.entry[1]");
}

#[tokio::test]
async fn an_idempotency_key_replays_and_refuses_another_body() {
    let f = fixture().await;
    let keyed = |body: String, key: &str| {
        let mut request = f.post("/fhir", FHIR_JSON, body);
        request
            .headers_mut()
            .insert(IDEMPOTENCY_KEY, HeaderValue::from_str(key).unwrap());
        request
    };
    let app = || f.app(FhirApiConfig::default());
    let body = transaction().to_string();
    let (status, headers, first) = f.send(app(), keyed(body.clone(), "upload-0001")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(!headers.contains_key(IDEMPOTENT_REPLAYED));
    let (status, headers, again) = f.send(app(), keyed(body.clone(), "upload-0001")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[IDEMPOTENT_REPLAYED], "true");
    assert_eq!(
        again, first,
        "the stored body is replayed, not a 'taken before' answer"
    );
    assert_eq!(f.intakes().await.len(), 1);

    let mut other = transaction();
    other["entry"][1]["resource"]["recordedDate"] = json!("2024-01-11");
    let (status, _, outcome) = f.send(app(), keyed(other.to_string(), "upload-0001")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(issues(&outcome)[0]["code"], "conflict");
    assert_eq!(
        f.intakes().await.len(),
        1,
        "nothing of the other body is taken"
    );

    for bad_key in ["a key with spaces", &"k".repeat(201)] {
        let (status, _, _) = f.send(app(), keyed(body.clone(), bad_key)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn too_many_requests_are_429() {
    let f = fixture().await;
    let app = f.app(FhirApiConfig {
        rate_limit: RateLimit {
            per_second: 0.01,
            burst: 2,
        },
        ..FhirApiConfig::default()
    });
    let body = transaction().to_string();
    for _ in 0..2 {
        let (status, _, outcome) = f
            .send(app.clone(), f.post("/fhir", FHIR_JSON, body.clone()))
            .await;
        assert_eq!(status, StatusCode::OK, "{outcome}");
    }
    let (status, headers, outcome) = f.send(app.clone(), f.post("/fhir", FHIR_JSON, body)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&retry), "{retry}");
    assert_eq!(issues(&outcome)[0]["code"], "too-costly");
}

#[tokio::test]
async fn the_capability_statement_lists_the_interactions() {
    let f = fixture().await;
    let request = Request::get("/fhir/metadata").body(Body::empty()).unwrap();
    let (status, _, statement) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(
        statement["rest"][0]["interaction"][0]["code"],
        "transaction"
    );
    assert_eq!(statement["rest"][0]["operation"][0]["name"], "import");
}

#[tokio::test]
async fn a_server_without_a_key_does_not_take_data() {
    let f = fixture().await;
    let read_only = AppState::new(f.meta.clone(), "test-data");
    let app = Router::new()
        .merge(routes(FhirApiConfig::default()))
        .with_state(read_only);
    let request = f.post("/fhir", FHIR_JSON, transaction().to_string());
    let (status, _, _) = f.send(app, request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn the_outcome_lists_held_refused_and_unlisted_resources() {
    use kiban_ingest::{HeldEntry, Rejection};
    let report = FileReport {
        intake_id: "prov-001-abc".to_owned(),
        resources_accepted: 3,
        resources_held: 2,
        resources_refused: 1,
        resources_rejected: 5,
        rejections: vec![
            Rejection {
                line: 2,
                entry_index: 0,
                resource_type: Some("Condition".to_owned()),
                reason: "Condition.code: required element missing".to_owned(),
            },
            Rejection {
                line: 4,
                entry_index: 1,
                resource_type: Some("<script>".to_owned()),
                reason: "resourceType: not taken by the intake".to_owned(),
            },
        ],
        held: vec![
            HeldEntry {
                line: 4,
                entry_index: 3,
                resource_type: Some("Observation".to_owned()),
                eligible_on: Some("2026-04-10".parse().unwrap()),
            },
            HeldEntry {
                line: 2,
                entry_index: 0,
                resource_type: Some("Patient".to_owned()),
                eligible_on: None,
            },
        ],
        ..FileReport::default()
    };
    let shape = Shape::Ndjson {
        bundle_lines: HashSet::from([4]),
    };
    let (status, outcome) = outcome_of(&report, &shape);
    assert_eq!(status, StatusCode::OK, "some resources were taken");
    let json: Value = serde_json::from_str(&outcome.to_json()).unwrap();
    let all = issues(&json);
    assert_eq!(all[0]["severity"], "warning");
    assert!(
        all[0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("3 accepted")
    );
    // A single resource on its line: its type; an entry of a Bundle line: its path.
    assert_eq!(all[1]["expression"][0], "Condition");
    assert_eq!(all[1]["location"][0], "line 2");
    assert_eq!(all[2]["expression"][0], "Bundle.entry[1]");
    assert!(
        all[2]["diagnostics"]
            .as_str()
            .unwrap()
            .starts_with("resource rejected"),
        "a resource type that is no name is not echoed"
    );
    assert!(
        all[3]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("3 further")
    );
    assert_eq!(all[4]["severity"], "information");
    assert!(
        all[4]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("2026-04-10")
    );
    assert_eq!(all[4]["expression"][0], "Bundle.entry[3]");
    assert!(
        all[5]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("no notification")
    );
    assert_eq!(all[6]["code"], "forbidden");

    // Nothing taken at all: the upload was rejected as a whole.
    let nothing = FileReport {
        resources_rejected: 1,
        ..FileReport::default()
    };
    assert_eq!(
        outcome_of(&nothing, &shape).0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn a_patient_without_notification_is_held_not_rejected() {
    let f = fixture().await;
    let mut bundle = transaction();
    bundle["entry"][0]["resource"]["identifier"][0]["value"] = json!("00000999");
    let request = f.post("/fhir", FHIR_JSON, bundle.to_string());
    let (status, _, outcome) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    let all = issues(&outcome);
    assert!(
        all[0]["diagnostics"].as_str().unwrap().contains("2 held"),
        "{outcome}"
    );
    assert!(
        all.iter()
            .any(|i| i["severity"] == "information" && i["expression"][0] == "Bundle.entry[1]"),
        "{outcome}"
    );
}

// ---- fallback: unknown paths and wrong methods under /fhir ----

/// Sends through the whole application router (with its fallback).
async fn send_full(f: &Fixture, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    f.send(crate::router(f.state.clone()), request).await
}

#[tokio::test]
async fn unknown_fhir_paths_are_404_and_wrong_methods_405_with_an_outcome() {
    let f = fixture().await;
    for path in [
        "/fhir/",
        "/fhir/Patient/123",
        "/fhir/Patient/123/_history/1",
        "/fhir/a/b/c",
    ] {
        let (status, headers, outcome) =
            send_full(&f, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(FHIR_JSON),
            "{path}"
        );
        assert_eq!(issues(&outcome)[0]["severity"], "error", "{path}");
    }
    let cases: &[(&str, &str, &[&str])] = &[
        ("GET", "/fhir", &["POST"]),
        ("DELETE", "/fhir", &["POST"]),
        ("GET", "/fhir/Patient", &["POST"]),
        ("PUT", "/fhir/Patient", &["POST"]),
        ("GET", "/fhir/$import", &["POST"]),
        ("POST", "/fhir/metadata", &["GET", "HEAD"]),
        ("POST", "/fhir/$provision-record", &["GET", "HEAD"]),
        ("DELETE", "/fhir/$quarantine", &["GET", "HEAD"]),
    ];
    for (method, path, allowed) in cases {
        let request = Request::builder()
            .method(*method)
            .uri(*path)
            .body(Body::empty())
            .unwrap();
        let (status, headers, outcome) = send_full(&f, request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let allow = headers[header::ALLOW].to_str().unwrap();
        for m in *allowed {
            assert!(allow.contains(m), "{method} {path}: Allow {allow}");
        }
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(FHIR_JSON)
        );
        assert_eq!(
            issues(&outcome)[0]["code"],
            "not-supported",
            "{method} {path}"
        );
    }
    // The rest of the portal keeps its own 404s.
    let (status, headers, _) = send_full(
        &f,
        Request::get("/api/v1/nothing").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

// ---- the provider's own provision record and quarantine ----

impl Fixture {
    fn get_as(&self, path: &str, token: &str) -> Request<Body> {
        Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    }

    async fn text(&self, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let response = crate::router(self.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// Uploads the good transaction and a partly bad ndjson (one quarantined entry) as this
    /// fixture's provider, and records a notification basis for the first intake.
    async fn upload_with_quarantine(&self) {
        let request = self.post("/fhir", FHIR_JSON, transaction().to_string());
        let (status, _, outcome) = self.send(self.app(FhirApiConfig::default()), request).await;
        assert_eq!(status, StatusCode::OK, "{outcome}");
        let mut bad = transaction();
        bad["type"] = json!("batch");
        bad["entry"][1]["resource"]["id"] = json!("cond-2");
        bad["entry"][1]["resource"]
            .as_object_mut()
            .unwrap()
            .remove("subject");
        let request = self.post(
            "/fhir/$import",
            "application/fhir+ndjson",
            format!("{bad}\n"),
        );
        let (status, _, outcome) = self.send(self.app(FhirApiConfig::default()), request).await;
        assert_eq!(status, StatusCode::OK, "{outcome}");
    }
}

/// A second provider with its own token and one upload with a quarantined entry.
async fn second_provider(f: &Fixture) -> (ProviderId, String) {
    let (provider, token) = f
        .collection
        .add_provider(
            &NewProviderRegistration::new("西都病院", ProviderKind::GeneralHospital),
            "test",
        )
        .await
        .unwrap();
    f.collection
        .record_notification(
            &provider,
            PATIENT_NUMBER,
            "2026-01-10".parse().unwrap(),
            NotificationMeans::Poster,
            "test",
        )
        .await
        .unwrap();
    let mut bad = transaction();
    bad["type"] = json!("batch");
    bad["entry"][1]["resource"]["id"] = json!("cond-9");
    bad["entry"][1]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("subject");
    let request = Request::post("/fhir/$import")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token.expose_secret()),
        )
        .header(header::CONTENT_TYPE, "application/fhir+ndjson")
        .body(Body::from(format!("{bad}\n")))
        .unwrap();
    let (status, _, outcome) = f.send(f.app(FhirApiConfig::default()), request).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    (provider, token.expose_secret().to_owned())
}

#[tokio::test]
async fn a_provider_downloads_only_its_own_provision_record() {
    let f = fixture().await;
    f.upload_with_quarantine().await;
    let (other, other_token) = second_provider(&f).await;
    let mine = f
        .meta
        .provider_intakes(f.provider.as_str(), 10)
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    let theirs = f.meta.provider_intakes(other.as_str(), 10).await.unwrap();
    // What the lead's intake records (R-C4): the notice the patient's data was taken under.
    let patient = f.collection.patient_key(&f.provider, PATIENT_NUMBER);
    let basis = f
        .collection
        .notification_basis_many(&f.provider, std::slice::from_ref(&patient))
        .await
        .unwrap();
    let taken = mine.iter().find(|i| i.resources_rejected == 0).unwrap();
    f.meta
        .record_intake_notification_basis(
            &taken.id,
            &[kiban_metadata::IntakePatientBasis {
                patient_key: patient.0.clone(),
                notified_on: basis[&patient].notified_on,
                means: basis[&patient].means,
            }],
        )
        .await
        .unwrap();

    let (status, headers, csv) = f.text(f.get_as("/fhir/$provision-record", &f.token)).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(
        headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(
        lines[0],
        "intake_id,received_at,finished_at,source,status,resources_accepted,resources_duplicate,\
         resources_held,resources_refused,resources_quarantined,items_by_category,payload_sha256,\
         notification_basis"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    let row = lines.iter().find(|l| l.starts_with(&taken.id)).unwrap();
    assert!(row.contains(&taken.source_sha256), "{row}");
    assert!(
        row.contains("letter: 1 patient, notified 2026-01-10"),
        "{row}"
    );
    assert!(row.contains("Condition=1"), "{row}");
    assert!(row.contains(",completed,"), "{row}");
    for intake in &theirs {
        assert!(
            !csv.contains(&intake.id),
            "another provider's intake leaked"
        );
    }
    assert!(!csv.contains(PATIENT_NUMBER) && !csv.contains(SECRET_NAME));

    // The other provider sees only its own.
    let (status, _, csv) = f
        .text(f.get_as("/fhir/$provision-record", &other_token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv.trim_end().split("\r\n").count(), 2);
    assert!(!csv.contains(&taken.id));

    // No token, a wrong token: 401 with an outcome.
    let (status, headers, body) = f
        .text(
            Request::get("/fhir/$provision-record")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(FHIR_JSON)
    );
    assert!(body.contains("OperationOutcome"));
    let (status, _, _) = f
        .text(f.get_as("/fhir/$provision-record", "kbn_nonsense"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_provider_lists_its_quarantine_and_reads_back_only_its_own_originals() {
    let f = fixture().await;
    f.upload_with_quarantine().await;
    let (_other, other_token) = second_provider(&f).await;

    let (status, headers, body) = f.text(f.get_as("/fhir/$quarantine", &f.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["total"], 1, "{page}");
    let entry = &page["entries"][0];
    assert_eq!(entry["line"], 1);
    assert_eq!(entry["entry_index"], 1);
    assert_eq!(entry["resource_type"], "Condition");
    assert!(
        entry["reason"].as_str().unwrap().contains("subject"),
        "{entry}"
    );
    assert!(entry["received_at"].as_str().is_some());
    // The listing holds no identity value, only paths and rules.
    assert!(!body.contains(PATIENT_NUMBER) && !body.contains(SECRET_NAME));
    let entry_id = entry["entry_id"].as_str().unwrap().to_owned();

    // Paging.
    let (_, _, body) = f
        .text(f.get_as("/fhir/$quarantine?_count=1&_offset=1", &f.token))
        .await;
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 0);
    assert_eq!(page["total"], 1);
    let (status, _, body) = f
        .text(f.get_as("/fhir/$quarantine?_count=many", &f.token))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The original content, for the provider to fix and resend.
    let path = format!("/fhir/$quarantine/{entry_id}");
    let (status, _, body) = f.text(f.get_as(&path, &f.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let original: Value = serde_json::from_str(&body).unwrap();
    let text = original["original"].as_str().unwrap();
    let resource: Value = serde_json::from_str(text).unwrap();
    assert_eq!(resource["resource"]["id"], "cond-2");
    assert_eq!(original["entry_id"], entry_id.as_str());

    // Another provider asking for it gets the same 404 as for an entry that does not exist.
    let (status, _, body) = f.text(f.get_as(&path, &other_token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("OperationOutcome") && !body.contains("cond-2"));
    let (status, _, _) = f
        .text(f.get_as("/fhir/$quarantine/not-an-entry", &f.token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // And its own listing does not show the first provider's entry.
    let (_, _, body) = f.text(f.get_as("/fhir/$quarantine", &other_token)).await;
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["total"], 1);
    assert_ne!(page["entries"][0]["entry_id"], entry_id.as_str());
}

#[tokio::test]
async fn the_api_settings_come_from_the_state() {
    let f = fixture().await;
    let state = f.state.clone().with_fhir_api_config(FhirApiConfig {
        max_body_bytes: 100,
        rate_limit: RateLimit::default(),
    });
    let request = f.post("/fhir", FHIR_JSON, transaction().to_string());
    let response = crate::router(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
