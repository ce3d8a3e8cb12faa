//! Age at an event (入院時年齢, age at diagnosis): derived from a birth-date column and an
//! event-date column (or one event date for every record), top-coded, and generalized in
//! nested bands (exact age → 5-year band → 10-year band → `*`, with `90+` at every level).
//!
//! The age is the number of completed years, as 年齢計算ニ関スル法律 and 民法 143 count it: it
//! grows on the birthday itself, and someone born on 29 February grows older on 1 March in a
//! common year (the anniversary falls at the end of February).

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::data::{ColumnBuilder, Dataset};
use crate::error::{AnonymizeError, Result};
use crate::hierarchy::SUPPRESSED;
use crate::types::{AttributeType, is_missing};

/// Derive an age-at-event column and generalize it in bands; used as a built hierarchy
/// (`kind = "age_at_event"`) of a quasi-identifier that is not in the input, which
/// [`crate::JobConfig::load_dataset`] then adds (see [`Dataset::derive_age_at_event`]).
///
/// TOML: `age = { kind = "age_at_event", birth_date = "birth_date", event_date =
/// "admission_date" }` or with `event_on = "2024-04-01"` instead of `event_date`; optional
/// `top` (default 90) and `widths` (default `[5, 10]`). The birth-date column is dropped from
/// the release unless it has a role of its own.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgeAtEventSpec {
    /// Column of birth dates (`YYYY-MM-DD`, or a date-time whose date is used).
    pub birth_date: String,
    /// Column of event dates; exactly one of this and [`Self::event_on`].
    #[serde(default)]
    pub event_date: Option<String>,
    /// One event date (`YYYY-MM-DD`) for every record, e.g. the reference date of a release.
    #[serde(default)]
    pub event_on: Option<String>,
    /// Ages from this on are released as `<top>+` at every level, exact ones included.
    #[serde(default = "default_top")]
    pub top: i64,
    /// Band widths, one level each, each a multiple of the previous (anchored at age 0).
    #[serde(default = "default_widths")]
    pub widths: Vec<i64>,
}

/// Default of [`AgeAtEventSpec::top`]: ages 90 and over are top-coded.
pub const DEFAULT_AGE_TOP: i64 = 90;

fn default_top() -> i64 {
    DEFAULT_AGE_TOP
}

fn default_widths() -> Vec<i64> {
    vec![5, 10]
}

/// What a derivation did, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DerivedAge {
    /// The derived column.
    pub column: String,
    /// The birth-date column it was derived from.
    pub birth_date: String,
    /// The event-date column, if the event date is per record.
    pub event_date: Option<String>,
    /// The fixed event date, if one was configured.
    pub event_on: Option<String>,
    /// Ages from this on were released as `<top>+`.
    pub top: i64,
    /// Records whose age is at or above `top`.
    pub top_coded_records: usize,
    /// Records with a missing birth or event date (released as a missing age).
    pub missing_records: usize,
    /// The rule, in words.
    pub rule: String,
}

/// Completed years from `birth` to `event` (the age grows on the birthday; a 29 February
/// birthday falls on 1 March in a common year). `None` if `event` is before `birth`.
pub fn age_at(birth: NaiveDate, event: NaiveDate) -> Option<i64> {
    if event < birth {
        return None;
    }
    let before_birthday = (event.month(), event.day()) < (birth.month(), birth.day());
    Some(i64::from(event.year() - birth.year()) - i64::from(before_birthday))
}

