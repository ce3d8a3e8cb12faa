//! kiban's encrypted store (R-L4, R-A1, R-A5): clinical tables as encrypted Parquet, identity
//! in a separate area under its own key, quarantined input as encrypted blobs.
//!
//! # Layout of a data directory
//!
//! ```text
//! <data dir>/
//!   clinical/<table>/<name>.parquet   one directory per clinical table (kiban_model::ClinicalTable)
//!   identity/<name>.parquet           IdentityRow segments, under the identity key only
//!   quarantine/<name>.enc             encrypted blobs (BlobArea::Quarantine)
//!   keyring/store.json                format version and the id of the master key
//!   keyring/<dataset>.json            each dataset's data key, wrapped by the master key
//!   tmp/                              files being written; cleared by Store::open
//! ```
//!
//! Nothing under the data directory is plaintext data: Parquet files, blobs and data keys are
//! all encrypted; `store.json` holds only the format and the master key id.
//!
//! # Envelope encryption
//!
//! Each dataset (every clinical table, `identity`, `quarantine`, and `index` for keyed
//! digests) has a random 256-bit [`DataKey`], generated when the store is first opened and kept
//! only wrapped (AES-256-GCM, random nonce, associated data binding the master key id and the
//! dataset) in `keyring/<dataset>.json`. The master key is held by a [`KeyProvider`]: by
//! default a [`KeyFile`] that must live outside the data directory
//! ([`ensure_key_outside_data_dir`]); a KMS can implement the trait instead. Opening a store
//! with another master key fails with "master key does not match this data directory".
//!
//! Parquet segments use **Parquet Modular Encryption** (uniform encryption: encrypted footer,
//! every column and page under the dataset's 256-bit data key, AES-GCM), so other engines that
//! implement the standard (DataFusion, PyArrow, Spark) can read them given the key; the
//! footer key metadata is `kiban:<dataset>`. The file's relative path is its AAD prefix (not
//! stored in the file), so a file copied to another path fails to decrypt;
//! [`Store::file_decryption_properties`] gives readers the matching properties. Blobs are
//! AES-256-GCM envelopes (`KIBANENC`, version, nonce, ciphertext) with the relative path as
//! associated data.
//!
//! Patient keys and dedupe keys are HMAC-SHA256 digests under the `index` data key
//! ([`Store::patient_key`], [`Store::keyed_digest`]): stable for a store, meaningless without
//! its master key.
//!
//! # Commit protocol
//!
//! Every file is written to `tmp/`, flushed, renamed into place, and its directory flushed:
//! a file is either absent or complete. Names are deterministic (chosen by the caller, e.g.
//! `<intake>-<chunk>`), so a retried write replaces the same file. The caller then records
//! the file's relative path in the metadata database, in one transaction with whatever else
//! the step commits. A process killed between the rename and the commit leaves an orphan
//! file, which [`Store::remove_uncommitted`] deletes given the committed paths; a process
//! killed before the rename leaves only a temporary file, which [`Store::open`] clears.
//!
//! # Example
//!
//! ```
//! use std::collections::HashSet;
//! use std::sync::Arc;
//! use kiban_model::{ConditionRow, RowCommon};
//! use kiban_store::{BlobArea, KeyFile, Store};
//!
//! # fn main() -> Result<(), kiban_store::StoreError> {
//! # let base = tempfile::tempdir().map_err(|e| kiban_store::StoreError::Crypto { context: e.to_string() })?;
//! let keys = KeyFile::load_or_generate(&base.path().join("keys/master.key"))?;
//! let store = Store::open(&base.path().join("data"), Arc::new(keys))?;
//!
//! let patient = store.patient_key("prov-001", "P000123");
//! let row = ConditionRow {
//!     common: RowCommon::new("prov-001", "intake-1", patient.as_str(), "cond-1"),
//!     icd10: Some("E11.9".into()),
//!     ..Default::default()
//! };
//! let segment = store.write_segment("intake-1-0000", &[row.clone()])?;
//! assert_eq!(segment.relative_path, "clinical/conditions/intake-1-0000.parquet");
//! assert_eq!(store.read_segment::<ConditionRow>(&segment.relative_path)?, vec![row]);
//!
//! let blob = store.write_blob(BlobArea::Quarantine, "intake-1-bad-0001", b"{\"resourceType\":1}")?;
//! assert_eq!(&store.read_blob(&blob)?[..], b"{\"resourceType\":1}");
//!
//! // Only the segment was committed in the metadata database: the blob is an orphan.
//! let committed = HashSet::from([segment.relative_path.clone()]);
//! assert_eq!(store.remove_uncommitted(&committed)?, 1);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod error;
mod fsutil;
mod keys;
mod store;

pub use error::StoreError;
pub use keys::{
    DataKey, KEY_LEN, KeyFile, KeyProvider, WRAP_ALGORITHM, WrappedKey, ensure_key_outside_data_dir,
};
pub use store::{
    BlobArea, CLINICAL_DIR, HELD_DATASET, HELD_DIR, IDENTITY_DATASET, IDENTITY_DIR, INDEX_DATASET,
    KEYRING_DIR, QUARANTINE_DATASET, QUARANTINE_DIR, SegmentFile, Store, TMP_DIR,
};

#[cfg(test)]
mod tests;
