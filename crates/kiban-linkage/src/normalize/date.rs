//! Birth dates as providers type them: Western (`1980-01-02`, `1980/1/2`, `19800102`,
//! `1980年1月2日`) and Japanese-era (和暦: `昭和55年1月2日`, `昭和五十五年一月二日`, `S55.1.2`,
//! `S55/01/02`, `H1.1.8`, `平成元年1月8日`, the receipt form `3550102`).

use super::text::{is_space, nfkc_clean};
use chrono::{Datelike, NaiveDate};

/// A Japanese era (元号) of the modern calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Era {
    /// 明治, from 1868-01-25 (the Gregorian date of 明治元年1月1日 as conventionally counted).
    Meiji,
    /// 大正, from 1912-07-30.
    Taisho,
    /// 昭和, from 1926-12-25.
    Showa,
    /// 平成, from 1989-01-08.
    Heisei,
    /// 令和, from 2019-05-01.
    Reiwa,
}

/// Every era, oldest first.
pub const ERAS: [Era; 5] = [Era::Meiji, Era::Taisho, Era::Showa, Era::Heisei, Era::Reiwa];

impl Era {
    /// First day of the era.
    pub fn start(self) -> NaiveDate {
        let (y, m, d) = match self {
            Era::Meiji => (1868, 1, 25),
            Era::Taisho => (1912, 7, 30),
            Era::Showa => (1926, 12, 25),
            Era::Heisei => (1989, 1, 8),
            Era::Reiwa => (2019, 5, 1),
        };
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
    }

    /// First day of the next era (`None` for the current one).
    pub fn end_exclusive(self) -> Option<NaiveDate> {
        match self {
            Era::Meiji => Some(Era::Taisho.start()),
            Era::Taisho => Some(Era::Showa.start()),
            Era::Showa => Some(Era::Heisei.start()),
            Era::Heisei => Some(Era::Reiwa.start()),
            Era::Reiwa => None,
        }
    }

    /// Kanji name (`昭和`).
    pub fn kanji(self) -> &'static str {
        match self {
            Era::Meiji => "明治",
            Era::Taisho => "大正",
            Era::Showa => "昭和",
            Era::Heisei => "平成",
            Era::Reiwa => "令和",
        }
    }

    /// Latin initial (`S`).
    pub fn initial(self) -> char {
        match self {
            Era::Meiji => 'M',
            Era::Taisho => 'T',
            Era::Showa => 'S',
            Era::Heisei => 'H',
            Era::Reiwa => 'R',
        }
    }

    /// Receipt (レセプト) era code: 1 明治 … 5 令和.
    pub fn code(self) -> u32 {
        match self {
            Era::Meiji => 1,
            Era::Taisho => 2,
            Era::Showa => 3,
            Era::Heisei => 4,
            Era::Reiwa => 5,
        }
    }

    /// The era of a Gregorian date (`None` before 明治).
    pub fn of(date: NaiveDate) -> Option<Era> {
        ERAS.iter().rev().copied().find(|era| date >= era.start())
    }

    /// The Gregorian year of an era year (元年 = 1).
    pub fn gregorian_year(self, era_year: u32) -> i32 {
        self.start().year() + era_year as i32 - 1
    }

    fn from_initial(c: char) -> Option<Era> {
        ERAS.iter()
            .copied()
            .find(|e| e.initial() == c.to_ascii_uppercase())
    }

    fn from_code(code: u32) -> Option<Era> {
        ERAS.iter().copied().find(|e| e.code() == code)
    }
}

/// A date in an era: (era, era year, month, day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EraDate {
    /// The era.
    pub era: Era,
    /// Year in the era (1 = 元年).
    pub year: u32,
    /// Month (1–12).
    pub month: u32,
    /// Day (1–31).
    pub day: u32,
}

