//! Where the master key lives: never inside the data directory it protects.

use anyhow::{Context, Result};
use kiban_store::{KeyFile, KeyProvider, ensure_key_outside_data_dir};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The default key file of a data directory: under the user's configuration directory, named
/// after the data directory's absolute path, so several stores on one machine get their own keys.
pub fn default_key_path(data_dir: &Path) -> Result<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .context("cannot find a configuration directory for the master key: set HOME, XDG_CONFIG_HOME or --key-file")?;
    let absolute = std::path::absolute(data_dir)
        .with_context(|| format!("cannot resolve data directory {}", data_dir.display()))?;
    let digest = Sha256::digest(absolute.to_string_lossy().as_bytes());
    let name = absolute
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    Ok(config
        .join("kiban")
        .join("keys")
        .join(format!("{name}-{}.key", &hex::encode(digest)[..12])))
}

/// Opens the master key of a data directory, creating it when the store is new.
pub fn open_master_key(
    data_dir: &Path,
    key_file: Option<&Path>,
) -> Result<(Arc<dyn KeyProvider>, PathBuf)> {
    let path = match key_file {
        Some(p) => p.to_path_buf(),
        None => default_key_path(data_dir)?,
    };
    ensure_key_outside_data_dir(&path, data_dir)?;
    let key = KeyFile::load_or_generate(&path)
        .with_context(|| format!("master key file {}", path.display()))?;
    Ok((Arc::new(key), path))
}

/// Opens the master key of a data directory if there is one, never creating it: `None` when
/// no key file was named and the default one does not exist. A named file that is missing or
/// unreadable is an error.
pub fn existing_master_key(
    data_dir: &Path,
    key_file: Option<&Path>,
) -> Result<Option<(Arc<dyn KeyProvider>, PathBuf)>> {
    let path = match key_file {
        Some(p) => p.to_path_buf(),
        None => {
            let path = default_key_path(data_dir)?;
            if !path.exists() {
                return Ok(None);
            }
            path
        }
    };
    ensure_key_outside_data_dir(&path, data_dir)?;
    let key =
        KeyFile::load(&path).with_context(|| format!("master key file {}", path.display()))?;
    Ok(Some((Arc::new(key), path)))
}

/// An existing store opened for reading and processing: its master key, the encrypted store,
/// the metadata store and the collection rules over them.
pub struct OpenStore {
    /// The master key.
    pub keys: Arc<dyn KeyProvider>,
    /// The encrypted store.
    pub store: Arc<kiban_store::Store>,
    /// The metadata store (close it when done).
    pub meta: kiban_metadata::Metadata,
    /// Registers and eligibility over both.
    pub collection: kiban_collection::Collection,
}

/// Opens the store of an existing data directory with its existing master key; a clear error
/// when the directory is not a store or the key cannot be found.
pub async fn open_existing_store(data_dir: &Path, key_file: Option<&Path>) -> Result<OpenStore> {
    if !data_dir.join(kiban_metadata::SQLITE_FILE).exists() {
        anyhow::bail!(
            "{} is not a kiban data directory (no {}); run `kiban ingest` first",
            data_dir.display(),
            kiban_metadata::SQLITE_FILE
        );
    }
    let Some((keys, _)) = existing_master_key(data_dir, key_file)? else {
        anyhow::bail!(
            "no master key found for {} (give --key-file or KIBAN_KEY_FILE): the store cannot be read without it",
            data_dir.display()
        );
    };
    let store = Arc::new(
        kiban_store::Store::open(data_dir, keys.clone())
            .with_context(|| format!("encrypted store in {}", data_dir.display()))?,
    );
    let meta = kiban_metadata::Metadata::open_in_dir(data_dir)
        .await
        .with_context(|| format!("metadata store in {}", data_dir.display()))?;
    let collection = kiban_collection::Collection::new(
        meta.clone(),
        store.clone(),
        Arc::new(kiban_collection::SystemClock),
        kiban_collection::CollectionPolicy::default(),
    );
    Ok(OpenStore {
        keys,
        store,
        meta,
        collection,
    })
}
