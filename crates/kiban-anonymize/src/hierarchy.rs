//! Generalization hierarchies: ARX-format import, builders and validation.
//!
//! A hierarchy is a table with one row per original (level-0) value and one column per
//! generalization level, most specific first, e.g. `34;30-34;30-39;*`. Internally every level is
//! dictionary-encoded so that generalizing a value is one array lookup.

use std::collections::BTreeMap;
use std::path::Path;

use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::age::AgeAtEventSpec;
use crate::error::{AnonymizeError, MAX_LISTED_MISSING_VALUES, Result};
use crate::icd10;

/// The label of the fully suppressed / most general value.
pub const SUPPRESSED: &str = "*";

/// A validated generalization hierarchy of one attribute.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    name: String,
    /// Labels per level: `labels[level][code]`.
    labels: Vec<Vec<String>>,
    /// `map[level][leaf]` = code of the leaf's generalization at `level`.
    map: Vec<Vec<u32>>,
    /// Leaf value → leaf code (the level-0 code).
    leaf_index: FxHashMap<String, u32>,
}

impl Hierarchy {
    /// Builds a hierarchy from rows (`value, level1, ..., top`), validating it.
    ///
    /// Rules: at least one row; every row has the same number of levels; every level-0 value
    /// appears once; a label at level i generalizes to exactly one label at level i+1.
    pub fn from_rows(name: &str, rows: Vec<Vec<String>>) -> Result<Self> {
        let invalid = |rule: String| AnonymizeError::InvalidHierarchy {
            hierarchy: name.to_string(),
            rule,
        };
        let Some(first) = rows.first() else {
            return Err(invalid("the hierarchy has no rows".into()));
        };
        let height = first.len();
        if height == 0 {
            return Err(invalid("row 1 is empty".into()));
        }
        let mut labels: Vec<Vec<String>> = vec![Vec::new(); height];
        let mut codes: Vec<FxHashMap<String, u32>> = vec![FxHashMap::default(); height];
        let mut map: Vec<Vec<u32>> = vec![Vec::with_capacity(rows.len()); height];
        // parent[level][code at level] = code at level + 1
        let mut parent: Vec<FxHashMap<u32, u32>> = vec![FxHashMap::default(); height];
        for (index, row) in rows.into_iter().enumerate() {
            if row.len() != height {
                return Err(invalid(format!(
                    "row {} has {} levels where row 1 has {height}",
                    index + 1,
                    row.len()
                )));
            }
            let mut previous: Option<u32> = None;
            for (level, label) in row.into_iter().enumerate() {
                let next_code = labels[level].len() as u32;
                let code = *codes[level].entry(label.clone()).or_insert_with(|| {
                    labels[level].push(label);
                    next_code
                });
                if level == 0 && code != next_code {
                    return Err(invalid(format!(
                        "row {}: the original value appears in an earlier row",
                        index + 1
                    )));
                }
                if let Some(child) = previous {
                    let known = *parent[level - 1].entry(child).or_insert(code);
                    if known != code {
                        return Err(invalid(format!(
                            "row {}: a level-{} value generalizes to two different level-{} values",
                            index + 1,
                            level - 1,
                            level
                        )));
                    }
                }
                map[level].push(code);
                previous = Some(code);
            }
        }
        let leaf_index = codes.swap_remove(0);
        Ok(Hierarchy {
            name: name.to_string(),
            labels,
            map,
            leaf_index,
        })
    }

