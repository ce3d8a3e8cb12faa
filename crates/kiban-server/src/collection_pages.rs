//! The opt-out (提供停止, R-C2) page for patients and the collection register pages for staff.
//!
//! Patient-facing (Japanese by default, English with `?lang=en`):
//! - `GET /optout`: what is provided, by whom, that refusing costs nothing; the refusal form
//!   (provider, patient id, birth date, the code printed on the notice, who applies, consent)
//!   and a receipt-number check form.
//! - `POST /optout`: [`Collection::refuse_by_patient`]; a receipt page, or a page saying the
//!   details did not match (never which one).
//! - `GET /optout/receipt?number=`: the status of a refusal by its receipt number.
//!
//! Staff (signed in, see `staff_pages`; the acquisition or general manager, and the security
//! officer for the log):
//! - `GET /registers/refusals`: the refusal register by receipt number, no identity data.
//! - `GET|POST /registers/refusals/new`: records a refusal received by phone.
//! - `GET /registers/events`: the collection audit log.
//!
//! Staff sign-in and the clerical review of linkage (`staff_pages`): `GET|POST /staff/sign-in`,
//! `POST /staff/sign-out`, `GET /staff`, `GET /staff/review`, `GET|POST /staff/review/{id}`.
//!
//! Providers (signed in with their intake token, see `provider_pages`):
//! - `GET /provider`, `POST /provider/signin`, `POST /provider/signout`;
//! - `GET /provider/intakes` and `GET /provider/provision-record.csv` (Art. 32);
//! - `GET /provider/quarantine?page=` and `GET /provider/quarantine/{entry_id}` (R-C5).
//!
//! Forms carry a double-submit CSRF token (a random value in a `SameSite=Strict; HttpOnly`
//! cookie and in a hidden field, compared in constant time) and are refused when the browser
//! says they come from another site. Failed identity checks and unknown receipt numbers are
//! counted per client address ([`FailedAttempts`]); past the limit the client gets 429 for a
//! while, against guessing notice codes. Patient ids, birth dates and codes are never echoed into
//! a page or written to a log. Without a collection (a read-only server) every page answers 503.

use crate::i18n::{LANG_COOKIE, Lang, Text};
use crate::{AppState, CollectionState};
use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router, middleware};
use chrono::NaiveDate;
use kiban_collection::{
    CollectionError, PatientRefusal, ProviderRegistration, RefusalChannel, RefusalRequest,
    RefusalStatus, Requester,
};
use kiban_model::ProviderId;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest form body accepted (the forms hold a few short fields).
const FORM_BODY_LIMIT: usize = 4 * 1024;
/// Name of the cookie holding the CSRF token.
const CSRF_COOKIE: &str = "kiban_csrf";
/// Random bytes of a CSRF token (hex-encoded in the cookie and the form).
const CSRF_TOKEN_BYTES: usize = 32;
/// Failed attempts allowed per client within [`FAILED_ATTEMPT_WINDOW`].
const FAILED_ATTEMPT_LIMIT: usize = 10;
/// Window over which failed attempts are counted.
const FAILED_ATTEMPT_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Clients remembered by the limiter before expired entries are swept.
const LIMITER_SWEEP_AT: usize = 10_000;
/// Longest receipt number looked up (`OPT-2026-XXXXXXXX` with some slack for spaces).
const RECEIPT_NUMBER_MAX_LEN: usize = 40;
/// Rows shown on the register pages.
const REGISTER_LIMIT: i64 = 500;

mod provider_pages;
mod staff_pages;
pub(crate) use provider_pages::{BasisView, basis_views};
pub(crate) use staff_pages::staff_api_routes;
use staff_pages::{CollectionLogReaders, RegisterKeepers, SignedIn};

/// Every route of the opt-out, register and provider portal pages (merged into the portal
/// router).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(provider_pages::routes())
        .merge(staff_pages::routes())
        .route("/optout", get(optout_form).post(optout_submit))
        .route("/optout/receipt", get(receipt_check))
        .route("/registers/refusals", get(refusals_register))
        .route(
            "/registers/refusals/new",
            get(phone_form).post(phone_submit),
        )
        .route("/registers/events", get(events_register))
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .layer(Extension(Arc::new(FailedAttempts::new(
            FAILED_ATTEMPT_LIMIT,
            FAILED_ATTEMPT_WINDOW,
        ))))
        .layer(middleware::from_fn(crate::remember_lang))
}

