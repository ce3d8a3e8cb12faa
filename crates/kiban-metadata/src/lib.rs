//! kiban's metadata store: providers, intakes (acquisition records, Art. 33), the segments that
//! make up each table, the quarantine index, and the keyed digests used to refuse duplicates.
//!
//! The metadata store is the **commit point** of the encrypted store: a Parquet segment or a
//! quarantine blob exists for readers only once its path is recorded here, and
//! [`Metadata::commit_chunk`] records everything one chunk of an intake produced in a single
//! transaction. A process killed at any moment therefore leaves either the whole chunk or none of
//! it; files written before the kill but never committed are orphans that the store removes.
//!
//! It holds no identity data: patient ids and resource ids reach it only as keyed digests, and
//! quarantine reasons name fields and rules, never values.
//!
//! A provider reads only its own rows: [`Metadata::provider_intakes`],
//! [`Metadata::provider_quarantine`] and [`Metadata::provider_quarantine_entry`] (its Art. 32
//! provision record and its quarantine), and each intake's notification basis (R-C4) is kept
//! with [`Metadata::record_intake_notification_basis`] and summarized per means by
//! [`Metadata::intake_notification_basis`].
//!
//! Operator staff (R-A2) have accounts with roles ([`StaffRole`], [`Metadata::add_staff_account`]),
//! whose secrets only the sign-in check reads ([`Metadata::staff_credentials`]), and a staff
//! audit log ([`Metadata::record_staff_audit`]). Uncertain record pairs of a linkage run wait
//! for clerical review ([`Metadata::insert_review_pairs`], [`Metadata::decide_review_pair`]);
//! the decisions constrain the next run ([`Metadata::review_decisions`]).
//!
//! SQLite (embedded, one file in the data directory) is the default; PostgreSQL works through the
//! same code (`sqlx::Any`), with its own migrations.
//!
//! ```
//! # tokio_test_shim::run(async {
//! use kiban_metadata::{Metadata, NewProvider};
//! let dir = tempfile::tempdir().unwrap();
//! let meta = Metadata::open_in_dir(dir.path()).await.unwrap();
//! meta.upsert_provider(&NewProvider {
//!     id: "prov-001".into(),
//!     name: "東都大学病院".into(),
//!     name_en: Some("Toto University Hospital".into()),
//!     kind: kiban_model::ProviderKind::UniversityHospital,
//! }).await.unwrap();
//! assert_eq!(meta.providers().await.unwrap().len(), 1);
//! # });
//! # mod tokio_test_shim { pub fn run<F: std::future::Future>(f: F) -> F::Output {
//! #   tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) } }
//! ```

#![warn(missing_docs)]

use chrono::Utc;
use kiban_model::ProviderKind;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, AssertSqlSafe, Row};
use std::collections::{HashMap, HashSet};
use std::path::Path;

mod collection;
mod persons;
mod provision;
mod review;
mod staff;
use collection::value_rows;
pub use collection::{
    CollectionCounts, CollectionEvent, FilingStatus, NewCollectionEvent, NewProviderToken,
    NewRefusal, Notification, NotificationMeans, NotificationRecord, PatientCollectionState,
    ProviderRegistration, ProviderToken, Refusal, RefusalChannel, RefusalInsert, Requester,
    StoredResponse,
};
pub use persons::{LinkageModel, LinkageRun, PersonLink, PersonLinkChange};
pub use provision::{IntakePatientBasis, NotificationBasisSummary, ProviderQuarantineEntry};
pub use review::{
    NewReviewPair, REVIEW_NOTE_MAX_CHARS, ReviewDecision, ReviewDecisionRecord, ReviewEvidence,
    ReviewPair, ReviewQueueReplaced, ReviewRecord, ReviewStatus, SupersededReviewPair,
};
pub use staff::{
    NewStaffAccount, NewStaffAuditEvent, StaffAccount, StaffAuditEvent, StaffCredentials, StaffRole,
};

/// File name of the embedded SQLite database inside a data directory.
pub const SQLITE_FILE: &str = "kiban.db";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Rows per multi-row INSERT or IN (...) query; well under SQLite's bound-parameter limit.
pub(crate) const BATCH: usize = 400;

/// Rows per statement of the dedupe index on PostgreSQL (one or two bound digests per row):
/// an intake chunk asks about and upserts thousands of digests, and every statement is a
/// round trip. 8,000 parameters stay well inside PostgreSQL's limit (65,535). SQLite gets
/// all of a chunk's digests packed in one bound value instead (see
/// `SQLITE_KNOWN_PACKED_VERSIONS`).
pub(crate) const DIGEST_BATCH: usize = 4000;

/// The dedupe index asked about many identity digests at once in SQLite: `?1` is the digests
/// packed end to end (16 bytes each), `?2` their count. The recursive CTE numbers them and each
/// is looked up by primary key (`CROSS JOIN` keeps the numbers as the outer loop).
const SQLITE_KNOWN_PACKED_VERSIONS: &str =
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2)
     SELECT r.identity_digest, r.content_digest
     FROM n CROSS JOIN resource_versions r
     WHERE r.identity_digest = substr(?1, n.i * 16 + 1, 16)";