    /// Reads an ARX-format hierarchy file (`value;level1;...;*`, `separator`-delimited, no header).
    pub fn read_arx(name: &str, path: &Path, separator: u8) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(separator)
            .has_headers(false)
            .flexible(true)
            .from_path(path)
            .map_err(|e| csv_error(path, &e))?;
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(path, &e))?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        Hierarchy::from_rows(name, rows).map_err(|e| match e {
            AnonymizeError::InvalidHierarchy { rule, .. } => AnonymizeError::InvalidHierarchy {
                hierarchy: path.display().to_string(),
                rule,
            },
            other => other,
        })
    }

    /// Builds a hierarchy from a [`HierarchySpec`] over the distinct values of a column.
    pub fn build<'a>(
        name: &str,
        spec: &HierarchySpec,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self> {
        let mut distinct: Vec<&str> = values.into_iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let rows = match spec {
            HierarchySpec::Intervals(spec) => interval_rows(name, spec, &distinct)?,
            HierarchySpec::Dates => date_rows(name, &distinct)?,
            HierarchySpec::Mask(spec) => mask_rows(spec, &distinct),
            HierarchySpec::Grouping(spec) => grouping_rows(name, spec, &distinct)?,
            HierarchySpec::Icd10 => icd10_rows(name, &Icd10Spec::all_levels(), &distinct)?,
            HierarchySpec::Icd10Levels(spec) => icd10_rows(name, spec, &distinct)?,
            HierarchySpec::AgeAtEvent(spec) => crate::age::age_band_rows(name, spec, &distinct)?,
        };
        Hierarchy::from_rows(name, rows)
    }

    /// Name of the hierarchy (normally the column name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of levels, including level 0 (original values) and the top level.
    pub fn height(&self) -> usize {
        self.labels.len()
    }

    /// Number of original (level-0) values.
    pub fn leaf_count(&self) -> usize {
        self.labels[0].len()
    }

    /// Number of distinct labels at `level`.
    pub fn cardinality(&self, level: usize) -> usize {
        self.labels[level].len()
    }

    /// Leaf code of an original value, if the hierarchy contains it.
    pub fn leaf_code(&self, value: &str) -> Option<u32> {
        self.leaf_index.get(value).copied()
    }

    /// Code at `level` of the generalization of leaf `leaf`.
    pub fn generalize(&self, leaf: u32, level: usize) -> u32 {
        self.map[level][leaf as usize]
    }

    /// Leaf → code table of one level.
    pub fn level_map(&self, level: usize) -> &[u32] {
        &self.map[level]
    }

    /// Label of `code` at `level`.
    pub fn label(&self, level: usize, code: u32) -> &str {
        &self.labels[level][code as usize]
    }

    /// Number of leaves under each label of `level` (the size of its subtree), by code.
    pub fn leaves_per_label(&self, level: usize) -> Vec<u32> {
        let mut counts = vec![0u32; self.cardinality(level)];
        for &code in &self.map[level] {
            counts[code as usize] += 1;
        }
        counts
    }

    /// Checks that every value is in the hierarchy; otherwise lists (some of) the missing ones.
    pub fn check_covers<'a>(
        &self,
        column: &str,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        let mut missing: Vec<&str> = values
            .into_iter()
            .filter(|v| !self.leaf_index.contains_key(*v))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        Err(AnonymizeError::ValuesMissingFromHierarchy {
            column: column.to_string(),
            count: missing.len(),
            listed: missing
                .iter()
                .take(MAX_LISTED_MISSING_VALUES)
                .map(|v| v.to_string())
                .collect(),
        })
    }
}

fn csv_error(path: &Path, error: &csv::Error) -> AnonymizeError {
    if let csv::ErrorKind::Io(io) = error.kind() {
        return AnonymizeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(io.kind(), io.to_string()),
        };
    }
    // Report the position only: csv's own messages may quote field contents.
    let message = match error.position() {
        Some(position) => format!("malformed record at line {}", position.line()),
        None => "malformed record".to_string(),
    };
    AnonymizeError::Csv {
        path: path.to_path_buf(),
        message,
    }
}

pub(crate) fn csv_error_of(path: &Path, error: &csv::Error) -> AnonymizeError {
    csv_error(path, error)
}

