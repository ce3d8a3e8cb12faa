//! The k^m rule over each person's combined item set: the diagnosis items of the person
//! table (as `persons.csv` and the conditions table release them) together with the person's
//! procedures, allergies and infection-marker results. An attacker who knows up to `m` of
//! these items of a person, of any kinds together, must find at least `k` persons.
//!
//! Each kind keeps its own code space: its items carry a kind prefix, so codes of different
//! systems never collide (a diagnosis item is the bare ICD-10 label of `persons.csv`):
//! - `procedure:<code>` (receipt procedure code as the rare-value rule releases it); no
//!   hierarchy can be derived honestly from the code, so the only step is suppression;
//! - `allergy:<category>:<code>` → `allergy:<category>` (the AllergyIntolerance category:
//!   medication, food, environment, biologic), and `allergy:<category>` for a row whose code
//!   is absent or removed by the rare-value rule;
//! - `infection:<code>:<result>` → `infection:<code>` (the JLAC10 marker, its result
//!   withheld), and `infection:<code>` for a row without a result.
//!
//! The diagnosis items are fixed: `persons.csv` already releases them, and the person
//! table's own k^m rule made them k^m-anonymous among the released persons, so every rare
//! combination holds an item of another kind, and the rule ([`crate::DiagnosisSetOptions`],
//! the same Apriori generalization and local suppression as the diagnosis set) repairs it
//! through those items only. The release then follows each person's plan: a suppressed
//! item's rows are removed for that person, a generalized item's rows lose the finer column
//! (the allergy's code and code system, the infection's result). A code left held by fewer
//! persons than the rare-value threshold is removed with its rows, for every holder (removing
//! an item from all its holders cannot make a combination rare).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use kiban_model::ClinicalTable;
use serde::{Deserialize, Serialize};

use crate::DeidentifyError;
use crate::diagnosis_sets::{
    DiagnosisRecoding, DiagnosisSetOptions, DiagnosisSetPlan, PersonDiagnosisPlan,
};
use crate::io::{for_each_projected_batch, table_error, table_file};
use crate::keys::{PersonMap, ProjectKey};
use crate::rare::CodePlan;

const PROCEDURE: &str = "procedure";
const ALLERGY: &str = "allergy";
const INFECTION: &str = "infection";
/// Allergy category of a row whose category is empty.
const NO_CATEGORY: &str = "-";

/// The tables whose items join the diagnosis items, with the column that qualifies the code
/// (the allergy's category, the infection marker's result).
pub(crate) const ITEM_TABLES: [(ClinicalTable, Option<&str>); 3] = [
    (ClinicalTable::Procedures, None),
    (ClinicalTable::Allergies, Some("category")),
    (ClinicalTable::Infections, Some("result")),
];

/// What the k^m rule over the combined item set did (rules, code-level generalizations and
/// counts; never a person or a row value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClinicalItemSetReport {
    /// The rule applied.
    pub rule: String,
    /// k: the least number of persons holding any released combination.
    pub k: usize,
    /// m: the largest combination the attacker is assumed to know.
    pub m: usize,
    /// Persons released (each with a plan).
    pub persons: u64,
    /// Distinct procedure, allergy and infection items in the input (diagnosis items, which
    /// the rule keeps as `persons.csv` releases them, not counted).
    pub distinct_items: u64,
    /// Occurrences (person, item) of those items.
    pub item_occurrences: u64,
    /// Items released as their coarser item, as `item → coarser` (code-level rules).
    pub generalized: Vec<String>,
    /// Item occurrences removed by local suppression.
    pub items_suppressed: u64,
    /// Persons who lost at least one item.
    pub persons_with_suppression: u64,
    /// Codes removed with their rows, for every holder, as held by fewer persons than the
    /// rare-value threshold once suppressed items were removed.
    pub codes_below_min_persons: u64,
    /// Mean normalized certainty penalty over the item occurrences (0: nothing changed, 1:
    /// everything removed).
    pub loss: f64,
    /// What the release did per table (`procedures`, `allergies`, `infections`).
    pub tables: BTreeMap<String, ClinicalItemTableReport>,
}

/// What the combined item set's rule did to one table's rows (counts only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicalItemTableReport {
    /// Rows released with their coarser item: the allergy's `code` and `code_system`, or the
    /// infection's `result`, removed.
    pub rows_generalized: u64,
    /// Rows removed: their item was suppressed for the person.
    pub rows_suppressed: u64,
    /// Rows removed: their code fell below the rare-value threshold.
    pub rows_code_below_min_persons: u64,
}

