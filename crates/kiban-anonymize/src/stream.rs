//! Streaming mode: two passes over the input file; the rows are never held.
//!
//! Pass 1 reads the file chunk by chunk and keeps only the dictionaries of the
//! quasi-identifying and sensitive columns and the finest equivalence classes (tuple of
//! dictionary codes → records, and per sensitive attribute the (class, value) counts). The
//! search runs on those classes exactly as in memory. Pass 2 re-reads the file and writes every
//! row generalized (or suppressed) straight to the release.
//!
//! Both passes are pipelines: a reader thread cuts the input into chunks of whole records
//! (raw bytes of a delimited file, or record batches of a Parquet file) and hands them over a
//! bounded channel; the chunks are parsed and encoded (pass 1) or released (pass 2) in
//! parallel; the results are merged (pass 1) or written (pass 2) in input order, overlapping
//! with the parsing of the next chunks. At most a few chunks are in flight, so memory stays
//! bounded by the finest classes.
//!
//! Each chunk of pass 1 numbers its own dictionary values and classes in order of first
//! appearance; merged in input order, the global codes and classes are numbered in order of
//! first appearance, as in memory, so the search, every report figure and the release are
//! identical to the in-memory path's.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
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

/// Records per chunk of a Parquet input.
const BATCH_ROWS: usize = 16_384;

/// Bytes per chunk of a delimited input (about 50 000 rows of Adult).
const CHUNK_BYTES: usize = 4 << 20;

/// A piece of the input holding whole records, parsed and encoded (or released) by one worker.
enum Chunk {
    /// Raw bytes of whole delimited records; `line` is the position line of the first.
    Delimited { bytes: Vec<u8>, line: u64 },
    /// Records of a Parquet input, as text.
    Records(Vec<StringRecord>),
}

/// Byte buffers handed back for reuse, so that every chunk does not fault in fresh pages.
#[derive(Default)]
struct BufferPool(std::sync::Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    /// An empty buffer of at least `capacity` bytes.
    fn take(&self, capacity: usize) -> Vec<u8> {
        let mut buffer = self
            .0
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default();
        buffer.clear();
        buffer.reserve(capacity);
        buffer
    }

    /// Keeps `buffer` for a later [`Self::take`] (a few at most: as many as are in flight).
    fn give(&self, buffer: Vec<u8>) {
        if let Ok(mut pool) = self.0.lock()
            && pool.len() < 16
        {
            pool.push(buffer);
        }
    }
}

/// The input past its header, read chunk by chunk.
enum RecordSource {
    /// A delimited file positioned on its first data record.
    Delimited { file: File, line: u64 },
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

fn io_error(path: &Path, source: std::io::Error) -> AnonymizeError {
    AnonymizeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The reader of a chunk or of the header: the options [`Dataset::read`] uses.
fn delimited_reader<R: Read>(separator: u8, has_headers: bool, input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .delimiter(separator)
        .has_headers(has_headers)
        .flexible(true)
        .from_reader(input)
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
    let mut csv = delimited_reader(separator, true, BufReader::new(open_file(path)?));
    let header: Vec<String> = csv
        .headers()
        .map_err(|e| csv_error_of(path, &e))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(empty());
    }
    // The parser stops right after the header's terminator: the records start there.
    let start = csv.position().clone();
    let mut file = csv.into_inner().into_inner();
    file.seek(SeekFrom::Start(start.byte()))
        .map_err(|e| io_error(path, e))?;
    let types = vec![AttributeType::String; header.len()];
    Ok(Opened {
        header,
        types,
        source: RecordSource::Delimited {
            file,
            line: start.line(),
        },
    })
}

fn is_terminator(byte: u8) -> bool {
    byte == b'\n' || byte == b'\r'
}

/// Where the last whole record of `bytes` (which starts on a record) ends, if some record
/// ends before its last: the parser's state there is the one a fresh parser starts in.
fn last_record_end(bytes: &[u8], separator: u8) -> Option<usize> {
    if !bytes.contains(&b'"') {
        // Unquoted, a record ends at a terminator that follows a field byte (a terminator
        // after a terminator belongs to a CRLF or to a blank line, which the parser skips).
        return (1..bytes.len())
            .rev()
            .find(|&i| is_terminator(bytes[i]) && !is_terminator(bytes[i - 1]))
            .map(|i| i + 1);
    }
    // Quoted fields may hold terminators: let the parser find where the records start.
    let mut parser = delimited_reader(separator, false, bytes);
    let mut record = csv::ByteRecord::new();
    let mut last_start = 0;
    while let Ok(true) = parser.read_byte_record(&mut record) {
        last_start = record.position().map_or(0, csv::Position::byte);
    }
    usize::try_from(last_start).ok().filter(|&start| start > 0)
}

impl RecordSource {
    /// Sends the whole input as chunks, in order, until the end, an error (sent too), or the
    /// receiver hangs up.
    fn send_chunks(
        self,
        path: &Path,
        chunk_bytes: usize,
        separator: u8,
        buffers: &BufferPool,
        to: &SyncSender<Result<Chunk>>,
    ) {
        let outcome = match self {
            RecordSource::Delimited { file, line } => {
                Self::send_delimited(file, line, path, chunk_bytes, separator, buffers, to)
            }
            RecordSource::Parquet { reader, rows, text } => {
                Self::send_parquet(reader, rows, text, path, to)
            }
        };
        if let Err(error) = outcome {
            // The receiver may be gone already; then nobody needs the error.
            let _ = to.send(Err(error));
        }
    }

