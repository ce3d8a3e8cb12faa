//! Rare values (特異な記述, R-P1): codes held by few persons are recoded one level up or
//! removed, and extreme laboratory values are top/bottom coded. Only anonymized releases use
//! this; pseudonymized releases keep rare values (R-P2).

use std::collections::{BTreeMap, HashMap, HashSet};

use kiban_model::ClinicalTable;
use serde::{Deserialize, Serialize};

use crate::DeidentifyError;

/// How a rare code is recoded before it is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeLadder {
    /// ICD-10: full code → 3-character category → removed.
    Icd10,
    /// Keep the first n characters (YJ: 12 → 7, the ingredient) → removed.
    Prefix(usize),
    /// Removed at once.
    Remove,
}

impl CodeLadder {
    /// The code one level up, when the ladder has one.
    pub fn parent(self, code: &str) -> Option<String> {
        match self {
            CodeLadder::Icd10 => Some(icd10_category(code)),
            CodeLadder::Prefix(n) => Some(code.chars().take(n).collect()),
            CodeLadder::Remove => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            CodeLadder::Icd10 => "full ICD-10 code → 3-character category → removed",
            CodeLadder::Prefix(7) => "YJ code → first 7 characters (ingredient) → removed",
            CodeLadder::Prefix(_) => "code → prefix → removed",
            CodeLadder::Remove => "removed",
        }
    }
}

/// The 3-character ICD-10 category of a code (`E11.9`, `E119` → `E11`).
pub(crate) fn icd10_category(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(3)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A code column subject to the rare-value rule.
pub(crate) struct CodeRule {
    pub table: ClinicalTable,
    pub column: &'static str,
    pub ladder: CodeLadder,
}

/// Every code column the rule applies to. Counts are per table and column: the same code in
/// two tables (a diagnosis and a cause of death) says different things about a person.
pub(crate) const CODE_RULES: &[CodeRule] = &[
    CodeRule {
        table: ClinicalTable::Conditions,
        column: "icd10",
        ladder: CodeLadder::Icd10,
    },
    CodeRule {
        table: ClinicalTable::Conditions,
        column: "medis_code",
        ladder: CodeLadder::Remove,
    },
    CodeRule {
        table: ClinicalTable::MedicationRequests,
        column: "yj_code",
        ladder: CodeLadder::Prefix(7),
    },
    CodeRule {
        table: ClinicalTable::MedicationRequests,
        column: "hot_code",
        ladder: CodeLadder::Remove,
    },
    CodeRule {
        table: ClinicalTable::MedicationDispenses,
        column: "yj_code",
        ladder: CodeLadder::Prefix(7),
    },
    CodeRule {
        table: ClinicalTable::MedicationDispenses,
        column: "hot_code",
        ladder: CodeLadder::Remove,
    },
    CodeRule {
        table: ClinicalTable::LabObservations,
        column: "jlac10",
        ladder: CodeLadder::Remove,
    },
    CodeRule {
        table: ClinicalTable::Procedures,
        column: "code",
        ladder: CodeLadder::Remove,
    },
    CodeRule {
        table: ClinicalTable::Allergies,
        column: "code",
        ladder: CodeLadder::Remove,
    },
    CodeRule {
        table: ClinicalTable::Infections,
        column: "code",
        ladder: CodeLadder::Remove,
    },
    CodeRule {
        table: ClinicalTable::Deaths,
        column: "cause_icd10",
        ladder: CodeLadder::Icd10,
    },
];

/// Settings of the rare-value rules of an anonymized release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RareValueOptions {
    /// A code is kept only when at least this many distinct persons hold it (default 10).
    pub min_persons: usize,
    /// Lab values below this percentile of their JLAC10 code are bottom coded (default 0.5).
    pub lab_low_percentile: f64,
    /// Lab values above this percentile of their JLAC10 code are top coded (default 99.5).
    pub lab_high_percentile: f64,
    /// Fixed (low, high) limits per JLAC10 code, used instead of the percentiles.
    pub lab_limits: BTreeMap<String, (f64, f64)>,
    /// Ages at or above this are top coded (`90+`) in the person table (default 90).
    pub age_top_code: u32,
}

impl Default for RareValueOptions {
    fn default() -> Self {
        Self {
            min_persons: 10,
            lab_low_percentile: 0.5,
            lab_high_percentile: 99.5,
            lab_limits: BTreeMap::new(),
            age_top_code: 90,
        }
    }
}

