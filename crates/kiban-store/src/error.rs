//! The store's error type.
//!
//! Every variant names the file (a path relative to the data directory, or the key file's path)
//! and the reason. None carries row values: identity data must never reach a log or a screen
//! through an error message.

use std::io;

/// Errors of the encrypted store and its keys.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed.
    #[error("{path}: cannot {operation}: {source}")]
    Io {
        /// The file or directory (relative to the data directory when inside it).
        path: String,
        /// What was being done (e.g. "create directory", "rename into place").
        operation: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The master key file does not exist.
    #[error("master key file {path} does not exist")]
    KeyFileMissing {
        /// Path of the key file.
        path: String,
    },
    /// The master key file exists but is not in kiban's format.
    #[error("master key file {path} is not a kiban master key: {reason}")]
    KeyFileFormat {
        /// Path of the key file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The master key file can be read by users other than its owner.
    #[error(
        "master key file {path} is accessible to group or others (mode {mode:o}); restrict it with `chmod 600`"
    )]
    KeyFilePermissions {
        /// Path of the key file.
        path: String,
        /// The file's permission bits.
        mode: u32,
    },
    /// Refused to overwrite an existing master key file.
    #[error("master key file {path} already exists; refusing to overwrite it")]
    KeyFileExists {
        /// Path of the key file.
        path: String,
    },
    /// The master key file is inside the data directory it protects.
    #[error(
        "master key file {key_path} is inside the data directory {data_dir}; keep the master key outside the data it protects"
    )]
    KeyInsideDataDir {
        /// Path of the key file.
        key_path: String,
        /// Path of the data directory.
        data_dir: String,
    },
    /// The master key given is not the one this data directory was created with.
    #[error(
        "master key does not match this data directory (key id {found}, store expects {expected})"
    )]
    KeyMismatch {
        /// Id of the master key given.
        found: String,
        /// Id of the master key the store records.
        expected: String,
    },
    /// The master key could not unwrap a data key (altered key file or keyring file).
    #[error(
        "master key {key_id} cannot unwrap the data key of dataset {dataset}: the key file does not belong to this data directory or the keyring was altered"
    )]
    UnwrapFailed {
        /// Dataset of the data key.
        dataset: String,
        /// Id of the master key used.
        key_id: String,
    },
    /// A keyring or store description file is malformed.
    #[error("{path}: {reason}")]
    Keyring {
        /// Relative path of the file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A segment or blob name chosen by the caller is not acceptable.
    #[error("invalid file name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A relative path does not designate a data file of the store.
    #[error("invalid store path {path:?}: {reason}")]
    InvalidPath {
        /// The rejected path.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A row type names a table the store does not know.
    #[error("unknown table {table}")]
    UnknownTable {
        /// The table name.
        table: String,
    },
    /// A segment holds another table than the row type asked for.
    #[error("{path}: holds table {found}, not {expected}")]
    TableMismatch {
        /// Relative path of the segment.
        path: String,
        /// Table asked for.
        expected: String,
        /// Table the path belongs to.
        found: String,
    },
    /// Writing a Parquet segment failed.
    #[error("{path}: cannot write encrypted Parquet: {reason}")]
    ParquetWrite {
        /// Relative path of the segment.
        path: String,
        /// The Parquet library's reason.
        reason: String,
    },
    /// Reading a Parquet segment failed: wrong key, altered or moved file, or corruption.
    #[error(
        "{path}: cannot read encrypted Parquet (wrong key, file altered or moved, or corrupt): {reason}"
    )]
    ParquetRead {
        /// Relative path of the segment.
        path: String,
        /// The Parquet library's reason.
        reason: String,
    },
    /// Rows could not be converted to or from Arrow.
    #[error("{path}: {source}")]
    Model {
        /// Relative path of the segment.
        path: String,
        /// The conversion error (names table, column and row, never values).
        #[source]
        source: kiban_model::ModelError,
    },
    /// An encrypted blob is not in kiban's format.
    #[error("{path}: not a kiban encrypted file: {reason}")]
    BlobFormat {
        /// Relative path of the blob.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Authenticated decryption failed: wrong key, or the file was altered or moved.
    #[error("{path}: decryption failed (wrong key, file altered or moved)")]
    Decrypt {
        /// Relative path of the file.
        path: String,
    },
    /// Encryption or random number generation failed.
    #[error("{context}: cryptographic operation failed")]
    Crypto {
        /// What was being done.
        context: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<String>, operation: &'static str, source: io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            operation,
            source,
        }
    }
}
