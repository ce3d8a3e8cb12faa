//! Staff sign-in (R-A2) and the clerical review of linkage (名寄せ, R-L2), in Japanese and
//! English.
//!
//! - `GET /staff/sign-in?next=`, `POST /staff/sign-in`: login, password and TOTP code in one
//!   form. Any failure gives the same message, whichever factor failed; the audit log records
//!   which. Failures count per account (locked after [`StaffAuthConfig::max_failures`]) and per
//!   client address ([`FailedAttempts`], 429 past the limit).
//! - `POST /staff/sign-out`; `GET /staff`: who is signed in, with the pages their roles open.
//! - `GET /staff/review?page=`: open pairs, most uncertain first, without identity values.
//! - `GET /staff/review/{id}`: the two records' identity side by side with each field's
//!   comparison level and weight; `POST /staff/review/{id}`: same person / different persons.
//! - `GET /api/v1/staff/review?limit=&offset=`, `GET /api/v1/staff/review/{id}` and
//!   `POST /api/v1/staff/review/{id}` (`{"decision": "same_person"|"different_persons",
//!   "note": "..."}`): the same as JSON.
//!
//! Every page and API declares the roles it needs as the type parameter of [`SignedIn`]:
//! [`RegisterKeepers`], [`CollectionLogReaders`], [`LinkageReviewers`], [`AnyStaff`]. A
//! request without a live session is sent to the sign-in page (401 on the API); a role that
//! does not fit gets 403, logged.
//!
//! The session cookie `kiban_staff_session` is `HttpOnly; SameSite=Strict; Path=/`, `Secure`
//! unless [`StaffAuthConfig::secure_cookie`] is off (a server on a loopback address); sessions
//! end after the idle or absolute timeout, at sign-out, or when the account is disabled.
//! Review pages and answers carry `Cache-Control: no-store`. Identity values are read from the
//! encrypted store for the two records shown and never logged; every sign-in, view and decision
//! is written to the staff audit log (who, when, which pair, outcome, source address).

use super::{
    CollectionPage, StaffPage, Visit, cookie_value, csrf_token_or_error_page, form_expired,
    message_page, percent_encode, render, too_many_attempts, unreadable_form, with_csrf_cookie,
};
use crate::i18n::{Lang, Text};
use crate::staff_auth::{StaffAuth, StaffAuthConfig, verify_password};
use crate::{AppState, CollectionState};
use askama::Template;
use axum::Router;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Form, FromRequestParts, Json, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kiban_metadata::{
    MetadataError, NewStaffAuditEvent, ReviewDecision, ReviewPair, ReviewRecord, ReviewStatus,
    StaffAccount, StaffRole,
};
use kiban_model::{IdentityRow, Sex, TableRow};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Instant;
use zeroize::Zeroizing;

/// Name of the staff session cookie.
pub(crate) const STAFF_SESSION_COOKIE: &str = "kiban_staff_session";
/// Pairs listed on a page of the review queue.
const REVIEW_PAGE_SIZE: i64 = 50;
/// Most pairs one API list request may ask for.
const REVIEW_API_MAX_LIMIT: i64 = 500;
/// Longest note accepted from the review form (the form body limit is 4 KiB).
const REVIEW_FORM_NOTE_MAX_CHARS: usize = 300;
/// Longest login accepted from the form.
const LOGIN_MAX_LEN: usize = 64;

// ---------------------------------------------------------------------------------------------
// Roles each page needs

/// The roles a page or API needs (any one of them).
pub(crate) trait RequiredRoles: Send + Sync + 'static {
    /// Roles allowed.
    const ROLES: &'static [StaffRole];
}

/// The refusal register and phone refusals: the acquisition manager runs collection; the
/// general manager oversees it.
pub(crate) struct RegisterKeepers;
impl RequiredRoles for RegisterKeepers {
    const ROLES: &'static [StaffRole] = &[StaffRole::AcquisitionManager, StaffRole::GeneralManager];
}

/// The collection audit log: the register keepers and the security officer, who watches logs.
pub(crate) struct CollectionLogReaders;
impl RequiredRoles for CollectionLogReaders {
    const ROLES: &'static [StaffRole] = &[
        StaffRole::AcquisitionManager,
        StaffRole::GeneralManager,
        StaffRole::SecurityOfficer,
    ];
}

/// The clerical review of linkage (identity values of the pairs): linkage reviewers and the
/// acquisition manager, who organizes data (取得・整理). Nobody else sees identity.
pub(crate) struct LinkageReviewers;
impl RequiredRoles for LinkageReviewers {
    const ROLES: &'static [StaffRole] =
        &[StaffRole::LinkageReviewer, StaffRole::AcquisitionManager];
}

/// Any signed-in staff member (the staff home page).
pub(crate) struct AnyStaff;
impl RequiredRoles for AnyStaff {
    const ROLES: &'static [StaffRole] = StaffRole::ALL;
}

/// The staff pages a role set may open, for the home page.
fn allowed_pages(account: &StaffAccount) -> Vec<(&'static str, Text)> {
    let mut pages = Vec::new();
    if account.has_any_role(RegisterKeepers::ROLES) {
        pages.push(("/registers/refusals", Text::NavRefusals));
        pages.push(("/registers/refusals/new", Text::NavPhoneRefusal));
    }
    if account.has_any_role(CollectionLogReaders::ROLES) {
        pages.push(("/registers/events", Text::NavEvents));
    }
    if account.has_any_role(LinkageReviewers::ROLES) {
        pages.push(("/staff/review", Text::NavReview));
    }
    pages
}

