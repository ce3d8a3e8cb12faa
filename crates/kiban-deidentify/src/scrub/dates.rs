//! Dates in free text: Western (`2020/03/05`, `2020-3-5`, `2020.3.5`, `2020年3月5日`,
//! `2020年3月`) and Japanese-era (`昭和55年1月2日`, `昭和五十五年一月二日`, `平成元年1月8日`,
//! `S55.1.2`, `R5/4/1`) forms, read from the main form of a text.

use chrono::{Datelike, Days, NaiveDate};
use kiban_linkage::normalize::date::{ERAS, Era, parse_kanji_number};

/// How a date was written, to write its replacement the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateForm {
    /// `2020/03/05` with this separator; `true` when the month was zero-padded.
    Separated(char, bool),
    /// `2020年3月5日` (and every era form); `true` when the month was zero-padded.
    Kanji(bool),
    /// `20200305`: eight digits, year month day.
    Compact,
}

/// A date found in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TextDate {
    /// The date; for a year-month, its 15th.
    pub date: NaiveDate,
    /// Only year and month were written.
    pub year_month: bool,
    pub form: DateForm,
    /// Main-form index one past the date.
    pub end: usize,
}

/// A number of ASCII digits at `at`: (value, digits).
fn digits_at(chars: &[char], at: usize, max: usize) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    let mut n = 0;
    while at + n < chars.len() && n < max {
        let Some(d) = chars[at + n]
            .to_digit(10)
            .filter(|_| chars[at + n].is_ascii())
        else {
            break;
        };
        value = value * 10 + d;
        n += 1;
    }
    (n > 0).then_some((value, n))
}

fn is_kanji_numeral(c: char) -> bool {
    "〇一二三四五六七八九十百千零".contains(c)
}

/// A number in ASCII digits or kanji numerals at `at`: (value, chars, zero-padded).
fn number_at(chars: &[char], at: usize, max_digits: usize) -> Option<(u32, usize, bool)> {
    if let Some((value, n)) = digits_at(chars, at, max_digits) {
        return Some((value, n, n >= 2 && chars[at] == '0'));
    }
    let mut n = 0;
    while at + n < chars.len() && is_kanji_numeral(chars[at + n]) && n < 6 {
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let text: String = chars[at..at + n].iter().collect();
    parse_kanji_number(&text).map(|v| (v, n, false))
}

fn followed_by_digit(chars: &[char], end: usize) -> bool {
    chars.get(end).is_some_and(char::is_ascii_digit)
}

fn date(year: i32, month: u32, day: Option<u32>) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day.unwrap_or(15))
}

/// `YYYY年M月(D日)?` after the year (at `at`: the 年).
fn kanji_month_day(chars: &[char], year: i32, at: usize) -> Option<(NaiveDate, bool, usize, bool)> {
    if chars.get(at) != Some(&'年') {
        return None;
    }
    let (month, n, padded) = number_at(chars, at + 1, 2)?;
    let mut end = at + 1 + n;
    if chars.get(end) != Some(&'月') {
        return None;
    }
    end += 1;
    if let Some((day, n, _)) = number_at(chars, end, 2)
        && chars.get(end + n) == Some(&'日')
    {
        return Some((date(year, month, Some(day))?, false, end + n + 1, padded));
    }
    Some((date(year, month, None)?, true, end, padded))
}

/// A Western date starting at `at` (a digit not preceded by a digit).
pub(crate) fn western_date(chars: &[char], at: usize) -> Option<TextDate> {
    if let Some(date) = compact_date(chars, at) {
        return Some(date);
    }
    let (year, n) = digits_at(chars, at, 5)?;
    if n != 4 || !(1868..=2200).contains(&year) {
        return None;
    }
    let after_year = at + 4;
    if let Some((date, year_month, end, padded)) = kanji_month_day(chars, year as i32, after_year) {
        return Some(TextDate {
            date,
            year_month,
            form: DateForm::Kanji(padded),
            end,
        });
    }
    let separator = *chars.get(after_year)?;
    if !matches!(separator, '/' | '-' | '.') {
        return None;
    }
    let (month, mn) = digits_at(chars, after_year + 1, 3)?;
    let day_at = after_year + 1 + mn;
    if mn > 2 || chars.get(day_at) != Some(&separator) {
        return None;
    }
    let (day, dn) = digits_at(chars, day_at + 1, 3)?;
    let end = day_at + 1 + dn;
    if dn > 2 || followed_by_digit(chars, end) {
        return None;
    }
    Some(TextDate {
        date: date(year as i32, month, Some(day))?,
        year_month: false,
        form: DateForm::Separated(separator, mn == 2),
        end,
    })
}

