//! Free-text scrubbing (R-P5): identifying mentions are cut out of Japanese clinical free text
//! (referral letters, discharge summaries, checkup reports) and replaced by typed tags
//! (［氏名］, ［電話番号］, ［郵便番号］, ［住所］, ［メール］, ［ID］, ［生年月日］, ［日付］);
//! dates are shifted by the person's offset or generalized to year and month.
//!
//! Two searches run over each text, both linear in its length:
//! - a dictionary of the names and identity values held in the identity store (Aho-Corasick
//!   over a folded form that ignores width, kana script, spaces, long-vowel marks and old
//!   kanji forms): full names and family names of every person, given names and the
//!   identifiers, address and phone of the text's own person;
//! - pattern detectors for what no dictionary holds: other persons before an honorific
//!   (様, さん, 氏, 殿, 先生, 医師, 君, くん, ちゃん), phone numbers, postal codes, addresses,
//!   e-mail addresses, long digit runs and labelled identifiers, and dates in Western and
//!   Japanese-era forms (a birth date is removed, not shifted).
//!
//! The scrubber never logs and its counts never hold a value.

mod dates;
mod detect;
mod fold;
mod latin;

use std::collections::HashMap;
use std::fmt;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use chrono::NaiveDate;
use kiban_model::IdentityRow;
use serde::{Deserialize, Serialize};

use crate::DeidentifyError;
use crate::keys::{PersonId, PersonMap};
use detect::{Detection, Found};
use fold::{fold_main, fold_name, is_katakana, name_key};

/// What the scrubber removes, each with its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScrubCategory {
    /// A person's name (氏名).
    Name,
    /// An address (住所).
    Address,
    /// A phone number (電話番号).
    Phone,
    /// A postal code (郵便番号).
    PostalCode,
    /// An e-mail address.
    Email,
    /// An identifier: patient id, insurer or card number, any long digit run.
    Id,
    /// A birth date (生年月日).
    BirthDate,
    /// A date that could not be shifted (a month and day without a year, a date out of range).
    Date,
}

impl ScrubCategory {
    /// The tag that replaces a mention.
    pub fn tag(self) -> &'static str {
        match self {
            ScrubCategory::Name => "［氏名］",
            ScrubCategory::Address => "［住所］",
            ScrubCategory::Phone => "［電話番号］",
            ScrubCategory::PostalCode => "［郵便番号］",
            ScrubCategory::Email => "［メール］",
            ScrubCategory::Id => "［ID］",
            ScrubCategory::BirthDate => "［生年月日］",
            ScrubCategory::Date => "［日付］",
        }
    }
}

/// What happens to dates in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateRule {
    /// Moved by the person's offset, as the structured dates of a pseudonymized release
    /// (intervals kept); written in the form they were found in (era dates as Western dates).
    Shift {
        /// The person's offset in days.
        days: i64,
    },
    /// Moved by the person's offset, then written as year and month only (anonymized release).
    YearMonth {
        /// The person's offset in days.
        days: i64,
    },
}

/// Mentions removed or rewritten, per category. Never holds a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubCounts {
    /// Texts scrubbed.
    pub texts: u64,
    /// Texts in which something was replaced.
    pub texts_changed: u64,
    /// Names removed.
    pub names: u64,
    /// Addresses removed.
    pub addresses: u64,
    /// Phone numbers removed.
    pub phones: u64,
    /// Postal codes removed.
    pub postal_codes: u64,
    /// E-mail addresses removed.
    pub emails: u64,
    /// Identifiers and long digit runs removed.
    pub ids: u64,
    /// Birth dates removed.
    pub birth_dates: u64,
    /// Dates shifted by the person's offset.
    pub dates_shifted: u64,
    /// Dates shifted and generalized to year and month.
    pub dates_generalized: u64,
    /// Dates removed (no year, or out of range).
    pub dates_removed: u64,
}

impl ScrubCounts {
    /// Adds another set of counts.
    pub fn add(&mut self, other: &ScrubCounts) {
        self.texts += other.texts;
        self.texts_changed += other.texts_changed;
        self.names += other.names;
        self.addresses += other.addresses;
        self.phones += other.phones;
        self.postal_codes += other.postal_codes;
        self.emails += other.emails;
        self.ids += other.ids;
        self.birth_dates += other.birth_dates;
        self.dates_shifted += other.dates_shifted;
        self.dates_generalized += other.dates_generalized;
        self.dates_removed += other.dates_removed;
    }

