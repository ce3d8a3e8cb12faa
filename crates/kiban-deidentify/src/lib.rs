//! De-identification of clinical extractions: pseudonymized (仮名加工, R-P2) and anonymized
//! (匿名加工, R-P1) releases, and the re-identification test of a release (R-P4).
//!
//! The input is the directory `kiban extract` writes (one `<table>.parquet` per clinical
//! table, rows of `kiban_model`); identity rows are passed decrypted, in memory.
//!
//! - [`ProjectKeyRing`] keeps one random key per project, wrapped by the master
//!   [`kiban_store::KeyProvider`]; [`ProjectKey`] is zeroed on drop and never printed.
//! - [`write_release`] writes the release tables: `patient_key` → `person` (HMAC-SHA256 of the
//!   linked person under the project key: stable across deliveries of one project, unlinkable
//!   across projects), `source_id` → `record`, references to other records pseudonymized the
//!   same way, `intake_id` removed, every date shifted by one offset per person (intervals
//!   kept). With [`ReleaseKind::Anonymized`] rare codes are also recoded up a level or removed
//!   and extreme lab values top/bottom coded (the planning pass keeps counts per code, per
//!   person-code pair and per distinct lab value, never the rows).
//! - Free text is dropped ([`FreeTextRule::Drop`], the default) or, with
//!   [`FreeTextRule::Scrub`] and [`write_release_with_scrubber`], released after a
//!   [`FreeTextScrubber`] replaced names (from the identity store, in every written form, and
//!   before honorifics), addresses, phone numbers, postal codes, e-mail addresses, ids and
//!   birth dates by tags (［氏名］, ［住所］, ...) and rewrote dates by the person's offset
//!   ([`DateRule`]); the report has [`ScrubCounts`] per column.
//! - [`derive_quasi_identifiers`] builds the person table (age, sex, region, visits,
//!   [`DECEASED_COLUMN`] when the deaths table is there, diagnoses) that `kiban anonymize`
//!   generalizes; in anonymized releases the diagnosis set
//!   is made k^m-anonymous ([`protect_diagnosis_sets`], [`DiagnosisSetOptions`]): every
//!   combination of at most m released categories is held by at least k persons, by global
//!   generalization up the ICD-10 hierarchy (category → block → chapter) and local
//!   suppression. Each person's plan ([`PersonDiagnosisPlan`], per pseudonym in
//!   [`DiagnosisRecoding`]) is given to the release ([`ReleaseOptions::diagnosis_recoding`])
//!   so the conditions table, joined on `person`, shows the same items
//!   ([`ConditionDiagnosisReport`]). With [`ReleaseOptions::clinical_item_sets`] the same
//!   rule covers each person's combined item set, the diagnosis items (kept as they are)
//!   together with the person's procedures (`procedure:<code>`), allergies
//!   (`allergy:<category>:<code>` → `allergy:<category>`) and infection-marker results
//!   (`infection:<code>:<result>` → `infection:<code>`), generalized or suppressed per person
//!   in those tables ([`ClinicalItemSetReport`]); a person without a plan (whose row the k-anonymization
//!   suppressed) is withheld from every table ([`WithheldPersonsReport`]). `visits` counts
//!   the person's encounter rows, which the release holds and anyone can count, so
//!   [`hierarchy_rows`] keeps it exact ([`VisitsGeneralization`]); a release without the
//!   encounters table ([`ReleaseOptions::tables`], which then also drops the references to
//!   it) may band it ([`QuasiIdentifierOptions::without_encounters`]). `deceased` is never
//!   generalized: the released deaths table shows it.
//! - [`linkage_attack`] tests a released person table against an attacker holding the identity
//!   store's birth date, sex and address and whether the person died (matched against
//!   [`DECEASED_COLUMN`]) with injected errors and, at higher [`AttackerKnowledge`] levels,
//!   the approximate number of visits and some diagnoses, or m items of any kinds
//!   (diagnoses, procedures, allergies, infection results, matched against the released item
//!   tables read by [`ReleasedPersonTable::read_clinical_items`]); each level is reported and
//!   [`ReidentificationPolicy`] blocks a release whose worst level is above its limit.
//!
//! Reports carry rules and counts, never keys, offsets, ids or values. The processing method
//! information (the key store) is kept apart from every release (R-P3).
//!
//! ```no_run
//! use kiban_deidentify::{
//!     AttackerErrorModel, FreeTextRule, FreeTextScrubber, PersonMap, ProjectKeyRing,
//!     QuasiIdentifierOptions, ReidentificationPolicy, ReleaseOptions, ReleasedPersonTable,
//!     derive_quasi_identifiers, linkage_attack, write_release, write_release_with_scrubber,
//! };
//! # fn demo(master: &dyn kiban_store::KeyProvider, identities: &[kiban_model::IdentityRow])
//! # -> Result<(), kiban_deidentify::DeidentifyError> {
//! let ring = ProjectKeyRing::new(std::path::Path::new("/secure/project-keys"), master);
//! let key = ring.project_key("study-2026-001")?;
//! let persons = PersonMap::new();
//! let report = write_release(
//!     std::path::Path::new("extract"),
//!     std::path::Path::new("release"),
//!     &key,
//!     &persons,
//!     &ReleaseOptions::default(),
//! )?;
//! println!("{} persons released", report.persons);
//! // Free text scrubbed instead of dropped: the scrubber knows the identity store's names.
//! let scrubber = FreeTextScrubber::new(identities, &persons)?;
//! let options = ReleaseOptions { free_text: FreeTextRule::Scrub, ..ReleaseOptions::default() };
//! write_release_with_scrubber(
//!     std::path::Path::new("extract"),
//!     std::path::Path::new("release-with-text"),
//!     &key,
//!     &persons,
//!     &options,
//!     Some(&scrubber),
//! )?;
//! let table = derive_quasi_identifiers(
//!     std::path::Path::new("extract"),
//!     identities,
//!     &persons,
//!     &key,
//!     &QuasiIdentifierOptions::default(),
//! )?;
//! let test = linkage_attack(
//!     &table,
//!     &ReleasedPersonTable::from_quasi_identifiers(&table),
//!     &AttackerErrorModel::default(),
//!     &ReidentificationPolicy::default(),
//! )?;
//! test.enforce()?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod attack;
mod clinical_items;
mod conditions;
mod diagnosis_sets;
mod hierarchies;
mod io;
mod keys;
mod quasi;
mod rare;
mod release;
mod scrub;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use attack::{
    AttackerErrorModel, AttackerKnowledge, KnowledgeLevelReport, ReidentificationPolicy,
    ReidentificationReport, ReleasedPersonTable, generalizes, linkage_attack,
};
pub use clinical_items::{ClinicalItemSetReport, ClinicalItemTableReport};
pub use conditions::ConditionDiagnosisReport;
pub use diagnosis_sets::{
    DiagnosisRecoding, DiagnosisSetOptions, DiagnosisSetReport, MAX_KNOWN_DIAGNOSES,
    PersonDiagnosisPlan, diagnosis_covers, protect_diagnosis_sets,
    protect_diagnosis_sets_with_plan,
};
pub use hierarchies::{VisitsGeneralization, hierarchy_rows, hierarchy_rows_with, region_block};
pub use keys::{PROJECT_KEY_DATASET_PREFIX, PersonMap, ProjectKey, ProjectKeyRing};
pub use quasi::{
    DECEASED_COLUMN, PREFECTURES, PersonQuasiIdentifiers, QUASI_IDENTIFIER_COLUMNS,
    QuasiIdentifierOptions, QuasiIdentifierReport, QuasiIdentifierTable, derive_quasi_identifiers,
    prefecture_of, region_of,
};
pub use rare::{CodeColumnReport, LabValueReport, RareValueOptions, RareValueReport};
pub use release::{
    FreeTextRule, FreeTextScrubReport, PERSON_COLUMN, ProviderHandling, RECORD_COLUMN, ReleaseKind,
    ReleaseOptions, ReleaseReport, TableReleaseReport, WithheldPersonsReport, write_release,
    write_release_with_scrubber,
};
pub use scrub::{DateRule, FreeTextScrubber, ScrubCategory, ScrubCounts};

