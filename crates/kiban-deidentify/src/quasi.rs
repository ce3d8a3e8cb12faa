//! Person-level quasi-identifiers (匿名加工 preparation): one row per person with age at an
//! index date, sex, region, number of visits and the set of diagnosis categories, as the input
//! of `kiban anonymize`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use chrono::{DateTime, Datelike, NaiveDate};
use kiban_model::{ClinicalTable, IdentityRow};
use serde::{Deserialize, Serialize};

use crate::DeidentifyError;
use crate::VisitsGeneralization;
use crate::clinical_items::{ITEM_TABLES, row_item};
use crate::diagnosis_sets::{
    DiagnosisRecoding, DiagnosisSetOptions, DiagnosisSetReport, PersonDiagnosisPlan,
    protect_diagnosis_sets_with_plan,
};
use crate::io::{for_each_batch, io_error, table_error, table_file, write_file_atomic};
use crate::keys::{PersonId, PersonMap, ProjectKey};
use crate::rare::{
    CodeColumnReport, CodeCounts, CodeLadder, RareValueOptions, icd10_category, plan_codes,
};
use crate::release::PERSON_COLUMN;

/// The 47 prefectures (都道府県), as they begin an address.
pub use kiban_model::PREFECTURES;

/// Header of the person table, in column order. With [`QuasiIdentifierOptions::deceased`]
/// and a deaths table in the extraction, [`DECEASED_COLUMN`] comes after `visits`
/// ([`QuasiIdentifierTable::columns`]).
pub const QUASI_IDENTIFIER_COLUMNS: [&str; 6] =
    [PERSON_COLUMN, "age", "sex", "region", "visits", "diagnoses"];

/// Column of the person table saying whether the person has a row in the deaths table
/// (`yes` or `no`): a quasi-identifier, since an attacker often knows that a person died and
/// the released deaths table shows it per `person`.
pub const DECEASED_COLUMN: &str = "deceased";

/// Options of the person table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuasiIdentifierOptions {
    /// Age is computed at this date for everyone; without it, at each person's first
    /// encounter (persons without encounters then have no age).
    pub index_date: Option<NaiveDate>,
    /// Ages at or above this are written `<n>+` (anonymized releases: 90).
    pub age_top_code: Option<u32>,
    /// Diagnosis categories held by fewer persons are left out of the sets (anonymized
    /// releases: the rare-value threshold).
    pub min_persons_per_diagnosis: Option<usize>,
    /// The k^m rule of the diagnosis set (anonymized releases): categories generalized up the
    /// ICD-10 hierarchy or removed until every combination of at most m is held by at least k
    /// persons ([`crate::protect_diagnosis_sets`]).
    #[serde(default)]
    pub diagnosis_sets: Option<DiagnosisSetOptions>,
    /// Whether the table gets [`DECEASED_COLUMN`] when the extraction holds a deaths table
    /// (anonymized releases, which release that table: whether a person has a death row can
    /// be read from the release, so it is part of the classes k must hold over).
    #[serde(default)]
    pub deceased: bool,
    /// How `visits` may be generalized: [`VisitsGeneralization::Exact`] (the default) when the
    /// release holds the encounters table, [`VisitsGeneralization::Bands`] when it does not.
    /// Only the report's rule depends on it here; the same value goes to
    /// [`crate::hierarchy_rows_with`].
    #[serde(default)]
    pub visits: VisitsGeneralization,
}

impl QuasiIdentifierOptions {
    /// The options of an anonymized release: ages top coded, rare diagnosis categories left
    /// out by the release's rare-value rules and the diagnosis set made k^m-anonymous with
    /// the default k and m ([`DiagnosisSetOptions::default`]; set k to the person table's k
    /// with [`QuasiIdentifierOptions::with_diagnosis_sets`]).
    pub fn anonymized(rare: &RareValueOptions) -> Self {
        Self {
            index_date: None,
            age_top_code: Some(rare.age_top_code),
            min_persons_per_diagnosis: Some(rare.min_persons),
            diagnosis_sets: Some(DiagnosisSetOptions::default()),
            deceased: true,
            visits: VisitsGeneralization::Exact,
        }
    }

    /// The same options for a release without the encounters table: `visits` banded.
    pub fn without_encounters(self) -> Self {
        Self {
            visits: VisitsGeneralization::Bands,
            ..self
        }
    }

    /// The same options with the diagnosis set's k^m rule set to `k` and `m`.
    pub fn with_diagnosis_sets(self, k: usize, m: usize) -> Self {
        Self {
            diagnosis_sets: Some(DiagnosisSetOptions { k, m }),
            ..self
        }
    }
}

