//! Pattern detectors over the main form of a text: person mentions with honorifics, phone
//! numbers, postal codes, addresses, e-mail addresses, identifiers and dates. One left-to-right
//! pass; each detector looks a bounded distance around the position it is tried at.

use kiban_model::PREFECTURES;

use super::ScrubCategory;
use super::dates::{TextDate, era_date, month_day, western_date};
use super::fold::{is_dash, is_hiragana, is_kanji, is_katakana};

/// What a detector found at `start..end` (main-form indices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Replaced by the category's tag.
    Tag(ScrubCategory),
    /// A date, rewritten by the date rule (or tagged as a birth date).
    Date(TextDate),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Detection {
    pub start: usize,
    pub end: usize,
    pub found: Found,
}

/// Honorifics and titles that follow a person's name.
const HONORIFICS: &[&str] = &[
    "ちゃん",
    "先生",
    "医師",
    "さん",
    "くん",
    "様",
    "氏",
    "殿",
    "君",
];

/// Words before an honorific that are not names (roles, relatives, groups).
const NOT_NAMES: &[&str] = &[
    "患者",
    "家族",
    "皆",
    "各位",
    "担当",
    "主治",
    "貴院",
    "当院",
    "本人",
    "奥",
    "母",
    "父",
    "祖母",
    "祖父",
    "兄",
    "姉",
    "弟",
    "妹",
    "息子",
    "娘",
    "夫",
    "妻",
    "主人",
    "彼",
    "彼女",
    "先方",
    "同",
    "両",
    "御",
    "研修",
    "専門",
    "歯科",
    "お客",
    "お子",
    "ご主人",
    "ご家族",
    "ご本人",
    "おばあ",
    "おじい",
    "かあ",
    "とう",
    "にい",
    "ねえ",
    "みな",
    "ばあ",
    "じい",
    "ヘルパー",
    "ケアマネ",
    "ケアマネージャー",
    "ナース",
    "ドクター",
    "スタッフ",
    "ボランティア",
    "利用者",
    "保護者",
    "担当者",
    "介護者",
    "同居",
    "親族",
    "長男",
    "長女",
    "次男",
    "次女",
    // One kanji before 様, 氏, 君 or 殿 that makes a word (多様, 彼氏, 諸君, 沈殿).
    "多",
    "異",
    "仕",
    "模",
    "一",
    "各",
    "左",
    "殿",
    "王",
    "神",
    "仏",
    "貴",
    "某",
    "諸",
    "沈",
    "宮",
    "拝",
    "主",
    "暴",
    "態",
    "今",
    "有",
    "無",
    "両親",
];

/// Last characters of institutions and roles: a run of kanji before an honorific is cut after
/// the last of them (`東京病院田中先生` → `田中`).
const INSTITUTION_ENDS: &[char] = &[
    '院', '科', '室', '局', '署', '課', '医', '師', '長', '者', '員', '会', '所', '社', '校',
];

/// Labels after which a token is an identifier whatever its length.
const ID_LABELS: &[&str] = &[
    "被保険者番号",
    "保険者番号",
    "受給者番号",
    "負担者番号",
    "診察券番号",
    "カルテ番号",
    "患者番号",
    "患者ID",
    "カルテNo",
    "記号",
    "番号",
    "枝番",
    "ID",
];

/// The main-form characters a string starts with at `at`.
fn starts_with(chars: &[char], at: usize, word: &str) -> bool {
    (at..)
        .zip(word.chars())
        .all(|(i, w)| chars.get(i) == Some(&w))
}

fn char_len(word: &str) -> usize {
    word.chars().count()
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn is_email_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

/// Runs every detector over `chars`.
pub(crate) fn detect(chars: &[char]) -> Vec<Detection> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let detection = if c == '〒' {
            postal_after_mark(chars, i)
        } else if is_digit(c) || c == '(' || c == '+' {
            digits(chars, i)
        } else if c.is_ascii_alphabetic() {
            latin(chars, i)
        } else if is_kanji(c) || is_katakana(c) || is_hiragana(c) {
            japanese(chars, i)
        } else {
            None
        };
        match detection {
            Some(d) => {
                i = d.end.max(i + 1);
                found.push(d);
            }
            None => i += 1,
        }
    }
    found
}

fn tag(start: usize, end: usize, category: ScrubCategory) -> Option<Detection> {
    Some(Detection {
        start,
        end,
        found: Found::Tag(category),
    })
}

