//! Collection registers (R-C1..R-C4): provider registration and intake API tokens, the opt-out
//! notification register, refusals, the collection audit log and idempotency keys.
//!
//! Patients appear only as the store's keyed patient key (hex), tokens only as their SHA-256,
//! birth dates only inside a keyed digest. Every state-changing method takes the
//! [`NewCollectionEvent`] that describes it and writes it in the same transaction, so the audit
//! log never misses a change that was made.

use std::collections::HashMap;

use chrono::NaiveDate;
use kiban_model::ProviderKind;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use crate::{BATCH, Metadata, MetadataError, NewProvider, Result, now};

const DATE_FORMAT: &str = "%Y-%m-%d";

macro_rules! stored_code {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable code stored in the database and used in files and URLs.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// Parses the stable code.
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            pub(crate) fn parse_stored(code: &str) -> Result<Self> {
                Self::from_code(code).ok_or_else(|| MetadataError::Invalid {
                    what: $what,
                    detail: code.to_owned(),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

stored_code!(
    /// Status of the provider's filing (届出) with the minister for providing data under the
    /// opt-out scheme.
    FilingStatus, "filing status" {
        /// Not filed yet.
        Pending = "pending",
        /// Filed.
        Filed = "filed",
        /// Withdrawn (the provider stopped providing).
        Withdrawn = "withdrawn",
    }
);

stored_code!(
    /// How a patient was notified of the provision of their data.
    NotificationMeans, "notification means" {
        /// Letter handed over or mailed.
        Letter = "letter",
        /// E-mail.
        Email = "email",
        /// Poster in the facility (returning patients).
        Poster = "poster",
        /// The provider's web site (returning patients).
        Web = "web",
    }
);

stored_code!(
    /// Who refused (opted out).
    Requester, "refusal requester" {
        /// The patient.
        Patient = "patient",
        /// A bereaved family member of a deceased patient.
        BereavedFamily = "bereaved_family",
        /// A guardian of a child under 16.
        Guardian = "guardian",
        /// The provider, on the patient's behalf.
        Provider = "provider",
        /// Operator staff, on the caller's behalf (the caller's relation not recorded).
        Staff = "staff",
    }
);

stored_code!(
    /// Through which channel a refusal reached kiban.
    RefusalChannel, "refusal channel" {
        /// The patient-facing web page.
        Web = "web",
        /// The provider's intake API.
        Api = "api",
        /// A CSV file sent by the provider.
        Csv = "csv",
        /// A phone call to operator staff.
        Phone = "phone",
    }
);

/// A provider with its registration details (filing status and contact).
#[derive(Debug, Clone, Serialize)]
pub struct ProviderRegistration {
    /// Provider id.
    pub id: String,
    /// Name in Japanese.
    pub name: String,
    /// Name in English.
    pub name_en: Option<String>,
    /// Kind of provider.
    pub kind: ProviderKind,
    /// Filing status.
    pub filing_status: FilingStatus,
    /// Operator-facing contact of the organisation.
    pub contact: Option<String>,
    /// Registration time (RFC 3339).
    pub created_at: String,
}

/// An intake API token to store: only its SHA-256.
#[derive(Debug, Clone)]
pub struct NewProviderToken {
    /// Public token id (part of the token, used to find its row).
    pub token_id: String,
    /// Provider the token authenticates.
    pub provider_id: String,
    /// SHA-256 of the whole token.
    pub token_sha256: [u8; 32],
    /// Free label (e.g. `rotated`), never a secret.
    pub label: Option<String>,
}

/// A stored intake API token.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderToken {
    /// Public token id.
    pub token_id: String,
    /// Provider the token authenticates.
    pub provider_id: String,
    /// SHA-256 of the whole token.
    #[serde(skip)]
    pub token_sha256: [u8; 32],
    /// Free label.
    pub label: Option<String>,
    /// Issue time (RFC 3339).
    pub created_at: String,
    /// Revocation time (RFC 3339), if revoked.
    pub revoked_at: Option<String>,
}

/// One notification to record.
#[derive(Debug, Clone)]
pub struct NotificationRecord {
    /// Provider id.
    pub provider_id: String,
    /// The patient's key.
    pub patient_key: String,
    /// Day the patient was notified.
    pub notified_on: NaiveDate,
    /// How.
    pub means: NotificationMeans,
    /// Who recorded it.
    pub recorded_by: String,
}

/// A recorded notification (the earliest one of the patient at the provider).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Provider id.
    pub provider_id: String,
    /// The patient's key.
    pub patient_key: String,
    /// Day of the first notice.
    pub notified_on: NaiveDate,
    /// How the first notice was given.
    pub means: NotificationMeans,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
    /// Who recorded it.
    pub recorded_by: String,
}

/// A refusal to record.
#[derive(Debug, Clone)]
pub struct NewRefusal {
    /// Receipt number given to the person.
    pub receipt_number: String,
    /// Provider id.
    pub provider_id: String,
    /// The patient's key.
    pub patient_key: String,
    /// Day of the refusal.
    pub refused_on: NaiveDate,
    /// Who refused.
    pub requester: Requester,
    /// Through which channel.
    pub channel: RefusalChannel,
    /// Keyed digest of (provider, patient id, birth date), when a birth date was given.
    pub birth_date_digest: Option<[u8; 16]>,
    /// Who recorded it.
    pub recorded_by: String,
}

/// A recorded refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Receipt number.
    pub receipt_number: String,
    /// Provider id.
    pub provider_id: String,
    /// The patient's key.
    pub patient_key: String,
    /// Day of the refusal.
    pub refused_on: NaiveDate,
    /// Who refused.
    pub requester: Requester,
    /// Through which channel.
    pub channel: RefusalChannel,
    /// Keyed digest of (provider, patient id, birth date), when a birth date was given.
    #[serde(skip)]
    pub birth_date_digest: Option<[u8; 16]>,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
    /// Who recorded it.
    pub recorded_by: String,
}

/// Outcome of [`Metadata::insert_refusal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalInsert {
    /// Recorded now (with its event).
    Recorded(Refusal),
    /// The patient had already refused at this provider: the earlier refusal, unchanged.
    AlreadyRefused(Refusal),
    /// The receipt number is taken by another refusal; nothing was written. Draw another.
    ReceiptNumberTaken,
}

