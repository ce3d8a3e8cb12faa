//! The encrypted store: layout, data keys, Parquet segments and encrypted blobs.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use hmac::{Hmac, KeyInit, Mac};
use kiban_model::{ClinicalTable, IdentityRow, PatientKey, TableRow};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::StoreError;
use crate::fsutil::{self, Existing};
use crate::keys::{self, DataKey, KeyProvider, NONCE_LEN, WrappedKey};

/// Directory of the clinical tables (one subdirectory per table).
pub const CLINICAL_DIR: &str = "clinical";
/// Directory of the identity store.
pub const IDENTITY_DIR: &str = "identity";
/// Directory of quarantined input.
pub const QUARANTINE_DIR: &str = "quarantine";
/// Directory of input held until its patients may be taken.
pub const HELD_DIR: &str = "held";
/// Directory of the wrapped data keys and the store description.
pub const KEYRING_DIR: &str = "keyring";
/// Directory of files being written (cleared on open).
pub const TMP_DIR: &str = "tmp";

/// Dataset name of the identity data key.
pub const IDENTITY_DATASET: &str = "identity";
/// Dataset name of the quarantine data key.
pub const QUARANTINE_DATASET: &str = "quarantine";
/// Dataset name of the held-input data key.
pub const HELD_DATASET: &str = "held";
/// Dataset name of the key used for keyed digests (patient keys, dedupe keys).
pub const INDEX_DATASET: &str = "index";

const STORE_DESCRIPTION: &str = "store.json";
const STORE_FORMAT: &str = "kiban-store";
const STORE_VERSION: u32 = 1;
const PARQUET_EXTENSION: &str = ".parquet";
const BLOB_EXTENSION: &str = ".enc";
const BLOB_MAGIC: &[u8; 8] = b"KIBANENC";
const BLOB_VERSION: u8 = 1;
const TAG_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// Areas of the store that hold encrypted blobs (opaque bytes, not tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BlobArea {
    /// Input that failed validation, kept encrypted for review (`quarantine/`).
    Quarantine,
    /// Input held until its patient may be taken (notification too recent, `held/`).
    Held,
}

impl BlobArea {
    /// Every area.
    pub const ALL: &'static [BlobArea] = &[BlobArea::Quarantine, BlobArea::Held];

    /// Directory of the area, relative to the data directory.
    pub fn dir(self) -> &'static str {
        match self {
            BlobArea::Quarantine => QUARANTINE_DIR,
            BlobArea::Held => HELD_DIR,
        }
    }

    /// Dataset whose data key encrypts the area.
    pub fn dataset(self) -> &'static str {
        match self {
            BlobArea::Quarantine => QUARANTINE_DATASET,
            BlobArea::Held => HELD_DATASET,
        }
    }

    fn from_dir(dir: &str) -> Option<BlobArea> {
        Self::ALL.iter().copied().find(|a| a.dir() == dir)
    }
}

/// A Parquet segment written by [`Store::write_segment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFile {
    /// Table name (`identity` or a clinical table).
    pub table: String,
    /// Path relative to the data directory, `/`-separated.
    pub relative_path: String,
    /// Number of rows.
    pub rows: u64,
    /// Size of the encrypted file in bytes.
    pub bytes: u64,
}

/// What a relative path designates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DataPath {
    /// A Parquet segment of `table`, encrypted under `dataset`'s key.
    Segment { table: String, dataset: String },
    /// An encrypted blob of an area.
    Blob { area: BlobArea },
}

#[derive(Debug, Serialize, Deserialize)]
struct StoreDescription {
    format: String,
    version: u32,
    master_key_id: String,
}

/// The encrypted store rooted at a data directory. See the crate documentation.
///
/// A `Store` is `Send + Sync`; share it with `Arc`. Segment names are chosen by callers, who
/// must not write the same name from two threads at once.
pub struct Store {
    data_dir: PathBuf,
    keys: Arc<dyn KeyProvider>,
    data_keys: HashMap<String, DataKey>,
    index_mac: HmacSha256,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.data_dir)
            .field("master_key_id", &self.keys.key_id())
            .finish_non_exhaustive()
    }
}