/// `〒` followed by a 7-digit postal code (with or without its dash and spaces).
fn postal_after_mark(chars: &[char], at: usize) -> Option<Detection> {
    let mut i = at + 1;
    while chars.get(i) == Some(&' ') {
        i += 1;
    }
    let end = postal_code(chars, i)?;
    tag(at, end, ScrubCategory::PostalCode)
}

/// `NNN-NNNN` or `NNNNNNN` at `at`: its end.
fn postal_code(chars: &[char], at: usize) -> Option<usize> {
    let three = (0..3).all(|k| chars.get(at + k).copied().is_some_and(is_digit));
    if !three {
        return None;
    }
    let mut i = at + 3;
    if chars.get(i).copied().is_some_and(is_dash) {
        i += 1;
    }
    let four = (0..4).all(|k| chars.get(i + k).copied().is_some_and(is_digit));
    let end = i + 4;
    (four && !chars.get(end).copied().is_some_and(is_digit)).then_some(end)
}

/// A run of digits and separators at `at`: (digits, end, groups).
fn digit_run(chars: &[char], at: usize) -> (usize, usize, usize) {
    let mut digits = 0;
    let mut groups = 0;
    let mut i = at;
    let mut in_group = false;
    while i < chars.len() {
        let c = chars[i];
        if is_digit(c) {
            digits += 1;
            if !in_group {
                groups += 1;
                in_group = true;
            }
            i += 1;
        } else if ((is_dash(c) || matches!(c, '(' | ')' | ' '))
            && chars
                .get(i + 1)
                .copied()
                .is_some_and(|n| is_digit(n) || n == '(')
            && (digits > 0 || c == '(')
            && (c != ' ' || in_group))
            || (c == ')' && digits > 0)
        {
            in_group = false;
            i += 1;
        } else {
            break;
        }
    }
    (digits, i, groups)
}

/// Detectors starting at a digit, `(` or `+`.
fn digits(chars: &[char], at: usize) -> Option<Detection> {
    let prev = at.checked_sub(1).map(|p| chars[p]);
    // Inside a number or a word (`HbA1c`, `No.12`): not the start of anything.
    if prev.is_some_and(|p| is_digit(p) || p.is_ascii_alphabetic() || p == '.' || is_dash(p)) {
        return None;
    }
    let c = chars[at];
    if c == '+' {
        if starts_with(chars, at, "+81") {
            let (digits, end, _) = digit_run(chars, at + 1);
            if (10..=12).contains(&digits) {
                return tag(at, end, ScrubCategory::Phone);
            }
        }
        return None;
    }
    if c == '(' {
        if chars.get(at + 1) == Some(&'0') {
            let (digits, end, _) = digit_run(chars, at);
            if (10..=11).contains(&digits) {
                return tag(at, end, ScrubCategory::Phone);
            }
        }
        return None;
    }
    // Dates first: `2020/03/05`, `2020年3月`.
    if let Some(date) = western_date(chars, at) {
        return Some(Detection {
            start: at,
            end: date.end,
            found: Found::Date(date),
        });
    }
    if let Some(end) = month_day(chars, at) {
        return tag(at, end, ScrubCategory::Date);
    }
    let (digits, end, groups) = digit_run(chars, at);
    if c == '0' && (10..=11).contains(&digits) && (groups == 1 || groups >= 3 || digits == 10) {
        return tag(at, end, ScrubCategory::Phone);
    }
    if let Some(end) = postal_code(chars, at)
        && chars[at + 3..end].iter().any(|&c| is_dash(c))
        && !chars.get(end).copied().is_some_and(is_dash)
    {
        return tag(at, end, ScrubCategory::PostalCode);
    }
    if let Some(d) = street_address(chars, at) {
        return Some(d);
    }
    // Long digit runs (patient ids, insurer and card numbers), with or without dashes.
    let (plain, plain_end) = plain_digits(chars, at);
    if plain >= 6 {
        return tag(at, plain_end, ScrubCategory::Id);
    }
    let dashed_end = dashed_digits_end(chars, at);
    let dashed: usize = chars[at..dashed_end]
        .iter()
        .filter(|c| is_digit(**c))
        .count();
    if dashed >= 8 {
        return tag(at, dashed_end, ScrubCategory::Id);
    }
    None
}

fn plain_digits(chars: &[char], at: usize) -> (usize, usize) {
    let mut i = at;
    while chars.get(i).copied().is_some_and(is_digit) {
        i += 1;
    }
    (i - at, i)
}

