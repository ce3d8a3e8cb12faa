//! kiban's collection registers (R-C1..R-C4): who may send data, whose data may be taken, and
//! who refused.
//!
//! - **Providers and intake tokens**: [`Collection::add_provider`] registers a provider (id in
//!   the `prov-NNN` sequence that `kiban synth` uses) and issues its first [`IssuedToken`],
//!   which the provider sends as `Authorization: Bearer <token>`. Only the token's SHA-256 is
//!   stored; [`Collection::authenticate`] compares hashes in constant time. Tokens can be added
//!   ([`Collection::issue_token`]), rotated (a new one, every other one revoked at once:
//!   [`Collection::rotate_token`]) and revoked ([`Collection::revoke_token`]). Only providers
//!   whose filing with the minister is [`FilingStatus::Filed`] may authenticate.
//! - **Notification register (R-C1)**: [`Collection::record_notification`] and
//!   [`Collection::import_notifications_csv`] record that a patient was told of the provision.
//!   The earliest notice counts. Data of a patient is taken only once the notice is old enough
//!   ([`CollectionPolicy`], one calendar month by default); until then it is
//!   [`Eligibility::Held`], never dropped.
//! - **Refusals (R-C2)**: from the provider ([`Collection::refuse`] via API, or
//!   [`Collection::import_refusals_csv`]), from operator staff (a phone call, [`Collection::refuse`]
//!   with [`RefusalChannel::Phone`]), or from the patient-facing page
//!   ([`Collection::refuse_by_patient`]: provider, patient id, birth date and the
//!   [notice code](Collection::notice_code) printed on the notice). A refusal wins over
//!   everything: new data is refused, held data is excluded ([`Collection::refused_patient_keys`]).
//!   The person gets a receipt number, which [`Collection::check_receipt`] looks up.
//! - **Notification basis (R-C4)**: [`Collection::notification_basis_many`] gives the notice
//!   (day and [`NotificationMeans`]) each patient's data is taken under, for the acquisition
//!   record of an intake.
//! - **Audit**: every state-changing call writes a collection event in the same transaction as
//!   the change ([`Collection::events`]). Events and errors never carry identity data: patients
//!   appear only as their keyed [`PatientKey`].
//!
//! Time comes from a [`Clock`]; tests use [`FixedClock`] and move it.
//!
//! ```
//! # tokio_shim::run(async {
//! use std::sync::Arc;
//! use kiban_collection::*;
//! use kiban_model::ProviderKind;
//!
//! let base = tempfile::tempdir().unwrap();
//! let keys = kiban_store::KeyFile::load_or_generate(&base.path().join("keys/master.key")).unwrap();
//! let data = base.path().join("data");
//! let store = Arc::new(kiban_store::Store::open(&data, Arc::new(keys)).unwrap());
//! let meta = kiban_metadata::Metadata::open_in_dir(&data).await.unwrap();
//! let clock = Arc::new(FixedClock::on_date("2026-03-20".parse().unwrap()));
//! let collection = Collection::new(meta, store, clock.clone(), CollectionPolicy::default());
//!
//! let (provider, token) = collection
//!     .add_provider(&NewProviderRegistration::new("東都クリニック", ProviderKind::Clinic), "staff:sato")
//!     .await
//!     .unwrap();
//! assert_eq!(collection.authenticate(token.expose_secret()).await.unwrap(), provider);
//!
//! // Notified 10 days ago: held until one month has passed.
//! let ten_days_ago = "2026-03-10".parse().unwrap();
//! collection
//!     .record_notification(&provider, "000123", ten_days_ago, NotificationMeans::Letter, "cli")
//!     .await
//!     .unwrap();
//! let patient = collection.patient_key(&provider, "000123");
//! assert!(!collection.eligibility(&provider, &patient).await.unwrap().is_eligible());
//! clock.advance_days(21);
//! assert!(collection.eligibility(&provider, &patient).await.unwrap().is_eligible());
//! # });
//! # mod tokio_shim { pub fn run<F: std::future::Future>(f: F) -> F::Output {
//! #   tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) } }
//! ```

#![warn(missing_docs)]

mod clock;
mod codes;
mod csv_rows;
mod policy;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

pub use kiban_metadata::{
    CollectionEvent, FilingStatus, MetadataError, Notification, NotificationMeans,
    ProviderRegistration, ProviderToken, RefusalChannel, Requester, StoredResponse,
};
use kiban_metadata::{Metadata, NewCollectionEvent, NewProvider, NewProviderToken, NewRefusal};
use kiban_model::{PatientKey, ProviderId, ProviderKind};
use kiban_store::Store;

pub use clock::{Clock, FixedClock, SystemClock, japan_date, japan_time};
pub use codes::{IssuedToken, TOKEN_PREFIX};
pub use csv_rows::{ImportReport, RowProblem};
pub use policy::{CollectionPolicy, Eligibility, NotificationWait};