// ---------------------------------------------------------------------------------------------
// Routes

/// The staff pages (merged into the collection pages' router).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/staff", get(home))
        .route("/staff/sign-in", get(sign_in_form).post(sign_in))
        .route("/staff/sign-out", axum::routing::post(sign_out))
        .route("/staff/review", get(review_list))
        .route("/staff/review/{id}", get(review_page).post(review_decide))
}

/// The staff JSON API, nested under `/api/v1`.
pub(crate) fn staff_api_routes() -> Router<AppState> {
    Router::new()
        .route("/staff/review", get(api_review_list))
        .route(
            "/staff/review/{id}",
            get(api_review_pair).post(api_review_decide),
        )
        .layer(axum::middleware::map_response(no_store))
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn with_no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ---------------------------------------------------------------------------------------------
// Audit

fn source_address(visit: &Visit) -> Option<String> {
    (visit.client != "unknown-client").then(|| visit.client.clone())
}

/// Writes one entry of the staff audit log; `false` when it could not be written.
async fn audit(
    state: &AppState,
    visit: &Visit,
    staff_id: Option<&str>,
    action: &str,
    outcome: &str,
    subject: Option<String>,
) -> bool {
    let event = NewStaffAuditEvent {
        staff_id: staff_id.map(str::to_owned),
        action: action.to_owned(),
        outcome: outcome.to_owned(),
        source_address: source_address(visit),
        subject,
    };
    match state.meta.record_staff_audit(&event).await {
        Ok(()) => true,
        Err(err) => {
            crate::errors::log_metadata_error("staff audit", &err);
            false
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The signed-in staff member

/// A signed-in staff member holding one of `R::ROLES`; as an extractor, answers for itself
/// otherwise (sign-in redirect or 401, 403, 503).
pub(crate) struct SignedIn<R: RequiredRoles> {
    pub(crate) account: StaffAccount,
    session_id: String,
    _roles: PhantomData<R>,
}

/// The path as the client sent it (routers nested under `/api/v1` see it shortened).
fn original_path(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map(|uri| uri.0.path().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned())
}

fn json_error(status: StatusCode, message: &'static str) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: &'static str,
    }
    with_no_store((status, Json(Body { error: message })).into_response())
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A page to come back to after sign-in: a staff or register path of safe characters only,
/// so the redirect never leaves the site.
fn safe_next(next: &str) -> Option<&str> {
    let allowed = next.starts_with("/staff") || next.starts_with("/registers");
    let safe = next
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'));
    (allowed && safe && !next.contains("//")).then_some(next)
}

fn sign_in_href(lang: Lang, next: Option<&str>) -> String {
    match next.and_then(safe_next) {
        Some(next) => format!(
            "/staff/sign-in?lang={}&next={}",
            lang.code(),
            percent_encode(next)
        ),
        None => format!("/staff/sign-in?lang={}", lang.code()),
    }
}

fn unavailable(visit: &Visit, api: bool) -> Response {
    if api {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "staff sign-in is not available on this server",
        );
    }
    message_page(
        visit,
        StatusCode::SERVICE_UNAVAILABLE,
        Text::ReadOnlyTitle,
        Text::StaffUnavailable,
        None,
    )
}

/// The live staff session of a request, if any: its id and account.
async fn current_staff(
    state: &AppState,
    auth: &StaffAuth,
    parts: &Parts,
) -> Result<Option<(String, StaffAccount)>, MetadataError> {
    let Some(session_id) = cookie_value(parts, STAFF_SESSION_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return Ok(None);
    };
    let Some(staff_id) = auth.sessions.find(session_id, Instant::now()) else {
        return Ok(None);
    };
    // Read on every request: a disabled account or a changed role takes effect at once.
    match state.meta.staff_account(&staff_id).await? {
        Some(account) if account.disabled_at.is_none() => {
            Ok(Some((session_id.to_owned(), account)))
        }
        _ => {
            tracing::info!(staff = %staff_id, "staff session ended: account disabled or removed");
            auth.sessions.close(session_id);
            Ok(None)
        }
    }
}

impl<R: RequiredRoles> FromRequestParts<AppState> for SignedIn<R> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let mut visit = Visit::from_parts(parts);
        visit.path = original_path(parts);
        let api = visit.path.starts_with("/api/");
        let Some(auth) = &state.staff else {
            return Err(unavailable(&visit, api));
        };
        let found = match current_staff(state, auth, parts).await {
            Ok(found) => found,
            Err(err) => {
                crate::errors::log_metadata_error("staff session", &err);
                return Err(if api {
                    json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
                } else {
                    message_page(
                        &visit,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Text::ServerErrorTitle,
                        Text::ServerErrorMessage,
                        None,
                    )
                });
            }
        };
        let Some((session_id, account)) = found else {
            return Err(if api {
                json_error(StatusCode::UNAUTHORIZED, "staff sign-in required")
            } else {
                see_other(&sign_in_href(visit.lang, Some(&visit.path)))
            });
        };
        if !account.has_any_role(R::ROLES) {
            tracing::warn!(staff = %account.id, path = %visit.path, "staff request refused: role");
            audit(
                state,
                &visit,
                Some(&account.id),
                "access",
                "forbidden",
                Some(visit.path.clone()),
            )
            .await;
            return Err(if api {
                json_error(StatusCode::FORBIDDEN, "your roles do not permit this")
            } else {
                message_page(
                    &visit,
                    StatusCode::FORBIDDEN,
                    Text::StaffForbiddenTitle,
                    Text::StaffForbidden,
                    Some("/staff"),
                )
            });
        }
        Ok(SignedIn {
            account,
            session_id,
            _roles: PhantomData,
        })
    }
}

fn session_cookie(config: &StaffAuthConfig, id: &str, max_age_secs: u64) -> Option<HeaderValue> {
    let secure = if config.secure_cookie { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{STAFF_SESSION_COOKIE}={id}; Path=/; Max-Age={max_age_secs}; SameSite=Strict; HttpOnly{secure}"
    ))
    .ok()
}

