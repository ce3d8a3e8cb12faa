//! Errors of the intake.

use std::path::PathBuf;

/// Why an intake could not proceed. Malformed *content* never raises one (it is quarantined);
/// these are problems with the input layout, the files themselves, or the store.
///
/// Messages name files, lines and rules, never data values.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A file or directory could not be read.
    #[error("{action} {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of a source file could not be read.
    #[error("reading {path} at line {line}: {source}")]
    ReadLine {
        /// The source file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The cause.
        source: std::io::Error,
    },
    /// `providers.json` is missing or malformed.
    #[error("{path}: {reason}")]
    Providers {
        /// The providers file.
        path: PathBuf,
        /// What is wrong (entry index and field).
        reason: String,
    },
    /// A directory of the intake root is not a provider listed in `providers.json`.
    #[error("{path}: directory is not a provider listed in providers.json")]
    UnknownProviderDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// The collection registers (notifications, refusals) could not be read.
    #[error("collection registers, while ingesting {source_name}: {error}")]
    Collection {
        /// The source file (relative name).
        source_name: String,
        /// The cause.
        #[source]
        error: Box<kiban_collection::CollectionError>,
    },
    /// The encrypted store failed while writing a chunk of a file.
    #[error("store, while ingesting {source_name}: {error}")]
    Store {
        /// The source file (relative name).
        source_name: String,
        /// The cause.
        #[source]
        error: Box<kiban_store::StoreError>,
    },
    /// The store failed outside a file (e.g. removing orphans).
    #[error("store: {0}")]
    StoreSetup(Box<kiban_store::StoreError>),
    /// The metadata database failed.
    #[error("metadata: {0}")]
    Metadata(Box<kiban_metadata::MetadataError>),
    /// A background worker stopped unexpectedly.
    #[error("intake worker of {source_name} stopped: {reason}")]
    Worker {
        /// The source file (relative name).
        source_name: String,
        /// What happened.
        reason: String,
    },
}

impl From<kiban_store::StoreError> for IngestError {
    fn from(error: kiban_store::StoreError) -> Self {
        IngestError::StoreSetup(Box::new(error))
    }
}

impl From<kiban_metadata::MetadataError> for IngestError {
    fn from(error: kiban_metadata::MetadataError) -> Self {
        IngestError::Metadata(Box::new(error))
    }
}