/// End of digits joined by dashes only.
fn dashed_digits_end(chars: &[char], at: usize) -> usize {
    let mut i = at;
    loop {
        let (_, end) = plain_digits(chars, i);
        if end == i {
            return i.max(at);
        }
        i = end;
        if chars.get(i).copied().is_some_and(is_dash)
            && chars.get(i + 1).copied().is_some_and(is_digit)
        {
            i += 1;
        } else {
            return i;
        }
    }
}

/// Characters an address is written with (besides digits and dashes).
fn is_address_char(c: char) -> bool {
    is_kanji(c) || (is_katakana(c) && c != '・') || c == 'ヶ' || c == 'ケ'
}

/// Street part after a number: digits, dashes, 丁目, 番地, 番, 号, の.
fn street_end(chars: &[char], mut i: usize) -> usize {
    loop {
        let c = match chars.get(i) {
            Some(&c) => c,
            None => return i,
        };
        if is_digit(c) {
            i += 1;
        } else if starts_with(chars, i, "丁目") || starts_with(chars, i, "番地") {
            i += 2;
        } else if matches!(c, '番' | '号')
            || ((is_dash(c) || c == 'の') && chars.get(i + 1).copied().is_some_and(is_digit))
        {
            i += 1;
        } else {
            return i;
        }
    }
}

/// Whether the number at `at` is a street number (`2丁目`, `23番地`, `23-4`, `5番`).
fn is_street_number(chars: &[char], at: usize) -> bool {
    let (_, end) = plain_digits(chars, at);
    starts_with(chars, end, "丁目")
        || starts_with(chars, end, "番地")
        || (chars.get(end) == Some(&'番') && !starts_with(chars, end, "番目"))
        || (chars.get(end).copied().is_some_and(is_dash)
            && chars.get(end + 1).copied().is_some_and(is_digit))
}

/// A building after the street number: a space, then up to 24 characters ending in a room
/// number (`メゾン矢部808号室`, `コーポ山田 101`).
fn building_end(chars: &[char], end: usize) -> usize {
    let mut i = end;
    if chars.get(i) == Some(&' ') {
        i += 1;
    }
    let start = i;
    while i < chars.len()
        && i - start < 24
        && (is_address_char(chars[i]) || is_digit(chars[i]) || is_dash(chars[i]))
    {
        i += 1;
    }
    let run = &chars[start..i];
    let has_room = run.iter().any(|c| is_digit(*c))
        && (run.ends_with(&['号', '室']) || run.last().copied().is_some_and(is_digit))
        && run.iter().any(|c| !is_digit(*c));
    if has_room { i } else { end }
}

/// An address without its prefecture, found at its street number: the run of address
/// characters before it must name a municipality (市, 区, 町, 村, 郡).
fn street_address(chars: &[char], at: usize) -> Option<Detection> {
    if !is_street_number(chars, at) {
        return None;
    }
    let mut start = at;
    while start > 0 && at - start < 24 {
        let p = chars[start - 1];
        let joins = is_address_char(p)
            || (matches!(p, 'が' | 'ヶ') && start >= 2 && is_address_char(chars[start - 2]));
        if !joins {
            break;
        }
        start -= 1;
    }
    if start == at || !chars[start..at].iter().any(|c| "市区町村郡".contains(*c)) {
        return None;
    }
    let end = building_end(chars, street_end(chars, at));
    tag(start, end, ScrubCategory::Address)
}

/// An address beginning with a prefecture at `at`: the prefecture, a municipality within the
/// next few characters, and the rest of the address.
fn prefecture_address(chars: &[char], at: usize) -> Option<Detection> {
    let prefecture = PREFECTURES
        .iter()
        .find(|p| starts_with(chars, at, p))
        .map(|p| char_len(p))?;
    let mut i = at + prefecture;
    let mut municipality = false;
    while i < chars.len() && i - at < 64 {
        let c = chars[i];
        if "市区町村郡".contains(c) && i - at <= prefecture + 8 {
            municipality = true;
        }
        let joins = is_address_char(c)
            || is_digit(c)
            || (is_dash(c) && chars.get(i + 1).copied().is_some_and(is_digit))
            || (matches!(c, 'が' | 'ヶ')
                && i > at
                && is_address_char(chars[i - 1])
                && chars.get(i + 1).copied().is_some_and(is_address_char));
        if joins {
            i += 1;
        } else if is_hiragana(c) && !municipality {
            // Municipalities written in hiragana (さいたま市, つくば市, いわき市).
            let mut j = i;
            while j < chars.len() && is_hiragana(chars[j]) && j - i < 6 {
                j += 1;
            }
            if chars.get(j).is_some_and(|c| "市町村区".contains(*c)) {
                i = j;
            } else {
                break;
            }
        } else {
            break;
        }
    }
    if !municipality {
        return None;
    }
    let end = if i > 0 && is_digit(chars[i - 1]) {
        building_end(chars, i)
    } else {
        i
    };
    tag(at, end, ScrubCategory::Address)
}

