//! kiban's web portal and read API, in Japanese and English.
//!
//! The portal shows operator staff what the platform holds, read from the metadata store
//! ([`kiban_metadata::Metadata`]): providers, patient and clinical record counts, the intake log
//! (acquisition records, Art. 33) and the quarantine of rejected resources. Pages are rendered
//! on the server with askama templates (no JavaScript); every text exists in Japanese and English
//! side by side in [`i18n::Text`].
//!
//! - [`AppState`]: the metadata handle and a label of the data directory.
//! - [`router`]: every route, with security headers and a small request body limit.
//! - [`serve`]: runs the router on a listener until a shutdown future completes.
//!
//! Pages: `/` (dashboard), `/providers`, `/intakes`, `/intakes/{id}`, `/quarantine?provider=`.
//! The language is Japanese unless `?lang=en` (remembered in the `lang` cookie) or the browser's
//! `Accept-Language` asks for English.
//!
//! API (JSON): `/api/v1/summary`, `/api/v1/providers` (`{"providers": [...]}`),
//! `/api/v1/tables` (`{"tables": [...]}`), `/api/v1/intakes?limit=` (`{"intakes": [...]}`),
//! `/api/v1/intakes/{id}`, `/api/v1/quarantine?provider=&limit=` (`{"quarantine": [...]}`).
//! Errors are `{"error": "..."}` with the status code. `/healthz` answers `ok`.
//!
//! Operator staff sign in at `/staff/sign-in` with login, password and a TOTP code
//! ([`staff_auth`], R-A2); the registers (`/registers/...`) and the clerical review of linkage
//! (`/staff/review`, `/api/v1/staff/review`) need a signed-in member with a permitted role.
//! The aggregate pages above show counts only and stay open.
//!
//! The FHIR intake API lives under `/fhir` ([`fhir_api`]); providers read their own provision
//! record and quarantine there with their token, or on the provider portal under `/provider`
//! (sign-in with the token, then a session cookie). [`serve`] also releases held lines on a
//! timer ([`spawn_held_release`], [`AppState::held_release_interval`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kiban_metadata::Metadata;
//! use kiban_server::{AppState, serve};
//! let meta = Metadata::open_in_dir(std::path::Path::new("data")).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let shutdown = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! serve(listener, AppState::new(meta, "data"), shutdown).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod api;
mod collection_pages;
pub mod data;
mod errors;
pub mod fhir_api;
mod format;
mod held_release;
pub mod i18n;
pub mod operation_outcome;
mod pages;
mod provision;
pub mod rate_limit;
pub mod staff_auth;

pub use held_release::{DEFAULT_HELD_RELEASE_INTERVAL, release_held_once, spawn_held_release};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kiban_collection::Collection;
use kiban_ingest::IngestOptions;
use kiban_metadata::Metadata;
use kiban_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

/// Largest request body accepted: the API is read-only, so requests carry no real body.
pub const REQUEST_BODY_LIMIT: usize = 4 * 1024;

/// Content-Security-Policy of every response: everything from this server only, no scripts at
/// all (the portal needs none), no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'none'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The portal's stylesheet, served from `/static/kiban.css` so no inline style is needed.
const STYLESHEET: &str = include_str!("../static/kiban.css");

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Accepting or serving connections failed.
    #[error("web server: {0}")]
    Io(#[from] std::io::Error),
}

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The metadata store the portal reads.
    pub meta: Metadata,
    /// Label of the data directory, shown in the footer and the summary.
    pub data_dir_label: String,
    /// The encrypted store and the collection registers, when the server takes data in (the
    /// intake API and the opt-out pages need them; a read-only portal does not).
    pub collection: Option<CollectionState>,
    /// Settings of the FHIR intake API (body and rate limits); [`FhirApiConfig::default`]
    /// unless set with [`AppState::with_fhir_api_config`].
    ///
    /// [`FhirApiConfig::default`]: fhir_api::FhirApiConfig
    pub fhir_api: fhir_api::FhirApiConfig,
    /// How often [`serve`] releases held lines whose patients became eligible
    /// ([`spawn_held_release`]); `None` (or zero) never does. Default
    /// [`DEFAULT_HELD_RELEASE_INTERVAL`]. Only used when the server takes data in.
    pub held_release_interval: Option<Duration>,
    /// Staff sign-in (R-A2): without it (a server started without the master key) staff
    /// pages answer 503.
    pub staff: Option<staff_auth::StaffAuth>,
}

