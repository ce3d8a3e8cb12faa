//! Input data: a delimited file read into dictionary-encoded columns.

use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::error::{AnonymizeError, Result};
use crate::hierarchy::csv_error_of;

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

/// A table read from a delimited file with a header row.
#[derive(Debug, Clone)]
pub struct Dataset {
    source: PathBuf,
    header: Vec<String>,
    columns: Vec<EncodedColumn>,
    rows: usize,
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
        let mut columns: Vec<EncodedColumn> = vec![EncodedColumn::default(); header.len()];
        let mut lookups: Vec<FxHashMap<Box<str>, u32>> = vec![FxHashMap::default(); header.len()];
        let mut record = csv::StringRecord::new();
        let mut rows = 0usize;
        while csv
            .read_record(&mut record)
            .map_err(|e| csv_error_of(source, &e))?
        {
            if record.len() != header.len() {
                return Err(AnonymizeError::RaggedRow {
                    path: source.to_path_buf(),
                    line: record.position().map(|p| p.line()).unwrap_or(0),
                    expected: header.len(),
                    found: record.len(),
                });
            }
            for ((field, column), lookup) in record.iter().zip(&mut columns).zip(&mut lookups) {
                let code = match lookup.get(field) {
                    Some(&code) => code,
                    None => {
                        let code = column.dictionary.len() as u32;
                        column.dictionary.push(field.to_string());
                        lookup.insert(field.into(), code);
                        code
                    }
                };
                column.codes.push(code);
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(AnonymizeError::EmptyData {
                path: source.to_path_buf(),
            });
        }
        Ok(Dataset {
            source: source.to_path_buf(),
            header,
            columns,
            rows,
        })
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
}