/// How to build a hierarchy for a column instead of reading an ARX file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum HierarchySpec {
    /// Integer bands of growing width with bottom and top coding (ages, counts).
    Intervals(IntervalSpec),
    /// ISO dates `YYYY-MM-DD` → `YYYY-MM` → `YYYY` → `*`.
    Dates,
    /// Codes masked character by character from the right (postal codes, ICD-10).
    Mask(MaskSpec),
    /// Explicit groupings, level by level.
    Grouping(GroupingSpec),
    /// ICD-10 codes: full code (`E11.9`) → 3-character category (`E11`) → block of the WHO
    /// 2019 tabular list (`E10-E14`) → chapter (`IV E00-E90`) → `*`. A code whose category is
    /// in no block (`C27`, ICD-10-CM's `D49`) is an error.
    Icd10,
    /// ICD-10 codes with a chosen subset of the levels category, block and chapter (e.g.
    /// `["category", "chapter"]`, the hierarchy [`HierarchySpec::Icd10`] built before it had
    /// the block level).
    Icd10Levels(Icd10Spec),
    /// Age at an event derived from a birth-date column and an event date (a column or a
    /// fixed date), top-coded (`90+`) and generalized in nested bands: exact age → 5-year band
    /// → 10-year band → `*` by default. The quasi-identifier it is given for is a new column,
    /// added by [`crate::JobConfig::load_dataset`] (or [`crate::Dataset::derive_age_at_event`]);
    /// built over that column's values.
    AgeAtEvent(AgeAtEventSpec),
}

/// One intermediate level of the ICD-10 hierarchy builder ([`Icd10Spec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Icd10Level {
    /// The 3-character category: `E11.9`, `E119` → `E11`.
    Category,
    /// The block of the WHO 2019 tabular list: `E11` → `E10-E14`.
    Block,
    /// The chapter: `E11` → `IV E00-E90`.
    Chapter,
}

/// ICD-10 codes with a chosen subset of the levels code → category → block → chapter → `*`
/// (the code and `*` are always there). TOML:
/// `icd = { kind = "icd10_levels", levels = ["category", "chapter"] }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Icd10Spec {
    /// Intermediate levels, most specific first, each at most once.
    pub levels: Vec<Icd10Level>,
}

impl Icd10Spec {
    /// All levels: code → category → block → chapter → `*` (what [`HierarchySpec::Icd10`]
    /// builds).
    pub fn all_levels() -> Self {
        Icd10Spec {
            levels: vec![Icd10Level::Category, Icd10Level::Block, Icd10Level::Chapter],
        }
    }
}

fn icd10_rows(name: &str, spec: &Icd10Spec, values: &[&str]) -> Result<Vec<Vec<String>>> {
    let invalid = |rule: String| AnonymizeError::InvalidHierarchy {
        hierarchy: name.to_string(),
        rule,
    };
    if spec.levels.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(invalid(
            "ICD-10 levels must be given most specific first (category, block, chapter), each once"
                .into(),
        ));
    }
    let needs_block = spec.levels.contains(&Icd10Level::Block);
    let mut rows = Vec::with_capacity(values.len());
    // Codes outside every block (or chapter) are counted and the first one located; the values
    // themselves are not named.
    let mut unplaced: Vec<usize> = Vec::new();
    for (index, value) in values.iter().enumerate() {
        if crate::types::is_missing(value) {
            let mut row = vec![value.to_string(); spec.levels.len() + 1];
            row.push(SUPPRESSED.to_string());
            rows.push(row);
            continue;
        }
        let Some(category) = icd10::category(value) else {
            return Err(invalid(format!(
                "distinct value {} is not an ICD-10 code (a letter and two digits, then an optional subcategory)",
                index + 1
            )));
        };
        let placement = if needs_block {
            icd10::place(&category).map(|p| (p.block, p.chapter))
        } else if spec.levels.contains(&Icd10Level::Chapter) {
            icd10::chapter(&category).map(|chapter| (String::new(), chapter))
        } else {
            Some((String::new(), String::new()))
        };
        let Some((block, chapter)) = placement else {
            unplaced.push(index);
            continue;
        };
        let mut row = vec![value.to_string()];
        row.extend(spec.levels.iter().map(|level| match level {
            Icd10Level::Category => category.clone(),
            Icd10Level::Block => block.clone(),
            Icd10Level::Chapter => chapter.clone(),
        }));
        row.push(SUPPRESSED.to_string());
        rows.push(row);
    }
    if let Some(first) = unplaced.first() {
        return Err(invalid(format!(
            "{} distinct value(s), the first being distinct value {}, have a 3-character category in no {} of ICD-10 (WHO 2019)",
            unplaced.len(),
            first + 1,
            if needs_block { "block" } else { "chapter" }
        )));
    }
    Ok(rows)
}