/// Years a compact `YYYYMMDD` run is read as a date in; other eight-digit runs are ids.
const COMPACT_YEARS: std::ops::RangeInclusive<u32> = 1900..=2100;

/// `19800102`: exactly eight digits forming a valid date of [`COMPACT_YEARS`], not part of a
/// longer run nor of a dashed number (`20240315-0001` stays an id).
fn compact_date(chars: &[char], at: usize) -> Option<TextDate> {
    let (_, n) = digits_at(chars, at, 9)?;
    if n != 8 || chars.get(at + 8).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let dashed_on = chars.get(at + 8).is_some_and(|&c| super::fold::is_dash(c))
        && chars.get(at + 9).is_some_and(char::is_ascii_digit);
    if dashed_on {
        return None;
    }
    let (year, _) = digits_at(chars, at, 4)?;
    let (month, _) = digits_at(chars, at + 4, 2)?;
    let (day, _) = digits_at(chars, at + 6, 2)?;
    if !COMPACT_YEARS.contains(&year) {
        return None;
    }
    Some(TextDate {
        date: NaiveDate::from_ymd_opt(year as i32, month, day)?,
        year_month: false,
        form: DateForm::Compact,
        end: at + 8,
    })
}

/// An era date starting at `at`: `昭和55年1月2日` (kanji era) or `S55.1.2` (initial).
pub(crate) fn era_date(chars: &[char], at: usize) -> Option<TextDate> {
    let first = *chars.get(at)?;
    if first.is_ascii_alphabetic() {
        let era = ERAS
            .iter()
            .copied()
            .find(|e| e.initial() == first.to_ascii_uppercase())?;
        let (year, yn) = digits_at(chars, at + 1, 3)?;
        let sep_at = at + 1 + yn;
        let separator = *chars.get(sep_at)?;
        if yn > 2 || !matches!(separator, '.' | '/' | '-') {
            return None;
        }
        let (month, mn) = digits_at(chars, sep_at + 1, 3)?;
        let day_sep = sep_at + 1 + mn;
        if mn > 2 || chars.get(day_sep) != Some(&separator) {
            return None;
        }
        let (day, dn) = digits_at(chars, day_sep + 1, 3)?;
        let end = day_sep + 1 + dn;
        if dn > 2 || followed_by_digit(chars, end) {
            return None;
        }
        return Some(TextDate {
            date: era_checked(era, year, month, Some(day))?,
            year_month: false,
            form: DateForm::Kanji(mn == 2),
            end,
        });
    }
    let era = ERAS.iter().copied().find(|e| {
        let mut k = e.kanji().chars();
        k.next() == Some(first) && k.next() == chars.get(at + 1).copied()
    })?;
    let year_at = at + 2;
    let (year, yn) = if chars.get(year_at) == Some(&'元') {
        (1, 1)
    } else {
        let (y, n, _) = number_at(chars, year_at, 2)?;
        (y, n)
    };
    let (date, year_month, end, padded) =
        kanji_month_day(chars, era.gregorian_year(year), year_at + yn)?;
    // Validate against the era's bounds with the parsed month and day.
    era_checked(era, year, date.month(), (!year_month).then(|| date.day()))?;
    Some(TextDate {
        date,
        year_month,
        form: DateForm::Kanji(padded),
        end,
    })
}

fn era_checked(era: Era, year: u32, month: u32, day: Option<u32>) -> Option<NaiveDate> {
    if year == 0 {
        return None;
    }
    let d = date(era.gregorian_year(year), month, day)?;
    // A year-month is checked on its month only.
    let start = era.start();
    let in_era = if day.is_some() {
        d >= start && era.end_exclusive().is_none_or(|end| d < end)
    } else {
        (d.year(), d.month()) >= (start.year(), start.month())
            && era
                .end_exclusive()
                .is_none_or(|end| (d.year(), d.month()) <= (end.year(), end.month()))
    };
    in_era.then_some(d)
}

/// A month and day without a year (`3月5日`) starting at `at`: its end.
pub(crate) fn month_day(chars: &[char], at: usize) -> Option<usize> {
    let (month, mn, _) = number_at(chars, at, 2)?;
    if !(1..=12).contains(&month) || chars.get(at + mn) != Some(&'月') {
        return None;
    }
    let day_at = at + mn + 1;
    let (day, dn, _) = number_at(chars, day_at, 2)?;
    ((1..=31).contains(&day) && chars.get(day_at + dn) == Some(&'日')).then_some(day_at + dn + 1)
}