/// The item a row of `table` stands for, from its code as the rare-value rule releases it
/// and its qualifier (the allergy's category, the infection's result); `None`: the row
/// carries no item (no code, except for allergies whose category is the item).
pub(crate) fn row_item(
    table: ClinicalTable,
    code: Option<&str>,
    qualifier: Option<&str>,
) -> Option<String> {
    let code = code.map(str::trim).filter(|c| !c.is_empty());
    let qualifier = qualifier.map(str::trim).filter(|q| !q.is_empty());
    match table {
        ClinicalTable::Procedures => code.map(|c| format!("{PROCEDURE}:{c}")),
        ClinicalTable::Allergies => {
            let category = qualifier.unwrap_or(NO_CATEGORY);
            Some(match code {
                Some(code) => format!("{ALLERGY}:{category}:{code}"),
                None => format!("{ALLERGY}:{category}"),
            })
        }
        ClinicalTable::Infections => code.map(|code| match qualifier {
            Some(result) => format!("{INFECTION}:{code}:{result}"),
            None => format!("{INFECTION}:{code}"),
        }),
        _ => None,
    }
}

/// The kind prefix of the items of an item table (`procedure`, `allergy`, `infection`;
/// empty for other tables).
pub(crate) fn item_kind_of(table: ClinicalTable) -> &'static str {
    match table {
        ClinicalTable::Procedures => PROCEDURE,
        ClinicalTable::Allergies => ALLERGY,
        ClinicalTable::Infections => INFECTION,
        _ => "",
    }
}

/// The coarser item of a kind-prefixed item: `Some(Some(coarser))`, `Some(None)` when the
/// item has none (only suppression), `None` when the label is not kind-prefixed (a
/// diagnosis item).
pub(crate) fn coarser_item(label: &str) -> Option<Option<String>> {
    let (kind, rest) = label.split_once(':')?;
    match kind {
        PROCEDURE => Some(None),
        // `<category>:<code>` → `<category>`; a bare category has nothing above it.
        ALLERGY | INFECTION => Some(
            rest.split_once(':')
                .map(|(first, _)| format!("{kind}:{first}")),
        ),
        _ => None,
    }
}

/// The table and released code of a kind-prefixed item (`None` for a bare allergy
/// category, which releases no code).
fn item_code(label: &str) -> Option<(ClinicalTable, &str)> {
    let (kind, rest) = label.split_once(':')?;
    match kind {
        PROCEDURE => Some((ClinicalTable::Procedures, rest)),
        ALLERGY => rest
            .split_once(':')
            .map(|(_, code)| (ClinicalTable::Allergies, code)),
        INFECTION => Some((
            ClinicalTable::Infections,
            rest.split_once(':').map_or(rest, |(code, _)| code),
        )),
        _ => None,
    }
}

/// What happens to one row of an item table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemFate {
    /// Released as it is (also a row carrying no item).
    Kept,
    /// Released as its coarser item: the finer column removed.
    Generalized,
    /// Removed: the item was suppressed for the person.
    Suppressed,
    /// Removed: its code fell below the rare-value threshold.
    CodeBelowMinPersons,
}

impl ItemFate {
    /// Whether the row is released.
    pub fn is_released(self) -> bool {
        matches!(self, ItemFate::Kept | ItemFate::Generalized)
    }
}

/// The decisions over the item tables, made in a planning pass over the extraction.
pub(crate) struct ClinicalItemPlan {
    /// Per person pseudonym: how each of the person's procedure, allergy and infection items
    /// is released.
    persons: HashMap<String, PersonDiagnosisPlan>,
    /// Released codes removed for every holder, per table.
    codes_removed: HashSet<(ClinicalTable, String)>,
    report: ClinicalItemSetReport,
}