// ---------------------------------------------------------------------------------------------
// Rate limiting of failed attempts

/// Failed attempts (identity checks that did not match, unknown receipt numbers) per client,
/// in memory. A client with `limit` failures within `window` is refused until they age out.
pub(crate) struct FailedAttempts {
    limit: usize,
    window: Duration,
    by_client: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailedAttempts {
    pub(crate) fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit,
            window,
            by_client: Mutex::new(HashMap::new()),
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // A panic while holding the lock leaves consistent data: keep counting.
        self.by_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `client` is over the limit now.
    pub(crate) fn is_blocked(&self, client: &str) -> bool {
        let now = Instant::now();
        let mut clients = self.clients();
        match clients.get_mut(client) {
            Some(failures) => {
                Self::expire(failures, now, self.window);
                failures.len() >= self.limit
            }
            None => false,
        }
    }

    /// Counts one failure of `client`.
    pub(crate) fn record(&self, client: &str) {
        let now = Instant::now();
        let mut clients = self.clients();
        if clients.len() >= LIMITER_SWEEP_AT {
            let window = self.window;
            clients.retain(|_, failures| {
                Self::expire(failures, now, window);
                !failures.is_empty()
            });
        }
        let failures = clients.entry(client.to_owned()).or_default();
        Self::expire(failures, now, self.window);
        failures.push_back(now);
        // Only the most recent `limit` failures matter.
        while failures.len() > self.limit {
            failures.pop_front();
        }
    }

    fn expire(failures: &mut VecDeque<Instant>, now: Instant, window: Duration) {
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            failures.pop_front();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request context: language, client, CSRF cookie

/// What these pages need from a request besides the body.
pub(crate) struct Visit {
    lang: Lang,
    path: String,
    /// Query parameters other than `lang`, kept on the language toggle.
    other_params: Vec<(String, String)>,
    /// Key of the client for the limiter: its address, or one shared bucket when the server
    /// runs without connection info.
    client: String,
    csrf_cookie: Option<String>,
    /// The browser says the request comes from another site (`Origin` or `Sec-Fetch-Site`).
    cross_site: bool,
}

fn cookie_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim())
}

fn header_str(parts: &Parts, name: header::HeaderName) -> Option<&str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .unwrap_or_default()
}

/// Whether the browser marks the request as coming from another site. `Sec-Fetch-Site` decides
/// when sent (only `same-origin`, or `none` for what the user typed, pass); otherwise an
/// `Origin` whose host is not this `Host`. `Origin: null` (what browsers send under the
/// portal's `Referrer-Policy: no-referrer`) decides nothing: the CSRF token still must match.
fn is_cross_site(parts: &Parts) -> bool {
    if let Some(site) = header_str(parts, header::HeaderName::from_static("sec-fetch-site")) {
        return !(site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none"));
    }
    match header_str(parts, header::ORIGIN) {
        None | Some("null") => false,
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, host)| host);
            origin_host.is_none() || origin_host != header_str(parts, header::HOST)
        }
    }
}

impl Visit {
    fn from_parts(parts: &Parts) -> Self {
        let pairs = query_pairs(&parts.uri);
        let lang = pairs
            .iter()
            .filter(|(k, _)| k == "lang")
            .find_map(|(_, v)| Lang::from_code(v))
            .or_else(|| cookie_value(parts, LANG_COOKIE).and_then(Lang::from_code))
            .or_else(|| {
                header_str(parts, header::ACCEPT_LANGUAGE).and_then(Lang::from_accept_language)
            })
            .unwrap_or_default();
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_else(|| "unknown-client".to_owned());
        Self {
            lang,
            path: parts.uri.path().to_owned(),
            // Only short parameters (a receipt number) are kept: nothing else is echoed.
            other_params: pairs
                .into_iter()
                .filter(|(k, v)| k != "lang" && v.chars().count() <= RECEIPT_NUMBER_MAX_LEN)
                .collect(),
            client,
            csrf_cookie: cookie_value(parts, CSRF_COOKIE)
                .filter(|v| is_csrf_token(v))
                .map(str::to_owned),
            cross_site: is_cross_site(parts),
        }
    }