/// The dedupe index updated with many (identity, content) digest pairs at once in SQLite:
/// `?1` is the pairs packed end to end (32 bytes each), `?2` their count. A changed resource
/// replaces the content digest held, so that a re-sent copy of the new version is a
/// duplicate, not a third version. (`WHERE true` tells SQLite's parser that `ON CONFLICT`
/// is the upsert clause, not a join constraint.)
const SQLITE_UPSERT_PACKED_VERSIONS: &str =
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2)
     INSERT INTO resource_versions (identity_digest, content_digest)
     SELECT substr(?1, n.i * 32 + 1, 16), substr(?1, n.i * 32 + 17, 16) FROM n WHERE true
     ON CONFLICT (identity_digest) DO UPDATE SET content_digest = excluded.content_digest";

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The database could not be reached or a query failed.
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    /// Schema migration failed.
    #[error("metadata database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The URL names a database kiban does not support.
    #[error("unsupported metadata database URL scheme in {0:?}: use sqlite:// or postgres://")]
    UnsupportedUrl(String),
    /// A referenced row does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// Kind of row.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A row cannot be written because another one is in the way (a taken login, a decision
    /// already made).
    #[error("{what}: {id}")]
    Conflict {
        /// What conflicts.
        what: &'static str,
        /// The id or name concerned.
        id: String,
    },
    /// A stored value is not what kiban wrote.
    #[error("metadata database holds an invalid {what}: {detail}")]
    Invalid {
        /// What was read.
        what: &'static str,
        /// Why it is invalid.
        detail: String,
    },
}

type Result<T> = std::result::Result<T, MetadataError>;

/// A provider to register.
#[derive(Debug, Clone)]
pub struct NewProvider {
    /// Provider id (`prov-001`).
    pub id: String,
    /// Name in Japanese.
    pub name: String,
    /// Name in English, when known.
    pub name_en: Option<String>,
    /// Kind of provider.
    pub kind: ProviderKind,
}

/// A registered provider with its intake totals.
#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    /// Provider id.
    pub id: String,
    /// Name in Japanese.
    pub name: String,
    /// Name in English.
    pub name_en: Option<String>,
    /// Kind of provider.
    pub kind: ProviderKind,
    /// Number of intakes.
    pub intakes: i64,
    /// Resources accepted over all intakes.
    pub resources_accepted: i64,
    /// Resources rejected (quarantined) over all intakes.
    pub resources_rejected: i64,
    /// Patient records (identity rows) held.
    pub patient_records: i64,
}

/// Status of an intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntakeStatus {
    /// Started and not finished (or killed; resumable).
    Running,
    /// Every chunk committed.
    Completed,
}

impl IntakeStatus {
    /// The stable code stored in the database.
    pub fn code(self) -> &'static str {
        match self {
            IntakeStatus::Running => "running",
            IntakeStatus::Completed => "completed",
        }
    }

    fn parse(code: &str) -> Result<Self> {
        match code {
            "running" => Ok(IntakeStatus::Running),
            "completed" => Ok(IntakeStatus::Completed),
            other => Err(MetadataError::Invalid {
                what: "intake status",
                detail: other.to_owned(),
            }),
        }
    }
}

/// One intake (acquisition record, Art. 33): one source file of one provider.
#[derive(Debug, Clone, Serialize)]
pub struct Intake {
    /// Intake id, derived from the provider and the source digest so a re-run finds it again.
    pub id: String,
    /// Provider id.
    pub provider_id: String,
    /// Source name (file path relative to the intake root).
    pub source: String,
    /// SHA-256 of the source bytes, hex.
    pub source_sha256: String,
    /// Status.
    pub status: IntakeStatus,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// Finish time (RFC 3339).
    pub finished_at: Option<String>,
    /// Chunks committed so far; a resumed intake starts at this chunk.
    pub chunks_committed: i64,
    /// Lines read in committed chunks.
    pub lines_read: i64,
    /// Bytes read in committed chunks.
    pub bytes_read: i64,
    /// Resources accepted.
    pub resources_accepted: i64,
    /// Resources already held (duplicates, not stored again).
    pub resources_duplicate: i64,
    /// Resources rejected into the quarantine.
    pub resources_rejected: i64,
    /// Resources held until their patients may be taken (R-C1).
    pub resources_held: i64,
    /// Resources refused because their patients opted out (R-C2).
    pub resources_refused: i64,
}

/// A line held until its patients may be taken, as committed with its chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldLineRecord {
    /// Path of the encrypted blob holding the line.
    pub blob_path: String,
    /// Line in the source (1-based).
    pub line: i64,
    /// Resources in the line.
    pub resource_count: i64,
    /// Keyed digests (patient keys) of the line's patients.
    pub patient_keys: Vec<String>,
    /// First day the line may be taken, when known (`YYYY-MM-DD`).
    pub eligible_on: Option<String>,
}