/// Integer bands: level i groups values into bands of `widths[i-1]`, anchored at `bottom`.
///
/// Values below `bottom` become `<bottom`, values at or above `top` become `top+` (e.g. `90+`).
/// Each width must be a multiple of the previous one so that bands nest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IntervalSpec {
    /// Lowest value not bottom-coded.
    pub bottom: i64,
    /// Lowest top-coded value.
    pub top: i64,
    /// Band widths, one per level, each a multiple of the previous.
    pub widths: Vec<i64>,
}

/// Masking from the right: optionally cut at a separator first (`E11.9` → `E11`), then replace
/// one more trailing character by `*` per level (`E11` → `E1*` → `E**`), then `*`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MaskSpec {
    /// Cut everything from this character on as the first level (`.` for ICD-10).
    #[serde(default)]
    pub cut_at: Option<char>,
    /// Number of masking levels (characters masked one at a time).
    pub masked_characters: usize,
}

/// Explicit groupings: `levels[0]` maps groups of original values, `levels[1]` groups of those
/// groups, and so on; a top level `*` is appended.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GroupingSpec {
    /// Per level: group label → member labels of the previous level.
    pub levels: Vec<BTreeMap<String, Vec<String>>>,
}

fn interval_rows(name: &str, spec: &IntervalSpec, values: &[&str]) -> Result<Vec<Vec<String>>> {
    let invalid = |rule: String| AnonymizeError::InvalidHierarchy {
        hierarchy: name.to_string(),
        rule,
    };
    if spec.top <= spec.bottom {
        return Err(invalid("interval top must be above bottom".into()));
    }
    for (i, &w) in spec.widths.iter().enumerate() {
        if w <= 0 {
            return Err(invalid(format!("interval width {} is not positive", i + 1)));
        }
        if i > 0 && w % spec.widths[i - 1] != 0 {
            return Err(invalid(format!(
                "interval width {} is not a multiple of width {}",
                i + 1,
                i
            )));
        }
    }
    let levels = spec.widths.len();
    let mut rows = Vec::with_capacity(values.len());
    for (line, value) in values.iter().enumerate() {
        // Missing values stay their own value up to the top level.
        if crate::types::is_missing(value) {
            let mut row = vec![value.to_string(); levels + 1];
            row.push(SUPPRESSED.to_string());
            rows.push(row);
            continue;
        }
        let number: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| {
                invalid(format!(
                    "distinct value {} of the column is not a number",
                    line + 1
                ))
            })?;
        let mut row = vec![value.to_string()];
        for &width in &spec.widths {
            row.push(if number < spec.bottom as f64 {
                format!("<{}", spec.bottom)
            } else if number >= spec.top as f64 {
                format!("{}+", spec.top)
            } else {
                // Floor of the offset: decimals fall in the band of their integer part.
                let offset = (number - spec.bottom as f64).floor() as i64;
                let low = spec.bottom + offset.div_euclid(width) * width;
                let high = (low + width - 1).min(spec.top - 1);
                format!("{low}-{high}")
            });
        }
        row.push(SUPPRESSED.to_string());
        rows.push(row);
    }
    Ok(rows)
}

