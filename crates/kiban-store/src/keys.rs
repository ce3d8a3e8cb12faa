//! Envelope encryption: data keys wrapped by a master key that lives outside the data directory.
//!
//! Each dataset of the store (one per clinical table, identity, quarantine and the index key
//! used for keyed digests) has its own random 256-bit [`DataKey`]. Data keys are stored only
//! wrapped: encrypted with AES-256-GCM under the master key held by a [`KeyProvider`], with a
//! random 96-bit nonce and associated data binding the master key id and the dataset name, so
//! a wrapped key copied to another dataset does not unwrap.
//!
//! [`KeyFile`] is the default provider: a small text file holding a random master key. An
//! external KMS can implement [`KeyProvider`] instead.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::StoreError;
use crate::fsutil::{self, Existing};

/// Length of every key (master and data keys) in bytes: AES-256.
pub const KEY_LEN: usize = 32;
/// Length of an AES-GCM nonce in bytes.
pub(crate) const NONCE_LEN: usize = 12;
/// The only key-wrapping algorithm: AES-256-GCM (JOSE name).
pub const WRAP_ALGORITHM: &str = "A256GCM";

const KEY_FILE_HEADER: &str = "kiban-master-key v1";

/// A 256-bit data encryption key. The bytes are zeroed when the key is dropped and never
/// printed by `Debug`.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// Generates a random key from the operating system's generator.
    pub fn generate() -> Result<DataKey, StoreError> {
        Ok(DataKey(Zeroizing::new(fsutil::random_bytes::<KEY_LEN>(
            "generate data key",
        )?)))
    }

    /// Wraps existing key bytes (e.g. unwrapped by a KMS).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> DataKey {
        DataKey(Zeroizing::new(bytes))
    }

    /// The key bytes. Keep the borrow short; do not copy them into long-lived buffers.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key encrypted under a master key, as stored in `keyring/<dataset>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Id of the master key that wrapped it.
    pub key_id: String,
    /// Wrapping algorithm ([`WRAP_ALGORITHM`]).
    pub alg: String,
    /// AES-GCM nonce, base64.
    pub nonce: String,
    /// Encrypted key followed by the authentication tag, base64.
    pub ciphertext: String,
}

/// Holder of the master key: wraps and unwraps data keys (envelope encryption).
///
/// Implementations must bind `dataset` into the wrapping (e.g. as associated data) so that a
/// wrapped key only unwraps for the dataset it was made for.
pub trait KeyProvider: Send + Sync {
    /// Id of the master key, recorded in the store so a wrong key is detected clearly.
    fn key_id(&self) -> &str;
    /// Encrypts a data key for `dataset`.
    fn wrap(&self, dataset: &str, key: &DataKey) -> Result<WrappedKey, StoreError>;
    /// Decrypts a data key of `dataset`.
    fn unwrap(&self, dataset: &str, wrapped: &WrappedKey) -> Result<DataKey, StoreError>;
    /// Path of the file holding the master key, when there is one; [`crate::Store::open`]
    /// refuses a key file inside the data directory.
    fn key_file_path(&self) -> Option<&Path> {
        None
    }
}

/// Encrypts `plaintext` with AES-256-GCM under `key` and a fresh random nonce.
pub(crate) fn seal(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    plaintext: &[u8],
    context: &str,
) -> Result<([u8; NONCE_LEN], Vec<u8>), StoreError> {
    let crypto_error = || StoreError::Crypto {
        context: context.to_owned(),
    };
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| crypto_error())?;
    let nonce_bytes = fsutil::random_bytes::<NONCE_LEN>(context)?;
    let nonce = Nonce::from(nonce_bytes);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| crypto_error())?;
    Ok((nonce_bytes, ciphertext))
}

/// Decrypts and authenticates; `None` when the key, nonce, associated data or ciphertext is
/// not the one sealed.
pub(crate) fn open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let nonce = Nonce::from(*nonce);
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

