//! The provider portal (Japanese, English with `?lang=en`): a provider signs in with its intake
//! token and sees its own provision record (Art. 32) and quarantine (R-C5).
//!
//! - `GET /provider`: the sign-in form (paste the token); `POST /provider/signin` checks it like
//!   the intake API does ([`kiban_collection::Collection::authenticate`]) and opens a session.
//! - `GET /provider/intakes`: the provider's intakes, with `GET /provider/provision-record.csv`.
//! - `GET /provider/quarantine?page=`: its quarantined entries, 50 a page, each with
//!   `GET /provider/quarantine/{entry_id}` to download the original content as JSON.
//! - `POST /provider/signout`: ends the session.
//!
//! Sessions live in memory: a random 256-bit id in a `kiban_provider_session` cookie
//! (`HttpOnly; SameSite=Strict; Path=/provider`), valid one hour. The token itself never goes
//! into a cookie or a page; the session keeps only the token's public id and checks on every
//! request that the token is still unrevoked and the provider still filed. Forms carry the
//! double-submit CSRF token of the other collection pages and are refused cross-site; wrong
//! tokens count as failed attempts per client like the opt-out form's.

use super::{
    CSRF_TOKEN_BYTES, CollectionPage, FailedAttempts, NavLink, Visit, cookie_value,
    csrf_token_or_error_page, form_expired, message_page, percent_encode, read_only, render,
    too_many_attempts, unreadable_form, with_csrf_cookie,
};
use crate::i18n::{Lang, Text};
use crate::provision::{self, QuarantineItem};
use crate::{AppState, CollectionState};
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use kiban_collection::AuthError;
use kiban_metadata::NotificationBasisSummary;
use kiban_model::ProviderId;
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "kiban_provider_session";
/// How long a session lasts after sign-in.
const SESSION_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// Sessions kept before expired ones are swept.
const SESSION_SWEEP_AT: usize = 10_000;
/// Intakes listed on the page (the CSV has all of them).
const INTAKE_PAGE_LIMIT: i64 = 500;
/// Quarantined entries a page.
const QUARANTINE_PAGE_SIZE: i64 = 50;
/// Longest token accepted from the form (kiban tokens are far shorter).
const TOKEN_MAX_LEN: usize = 200;

/// The routes of the provider portal.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/provider", get(sign_in_form))
        .route("/provider/signin", post(sign_in))
        .route("/provider/signout", post(sign_out))
        .route("/provider/intakes", get(intakes_page))
        .route("/provider/provision-record.csv", get(provision_record_csv))
        .route("/provider/quarantine", get(quarantine_page))
        .route("/provider/quarantine/{entry_id}", get(quarantine_original))
        .layer(Extension(Arc::new(ProviderSessions::new(SESSION_LIFETIME))))
        .layer(Extension(SignInFailures(Arc::new(FailedAttempts::new(
            super::FAILED_ATTEMPT_LIMIT,
            super::FAILED_ATTEMPT_WINDOW,
        )))))
}

/// Failed sign-ins per client (apart from the opt-out form's count).
#[derive(Clone)]
struct SignInFailures(Arc<FailedAttempts>);

// ---------------------------------------------------------------------------------------------
// Sessions

struct ProviderSession {
    provider: ProviderId,
    /// Public id of the token signed in with, to end the session when it is revoked.
    token_id: String,
    expires_at: Instant,
}

/// Signed-in providers by session id, in memory.
pub(crate) struct ProviderSessions {
    lifetime: Duration,
    by_id: Mutex<HashMap<String, ProviderSession>>,
}

