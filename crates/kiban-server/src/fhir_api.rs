//! kiban's FHIR intake API (R-C3): providers send FHIR R4 data over HTTPS with a bearer token.
//!
//! | route | body | what happens |
//! |---|---|---|
//! | `GET /fhir/metadata` | — | a CapabilityStatement (no token needed) |
//! | `POST /fhir` | a Bundle (`transaction`, `batch`, `collection`, `document`) | intake of the Bundle |
//! | `POST /fhir/{type}` | one resource of that type | intake of the resource |
//! | `POST /fhir/$import` | ndjson, one resource or Bundle a line | bulk intake |
//! | `GET /fhir/$provision-record` | — | the provider's own provision record (Art. 32), CSV |
//! | `GET /fhir/$quarantine?_count=&_offset=` | — | the provider's quarantine (R-C5), JSON, a page |
//! | `GET /fhir/$quarantine/{entry_id}` | — | the original content of one quarantined entry |
//!
//! The three reads are system-level operations in the FHIR manner (`$name` on the base URL):
//! kiban-specific, not FHIR searches, and they answer in the format a provider needs (CSV for a
//! spreadsheet, JSON for a script). They take the same bearer token and rate limit as uploads
//! and only ever show the token's own provider's data: another provider's entry id answers 404
//! exactly like an unknown one.
//!
//! - `$provision-record`: `text/csv; charset=utf-8`, a header row, one row per intake of the
//!   provider, most recent first; columns `intake_id, received_at, finished_at, source, status,
//!   resources_accepted, resources_duplicate, resources_held, resources_refused,
//!   resources_quarantined, items_by_category` (`Condition=3; Patient=2`), `payload_sha256,
//!   notification_basis` (`letter: 2 patients, notified 2026-01-10..2026-02-01; ...`).
//! - `$quarantine`: `{"total", "count", "offset", "entries": [{"entry_id", "intake_id",
//!   "source", "line", "entry_index", "resource_type", "field_path", "reason",
//!   "received_at"}]}`, the most recent first; `_count` 1 to 500 (default 100).
//! - `$quarantine/{entry_id}`: the entry as listed plus `original` (the rejected JSON text),
//!   `original_base64` (bytes that were not UTF-8) and `original_truncated`.
//!
//! Any other path under `/fhir` answers 404, and a known path with another method 405 with an
//! `Allow` header; both with an OperationOutcome.
//!
//! Every upload is checked before anything is written, in this order: a registered, filed
//! provider's bearer token (401, 403), the `Idempotency-Key` header (400), the content type
//! (415: `application/fhir+json` or `application/json`; for `$import` `application/fhir+ndjson`,
//! `application/x-ndjson` or `application/ndjson`), the provider's request rate (429 with
//! `Retry-After`), the body size (413, [`FhirApiConfig::max_body_bytes`]), UTF-8 and JSON
//! syntax (400; for ndjson naming the line), and for a single document a JSON object with a
//! `resourceType` that matches the URL (400). Then the body goes to
//! [`kiban_ingest::ingest_upload`], which validates, maps, dedupes, quarantines what it
//! rejects and commits atomically.
//!
//! The answer is an `OperationOutcome`: a summary issue first (intake id and counts), then one
//! `error` issue per rejected resource (`expression` `Bundle.entry[i]`, `location` `line N` for
//! ndjson), `information` issues for resources held until their patient's notification is old
//! enough, and a `warning` when resources were refused after an opt-out. Status codes:
//!
//! - **200** when the upload was taken (including when some entries of a batch, collection or
//!   ndjson upload were rejected: they are listed, kept in the quarantine, and can be sent again
//!   once fixed), and when the same body had been taken before (an informational issue says so).
//! - **422** when nothing of the upload was taken because it was rejected as a whole: a
//!   transaction or document Bundle (all or nothing), a single resource, or an upload whose every
//!   resource was rejected; also when an `Idempotency-Key` is reused with a different body.
//! - **500** with a generic message when the intake failed inside (details only in the log).
//!
//! **Idempotency**: with an `Idempotency-Key` header (at most 200 visible ASCII characters),
//! the response is stored once intake has finished; the same key with the same body (SHA-256)
//! gets the stored status and body again with `Idempotent-Replayed: true`, without intake. An
//! upload that crashed before its response was stored simply runs again, and intake resumes or
//! dedupes it.
//!
//! Uploads of one provider run one at a time; different providers run in parallel.
//!
//! ```no_run
//! # async fn run(state: kiban_server::AppState) {
//! use kiban_server::fhir_api::{FhirApiConfig, RateLimit, routes};
//! let config = FhirApiConfig {
//!     max_body_bytes: 16 * 1024 * 1024,
//!     rate_limit: RateLimit { per_second: 5.0, burst: 10 },
//! };
//! let app: axum::Router = routes(config).with_state(state);
//! # let _ = app; }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kiban_ingest::{FileReport, UploadBody};
use kiban_model::ProviderId;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::operation_outcome::{Issue, IssueType, OperationOutcome, Severity, fhir_json_response};
use crate::rate_limit::RateLimiter;
use crate::{AppState, CollectionState};

