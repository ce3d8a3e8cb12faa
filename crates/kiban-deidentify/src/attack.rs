//! Re-identification test (再識別テスト, R-P4): a linkage attack against a released person
//! table by an attacker who knows, with realistic errors, the birth date, sex and address
//! region of every person — what the identity store holds.

use std::collections::HashMap;
use std::path::Path;

use chrono::Days;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::DeidentifyError;
use crate::io::io_error;
use crate::quasi::{KnownIdentity, QuasiIdentifierTable, age_at, region_of};
use crate::release::PERSON_COLUMN;

/// The quasi-identifier columns an attacker with identity data can match.
const MATCHABLE_COLUMNS: [&str; 3] = ["age", "sex", "region"];

/// Errors injected into the attacker's knowledge, as in real auxiliary data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackerErrorModel {
    /// Seed of the error generator: a test is reproducible.
    pub seed: u64,
    /// Share of postal codes with one wrong digit.
    pub wrong_postal_digit: f64,
    /// Share of birth dates one day off.
    pub birth_day_off_by_one: f64,
    /// Share of each known value (birth date, sex, postal code, address) missing.
    pub missing_value: f64,
}

impl Default for AttackerErrorModel {
    fn default() -> Self {
        Self {
            seed: 20_170_512,
            wrong_postal_digit: 0.05,
            birth_day_off_by_one: 0.05,
            missing_value: 0.05,
        }
    }
}

/// The highest share of correctly re-identified persons a release may have.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReidentificationPolicy {
    /// Maximum share of attacker records correctly re-identified (0..=1).
    pub max_share: f64,
}

impl Default for ReidentificationPolicy {
    fn default() -> Self {
        Self { max_share: 0.05 }
    }
}

/// Result of a linkage attack (counts only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReidentificationReport {
    /// Released columns matched.
    pub matched_columns: Vec<String>,
    /// Released person rows.
    pub released_rows: u64,
    /// Attacker records tried (one per person of the truth table).
    pub attempts: u64,
    /// Attacker records that matched exactly one released row.
    pub unique_matches: u64,
    /// Unique matches that are the attacker record's true person.
    pub correct_reidentifications: u64,
    /// `correct_reidentifications / attempts`.
    pub share: f64,
    /// The policy's limit.
    pub max_share: f64,
    /// Whether the share exceeds the limit: the release must not be provided.
    pub blocked: bool,
    /// The errors injected.
    pub error_model: AttackerErrorModel,
}

impl ReidentificationReport {
    /// An error when the policy blocks the release.
    pub fn enforce(&self) -> Result<(), DeidentifyError> {
        if self.blocked {
            Err(DeidentifyError::ReidentificationRiskTooHigh {
                share: self.share,
                max_share: self.max_share,
            })
        } else {
            Ok(())
        }
    }
}