/// `date` moved by `days`.
pub(crate) fn shift(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    if days >= 0 {
        date.checked_add_days(Days::new(days.unsigned_abs()))
    } else {
        date.checked_sub_days(Days::new(days.unsigned_abs()))
    }
}

/// A date written in its form (`year_month`: year and month only).
pub(crate) fn write(date: NaiveDate, form: DateForm, year_month: bool) -> String {
    let (y, m, d) = (date.year(), date.month(), date.day());
    match (form, year_month) {
        (DateForm::Separated(sep, true), false) => format!("{y}{sep}{m:02}{sep}{d:02}"),
        (DateForm::Separated(sep, false), false) => format!("{y}{sep}{m}{sep}{d}"),
        (DateForm::Separated(sep, true), true) => format!("{y}{sep}{m:02}"),
        (DateForm::Separated(sep, false), true) => format!("{y}{sep}{m}"),
        (DateForm::Kanji(true), false) => format!("{y}年{m:02}月{d:02}日"),
        (DateForm::Kanji(false), false) => format!("{y}年{m}月{d}日"),
        (DateForm::Kanji(true), true) => format!("{y}年{m:02}月"),
        (DateForm::Kanji(false), true) => format!("{y}年{m}月"),
        (DateForm::Compact, false) => format!("{y:04}{m:02}{d:02}"),
        (DateForm::Compact, true) => format!("{y:04}{m:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn western_forms() {
        let t = western_date(&chars("1980/01/02です"), 0).unwrap();
        assert_eq!((t.date, t.end, t.year_month), (d(1980, 1, 2), 10, false));
        assert_eq!(
            western_date(&chars("2020年3月5日"), 0).unwrap().date,
            d(2020, 3, 5)
        );
        let ym = western_date(&chars("2022年11月頃"), 0).unwrap();
        assert!(ym.year_month);
        assert_eq!(ym.end, 8);
        assert!(western_date(&chars("2020/13/01"), 0).is_none());
        assert!(western_date(&chars("1234567"), 0).is_none());
        assert!(western_date(&chars("2020-01-011"), 0).is_none());
    }

    #[test]
    fn compact_eight_digit_dates_and_ids() {
        let t = western_date(&chars("19800102生"), 0).unwrap();
        assert_eq!(
            (t.date, t.end, t.form),
            (d(1980, 1, 2), 8, DateForm::Compact)
        );
        assert_eq!(
            western_date(&chars("20240315"), 0).unwrap().date,
            d(2024, 3, 15)
        );
        // Not a date: invalid month or day, year out of range, longer runs, dashed ids.
        for id in [
            "20241315",
            "20240230",
            "18991231",
            "21010101",
            "12345678",
            "202403150",
            "20240315-0001",
        ] {
            assert!(western_date(&chars(id), 0).is_none(), "{id}");
        }
        assert_eq!(write(d(2024, 4, 5), DateForm::Compact, false), "20240405");
        assert_eq!(write(d(2024, 4, 5), DateForm::Compact, true), "202404");
    }

    #[test]
    fn era_forms() {
        assert_eq!(
            era_date(&chars("昭和55年1月2日"), 0).unwrap().date,
            d(1980, 1, 2)
        );
        assert_eq!(
            era_date(&chars("昭和五十五年一月二日"), 0).unwrap().date,
            d(1980, 1, 2)
        );
        assert_eq!(
            era_date(&chars("平成元年1月8日"), 0).unwrap().date,
            d(1989, 1, 8)
        );
        assert_eq!(era_date(&chars("S55.1.2"), 0).unwrap().date, d(1980, 1, 2));
        assert_eq!(era_date(&chars("R5/4/1"), 0).unwrap().date, d(2023, 4, 1));
        // 平成 began on 1989-01-08.
        assert!(era_date(&chars("平成元年1月7日"), 0).is_none());
        assert!(era_date(&chars("昭和の頃"), 0).is_none());
    }

    #[test]
    fn dates_are_written_in_their_form() {
        let date = d(2020, 3, 5);
        assert_eq!(
            write(date, DateForm::Separated('/', true), false),
            "2020/03/05"
        );
        assert_eq!(write(date, DateForm::Kanji(false), false), "2020年3月5日");
        assert_eq!(write(date, DateForm::Kanji(true), true), "2020年03月");
        assert_eq!(month_day(&chars("3月5日に"), 0), Some(4));
    }
}