    fn t(&self, text: Text) -> &'static str {
        text.get(self.lang)
    }

    /// Link to the same page in `lang`, keeping the other query parameters.
    fn href_in(&self, lang: Lang) -> String {
        let mut href = format!("{}?lang={}", self.path, lang.code());
        for (key, value) in &self.other_params {
            href.push('&');
            href.push_str(&percent_encode(key));
            href.push('=');
            href.push_str(&percent_encode(value));
        }
        href
    }

    /// Whether a submitted form carries this visitor's CSRF token and comes from this site.
    fn form_is_genuine(&self, submitted_token: &str) -> bool {
        !self.cross_site
            && self.csrf_cookie.as_deref().is_some_and(|cookie| {
                constant_time_eq(cookie.as_bytes(), submitted_token.as_bytes())
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Visit {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// CSRF tokens

fn is_csrf_token(value: &str) -> bool {
    value.len() == CSRF_TOKEN_BYTES * 2 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A fresh random token, or `None` when the system has no randomness to give.
fn new_csrf_token() -> Option<String> {
    let mut bytes = [0u8; CSRF_TOKEN_BYTES];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The visitor's token, or a new one to set in the cookie.
/// The visit's CSRF token and whether it is new, or the server-error page to answer with when
/// the system has no randomness for a new one.
pub(crate) fn csrf_token_or_error_page(visit: &Visit) -> Result<(String, bool), Box<Response>> {
    csrf_token_for(visit).ok_or_else(|| {
        tracing::error!("no randomness for a CSRF token");
        Box::new(message_page(
            visit,
            StatusCode::INTERNAL_SERVER_ERROR,
            Text::ServerErrorTitle,
            Text::ServerErrorMessage,
            None,
        ))
    })
}

fn csrf_token_for(visit: &Visit) -> Option<(String, bool)> {
    match &visit.csrf_cookie {
        Some(token) => Some((token.clone(), false)),
        None => new_csrf_token().map(|token| (token, true)),
    }
}

fn csrf_cookie_header(token: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={token}; Path=/; SameSite=Strict; HttpOnly"
    ))
    .ok()
}

// ---------------------------------------------------------------------------------------------
// Page frame

/// One link of the staff navigation.
pub(crate) struct NavLink {
    href: &'static str,
    label: &'static str,
    active: bool,
}

/// Which staff page is shown (for the navigation).
#[derive(Clone, Copy, PartialEq, Eq)]
enum StaffPage {
    Refusals,
    PhoneRefusal,
    Events,
    Review,
    Home,
}

/// What the layout shows around every page of this module.
pub(crate) struct CollectionPage {
    lang: Lang,
    title: &'static str,
    site_name: &'static str,
    home_href: &'static str,
    nav: Vec<NavLink>,
    note: Option<&'static str>,
    toggle_href: String,
    toggle_lang: Lang,
}

impl CollectionPage {
    fn patient(visit: &Visit, title: Text) -> Self {
        Self {
            lang: visit.lang,
            title: visit.t(title),
            site_name: visit.t(Text::OptOutSiteName),
            home_href: "/optout",
            nav: Vec::new(),
            note: None,
            toggle_href: visit.href_in(visit.lang.other()),
            toggle_lang: visit.lang.other(),
        }
    }

    fn staff(visit: &Visit, title: Text, page: StaffPage) -> Self {
        let nav = [
            ("/", Text::NavDashboard, None),
            (
                "/registers/refusals",
                Text::NavRefusals,
                Some(StaffPage::Refusals),
            ),
            (
                "/registers/refusals/new",
                Text::NavPhoneRefusal,
                Some(StaffPage::PhoneRefusal),
            ),
            (
                "/registers/events",
                Text::NavEvents,
                Some(StaffPage::Events),
            ),
            ("/staff/review", Text::NavReview, Some(StaffPage::Review)),
            ("/staff", Text::NavStaffHome, Some(StaffPage::Home)),
        ]
        .into_iter()
        .map(|(href, label, p)| NavLink {
            href,
            label: visit.t(label),
            active: p == Some(page),
        })
        .collect();
        Self {
            lang: visit.lang,
            title: visit.t(title),
            site_name: "kiban",
            home_href: "/",
            nav,
            note: Some(visit.t(Text::RegistersSignInNote)),
            toggle_href: visit.href_in(visit.lang.other()),
            toggle_lang: visit.lang.other(),
        }
    }

    /// A staff page shown before sign-in (no navigation).
    fn staff_signed_out(visit: &Visit, title: Text) -> Self {
        Self {
            lang: visit.lang,
            title: visit.t(title),
            site_name: "kiban",
            home_href: "/",
            nav: Vec::new(),
            note: None,
            toggle_href: visit.href_in(visit.lang.other()),
            toggle_lang: visit.lang.other(),
        }
    }

    /// A text in the page's language (used by the templates).
    pub(crate) fn t(&self, text: Text) -> &'static str {
        text.get(self.lang)
    }
}

/// A page with one message (errors, read-only server, rate limit).
#[derive(Template)]
#[template(path = "collection_message.html")]
struct MessageTemplate {
    page: CollectionPage,
    message: &'static str,
    back_href: Option<&'static str>,
    back_label: &'static str,
}

/// Renders a template with a status; a template failure becomes a plain 500.
fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "collection page template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A message page for a patient (`staff == false`) or staff.
fn message_page(
    visit: &Visit,
    status: StatusCode,
    title: Text,
    message: Text,
    back_href: Option<&'static str>,
) -> Response {
    let page = if visit.path == "/staff/sign-in" {
        CollectionPage::staff_signed_out(visit, title)
    } else if visit.path.starts_with("/registers") || visit.path.starts_with("/staff") {
        CollectionPage::staff(visit, title, StaffPage::Refusals)
    } else if visit.path.starts_with("/provider") {
        CollectionPage::provider(visit, title, None)
    } else {
        CollectionPage::patient(visit, title)
    };
    render(
        status,
        &MessageTemplate {
            page,
            message: visit.t(message),
            back_href,
            back_label: visit.t(Text::OptOutTryAgain),
        },
    )
}

fn read_only(visit: &Visit) -> Response {
    message_page(
        visit,
        StatusCode::SERVICE_UNAVAILABLE,
        Text::ReadOnlyTitle,
        Text::ReadOnly,
        None,
    )
}

fn server_error(visit: &Visit, err: &CollectionError) -> Response {
    // Collection errors name fields and rules, never identity data.
    tracing::error!(error = %err, path = %visit.path, "collection page failed");
    message_page(
        visit,
        StatusCode::INTERNAL_SERVER_ERROR,
        Text::ServerErrorTitle,
        Text::ServerErrorMessage,
        None,
    )
}

fn form_expired(visit: &Visit, back: &'static str) -> Response {
    tracing::warn!(path = %visit.path, "form refused: missing or wrong CSRF token, or cross-site");
    message_page(
        visit,
        StatusCode::FORBIDDEN,
        Text::FormExpiredTitle,
        Text::FormExpired,
        Some(back),
    )
}

fn too_many_attempts(visit: &Visit) -> Response {
    tracing::warn!(path = %visit.path, "client over the failed-attempt limit");
    let mut response = message_page(
        visit,
        StatusCode::TOO_MANY_REQUESTS,
        Text::OptOutTooManyTitle,
        Text::OptOutTooMany,
        None,
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(FAILED_ATTEMPT_WINDOW.as_secs()),
    );
    response
}

fn unreadable_form(visit: &Visit, rejection: &FormRejection, back: &'static str) -> Response {
    tracing::warn!(path = %visit.path, status = %rejection.status(), "form body refused");
    message_page(
        visit,
        rejection.status(),
        Text::FormExpiredTitle,
        Text::FormExpired,
        Some(back),
    )
}

/// Adds the CSRF cookie to a response when the token is new.
fn with_csrf_cookie(mut response: Response, token: &str, is_new: bool) -> Response {
    if is_new && let Some(value) = csrf_cookie_header(token) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Display helpers

/// A provider in a `<select>`.
pub(crate) struct ProviderOption {
    id: String,
    name: String,
    selected: bool,
}

fn provider_name(p: &ProviderRegistration, lang: Lang) -> String {
    match (lang, p.name_en.as_deref()) {
        (Lang::En, Some(en)) if !en.trim().is_empty() => en.to_owned(),
        _ => p.name.clone(),
    }
}

fn provider_options(
    providers: &[ProviderRegistration],
    lang: Lang,
    selected: &str,
) -> Vec<ProviderOption> {
    providers
        .iter()
        .map(|p| ProviderOption {
            id: p.id.clone(),
            name: provider_name(p, lang),
            selected: p.id == selected,
        })
        .collect()
}

/// A requester as a radio button.
pub(crate) struct RequesterOption {
    code: &'static str,
    label: &'static str,
    checked: bool,
}

fn requester_options(
    visit: &Visit,
    choices: &[(Requester, Text)],
    chosen: Option<Requester>,
) -> Vec<RequesterOption> {
    choices
        .iter()
        .enumerate()
        .map(|(i, (requester, label))| RequesterOption {
            code: requester.code(),
            label: visit.t(*label),
            checked: chosen.map_or(i == 0, |c| c == *requester),
        })
        .collect()
}

const PATIENT_REQUESTERS: &[(Requester, Text)] = &[
    (Requester::Patient, Text::OptOutRequesterPatient),
    (Requester::BereavedFamily, Text::OptOutRequesterBereaved),
    (Requester::Guardian, Text::OptOutRequesterGuardian),
];

const PHONE_REQUESTERS: &[(Requester, Text)] = &[
    (Requester::Patient, Text::OptOutRequesterPatient),
    (Requester::BereavedFamily, Text::OptOutRequesterBereaved),
    (Requester::Guardian, Text::OptOutRequesterGuardian),
    (Requester::Staff, Text::RequesterStaff),
];

fn requester_label(requester: Requester) -> Text {
    match requester {
        Requester::Patient => Text::RequesterPatient,
        Requester::BereavedFamily => Text::RequesterBereaved,
        Requester::Guardian => Text::RequesterGuardian,
        Requester::Provider => Text::RequesterProvider,
        Requester::Staff => Text::RequesterStaff,
    }
}

fn channel_label(channel: RefusalChannel) -> Text {
    match channel {
        RefusalChannel::Web => Text::ChannelWeb,
        RefusalChannel::Api => Text::ChannelApi,
        RefusalChannel::Csv => Text::ChannelCsv,
        RefusalChannel::Phone => Text::ChannelPhone,
    }
}

/// A refusal as shown to the person who made it or to staff: no identity data.
pub(crate) struct RefusalView {
    receipt_number: String,
    provider_name: String,
    refused_on: String,
    recorded_at: String,
    requester: &'static str,
    channel: &'static str,
    recorded_by: String,
}

impl RefusalView {
    fn from_status(status: &RefusalStatus, lang: Lang) -> Self {
        Self {
            receipt_number: status.receipt_number.clone(),
            provider_name: status.provider_name.clone(),
            refused_on: status.refused_on.to_string(),
            recorded_at: crate::format::time(&status.recorded_at),
            requester: requester_label(status.requester).get(lang),
            channel: channel_label(status.channel).get(lang),
            recorded_by: String::new(),
        }
    }
}

fn receipt_href(receipt_number: &str, lang: Lang) -> String {
    format!(
        "/optout/receipt?number={}&lang={}",
        percent_encode(receipt_number),
        lang.code()
    )
}

/// Parses a date typed into `<input type=date>` (`2020-04-01`; `2020/04/01` forgiven).
fn parse_date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&value.trim().replace('/', "-"), "%Y-%m-%d").ok()
}

// ---------------------------------------------------------------------------------------------
// Patient opt-out form

/// The opt-out form as posted. Deliberately not `Debug`: it holds identity data.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct OptOutForm {
    csrf: String,
    provider: String,
    patient_id: String,
    birth_date: String,
    notice_code: String,
    requester: String,
    consent: Option<String>,
}

#[derive(Template)]
#[template(path = "optout.html")]
struct OptOutTemplate {
    page: CollectionPage,
    error: Option<&'static str>,
    csrf: String,
    action: String,
    providers: Vec<ProviderOption>,
    requesters: Vec<RequesterOption>,
    today: String,
}

/// Renders the opt-out form; `selected_provider` and `requester` are kept after an error (the
/// identity fields never are).
async fn render_optout_form(
    visit: &Visit,
    collection: &CollectionState,
    status: StatusCode,
    error: Option<Text>,
    selected_provider: &str,
    requester: Option<Requester>,
) -> Response {
    let providers = match collection.collection.providers().await {
        Ok(providers) => providers,
        Err(err) => return server_error(visit, &err),
    };
    let (csrf, is_new) = match csrf_token_or_error_page(visit) {
        Ok(token) => token,
        Err(page) => return *page,
    };
    let template = OptOutTemplate {
        page: CollectionPage::patient(visit, Text::OptOutTitle),
        error: error.map(|e| visit.t(e)),
        action: format!("/optout?lang={}", visit.lang.code()),
        providers: provider_options(&providers, visit.lang, selected_provider),
        requesters: requester_options(visit, PATIENT_REQUESTERS, requester),
        today: collection.collection.clock().today().to_string(),
        csrf: csrf.clone(),
    };
    with_csrf_cookie(render(status, &template), &csrf, is_new)
}

/// `GET /optout`.
async fn optout_form(State(state): State<AppState>, visit: Visit) -> Response {
    let Some(collection) = &state.collection else {
        return read_only(&visit);
    };
    render_optout_form(&visit, collection, StatusCode::OK, None, "", None).await
}

#[derive(Template)]
#[template(path = "optout_receipt.html")]
struct ReceiptTemplate {
    page: CollectionPage,
    receipt_number: String,
    refused_on: String,
    already_refused: bool,
    check_href: String,
}

/// `POST /optout`.
async fn optout_submit(
    State(state): State<AppState>,
    Extension(failures): Extension<Arc<FailedAttempts>>,
    visit: Visit,
    form: Result<Form<OptOutForm>, FormRejection>,
) -> Response {
    let Some(collection) = &state.collection else {
        return read_only(&visit);
    };
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return unreadable_form(&visit, &rejection, "/optout"),
    };
    if !visit.form_is_genuine(&form.csrf) {
        return form_expired(&visit, "/optout");
    }
    if failures.is_blocked(&visit.client) {
        return too_many_attempts(&visit);
    }
    let requester = Requester::from_code(form.requester.trim())
        .filter(|r| PATIENT_REQUESTERS.iter().any(|(p, _)| p == r));
    let provider = form.provider.trim();
    let complete = !provider.is_empty()
        && !form.patient_id.trim().is_empty()
        && !form.birth_date.trim().is_empty()
        && !form.notice_code.trim().is_empty()
        && form.consent.is_some();
    let (true, Some(requester)) = (complete, requester) else {
        return render_optout_form(
            &visit,
            collection,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(Text::OptOutMissingFields),
            provider,
            requester,
        )
        .await;
    };
    let Some(birth_date) = parse_date(&form.birth_date) else {
        return render_optout_form(
            &visit,
            collection,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(Text::OptOutBadBirthDate),
            provider,
            Some(requester),
        )
        .await;
    };
    let refusal = PatientRefusal {
        provider: ProviderId(provider.to_owned()),
        provider_patient_id: form.patient_id,
        birth_date,
        notice_code: form.notice_code,
        requester,
    };
    match collection.collection.refuse_by_patient(&refusal).await {
        Ok(receipt) => {
            tracing::info!(
                provider = %refusal.provider,
                requester = %requester,
                newly_recorded = receipt.newly_recorded,
                "opt-out refusal recorded from the web page"
            );
            render(
                StatusCode::OK,
                &ReceiptTemplate {
                    page: CollectionPage::patient(&visit, Text::OptOutReceiptTitle),
                    check_href: receipt_href(&receipt.receipt_number, visit.lang),
                    receipt_number: receipt.receipt_number,
                    refused_on: receipt.refused_on.to_string(),
                    already_refused: !receipt.newly_recorded,
                },
            )
        }
        Err(CollectionError::NotVerified) => {
            failures.record(&visit.client);
            tracing::info!(
                provider = %refusal.provider,
                requester = %requester,
                "opt-out details did not match"
            );
            message_page(
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                Text::OptOutMismatchTitle,
                Text::OptOutMismatch,
                Some("/optout"),
            )
        }
        Err(CollectionError::GuardianOfAdult) => message_page(
            &visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            Text::OptOutMismatchTitle,
            Text::OptOutGuardianOfAdult,
            Some("/optout"),
        ),
        Err(CollectionError::UnknownProvider { .. }) => {
            render_optout_form(
                &visit,
                collection,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(Text::PhoneUnknownProvider),
                "",
                Some(requester),
            )
            .await
        }
        Err(err) => server_error(&visit, &err),
    }
}