/// A released person table: a `person` column and any of `age`, `sex`, `region`, with
/// generalized values (`[30-40[`, `30-39`, `90+`, `*`, masked codes such as `postal-1*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedPersonTable {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl ReleasedPersonTable {
    /// A table from a header and rows of the same width.
    pub fn new(header: Vec<String>, rows: Vec<Vec<String>>) -> Result<Self, DeidentifyError> {
        if let Some(line) = rows.iter().position(|r| r.len() != header.len()) {
            return Err(DeidentifyError::ReleasedTable {
                file: "rows".into(),
                line: line as u64 + 2,
                reason: "row width differs from the header".to_owned(),
            });
        }
        Ok(Self { header, rows })
    }

    /// Reads a delimited file with a header row (e.g. the release of `kiban anonymize`).
    pub fn read_csv(path: &Path, separator: u8) -> Result<Self, DeidentifyError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(separator)
            .from_path(path)
            .map_err(|e| io_error("read", path, e))?;
        let header = reader
            .headers()
            .map_err(|e| io_error("read", path, e))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut rows = Vec::new();
        for (line, record) in reader.records().enumerate() {
            let record = record.map_err(|_| DeidentifyError::ReleasedTable {
                file: path.to_path_buf(),
                line: line as u64 + 2,
                reason: "malformed delimited row".to_owned(),
            })?;
            rows.push(record.iter().map(str::to_owned).collect());
        }
        Self::new(header, rows).map_err(|e| match e {
            DeidentifyError::ReleasedTable { line, reason, .. } => DeidentifyError::ReleasedTable {
                file: path.to_path_buf(),
                line,
                reason,
            },
            other => other,
        })
    }

    /// The person table as derived, ungeneralized (the worst case of a pseudonymized release).
    pub fn from_quasi_identifiers(table: &QuasiIdentifierTable) -> Self {
        Self {
            header: ["person", "age", "sex", "region"]
                .map(str::to_owned)
                .to_vec(),
            rows: table
                .rows()
                .iter()
                .map(|r| {
                    vec![
                        r.person.clone(),
                        r.age.clone(),
                        r.sex.clone(),
                        r.region.clone(),
                    ]
                })
                .collect(),
        }
    }
}

/// What the attacker knows of one person, in released terms (`None`: unknown).
struct AttackerRecord {
    values: [Option<String>; 3],
}

fn attacker_record(
    known: &KnownIdentity,
    errors: &AttackerErrorModel,
    rng: &mut ChaCha8Rng,
) -> AttackerRecord {
    let missing = |rng: &mut ChaCha8Rng| rng.random_bool(errors.missing_value.clamp(0.0, 1.0));
    let mut birth = known.birth_date;
    if missing(rng) {
        birth = None;
    } else if rng.random_bool(errors.birth_day_off_by_one.clamp(0.0, 1.0)) {
        birth = birth.and_then(|b| {
            if rng.random_bool(0.5) {
                b.checked_add_days(Days::new(1))
            } else {
                b.checked_sub_days(Days::new(1))
            }
        });
    }
    let sex = if missing(rng) {
        None
    } else {
        known.sex.clone()
    };
    let mut postal = if missing(rng) {
        None
    } else {
        known.postal_code.clone()
    };
    if rng.random_bool(errors.wrong_postal_digit.clamp(0.0, 1.0)) {
        postal = postal.map(|p| wrong_digit(&p, rng));
    }
    let prefecture = if missing(rng) {
        None
    } else {
        known.prefecture.clone()
    };
    // The attacker is assumed to know each person's index date (a conservative test).
    let age = match (birth, known.index_date) {
        (Some(b), Some(at)) => age_at(b, at).map(|a| a.to_string()),
        _ => None,
    };
    let region = region_of(prefecture.as_deref(), postal.as_deref());
    AttackerRecord {
        values: [age, sex, region],
    }
}

/// Replaces one ASCII digit by another.
fn wrong_digit(postal: &str, rng: &mut ChaCha8Rng) -> String {
    let mut chars: Vec<char> = postal.chars().collect();
    let digits: Vec<usize> = (0..chars.len())
        .filter(|&i| chars[i].is_ascii_digit())
        .collect();
    if digits.is_empty() {
        return postal.to_owned();
    }
    let at = digits[rng.random_range(0..digits.len())];
    let old = chars[at] as u8 - b'0';
    let new = (old + rng.random_range(1..10u8)) % 10;
    chars[at] = char::from(b'0' + new);
    chars.into_iter().collect()
}