/// Checks a caller-chosen file name: `[A-Za-z0-9_-]`, 1 to 200 characters.
fn validate_name(name: &str) -> Result<(), StoreError> {
    let invalid = |reason| StoreError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > 200 {
        return Err(invalid("longer than 200 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid("only A-Z, a-z, 0-9, _ and - are allowed"));
    }
    Ok(())
}

/// Parses a relative path of a data file; rejects anything else (`..`, absolute paths, ...).
fn parse_data_path(relative_path: &str) -> Result<DataPath, StoreError> {
    let invalid = |reason| StoreError::InvalidPath {
        path: relative_path.to_owned(),
        reason,
    };
    let parts: Vec<&str> = relative_path.split('/').collect();
    let file_stem = |file: &str, extension: &str| -> Result<(), StoreError> {
        let stem = file
            .strip_suffix(extension)
            .ok_or_else(|| invalid("wrong file extension"))?;
        validate_name(stem).map_err(|_| invalid("file name must be [A-Za-z0-9_-]+"))
    };
    match parts.as_slice() {
        [CLINICAL_DIR, table, file] => {
            if ClinicalTable::from_name(table).is_none() {
                return Err(invalid("unknown clinical table"));
            }
            file_stem(file, PARQUET_EXTENSION)?;
            Ok(DataPath::Segment {
                table: (*table).to_owned(),
                dataset: (*table).to_owned(),
            })
        }
        [IDENTITY_DIR, file] => {
            file_stem(file, PARQUET_EXTENSION)?;
            Ok(DataPath::Segment {
                table: IdentityRow::TABLE.to_owned(),
                dataset: IDENTITY_DATASET.to_owned(),
            })
        }
        [dir, file] => {
            let area = BlobArea::from_dir(dir).ok_or_else(|| invalid("not a data directory"))?;
            file_stem(file, BLOB_EXTENSION)?;
            Ok(DataPath::Blob { area })
        }
        _ => Err(invalid("not a data file of the store")),
    }
}

/// Directory (relative) and dataset of a table's segments.
fn table_location(table: &str) -> Result<(String, &'static str), StoreError> {
    if table == IdentityRow::TABLE {
        return Ok((IDENTITY_DIR.to_owned(), IDENTITY_DATASET));
    }
    match ClinicalTable::from_name(table) {
        Some(t) => Ok((format!("{CLINICAL_DIR}/{}", t.name()), t.name())),
        None => Err(StoreError::UnknownTable {
            table: table.to_owned(),
        }),
    }
}

/// Every dataset with a data key, and the directory (relative) holding its files, if any.
fn datasets() -> Vec<(&'static str, Option<String>)> {
    let mut all: Vec<(&'static str, Option<String>)> = ClinicalTable::ALL
        .iter()
        .map(|t| (t.name(), Some(format!("{CLINICAL_DIR}/{}", t.name()))))
        .collect();
    all.push((IDENTITY_DATASET, Some(IDENTITY_DIR.to_owned())));
    for area in BlobArea::ALL {
        all.push((area.dataset(), Some(area.dir().to_owned())));
    }
    all.push((INDEX_DATASET, None));
    all
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, label: &str) -> Result<T, StoreError> {
    let bytes = fs::read(path).map_err(|e| StoreError::io(label, "read", e))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Keyring {
        path: label.to_owned(),
        reason: format!("malformed JSON: {e}"),
    })
}

fn json_bytes<T: Serialize>(value: &T, label: &str) -> Result<Vec<u8>, StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Keyring {
        path: label.to_owned(),
        reason: format!("cannot serialize: {e}"),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Appends `bytes` to the MAC with a length prefix, so concatenations stay unambiguous.
fn mac_part(mac: &mut HmacSha256, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

impl Store {
    /// Opens the store in `data_dir`, creating its layout and data keys if new.
    ///
    /// Refuses a key file inside the data directory and a master key other than the one the
    /// store was created with. Clears `tmp/` (leftovers of a killed process): do not open the
    /// same data directory from two processes that write at the same time.
    pub fn open(data_dir: &Path, keys: Arc<dyn KeyProvider>) -> Result<Store, StoreError> {
        if let Some(key_path) = keys.key_file_path() {
            keys::ensure_key_outside_data_dir(key_path, data_dir)?;
        }
        let data_dir = data_dir.to_path_buf();
        fsutil::create_private_dir(&data_dir, &data_dir.display().to_string())?;
        let mut dirs = vec![
            IDENTITY_DIR.to_owned(),
            KEYRING_DIR.to_owned(),
            TMP_DIR.to_owned(),
        ];
        dirs.extend(BlobArea::ALL.iter().map(|a| a.dir().to_owned()));
        dirs.extend(
            ClinicalTable::ALL
                .iter()
                .map(|t| format!("{CLINICAL_DIR}/{}", t.name())),
        );
        for dir in &dirs {
            fsutil::create_private_dir(&data_dir.join(dir), dir)?;
        }
        clear_dir(&data_dir.join(TMP_DIR), TMP_DIR)?;

        check_master_key(&data_dir, keys.as_ref())?;
        let mut data_keys = HashMap::new();
        for (dataset, dir) in datasets() {
            let key = load_or_create_data_key(&data_dir, keys.as_ref(), dataset, dir.as_deref())?;
            data_keys.insert(dataset.to_owned(), key);
        }
        let index_mac = data_keys
            .get(INDEX_DATASET)
            .and_then(|key| HmacSha256::new_from_slice(key.expose_bytes()).ok())
            .ok_or_else(|| StoreError::Crypto {
                context: "initialize keyed digest".to_owned(),
            })?;
        Ok(Store {
            data_dir,
            keys,
            data_keys,
            index_mac,
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Id of the master key the store is opened with.
    pub fn master_key_id(&self) -> &str {
        self.keys.key_id()
    }

    fn data_key(&self, dataset: &str) -> Result<&DataKey, StoreError> {
        self.data_keys
            .get(dataset)
            .ok_or_else(|| StoreError::UnknownTable {
                table: dataset.to_owned(),
            })
    }

    /// Keyed digest (HMAC-SHA256 under the index key, truncated to 16 bytes) of `parts` in
    /// `domain`. Parts are length-prefixed, so `["ab", "c"]` and `["a", "bc"]` differ, and the
    /// domain separates uses (patient keys, dedupe keys, ...). Stable across reopenings.
    pub fn keyed_digest(&self, domain: &str, parts: &[&[u8]]) -> [u8; 16] {
        let mut mac = self.index_mac.clone();
        mac.update(b"kiban keyed-digest v1\0");
        mac_part(&mut mac, domain.as_bytes());
        mac.update(&(parts.len() as u64).to_be_bytes());
        for part in parts {
            mac_part(&mut mac, part);
        }
        let full = mac.finalize().into_bytes();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&full[..16]);
        digest
    }

    /// The opaque key of a patient record: hex of [`Store::keyed_digest`] in domain
    /// `patient-key` over the provider id and the provider's patient id. Callers normalize the
    /// patient id (e.g. NFKC, trimmed) before calling, so that the same patient maps to the
    /// same key.
    pub fn patient_key(&self, provider_id: &str, provider_patient_id: &str) -> PatientKey {
        let digest = self.keyed_digest(
            "patient-key",
            &[provider_id.as_bytes(), provider_patient_id.as_bytes()],
        );
        PatientKey(hex::encode(digest))
    }

    /// Relative path a segment of `table` named `name` is written to.
    pub fn segment_path(table: &str, name: &str) -> Result<String, StoreError> {
        validate_name(name)?;
        let (dir, _) = table_location(table)?;
        Ok(format!("{dir}/{name}{PARQUET_EXTENSION}"))
    }

    /// Parquet encryption properties of a segment: uniform encryption (encrypted footer, every
    /// column under the dataset's 256-bit data key, AES-GCM) with the relative path as AAD
    /// prefix, not stored in the file, so a file moved to another path does not decrypt.
    fn encryption_properties(
        &self,
        dataset: &str,
        relative_path: &str,
    ) -> Result<Arc<FileEncryptionProperties>, StoreError> {
        let key = self.data_key(dataset)?;
        FileEncryptionProperties::builder(key.expose_bytes().to_vec())
            .with_footer_key_metadata(format!("kiban:{dataset}").into_bytes())
            .with_aad_prefix(relative_path.as_bytes().to_vec())
            .with_aad_prefix_storage(false)
            .build()
            .map_err(|e| StoreError::ParquetWrite {
                path: relative_path.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Parquet decryption properties of the segment at `relative_path` (key and AAD prefix),
    /// for readers other than [`Store::read_segment_batches`], e.g. a query engine.
    pub fn file_decryption_properties(
        &self,
        relative_path: &str,
    ) -> Result<Arc<FileDecryptionProperties>, StoreError> {
        let DataPath::Segment { dataset, .. } = parse_data_path(relative_path)? else {
            return Err(StoreError::InvalidPath {
                path: relative_path.to_owned(),
                reason: "not a Parquet segment",
            });
        };
        let key = self.data_key(&dataset)?;
        FileDecryptionProperties::builder(key.expose_bytes().to_vec())
            .with_aad_prefix(relative_path.as_bytes().to_vec())
            .build()
            .map_err(|e| StoreError::ParquetRead {
                path: relative_path.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Writes `rows` as one encrypted Parquet file (snappy) at
    /// `clinical/<table>/<name>.parquet`, or `identity/<name>.parquet` for identity rows,
    /// atomically: a retried write of the same `name` replaces the file. The caller then
    /// commits the returned path in the metadata database.
    pub fn write_segment<R: TableRow>(
        &self,
        name: &str,
        rows: &[R],
    ) -> Result<SegmentFile, StoreError> {
        let relative_path = Self::segment_path(R::TABLE, name)?;
        let (_, dataset) = table_location(R::TABLE)?;
        let batch = R::to_record_batch(rows).map_err(|source| StoreError::Model {
            path: relative_path.clone(),
            source,
        })?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .with_file_encryption_properties(self.encryption_properties(dataset, &relative_path)?)
            .build();
        let parquet_error = |e: parquet::errors::ParquetError| StoreError::ParquetWrite {
            path: relative_path.clone(),
            reason: e.to_string(),
        };
        let destination = self.data_dir.join(&relative_path);
        fsutil::write_atomic(
            &self.data_dir.join(TMP_DIR),
            &destination,
            &relative_path,
            Existing::Replace,
            |file| {
                let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties))
                    .map_err(parquet_error)?;
                writer.write(&batch).map_err(parquet_error)?;
                writer.into_inner().map_err(parquet_error)
            },
        )?;
        let bytes = fs::metadata(&destination)
            .map_err(|e| StoreError::io(relative_path.clone(), "read size", e))?
            .len();
        Ok(SegmentFile {
            table: R::TABLE.to_owned(),
            relative_path,
            rows: rows.len() as u64,
            bytes,
        })
    }

    /// Reads and decrypts every record batch of a segment.
    pub fn read_segment_batches(
        &self,
        relative_path: &str,
    ) -> Result<Vec<RecordBatch>, StoreError> {
        let decryption = self.file_decryption_properties(relative_path)?;
        let read_error = |reason: String| StoreError::ParquetRead {
            path: relative_path.to_owned(),
            reason,
        };
        let file = File::open(self.data_dir.join(relative_path))
            .map_err(|e| StoreError::io(relative_path, "open", e))?;
        let options = ArrowReaderOptions::new()
            .with_file_decryption_properties(decryption)
            // Reading the (encrypted) page index too means tampering there is detected.
            .with_page_index_policy(PageIndexPolicy::Optional);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
            .and_then(|builder| builder.build())
            .map_err(|e| read_error(e.to_string()))?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| read_error(e.to_string()))
    }

    /// Reads and decrypts a segment as rows of `R`; the path must belong to `R`'s table.
    pub fn read_segment<R: TableRow>(&self, relative_path: &str) -> Result<Vec<R>, StoreError> {
        if let DataPath::Segment { table, .. } = parse_data_path(relative_path)?
            && table != R::TABLE
        {
            return Err(StoreError::TableMismatch {
                path: relative_path.to_owned(),
                expected: R::TABLE.to_owned(),
                found: table,
            });
        }
        let mut rows = Vec::new();
        for batch in self.read_segment_batches(relative_path)? {
            rows.extend(
                R::from_record_batch(&batch).map_err(|source| StoreError::Model {
                    path: relative_path.to_owned(),
                    source,
                })?,
            );
        }
        Ok(rows)
    }

    /// Writes `plaintext` encrypted (AES-256-GCM under the area's data key, relative path as
    /// associated data) to `<area>/<name>.enc`, atomically; returns the relative path.
    ///
    /// File format: `KIBANENC`, version byte 1, 12-byte nonce, ciphertext with 16-byte tag.
    pub fn write_blob(
        &self,
        area: BlobArea,
        name: &str,
        plaintext: &[u8],
    ) -> Result<String, StoreError> {
        validate_name(name)?;
        let relative_path = format!("{}/{name}{BLOB_EXTENSION}", area.dir());
        let key = self.data_key(area.dataset())?;
        let (nonce, ciphertext) = keys::seal(
            key.expose_bytes(),
            &blob_aad(&relative_path),
            plaintext,
            &relative_path,
        )?;
        let mut bytes = Vec::with_capacity(BLOB_MAGIC.len() + 1 + NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(BLOB_MAGIC);
        bytes.push(BLOB_VERSION);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        write_store_file(&self.data_dir, &relative_path, Existing::Replace, &bytes)?;
        Ok(relative_path)
    }

    /// Reads and decrypts a blob written by [`Store::write_blob`]. The plaintext is zeroed
    /// when dropped.
    pub fn read_blob(&self, relative_path: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let DataPath::Blob { area } = parse_data_path(relative_path)? else {
            return Err(StoreError::InvalidPath {
                path: relative_path.to_owned(),
                reason: "not an encrypted blob",
            });
        };
        let mut bytes = Vec::new();
        File::open(self.data_dir.join(relative_path))
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| StoreError::io(relative_path, "read", e))?;
        let format_error = |reason| StoreError::BlobFormat {
            path: relative_path.to_owned(),
            reason,
        };
        let header_len = BLOB_MAGIC.len() + 1 + NONCE_LEN;
        if bytes.len() < header_len + TAG_LEN {
            return Err(format_error("too short"));
        }
        if &bytes[..BLOB_MAGIC.len()] != BLOB_MAGIC {
            return Err(format_error("wrong magic bytes"));
        }
        if bytes[BLOB_MAGIC.len()] != BLOB_VERSION {
            return Err(format_error("unsupported version"));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[BLOB_MAGIC.len() + 1..header_len]);
        let key = self.data_key(area.dataset())?;
        keys::open(
            key.expose_bytes(),
            &nonce,
            &blob_aad(relative_path),
            &bytes[header_len..],
        )
        .ok_or_else(|| StoreError::Decrypt {
            path: relative_path.to_owned(),
        })
    }

    /// Deletes a blob written by [`Store::write_blob`] (held input once taken or refused).
    /// A blob already gone is not an error, so a retried deletion succeeds.
    pub fn remove_blob(&self, relative_path: &str) -> Result<(), StoreError> {
        let DataPath::Blob { .. } = parse_data_path(relative_path)? else {
            return Err(StoreError::InvalidPath {
                path: relative_path.to_owned(),
                reason: "not an encrypted blob",
            });
        };
        match fs::remove_file(self.data_dir.join(relative_path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(relative_path, "remove", e)),
        }
    }

    /// Relative paths of every Parquet segment and blob on disk, sorted.
    pub fn segment_files_on_disk(&self) -> Result<Vec<String>, StoreError> {
        let mut dirs = BTreeSet::new();
        let clinical = self.data_dir.join(CLINICAL_DIR);
        let entries = fs::read_dir(&clinical)
            .map_err(|e| StoreError::io(CLINICAL_DIR, "list directory", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(CLINICAL_DIR, "list directory", e))?;
            if let Some(table) = entry.file_name().to_str()
                && ClinicalTable::from_name(table).is_some()
            {
                dirs.insert(format!("{CLINICAL_DIR}/{table}"));
            }
        }
        dirs.insert(IDENTITY_DIR.to_owned());
        dirs.extend(BlobArea::ALL.iter().map(|a| a.dir().to_owned()));
        let mut files = Vec::new();
        for dir in dirs {
            files.extend(data_files_in(&self.data_dir, &dir)?);
        }
        files.sort();
        Ok(files)
    }

    /// Deletes data files on disk whose relative path is not in `committed` (files of an
    /// ingest killed between writing a file and committing it); returns how many.
    pub fn remove_uncommitted(&self, committed: &HashSet<String>) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut touched_dirs = BTreeSet::new();
        for relative in self.segment_files_on_disk()? {
            if committed.contains(&relative) {
                continue;
            }
            fs::remove_file(self.data_dir.join(&relative))
                .map_err(|e| StoreError::io(relative.clone(), "remove uncommitted file", e))?;
            if let Some((dir, _)) = relative.rsplit_once('/') {
                touched_dirs.insert(dir.to_owned());
            }
            removed += 1;
        }
        for dir in touched_dirs {
            fsutil::sync_dir(&self.data_dir.join(&dir), &dir)?;
        }
        Ok(removed)
    }

    /// Absolute path of a data file given its relative path (validated).
    pub fn absolute_path(&self, relative_path: &str) -> Result<PathBuf, StoreError> {
        parse_data_path(relative_path)?;
        Ok(self.data_dir.join(relative_path))
    }
}

/// Records the master key id in a new store, or checks it in an existing one.
fn check_master_key(data_dir: &Path, keys: &dyn KeyProvider) -> Result<(), StoreError> {
    let label = format!("{KEYRING_DIR}/{STORE_DESCRIPTION}");
    let path = data_dir.join(&label);
    if !path.exists() {
        let description = StoreDescription {
            format: STORE_FORMAT.to_owned(),
            version: STORE_VERSION,
            master_key_id: keys.key_id().to_owned(),
        };
        let bytes = json_bytes(&description, &label)?;
        // First writer wins; a concurrent creator's description is checked below.
        write_store_file(data_dir, &label, Existing::Keep, &bytes)?;
    }
    let description: StoreDescription = read_json(&path, &label)?;
    if description.format != STORE_FORMAT || description.version != STORE_VERSION {
        return Err(StoreError::Keyring {
            path: label,
            reason: format!(
                "unsupported store format {} version {}",
                description.format, description.version
            ),
        });
    }
    if description.master_key_id != keys.key_id() {
        return Err(StoreError::KeyMismatch {
            found: keys.key_id().to_owned(),
            expected: description.master_key_id,
        });
    }
    Ok(())
}

/// Unwraps the data key of `dataset`, generating and storing it (wrapped) on first use.
fn load_or_create_data_key(
    data_dir: &Path,
    keys: &dyn KeyProvider,
    dataset: &str,
    dataset_dir: Option<&str>,
) -> Result<DataKey, StoreError> {
    let label = format!("{KEYRING_DIR}/{dataset}.json");
    let path = data_dir.join(&label);
    if !path.exists() {
        // A missing key with existing data would silently orphan that data.
        if let Some(dir) = dataset_dir
            && !data_files_in(data_dir, dir)?.is_empty()
        {
            return Err(StoreError::Keyring {
                path: label,
                reason: format!("missing, but {dir}/ holds encrypted files"),
            });
        }
        let key = DataKey::generate()?;
        let wrapped = keys.wrap(dataset, &key)?;
        let bytes = json_bytes(&wrapped, &label)?;
        if write_store_file(data_dir, &label, Existing::Keep, &bytes)? {
            return Ok(key);
        }
        // Another process created it first: fall through and use theirs.
    }
    let wrapped: WrappedKey = read_json(&path, &label)?;
    keys.unwrap(dataset, &wrapped)
}

/// Writes a small file atomically under the data directory.
fn write_store_file(
    data_dir: &Path,
    relative_path: &str,
    existing: Existing,
    bytes: &[u8],
) -> Result<bool, StoreError> {
    fsutil::write_atomic(
        &data_dir.join(TMP_DIR),
        &data_dir.join(relative_path),
        relative_path,
        existing,
        |mut file| {
            file.write_all(bytes)
                .map_err(|e| StoreError::io(relative_path, "write", e))?;
            Ok(file)
        },
    )
}

/// Relative paths of data files (`.parquet` segments, `.enc` blobs) directly in `dir`, sorted.
fn data_files_in(data_dir: &Path, dir: &str) -> Result<Vec<String>, StoreError> {
    let path = data_dir.join(dir);
    let entries = match fs::read_dir(&path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, "list directory", e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, "list directory", e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let relative = format!("{dir}/{name}");
        if parse_data_path(&relative).is_ok() {
            files.push(relative);
        }
    }
    files.sort();
    Ok(files)
}

fn blob_aad(relative_path: &str) -> Vec<u8> {
    let mut aad = BLOB_MAGIC.to_vec();
    aad.push(BLOB_VERSION);
    aad.extend_from_slice(relative_path.as_bytes());
    aad
}

/// Removes everything inside `dir` (not `dir` itself).
fn clear_dir(dir: &Path, label: &str) -> Result<(), StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io(label, "list directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(label, "list directory", e))?;
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .map_err(|e| StoreError::io(label, "inspect entry", e))?
            .is_dir();
        let result = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        result.map_err(|e| StoreError::io(label, "remove leftover", e))?;
    }
    fsutil::sync_dir(dir, label)
}