use codes::{
    NOTICE_CODE_CHARS, constant_time_eq, crockford, group_notice_code, new_receipt_number,
    normalize_crockford, normalize_receipt_number, token_id_of, token_sha256,
};
use csv_rows::{CsvRows, parse_past_date};

/// Keyed-digest domain of notice codes.
pub const NOTICE_CODE_DOMAIN: &str = "notice-code";
/// Keyed-digest domain of the birth date given with a refusal.
pub const REFUSAL_BIRTH_DATE_DOMAIN: &str = "refusal-birth-date";
/// Age from which a child refuses for themselves: guardians may refuse for children under it.
pub const GUARDIAN_AGE_LIMIT: u32 = 16;
/// Header of the notification CSV (`<provider>/notifications.csv` of `kiban synth`).
pub const NOTIFICATION_CSV_COLUMNS: &[&str] = &["provider_patient_id", "notified_on", "means"];
/// Header of the refusal CSV (`<provider>/refusals.csv` of `kiban synth`).
pub const REFUSAL_CSV_COLUMNS: &[&str] = &["provider_patient_id", "refused_on", "by"];

/// The notice a patient's data is taken under (R-C4, Art. 33: the acquisition record names its
/// notification basis): the first notice of the patient at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct NotificationBasis {
    /// Day of the (first) notice.
    pub notified_on: NaiveDate,
    /// How it was given.
    pub means: NotificationMeans,
}

/// The public id of an intake token (the part between `kbn_` and the secret), or `None` when
/// `bearer` is not shaped like a kiban token. The id is not secret: sessions and logs may keep
/// it to re-check the token later ([`Collection::provider_of_active_token`]).
pub fn token_id_of_bearer(bearer: &str) -> Option<&str> {
    token_id_of(bearer.trim())
}

/// Attempts at drawing a free provider id or receipt number before giving up.
const DRAW_ATTEMPTS: usize = 8;

/// Errors of collection. Messages name the field and rule, never a patient id, birth date,
/// code or token.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// No provider has this id.
    #[error("provider {provider} is not registered")]
    UnknownProvider {
        /// The provider id.
        provider: String,
    },
    /// No unrevoked token has this id.
    #[error("token {token_id} is unknown or already revoked")]
    UnknownToken {
        /// The token's public id.
        token_id: String,
    },
    /// The patient id is empty (after normalization).
    #[error("provider_patient_id: empty")]
    EmptyPatientId,
    /// A date lies after today.
    #[error("{field}: after today")]
    DateInFuture {
        /// The field.
        field: &'static str,
    },
    /// The details given on the refusal page do not match a notice. Deliberately does not say
    /// which of them is wrong.
    #[error(
        "the details do not match a notice of this provider: check the patient number, the birth date and the code on the notice"
    )]
    NotVerified,
    /// A guardian tried to refuse for a person who is 16 or older.
    #[error(
        "a guardian may refuse only for a child under {GUARDIAN_AGE_LIMIT}; a person aged {GUARDIAN_AGE_LIMIT} or over refuses in person"
    )]
    GuardianOfAdult,
    /// This requester cannot use this way of refusing.
    #[error("requester {requester} cannot refuse through the {channel} channel")]
    RequesterNotAllowed {
        /// Who refused.
        requester: Requester,
        /// Through which channel.
        channel: RefusalChannel,
    },
    /// A CSV file lacks a required column.
    #[error("CSV header: required column {missing} is missing")]
    CsvHeader {
        /// The missing column.
        missing: &'static str,
    },
    /// A CSV file could not be read.
    #[error("CSV line {line}: could not be read ({kind})")]
    CsvRead {
        /// Line where reading stopped.
        line: u64,
        /// Kind of failure.
        kind: String,
    },
    /// The system's random source failed.
    #[error("the system random source failed")]
    RandomSource,
    /// No free id or number could be drawn.
    #[error("could not draw a free {what}")]
    Exhausted {
        /// What was drawn.
        what: &'static str,
    },
}

type Result<T> = std::result::Result<T, CollectionError>;

/// Why a bearer token was not accepted. Messages never echo the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not a kiban token.
    #[error("the bearer token is not a kiban intake token")]
    Malformed,
    /// No token matches.
    #[error("the bearer token is not valid")]
    Unknown,
    /// The token was revoked.
    #[error("the bearer token was revoked")]
    Revoked,
    /// The provider may not send data (its filing is pending or withdrawn).
    #[error("provider {provider} may not send data: its filing status is {status}")]
    NotFiled {
        /// Provider id.
        provider: String,
        /// Its filing status.
        status: FilingStatus,
    },
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// A provider to register with [`Collection::add_provider`].
#[derive(Debug, Clone)]
pub struct NewProviderRegistration {
    /// Name in Japanese.
    pub name: String,
    /// Name in English.
    pub name_en: Option<String>,
    /// Kind of provider.
    pub kind: ProviderKind,
    /// Operator-facing contact of the organisation (never a patient's).
    pub contact: Option<String>,
    /// Filing status; [`FilingStatus::Filed`] unless told otherwise.
    pub filing_status: FilingStatus,
}