/// The date of a `YYYY-MM-DD` value or of a `YYYY-MM-DDTHH:MM:SS` date-time.
fn date_of(value: &str) -> Option<NaiveDate> {
    let day = value.get(..10)?;
    if value.len() > 10 && !value[10..].starts_with('T') {
        return None;
    }
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

impl AgeAtEventSpec {
    fn invalid(&self, column: &str, rule: String) -> AnonymizeError {
        AnonymizeError::InvalidHierarchy {
            hierarchy: column.to_string(),
            rule,
        }
    }

    /// Checks the parameters (`column` names the derived column in errors).
    pub fn validate(&self, column: &str) -> Result<()> {
        match (&self.event_date, &self.event_on) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(self.invalid(
                    column,
                    "age_at_event needs exactly one of `event_date` (a column) and `event_on` (a date)"
                        .into(),
                ));
            }
            (None, Some(day)) if NaiveDate::parse_from_str(day, "%Y-%m-%d").is_err() => {
                return Err(self.invalid(column, "`event_on` must be a date YYYY-MM-DD".into()));
            }
            _ => {}
        }
        if self.top <= 0 {
            return Err(self.invalid(column, "age top-coding `top` must be positive".into()));
        }
        check_widths(column, &self.widths)
    }

    /// The label of an age: the number, or `<top>+` from `top` on.
    fn label(&self, age: i64) -> String {
        if age >= self.top {
            format!("{}+", self.top)
        } else {
            age.to_string()
        }
    }
}

fn check_widths(column: &str, widths: &[i64]) -> Result<()> {
    for (i, &w) in widths.iter().enumerate() {
        let rule = if w <= 0 {
            format!("age band width {} is not positive", i + 1)
        } else if i > 0 && w % widths[i - 1] != 0 {
            format!("age band width {} is not a multiple of width {i}", i + 1)
        } else {
            continue;
        };
        return Err(AnonymizeError::InvalidHierarchy {
            hierarchy: column.to_string(),
            rule,
        });
    }
    Ok(())
}

impl Dataset {
    /// Adds column `column`, the age at the event of every record (see [`age_at`]),
    /// top-coded at `spec.top` (`90+`), typed [`AttributeType::Code`]. A record with a
    /// missing birth or event date gets the missing value `""`.
    ///
    /// Errors: `column` already exists, an unknown source column, a value that is not a date
    /// or an event before the birth (named by file, line, column and rule, never the value).
    pub fn derive_age_at_event(
        &mut self,
        column: &str,
        spec: &AgeAtEventSpec,
    ) -> Result<DerivedAge> {
        spec.validate(column)?;
        if self.column_index(column).is_ok() {
            return Err(spec.invalid(
                column,
                "the derived age column is already in the input; give it a new name".into(),
            ));
        }
        let date_rule = AttributeType::Date.rule();
        let dates = |name: &str| -> Result<(usize, Vec<Option<NaiveDate>>)> {
            let index = self.column_index(name)?;
            self.check_values(name, &date_rule, |v| is_missing(v) || date_of(v).is_some())?;
            let parsed = self
                .column(index)
                .dictionary
                .iter()
                .map(|v| if is_missing(v) { None } else { date_of(v) })
                .collect();
            Ok((index, parsed))
        };
        let (birth_index, births) = dates(&spec.birth_date)?;
        let events = match (&spec.event_date, &spec.event_on) {
            (Some(name), _) => Some(dates(name)?),
            _ => None,
        };
        let fixed = spec
            .event_on
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let mut builder = ColumnBuilder::new();
        let (mut top_coded, mut missing) = (0usize, 0usize);
        let birth_codes = &self.column(birth_index).codes;
        for row in 0..self.row_count() {
            let line = self.line_of_row(row);
            let birth = births[birth_codes[row] as usize];
            let event = match &events {
                Some((index, parsed)) => parsed[self.column(*index).codes[row] as usize],
                None => fixed,
            };
            let label = match (birth, event) {
                (Some(birth), Some(event)) => {
                    let age = age_at(birth, event).ok_or_else(|| AnonymizeError::InvalidValue {
                        path: self.source().to_path_buf(),
                        line,
                        column: spec.birth_date.clone(),
                        rule: "a birth date on or before the event date".into(),
                    })?;
                    if age >= spec.top {
                        top_coded += 1;
                    }
                    spec.label(age)
                }
                _ => {
                    missing += 1;
                    String::new()
                }
            };
            builder.push(&label, line);
        }
        self.push_column(column, builder, AttributeType::Code);
        Ok(DerivedAge::new(column, spec, top_coded, missing))
    }
}

