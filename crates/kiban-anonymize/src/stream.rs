//! Streaming mode: two passes over the input file; the rows are never held.
//!
//! Pass 1 reads the file batch by batch and keeps only the dictionaries of the
//! quasi-identifying and sensitive columns and the finest equivalence classes (tuple of
//! dictionary codes → records, and per sensitive attribute the (class, value) counts). The
//! search runs on those classes exactly as in memory. Pass 2 re-reads the file and writes every
//! row generalized (or suppressed) straight to the release. Reading the next batch and encoding
//! (or writing) the current one run in parallel, so two cores are used.
//!
//! The finest classes and dictionary codes are numbered in order of first appearance, as in
//! memory, so the search, every report figure and the release are identical to the in-memory
//! path's.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use csv::StringRecord;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use rustc_hash::FxHashMap;

use crate::anonymize::{
    Encoding, Report, check_settings, column_roles, qi_hierarchies, search_classes,
    write_atomically,
};
use crate::data::{AttributeRole, ColumnBuilder, Dataset, append_arrow, arrow_type};
use crate::engine::{Evaluation, FinestClasses};
use crate::error::{AnonymizeError, Result};
use crate::hierarchy::{Hierarchy, SUPPRESSED, csv_error_of};
use crate::job::JobConfig;
use crate::types::AttributeType;

/// Records per batch of a delimited input (Parquet inputs are read in batches of this size too).
const BATCH_ROWS: usize = 16_384;

/// A batch of records, reused from read to read so that its buffers are allocated once.
#[derive(Default)]
struct Batch {
    records: Vec<StringRecord>,
    len: usize,
}

impl Batch {
    fn rows(&self) -> &[StringRecord] {
        &self.records[..self.len]
    }
}

/// The input, read record by record.
enum RecordSource {
    Delimited(csv::Reader<BufReader<File>>),
    Parquet {
        reader: ParquetRecordBatchReader,
        rows: usize,
        text: String,
    },
}

/// An opened input: its header, column types and records.
struct Opened {
    header: Vec<String>,
    types: Vec<AttributeType>,
    source: RecordSource,
}

fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

fn parquet_error(path: &Path, e: &dyn std::fmt::Display) -> AnonymizeError {
    AnonymizeError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn open_file(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| AnonymizeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Opens `path` as [`Dataset::read`] would read it (same header and type rules).
fn open(path: &Path, separator: u8) -> Result<Opened> {
    let empty = || AnonymizeError::EmptyData {
        path: path.to_path_buf(),
    };
    if is_parquet(path) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(open_file(path)?)
            .map_err(|e| parquet_error(path, &e))?;
        let schema = Arc::clone(builder.schema());
        let reader = builder
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| parquet_error(path, &e))?;
        let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if header.is_empty() {
            return Err(empty());
        }
        let types = schema
            .fields()
            .iter()
            .map(|field| {
                arrow_type(field.data_type()).ok_or_else(|| AnonymizeError::UnsupportedColumnType {
                    path: path.to_path_buf(),
                    column: field.name().clone(),
                    data_type: field.data_type().to_string(),
                })
            })
            .collect::<Result<_>>()?;
        return Ok(Opened {
            header,
            types,
            source: RecordSource::Parquet {
                reader,
                rows: 0,
                text: String::new(),
            },
        });
    }
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(separator)
        .has_headers(true)
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, open_file(path)?));
    let header: Vec<String> = csv
        .headers()
        .map_err(|e| csv_error_of(path, &e))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(empty());
    }
    let types = vec![AttributeType::String; header.len()];
    Ok(Opened {
        header,
        types,
        source: RecordSource::Delimited(csv),
    })
}

