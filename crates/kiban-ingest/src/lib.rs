//! FHIR intake from files: `kiban ingest DIR`.
//!
//! Reads what providers send (layout below), parses and validates every FHIR resource, maps
//! it to kiban's tables ([`kiban_model`]), and stores the rows in the encrypted store
//! ([`kiban_store`]), recording each step in the metadata database ([`kiban_metadata`]).
//!
//! ```text
//! DIR/providers.json                 [{"id", "name", "name_en", "kind"}, ...]
//! DIR/<provider id>/*.ndjson         one FHIR Bundle (or one resource) per line
//! DIR/<provider id>/*.csv            not read here (notifications and refusals)
//! DIR/truth/                         ignored
//! ```
//!
//! # What happens to each line
//!
//! Each line is a Bundle (`transaction`, `document`, `batch`, `collection`, `searchset`) or a
//! single resource. Resources are parsed ([`kiban_fhir::Resource`]), checked against the base
//! FHIR rules ([`kiban_fhir::validate`]), mapped to rows, and linked to their patient: the
//! Patient's provider patient id (JP Core patient id identifier, else another identifier, else
//! its logical id) becomes the opaque patient key ([`kiban_store::Store::patient_key`]).
//! Clinical resources find their patient through the Bundle's `fullUrl`s (`urn:uuid:`), a
//! `Patient/<id>` reference to a Patient of the same Bundle or accepted earlier in the same
//! file, or a `Reference.identifier` holding the provider patient id.
//!
//! Anything that cannot be taken is **quarantined, never dropped**: invalid JSON, a line over
//! [`IngestOptions::max_line_bytes`], a missing `resourceType`, a resource type the intake
//! does not take (e.g. `Basic`), a structural violation, an unparseable date, a subject that
//! resolves to no Patient, or a resource whose id was already accepted with different content
//! ("conflicting version": updates come with the intake API). Each rejection is indexed in
//! the metadata database with its file, line, entry index, resource type and reason (a FHIR
//! path and rule, never a value) and kept, with the original JSON, in an encrypted quarantine
//! blob ([`QUARANTINE_FORMAT`]). Transaction and document Bundles are all or nothing: one
//! invalid entry sends every entry to the quarantine, the valid ones with the reason
//! "rejected with its bundle: entry N invalid". Batch, collection and searchset Bundles are
//! taken entry by entry.
//!
//! `Organization` and `Practitioner` resources are accepted and counted in the acquisition
//! record, but kiban's model has no table for them yet, so no row is stored.
//!
//! # Duplicates
//!
//! A resource is identified by a keyed digest of (provider, resource type, source id), the
//! source id being its logical id, else the id of its `fullUrl`, else a digest of its content.
//! A second keyed digest adds the SHA-256 of the resource's canonical encoding (typed elements
//! in a fixed order, free-form JSON with sorted keys; see `content_digest`).
//! Both are recorded with each accepted resource, so a resource seen again is a *duplicate*
//! (counted, not stored) when its content is the same, and is rejected as a conflicting
//! version when it differs. Re-running the same input therefore adds nothing: an identical
//! file is recognized by its SHA-256 and skipped; the same resources in another file are
//! counted as duplicates.
//!
//! # Streaming, chunks and crash safety
//!
//! A file is read line by line with a bound on line length, in chunks of
//! [`IngestOptions::lines_per_chunk`] lines. The lines of a chunk are parsed and validated in
//! parallel (rayon), then decided in order. Each chunk writes at most one Parquet segment per
//! table (named `<intake id>-<chunk:06>`) and one quarantine blob, then commits all of it,
//! with the dedupe digests and counters, in **one** metadata transaction
//! ([`kiban_metadata::Metadata::commit_chunk`]). A process killed at any point leaves whole
//! chunks or none; files written but not committed are removed by the next [`ingest_dir`]
//! ([`kiban_store::Store::remove_uncommitted`]), which finds the intake of the same file
//! again and resumes after its last committed line, so the end result equals one clean run.
//! Only one intake may run against a data directory at a time.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kiban_ingest::{IngestOptions, ingest_dir};
//! use kiban_metadata::Metadata;
//! use kiban_store::{KeyFile, Store};
//!
//! let data = std::path::Path::new("/srv/kiban/data");
//! let keys = KeyFile::load(std::path::Path::new("/etc/kiban/master.key"))?;
//! let store = Arc::new(Store::open(data, Arc::new(keys))?);
//! let meta = Metadata::open_in_dir(data).await?;
//! let report = ingest_dir(store, &meta, "/srv/inbox".as_ref(), &IngestOptions::default(),
//!     &|p| eprintln!("{} / {} bytes", p.bytes_done, p.bytes_total)).await?;
//! println!("accepted {}, rejected {}", report.resources_accepted, report.resources_rejected);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod chunk;
mod content_digest;
mod error;
mod identity;
mod lines;
mod mapping;
pub mod markers;
mod parse;
mod providers;
mod text;