impl DerivedAge {
    fn new(column: &str, spec: &AgeAtEventSpec, top_coded: usize, missing: usize) -> Self {
        DerivedAge {
            column: column.to_string(),
            birth_date: spec.birth_date.clone(),
            event_date: spec.event_date.clone(),
            event_on: spec.event_on.clone(),
            top: spec.top,
            top_coded_records: top_coded,
            missing_records: missing,
            rule: format!(
                "completed years from `{}` to {}, {}+ top-coded; bands of {:?} years",
                spec.birth_date,
                match (&spec.event_date, &spec.event_on) {
                    (Some(c), _) => format!("`{c}`"),
                    (_, Some(d)) => d.clone(),
                    _ => String::new(),
                },
                spec.top,
                spec.widths
            ),
        }
    }

    /// The report of a derived column already in `dataset` (counted from its values).
    ///
    /// Errors: `column` is not in `dataset`.
    pub fn measure(dataset: &Dataset, column: &str, spec: &AgeAtEventSpec) -> Result<Self> {
        let values = dataset.column(dataset.column_index(column)?);
        let top_label = format!("{}+", spec.top);
        let mut per_code = vec![0usize; values.dictionary.len()];
        for &code in &values.codes {
            per_code[code as usize] += 1;
        }
        let count = |wanted: &dyn Fn(&str) -> bool| -> usize {
            values
                .dictionary
                .iter()
                .zip(&per_code)
                .filter(|(v, _)| wanted(v))
                .map(|(_, n)| n)
                .sum()
        };
        let top_coded = count(&|v| v == top_label);
        let missing = count(&|v| is_missing(v));
        Ok(DerivedAge::new(column, spec, top_coded, missing))
    }
}