/// A held line not yet settled, as the release reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldLine {
    /// Provider id.
    pub provider_id: String,
    /// Intake that held it.
    pub intake_id: String,
    /// The line as committed.
    pub record: HeldLineRecord,
}

/// A Parquet segment or blob written by the store for one chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentRecord {
    /// Path relative to the data directory.
    pub path: String,
    /// Table name (`identity`, `conditions`, ...).
    pub table_name: String,
    /// Rows in the segment.
    pub rows: i64,
    /// Size in bytes.
    pub bytes: i64,
}

/// One rejected resource or line, as indexed in the metadata store (the content itself is in an
/// encrypted quarantine blob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineEntry {
    /// Line in the source file (1-based).
    pub line: i64,
    /// Index of the resource within the line (0 for the line itself or the first resource).
    pub entry_index: i64,
    /// FHIR resource type, when it could be read.
    pub resource_type: Option<String>,
    /// Why it was rejected: field path and rule, never the value.
    pub reason: String,
    /// Path of the encrypted blob holding the original content.
    pub blob_path: String,
}

/// A quarantine entry with its intake, as listed to operators and providers.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineListing {
    /// Intake id.
    pub intake_id: String,
    /// Provider id.
    pub provider_id: String,
    /// Source name.
    pub source: String,
    /// The entry.
    pub entry: QuarantineEntry,
}

/// Everything one chunk of an intake produced, committed atomically.
#[derive(Debug, Clone, Default)]
pub struct ChunkCommit {
    /// Chunk index (0-based); must equal the intake's `chunks_committed`.
    pub chunk_index: i64,
    /// Lines read in this chunk.
    pub lines_read: i64,
    /// Bytes read in this chunk.
    pub bytes_read: i64,
    /// Resources accepted.
    pub resources_accepted: i64,
    /// Resources skipped as already held.
    pub resources_duplicate: i64,
    /// Segments written.
    pub segments: Vec<SegmentRecord>,
    /// Quarantined entries.
    pub quarantine: Vec<QuarantineEntry>,
    /// Accepted resources as (identity digest, content digest) pairs: the dedupe keys.
    pub resource_versions: Vec<([u8; 16], [u8; 16])>,
    /// Lines held until their patients may be taken.
    pub held_lines: Vec<HeldLineRecord>,
    /// Resources held (in `held_lines`).
    pub resources_held: i64,
    /// Resources refused because their patients opted out.
    pub resources_refused: i64,
    /// Item counts by category (FHIR resource type) for the acquisition record.
    pub item_counts: Vec<(String, i64)>,
}

/// Rows held per table.
#[derive(Debug, Clone, Serialize)]
pub struct TableCount {
    /// Table name.
    pub table_name: String,
    /// Rows over all committed segments.
    pub rows: i64,
    /// Segments.
    pub segments: i64,
    /// Bytes on disk.
    pub bytes: i64,
}

/// Handle on the metadata database.
#[derive(Debug, Clone)]
pub struct Metadata {
    pool: AnyPool,
    /// Whether the backend is SQLite: its bulk statements use anonymous `?` placeholders.
    sqlite: bool,
}

pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Metadata {
    /// Placeholders of a multi-row statement whose only parameters are these rows:
    /// `($1, $2), ($3, $4)` on PostgreSQL, `(?, ?), (?, ?)` on SQLite. Why: SQLite looks a
    /// named parameter up by a linear scan, so binding n `$k` parameters costs O(n²) and a
    /// 1,200-parameter insert spent more time naming parameters than writing rows.
    fn bulk_rows(&self, rows: usize, columns: usize) -> String {
        if !self.sqlite {
            return value_rows(rows, columns);
        }
        let row = format!("({})", vec!["?"; columns].join(", "));
        vec![row; rows].join(", ")
    }

    /// Opens (creating if needed) the embedded SQLite database of a data directory.
    pub async fn open_in_dir(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(SQLITE_FILE);
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await
    }

    /// Connects to `sqlite://...` or `postgres://...` and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let is_postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        if !is_sqlite && !is_postgres {
            return Err(MetadataError::UnsupportedUrl(url.to_owned()));
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        // WAL: readers (the web portal) never block the ingest writer.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        // NORMAL is safe in WAL mode (no corruption on a crash); a power
                        // loss may undo the last commits, whose segment files are then
                        // orphans removed at the next open, so the store stays consistent.
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        // 64 MiB of page cache: the dedupe index is read once per resource.
                        sqlx::query("PRAGMA cache_size = -65536")
                            .execute(&mut *conn)
                            .await?;
                        // Statement journals and sorts in memory: on disk they went to
                        // /var/tmp (outside the data directory) and cost ~200k small writes
                        // per 100k resources taken.
                        sqlx::query("PRAGMA temp_store = MEMORY")
                            .execute(&mut *conn)
                            .await?;
                        // Checkpoint every 64 MiB of WAL instead of every 4 MiB: the dedupe
                        // index's random keys dirty most of its pages on every commit, and a
                        // checkpoint writes each page once however many commits changed it.
                        sqlx::query("PRAGMA wal_autocheckpoint = 16384")
                            .execute(&mut *conn)
                            .await?;
                        // Read the database through a mapping: dedupe lookups cost a page
                        // copy and a system call each when read with pread.
                        sqlx::query("PRAGMA mmap_size = 268435456")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        if is_sqlite {
            SQLITE_MIGRATIONS.run(&pool).await?;
        } else {
            POSTGRES_MIGRATIONS.run(&pool).await?;
        }
        Ok(Self {
            pool,
            sqlite: is_sqlite,
        })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Registers a provider, or updates its name and kind.
    pub async fn upsert_provider(&self, provider: &NewProvider) -> Result<()> {
        sqlx::query(
            "INSERT INTO providers (id, name, name_en, kind, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_en = excluded.name_en,
             kind = excluded.kind",
        )
        .bind(&provider.id)
        .bind(&provider.name)
        .bind(provider.name_en.clone())
        .bind(provider.kind.code())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every provider with its intake totals, by id.
    pub async fn providers(&self) -> Result<Vec<Provider>> {
        let rows = sqlx::query(
            "SELECT p.id, p.name, p.name_en, p.kind,
                    (SELECT COUNT(*) FROM intakes i WHERE i.provider_id = p.id) AS intakes,
                    (SELECT CAST(COALESCE(SUM(i.resources_accepted), 0) AS BIGINT) FROM intakes i WHERE i.provider_id = p.id) AS accepted,
                    (SELECT CAST(COALESCE(SUM(i.resources_rejected), 0) AS BIGINT) FROM intakes i WHERE i.provider_id = p.id) AS rejected,
                    (SELECT CAST(COALESCE(SUM(s.row_count), 0) AS BIGINT) FROM segments s JOIN intakes i ON s.intake_id = i.id
                      WHERE i.provider_id = p.id AND s.table_name = 'identity') AS records
             FROM providers p ORDER BY p.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(Provider {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    name_en: r.try_get("name_en")?,
                    kind: ProviderKind::from_code(&kind).ok_or(MetadataError::Invalid {
                        what: "provider kind",
                        detail: kind.clone(),
                    })?,
                    intakes: r.try_get("intakes")?,
                    resources_accepted: r.try_get("accepted")?,
                    resources_rejected: r.try_get("rejected")?,
                    patient_records: r.try_get("records")?,
                })
            })
            .collect()
    }

    /// Starts an intake of `source` for a provider, or returns the existing intake of the same
    /// bytes (same provider and digest) so that a killed run resumes where it stopped and a
    /// repeated run of a completed one is recognized.
    pub async fn begin_intake(
        &self,
        provider_id: &str,
        source: &str,
        source_sha256: &str,
    ) -> Result<Intake> {
        let id = format!(
            "{provider_id}-{}",
            &source_sha256[..source_sha256.len().min(16)]
        );
        sqlx::query(
            "INSERT INTO intakes (id, provider_id, source, source_sha256, status, started_at)
             VALUES ($1, $2, $3, $4, 'running', $5)
             ON CONFLICT (provider_id, source_sha256) DO NOTHING",
        )
        .bind(&id)
        .bind(provider_id)
        .bind(source)
        .bind(source_sha256)
        .bind(now())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "{INTAKE_SELECT} WHERE provider_id = $1 AND source_sha256 = $2"
        )))
        .bind(provider_id)
        .bind(source_sha256)
        .fetch_one(&self.pool)
        .await?;
        intake_from_row(&row)
    }

    /// One intake by id.
    pub async fn intake(&self, intake_id: &str) -> Result<Intake> {
        let row = sqlx::query(AssertSqlSafe(format!("{INTAKE_SELECT} WHERE id = $1")))
            .bind(intake_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| MetadataError::NotFound {
                what: "intake",
                id: intake_id.to_owned(),
            })?;
        intake_from_row(&row)
    }

    /// Commits everything one chunk produced, in one transaction. A chunk already committed
    /// (index below the intake's `chunks_committed`) is ignored, so a retry is harmless.
    pub async fn commit_chunk(&self, intake_id: &str, chunk: &ChunkCommit) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE intakes SET chunks_committed = chunks_committed + 1,
                lines_read = lines_read + $1, bytes_read = bytes_read + $2,
                resources_accepted = resources_accepted + $3,
                resources_duplicate = resources_duplicate + $4,
                resources_rejected = resources_rejected + $5,
                resources_held = resources_held + $6,
                resources_refused = resources_refused + $7
             WHERE id = $8 AND chunks_committed = $9",
        )
        .bind(chunk.lines_read)
        .bind(chunk.bytes_read)
        .bind(chunk.resources_accepted)
        .bind(chunk.resources_duplicate)
        .bind(chunk.quarantine.len() as i64)
        .bind(chunk.resources_held)
        .bind(chunk.resources_refused)
        .bind(intake_id)
        .bind(chunk.chunk_index)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            // Either already committed (a retry) or out of order; both leave the store as is.
            tx.rollback().await?;
            return Ok(());
        }
        let created = now();
        // Placeholders are written as $n: over sqlx::Any, QueryBuilder writes `?`, which
        // PostgreSQL rejects.
        for batch in chunk.segments.chunks(BATCH) {
            let sql = format!(
                "INSERT INTO segments (path, table_name, intake_id, chunk_index, row_count, byte_count, created_at) VALUES {}
                 ON CONFLICT (path) DO UPDATE SET row_count = excluded.row_count, byte_count = excluded.byte_count",
                self.bulk_rows(batch.len(), 7)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for s in batch {
                q = q
                    .bind(s.path.clone())
                    .bind(s.table_name.clone())
                    .bind(intake_id.to_owned())
                    .bind(chunk.chunk_index)
                    .bind(s.rows)
                    .bind(s.bytes)
                    .bind(created.clone());
            }
            q.execute(&mut *tx).await?;
        }
        for batch in chunk.quarantine.chunks(BATCH) {
            let sql = format!(
                "INSERT INTO quarantine_entries (intake_id, line, entry_index, resource_type, reason, blob_path, created_at) VALUES {}
                 ON CONFLICT DO NOTHING",
                self.bulk_rows(batch.len(), 7)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for e in batch {
                q = q
                    .bind(intake_id.to_owned())
                    .bind(e.line)
                    .bind(e.entry_index)
                    .bind(e.resource_type.clone())
                    .bind(e.reason.clone())
                    .bind(e.blob_path.clone())
                    .bind(created.clone());
            }
            q.execute(&mut *tx).await?;
        }
        // One row per identity, its last version: an upsert may not touch a row twice in one
        // statement (PostgreSQL), and the last version is the one held from now on.
        let mut versions: Vec<([u8; 16], [u8; 16])> =
            Vec::with_capacity(chunk.resource_versions.len());
        {
            let mut position: std::collections::HashMap<[u8; 16], usize> =
                std::collections::HashMap::with_capacity(chunk.resource_versions.len());
            for &(identity, content) in &chunk.resource_versions {
                match position.entry(identity) {
                    std::collections::hash_map::Entry::Occupied(at) => {
                        versions[*at.get()].1 = content
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(versions.len());
                        versions.push((identity, content));
                    }
                }
            }
        }
        // In key order, the upserts walk the index's pages in order instead of at random.
        versions.sort_unstable_by_key(|pair| pair.0);
        if self.sqlite {
            // One statement with two bound values whatever the count: thousands of bound
            // digests cost a parse of a statement as long, and an allocation and a copy each.
            if !versions.is_empty() {
                let mut packed = Vec::with_capacity(versions.len() * 32);
                for (identity, content) in &versions {
                    packed.extend_from_slice(identity);
                    packed.extend_from_slice(content);
                }
                sqlx::query(SQLITE_UPSERT_PACKED_VERSIONS)
                    .bind(packed)
                    .bind(versions.len() as i64)
                    .execute(&mut *tx)
                    .await?;
            }
        } else {
            for batch in versions.chunks(DIGEST_BATCH) {
                let sql = format!(
                    // A changed resource replaces the content digest held, so that a re-sent
                    // copy of the new version is a duplicate, not a third version.
                    "INSERT INTO resource_versions (identity_digest, content_digest) VALUES {}
                     ON CONFLICT (identity_digest) DO UPDATE SET content_digest = excluded.content_digest",
                    self.bulk_rows(batch.len(), 2)
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for (identity, content) in batch {
                    q = q.bind(identity.to_vec()).bind(content.to_vec());
                }
                q.execute(&mut *tx).await?;
            }
        }
        for batch in chunk.held_lines.chunks(BATCH) {
            // The held line belongs to the intake's provider.
            let provider_id: String =
                sqlx::query_scalar("SELECT provider_id FROM intakes WHERE id = $1")
                    .bind(intake_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let sql = format!(
                "INSERT INTO held_lines (blob_path, provider_id, intake_id, line, resource_count, patient_keys, eligible_on, created_at) VALUES {}
                 ON CONFLICT (blob_path) DO NOTHING",
                self.bulk_rows(batch.len(), 8)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for h in batch {
                q = q
                    .bind(h.blob_path.clone())
                    .bind(provider_id.clone())
                    .bind(intake_id.to_owned())
                    .bind(h.line)
                    .bind(h.resource_count)
                    .bind(h.patient_keys.join(","))
                    .bind(h.eligible_on.clone())
                    .bind(created.clone());
            }
            q.execute(&mut *tx).await?;
        }
        for (category, count) in &chunk.item_counts {
            sqlx::query(
                "INSERT INTO intake_item_counts (intake_id, category, item_count) VALUES ($1, $2, $3)
                 ON CONFLICT (intake_id, category) DO UPDATE
                 SET item_count = intake_item_counts.item_count + excluded.item_count",
            )
            .bind(intake_id)
            .bind(category)
            .bind(*count)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks an intake completed.
    pub async fn finish_intake(&self, intake_id: &str) -> Result<()> {
        sqlx::query("UPDATE intakes SET status = 'completed', finished_at = $1 WHERE id = $2")
            .bind(now())
            .bind(intake_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The content digest held for each of `identities` that is held at all: an identity
    /// digest missing from the answer is a resource never accepted.
    pub async fn known_resources(
        &self,
        identities: &[[u8; 16]],
    ) -> Result<HashMap<[u8; 16], [u8; 16]>> {
        let digest = |bytes: Vec<u8>| -> Result<[u8; 16]> {
            bytes.try_into().map_err(|_| MetadataError::Invalid {
                what: "resource digest",
                detail: "wrong length".into(),
            })
        };
        let mut known = HashMap::new();
        if self.sqlite {
            if identities.is_empty() {
                return Ok(known);
            }
            let packed: Vec<u8> = identities.iter().flatten().copied().collect();
            let rows = sqlx::query(SQLITE_KNOWN_PACKED_VERSIONS)
                .bind(packed)
                .bind(identities.len() as i64)
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                known.insert(
                    digest(row.try_get("identity_digest")?)?,
                    digest(row.try_get("content_digest")?)?,
                );
            }
            return Ok(known);
        }
        for batch in identities.chunks(DIGEST_BATCH) {
            let sql = format!(
                "SELECT identity_digest, content_digest FROM resource_versions WHERE identity_digest IN {}",
                self.bulk_rows(1, batch.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for d in batch {
                q = q.bind(d.to_vec());
            }
            for row in q.fetch_all(&self.pool).await? {
                known.insert(
                    digest(row.try_get("identity_digest")?)?,
                    digest(row.try_get("content_digest")?)?,
                );
            }
        }
        Ok(known)
    }

    /// Held lines not yet settled (taken or refused), oldest first, at most `limit`.
    pub async fn held_lines(&self, limit: i64) -> Result<Vec<HeldLine>> {
        let rows = sqlx::query(
            "SELECT blob_path, provider_id, intake_id, line, resource_count, patient_keys, eligible_on
             FROM held_lines WHERE status = 'held' ORDER BY created_at, blob_path LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let keys: String = r.try_get("patient_keys")?;
                Ok(HeldLine {
                    provider_id: r.try_get("provider_id")?,
                    intake_id: r.try_get("intake_id")?,
                    record: HeldLineRecord {
                        blob_path: r.try_get("blob_path")?,
                        line: r.try_get("line")?,
                        resource_count: r.try_get("resource_count")?,
                        patient_keys: keys
                            .split(',')
                            .filter(|k| !k.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        eligible_on: r.try_get("eligible_on")?,
                    },
                })
            })
            .collect()
    }

    /// Counts of held lines and resources still held.
    pub async fn held_totals(&self) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS lines, CAST(COALESCE(SUM(resource_count), 0) AS BIGINT) AS resources
             FROM held_lines WHERE status = 'held'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("lines")?, row.try_get("resources")?))
    }

    /// Settles a held line: `released` once its content went through intake again (under
    /// `release_intake_id`), `refused` when its patient opted out while it was held. Its blob
    /// is then no longer committed and may be deleted.
    pub async fn settle_held_line(
        &self,
        blob_path: &str,
        released: bool,
        release_intake_id: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE held_lines SET status = $1, settled_at = $2, release_intake_id = $3
             WHERE blob_path = $4 AND status = 'held'",
        )
        .bind(if released { "released" } else { "refused" })
        .bind(now())
        .bind(release_intake_id)
        .bind(blob_path)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every committed file path (segments and quarantine blobs), relative to the data directory.
    pub async fn committed_paths(&self) -> Result<HashSet<String>> {
        let mut paths = HashSet::new();
        for row in sqlx::query(
            "SELECT path FROM segments UNION SELECT blob_path FROM quarantine_entries
                 UNION SELECT blob_path FROM held_lines WHERE status = 'held'",
        )
        .fetch_all(&self.pool)
        .await?
        {
            paths.insert(row.try_get::<String, _>(0)?);
        }
        Ok(paths)
    }

    /// Committed segments of one table, in commit order.
    pub async fn segments(&self, table_name: &str) -> Result<Vec<SegmentRecord>> {
        let rows = sqlx::query(
            "SELECT path, table_name, row_count, byte_count FROM segments WHERE table_name = $1
             ORDER BY intake_id, chunk_index, path",
        )
        .bind(table_name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SegmentRecord {
                    path: r.try_get("path")?,
                    table_name: r.try_get("table_name")?,
                    rows: r.try_get("row_count")?,
                    bytes: r.try_get("byte_count")?,
                })
            })
            .collect()
    }

    /// Rows, segments and bytes per table.
    pub async fn table_counts(&self) -> Result<Vec<TableCount>> {
        let rows = sqlx::query(
            "SELECT table_name, CAST(COALESCE(SUM(row_count), 0) AS BIGINT) AS rows_held, COUNT(*) AS segs,
                    CAST(COALESCE(SUM(byte_count), 0) AS BIGINT) AS bytes_held
             FROM segments GROUP BY table_name ORDER BY table_name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TableCount {
                    table_name: r.try_get("table_name")?,
                    rows: r.try_get("rows_held")?,
                    segments: r.try_get("segs")?,
                    bytes: r.try_get("bytes_held")?,
                })
            })
            .collect()
    }

    /// The most recent intakes first.
    pub async fn intake_log(&self, limit: i64) -> Result<Vec<Intake>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{INTAKE_SELECT} ORDER BY started_at DESC, id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(intake_from_row).collect()
    }

    /// Item counts by category of one intake (the acquisition record's "items").
    pub async fn intake_item_counts(&self, intake_id: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT category, item_count FROM intake_item_counts WHERE intake_id = $1 ORDER BY category",
        )
        .bind(intake_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("category")?, r.try_get("item_count")?)))
            .collect()
    }

    /// Quarantined entries, newest intakes first, optionally of one provider.
    pub async fn quarantine(
        &self,
        provider_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<QuarantineListing>> {
        let rows = sqlx::query(
            "SELECT q.intake_id, i.provider_id, i.source, q.line, q.entry_index, q.resource_type,
                    q.reason, q.blob_path
             FROM quarantine_entries q JOIN intakes i ON q.intake_id = i.id
             WHERE ($1 IS NULL OR i.provider_id = $1)
             ORDER BY i.started_at DESC, q.intake_id, q.line, q.entry_index LIMIT $2",
        )
        .bind(provider_id.map(str::to_owned))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QuarantineListing {
                    intake_id: r.try_get("intake_id")?,
                    provider_id: r.try_get("provider_id")?,
                    source: r.try_get("source")?,
                    entry: QuarantineEntry {
                        line: r.try_get("line")?,
                        entry_index: r.try_get("entry_index")?,
                        resource_type: r.try_get("resource_type")?,
                        reason: r.try_get("reason")?,
                        blob_path: r.try_get("blob_path")?,
                    },
                })
            })
            .collect()
    }
}