fn role_labels(account: &StaffAccount, lang: Lang) -> String {
    account
        .roles
        .iter()
        .map(|r| lang.pick(r.label_ja(), r.label_en()))
        .collect::<Vec<_>>()
        .join("、")
}

// ---------------------------------------------------------------------------------------------
// Sign-in, sign-out, home

#[derive(Template)]
#[template(path = "staff_signin.html")]
struct SignInTemplate {
    page: CollectionPage,
    error: Option<&'static str>,
    csrf: String,
    action: String,
    next: String,
    login: String,
}

fn render_sign_in(
    visit: &Visit,
    status: StatusCode,
    error: Option<Text>,
    next: &str,
    login: &str,
) -> Response {
    let (csrf, is_new) = match csrf_token_or_error_page(visit) {
        Ok(token) => token,
        Err(page) => return *page,
    };
    let template = SignInTemplate {
        page: CollectionPage::staff_signed_out(visit, Text::StaffSignInTitle),
        error: error.map(|e| visit.t(e)),
        action: format!("/staff/sign-in?lang={}", visit.lang.code()),
        next: safe_next(next).unwrap_or_default().to_owned(),
        login: login.to_owned(),
        csrf: csrf.clone(),
    };
    with_no_store(with_csrf_cookie(render(status, &template), &csrf, is_new))
}

/// The `next` parameter of a request.
fn next_param(visit: &Visit) -> String {
    visit
        .other_params
        .iter()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// `GET /staff/sign-in`.
async fn sign_in_form(State(state): State<AppState>, visit: Visit) -> Response {
    if state.staff.is_none() {
        return unavailable(&visit, false);
    }
    render_sign_in(&visit, StatusCode::OK, None, &next_param(&visit), "")
}

/// The sign-in form as posted. Deliberately not `Debug`: it holds a password and a code.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct SignInForm {
    csrf: String,
    login: String,
    password: String,
    code: String,
    next: String,
}

/// Why a sign-in failed, for the audit log only (the person sees one message for all).
enum Refusal {
    UnknownLogin,
    Disabled,
    Locked,
    WrongPassword,
    WrongCode,
    ReplayedCode,
}

impl Refusal {
    fn outcome(&self) -> &'static str {
        match self {
            Refusal::UnknownLogin => "unknown_login",
            Refusal::Disabled => "disabled",
            Refusal::Locked => "locked",
            Refusal::WrongPassword => "wrong_password",
            Refusal::WrongCode => "wrong_code",
            Refusal::ReplayedCode => "replayed_code",
        }
    }
}

/// Answers a failed sign-in: counts it for the address, logs and audits why, and shows the
/// form again with the one message for every failure.
async fn refuse(
    state: &AppState,
    auth: &StaffAuth,
    visit: &Visit,
    staff_id: Option<String>,
    why: Refusal,
    next: &str,
    login: &str,
) -> Response {
    auth.address_failures.record(&visit.client);
    tracing::info!(outcome = why.outcome(), "staff sign-in refused");
    audit(
        state,
        visit,
        staff_id.as_deref(),
        "sign_in",
        why.outcome(),
        None,
    )
    .await;
    let shown_login = if login.len() <= LOGIN_MAX_LEN {
        login
    } else {
        ""
    };
    render_sign_in(
        visit,
        StatusCode::UNAUTHORIZED,
        Some(Text::StaffSignInFailed),
        next,
        shown_login,
    )
}