    fn send_delimited(
        mut file: File,
        mut line: u64,
        path: &Path,
        chunk_bytes: usize,
        separator: u8,
        buffers: &BufferPool,
        to: &SyncSender<Result<Chunk>>,
    ) -> Result<()> {
        let chunk_bytes = chunk_bytes.max(1);
        let mut bytes: Vec<u8> = Vec::with_capacity(chunk_bytes);
        let mut wanted = chunk_bytes;
        let mut at_end = false;
        loop {
            while !at_end && bytes.len() < wanted {
                let more = (wanted - bytes.len()) as u64;
                let read = (&mut file)
                    .take(more)
                    .read_to_end(&mut bytes)
                    .map_err(|e| io_error(path, e))?;
                at_end = read == 0;
            }
            let end = if at_end {
                bytes.len()
            } else {
                match last_record_end(&bytes, separator) {
                    Some(end) => end,
                    None => {
                        // A record longer than the chunk so far: grow geometrically, so
                        // that a huge record is not rescanned once per chunk's worth.
                        wanted = wanted.saturating_mul(2);
                        continue;
                    }
                }
            };
            if end == 0 {
                return Ok(());
            }
            let mut rest = buffers.take(chunk_bytes.max(bytes.len() - end));
            rest.extend_from_slice(&bytes[end..]);
            bytes.truncate(end);
            let first_line = line;
            line += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            let chunk = Chunk::Delimited {
                bytes: std::mem::replace(&mut bytes, rest),
                line: first_line,
            };
            if to.send(Ok(chunk)).is_err() {
                return Ok(());
            }
            wanted = bytes.len() + chunk_bytes;
        }
    }