/// Whether a released (possibly generalized) value is consistent with a known value.
pub fn generalizes(released: &str, known: &str) -> bool {
    let released = released.trim();
    if released.is_empty() || released == "*" || released == known {
        return true;
    }
    // A regional block covers its prefectures.
    let members = kiban_model::block_prefectures(released);
    if !members.is_empty() {
        return members.contains(&known);
    }
    if let Ok(number) = known.trim().parse::<f64>()
        && let Some(contains) = numeric_range_contains(released, number)
    {
        return contains;
    }
    // Masks: `*` stands for one character when lengths agree, else a trailing run of `*`
    // stands for any suffix.
    let released_chars: Vec<char> = released.chars().collect();
    let known_chars: Vec<char> = known.chars().collect();
    if released_chars.len() == known_chars.len() && released.contains('*') {
        return released_chars
            .iter()
            .zip(&known_chars)
            .all(|(r, k)| *r == '*' || r == k);
    }
    if let Some(prefix) = released.strip_suffix('*') {
        return known.starts_with(prefix.trim_end_matches('*'));
    }
    false
}

/// Whether a released value matches only itself (not empty, suppressed, masked or a range).
fn is_plain(value: &str) -> bool {
    let value = value.trim();
    !value.is_empty()
        && !value.contains('*')
        && (value.parse::<f64>().is_ok() || numeric_range_contains(value, 0.0).is_none())
}

/// `Some(whether number lies in it)` when `released` reads as a number or a numeric range.
fn numeric_range_contains(released: &str, number: f64) -> Option<bool> {
    let parse = |s: &str| s.trim().parse::<f64>().ok();
    if let Some(value) = parse(released) {
        return Some(value == number);
    }
    for prefix in [">=", "≥"] {
        if let Some(low) = released.strip_prefix(prefix).and_then(parse) {
            return Some(number >= low);
        }
    }
    if let Some(low) = released.strip_suffix('+').and_then(parse) {
        return Some(number >= low);
    }
    if let Some(high) = released.strip_prefix('<').and_then(parse) {
        return Some(number < high);
    }
    // Intervals: `[30-40[`, `[30, 40)`, `[30-40]`, `(30-40]`, or `30-39` (inclusive).
    let open = released.chars().next()?;
    let close = released.chars().last()?;
    let (low_inclusive, high_inclusive, inner) =
        if matches!(open, '[' | '(' | ']') && matches!(close, '[' | ')' | ']') {
            let inner = &released[open.len_utf8()..released.len() - close.len_utf8()];
            (open == '[', close == ']', inner)
        } else {
            (true, true, released)
        };
    // The separator is the first `-` or `,` after the first character (a low bound may be
    // negative).
    let split = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| matches!(c, '-' | ','))?
        .0;
    let low = parse(&inner[..split])?;
    let high = parse(&inner[split + 1..])?;
    let above = if low_inclusive {
        number >= low
    } else {
        number > low
    };
    let below = if high_inclusive {
        number <= high
    } else {
        number < high
    };
    Some(above && below)
}

