//! One intake process per data directory.
//!
//! An intake removes the files of interrupted intakes when it starts (they are orphans of a
//! killed run). Two processes taking data into the same directory would remove each other's
//! files in flight, so `kiban ingest`, `kiban demo` and `kiban serve` with the master key hold
//! an exclusive advisory lock on `DATA_DIR/kiban.lock` while they run. Readers (`kiban serve`
//! without the key, `kiban extract`) take no lock: committed files never change.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

/// File name of the lock inside a data directory.
pub const LOCK_FILE: &str = "kiban.lock";

/// Held while a process takes data into a data directory; released when dropped (or when the
/// process dies, however it dies).
#[derive(Debug)]
pub struct IntakeLock {
    _file: File,
}

impl IntakeLock {
    /// Takes the lock, or fails at once naming what holds the directory.
    pub fn acquire(data_dir: &Path) -> Result<IntakeLock> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let path = data_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(IntakeLock { _file: file }),
            Err(TryLockError::WouldBlock) => bail!(
                "{} is in use by another kiban process that takes data into it (kiban ingest, \
                 kiban demo, or kiban serve with the master key); wait for it to finish or stop it",
                data_dir.display()
            ),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}