    fn send_parquet(
        mut reader: ParquetRecordBatchReader,
        mut rows: usize,
        mut text: String,
        path: &Path,
        to: &SyncSender<Result<Chunk>>,
    ) -> Result<()> {
        for next in reader.by_ref() {
            let next = next.map_err(|e| parquet_error(path, &e))?;
            let n = next.num_rows();
            if n == 0 {
                continue;
            }
            let mut records: Vec<StringRecord> = (0..n)
                .map(|i| {
                    let mut record = StringRecord::new();
                    let mut position = csv::Position::new();
                    position.set_line((rows + i + 1) as u64);
                    record.set_position(Some(position));
                    record
                })
                .collect();
            for array in next.columns() {
                append_arrow(array, &mut text, &mut |i, value| {
                    records[i].push_field(value)
                });
            }
            rows += n;
            if to.send(Ok(Chunk::Records(records))).is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

impl Chunk {
    /// Calls `each` on every record of the chunk, in order.
    fn for_each_record(
        &self,
        path: &Path,
        separator: u8,
        mut each: impl FnMut(&StringRecord) -> Result<()>,
    ) -> Result<()> {
        match self {
            Chunk::Records(records) => records.iter().try_for_each(each),
            Chunk::Delimited { bytes, line } => {
                let mut parser =
                    delimited_reader(separator, false, std::io::Cursor::new(bytes.as_slice()));
                // Numbers the lines as one parser of the whole file would.
                let mut start = csv::Position::new();
                start.set_line(*line);
                parser
                    .seek_raw(SeekFrom::Start(0), start)
                    .map_err(|e| csv_error_of(path, &e))?;
                let mut record = StringRecord::new();
                while parser
                    .read_record(&mut record)
                    .map_err(|e| csv_error_of(path, &e))?
                {
                    each(&record)?;
                }
                Ok(())
            }
        }
    }
}

/// 1-based line of a record (for Parquet: its row).
fn line_of(record: &StringRecord) -> u64 {
    record.position().map_or(0, csv::Position::line)
}

/// Streams `source` through `work`, run on the chunks in parallel, and `merge`, run on the
/// results one at a time in input order (on the calling thread, while the pool works on the
/// next chunks). An error stops the run; the first in input order is returned.
fn pipeline<T: Send>(
    source: RecordSource,
    path: &Path,
    separator: u8,
    chunk_bytes: usize,
    work: impl Fn(&Chunk) -> Result<T> + Sync,
    mut merge: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    // Two chunks per thread being worked on (one running, one ready), as many read ahead:
    // the threads never wait for the reader or the merge, and the chunks in memory are few.
    let threads = rayon::current_num_threads().max(1);
    let in_flight = 2 * threads;
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<Chunk>>(threads);
    let buffers = &BufferPool::default();
    std::thread::scope(|scope| {
        scope.spawn(move || source.send_chunks(path, chunk_bytes, separator, buffers, &sender));
        // Owned here so that it hangs up (and the reader stops) when this returns early.
        let receiver = receiver;
        let (done_sender, done) =
            std::sync::mpsc::channel::<(usize, std::thread::Result<Result<T>>)>();
        let work = &work;
        // Runs on this thread; the tasks go to the pool, and are all finished when it returns.
        rayon::in_place_scope(|tasks| {
            let mut started = 0usize;
            let mut merged = 0usize;
            let mut reading = true;
            let mut finished: std::collections::BTreeMap<usize, Result<T>> = Default::default();
            loop {
                while reading && started - merged < in_flight {
                    let Ok(chunk) = receiver.recv() else {
                        reading = false;
                        break;
                    };
                    let done_sender = done_sender.clone();
                    let index = started;
                    tasks.spawn(move |_| {
                        // A panic is handed over too, so that the merge never waits for it.
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            chunk.and_then(|chunk| {
                                let result = work(&chunk);
                                if let Chunk::Delimited { bytes, .. } = chunk {
                                    buffers.give(bytes);
                                }
                                result
                            })
                        }));
                        let _ = done_sender.send((index, result));
                    });
                    started += 1;
                }
                if merged == started {
                    return Ok(());
                }
                while !finished.contains_key(&merged) {
                    // Every task sends, and this thread holds a sender too, so this waits
                    // for a result rather than fails.
                    let (index, result) = done.recv().map_err(|_| AnonymizeError::Io {
                        path: path.to_path_buf(),
                        source: std::io::Error::other("a chunk's work ended without a result"),
                    })?;
                    match result {
                        Ok(result) => finished.insert(index, result),
                        Err(panic) => std::panic::resume_unwind(panic),
                    };
                }
                if let Some(result) = finished.remove(&merged) {
                    merged += 1;
                    merge(result?)?;
                }
            }
        })
    })
}

/// What pass 1 needs to know of the columns.
struct Layout<'a> {
    path: &'a Path,
    separator: u8,
    header_len: usize,
    qi_columns: Vec<usize>,
    sensitive_columns: Vec<usize>,
    /// Columns whose dictionary is kept (quasi-identifiers and sensitive attributes).
    kept: Vec<bool>,
    /// Declared type of a column whose dictionary is not kept: checked value by value.
    checks: Vec<Option<AttributeType>>,
}