/// Errors of de-identification. None carries a key, an id or a row value.
#[derive(Debug, thiserror::Error)]
pub enum DeidentifyError {
    /// The project key store cannot be read or written, or holds another project's key.
    #[error("project key store {path}: {reason}")]
    KeyStore {
        /// The key store file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Wrapping or unwrapping a key with the master key failed.
    #[error("master key: {0}")]
    MasterKey(#[from] kiban_store::StoreError),
    /// A cryptographic primitive could not be set up.
    #[error("cryptography: cannot {context}")]
    Crypto {
        /// What was being done.
        context: &'static str,
    },
    /// An option is out of range.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// The rule it breaks.
        reason: String,
    },
    /// The release directory exists and is not empty.
    #[error("release directory {0} exists and is not empty; choose a new one")]
    OutputNotEmpty(PathBuf),
    /// An extraction table cannot be read or lacks a column.
    #[error("table {table} ({path}): {reason}")]
    Table {
        /// The table.
        table: String,
        /// Its file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A released person table cannot be used for the re-identification test.
    #[error("released person table {file} line {line}: {reason}")]
    ReleasedTable {
        /// The file (or what was given).
        file: PathBuf,
        /// 1-based line (the header is line 1).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {path}: {reason}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// The re-identification test found more persons re-identified than the policy allows.
    #[error(
        "re-identification test: share {share:.4} of persons re-identified exceeds the policy limit {max_share:.4}; the release is blocked"
    )]
    ReidentificationRiskTooHigh {
        /// Share correctly re-identified.
        share: f64,
        /// The limit.
        max_share: f64,
    },
}

/// Writes any report (release, rare values, person table, re-identification test) as pretty
/// JSON, to a temporary name then renamed.
pub fn write_json_report<T: serde::Serialize>(
    report: &T,
    path: &Path,
) -> Result<(), DeidentifyError> {
    let mut bytes =
        serde_json::to_vec_pretty(report).map_err(|e| io::io_error("serialize", path, e))?;
    bytes.push(b'\n');
    io::write_file_atomic(path, &bytes)
}