pub use crate::rate_limit::RateLimit;

/// Default largest upload: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

/// Header naming an idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Header set on a replayed response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Longest resource type name taken from a URL or body.
const MAX_RESOURCE_TYPE_CHARS: usize = 64;

/// Settings of the intake API.
#[derive(Debug, Clone, PartialEq)]
pub struct FhirApiConfig {
    /// Largest request body, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Requests per provider (429 above it).
    pub rate_limit: RateLimit,
}

impl Default for FhirApiConfig {
    /// 64 MiB bodies; 20 requests a second per provider, bursts of 40.
    fn default() -> Self {
        FhirApiConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            rate_limit: RateLimit::default(),
        }
    }
}

/// What the intake handlers share beyond [`AppState`].
#[derive(Debug)]
struct FhirShared {
    config: FhirApiConfig,
    limiter: RateLimiter,
    /// One lock per provider, so a provider's uploads run one at a time.
    upload_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl FhirShared {
    fn upload_lock(&self, provider: &ProviderId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .upload_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(provider.0.clone()).or_default().clone()
    }
}

/// The routes of the intake API under `/fhir`, with their own body limit
/// ([`FhirApiConfig::max_body_bytes`]); merge them into the application's router.
pub fn routes(config: FhirApiConfig) -> Router<AppState> {
    let shared = Arc::new(FhirShared {
        limiter: RateLimiter::new(config.rate_limit),
        config,
        upload_locks: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/fhir", post(post_bundle))
        .route("/fhir/metadata", get(capability_statement))
        .route("/fhir/$import", post(post_import))
        .route("/fhir/$provision-record", get(provision_record))
        .route("/fhir/$quarantine", get(quarantine_list))
        .route("/fhir/$quarantine/{entry_id}", get(quarantine_original))
        .route("/fhir/{resource_type}", post(post_resource))
        // After every route: it applies to the routes defined so far. axum adds `Allow`.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(shared))
}

/// 404 of an unknown path under `/fhir`, as an OperationOutcome.
pub(crate) async fn not_found() -> Response {
    OperationOutcome::error(
        IssueType::NotSupported,
        "no such endpoint of this FHIR server: see GET /fhir/metadata for what it offers",
    )
    .into_response_with(StatusCode::NOT_FOUND)
}

/// 405 of a known path asked with another method, as an OperationOutcome (axum sets `Allow`).
async fn method_not_allowed(method: axum::http::Method) -> Response {
    OperationOutcome::error(
        IssueType::NotSupported,
        format!(
            "{} is not supported on this endpoint: see the Allow header",
            if method.as_str().len() <= 16
                && method.as_str().bytes().all(|b| b.is_ascii_uppercase())
            {
                method.as_str()
            } else {
                "this method"
            }
        ),
    )
    .into_response_with(StatusCode::METHOD_NOT_ALLOWED)
}

/// The provider of a read request: token, then rate limit.
async fn provider_of_read(
    state: &AppState,
    shared: &FhirShared,
    headers: &HeaderMap,
) -> Result<(CollectionState, ProviderId), Stop> {
    let Some(intake) = state.collection.as_ref() else {
        return Err(Stop::new(
            StatusCode::SERVICE_UNAVAILABLE,
            IssueType::NotSupported,
            "this kiban server does not take data in (it was started without its master key)",
        ));
    };
    let provider = authenticate(intake, headers).await?;
    if let Err(wait) = shared.limiter.check(provider.as_str()) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut stop = Stop::new(
            StatusCode::TOO_MANY_REQUESTS,
            IssueType::TooCostly,
            format!("too many requests from this provider: retry after {secs} s"),
        );
        stop.retry_after_secs = Some(secs.max(1));
        return Err(stop);
    }
    Ok((intake.clone(), provider))
}

/// `GET /fhir/$provision-record`: the provider's provision record as CSV.
async fn provision_record(
    State(state): State<AppState>,
    Extension(shared): Extension<Arc<FhirShared>>,
    headers: HeaderMap,
) -> Response {
    let (intake, provider) = match provider_of_read(&state, &shared, &headers).await {
        Ok(found) => found,
        Err(stop) => return stop.into_response(),
    };
    match crate::provision::provision_record_csv(intake.collection.metadata(), &provider).await {
        Ok(csv) => crate::provision::csv_response(&provider, csv),
        Err(err) => {
            tracing::error!(provider = %provider, error = %err, "provision record read failed");
            Stop::internal_read().into_response()
        }
    }
}

/// Paging of `GET /fhir/$quarantine`.
#[derive(Debug, Deserialize)]
struct PageQuery {
    #[serde(rename = "_count")]
    count: Option<i64>,
    #[serde(rename = "_offset")]
    offset: Option<i64>,
}

/// `GET /fhir/$quarantine`: one page of the provider's quarantine, JSON.
async fn quarantine_list(
    State(state): State<AppState>,
    Extension(shared): Extension<Arc<FhirShared>>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (intake, provider) = match provider_of_read(&state, &shared, &headers).await {
        Ok(found) => found,
        Err(stop) => return stop.into_response(),
    };
    let Ok(Query(page)) = query else {
        return Stop::bad_request("_count and _offset must be whole numbers").into_response();
    };
    let count = page
        .count
        .unwrap_or(crate::provision::QUARANTINE_PAGE_DEFAULT);
    let offset = page.offset.unwrap_or(0);
    match crate::provision::quarantine_page(intake.collection.metadata(), &provider, count, offset)
        .await
    {
        Ok(page) => json_response(&page),
        Err(err) => {
            tracing::error!(provider = %provider, error = %err, "quarantine read failed");
            Stop::internal_read().into_response()
        }
    }
}

/// `GET /fhir/$quarantine/{entry_id}`: the original content of one entry of the provider.
async fn quarantine_original(
    State(state): State<AppState>,
    Extension(shared): Extension<Arc<FhirShared>>,
    Path(entry_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (intake, provider) = match provider_of_read(&state, &shared, &headers).await {
        Ok(found) => found,
        Err(stop) => return stop.into_response(),
    };
    match crate::provision::quarantined_original(&intake, &provider, &entry_id).await {
        Ok(Some(original)) => json_response(&original),
        Ok(None) => Stop::new(
            StatusCode::NOT_FOUND,
            IssueType::NotSupported,
            "this provider has no quarantined entry with this id",
        )
        .into_response(),
        Err(err) => {
            tracing::error!(provider = %provider, error = %err, "quarantined entry read failed");
            Stop::internal_read().into_response()
        }
    }
}

/// A JSON response (`application/json`); serializing plain data cannot fail, a 500 if it did.
fn json_response<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(_) => Stop::internal_read().into_response(),
    }
}

/// What an upload is, by its route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UploadKind {
    /// `POST /fhir`: a Bundle.
    Bundle,
    /// `POST /fhir/{type}`: one resource of the type.
    Resource(String),
    /// `POST /fhir/$import`: ndjson.
    Import,
}