// ---------------------------------------------------------------------------------------------
// Receipt check

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ReceiptQuery {
    number: Option<String>,
}

#[derive(Template)]
#[template(path = "optout_status.html")]
struct StatusTemplate {
    page: CollectionPage,
    number: String,
    checked: bool,
    refusal: Option<RefusalView>,
}

/// `GET /optout/receipt?number=`.
async fn receipt_check(
    State(state): State<AppState>,
    Extension(failures): Extension<Arc<FailedAttempts>>,
    visit: Visit,
    query: Result<Query<ReceiptQuery>, QueryRejection>,
) -> Response {
    let Some(collection) = &state.collection else {
        return read_only(&visit);
    };
    let number = query
        .ok()
        .and_then(|Query(q)| q.number)
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    let page = CollectionPage::patient(&visit, Text::OptOutStatusTitle);
    if number.is_empty() {
        return render(
            StatusCode::OK,
            &StatusTemplate {
                page,
                number,
                checked: false,
                refusal: None,
            },
        );
    }
    if failures.is_blocked(&visit.client) {
        return too_many_attempts(&visit);
    }
    let status = if number.chars().count() > RECEIPT_NUMBER_MAX_LEN {
        None
    } else {
        match collection.collection.check_receipt(&number).await {
            Ok(status) => status,
            Err(err) => return server_error(&visit, &err),
        }
    };
    let http_status = match status {
        Some(_) => StatusCode::OK,
        None => {
            failures.record(&visit.client);
            StatusCode::NOT_FOUND
        }
    };
    render(
        http_status,
        &StatusTemplate {
            page,
            // Echo only what looks like a receipt number; anything else could be something else.
            number: if number.chars().count() <= RECEIPT_NUMBER_MAX_LEN {
                number
            } else {
                String::new()
            },
            checked: true,
            refusal: status.map(|s| RefusalView::from_status(&s, visit.lang)),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Staff: registers and phone refusals

#[derive(Template)]
#[template(path = "registers_refusals.html")]
struct RefusalsTemplate {
    page: CollectionPage,
    refusals: Vec<RefusalView>,
}

/// `GET /registers/refusals`.
async fn refusals_register(
    State(state): State<AppState>,
    _staff: SignedIn<RegisterKeepers>,
    visit: Visit,
) -> Response {
    let Some(collection) = &state.collection else {
        return read_only(&visit);
    };
    let collection = &collection.collection;
    let (providers, refusals) = match (
        collection.providers().await,
        collection.metadata().refusals(None, REGISTER_LIMIT).await,
    ) {
        (Ok(providers), Ok(refusals)) => (providers, refusals),
        (Err(err), _) => return server_error(&visit, &err),
        (_, Err(err)) => return server_error(&visit, &CollectionError::Metadata(err)),
    };
    let names: HashMap<&str, String> = providers
        .iter()
        .map(|p| (p.id.as_str(), provider_name(p, visit.lang)))
        .collect();
    let refusals = refusals
        .into_iter()
        .map(|r| RefusalView {
            provider_name: names
                .get(r.provider_id.as_str())
                .cloned()
                .unwrap_or_else(|| r.provider_id.clone()),
            receipt_number: r.receipt_number,
            refused_on: r.refused_on.to_string(),
            recorded_at: crate::format::time(&r.recorded_at),
            requester: requester_label(r.requester).get(visit.lang),
            channel: channel_label(r.channel).get(visit.lang),
            recorded_by: r.recorded_by,
        })
        .collect();
    render(
        StatusCode::OK,
        &RefusalsTemplate {
            page: CollectionPage::staff(&visit, Text::RefusalsTitle, StaffPage::Refusals),
            refusals,
        },
    )
}

/// An audit event as listed.
pub(crate) struct EventView {
    at: String,
    actor: String,
    action: String,
    provider: String,
    subject: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "registers_events.html")]
struct EventsTemplate {
    page: CollectionPage,
    events: Vec<EventView>,
}

/// `GET /registers/events`.
async fn events_register(
    State(state): State<AppState>,
    _staff: SignedIn<CollectionLogReaders>,
    visit: Visit,
) -> Response {
    let Some(collection) = &state.collection else {
        return read_only(&visit);
    };
    let events = match collection.collection.events(REGISTER_LIMIT).await {
        Ok(events) => events,
        Err(err) => return server_error(&visit, &err),
    };
    let events = events
        .into_iter()
        .map(|e| EventView {
            at: crate::format::time(&e.at),
            actor: e.actor,
            action: e.action,
            provider: e.provider_id.unwrap_or_default(),
            // The first 16 hex digits identify a subject well enough on screen.
            subject: e
                .subject_digest
                .map(|d| d.chars().take(16).collect())
                .unwrap_or_default(),
            detail: e.detail,
        })
        .collect();
    render(
        StatusCode::OK,
        &EventsTemplate {
            page: CollectionPage::staff(&visit, Text::EventsTitle, StaffPage::Events),
            events,
        },
    )
}

/// The phone-refusal form as posted. Deliberately not `Debug`: it holds a patient id.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct PhoneRefusalForm {
    csrf: String,
    provider: String,
    patient_id: String,
    refused_on: String,
    requester: String,
}

#[derive(Template)]
#[template(path = "registers_phone.html")]
struct PhoneTemplate {
    page: CollectionPage,
    error: Option<&'static str>,
    recorded: Option<RefusalView>,
    csrf: String,
    action: String,
    providers: Vec<ProviderOption>,
    requesters: Vec<RequesterOption>,
    today: String,
}

/// Renders the phone-refusal form, after an error or a recorded refusal.
async fn render_phone_form(
    visit: &Visit,
    collection: &CollectionState,
    status: StatusCode,
    error: Option<Text>,
    recorded: Option<RefusalView>,
) -> Response {
    let providers = match collection.collection.providers().await {
        Ok(providers) => providers,
        Err(err) => return server_error(visit, &err),
    };
    let (csrf, is_new) = match csrf_token_or_error_page(visit) {
        Ok(token) => token,
        Err(page) => return *page,
    };
    let title = if recorded.is_some() {
        Text::PhoneRecordedTitle
    } else {
        Text::PhoneRefusalTitle
    };
    let template = PhoneTemplate {
        page: CollectionPage::staff(visit, title, StaffPage::PhoneRefusal),
        error: error.map(|e| visit.t(e)),
        recorded,
        action: format!("/registers/refusals/new?lang={}", visit.lang.code()),
        providers: provider_options(&providers, visit.lang, ""),
        requesters: requester_options(visit, PHONE_REQUESTERS, None),
        today: collection.collection.clock().today().to_string(),
        csrf: csrf.clone(),
    };
    with_csrf_cookie(render(status, &template), &csrf, is_new)
}

/// `GET /registers/refusals/new`.
async fn phone_form(
    State(state): State<AppState>,
    _staff: SignedIn<RegisterKeepers>,
    visit: Visit,
) -> Response {
    let Some(collection) = &state.collection else {
        return read_only(&visit);
    };
    render_phone_form(&visit, collection, StatusCode::OK, None, None).await
}

/// `POST /registers/refusals/new`.
async fn phone_submit(
    State(state): State<AppState>,
    staff: SignedIn<RegisterKeepers>,
    visit: Visit,
    form: Result<Form<PhoneRefusalForm>, FormRejection>,
) -> Response {
    const BACK: &str = "/registers/refusals/new";
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
    let unprocessable = |error: Text| {
        render_phone_form(
            &visit,
            collection,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(error),
            None,
        )
    };
    let requester = Requester::from_code(form.requester.trim())
        .filter(|r| PHONE_REQUESTERS.iter().any(|(p, _)| p == r));
    let (Some(requester), Some(refused_on)) = (requester, parse_date(&form.refused_on)) else {
        return unprocessable(Text::OptOutMissingFields).await;
    };
    if form.provider.trim().is_empty() {
        return unprocessable(Text::PhoneUnknownProvider).await;
    }
    let request = RefusalRequest {
        provider: ProviderId(form.provider.trim().to_owned()),
        provider_patient_id: form.patient_id,
        refused_on,
        requester,
        channel: RefusalChannel::Phone,
        actor: format!("staff:{}", staff.account.login),
    };
    let receipt = match collection.collection.refuse(&request).await {
        Ok(receipt) => receipt,
        Err(CollectionError::EmptyPatientId) => {
            return unprocessable(Text::OptOutMissingFields).await;
        }
        Err(CollectionError::DateInFuture { .. }) => {
            return unprocessable(Text::PhoneDateInFuture).await;
        }
        Err(CollectionError::UnknownProvider { .. }) => {
            return unprocessable(Text::PhoneUnknownProvider).await;
        }
        Err(err) => return server_error(&visit, &err),
    };
    tracing::info!(
        provider = %request.provider,
        requester = %requester,
        newly_recorded = receipt.newly_recorded,
        "phone refusal recorded"
    );
    let recorded = match collection
        .collection
        .check_receipt(&receipt.receipt_number)
        .await
    {
        Ok(Some(status)) => RefusalView::from_status(&status, visit.lang),
        Ok(None) => RefusalView {
            receipt_number: receipt.receipt_number,
            provider_name: request.provider.0.clone(),
            refused_on: receipt.refused_on.to_string(),
            recorded_at: String::new(),
            requester: requester_label(requester).get(visit.lang),
            channel: channel_label(RefusalChannel::Phone).get(visit.lang),
            recorded_by: String::new(),
        },
        Err(err) => return server_error(&visit, &err),
    };
    render_phone_form(&visit, collection, StatusCode::OK, None, Some(recorded)).await
}

#[cfg(test)]
mod tests;