fn date_rows(name: &str, values: &[&str]) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        if crate::types::is_missing(value) {
            rows.push(vec![
                value.to_string(),
                value.to_string(),
                value.to_string(),
                SUPPRESSED.to_string(),
            ]);
            continue;
        }
        if !crate::types::AttributeType::Date.accepts(value) {
            return Err(AnonymizeError::InvalidHierarchy {
                hierarchy: name.to_string(),
                rule: format!(
                    "distinct value {} is not a date of the form YYYY-MM-DD[THH:MM:SS]",
                    index + 1
                ),
            });
        }
        rows.push(vec![
            value.to_string(),
            value[..7].to_string(),
            value[..4].to_string(),
            SUPPRESSED.to_string(),
        ]);
    }
    Ok(rows)
}

fn mask_rows(spec: &MaskSpec, values: &[&str]) -> Vec<Vec<String>> {
    values
        .iter()
        .map(|value| {
            let mut row = vec![value.to_string()];
            let base: &str = match spec.cut_at {
                Some(separator) => {
                    let cut = value.split(separator).next().unwrap_or(value);
                    row.push(cut.to_string());
                    cut
                }
                None => value,
            };
            let chars: Vec<char> = base.chars().collect();
            for masked in 1..=spec.masked_characters {
                let kept = chars.len().saturating_sub(masked);
                let mut label: String = chars[..kept].iter().collect();
                label.extend(std::iter::repeat_n('*', chars.len() - kept));
                row.push(label);
            }
            row.push(SUPPRESSED.to_string());
            row
        })
        .collect()
}

