//! Reading the providers' CSV files (notifications, refusals) by column name, row by row, with
//! problems reported by line and rule, never by value.

use std::io::Read;

use chrono::NaiveDate;
use serde::Serialize;

use crate::CollectionError;

/// One row of an imported file that was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    /// Line in the file (1-based; the header is line 1).
    pub line: u64,
    /// Column and rule that failed, never the value.
    pub reason: String,
}

/// Outcome of importing a CSV file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Data rows read (not counting the header).
    pub rows_read: u64,
    /// Rows recorded. For notifications, a row for a patient already notified earlier is
    /// counted here too, though the earlier date stays.
    pub recorded: u64,
    /// Rows that changed nothing because the register already held them (a refusal already on
    /// record).
    pub unchanged: u64,
    /// Rows not recorded, by line.
    pub problems: Vec<RowProblem>,
}

/// The required fields of a row (trimmed), or why the row cannot be read.
pub(crate) type RowFields = Result<Vec<String>, String>;

/// A CSV reader that yields the required columns of each row.
///
/// The file is read into memory first (register files are a few megabytes at most): the csv
/// crate skips blank lines without counting them, so lines are counted from byte offsets.
pub(crate) struct CsvRows {
    reader: csv::Reader<std::io::Cursor<Vec<u8>>>,
    newlines: Vec<u64>,
    columns: Vec<usize>,
    names: &'static [&'static str],
    record: csv::ByteRecord,
}

impl CsvRows {
    /// Reads the header and finds the `names` columns (any order, case-insensitive, extra
    /// columns ignored).
    pub(crate) fn open(
        mut input: impl Read,
        names: &'static [&'static str],
    ) -> Result<Self, CollectionError> {
        let mut bytes = Vec::new();
        input
            .read_to_end(&mut bytes)
            .map_err(|e| CollectionError::CsvRead {
                line: 0,
                kind: e.kind().to_string(),
            })?;
        let newlines = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i as u64)
            .collect();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(std::io::Cursor::new(bytes));
        let header = reader
            .byte_headers()
            .map_err(|e| read_error(&e, 1))?
            .clone();
        let header: Vec<String> = header
            .iter()
            .map(|h| {
                String::from_utf8_lossy(h)
                    .trim_start_matches('\u{feff}')
                    .trim()
                    .to_ascii_lowercase()
            })
            .collect();
        let mut columns = Vec::with_capacity(names.len());
        for &name in names {
            let index = header
                .iter()
                .position(|h| h == name)
                .ok_or(CollectionError::CsvHeader { missing: name })?;
            columns.push(index);
        }
        Ok(CsvRows {
            reader,
            newlines,
            columns,
            names,
            record: csv::ByteRecord::new(),
        })
    }

    /// The next data row: its line and either its required fields (trimmed) or why it cannot
    /// be read. `None` at the end of the input.
    pub(crate) fn next_row(&mut self) -> Result<Option<(u64, RowFields)>, CollectionError> {
        let line_hint = self.line_of(self.reader.position().byte());
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let line = self
                    .record
                    .position()
                    .map_or(line_hint, |p| self.line_of(p.byte()));
                let mut fields = Vec::with_capacity(self.columns.len());
                for (&index, &name) in self.columns.iter().zip(self.names) {
                    let Some(raw) = self.record.get(index) else {
                        return Ok(Some((
                            line,
                            Err(format!("{name}: column missing in this row")),
                        )));
                    };
                    let Ok(text) = std::str::from_utf8(raw) else {
                        return Ok(Some((line, Err(format!("{name}: not UTF-8 text")))));
                    };
                    fields.push(text.trim().to_owned());
                }
                Ok(Some((line, Ok(fields))))
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::Io(_) => Err(read_error(&e, line_hint)),
                // Malformed quoting and the like: report the row, keep reading.
                _ => Ok(Some((line_hint, Err("row is not valid CSV".to_owned())))),
            },
        }
    }
}

impl CsvRows {
    /// 1-based line of the record that starts at a byte offset. The csv crate gives the offset
    /// where it started reading, before the blank lines it skips: skip them here too.
    fn line_of(&self, byte: u64) -> u64 {
        let data = self.reader.get_ref().get_ref();
        let mut at = usize::try_from(byte).unwrap_or(data.len());
        while data.get(at).is_some_and(|b| matches!(b, b'\n' | b'\r')) {
            at += 1;
        }
        self.newlines.partition_point(|&n| n < at as u64) as u64 + 1
    }
}

fn read_error(e: &csv::Error, line: u64) -> CollectionError {
    let kind = match e.kind() {
        csv::ErrorKind::Io(io) => io.kind().to_string(),
        _ => "malformed header".to_owned(),
    };
    CollectionError::CsvRead { line, kind }
}

/// Parses a date written `YYYY-MM-DD` (or `YYYY/MM/DD`, as spreadsheets in Japan write it) that
/// must not be after `today`.
pub(crate) fn parse_past_date(
    column: &str,
    text: &str,
    today: NaiveDate,
) -> Result<NaiveDate, String> {
    if text.is_empty() {
        return Err(format!("{column}: empty"));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y/%m/%d"))
        .map_err(|_| format!("{column}: not a date (YYYY-MM-DD)"))?;
    if date > today {
        return Err(format!("{column}: after today"));
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_by_column_name_with_lines() {
        let input = "\u{feff}Means,provider_patient_id,notified_on,extra\n\
                     letter, 001 ,2026-01-01,x\n\
                     \n\
                     poster,002\n\
                     \"web\",\"00,3\",2026/02/03\n";
        let mut rows = CsvRows::open(
            input.as_bytes(),
            &["provider_patient_id", "notified_on", "means"],
        )
        .unwrap();
        let (line, first) = rows.next_row().unwrap().unwrap();
        assert_eq!(line, 2);
        assert_eq!(first.unwrap(), vec!["001", "2026-01-01", "letter"]);
        let (line, second) = rows.next_row().unwrap().unwrap();
        assert_eq!(line, 4);
        assert_eq!(
            second.unwrap_err(),
            "notified_on: column missing in this row"
        );
        let (line, third) = rows.next_row().unwrap().unwrap();
        assert_eq!(line, 5);
        assert_eq!(third.unwrap(), vec!["00,3", "2026/02/03", "web"]);
        assert!(rows.next_row().unwrap().is_none());

        let missing = CsvRows::open("a,b\n".as_bytes(), &["provider_patient_id"]);
        assert!(matches!(
            missing,
            Err(CollectionError::CsvHeader {
                missing: "provider_patient_id"
            })
        ));
    }

    #[test]
    fn dates_are_checked_without_echoing_them() {
        let today: NaiveDate = "2026-03-01".parse().unwrap();
        assert_eq!(
            parse_past_date("notified_on", "2026/02/03", today),
            Ok("2026-02-03".parse().unwrap())
        );
        let err = parse_past_date("notified_on", "1999-99-99", today).unwrap_err();
        assert_eq!(err, "notified_on: not a date (YYYY-MM-DD)");
        assert_eq!(
            parse_past_date("refused_on", "2026-03-02", today).unwrap_err(),
            "refused_on: after today"
        );
    }
}
