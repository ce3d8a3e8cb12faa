//! Reading extraction tables and writing releases atomically.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use kiban_model::ClinicalTable;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::DeidentifyError;

pub(crate) fn io_error(
    action: &'static str,
    path: &Path,
    reason: impl std::fmt::Display,
) -> DeidentifyError {
    DeidentifyError::Io {
        action,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub(crate) fn table_error(
    table: &str,
    path: &Path,
    reason: impl std::fmt::Display,
) -> DeidentifyError {
    DeidentifyError::Table {
        table: table.to_owned(),
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The Parquet file of `table` in an extraction directory, when the extraction wrote one
/// (an extraction writes no file for a table without rows).
pub(crate) fn table_file(dir: &Path, table: ClinicalTable) -> Option<PathBuf> {
    let path = dir.join(format!("{}.parquet", table.name()));
    path.is_file().then_some(path)
}

/// Calls `each` for every record batch of a Parquet file, checking it carries the columns
/// every clinical row has.
pub(crate) fn for_each_batch(
    table: ClinicalTable,
    path: &Path,
    each: impl FnMut(&RecordBatch) -> Result<(), DeidentifyError>,
) -> Result<(), DeidentifyError> {
    let file = File::open(path).map_err(|e| io_error("open", path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| table_error(table.name(), path, e))?;
    each_checked_batch(table, path, reader, each)
}

/// Like [`for_each_batch`], reading only `columns` (and the columns every row has): the
/// batches of a planning pass hold none of the other columns (documents' text, values).
pub(crate) fn for_each_projected_batch(
    table: ClinicalTable,
    path: &Path,
    columns: &[&str],
    each: impl FnMut(&RecordBatch) -> Result<(), DeidentifyError>,
) -> Result<(), DeidentifyError> {
    let file = File::open(path).map_err(|e| io_error("open", path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| table_error(table.name(), path, e))?;
    let reader = reader_of_columns(builder, |name| {
        matches!(name, "provider_id" | "patient_key" | "source_id") || columns.contains(&name)
    })
    .map_err(|e| table_error(table.name(), path, e))?;
    each_checked_batch(table, path, reader, each)
}

/// Calls `each` for every batch of `reader`, checking it carries the columns every clinical
/// row has.
fn each_checked_batch(
    table: ClinicalTable,
    path: &Path,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    mut each: impl FnMut(&RecordBatch) -> Result<(), DeidentifyError>,
) -> Result<(), DeidentifyError> {
    for batch in reader {
        let batch = batch.map_err(|e| table_error(table.name(), path, e))?;
        check_row_columns(table, path, &batch)?;
        each(&batch)?;
    }
    Ok(())
}

/// The reader of a Parquet file's top-level columns whose names `keep` accepts.
pub(crate) fn reader_of_columns(
    builder: ParquetRecordBatchReaderBuilder<File>,
    keep: impl Fn(&str) -> bool,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, parquet::errors::ParquetError> {
    let wanted: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| keep(f.name()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    builder.with_projection(mask).build()
}

fn check_row_columns(
    table: ClinicalTable,
    path: &Path,
    batch: &RecordBatch,
) -> Result<(), DeidentifyError> {
    for column in ["provider_id", "patient_key", "source_id"] {
        if batch
            .column_by_name(column)
            .and_then(|c| c.as_string_opt::<i32>())
            .is_none()
        {
            return Err(table_error(
                table.name(),
                path,
                format!("no text column `{column}`"),
            ));
        }
    }
    Ok(())
}

/// A release being written: a hidden temporary directory beside the final one, renamed into
/// place by [`StagedDir::commit`] and removed when dropped uncommitted, so a failed run never
/// leaves a partial release.
pub(crate) struct StagedDir {
    staging: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Starts a release at `target`, which must be absent or an empty directory.
    pub fn create(target: &Path) -> Result<Self, DeidentifyError> {
        if target.exists() {
            let mut entries = fs::read_dir(target).map_err(|e| io_error("read", target, e))?;
            if entries.next().is_some() {
                return Err(DeidentifyError::OutputNotEmpty(target.to_path_buf()));
            }
        }
        let name = target
            .file_name()
            .ok_or_else(|| io_error("use", target, "the release path has no directory name"))?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| io_error("create", &parent, e))?;
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|_| DeidentifyError::Crypto {
            context: "name the staging directory",
        })?;
        let staging = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            hex::encode(suffix)
        ));
        fs::create_dir(&staging).map_err(|e| io_error("create", &staging, e))?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Where files of the release are written until the commit.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The final release directory.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the complete release into place.
    pub fn commit(mut self) -> Result<(), DeidentifyError> {
        if self.target.exists() {
            // An empty directory was checked in `create`; replace it by the complete release.
            fs::remove_dir(&self.target).map_err(|e| io_error("replace", &self.target, e))?;
        }
        fs::rename(&self.staging, &self.target).map_err(|e| io_error("rename", &self.target, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Writes record batches to one Parquet file (Snappy), opened on the first batch.
pub(crate) struct TableWriter {
    path: PathBuf,
    writer: Option<ArrowWriter<File>>,
    rows: u64,
}

impl TableWriter {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            writer: None,
            rows: 0,
        }
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), DeidentifyError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            let file = File::create(&self.path).map_err(|e| io_error("create", &self.path, e))?;
            let properties = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            self.writer = Some(
                ArrowWriter::try_new(file, batch.schema(), Some(properties))
                    .map_err(|e| io_error("write", &self.path, e))?,
            );
        }
        if let Some(writer) = self.writer.as_mut() {
            writer
                .write(batch)
                .map_err(|e| io_error("write", &self.path, e))?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Closes the file; `None` when no row was written (no file then).
    pub fn finish(self) -> Result<Option<(PathBuf, u64)>, DeidentifyError> {
        match self.writer {
            Some(writer) => {
                writer
                    .close()
                    .map_err(|e| io_error("finish", &self.path, e))?;
                Ok(Some((self.path, self.rows)))
            }
            None => Ok(None),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), DeidentifyError> {
    let name = path
        .file_name()
        .ok_or_else(|| io_error("write", path, "the path has no file name"))?;
    let temp = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let result = fs::write(&temp, bytes)
        .map_err(|e| io_error("write", &temp, e))
        .and_then(|()| fs::rename(&temp, path).map_err(|e| io_error("rename", path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}