impl RecordSource {
    /// Reads the next batch into `batch`; `batch.len == 0` at the end of the input.
    fn fill(&mut self, path: &Path, batch: &mut Batch) -> Result<()> {
        batch.len = 0;
        match self {
            RecordSource::Delimited(csv) => {
                while batch.len < BATCH_ROWS {
                    if batch.records.len() == batch.len {
                        batch.records.push(StringRecord::new());
                    }
                    let more = csv
                        .read_record(&mut batch.records[batch.len])
                        .map_err(|e| csv_error_of(path, &e))?;
                    if !more {
                        break;
                    }
                    batch.len += 1;
                }
            }
            RecordSource::Parquet { reader, rows, text } => {
                for next in reader.by_ref() {
                    let next = next.map_err(|e| parquet_error(path, &e))?;
                    let n = next.num_rows();
                    if n == 0 {
                        continue;
                    }
                    if batch.records.len() < n {
                        batch.records.resize_with(n, StringRecord::new);
                    }
                    for (i, record) in batch.records[..n].iter_mut().enumerate() {
                        record.clear();
                        let mut position = csv::Position::new();
                        position.set_line((*rows + i + 1) as u64);
                        record.set_position(Some(position));
                    }
                    let records = &mut batch.records;
                    for array in next.columns() {
                        append_arrow(array, text, &mut |i, value| records[i].push_field(value));
                    }
                    *rows += n;
                    batch.len = n;
                    break;
                }
            }
        }
        Ok(())
    }
}

/// 1-based line of a record (for Parquet: its row).
fn line_of(record: &StringRecord) -> u64 {
    record.position().map_or(0, csv::Position::line)
}

/// What the first pass accumulates: dictionaries and finest classes, no rows.
struct FirstPass<'a> {
    path: &'a Path,
    header_len: usize,
    qi_columns: Vec<usize>,
    sensitive_columns: Vec<usize>,
    /// Dictionary of each kept column (quasi-identifiers and sensitive attributes).
    builders: Vec<Option<ColumnBuilder>>,
    /// Declared type of a column whose dictionary is not kept: checked value by value.
    checks: Vec<Option<AttributeType>>,
    /// First line whose value a check refused, per column.
    first_refused: Vec<Option<u64>>,
    /// Finest class of each tuple of quasi-identifier dictionary codes.
    class_index: FxHashMap<Box<[u32]>, u32>,
    /// Dictionary codes of each class, class-major.
    class_codes: Vec<u32>,
    sizes: Vec<u32>,
    /// Per sensitive attribute: records per `class << 32 | value code`.
    sensitive_counts: Vec<FxHashMap<u64, u32>>,
    rows: usize,
    key: Vec<u32>,
}

impl FirstPass<'_> {
    fn add(&mut self, batch: &[StringRecord]) -> Result<()> {
        for record in batch {
            let line = line_of(record);
            if record.len() != self.header_len {
                return Err(AnonymizeError::RaggedRow {
                    path: self.path.to_path_buf(),
                    line,
                    expected: self.header_len,
                    found: record.len(),
                });
            }
            for (column, check) in self.checks.iter().enumerate() {
                if let Some(kind) = check
                    && self.first_refused[column].is_none()
                    && !kind.accepts(&record[column])
                {
                    self.first_refused[column] = Some(line);
                }
            }
            self.key.clear();
            for &column in &self.qi_columns {
                let code = self.builders[column]
                    .as_mut()
                    .map_or(0, |b| b.intern(&record[column], line));
                self.key.push(code);
            }
            let class = match self.class_index.get(self.key.as_slice()) {
                Some(&class) => class,
                None => {
                    let class = self.sizes.len() as u32;
                    self.class_index.insert(self.key.as_slice().into(), class);
                    self.class_codes.extend_from_slice(&self.key);
                    self.sizes.push(0);
                    class
                }
            };
            self.sizes[class as usize] += 1;
            for (s, &column) in self.sensitive_columns.iter().enumerate() {
                let value = self.builders[column]
                    .as_mut()
                    .map_or(0, |b| b.intern(&record[column], line));
                *self.sensitive_counts[s]
                    .entry((u64::from(class) << 32) | u64::from(value))
                    .or_insert(0) += 1;
            }
            self.rows += 1;
        }
        Ok(())
    }
}

/// Reads the whole input through `consume`, one batch at a time; reading the next batch
/// overlaps with consuming the current one.
fn for_each_batch(
    source: &mut RecordSource,
    path: &Path,
    mut consume: impl FnMut(&[StringRecord]) -> Result<()> + Send,
) -> Result<()> {
    let mut current = Batch::default();
    let mut next = Batch::default();
    source.fill(path, &mut current)?;
    while current.len > 0 {
        let (read, consumed) =
            rayon::join(|| source.fill(path, &mut next), || consume(current.rows()));
        // An error of the earlier batch comes first.
        consumed?;
        read?;
        std::mem::swap(&mut current, &mut next);
    }
    Ok(())
}