/// `POST /staff/sign-in`.
async fn sign_in(
    State(state): State<AppState>,
    visit: Visit,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    const BACK: &str = "/staff/sign-in";
    let Some(auth) = state.staff.clone() else {
        return unavailable(&visit, false);
    };
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return unreadable_form(&visit, &rejection, BACK),
    };
    let password = Zeroizing::new(form.password);
    let code = Zeroizing::new(form.code);
    if !visit.form_is_genuine(&form.csrf) {
        return form_expired(&visit, BACK);
    }
    if auth.address_failures.is_blocked(&visit.client) {
        audit(&state, &visit, None, "sign_in", "address_blocked", None).await;
        return too_many_attempts(&visit);
    }
    let login = form.login.trim().to_ascii_lowercase();
    let next = form.next;
    let refused = |staff_id: Option<String>, why: Refusal| {
        refuse(&state, &auth, &visit, staff_id, why, &next, &login)
    };
    let credentials = if login.is_empty() || login.len() > LOGIN_MAX_LEN {
        None
    } else {
        match state.meta.staff_credentials(&login).await {
            Ok(found) => found,
            Err(err) => {
                crate::errors::log_metadata_error("staff sign-in", &err);
                return message_page(
                    &visit,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Text::ServerErrorTitle,
                    Text::ServerErrorMessage,
                    None,
                );
            }
        }
    };
    // The password is checked in every case, against a stand-in hash when the account cannot
    // sign in, so that the time taken tells nothing about which logins exist.
    let usable = credentials
        .as_ref()
        .filter(|c| c.account.disabled_at.is_none() && !c.account.is_locked_at(chrono::Utc::now()));
    let hash = match usable {
        Some(c) => c.password_hash.clone(),
        None => auth.stand_in_hash.as_ref().clone(),
    };
    let checked_password = password.clone();
    let password_ok =
        tokio::task::spawn_blocking(move || verify_password(&checked_password, &hash))
            .await
            .unwrap_or(false);
    let Some(credentials) = credentials else {
        return refused(None, Refusal::UnknownLogin).await;
    };
    let account = &credentials.account;
    if account.disabled_at.is_some() {
        return refused(Some(account.id.clone()), Refusal::Disabled).await;
    }
    if account.is_locked_at(chrono::Utc::now()) {
        return refused(Some(account.id.clone()), Refusal::Locked).await;
    }
    let now_unix = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let step = match auth
        .sealer
        .open_secret(&account.id, &credentials.totp_secret_sealed)
    {
        Ok(secret) => {
            let fresh = secret.matching_step(&code, now_unix, credentials.totp_last_step);
            let any = secret.matching_step(&code, now_unix, None);
            match (fresh, any) {
                (Some(step), _) => Ok(step),
                (None, Some(_)) => Err(Refusal::ReplayedCode),
                (None, None) => Err(Refusal::WrongCode),
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "staff TOTP secret could not be opened");
            Err(Refusal::WrongCode)
        }
    };
    let failure = if !password_ok {
        Some(Refusal::WrongPassword)
    } else {
        match step {
            Ok(step) => match state
                .meta
                .record_staff_sign_in_success(&account.id, step)
                .await
            {
                Ok(true) => None,
                // Another request took this code first.
                Ok(false) => Some(Refusal::ReplayedCode),
                Err(err) => {
                    crate::errors::log_metadata_error("staff sign-in", &err);
                    return message_page(
                        &visit,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Text::ServerErrorTitle,
                        Text::ServerErrorMessage,
                        None,
                    );
                }
            },
            Err(why) => Some(why),
        }
    };
    if let Some(why) = failure {
        let locked_until = chrono::Utc::now()
            + chrono::Duration::from_std(auth.config.lockout)
                .unwrap_or_else(|_| chrono::Duration::minutes(15));
        let locked_until = locked_until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if let Err(err) = state
            .meta
            .record_staff_sign_in_failure(&account.id, auth.config.max_failures, &locked_until)
            .await
        {
            crate::errors::log_metadata_error("staff sign-in", &err);
        }
        return refused(Some(account.id.clone()), why).await;
    }
    let Some(session) = auth.sessions.open(&account.id, Instant::now()) else {
        tracing::error!("no randomness for a staff session");
        return message_page(
            &visit,
            StatusCode::INTERNAL_SERVER_ERROR,
            Text::ServerErrorTitle,
            Text::ServerErrorMessage,
            None,
        );
    };
    tracing::info!(staff = %account.id, "staff signed in");
    audit(
        &state,
        &visit,
        Some(&account.id),
        "sign_in",
        "success",
        None,
    )
    .await;
    let target = safe_next(&next).unwrap_or("/staff");
    let mut response = see_other(&format!("{target}?lang={}", visit.lang.code()));
    if let Some(cookie) = session_cookie(
        &auth.config,
        &session,
        auth.config.absolute_timeout.as_secs(),
    ) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The sign-out form as posted.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct SignOutForm {
    csrf: String,
}

/// `POST /staff/sign-out`.
async fn sign_out(
    State(state): State<AppState>,
    staff: SignedIn<AnyStaff>,
    visit: Visit,
    form: Result<Form<SignOutForm>, FormRejection>,
) -> Response {
    const BACK: &str = "/staff";
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return unreadable_form(&visit, &rejection, BACK),
    };
    if !visit.form_is_genuine(&form.csrf) {
        return form_expired(&visit, BACK);
    }
    let Some(auth) = &state.staff else {
        return unavailable(&visit, false);
    };
    auth.sessions.close(&staff.session_id);
    audit(
        &state,
        &visit,
        Some(&staff.account.id),
        "sign_out",
        "success",
        None,
    )
    .await;
    let mut response = see_other(&sign_in_href(visit.lang, None));
    if let Some(expired) = session_cookie(&auth.config, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, expired);
    }
    response
}

/// A link of the home page.
pub(crate) struct PageLink {
    href: String,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "staff_home.html")]
struct HomeTemplate {
    page: CollectionPage,
    csrf: String,
    display_name: String,
    login: String,
    roles: String,
    pages: Vec<PageLink>,
}

/// `GET /staff`.
async fn home(staff: SignedIn<AnyStaff>, visit: Visit) -> Response {
    let (csrf, is_new) = match csrf_token_or_error_page(&visit) {
        Ok(token) => token,
        Err(page) => return *page,
    };
    let lang = visit.lang;
    let template = HomeTemplate {
        page: CollectionPage::staff(&visit, Text::StaffHomeTitle, StaffPage::Home),
        display_name: staff.account.display_name.clone(),
        login: staff.account.login.clone(),
        roles: role_labels(&staff.account, lang),
        pages: allowed_pages(&staff.account)
            .into_iter()
            .map(|(href, label)| PageLink {
                href: format!("{href}?lang={}", lang.code()),
                label: label.get(lang),
            })
            .collect(),
        csrf: csrf.clone(),
    };
    with_no_store(with_csrf_cookie(
        render(StatusCode::OK, &template),
        &csrf,
        is_new,
    ))
}

