//! Server-rendered pages of the portal (askama templates in `templates/`).
//!
//! Every page gets a [`PageContext`]: the negotiated language, the navigation, the language
//! toggle and the footer. Page data is turned into display strings here, so templates only lay
//! out text (askama escapes all of it).

use crate::AppState;
use crate::data::{self, INTAKE_LOG_LIMIT, IntakeRecord, QUARANTINE_LIMIT, TableSummary};
use crate::errors::log_metadata_error;
use crate::format;
use crate::i18n::{LANG_COOKIE, Lang, Text};
use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use kiban_metadata::{Intake, IntakeStatus, MetadataError, Provider, QuarantineListing};
use std::collections::HashMap;
use std::convert::Infallible;

/// The language of a page request and what is needed to link to the same page in the other
/// language. Resolved from `?lang=`, then the `lang` cookie, then `Accept-Language`, else Japanese.
#[derive(Debug, Clone)]
pub(crate) struct PageRequest {
    lang: Lang,
    path: String,
    /// Query parameters other than `lang`, kept on the language toggle (e.g. a filter).
    other_params: Vec<(String, String)>,
}

/// Query parameters of a URI in order; a malformed query counts as empty.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .unwrap_or_default()
}

/// The language asked for by `?lang=` of a URI, if valid.
pub(crate) fn lang_from_query(uri: &Uri) -> Option<Lang> {
    query_pairs(uri)
        .iter()
        .filter(|(k, _)| k == "lang")
        .find_map(|(_, v)| Lang::from_code(v))
}

fn lang_from_cookie(parts: &Parts) -> Option<Lang> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim() == LANG_COOKIE)
        .find_map(|(_, value)| Lang::from_code(value))
}

fn lang_from_accept_language(parts: &Parts) -> Option<Lang> {
    parts
        .headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
}

impl PageRequest {
    fn from_parts(parts: &Parts) -> Self {
        let lang = lang_from_query(&parts.uri)
            .or_else(|| lang_from_cookie(parts))
            .or_else(|| lang_from_accept_language(parts))
            .unwrap_or_default();
        let other_params = query_pairs(&parts.uri)
            .into_iter()
            .filter(|(k, _)| k != "lang")
            .collect();
        Self {
            lang,
            path: parts.uri.path().to_owned(),
            other_params,
        }
    }

    /// Link to the same page in `lang`, keeping the other query parameters.
    fn href_in(&self, lang: Lang) -> String {
        let mut href = self.path.clone();
        href.push_str("?lang=");
        href.push_str(lang.code());
        for (key, value) in &self.other_params {
            href.push('&');
            href.push_str(&percent_encode(key));
            href.push('=');
            href.push_str(&percent_encode(value));
        }
        href
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageRequest {
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

/// Sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Dashboard,
    Providers,
    Intakes,
    Quarantine,
    /// A page outside the navigation (errors).
    Other,
}

/// One link of the navigation.
pub(crate) struct NavItem {
    href: &'static str,
    label: &'static str,
    active: bool,
}

/// What the shared layout shows around every page.
pub(crate) struct PageContext {
    lang: Lang,
    title: &'static str,
    nav: Vec<NavItem>,
    toggle_href: String,
    toggle_lang: Lang,
    data_dir: String,
}

impl PageContext {
    fn new(request: &PageRequest, state: &AppState, section: Section, title: Text) -> Self {
        let lang = request.lang;
        let nav = [
            ("/", Text::NavDashboard, Section::Dashboard),
            ("/providers", Text::NavProviders, Section::Providers),
            ("/intakes", Text::NavIntakes, Section::Intakes),
            ("/quarantine", Text::NavQuarantine, Section::Quarantine),
        ]
        .into_iter()
        .map(|(href, label, s)| NavItem {
            href,
            label: label.get(lang),
            active: s == section,
        })
        .collect();
        Self {
            lang,
            title: title.get(lang),
            nav,
            toggle_href: request.href_in(lang.other()),
            toggle_lang: lang.other(),
            data_dir: state.data_dir_label.clone(),
        }
    }

    /// A text in the page's language (used by the templates).
    pub(crate) fn t(&self, text: Text) -> &'static str {
        text.get(self.lang)
    }
}

/// A page that could not be shown: rendered as an error page in the request's language.
pub(crate) struct PageError {
    page: PageContext,
    status: StatusCode,
    message: Text,
}

impl PageError {
    fn from_metadata(err: MetadataError, request: &PageRequest, state: &AppState) -> Self {
        log_metadata_error("page", &err);
        match err {
            MetadataError::NotFound { .. } => Self::new(
                request,
                state,
                StatusCode::NOT_FOUND,
                Text::NotFoundTitle,
                Text::IntakeNotFound,
            ),
            _ => Self::server_error(request, state),
        }
    }