/// Dictionaries and finest classes: of one chunk (codes and classes numbered within the
/// chunk) or, merged, of the whole input. In both, in order of first appearance.
struct Classes {
    /// Dictionary of each kept column.
    builders: Vec<Option<ColumnBuilder>>,
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
}

impl Classes {
    fn new(layout: &Layout<'_>) -> Self {
        Classes {
            builders: layout
                .kept
                .iter()
                .map(|&kept| kept.then(ColumnBuilder::new))
                .collect(),
            first_refused: vec![None; layout.header_len],
            class_index: FxHashMap::default(),
            class_codes: Vec::new(),
            sizes: Vec::new(),
            sensitive_counts: vec![FxHashMap::default(); layout.sensitive_columns.len()],
            rows: 0,
        }
    }

    /// The class of `key`, added (empty) if new.
    fn class_of(&mut self, key: &[u32]) -> u32 {
        match self.class_index.get(key) {
            Some(&class) => class,
            None => {
                let class = self.sizes.len() as u32;
                self.class_index.insert(key.into(), class);
                self.class_codes.extend_from_slice(key);
                self.sizes.push(0);
                class
            }
        }
    }

    /// Encodes one chunk on its own.
    fn of_chunk(layout: &Layout<'_>, chunk: &Chunk) -> Result<Self> {
        let mut classes = Classes::new(layout);
        let mut key: Vec<u32> = Vec::with_capacity(layout.qi_columns.len());
        chunk.for_each_record(layout.path, layout.separator, |record| {
            classes.add(layout, record, &mut key)
        })?;
        // Only the merge reads the chunk's classes, and by number.
        classes.class_index = FxHashMap::default();
        Ok(classes)
    }

    fn add(
        &mut self,
        layout: &Layout<'_>,
        record: &StringRecord,
        key: &mut Vec<u32>,
    ) -> Result<()> {
        let line = line_of(record);
        if record.len() != layout.header_len {
            return Err(AnonymizeError::RaggedRow {
                path: layout.path.to_path_buf(),
                line,
                expected: layout.header_len,
                found: record.len(),
            });
        }
        for (column, check) in layout.checks.iter().enumerate() {
            if let Some(kind) = check
                && self.first_refused[column].is_none()
                && !kind.accepts(&record[column])
            {
                self.first_refused[column] = Some(line);
            }
        }
        key.clear();
        for &column in &layout.qi_columns {
            let code = self.builders[column]
                .as_mut()
                .map_or(0, |b| b.intern(&record[column], line));
            key.push(code);
        }
        let class = self.class_of(key);
        self.sizes[class as usize] += 1;
        for (s, &column) in layout.sensitive_columns.iter().enumerate() {
            let value = self.builders[column]
                .as_mut()
                .map_or(0, |b| b.intern(&record[column], line));
            *self.sensitive_counts[s]
                .entry((u64::from(class) << 32) | u64::from(value))
                .or_insert(0) += 1;
        }
        self.rows += 1;
        Ok(())
    }