impl UploadKind {
    /// The source name of the acquisition record: `<provider>/api/fhir[/<type>|/$import]`,
    /// like the `<provider>/<file>` names of file intake.
    fn source_name(&self, provider: &ProviderId) -> String {
        let provider = provider.as_str();
        match self {
            UploadKind::Bundle => format!("{provider}/api/fhir"),
            UploadKind::Resource(kind) => format!("{provider}/api/fhir/{kind}"),
            UploadKind::Import => format!("{provider}/api/fhir/$import"),
        }
    }
}

async fn post_bundle(
    State(state): State<AppState>,
    Extension(shared): Extension<Arc<FhirShared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    upload(state, shared, UploadKind::Bundle, headers, body).await
}

async fn post_resource(
    State(state): State<AppState>,
    Extension(shared): Extension<Arc<FhirShared>>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    upload(
        state,
        shared,
        UploadKind::Resource(resource_type),
        headers,
        body,
    )
    .await
}

async fn post_import(
    State(state): State<AppState>,
    Extension(shared): Extension<Arc<FhirShared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    upload(state, shared, UploadKind::Import, headers, body).await
}

/// An answer that stops an upload before or instead of intake.
#[derive(Debug)]
struct Stop {
    status: StatusCode,
    outcome: OperationOutcome,
    retry_after_secs: Option<u64>,
    www_authenticate: Option<&'static str>,
}