impl EraDate {
    /// The era form of a Gregorian date (`None` before 明治).
    pub fn of(date: NaiveDate) -> Option<EraDate> {
        let era = Era::of(date)?;
        Some(EraDate {
            era,
            year: (date.year() - era.start().year() + 1) as u32,
            month: date.month(),
            day: date.day(),
        })
    }

    /// The Gregorian date, validated: the month and day exist and the date lies within the era.
    pub fn to_date(self) -> Result<NaiveDate, DateError> {
        if self.year == 0 {
            return Err(DateError::OutsideEra);
        }
        let date =
            NaiveDate::from_ymd_opt(self.era.gregorian_year(self.year), self.month, self.day)
                .ok_or(DateError::ImpossibleDate)?;
        let within =
            date >= self.era.start() && self.era.end_exclusive().is_none_or(|end| date < end);
        if within {
            Ok(date)
        } else {
            Err(DateError::OutsideEra)
        }
    }
}

/// Why a birth date could not be read. Messages name the rule, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Nothing to read.
    #[error("birth date: empty")]
    Empty,
    /// Not a recognized Western or Japanese-era form.
    #[error("birth date: not a recognized Western or Japanese-era date form")]
    Unrecognized,
    /// The month or day does not exist (month 13, 30 February, …).
    #[error("birth date: month or day does not exist")]
    ImpossibleDate,
    /// The era-year, month and day fall outside the era (e.g. 昭和64年1月8日, 平成0年).
    #[error("birth date: date lies outside the stated era")]
    OutsideEra,
}

/// A birth date read from text, with the era form it was typed in (if any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BirthDate {
    /// The Gregorian date.
    pub date: NaiveDate,
    /// The era it was typed in, when typed in an era form.
    pub typed_era: Option<Era>,
}

impl BirthDate {
    /// The era form of the date (the era it was typed in is the era it lies in, once validated).
    pub fn era_date(&self) -> Option<EraDate> {
        EraDate::of(self.date)
    }
}

/// Parses a birth date in any common Western or Japanese-era form.
pub fn parse_birth_date(raw: &str) -> Result<BirthDate, DateError> {
    let text: String = nfkc_clean(raw).chars().filter(|c| !is_space(*c)).collect();
    if text.is_empty() {
        return Err(DateError::Empty);
    }
    let (era, rest) = match_era(&text);
    match era {
        Some(era) => {
            let [year, month, day] = three_numbers(rest, true)?;
            let date = EraDate {
                era,
                year,
                month,
                day,
            }
            .to_date()?;
            Ok(BirthDate {
                date,
                typed_era: Some(era),
            })
        }
        None => parse_western_or_code(&text),
    }
}

