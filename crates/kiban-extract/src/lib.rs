//! Dataset extraction: the clinical tables of the encrypted store, as the input of
//! anonymization, pseudonymization and the analysis environment.
//!
//! An extraction reads every committed segment of the chosen clinical tables, decrypts it,
//! drops the rows of every patient who opted out (R-C2: "data already held is excluded from
//! every later release and analysis"), and writes one Parquet file per table. The identity
//! table is never extracted: identity stays in its own store (R-A1). Refusals are read when
//! the extraction starts, so a refusal recorded before it is always honoured.
//!
//! Memory is bounded by one segment at a time; cost is linear in the rows of the chosen tables.
//! Each output file is written under a temporary name and renamed when complete, so a failed
//! extraction never leaves a partial table behind.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<kiban_store::Store>, collection: kiban_collection::Collection)
//! # -> Result<(), kiban_extract::ExtractError> {
//! use kiban_extract::{ExtractOptions, extract_dataset};
//! let report = extract_dataset(&store, &collection, std::path::Path::new("extract"), &ExtractOptions::default()).await?;
//! println!("{} rows kept, {} excluded after refusals", report.rows_written(), report.rows_excluded());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use arrow_array::cast::AsArray;
use arrow_array::{BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use kiban_collection::Collection;
use kiban_model::{ClinicalTable, PatientKey, ProviderId};
use kiban_store::Store;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors of an extraction. None of them carries a row value.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// A table name that is not a clinical table (the identity table is never extracted).
    #[error("unknown clinical table `{name}`; use one of: {known}")]
    UnknownTable {
        /// The name given.
        name: String,
        /// The clinical tables.
        known: String,
    },
    /// The output directory exists and is not empty.
    #[error("output directory {0} exists and is not empty; choose a new one")]
    OutputNotEmpty(PathBuf),
    /// Reading the metadata or the registers failed.
    #[error("registers: {0}")]
    Collection(#[from] kiban_collection::CollectionError),
    /// Reading the metadata failed.
    #[error("metadata: {0}")]
    Metadata(#[from] kiban_metadata::MetadataError),
    /// Reading or decrypting a segment failed.
    #[error("store: {0}")]
    Store(#[from] kiban_store::StoreError),
    /// A segment lacks the columns every clinical row carries.
    #[error("segment {path} of table {table}: {reason}")]
    Segment {
        /// The segment's path in the store.
        path: String,
        /// Its table.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing the output failed.
    #[error("cannot {action} {path}: {reason}")]
    Output {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
}

/// What to extract.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// Clinical tables by name (`conditions`, `lab_observations`, ...); empty means all.
    pub tables: Vec<String>,
    /// Only these providers' rows; empty means every provider.
    pub providers: Vec<String>,
}

/// One extracted table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableExtract {
    /// Segments read.
    pub segments: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Rows left out because their patient opted out.
    pub rows_excluded_refused: u64,
    /// Rows left out because their provider was not chosen.
    pub rows_excluded_provider: u64,
    /// The Parquet file written (absent when the table had no rows to write).
    pub file: Option<PathBuf>,
}

/// What an extraction did, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExtractReport {
    /// Refused patients (provider, patient key) at the start of the extraction.
    pub refused_patients: u64,
    /// Each table extracted, by name.
    pub tables: BTreeMap<String, TableExtract>,
}

impl ExtractReport {
    /// Rows written over all tables.
    pub fn rows_written(&self) -> u64 {
        self.tables.values().map(|t| t.rows_written).sum()
    }

    /// Rows left out over all tables because their patients opted out.
    pub fn rows_excluded(&self) -> u64 {
        self.tables.values().map(|t| t.rows_excluded_refused).sum()
    }
}

/// The clinical tables named in `names` (all when empty), or an error naming the unknown one.
pub fn resolve_tables(names: &[String]) -> Result<Vec<ClinicalTable>, ExtractError> {
    if names.is_empty() {
        return Ok(ClinicalTable::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| {
            ClinicalTable::from_name(name.trim()).ok_or_else(|| ExtractError::UnknownTable {
                name: name.clone(),
                known: ClinicalTable::ALL
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

/// Extracts the chosen clinical tables into `out_dir` (created; it must be absent or empty),
/// one `<table>.parquet` per table, leaving out every row of a patient who opted out.
pub async fn extract_dataset(
    store: &Arc<Store>,
    collection: &Collection,
    out_dir: &Path,
    options: &ExtractOptions,
) -> Result<ExtractReport, ExtractError> {
    let tables = resolve_tables(&options.tables)?;
    prepare_output(out_dir)?;
    let refused = collection.refused_patient_keys().await?;
    let meta = collection.metadata();
    let persons: HashMap<(String, String), String> = meta
        .person_links()
        .await?
        .into_iter()
        .map(|l| ((l.provider_id, l.patient_key), l.person_id))
        .collect();
    let filter = RowFilter {
        refused,
        providers: options.providers.iter().cloned().collect(),
        persons,
    };
    let mut report = ExtractReport {
        refused_patients: filter.refused.len() as u64,
        ..ExtractReport::default()
    };
    for table in tables {
        let segments = meta.segments(table.name()).await?;
        let paths: Vec<String> = segments.into_iter().map(|s| s.path).collect();
        let extract = extract_table(store, table, &paths, &filter, out_dir)?;
        report.tables.insert(table.name().to_owned(), extract);
    }
    Ok(report)
}

/// Which rows an extraction keeps.
struct RowFilter {
    refused: HashSet<(ProviderId, PatientKey)>,
    providers: HashSet<String>,
    /// The person of each linked record (`kiban link --data`), by provider and patient key.
    persons: HashMap<(String, String), String>,
}

/// Column added to every extracted table: the person the record was linked to (null when the
/// record is not linked yet).
pub const PERSON_ID_COLUMN: &str = "person_id";

/// The schema of an extracted table: the model's columns and [`PERSON_ID_COLUMN`].
pub fn extracted_schema(table: ClinicalTable) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(PERSON_ID_COLUMN, DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

fn prepare_output(out_dir: &Path) -> Result<(), ExtractError> {
    let output_error = |action, reason: std::io::Error| ExtractError::Output {
        action,
        path: out_dir.to_owned(),
        reason: reason.to_string(),
    };
    if out_dir.exists() {
        let mut entries = std::fs::read_dir(out_dir).map_err(|e| output_error("read", e))?;
        if entries.next().is_some() {
            return Err(ExtractError::OutputNotEmpty(out_dir.to_owned()));
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| output_error("create", e))
}

/// Streams one table's segments through the filter into `<table>.parquet`.
fn extract_table(
    store: &Store,
    table: ClinicalTable,
    segment_paths: &[String],
    filter: &RowFilter,
    out_dir: &Path,
) -> Result<TableExtract, ExtractError> {
    let final_path = out_dir.join(format!("{}.parquet", table.name()));
    let temp_path = out_dir.join(format!(".{}.parquet.partial", table.name()));
    let output_error = |action, path: &Path, reason: String| ExtractError::Output {
        action,
        path: path.to_owned(),
        reason,
    };
    let mut extract = TableExtract::default();
    let mut writer: Option<ArrowWriter<File>> = None;
    let result = (|| {
        for path in segment_paths {
            extract.segments += 1;
            for batch in store.read_segment_batches(path)? {
                let (kept, refused, other_provider) = filter_batch(&batch, filter, path, table)?;
                extract.rows_excluded_refused += refused;
                extract.rows_excluded_provider += other_provider;
                if kept.num_rows() == 0 {
                    continue;
                }
                extract.rows_written += kept.num_rows() as u64;
                if writer.is_none() {
                    let file = File::create(&temp_path)
                        .map_err(|e| output_error("create", &temp_path, e.to_string()))?;
                    let properties = WriterProperties::builder()
                        .set_compression(Compression::SNAPPY)
                        .build();
                    writer = Some(
                        ArrowWriter::try_new(file, extracted_schema(table), Some(properties))
                            .map_err(|e| output_error("write", &temp_path, e.to_string()))?,
                    );
                }
                if let Some(w) = writer.as_mut() {
                    w.write(&kept)
                        .map_err(|e| output_error("write", &temp_path, e.to_string()))?;
                }
            }
        }
        if let Some(w) = writer.take() {
            w.close()
                .map_err(|e| output_error("finish", &temp_path, e.to_string()))?;
            std::fs::rename(&temp_path, &final_path)
                .map_err(|e| output_error("rename", &final_path, e.to_string()))?;
            extract.file = Some(final_path.clone());
        }
        Ok(())
    })();
    if let Err(error) = result {
        // Never leave a partial table: the temporary file is the only thing written so far.
        drop(writer);
        let _ = std::fs::remove_file(&temp_path);
        return Err(error);
    }
    Ok(extract)
}

/// Keeps the rows whose patient did not opt out (and whose provider was chosen); returns the
/// kept batch and the counts left out for each reason.
fn filter_batch(
    batch: &RecordBatch,
    filter: &RowFilter,
    path: &str,
    table: ClinicalTable,
) -> Result<(RecordBatch, u64, u64), ExtractError> {
    let segment_error = |reason: String| ExtractError::Segment {
        path: path.to_owned(),
        table: table.name().to_owned(),
        reason,
    };
    let string_column = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| segment_error(format!("no text column `{name}`")))
    };
    let providers = string_column("provider_id")?;
    let patients = string_column("patient_key")?;
    let mut refused = 0;
    let mut other_provider = 0;
    let mut probe = (ProviderId(String::new()), PatientKey(String::new()));
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|row| {
            let provider = providers.value(row);
            if !filter.providers.is_empty() && !filter.providers.contains(provider) {
                other_provider += 1;
                return Some(false);
            }
            probe.0.0.clear();
            probe.0.0.push_str(provider);
            probe.1.0.clear();
            probe.1.0.push_str(patients.value(row));
            if filter.refused.contains(&probe) {
                refused += 1;
                Some(false)
            } else {
                Some(true)
            }
        })
        .collect();
    let kept = arrow_select::filter::filter_record_batch(batch, &keep)
        .map_err(|e| segment_error(e.to_string()))?;
    let providers = kept
        .column_by_name("provider_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| segment_error("no text column `provider_id`".to_owned()))?;
    let patients = kept
        .column_by_name("patient_key")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| segment_error("no text column `patient_key`".to_owned()))?;
    let mut probe = (String::new(), String::new());
    let person_ids: StringArray = (0..kept.num_rows())
        .map(|row| {
            probe.0.clear();
            probe.0.push_str(providers.value(row));
            probe.1.clear();
            probe.1.push_str(patients.value(row));
            filter.persons.get(&probe).map(String::as_str)
        })
        .collect();
    let mut columns = kept.columns().to_vec();
    columns.push(Arc::new(person_ids));
    let with_person = RecordBatch::try_new(extracted_schema(table), columns)
        .map_err(|e| segment_error(e.to_string()))?;
    Ok((with_person, refused, other_provider))
}

#[cfg(test)]
mod tests;
