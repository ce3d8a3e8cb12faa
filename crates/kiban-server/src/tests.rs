//! Tests of the router over a real (temporary) metadata store.

use super::*;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use kiban_metadata::{ChunkCommit, NewProvider, QuarantineEntry, SegmentRecord};
use kiban_model::{ClinicalTable, ProviderKind};
use serde_json::Value;
use tower::ServiceExt;

const HOSTILE_NAME: &str = "<script>alert('x')</script>医院";

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    intake_id: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let meta = Metadata::open_in_dir(dir.path()).await.unwrap();
    meta.upsert_provider(&NewProvider {
        id: "prov-001".into(),
        name: "東都大学病院".into(),
        name_en: Some("Toto University Hospital".into()),
        kind: ProviderKind::UniversityHospital,
    })
    .await
    .unwrap();
    meta.upsert_provider(&NewProvider {
        id: "prov-002".into(),
        name: HOSTILE_NAME.into(),
        name_en: None,
        kind: ProviderKind::Clinic,
    })
    .await
    .unwrap();
    let intake = meta
        .begin_intake("prov-001", "2025/patients.ndjson", &"ab".repeat(32))
        .await
        .unwrap();
    let segment = |table: &str, rows: i64| SegmentRecord {
        path: format!("tables/{table}/seg-0.parquet"),
        table_name: table.into(),
        rows,
        bytes: 2048,
    };
    meta.commit_chunk(
        &intake.id,
        &ChunkCommit {
            chunk_index: 0,
            lines_read: 12,
            bytes_read: 4096,
            resources_accepted: 40,
            resources_duplicate: 2,
            segments: vec![
                segment("identity", 10),
                segment(ClinicalTable::Conditions.name(), 25),
                segment(ClinicalTable::Encounters.name(), 5),
            ],
            quarantine: vec![QuarantineEntry {
                line: 7,
                entry_index: 0,
                resource_type: Some("Condition".into()),
                reason: "Condition.code: required element missing".into(),
                blob_path: "quarantine/q-0.bin".into(),
            }],
            resource_versions: vec![([1; 16], [2; 16])],
            held_lines: Vec::new(),
            resources_held: 0,
            resources_refused: 0,
            item_counts: vec![
                ("Condition".into(), 26),
                ("Encounter".into(), 5),
                ("Patient".into(), 10),
            ],
        },
    )
    .await
    .unwrap();
    meta.finish_intake(&intake.id).await.unwrap();
    Fixture {
        _dir: dir,
        state: AppState::new(meta, "/srv/kiban/data"),
        intake_id: intake.id,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn send(state: &AppState, request: Request<Body>) -> Reply {
    let response = router(state.clone()).oneshot(request).await.unwrap();
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

async fn get(state: &AppState, uri: &str) -> Reply {
    send(state, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn get_with(state: &AppState, uri: &str, name: &str, value: &str) -> Reply {
    let request = Request::get(uri)
        .header(name, value)
        .body(Body::empty())
        .unwrap();
    send(state, request).await
}

#[tokio::test]
async fn dashboard_is_japanese_by_default() {
    let f = fixture().await;
    let r = get(&f.state, "/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = &r.body;
    assert!(html.contains(r#"<html lang="ja">"#));
    assert!(html.contains("ダッシュボード"));
    assert!(html.contains("東都大学病院"));
    assert!(html.contains("大学病院"));
    assert!(html.contains("患者レコード"));
    assert!(html.contains("診療記録（合計）"));
    assert!(html.contains(ClinicalTable::Conditions.label_ja()));
    assert!(html.contains("2025/patients.ndjson"));
    assert!(html.contains("完了"));
    assert!(html.contains("リンケージ"), "linkage note");
    // Counts: 10 patient records, 30 clinical rows, 1 quarantined resource.
    assert!(html.contains(r#"<div class="card-value">10</div>"#));
    assert!(html.contains(r#"<div class="card-value">30</div>"#));
    assert!(
        html.contains(r#"<div class="card-value">2</div>"#),
        "providers"
    );
    // The toggle leads to English; no cookie is set without ?lang=.
    assert!(html.contains(r#"href="/?lang=en""#));
    assert!(html.contains(">English</a>"));
    assert!(r.headers.get("set-cookie").is_none());
    assert!(html.contains("/srv/kiban/data"));
}

#[tokio::test]
async fn dashboard_in_english_with_query_and_remembers_it() {
    let f = fixture().await;
    let r = get(&f.state, "/?lang=en").await;
    assert_eq!(r.status, StatusCode::OK);
    let html = &r.body;
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains("Dashboard"));
    assert!(html.contains("Toto University Hospital"));
    assert!(html.contains("University hospital"));
    assert!(html.contains("Patient records"));
    assert!(html.contains("Clinical records (total)"));
    assert!(html.contains(ClinicalTable::Conditions.label_en()));
    assert!(html.contains("Completed"));
    assert!(html.contains("linkage engine"));
    assert!(!html.contains("ダッシュボード"));
    assert!(html.contains(r#"href="/?lang=ja""#));
    assert!(html.contains(">日本語</a>"));
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("lang=en;"), "{cookie}");
    assert!(cookie.contains("Path=/"));
}

#[tokio::test]
async fn language_from_cookie_and_accept_language() {
    let f = fixture().await;
    let r = get_with(&f.state, "/providers", "cookie", "lang=en").await;
    assert!(r.body.contains(r#"<html lang="en">"#));
    let r = get_with(&f.state, "/providers", "accept-language", "en-US,en;q=0.9").await;
    assert!(r.body.contains(r#"<html lang="en">"#));
    let r = get_with(&f.state, "/providers", "accept-language", "ja,en;q=0.5").await;
    assert!(r.body.contains(r#"<html lang="ja">"#));
    // ?lang= wins over the cookie.
    let request = Request::get("/providers?lang=ja")
        .header("cookie", "lang=en")
        .body(Body::empty())
        .unwrap();
    let r = send(&f.state, request).await;
    assert!(r.body.contains(r#"<html lang="ja">"#));
}

#[tokio::test]
async fn provider_names_are_html_escaped() {
    let f = fixture().await;
    for uri in ["/", "/providers", "/quarantine", "/?lang=en"] {
        let r = get(&f.state, uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert!(!r.body.contains("<script"), "{uri} has a raw script tag");
        assert!(
            r.body.contains("&#60;script&#62;"),
            "{uri} lacks the escaped name"
        );
    }
}

#[tokio::test]
async fn every_page_renders_with_the_layout() {
    let f = fixture().await;
    let detail = format!("/intakes/{}", f.intake_id);
    for uri in [
        "/",
        "/providers",
        "/intakes",
        detail.as_str(),
        "/quarantine",
        "/quarantine?provider=prov-001",
    ] {
        for lang in ["ja", "en"] {
            let sep = if uri.contains('?') { '&' } else { '?' };
            let r = get(&f.state, &format!("{uri}{sep}lang={lang}")).await;
            assert_eq!(r.status, StatusCode::OK, "{uri} {lang}");
            assert!(
                r.body
                    .contains(r#"<link rel="stylesheet" href="/static/kiban.css">"#)
            );
            assert!(r.body.contains(r#"class="lang-toggle""#), "{uri} toggle");
            assert!(r.body.contains(r#"aria-current="page""#), "{uri} nav");
        }
    }
}

#[tokio::test]
async fn intake_pages_show_the_acquisition_record() {
    let f = fixture().await;
    let r = get(&f.state, "/intakes").await;
    assert!(r.body.contains("法第33条"));
    assert!(r.body.contains("<code>Patient</code> 10"));
    assert!(r.body.contains(&format!("/intakes/{}", f.intake_id)));
    let r = get(&f.state, &format!("/intakes/{}?lang=en", f.intake_id)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Items by category"));
    assert!(r.body.contains("<code>Condition</code>"));
    assert!(r.body.contains(&"ab".repeat(32)));
    assert!(r.body.contains("Toto University Hospital"));
    assert!(r.body.contains("/quarantine?provider=prov-001"));
}

#[tokio::test]
async fn quarantine_page_lists_reasons_and_filters_by_provider() {
    let f = fixture().await;
    let r = get(&f.state, "/quarantine").await;
    assert!(r.body.contains("Condition.code: required element missing"));
    assert!(r.body.contains("2025/patients.ndjson"));
    let r = get(&f.state, "/quarantine?provider=prov-002").await;
    assert!(!r.body.contains("Condition.code: required element missing"));
    assert!(r.body.contains(r#"<option value="prov-002" selected>"#));
    // The toggle keeps the filter.
    assert!(r.body.contains("/quarantine?lang=en&#38;provider=prov-002"));
}

#[tokio::test]
async fn api_summary_and_lists_have_their_shapes() {
    let f = fixture().await;
    let r = get(&f.state, "/api/v1/summary").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let s = r.json();
    assert_eq!(s["providers"], 2);
    assert_eq!(s["patient_records"], 10);
    assert_eq!(s["clinical_records"], 30);
    assert_eq!(s["intakes"], 1);
    assert_eq!(s["quarantined_resources"], 1);
    assert_eq!(s["data_dir"], "/srv/kiban/data");

    let p = get(&f.state, "/api/v1/providers").await.json();
    let providers = p["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2);
    assert_eq!(providers[0]["id"], "prov-001");
    assert_eq!(providers[0]["name"], "東都大学病院");
    assert_eq!(providers[0]["name_en"], "Toto University Hospital");
    assert_eq!(providers[0]["kind"], "university_hospital");
    assert_eq!(providers[0]["patient_records"], 10);
    assert_eq!(providers[0]["resources_accepted"], 40);
    assert_eq!(providers[0]["resources_rejected"], 1);
    assert_eq!(providers[1]["name"], HOSTILE_NAME);

    let t = get(&f.state, "/api/v1/tables").await.json();
    let tables = t["tables"].as_array().unwrap();
    assert_eq!(tables[0]["table_name"], "identity");
    assert_eq!(tables[0]["label_ja"], "患者レコード");
    assert_eq!(tables[0]["clinical"], false);
    assert_eq!(tables[0]["rows"], 10);
    assert_eq!(tables[0]["segments"], 1);
    assert_eq!(tables[0]["bytes"], 2048);
    assert!(tables.iter().any(|t| t["table_name"] == "conditions"
        && t["label_en"] == ClinicalTable::Conditions.label_en()
        && t["clinical"] == true));

    let i = get(&f.state, "/api/v1/intakes").await.json();
    let intakes = i["intakes"].as_array().unwrap();
    assert_eq!(intakes.len(), 1);
    assert_eq!(intakes[0]["id"], f.intake_id.as_str());
    assert_eq!(intakes[0]["provider_id"], "prov-001");
    assert_eq!(intakes[0]["status"], "completed");
    assert_eq!(intakes[0]["lines_read"], 12);
    assert_eq!(intakes[0]["resources_duplicate"], 2);
    assert_eq!(intakes[0]["item_counts"][2]["category"], "Patient");
    assert_eq!(intakes[0]["item_counts"][2]["count"], 10);

    let one = get(&f.state, &format!("/api/v1/intakes/{}", f.intake_id))
        .await
        .json();
    assert_eq!(one["id"], f.intake_id.as_str());
    assert_eq!(one["item_counts"].as_array().unwrap().len(), 3);

    let q = get(&f.state, "/api/v1/quarantine").await.json();
    let entries = q["quarantine"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["intake_id"], f.intake_id.as_str());
    assert_eq!(entries[0]["provider_id"], "prov-001");
    assert_eq!(entries[0]["entry"]["line"], 7);
    assert_eq!(entries[0]["entry"]["resource_type"], "Condition");
    let q = get(&f.state, "/api/v1/quarantine?provider=prov-002")
        .await
        .json();
    assert_eq!(q["quarantine"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn api_rejects_bad_limits() {
    let f = fixture().await;
    for uri in [
        "/api/v1/intakes?limit=0",
        "/api/v1/intakes?limit=abc",
        "/api/v1/quarantine?limit=100000",
    ] {
        let r = get(&f.state, uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.json()["error"].is_string());
    }
    let r = get(&f.state, "/api/v1/intakes?limit=1").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_intake_is_404() {
    let f = fixture().await;
    let r = get(&f.state, "/api/v1/intakes/no-such-intake").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "intake not found");
    let r = get(&f.state, "/intakes/no-such-intake").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("指定された取得記録はありません。"));
    let r = get(&f.state, "/intakes/no-such-intake?lang=en").await;
    assert!(r.body.contains("There is no intake with this id."));
    // Unknown paths: JSON under /api/, a page elsewhere.
    let r = get(&f.state, "/api/v1/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].is_string());
    let r = get(&f.state, "/api/v2/summary").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].is_string());
    let r = get(&f.state, "/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("ページが見つかりません。"));
}

#[tokio::test]
async fn database_errors_are_500_with_a_generic_message() {
    let f = fixture().await;
    f.state.meta.close().await;
    let r = get(&f.state, "/api/v1/summary").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["error"], "internal server error");
    let r = get(&f.state, "/?lang=en").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains("Server error"));
    assert!(!r.body.contains("pool"), "no driver detail on the page");
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let f = fixture().await;
    for uri in [
        "/",
        "/api/v1/summary",
        "/api/v1/intakes/none",
        "/healthz",
        "/static/kiban.css",
        "/nothing",
    ] {
        let r = get(&f.state, uri).await;
        let h = &r.headers;
        assert_eq!(
            h["content-security-policy"], CONTENT_SECURITY_POLICY,
            "{uri}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{uri}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{uri}");
        assert_eq!(h["x-frame-options"], "DENY", "{uri}");
        assert!(h.contains_key("cache-control"), "{uri}");
    }
    let csp = CONTENT_SECURITY_POLICY;
    assert!(csp.contains("default-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
}

#[tokio::test]
async fn health_stylesheet_and_body_limit() {
    let f = fixture().await;
    let r = get(&f.state, "/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "ok");
    let r = get(&f.state, "/static/kiban.css").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(r.body.contains(".site-header"));
    let big = vec![b'x'; REQUEST_BODY_LIMIT * 4];
    let request = Request::get("/api/v1/summary")
        .header("content-length", big.len())
        .body(Body::from(big))
        .unwrap();
    let r = send(&f.state, request).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn serve_answers_and_shuts_down_gracefully() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, f.state.clone(), async {
        let _ = stopped.await;
    }));

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("ok"), "{reply}");

    stop.send(()).unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("server stops after the shutdown signal")
        .unwrap();
    assert!(result.is_ok());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