impl ClinicalItemPlan {
    /// Plans the rule over the item tables of `tables` in `extract_dir`, for the persons of
    /// `recoding` (the person table's diagnosis plans, whose released items are fixed);
    /// `code_plan` gives the rare-value plan of a table's `code` column.
    #[allow(clippy::too_many_arguments)]
    pub fn new<'a>(
        extract_dir: &Path,
        tables: &[ClinicalTable],
        key: &ProjectKey,
        persons: &PersonMap,
        recoding: &DiagnosisRecoding,
        code_plan: impl Fn(ClinicalTable) -> Option<&'a CodePlan>,
        options: &DiagnosisSetOptions,
        min_persons: usize,
    ) -> Result<Self, DeidentifyError> {
        options.validate()?;
        let mut pseudonymizer = key.pseudonymizer()?;
        let mut items: HashMap<String, Vec<String>> = HashMap::new();
        for (table, qualifier) in ITEM_TABLES {
            if !tables.contains(&table) {
                continue;
            }
            let Some(path) = table_file(extract_dir, table) else {
                continue;
            };
            let plan = code_plan(table);
            let mut columns = vec!["code"];
            columns.extend(qualifier);
            for_each_projected_batch(table, &path, &columns, |batch| {
                let providers = text(batch, table, &path, "provider_id")?;
                let patient_keys = text(batch, table, &path, "patient_key")?;
                let codes = text(batch, table, &path, "code")?;
                let qualifiers = match qualifier {
                    Some(column) => Some(text(batch, table, &path, column)?),
                    None => None,
                };
                for row in 0..batch.num_rows() {
                    let person = persons.person(providers.value(row), patient_keys.value(row));
                    let pseudonym = &pseudonymizer.person(&person).pseudonym;
                    // Rows of withheld persons are not released at all.
                    if recoding.person(pseudonym).is_none() {
                        continue;
                    }
                    let code = released_code(plan, codes, row);
                    let qualifier = qualifiers.and_then(|q| q.is_valid(row).then(|| q.value(row)));
                    if let Some(item) = row_item(table, code.as_deref(), qualifier) {
                        match items.get_mut(pseudonym.as_str()) {
                            Some(list) => list.push(item),
                            None => {
                                items.insert(pseudonym.clone(), vec![item]);
                            }
                        }
                    }
                }
                Ok(())
            })?;
        }
        // Persons in pseudonym order: the plan does not depend on hash order.
        let mut released: Vec<(&str, &PersonDiagnosisPlan)> = recoding.iter().collect();
        released.sort_unstable_by_key(|(person, _)| *person);
        let sets: Vec<Vec<String>> = released
            .iter()
            .map(|(person, diagnoses)| {
                let mut set: Vec<String> = diagnoses
                    .released_set()
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                set.extend(items.remove(*person).unwrap_or_default());
                set
            })
            .collect();
        let set_plan = DiagnosisSetPlan::new_with_fixed(&sets, options, |label| {
            coarser_item(label).is_none()
        })?;
        if set_plan.unrepairable_combinations() > 0 {
            return Err(DeidentifyError::InvalidOption {
                option: "diagnosis_recoding",
                reason: format!(
                    "{} combinations of at most {} diagnosis items are held by fewer than {} \
                     released persons; give the plans composed with the released person \
                     table's (ReleasedPersonTable::protect_diagnoses_with_plan) under the same \
                     k and m",
                    set_plan.unrepairable_combinations(),
                    options.m,
                    options.k
                ),
            });
        }
        let mut plans: HashMap<String, PersonDiagnosisPlan> = HashMap::new();
        let mut holders: HashMap<(ClinicalTable, String), HashSet<usize>> = HashMap::new();
        for (index, (person, _)) in released.iter().enumerate() {
            let plan = set_plan.person_plan(index);
            let own = PersonDiagnosisPlan::from_items(
                plan.items()
                    .filter(|(item, _)| coarser_item(item).is_some())
                    .map(|(item, to)| (item.to_owned(), to.map(str::to_owned))),
            );
            if own.items().next().is_none() {
                continue;
            }
            for (_, to) in own.items() {
                if let Some((table, code)) = to.and_then(item_code) {
                    holders
                        .entry((table, code.to_owned()))
                        .or_default()
                        .insert(index);
                }
            }
            plans.insert((*person).to_owned(), own);
        }
        let codes_removed: HashSet<(ClinicalTable, String)> = holders
            .into_iter()
            .filter(|(_, persons)| persons.len() < min_persons)
            .map(|(code, _)| code)
            .collect();
        let base = set_plan.report();
        let report = ClinicalItemSetReport {
            rule: format!(
                "k^m-anonymity of each person's combined item set (diagnosis items as in \
                 persons.csv, `procedure:<code>`, `allergy:<category>:<code>`, \
                 `infection:<code>:<result>`): every combination of at most {m} released items \
                 of any kinds is held by at least {k} persons; diagnosis items are kept as \
                 persons.csv releases them, other items are generalized (allergy code → \
                 category, infection result removed) where cheaper than suppression, then \
                 suppressed for the person (rows removed); a code left held by fewer than \
                 {min_persons} persons is removed with its rows",
                m = options.m,
                k = options.k,
            ),
            k: options.k,
            m: options.m,
            persons: base.persons,
            distinct_items: base.distinct_items,
            item_occurrences: base.item_occurrences,
            generalized: set_plan
                .generalizations()
                .into_iter()
                .map(|(from, to)| format!("{from} → {to}"))
                .collect(),
            items_suppressed: base.items_suppressed,
            persons_with_suppression: base.persons_with_suppression,
            codes_below_min_persons: codes_removed.len() as u64,
            loss: base.loss,
            tables: BTreeMap::new(),
        };
        Ok(Self {
            persons: plans,
            codes_removed,
            report,
        })
    }

    /// The report before any row is counted.
    pub fn report(&self) -> ClinicalItemSetReport {
        self.report.clone()
    }

    /// What happens to a row of `table` of `person` whose code the rare-value rule releases
    /// as `code`, with its qualifier (allergy category, infection result).
    pub fn fate(
        &self,
        table: ClinicalTable,
        person: &str,
        code: Option<&str>,
        qualifier: Option<&str>,
    ) -> ItemFate {
        let Some(item) = row_item(table, code, qualifier) else {
            return ItemFate::Kept;
        };
        // A row whose item the plan does not know is not released (fail closed).
        let Some(released) = self
            .persons
            .get(person)
            .and_then(|plan| plan.released(&item))
            .flatten()
        else {
            return ItemFate::Suppressed;
        };
        if let Some((table, code)) = item_code(released)
            && self.codes_removed.contains(&(table, code.to_owned()))
        {
            return ItemFate::CodeBelowMinPersons;
        }
        if released == item {
            ItemFate::Kept
        } else {
            ItemFate::Generalized
        }
    }
}