/// One person's quasi-identifiers as released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonQuasiIdentifiers {
    /// The person's pseudonym (the `person` column of the clinical release).
    pub person: String,
    /// Age in whole years at the index date (`90+` when top coded, empty when unknown).
    pub age: String,
    /// Administrative sex code (`male`, `female`, `other`, `unknown`; empty when unknown).
    pub sex: String,
    /// Prefecture from the address, else `postal-NN` from the postal code's first two
    /// digits, else empty.
    pub region: String,
    /// Number of encounters: the person's rows of the encounters table, which a release
    /// holds whole for every person it releases, so anyone can count them per `person`
    /// (hence not generalized, unless the release leaves that table out:
    /// [`crate::VisitsGeneralization`]).
    pub visits: u64,
    /// Whether the person has a row in the deaths table (which the release holds whole for
    /// every person it releases, so it is not generalized); `None` when the table has no
    /// [`DECEASED_COLUMN`] (option off, or no deaths table in the extraction).
    #[serde(default)]
    pub deceased: Option<bool>,
    /// Sorted distinct 3-character ICD-10 categories of confirmed diagnoses, joined by `;`;
    /// under the k^m rule some are released as their WHO block (`E10-E14`) or chapter
    /// (`IV E00-E90`), some removed.
    pub diagnoses: String,
}

/// What the person table derivation did (counts only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuasiIdentifierReport {
    /// Persons (rows).
    pub persons: u64,
    /// Persons without any identity record (age, sex and region empty).
    pub persons_without_identity: u64,
    /// Persons without an age (no birth date or no index date).
    pub persons_without_age: u64,
    /// Ages written as `<n>+`.
    pub ages_top_coded: u64,
    /// Diagnosis categories left out of the sets as rare.
    pub diagnosis_categories_removed: u64,
    /// How the index date is chosen.
    pub index_date_rule: String,
    /// What `visits` counts, and whether it may be generalized (only when the release leaves
    /// the encounters table out).
    #[serde(default)]
    pub visits_rule: String,
    /// What `deceased` says and why it is not generalized (when the column is derived).
    #[serde(default)]
    pub deceased_rule: Option<String>,
    /// Persons with a row in the deaths table (when the column is derived).
    #[serde(default)]
    pub persons_deceased: u64,
    /// What the k^m rule of the diagnosis set did (when applied).
    #[serde(default)]
    pub diagnosis_sets: Option<DiagnosisSetReport>,
}

/// What the identity store says of a person, kept in memory for the re-identification test.
#[derive(Clone, Default)]
pub(crate) struct KnownIdentity {
    pub birth_date: Option<NaiveDate>,
    pub sex: Option<String>,
    pub postal_code: Option<String>,
    pub prefecture: Option<String>,
    pub index_date: Option<NaiveDate>,
    /// The person's diagnosis categories before the k^m rule: what an attacker may know.
    pub diagnoses: Vec<String>,
    /// The person's procedure, allergy and infection items as the extraction holds them
    /// (true codes, before any rule; labels of [`crate::clinical_items`]), sorted and
    /// distinct: what an attacker may know besides diagnoses.
    pub items: Vec<String>,
}

/// The person table, with (in memory only) what the identity store knows of each person, which
/// [`crate::linkage_attack`] uses as the attacker's knowledge and as the truth.
pub struct QuasiIdentifierTable {
    rows: Vec<PersonQuasiIdentifiers>,
    /// The header: [`QUASI_IDENTIFIER_COLUMNS`], with [`DECEASED_COLUMN`] after `visits` when
    /// derived.
    columns: Vec<&'static str>,
    known: Vec<KnownIdentity>,
    report: QuasiIdentifierReport,
    /// Per person: how each diagnosis category is released in `rows`.
    diagnosis_recoding: DiagnosisRecoding,
}

