//! Durable, atomic file operations.
//!
//! A file is written under `tmp/`, flushed to disk, then renamed (or hard-linked, when an
//! existing file must not be replaced) into place, and the destination directory is flushed
//! so the rename itself survives a crash. A process killed at any point therefore leaves
//! either the old file, the new file, or nothing, plus possibly a leftover in `tmp/`, which
//! [`crate::Store::open`] clears.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use crate::StoreError;

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>(context: &str) -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| StoreError::Crypto {
        context: format!("{context}: random number generator"),
    })?;
    Ok(bytes)
}

/// Creates a directory and its parents, private to the owner on unix.
pub(crate) fn create_private_dir(path: &Path, label: &str) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .map_err(|e| StoreError::io(label, "create directory", e))
}

/// Opens a new file for writing, failing if it exists; mode 0600 on unix.
pub(crate) fn create_new_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Flushes a directory's entries (renames, creations, removals) to disk.
pub(crate) fn sync_dir(path: &Path, label: &str) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        File::open(path)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| StoreError::io(label, "flush directory", e))
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened for syncing on this platform; renames are still atomic.
        let _ = (path, label);
        Ok(())
    }
}

/// How [`write_atomic`] treats an existing destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Replace it (a retried write of the same deterministic name).
    Replace,
    /// Keep it and report that nothing was written (first writer wins).
    Keep,
}

/// Writes a file atomically: temp file in `tmp_dir`, `write`, fsync, move into `destination`,
/// fsync the destination's directory. Returns whether the destination now holds the new file
/// (false only with [`Existing::Keep`] when the destination already existed).
pub(crate) fn write_atomic(
    tmp_dir: &Path,
    destination: &Path,
    label: &str,
    existing: Existing,
    write: impl FnOnce(File) -> Result<File, StoreError>,
) -> Result<bool, StoreError> {
    let suffix = hex::encode(random_bytes::<12>(label)?);
    let tmp_path = tmp_dir.join(format!("{suffix}.tmp"));
    let result = (|| {
        let file = create_new_private_file(&tmp_path)
            .map_err(|e| StoreError::io(label, "create temporary file", e))?;
        let file = write(file)?;
        file.sync_all()
            .map_err(|e| StoreError::io(label, "flush temporary file", e))?;
        drop(file);
        let written = match existing {
            Existing::Replace => {
                fs::rename(&tmp_path, destination)
                    .map_err(|e| StoreError::io(label, "rename into place", e))?;
                true
            }
            Existing::Keep => {
                // A hard link never replaces its destination: two processes racing to create
                // the same file cannot both win.
                let linked = match fs::hard_link(&tmp_path, destination) {
                    Ok(()) => true,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(StoreError::io(label, "link into place", e)),
                };
                fs::remove_file(&tmp_path)
                    .map_err(|e| StoreError::io(label, "remove temporary file", e))?;
                linked
            }
        };
        if let Some(parent) = destination.parent() {
            sync_dir(parent, label)?;
        }
        Ok(written)
    })();
    if result.is_err() {
        // Best effort: the leftover is removed on the next open anyway.
        let _ = fs::remove_file(&tmp_path);
    }
    result
}