/// What the registers hold about one patient of a provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientCollectionState {
    /// Day of the first notice, if notified.
    pub notified_on: Option<NaiveDate>,
    /// Receipt number of the refusal, if refused.
    pub refusal_receipt: Option<String>,
}

/// Notifications and refusals held per provider.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionCounts {
    /// Provider id.
    pub provider_id: String,
    /// Patients notified.
    pub notifications: i64,
    /// Patients who refused.
    pub refusals: i64,
}

/// An audit event to write.
#[derive(Debug, Clone)]
pub struct NewCollectionEvent {
    /// Who acted (`staff:NAME`, `provider:ID`, `web`, `cli`).
    pub actor: String,
    /// What happened (`provider.added`, `refusal.recorded`, ...).
    pub action: String,
    /// Provider concerned.
    pub provider_id: Option<String>,
    /// Digest of the subject (patient key, token id), never identity data.
    pub subject_digest: Option<String>,
    /// Details without identity data.
    pub detail: String,
}

/// A written audit event.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionEvent {
    /// Sequence number.
    pub id: i64,
    /// Time (RFC 3339).
    pub at: String,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// Provider concerned.
    pub provider_id: Option<String>,
    /// Digest of the subject.
    pub subject_digest: Option<String>,
    /// Details.
    pub detail: String,
}

/// A response remembered under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredResponse {
    /// SHA-256 (hex) of the request that produced it; a different request under the same key
    /// is a client error.
    pub request_sha256: String,
    /// HTTP status code.
    pub status_code: u16,
    /// Response body.
    pub response_body: String,
    /// When it was stored (RFC 3339).
    pub created_at: String,
}

/// `($1, $2, ...), (...)` for `rows` rows of `columns` values. QueryBuilder is not used: over
/// `sqlx::Any` it writes `?` placeholders, which PostgreSQL rejects.
pub(crate) fn value_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({row})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn date_text(date: NaiveDate) -> String {
    date.format(DATE_FORMAT).to_string()
}

pub(crate) fn parse_date(what: &'static str, text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text, DATE_FORMAT).map_err(|_| MetadataError::Invalid {
        what,
        detail: "not a YYYY-MM-DD date".into(),
    })
}

fn fixed_bytes<const N: usize>(what: &'static str, bytes: Vec<u8>) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| MetadataError::Invalid {
        what,
        detail: "wrong length".into(),
    })
}

