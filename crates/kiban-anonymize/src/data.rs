//! Input data: a delimited or Parquet file read into dictionary-encoded, typed columns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::error::{AnonymizeError, Result};
use crate::hierarchy::csv_error_of;
use crate::types::AttributeType;

/// Role of a column in the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeRole {
    /// Direct identifier: removed from the release.
    Identifying,
    /// Quasi-identifier: generalized by a hierarchy.
    QuasiIdentifying,
    /// Sensitive attribute: kept, protected by ℓ-diversity / t-closeness.
    Sensitive,
    /// Kept as is.
    Insensitive,
}

/// One column, dictionary-encoded: `dictionary[codes[row]]` is the value of `row`.
#[derive(Debug, Clone, Default)]
pub struct EncodedColumn {
    /// Distinct values in order of first appearance.
    pub dictionary: Vec<String>,
    /// One code per row.
    pub codes: Vec<u32>,
}

/// A table read from a delimited file with a header row, or from a Parquet file.
///
/// Every column has an [`AttributeType`]: [`AttributeType::String`] unless declared with
/// [`Dataset::set_types`] (delimited files) or inferred from the Arrow schema (Parquet).
#[derive(Debug, Clone)]
pub struct Dataset {
    source: PathBuf,
    header: Vec<String>,
    columns: Vec<EncodedColumn>,
    rows: usize,
    types: Vec<AttributeType>,
    /// `first_lines[column][code]`: 1-based line where the dictionary value first appears
    /// (to name it in type errors without showing the value).
    first_lines: Vec<Vec<u64>>,
    /// Line of row 0 when every record is one line (2 for delimited text after its header, 1
    /// for Parquet rows).
    first_row_line: u64,
    /// Line of every row, kept only when some record spans several lines (quoted newlines).
    row_lines: Option<Vec<u64>>,
}

/// Appends values to one dictionary-encoded column.
#[derive(Debug, Default)]
pub(crate) struct ColumnBuilder {
    column: EncodedColumn,
    lookup: FxHashMap<Box<str>, u32>,
    first_lines: Vec<u64>,
}

impl ColumnBuilder {
    pub(crate) fn new() -> Self {
        ColumnBuilder {
            column: EncodedColumn::default(),
            lookup: FxHashMap::default(),
            first_lines: Vec::new(),
        }
    }

    /// Appends `value` as the next row (first seen on `line` if new).
    pub(crate) fn push(&mut self, value: &str, line: u64) {
        let code = self.intern(value, line);
        self.column.codes.push(code);
    }

    /// The dictionary code of `value`, added (first seen on `line`) if new; no row is stored.
    pub(crate) fn intern(&mut self, value: &str, line: u64) -> u32 {
        match self.lookup.get(value) {
            Some(&code) => code,
            None => {
                let code = self.column.dictionary.len() as u32;
                self.column.dictionary.push(value.to_string());
                self.first_lines.push(line);
                self.lookup.insert(value.into(), code);
                code
            }
        }
    }

    /// The dictionary code of `value`, if it has been seen.
    pub(crate) fn code(&self, value: &str) -> Option<u32> {
        self.lookup.get(value).copied()
    }

    /// Every value in code order, with the line it first appears on.
    pub(crate) fn first_appearances(&self) -> impl Iterator<Item = (&str, u64)> {
        self.column
            .dictionary
            .iter()
            .map(String::as_str)
            .zip(self.first_lines.iter().copied())
    }
}