    fn server_error(request: &PageRequest, state: &AppState) -> Self {
        Self::new(
            request,
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            Text::ServerErrorTitle,
            Text::ServerErrorMessage,
        )
    }

    fn new(
        request: &PageRequest,
        state: &AppState,
        status: StatusCode,
        title: Text,
        message: Text,
    ) -> Self {
        Self {
            page: PageContext::new(request, state, Section::Other, title),
            status,
            message,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    page: &'a PageContext,
    message: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let template = ErrorTemplate {
            page: &self.page,
            message: self.message.get(self.page.lang),
        };
        match template.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(err) => {
                tracing::error!(error = %err, "error page template failed");
                (self.status, self.page.title).into_response()
            }
        }
    }
}

type PageResult = Result<Html<String>, PageError>;

/// Renders a template; a failure becomes the generic error page.
fn render(template: &impl Template, request: &PageRequest, state: &AppState) -> PageResult {
    template.render().map(Html).map_err(|err| {
        tracing::error!(error = %err, "page template failed");
        PageError::server_error(request, state)
    })
}

// ---------------------------------------------------------------------------------------------
// Display rows

/// A provider as listed.
pub(crate) struct ProviderView {
    id: String,
    name_ja: String,
    name_en: String,
    kind: &'static str,
    intakes: String,
    patient_records: String,
    accepted: String,
    rejected: String,
    quarantine_href: String,
}

impl ProviderView {
    fn new(p: &Provider, lang: Lang) -> Self {
        let name_en = p.name_en.clone().unwrap_or_default();
        Self {
            id: p.id.clone(),
            name_ja: p.name.clone(),
            name_en,
            kind: lang.pick(p.kind.label_ja(), p.kind.label_en()),
            intakes: format::count(p.intakes),
            patient_records: format::count(p.patient_records),
            accepted: format::count(p.resources_accepted),
            rejected: format::count(p.resources_rejected),
            quarantine_href: format!("/quarantine?provider={}", percent_encode(&p.id)),
        }
    }
}

/// A provider's name in `lang`; the Japanese name when no English one is registered.
fn provider_name(p: &Provider, lang: Lang) -> String {
    match (lang, p.name_en.as_deref()) {
        (Lang::En, Some(en)) if !en.trim().is_empty() => en.to_owned(),
        _ => p.name.clone(),
    }
}

/// Provider names by id, for the lists that show intakes.
struct ProviderNames(HashMap<String, String>);

impl ProviderNames {
    fn new(providers: &[Provider], lang: Lang) -> Self {
        Self(
            providers
                .iter()
                .map(|p| (p.id.clone(), provider_name(p, lang)))
                .collect(),
        )
    }

    /// The name, or the id of a provider not (or no longer) registered.
    fn get(&self, id: &str) -> String {
        self.0.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }
}

/// A table's row count as listed.
pub(crate) struct TableView {
    name: String,
    label: String,
    rows: String,
    segments: String,
    size: String,
}

impl TableView {
    fn new(t: &TableSummary, lang: Lang) -> Self {
        Self {
            name: t.table_name.clone(),
            label: lang.pick(&t.label_ja, &t.label_en).to_owned(),
            rows: format::count(t.rows),
            segments: format::count(t.segments),
            size: format::bytes(t.bytes),
        }
    }
}

/// One category of an acquisition record.
pub(crate) struct ItemView {
    category: String,
    count: String,
}

/// An intake as listed or detailed.
pub(crate) struct IntakeView {
    id: String,
    href: String,
    provider_id: String,
    provider_name: String,
    source: String,
    sha256: String,
    status: &'static str,
    status_class: &'static str,
    started: String,
    finished: String,
    chunks: String,
    lines: String,
    bytes: String,
    accepted: String,
    duplicates: String,
    rejected: String,
    items: Vec<ItemView>,
}

impl IntakeView {
    fn new(i: &Intake, names: &ProviderNames, lang: Lang) -> Self {
        let (status, status_class) = match i.status {
            IntakeStatus::Running => (Text::StatusRunning.get(lang), "status-running"),
            IntakeStatus::Completed => (Text::StatusCompleted.get(lang), "status-completed"),
        };
        Self {
            id: i.id.clone(),
            href: format!("/intakes/{}", percent_encode(&i.id)),
            provider_id: i.provider_id.clone(),
            provider_name: names.get(&i.provider_id),
            source: i.source.clone(),
            sha256: i.source_sha256.clone(),
            status,
            status_class,
            started: format::time(&i.started_at),
            finished: i
                .finished_at
                .as_deref()
                .map(format::time)
                .unwrap_or_else(|| Text::NotFinished.get(lang).to_owned()),
            chunks: format::count(i.chunks_committed),
            lines: format::count(i.lines_read),
            bytes: format::bytes(i.bytes_read),
            accepted: format::count(i.resources_accepted),
            duplicates: format::count(i.resources_duplicate),
            rejected: format::count(i.resources_rejected),
            items: Vec::new(),
        }
    }