/// Estimated number of data rows of `path` (exact for Parquet and for small delimited files;
/// for a large delimited file, from the line length of its first mebibyte).
pub(crate) fn estimated_rows(path: &Path) -> Result<u64> {
    if is_parquet(path) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(open_file(path)?)
            .map_err(|e| parquet_error(path, &e))?;
        return Ok(u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0));
    }
    let io_error = |source: std::io::Error| AnonymizeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = open_file(path)?;
    let size = file.metadata().map_err(io_error)?.len();
    let mut sample = Vec::with_capacity(1 << 20);
    file.take(1 << 20)
        .read_to_end(&mut sample)
        .map_err(io_error)?;
    let lines = sample.iter().filter(|&&b| b == b'\n').count() as u64;
    if sample.len() as u64 >= size {
        return Ok(lines.saturating_sub(1));
    }
    Ok(size.saturating_mul(lines.max(1)) / sample.len().max(1) as u64)
}

/// Runs `job` in streaming mode: the report is the in-memory path's; the release is written
/// atomically by the second pass.
pub(crate) fn run_streaming(job: &JobConfig) -> Result<Report> {
    let started = Instant::now();
    if job.privacy.delta_presence.is_some() {
        return Err(AnonymizeError::NotStreamable {
            feature: "δ-presence",
        });
    }
    if job.differential_privacy.is_some() {
        return Err(AnonymizeError::NotStreamable {
            feature: "differential privacy",
        });
    }
    if !job.microaggregation.is_empty() {
        return Err(AnonymizeError::NotStreamable {
            feature: "microaggregation",
        });
    }
    if job.derived_ages().next().is_some() {
        return Err(AnonymizeError::NotStreamable {
            feature: "a derived age-at-event column",
        });
    }
    let separator = job.separator_byte()?;
    let path = job.input.as_path();
    let roles = job.roles();
    let settings = job.settings();
    if roles.quasi_identifiers.is_empty() {
        return Err(AnonymizeError::NoQuasiIdentifiers);
    }
    let Opened {
        header,
        types,
        mut source,
    } = open(path, separator)?;
    let columns = header.len();
    let shape =
        Dataset::dictionaries_only(path, header.clone(), types.clone(), vec![None; columns], 0);
    let assigned = column_roles(&shape, &roles)?;
    let qi_columns: Vec<usize> = roles
        .quasi_identifiers
        .iter()
        .map(|n| shape.column_index(n))
        .collect::<Result<_>>()?;
    let sensitive_columns: Vec<usize> = roles
        .sensitive
        .iter()
        .map(|n| shape.column_index(n))
        .collect::<Result<_>>()?;
    let mut checks: Vec<Option<AttributeType>> = vec![None; columns];
    for (name, declared) in &job.types {
        checks[shape.column_index(name)?] = Some(declared.clone());
    }
    let mut builders: Vec<Option<ColumnBuilder>> = (0..columns).map(|_| None).collect();
    for &c in qi_columns.iter().chain(&sensitive_columns) {
        builders[c] = Some(ColumnBuilder::new());
        // The dictionary is validated as a whole afterwards.
        checks[c] = None;
    }
    let mut first = FirstPass {
        path,
        header_len: columns,
        qi_columns: qi_columns.clone(),
        sensitive_columns: sensitive_columns.clone(),
        builders,
        checks,
        first_refused: vec![None; columns],
        class_index: FxHashMap::default(),
        class_codes: Vec::new(),
        sizes: Vec::new(),
        sensitive_counts: vec![FxHashMap::default(); sensitive_columns.len()],
        rows: 0,
        key: Vec::with_capacity(qi_columns.len()),
    };
    for_each_batch(&mut source, path, |batch| first.add(batch))?;
    drop(source);
    if first.rows == 0 {
        return Err(AnonymizeError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    // Declared types, checked in name order as `Dataset::set_types` does.
    let mut dataset = Dataset::dictionaries_only(
        path,
        header.clone(),
        types,
        first.builders.iter().map(Option::as_ref).collect(),
        first.rows,
    );
    for (name, declared) in &job.types {
        let index = dataset.column_index(name)?;
        if first.builders[index].is_some() {
            dataset.validate_column(name, declared)?;
        } else if let Some(line) = first.first_refused[index] {
            return Err(AnonymizeError::InvalidValue {
                path: path.to_path_buf(),
                line,
                column: name.clone(),
                rule: declared.rule(),
            });
        }
    }
    for (name, declared) in &job.types {
        let index = dataset.column_index(name)?;
        dataset.set_type_unchecked(index, declared.clone());
    }
    check_settings(&settings, &roles, first.rows, job.population.is_some())?;
    let population = match &job.population {
        Some(p) => Some(Dataset::read(p, separator)?),
        None => None,
    };
    let mut hierarchies = job.load_hierarchies_covering(&dataset, population.as_ref())?;
    let (_, ordered, to_leaf) = qi_hierarchies(&dataset, &roles, &mut hierarchies)?;
    // Classes of dictionary codes → classes of leaf codes (the same unless two values share a
    // leaf), keeping the order of first appearance.
    let qi_count = qi_columns.len();
    let mut leaf_index: FxHashMap<Box<[u32]>, u32> = FxHashMap::default();
    let mut leaf_class = Vec::with_capacity(first.sizes.len());
    let mut codes = Vec::with_capacity(first.class_codes.len());
    let mut sizes: Vec<u32> = Vec::with_capacity(first.sizes.len());
    let mut leaves = vec![0u32; qi_count];
    for (class, &size) in first.sizes.iter().enumerate() {
        let dictionary_codes = &first.class_codes[class * qi_count..(class + 1) * qi_count];
        for ((leaf, &code), map) in leaves.iter_mut().zip(dictionary_codes).zip(&to_leaf) {
            *leaf = map[code as usize];
        }
        let next = sizes.len() as u32;
        let target = *leaf_index
            .entry(leaves.as_slice().into())
            .or_insert_with(|| {
                codes.extend_from_slice(&leaves);
                sizes.push(0);
                next
            });
        sizes[target as usize] += size;
        leaf_class.push(target);
    }
    drop(leaf_index);
    let sensitive = std::mem::take(&mut first.sensitive_counts)
        .into_iter()
        .zip(&sensitive_columns)
        .map(|(counts, &column)| {
            let mut pairs: Vec<(u64, u32)> = counts
                .into_iter()
                .map(|(key, n)| {
                    let class = u64::from(leaf_class[(key >> 32) as usize]);
                    ((class << 32) | (key & 0xffff_ffff), n)
                })
                .collect();
            pairs.sort_unstable_by_key(|p| p.0);
            (pairs, dataset.column(column).dictionary.len())
        })
        .collect();
    let classes = FinestClasses::from_counts(&ordered, codes, sizes, sensitive);
    let searched = search_classes(
        &dataset,
        &roles,
        &settings,
        Encoding {
            hierarchies: ordered,
            remaining: hierarchies,
            classes,
        },
        population.as_ref(),
        started,
    )?;
    let second = SecondPass {
        path,
        output: &job.output,
        roles: &assigned,
        qi_columns: &qi_columns,
        builders: &first.builders,
        class_index: &first.class_index,
        leaf_class: &leaf_class,
        labels: match &searched.recoding {
            Some(recoding) => recoding
                .nodes
                .iter()
                .map(|levels| chosen_labels(&searched.hierarchies, levels, &to_leaf))
                .collect(),
            None => vec![chosen_labels(
                &searched.hierarchies,
                &searched.best.levels,
                &to_leaf,
            )],
        },
        class_node: searched.recoding.as_ref().map(|r| r.class_node.as_slice()),
        best: &searched.best,
        drop_suppressed: job.drop_suppressed,
    };
    let release_header: Vec<&str> = header
        .iter()
        .zip(&assigned)
        .filter(|(_, r)| **r != AttributeRole::Identifying)
        .map(|(h, _)| h.as_str())
        .collect();
    second.write(separator, &release_header, first.rows)?;
    Ok(searched.report)
}

/// The released label of every dictionary code of every quasi-identifier at the chosen levels.
fn chosen_labels<'h>(
    hierarchies: &'h [Hierarchy],
    levels: &[usize],
    to_leaf: &[Vec<u32>],
) -> Vec<Vec<&'h str>> {
    hierarchies
        .iter()
        .zip(levels)
        .zip(to_leaf)
        .map(|((h, &level), leaves)| {
            leaves
                .iter()
                .map(|&leaf| h.label(level, h.generalize(leaf, level)))
                .collect()
        })
        .collect()
}