impl ClinicalItemSetReport {
    /// Counts one row's fate.
    pub(crate) fn count(&mut self, table: ClinicalTable, fate: ItemFate) {
        let counts = self.tables.entry(table.name().to_owned()).or_default();
        match fate {
            ItemFate::Kept => {}
            ItemFate::Generalized => counts.rows_generalized += 1,
            ItemFate::Suppressed => counts.rows_suppressed += 1,
            ItemFate::CodeBelowMinPersons => counts.rows_code_below_min_persons += 1,
        }
    }
}

/// The code of a row as the rare-value plan releases it (`None`: absent or removed).
fn released_code(
    plan: Option<&CodePlan>,
    codes: &arrow_array::StringArray,
    row: usize,
) -> Option<String> {
    if !codes.is_valid(row) {
        return None;
    }
    match plan {
        Some(plan) => plan.recode.get(codes.value(row)).cloned().flatten(),
        None => Some(codes.value(row).to_owned()),
    }
}

fn text<'a>(
    batch: &'a arrow_array::RecordBatch,
    table: ClinicalTable,
    path: &Path,
    name: &str,
) -> Result<&'a arrow_array::StringArray, DeidentifyError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| table_error(table.name(), path, format!("no text column `{name}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_carry_their_kind_and_step_up_where_the_code_allows() {
        let procedure = row_item(ClinicalTable::Procedures, Some("150147310"), None).unwrap();
        assert_eq!(procedure, "procedure:150147310");
        assert_eq!(coarser_item(&procedure), Some(None));
        let allergy = row_item(ClinicalTable::Allergies, Some("J7F7111"), Some("food")).unwrap();
        assert_eq!(allergy, "allergy:food:J7F7111");
        assert_eq!(
            coarser_item(&allergy),
            Some(Some("allergy:food".to_owned()))
        );
        assert_eq!(coarser_item("allergy:food"), Some(None));
        assert_eq!(
            row_item(ClinicalTable::Allergies, None, Some("food")).as_deref(),
            Some("allergy:food")
        );
        assert_eq!(
            row_item(ClinicalTable::Allergies, Some("X"), Some(" ")).as_deref(),
            Some("allergy:-:X")
        );
        let infection = row_item(
            ClinicalTable::Infections,
            Some("5F016141002227101"),
            Some("positive"),
        )
        .unwrap();
        assert_eq!(infection, "infection:5F016141002227101:positive");
        assert_eq!(
            coarser_item(&infection),
            Some(Some("infection:5F016141002227101".to_owned()))
        );
        assert_eq!(
            row_item(ClinicalTable::Infections, None, Some("positive")),
            None
        );
        assert_eq!(row_item(ClinicalTable::Procedures, Some(" "), None), None);
        // Diagnosis items are not kind-prefixed; codes of two kinds never collide.
        assert_eq!(coarser_item("E11"), None);
        assert_eq!(coarser_item("IV E00-E90"), None);
        assert_ne!(
            row_item(ClinicalTable::Procedures, Some("1"), None),
            row_item(ClinicalTable::Infections, Some("1"), None)
        );
        assert_eq!(
            item_code("infection:5F0:positive"),
            Some((ClinicalTable::Infections, "5F0"))
        );
        assert_eq!(item_code("allergy:food"), None);
        assert_eq!(
            item_code("allergy:food:J7F"),
            Some((ClinicalTable::Allergies, "J7F"))
        );
    }

    /// Minimum support of the combinations of at most m items, recomputed naively.
    fn min_support(sets: &[Vec<String>], m: usize) -> usize {
        crate::diagnosis_sets::tests::min_support_of(
            sets.iter()
                .map(|set| set.iter().map(String::as_str).collect()),
            m,
        )
    }

    #[test]
    fn fixed_diagnoses_stay_and_other_items_are_generalized_or_suppressed() {
        // E11 (fixed) is common. A food allergen held with E11 by 2 persons, while 6 others
        // hold another food allergen with E11: raising the allergens to `allergy:food` makes
        // the pair common. A procedure held with E11 by one person only is suppressed.
        let mut sets: Vec<Vec<String>> = Vec::new();
        let set = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        sets.extend(std::iter::repeat_n(set(&["E11", "allergy:food:A"]), 2));
        sets.extend(std::iter::repeat_n(set(&["E11", "allergy:food:B"]), 6));
        sets.extend(std::iter::repeat_n(set(&["allergy:food:A"]), 5));
        sets.extend(std::iter::repeat_n(set(&["E11"]), 10));
        sets.push(set(&["E11", "procedure:150147310"]));
        sets.extend(std::iter::repeat_n(set(&["procedure:150147310"]), 6));
        // Many distinct items, so a raise covering two of them costs little.
        for filler in 0..30 {
            sets.extend(std::iter::repeat_n(vec![format!("procedure:F{filler}")], 5));
        }
        let options = DiagnosisSetOptions { k: 5, m: 2 };
        let plan = DiagnosisSetPlan::new_with_fixed(&sets, &options, |l| coarser_item(l).is_none())
            .unwrap();
        assert_eq!(plan.unrepairable_combinations(), 0);
        let released: Vec<Vec<String>> = (0..sets.len())
            .map(|p| {
                plan.released_set(p)
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        assert!(min_support(&released, 2) >= 5, "{released:?}");
        // Every diagnosis item is released as given.
        for (given, out) in sets.iter().zip(&released) {
            assert_eq!(
                given.contains(&"E11".to_owned()),
                out.contains(&"E11".to_owned())
            );
        }
        assert!(
            plan.generalizations()
                .iter()
                .any(|(_, to)| to == "allergy:food")
        );
        assert_eq!(plan.report().items_suppressed, 1);
        let lone = plan.person_plan(23);
        assert_eq!(lone.released("procedure:150147310"), Some(None));
        assert_eq!(lone.released("E11"), Some(Some("E11")));
    }

    #[test]
    fn rare_combinations_of_fixed_items_alone_are_reported_not_repaired() {
        let mut sets: Vec<Vec<String>> = vec![vec!["E11".to_owned(), "I10".to_owned()]];
        sets.extend(std::iter::repeat_n(vec!["E11".to_owned()], 5));
        sets.extend(std::iter::repeat_n(vec!["I10".to_owned()], 5));
        let plan =
            DiagnosisSetPlan::new_with_fixed(&sets, &DiagnosisSetOptions { k: 5, m: 2 }, |l| {
                coarser_item(l).is_none()
            })
            .unwrap();
        assert_eq!(plan.unrepairable_combinations(), 1);
        assert_eq!(plan.report().items_suppressed, 0);
        assert_eq!(plan.released_set(0), vec!["E11", "I10"]);
    }
}