    /// Adds the classes of the next chunk. A value or class new to the whole input first
    /// appears in that chunk where the chunk's own numbering first meets it, so interning the
    /// chunk's values and classes in their order keeps the order of first appearance.
    fn merge(&mut self, layout: &Layout<'_>, chunk: Classes) {
        let to_global: Vec<Vec<u32>> = chunk
            .builders
            .iter()
            .zip(&mut self.builders)
            .map(|(local, global)| match (local, global) {
                (Some(local), Some(global)) => local
                    .first_appearances()
                    .map(|(value, line)| global.intern(value, line))
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        for (global, local) in self.first_refused.iter_mut().zip(chunk.first_refused) {
            if global.is_none() {
                *global = local;
            }
        }
        let qi_count = layout.qi_columns.len();
        let mut key: Vec<u32> = vec![0; qi_count];
        let mut to_global_class = Vec::with_capacity(chunk.sizes.len());
        for (class, &size) in chunk.sizes.iter().enumerate() {
            let local_codes = &chunk.class_codes[class * qi_count..(class + 1) * qi_count];
            for ((code, &local), &column) in key.iter_mut().zip(local_codes).zip(&layout.qi_columns)
            {
                *code = to_global[column].get(local as usize).copied().unwrap_or(0);
            }
            let class = self.class_of(&key);
            self.sizes[class as usize] += size;
            to_global_class.push(class);
        }
        for ((global, local), &column) in self
            .sensitive_counts
            .iter_mut()
            .zip(chunk.sensitive_counts)
            .zip(&layout.sensitive_columns)
        {
            for (pair, n) in local {
                let class = to_global_class[(pair >> 32) as usize];
                let value = to_global[column]
                    .get((pair & 0xffff_ffff) as usize)
                    .copied()
                    .unwrap_or(0);
                *global
                    .entry((u64::from(class) << 32) | u64::from(value))
                    .or_insert(0) += n;
            }
        }
        self.rows += chunk.rows;
    }
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
    run_streaming_in_chunks(job, CHUNK_BYTES)
}

/// As [`run_streaming`], cutting a delimited input in chunks of about `chunk_bytes`.
fn run_streaming_in_chunks(job: &JobConfig, chunk_bytes: usize) -> Result<Report> {
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
        source,
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
    let mut kept = vec![false; columns];
    for &c in qi_columns.iter().chain(&sensitive_columns) {
        kept[c] = true;
        // The dictionary is validated as a whole afterwards.
        checks[c] = None;
    }
    let layout = Layout {
        path,
        separator,
        header_len: columns,
        qi_columns: qi_columns.clone(),
        sensitive_columns: sensitive_columns.clone(),
        kept,
        checks,
    };
    let mut first = Classes::new(&layout);
    pipeline(
        source,
        path,
        separator,
        chunk_bytes,
        |chunk| Classes::of_chunk(&layout, chunk),
        |chunk| {
            first.merge(&layout, chunk);
            Ok(())
        },
    )?;
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
        classes: ClassLookup::new(
            &first.class_index,
            qi_columns
                .iter()
                .map(|&c| dataset.column(c).dictionary.len()),
        ),
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
        chunk_bytes,
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

/// The finest class of each tuple of quasi-identifier dictionary codes, for the second pass.
enum ClassLookup<'a> {
    /// The codes packed into 64 bits (code `j` shifted by `shifts[j]`), when they fit: a
    /// cheaper hash and no key to follow.
    Packed {
        shifts: Vec<u32>,
        index: FxHashMap<u64, u32>,
    },
    /// Keyed by the codes.
    Codes(&'a FxHashMap<Box<[u32]>, u32>),
}

impl<'a> ClassLookup<'a> {
    /// Packs the keys of `index` if the codes of dictionaries of `sizes` fit in 64 bits.
    fn new(index: &'a FxHashMap<Box<[u32]>, u32>, sizes: impl Iterator<Item = usize>) -> Self {
        let mut shifts = Vec::new();
        let mut bits = 0u32;
        for size in sizes {
            shifts.push(bits);
            bits += usize::BITS - size.saturating_sub(1).leading_zeros();
        }
        if bits > 64 {
            return ClassLookup::Codes(index);
        }
        let index = index
            .iter()
            .map(|(codes, &class)| (pack(&shifts, codes), class))
            .collect();
        ClassLookup::Packed { shifts, index }
    }

    fn get(&self, codes: &[u32]) -> Option<u32> {
        match self {
            ClassLookup::Packed { shifts, index } => index.get(&pack(shifts, codes)).copied(),
            ClassLookup::Codes(index) => index.get(codes).copied(),
        }
    }
}

/// The codes packed at their shifts (a code of a one-value dictionary is 0, so that its
/// shift may be 64).
fn pack(shifts: &[u32], codes: &[u32]) -> u64 {
    shifts.iter().zip(codes).fold(0, |packed, (&shift, &code)| {
        packed | u64::from(code).checked_shl(shift).unwrap_or(0)
    })
}

/// What the second pass needs to release each row.
struct SecondPass<'a> {
    path: &'a Path,
    output: &'a Path,
    roles: &'a [AttributeRole],
    qi_columns: &'a [usize],
    builders: &'a [Option<ColumnBuilder>],
    classes: ClassLookup<'a>,
    leaf_class: &'a [u32],
    /// Per level vector (one, or with local recoding one per node): `labels[node][j][code]`.
    labels: Vec<Vec<Vec<&'a str>>>,
    /// With local recoding: the node of every finest class.
    class_node: Option<&'a [u32]>,
    best: &'a Evaluation,
    drop_suppressed: bool,
    /// Bytes per chunk of a delimited input.
    chunk_bytes: usize,
}

impl SecondPass<'_> {
    /// Re-reads the input and writes the release atomically.
    fn write(&self, separator: u8, header: &[&str], rows: usize) -> Result<()> {
        let output = self.output;
        let mut failure: Option<AnonymizeError> = None;
        let written = write_atomically(output, |file| {
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
            let mut header_writer = csv::WriterBuilder::new()
                .delimiter(separator)
                .from_writer(Vec::new());
            header_writer.write_record(header)?;
            std::io::Write::write_all(
                &mut writer,
                &header_writer
                    .into_inner()
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            )?;
            let outcome = (|| {
                let source = open(self.path, separator)?.source;
                let mut seen = 0usize;
                let released_buffers = BufferPool::default();
                pipeline(
                    source,
                    self.path,
                    separator,
                    self.chunk_bytes,
                    |chunk| self.release_chunk(chunk, separator, &released_buffers),
                    |(released, count)| {
                        seen += count;
                        std::io::Write::write_all(&mut writer, &released)
                            .map_err(|e| io_error(self.output, e))?;
                        released_buffers.give(released);
                        Ok(())
                    },
                )?;
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
            let file = writer.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(())
        });
        match (written, failure) {
            (Err(_), Some(error)) => Err(error),
            (written, _) => written,
        }
    }

    /// The release of one chunk, formatted, and the number of records read.
    fn release_chunk(
        &self,
        chunk: &Chunk,
        separator: u8,
        buffers: &BufferPool,
    ) -> Result<(Vec<u8>, usize)> {
        let capacity = match chunk {
            Chunk::Delimited { bytes, .. } => bytes.len() + bytes.len() / 4,
            Chunk::Records(records) => records.len() * 64,
        };
        let mut writer = csv::WriterBuilder::new()
            .delimiter(separator)
            .from_writer(buffers.take(capacity));
        let mut key: Vec<u32> = Vec::with_capacity(self.qi_columns.len());
        let mut qi_position = vec![usize::MAX; self.roles.len()];
        for (j, &c) in self.qi_columns.iter().enumerate() {
            qi_position[c] = j;
        }
        let mut count = 0usize;
        let format_error = |e: &dyn std::fmt::Display| AnonymizeError::Io {
            path: self.output.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        };
        chunk.for_each_record(self.path, separator, |record| {
            count += 1;
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
            let class = self.classes.get(&key).ok_or_else(changed)?;
            let finest = self.leaf_class[class as usize] as usize;
            let group = self.best.class_group[finest] as usize;
            let kept = self.best.kept[group];
            // A suppressed class is never labelled, so its node does not matter.
            let labels = match self.class_node.map(|nodes| nodes[finest]) {
                Some(node) if kept => &self.labels[node as usize],
                _ => &self.labels[0],
            };
            if !kept && self.drop_suppressed {
                return Ok(());
            }
            let key = &key;
            let fields = self
                .roles
                .iter()
                .enumerate()
                .filter_map(|(column, role)| match role {
                    AttributeRole::Identifying => None,
                    AttributeRole::QuasiIdentifying if kept => {
                        let j = qi_position[column];
                        Some(labels[j][key[j] as usize])
                    }
                    AttributeRole::QuasiIdentifying => Some(SUPPRESSED),
                    AttributeRole::Sensitive | AttributeRole::Insensitive => Some(&record[column]),
                });
            writer.write_record(fields).map_err(|e| format_error(&e))
        })?;
        let released = writer.into_inner().map_err(|e| format_error(&e))?;
        Ok((released, count))
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

    /// Every record of `path` with its position line, as the chunks of `chunk_bytes` give them.
    fn records_in_chunks(path: &Path, chunk_bytes: usize) -> Vec<(Vec<String>, u64)> {
        let source = open(path, b';').unwrap().source;
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let mut records = Vec::new();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                source.send_chunks(path, chunk_bytes, b';', &BufferPool::default(), &sender)
            });
            for chunk in receiver {
                chunk
                    .unwrap()
                    .for_each_record(path, b';', |record| {
                        records
                            .push((record.iter().map(str::to_string).collect(), line_of(record)));
                        Ok(())
                    })
                    .unwrap();
            }
        });
        records
    }