impl Stop {
    fn new(status: StatusCode, code: IssueType, diagnostics: impl Into<String>) -> Self {
        Stop {
            status,
            outcome: OperationOutcome::error(code, diagnostics),
            retry_after_secs: None,
            www_authenticate: None,
        }
    }

    fn bad_request(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, IssueType::Structure, diagnostics)
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            "the upload could not be processed because of an internal error; nothing of it was \
             lost: send it again later (with the same Idempotency-Key)",
        )
    }

    fn internal_read() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            "the records could not be read because of an internal error: try again later",
        )
    }

    fn unauthorized(diagnostics: &str, challenge: &'static str) -> Self {
        let mut stop = Self::new(StatusCode::UNAUTHORIZED, IssueType::Login, diagnostics);
        stop.www_authenticate = Some(challenge);
        stop
    }
}

impl IntoResponse for Stop {
    fn into_response(self) -> Response {
        let mut response = self.outcome.into_response_with(self.status);
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.www_authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

async fn upload(
    state: AppState,
    shared: Arc<FhirShared>,
    kind: UploadKind,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match take_upload(state, &shared, kind, &headers, body).await {
        Ok(response) => response,
        Err(stop) => stop.into_response(),
    }
}

async fn take_upload(
    state: AppState,
    shared: &FhirShared,
    kind: UploadKind,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Stop> {
    let Some(intake) = state.collection.as_ref() else {
        return Err(Stop::new(
            StatusCode::SERVICE_UNAVAILABLE,
            IssueType::NotSupported,
            "this kiban server does not take data in (it was started without its master key)",
        ));
    };
    let provider = authenticate(intake, headers).await?;
    let idempotency_key = idempotency_key(headers)?;
    check_content_type(headers, &kind)?;
    if let Err(wait) = shared.limiter.check(provider.as_str()) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut stop = Stop::new(
            StatusCode::TOO_MANY_REQUESTS,
            IssueType::TooCostly,
            format!("too many requests from this provider: retry after {secs} s"),
        );
        stop.retry_after_secs = Some(secs.max(1));
        return Err(stop);
    }
    let max = shared.config.max_body_bytes;
    let bytes = read_body(headers, body, max).await?;
    let request_sha256 = hex::encode(Sha256::digest(&bytes));
    let check_kind = kind.clone();
    let (shape, bytes) = tokio::task::spawn_blocking(move || {
        check_body(&check_kind, &bytes).map(|shape| (shape, bytes))
    })
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "intake API body check stopped unexpectedly");
        Stop::internal()
    })??;

    let lock = shared.upload_lock(&provider);
    let _one_upload_at_a_time = lock.lock().await;
    let collection = &intake.collection;
    if let Some(key) = &idempotency_key {
        match collection.recall_response(&provider, key).await {
            Ok(Some(stored)) if stored.request_sha256 == request_sha256 => {
                return Ok(replay(stored.status_code, stored.response_body));
            }
            Ok(Some(_)) => {
                let mut stop = Stop::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    IssueType::Conflict,
                    "this Idempotency-Key was already used with a different body: use a new \
                     key for a new upload",
                );
                stop.outcome.issue[0]
                    .expression
                    .push("Idempotency-Key".to_owned());
                return Err(stop);
            }
            Ok(None) => {}
            Err(err) => {
                tracing::error!(provider = %provider, error = %err, "idempotency store read failed");
                return Err(Stop::internal());
            }
        }
    }

    let upload_body = match kind {
        UploadKind::Import => UploadBody::Ndjson(Vec::from(bytes)),
        UploadKind::Bundle | UploadKind::Resource(_) => UploadBody::Document(Vec::from(bytes)),
    };
    let report = kiban_ingest::ingest_upload(
        intake.store.clone(),
        collection,
        provider.as_str(),
        &kind.source_name(&provider),
        upload_body,
        &intake.ingest_options,
    )
    .await
    .map_err(|err| {
        tracing::error!(provider = %provider, error = %err, "intake API upload failed");
        Stop::internal()
    })?;
    tracing::info!(
        provider = %provider,
        intake = %report.intake_id,
        accepted = report.resources_accepted,
        rejected = report.resources_rejected,
        held = report.resources_held,
        "intake API upload taken"
    );
    let (status, outcome) = outcome_of(&report, &shape);
    let body = outcome.to_json();
    if let Some(key) = &idempotency_key {
        match collection
            .remember_response(&provider, key, &request_sha256, status.as_u16(), &body)
            .await
        {
            Ok(_) => {}
            // Intake is done and durable; the sender retrying with the key will be deduped.
            Err(err) => {
                tracing::error!(provider = %provider, error = %err, "idempotency store write failed");
            }
        }
    }
    Ok(fhir_json_response(status, body))
}