impl fmt::Debug for QuasiIdentifierTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuasiIdentifierTable")
            .field("persons", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl QuasiIdentifierTable {
    /// The rows, sorted by pseudonym.
    pub fn rows(&self) -> &[PersonQuasiIdentifiers] {
        &self.rows
    }

    /// The header of the table, in column order: [`QUASI_IDENTIFIER_COLUMNS`], with
    /// [`DECEASED_COLUMN`] after `visits` when it was derived.
    pub fn columns(&self) -> &[&'static str] {
        &self.columns
    }

    /// What the derivation did.
    pub fn report(&self) -> &QuasiIdentifierReport {
        &self.report
    }

    /// Per person pseudonym: how each of the person's diagnosis categories (rare ones already
    /// left out) is released in the `diagnoses` column, generalized or suppressed by the k^m
    /// rule, or as it is without the rule.
    pub fn diagnosis_recoding(&self) -> &DiagnosisRecoding {
        &self.diagnosis_recoding
    }

    pub(crate) fn known(&self) -> &[KnownIdentity] {
        &self.known
    }

    /// A table from rows and what is known of each (tests of the attack).
    #[cfg(test)]
    pub(crate) fn from_parts(rows: Vec<PersonQuasiIdentifiers>, known: Vec<KnownIdentity>) -> Self {
        let mut diagnosis_recoding = DiagnosisRecoding::new();
        for row in &rows {
            diagnosis_recoding.insert(
                row.person.clone(),
                PersonDiagnosisPlan::unchanged(row.diagnoses.split(';')),
            );
        }
        let columns = columns_of(rows.iter().any(|r| r.deceased.is_some()));
        Self {
            rows,
            columns,
            known,
            report: QuasiIdentifierReport::default(),
            diagnosis_recoding,
        }
    }

    /// The table as comma-separated text with a header ([`QuasiIdentifierTable::columns`]),
    /// the input format of `kiban anonymize`, in memory (no plaintext copy on disk).
    pub fn csv_bytes(&self) -> Result<Vec<u8>, csv::Error> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.columns)?;
        for row in &self.rows {
            writer.write_record(row_cells(row, &self.columns))?;
        }
        writer.into_inner().map_err(|e| e.into_error().into())
    }

    /// Writes [`QuasiIdentifierTable::csv_bytes`] to `path`, under a temporary name renamed
    /// when complete.
    pub fn write_csv(&self, path: &Path) -> Result<(), DeidentifyError> {
        let bytes = self.csv_bytes().map_err(|e| io_error("write", path, e))?;
        write_file_atomic(path, &bytes)
    }
}

/// The header of a person table, with or without [`DECEASED_COLUMN`].
fn columns_of(deceased: bool) -> Vec<&'static str> {
    let mut columns = QUASI_IDENTIFIER_COLUMNS.to_vec();
    if deceased {
        columns.insert(5, DECEASED_COLUMN);
    }
    columns
}

/// The released text of a `deceased` value.
pub(crate) fn deceased_label(deceased: bool) -> &'static str {
    if deceased { "yes" } else { "no" }
}

/// The cells of a row under `columns`.
pub(crate) fn row_cells(row: &PersonQuasiIdentifiers, columns: &[&str]) -> Vec<String> {
    columns
        .iter()
        .map(|&column| match column {
            PERSON_COLUMN => row.person.clone(),
            "age" => row.age.clone(),
            "sex" => row.sex.clone(),
            "region" => row.region.clone(),
            "visits" => row.visits.to_string(),
            DECEASED_COLUMN => row
                .deceased
                .map(deceased_label)
                .unwrap_or_default()
                .to_owned(),
            _ => row.diagnoses.clone(),
        })
        .collect()
}

/// The region of an address or postal code (see [`PersonQuasiIdentifiers::region`]).
pub fn region_of(address: Option<&str>, postal_code: Option<&str>) -> Option<String> {
    address
        .and_then(prefecture_of)
        .map(str::to_owned)
        .or_else(|| postal_code.and_then(postal_region))
}

/// The prefecture an address names first (an address may begin with its postal code).
pub fn prefecture_of(address: &str) -> Option<&'static str> {
    // The earliest match wins: "東京都府中市" also contains "京都府", one character later.
    PREFECTURES
        .iter()
        .filter_map(|p| address.find(p).map(|at| (at, *p)))
        .min_by_key(|(at, p)| (*at, std::cmp::Reverse(p.len())))
        .map(|(_, p)| p)
}

/// The `postal-NN` region of a postal code (its first two digits), as the person table
/// shows it when the address names no prefecture.
pub(crate) fn postal_region(postal_code: &str) -> Option<String> {
    let digits: String = postal_digits(postal_code).chars().take(2).collect();
    (digits.len() == 2).then(|| format!("postal-{digits}"))
}

/// The digits of a postal code, full-width digits (０-９) read as ASCII, everything else
/// (hyphens, `〒`, spaces) left out: one spelling per code.
pub(crate) fn postal_digits(postal_code: &str) -> String {
    postal_code
        .chars()
        .filter_map(|c| match c {
            '0'..='9' => Some(c),
            '\u{FF10}'..='\u{FF19}' => char::from_u32(c as u32 - 0xFF10 + u32::from(b'0')),
            _ => None,
        })
        .collect()
}