/// Detectors starting at an ASCII letter: e-mail addresses, era dates (`S55.1.2`), `ID`.
fn latin(chars: &[char], at: usize) -> Option<Detection> {
    let prev = at.checked_sub(1).map(|p| chars[p]);
    if prev.is_some_and(is_email_char) {
        return None;
    }
    if let Some(d) = email(chars, at) {
        return Some(d);
    }
    if let Some(date) = era_date(chars, at) {
        return Some(Detection {
            start: at,
            end: date.end,
            found: Found::Date(date),
        });
    }
    if let Some(d) = labelled_id(chars, at) {
        return Some(d);
    }
    alphanumeric_id(chars, at)
}

/// A token of letters and at least five digits (`MRN0012345`, `A-123456`): an identifier.
fn alphanumeric_id(chars: &[char], at: usize) -> Option<Detection> {
    let mut i = at;
    let mut digits = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_ascii_digit() {
            digits += 1;
        } else if !(c.is_ascii_alphabetic() || (is_dash(c) && c != 'ー')) {
            break;
        }
        i += 1;
    }
    while i > at && is_dash(chars[i - 1]) {
        i -= 1;
    }
    if digits >= 5 {
        tag(at, i, ScrubCategory::Id)
    } else {
        None
    }
}

fn email(chars: &[char], at: usize) -> Option<Detection> {
    let mut i = at;
    while i < chars.len() && is_email_char(chars[i]) && i - at < 64 {
        i += 1;
    }
    if i == at || chars.get(i) != Some(&'@') {
        return None;
    }
    let domain = i + 1;
    let mut j = domain;
    while j < chars.len() && (chars[j].is_ascii_alphanumeric() || matches!(chars[j], '.' | '-')) {
        j += 1;
    }
    // Trailing dots end a sentence, not the domain.
    while j > domain && chars[j - 1] == '.' {
        j -= 1;
    }
    let host: String = chars[domain..j].iter().collect();
    let tld_ok = host
        .rsplit_once('.')
        .is_some_and(|(name, tld)| !name.is_empty() && tld.len() >= 2);
    if tld_ok {
        tag(at, j, ScrubCategory::Email)
    } else {
        None
    }
}

/// A label (`患者ID`, `記号`, `番号`, ...) followed by an identifier token.
fn labelled_id(chars: &[char], at: usize) -> Option<Detection> {
    let label = ID_LABELS.iter().find(|l| starts_with(chars, at, l))?;
    let mut i = at + char_len(label);
    while chars
        .get(i)
        .is_some_and(|c| matches!(c, ':' | ' ' | '.' | '#' | '=' | '：'))
    {
        i += 1;
    }
    let start = i;
    while chars
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || is_dash(*c))
    {
        i += 1;
    }
    // Trailing dashes are punctuation.
    while i > start && is_dash(chars[i - 1]) {
        i -= 1;
    }
    let token = &chars[start..i];
    if token.iter().any(|c| is_digit(*c)) {
        // A phone number after `番号` (電話番号) is a phone number.
        if token.first() == Some(&'0') {
            let (digits, end, _) = digit_run(chars, start);
            if (10..=11).contains(&digits) {
                return tag(start, end, ScrubCategory::Phone);
            }
        }
        tag(start, i, ScrubCategory::Id)
    } else {
        None
    }
}

/// Detectors starting at a kanji or kana: addresses, era dates, labelled ids, and names
/// before an honorific.
fn japanese(chars: &[char], at: usize) -> Option<Detection> {
    if let Some(d) = prefecture_address(chars, at) {
        return Some(d);
    }
    if let Some(date) = era_date(chars, at) {
        return Some(Detection {
            start: at,
            end: date.end,
            found: Found::Date(date),
        });
    }
    if let Some(d) = labelled_id(chars, at) {
        return Some(d);
    }
    honorific_at(chars, at)?;
    name_before_honorific(chars, at)
}