async fn insert_event(tx: &mut Transaction<'_, Any>, event: &NewCollectionEvent) -> Result<()> {
    sqlx::query(
        "INSERT INTO collection_events (at, actor, action, provider_id, subject_digest, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now())
    .bind(&event.actor)
    .bind(&event.action)
    .bind(event.provider_id.clone())
    .bind(event.subject_digest.clone())
    .bind(&event.detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const REGISTRATION_SELECT: &str =
    "SELECT id, name, name_en, kind, filing_status, contact, created_at FROM providers";

fn registration_from_row(r: &AnyRow) -> Result<ProviderRegistration> {
    let kind: String = r.try_get("kind")?;
    let status: String = r.try_get("filing_status")?;
    Ok(ProviderRegistration {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        name_en: r.try_get("name_en")?,
        kind: ProviderKind::from_code(&kind).ok_or(MetadataError::Invalid {
            what: "provider kind",
            detail: kind.clone(),
        })?,
        filing_status: FilingStatus::parse_stored(&status)?,
        contact: r.try_get("contact")?,
        created_at: r.try_get("created_at")?,
    })
}

const TOKEN_SELECT: &str = "SELECT token_id, provider_id, token_sha256, label, created_at, revoked_at FROM provider_tokens";

fn token_from_row(r: &AnyRow) -> Result<ProviderToken> {
    Ok(ProviderToken {
        token_id: r.try_get("token_id")?,
        provider_id: r.try_get("provider_id")?,
        token_sha256: fixed_bytes("token hash", r.try_get("token_sha256")?)?,
        label: r.try_get("label")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

const REFUSAL_SELECT: &str = "SELECT receipt_number, provider_id, patient_key, refused_on,
    requester, channel, birth_date_digest, recorded_at, recorded_by FROM refusals";

fn refusal_from_row(r: &AnyRow) -> Result<Refusal> {
    let refused_on: String = r.try_get("refused_on")?;
    let requester: String = r.try_get("requester")?;
    let channel: String = r.try_get("channel")?;
    let digest: Option<Vec<u8>> = r.try_get("birth_date_digest")?;
    Ok(Refusal {
        receipt_number: r.try_get("receipt_number")?,
        provider_id: r.try_get("provider_id")?,
        patient_key: r.try_get("patient_key")?,
        refused_on: parse_date("refusal date", &refused_on)?,
        requester: Requester::parse_stored(&requester)?,
        channel: RefusalChannel::parse_stored(&channel)?,
        birth_date_digest: digest
            .map(|d| fixed_bytes("birth date digest", d))
            .transpose()?,
        recorded_at: r.try_get("recorded_at")?,
        recorded_by: r.try_get("recorded_by")?,
    })
}

impl Metadata {
    /// The next free provider id in the `prov-NNN` sequence that `kiban synth` also uses
    /// (`prov-001`, `prov-002`, ...; more digits once past 999).
    pub async fn next_provider_id(&self) -> Result<String> {
        let rows = sqlx::query("SELECT id FROM providers WHERE id LIKE 'prov-%'")
            .fetch_all(&self.pool)
            .await?;
        let mut highest = 0u64;
        for row in rows {
            let id: String = row.try_get("id")?;
            if let Some(n) = id.strip_prefix("prov-").and_then(|n| n.parse::<u64>().ok()) {
                highest = highest.max(n);
            }
        }
        Ok(format!("prov-{:03}", highest + 1))
    }

    /// Registers a new provider with its registration details and first intake token, in one
    /// transaction with `event`. Returns false (writing nothing) when the id is taken.
    pub async fn register_provider(
        &self,
        provider: &NewProvider,
        filing_status: FilingStatus,
        contact: Option<&str>,
        token: &NewProviderToken,
        event: &NewCollectionEvent,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO providers (id, name, name_en, kind, created_at, filing_status, contact)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&provider.id)
        .bind(&provider.name)
        .bind(provider.name_en.clone())
        .bind(provider.kind.code())
        .bind(now())
        .bind(filing_status.code())
        .bind(contact.map(str::to_owned))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_token(&mut tx, token).await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One provider with its registration details.
    pub async fn provider_registration(
        &self,
        provider_id: &str,
    ) -> Result<Option<ProviderRegistration>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "{REGISTRATION_SELECT} WHERE id = $1"
        )))
        .bind(provider_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(registration_from_row).transpose()
    }

    /// Every provider with its registration details, by id.
    pub async fn provider_registrations(&self) -> Result<Vec<ProviderRegistration>> {
        let rows = sqlx::query(AssertSqlSafe(format!("{REGISTRATION_SELECT} ORDER BY id")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(registration_from_row).collect()
    }

    /// Sets a provider's filing status and contact. Errors with `NotFound` for an unknown id.
    pub async fn update_provider_registration(
        &self,
        provider_id: &str,
        filing_status: FilingStatus,
        contact: Option<&str>,
        event: &NewCollectionEvent,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let updated =
            sqlx::query("UPDATE providers SET filing_status = $1, contact = $2 WHERE id = $3")
                .bind(filing_status.code())
                .bind(contact.map(str::to_owned))
                .bind(provider_id)
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(MetadataError::NotFound {
                what: "provider",
                id: provider_id.to_owned(),
            });
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new intake token. With `revoke_others`, every other unrevoked token of the
    /// provider is revoked in the same transaction (rotation); returns how many were revoked.
    pub async fn insert_provider_token(
        &self,
        token: &NewProviderToken,
        revoke_others: bool,
        event: &NewCollectionEvent,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        insert_token(&mut tx, token).await?;
        let mut revoked = 0;
        if revoke_others {
            revoked = sqlx::query(
                "UPDATE provider_tokens SET revoked_at = $1
                 WHERE provider_id = $2 AND token_id <> $3 AND revoked_at IS NULL",
            )
            .bind(now())
            .bind(&token.provider_id)
            .bind(&token.token_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// One token by its public id.
    pub async fn provider_token(&self, token_id: &str) -> Result<Option<ProviderToken>> {
        let row = sqlx::query(AssertSqlSafe(format!("{TOKEN_SELECT} WHERE token_id = $1")))
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Every token of a provider, oldest first.
    pub async fn provider_tokens(&self, provider_id: &str) -> Result<Vec<ProviderToken>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{TOKEN_SELECT} WHERE provider_id = $1 ORDER BY created_at, token_id"
        )))
        .bind(provider_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes one token. Returns false (writing no event) if it is unknown or already revoked.
    pub async fn revoke_provider_token(
        &self,
        token_id: &str,
        event: &NewCollectionEvent,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE provider_tokens SET revoked_at = $1 WHERE token_id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(token_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records notifications, keeping for each patient the **earliest** `notified_on` (and its
    /// means): the waiting period counts from the first notice, so a later notice never
    /// postpones eligibility and an earlier one recorded late brings it forward. Writes
    /// `event` in the same transaction. Returns the number of records given.
    pub async fn record_notifications(
        &self,
        records: &[NotificationRecord],
        event: &NewCollectionEvent,
    ) -> Result<u64> {
        // One statement must not touch a row twice (PostgreSQL refuses): merge duplicates first.
        let mut earliest: HashMap<(&str, &str), &NotificationRecord> = HashMap::new();
        for r in records {
            earliest
                .entry((&r.provider_id, &r.patient_key))
                .and_modify(|e| {
                    if r.notified_on < e.notified_on {
                        *e = r;
                    }
                })
                .or_insert(r);
        }
        let mut merged: Vec<&NotificationRecord> = earliest.into_values().collect();
        merged.sort_by(|a, b| {
            (&a.provider_id, &a.patient_key).cmp(&(&b.provider_id, &b.patient_key))
        });
        let recorded_at = now();
        let mut tx = self.pool.begin().await?;
        for batch in merged.chunks(BATCH) {
            // ISO dates compare correctly as text.
            let sql = format!(
                "INSERT INTO notifications (provider_id, patient_key, notified_on, means, recorded_at, recorded_by)
                 VALUES {} ON CONFLICT (provider_id, patient_key) DO UPDATE SET
                  means = CASE WHEN excluded.notified_on < notifications.notified_on
                          THEN excluded.means ELSE notifications.means END,
                  recorded_at = CASE WHEN excluded.notified_on < notifications.notified_on
                          THEN excluded.recorded_at ELSE notifications.recorded_at END,
                  recorded_by = CASE WHEN excluded.notified_on < notifications.notified_on
                          THEN excluded.recorded_by ELSE notifications.recorded_by END,
                  notified_on = CASE WHEN excluded.notified_on < notifications.notified_on
                          THEN excluded.notified_on ELSE notifications.notified_on END",
                self.bulk_rows(batch.len(), 6)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for r in batch {
                q = q
                    .bind(r.provider_id.clone())
                    .bind(r.patient_key.clone())
                    .bind(date_text(r.notified_on))
                    .bind(r.means.code())
                    .bind(recorded_at.clone())
                    .bind(r.recorded_by.clone());
            }
            q.execute(&mut *tx).await?;
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(records.len() as u64)
    }

    /// The recorded notification of a patient at a provider.
    pub async fn notification(
        &self,
        provider_id: &str,
        patient_key: &str,
    ) -> Result<Option<Notification>> {
        let row = sqlx::query(
            "SELECT provider_id, patient_key, notified_on, means, recorded_at, recorded_by
             FROM notifications WHERE provider_id = $1 AND patient_key = $2",
        )
        .bind(provider_id)
        .bind(patient_key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let notified_on: String = r.try_get("notified_on")?;
        let means: String = r.try_get("means")?;
        Ok(Some(Notification {
            provider_id: r.try_get("provider_id")?,
            patient_key: r.try_get("patient_key")?,
            notified_on: parse_date("notification date", &notified_on)?,
            means: NotificationMeans::parse_stored(&means)?,
            recorded_at: r.try_get("recorded_at")?,
            recorded_by: r.try_get("recorded_by")?,
        }))
    }

    /// Records a refusal and `event` in one transaction, unless the patient already refused at
    /// this provider (then the earlier refusal is returned and nothing is written).
    pub async fn insert_refusal(
        &self,
        refusal: &NewRefusal,
        event: &NewCollectionEvent,
    ) -> Result<RefusalInsert> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO refusals (receipt_number, provider_id, patient_key, refused_on, requester,
                 channel, birth_date_digest, recorded_at, recorded_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(&refusal.receipt_number)
        .bind(&refusal.provider_id)
        .bind(&refusal.patient_key)
        .bind(date_text(refusal.refused_on))
        .bind(refusal.requester.code())
        .bind(refusal.channel.code())
        .bind(refusal.birth_date_digest.map(|d| d.to_vec()))
        .bind(now())
        .bind(&refusal.recorded_by)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            insert_event(&mut tx, event).await?;
        }
        let existing = sqlx::query(AssertSqlSafe(format!(
            "{REFUSAL_SELECT} WHERE provider_id = $1 AND patient_key = $2"
        )))
        .bind(&refusal.provider_id)
        .bind(&refusal.patient_key)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match (inserted.rows_affected(), existing) {
            (1, Some(row)) => RefusalInsert::Recorded(refusal_from_row(&row)?),
            (_, Some(row)) => RefusalInsert::AlreadyRefused(refusal_from_row(&row)?),
            (_, None) => RefusalInsert::ReceiptNumberTaken,
        })
    }

    /// A refusal by its receipt number.
    pub async fn refusal_by_receipt(&self, receipt_number: &str) -> Result<Option<Refusal>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "{REFUSAL_SELECT} WHERE receipt_number = $1"
        )))
        .bind(receipt_number)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(refusal_from_row).transpose()
    }

    /// The refusal of a patient at a provider.
    pub async fn refusal_of(
        &self,
        provider_id: &str,
        patient_key: &str,
    ) -> Result<Option<Refusal>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "{REFUSAL_SELECT} WHERE provider_id = $1 AND patient_key = $2"
        )))
        .bind(provider_id)
        .bind(patient_key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(refusal_from_row).transpose()
    }

    /// Refusals, newest first, optionally of one provider.
    pub async fn refusals(&self, provider_id: Option<&str>, limit: i64) -> Result<Vec<Refusal>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{REFUSAL_SELECT} WHERE ($1 IS NULL OR provider_id = $1)
             ORDER BY recorded_at DESC, receipt_number LIMIT $2"
        )))
        .bind(provider_id.map(str::to_owned))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(refusal_from_row).collect()
    }

    /// Every refused patient as `(provider id, patient key)`.
    pub async fn refused_patient_keys(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT provider_id, patient_key FROM refusals")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("provider_id")?, r.try_get("patient_key")?)))
            .collect()
    }

    /// Notification date and refusal of many patients of one provider, in one query per
    /// 400 keys. Patients the registers do not know are absent from the map.
    pub async fn collection_states(
        &self,
        provider_id: &str,
        patient_keys: &[&str],
    ) -> Result<HashMap<String, PatientCollectionState>> {
        let mut states: HashMap<String, PatientCollectionState> = HashMap::new();
        for batch in patient_keys.chunks(BATCH) {
            // PostgreSQL: $1 is the provider, $2.. the keys, each bound once and used by both
            // registers. SQLite: anonymous `?` (see `bulk_rows`), so each half binds its own.
            let (provider, keys, halves) = if self.sqlite {
                ("?".to_owned(), vec!["?"; batch.len()].join(", "), 2)
            } else {
                let keys = (2..batch.len() + 2)
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                ("$1".to_owned(), keys, 1)
            };
            let sql = format!(
                "SELECT patient_key, 'n' AS register, notified_on AS value FROM notifications
                 WHERE provider_id = {provider} AND patient_key IN ({keys})
                 UNION ALL
                 SELECT patient_key, 'r' AS register, receipt_number AS value FROM refusals
                 WHERE provider_id = {provider} AND patient_key IN ({keys})"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for _ in 0..halves {
                q = q.bind(provider_id.to_owned());
                for key in batch {
                    q = q.bind(key.to_string());
                }
            }
            for row in q.fetch_all(&self.pool).await? {
                let key: String = row.try_get("patient_key")?;
                let register: String = row.try_get("register")?;
                let value: String = row.try_get("value")?;
                let state = states.entry(key).or_default();
                if register == "n" {
                    state.notified_on = Some(parse_date("notification date", &value)?);
                } else {
                    state.refusal_receipt = Some(value);
                }
            }
        }
        Ok(states)
    }

    /// Notifications and refusals held per provider (providers with neither are absent).
    pub async fn collection_counts(&self) -> Result<Vec<CollectionCounts>> {
        let rows = sqlx::query(
            "SELECT p.id,
                    (SELECT COUNT(*) FROM notifications n WHERE n.provider_id = p.id) AS notified,
                    (SELECT COUNT(*) FROM refusals r WHERE r.provider_id = p.id) AS refused
             FROM providers p ORDER BY p.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = Vec::new();
        for r in rows {
            let c = CollectionCounts {
                provider_id: r.try_get("id")?,
                notifications: r.try_get("notified")?,
                refusals: r.try_get("refused")?,
            };
            if c.notifications > 0 || c.refusals > 0 {
                counts.push(c);
            }
        }
        Ok(counts)
    }

    /// Writes one audit event on its own (for steps that change nothing else, such as a failed
    /// verification or a repeated refusal).
    pub async fn log_collection_event(&self, event: &NewCollectionEvent) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Audit events, newest first, optionally of one provider.
    pub async fn collection_events(
        &self,
        provider_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CollectionEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, provider_id, subject_digest, detail FROM collection_events
             WHERE ($1 IS NULL OR provider_id = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(provider_id.map(str::to_owned))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CollectionEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    provider_id: r.try_get("provider_id")?,
                    subject_digest: r.try_get("subject_digest")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Remembers the response to a request carrying an idempotency key. If a response is
    /// already stored under the key, it is kept and returned (the first answer wins).
    pub async fn remember_response(
        &self,
        provider_id: &str,
        idem_key: &str,
        request_sha256: &str,
        status_code: u16,
        response_body: &str,
    ) -> Result<StoredResponse> {
        sqlx::query(
            "INSERT INTO idempotency_keys (provider_id, idem_key, request_sha256, status_code,
                 response_body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider_id, idem_key) DO NOTHING",
        )
        .bind(provider_id)
        .bind(idem_key)
        .bind(request_sha256)
        .bind(i64::from(status_code))
        .bind(response_body)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.recall_response(provider_id, idem_key)
            .await?
            .ok_or_else(|| MetadataError::NotFound {
                what: "idempotency key",
                id: idem_key.to_owned(),
            })
    }

    /// The response stored under an idempotency key of a provider.
    pub async fn recall_response(
        &self,
        provider_id: &str,
        idem_key: &str,
    ) -> Result<Option<StoredResponse>> {
        let row = sqlx::query(
            "SELECT request_sha256, status_code, response_body, created_at FROM idempotency_keys
             WHERE provider_id = $1 AND idem_key = $2",
        )
        .bind(provider_id)
        .bind(idem_key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let status: i64 = r.try_get("status_code")?;
        Ok(Some(StoredResponse {
            request_sha256: r.try_get("request_sha256")?,
            status_code: u16::try_from(status).map_err(|_| MetadataError::Invalid {
                what: "stored status code",
                detail: status.to_string(),
            })?,
            response_body: r.try_get("response_body")?,
            created_at: r.try_get("created_at")?,
        }))
    }
}

async fn insert_token(tx: &mut Transaction<'_, Any>, token: &NewProviderToken) -> Result<()> {
    sqlx::query(
        "INSERT INTO provider_tokens (token_id, provider_id, token_sha256, label, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&token.token_id)
    .bind(&token.provider_id)
    .bind(token.token_sha256.to_vec())
    .bind(token.label.clone())
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh database: SQLite in a temporary directory, or, when `KIBAN_TEST_POSTGRES_URL`
    /// is set, that PostgreSQL database emptied first (the tests then run one at a time on it).
    async fn fresh_sqlite() -> (tempfile::TempDir, Metadata) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_in_dir(dir.path()).await.unwrap();
        add_first_provider(&meta).await;
        (dir, meta)
    }

    async fn fresh_postgres(url: &str) -> Metadata {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        sqlx::query("DROP SCHEMA public CASCADE")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("CREATE SCHEMA public")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let meta = Metadata::connect(url).await.unwrap();
        add_first_provider(&meta).await;
        meta
    }

    fn event(action: &str, provider: Option<&str>) -> NewCollectionEvent {
        NewCollectionEvent {
            actor: "staff:test".into(),
            action: action.into(),
            provider_id: provider.map(str::to_owned),
            subject_digest: None,
            detail: String::new(),
        }
    }

    fn token(id: &str, provider: &str, byte: u8) -> NewProviderToken {
        NewProviderToken {
            token_id: id.into(),
            provider_id: provider.into(),
            token_sha256: [byte; 32],
            label: None,
        }
    }

    async fn add_first_provider(meta: &Metadata) {
        assert_eq!(meta.next_provider_id().await.unwrap(), "prov-001");
        let provider = NewProvider {
            id: "prov-001".into(),
            name: "東都大学病院".into(),
            name_en: None,
            kind: ProviderKind::UniversityHospital,
        };
        let added = meta
            .register_provider(
                &provider,
                FilingStatus::Filed,
                Some("info@example.org"),
                &token("t1", "prov-001", 1),
                &event("provider.added", Some("prov-001")),
            )
            .await
            .unwrap();
        assert!(added);
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, DATE_FORMAT).unwrap()
    }

    async fn check_providers_register_once_and_ids_follow_the_sequence(meta: &Metadata) {
        let again = meta
            .register_provider(
                &NewProvider {
                    id: "prov-001".into(),
                    name: "other".into(),
                    name_en: None,
                    kind: ProviderKind::Clinic,
                },
                FilingStatus::Pending,
                None,
                &token("t2", "prov-001", 2),
                &event("provider.added", Some("prov-001")),
            )
            .await
            .unwrap();
        assert!(!again);
        assert!(meta.provider_token("t2").await.unwrap().is_none());
        assert_eq!(meta.next_provider_id().await.unwrap(), "prov-002");
        let reg = meta
            .provider_registration("prov-001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reg.name, "東都大学病院");
        assert_eq!(reg.filing_status, FilingStatus::Filed);
        assert_eq!(reg.contact.as_deref(), Some("info@example.org"));
        meta.update_provider_registration(
            "prov-001",
            FilingStatus::Withdrawn,
            None,
            &event("provider.updated", Some("prov-001")),
        )
        .await
        .unwrap();
        let regs = meta.provider_registrations().await.unwrap();
        assert_eq!(regs[0].filing_status, FilingStatus::Withdrawn);
        assert!(
            meta.update_provider_registration(
                "prov-404",
                FilingStatus::Filed,
                None,
                &event("x", None)
            )
            .await
            .is_err()
        );
        // The provider the lib's upsert adds gets the default status.
        meta.upsert_provider(&NewProvider {
            id: "prov-017".into(),
            name: "n".into(),
            name_en: None,
            kind: ProviderKind::School,
        })
        .await
        .unwrap();
        let reg = meta
            .provider_registration("prov-017")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reg.filing_status, FilingStatus::Filed);
        assert_eq!(meta.next_provider_id().await.unwrap(), "prov-018");
    }

    async fn check_tokens_rotate_and_revoke(meta: &Metadata) {
        meta.insert_provider_token(
            &token("t2", "prov-001", 2),
            false,
            &event("token.issued", None),
        )
        .await
        .unwrap();
        let revoked = meta
            .insert_provider_token(
                &token("t3", "prov-001", 3),
                true,
                &event("token.rotated", None),
            )
            .await
            .unwrap();
        assert_eq!(revoked, 2);
        let tokens = meta.provider_tokens("prov-001").await.unwrap();
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens.iter().filter(|t| t.revoked_at.is_none()).count(), 1);
        let t3 = meta.provider_token("t3").await.unwrap().unwrap();
        assert_eq!(t3.token_sha256, [3; 32]);
        assert!(
            meta.revoke_provider_token("t3", &event("token.revoked", None))
                .await
                .unwrap()
        );
        assert!(
            !meta
                .revoke_provider_token("t3", &event("token.revoked", None))
                .await
                .unwrap()
        );
        assert!(
            meta.provider_token("t3")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        // Events: provider.added, token.issued, token.rotated, token.revoked (once).
        assert_eq!(meta.collection_events(None, 100).await.unwrap().len(), 4);
    }

    async fn check_notifications_keep_the_earliest_date(meta: &Metadata) {
        let rec = |key: &str, on: &str, means| NotificationRecord {
            provider_id: "prov-001".into(),
            patient_key: key.into(),
            notified_on: date(on),
            means,
            recorded_by: "cli".into(),
        };
        meta.record_notifications(
            &[
                rec("aa", "2026-03-10", NotificationMeans::Letter),
                rec("aa", "2026-02-01", NotificationMeans::Poster),
                rec("bb", "2026-03-01", NotificationMeans::Email),
            ],
            &event("notifications.imported", Some("prov-001")),
        )
        .await
        .unwrap();
        let n = meta.notification("prov-001", "aa").await.unwrap().unwrap();
        assert_eq!(
            (n.notified_on, n.means),
            (date("2026-02-01"), NotificationMeans::Poster)
        );
        // A later notice does not move it; an earlier one does.
        meta.record_notifications(
            &[rec("aa", "2026-04-01", NotificationMeans::Web)],
            &event("n", None),
        )
        .await
        .unwrap();
        meta.record_notifications(
            &[rec("bb", "2026-01-15", NotificationMeans::Letter)],
            &event("n", None),
        )
        .await
        .unwrap();
        let a = meta.notification("prov-001", "aa").await.unwrap().unwrap();
        assert_eq!(
            (a.notified_on, a.means),
            (date("2026-02-01"), NotificationMeans::Poster)
        );
        let b = meta.notification("prov-001", "bb").await.unwrap().unwrap();
        assert_eq!(
            (b.notified_on, b.means),
            (date("2026-01-15"), NotificationMeans::Letter)
        );
        assert!(meta.notification("prov-001", "cc").await.unwrap().is_none());
    }

    async fn check_refusals_are_recorded_once_and_states_come_in_batches(meta: &Metadata) {
        let refusal = |receipt: &str, key: &str| NewRefusal {
            receipt_number: receipt.into(),
            provider_id: "prov-001".into(),
            patient_key: key.into(),
            refused_on: date("2026-03-01"),
            requester: Requester::Guardian,
            channel: RefusalChannel::Web,
            birth_date_digest: Some([7; 16]),
            recorded_by: "web".into(),
        };
        let first = meta
            .insert_refusal(&refusal("OPT-1", "aa"), &event("refusal.recorded", None))
            .await
            .unwrap();
        let RefusalInsert::Recorded(first) = first else {
            panic!("not recorded: {first:?}")
        };
        assert_eq!(first.birth_date_digest, Some([7; 16]));
        let again = meta
            .insert_refusal(&refusal("OPT-2", "aa"), &event("refusal.recorded", None))
            .await
            .unwrap();
        assert_eq!(again, RefusalInsert::AlreadyRefused(first.clone()));
        let taken = meta
            .insert_refusal(&refusal("OPT-1", "bb"), &event("refusal.recorded", None))
            .await
            .unwrap();
        assert_eq!(taken, RefusalInsert::ReceiptNumberTaken);
        assert_eq!(
            meta.refusal_by_receipt("OPT-1").await.unwrap(),
            Some(first.clone())
        );
        assert!(meta.refusal_by_receipt("OPT-2").await.unwrap().is_none());
        assert_eq!(
            meta.refusal_of("prov-001", "aa").await.unwrap(),
            Some(first)
        );
        assert_eq!(meta.refusals(Some("prov-001"), 10).await.unwrap().len(), 1);
        assert_eq!(
            meta.refused_patient_keys().await.unwrap(),
            vec![("prov-001".to_string(), "aa".to_string())]
        );
        // Only the first insert wrote an event (plus provider.added).
        assert_eq!(
            meta.collection_events(Some("prov-001"), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(meta.collection_events(None, 10).await.unwrap().len(), 2);

        let many: Vec<String> = (0..1000).map(|i| format!("k{i:04}")).collect();
        let records: Vec<NotificationRecord> = many
            .iter()
            .take(900)
            .map(|k| NotificationRecord {
                provider_id: "prov-001".into(),
                patient_key: k.clone(),
                notified_on: date("2026-01-01"),
                means: NotificationMeans::Letter,
                recorded_by: "cli".into(),
            })
            .collect();
        meta.record_notifications(&records, &event("n", None))
            .await
            .unwrap();
        meta.insert_refusal(&refusal("OPT-3", "k0005"), &event("r", None))
            .await
            .unwrap();
        let mut keys: Vec<&str> = many.iter().map(String::as_str).collect();
        keys.push("aa");
        let states = meta.collection_states("prov-001", &keys).await.unwrap();
        assert_eq!(states.len(), 901);
        assert_eq!(states["k0005"].refusal_receipt.as_deref(), Some("OPT-3"));
        assert_eq!(states["k0005"].notified_on, Some(date("2026-01-01")));
        assert_eq!(states["k0006"].refusal_receipt, None);
        assert_eq!(states["aa"].notified_on, None);
        assert!(!states.contains_key("k0950"));
        let counts = meta.collection_counts().await.unwrap();
        assert_eq!(counts[0].notifications, 900);
        assert_eq!(counts[0].refusals, 2);
    }

    async fn check_idempotent_responses_keep_the_first_answer(meta: &Metadata) {
        assert!(
            meta.recall_response("prov-001", "k1")
                .await
                .unwrap()
                .is_none()
        );
        let first = meta
            .remember_response("prov-001", "k1", "abc", 201, "{\"ok\":true}")
            .await
            .unwrap();
        let second = meta
            .remember_response("prov-001", "k1", "def", 500, "{}")
            .await
            .unwrap();
        assert_eq!(first, second);
        assert_eq!(second.status_code, 201);
        assert_eq!(
            meta.recall_response("prov-001", "k1").await.unwrap(),
            Some(first)
        );
    }

    #[tokio::test]
    async fn providers_register_once_and_ids_follow_the_sequence() {
        let (_dir, meta) = fresh_sqlite().await;
        check_providers_register_once_and_ids_follow_the_sequence(&meta).await;
    }

    #[tokio::test]
    async fn tokens_rotate_and_revoke() {
        let (_dir, meta) = fresh_sqlite().await;
        check_tokens_rotate_and_revoke(&meta).await;
    }

    #[tokio::test]
    async fn notifications_keep_the_earliest_date() {
        let (_dir, meta) = fresh_sqlite().await;
        check_notifications_keep_the_earliest_date(&meta).await;
    }

    #[tokio::test]
    async fn refusals_are_recorded_once_and_states_come_in_batches() {
        let (_dir, meta) = fresh_sqlite().await;
        check_refusals_are_recorded_once_and_states_come_in_batches(&meta).await;
    }

    #[tokio::test]
    async fn idempotent_responses_keep_the_first_answer() {
        let (_dir, meta) = fresh_sqlite().await;
        check_idempotent_responses_keep_the_first_answer(&meta).await;
    }

    /// The same checks on PostgreSQL, when `KIBAN_TEST_POSTGRES_URL` names a database the test
    /// may empty (e.g. `postgres://kiban@127.0.0.1:5432/kiban_test`).
    #[tokio::test]
    async fn postgres_registers_behave_the_same() {
        let Ok(url) = std::env::var("KIBAN_TEST_POSTGRES_URL") else {
            return;
        };
        let meta = fresh_postgres(&url).await;
        check_providers_register_once_and_ids_follow_the_sequence(&meta).await;
        meta.close().await;
        let meta = fresh_postgres(&url).await;
        check_tokens_rotate_and_revoke(&meta).await;
        meta.close().await;
        let meta = fresh_postgres(&url).await;
        check_notifications_keep_the_earliest_date(&meta).await;
        meta.close().await;
        let meta = fresh_postgres(&url).await;
        check_refusals_are_recorded_once_and_states_come_in_batches(&meta).await;
        meta.close().await;
        let meta = fresh_postgres(&url).await;
        check_idempotent_responses_keep_the_first_answer(&meta).await;
        meta.close().await;
        // The intake commit path (segments, quarantine, dedupe keys, held lines).
        let meta = fresh_postgres(&url).await;
        crate::tests::check_chunks_commit_once_and_intakes_resume(meta.clone()).await;
        meta.close().await;
        // The provider portal's reads and the intakes' notification basis.
        let meta = fresh_postgres(&url).await;
        crate::provision::tests::check_provider_reads_are_scoped_and_basis_is_summarized(&meta)
            .await;
        meta.close().await;
        let meta = fresh_postgres(&url).await;
        crate::provision::tests::check_notifications_are_read_in_batches(&meta).await;
        meta.close().await;
        let meta = fresh_postgres(&url).await;
        crate::persons::tests::check_person_links(meta.clone()).await;
        meta.close().await;
        // Staff accounts and the clerical review queue.
        let meta = fresh_postgres(&url).await;
        crate::staff::tests::check_staff_accounts(&meta).await;
        meta.close().await;
        let meta = fresh_postgres(&url).await;
        crate::review::tests::check_review_pairs(&meta).await;
        meta.close().await;
    }
}
