//! FHIR `date`, `dateTime` and `instant` parsing into chrono types.
//!
//! FHIR allows partial dates (`1980`, `1980-04`) and requires a timezone whenever a time is
//! given. Errors describe the expected format, never the value (dates of birth are identity data).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};

/// Why a FHIR date or dateTime could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// The text does not follow the FHIR `date` syntax.
    #[error("not a FHIR date: expected YYYY, YYYY-MM or YYYY-MM-DD")]
    DateSyntax,
    /// The text does not follow the FHIR `dateTime` syntax.
    #[error(
        "not a FHIR dateTime: expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff] with a timezone (Z or ±hh:mm)"
    )]
    DateTimeSyntax,
    /// The text does not follow the FHIR `instant` syntax.
    #[error("not a FHIR instant: expected YYYY-MM-DDThh:mm:ss[.fff] with a timezone (Z or ±hh:mm)")]
    InstantSyntax,
    /// The month is outside 01..12 or the day does not exist in that month.
    #[error("the date does not exist in the calendar")]
    NoSuchDate,
    /// A time is given without a timezone.
    #[error("a FHIR dateTime with a time must carry a timezone (Z or ±hh:mm)")]
    MissingTimezone,
}

/// A FHIR `date`, possibly partial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FhirDate {
    /// `YYYY`.
    Year(i32),
    /// `YYYY-MM`.
    YearMonth(i32, u32),
    /// `YYYY-MM-DD`.
    Date(NaiveDate),
}

impl FhirDate {
    /// The first day the (partial) date can denote.
    pub fn earliest(self) -> NaiveDate {
        match self {
            FhirDate::Year(y) => NaiveDate::from_ymd_opt(y, 1, 1).unwrap_or(NaiveDate::MIN),
            FhirDate::YearMonth(y, m) => NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(NaiveDate::MIN),
            FhirDate::Date(d) => d,
        }
    }

    /// The year.
    pub fn year(self) -> i32 {
        match self {
            FhirDate::Year(y) | FhirDate::YearMonth(y, _) => y,
            FhirDate::Date(d) => chrono::Datelike::year(&d),
        }
    }

    /// The full date, if the value is not partial.
    pub fn full(self) -> Option<NaiveDate> {
        match self {
            FhirDate::Date(d) => Some(d),
            _ => None,
        }
    }
}

/// A FHIR `dateTime`: a (partial) date, or a date and time with a timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FhirDateTime {
    /// A date without time.
    Date(FhirDate),
    /// A date and time with its offset.
    DateTime(DateTime<FixedOffset>),
}

impl FhirDateTime {
    /// The calendar date (in the value's own offset; the earliest day of partial dates).
    pub fn date(self) -> NaiveDate {
        match self {
            FhirDateTime::Date(d) => d.earliest(),
            FhirDateTime::DateTime(dt) => dt.date_naive(),
        }
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| {
        s.bytes()
            .fold(0u32, |value, b| value * 10 + u32::from(b - b'0'))
    })
}

/// Parses a FHIR `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
///
/// ```
/// use kiban_fhir::datetime::{parse_date, FhirDate};
/// assert_eq!(parse_date("1980").unwrap(), FhirDate::Year(1980));
/// assert_eq!(parse_date("1980-04").unwrap(), FhirDate::YearMonth(1980, 4));
/// assert!(parse_date("1980-02-30").is_err());
/// ```
pub fn parse_date(text: &str) -> Result<FhirDate, DateError> {
    // At most three parts are looked at; a fourth makes the text invalid. A fixed array, as
    // this runs for every date of every resource taken in.
    let mut split = text.split('-');
    let mut fields = [""; 3];
    let mut count = 0;
    for part in split.by_ref().take(3) {
        fields[count] = part;
        count += 1;
    }
    if split.next().is_some() {
        return Err(DateError::DateSyntax);
    }
    let parts = &fields[..count];
    let year = |s: &str| digits(s, 4).map(|y| y as i32).ok_or(DateError::DateSyntax);
    match parts {
        [y] => Ok(FhirDate::Year(year(y)?)),
        [y, m] => {
            let y = year(y)?;
            let m = digits(m, 2).ok_or(DateError::DateSyntax)?;
            if !(1..=12).contains(&m) {
                return Err(DateError::NoSuchDate);
            }
            Ok(FhirDate::YearMonth(y, m))
        }
        [y, m, d] => {
            let y = year(y)?;
            let m = digits(m, 2).ok_or(DateError::DateSyntax)?;
            let d = digits(d, 2).ok_or(DateError::DateSyntax)?;
            NaiveDate::from_ymd_opt(y, m, d)
                .map(FhirDate::Date)
                .ok_or(DateError::NoSuchDate)
        }
        _ => Err(DateError::DateSyntax),
    }
}