    fn with_items(record: &IntakeRecord, names: &ProviderNames, lang: Lang) -> Self {
        let mut view = Self::new(&record.intake, names, lang);
        view.items = record
            .item_counts
            .iter()
            .map(|c| ItemView {
                category: c.category.clone(),
                count: format::count(c.count),
            })
            .collect();
        view
    }
}

/// A quarantined resource as listed.
pub(crate) struct QuarantineView {
    intake_id: String,
    intake_href: String,
    provider_name: String,
    source: String,
    line: String,
    entry: String,
    resource_type: String,
    reason: String,
}

impl QuarantineView {
    fn new(q: &QuarantineListing, names: &ProviderNames, lang: Lang) -> Self {
        Self {
            intake_id: q.intake_id.clone(),
            intake_href: format!("/intakes/{}", percent_encode(&q.intake_id)),
            provider_name: names.get(&q.provider_id),
            source: q.source.clone(),
            line: format::count(q.entry.line),
            entry: q.entry.entry_index.to_string(),
            resource_type: q
                .entry
                .resource_type
                .clone()
                .unwrap_or_else(|| Text::Unknown.get(lang).to_owned()),
            reason: q.entry.reason.clone(),
        }
    }
}

/// One choice of the quarantine's provider filter.
pub(crate) struct FilterOption {
    id: String,
    name: String,
    selected: bool,
}

// ---------------------------------------------------------------------------------------------
// Pages

/// A headline count of the dashboard.
pub(crate) struct CountCard {
    label: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardTemplate {
    page: PageContext,
    counts: Vec<CountCard>,
    providers: Vec<ProviderView>,
    tables: Vec<TableView>,
    intakes: Vec<IntakeView>,
}

pub(crate) async fn dashboard(State(state): State<AppState>, request: PageRequest) -> PageResult {
    let lang = request.lang;
    let dashboard = data::dashboard(&state.meta, &state.data_dir_label)
        .await
        .map_err(|e| PageError::from_metadata(e, &request, &state))?;
    let s = &dashboard.summary;
    let counts = [
        (Text::CountProviders, s.providers),
        (Text::CountPatientRecords, s.patient_records),
        (Text::CountClinicalRecords, s.clinical_records),
        (Text::CountIntakes, s.intakes),
        (Text::CountQuarantined, s.quarantined_resources),
    ]
    .into_iter()
    .map(|(label, value)| CountCard {
        label: label.get(lang),
        value: format::count(value),
    })
    .collect();
    let names = ProviderNames::new(&dashboard.providers, lang);
    let template = DashboardTemplate {
        page: PageContext::new(&request, &state, Section::Dashboard, Text::DashboardTitle),
        counts,
        providers: dashboard
            .providers
            .iter()
            .map(|p| ProviderView::new(p, lang))
            .collect(),
        tables: dashboard
            .tables
            .iter()
            .map(|t| TableView::new(t, lang))
            .collect(),
        intakes: dashboard
            .latest_intakes
            .iter()
            .map(|i| IntakeView::new(i, &names, lang))
            .collect(),
    };
    render(&template, &request, &state)
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ProvidersTemplate {
    page: PageContext,
    providers: Vec<ProviderView>,
}

pub(crate) async fn providers(State(state): State<AppState>, request: PageRequest) -> PageResult {
    let providers = state
        .meta
        .providers()
        .await
        .map_err(|e| PageError::from_metadata(e, &request, &state))?;
    let template = ProvidersTemplate {
        page: PageContext::new(&request, &state, Section::Providers, Text::ProvidersTitle),
        providers: providers
            .iter()
            .map(|p| ProviderView::new(p, request.lang))
            .collect(),
    };
    render(&template, &request, &state)
}

#[derive(Template)]
#[template(path = "intakes.html")]
struct IntakesTemplate {
    page: PageContext,
    intakes: Vec<IntakeView>,
    limited: bool,
}

pub(crate) async fn intakes(State(state): State<AppState>, request: PageRequest) -> PageResult {
    let read = async {
        let providers = state.meta.providers().await?;
        let records = data::intake_records(&state.meta, INTAKE_LOG_LIMIT).await?;
        Ok::<_, MetadataError>((providers, records))
    };
    let (providers, records) = read
        .await
        .map_err(|e| PageError::from_metadata(e, &request, &state))?;
    let names = ProviderNames::new(&providers, request.lang);
    let template = IntakesTemplate {
        page: PageContext::new(&request, &state, Section::Intakes, Text::IntakesTitle),
        limited: records.len() as i64 >= INTAKE_LOG_LIMIT,
        intakes: records
            .iter()
            .map(|r| IntakeView::with_items(r, &names, request.lang))
            .collect(),
    };
    render(&template, &request, &state)
}

#[derive(Template)]
#[template(path = "intake.html")]
struct IntakeTemplate {
    page: PageContext,
    intake: IntakeView,
    quarantine_href: String,
    /// The notification basis of the intake (R-C4), one row per means.
    basis: Vec<crate::collection_pages::BasisView>,
}

pub(crate) async fn intake(
    State(state): State<AppState>,
    Path(intake_id): Path<String>,
    request: PageRequest,
) -> PageResult {
    let read = async {
        let record = data::intake(&state.meta, &intake_id).await?;
        let providers = state.meta.providers().await?;
        let basis = state.meta.intake_notification_basis(&intake_id).await?;
        Ok::<_, MetadataError>((record, providers, basis))
    };
    let (record, providers, basis) = read
        .await
        .map_err(|e| PageError::from_metadata(e, &request, &state))?;
    let names = ProviderNames::new(&providers, request.lang);
    let template = IntakeTemplate {
        page: PageContext::new(&request, &state, Section::Intakes, Text::IntakeTitle),
        quarantine_href: format!(
            "/quarantine?provider={}",
            percent_encode(&record.intake.provider_id)
        ),
        intake: IntakeView::with_items(&record, &names, request.lang),
        basis: crate::collection_pages::basis_views(&basis, request.lang),
    };
    render(&template, &request, &state)
}

#[derive(Template)]
#[template(path = "quarantine.html")]
struct QuarantineTemplate {
    page: PageContext,
    filter: Vec<FilterOption>,
    filtered: bool,
    entries: Vec<QuarantineView>,
    limited: bool,
}

pub(crate) async fn quarantine(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    request: PageRequest,
) -> PageResult {
    let lang = request.lang;
    // An empty `provider=` is the form's "all" choice.
    let provider = params
        .get("provider")
        .map(|p| p.trim())
        .filter(|p| !p.is_empty());
    let read = async {
        let providers = state.meta.providers().await?;
        let entries = data::quarantine(&state.meta, provider, QUARANTINE_LIMIT).await?;
        Ok::<_, MetadataError>((providers, entries))
    };
    let (providers, entries) = read
        .await
        .map_err(|e| PageError::from_metadata(e, &request, &state))?;
    let names = ProviderNames::new(&providers, lang);
    let template = QuarantineTemplate {
        page: PageContext::new(&request, &state, Section::Quarantine, Text::QuarantineTitle),
        filter: providers
            .iter()
            .map(|p| FilterOption {
                id: p.id.clone(),
                name: provider_name(p, lang),
                selected: provider == Some(p.id.as_str()),
            })
            .collect(),
        filtered: provider.is_some(),
        limited: entries.len() as i64 >= QUARANTINE_LIMIT,
        entries: entries
            .iter()
            .map(|q| QuarantineView::new(q, &names, lang))
            .collect(),
    };
    render(&template, &request, &state)
}

/// The 404 page of paths that match no route.
pub(crate) async fn not_found(State(state): State<AppState>, request: PageRequest) -> PageError {
    PageError::new(
        &request,
        &state,
        StatusCode::NOT_FOUND,
        Text::NotFoundTitle,
        Text::PageNotFound,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder().uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn query_beats_cookie_beats_accept_language() {
        let all = [("cookie", "a=b; lang=ja"), ("accept-language", "ja")];
        assert_eq!(
            PageRequest::from_parts(&parts("/?lang=en", &all)).lang,
            Lang::En
        );
        let cookie_en = [("cookie", "x=1; lang=en"), ("accept-language", "ja")];
        assert_eq!(
            PageRequest::from_parts(&parts("/", &cookie_en)).lang,
            Lang::En
        );
        let accept_en = [("accept-language", "en-GB,en;q=0.9")];
        assert_eq!(
            PageRequest::from_parts(&parts("/", &accept_en)).lang,
            Lang::En
        );
        assert_eq!(PageRequest::from_parts(&parts("/", &[])).lang, Lang::Ja);
        // Invalid values fall through to the next source.
        let bad = [("cookie", "lang=xx"), ("accept-language", "en")];
        assert_eq!(
            PageRequest::from_parts(&parts("/?lang=fr", &bad)).lang,
            Lang::En
        );
    }

    #[test]
    fn toggle_keeps_other_parameters() {
        let request = PageRequest::from_parts(&parts("/quarantine?provider=p%201&lang=ja", &[]));
        assert_eq!(
            request.href_in(Lang::En),
            "/quarantine?lang=en&provider=p%201"
        );
    }

    #[test]
    fn percent_encoding_leaves_unreserved() {
        assert_eq!(percent_encode("prov-001_a.b~"), "prov-001_a.b~");
        assert_eq!(percent_encode("a&b=c/東"), "a%26b%3Dc%2F%E6%9D%B1");
    }
}
