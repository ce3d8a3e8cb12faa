//! Typed errors of the anonymization engine.

use std::path::PathBuf;

/// Largest number of missing values listed in a [`AnonymizeError::ValuesMissingFromHierarchy`].
pub const MAX_LISTED_MISSING_VALUES: usize = 20;

/// Everything that can go wrong while preparing, searching or writing a release.
///
/// Messages name files, lines, columns and rules. The only data values ever carried are
/// quasi-identifier values absent from a hierarchy (the user needs them to fix the hierarchy);
/// those are generalizable attribute values, never direct identifiers.
#[derive(Debug, thiserror::Error)]
pub enum AnonymizeError {
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The delimited reader failed (malformed quoting, invalid UTF-8, ...).
    #[error("cannot parse {path}: {message}")]
    Csv {
        /// The file concerned.
        path: PathBuf,
        /// What the CSV reader reported (position, not content).
        message: String,
    },
    /// A data row has a different number of fields than the header.
    #[error("{path}, line {line}: {found} fields where the header has {expected}")]
    RaggedRow {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number in the file.
        line: u64,
        /// Number of fields in the header.
        expected: usize,
        /// Number of fields in this row.
        found: usize,
    },
    /// The data file has a header but no data rows (or no header at all).
    #[error("{path}: the data set has no records")]
    EmptyData {
        /// The file concerned.
        path: PathBuf,
    },
    /// A column named in the configuration is not in the data header.
    #[error("unknown column `{column}` (not in the data header)")]
    UnknownColumn {
        /// The column name as configured.
        column: String,
    },
    /// A column was given two roles (e.g. both quasi-identifying and sensitive).
    #[error("column `{column}` is given more than one role")]
    ConflictingRoles {
        /// The column concerned.
        column: String,
    },
    /// No quasi-identifier was configured.
    #[error("at least one quasi-identifying column is required")]
    NoQuasiIdentifiers,
    /// A quasi-identifier has no hierarchy.
    #[error("no generalization hierarchy for quasi-identifier `{column}`")]
    MissingHierarchy {
        /// The column concerned.
        column: String,
    },
    /// A hierarchy file or builder specification is malformed.
    #[error("hierarchy `{hierarchy}`: {rule}")]
    InvalidHierarchy {
        /// Hierarchy (column) name or file.
        hierarchy: String,
        /// The rule that is violated, with line/level where relevant.
        rule: String,
    },
    /// Values of the data are absent from the hierarchy of their column.
    #[error(
        "column `{column}`: {count} distinct value(s) missing from the hierarchy, e.g. {listed:?}"
    )]
    ValuesMissingFromHierarchy {
        /// The column concerned.
        column: String,
        /// Number of distinct values missing.
        count: usize,
        /// Up to [`MAX_LISTED_MISSING_VALUES`] of the missing values, sorted.
        listed: Vec<String>,
    },
    /// A value does not follow the declared type of its column (the value is never shown).
    #[error("{path}, line {line}, column `{column}`: the value is not {rule}")]
    InvalidValue {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line in the file (for Parquet: the 1-based row number).
        line: u64,
        /// The column concerned.
        column: String,
        /// The type rule that is violated.
        rule: String,
    },
    /// A Parquet file could not be read.
    #[error("cannot read Parquet file {path}: {message}")]
    Parquet {
        /// The file concerned.
        path: PathBuf,
        /// What the Parquet reader reported.
        message: String,
    },
    /// A Parquet column has an Arrow type the engine does not read.
    #[error("{path}: column `{column}` has unsupported type {data_type}")]
    UnsupportedColumnType {
        /// The file concerned.
        path: PathBuf,
        /// The column concerned.
        column: String,
        /// The Arrow type.
        data_type: String,
    },
    /// A column's declared type does not fit how it is used (a builder or a privacy model).
    #[error("column `{column}` has type {declared}, but {usage} needs {required}")]
    TypeMismatch {
        /// The column concerned.
        column: String,
        /// Its declared (or inferred) type.
        declared: String,
        /// What needs another type (e.g. "the intervals hierarchy builder").
        usage: String,
        /// The types it accepts.
        required: String,
    },
    /// The population table of k-map is malformed.
    #[error("population table {path}: {rule}")]
    InvalidPopulation {
        /// The file concerned.
        path: PathBuf,
        /// The rule that is violated, with the line where relevant.
        rule: String,
    },
    /// A privacy parameter is out of range.
    #[error("invalid privacy parameter: {0}")]
    InvalidParameter(String),
    /// k exceeds the number of records: no release can be k-anonymous.
    #[error("k = {k} is larger than the number of records ({records})")]
    KLargerThanData {
        /// Requested k.
        k: usize,
        /// Number of records in the data set.
        records: usize,
    },
    /// ℓ-diversity or t-closeness was configured without a sensitive attribute.
    #[error("{model} needs at least one sensitive column")]
    NoSensitiveAttribute {
        /// The model concerned.
        model: &'static str,
    },
    /// The input differs between the two passes of the streaming mode (a row count, or a
    /// quasi-identifier tuple not seen in the first pass).
    #[error("{path} changed between the two passes of the streaming mode (line {line})")]
    InputChanged {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line (for Parquet: row) where the difference was found.
        line: u64,
    },
    /// A feature needs the rows in memory and cannot be used in the streaming mode.
    #[error("{feature} is not available in the streaming mode; set `streaming = false`")]
    NotStreamable {
        /// The feature concerned.
        feature: &'static str,
    },
    /// Not even the most general transformation satisfies the privacy models.
    #[error("no transformation satisfies the privacy models within the suppression limit")]
    NoSolution,
}

/// Result type of this crate.
pub type Result<T, E = AnonymizeError> = std::result::Result<T, E>;