fn replay(status_code: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status_code).unwrap_or(StatusCode::OK);
    let mut response = fhir_json_response(status, body);
    response
        .headers_mut()
        .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

/// The provider of the request's bearer token. The token is never logged or echoed.
async fn authenticate(intake: &CollectionState, headers: &HeaderMap) -> Result<ProviderId, Stop> {
    const CHALLENGE: &str = "Bearer realm=\"kiban\"";
    const INVALID: &str = "Bearer realm=\"kiban\", error=\"invalid_token\"";
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Stop::unauthorized(
            "an intake token is required: send `Authorization: Bearer <token>`",
            CHALLENGE,
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        return Err(Stop::unauthorized(
            "the Authorization header must be `Bearer <token>`",
            CHALLENGE,
        ));
    };
    match intake.collection.authenticate(token).await {
        Ok(provider) => Ok(provider),
        Err(kiban_collection::AuthError::NotFiled { provider, status }) => {
            tracing::warn!(provider = %provider, %status, "intake refused: provider not filed");
            Err(Stop::new(
                StatusCode::FORBIDDEN,
                IssueType::Forbidden,
                "this provider may not send data: its filing with the minister is not in force",
            ))
        }
        Err(kiban_collection::AuthError::Metadata(err)) => {
            tracing::error!(error = %err, "token check failed");
            Err(Stop::internal())
        }
        Err(err) => {
            tracing::info!(reason = %err, "intake refused: bad token");
            Err(Stop::unauthorized(
                "the intake token is not valid (unknown or revoked)",
                INVALID,
            ))
        }
    }
}