fn wrap_aad(key_id: &str, dataset: &str) -> Vec<u8> {
    let mut aad = b"kiban-dek v1\0".to_vec();
    aad.extend_from_slice(key_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(dataset.as_bytes());
    aad
}

/// Wraps a data key under a raw master key (shared by [`KeyFile`] and tests).
fn wrap_with(
    master: &[u8; KEY_LEN],
    key_id: &str,
    dataset: &str,
    key: &DataKey,
) -> Result<WrappedKey, StoreError> {
    let (nonce, ciphertext) = seal(
        master,
        &wrap_aad(key_id, dataset),
        key.expose_bytes(),
        &format!("wrap data key of dataset {dataset}"),
    )?;
    Ok(WrappedKey {
        key_id: key_id.to_owned(),
        alg: WRAP_ALGORITHM.to_owned(),
        nonce: BASE64.encode(nonce),
        ciphertext: BASE64.encode(ciphertext),
    })
}

fn unwrap_with(
    master: &[u8; KEY_LEN],
    key_id: &str,
    dataset: &str,
    wrapped: &WrappedKey,
) -> Result<DataKey, StoreError> {
    if wrapped.key_id != key_id {
        return Err(StoreError::KeyMismatch {
            found: key_id.to_owned(),
            expected: wrapped.key_id.clone(),
        });
    }
    let malformed = |reason: &str| StoreError::Keyring {
        path: format!("wrapped data key of dataset {dataset}"),
        reason: reason.to_owned(),
    };
    if wrapped.alg != WRAP_ALGORITHM {
        return Err(malformed("unsupported wrapping algorithm"));
    }
    let nonce: [u8; NONCE_LEN] = BASE64
        .decode(&wrapped.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| malformed("nonce is not 12 bytes of base64"))?;
    let ciphertext = BASE64
        .decode(&wrapped.ciphertext)
        .map_err(|_| malformed("ciphertext is not base64"))?;
    let plaintext =
        open(master, &nonce, &wrap_aad(key_id, dataset), &ciphertext).ok_or_else(|| {
            StoreError::UnwrapFailed {
                dataset: dataset.to_owned(),
                key_id: key_id.to_owned(),
            }
        })?;
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    if plaintext.len() != KEY_LEN {
        return Err(malformed("unwrapped key is not 32 bytes"));
    }
    bytes.copy_from_slice(&plaintext);
    Ok(DataKey(bytes))
}

/// The default [`KeyProvider`]: a master key in a local file, outside the data directory.
///
/// The file is text: `kiban-master-key v1`, then `id <key id>` and `key <64 hex digits>`
/// lines. It is created with mode 0600 and refused when group or others can access it.
pub struct KeyFile {
    path: PathBuf,
    key_id: String,
    master: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KeyFile {
    /// Creates a new key file with a random master key and key id. Refuses to overwrite an
    /// existing file; creates missing parent directories.
    pub fn generate(path: &Path) -> Result<KeyFile, StoreError> {
        let label = path.display().to_string();
        if fs::symlink_metadata(path).is_ok() {
            return Err(StoreError::KeyFileExists { path: label });
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fsutil::create_private_dir(&parent, &parent.display().to_string())?;
        let key_id = format!(
            "mk-{}",
            hex::encode(fsutil::random_bytes::<8>("generate master key id")?)
        );
        let master = Zeroizing::new(fsutil::random_bytes::<KEY_LEN>("generate master key")?);
        let text = Zeroizing::new(format!(
            "{KEY_FILE_HEADER}\nid {key_id}\nkey {}\n",
            hex::encode(*master)
        ));
        let written = fsutil::write_atomic(&parent, path, &label, Existing::Keep, |mut file| {
            io::Write::write_all(&mut file, text.as_bytes())
                .map_err(|e| StoreError::io(label.clone(), "write key file", e))?;
            Ok(file)
        })?;
        if !written {
            return Err(StoreError::KeyFileExists { path: label });
        }
        Ok(KeyFile {
            path: path.to_path_buf(),
            key_id,
            master,
        })
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<KeyFile, StoreError> {
        let label = path.display().to_string();
        let metadata = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::KeyFileMissing { path: label });
            }
            Err(e) => return Err(StoreError::io(label, "read key file", e)),
        };
        if !metadata.is_file() {
            return Err(StoreError::KeyFileFormat {
                path: label,
                reason: "not a regular file".to_owned(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StoreError::KeyFilePermissions { path: label, mode });
            }
        }
        let bytes = Zeroizing::new(
            fs::read(path).map_err(|e| StoreError::io(label.clone(), "read key file", e))?,
        );
        let format_error = |reason: &str| StoreError::KeyFileFormat {
            path: label.clone(),
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| format_error("not UTF-8 text"))?;
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(format_error("first line must be `kiban-master-key v1`"));
        }
        let mut key_id = None;
        let mut master = None;
        for line in lines {
            if let Some(id) = line.strip_prefix("id ") {
                let id = id.trim();
                if id.is_empty()
                    || !id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(format_error("key id must be letters, digits, - or _"));
                }
                key_id = Some(id.to_owned());
            } else if let Some(hex_key) = line.strip_prefix("key ") {
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                hex::decode_to_slice(hex_key.trim(), &mut key[..])
                    .map_err(|_| format_error("key must be 64 hexadecimal digits"))?;
                master = Some(key);
            } else {
                return Err(format_error(
                    "unexpected line (expected `id ...` or `key ...`)",
                ));
            }
        }
        Ok(KeyFile {
            path: path.to_path_buf(),
            key_id: key_id.ok_or_else(|| format_error("missing `id` line"))?,
            master: master.ok_or_else(|| format_error("missing `key` line"))?,
        })
    }

    /// Loads the key file, creating it first if it does not exist.
    pub fn load_or_generate(path: &Path) -> Result<KeyFile, StoreError> {
        match Self::load(path) {
            Err(StoreError::KeyFileMissing { .. }) => match Self::generate(path) {
                // Another process created it in between: use theirs.
                Err(StoreError::KeyFileExists { .. }) => Self::load(path),
                other => other,
            },
            other => other,
        }
    }

    /// Path of the key file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl KeyProvider for KeyFile {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn wrap(&self, dataset: &str, key: &DataKey) -> Result<WrappedKey, StoreError> {
        wrap_with(&self.master, &self.key_id, dataset, key)
    }

    fn unwrap(&self, dataset: &str, wrapped: &WrappedKey) -> Result<DataKey, StoreError> {
        unwrap_with(&self.master, &self.key_id, dataset, wrapped)
    }

    fn key_file_path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// Absolute, symlink-resolved form of `path` as far as it exists; the missing tail is appended