    fn count(&mut self, category: ScrubCategory) {
        match category {
            ScrubCategory::Name => self.names += 1,
            ScrubCategory::Address => self.addresses += 1,
            ScrubCategory::Phone => self.phones += 1,
            ScrubCategory::PostalCode => self.postal_codes += 1,
            ScrubCategory::Email => self.emails += 1,
            ScrubCategory::Id => self.ids += 1,
            ScrubCategory::BirthDate => self.birth_dates += 1,
            ScrubCategory::Date => self.dates_removed += 1,
        }
    }

    /// Mentions removed or rewritten in all.
    pub fn total(&self) -> u64 {
        self.names
            + self.addresses
            + self.phones
            + self.postal_codes
            + self.emails
            + self.ids
            + self.birth_dates
            + self.dates_shifted
            + self.dates_generalized
            + self.dates_removed
    }
}

/// One dictionary entry: whom it belongs to and what it is.
struct Entry {
    category: ScrubCategory,
    /// Removed from every text (full and family names), not only from its persons' texts.
    global: bool,
    /// A reading in kana: outside its persons' texts it matches only text in katakana, since
    /// hiragana running text holds the same syllables (いしい in おいしい).
    kana: bool,
    /// Persons whose own value it is (sorted).
    owners: Vec<u32>,
}

/// The free-text scrubber of one release: the identity store's names and values folded into
/// one automaton, and the pattern detectors.
pub struct FreeTextScrubber {
    persons: PersonMap,
    person_index: HashMap<PersonId, u32>,
    birth_dates: HashMap<u32, Vec<NaiveDate>>,
    entries: Vec<Entry>,
    automaton: Option<AhoCorasick>,
    /// Romanized full names (Hepburn of the kana readings), matched in Latin text.
    latin_names: latin::LatinNames,
}