pub use chunk::QUARANTINE_FORMAT;
pub use error::IngestError;
pub use identity::PATIENT_ID_SYSTEM_PREFIX;
pub use mapping::{LOINC_CHECKUP_REPORT, LOINC_DISCHARGE_SUMMARY, LOINC_REFERRAL_NOTE};
pub use providers::{PROVIDERS_FILE, read_providers};

use chunk::{
    ChunkOutcome, DecideContext, FileState, apply_eligibility, chunk_patient_keys, decide_chunk,
    decided_size, write_chunk,
};
use kiban_collection::{Collection, CollectionPolicy, Eligibility, SystemClock};
use kiban_metadata::{IntakePatientBasis, IntakeStatus, Metadata};
use kiban_model::{PatientKey, ProviderId};
use kiban_store::Store;
use lines::{BoundedLines, SourceLine};
use parse::{ParseContext, ParsedLine, parse_line};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Directory of an intake root that is never read (the generator's ground truth).
const IGNORED_DIRECTORIES: &[&str] = &["truth"];
/// Notification register of a provider directory (`provider_patient_id,notified_on,means`).
const NOTIFICATIONS_FILE: &str = "notifications.csv";
/// Refusal register of a provider directory (`provider_patient_id,refused_on,by`).
const REFUSALS_FILE: &str = "refusals.csv";
/// Extension of the source files read in a provider directory.
const SOURCE_EXTENSION: &str = "ndjson";

/// Tuning of an intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOptions {
    /// Lines (Bundles) per chunk: the unit of parallel parsing and of atomic commit.
    pub lines_per_chunk: usize,
    /// Longest line accepted, in bytes; a longer line is quarantined without being held whole.
    pub max_line_bytes: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            lines_per_chunk: 1000,
            // As large as the intake API's body limit, so an accepted upload is never cut.
            max_line_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Progress of an intake, reported after each chunk (and when a file is skipped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestProgress {
    /// The source file being read (relative name, e.g. `prov-001/bundles.ndjson`).
    pub source: String,
    /// Bytes done over every file of the run.
    pub bytes_done: u64,
    /// Bytes of every file of the run.
    pub bytes_total: u64,
    /// Lines done in the current file.
    pub lines_done: u64,
}

/// What happened to one source file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// Provider id.
    pub provider_id: String,
    /// Source name (path relative to the intake root).
    pub source: String,
    /// Intake id (acquisition record).
    pub intake_id: String,
    /// The same bytes were completely ingested before: nothing was read.
    pub skipped: bool,
    /// Lines committed by an earlier, interrupted run, which this run resumed after.
    pub resumed_after_line: u64,
    /// Chunks committed by this run.
    pub chunks: u64,
    /// Lines read and committed by this run.
    pub lines: u64,
    /// Bytes read and committed by this run.
    pub bytes: u64,
    /// Resources accepted.
    pub resources_accepted: u64,
    /// Resources already held (same id and content), not stored again.
    pub resources_duplicate: u64,
    /// Resources (or lines) rejected into the quarantine.
    pub resources_rejected: u64,
    /// Resources held back because their patient's notification is missing or less than the
    /// waiting period old (R-C1); they are taken when the patient becomes eligible.
    pub resources_held: u64,
    /// Resources refused because their patient opted out (R-C2); nothing of them is kept.
    pub resources_refused: u64,
    /// Rows stored per table.
    pub rows_per_table: BTreeMap<String, u64>,
    /// The first [`MAX_REPORTED_REJECTIONS`] held resources, with the date they become
    /// eligible.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldEntry>,
    /// The first [`MAX_REPORTED_REJECTIONS`] rejections of this run, each with its reason
    /// (all of them are in the quarantine).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<Rejection>,
}

/// Rejections listed in a [`FileReport`]; the quarantine holds every one.
pub const MAX_REPORTED_REJECTIONS: usize = 1000;

/// A resource (or a line) rejected into the quarantine, as reported to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Line of the source (1-based).
    pub line: u64,
    /// Index of the entry within a Bundle line (0 for a single resource or the line).
    pub entry_index: u64,
    /// FHIR resource type, when it could be read.
    pub resource_type: Option<String>,
    /// Why: element path and rule, never a value.
    pub reason: String,
}

/// A resource held back until its patient may be taken (R-C1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldEntry {
    /// Line of the source (1-based).
    pub line: u64,
    /// Index of the entry within a Bundle line.
    pub entry_index: u64,
    /// FHIR resource type.
    pub resource_type: Option<String>,
    /// First day the patient's data may be taken; `None` while no notification is recorded.
    pub eligible_on: Option<chrono::NaiveDate>,
}