impl RareValueOptions {
    pub(crate) fn validate(&self) -> Result<(), DeidentifyError> {
        let percentiles_ok = (0.0..=100.0).contains(&self.lab_low_percentile)
            && (0.0..=100.0).contains(&self.lab_high_percentile)
            && self.lab_low_percentile <= self.lab_high_percentile;
        if !percentiles_ok {
            return Err(DeidentifyError::InvalidOption {
                option: "lab percentiles",
                reason: "need 0 <= low <= high <= 100".to_owned(),
            });
        }
        if self.min_persons == 0 {
            return Err(DeidentifyError::InvalidOption {
                option: "min_persons",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.lab_limits.values().any(|(low, high)| low > high) {
            return Err(DeidentifyError::InvalidOption {
                option: "lab_limits",
                reason: "a low limit is above its high limit".to_owned(),
            });
        }
        Ok(())
    }
}

/// What the rare-code rule did to one code column (counts only, never codes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeColumnReport {
    /// The rule applied.
    pub rule: String,
    /// Distinct codes in the input.
    pub distinct_codes: u64,
    /// Codes kept as they were (held by enough persons).
    pub codes_kept: u64,
    /// Codes recoded one level up.
    pub codes_recoded: u64,
    /// Codes removed (their rows keep a null code).
    pub codes_removed: u64,
    /// Rows whose code was recoded.
    pub rows_recoded: u64,
    /// Rows whose code was removed.
    pub rows_removed: u64,
}

/// Top/bottom coding of lab values (counts only, never values or limits).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabValueReport {
    /// The rule applied.
    pub rule: String,
    /// JLAC10 codes with numeric values.
    pub codes: u64,
    /// Values raised to the low limit.
    pub values_bottom_coded: u64,
    /// Values lowered to the high limit.
    pub values_top_coded: u64,
}

/// What the rare-value rules did in an anonymized release.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RareValueReport {
    /// The minimum number of distinct persons per kept code.
    pub min_persons: usize,
    /// Per `table.column`.
    pub code_columns: BTreeMap<String, CodeColumnReport>,
    /// Lab value coding.
    pub lab_values: LabValueReport,
}

/// Persons and rows holding each code of one column.
#[derive(Default)]
pub(crate) struct CodeCounts {
    codes: HashMap<String, (HashSet<u32>, u64)>,
}

impl CodeCounts {
    pub fn add(&mut self, code: &str, person: u32) {
        // Looked up before inserting: no allocation per row for a code already seen.
        let entry = match self.codes.get_mut(code) {
            Some(entry) => entry,
            None => self.codes.entry(code.to_owned()).or_default(),
        };
        entry.0.insert(person);
        entry.1 += 1;
    }
}

/// The recoding of one column: original code → code released (`None`: removed).
pub(crate) struct CodePlan {
    pub recode: HashMap<String, Option<String>>,
}

/// Decides the recoding of a column so that every code released is held by at least
/// `min_persons` persons: codes below the threshold go one level up, where the persons of
/// every rare code sharing the parent are pooled; a pool still below it is removed.
pub(crate) fn plan_codes(
    counts: &CodeCounts,
    ladder: CodeLadder,
    min_persons: usize,
    report: &mut CodeColumnReport,
) -> CodePlan {
    let mut recode = HashMap::new();
    let mut pools: HashMap<String, (HashSet<u32>, Vec<&str>)> = HashMap::new();
    report.rule = format!(
        "codes held by fewer than {min_persons} persons: {}",
        ladder.describe()
    );
    report.distinct_codes = counts.codes.len() as u64;
    for (code, (persons, rows)) in &counts.codes {
        if persons.len() >= min_persons {
            recode.insert(code.clone(), Some(code.clone()));
            report.codes_kept += 1;
        } else if let Some(parent) = ladder.parent(code) {
            let pool = pools.entry(parent).or_default();
            pool.0.extend(persons.iter().copied());
            pool.1.push(code);
        } else {
            recode.insert(code.clone(), None);
            report.codes_removed += 1;
            report.rows_removed += rows;
        }
    }
    for (parent, (persons, codes)) in pools {
        let keep = persons.len() >= min_persons;
        for code in codes {
            let rows = counts.codes.get(code).map_or(0, |c| c.1);
            if keep {
                recode.insert(code.to_owned(), Some(parent.clone()));
                report.codes_recoded += 1;
                report.rows_recoded += rows;
            } else {
                recode.insert(code.to_owned(), None);
                report.codes_removed += 1;
                report.rows_removed += rows;
            }
        }
    }
    CodePlan { recode }
}

/// Most distinct values counted exactly per lab code; beyond it values are counted on four
/// significant digits, so the state of a code stays bounded however many rows it has.
pub(crate) const MAX_DISTINCT_LAB_VALUES: usize = 65_536;

/// Counts of the distinct values of one lab code: the state percentiles need, bounded by the
/// number of distinct values (at most [`MAX_DISTINCT_LAB_VALUES`] exact ones), not by rows.
#[derive(Debug, Default)]
pub(crate) struct ValueCounts {
    /// Value (as an order-preserving key) → rows holding it.
    counts: BTreeMap<u64, u64>,
    total: u64,
    /// Whether values are counted on four significant digits.
    rounded: bool,
}

/// A key whose unsigned order is the total order of `f64`.
fn order_key(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn from_order_key(key: u64) -> f64 {
    let bits = if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    };
    f64::from_bits(bits)
}

/// `value` on four significant digits.
fn four_digits(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let scale = 10f64.powi(3 - value.abs().log10().floor() as i32);
    (value * scale).round() / scale
}