/// The `Idempotency-Key` header, if any: 1 to 200 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Stop> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY_CHARS
        || !bytes.iter().all(u8::is_ascii_graphic)
    {
        let mut stop = Stop::bad_request(format!(
            "the Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
        ));
        stop.outcome.issue[0].code = IssueType::Invalid;
        return Err(stop);
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

fn check_content_type(headers: &HeaderMap, kind: &UploadKind) -> Result<(), Stop> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let (accepted, expected): (&[&str], &str) = match kind {
        UploadKind::Import => (
            &[
                "application/fhir+ndjson",
                "application/x-ndjson",
                "application/ndjson",
            ],
            "application/fhir+ndjson",
        ),
        UploadKind::Bundle | UploadKind::Resource(_) => (
            &["application/fhir+json", "application/json"],
            "application/fhir+json",
        ),
    };
    match media_type {
        Some(m) if accepted.contains(&m.as_str()) => Ok(()),
        _ => Err(Stop::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            format!("the body must be sent as Content-Type: {expected}"),
        )),
    }
}

fn too_large(max: usize) -> Stop {
    Stop::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        IssueType::TooCostly,
        format!(
            "the body is larger than {max} bytes: split it (e.g. several ndjson uploads to \
             /fhir/$import)"
        ),
    )
}

async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, Stop> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large(max));
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(max)),
        Err(err) => {
            tracing::info!(error = %err, "intake API body could not be read");
            Err(Stop::bad_request("the request body could not be read"))
        }
    }
}

/// What the checks learned of the body, to word the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// One JSON document.
    Document {
        /// It is a Bundle.
        bundle: bool,
        /// All or nothing: a transaction or document Bundle, or a single resource.
        atomic: bool,
    },
    /// ndjson; the 1-based numbers of the lines holding a Bundle.
    Ndjson { bundle_lines: HashSet<u64> },
}

/// The head of a resource: only what the checks need; everything else is skipped unread.
#[derive(Debug, Deserialize)]
struct ResourceHead {
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
    /// `Bundle.type` (other resources' `type` can be anything, hence a value).
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

fn is_resource_type_name(name: &str) -> bool {
    name.len() <= MAX_RESOURCE_TYPE_CHARS
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

fn json_syntax_error(err: &serde_json::Error) -> String {
    format!(
        "not valid JSON: syntax error at line {}, column {}",
        err.line(),
        err.column()
    )
}

/// Reads a JSON object's head. Messages name positions and rules, never a value.
fn read_head(text: &str) -> Result<ResourceHead, String> {
    if !text.trim_start().starts_with('{') {
        return Err("not a JSON object (a FHIR resource)".to_owned());
    }
    serde_json::from_str::<ResourceHead>(text).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => {
            "not a FHIR resource: `resourceType` (and a Bundle's `type`) must be strings, each \
             given once"
                .to_owned()
        }
        _ => json_syntax_error(&err),
    })
}

/// The checks of a body before anything is written.
fn check_body(kind: &UploadKind, bytes: &[u8]) -> Result<Shape, Stop> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        Stop::bad_request(format!(
            "the body is not UTF-8 text (invalid byte at offset {})",
            err.valid_up_to()
        ))
    })?;
    match kind {
        UploadKind::Import => check_ndjson(text),
        UploadKind::Bundle | UploadKind::Resource(_) => check_document(kind, text),
    }
}