// ---------------------------------------------------------------------------------------------
// Reading the two records' identity

/// The latest identity row of each wanted record, read from the encrypted store (in memory
/// only). Scans the identity segments: fine for a review page, which shows one pair.
async fn identities(
    collection: &CollectionState,
    meta: &kiban_metadata::Metadata,
    wanted: &[ReviewRecord],
) -> Result<HashMap<ReviewRecord, IdentityRow>, String> {
    let segments = meta
        .segments(IdentityRow::TABLE)
        .await
        .map_err(|e| format!("identity segments: {e}"))?;
    let store = collection.store.clone();
    let wanted: Vec<ReviewRecord> = wanted.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut found = HashMap::new();
        for segment in segments {
            let rows: Vec<IdentityRow> = store
                .read_segment(&segment.path)
                .map_err(|e| format!("identity segment {}: {e}", segment.path))?;
            for row in rows {
                let key = ReviewRecord {
                    provider_id: row.common.provider_id.clone(),
                    patient_key: row.common.patient_key.clone(),
                };
                if wanted.contains(&key) {
                    // Later segments hold later versions of a record.
                    found.insert(key, row);
                }
            }
        }
        Ok(found)
    })
    .await
    .map_err(|_| "identity reader stopped".to_owned())?
}

/// One identity field of the two records side by side.
pub(crate) struct FieldRow {
    label: &'static str,
    left: String,
    right: String,
    differs: bool,
    comparison: String,
}

/// The evidence field (as linkage names it) a shown identity field belongs to.
fn evidence_field(field: Text) -> Option<&'static str> {
    match field {
        Text::FieldNameKanji | Text::FieldNameKana => Some("name"),
        Text::FieldBirthDate => Some("birth_date"),
        Text::FieldSex => Some("sex"),
        Text::FieldPostalCode
        | Text::FieldAddress
        | Text::FieldInsurerNumber
        | Text::FieldInsuredSymbol
        | Text::FieldInsuredNumber
        | Text::FieldInsuredBranch => Some("household"),
        _ => None,
    }
}

fn evidence_label(field: &str, lang: Lang) -> String {
    let text = match field {
        "name" => Some(Text::FieldName),
        "birth_date" => Some(Text::FieldBirthDate),
        "sex" => Some(Text::FieldSex),
        "household" => Some(Text::FieldHousehold),
        "adjustments" => Some(Text::FieldAdjustments),
        "name_kanji" => Some(Text::FieldNameKanji),
        "name_kana" => Some(Text::FieldNameKana),
        "address" => Some(Text::FieldAddress),
        "postal_code" => Some(Text::FieldPostalCode),
        _ => None,
    };
    text.map(|t| t.get(lang).to_owned())
        .unwrap_or_else(|| field.to_owned())
}

fn sex_label(code: &str, lang: Lang) -> String {
    match Sex::from_code(code) {
        Some(sex) => lang.pick(sex.label_ja(), sex.label_en()).to_owned(),
        None => code.to_owned(),
    }
}

fn field_values(row: Option<&IdentityRow>, provider_name: &str, lang: Lang) -> Vec<String> {
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    match row {
        None => vec![String::new(); 11],
        Some(r) => vec![
            provider_name.to_owned(),
            text(r.name_kanji.as_ref()),
            text(r.name_kana.as_ref()),
            r.birth_date.map(|d| d.to_string()).unwrap_or_default(),
            sex_label(&r.sex, lang),
            text(r.postal_code.as_ref()),
            text(r.address.as_ref()),
            text(r.insurer_number.as_ref()),
            text(r.insured_symbol.as_ref()),
            text(r.insured_number.as_ref()),
            text(r.insured_branch.as_ref()),
        ],
    }
}

const FIELD_LABELS: [Text; 11] = [
    Text::FieldProvider,
    Text::FieldNameKanji,
    Text::FieldNameKana,
    Text::FieldBirthDate,
    Text::FieldSex,
    Text::FieldPostalCode,
    Text::FieldAddress,
    Text::FieldInsurerNumber,
    Text::FieldInsuredSymbol,
    Text::FieldInsuredNumber,
    Text::FieldInsuredBranch,
];

fn weight_text(bits: f64) -> String {
    format!("{bits:+.1}")
}

fn probability_text(p: f64) -> String {
    format!("{:.1}%", p * 100.0)
}

