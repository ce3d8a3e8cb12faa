//! The conditions table of an anonymized release made to agree with the k^m rule of the
//! person table's diagnosis set: the `person` pseudonym joins the two, so a diagnosis the
//! rule generalized or suppressed in `persons.csv` must not be readable from conditions.
//!
//! Each condition row of a person follows the person's [`PersonDiagnosisPlan`], by the
//! row's 3-character ICD-10 category:
//! - released as its WHO block or chapter: `icd10` holds that label; the MEDIS code and the
//!   disease name (which name the finer code) are removed from the row;
//! - suppressed for the person, or not an item of the person's set (a category only ever
//!   suspected, or left out of the person table as rare): the row is removed;
//! - kept as the category: the row keeps its code as the rare-value rule releases it (a code
//!   that rule removes stays removed; the person table holds a category for a person only
//!   when one of the person's codes in it is kept, so both files show the same items); when
//!   the rows removed here leave a code under the category held by fewer persons than the
//!   rare-value threshold, the whole category is released bare for everyone (one label, so
//!   it singles nobody out);
//! - of a person withheld from the person table (its row suppressed by k-anonymity): removed.
//!
//! Rows without an ICD-10 code carry no diagnosis item: their MEDIS code and name are removed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use kiban_model::ClinicalTable;
use serde::{Deserialize, Serialize};

use crate::DeidentifyError;
use crate::diagnosis_sets::DiagnosisRecoding;
use crate::io::{for_each_projected_batch, table_error};
use crate::keys::{PersonMap, ProjectKey};
use crate::rare::{CodePlan, icd10_category};

/// What the diagnosis-set rule did to the conditions table (counts and ICD-10 rules only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionDiagnosisReport {
    /// The rule applied.
    pub rule: String,
    /// Rows whose category is released as its WHO block or chapter (MEDIS code and name
    /// removed).
    pub rows_generalized: u64,
    /// Rows removed: their category was suppressed for the person by the k^m rule.
    pub rows_suppressed: u64,
    /// Rows removed: their category is not in the person's diagnosis set (only ever
    /// suspected, or left out of the person table as rare).
    pub rows_outside_diagnosis_set: u64,
    /// Rows removed: the person's row was suppressed from the person table.
    pub rows_of_withheld_persons: u64,
    /// Rows kept without any ICD-10 code: MEDIS code and name removed.
    pub rows_without_category: u64,
    /// Rows released as the bare category of a collapsed category; MEDIS code and name
    /// removed.
    pub rows_as_category: u64,
    /// Rows whose code the rare-value rule removed (as without the k^m rule); MEDIS code and
    /// name removed too.
    pub rows_code_removed: u64,
    /// Categories released bare for every person, since a code under them would be held by
    /// fewer persons than the rare-value threshold once the rows above are removed.
    pub categories_collapsed: Vec<String>,
    /// Rows whose MEDIS code was removed as held by too few persons after the rows above
    /// were removed.
    pub medis_codes_removed: u64,
    /// Death rows whose `cause_icd10` is released as the person's diagnosis item for its
    /// category (the category, or its block or chapter, as in `persons.csv`).
    #[serde(default)]
    pub death_causes_as_item: u64,
    /// Death rows whose `cause_icd10` is removed: its category is not an item the person's
    /// diagnosis set releases.
    #[serde(default)]
    pub death_causes_removed: u64,
}

/// Why a condition row is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    PersonWithheld,
    Suppressed,
    OutsideSet,
}