/// What taking data in needs: the open store (with its keys) and the collection registers.
#[derive(Clone)]
pub struct CollectionState {
    /// The encrypted store uploads are written to.
    pub store: Arc<Store>,
    /// Providers, tokens, notifications, refusals.
    pub collection: Arc<Collection>,
    /// Intake tuning (chunk size, longest line).
    pub ingest_options: IngestOptions,
}

impl AppState {
    /// State over a metadata store and a label of its data directory (e.g. its path).
    pub fn new(meta: Metadata, data_dir_label: impl Into<String>) -> Self {
        Self {
            meta,
            data_dir_label: data_dir_label.into(),
            collection: None,
            fhir_api: fhir_api::FhirApiConfig::default(),
            held_release_interval: Some(DEFAULT_HELD_RELEASE_INTERVAL),
            staff: None,
        }
    }

    /// The same state with staff sign-in (the staff pages and the review queue need it).
    pub fn with_staff_auth(mut self, staff: staff_auth::StaffAuth) -> Self {
        self.staff = Some(staff);
        self
    }

    /// The same state with these intake API settings (body and rate limits).
    pub fn with_fhir_api_config(mut self, config: fhir_api::FhirApiConfig) -> Self {
        self.fhir_api = config;
        self
    }

    /// The same state releasing held lines every `interval` (`None`: never).
    pub fn with_held_release_interval(mut self, interval: Option<Duration>) -> Self {
        self.held_release_interval = interval;
        self
    }

    /// The same state, taking data in through `collection`.
    pub fn with_collection(mut self, collection: CollectionState) -> Self {
        self.collection = Some(collection);
        self
    }
}

/// Every route of the portal and the API, with security headers, the body limit and request
/// tracing.
pub fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(pages::dashboard))
        .route("/providers", get(pages::providers))
        .route("/intakes", get(pages::intakes))
        .route("/intakes/{id}", get(pages::intake))
        .route("/quarantine", get(pages::quarantine))
        .layer(middleware::from_fn(remember_lang));
    let api = Router::new()
        .route("/summary", get(api::summary))
        .route("/providers", get(api::providers))
        .route("/tables", get(api::tables))
        .route("/intakes", get(api::intakes))
        .route("/intakes/{id}", get(api::intake))
        .route("/quarantine", get(api::quarantine))
        .merge(collection_pages::staff_api_routes())
        .fallback(api::not_found);
    Router::new()
        .merge(pages)
        .merge(collection_pages::routes())
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/static/kiban.css", get(stylesheet))
        .fallback(fallback)
        .layer(RequestBodyLimitLayer::new(REQUEST_BODY_LIMIT))
        // After the small limit: the intake API applies its own, much larger one.
        .merge(fhir_api::routes(state.fhir_api.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// Serves the portal on `listener` until `shutdown` completes, then finishes the requests in
/// flight (graceful shutdown) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "kiban portal listening"),
        Err(err) => tracing::warn!(error = %err, "kiban portal listening on an unknown address"),
    }
    let held_release = match (&state.collection, state.held_release_interval) {
        (Some(collection), Some(interval)) if !interval.is_zero() => {
            Some(spawn_held_release(collection.clone(), interval))
        }
        _ => None,
    };
    // Client addresses reach handlers (the opt-out form limits failed attempts per client).
    let served = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    if let Some(task) = held_release {
        // A release in progress stops between commits; the next start resumes it.
        task.abort();
    }
    served?;
    tracing::info!("kiban portal stopped");
    Ok(())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

/// Unknown paths: a FHIR OperationOutcome under `/fhir`, JSON under `/api/`, a page elsewhere.
async fn fallback(
    state: axum::extract::State<AppState>,
    request: pages::PageRequest,
    uri: axum::http::Uri,
) -> Response {
    if uri.path() == "/fhir" || uri.path().starts_with("/fhir/") {
        fhir_api::not_found().await
    } else if uri.path() == "/api" || uri.path().starts_with("/api/") {
        api::not_found().await.into_response()
    } else {
        pages::not_found(state, request).await.into_response()
    }
}

/// Remembers a language chosen with `?lang=` in the `lang` cookie for a year.
async fn remember_lang(request: Request, next: Next) -> Response {
    let chosen = pages::lang_from_query(request.uri());
    let mut response = next.run(request).await;
    if let Some(lang) = chosen {
        let cookie = format!(
            "{}={}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly",
            i18n::LANG_COOKIE,
            lang.code()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Adds the security headers to every response; data responses are not cached.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests;