async fn provider_names(state: &AppState, lang: Lang) -> HashMap<String, String> {
    match state.meta.providers().await {
        Ok(providers) => providers
            .into_iter()
            .map(|p| {
                let name = match (lang, p.name_en) {
                    (Lang::En, Some(en)) if !en.trim().is_empty() => en,
                    _ => p.name,
                };
                (p.id, name)
            })
            .collect(),
        Err(err) => {
            crate::errors::log_metadata_error("provider names", &err);
            HashMap::new()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Review pages

/// A pair as listed (no identity values).
pub(crate) struct PairRow {
    id: i64,
    href: String,
    probability: String,
    left_provider: String,
    right_provider: String,
    run_id: String,
    evidence: String,
}

#[derive(Template)]
#[template(path = "staff_review.html")]
struct ReviewListTemplate {
    page: CollectionPage,
    open: String,
    pairs: Vec<PairRow>,
    previous_href: Option<String>,
    next_href: Option<String>,
}

/// Paging of the review list.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct PageParam {
    page: Option<String>,
}

/// `GET /staff/review?page=`.
async fn review_list(
    State(state): State<AppState>,
    staff: SignedIn<LinkageReviewers>,
    visit: Visit,
    query: Result<Query<PageParam>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let page_number = query
        .ok()
        .and_then(|Query(q)| q.page)
        .and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1);
    let offset = (page_number - 1) * REVIEW_PAGE_SIZE;
    let (open, pairs) = match (
        state.meta.open_review_pair_count().await,
        state.meta.open_review_pairs(REVIEW_PAGE_SIZE, offset).await,
    ) {
        (Ok(open), Ok(pairs)) => (open, pairs),
        (Err(err), _) | (_, Err(err)) => {
            crate::errors::log_metadata_error("review list", &err);
            return message_page(
                &visit,
                StatusCode::INTERNAL_SERVER_ERROR,
                Text::ServerErrorTitle,
                Text::ServerErrorMessage,
                None,
            );
        }
    };
    audit(
        &state,
        &visit,
        Some(&staff.account.id),
        "review_list",
        "success",
        None,
    )
    .await;
    let lang = visit.lang;
    let names = provider_names(&state, lang).await;
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let pairs = pairs
        .into_iter()
        .map(|p| PairRow {
            href: format!("/staff/review/{}?lang={}", p.id, lang.code()),
            id: p.id,
            probability: probability_text(p.match_probability),
            left_provider: name(&p.left.provider_id),
            right_provider: name(&p.right.provider_id),
            evidence: p
                .evidence
                .iter()
                .map(|e| {
                    format!(
                        "{}: {} ({})",
                        evidence_label(&e.field, lang),
                        e.level,
                        weight_text(e.weight_bits)
                    )
                })
                .collect::<Vec<_>>()
                .join(" / "),
            run_id: p.run_id,
        })
        .collect();
    let href = |n: i64| format!("/staff/review?page={n}&lang={}", lang.code());
    let template = ReviewListTemplate {
        page: CollectionPage::staff(&visit, Text::ReviewTitle, StaffPage::Review),
        open: crate::format::count(open),
        pairs,
        previous_href: (page_number > 1).then(|| href(page_number - 1)),
        next_href: (offset + REVIEW_PAGE_SIZE < open).then(|| href(page_number + 1)),
    };
    with_no_store(render(StatusCode::OK, &template))
}

/// One compared field of a pair.
pub(crate) struct EvidenceRow {
    field: String,
    level: String,
    weight: String,
}

#[derive(Template)]
#[template(path = "staff_review_pair.html")]
struct ReviewPairTemplate {
    page: CollectionPage,
    id: i64,
    probability: String,
    run_id: String,
    status: &'static str,
    is_open: bool,
    decided_by: String,
    note: String,
    left_missing: bool,
    right_missing: bool,
    fields: Vec<FieldRow>,
    evidence: Vec<EvidenceRow>,
    action: String,
    csrf: String,
    note_max: usize,
    error: Option<&'static str>,
}

fn status_text(status: ReviewStatus) -> Text {
    match status {
        ReviewStatus::Open => Text::ReviewStatusOpen,
        ReviewStatus::SamePerson => Text::ReviewSamePerson,
        ReviewStatus::DifferentPersons => Text::ReviewDifferentPersons,
    }
}

/// The pair's page, after it was audited.
async fn render_pair(
    state: &AppState,
    visit: &Visit,
    pair: &ReviewPair,
    status: StatusCode,
    error: Option<Text>,
) -> Response {
    let Some(collection) = &state.collection else {
        return unavailable(visit, false);
    };
    let wanted = [pair.left.clone(), pair.right.clone()];
    let found = match identities(collection, &state.meta, &wanted).await {
        Ok(found) => found,
        Err(err) => {
            // The error names segments, never values.
            tracing::error!(error = %err, pair = pair.id, "identity of a review pair unreadable");
            return message_page(
                visit,
                StatusCode::INTERNAL_SERVER_ERROR,
                Text::ServerErrorTitle,
                Text::ServerErrorMessage,
                None,
            );
        }
    };
    let lang = visit.lang;
    let names = provider_names(state, lang).await;
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let left = found.get(&pair.left);
    let right = found.get(&pair.right);
    let left_values = field_values(left, &name(&pair.left.provider_id), lang);
    let right_values = field_values(right, &name(&pair.right.provider_id), lang);
    let fields = FIELD_LABELS
        .iter()
        .zip(left_values.into_iter().zip(right_values))
        .map(|(label, (l, r))| {
            let comparison = evidence_field(*label)
                .and_then(|f| pair.evidence.iter().find(|e| e.field == f))
                .map(|e| format!("{} ({})", e.level, weight_text(e.weight_bits)))
                .unwrap_or_default();
            FieldRow {
                label: label.get(lang),
                differs: *label != Text::FieldProvider && l != r,
                left: l,
                right: r,
                comparison,
            }
        })
        .collect();
    let evidence = pair
        .evidence
        .iter()
        .map(|e| EvidenceRow {
            field: evidence_label(&e.field, lang),
            level: e.level.clone(),
            weight: weight_text(e.weight_bits),
        })
        .collect();
    let decided_by = match &pair.decided_by {
        Some(id) => match state.meta.staff_account(id).await {
            Ok(Some(a)) => format!("{} ({})", a.display_name, a.login),
            _ => id.clone(),
        },
        None => String::new(),
    };
    let (csrf, is_new) = match csrf_token_or_error_page(visit) {
        Ok(token) => token,
        Err(page) => return *page,
    };
    let template = ReviewPairTemplate {
        page: CollectionPage::staff(visit, Text::ReviewDetailTitle, StaffPage::Review),
        id: pair.id,
        probability: probability_text(pair.match_probability),
        run_id: pair.run_id.clone(),
        status: status_text(pair.status).get(lang),
        is_open: pair.status == ReviewStatus::Open,
        decided_by,
        note: pair.note.clone().unwrap_or_default(),
        left_missing: left.is_none(),
        right_missing: right.is_none(),
        fields,
        evidence,
        action: format!("/staff/review/{}?lang={}", pair.id, lang.code()),
        csrf: csrf.clone(),
        note_max: REVIEW_FORM_NOTE_MAX_CHARS,
        error: error.map(|e| e.get(lang)),
    };
    with_no_store(with_csrf_cookie(render(status, &template), &csrf, is_new))
}

fn pair_not_found(visit: &Visit) -> Response {
    with_no_store(message_page(
        visit,
        StatusCode::NOT_FOUND,
        Text::NotFoundTitle,
        Text::ReviewNotFound,
        Some("/staff/review"),
    ))
}

fn server_error_page(visit: &Visit) -> Response {
    message_page(
        visit,
        StatusCode::INTERNAL_SERVER_ERROR,
        Text::ServerErrorTitle,
        Text::ServerErrorMessage,
        None,
    )
}

/// `GET /staff/review/{id}`.
async fn review_page(
    State(state): State<AppState>,
    staff: SignedIn<LinkageReviewers>,
    visit: Visit,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return pair_not_found(&visit);
    };
    let pair = match state.meta.review_pair(id).await {
        Ok(Some(pair)) => pair,
        Ok(None) => return pair_not_found(&visit),
        Err(err) => {
            crate::errors::log_metadata_error("review pair", &err);
            return server_error_page(&visit);
        }
    };
    // No view without its audit entry (R-A3).
    if !audit(
        &state,
        &visit,
        Some(&staff.account.id),
        "review_view",
        "success",
        Some(format!("review-pair:{id}")),
    )
    .await
    {
        return server_error_page(&visit);
    }
    render_pair(&state, &visit, &pair, StatusCode::OK, None).await
}