impl NewProviderRegistration {
    /// A filed provider without English name or contact.
    pub fn new(name: impl Into<String>, kind: ProviderKind) -> Self {
        NewProviderRegistration {
            name: name.into(),
            name_en: None,
            kind,
            contact: None,
            filing_status: FilingStatus::Filed,
        }
    }
}

/// A refusal recorded by a provider or operator staff.
#[derive(Clone)]
pub struct RefusalRequest {
    /// Provider.
    pub provider: ProviderId,
    /// The provider's patient id (identity data: never logged).
    pub provider_patient_id: String,
    /// Day of the refusal (not after today).
    pub refused_on: NaiveDate,
    /// Who refused.
    pub requester: Requester,
    /// Through which channel.
    pub channel: RefusalChannel,
    /// Who records it (`provider:prov-001`, `staff:sato`).
    pub actor: String,
}

impl fmt::Debug for RefusalRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefusalRequest")
            .field("provider", &self.provider)
            .field("provider_patient_id", &"<redacted>")
            .field("refused_on", &self.refused_on)
            .field("requester", &self.requester)
            .field("channel", &self.channel)
            .field("actor", &self.actor)
            .finish()
    }
}

/// A refusal made on the patient-facing page.
#[derive(Clone)]
pub struct PatientRefusal {
    /// Provider chosen on the page.
    pub provider: ProviderId,
    /// Patient id as typed (identity data).
    pub provider_patient_id: String,
    /// Birth date of the patient (identity data).
    pub birth_date: NaiveDate,
    /// Code printed on the notice, as typed (case, hyphens and O/I/L confusions forgiven).
    pub notice_code: String,
    /// Who refuses: the patient, a bereaved family member or a guardian.
    pub requester: Requester,
}

impl fmt::Debug for PatientRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatientRefusal")
            .field("provider", &self.provider)
            .field("provider_patient_id", &"<redacted>")
            .field("birth_date", &"<redacted>")
            .field("notice_code", &"<redacted>")
            .field("requester", &self.requester)
            .finish()
    }
}

/// What the person who refused is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Receipt number (`OPT-2026-XXXXXXXX`).
    pub receipt_number: String,
    /// Day of the refusal (of the first one, when the person had already refused).
    pub refused_on: NaiveDate,
    /// False when the person had already refused: the earlier receipt is returned.
    pub newly_recorded: bool,
}

/// What a receipt check shows: no identity data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalStatus {
    /// Receipt number.
    pub receipt_number: String,
    /// Provider id.
    pub provider_id: ProviderId,
    /// Provider's display name.
    pub provider_name: String,
    /// Day of the refusal.
    pub refused_on: NaiveDate,
    /// When kiban recorded it (RFC 3339).
    pub recorded_at: String,
    /// Who refused.
    pub requester: Requester,
    /// Through which channel.
    pub channel: RefusalChannel,
}