/// Runs the linkage attack: for every person of `truth` (the person table derived by the
/// operator, holding in memory what the identity store knows), an attacker record with
/// injected errors is matched against every released row; it re-identifies its person when it
/// matches exactly one row and that row carries the person's pseudonym.
///
/// Cost: rows are grouped by their matched values; fully known attacker records of tables
/// without generalized values are looked up by hash, others scan the groups.
pub fn linkage_attack(
    truth: &QuasiIdentifierTable,
    released: &ReleasedPersonTable,
    errors: &AttackerErrorModel,
    policy: &ReidentificationPolicy,
) -> Result<ReidentificationReport, DeidentifyError> {
    if !(0.0..=1.0).contains(&policy.max_share) {
        return Err(DeidentifyError::InvalidOption {
            option: "max_share",
            reason: "must lie in 0..=1".to_owned(),
        });
    }
    let person_column = released
        .header
        .iter()
        .position(|h| h == PERSON_COLUMN)
        .ok_or_else(|| DeidentifyError::ReleasedTable {
            file: "header".into(),
            line: 1,
            reason: format!("no `{PERSON_COLUMN}` column"),
        })?;
    // (index in MATCHABLE_COLUMNS, index in the released header)
    let columns: Vec<(usize, usize)> = MATCHABLE_COLUMNS
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            released
                .header
                .iter()
                .position(|h| h == name)
                .map(|j| (i, j))
        })
        .collect();
    if columns.is_empty() {
        return Err(DeidentifyError::ReleasedTable {
            file: "header".into(),
            line: 1,
            reason: "none of the columns age, sex, region".to_owned(),
        });
    }

    // Groups of released rows with the same matched values: (values, persons in the group).
    let mut groups: HashMap<Vec<&str>, Vec<&str>> = HashMap::new();
    for row in &released.rows {
        let key: Vec<&str> = columns.iter().map(|&(_, j)| row[j].as_str()).collect();
        groups
            .entry(key)
            .or_default()
            .push(row[person_column].as_str());
    }
    // Without generalized values, consistency is equality and a hash lookup suffices.
    let plain = groups
        .keys()
        .all(|values| values.iter().all(|v| is_plain(v)));

    let mut rng = ChaCha8Rng::seed_from_u64(errors.seed);
    let mut unique_matches = 0u64;
    let mut correct = 0u64;
    for (row, known) in truth.rows().iter().zip(truth.known()) {
        let attacker = attacker_record(known, errors, &mut rng);
        let wanted: Vec<Option<&str>> = columns
            .iter()
            .map(|&(i, _)| attacker.values[i].as_deref())
            .collect();
        let matched: Option<&str> = if plain && wanted.iter().all(Option::is_some) {
            let key: Vec<&str> = wanted.iter().map(|v| v.unwrap_or_default()).collect();
            match groups.get(&key) {
                Some(persons) if persons.len() == 1 => Some(persons[0]),
                _ => None,
            }
        } else {
            let mut matches = 0usize;
            let mut only = None;
            for (values, persons) in &groups {
                let consistent = values
                    .iter()
                    .zip(&wanted)
                    .all(|(released, known)| match known {
                        Some(known) => generalizes(released, known),
                        None => true,
                    });
                if consistent {
                    matches += persons.len();
                    only = persons.first().copied();
                    if matches > 1 {
                        break;
                    }
                }
            }
            if matches == 1 { only } else { None }
        };
        if let Some(person) = matched {
            unique_matches += 1;
            if person == row.person {
                correct += 1;
            }
        }
    }
    let attempts = truth.rows().len() as u64;
    let share = if attempts == 0 {
        0.0
    } else {
        correct as f64 / attempts as f64
    };
    Ok(ReidentificationReport {
        matched_columns: columns
            .iter()
            .map(|&(i, _)| MATCHABLE_COLUMNS[i].to_owned())
            .collect(),
        released_rows: released.rows.len() as u64,
        attempts,
        unique_matches,
        correct_reidentifications: correct,
        share,
        max_share: policy.max_share,
        blocked: share > policy.max_share,
        error_model: errors.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_values_match_what_they_cover() {
        assert!(generalizes("[30-40[", "39"));
        assert!(!generalizes("[30-40[", "40"));
        assert!(generalizes("30-39", "39"));
        assert!(!generalizes("30-39", "40"));
        assert!(generalizes("[30, 40)", "30"));
        assert!(generalizes("90+", "97"));
        assert!(!generalizes("90+", "89"));
        assert!(generalizes("*", "anything"));
        assert!(generalizes("47", "47"));
        assert!(!generalizes("47", "48"));
        assert!(generalizes("postal-1*", "postal-13"));
        assert!(generalizes("1**-****", "150-0001"));
        assert!(!generalizes("2**-****", "150-0001"));
        assert!(generalizes("東京都", "東京都"));
        assert!(!generalizes("東京都", "大阪府"));
        assert!(!generalizes("male", "female"));
        assert!(generalizes("<20", "19"));
    }

    #[test]
    fn wrong_digit_changes_exactly_one_digit() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let changed = wrong_digit("150-0001", &mut rng);
            let differences = changed
                .chars()
                .zip("150-0001".chars())
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(differences, 1);
        }
    }
}