/// The decision form as posted.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct DecisionForm {
    csrf: String,
    decision: String,
    note: String,
}

/// `POST /staff/review/{id}`.
async fn review_decide(
    State(state): State<AppState>,
    staff: SignedIn<LinkageReviewers>,
    visit: Visit,
    Path(id): Path<String>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    const BACK: &str = "/staff/review";
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return unreadable_form(&visit, &rejection, BACK),
    };
    if !visit.form_is_genuine(&form.csrf) {
        return form_expired(&visit, BACK);
    }
    let Ok(id) = id.parse::<i64>() else {
        return pair_not_found(&visit);
    };
    let Some(decision) = ReviewDecision::from_code(&form.decision) else {
        return message_page(
            &visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            Text::FormExpiredTitle,
            Text::OptOutMissingFields,
            Some(BACK),
        );
    };
    let note: String = form.note.chars().take(REVIEW_FORM_NOTE_MAX_CHARS).collect();
    match decide(&state, &visit, &staff, id, decision, &note).await {
        Decided::Done(_) => see_other(&format!("/staff/review?lang={}", visit.lang.code())),
        Decided::NotFound => pair_not_found(&visit),
        Decided::Conflicting(pair) => {
            render_pair(
                &state,
                &visit,
                &pair,
                StatusCode::CONFLICT,
                Some(Text::ReviewAlreadyDecided),
            )
            .await
        }
        Decided::Failed => server_error_page(&visit),
    }
}

enum Decided {
    Done(Box<ReviewPair>),
    NotFound,
    Conflicting(Box<ReviewPair>),
    Failed,
}