impl ProviderSessions {
    fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProviderSession>> {
        // A panic while holding the lock leaves a consistent map.
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session; `None` when the system has no randomness to give.
    fn open(&self, provider: ProviderId, token_id: String) -> Option<String> {
        let mut bytes = [0u8; CSRF_TOKEN_BYTES];
        getrandom::fill(&mut bytes).ok()?;
        let id = hex::encode(bytes);
        let now = Instant::now();
        let mut sessions = self.sessions();
        if sessions.len() >= SESSION_SWEEP_AT {
            sessions.retain(|_, s| s.expires_at > now);
        }
        sessions.insert(
            id.clone(),
            ProviderSession {
                provider,
                token_id,
                expires_at: now + self.lifetime,
            },
        );
        Some(id)
    }

    /// The provider and token id of a live session.
    fn find(&self, id: &str) -> Option<(ProviderId, String)> {
        let mut sessions = self.sessions();
        // Compared as a map key: the id is 256 random bits, so timing tells nothing useful.
        match sessions.get(id) {
            Some(s) if s.expires_at > Instant::now() => {
                Some((s.provider.clone(), s.token_id.clone()))
            }
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    fn close(&self, id: &str) {
        self.sessions().remove(id);
    }
}

/// The session cookie of a request, when it looks like one.
pub(crate) struct SessionCookie(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for SessionCookie {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(SessionCookie(
            cookie_value(parts, SESSION_COOKIE)
                .filter(|v| {
                    v.len() == CSRF_TOKEN_BYTES * 2 && v.bytes().all(|b| b.is_ascii_hexdigit())
                })
                .map(str::to_owned),
        ))
    }
}

fn session_cookie_header(id: &str, max_age_secs: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; Path=/provider; Max-Age={max_age_secs}; SameSite=Strict; HttpOnly"
    ))
    .ok()
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn sign_in_href(lang: Lang) -> String {
    format!("/provider?lang={}", lang.code())
}

/// The signed-in provider, or the answer to give instead (sign in again, read-only, error).
async fn signed_in(
    state: &AppState,
    sessions: &ProviderSessions,
    cookie: &SessionCookie,
    visit: &Visit,
) -> Result<(CollectionState, ProviderId), Response> {
    let Some(collection) = &state.collection else {
        return Err(read_only(visit));
    };
    let Some(session_id) = &cookie.0 else {
        return Err(see_other(&sign_in_href(visit.lang)));
    };
    let Some((provider, token_id)) = sessions.find(session_id) else {
        return Err(see_other(&sign_in_href(visit.lang)));
    };
    match collection
        .collection
        .provider_of_active_token(&token_id)
        .await
    {
        Ok(Some(current)) if current == provider => Ok((collection.clone(), provider)),
        Ok(_) => {
            tracing::info!(provider = %provider, "provider session ended: token revoked or filing lapsed");
            sessions.close(session_id);
            Err(see_other(&sign_in_href(visit.lang)))
        }
        Err(err) => Err(super::server_error(visit, &err)),
    }
}

// ---------------------------------------------------------------------------------------------
// Page frame

/// Which provider page is shown (for the navigation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ProviderPage {
    Intakes,
    Quarantine,
}

impl CollectionPage {
    /// A page of the provider portal; `signed_in` pages get the navigation.
    pub(super) fn provider(visit: &Visit, title: Text, signed_in: Option<ProviderPage>) -> Self {
        let nav = match signed_in {
            Some(page) => [
                (
                    "/provider/intakes",
                    Text::NavProviderIntakes,
                    ProviderPage::Intakes,
                ),
                (
                    "/provider/quarantine",
                    Text::NavProviderQuarantine,
                    ProviderPage::Quarantine,
                ),
            ]
            .into_iter()
            .map(|(href, label, p)| NavLink {
                href,
                label: visit.t(label),
                active: p == page,
            })
            .collect(),
            None => Vec::new(),
        };
        Self {
            lang: visit.lang,
            title: visit.t(title),
            site_name: visit.t(Text::ProviderSiteName),
            home_href: "/provider",
            nav,
            note: None,
            toggle_href: visit.href_in(visit.lang.other()),
            toggle_lang: visit.lang.other(),
        }
    }
}

/// The provider's display name in `lang`, or its id when it cannot be read.
async fn provider_display_name(
    collection: &CollectionState,
    provider: &ProviderId,
    lang: Lang,
) -> String {
    match collection
        .collection
        .metadata()
        .provider_registration(provider.as_str())
        .await
    {
        Ok(Some(p)) => super::provider_name(&p, lang),
        _ => provider.0.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-in and sign-out

#[derive(Template)]
#[template(path = "provider_signin.html")]
struct SignInTemplate {
    page: CollectionPage,
    error: Option<&'static str>,
    csrf: String,
    action: String,
}

fn render_sign_in(visit: &Visit, status: StatusCode, error: Option<Text>) -> Response {
    let (csrf, is_new) = match csrf_token_or_error_page(visit) {
        Ok(token) => token,
        Err(page) => return *page,
    };
    let template = SignInTemplate {
        page: CollectionPage::provider(visit, Text::ProviderSignInTitle, None),
        error: error.map(|e| visit.t(e)),
        action: format!("/provider/signin?lang={}", visit.lang.code()),
        csrf: csrf.clone(),
    };
    with_csrf_cookie(render(status, &template), &csrf, is_new)
}

/// `GET /provider`.
async fn sign_in_form(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<ProviderSessions>>,
    cookie: SessionCookie,
    visit: Visit,
) -> Response {
    if state.collection.is_none() {
        return read_only(&visit);
    }
    if let Some(id) = &cookie.0
        && sessions.find(id).is_some()
    {
        return see_other(&format!("/provider/intakes?lang={}", visit.lang.code()));
    }
    render_sign_in(&visit, StatusCode::OK, None)
}

/// The sign-in form as posted. Deliberately not `Debug`: it holds a token.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct SignInForm {
    csrf: String,
    token: String,
}

/// `POST /provider/signin`.
async fn sign_in(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<ProviderSessions>>,
    Extension(SignInFailures(failures)): Extension<SignInFailures>,
    visit: Visit,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    const BACK: &str = "/provider";
    let Some(collection) = &state.collection else {
        return read_only(&visit);
    };
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return unreadable_form(&visit, &rejection, BACK),
    };
    if !visit.form_is_genuine(&form.csrf) {
        return form_expired(&visit, BACK);
    }
    if failures.is_blocked(&visit.client) {
        return too_many_attempts(&visit);
    }
    let token = form.token.trim();
    let token_id = (token.len() <= TOKEN_MAX_LEN)
        .then(|| kiban_collection::token_id_of_bearer(token))
        .flatten();
    let outcome = match token_id {
        Some(_) => collection.collection.authenticate(token).await,
        None => Err(AuthError::Malformed),
    };
    match (outcome, token_id) {
        (Ok(provider), Some(token_id)) => {
            let Some(session) = sessions.open(provider.clone(), token_id.to_owned()) else {
                tracing::error!("no randomness for a provider session");
                return message_page(
                    &visit,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Text::ServerErrorTitle,
                    Text::ServerErrorMessage,
                    None,
                );
            };
            tracing::info!(provider = %provider, "provider signed in to the portal");
            let mut response = see_other(&format!("/provider/intakes?lang={}", visit.lang.code()));
            if let Some(cookie) = session_cookie_header(&session, SESSION_LIFETIME.as_secs()) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        (Err(AuthError::NotFiled { provider, status }), _) => {
            tracing::warn!(provider = %provider, %status, "portal sign-in refused: provider not filed");
            render_sign_in(&visit, StatusCode::FORBIDDEN, Some(Text::ProviderNotFiled))
        }
        (Err(AuthError::Metadata(err)), _) => {
            super::server_error(&visit, &kiban_collection::CollectionError::Metadata(err))
        }
        (Err(err), _) => {
            failures.record(&visit.client);
            // The reason (unknown, revoked, malformed), never the token.
            tracing::info!(reason = %err, "portal sign-in refused: bad token");
            render_sign_in(
                &visit,
                StatusCode::UNAUTHORIZED,
                Some(Text::ProviderSignInFailed),
            )
        }
        // `authenticate` is only called with a token id.
        (Ok(_), None) => render_sign_in(
            &visit,
            StatusCode::UNAUTHORIZED,
            Some(Text::ProviderSignInFailed),
        ),
    }
}

/// The sign-out form as posted.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct SignOutForm {
    csrf: String,
}

/// `POST /provider/signout`.
async fn sign_out(
    Extension(sessions): Extension<Arc<ProviderSessions>>,
    cookie: SessionCookie,
    visit: Visit,
    form: Result<Form<SignOutForm>, FormRejection>,
) -> Response {
    const BACK: &str = "/provider/intakes";
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return unreadable_form(&visit, &rejection, BACK),
    };
    if !visit.form_is_genuine(&form.csrf) {
        return form_expired(&visit, BACK);
    }
    if let Some(id) = &cookie.0 {
        sessions.close(id);
    }
    let mut response = see_other(&sign_in_href(visit.lang));
    if let Some(expired) = session_cookie_header("", 0) {
        response.headers_mut().append(header::SET_COOKIE, expired);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Intakes and the provision record

/// The label of a notification means.
fn means_label(means: kiban_collection::NotificationMeans) -> Text {
    use kiban_collection::NotificationMeans as M;
    match means {
        M::Letter => Text::MeansLetter,
        M::Email => Text::MeansEmail,
        M::Poster => Text::MeansPoster,
        M::Web => Text::MeansWeb,
    }
}

/// The notification basis of an intake in one line, in `lang`.
pub(crate) fn basis_text(basis: &[NotificationBasisSummary], lang: Lang) -> String {
    basis
        .iter()
        .map(|b| {
            let span = if b.earliest_notified_on == b.latest_notified_on {
                b.earliest_notified_on.to_string()
            } else {
                format!("{}–{}", b.earliest_notified_on, b.latest_notified_on)
            };
            let label = means_label(b.means).get(lang);
            match lang {
                Lang::Ja => format!("{label} {}名（{span}）", b.patients),
                Lang::En => format!("{label}: {} ({span})", b.patients),
            }
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// One notification-basis row of an intake's detail page.
pub(crate) struct BasisView {
    pub means: &'static str,
    pub patients: String,
    pub earliest: String,
    pub latest: String,
}

/// The notification basis of an intake as table rows, in `lang`.
pub(crate) fn basis_views(basis: &[NotificationBasisSummary], lang: Lang) -> Vec<BasisView> {
    basis
        .iter()
        .map(|b| BasisView {
            means: means_label(b.means).get(lang),
            patients: crate::format::count(b.patients),
            earliest: b.earliest_notified_on.to_string(),
            latest: b.latest_notified_on.to_string(),
        })
        .collect()
}

/// An intake as the provider sees it.
pub(crate) struct ProviderIntakeView {
    id: String,
    received_at: String,
    source: String,
    status: &'static str,
    status_class: &'static str,
    accepted: String,
    duplicates: String,
    held: String,
    refused: String,
    quarantined: String,
    items: String,
    basis: String,
    sha256: String,
    sha256_short: String,
}

#[derive(Template)]
#[template(path = "provider_intakes.html")]
struct IntakesTemplate {
    page: CollectionPage,
    provider_name: String,
    provider_id: String,
    csrf: String,
    intakes: Vec<ProviderIntakeView>,
}

/// `GET /provider/intakes`.
async fn intakes_page(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<ProviderSessions>>,
    cookie: SessionCookie,
    visit: Visit,
) -> Response {
    let (collection, provider) = match signed_in(&state, &sessions, &cookie, &visit).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let meta = collection.collection.metadata();
    let rows = match provision::provision_rows(meta, &provider, INTAKE_PAGE_LIMIT).await {
        Ok(rows) => rows,
        Err(err) => {
            return super::server_error(&visit, &kiban_collection::CollectionError::Metadata(err));
        }
    };
    let lang = visit.lang;
    let intakes = rows
        .intakes
        .iter()
        .map(|i| {
            let (status, status_class) = match i.status {
                kiban_metadata::IntakeStatus::Completed => {
                    (Text::StatusCompleted, "status-completed")
                }
                kiban_metadata::IntakeStatus::Running => (Text::StatusRunning, "status-running"),
            };
            ProviderIntakeView {
                id: i.id.clone(),
                received_at: crate::format::time(&i.started_at),
                source: i.source.clone(),
                status: status.get(lang),
                status_class,
                accepted: crate::format::count(i.resources_accepted),
                duplicates: crate::format::count(i.resources_duplicate),
                held: crate::format::count(i.resources_held),
                refused: crate::format::count(i.resources_refused),
                quarantined: crate::format::count(i.resources_rejected),
                items: provision::items_summary(
                    rows.items.get(&i.id).map(Vec::as_slice).unwrap_or(&[]),
                ),
                basis: basis_text(
                    rows.basis.get(&i.id).map(Vec::as_slice).unwrap_or(&[]),
                    lang,
                ),
                sha256: i.source_sha256.clone(),
                sha256_short: i.source_sha256.chars().take(12).collect(),
            }
        })
        .collect();
    let (csrf, is_new) = match csrf_token_or_error_page(&visit) {
        Ok(token) => token,
        Err(page) => return *page,
    };
    let template = IntakesTemplate {
        page: CollectionPage::provider(
            &visit,
            Text::ProviderIntakesTitle,
            Some(ProviderPage::Intakes),
        ),
        provider_name: provider_display_name(&collection, &provider, lang).await,
        provider_id: provider.0.clone(),
        csrf: csrf.clone(),
        intakes,
    };
    with_csrf_cookie(render(StatusCode::OK, &template), &csrf, is_new)
}

/// `GET /provider/provision-record.csv`.
async fn provision_record_csv(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<ProviderSessions>>,
    cookie: SessionCookie,
    visit: Visit,
) -> Response {
    let (collection, provider) = match signed_in(&state, &sessions, &cookie, &visit).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match provision::provision_record_csv(collection.collection.metadata(), &provider).await {
        Ok(csv) => provision::csv_response(&provider, csv),
        Err(err) => super::server_error(&visit, &kiban_collection::CollectionError::Metadata(err)),
    }
}

// ---------------------------------------------------------------------------------------------
// Quarantine

/// A quarantined entry as listed on the page.
pub(crate) struct QuarantineRow {
    intake_id: String,
    received_at: String,
    source: String,
    line: i64,
    entry_index: i64,
    resource_type: String,
    reason: String,
    original_href: String,
}

impl QuarantineRow {
    fn from_item(item: QuarantineItem) -> Self {
        Self {
            original_href: format!("/provider/quarantine/{}", percent_encode(&item.entry_id)),
            received_at: crate::format::time(&item.received_at),
            intake_id: item.intake_id,
            source: item.source,
            line: item.line,
            entry_index: item.entry_index,
            resource_type: item.resource_type.unwrap_or_default(),
            reason: item.reason,
        }
    }
}

#[derive(Template)]
#[template(path = "provider_quarantine.html")]
struct QuarantineTemplate {
    page: CollectionPage,
    provider_name: String,
    provider_id: String,
    csrf: String,
    total: String,
    entries: Vec<QuarantineRow>,
    previous_href: Option<String>,
    next_href: Option<String>,
}

/// Paging of the quarantine page.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct PageParam {
    page: Option<String>,
}

/// `GET /provider/quarantine?page=`.
async fn quarantine_page(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<ProviderSessions>>,
    cookie: SessionCookie,
    visit: Visit,
    query: Result<Query<PageParam>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (collection, provider) = match signed_in(&state, &sessions, &cookie, &visit).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let page_number = query
        .ok()
        .and_then(|Query(q)| q.page)
        .and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1);
    let offset = (page_number - 1) * QUARANTINE_PAGE_SIZE;
    let page = match provision::quarantine_page(
        collection.collection.metadata(),
        &provider,
        QUARANTINE_PAGE_SIZE,
        offset,
    )
    .await
    {
        Ok(page) => page,
        Err(err) => {
            return super::server_error(&visit, &kiban_collection::CollectionError::Metadata(err));
        }
    };
    let lang = visit.lang.code();
    let href = |n: i64| format!("/provider/quarantine?page={n}&lang={lang}");
    let previous_href = (page_number > 1).then(|| href(page_number - 1));
    let next_href = (offset + QUARANTINE_PAGE_SIZE < page.total).then(|| href(page_number + 1));
    let (csrf, is_new) = match csrf_token_or_error_page(&visit) {
        Ok(token) => token,
        Err(page) => return *page,
    };
    let template = QuarantineTemplate {
        page: CollectionPage::provider(
            &visit,
            Text::ProviderQuarantineTitle,
            Some(ProviderPage::Quarantine),
        ),
        provider_name: provider_display_name(&collection, &provider, visit.lang).await,
        provider_id: provider.0.clone(),
        csrf: csrf.clone(),
        total: crate::format::count(page.total),
        entries: page
            .entries
            .into_iter()
            .map(QuarantineRow::from_item)
            .collect(),
        previous_href,
        next_href,
    };
    with_csrf_cookie(render(StatusCode::OK, &template), &csrf, is_new)
}

/// `GET /provider/quarantine/{entry_id}`: the original content as a JSON download.
async fn quarantine_original(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<ProviderSessions>>,
    cookie: SessionCookie,
    visit: Visit,
    Path(entry_id): Path<String>,
) -> Response {
    let (collection, provider) = match signed_in(&state, &sessions, &cookie, &visit).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match provision::quarantined_original(&collection, &provider, &entry_id).await {
        Ok(Some(original)) => {
            let Ok(body) = serde_json::to_string_pretty(&original) else {
                return message_page(
                    &visit,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Text::ServerErrorTitle,
                    Text::ServerErrorMessage,
                    None,
                );
            };
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let name: String = original
                .item
                .entry_id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
                .collect();
            if let Ok(value) =
                HeaderValue::from_str(&format!("attachment; filename=\"quarantined-{name}.json\""))
            {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Ok(None) => message_page(
            &visit,
            StatusCode::NOT_FOUND,
            Text::NotFoundTitle,
            Text::PageNotFound,
            Some("/provider/quarantine"),
        ),
        Err(err) => {
            tracing::error!(provider = %provider, error = %err, "quarantined entry read failed");
            message_page(
                &visit,
                StatusCode::INTERNAL_SERVER_ERROR,
                Text::ServerErrorTitle,
                Text::ServerErrorMessage,
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests;