fn check_document(kind: &UploadKind, text: &str) -> Result<Shape, Stop> {
    if text.trim().is_empty() {
        return Err(Stop::bad_request("the body is empty"));
    }
    let head = read_head(text).map_err(|why| Stop::bad_request(format!("the body is {why}")))?;
    let Some(resource_type) = head.resource_type else {
        return Err(Stop::bad_request(
            "the body is not a FHIR resource: it has no `resourceType`",
        ));
    };
    if !is_resource_type_name(&resource_type) {
        return Err(Stop::bad_request(
            "the body's `resourceType` is not a FHIR resource type name",
        ));
    }
    match kind {
        UploadKind::Resource(path_type) if !is_resource_type_name(path_type) => {
            return Err(Stop::bad_request(
                "the URL does not name a FHIR resource type (POST /fhir/{type})",
            ));
        }
        UploadKind::Resource(path_type) if *path_type != resource_type => {
            return Err(Stop::bad_request(format!(
                "the resource's `resourceType` ({resource_type}) does not match the URL \
                 (/fhir/{path_type})"
            )));
        }
        UploadKind::Bundle if resource_type != "Bundle" => {
            return Err(Stop::bad_request(format!(
                "POST /fhir takes a Bundle; send a single {resource_type} to /fhir/{resource_type}"
            )));
        }
        _ => {}
    }
    let bundle = resource_type == "Bundle";
    let atomic = !bundle
        || matches!(
            head.kind.as_ref().and_then(serde_json::Value::as_str),
            Some("transaction" | "document")
        );
    Ok(Shape::Document { bundle, atomic })
}

fn check_ndjson(text: &str) -> Result<Shape, Stop> {
    let mut bundle_lines = HashSet::new();
    let mut resources = 0u64;
    for (index, line) in text.split('\n').enumerate() {
        let number = index as u64 + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        resources += 1;
        match read_head(line) {
            Ok(head) => {
                if head.resource_type.as_deref() == Some("Bundle") {
                    bundle_lines.insert(number);
                }
            }
            // Valid JSON that is no resource is the intake's to quarantine, with its line.
            Err(_) if serde_json::from_str::<serde::de::IgnoredAny>(line).is_ok() => {}
            Err(_) => {
                let err = serde_json::from_str::<serde::de::IgnoredAny>(line).err();
                let column = err.map(|e| e.column()).unwrap_or(0);
                let mut stop = Stop::bad_request(format!(
                    "line {number} is not valid JSON (syntax error at column {column}); nothing \
                     of the upload was taken"
                ));
                stop.outcome.issue[0]
                    .location
                    .push(format!("line {number}"));
                return Err(stop);
            }
        }
    }
    if resources == 0 {
        return Err(Stop::bad_request(
            "the body holds no resource (every line is blank)",
        ));
    }
    Ok(Shape::Ndjson { bundle_lines })
}

/// Where a rejected or held entry is: its FHIRPath expression and, for ndjson, its line.
fn position(
    shape: &Shape,
    line: u64,
    entry_index: u64,
    resource_type: Option<&str>,
) -> (Option<String>, Option<String>) {
    let entry = format!("Bundle.entry[{entry_index}]");
    let resource = resource_type
        .filter(|t| is_resource_type_name(t))
        .map(str::to_owned);
    match shape {
        Shape::Document { bundle: true, .. } => (Some(entry), None),
        Shape::Document { bundle: false, .. } => (resource, None),
        Shape::Ndjson { bundle_lines } => {
            let expression = if bundle_lines.contains(&line) {
                Some(entry)
            } else {
                resource
            };
            (expression, Some(format!("line {line}")))
        }
    }
}

fn placed(mut issue: Issue, (expression, location): (Option<String>, Option<String>)) -> Issue {
    if let Some(e) = expression {
        issue = issue.at(e);
    }
    if let Some(l) = location {
        issue = issue.located(l);
    }
    issue
}