    /// The records of `path` read by one parser, as [`Dataset::read`] reads them.
    fn records_in_one_pass(path: &Path) -> Vec<(Vec<String>, u64)> {
        let mut reader = delimited_reader(b';', true, File::open(path).unwrap());
        reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r.iter().map(str::to_string).collect(), line_of(&r))
            })
            .collect()
    }

    #[test]
    fn chunks_split_quoted_crlf_and_blank_line_input_like_one_parser() {
        let dir = tempfile::tempdir().unwrap();
        let tricky = [
            // Plain records, LF and CRLF, blank lines between.
            "F;1;a\nM;2;b\r\nF;3;c\n\nM;4;d\r\n\r\n",
            // Quoted separators, terminators and doubled quotes, a quote inside a field.
            "F;\"5;x\";\"multi\nline\"\r\nM;\"\"\"q\"\"\";e\"f\nF;\"\r\n\";\"\"\n",
            // Empty fields and a short record.
            ";;\nM;6\nF;7;g",
        ];
        let text = format!("sex;id;note\n{}", tricky.concat().repeat(8));
        let input = dir.path().join("tricky.csv");
        std::fs::write(&input, &text).unwrap();
        let expected = records_in_one_pass(&input);
        assert!(expected.len() > 60, "{}", expected.len());
        for chunk_bytes in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 1 << 20] {
            assert_eq!(
                records_in_chunks(&input, chunk_bytes),
                expected,
                "chunks of {chunk_bytes} bytes"
            );
        }
        // The same with CRLF after the header.
        let crlf = dir.path().join("crlf.csv");
        std::fs::write(&crlf, text.replacen('\n', "\r\n", 1)).unwrap();
        let expected = records_in_one_pass(&crlf);
        for chunk_bytes in [1, 4, 7, 64] {
            assert_eq!(records_in_chunks(&crlf, chunk_bytes), expected);
        }
    }

    fn without_elapsed(report: &Report) -> serde_json::Value {
        let mut json = serde_json::to_value(report).unwrap();
        json.as_object_mut().unwrap().remove("elapsed_ms");
        json
    }

    #[test]
    fn parallel_chunks_release_what_the_in_memory_path_releases() {
        let dir = tempfile::tempdir().unwrap();
        let adult = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/adult");
        let qis = [
            "sex",
            "age",
            "race",
            "marital-status",
            "education",
            "native-country",
            "workclass",
            "occupation",
            "salary-class",
        ];
        let mut job = JobConfig::new(
            adult.join("adult.csv"),
            dir.path().join("memory.csv"),
            qis.iter().map(|s| s.to_string()).collect(),
            PrivacyModels::k_anonymity(5, 0.05),
        );
        job.hierarchy_dir = Some(adult.clone());
        job.metric = crate::metric::Metric::Entropy;
        job.streaming = Some(false);
        let memory = crate::job::run(&job).unwrap();
        let released = std::fs::read(&job.output).unwrap();
        // Adult is 2.5 MB: chunks of 64 KiB make about forty, of 300 bytes thousands.
        for chunk_bytes in [64 << 10, 300] {
            job.output = dir.path().join(format!("streamed-{chunk_bytes}.csv"));
            let streamed = run_streaming_in_chunks(&job, chunk_bytes).unwrap();
            assert_eq!(without_elapsed(&streamed), without_elapsed(&memory));
            assert!(
                std::fs::read(&job.output).unwrap() == released,
                "release differs with chunks of {chunk_bytes} bytes"
            );
        }
    }

    #[test]
    fn batches_span_the_file_and_errors_name_the_line_as_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // More rows than a chunk, so that the pipeline crosses chunks.
        let mut text = String::from("sex;id;score\n");
        for i in 0..(BATCH_ROWS + 10) {
            text.push_str(&format!(
                "{};p{i};{}\n",
                if i % 2 == 0 { "F" } else { "M" },
                i % 5
            ));
        }
        let chunk_bytes = 4096;
        let ok = job(dir.path(), &text);
        let report = run_streaming_in_chunks(&ok, chunk_bytes).unwrap();
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
        match run_streaming_in_chunks(&bad, chunk_bytes).unwrap_err() {
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

        // A ragged row, then another: the first is named.
        let mut ragged = text;
        ragged.push_str("F;x\nM\n");
        match run_streaming_in_chunks(&job(dir.path(), &ragged), chunk_bytes).unwrap_err() {
            AnonymizeError::RaggedRow { line, found, .. } => {
                assert_eq!((line, found), (bad_line, 2));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(!dir.path().join("out.csv.partial").exists());
    }

    #[test]
    fn class_lookup_packs_codes_that_fit_in_64_bits() {
        let mut index: FxHashMap<Box<[u32]>, u32> = FxHashMap::default();
        for (class, key) in [[0, 0, 0], [1, 99, 0], [0, 99, 0], [1, 0, 0]]
            .iter()
            .enumerate()
        {
            index.insert(key.as_slice().into(), class as u32);
        }
        // 1 + 7 + 0 bits; the one-value dictionary's shift is 8.
        let packed = ClassLookup::new(&index, [2, 100, 1].into_iter());
        assert!(matches!(&packed, ClassLookup::Packed { shifts, .. } if shifts == &[0, 1, 8]));
        // 32 + 32 + 1 bits do not fit.
        let unpacked = ClassLookup::new(&index, [1 << 32, 1 << 32, 2].into_iter());
        assert!(matches!(unpacked, ClassLookup::Codes(_)));
        for lookup in [&packed, &unpacked] {
            for (key, &class) in &index {
                assert_eq!(lookup.get(key), Some(class));
            }
            assert_eq!(lookup.get(&[1, 98, 0]), None);
        }
        // 64 bits exactly, then a one-value dictionary shifted by 64.
        let full = ClassLookup::new(&index, [1 << 32, 1 << 32, 1].into_iter());
        assert!(matches!(&full, ClassLookup::Packed { shifts, .. } if shifts == &[0, 32, 64]));
        assert_eq!(full.get(&[1, 99, 0]), Some(1));
    }

    #[test]
    fn a_changed_input_is_detected_by_the_second_pass() {
        let dir = tempfile::tempdir().unwrap();
        let job = job(dir.path(), "sex\nF\nF\nM\nM\n");
        let path = job.input.clone();
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
            classes: ClassLookup::Codes(&class_index),
            leaf_class: &[],
            labels: vec![vec![vec![]]],
            class_node: None,
            best: &best,
            drop_suppressed: false,
            chunk_bytes: 2,
        };
        match second.write(b';', &["sex"], 4).unwrap_err() {
            AnonymizeError::InputChanged { line, .. } => assert_eq!(line, 2),
            other => panic!("unexpected {other}"),
        }
        assert!(!job.output.exists());
    }
}