fn parse_western_or_code(text: &str) -> Result<BirthDate, DateError> {
    if text.chars().all(|c| c.is_ascii_digit()) {
        return match text.len() {
            // 19800102
            8 => {
                let y = text[..4].parse().map_err(|_| DateError::Unrecognized)?;
                let m = text[4..6].parse().map_err(|_| DateError::Unrecognized)?;
                let d = text[6..].parse().map_err(|_| DateError::Unrecognized)?;
                let date = NaiveDate::from_ymd_opt(y, m, d).ok_or(DateError::ImpossibleDate)?;
                Ok(BirthDate {
                    date,
                    typed_era: None,
                })
            }
            // Receipt form GYYMMDD: 3550102 = 昭和55年1月2日.
            7 => {
                let code = text[..1].parse().map_err(|_| DateError::Unrecognized)?;
                let era = Era::from_code(code).ok_or(DateError::Unrecognized)?;
                let parse = |r: std::ops::Range<usize>| {
                    text[r].parse::<u32>().map_err(|_| DateError::Unrecognized)
                };
                let date = EraDate {
                    era,
                    year: parse(1..3)?,
                    month: parse(3..5)?,
                    day: parse(5..7)?,
                }
                .to_date()?;
                Ok(BirthDate {
                    date,
                    typed_era: Some(era),
                })
            }
            _ => Err(DateError::Unrecognized),
        };
    }
    let [year, month, day] = three_numbers(text, false)?;
    if !(1000..=9999).contains(&year) {
        return Err(DateError::Unrecognized);
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(DateError::ImpossibleDate)?;
    Ok(BirthDate {
        date,
        typed_era: None,
    })
}

/// The era at the start of the text, and the rest.
fn match_era(text: &str) -> (Option<Era>, &str) {
    for era in ERAS {
        if let Some(rest) = text.strip_prefix(era.kanji()) {
            return (Some(era), rest);
        }
    }
    // Single-kanji abbreviations (昭55.1.2) and Latin initials (S55.1.2, s55/01/02).
    const ABBREVIATIONS: [(char, Era); 5] = [
        ('明', Era::Meiji),
        ('大', Era::Taisho),
        ('昭', Era::Showa),
        ('平', Era::Heisei),
        ('令', Era::Reiwa),
    ];
    let mut chars = text.chars();
    if let Some(first) = chars.next() {
        let era = ABBREVIATIONS
            .iter()
            .find(|(c, _)| *c == first)
            .map(|(_, e)| *e)
            .or_else(|| Era::from_initial(first));
        if era.is_some() {
            return (era, chars.as_str());
        }
    }
    (None, text)
}

/// Three numbers separated by `-`, `/`, `.`, or `年`/`月`/`日`; digits or kanji numerals; `元`
/// (year one) allowed for the first number of an era date.
fn three_numbers(text: &str, era: bool) -> Result<[u32; 3], DateError> {
    let mut numbers = Vec::with_capacity(3);
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '-' | '/' | '.' | '年' | '月' | '日' | '‐' | '−' | 'ー' => {
                if !current.is_empty() {
                    numbers.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        numbers.push(current);
    }
    if numbers.len() != 3 {
        return Err(DateError::Unrecognized);
    }
    let mut out = [0u32; 3];
    for (i, n) in numbers.iter().enumerate() {
        out[i] = if era && i == 0 && n == "元" {
            1
        } else {
            parse_number(n).ok_or(DateError::Unrecognized)?
        };
    }
    Ok(out)
}

/// A number in ASCII digits or kanji numerals (五十五, 十二, 三十一, 〇 and 一〇 style).
pub fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return text.parse().ok().filter(|_| text.len() <= 9);
    }
    parse_kanji_number(text)
}