/// Rows of the age-band hierarchy over the values of a derived age column: the age, one band
/// per width (`45-49`, `40-49`), `*`; `<top>+` and missing values stay themselves up to `*`.
pub(crate) fn age_band_rows(
    name: &str,
    spec: &AgeAtEventSpec,
    values: &[&str],
) -> Result<Vec<Vec<String>>> {
    spec.validate(name)?;
    let top_label = format!("{}+", spec.top);
    let mut rows = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let mut row = vec![value.to_string()];
        if is_missing(value) || *value == top_label {
            row.extend(std::iter::repeat_n(value.to_string(), spec.widths.len()));
        } else {
            let age: i64 = value
                .parse()
                .ok()
                .filter(|a| (0..spec.top).contains(a))
                .ok_or_else(|| {
                    spec.invalid(
                        name,
                        format!(
                            "distinct value {} is not an age from 0 below {} or `{top_label}`",
                            index + 1,
                            spec.top
                        ),
                    )
                })?;
            for &width in &spec.widths {
                let low = age.div_euclid(width) * width;
                let high = (low + width - 1).min(spec.top - 1);
                row.push(format!("{low}-{high}"));
            }
        }
        row.push(SUPPRESSED.to_string());
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn completed_years_on_birthdays_and_leap_days() {
        // Birthday on the event day: a year older that day.
        assert_eq!(age_at(day("1980-06-15"), day("2020-06-15")), Some(40));
        assert_eq!(age_at(day("1980-06-15"), day("2020-06-14")), Some(39));
        // Born on 29 February: older on 1 March of a common year, on 29 February of a leap one.
        assert_eq!(age_at(day("2000-02-29"), day("2021-02-28")), Some(20));
        assert_eq!(age_at(day("2000-02-29"), day("2021-03-01")), Some(21));
        assert_eq!(age_at(day("2000-02-29"), day("2024-02-28")), Some(23));
        assert_eq!(age_at(day("2000-02-29"), day("2024-02-29")), Some(24));
        // Born on the day of the event; the event before the birth.
        assert_eq!(age_at(day("2024-05-01"), day("2024-05-01")), Some(0));
        assert_eq!(age_at(day("2024-05-02"), day("2024-05-01")), None);
    }

    #[test]
    fn derives_top_codes_and_bands() {
        let text = "birth;admitted\n\
                    2000-02-29;2021-02-28\n\
                    2000-02-29;2021-03-01\n\
                    1980-06-15;2020-06-15T09:30:00\n\
                    1925-01-01;2020-01-01\n\
                    ;2020-01-01\n";
        let mut data = Dataset::from_reader(Path::new("a.csv"), text.as_bytes(), b';').unwrap();
        let spec = AgeAtEventSpec {
            birth_date: "birth".into(),
            event_date: Some("admitted".into()),
            event_on: None,
            top: 90,
            widths: vec![5, 10],
        };
        let derived = data.derive_age_at_event("age", &spec).unwrap();
        assert_eq!(derived.top_coded_records, 1);
        assert_eq!(derived.missing_records, 1);
        let column = data.column(data.column_index("age").unwrap());
        let ages: Vec<&str> = column
            .codes
            .iter()
            .map(|&c| column.dictionary[c as usize].as_str())
            .collect();
        assert_eq!(ages, ["20", "21", "40", "90+", ""]);
        let rows = age_band_rows("age", &spec, &["20", "21", "40", "89", "90+", ""]).unwrap();
        assert_eq!(rows[0], ["20", "20-24", "20-29", "*"]);
        assert_eq!(rows[3], ["89", "85-89", "80-89", "*"]);
        assert_eq!(rows[4], ["90+", "90+", "90+", "*"]);
        assert_eq!(rows[5], ["", "", "", "*"]);
        assert!(age_band_rows("age", &spec, &["95"]).is_err());
        // An existing column, both event sources, a bad fixed date are refused.
        assert!(data.derive_age_at_event("age", &spec).is_err());
        let both = AgeAtEventSpec {
            event_on: Some("2020-01-01".into()),
            ..spec.clone()
        };
        assert!(both.validate("x").is_err());
        let bad_day = AgeAtEventSpec {
            event_date: None,
            event_on: Some("2020-13-01".into()),
            ..spec.clone()
        };
        assert!(bad_day.validate("x").is_err());
    }

    #[test]
    fn fixed_event_date_and_errors_name_the_line_not_the_value() {
        let text = "id;birth\n1;1990-04-01\n2;1990-04-02\n3;2030-01-01\n";
        let mut data = Dataset::from_reader(Path::new("b.csv"), text.as_bytes(), b';').unwrap();
        let spec = AgeAtEventSpec {
            birth_date: "birth".into(),
            event_date: None,
            event_on: Some("2020-04-01".into()),
            top: 90,
            widths: vec![5, 10],
        };
        let err = data.derive_age_at_event("age", &spec).unwrap_err();
        match &err {
            AnonymizeError::InvalidValue { line, column, .. } => {
                assert_eq!(*line, 4);
                assert_eq!(column, "birth");
            }
            other => panic!("unexpected {other}"),
        }
        assert!(!err.to_string().contains("2030"), "{err}");
        let text = "id;birth\n1;1990-04-01\n2;1990-04-02\n3;not a date\n";
        let mut data = Dataset::from_reader(Path::new("b.csv"), text.as_bytes(), b';').unwrap();
        let err = data.derive_age_at_event("age", &spec).unwrap_err();
        assert!(
            matches!(err, AnonymizeError::InvalidValue { line: 4, .. }),
            "{err}"
        );
        let text = "id;birth\n1;1990-04-01\n2;1990-04-02\n";
        let mut data = Dataset::from_reader(Path::new("b.csv"), text.as_bytes(), b';').unwrap();
        data.derive_age_at_event("age", &spec).unwrap();
        let column = data.column(data.column_index("age").unwrap());
        assert_eq!(column.dictionary, ["30", "29"]);
        assert_eq!(
            *data.attribute_type(data.column_index("age").unwrap()),
            AttributeType::Code
        );
    }
}