/// Parses a FHIR `dateTime`: a (partial) date, or `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)`.
///
/// ```
/// use kiban_fhir::datetime::{parse_date_time, FhirDateTime};
/// assert!(matches!(parse_date_time("2024-05").unwrap(), FhirDateTime::Date(_)));
/// let t = parse_date_time("2024-05-01T09:30:00+09:00").unwrap();
/// assert!(matches!(t, FhirDateTime::DateTime(_)));
/// assert!(parse_date_time("2024-05-01T09:30:00").is_err()); // no timezone
/// ```
pub fn parse_date_time(text: &str) -> Result<FhirDateTime, DateError> {
    match text.split_once('T') {
        None => parse_date(text)
            .map(FhirDateTime::Date)
            .map_err(|e| match e {
                DateError::DateSyntax => DateError::DateTimeSyntax,
                other => other,
            }),
        Some((date, time)) => {
            let date = match parse_date(date) {
                Ok(FhirDate::Date(d)) => d,
                Ok(_) | Err(DateError::DateSyntax) => return Err(DateError::DateTimeSyntax),
                Err(e) => return Err(e),
            };
            parse_time_with_zone(date, time, DateError::DateTimeSyntax).map(FhirDateTime::DateTime)
        }
    }
}

/// Parses a FHIR `instant`: `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)`.
pub fn parse_instant(text: &str) -> Result<DateTime<FixedOffset>, DateError> {
    let (date, time) = text.split_once('T').ok_or(DateError::InstantSyntax)?;
    let date = match parse_date(date) {
        Ok(FhirDate::Date(d)) => d,
        Ok(_) | Err(DateError::DateSyntax) => return Err(DateError::InstantSyntax),
        Err(e) => return Err(e),
    };
    parse_time_with_zone(date, time, DateError::InstantSyntax)
}

fn parse_time_with_zone(
    date: NaiveDate,
    time: &str,
    syntax: DateError,
) -> Result<DateTime<FixedOffset>, DateError> {
    let (clock, offset_seconds) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else if let Some(pos) = time.rfind(['+', '-']) {
        let (clock, zone) = time.split_at(pos);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hh, mm) = zone[1..].split_once(':').ok_or(syntax.clone())?;
        let hh = digits(hh, 2).ok_or(syntax.clone())?;
        let mm = digits(mm, 2).ok_or(syntax.clone())?;
        if hh > 14 || mm > 59 {
            return Err(syntax);
        }
        (clock, sign * (hh * 3600 + mm * 60) as i32)
    } else {
        return Err(DateError::MissingTimezone);
    };
    // FHIR requires seconds (hh:mm:ss) with optional fraction.
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (hms, f),
        Some(_) => return Err(syntax),
        None => (clock, ""),
    };
    let mut fields = hms.split(':');
    let (Some(h), Some(m), Some(s), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(syntax);
    };
    let h = digits(h, 2).ok_or(syntax.clone())?;
    let m = digits(m, 2).ok_or(syntax.clone())?;
    let s = digits(s, 2).ok_or(syntax.clone())?;
    let nanos = if fraction.is_empty() {
        0
    } else {
        // The fraction is all ASCII digits (checked above): its first nine scaled to nanos.
        let mut nanos = 0u32;
        let digits_taken = fraction.len().min(9);
        for b in fraction.bytes().take(9) {
            nanos = nanos * 10 + u32::from(b - b'0');
        }
        for _ in digits_taken..9 {
            nanos *= 10;
        }
        nanos
    };
    let time = NaiveTime::from_hms_nano_opt(h, m, s, nanos).ok_or(syntax)?;
    let offset = FixedOffset::east_opt(offset_seconds).ok_or(DateError::NoSuchDate)?;
    date.and_time(time)
        .and_local_timezone(offset)
        .single()
        .ok_or(DateError::NoSuchDate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_and_full_dates() {
        assert_eq!(
            parse_date("2024").unwrap().earliest().to_string(),
            "2024-01-01"
        );
        assert_eq!(
            parse_date("2024-02").unwrap().earliest().to_string(),
            "2024-02-01"
        );
        assert_eq!(
            parse_date("2024-02-29")
                .unwrap()
                .full()
                .unwrap()
                .to_string(),
            "2024-02-29"
        );
        assert_eq!(parse_date("2023-02-29"), Err(DateError::NoSuchDate));
        assert_eq!(parse_date("2024-13"), Err(DateError::NoSuchDate));
        assert_eq!(parse_date("24-01-01"), Err(DateError::DateSyntax));
        assert_eq!(parse_date("2024/01/01"), Err(DateError::DateSyntax));
        assert_eq!(parse_date(""), Err(DateError::DateSyntax));
    }

    #[test]
    fn date_times_need_timezones() {
        let FhirDateTime::DateTime(t) = parse_date_time("2024-05-01T09:30:00.123+09:00").unwrap()
        else {
            panic!("expected a time");
        };
        assert_eq!(t.offset().local_minus_utc(), 9 * 3600);
        assert_eq!(t.timestamp_subsec_millis(), 123);
        assert!(parse_date_time("2024-05-01T00:00:00Z").is_ok());
        assert!(parse_date_time("2024-05-01T00:00:00-05:00").is_ok());
        assert_eq!(
            parse_date_time("2024-05-01T09:30:00"),
            Err(DateError::MissingTimezone)
        );
        assert!(parse_date_time("2024-05-01T09:30+09:00").is_err());
        assert!(parse_date_time("2024-05T09:30:00Z").is_err());
        assert!(parse_instant("2024-05-01").is_err());
        assert!(parse_instant("2024-05-01T01:02:03Z").is_ok());
    }

    #[test]
    fn errors_do_not_echo_the_value() {
        let message = parse_date("1961-07-3x").unwrap_err().to_string();
        assert!(!message.contains("1961"));
    }
}