impl fmt::Debug for FreeTextScrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FreeTextScrubber")
            .field("persons", &self.person_index.len())
            .field("dictionary_entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// Shortest names (in folded characters) removed from every text: shorter ones make words.
const MIN_GLOBAL_KANJI: usize = 2;
const MIN_GLOBAL_KANA: usize = 3;
/// Shortest own values removed from the person's own texts.
const MIN_OWN_NAME: usize = 2;
const MIN_OWN_VALUE: usize = 4;

struct DictionaryBuilder {
    keys: HashMap<String, usize>,
    entries: Vec<Entry>,
}

impl DictionaryBuilder {
    fn add(&mut self, raw: &str, category: ScrubCategory, owner: u32, global: bool, kana: bool) {
        let key = name_key(raw);
        let length = key.chars().count();
        let minimum = match (global, kana, category) {
            (true, false, _) => MIN_GLOBAL_KANJI,
            (true, true, _) => MIN_GLOBAL_KANA,
            (false, _, ScrubCategory::Name) => MIN_OWN_NAME,
            (false, _, _) => MIN_OWN_VALUE,
        };
        if length < minimum {
            return;
        }
        let index = *self.keys.entry(key).or_insert_with(|| {
            self.entries.push(Entry {
                category,
                global: false,
                kana,
                owners: Vec::new(),
            });
            self.entries.len() - 1
        });
        let entry = &mut self.entries[index];
        entry.global |= global;
        // A key that is both a name and a reading keeps the stricter (kanji) rule.
        entry.kana &= kana;
        if let Err(at) = entry.owners.binary_search(&owner) {
            entry.owners.insert(at, owner);
        }
    }
}

impl FreeTextScrubber {
    /// A scrubber for texts of the persons in `persons`, with the names and identity values of
    /// `identities` (every record of the identity store the release may touch).
    pub fn new(identities: &[IdentityRow], persons: &PersonMap) -> Result<Self, DeidentifyError> {
        let mut person_index: HashMap<PersonId, u32> = HashMap::new();
        let mut birth_dates: HashMap<u32, Vec<NaiveDate>> = HashMap::new();
        let mut builder = DictionaryBuilder {
            keys: HashMap::new(),
            entries: Vec::new(),
        };
        let mut latin_names = latin::LatinNames::default();
        for identity in identities {
            let person = persons.person(&identity.common.provider_id, &identity.common.patient_key);
            let next = person_index.len() as u32;
            let owner = *person_index.entry(person).or_insert(next);
            if let Some(birth) = identity.birth_date {
                let dates = birth_dates.entry(owner).or_default();
                if !dates.contains(&birth) {
                    dates.push(birth);
                }
            }
            if let Some(kanji) = identity.name_kanji.as_deref() {
                let name = kiban_linkage::normalize::name::normalize_kanji_name(kanji);
                builder.add(&name.key, ScrubCategory::Name, owner, true, false);
                if !name.given.is_empty() {
                    builder.add(&name.family, ScrubCategory::Name, owner, true, false);
                    builder.add(&name.family, ScrubCategory::Name, owner, false, false);
                    builder.add(&name.given, ScrubCategory::Name, owner, false, false);
                }
            }
            if let Some(kana) = identity.name_kana.as_deref() {
                let name = kiban_linkage::normalize::name::normalize_kana_name(kana);
                // Romanized: from the reading as written when it separates the parts (small
                // kana intact), else from the split the name table made.
                let parts: Vec<String> = kana
                    .split(|c: char| c.is_whitespace() || c == '・')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                if parts.len() >= 2 {
                    latin_names.add(&parts[0], &parts[1..].concat(), owner);
                } else if !name.given.is_empty() {
                    latin_names.add(&name.family, &name.given, owner);
                }
                builder.add(&name.key, ScrubCategory::Name, owner, true, true);
                if !name.given.is_empty() {
                    builder.add(&name.family, ScrubCategory::Name, owner, true, true);
                    builder.add(&name.family, ScrubCategory::Name, owner, false, true);
                    builder.add(&name.given, ScrubCategory::Name, owner, false, true);
                }
            }
            let own_values = [
                (identity.address.as_deref(), ScrubCategory::Address),
                (identity.phone.as_deref(), ScrubCategory::Phone),
                (identity.postal_code.as_deref(), ScrubCategory::PostalCode),
                (
                    Some(identity.provider_patient_id.as_str()),
                    ScrubCategory::Id,
                ),
                (
                    Some(identity.common.patient_key.as_str()),
                    ScrubCategory::Id,
                ),
                (identity.insurer_number.as_deref(), ScrubCategory::Id),
                (identity.insured_symbol.as_deref(), ScrubCategory::Id),
                (identity.insured_number.as_deref(), ScrubCategory::Id),
            ];
            for (value, category) in own_values {
                let Some(value) = value else { continue };
                builder.add(value, category, owner, false, false);
                // Digits typed without their separators.
                let digits: String = name_key(value)
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                if category != ScrubCategory::Address && digits.len() >= 6 {
                    builder.add(&digits, category, owner, false, false);
                }
            }
        }
        let automaton = if builder.entries.is_empty() {
            None
        } else {
            let mut keys: Vec<(usize, String)> =
                builder.keys.into_iter().map(|(k, i)| (i, k)).collect();
            keys.sort_unstable_by_key(|(i, _)| *i);
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .build(keys.iter().map(|(_, k)| k.as_str()))
                    .map_err(|e| DeidentifyError::InvalidOption {
                        option: "free-text dictionary",
                        // The build error names sizes, never patterns.
                        reason: format!("cannot build the name dictionary: {e}"),
                    })?,
            )
        };
        Ok(Self {
            persons: persons.clone(),
            person_index,
            birth_dates,
            entries: builder.entries,
            automaton,
            latin_names,
        })
    }

    /// Entries of the name and value dictionary.
    pub fn dictionary_entries(&self) -> usize {
        self.entries.len() + self.latin_names.len()
    }

    /// Scrubs one text of the patient record (`provider_id`, `patient_key`): identifying
    /// mentions replaced by tags, dates rewritten by `dates`; `counts` gets what was done.
    pub fn scrub(
        &self,
        text: &str,
        provider_id: &str,
        patient_key: &str,
        rule: DateRule,
        counts: &mut ScrubCounts,
    ) -> String {
        let person = self.persons.person(provider_id, patient_key);
        self.scrub_for(text, &person, rule, counts)
    }

    pub(crate) fn scrub_for(
        &self,
        text: &str,
        person: &PersonId,
        rule: DateRule,
        counts: &mut ScrubCounts,
    ) -> String {
        counts.texts += 1;
        let owner = self.person_index.get(person).copied();
        let folded = fold_main(text);
        let chars = &folded.chars;
        let mut spans: Vec<Detection> = detect::detect(chars);
        if let Some(automaton) = &self.automaton {
            let (name_text, byte_starts, origins) = fold_name(chars);
            for m in automaton.find_overlapping_iter(&name_text) {
                let entry = &self.entries[m.pattern().as_usize()];
                let own = owner.is_some_and(|o| entry.owners.binary_search(&o).is_ok());
                if !(own || entry.global) {
                    continue;
                }
                let (Ok(first), Ok(last_end)) = (
                    byte_starts.binary_search(&m.start()),
                    byte_starts.binary_search(&m.end()).or_else(|e| {
                        // The end of the text.
                        if m.end() == name_text.len() {
                            Ok(e)
                        } else {
                            Err(e)
                        }
                    }),
                ) else {
                    continue;
                };
                let start = origins[first];
                let end = origins[last_end - 1] + 1;
                if !own
                    && entry.kana
                    && !chars[start..end]
                        .iter()
                        .all(|&c| is_katakana(c) || c == ' ')
                {
                    continue;
                }
                spans.push(Detection {
                    start,
                    end,
                    found: Found::Tag(entry.category),
                });
            }
        }
        // Romanized full names of anyone in the store, without an honorific (`Taro Yamada`);
        // family names alone: the person's own, and anyone's after a title or before an
        // honorific (`Mr. Yamada`, `Yamada-san`).
        for (start, end) in self.latin_names.find(chars, owner) {
            spans.push(Detection {
                start,
                end,
                found: Found::Tag(ScrubCategory::Name),
            });
        }
        if spans.is_empty() {
            return text.to_owned();
        }
        let births = owner.and_then(|o| self.birth_dates.get(&o));
        // Birth dates are removed, not shifted: by their context or as the person's own.
        for span in &mut spans {
            if let Found::Date(date) = span.found
                && (is_birth_context(chars, span.start, span.end)
                    || (!date.year_month && births.is_some_and(|b| b.contains(&date.date))))
            {
                span.found = Found::Tag(ScrubCategory::BirthDate);
            }
        }
        spans.sort_unstable_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        let mut out = String::with_capacity(text.len());
        let mut cursor = 0usize;
        let mut i = 0;
        let mut changed = false;
        while i < spans.len() {
            let mut group = spans[i];
            let mut j = i + 1;
            while j < spans.len() && spans[j].start < group.end {
                group.end = group.end.max(spans[j].end);
                group.found = stronger(group.found, spans[j].found);
                j += 1;
            }
            i = j;
            let replacement = match group.found {
                Found::Tag(category) => {
                    counts.count(category);
                    category.tag().to_owned()
                }
                Found::Date(date) => {
                    let (days, year_month) = match rule {
                        DateRule::Shift { days } => (days, date.year_month),
                        DateRule::YearMonth { days } => (days, true),
                    };
                    match dates::shift(date.date, days) {
                        Some(shifted) => {
                            if matches!(rule, DateRule::YearMonth { .. }) {
                                counts.dates_generalized += 1;
                            } else {
                                counts.dates_shifted += 1;
                            }
                            dates::write(shifted, date.form, year_month)
                        }
                        None => {
                            counts.count(ScrubCategory::Date);
                            ScrubCategory::Date.tag().to_owned()
                        }
                    }
                }
            };
            let from = folded.spans[group.start].0;
            let to = folded.spans[group.end - 1].1;
            if from >= cursor {
                out.push_str(&text[cursor..from]);
            }
            out.push_str(&replacement);
            cursor = cursor.max(to);
            changed = true;
        }
        out.push_str(&text[cursor..]);
        if changed {
            counts.texts_changed += 1;
        }
        out
    }
}