/// What happens to one condition row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConditionFate {
    Removed(Removal),
    Kept {
        /// The released `icd10`.
        icd10: Option<String>,
        /// Whether the MEDIS code and the name go (they would name a finer code).
        detail_removed: bool,
        /// Counted as generalized, as bare category or without category.
        kind: KeptKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeptKind {
    AsReleased,
    Generalized,
    AsCategory,
    CodeRemoved,
    WithoutCategory,
}

/// The decisions over the conditions table, made in a planning pass over the extraction.
pub(crate) struct ConditionDiagnosisPlan {
    recoding: DiagnosisRecoding,
    /// Categories released bare for everyone.
    collapsed: BTreeSet<String>,
    /// MEDIS codes held by too few persons among the rows keeping their detail.
    medis_removed: HashSet<String>,
}

impl ConditionDiagnosisPlan {
    /// Plans the conditions table at `path` (the extraction's) under `recoding`, with the
    /// rare-value plans of its `icd10` and `medis_code` columns.
    pub fn new(
        path: &Path,
        key: &ProjectKey,
        persons: &PersonMap,
        recoding: DiagnosisRecoding,
        icd10_plan: Option<&CodePlan>,
        medis_plan: Option<&CodePlan>,
        min_persons: usize,
    ) -> Result<Self, DeidentifyError> {
        let table = ClinicalTable::Conditions;
        let mut pseudonymizer = key.pseudonymizer()?;
        let mut person_index: HashMap<String, u32> = HashMap::new();
        // Persons per released code (under a kept category), and per (MEDIS code, category).
        let mut labels: HashMap<String, HashSet<u32>> = HashMap::new();
        let mut medis: HashMap<String, HashMap<String, HashSet<u32>>> = HashMap::new();
        let mut plan = Self {
            recoding,
            collapsed: BTreeSet::new(),
            medis_removed: HashSet::new(),
        };
        for_each_projected_batch(table, path, &["icd10", "medis_code"], |batch| {
            let providers = text(batch, path, "provider_id")?;
            let patient_keys = text(batch, path, "patient_key")?;
            let codes = text(batch, path, "icd10")?;
            let medis_codes = text(batch, path, "medis_code")?;
            for row in 0..batch.num_rows() {
                let person = persons.person(providers.value(row), patient_keys.value(row));
                let pseudonym = pseudonymizer.person(&person).pseudonym.clone();
                let source = codes.is_valid(row).then(|| codes.value(row));
                let fate = plan.fate(&pseudonym, source, icd10_plan);
                let ConditionFate::Kept {
                    icd10: Some(released),
                    detail_removed: false,
                    ..
                } = fate
                else {
                    continue;
                };
                let next = person_index.len() as u32;
                let index = *person_index.entry(pseudonym).or_insert(next);
                let category = icd10_category(&released);
                labels.entry(released).or_default().insert(index);
                let medis_code = medis_codes
                    .is_valid(row)
                    .then(|| recoded(medis_plan, medis_codes.value(row)))
                    .flatten();
                if let Some(code) = medis_code {
                    medis
                        .entry(code)
                        .or_default()
                        .entry(category)
                        .or_default()
                        .insert(index);
                }
            }
            Ok(())
        })?;
        plan.collapsed = labels
            .into_iter()
            .filter(|(_, holders)| holders.len() < min_persons)
            .map(|(code, _)| icd10_category(&code))
            .collect();
        for (code, by_category) in medis {
            let holders: HashSet<u32> = by_category
                .into_iter()
                .filter(|(category, _)| !plan.collapsed.contains(category))
                .flat_map(|(_, holders)| holders)
                .collect();
            if holders.len() < min_persons {
                plan.medis_removed.insert(code);
            }
        }
        Ok(plan)
    }

    /// Whether a MEDIS code (as the rare-value rule releases it) must be removed.
    pub fn medis_removed(&self, code: &str) -> bool {
        self.medis_removed.contains(code)
    }

    /// What happens to a row of `person` whose source ICD-10 code is `source`.
    pub fn fate(
        &self,
        person: &str,
        source: Option<&str>,
        icd10_plan: Option<&CodePlan>,
    ) -> ConditionFate {
        let Some(plan) = self.recoding.person(person) else {
            return ConditionFate::Removed(Removal::PersonWithheld);
        };
        let category = source.map(icd10_category).unwrap_or_default();
        let Some(source) = source.filter(|_| !category.is_empty()) else {
            return ConditionFate::Kept {
                icd10: None,
                detail_removed: true,
                kind: KeptKind::WithoutCategory,
            };
        };
        let removed_as_rare = || ConditionFate::Kept {
            icd10: None,
            detail_removed: true,
            kind: KeptKind::CodeRemoved,
        };
        match plan.released(&category) {
            // A row whose code the rare-value rule removes says nothing of the category.
            None | Some(None) if recoded(icd10_plan, source).is_none() => removed_as_rare(),
            None => ConditionFate::Removed(Removal::OutsideSet),
            Some(None) => ConditionFate::Removed(Removal::Suppressed),
            Some(Some(node)) if node != category => ConditionFate::Kept {
                icd10: Some(node.to_owned()),
                detail_removed: true,
                kind: KeptKind::Generalized,
            },
            // Every code of the category is released bare: no label under it is rare.
            Some(Some(_)) if self.collapsed.contains(&category) => ConditionFate::Kept {
                icd10: Some(category),
                detail_removed: true,
                kind: KeptKind::AsCategory,
            },
            Some(Some(_)) => match recoded(icd10_plan, source) {
                Some(code) => ConditionFate::Kept {
                    icd10: Some(code),
                    detail_removed: false,
                    kind: KeptKind::AsReleased,
                },
                // Removed by the rare-value rule, as without the k^m rule; the person's set
                // holds the category only through another of the person's codes.
                None => removed_as_rare(),
            },
        }
    }
}

impl ConditionDiagnosisReport {
    /// Counts one row's fate.
    pub(crate) fn count(&mut self, fate: &ConditionFate) {
        match fate {
            ConditionFate::Removed(Removal::PersonWithheld) => self.rows_of_withheld_persons += 1,
            ConditionFate::Removed(Removal::Suppressed) => self.rows_suppressed += 1,
            ConditionFate::Removed(Removal::OutsideSet) => self.rows_outside_diagnosis_set += 1,
            ConditionFate::Kept { kind, .. } => match kind {
                KeptKind::AsReleased => {}
                KeptKind::Generalized => self.rows_generalized += 1,
                KeptKind::AsCategory => self.rows_as_category += 1,
                KeptKind::CodeRemoved => self.rows_code_removed += 1,
                KeptKind::WithoutCategory => self.rows_without_category += 1,
            },
        }
    }

    /// The report before any row is counted.
    pub(crate) fn new(plan: &ConditionDiagnosisPlan) -> Self {
        Self {
            rule: "conditions follow the person table's diagnosis plan per person: a category \
                   released as its WHO block or chapter is released so in `icd10` (MEDIS code \
                   and name removed); rows of a category suppressed for the person, of a \
                   category outside the person's set (only suspected, or rare) and of persons \
                   withheld from the person table are removed; a category with a code that \
                   would fall below the rare-value threshold is released bare for everyone. \
                   deaths.cause_icd10 is released only as the item the person's set releases \
                   for its category (category, block or chapter), else removed"
                .to_owned(),
            categories_collapsed: plan.collapsed.iter().cloned().collect(),
            ..Self::default()
        }
    }
}

/// A code as the rare-value plan releases it (`None`: removed, or no plan).
fn recoded(plan: Option<&CodePlan>, code: &str) -> Option<String> {
    match plan {
        Some(plan) => plan.recode.get(code).cloned().flatten(),
        None => Some(code.to_owned()),
    }
}

fn text<'a>(
    batch: &'a arrow_array::RecordBatch,
    path: &Path,
    name: &str,
) -> Result<&'a arrow_array::StringArray, DeidentifyError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| {
            table_error(
                ClinicalTable::Conditions.name(),
                path,
                format!("no text column `{name}`"),
            )
        })
}