const INTAKE_SELECT: &str = "SELECT id, provider_id, source, source_sha256, status, started_at,
    finished_at, chunks_committed, lines_read, bytes_read, resources_accepted,
    resources_duplicate, resources_rejected, resources_held, resources_refused FROM intakes";

fn intake_from_row(r: &sqlx::any::AnyRow) -> Result<Intake> {
    let status: String = r.try_get("status")?;
    Ok(Intake {
        id: r.try_get("id")?,
        provider_id: r.try_get("provider_id")?,
        source: r.try_get("source")?,
        source_sha256: r.try_get("source_sha256")?,
        status: IntakeStatus::parse(&status)?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        chunks_committed: r.try_get("chunks_committed")?,
        lines_read: r.try_get("lines_read")?,
        bytes_read: r.try_get("bytes_read")?,
        resources_accepted: r.try_get("resources_accepted")?,
        resources_duplicate: r.try_get("resources_duplicate")?,
        resources_rejected: r.try_get("resources_rejected")?,
        resources_held: r.try_get("resources_held")?,
        resources_refused: r.try_get("resources_refused")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> (tempfile::TempDir, Metadata) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_in_dir(dir.path()).await.unwrap();
        meta.upsert_provider(&NewProvider {
            id: "prov-001".into(),
            name: "東都大学病院".into(),
            name_en: None,
            kind: ProviderKind::UniversityHospital,
        })
        .await
        .unwrap();
        (dir, meta)
    }

    fn chunk(index: i64, digest: u8) -> ChunkCommit {
        ChunkCommit {
            chunk_index: index,
            lines_read: 10,
            bytes_read: 1000,
            resources_accepted: 9,
            resources_duplicate: 0,
            segments: vec![SegmentRecord {
                path: format!("clinical/conditions/x-{index}.parquet"),
                table_name: "conditions".into(),
                rows: 9,
                bytes: 500,
            }],
            quarantine: vec![QuarantineEntry {
                line: 3,
                entry_index: 0,
                resource_type: Some("Observation".into()),
                reason: "Observation.status: required element missing".into(),
                blob_path: format!("quarantine/x-{index}.bin"),
            }],
            resource_versions: vec![([digest; 16], [digest + 100; 16])],
            item_counts: vec![("Condition".into(), 9)],
            held_lines: vec![HeldLineRecord {
                blob_path: format!("held/x-{index}.enc"),
                line: 3,
                resource_count: 4,
                patient_keys: vec!["ab12".into(), "cd34".into()],
                eligible_on: Some("2026-12-01".into()),
            }],
            resources_held: 4,
            resources_refused: 1,
        }
    }

    #[tokio::test]
    async fn chunks_commit_once_and_intakes_resume() {
        let (_dir, meta) = fresh().await;
        check_chunks_commit_once_and_intakes_resume(meta).await;
    }

    /// Also run on PostgreSQL by `collection::tests::postgres_registers_behave_the_same`
    /// (one test, so the PostgreSQL checks never race on the shared database).
    pub(crate) async fn check_chunks_commit_once_and_intakes_resume(meta: Metadata) {
        let intake = meta
            .begin_intake(
                "prov-001",
                "prov-001/bundles.ndjson",
                "ab".repeat(32).as_str(),
            )
            .await
            .unwrap();
        assert_eq!(intake.chunks_committed, 0);
        meta.commit_chunk(&intake.id, &chunk(0, 1)).await.unwrap();
        // A retried commit of the same chunk changes nothing.
        meta.commit_chunk(&intake.id, &chunk(0, 1)).await.unwrap();
        // Out of order is ignored too.
        meta.commit_chunk(&intake.id, &chunk(5, 2)).await.unwrap();
        let again = meta
            .begin_intake("prov-001", "renamed.ndjson", "ab".repeat(32).as_str())
            .await
            .unwrap();
        assert_eq!(again.id, intake.id);
        assert_eq!(again.chunks_committed, 1);
        assert_eq!(again.resources_accepted, 9);
        assert_eq!(again.resources_rejected, 1);
        assert_eq!(again.status, IntakeStatus::Running);
        meta.finish_intake(&intake.id).await.unwrap();
        assert_eq!(
            meta.intake(&intake.id).await.unwrap().status,
            IntakeStatus::Completed
        );

        let held = meta.held_lines(10).await.unwrap();
        assert_eq!(held.len(), 1, "the retried chunk adds no second held line");
        assert_eq!(held[0].record.patient_keys, vec!["ab12", "cd34"]);
        assert_eq!(held[0].provider_id, "prov-001");
        assert_eq!(meta.held_totals().await.unwrap(), (1, 4));
        assert!(
            meta.committed_paths()
                .await
                .unwrap()
                .contains("held/x-0.enc")
        );
        assert_eq!(meta.intake(&intake.id).await.unwrap().resources_refused, 1);
        meta.settle_held_line("held/x-0.enc", true, Some("prov-001-x"))
            .await
            .unwrap();
        assert!(meta.held_lines(10).await.unwrap().is_empty());
        assert!(
            !meta
                .committed_paths()
                .await
                .unwrap()
                .contains("held/x-0.enc")
        );
        let known = meta.known_resources(&[[1; 16], [2; 16]]).await.unwrap();
        assert_eq!(known, HashMap::from([([1u8; 16], [101u8; 16])]));
        let paths = meta.committed_paths().await.unwrap();
        assert!(paths.contains("clinical/conditions/x-0.parquet"));
        assert!(paths.contains("quarantine/x-0.bin"));
        assert!(!paths.contains("clinical/conditions/x-5.parquet"));
        let counts = meta.table_counts().await.unwrap();
        assert_eq!(counts[0].rows, 9);
        assert_eq!(
            meta.intake_item_counts(&intake.id).await.unwrap(),
            vec![("Condition".to_string(), 9)]
        );
        let q = meta.quarantine(Some("prov-001"), 10).await.unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(
            meta.quarantine(Some("prov-999"), 10).await.unwrap().len(),
            0
        );
        assert_eq!(meta.providers().await.unwrap()[0].resources_accepted, 9);
        assert_eq!(meta.intake_log(10).await.unwrap().len(), 1);
        // A later intake holding a changed version replaces the content digest held; two
        // versions of one resource in one chunk leave the last.
        let later = meta
            .begin_intake("prov-001", "later.ndjson", "cd".repeat(32).as_str())
            .await
            .unwrap();
        let mut changed = chunk(0, 1);
        changed.segments.clear();
        changed.quarantine.clear();
        changed.held_lines.clear();
        changed.resource_versions =
            vec![([1; 16], [150; 16]), ([3; 16], [7; 16]), ([3; 16], [8; 16])];
        meta.commit_chunk(&later.id, &changed).await.unwrap();
        let known = meta.known_resources(&[[1; 16], [3; 16]]).await.unwrap();
        assert_eq!(
            known,
            HashMap::from([([1u8; 16], [150u8; 16]), ([3u8; 16], [8u8; 16])])
        );
    }

    #[tokio::test]
    async fn unsupported_urls_are_refused() {
        let err = Metadata::connect("mysql://localhost/x").await.unwrap_err();
        assert!(err.to_string().contains("sqlite://"));
    }
}