impl Dataset {
    /// Reads `path` (`separator`-delimited, header row, UTF-8).
    ///
    /// Errors: unreadable file, malformed CSV, a row whose field count differs from the header
    /// (named by line), no data rows.
    pub fn read_delimited(path: &Path, separator: u8) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| AnonymizeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(
            path,
            std::io::BufReader::with_capacity(1 << 20, file),
            separator,
        )
    }

    /// Reads delimited text from any reader; `source` names it in errors.
    pub fn from_reader(source: &Path, reader: impl std::io::Read, separator: u8) -> Result<Self> {
        let mut csv = csv::ReaderBuilder::new()
            .delimiter(separator)
            .has_headers(true)
            .flexible(true)
            .from_reader(reader);
        let header: Vec<String> = csv
            .headers()
            .map_err(|e| csv_error_of(source, &e))?
            .iter()
            .map(str::to_string)
            .collect();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(AnonymizeError::EmptyData {
                path: source.to_path_buf(),
            });
        }
        let mut builders: Vec<ColumnBuilder> =
            header.iter().map(|_| ColumnBuilder::new()).collect();
        let mut record = csv::StringRecord::new();
        let mut rows = 0usize;
        let mut row_lines: Option<Vec<u64>> = None;
        while csv
            .read_record(&mut record)
            .map_err(|e| csv_error_of(source, &e))?
        {
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            if record.len() != header.len() {
                return Err(AnonymizeError::RaggedRow {
                    path: source.to_path_buf(),
                    line,
                    expected: header.len(),
                    found: record.len(),
                });
            }
            for (field, builder) in record.iter().zip(&mut builders) {
                builder.push(field, line);
            }
            // Lines per row are only stored once a record has spanned several lines.
            if let Some(lines) = row_lines.as_mut() {
                lines.push(line);
            } else if line != rows as u64 + 2 {
                let mut lines: Vec<u64> = (0..rows as u64).map(|r| r + 2).collect();
                lines.push(line);
                row_lines = Some(lines);
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(AnonymizeError::EmptyData {
                path: source.to_path_buf(),
            });
        }
        let mut dataset = Self::assemble(source, header, builders, rows);
        dataset.row_lines = row_lines;
        Ok(dataset)
    }

    fn assemble(
        source: &Path,
        header: Vec<String>,
        builders: Vec<ColumnBuilder>,
        rows: usize,
    ) -> Self {
        let types = vec![AttributeType::String; header.len()];
        let (columns, first_lines) = builders
            .into_iter()
            .map(|b| (b.column, b.first_lines))
            .unzip();
        Dataset {
            source: source.to_path_buf(),
            header,
            columns,
            rows,
            types,
            first_lines,
            first_row_line: 2,
            row_lines: None,
        }
    }

    /// A data set holding only the dictionaries of some columns (no rows): what the streaming
    /// mode keeps after its first pass, for the hierarchy builders and the type checks.
    /// `builders[i]` is `None` for a column whose values are not kept.
    pub(crate) fn dictionaries_only(
        source: &Path,
        header: Vec<String>,
        types: Vec<AttributeType>,
        builders: Vec<Option<&ColumnBuilder>>,
        rows: usize,
    ) -> Self {
        let (columns, first_lines) = builders
            .into_iter()
            .map(|b| match b {
                Some(b) => (
                    EncodedColumn {
                        dictionary: b.column.dictionary.clone(),
                        codes: Vec::new(),
                    },
                    b.first_lines.clone(),
                ),
                None => (EncodedColumn::default(), Vec::new()),
            })
            .unzip();
        Dataset {
            source: source.to_path_buf(),
            header,
            columns,
            rows,
            types,
            first_lines,
            first_row_line: 2,
            row_lines: None,
        }
    }

    /// Sets the type of the column at `index` (already validated by the caller).
    pub(crate) fn set_type_unchecked(&mut self, index: usize, kind: AttributeType) {
        self.types[index] = kind;
    }

    /// Reads a Parquet file batch by batch into the dictionaries (the file is never held as
    /// strings whole). Column types are inferred from the Arrow schema: strings →
    /// [`AttributeType::String`], integers → [`AttributeType::Integer`], floats →
    /// [`AttributeType::Decimal`], booleans → `string` (`true`/`false`), `date32` and timestamps
    /// → [`AttributeType::Date`] (`YYYY-MM-DD`, timestamps as UTC `YYYY-MM-DDTHH:MM:SS[.f]`).
    /// Nulls become the missing value `""`. Type errors name the 1-based row as the line.
    ///
    /// Errors: unreadable or malformed file, an unsupported column type, no rows.
    pub fn read_parquet(path: &Path) -> Result<Self> {
        let parquet_error = |e: &dyn std::fmt::Display| AnonymizeError::Parquet {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(|source| AnonymizeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| parquet_error(&e))?;
        let schema = Arc::clone(builder.schema());
        let reader = builder
            .with_batch_size(8192)
            .build()
            .map_err(|e| parquet_error(&e))?;
        let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if header.is_empty() {
            return Err(AnonymizeError::EmptyData {
                path: path.to_path_buf(),
            });
        }
        let mut types = Vec::with_capacity(header.len());
        for field in schema.fields() {
            types.push(arrow_type(field.data_type()).ok_or_else(|| {
                AnonymizeError::UnsupportedColumnType {
                    path: path.to_path_buf(),
                    column: field.name().clone(),
                    data_type: field.data_type().to_string(),
                }
            })?);
        }
        let mut builders: Vec<ColumnBuilder> =
            header.iter().map(|_| ColumnBuilder::new()).collect();
        let mut rows = 0usize;
        let mut text = String::new();
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(&e))?;
            for (array, builder) in batch.columns().iter().zip(&mut builders) {
                append_arrow(array, &mut text, &mut |i, value| {
                    builder.push(value, (rows + i + 1) as u64)
                });
            }
            rows += batch.num_rows();
        }
        if rows == 0 {
            return Err(AnonymizeError::EmptyData {
                path: path.to_path_buf(),
            });
        }
        let mut dataset = Self::assemble(path, header, builders, rows);
        dataset.types = types;
        dataset.first_row_line = 1;
        Ok(dataset)
    }

    /// Reads `path` with the reader its extension calls for: `.parquet` → [`Self::read_parquet`],
    /// anything else → [`Self::read_delimited`] with `separator`.
    pub fn read(path: &Path, separator: u8) -> Result<Self> {
        let parquet = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        if parquet {
            Self::read_parquet(path)
        } else {
            Self::read_delimited(path, separator)
        }
    }

    /// Declares column types and validates every value against them. Columns not named keep
    /// their type. Missing values (`""`, `?`, `NULL`) are valid in every type.
    ///
    /// Errors: an unknown column; a value that does not parse, named by file, 1-based line,
    /// column and type rule (never the value).
    pub fn set_types(&mut self, types: &BTreeMap<String, AttributeType>) -> Result<()> {
        for (name, declared) in types {
            self.validate_column(name, declared)?;
        }
        for (name, declared) in types {
            let index = self.column_index(name)?;
            self.types[index] = declared.clone();
        }
        Ok(())
    }

    /// Checks every value of column `name` against `expected` without changing its type.
    ///
    /// Errors: an unknown column; the first value (in file order) that does not parse, named by
    /// file, 1-based line, column and type rule (never the value).
    pub fn validate_column(&self, name: &str, expected: &AttributeType) -> Result<()> {
        self.check_values(name, &expected.rule(), |v| expected.accepts(v))
    }

    /// Checks every value of column `name` with `accepts`; the error names the first line
    /// (in file order) whose value is refused, and `rule`.
    pub(crate) fn check_values(
        &self,
        name: &str,
        rule: &str,
        accepts: impl Fn(&str) -> bool,
    ) -> Result<()> {
        let index = self.column_index(name)?;
        let first_bad = self.columns[index]
            .dictionary
            .iter()
            .enumerate()
            .filter(|(_, v)| !accepts(v))
            .map(|(code, _)| self.first_lines[index][code])
            .min();
        match first_bad {
            Some(line) => Err(AnonymizeError::InvalidValue {
                path: self.source.clone(),
                line,
                column: name.to_string(),
                rule: rule.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// The type of the column at `index`.
    pub fn attribute_type(&self, index: usize) -> &AttributeType {
        &self.types[index]
    }

    /// The file the data came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Column names in file order.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Number of data rows.
    pub fn row_count(&self) -> usize {
        self.rows
    }

    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| AnonymizeError::UnknownColumn {
                column: name.to_string(),
            })
    }

    /// The encoded column at `index`.
    pub fn column(&self, index: usize) -> &EncodedColumn {
        &self.columns[index]
    }

    /// The 1-based line of `row` in the file (for Parquet: the 1-based row number).
    pub(crate) fn line_of_row(&self, row: usize) -> u64 {
        match &self.row_lines {
            Some(lines) => lines[row],
            None => row as u64 + self.first_row_line,
        }
    }

    /// Appends a column built row by row (a derived column) with its type.
    pub(crate) fn push_column(&mut self, name: &str, builder: ColumnBuilder, kind: AttributeType) {
        self.header.push(name.to_string());
        self.columns.push(builder.column);
        self.first_lines.push(builder.first_lines);
        self.types.push(kind);
    }
}

/// The attribute type of an Arrow column type, if it is read.
pub(crate) fn arrow_type(data_type: &DataType) -> Option<AttributeType> {
    Some(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => {
            AttributeType::String
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => AttributeType::Integer,
        DataType::Float32 | DataType::Float64 => AttributeType::Decimal,
        DataType::Date32 | DataType::Timestamp(_, _) => AttributeType::Date,
        _ => return None,
    })
}

/// Renders every element of one Arrow array (of a type accepted by [`arrow_type`]) as text and
/// hands it to `sink` with its index in the array.
pub(crate) fn append_arrow(array: &ArrayRef, text: &mut String, sink: &mut dyn FnMut(usize, &str)) {
    use std::fmt::Write;
    // Formats every non-null element through `render`; nulls are the missing value "".
    let mut each = |render: &mut dyn FnMut(usize, &mut String)| {
        for i in 0..array.len() {
            text.clear();
            if array.is_valid(i) {
                render(i, text);
            }
            sink(i, text);
        }
    };
    macro_rules! primitive {
        ($t:ty) => {{
            let values = array.as_primitive::<$t>();
            each(&mut |i, out| {
                let _ = write!(out, "{}", values.value(i));
            })
        }};
    }
    macro_rules! timestamp {
        ($t:ty, $per_second:expr) => {{
            let values = array.as_primitive::<$t>();
            each(&mut |i, out| {
                let raw: i64 = values.value(i);
                let seconds = raw.div_euclid($per_second);
                let nanos = (raw.rem_euclid($per_second) * (1_000_000_000 / $per_second)) as u32;
                if let Some(t) = chrono::DateTime::from_timestamp(seconds, nanos) {
                    let format = if nanos == 0 {
                        "%Y-%m-%dT%H:%M:%S"
                    } else {
                        "%Y-%m-%dT%H:%M:%S%.f"
                    };
                    let _ = write!(out, "{}", t.naive_utc().format(format));
                }
            })
        }};
    }
    match array.data_type() {
        DataType::Utf8 => {
            let values = array.as_string::<i32>();
            each(&mut |i, out| out.push_str(values.value(i)))
        }
        DataType::LargeUtf8 => {
            let values = array.as_string::<i64>();
            each(&mut |i, out| out.push_str(values.value(i)))
        }
        DataType::Utf8View => {
            let values = array.as_string_view();
            each(&mut |i, out| out.push_str(values.value(i)))
        }
        DataType::Boolean => {
            let values = array.as_boolean();
            each(&mut |i, out| out.push_str(if values.value(i) { "true" } else { "false" }))
        }
        DataType::Int8 => primitive!(Int8Type),
        DataType::Int16 => primitive!(Int16Type),
        DataType::Int32 => primitive!(Int32Type),
        DataType::Int64 => primitive!(Int64Type),
        DataType::UInt8 => primitive!(UInt8Type),
        DataType::UInt16 => primitive!(UInt16Type),
        DataType::UInt32 => primitive!(UInt32Type),
        DataType::UInt64 => primitive!(UInt64Type),
        DataType::Float32 => primitive!(Float32Type),
        DataType::Float64 => primitive!(Float64Type),
        DataType::Date32 => {
            let values = array.as_primitive::<Date32Type>();
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            each(&mut |i, out| {
                let days = i64::from(values.value(i));
                if let Some(d) = epoch.checked_add_signed(chrono::TimeDelta::days(days)) {
                    let _ = write!(out, "{}", d.format("%Y-%m-%d"));
                }
            })
        }
        DataType::Timestamp(TimeUnit::Second, _) => timestamp!(TimestampSecondType, 1),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            timestamp!(TimestampMillisecondType, 1_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            timestamp!(TimestampMicrosecondType, 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            timestamp!(TimestampNanosecondType, 1_000_000_000)
        }
        // Rejected by `arrow_type` before reading; nothing to append.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_encodes() {
        let d = Dataset::from_reader(Path::new("t.csv"), "a;b\nx;1\ny;1\nx;2\n".as_bytes(), b';')
            .unwrap();
        assert_eq!(d.row_count(), 3);
        assert_eq!(d.header(), ["a", "b"]);
        assert_eq!(d.column(0).codes, vec![0, 1, 0]);
        assert_eq!(d.column(1).dictionary, vec!["1", "2"]);
        assert!(matches!(
            d.column_index("c"),
            Err(AnonymizeError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn ragged_row_names_the_line() {
        let e =
            Dataset::from_reader(Path::new("t.csv"), "a;b\nx;1\ny\n".as_bytes(), b';').unwrap_err();
        match e {
            AnonymizeError::RaggedRow {
                line,
                expected,
                found,
                ..
            } => assert_eq!((line, expected, found), (3, 2, 1)),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn empty_data_is_an_error() {
        for text in ["a;b\n", ""] {
            let e = Dataset::from_reader(Path::new("t.csv"), text.as_bytes(), b';').unwrap_err();
            assert!(matches!(e, AnonymizeError::EmptyData { .. }), "{e}");
        }
    }

    #[test]
    fn declared_types_are_validated_without_showing_the_value() {
        let text = "id;age;dob;grade\nA;31;1990-01-02;low\nB;?;NULL;high\nC;4x2;2000-13-01;mid\n";
        let mut d = Dataset::from_reader(Path::new("t.csv"), text.as_bytes(), b';').unwrap();
        let types = |pairs: &[(&str, &str)]| -> BTreeMap<String, AttributeType> {
            pairs
                .iter()
                .map(|(c, t)| (c.to_string(), t.parse().unwrap()))
                .collect()
        };
        let e = d.set_types(&types(&[("age", "integer")])).unwrap_err();
        let message = e.to_string();
        assert!(
            matches!(e, AnonymizeError::InvalidValue { line: 4, .. }),
            "{message}"
        );
        assert!(
            message.contains("t.csv") && message.contains("`age`") && message.contains("integer")
        );
        assert!(!message.contains("4x2"), "{message}");
        let e = d.set_types(&types(&[("dob", "date")])).unwrap_err();
        assert!(matches!(e, AnonymizeError::InvalidValue { line: 4, .. }));
        assert!(!e.to_string().contains("2000-13-01"));
        d.set_types(&types(&[("grade", "ordinal:low|mid|high")]))
            .unwrap();
        assert!(d.attribute_type(3).is_ordered());
        assert_eq!(d.attribute_type(1), &AttributeType::String);
        assert!(
            d.set_types(&types(&[("grade", "ordinal:low|high")]))
                .is_err()
        );
    }

    #[test]
    fn parquet_columns_are_read_and_typed() {
        use arrow_array::{
            BooleanArray, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
            TimestampMillisecondArray,
        };
        use arrow_schema::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("age", DataType::Int32, false),
            Field::new("weight", DataType::Float64, false),
            Field::new("smoker", DataType::Boolean, false),
            Field::new("dob", DataType::Date32, true),
            Field::new(
                "seen",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let file = std::fs::File::create(&path).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, Arc::clone(&schema), None).unwrap();
        for offset in [0, 3] {
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(vec![Some("x"), None, Some("x")])),
                    Arc::new(Int32Array::from(vec![30 + offset, 31, 30])),
                    Arc::new(Float64Array::from(vec![60.5, 70.0, 60.5])),
                    Arc::new(BooleanArray::from(vec![true, false, true])),
                    Arc::new(Date32Array::from(vec![Some(0), Some(19_000), None])),
                    Arc::new(TimestampMillisecondArray::from(vec![0, 1_500, 86_400_000])),
                ],
            )
            .unwrap();
            writer.write(&batch).unwrap();
        }
        writer.close().unwrap();
        let d = Dataset::read(&path, b';').unwrap();
        assert_eq!(d.row_count(), 6);
        assert_eq!(
            d.header(),
            ["name", "age", "weight", "smoker", "dob", "seen"]
        );
        assert_eq!(d.column(0).dictionary, vec!["x", ""]);
        assert_eq!(d.column(1).dictionary, vec!["30", "31", "33"]);
        assert_eq!(d.column(1).codes, vec![0, 1, 0, 2, 1, 0]);
        assert_eq!(d.column(2).dictionary, vec!["60.5", "70"]);
        assert_eq!(d.column(3).dictionary, vec!["true", "false"]);
        assert_eq!(d.column(4).dictionary, vec!["1970-01-01", "2022-01-08", ""]);
        assert_eq!(
            d.column(5).dictionary,
            vec![
                "1970-01-01T00:00:00",
                "1970-01-01T00:00:01.500",
                "1970-01-02T00:00:00"
            ]
        );
        let types: Vec<String> = (0..6).map(|i| d.attribute_type(i).to_string()).collect();
        assert_eq!(
            types,
            ["string", "integer", "decimal", "string", "date", "date"]
        );
        for i in 0..6 {
            let t = d.attribute_type(i);
            assert!(d.column(i).dictionary.iter().all(|v| t.accepts(v)));
        }
    }

    #[test]
    fn unsupported_parquet_type_is_named() {
        use arrow_array::{BinaryArray, RecordBatch};
        use arrow_schema::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new(
            "blob",
            DataType::Binary,
            false,
        )]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.parquet");
        let file = std::fs::File::create(&path).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, Arc::clone(&schema), None).unwrap();
        let array: ArrayRef = Arc::new(BinaryArray::from(vec![b"a".as_ref()]));
        writer
            .write(&RecordBatch::try_new(schema, vec![array]).unwrap())
            .unwrap();
        writer.close().unwrap();
        let e = Dataset::read_parquet(&path).unwrap_err();
        assert!(
            matches!(&e, AnonymizeError::UnsupportedColumnType { column, .. } if column == "blob"),
            "{e}"
        );
        let garbage = dir.path().join("g.parquet");
        std::fs::write(&garbage, b"not parquet").unwrap();
        assert!(matches!(
            Dataset::read_parquet(&garbage),
            Err(AnonymizeError::Parquet { .. })
        ));
    }
}