/// Whether an honorific starts at `at` (its length in characters).
fn honorific_at(chars: &[char], at: usize) -> Option<usize> {
    let h = HONORIFICS.iter().find(|h| starts_with(chars, at, h))?;
    let len = char_len(h);
    let next = chars.get(at + len).copied();
    match *h {
        // 氏名, 氏族; 君主; 殿下; 様子, 様式, 様々.
        "氏" | "君" | "殿" | "様" if next.is_some_and(is_kanji) => None,
        _ => Some(len),
    }
}

/// The script of a name character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Kanji,
    Katakana,
    Hiragana,
    Latin,
}

fn script(c: char) -> Option<Script> {
    if is_kanji(c) {
        Some(Script::Kanji)
    } else if is_katakana(c) {
        Some(Script::Katakana)
    } else if is_hiragana(c) {
        Some(Script::Hiragana)
    } else if c.is_ascii_alphabetic() {
        Some(Script::Latin)
    } else {
        None
    }
}

/// A run of one script ending just before `end`: its start and script.
fn run_before(chars: &[char], end: usize) -> Option<(usize, Script)> {
    let s = script(*chars.get(end.checked_sub(1)?)?)?;
    let mut start = end - 1;
    while start > 0 && script(chars[start - 1]) == Some(s) {
        start -= 1;
    }
    Some((start, s))
}

fn is_not_name(word: &[char]) -> bool {
    let text: String = word.iter().collect();
    NOT_NAMES.contains(&text.as_str())
}

/// Skips spaces backwards from `end`.
fn skip_spaces_back(chars: &[char], mut end: usize) -> usize {
    while end > 0 && chars[end - 1] == ' ' {
        end -= 1;
    }
    end
}

/// The start of the name part of a run `start..end` before an honorific, or `None` when the
/// run is not a name.
fn name_in_run(chars: &[char], mut start: usize, end: usize, s: Script) -> Option<usize> {
    match s {
        Script::Kanji => {
            // Institutions and roles before a name are kept (東京病院田中 → 田中).
            if let Some(cut) = chars[start..end]
                .iter()
                .rposition(|c| INSTITUTION_ENDS.contains(c))
            {
                start += cut + 1;
            }
            // A long run is words and a name typed together: keep the last four characters.
            if end - start > 6 {
                start = end - 4;
            }
        }
        Script::Hiragana => {
            // Words of address (お母さん, ご主人様) and long runs are not names.
            if end - start > 5 || matches!(chars[start], 'お' | 'ご') {
                return None;
            }
        }
        Script::Katakana => {
            if end - start > 12 {
                return None;
            }
        }
        Script::Latin => {
            if end - start > 20 {
                return None;
            }
        }
    }
    (start < end && !is_not_name(&chars[start..end])).then_some(start)
}

/// The name before the honorific at `at`: one run, optionally a second run
/// of the same script before it after a space (山田 太郎 様), and a reading in parentheses
/// between name and honorific (上田 昭 (ウエダ アキラ) 様).
fn name_before_honorific(chars: &[char], at: usize) -> Option<Detection> {
    let mut end = skip_spaces_back(chars, at);
    if end > 0 && chars[end - 1] == ')' {
        let close = end - 1;
        let open = (close.saturating_sub(24)..close)
            .rev()
            .find(|&j| chars[j] == '(')?;
        let reading = &chars[open + 1..close];
        let is_reading = !reading.is_empty()
            && reading
                .iter()
                .all(|&c| is_katakana(c) || is_hiragana(c) || c == ' ' || c.is_ascii_alphabetic());
        if !is_reading {
            return None;
        }
        end = skip_spaces_back(chars, open);
    }
    let (run_start, s) = run_before(chars, end)?;
    let mut start = name_in_run(chars, run_start, end, s)?;
    // A family name before the given name, after one space.
    if start == run_start
        && start >= 2
        && chars[start - 1] == ' '
        && let Some((first_start, first_script)) = run_before(chars, start - 1)
    {
        let first = &chars[first_start..start - 1];
        let short = match first_script {
            Script::Kanji => first.len() <= 4,
            Script::Katakana => first.len() <= 8,
            Script::Latin => first.len() <= 16,
            Script::Hiragana => false,
        };
        let institution =
            first_script == Script::Kanji && first.iter().any(|c| INSTITUTION_ENDS.contains(c));
        if first_script == s && short && !institution && !is_not_name(first) {
            start = first_start;
        }
    }
    // The spaces and reading up to the honorific go with the name.
    tag(start, at, ScrubCategory::Name)
}