/// Whole years from `birth` to `at`; `None` when born after it.
pub(crate) fn age_at(birth: NaiveDate, at: NaiveDate) -> Option<u32> {
    let mut years = at.year() - birth.year();
    if (at.month(), at.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

/// Per-person facts gathered from the clinical tables.
#[derive(Default)]
struct ClinicalFacts {
    first_encounter: Option<NaiveDate>,
    visits: u64,
    /// Whether the person has a row in the deaths table.
    deceased: bool,
    diagnoses: BTreeSet<String>,
    /// Full ICD-10 codes of confirmed diagnoses, per category (rare-value rule of the
    /// conditions table).
    codes: BTreeMap<String, BTreeSet<String>>,
    /// Procedure, allergy and infection items, from the true codes.
    items: BTreeSet<String>,
}

/// Derives the person table of the extraction in `extract_dir`: one row per person holding
/// any clinical row, with age, sex and region from the person's identity records (the first
/// record giving each), visits from encounters and diagnoses from conditions.
pub fn derive_quasi_identifiers(
    extract_dir: &Path,
    identities: &[IdentityRow],
    persons: &PersonMap,
    key: &ProjectKey,
    options: &QuasiIdentifierOptions,
) -> Result<QuasiIdentifierTable, DeidentifyError> {
    let mut facts: BTreeMap<PersonId, ClinicalFacts> = BTreeMap::new();
    // The conditions table's rare-value counts (every row, suspected too), so the diagnosis
    // set holds only categories the release's conditions table can show for the person.
    let mut code_counts = CodeCounts::default();
    let mut person_index: HashMap<PersonId, u32> = HashMap::new();
    for &table in ClinicalTable::ALL {
        let Some(path) = table_file(extract_dir, table) else {
            continue;
        };
        for_each_batch(table, &path, |batch| {
            let providers = batch.column(0).as_string::<i32>();
            let patient_keys = batch
                .column_by_name("patient_key")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| table_error(table.name(), &path, "no text column `patient_key`"))?;
            let row_persons: Vec<PersonId> = (0..batch.num_rows())
                .map(|row| persons.person(providers.value(row), patient_keys.value(row)))
                .collect();
            match table {
                ClinicalTable::Encounters => {
                    let starts = batch
                        .column_by_name("start")
                        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
                        .ok_or_else(|| {
                            table_error(table.name(), &path, "no timestamp column `start`")
                        })?;
                    for (row, person) in row_persons.into_iter().enumerate() {
                        let entry = facts.entry(person).or_default();
                        entry.visits += 1;
                        let start = starts
                            .is_valid(row)
                            .then(|| DateTime::from_timestamp_micros(starts.value(row)))
                            .flatten()
                            .map(|t| t.date_naive());
                        if let Some(start) = start {
                            entry.first_encounter =
                                Some(entry.first_encounter.map_or(start, |f| f.min(start)));
                        }
                    }
                }
                ClinicalTable::Conditions => {
                    let codes = batch
                        .column_by_name("icd10")
                        .and_then(|c| c.as_string_opt::<i32>())
                        .ok_or_else(|| {
                            table_error(table.name(), &path, "no text column `icd10`")
                        })?;
                    let suspected = batch
                        .column_by_name("suspected")
                        .and_then(|c| c.as_boolean_opt())
                        .ok_or_else(|| {
                            table_error(table.name(), &path, "no boolean column `suspected`")
                        })?;
                    for (row, person) in row_persons.into_iter().enumerate() {
                        if codes.is_valid(row) {
                            let next = person_index.len() as u32;
                            let index = *person_index.entry(person.clone()).or_insert(next);
                            code_counts.add(codes.value(row), index);
                        }
                        let entry = facts.entry(person).or_default();
                        // Suspected diagnoses (疑い) are not facts about the person.
                        let confirmed = !(suspected.is_valid(row) && suspected.value(row));
                        if confirmed && codes.is_valid(row) {
                            let category = icd10_category(codes.value(row));
                            if !category.is_empty() {
                                entry
                                    .codes
                                    .entry(category.clone())
                                    .or_default()
                                    .insert(codes.value(row).to_owned());
                                entry.diagnoses.insert(category);
                            }
                        }
                    }
                }
                ClinicalTable::Deaths => {
                    for person in row_persons {
                        facts.entry(person).or_default().deceased = true;
                    }
                }
                ClinicalTable::Procedures
                | ClinicalTable::Allergies
                | ClinicalTable::Infections => {
                    // The true items, as an attacker who knows the person would name them.
                    let qualifier = ITEM_TABLES
                        .iter()
                        .find(|(t, _)| *t == table)
                        .and_then(|(_, q)| *q);
                    let text = |name: &str| {
                        batch
                            .column_by_name(name)
                            .and_then(|c| c.as_string_opt::<i32>())
                            .ok_or_else(|| {
                                table_error(table.name(), &path, format!("no text column `{name}`"))
                            })
                    };
                    let codes = text("code")?;
                    let qualifiers = match qualifier {
                        Some(name) => Some(text(name)?),
                        None => None,
                    };
                    for (row, person) in row_persons.into_iter().enumerate() {
                        let code = codes.is_valid(row).then(|| codes.value(row));
                        let qualifier =
                            qualifiers.and_then(|q| q.is_valid(row).then(|| q.value(row)));
                        let entry = facts.entry(person).or_default();
                        entry.items.extend(row_item(table, code, qualifier));
                    }
                }
                _ => {
                    for person in row_persons {
                        facts.entry(person).or_default();
                    }
                }
            }
            Ok(())
        })?;
    }

    let mut identity_of: HashMap<PersonId, KnownIdentity> = HashMap::new();
    for identity in identities {
        let person = persons.person(&identity.common.provider_id, &identity.common.patient_key);
        let known = identity_of.entry(person).or_default();
        // The first record giving a value wins, so the result does not depend on hash order.
        known.birth_date = known.birth_date.or(identity.birth_date);
        if known.sex.is_none() && !identity.sex.is_empty() {
            known.sex = Some(identity.sex.clone());
        }
        if known.postal_code.is_none() {
            known.postal_code.clone_from(&identity.postal_code);
        }
        if known.prefecture.is_none() {
            known.prefecture = identity
                .address
                .as_deref()
                .and_then(prefecture_of)
                .map(str::to_owned);
        }
    }

    let mut diagnosis_persons: HashMap<&str, usize> = HashMap::new();
    for person_facts in facts.values() {
        for code in &person_facts.diagnoses {
            *diagnosis_persons.entry(code.as_str()).or_default() += 1;
        }
    }
    let rare_diagnoses: BTreeSet<String> = match options.min_persons_per_diagnosis {
        Some(min) => diagnosis_persons
            .iter()
            .filter(|(_, n)| **n < min)
            .map(|(code, _)| (*code).to_owned())
            .collect(),
        None => BTreeSet::new(),
    };

    // With the k^m rule (anonymized releases), a category enters a person's set only when the
    // conditions table keeps one of the person's codes in it: the two files then agree.
    let released_codes = match (&options.diagnosis_sets, options.min_persons_per_diagnosis) {
        (Some(_), Some(min)) => Some(plan_codes(
            &code_counts,
            CodeLadder::Icd10,
            min,
            &mut CodeColumnReport::default(),
        )),
        _ => None,
    };
    // The deaths table is released whole for every released person, so whether a person has
    // a death row can be read from the release: a quasi-identifier, kept exact.
    let with_deceased =
        options.deceased && table_file(extract_dir, ClinicalTable::Deaths).is_some();
    let mut pseudonymizer = key.pseudonymizer()?;
    let mut report = QuasiIdentifierReport {
        deceased_rule: with_deceased.then(|| {
            "deceased = yes when the person has a row in the deaths table, else no; the \
             release holds every death row of every person it releases, so it is kept exact \
             (not generalized) and the k-anonymity of the person table holds over it"
                .to_owned()
        }),
        diagnosis_categories_removed: rare_diagnoses.len() as u64,
        index_date_rule: match options.index_date {
            Some(_) => "one index date given for every person".to_owned(),
            None => "each person's first encounter".to_owned(),
        },
        visits_rule: match options.visits {
            VisitsGeneralization::Exact => {
                "visits = the number of the person's rows in the encounters table; the \
                 release holds all of them for every person it releases, so the count can be \
                 read from it and is kept exact (not generalized) by the k-anonymity of the \
                 person table"
            }
            VisitsGeneralization::Bands => {
                "visits = the number of the person's rows in the encounters table, which the \
                 release does not hold (nor the references to it): the count may be \
                 generalized to bands (1, 2-3, 4-7, 8-15, 16+, then 0-3, 4-15, 16+) by the \
                 k-anonymity of the person table"
            }
        }
        .to_owned(),
        ..QuasiIdentifierReport::default()
    };
    let mut rows = Vec::with_capacity(facts.len());
    for (person, person_facts) in facts {
        let pseudonym = pseudonymizer.person(&person).pseudonym.clone();
        let mut known = identity_of.remove(&person).unwrap_or_else(|| {
            report.persons_without_identity += 1;
            KnownIdentity::default()
        });
        known.index_date = options.index_date.or(person_facts.first_encounter);
        let age = match (known.birth_date, known.index_date) {
            (Some(birth), Some(at)) => age_at(birth, at),
            _ => None,
        };
        let age = match (age, options.age_top_code) {
            (Some(age), Some(top)) if age >= top => {
                report.ages_top_coded += 1;
                format!("{top}+")
            }
            (Some(age), _) => age.to_string(),
            (None, _) => {
                report.persons_without_age += 1;
                String::new()
            }
        };
        let region = known
            .prefecture
            .clone()
            .or_else(|| known.postal_code.as_deref().and_then(postal_region))
            .unwrap_or_default();
        known.items = person_facts.items.iter().cloned().collect();
        known.diagnoses = person_facts
            .diagnoses
            .iter()
            .filter(|code| !rare_diagnoses.contains(*code))
            .cloned()
            .collect();
        let released: Vec<&str> = known
            .diagnoses
            .iter()
            .filter(|category| match &released_codes {
                Some(plan) => person_facts.codes.get(*category).is_some_and(|codes| {
                    codes
                        .iter()
                        .any(|code| plan.recode.get(code).is_some_and(Option::is_some))
                }),
                None => true,
            })
            .map(String::as_str)
            .collect();
        rows.push((
            PersonQuasiIdentifiers {
                person: pseudonym,
                age,
                sex: known.sex.clone().unwrap_or_default(),
                region,
                visits: person_facts.visits,
                deceased: with_deceased.then_some(person_facts.deceased),
                diagnoses: released.join(";"),
            },
            known,
        ));
    }
    rows.sort_by(|a, b| a.0.person.cmp(&b.0.person));
    report.persons = rows.len() as u64;
    if with_deceased {
        report.persons_deceased = rows.iter().filter(|r| r.0.deceased == Some(true)).count() as u64;
    }
    let (mut rows, known): (Vec<PersonQuasiIdentifiers>, Vec<KnownIdentity>) =
        rows.into_iter().unzip();
    let plans: Vec<PersonDiagnosisPlan> = match &options.diagnosis_sets {
        Some(rule) => {
            let mut sets: Vec<String> = rows
                .iter_mut()
                .map(|r| std::mem::take(&mut r.diagnoses))
                .collect();
            let (set_report, plans) = protect_diagnosis_sets_with_plan(&mut sets, rule)?;
            report.diagnosis_sets = Some(set_report);
            for (row, set) in rows.iter_mut().zip(sets) {
                row.diagnoses = set;
            }
            plans
        }
        None => rows
            .iter()
            .map(|r| PersonDiagnosisPlan::unchanged(r.diagnoses.split(';')))
            .collect(),
    };
    let mut diagnosis_recoding = DiagnosisRecoding::new();
    for (row, plan) in rows.iter().zip(plans) {
        diagnosis_recoding.insert(row.person.clone(), plan);
    }
    Ok(QuasiIdentifierTable {
        rows,
        columns: columns_of(with_deceased),
        known,
        report,
        diagnosis_recoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_prefers_the_address_prefecture() {
        assert_eq!(prefecture_of("東京都府中市宮西町"), Some("東京都"));
        assert_eq!(
            prefecture_of("〒600-8216 京都府京都市下京区"),
            Some("京都府")
        );
        assert_eq!(prefecture_of("府中市"), None);
        assert_eq!(
            region_of(Some("大阪府大阪市北区"), Some("530-0001")).as_deref(),
            Some("大阪府")
        );
        assert_eq!(
            region_of(Some("中央区1-1"), Some("１０４-0061")).as_deref(),
            Some("postal-10")
        );
        assert_eq!(region_of(None, Some("1")), None);
    }

    #[test]
    fn age_counts_whole_years() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(age_at(d(1950, 6, 15), d(2020, 6, 14)), Some(69));
        assert_eq!(age_at(d(1950, 6, 15), d(2020, 6, 15)), Some(70));
        assert_eq!(age_at(d(2021, 1, 1), d(2020, 6, 15)), None);
    }
}