/// Records a decision and its audit entry.
async fn decide<R: RequiredRoles>(
    state: &AppState,
    visit: &Visit,
    staff: &SignedIn<R>,
    id: i64,
    decision: ReviewDecision,
    note: &str,
) -> Decided {
    let subject = Some(format!("review-pair:{id}"));
    let outcome = state
        .meta
        .decide_review_pair(id, decision, &staff.account.id, Some(note))
        .await;
    let (result, audit_outcome) = match outcome {
        Ok(pair) => (Decided::Done(Box::new(pair)), decision.code()),
        Err(MetadataError::NotFound { .. }) => (Decided::NotFound, "not_found"),
        Err(MetadataError::Conflict { .. }) => match state.meta.review_pair(id).await {
            Ok(Some(pair)) => (Decided::Conflicting(Box::new(pair)), "already_decided"),
            Ok(None) => (Decided::NotFound, "not_found"),
            Err(err) => {
                crate::errors::log_metadata_error("review decision", &err);
                (Decided::Failed, "failed")
            }
        },
        Err(err) => {
            crate::errors::log_metadata_error("review decision", &err);
            (Decided::Failed, "failed")
        }
    };
    audit(
        state,
        visit,
        Some(&staff.account.id),
        "review_decide",
        audit_outcome,
        subject,
    )
    .await;
    if let Decided::Done(_) = result {
        tracing::info!(staff = %staff.account.id, pair = id, decision = decision.code(), "review pair decided");
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Review API

/// `?limit=&offset=` of the review list API.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ListParams {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /api/v1/staff/review`: `{"open": n, "pairs": [...]}` (no identity values).
async fn api_review_list(
    State(state): State<AppState>,
    staff: SignedIn<LinkageReviewers>,
    visit: Visit,
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(params)) = query else {
        return json_error(StatusCode::BAD_REQUEST, "invalid limit or offset");
    };
    let limit = params
        .limit
        .unwrap_or(REVIEW_PAGE_SIZE)
        .clamp(1, REVIEW_API_MAX_LIMIT);
    let offset = params.offset.unwrap_or(0).max(0);
    let (open, pairs) = match (
        state.meta.open_review_pair_count().await,
        state.meta.open_review_pairs(limit, offset).await,
    ) {
        (Ok(open), Ok(pairs)) => (open, pairs),
        (Err(err), _) | (_, Err(err)) => {
            crate::errors::log_metadata_error("review API", &err);
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
        }
    };
    audit(
        &state,
        &visit,
        Some(&staff.account.id),
        "review_list",
        "success",
        None,
    )
    .await;
    Json(serde_json::json!({ "open": open, "pairs": pairs })).into_response()
}

/// A record's identity in the API.
#[derive(Serialize)]
struct IdentityJson {
    provider_id: String,
    patient_key: String,
    found: bool,
    name_kanji: Option<String>,
    name_kana: Option<String>,
    birth_date: Option<String>,
    sex: Option<String>,
    postal_code: Option<String>,
    address: Option<String>,
    insurer_number: Option<String>,
    insured_symbol: Option<String>,
    insured_number: Option<String>,
    insured_branch: Option<String>,
}

impl IdentityJson {
    fn of(record: &ReviewRecord, row: Option<&IdentityRow>) -> Self {
        IdentityJson {
            provider_id: record.provider_id.clone(),
            patient_key: record.patient_key.clone(),
            found: row.is_some(),
            name_kanji: row.and_then(|r| r.name_kanji.clone()),
            name_kana: row.and_then(|r| r.name_kana.clone()),
            birth_date: row.and_then(|r| r.birth_date.map(|d| d.to_string())),
            sex: row.map(|r| r.sex.clone()),
            postal_code: row.and_then(|r| r.postal_code.clone()),
            address: row.and_then(|r| r.address.clone()),
            insurer_number: row.and_then(|r| r.insurer_number.clone()),
            insured_symbol: row.and_then(|r| r.insured_symbol.clone()),
            insured_number: row.and_then(|r| r.insured_number.clone()),
            insured_branch: row.and_then(|r| r.insured_branch.clone()),
        }
    }
}

/// `GET /api/v1/staff/review/{id}`: `{"pair": {...}, "records": [left, right]}` with the
/// identity values.
async fn api_review_pair(
    State(state): State<AppState>,
    staff: SignedIn<LinkageReviewers>,
    visit: Visit,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return json_error(StatusCode::NOT_FOUND, "review pair not found");
    };
    let Some(collection) = &state.collection else {
        return unavailable(&visit, true);
    };
    let pair = match state.meta.review_pair(id).await {
        Ok(Some(pair)) => pair,
        Ok(None) => return json_error(StatusCode::NOT_FOUND, "review pair not found"),
        Err(err) => {
            crate::errors::log_metadata_error("review API", &err);
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
        }
    };
    if !audit(
        &state,
        &visit,
        Some(&staff.account.id),
        "review_view",
        "success",
        Some(format!("review-pair:{id}")),
    )
    .await
    {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
    }
    let wanted = [pair.left.clone(), pair.right.clone()];
    let found = match identities(collection, &state.meta, &wanted).await {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(error = %err, pair = id, "identity of a review pair unreadable");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
        }
    };
    let records = [
        IdentityJson::of(&pair.left, found.get(&pair.left)),
        IdentityJson::of(&pair.right, found.get(&pair.right)),
    ];
    Json(serde_json::json!({ "pair": pair, "records": records })).into_response()
}

/// The body of a decision posted to the API.
#[derive(Deserialize)]
pub(crate) struct DecisionBody {
    decision: String,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/v1/staff/review/{id}`: records a decision; `{"pair": {...}}`, 409 when it was
/// already decided. JSON only, and refused when the browser says it comes from another site.
async fn api_review_decide(
    State(state): State<AppState>,
    staff: SignedIn<LinkageReviewers>,
    visit: Visit,
    Path(id): Path<String>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Response {
    if visit.cross_site {
        return json_error(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    let Ok(Json(body)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected a JSON body {\"decision\": \"same_person\"|\"different_persons\"}",
        );
    };
    let Ok(id) = id.parse::<i64>() else {
        return json_error(StatusCode::NOT_FOUND, "review pair not found");
    };
    let Some(decision) = ReviewDecision::from_code(&body.decision) else {
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision must be same_person or different_persons",
        );
    };
    let note = body.note.unwrap_or_default();
    match decide(&state, &visit, &staff, id, decision, &note).await {
        Decided::Done(pair) => Json(serde_json::json!({ "pair": pair })).into_response(),
        Decided::NotFound => json_error(StatusCode::NOT_FOUND, "review pair not found"),
        Decided::Conflicting(_) => json_error(StatusCode::CONFLICT, "review pair already decided"),
        Decided::Failed => json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
    }
}

#[cfg(test)]
pub(crate) mod tests;