/// The status and OperationOutcome of a finished intake.
fn outcome_of(report: &FileReport, shape: &Shape) -> (StatusCode, OperationOutcome) {
    let taken = report.resources_accepted
        + report.resources_duplicate
        + report.resources_held
        + report.resources_refused;
    let atomic = matches!(shape, Shape::Document { atomic: true, .. });
    let rejected_whole = report.resources_rejected > 0 && (atomic || taken == 0);
    let status = if rejected_whole {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut issues = Vec::new();
    let summary_severity = if rejected_whole {
        Severity::Error
    } else if report.resources_rejected > 0 {
        Severity::Warning
    } else {
        Severity::Information
    };
    let mut summary = if report.skipped {
        format!(
            "intake {}: this body was taken completely before; nothing was read again",
            report.intake_id
        )
    } else {
        format!(
            "intake {}: {} accepted, {} duplicate, {} held, {} refused, {} rejected",
            report.intake_id,
            report.resources_accepted,
            report.resources_duplicate,
            report.resources_held,
            report.resources_refused,
            report.resources_rejected
        )
    };
    if rejected_whole {
        summary.push_str("; nothing of the upload was taken");
    }
    if report.resources_rejected > 0 {
        summary.push_str(
            "; rejected resources are kept in the quarantine: fix them and send them again",
        );
    }
    let summary_code = if rejected_whole {
        IssueType::Processing
    } else {
        IssueType::Informational
    };
    issues.push(Issue::new(summary_severity, summary_code, summary));
    for rejection in &report.rejections {
        let resource_type = rejection.resource_type.as_deref();
        let code = if rejection.reason.starts_with("rejected with its bundle") {
            IssueType::Processing
        } else {
            IssueType::Invalid
        };
        let what = resource_type
            .filter(|t| is_resource_type_name(t))
            .unwrap_or("resource");
        let issue = Issue::new(
            Severity::Error,
            code,
            format!("{what} rejected: {}", rejection.reason),
        );
        issues.push(placed(
            issue,
            position(shape, rejection.line, rejection.entry_index, resource_type),
        ));
    }
    let unlisted = report
        .resources_rejected
        .saturating_sub(report.rejections.len() as u64);
    if unlisted > 0 {
        issues.push(Issue::new(
            Severity::Error,
            IssueType::Processing,
            format!(
                "{unlisted} further rejected resources are not listed here; each is in the \
                 quarantine with its reason"
            ),
        ));
    }
    for held in &report.held {
        let resource_type = held.resource_type.as_deref();
        let what = resource_type
            .filter(|t| is_resource_type_name(t))
            .unwrap_or("resource");
        let why = match held.eligible_on {
            Some(date) => format!(
                "{what} held: its patient's data may be taken from {date} (the notification \
                 waiting period, R-C1); it will be taken then without being sent again"
            ),
            None => format!(
                "{what} held: no notification of its patient is recorded yet (R-C1); it will be \
                 taken once the notification is recorded and old enough"
            ),
        };
        let issue = Issue::new(Severity::Information, IssueType::Informational, why);
        issues.push(placed(
            issue,
            position(shape, held.line, held.entry_index, resource_type),
        ));
    }
    if report.resources_refused > 0 {
        issues.push(Issue::new(
            Severity::Warning,
            IssueType::Forbidden,
            format!(
                "{} resources were not taken because their patients opted out (R-C2); nothing \
                 of them is kept",
                report.resources_refused
            ),
        ));
    }
    (status, OperationOutcome::new(issues))
}

/// Resource types the intake takes (the rest are quarantined with a reason).
const INTAKE_RESOURCE_TYPES: &[&str] = &[
    "Patient",
    "Encounter",
    "Condition",
    "MedicationRequest",
    "MedicationDispense",
    "Observation",
    "AllergyIntolerance",
    "Procedure",
    "Composition",
    "DocumentReference",
    "Organization",
    "Practitioner",
];

async fn capability_statement() -> Response {
    let resources: Vec<serde_json::Value> = INTAKE_RESOURCE_TYPES
        .iter()
        .map(|t| serde_json::json!({"type": t, "interaction": [{"code": "create"}]}))
        .collect();
    let statement = serde_json::json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": chrono::Utc::now().date_naive().to_string(),
        "kind": "instance",
        "software": {"name": "kiban", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "kiban FHIR intake API (write only)"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+ndjson"],
        "rest": [{
            "mode": "server",
            "security": {
                "description": "Authorization: Bearer <intake token issued by the operator>; \
                                Idempotency-Key supported on every POST"
            },
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
            "operation": [{
                "name": "import",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/import"
            }]
        }]
    });
    fhir_json_response(StatusCode::OK, statement.to_string())
}

#[cfg(test)]
mod tests;