/// Normalizes a provider's patient id the way ingest does (NFKC, trimmed), so the same patient
/// gets the same key and notice code however the id was written.
pub fn normalize_patient_id(provider_patient_id: &str) -> String {
    provider_patient_id
        .nfkc()
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Age in whole years on `on` of a person born on `birth_date`.
pub fn age_on(birth_date: NaiveDate, on: NaiveDate) -> u32 {
    let years = on.year() - birth_date.year();
    let before_birthday = (on.month(), on.day()) < (birth_date.month(), birth_date.day());
    u32::try_from(years - i32::from(before_birthday)).unwrap_or(0)
}

/// The collection registers over the metadata database, with the store's keyed digests for
/// patient keys and notice codes.
#[derive(Clone)]
pub struct Collection {
    meta: Metadata,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    policy: CollectionPolicy,
}

impl fmt::Debug for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collection")
            .field("clock", &self.clock)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn event(
    actor: &str,
    action: &str,
    provider: Option<&ProviderId>,
    subject: Option<&str>,
    detail: String,
) -> NewCollectionEvent {
    NewCollectionEvent {
        actor: actor.to_owned(),
        action: action.to_owned(),
        provider_id: provider.map(|p| p.0.clone()),
        subject_digest: subject.map(str::to_owned),
        detail,
    }
}

impl Collection {
    /// Collection over a metadata database and a store, with a clock and a policy.
    pub fn new(
        meta: Metadata,
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        policy: CollectionPolicy,
    ) -> Self {
        Collection {
            meta,
            store,
            clock,
            policy,
        }
    }

    /// The metadata database.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The policy.
    pub fn policy(&self) -> &CollectionPolicy {
        &self.policy
    }

    /// The key of a patient of a provider (patient id normalized with [`normalize_patient_id`]).
    pub fn patient_key(&self, provider: &ProviderId, provider_patient_id: &str) -> PatientKey {
        self.store.patient_key(
            provider.as_str(),
            &normalize_patient_id(provider_patient_id),
        )
    }

    async fn registration(&self, provider: &ProviderId) -> Result<ProviderRegistration> {
        self.meta
            .provider_registration(provider.as_str())
            .await?
            .ok_or_else(|| CollectionError::UnknownProvider {
                provider: provider.0.clone(),
            })
    }

    fn normalized_id(provider_patient_id: &str) -> Result<String> {
        let id = normalize_patient_id(provider_patient_id);
        if id.is_empty() {
            return Err(CollectionError::EmptyPatientId);
        }
        Ok(id)
    }

    fn not_after_today(&self, field: &'static str, date: NaiveDate) -> Result<()> {
        if date > self.clock.today() {
            return Err(CollectionError::DateInFuture { field });
        }
        Ok(())
    }

    // ---- providers and tokens ----

    /// Registers a provider under the next free `prov-NNN` id (the sequence `kiban synth`
    /// uses) and issues its first intake token.
    pub async fn add_provider(
        &self,
        registration: &NewProviderRegistration,
        actor: &str,
    ) -> Result<(ProviderId, IssuedToken)> {
        for _ in 0..DRAW_ATTEMPTS {
            let id = ProviderId(self.meta.next_provider_id().await?);
            let token = IssuedToken::generate(&id)?;
            let added = self
                .meta
                .register_provider(
                    &NewProvider {
                        id: id.0.clone(),
                        name: registration.name.clone(),
                        name_en: registration.name_en.clone(),
                        kind: registration.kind,
                    },
                    registration.filing_status,
                    registration.contact.as_deref(),
                    &new_token_row(&token, Some("initial")),
                    &event(
                        actor,
                        "provider.added",
                        Some(&id),
                        Some(token.token_id()),
                        format!(
                            "kind={} filing_status={}",
                            registration.kind, registration.filing_status
                        ),
                    ),
                )
                .await?;
            if added {
                return Ok((id, token));
            }
            // Another process took the id between reading and inserting: draw again.
        }
        Err(CollectionError::Exhausted {
            what: "provider id",
        })
    }

    /// Sets a provider's filing status and contact.
    pub async fn update_provider(
        &self,
        provider: &ProviderId,
        filing_status: FilingStatus,
        contact: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        self.registration(provider).await?;
        self.meta
            .update_provider_registration(
                provider.as_str(),
                filing_status,
                contact,
                &event(
                    actor,
                    "provider.updated",
                    Some(provider),
                    None,
                    format!("filing_status={filing_status}"),
                ),
            )
            .await?;
        Ok(())
    }

    /// Every provider with its registration details.
    pub async fn providers(&self) -> Result<Vec<ProviderRegistration>> {
        Ok(self.meta.provider_registrations().await?)
    }

    /// Issues an additional token for a provider; its other tokens stay valid (to roll over
    /// without a gap: issue, switch the sender, then revoke the old one).
    pub async fn issue_token(
        &self,
        provider: &ProviderId,
        label: Option<&str>,
        actor: &str,
    ) -> Result<IssuedToken> {
        self.registration(provider).await?;
        let token = IssuedToken::generate(provider)?;
        self.meta
            .insert_provider_token(
                &new_token_row(&token, label),
                false,
                &event(
                    actor,
                    "token.issued",
                    Some(provider),
                    Some(token.token_id()),
                    String::new(),
                ),
            )
            .await?;
        Ok(token)
    }

    /// Issues a new token for a provider and revokes every other token of it at once (for a
    /// token that may have leaked).
    pub async fn rotate_token(&self, provider: &ProviderId, actor: &str) -> Result<IssuedToken> {
        self.registration(provider).await?;
        let token = IssuedToken::generate(provider)?;
        self.meta
            .insert_provider_token(
                &new_token_row(&token, Some("rotated")),
                true,
                &event(
                    actor,
                    "token.rotated",
                    Some(provider),
                    Some(token.token_id()),
                    "other tokens revoked".to_owned(),
                ),
            )
            .await?;
        Ok(token)
    }

    /// Revokes a token by its public id.
    pub async fn revoke_token(&self, token_id: &str, actor: &str) -> Result<()> {
        let token = self.meta.provider_token(token_id).await?;
        let unknown = || CollectionError::UnknownToken {
            token_id: token_id.to_owned(),
        };
        let token = token.ok_or_else(unknown)?;
        let provider = ProviderId(token.provider_id);
        let revoked = self
            .meta
            .revoke_provider_token(
                token_id,
                &event(
                    actor,
                    "token.revoked",
                    Some(&provider),
                    Some(token_id),
                    String::new(),
                ),
            )
            .await?;
        if revoked { Ok(()) } else { Err(unknown()) }
    }

    /// Every token of a provider (hashes and times, no secrets).
    pub async fn tokens(&self, provider: &ProviderId) -> Result<Vec<ProviderToken>> {
        Ok(self.meta.provider_tokens(provider.as_str()).await?)
    }

    /// The provider a bearer token (the part after `Bearer `) authenticates. The token's hash
    /// is compared in constant time; a revoked token, or one of a provider whose filing is not
    /// [`FilingStatus::Filed`], is refused.
    pub async fn authenticate(&self, bearer: &str) -> std::result::Result<ProviderId, AuthError> {
        let bearer = bearer.trim();
        let token_id = token_id_of(bearer).ok_or(AuthError::Malformed)?;
        let stored = self
            .meta
            .provider_token(token_id)
            .await?
            .ok_or(AuthError::Unknown)?;
        if !constant_time_eq(&token_sha256(bearer), &stored.token_sha256) {
            return Err(AuthError::Unknown);
        }
        if stored.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        let registration = self
            .meta
            .provider_registration(&stored.provider_id)
            .await?
            .ok_or(AuthError::Unknown)?;
        if registration.filing_status != FilingStatus::Filed {
            return Err(AuthError::NotFiled {
                provider: registration.id,
                status: registration.filing_status,
            });
        }
        Ok(ProviderId(stored.provider_id))
    }

    // ---- notifications (R-C1) ----

    /// Records that a patient was notified. The earliest notice of a patient counts: recording
    /// a later one changes nothing. Returns the notification on record.
    pub async fn record_notification(
        &self,
        provider: &ProviderId,
        provider_patient_id: &str,
        notified_on: NaiveDate,
        means: NotificationMeans,
        actor: &str,
    ) -> Result<Notification> {
        self.registration(provider).await?;
        let id = Self::normalized_id(provider_patient_id)?;
        self.not_after_today("notified_on", notified_on)?;
        let key = self.store.patient_key(provider.as_str(), &id);
        self.meta
            .record_notifications(
                &[kiban_metadata::NotificationRecord {
                    provider_id: provider.0.clone(),
                    patient_key: key.0.clone(),
                    notified_on,
                    means,
                    recorded_by: actor.to_owned(),
                }],
                &event(
                    actor,
                    "notification.recorded",
                    Some(provider),
                    Some(key.as_str()),
                    format!("notified_on={notified_on} means={means}"),
                ),
            )
            .await?;
        self.meta
            .notification(provider.as_str(), key.as_str())
            .await?
            .ok_or_else(|| {
                CollectionError::Metadata(MetadataError::NotFound {
                    what: "notification",
                    id: key.0.clone(),
                })
            })
    }

    /// Imports a notification CSV (`provider_patient_id,notified_on,means`, as `kiban synth`
    /// writes `<provider>/notifications.csv`). Good rows are recorded in one transaction with
    /// one event; bad rows are reported by line and rule.
    pub async fn import_notifications_csv(
        &self,
        provider: &ProviderId,
        input: impl Read,
        actor: &str,
    ) -> Result<ImportReport> {
        self.registration(provider).await?;
        let today = self.clock.today();
        let mut rows = CsvRows::open(input, NOTIFICATION_CSV_COLUMNS)?;
        let mut report = ImportReport::default();
        let mut records = Vec::new();
        while let Some((line, row)) = rows.next_row()? {
            report.rows_read += 1;
            let parsed = row.and_then(|fields| {
                let id = normalize_patient_id(&fields[0]);
                if id.is_empty() {
                    return Err("provider_patient_id: empty".to_owned());
                }
                let notified_on = parse_past_date("notified_on", &fields[1], today)?;
                let means = NotificationMeans::from_code(&fields[2].to_ascii_lowercase())
                    .ok_or_else(|| {
                        format!("means: not one of {}", codes_list(NotificationMeans::ALL))
                    })?;
                Ok((id, notified_on, means))
            });
            match parsed {
                Ok((id, notified_on, means)) => records.push(kiban_metadata::NotificationRecord {
                    provider_id: provider.0.clone(),
                    patient_key: self.store.patient_key(provider.as_str(), &id).0,
                    notified_on,
                    means,
                    recorded_by: actor.to_owned(),
                }),
                Err(reason) => report.problems.push(RowProblem { line, reason }),
            }
        }
        report.recorded = records.len() as u64;
        self.meta
            .record_notifications(
                &records,
                &event(
                    actor,
                    "notifications.imported",
                    Some(provider),
                    None,
                    format!(
                        "rows={} recorded={} rejected={}",
                        report.rows_read,
                        report.recorded,
                        report.problems.len()
                    ),
                ),
            )
            .await?;
        Ok(report)
    }

    /// The code printed on a patient's notice: 50 bits of the store's keyed digest (domain
    /// [`NOTICE_CODE_DOMAIN`]) over the provider and the patient id, as ten Crockford base32
    /// characters `XXXXX-XXXXX`. Only this store can compute it.
    pub fn notice_code(&self, provider: &ProviderId, provider_patient_id: &str) -> String {
        group_notice_code(&self.notice_code_compact(provider, provider_patient_id))
    }

    fn notice_code_compact(&self, provider: &ProviderId, provider_patient_id: &str) -> String {
        let id = normalize_patient_id(provider_patient_id);
        let digest = self.store.keyed_digest(
            NOTICE_CODE_DOMAIN,
            &[provider.as_str().as_bytes(), id.as_bytes()],
        );
        crockford(&digest, NOTICE_CODE_CHARS)
    }

    // ---- refusals (R-C2) ----

    /// Records a refusal from a provider (API, CSV) or operator staff (phone). Refusing again
    /// returns the first receipt (and logs the repetition).
    pub async fn refuse(&self, request: &RefusalRequest) -> Result<Receipt> {
        self.registration(&request.provider).await?;
        let id = Self::normalized_id(&request.provider_patient_id)?;
        self.not_after_today("refused_on", request.refused_on)?;
        let key = self.store.patient_key(request.provider.as_str(), &id);
        self.record_refusal(
            &request.provider,
            &key,
            request.refused_on,
            request.requester,
            request.channel,
            None,
            &request.actor,
        )
        .await
    }

    /// Records a refusal made on the patient-facing page, after checking the notice code in
    /// constant time. A mismatch is logged (without identity data) and answered with
    /// [`CollectionError::NotVerified`], which does not say which detail was wrong. A guardian
    /// may refuse only for a child under 16 (by the birth date given). The birth date is kept
    /// only as a keyed digest with the refusal ([`Collection::refusal_birth_date_matches`]).
    pub async fn refuse_by_patient(&self, request: &PatientRefusal) -> Result<Receipt> {
        const ACTOR: &str = "web";
        if !matches!(
            request.requester,
            Requester::Patient | Requester::BereavedFamily | Requester::Guardian
        ) {
            return Err(CollectionError::RequesterNotAllowed {
                requester: request.requester,
                channel: RefusalChannel::Web,
            });
        }
        self.registration(&request.provider).await?;
        let today = self.clock.today();
        let id = normalize_patient_id(&request.provider_patient_id);
        let expected = self.notice_code_compact(&request.provider, &id);
        let typed = normalize_crockford(&request.notice_code).unwrap_or_default();
        let code_matches = constant_time_eq(expected.as_bytes(), typed.as_bytes());
        if id.is_empty() || !code_matches || request.birth_date > today {
            self.meta
                .log_collection_event(&event(
                    ACTOR,
                    "refusal.verification_failed",
                    Some(&request.provider),
                    None,
                    format!("requester={}", request.requester),
                ))
                .await?;
            return Err(CollectionError::NotVerified);
        }
        if request.requester == Requester::Guardian
            && age_on(request.birth_date, today) >= GUARDIAN_AGE_LIMIT
        {
            self.meta
                .log_collection_event(&event(
                    ACTOR,
                    "refusal.guardian_of_adult",
                    Some(&request.provider),
                    None,
                    String::new(),
                ))
                .await?;
            return Err(CollectionError::GuardianOfAdult);
        }
        let key = self.store.patient_key(request.provider.as_str(), &id);
        let birth_date_digest = self.birth_date_digest(&request.provider, &id, request.birth_date);
        self.record_refusal(
            &request.provider,
            &key,
            today,
            request.requester,
            RefusalChannel::Web,
            Some(birth_date_digest),
            ACTOR,
        )
        .await
    }

    fn birth_date_digest(
        &self,
        provider: &ProviderId,
        id: &str,
        birth_date: NaiveDate,
    ) -> [u8; 16] {
        let date = birth_date.format("%Y-%m-%d").to_string();
        self.store.keyed_digest(
            REFUSAL_BIRTH_DATE_DOMAIN,
            &[provider.as_str().as_bytes(), id.as_bytes(), date.as_bytes()],
        )
    }

    /// Whether the birth date given with a patient's web refusal equals `birth_date` (e.g. the
    /// one in the identity store). `None` when the patient has no refusal with a birth date.
    pub async fn refusal_birth_date_matches(
        &self,
        provider: &ProviderId,
        provider_patient_id: &str,
        birth_date: NaiveDate,
    ) -> Result<Option<bool>> {
        let id = Self::normalized_id(provider_patient_id)?;
        let key = self.store.patient_key(provider.as_str(), &id);
        let Some(refusal) = self
            .meta
            .refusal_of(provider.as_str(), key.as_str())
            .await?
        else {
            return Ok(None);
        };
        Ok(refusal.birth_date_digest.map(|stored| {
            constant_time_eq(&stored, &self.birth_date_digest(provider, &id, birth_date))
        }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_refusal(
        &self,
        provider: &ProviderId,
        key: &PatientKey,
        refused_on: NaiveDate,
        requester: Requester,
        channel: RefusalChannel,
        birth_date_digest: Option<[u8; 16]>,
        actor: &str,
    ) -> Result<Receipt> {
        let year = self.clock.today().year();
        for _ in 0..DRAW_ATTEMPTS {
            let receipt_number = new_receipt_number(year)?;
            let outcome = self
                .meta
                .insert_refusal(
                    &NewRefusal {
                        receipt_number: receipt_number.clone(),
                        provider_id: provider.0.clone(),
                        patient_key: key.0.clone(),
                        refused_on,
                        requester,
                        channel,
                        birth_date_digest,
                        recorded_by: actor.to_owned(),
                    },
                    &event(
                        actor,
                        "refusal.recorded",
                        Some(provider),
                        Some(key.as_str()),
                        format!(
                            "receipt={receipt_number} refused_on={refused_on} requester={requester} channel={channel}"
                        ),
                    ),
                )
                .await?;
            match outcome {
                kiban_metadata::RefusalInsert::Recorded(r) => {
                    return Ok(Receipt {
                        receipt_number: r.receipt_number,
                        refused_on: r.refused_on,
                        newly_recorded: true,
                    });
                }
                kiban_metadata::RefusalInsert::AlreadyRefused(r) => {
                    self.meta
                        .log_collection_event(&event(
                            actor,
                            "refusal.repeated",
                            Some(provider),
                            Some(key.as_str()),
                            format!(
                                "receipt={} requester={requester} channel={channel}",
                                r.receipt_number
                            ),
                        ))
                        .await?;
                    return Ok(Receipt {
                        receipt_number: r.receipt_number,
                        refused_on: r.refused_on,
                        newly_recorded: false,
                    });
                }
                kiban_metadata::RefusalInsert::ReceiptNumberTaken => continue,
            }
        }
        Err(CollectionError::Exhausted {
            what: "receipt number",
        })
    }

    /// Imports a refusal CSV (`provider_patient_id,refused_on,by`, as `kiban synth` writes
    /// `<provider>/refusals.csv`; `by` is a [`Requester`] code, `bereaved` accepted too). Each
    /// refusal is recorded and logged on its own; one summary event closes the import.
    pub async fn import_refusals_csv(
        &self,
        provider: &ProviderId,
        input: impl Read,
        actor: &str,
    ) -> Result<ImportReport> {
        self.registration(provider).await?;
        let today = self.clock.today();
        let mut rows = CsvRows::open(input, REFUSAL_CSV_COLUMNS)?;
        let mut report = ImportReport::default();
        while let Some((line, row)) = rows.next_row()? {
            report.rows_read += 1;
            let parsed = row.and_then(|fields| {
                let id = normalize_patient_id(&fields[0]);
                if id.is_empty() {
                    return Err("provider_patient_id: empty".to_owned());
                }
                let refused_on = parse_past_date("refused_on", &fields[1], today)?;
                let by = fields[2].to_ascii_lowercase();
                let requester = match by.as_str() {
                    "bereaved" => Some(Requester::BereavedFamily),
                    code => Requester::from_code(code),
                }
                .ok_or_else(|| format!("by: not one of {}", codes_list(Requester::ALL)))?;
                Ok((id, refused_on, requester))
            });
            match parsed {
                Ok((id, refused_on, requester)) => {
                    let key = self.store.patient_key(provider.as_str(), &id);
                    let receipt = self
                        .record_refusal(
                            provider,
                            &key,
                            refused_on,
                            requester,
                            RefusalChannel::Csv,
                            None,
                            actor,
                        )
                        .await?;
                    if receipt.newly_recorded {
                        report.recorded += 1;
                    } else {
                        report.unchanged += 1;
                    }
                }
                Err(reason) => report.problems.push(RowProblem { line, reason }),
            }
        }
        self.meta
            .log_collection_event(&event(
                actor,
                "refusals.imported",
                Some(provider),
                None,
                format!(
                    "rows={} recorded={} unchanged={} rejected={}",
                    report.rows_read,
                    report.recorded,
                    report.unchanged,
                    report.problems.len()
                ),
            ))
            .await?;
        Ok(report)
    }

    /// Looks up a refusal by its receipt number (typed in any case, with or without spaces).
    /// Shows no identity data.
    pub async fn check_receipt(&self, receipt_number: &str) -> Result<Option<RefusalStatus>> {
        let Some(receipt) = normalize_receipt_number(receipt_number) else {
            return Ok(None);
        };
        let Some(refusal) = self.meta.refusal_by_receipt(&receipt).await? else {
            return Ok(None);
        };
        let provider = ProviderId(refusal.provider_id);
        let provider_name = self.registration(&provider).await?.name;
        Ok(Some(RefusalStatus {
            receipt_number: refusal.receipt_number,
            provider_id: provider,
            provider_name,
            refused_on: refusal.refused_on,
            recorded_at: refusal.recorded_at,
            requester: refusal.requester,
            channel: refusal.channel,
        }))
    }

    // ---- eligibility ----

    /// Whether data of one patient may be taken today.
    pub async fn eligibility(
        &self,
        provider: &ProviderId,
        patient: &PatientKey,
    ) -> Result<Eligibility> {
        let mut many = self
            .eligibility_many(provider, std::slice::from_ref(patient))
            .await?;
        Ok(many
            .remove(patient)
            .unwrap_or(Eligibility::Held { until: None }))
    }

    /// Whether data of each of many patients of one provider may be taken today: one query per
    /// 400 patients. Every key given is in the map.
    pub async fn eligibility_many(
        &self,
        provider: &ProviderId,
        patients: &[PatientKey],
    ) -> Result<HashMap<PatientKey, Eligibility>> {
        let keys: Vec<&str> = patients.iter().map(PatientKey::as_str).collect();
        let mut states = self
            .meta
            .collection_states(provider.as_str(), &keys)
            .await?;
        let today = self.clock.today();
        Ok(patients
            .iter()
            .map(|p| {
                let state = states.remove(p.as_str()).unwrap_or_default();
                let decided = Eligibility::decide(
                    &self.policy,
                    today,
                    state.notified_on,
                    state.refusal_receipt,
                );
                (p.clone(), decided)
            })
            .collect())
    }

    /// The notification basis of each of many patients of one provider (their first notice:
    /// day and means), for the acquisition record: one query per 400 patients. Patients
    /// without a recorded notification are absent from the map. Read-only; logs nothing.
    pub async fn notification_basis_many(
        &self,
        provider: &ProviderId,
        patients: &[PatientKey],
    ) -> Result<HashMap<PatientKey, NotificationBasis>> {
        let keys: Vec<&str> = patients.iter().map(PatientKey::as_str).collect();
        let found = self.meta.notifications_of(provider.as_str(), &keys).await?;
        Ok(found
            .into_values()
            .map(|n| {
                (
                    PatientKey(n.patient_key),
                    NotificationBasis {
                        notified_on: n.notified_on,
                        means: n.means,
                    },
                )
            })
            .collect())
    }

    /// The provider of a token, by the token's public id, while the token is still valid: not
    /// revoked, and its provider filed. `None` otherwise. For sessions opened with a bearer
    /// token ([`Collection::authenticate`]) that must end when the token is revoked.
    pub async fn provider_of_active_token(&self, token_id: &str) -> Result<Option<ProviderId>> {
        let Some(token) = self.meta.provider_token(token_id).await? else {
            return Ok(None);
        };
        if token.revoked_at.is_some() {
            return Ok(None);
        }
        let filed = self
            .meta
            .provider_registration(&token.provider_id)
            .await?
            .is_some_and(|r| r.filing_status == FilingStatus::Filed);
        Ok(filed.then_some(ProviderId(token.provider_id)))
    }

    /// Every refused patient, to exclude their held data from releases and analyses.
    pub async fn refused_patient_keys(&self) -> Result<HashSet<(ProviderId, PatientKey)>> {
        Ok(self
            .meta
            .refused_patient_keys()
            .await?
            .into_iter()
            .map(|(p, k)| (ProviderId(p), PatientKey(k)))
            .collect())
    }

    // ---- audit and idempotency ----

    /// The most recent collection events first.
    pub async fn events(&self, limit: i64) -> Result<Vec<CollectionEvent>> {
        Ok(self.meta.collection_events(None, limit).await?)
    }

    /// The most recent collection events of one provider first.
    pub async fn provider_events(
        &self,
        provider: &ProviderId,
        limit: i64,
    ) -> Result<Vec<CollectionEvent>> {
        Ok(self
            .meta
            .collection_events(Some(provider.as_str()), limit)
            .await?)
    }

    /// Remembers the response to an intake API request with an idempotency key; the first
    /// response stored under the key wins and is returned.
    pub async fn remember_response(
        &self,
        provider: &ProviderId,
        idempotency_key: &str,
        request_sha256: &str,
        status_code: u16,
        response_body: &str,
    ) -> Result<StoredResponse> {
        Ok(self
            .meta
            .remember_response(
                provider.as_str(),
                idempotency_key,
                request_sha256,
                status_code,
                response_body,
            )
            .await?)
    }

    /// The response stored under an idempotency key of a provider.
    pub async fn recall_response(
        &self,
        provider: &ProviderId,
        idempotency_key: &str,
    ) -> Result<Option<StoredResponse>> {
        Ok(self
            .meta
            .recall_response(provider.as_str(), idempotency_key)
            .await?)
    }
}

fn new_token_row(token: &IssuedToken, label: Option<&str>) -> NewProviderToken {
    NewProviderToken {
        token_id: token.token_id().to_owned(),
        provider_id: token.provider_id().0.clone(),
        token_sha256: token.sha256(),
        label: label.map(str::to_owned),
    }
}

fn codes_list<T: fmt::Display>(all: &[T]) -> String {
    all.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