/// The body of an upload to the intake API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadBody {
    /// One JSON resource (usually a Bundle), possibly spread over several lines.
    Document(Vec<u8>),
    /// NDJSON: one resource per line (`$import`-style bulk data).
    Ndjson(Vec<u8>),
}

/// What happened in a whole intake directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// Providers registered from `providers.json`.
    pub providers: usize,
    /// Uncommitted files of an earlier, killed run that were removed.
    pub orphans_removed: usize,
    /// Intakes run (files not skipped).
    pub intakes: usize,
    /// Files skipped as already ingested.
    pub files_skipped: usize,
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Resources accepted.
    pub resources_accepted: u64,
    /// Resources already held, not stored again.
    pub resources_duplicate: u64,
    /// Resources (or lines) rejected into the quarantine.
    pub resources_rejected: u64,
    /// Resources held until their patients' notices are old enough (R-C1).
    pub resources_held: u64,
    /// Resources not taken because their patients opted out (R-C2).
    pub resources_refused: u64,
    /// Rows stored per table.
    pub rows_per_table: BTreeMap<String, u64>,
    /// Each file, in the order read.
    pub files: Vec<FileReport>,
    /// Lines held by earlier intakes that became eligible and were taken at the end of this
    /// run (or dropped because their patients opted out meanwhile).
    pub held_release: ReleaseReport,
}

impl IngestReport {
    fn add(&mut self, file: FileReport) {
        if file.skipped {
            self.files_skipped += 1;
        } else {
            self.intakes += 1;
        }
        self.lines += file.lines;
        self.bytes += file.bytes;
        self.resources_accepted += file.resources_accepted;
        self.resources_duplicate += file.resources_duplicate;
        self.resources_rejected += file.resources_rejected;
        self.resources_held += file.resources_held;
        self.resources_refused += file.resources_refused;
        for (table, rows) in &file.rows_per_table {
            *self.rows_per_table.entry(table.clone()).or_insert(0) += rows;
        }
        self.files.push(file);
    }
}

type ProgressFn<'a> = &'a (dyn Fn(IngestProgress) + Send + Sync);

/// Runs blocking work (file reading, parsing, encryption) off the async executor.
async fn run_blocking<T, F>(source_name: &str, work: F) -> Result<T, IngestError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, IngestError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| IngestError::Worker {
            source_name: source_name.to_owned(),
            reason: if e.is_panic() {
                "panicked".to_owned()
            } else {
                "was cancelled".to_owned()
            },
        })?
}

/// Ingests an intake directory: removes the orphans of a killed run, registers the providers
/// of `providers.json`, then ingests each provider directory's `*.ndjson` files in name order.
///
/// A directory that is not listed in `providers.json` is an error naming it (nothing is
/// read then); `truth/` and hidden directories are ignored.
///
/// Each provider directory's `notifications.csv` and `refusals.csv` (as `kiban synth` writes
/// them) are recorded in the collection registers first, so the opt-out rules (R-C1, R-C2)
/// apply to the files: resources of patients not yet eligible are held, those of patients who
/// refused are not taken. Eligibility follows the system clock and the default one-month wait;
/// [`ingest_dir_with`] takes a [`Collection`] with another clock or policy.
pub async fn ingest_dir(
    store: Arc<Store>,
    meta: &Metadata,
    dir: &Path,
    options: &IngestOptions,
    progress: &(dyn Fn(IngestProgress) + Send + Sync),
) -> Result<IngestReport, IngestError> {
    let collection = Collection::new(
        meta.clone(),
        store.clone(),
        Arc::new(SystemClock),
        CollectionPolicy::default(),
    );
    ingest_dir_with(store, &collection, dir, options, progress).await
}

/// [`ingest_dir`] under the given collection registers (clock and waiting policy).
pub async fn ingest_dir_with(
    store: Arc<Store>,
    collection: &Collection,
    dir: &Path,
    options: &IngestOptions,
    progress: &(dyn Fn(IngestProgress) + Send + Sync),
) -> Result<IngestReport, IngestError> {
    let meta = collection.metadata();
    let committed = meta.committed_paths().await?;
    let cleaner = store.clone();
    let orphans_removed = run_blocking("", move || {
        cleaner
            .remove_uncommitted(&committed)
            .map_err(IngestError::from)
    })
    .await?;
    if orphans_removed > 0 {
        tracing::info!(orphans_removed, "removed files of an interrupted intake");
    }
    let providers = providers::read_providers(&dir.join(PROVIDERS_FILE))?;
    let files = source_files(dir, &providers)?;
    for provider in &providers {
        meta.upsert_provider(provider).await?;
    }
    for provider in &providers {
        import_registers(collection, dir, &provider.id).await?;
    }
    let bytes_total = files.iter().map(|f| f.size).sum();
    let mut report = IngestReport {
        providers: providers.len(),
        orphans_removed,
        ..Default::default()
    };
    let mut bytes_before = 0;
    for file in files {
        let totals = ProgressTotals {
            bytes_before,
            bytes_total,
        };
        let file_report = ingest_file_with(
            store.clone(),
            collection,
            &file.provider_id,
            Source::File(file.path.clone()),
            &file.source_name,
            options,
            progress,
            totals,
            None,
        )
        .await?;
        bytes_before += file.size;
        report.add(file_report);
    }
    // Held data is released as soon as it may be taken (R-C1), not only when a server runs.
    report.held_release = release_held(store, collection, options).await?;
    Ok(report)
}