/// What the second pass needs to release each row.
struct SecondPass<'a> {
    path: &'a Path,
    output: &'a Path,
    roles: &'a [AttributeRole],
    qi_columns: &'a [usize],
    builders: &'a [Option<ColumnBuilder>],
    class_index: &'a FxHashMap<Box<[u32]>, u32>,
    leaf_class: &'a [u32],
    /// Per level vector (one, or with local recoding one per node): `labels[node][j][code]`.
    labels: Vec<Vec<Vec<&'a str>>>,
    /// With local recoding: the node of every finest class.
    class_node: Option<&'a [u32]>,
    best: &'a Evaluation,
    drop_suppressed: bool,
}

impl SecondPass<'_> {
    /// Re-reads the input and writes the release atomically.
    fn write(&self, separator: u8, header: &[&str], rows: usize) -> Result<()> {
        let output = self.output;
        let mut failure: Option<AnonymizeError> = None;
        let written = write_atomically(output, |file| {
            let mut writer = csv::WriterBuilder::new()
                .delimiter(separator)
                .from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
            writer.write_record(header)?;
            let outcome = (|| {
                let mut source = open(self.path, separator)?.source;
                let mut seen = 0usize;
                for_each_batch(&mut source, self.path, |batch| {
                    seen += batch.len();
                    self.write_batch(batch, &mut writer)
                })?;
                if seen != rows {
                    return Err(AnonymizeError::InputChanged {
                        path: self.path.to_path_buf(),
                        line: seen as u64 + 1,
                    });
                }
                Ok(())
            })();
            if let Err(error) = outcome {
                let message = error.to_string();
                failure = Some(error);
                return Err(message.into());
            }
            let inner = writer
                .into_inner()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let file = inner.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(())
        });
        match (written, failure) {
            (Err(_), Some(error)) => Err(error),
            (written, _) => written,
        }
    }

    fn write_batch(
        &self,
        batch: &[StringRecord],
        writer: &mut csv::Writer<std::io::BufWriter<File>>,
    ) -> Result<()> {
        let mut key: Vec<u32> = Vec::with_capacity(self.qi_columns.len());
        let mut qi_position = vec![usize::MAX; self.roles.len()];
        for (j, &c) in self.qi_columns.iter().enumerate() {
            qi_position[c] = j;
        }
        let mut fields: Vec<&str> = Vec::with_capacity(self.roles.len());
        for record in batch {
            let changed = || AnonymizeError::InputChanged {
                path: self.path.to_path_buf(),
                line: line_of(record),
            };
            if record.len() != self.roles.len() {
                return Err(changed());
            }
            key.clear();
            for &column in self.qi_columns {
                let code = self.builders[column]
                    .as_ref()
                    .and_then(|b| b.code(&record[column]))
                    .ok_or_else(changed)?;
                key.push(code);
            }
            let class = *self.class_index.get(key.as_slice()).ok_or_else(changed)?;
            let finest = self.leaf_class[class as usize] as usize;
            let group = self.best.class_group[finest] as usize;
            let kept = self.best.kept[group];
            // A suppressed class is never labelled, so its node does not matter.
            let labels = match self.class_node.map(|nodes| nodes[finest]) {
                Some(node) if kept => &self.labels[node as usize],
                _ => &self.labels[0],
            };
            if !kept && self.drop_suppressed {
                continue;
            }
            fields.clear();
            for (column, role) in self.roles.iter().enumerate() {
                match role {
                    AttributeRole::Identifying => {}
                    AttributeRole::QuasiIdentifying if kept => {
                        let j = qi_position[column];
                        fields.push(labels[j][key[j] as usize]);
                    }
                    AttributeRole::QuasiIdentifying => fields.push(SUPPRESSED),
                    AttributeRole::Sensitive | AttributeRole::Insensitive => {
                        fields.push(&record[column]);
                    }
                }
            }
            writer
                .write_record(&fields)
                .map_err(|e| AnonymizeError::Io {
                    path: self.output.to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::PrivacyModels;

    fn job(dir: &Path, text: &str) -> JobConfig {
        let input = dir.join("in.csv");
        std::fs::write(&input, text).unwrap();
        let mut job = JobConfig::new(
            input,
            dir.join("out.csv"),
            vec!["sex".into()],
            PrivacyModels::k_anonymity(2, 0.0),
        );
        job.hierarchies.insert(
            "sex".into(),
            crate::job::HierarchySource::Built(crate::hierarchy::HierarchySpec::Grouping(
                crate::hierarchy::GroupingSpec { levels: vec![] },
            )),
        );
        job.streaming = Some(true);
        job
    }

    #[test]
    fn batches_span_the_file_and_errors_name_the_line_as_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // More rows than a batch, so that the pipeline crosses batches.
        let mut text = String::from("sex;id;score\n");
        for i in 0..(BATCH_ROWS + 10) {
            text.push_str(&format!(
                "{};p{i};{}\n",
                if i % 2 == 0 { "F" } else { "M" },
                i % 5
            ));
        }
        let ok = job(dir.path(), &text);
        let report = run_streaming(&ok).unwrap();
        assert_eq!(report.records, BATCH_ROWS + 10);
        assert_eq!(report.levels, vec![0]);
        let release = std::fs::read_to_string(&ok.output).unwrap();
        assert_eq!(release.lines().count(), BATCH_ROWS + 11);

        // A refused value of a declared, not kept column: the same line as in memory (the
        // header is line 1, the appended row the last line).
        let bad_line = (BATCH_ROWS + 12) as u64;
        let mut typed = text.clone();
        typed.push_str("F;x;4x\n");
        let mut bad = job(dir.path(), &typed);
        bad.types.insert("score".into(), "integer".parse().unwrap());
        match run_streaming(&bad).unwrap_err() {
            AnonymizeError::InvalidValue { line, column, .. } => {
                assert_eq!((line, column.as_str()), (bad_line, "score"));
            }
            other => panic!("unexpected {other}"),
        }
        let memory = bad.load_dataset().unwrap_err();
        assert!(
            matches!(memory, AnonymizeError::InvalidValue { line, .. } if line == bad_line),
            "{memory}"
        );

        // A ragged row.
        let mut ragged = text;
        ragged.push_str("F;x\n");
        match run_streaming(&job(dir.path(), &ragged)).unwrap_err() {
            AnonymizeError::RaggedRow { line, found, .. } => {
                assert_eq!((line, found), (bad_line, 2));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(!dir.path().join("out.csv.partial").exists());
    }

    #[test]
    fn a_changed_input_is_detected_by_the_second_pass() {
        let dir = tempfile::tempdir().unwrap();
        let job = job(dir.path(), "sex\nF\nF\nM\nM\n");
        let mut first = Batch::default();
        let path = job.input.clone();
        let mut source = open(&path, b';').unwrap().source;
        source.fill(&path, &mut first).unwrap();
        assert_eq!(first.len, 4);
        // A tuple the first pass never saw.
        let builders = vec![Some(ColumnBuilder::new())];
        let class_index = FxHashMap::default();
        let best = Evaluation {
            levels: vec![0],
            class_group: vec![],
            first_class: vec![],
            sizes: vec![],
            kept: vec![],
            suppressed_records: 0,
        };
        let second = SecondPass {
            path: &path,
            output: &job.output,
            roles: &[AttributeRole::QuasiIdentifying],
            qi_columns: &[0],
            builders: &builders,
            class_index: &class_index,
            leaf_class: &[],
            labels: vec![vec![vec![]]],
            class_node: None,
            best: &best,
            drop_suppressed: false,
        };
        match second.write(b';', &["sex"], 4).unwrap_err() {
            AnonymizeError::InputChanged { line, .. } => assert_eq!(line, 2),
            other => panic!("unexpected {other}"),
        }
        assert!(!job.output.exists());
    }
}