/// with `.` and `..` resolved lexically.
fn canonical_best_effort(path: &Path) -> Result<PathBuf, StoreError> {
    let absolute = std::path::absolute(path)
        .map_err(|e| StoreError::io(path.display().to_string(), "resolve path", e))?;
    let components: Vec<Component<'_>> = absolute.components().collect();
    // The longest prefix that exists is resolved by the operating system (symlinks, `..`).
    for existing_len in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..existing_len].iter().collect();
        if let Ok(mut result) = prefix.canonicalize() {
            for component in &components[existing_len..] {
                match component {
                    Component::ParentDir => {
                        result.pop();
                    }
                    Component::CurDir => {}
                    other => result.push(other.as_os_str()),
                }
            }
            return Ok(result);
        }
    }
    Ok(absolute)
}

/// Refuses a key file inside (or equal to) the data directory: a copy of the data directory
/// must never carry the key that opens it. Symlinks are resolved for the parts that exist.
pub fn ensure_key_outside_data_dir(key_path: &Path, data_dir: &Path) -> Result<(), StoreError> {
    let key = canonical_best_effort(key_path)?;
    let data = canonical_best_effort(data_dir)?;
    if key.starts_with(&data) {
        return Err(StoreError::KeyInsideDataDir {
            key_path: key_path.display().to_string(),
            data_dir: data_dir.display().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_round_trip_and_dataset_binding() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyFile::generate(&dir.path().join("keys/master.key")).unwrap();
        let dek = DataKey::generate().unwrap();
        let wrapped = keys.wrap("conditions", &dek).unwrap();
        assert_eq!(wrapped.alg, WRAP_ALGORITHM);
        let back = keys.unwrap("conditions", &wrapped).unwrap();
        assert_eq!(back.expose_bytes(), dek.expose_bytes());
        // A wrapped key moved to another dataset does not unwrap.
        assert!(matches!(
            keys.unwrap("identity", &wrapped),
            Err(StoreError::UnwrapFailed { .. })
        ));
        assert_eq!(format!("{dek:?}"), "DataKey(<redacted>)");
    }

    #[test]
    fn generate_refuses_to_overwrite_and_load_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let generated = KeyFile::generate(&path).unwrap();
        let before = fs::read(&path).unwrap();
        assert!(matches!(
            KeyFile::generate(&path),
            Err(StoreError::KeyFileExists { .. })
        ));
        assert_eq!(fs::read(&path).unwrap(), before);
        let loaded = KeyFile::load(&path).unwrap();
        assert_eq!(loaded.key_id(), generated.key_id());
        assert_eq!(*loaded.master, *generated.master);
        let again = KeyFile::load_or_generate(&path).unwrap();
        assert_eq!(again.key_id(), generated.key_id());
        assert!(!format!("{loaded:?}").contains(&hex::encode(*loaded.master)));
        // No temporary files left beside the key.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn load_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.key");
        assert!(matches!(
            KeyFile::load(&missing),
            Err(StoreError::KeyFileMissing { .. })
        ));
        let bad = dir.path().join("bad.key");
        fsutil::create_new_private_file(&bad).unwrap();
        fs::write(&bad, "hello\n").unwrap();
        let err = KeyFile::load(&bad).unwrap_err();
        assert!(matches!(err, StoreError::KeyFileFormat { .. }), "{err}");
        fs::write(&bad, "kiban-master-key v1\nid mk-1\nkey 00ff\n").unwrap();
        assert!(matches!(
            KeyFile::load(&bad),
            Err(StoreError::KeyFileFormat { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let open = dir.path().join("open.key");
            KeyFile::generate(&open).unwrap();
            fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                KeyFile::load(&open),
                Err(StoreError::KeyFilePermissions { mode: 0o644, .. })
            ));
        }
        let generated = KeyFile::load_or_generate(&dir.path().join("sub/new.key")).unwrap();
        assert!(generated.key_id().starts_with("mk-"));
    }

    #[test]
    fn wrong_master_key_is_reported_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = KeyFile::generate(&dir.path().join("a.key")).unwrap();
        let b = KeyFile::generate(&dir.path().join("b.key")).unwrap();
        let wrapped = a.wrap("index", &DataKey::generate().unwrap()).unwrap();
        let err = b.unwrap("index", &wrapped).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("master key does not match this data directory"));
        assert!(message.contains(a.key_id()) && message.contains(b.key_id()));
    }

    #[test]
    fn key_inside_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("keyring")).unwrap();
        assert!(matches!(
            ensure_key_outside_data_dir(&data.join("master.key"), &data),
            Err(StoreError::KeyInsideDataDir { .. })
        ));
        assert!(ensure_key_outside_data_dir(&data, &data).is_err());
        assert!(ensure_key_outside_data_dir(&data.join("x/../keyring/k.key"), &data).is_err());
        assert!(ensure_key_outside_data_dir(&data.join("../data/k.key"), &data).is_err());
        assert!(ensure_key_outside_data_dir(&dir.path().join("master.key"), &data).is_ok());
        // A sibling whose name merely starts with the data directory's name is outside.
        assert!(ensure_key_outside_data_dir(&dir.path().join("data2/master.key"), &data).is_ok());
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&data, &link).unwrap();
            assert!(ensure_key_outside_data_dir(&link.join("k.key"), &data).is_err());
        }
    }
}