/// Of two overlapping findings, the one to replace both: any tag over a date, and the
/// category listed first in [`ScrubCategory`].
fn stronger(a: Found, b: Found) -> Found {
    match (a, b) {
        (Found::Tag(x), Found::Tag(y)) => Found::Tag(x.min(y)),
        (Found::Tag(x), Found::Date(_)) | (Found::Date(_), Found::Tag(x)) => Found::Tag(x),
        (Found::Date(_), Found::Date(_)) => Found::Tag(ScrubCategory::Date),
    }
}

/// Whether a date at `start..end` is a birth date by its words: after 生年月日, 誕生日, 生 or
/// before 生, 生まれ.
fn is_birth_context(chars: &[char], start: usize, end: usize) -> bool {
    let mut before = start;
    while before > 0 && matches!(chars[before - 1], ' ' | ':' | '：' | '(' | '（') {
        before -= 1;
    }
    let ends_with = |word: &str| {
        let w: Vec<char> = word.chars().collect();
        before >= w.len() && chars[before - w.len()..before] == w[..]
    };
    let after_birth = ["生年月日", "誕生日", "出生日", "生年", "DOB"]
        .iter()
        .any(|w| ends_with(w));
    // 生 or 生まれ after the date, not 生検 or 生活.
    let before_birth =
        chars.get(end) == Some(&'生') && !chars.get(end + 1).copied().is_some_and(fold::is_kanji);
    after_birth || before_birth
}

#[cfg(test)]
mod tests;