/// Notification and refusal CSVs of a provider directory, recorded in the registers.
async fn import_registers(
    collection: &Collection,
    dir: &Path,
    provider_id: &str,
) -> Result<(), IngestError> {
    let provider = ProviderId(provider_id.to_owned());
    for (file_name, is_refusals) in [(NOTIFICATIONS_FILE, false), (REFUSALS_FILE, true)] {
        let path = dir.join(provider_id).join(file_name);
        if !path.is_file() {
            continue;
        }
        let file = File::open(&path).map_err(|source| IngestError::Io {
            path: path.clone(),
            action: "open",
            source,
        })?;
        let reader = BufReader::new(file);
        let imported = if is_refusals {
            collection
                .import_refusals_csv(&provider, reader, "file-intake")
                .await
        } else {
            collection
                .import_notifications_csv(&provider, reader, "file-intake")
                .await
        };
        let imported = imported.map_err(|error| IngestError::Collection {
            source_name: format!("{provider_id}/{file_name}"),
            error: Box::new(error),
        })?;
        for problem in &imported.problems {
            // Row problems name the line and the rule, never a value.
            tracing::warn!(file = %path.display(), line = problem.line, reason = %problem.reason, "register row not recorded");
        }
    }
    Ok(())
}

/// A source file found in an intake directory.
struct SourceFile {
    provider_id: String,
    path: PathBuf,
    source_name: String,
    size: u64,
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf, std::fs::FileType)>, IngestError> {
    let io = |source| IngestError::Io {
        path: dir.to_owned(),
        action: "list directory",
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let file_type = entry.file_type().map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        entries.push((name, entry.path(), file_type));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// The `*.ndjson` files of each provider directory, checking every directory is a provider.
fn source_files(
    dir: &Path,
    providers: &[kiban_metadata::NewProvider],
) -> Result<Vec<SourceFile>, IngestError> {
    let mut files = Vec::new();
    for (name, path, file_type) in sorted_entries(dir)? {
        if !file_type.is_dir()
            || name.starts_with('.')
            || IGNORED_DIRECTORIES.contains(&name.as_str())
        {
            continue;
        }
        if !providers.iter().any(|p| p.id == name) {
            return Err(IngestError::UnknownProviderDirectory { path });
        }
        for (file_name, file_path, file_type) in sorted_entries(&path)? {
            let is_source = Path::new(&file_name)
                .extension()
                .is_some_and(|e| e == SOURCE_EXTENSION);
            if file_type.is_dir() || !is_source {
                continue;
            }
            let size = std::fs::metadata(&file_path)
                .map_err(|source| IngestError::Io {
                    path: file_path.clone(),
                    action: "read size of",
                    source,
                })?
                .len();
            files.push(SourceFile {
                provider_id: name.clone(),
                source_name: format!("{name}/{file_name}"),
                path: file_path,
                size,
            });
        }
    }
    Ok(files)
}

/// Where a file's bytes sit in the whole run, for progress.
#[derive(Debug, Clone, Copy)]
struct ProgressTotals {
    bytes_before: u64,
    bytes_total: u64,
}

/// Ingests one source file of a registered provider (see the crate documentation). Resumes
/// an interrupted intake of the same bytes after its last committed line, and skips a
/// completed one.
///
/// Unlike [`ingest_dir`], this does not remove the orphans of a killed run: a resumed file
/// rewrites its own uncommitted chunk files under the same names anyway.
pub async fn ingest_file(
    store: Arc<Store>,
    collection: &Collection,
    provider_id: &str,
    path: &Path,
    source_name: &str,
    options: &IngestOptions,
    progress: &(dyn Fn(IngestProgress) + Send + Sync),
) -> Result<FileReport, IngestError> {
    let size = std::fs::metadata(path)
        .map_err(|source| IngestError::Io {
            path: path.to_owned(),
            action: "read size of",
            source,
        })?
        .len();
    let totals = ProgressTotals {
        bytes_before: 0,
        bytes_total: size,
    };
    ingest_file_with(
        store,
        collection,
        provider_id,
        Source::File(path.to_owned()),
        source_name,
        options,
        progress,
        totals,
        None,
    )
    .await
}

/// Ingests one upload of a registered provider: the same validation, mapping, dedupe,
/// quarantine and atomic commits as a file, from memory. The acquisition record is keyed by
/// the SHA-256 of the body, so the same body sent again is recognized (`skipped`) and an
/// upload interrupted by a crash resumes where it stopped when it is sent again.
///
/// A [`UploadBody::Document`] is one resource whatever its line breaks: JSON allows no raw
/// line break inside a string, so breaks are spaces between tokens and are read as such.
pub async fn ingest_upload(
    store: Arc<Store>,
    collection: &Collection,
    provider_id: &str,
    source_name: &str,
    body: UploadBody,
    options: &IngestOptions,
) -> Result<FileReport, IngestError> {
    let (bytes, one_document) = match body {
        UploadBody::Document(bytes) => (bytes, true),
        UploadBody::Ndjson(bytes) => (bytes, false),
    };
    let totals = ProgressTotals {
        bytes_before: 0,
        bytes_total: bytes.len() as u64,
    };
    let source = Source::Memory {
        bytes: Arc::from(bytes),
        one_document,
    };
    ingest_file_with(
        store,
        collection,
        provider_id,
        source,
        source_name,
        options,
        &|_| {},
        totals,
        None,
    )
    .await
}

/// What [`release_held`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReleaseReport {
    /// Held lines taken now that their patients are eligible.
    pub lines_released: u64,
    /// Held lines dropped because a patient opted out while they were held.
    pub lines_refused: u64,
    /// Held lines still waiting.
    pub lines_still_held: u64,
    /// The intakes of the released lines (one per provider), as acquisition records.
    pub intakes: Vec<FileReport>,
}

/// Lines read per release round.
const RELEASE_BATCH: i64 = 10_000;

/// Takes the held lines whose patients have become eligible (R-C1: data that arrived before
/// the waiting period ended is released automatically, never dropped) and drops those whose
/// patients opted out meanwhile (R-C2). Released lines go through intake again, as one intake
/// per provider (same validation, dedupe and acquisition record), then their blobs are
/// deleted. Safe to run at any time and to re-run after a crash: a release already taken is
/// recognized by its content hash and only settled.
pub async fn release_held(
    store: Arc<Store>,
    collection: &Collection,
    options: &IngestOptions,
) -> Result<ReleaseReport, IngestError> {
    let meta = collection.metadata();
    let mut report = ReleaseReport::default();
    let held = meta.held_lines(RELEASE_BATCH).await?;
    let mut by_provider: BTreeMap<String, Vec<kiban_metadata::HeldLine>> = BTreeMap::new();
    for line in held {
        by_provider
            .entry(line.provider_id.clone())
            .or_default()
            .push(line);
    }
    let collection_error = |error| IngestError::Collection {
        source_name: "held lines".to_owned(),
        error: Box::new(error),
    };
    for (provider_id, lines) in by_provider {
        let provider = ProviderId(provider_id.clone());
        let mut keys: Vec<PatientKey> = lines
            .iter()
            .flat_map(|l| l.record.patient_keys.iter().cloned().map(PatientKey))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        keys.dedup();
        let eligibility = collection
            .eligibility_many(&provider, &keys)
            .await
            .map_err(collection_error)?;
        let mut release = Vec::new();
        for line in lines {
            let states: Vec<Option<&Eligibility>> = line
                .record
                .patient_keys
                .iter()
                .map(|k| eligibility.get(&PatientKey(k.clone())))
                .collect();
            if states
                .iter()
                .any(|s| matches!(s, Some(Eligibility::Refused { .. })))
            {
                meta.settle_held_line(&line.record.blob_path, false, None)
                    .await?;
                store.remove_blob(&line.record.blob_path)?;
                report.lines_refused += 1;
            } else if states
                .iter()
                .all(|s| matches!(s, Some(Eligibility::Eligible { .. })))
            {
                release.push(line);
            } else {
                report.lines_still_held += 1;
            }
        }
        if release.is_empty() {
            continue;
        }
        let mut body = Vec::new();
        for line in &release {
            body.extend_from_slice(&store.read_blob(&line.record.blob_path)?);
            body.push(b'\n');
        }
        let source_name = format!("{provider_id}/released-held-lines");
        let intake = ingest_upload(
            store.clone(),
            collection,
            &provider_id,
            &source_name,
            UploadBody::Ndjson(body),
            options,
        )
        .await?;
        for line in &release {
            meta.settle_held_line(&line.record.blob_path, true, Some(&intake.intake_id))
                .await?;
            store.remove_blob(&line.record.blob_path)?;
        }
        report.lines_released += release.len() as u64;
        report.intakes.push(intake);
    }
    Ok(report)
}

/// Records, for the acquisition record (R-C4, Art. 33), the notice under which each patient
/// taken in a chunk was collected: day and means of the patient's first notification.
async fn record_notification_basis(
    collection: &Collection,
    provider_id: &str,
    intake_id: &str,
    outcome: &ChunkOutcome,
) -> Result<(), kiban_collection::CollectionError> {
    if outcome.taken_patients.is_empty() {
        return Ok(());
    }
    let keys: Vec<PatientKey> = outcome
        .taken_patients
        .iter()
        .cloned()
        .map(PatientKey)
        .collect();
    let basis = collection
        .notification_basis_many(&ProviderId(provider_id.to_owned()), &keys)
        .await?;
    let rows: Vec<IntakePatientBasis> = basis
        .into_iter()
        .map(|(key, basis)| IntakePatientBasis {
            patient_key: key.0,
            notified_on: basis.notified_on,
            means: basis.means,
        })
        .collect();
    collection
        .metadata()
        .record_intake_notification_basis(intake_id, &rows)
        .await?;
    Ok(())
}

/// Where the bytes of an intake come from.
#[derive(Debug, Clone)]
enum Source {
    /// A file on disk, read twice (hash, then lines).
    File(PathBuf),
    /// A body held in memory; `one_document` turns line breaks into spaces (one line).
    Memory {
        bytes: Arc<[u8]>,
        one_document: bool,
    },
}

impl Source {
    /// SHA-256 (hex) and size of the bytes.
    fn sha256(&self) -> Result<(String, u64), IngestError> {
        match self {
            Source::File(path) => file_sha256(path),
            Source::Memory { bytes, .. } => Ok((
                hex::encode(Sha256::digest(bytes.as_ref())),
                bytes.len() as u64,
            )),
        }
    }

    /// A reader over the bytes, as lines.
    fn reader(&self) -> Result<Box<dyn BufRead + Send>, IngestError> {
        match self {
            Source::File(path) => {
                let file = File::open(path).map_err(|source| IngestError::Io {
                    path: path.to_owned(),
                    action: "open",
                    source,
                })?;
                Ok(Box::new(BufReader::with_capacity(256 * 1024, file)))
            }
            Source::Memory {
                bytes,
                one_document: false,
            } => Ok(Box::new(Cursor::new(SharedBytes(bytes.clone())))),
            Source::Memory {
                bytes,
                one_document: true,
            } => {
                let flat: Vec<u8> = bytes
                    .iter()
                    .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
                    .collect();
                Ok(Box::new(Cursor::new(flat)))
            }
        }
    }

    /// The path named in read errors (a memory body has none).
    fn path(&self) -> PathBuf {
        match self {
            Source::File(path) => path.clone(),
            Source::Memory { .. } => PathBuf::from("(upload)"),
        }
    }
}

/// Shared bytes a [`Cursor`] can read without copying them.
struct SharedBytes(Arc<[u8]>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// SHA-256 of a file, streamed.
fn file_sha256(path: &Path) -> Result<(String, u64), IngestError> {
    let io = |source| IngestError::Io {
        path: path.to_owned(),
        action: "read",
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Phase A of a file's intake, run ahead of the commits: reads lines and parses them in
/// parallel, one chunk at a time.
struct ChunkReader {
    store: Arc<Store>,
    path: PathBuf,
    provider_id: String,
    intake_id: String,
    max_line_bytes: usize,
    lines: BoundedLines<Box<dyn BufRead + Send>>,
    lines_read: u64,
}

impl ChunkReader {
    /// Reads up to `count` lines and runs phase A on them in parallel.
    fn read_and_parse(&mut self, count: usize) -> Result<Vec<ParsedLine>, IngestError> {
        let mut batch: Vec<SourceLine> = Vec::with_capacity(count.min(4096));
        while batch.len() < count {
            let next = self
                .lines
                .next_line()
                .map_err(|source| IngestError::ReadLine {
                    path: self.path.clone(),
                    line: self.lines_read + 1,
                    source,
                })?;
            match next {
                Some(line) => {
                    self.lines_read += 1;
                    batch.push(line);
                }
                None => break,
            }
        }
        let ctx = ParseContext {
            store: &self.store,
            provider_id: &self.provider_id,
            intake_id: &self.intake_id,
            max_line_bytes: self.max_line_bytes,
        };
        Ok(batch
            .into_par_iter()
            .map(|line| parse_line(line, &ctx))
            .collect())
    }

    /// Parses the file chunk by chunk on a blocking thread, sending each chunk as soon as it
    /// is ready. One chunk waits in the channel while the previous one is decided, written and
    /// committed, so parsing and committing overlap. The reader stops at the end of the file,
    /// at its first error, or when the receiver is dropped.
    fn spawn(
        mut self,
        lines_per_chunk: usize,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<ParsedLine>, IngestError>> {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        tokio::task::spawn_blocking(move || {
            loop {
                let chunk = self.read_and_parse(lines_per_chunk);
                let done = matches!(&chunk, Ok(lines) if lines.is_empty()) || chunk.is_err();
                if sender.blocking_send(chunk).is_err() || done {
                    break;
                }
            }
        });
        receiver
    }
}

/// The identity digests the metadata store is asked about for a chunk.
fn chunk_digests(lines: &[ParsedLine]) -> Vec<[u8; 16]> {
    let mut digests = Vec::new();
    for line in lines {
        for entry in &line.entries {
            if let Ok(prepared) = &entry.outcome {
                digests.push(prepared.identity_digest);
            }
        }
    }
    digests.sort_unstable();
    digests.dedup();
    digests
}

/// The intake of one file. `max_chunks` stops after committing that many chunks (as if the
/// process were killed right after a commit), for tests of the resume path.
#[allow(clippy::too_many_arguments)]
async fn ingest_file_with(
    store: Arc<Store>,
    collection: &Collection,
    provider_id: &str,
    source: Source,
    source_name: &str,
    options: &IngestOptions,
    progress: ProgressFn<'_>,
    totals: ProgressTotals,
    max_chunks: Option<u64>,
) -> Result<FileReport, IngestError> {
    let meta = collection.metadata();
    let hashed = source.clone();
    let (sha256, size) = run_blocking(source_name, move || hashed.sha256()).await?;
    let intake = meta.begin_intake(provider_id, source_name, &sha256).await?;
    let mut report = FileReport {
        provider_id: provider_id.to_owned(),
        source: source_name.to_owned(),
        intake_id: intake.id.clone(),
        resumed_after_line: intake.lines_read.max(0) as u64,
        ..Default::default()
    };
    let emit = |file_bytes_done: u64, lines_done: u64| {
        progress(IngestProgress {
            source: source_name.to_owned(),
            bytes_done: totals.bytes_before + file_bytes_done.min(size),
            bytes_total: totals.bytes_total,
            lines_done,
        })
    };
    if intake.status == IntakeStatus::Completed {
        report.skipped = true;
        report.resumed_after_line = 0;
        tracing::info!(source = source_name, intake = %intake.id, "already ingested; skipped");
        emit(size, intake.lines_read.max(0) as u64);
        return Ok(report);
    }
    let reader = source.reader()?;
    let lines_per_chunk = options.lines_per_chunk.max(1);
    let mut chunks = ChunkReader {
        store: store.clone(),
        path: source.path(),
        provider_id: provider_id.to_owned(),
        intake_id: intake.id.clone(),
        max_line_bytes: options.max_line_bytes,
        lines: BoundedLines::new(reader, options.max_line_bytes),
        lines_read: 0,
    }
    .spawn(lines_per_chunk);
    let mut next_chunk = async || -> Result<Vec<ParsedLine>, IngestError> {
        match chunks.recv().await {
            Some(chunk) => chunk,
            // The reader ended without a last (empty) chunk: it panicked.
            None => Err(IngestError::Worker {
                source_name: source_name.to_owned(),
                reason: "stopped reading".to_owned(),
            }),
        }
    };
    let mut state = FileState::default();
    let mut file_bytes_done = 0u64;
    let mut lines_done = 0u64;

    // Resume: replay the committed lines without writing, so the state carried between
    // chunks (Patients of earlier lines) is what the interrupted run had. Chunks are cut at
    // the same line numbers as in the interrupted run, as the chunk size is the same.
    let to_replay = report.resumed_after_line;
    if to_replay > 0 {
        tracing::info!(
            source = source_name,
            lines = to_replay,
            "resuming an interrupted intake"
        );
    }
    let mut pending: Option<Vec<ParsedLine>> = None;
    while lines_done < to_replay {
        let mut parsed = next_chunk().await?;
        if parsed.is_empty() {
            break;
        }
        let replay_count = ((to_replay - lines_done) as usize).min(parsed.len());
        let rest = parsed.split_off(replay_count);
        let known = meta.known_resources(&chunk_digests(&parsed)).await?;
        let worker_store = store.clone();
        let worker_provider = provider_id.to_owned();
        let (returned, bytes, lines) = run_blocking(source_name, move || {
            let ctx = DecideContext {
                store: &worker_store,
                provider_id: &worker_provider,
                known: &known,
            };
            let decided = decide_chunk(parsed, &mut state, &ctx);
            let (lines, bytes) = decided_size(&decided);
            Ok((state, bytes, lines))
        })
        .await?;
        state = returned;
        file_bytes_done += bytes;
        lines_done += lines;
        emit(file_bytes_done, lines_done);
        if !rest.is_empty() {
            pending = Some(rest);
        }
    }

    let mut chunk_index = intake.chunks_committed;
    loop {
        if max_chunks.is_some_and(|max| report.chunks >= max) {
            return Ok(report);
        }
        let parsed = match pending.take() {
            Some(parsed) => parsed,
            None => next_chunk().await?,
        };
        if parsed.is_empty() {
            break;
        }
        let known = meta.known_resources(&chunk_digests(&parsed)).await?;
        let worker_store = store.clone();
        let worker_provider = provider_id.to_owned();
        let worker_intake = intake.id.clone();
        let worker_source = source_name.to_owned();
        let decide_store = worker_store.clone();
        let decide_provider = worker_provider.clone();
        let (returned, decided) = run_blocking(source_name, move || {
            let ctx = DecideContext {
                store: &decide_store,
                provider_id: &decide_provider,
                known: &known,
            };
            let decided = decide_chunk(parsed, &mut state, &ctx);
            Ok((state, decided))
        })
        .await?;
        state = returned;
        let keys: Vec<PatientKey> = chunk_patient_keys(&decided)
            .into_iter()
            .map(PatientKey)
            .collect();
        let eligibility: HashMap<String, Eligibility> = collection
            .eligibility_many(&ProviderId(provider_id.to_owned()), &keys)
            .await
            .map_err(|error| IngestError::Collection {
                source_name: source_name.to_owned(),
                error: Box::new(error),
            })?
            .into_iter()
            .map(|(key, e)| (key.0, e))
            .collect();
        let (outcome, commit) = run_blocking(source_name, move || {
            let mut outcome = apply_eligibility(decided, &eligibility);
            let (commit, _) = write_chunk(
                &worker_store,
                &worker_intake,
                &worker_source,
                chunk_index,
                &outcome,
            )
            .map_err(|error| IngestError::Store {
                source_name: worker_source.clone(),
                error: Box::new(error),
            })?;
            // The rows are written: free them here, off the async thread that goes on to
            // the commit.
            outcome.rows = Default::default();
            Ok((outcome, commit))
        })
        .await?;
        // Before the commit: a chunk committed is skipped on resume, so its basis must be
        // recorded already; recording is idempotent, so a retried chunk adds nothing twice.
        record_notification_basis(collection, provider_id, &intake.id, &outcome)
            .await
            .map_err(|error| IngestError::Collection {
                source_name: source_name.to_owned(),
                error: Box::new(error),
            })?;
        meta.commit_chunk(&intake.id, &commit).await?;
        chunk_index += 1;
        report.chunks += 1;
        report.lines += outcome.lines;
        report.bytes += outcome.bytes;
        report.resources_accepted += outcome.accepted;
        report.resources_duplicate += outcome.duplicate;
        report.resources_rejected += outcome.quarantine.len() as u64;
        report.resources_held += outcome
            .held
            .iter()
            .map(|h| h.entries.len() as u64)
            .sum::<u64>();
        report.resources_refused += outcome.refused.len() as u64;
        for held in &outcome.held {
            for (entry_index, resource_type) in &held.entries {
                if report.held.len() < MAX_REPORTED_REJECTIONS {
                    report.held.push(HeldEntry {
                        line: held.line,
                        entry_index: *entry_index,
                        resource_type: resource_type.clone(),
                        eligible_on: held.eligible_on,
                    });
                }
            }
        }
        let room = MAX_REPORTED_REJECTIONS.saturating_sub(report.rejections.len());
        report
            .rejections
            .extend(outcome.refused.iter().take(room).map(|r| Rejection {
                line: r.line,
                entry_index: r.entry_index,
                resource_type: r.resource_type.clone(),
                reason: r.reason().to_owned(),
            }));
        let room = MAX_REPORTED_REJECTIONS.saturating_sub(report.rejections.len());
        report
            .rejections
            .extend(outcome.quarantine.iter().take(room).map(|q| Rejection {
                line: q.line,
                entry_index: q.entry_index,
                resource_type: q.resource_type.clone(),
                reason: q.reason.clone(),
            }));
        for segment in &commit.segments {
            *report
                .rows_per_table
                .entry(segment.table_name.clone())
                .or_insert(0) += segment.rows.max(0) as u64;
        }
        file_bytes_done += outcome.bytes;
        lines_done += outcome.lines;
        emit(file_bytes_done, lines_done);
    }
    meta.finish_intake(&intake.id).await?;
    tracing::info!(
        source = source_name,
        intake = %intake.id,
        accepted = report.resources_accepted,
        duplicate = report.resources_duplicate,
        rejected = report.resources_rejected,
        "intake finished"
    );
    Ok(report)
}

#[cfg(test)]
mod tests;