impl ValueCounts {
    pub fn add(&mut self, value: f64) {
        let value = if self.rounded {
            four_digits(value)
        } else {
            value
        };
        *self.counts.entry(order_key(value)).or_default() += 1;
        self.total += 1;
        if !self.rounded && self.counts.len() > MAX_DISTINCT_LAB_VALUES {
            self.rounded = true;
            let exact = std::mem::take(&mut self.counts);
            for (key, rows) in exact {
                *self
                    .counts
                    .entry(order_key(four_digits(from_order_key(key))))
                    .or_default() += rows;
            }
        }
    }

    /// Distinct values held (the size of the state).
    #[cfg(test)]
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    /// Nearest-rank percentile (`NaN` without values).
    pub fn percentile(&self, p: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil() as u64;
        let rank = rank.clamp(1, self.total);
        let mut seen = 0;
        for (&key, &rows) in &self.counts {
            seen += rows;
            if seen >= rank {
                return from_order_key(key);
            }
        }
        f64::NAN
    }
}

/// The (low, high) limits of each lab code's values.
pub(crate) fn lab_limits(
    values: HashMap<String, ValueCounts>,
    options: &RareValueOptions,
    report: &mut LabValueReport,
) -> HashMap<String, (f64, f64)> {
    report.rule = format!(
        "values outside the {}th–{}th percentile of their JLAC10 code (or configured limits for {} codes) set to that percentile",
        options.lab_low_percentile,
        options.lab_high_percentile,
        options.lab_limits.len()
    );
    report.codes = values.len() as u64;
    values
        .into_iter()
        .map(|(code, values)| {
            let limits = match options.lab_limits.get(&code) {
                Some(&limits) => limits,
                None => (
                    values.percentile(options.lab_low_percentile),
                    values.percentile(options.lab_high_percentile),
                ),
            };
            (code, limits)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_codes_go_up_a_level_then_away() {
        let mut counts = CodeCounts::default();
        // E11.9 held by 3 persons (kept at T=3); E11.2 and E11.3 by 2 and 1: pooled in E11 (3).
        for p in 0..3 {
            counts.add("E11.9", p);
        }
        counts.add("E11.2", 10);
        counts.add("E11.2", 11);
        counts.add("E11.3", 12);
        counts.add("Q87.1", 20);
        let mut report = CodeColumnReport::default();
        let plan = plan_codes(&counts, CodeLadder::Icd10, 3, &mut report);
        assert_eq!(plan.recode["E11.9"].as_deref(), Some("E11.9"));
        assert_eq!(plan.recode["E11.2"].as_deref(), Some("E11"));
        assert_eq!(plan.recode["E11.3"].as_deref(), Some("E11"));
        assert_eq!(plan.recode["Q87.1"], None);
        assert_eq!(
            (
                report.codes_kept,
                report.codes_recoded,
                report.codes_removed
            ),
            (1, 2, 1)
        );
        assert_eq!(
            CodeLadder::Prefix(7).parent("1149019F1020"),
            Some("1149019".into())
        );
        assert_eq!(icd10_category("e119"), "E11");
    }

    fn counts_of(values: impl IntoIterator<Item = f64>) -> ValueCounts {
        let mut counts = ValueCounts::default();
        for v in values {
            counts.add(v);
        }
        counts
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let counts = counts_of((1..=1000).rev().map(f64::from));
        assert_eq!(counts.percentile(0.5), 5.0);
        assert_eq!(counts.percentile(99.5), 995.0);
        assert_eq!(counts_of([3.0]).percentile(0.5), 3.0);
        assert!(counts_of([]).percentile(50.0).is_nan());
        // Negative values and repeated values keep their order and weight.
        let counts = counts_of([-2.5, -0.0, 0.0, 1.0, 1.0, 1.0, -10.0]);
        assert_eq!(counts.percentile(1.0), -10.0);
        assert_eq!(counts.percentile(20.0), -2.5);
        assert_eq!(counts.percentile(100.0), 1.0);
        assert_eq!(counts.distinct(), 5);
    }

    #[test]
    fn lab_value_state_does_not_grow_with_rows() {
        // Lab values are reported to a fixed precision: ten times the rows, the same state.
        let value = |i: u64| 50.0 + ((i * 7919) % 2_000) as f64 / 10.0;
        let small = counts_of((0..20_000).map(value));
        let large = counts_of((0..200_000).map(value));
        assert_eq!(small.distinct(), 2_000);
        assert_eq!(large.distinct(), small.distinct());
        assert_eq!(large.percentile(99.5), small.percentile(99.5));
        // Values of full precision (a computed ratio) stop growing the state at the cap, and
        // the percentile stays within four significant digits of the exact one.
        let ratio = |i: u64| 1.0 + (i as f64).sqrt() / 1_000.0;
        let rows = 3 * MAX_DISTINCT_LAB_VALUES as u64;
        let counts = counts_of((0..rows).map(ratio));
        assert!(counts.distinct() <= MAX_DISTINCT_LAB_VALUES + 1);
        let mut exact: Vec<f64> = (0..rows).map(ratio).collect();
        exact.sort_by(f64::total_cmp);
        let rank = ((99.5 / 100.0) * rows as f64).ceil() as usize;
        let exact_high = exact[rank - 1];
        assert!((counts.percentile(99.5) - exact_high).abs() <= exact_high * 1e-3);
    }
}