fn grouping_rows(name: &str, spec: &GroupingSpec, values: &[&str]) -> Result<Vec<Vec<String>>> {
    // label at level i → group at level i+1
    let mut parents: Vec<FxHashMap<&str, &str>> = Vec::with_capacity(spec.levels.len());
    for (level, groups) in spec.levels.iter().enumerate() {
        let mut parent = FxHashMap::default();
        for (group, members) in groups {
            for member in members {
                if parent.insert(member.as_str(), group.as_str()).is_some() {
                    return Err(AnonymizeError::InvalidHierarchy {
                        hierarchy: name.to_string(),
                        rule: format!("grouping level {}: a member is in two groups", level + 1),
                    });
                }
            }
        }
        parents.push(parent);
    }
    let mut rows = Vec::with_capacity(values.len());
    let mut missing: Vec<String> = Vec::new();
    for value in values {
        let mut row = vec![value.to_string()];
        let mut current: &str = value;
        let mut complete = true;
        for parent in &parents {
            match parent.get(current) {
                Some(group) => {
                    row.push(group.to_string());
                    current = group;
                }
                None => {
                    missing.push(current.to_string());
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            row.push(SUPPRESSED.to_string());
            rows.push(row);
        }
    }
    if !missing.is_empty() {
        missing.sort_unstable();
        missing.dedup();
        return Err(AnonymizeError::ValuesMissingFromHierarchy {
            column: name.to_string(),
            count: missing.len(),
            listed: missing
                .into_iter()
                .take(MAX_LISTED_MISSING_VALUES)
                .collect(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split(';').map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn imports_and_generalizes() {
        let h = Hierarchy::from_rows("edu", rows("a;A;*\nb;A;*\nc;C;*")).unwrap();
        assert_eq!(h.height(), 3);
        assert_eq!(h.leaf_count(), 3);
        assert_eq!(h.cardinality(1), 2);
        let c = h.leaf_code("c").unwrap();
        assert_eq!(h.label(1, h.generalize(c, 1)), "C");
        assert_eq!(h.label(2, h.generalize(c, 2)), "*");
        assert_eq!(h.leaves_per_label(1), vec![2, 1]);
    }

    #[test]
    fn rejects_ragged_duplicate_and_inconsistent() {
        let e = Hierarchy::from_rows("x", rows("a;A;*\nb;*")).unwrap_err();
        assert!(e.to_string().contains("row 2 has 2 levels"), "{e}");
        let e = Hierarchy::from_rows("x", rows("a;A;*\na;A;*")).unwrap_err();
        assert!(e.to_string().contains("earlier row"), "{e}");
        let e = Hierarchy::from_rows("x", rows("a;A;X\nb;A;Y")).unwrap_err();
        assert!(e.to_string().contains("two different level-2"), "{e}");
        assert!(Hierarchy::from_rows("x", Vec::new()).is_err());
    }

    #[test]
    fn missing_values_are_listed() {
        let h = Hierarchy::from_rows("sex", rows("Male;*\nFemale;*")).unwrap();
        let e = h.check_covers("sex", ["Male", "X", "Y", "X"]).unwrap_err();
        match e {
            AnonymizeError::ValuesMissingFromHierarchy { count, listed, .. } => {
                assert_eq!(count, 2);
                assert_eq!(listed, vec!["X".to_string(), "Y".to_string()]);
            }
            other => panic!("unexpected {other}"),
        }
        let many: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
        let e = h
            .check_covers("sex", many.iter().map(String::as_str))
            .unwrap_err();
        match e {
            AnonymizeError::ValuesMissingFromHierarchy { count, listed, .. } => {
                assert_eq!(count, 50);
                assert_eq!(listed.len(), MAX_LISTED_MISSING_VALUES);
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn interval_builder_bands_and_codes_extremes() {
        let spec = HierarchySpec::Intervals(IntervalSpec {
            bottom: 20,
            top: 90,
            widths: vec![5, 10],
        });
        let h = Hierarchy::build("age", &spec, ["17", "23", "34", "89", "95"]).unwrap();
        assert_eq!(h.height(), 4);
        let label = |v: &str, l: usize| h.label(l, h.generalize(h.leaf_code(v).unwrap(), l));
        assert_eq!(label("17", 1), "<20");
        assert_eq!(label("23", 1), "20-24");
        assert_eq!(label("34", 2), "30-39");
        assert_eq!(label("89", 1), "85-89");
        assert_eq!(label("95", 2), "90+");
        assert_eq!(label("95", 3), "*");
        let bad = HierarchySpec::Intervals(IntervalSpec {
            bottom: 0,
            top: 90,
            widths: vec![5, 7],
        });
        assert!(Hierarchy::build("age", &bad, ["1"]).is_err());
        assert!(Hierarchy::build("age", &spec, ["x"]).is_err());
    }

    #[test]
    fn date_builder() {
        let h = Hierarchy::build("d", &HierarchySpec::Dates, ["2020-02-29", "2020-03-01"]).unwrap();
        let leaf = h.leaf_code("2020-02-29").unwrap();
        assert_eq!(h.label(1, h.generalize(leaf, 1)), "2020-02");
        assert_eq!(h.label(2, h.generalize(leaf, 2)), "2020");
        assert_eq!(h.cardinality(2), 1);
        assert!(Hierarchy::build("d", &HierarchySpec::Dates, ["2021-02-29"]).is_err());
    }

    #[test]
    fn icd10_builder_rolls_codes_up_to_categories_blocks_and_chapters() {
        let codes = [
            "E11.9", "E119", "e11", "E10", "E14.9", "E15", "I10", "C50.9", "C97", "D48.7", "U07.1",
            "U82", "T14", "T79.0", "Y09", "X85", "?",
        ];
        let h = Hierarchy::build("icd", &HierarchySpec::Icd10, codes).unwrap();
        assert_eq!(h.height(), 5);
        let label = |value: &str, level: usize| {
            h.label(level, h.generalize(h.leaf_code(value).unwrap(), level))
                .to_string()
        };
        assert_eq!(label("E11.9", 1), "E11");
        assert_eq!(label("E119", 1), "E11");
        assert_eq!(label("e11", 1), "E11");
        assert_eq!(label("E11.9", 2), "E10-E14");
        assert_eq!(label("E119", 2), "E10-E14");
        assert_eq!(label("E11.9", 3), "IV E00-E90");
        // Block boundaries: E10 and E14 open and close "E10-E14", E15 starts the next block.
        assert_eq!(label("E10", 2), "E10-E14");
        assert_eq!(label("E14.9", 2), "E10-E14");
        assert_eq!(label("E15", 2), "E15-E16");
        assert_eq!(label("E15", 3), "IV E00-E90");
        assert_eq!(label("I10", 2), "I10-I15");
        assert_eq!(label("I10", 3), "IX I00-I99");
        assert_eq!(label("C50.9", 2), "C50-C50");
        assert_eq!(label("C97", 2), "C97-C97");
        assert_eq!(label("D48.7", 2), "D37-D48");
        assert_eq!(label("D48.7", 3), "II C00-D48");
        assert_eq!(label("U07.1", 2), "U00-U49");
        assert_eq!(label("U82", 2), "U82-U85");
        assert_eq!(label("U07.1", 3), "XXII U00-U85");
        assert_eq!(label("T14", 2), "T08-T14");
        assert_eq!(label("T79.0", 2), "T79-T79");
        assert_eq!(label("T14", 3), "XIX S00-T98");
        assert_eq!(label("X85", 2), "X85-Y09");
        assert_eq!(label("Y09", 2), "X85-Y09");
        assert_eq!(label("Y09", 3), "XX V01-Y98");
        assert_eq!(label("?", 3), "?");
        assert_eq!(label("I10", 4), "*");
        // The five codes of block E10-E14 (E11.9, E119, e11, E10, E14.9) share one label.
        assert_eq!(
            h.leaves_per_label(2)[h.generalize(h.leaf_code("E10").unwrap(), 2) as usize],
            5
        );
        let err = Hierarchy::build("icd", &HierarchySpec::Icd10, ["E11", "9XX"]).unwrap_err();
        assert!(err.to_string().contains("distinct value 1"), "{err}");
        assert!(
            !err.to_string().contains("9XX"),
            "the value is not named: {err}"
        );
    }

    #[test]
    fn icd10_builder_places_the_diagnoses_of_kiban_synth() {
        // The diagnoses `kiban synth` generates (crates/kiban-synth/src/codes.rs).
        let codes = [
            "E11.9", "E11.2", "I10", "E78.5", "E79.0", "K05.3", "K02.9", "C50.9", "C34.9", "I50.9",
            "B18.1", "B18.2", "B24", "K71.9", "L27.0", "I42.7", "J06.9", "J20.9", "A09", "M54.5",
            "N30.0", "H10.9", "J30.4", "L30.9", "G12.2", "E75.2", "G10", "E74.0", "D47.7",
        ];
        let h = Hierarchy::build("icd", &HierarchySpec::Icd10, codes).unwrap();
        let block = |v: &str| {
            h.label(2, h.generalize(h.leaf_code(v).unwrap(), 2))
                .to_string()
        };
        assert_eq!(block("E78.5"), "E70-E90");
        assert_eq!(block("B24"), "B20-B24");
        assert_eq!(block("B18.1"), "B15-B19");
        assert_eq!(block("D47.7"), "D37-D48");
        assert_eq!(block("G12.2"), "G10-G14");
        assert_eq!(block("A09"), "A00-A09");
        assert_eq!(block("M54.5"), "M50-M54");
        assert_eq!(h.cardinality(3), 11);
    }

    #[test]
    fn icd10_code_outside_every_block_is_a_typed_error() {
        // C27-C29 lie between blocks C15-C26 and C30-C39; D49 is an ICD-10-CM category; U99 is
        // past the last block of chapter XXII.
        for gap in ["C27.1", "D49", "U99", "A90"] {
            let err =
                Hierarchy::build("diagnosis", &HierarchySpec::Icd10, ["E11", gap]).unwrap_err();
            match &err {
                AnonymizeError::InvalidHierarchy { hierarchy, rule } => {
                    assert_eq!(hierarchy, "diagnosis");
                    assert!(rule.contains("no block of ICD-10 (WHO 2019)"), "{rule}");
                    assert!(rule.starts_with("1 distinct value(s)"), "{rule}");
                }
                other => panic!("unexpected {other}"),
            }
            assert!(
                !err.to_string().contains(gap),
                "the value is not named: {err}"
            );
        }
    }

    #[test]
    fn icd10_levels_choose_the_intermediate_levels() {
        let spec: HierarchySpec =
            serde_json::from_str(r#"{"kind":"icd10_levels","levels":["category","chapter"]}"#)
                .unwrap();
        let h = Hierarchy::build("icd", &spec, ["E11.9", "C27", "I10"]).unwrap();
        assert_eq!(h.height(), 4);
        let leaf = h.leaf_code("C27").unwrap();
        assert_eq!(h.label(1, h.generalize(leaf, 1)), "C27");
        assert_eq!(h.label(2, h.generalize(leaf, 2)), "II C00-D48");
        let blocks = HierarchySpec::Icd10Levels(Icd10Spec {
            levels: vec![Icd10Level::Block],
        });
        let h = Hierarchy::build("icd", &blocks, ["E11.9", "E13"]).unwrap();
        assert_eq!(h.height(), 3);
        assert_eq!(h.cardinality(1), 1);
        let default: HierarchySpec = serde_json::from_str(r#"{"kind":"icd10"}"#).unwrap();
        assert_eq!(default, HierarchySpec::Icd10);
        let backwards = HierarchySpec::Icd10Levels(Icd10Spec {
            levels: vec![Icd10Level::Chapter, Icd10Level::Category],
        });
        let err = Hierarchy::build("icd", &backwards, ["E11"]).unwrap_err();
        assert!(err.to_string().contains("most specific first"), "{err}");
        let err = Hierarchy::build("icd", &spec, ["D49"]).unwrap_err();
        assert!(err.to_string().contains("no chapter"), "{err}");
    }

    #[test]
    fn mask_builder_icd10_and_postal() {
        let spec = HierarchySpec::Mask(MaskSpec {
            cut_at: Some('.'),
            masked_characters: 2,
        });
        let h = Hierarchy::build("icd", &spec, ["E11.9", "E11.2", "E10", "I10"]).unwrap();
        let label = |v: &str, l: usize| h.label(l, h.generalize(h.leaf_code(v).unwrap(), l));
        assert_eq!(label("E11.9", 1), "E11");
        assert_eq!(label("E11.9", 2), "E1*");
        assert_eq!(label("E10", 2), "E1*");
        assert_eq!(label("E11.9", 3), "E**");
        assert_eq!(label("I10", 4), "*");
        let postal = HierarchySpec::Mask(MaskSpec {
            cut_at: None,
            masked_characters: 3,
        });
        let h = Hierarchy::build("zip", &postal, ["1000001", "1000014"]).unwrap();
        let leaf = h.leaf_code("1000014").unwrap();
        assert_eq!(h.label(2, h.generalize(leaf, 2)), "10000**");
        assert_eq!(h.cardinality(2), 1);
    }

    #[test]
    fn grouping_builder() {
        let spec: HierarchySpec = serde_json::from_str(
            r#"{"kind":"grouping","levels":[{"Gov":["State-gov","Local-gov"],"Private":["Private"]},{"All":["Gov","Private"]}]}"#,
        )
        .unwrap();
        let h = Hierarchy::build("wc", &spec, ["Private", "State-gov"]).unwrap();
        let leaf = h.leaf_code("State-gov").unwrap();
        assert_eq!(h.label(1, h.generalize(leaf, 1)), "Gov");
        assert_eq!(h.label(2, h.generalize(leaf, 2)), "All");
        let e = Hierarchy::build("wc", &spec, ["Never-worked"]).unwrap_err();
        assert!(matches!(
            e,
            AnonymizeError::ValuesMissingFromHierarchy { count: 1, .. }
        ));
    }
}