/// Kanji numerals below 10,000: positional (一九八〇) or with 十/百/千 (千九百八十, 五十五).
pub fn parse_kanji_number(text: &str) -> Option<u32> {
    let digit = |c: char| "〇一二三四五六七八九".chars().position(|d| d == c);
    if text.chars().all(|c| digit(c).is_some() || c == '零') {
        let mut n: u32 = 0;
        for c in text.chars() {
            n = n.checked_mul(10)? + digit(c).unwrap_or(0) as u32;
        }
        return Some(n);
    }
    let mut total = 0;
    let mut pending: Option<u32> = None;
    for c in text.chars() {
        if let Some(d) = digit(c) {
            if pending.is_some() {
                return None;
            }
            pending = Some(d as u32);
        } else {
            let unit = match c {
                '十' => 10,
                '百' => 100,
                '千' => 1000,
                _ => return None,
            };
            total += pending.take().unwrap_or(1) * unit;
        }
    }
    Some(total + pending.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn western_forms() {
        for text in [
            "1980-01-02",
            "1980/1/2",
            "19800102",
            "1980年1月2日",
            "１９８０．０１．０２",
            "1980. 1. 2",
        ] {
            let parsed = parse_birth_date(text).unwrap();
            assert_eq!(parsed.date, ymd(1980, 1, 2), "{text}");
            assert_eq!(parsed.typed_era, None);
        }
    }

    #[test]
    fn japanese_era_forms() {
        for text in [
            "昭和55年1月2日",
            "昭和５５年０１月０２日",
            "昭和五十五年一月二日",
            "S55.1.2",
            "S55/01/02",
            "s55-1-2",
            "昭55.1.2",
            "3550102",
        ] {
            let parsed = parse_birth_date(text).unwrap();
            assert_eq!(parsed.date, ymd(1980, 1, 2), "{text}");
            assert_eq!(parsed.typed_era, Some(Era::Showa), "{text}");
        }
        assert_eq!(
            parse_birth_date("大正15年12月24日").unwrap().date,
            ymd(1926, 12, 24)
        );
        assert_eq!(
            parse_birth_date("明治45年7月29日").unwrap().date,
            ymd(1912, 7, 29)
        );
    }

    #[test]
    fn showa_64_ends_on_january_7() {
        assert_eq!(
            parse_birth_date("昭和64年1月7日").unwrap().date,
            ymd(1989, 1, 7)
        );
        assert_eq!(
            parse_birth_date("昭和64年1月8日"),
            Err(DateError::OutsideEra)
        );
        assert_eq!(parse_birth_date("S65.1.1"), Err(DateError::OutsideEra));
    }

    #[test]
    fn year_one_forms() {
        assert_eq!(
            parse_birth_date("平成元年1月8日").unwrap().date,
            ymd(1989, 1, 8)
        );
        assert_eq!(parse_birth_date("H1.1.8").unwrap().date, ymd(1989, 1, 8));
        assert_eq!(
            parse_birth_date("平成元年1月7日"),
            Err(DateError::OutsideEra)
        );
        assert_eq!(
            parse_birth_date("令和元年5月1日").unwrap().date,
            ymd(2019, 5, 1)
        );
        assert_eq!(
            parse_birth_date("令和元年4月30日"),
            Err(DateError::OutsideEra)
        );
        assert_eq!(
            parse_birth_date("平成31年4月30日").unwrap().date,
            ymd(2019, 4, 30)
        );
        assert_eq!(
            parse_birth_date("平成31年5月1日"),
            Err(DateError::OutsideEra)
        );
        assert_eq!(
            parse_birth_date("平成0年1月1日"),
            Err(DateError::OutsideEra)
        );
    }

    #[test]
    fn impossible_and_unreadable_dates_are_typed_errors() {
        assert_eq!(
            parse_birth_date("1980-02-30"),
            Err(DateError::ImpossibleDate)
        );
        assert_eq!(
            parse_birth_date("昭和55年13月1日"),
            Err(DateError::ImpossibleDate)
        );
        assert_eq!(parse_birth_date("19800231"), Err(DateError::ImpossibleDate));
        assert_eq!(parse_birth_date("yesterday"), Err(DateError::Unrecognized));
        assert_eq!(parse_birth_date("1980-01"), Err(DateError::Unrecognized));
        assert_eq!(parse_birth_date("　"), Err(DateError::Empty));
        // The message names the rule, not the value.
        let message = parse_birth_date("1980-02-30").unwrap_err().to_string();
        assert!(!message.contains("1980"));
    }

    #[test]
    fn era_forms_of_gregorian_dates() {
        let e = EraDate::of(ymd(1989, 1, 7)).unwrap();
        assert_eq!((e.era, e.year), (Era::Showa, 64));
        let e = EraDate::of(ymd(2019, 5, 1)).unwrap();
        assert_eq!((e.era, e.year), (Era::Reiwa, 1));
    }

    #[test]
    fn kanji_numerals() {
        assert_eq!(parse_kanji_number("五十五"), Some(55));
        assert_eq!(parse_kanji_number("十二"), Some(12));
        assert_eq!(parse_kanji_number("三十一"), Some(31));
        assert_eq!(parse_kanji_number("一九八〇"), Some(1980));
        assert_eq!(parse_kanji_number("千九百八十"), Some(1980));
    }
}
