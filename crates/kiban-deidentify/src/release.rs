//! Writing a release: the clinical tables with keyed pseudonyms, shifted dates and without
//! identification codes or free text; for anonymized releases also with rare values recoded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, TimestampMicrosecondType};
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use arrow_select::filter::filter_record_batch;
use kiban_model::ClinicalTable;
use serde::{Deserialize, Serialize};

use crate::DeidentifyError;
use crate::clinical_items::{ClinicalItemPlan, ClinicalItemSetReport, ITEM_TABLES, ItemFate};
use crate::conditions::{ConditionDiagnosisPlan, ConditionDiagnosisReport, ConditionFate};
use crate::diagnosis_sets::{DiagnosisRecoding, DiagnosisSetOptions};
use crate::io::{
    StagedDir, TableWriter, for_each_batch, for_each_projected_batch, table_error, table_file,
};
use crate::keys::{PersonId, PersonMap, ProjectKey, Pseudonymizer};
use crate::rare::{
    CODE_RULES, CodeColumnReport, CodeCounts, CodePlan, LabValueReport, RareValueOptions,
    RareValueReport, ValueCounts, icd10_category, lab_limits, plan_codes,
};
use crate::scrub::{DateRule, FreeTextScrubber, ScrubCounts};

/// Column of every released row holding the person's pseudonym (replaces `patient_key`).
pub const PERSON_COLUMN: &str = "person";
/// Column of every released row holding the record's pseudonym (replaces `source_id`).
pub const RECORD_COLUMN: &str = "record";

/// Free-text columns: dropped from a release, or scrubbed of identifying mentions when the
/// release asks for it ([`FreeTextRule::Scrub`], R-P5).
const FREE_TEXT_COLUMNS: &[(ClinicalTable, &str)] = &[
    (ClinicalTable::Encounters, "department_name"),
    (ClinicalTable::Conditions, "name"),
    (ClinicalTable::MedicationRequests, "name"),
    (ClinicalTable::MedicationDispenses, "name"),
    (ClinicalTable::LabObservations, "name"),
    (ClinicalTable::Allergies, "name"),
    (ClinicalTable::Infections, "name"),
    (ClinicalTable::Procedures, "name"),
    (ClinicalTable::Documents, "title"),
    (ClinicalTable::Documents, "text"),
];

/// Columns holding the source id of another record; replaced by that record's pseudonym so
/// joins survive: (table, column, table of the referenced record).
const REFERENCE_COLUMNS: &[(ClinicalTable, &str, ClinicalTable)] = &[(
    ClinicalTable::Conditions,
    "encounter_id",
    ClinicalTable::Encounters,
)];

/// What happens to `provider_id`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderHandling {
    /// Kept as is (providers are not persons; users may need them for site effects).
    Keep,
    /// Replaced by a keyed pseudonym of the project.
    #[default]
    Pseudonymize,
    /// Removed.
    Drop,
}

/// What happens to free-text columns (documents' text and title, display names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreeTextRule {
    /// Removed from the release (the default, for both kinds of release).
    #[default]
    Drop,
    /// Released after a [`FreeTextScrubber`] removed identifying mentions and rewrote dates
    /// (shifted by the person's offset; in an anonymized release also cut to year and month).
    /// For an anonymized release this is an explicit opt-in, recorded in the report.
    Scrub,
}

/// The kind of release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseKind {
    /// 仮名加工 (R-P2): identifiers removed or pseudonymized, rare values kept.
    Pseudonymized,
    /// 匿名加工 (R-P1) clinical tables: as pseudonymized, and rare codes recoded and extreme lab
    /// values top/bottom coded. The person-level quasi-identifiers are generalized separately
    /// (`kiban anonymize` on the table of [`crate::derive_quasi_identifiers`]).
    Anonymized(RareValueOptions),
}

/// Options of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseOptions {
    /// Pseudonymized or anonymized.
    pub kind: ReleaseKind,
    /// What happens to `provider_id`.
    pub provider_id: ProviderHandling,
    /// Each person's dates move by one offset drawn uniformly in ±this many days (default 30;
    /// 0 disables shifting).
    pub max_date_shift_days: u32,
    /// Tables to release; empty means every table the extraction holds. A column referring
    /// to a table left out (`conditions.encounter_id` without encounters) is removed.
    pub tables: Vec<ClinicalTable>,
    /// Free-text columns dropped (default) or scrubbed.
    #[serde(default)]
    pub free_text: FreeTextRule,
    /// Anonymized releases: the person table's diagnosis plans (k^m rule), which the
    /// conditions table then follows per person so a join on `person` reads back no more
    /// than `persons.csv` releases ([`ConditionDiagnosisReport`]); `deaths.cause_icd10` is
    /// released only as the item the person's set releases for its category. It also names
    /// the persons
    /// of the released person table: a person without a plan (whose row the k-anonymization
    /// suppressed) is withheld from every table ([`WithheldPersonsReport`]), and the
    /// rare-value rules count only the persons released. Refused for pseudonymized releases,
    /// which keep rare values.
    #[serde(skip)]
    pub diagnosis_recoding: Option<DiagnosisRecoding>,
    /// Anonymized releases given [`ReleaseOptions::diagnosis_recoding`]: the k^m rule over
    /// each person's combined item set, the diagnosis items of the plans together with the
    /// person's procedures, allergies and infection-marker results (an attacker knowing up to
    /// m items of any of these kinds finds at least k persons). Diagnosis items stay as the
    /// plans release them; the other items are generalized or suppressed, and their tables
    /// follow per person ([`ClinicalItemSetReport`]). `None`: those tables are governed by
    /// the rare-value rule only.
    #[serde(default)]
    pub clinical_item_sets: Option<DiagnosisSetOptions>,
}

impl Default for ReleaseOptions {
    fn default() -> Self {
        Self {
            kind: ReleaseKind::Pseudonymized,
            provider_id: ProviderHandling::default(),
            max_date_shift_days: 30,
            tables: Vec::new(),
            free_text: FreeTextRule::Drop,
            diagnosis_recoding: None,
            clinical_item_sets: None,
        }
    }
}

/// What happened to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReleaseReport {
    /// Rows written.
    pub rows: u64,
    /// File name in the release directory (absent when the table had no rows).
    pub file: Option<String>,
    /// Columns removed (identification codes and free text).
    pub columns_removed: Vec<String>,
    /// Columns replaced by keyed pseudonyms, as `source → released`.
    pub columns_pseudonymized: Vec<String>,
    /// Date and timestamp columns shifted by the person's offset.
    pub columns_date_shifted: Vec<String>,
    /// Columns recoded by the rare-value rules (anonymized releases).
    pub columns_recoded: Vec<String>,
    /// Free-text columns scrubbed of identifying mentions.
    #[serde(default)]
    pub columns_scrubbed: Vec<String>,
}

/// The persons withheld from an anonymized release: those without a plan in
/// [`ReleaseOptions::diagnosis_recoding`], i.e. whose row the k-anonymization suppressed from
/// the person table. None of their rows is released, in any table. Counts only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithheldPersonsReport {
    /// The rule applied.
    pub rule: String,
    /// Persons of the extraction withheld (holding at least one row of a released table).
    pub persons: u64,
    /// Rows withheld, all tables together.
    pub rows: u64,
    /// Rows withheld, per table (tables where some were).
    pub rows_per_table: BTreeMap<String, u64>,
}

/// What a release did. Holds rules and counts, never a key, an offset, an id or a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseReport {
    /// Project whose key made the pseudonyms.
    pub project: String,
    /// `pseudonymized` or `anonymized`.
    pub kind: String,
    /// The release directory.
    pub release_dir: PathBuf,
    /// Distinct persons in the release (persons withheld left out).
    pub persons: u64,
    /// What happened to `provider_id`.
    pub provider_id: ProviderHandling,
    /// Bound of the per-person date offsets, in days.
    pub max_date_shift_days: u32,
    /// How pseudonyms are made.
    pub pseudonym_method: String,
    /// How free text is handled.
    pub free_text: String,
    /// Per table.
    pub tables: BTreeMap<String, TableReleaseReport>,
    /// Rare-value rules (anonymized releases only).
    pub rare_values: Option<RareValueReport>,
    /// What the scrubber did (when free text was scrubbed).
    pub free_text_scrub: Option<FreeTextScrubReport>,
    /// What the person table's diagnosis plans did to the conditions table (anonymized
    /// releases given [`ReleaseOptions::diagnosis_recoding`]).
    #[serde(default)]
    pub diagnosis_sets: Option<ConditionDiagnosisReport>,
    /// The persons withheld since their person-table row was suppressed (anonymized releases
    /// given [`ReleaseOptions::diagnosis_recoding`]).
    #[serde(default)]
    pub withheld_persons: Option<WithheldPersonsReport>,
    /// What the k^m rule over the combined item set (diagnoses, procedures, allergies,
    /// infections) did, with rows per table (given [`ReleaseOptions::clinical_item_sets`]).
    #[serde(default)]
    pub clinical_item_sets: Option<ClinicalItemSetReport>,
}

/// What the free-text scrubber did in a release: rules and counts, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeTextScrubReport {
    /// What is removed and how.
    pub rule: String,
    /// What happens to dates in the text.
    pub date_rule: String,
    /// Whether the rule was an explicit opt-in (always so for anonymized releases, whose
    /// default is to drop free text).
    pub opt_in: String,
    /// Entries of the identity-store dictionary (names and values), a count only.
    pub dictionary_entries: u64,
    /// Per `table.column`.
    pub columns: BTreeMap<String, ScrubCounts>,
    /// All columns together.
    pub total: ScrubCounts,
}

/// Writes a release of the extraction in `extract_dir` to `release_dir` (absent or empty):
/// one `<table>.parquet` per table, built in a staging directory and renamed into place only
/// when complete.
///
/// Every row's `patient_key` becomes the `person` pseudonym (HMAC-SHA256 under the project
/// key of the person from `persons`, or of the provider record when unlinked), `source_id`
/// becomes the `record` pseudonym, `intake_id` and free text are removed, and every date and
/// timestamp moves by the person's offset.
///
/// Free text is dropped; [`FreeTextRule::Scrub`] needs the identity store's names: use
/// [`write_release_with_scrubber`].
pub fn write_release(
    extract_dir: &Path,
    release_dir: &Path,
    key: &ProjectKey,
    persons: &PersonMap,
    options: &ReleaseOptions,
) -> Result<ReleaseReport, DeidentifyError> {
    write_release_with_scrubber(extract_dir, release_dir, key, persons, options, None)
}

/// [`write_release`], with free text scrubbed by `scrubber` when `options.free_text` is
/// [`FreeTextRule::Scrub`] (which then requires one).
pub fn write_release_with_scrubber(
    extract_dir: &Path,
    release_dir: &Path,
    key: &ProjectKey,
    persons: &PersonMap,
    options: &ReleaseOptions,
    scrubber: Option<&FreeTextScrubber>,
) -> Result<ReleaseReport, DeidentifyError> {
    let scrubber = match options.free_text {
        FreeTextRule::Drop => None,
        FreeTextRule::Scrub => Some(scrubber.ok_or_else(|| DeidentifyError::InvalidOption {
            option: "free_text",
            reason: "scrubbing free text needs a scrubber built from the identity store".to_owned(),
        })?),
    };
    if let ReleaseKind::Anonymized(rare) = &options.kind {
        rare.validate()?;
    }
    if options.kind == ReleaseKind::Pseudonymized && options.diagnosis_recoding.is_some() {
        return Err(DeidentifyError::InvalidOption {
            option: "diagnosis_recoding",
            reason: "a pseudonymized release keeps its diagnoses (仮名加工); the diagnosis-set \
                     rule applies to anonymized releases only"
                .to_owned(),
        });
    }
    let tables: Vec<ClinicalTable> = if options.tables.is_empty() {
        ClinicalTable::ALL.to_vec()
    } else {
        options.tables.clone()
    };
    let rare = match &options.kind {
        ReleaseKind::Anonymized(rare) => Some(plan_rare_values(
            extract_dir,
            &tables,
            persons,
            rare,
            options.diagnosis_recoding.as_ref().map(|r| (r, key)),
        )?),
        ReleaseKind::Pseudonymized => None,
    };
    let diagnoses = match (&rare, &options.diagnosis_recoding, &options.kind) {
        (Some(rare), Some(recoding), ReleaseKind::Anonymized(rare_options))
            if tables.contains(&ClinicalTable::Conditions) =>
        {
            match table_file(extract_dir, ClinicalTable::Conditions) {
                Some(path) => Some(ConditionDiagnosisPlan::new(
                    &path,
                    key,
                    persons,
                    recoding.clone(),
                    rare.codes.get(&(ClinicalTable::Conditions, "icd10")),
                    rare.codes.get(&(ClinicalTable::Conditions, "medis_code")),
                    rare_options.min_persons,
                )?),
                None => None,
            }
        }
        _ => None,
    };
    let mut diagnosis_report = diagnoses.as_ref().map(ConditionDiagnosisReport::new);
    let items = match (
        &options.clinical_item_sets,
        &rare,
        &options.diagnosis_recoding,
        &options.kind,
    ) {
        (None, ..) => None,
        (Some(rule), Some(rare), Some(recoding), ReleaseKind::Anonymized(rare_options)) => {
            Some(ClinicalItemPlan::new(
                extract_dir,
                &tables,
                key,
                persons,
                recoding,
                |table| rare.codes.get(&(table, "code")),
                rule,
                rare_options.min_persons,
            )?)
        }
        (Some(_), ..) => {
            return Err(DeidentifyError::InvalidOption {
                option: "clinical_item_sets",
                reason: "the combined item set's k^m rule needs an anonymized release given                          the person table's diagnosis plans (diagnosis_recoding)"
                    .to_owned(),
            });
        }
    };
    let mut item_report = items.as_ref().map(ClinicalItemPlan::report);
    let staged = StagedDir::create(release_dir)?;
    let mut pseudonymizer = key.pseudonymizer()?;
    let mut report = ReleaseReport {
        project: key.project().to_owned(),
        kind: match options.kind {
            ReleaseKind::Pseudonymized => "pseudonymized",
            ReleaseKind::Anonymized(_) => "anonymized",
        }
        .to_owned(),
        release_dir: staged.target().to_path_buf(),
        persons: 0,
        provider_id: options.provider_id,
        max_date_shift_days: options.max_date_shift_days,
        pseudonym_method: "HMAC-SHA256 under the project's own random 256-bit key (stored \
                           wrapped by the master key, never released); stable across deliveries \
                           of the project, unlinkable across projects"
            .to_owned(),
        free_text: format!(
            "free-text columns {}: {}",
            match scrubber {
                Some(_) => "scrubbed of identifying mentions",
                None => "removed",
            },
            FREE_TEXT_COLUMNS
                .iter()
                .map(|(t, c)| format!("{}.{c}", t.name()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        tables: BTreeMap::new(),
        rare_values: None,
        free_text_scrub: None,
        diagnosis_sets: None,
        withheld_persons: None,
        clinical_item_sets: None,
    };
    let mut withheld = options
        .diagnosis_recoding
        .as_ref()
        .map(|_| WithheldPersonsReport {
            rule: "persons whose row the k-anonymization suppressed from the person table \
                   (persons.csv) are withheld from every table of the release: none of their \
                   rows is released, and the rare-value rules count only the persons released"
                .to_owned(),
            ..WithheldPersonsReport::default()
        });
    // Pseudonyms of the persons withheld: a few percent of the persons at most (the
    // suppression limit), never rows.
    let mut withheld_persons: HashSet<String> = HashSet::new();
    let mut scrub_counts: BTreeMap<String, ScrubCounts> = BTreeMap::new();
    let mut rare_report = rare.as_ref().map(|r| r.report.clone());
    for &table in &tables {
        let Some(input) = table_file(extract_dir, table) else {
            continue;
        };
        let mut writer = TableWriter::new(staged.path().join(format!("{}.parquet", table.name())));
        let mut table_report = None;
        let mut rows_withheld = 0u64;
        for_each_batch(table, &input, |batch| {
            let released;
            let batch = match &options.diagnosis_recoding {
                Some(recoding) => {
                    let (kept, withheld_rows) = without_withheld_persons(
                        batch,
                        table,
                        &input,
                        persons,
                        recoding,
                        &mut pseudonymizer,
                        &mut withheld_persons,
                    )?;
                    rows_withheld += withheld_rows;
                    released = kept;
                    &released
                }
                None => batch,
            };
            let transform = TableTransform {
                table,
                input: &input,
                options,
                persons,
                rare: rare.as_ref(),
                scrubber,
                diagnoses: diagnoses.as_ref(),
                items: items.as_ref(),
            };
            let (out, columns) = transform.apply(
                batch,
                &mut pseudonymizer,
                rare_report.as_mut(),
                &mut scrub_counts,
                diagnosis_report.as_mut(),
                item_report.as_mut(),
            )?;
            table_report.get_or_insert(columns);
            if out.num_rows() == 0 {
                return Ok(());
            }
            writer.write(&out)
        })?;
        let mut table_report = table_report.unwrap_or_default();
        if let Some((path, rows)) = writer.finish()? {
            table_report.rows = rows;
            table_report.file = path.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        report.tables.insert(table.name().to_owned(), table_report);
        if let Some(withheld) = withheld.as_mut().filter(|_| rows_withheld > 0) {
            withheld.rows += rows_withheld;
            withheld
                .rows_per_table
                .insert(table.name().to_owned(), rows_withheld);
            if let (ClinicalTable::Conditions, Some(conditions)) =
                (table, diagnosis_report.as_mut())
            {
                conditions.rows_of_withheld_persons += rows_withheld;
            }
        }
    }
    if let Some(withheld) = withheld.as_mut() {
        withheld.persons = withheld_persons.len() as u64;
    }
    // Every person pseudonymized is either released or withheld.
    report.persons = pseudonymizer
        .persons_seen()
        .saturating_sub(withheld_persons.len()) as u64;
    report.withheld_persons = withheld;
    report.rare_values = rare_report;
    report.diagnosis_sets = diagnosis_report;
    report.clinical_item_sets = item_report;
    if let Some(scrubber) = scrubber {
        let mut total = ScrubCounts::default();
        for counts in scrub_counts.values() {
            total.add(counts);
        }
        report.free_text_scrub = Some(FreeTextScrubReport {
            rule: "identifying mentions replaced by typed tags: names held in the identity store \
                   (full and family names of every person, given names of the text's own \
                   person; width, kana script, spaces and old kanji forms folded), other \
                   persons before an honorific (様, さん, 氏, 殿, 先生, 医師, 君, くん, ちゃん), \
                   names in Latin letters (Hepburn of the kana readings: full names of \
                   every person; family names alone of the text's own person, and of every \
                   person after a title or before an honorific such as Mr. or -san), \
                   phone numbers, postal codes, addresses, e-mail addresses, identifiers and \
                   long digit runs, birth dates (［氏名］［住所］［電話番号］［郵便番号］［メール］\
                   ［ID］［生年月日］［日付］)"
                .to_owned(),
            date_rule: match options.kind {
                ReleaseKind::Pseudonymized => {
                    "dates shifted by the person's offset, as the structured dates (intervals \
                     kept); a month and day without a year removed"
                }
                ReleaseKind::Anonymized(_) => {
                    "dates shifted by the person's offset and generalized to year and month; a \
                     month and day without a year removed"
                }
            }
            .to_owned(),
            opt_in: match options.kind {
                ReleaseKind::Pseudonymized => "scrubbing requested for a pseudonymized release",
                ReleaseKind::Anonymized(_) => {
                    "anonymized release: free text is dropped by default; scrubbing was \
                     explicitly requested (opt-in)"
                }
            }
            .to_owned(),
            dictionary_entries: scrubber.dictionary_entries() as u64,
            columns: scrub_counts,
            total,
        });
    }
    staged.commit()?;
    Ok(report)
}

/// The rare-value decisions of an anonymized release, made over all its input first.
struct RarePlan {
    codes: HashMap<(ClinicalTable, &'static str), CodePlan>,
    lab_limits: HashMap<String, (f64, f64)>,
    report: RareValueReport,
}

/// Plans the rare-value rules over the extraction. With `released` (the person table's plans
/// and the project key), rows of withheld persons are not counted, except in conditions:
/// there the person table's diagnosis sets were planned over every person, and the
/// conditions plan ([`ConditionDiagnosisPlan`]) counts the released rows again.
fn plan_rare_values(
    extract_dir: &Path,
    tables: &[ClinicalTable],
    persons: &PersonMap,
    options: &RareValueOptions,
    released: Option<(&DiagnosisRecoding, &ProjectKey)>,
) -> Result<RarePlan, DeidentifyError> {
    let mut pseudonymizer = match released {
        Some((_, key)) => Some(key.pseudonymizer()?),
        None => None,
    };
    let mut person_index: HashMap<PersonId, u32> = HashMap::new();
    let mut counts: HashMap<(ClinicalTable, &'static str), CodeCounts> = HashMap::new();
    // State bounded by distinct codes, persons per code and distinct lab values: never rows.
    let mut lab_values: HashMap<String, ValueCounts> = HashMap::new();
    for &table in tables {
        let rules: Vec<_> = CODE_RULES.iter().filter(|r| r.table == table).collect();
        if rules.is_empty() {
            continue;
        }
        let Some(path) = table_file(extract_dir, table) else {
            continue;
        };
        let mut columns: Vec<&str> = rules.iter().map(|r| r.column).collect();
        if table == ClinicalTable::LabObservations {
            columns.extend(["jlac10", "value"]);
        }
        for_each_projected_batch(table, &path, &columns, |batch| {
            let providers = string_column(batch, table, &path, "provider_id")?;
            let patient_keys = string_column(batch, table, &path, "patient_key")?;
            // `None`: the row's person is withheld, and the row is not counted.
            let row_persons: Vec<Option<u32>> = (0..batch.num_rows())
                .map(|row| {
                    let person = persons.person(providers.value(row), patient_keys.value(row));
                    if let (Some((recoding, _)), Some(pseudonymizer)) =
                        (released, pseudonymizer.as_mut())
                        && table != ClinicalTable::Conditions
                        && recoding
                            .person(&pseudonymizer.person(&person).pseudonym)
                            .is_none()
                    {
                        return None;
                    }
                    let next = person_index.len() as u32;
                    Some(*person_index.entry(person).or_insert(next))
                })
                .collect();
            for rule in &rules {
                let codes = string_column(batch, table, &path, rule.column)?;
                let counts = counts.entry((table, rule.column)).or_default();
                for (row, person) in row_persons.iter().enumerate() {
                    if let Some(person) = *person
                        && codes.is_valid(row)
                    {
                        counts.add(codes.value(row), person);
                    }
                }
            }
            if table == ClinicalTable::LabObservations {
                let codes = string_column(batch, table, &path, "jlac10")?;
                let values = float_column(batch, table, &path, "value")?;
                for (row, person) in row_persons.iter().enumerate() {
                    if person.is_some()
                        && codes.is_valid(row)
                        && values.is_valid(row)
                        && values.value(row).is_finite()
                    {
                        let code = codes.value(row);
                        match lab_values.get_mut(code) {
                            Some(counts) => counts.add(values.value(row)),
                            None => {
                                let mut counts = ValueCounts::default();
                                counts.add(values.value(row));
                                lab_values.insert(code.to_owned(), counts);
                            }
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
    let mut report = RareValueReport {
        min_persons: options.min_persons,
        ..RareValueReport::default()
    };
    let mut codes = HashMap::new();
    for rule in CODE_RULES {
        let Some(column_counts) = counts.get(&(rule.table, rule.column)) else {
            continue;
        };
        let mut column_report = CodeColumnReport::default();
        let plan = plan_codes(
            column_counts,
            rule.ladder,
            options.min_persons,
            &mut column_report,
        );
        report.code_columns.insert(
            format!("{}.{}", rule.table.name(), rule.column),
            column_report,
        );
        codes.insert((rule.table, rule.column), plan);
    }
    let mut lab_report = LabValueReport::default();
    let lab_limits = lab_limits(lab_values, options, &mut lab_report);
    report.lab_values = lab_report;
    Ok(RarePlan {
        codes,
        lab_limits,
        report,
    })
}

/// The rows of `batch` whose person is released (has a plan in `recoding`) and the number of
/// rows withheld; the pseudonyms of the persons withheld are added to `withheld`.
fn without_withheld_persons(
    batch: &RecordBatch,
    table: ClinicalTable,
    path: &Path,
    persons: &PersonMap,
    recoding: &DiagnosisRecoding,
    pseudonymizer: &mut Pseudonymizer,
    withheld: &mut HashSet<String>,
) -> Result<(RecordBatch, u64), DeidentifyError> {
    let providers = string_column(batch, table, path, "provider_id")?;
    let patient_keys = string_column(batch, table, path, "patient_key")?;
    let mut rows_withheld = 0u64;
    let kept: BooleanArray = (0..batch.num_rows())
        .map(|row| {
            let person = persons.person(providers.value(row), patient_keys.value(row));
            let pseudonym = &pseudonymizer.person(&person).pseudonym;
            let released = recoding.person(pseudonym).is_some();
            if !released {
                rows_withheld += 1;
                if !withheld.contains(pseudonym) {
                    withheld.insert(pseudonym.clone());
                }
            }
            Some(released)
        })
        .collect();
    if rows_withheld == 0 {
        return Ok((batch.clone(), 0));
    }
    let kept = filter_record_batch(batch, &kept).map_err(|e| table_error(table.name(), path, e))?;
    Ok((kept, rows_withheld))
}

fn string_column<'a>(
    batch: &'a RecordBatch,
    table: ClinicalTable,
    path: &Path,
    name: &str,
) -> Result<&'a StringArray, DeidentifyError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| table_error(table.name(), path, format!("no text column `{name}`")))
}

fn float_column<'a>(
    batch: &'a RecordBatch,
    table: ClinicalTable,
    path: &Path,
    name: &str,
) -> Result<&'a Float64Array, DeidentifyError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Float64Type>())
        .ok_or_else(|| table_error(table.name(), path, format!("no number column `{name}`")))
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The transformation of one table's batches.
struct TableTransform<'a> {
    table: ClinicalTable,
    input: &'a Path,
    options: &'a ReleaseOptions,
    persons: &'a PersonMap,
    rare: Option<&'a RarePlan>,
    scrubber: Option<&'a FreeTextScrubber>,
    /// The conditions table's diagnosis plan (anonymized releases under the k^m rule).
    diagnoses: Option<&'a ConditionDiagnosisPlan>,
    /// The plan of the combined item set (procedures, allergies, infections).
    items: Option<&'a ClinicalItemPlan>,
}

impl TableTransform<'_> {
    fn apply(
        &self,
        batch: &RecordBatch,
        pseudonymizer: &mut Pseudonymizer,
        mut rare_report: Option<&mut RareValueReport>,
        scrub_counts: &mut BTreeMap<String, ScrubCounts>,
        mut diagnosis_report: Option<&mut ConditionDiagnosisReport>,
        item_report: Option<&mut ClinicalItemSetReport>,
    ) -> Result<(RecordBatch, TableReleaseReport), DeidentifyError> {
        let table = self.table;
        let name = table.name();
        let providers = string_column(batch, table, self.input, "provider_id")?;
        let patient_keys = string_column(batch, table, self.input, "patient_key")?;
        let source_ids = string_column(batch, table, self.input, "source_id")?;
        let rows = batch.num_rows();
        let mut person_pseudonyms = Vec::with_capacity(rows);
        let mut offsets = Vec::with_capacity(rows);
        // Kept only when free text is scrubbed: its own names are the person's.
        let mut row_persons = Vec::new();
        for row in 0..rows {
            let person = self
                .persons
                .person(providers.value(row), patient_keys.value(row));
            let secrets = pseudonymizer.person(&person);
            person_pseudonyms.push(secrets.pseudonym.clone());
            offsets.push(secrets.offset_days(self.options.max_date_shift_days));
            if self.scrubber.is_some() {
                row_persons.push(person);
            }
        }
        // Conditions under the diagnosis-set rule: each row's fate, by the person's plan.
        let fates: Option<Vec<ConditionFate>> = match (self.diagnoses, table) {
            (Some(plan), ClinicalTable::Conditions) => {
                let codes = string_column(batch, table, self.input, "icd10")?;
                let icd10_plan = self
                    .rare
                    .and_then(|r| r.codes.get(&(ClinicalTable::Conditions, "icd10")));
                let fates: Vec<ConditionFate> = (0..rows)
                    .map(|row| {
                        let source = codes.is_valid(row).then(|| codes.value(row));
                        plan.fate(&person_pseudonyms[row], source, icd10_plan)
                    })
                    .collect();
                if let Some(report) = diagnosis_report.as_deref_mut() {
                    fates.iter().for_each(|fate| report.count(fate));
                }
                Some(fates)
            }
            _ => None,
        };
        // Procedures, allergies, infections under the combined item set's rule.
        let item_fates: Option<Vec<ItemFate>> =
            match (self.items, ITEM_TABLES.iter().find(|(t, _)| *t == table)) {
                (Some(plan), Some(&(_, qualifier))) => {
                    let codes = string_column(batch, table, self.input, "code")?;
                    let qualifiers = match qualifier {
                        Some(column) => Some(string_column(batch, table, self.input, column)?),
                        None => None,
                    };
                    let code_plan = self.rare.and_then(|r| r.codes.get(&(table, "code")));
                    let fates: Vec<ItemFate> = (0..rows)
                        .map(|row| {
                            let code = codes
                                .is_valid(row)
                                .then(|| match code_plan {
                                    Some(plan) => {
                                        plan.recode.get(codes.value(row)).cloned().flatten()
                                    }
                                    None => Some(codes.value(row).to_owned()),
                                })
                                .flatten();
                            let qualifier =
                                qualifiers.and_then(|q| q.is_valid(row).then(|| q.value(row)));
                            plan.fate(table, &person_pseudonyms[row], code.as_deref(), qualifier)
                        })
                        .collect();
                    if let Some(report) = item_report {
                        fates.iter().for_each(|&fate| report.count(table, fate));
                    }
                    Some(fates)
                }
                _ => None,
            };
        let records: StringArray = (0..rows)
            .map(|row| {
                Some(pseudonymizer.record(providers.value(row), name, source_ids.value(row)))
            })
            .collect();

        let mut report = TableReleaseReport::default();
        let mut fields: Vec<Field> = vec![
            Field::new(PERSON_COLUMN, DataType::Utf8, false),
            Field::new(RECORD_COLUMN, DataType::Utf8, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(person_pseudonyms.iter())),
            Arc::new(records),
        ];
        report
            .columns_pseudonymized
            .push(format!("patient_key → {PERSON_COLUMN}"));
        report
            .columns_pseudonymized
            .push(format!("source_id → {RECORD_COLUMN}"));
        report.columns_removed.push("intake_id".to_owned());
        match self.options.provider_id {
            ProviderHandling::Keep => {
                fields.push(Field::new("provider_id", DataType::Utf8, false));
                columns.push(batch.column(0).clone());
            }
            ProviderHandling::Pseudonymize => {
                let mut cache: HashMap<&str, String> = HashMap::new();
                let values: StringArray = (0..rows)
                    .map(|row| {
                        let provider = providers.value(row);
                        Some(
                            cache
                                .entry(provider)
                                .or_insert_with(|| pseudonymizer.provider(provider))
                                .clone(),
                        )
                    })
                    .collect();
                fields.push(Field::new("provider_id", DataType::Utf8, false));
                columns.push(Arc::new(values));
                report
                    .columns_pseudonymized
                    .push("provider_id → provider_id".to_owned());
            }
            ProviderHandling::Drop => report.columns_removed.push("provider_id".to_owned()),
        }

        let schema = batch.schema();
        let model = table.schema();
        for (index, field) in schema.fields().iter().enumerate() {
            let column_name = field.name().as_str();
            if matches!(
                column_name,
                "provider_id" | "intake_id" | "patient_key" | "source_id"
            ) {
                continue;
            }
            // Only the model's columns are released: anything else an extraction carries
            // (the operator's `person_id`, which `person` replaces) is removed.
            if model.field_with_name(column_name).is_err() {
                if !report.columns_removed.iter().any(|c| c == column_name) {
                    report.columns_removed.push(column_name.to_owned());
                }
                continue;
            }
            let array = batch.column(index);
            if FREE_TEXT_COLUMNS.contains(&(table, column_name)) {
                match self.scrubber {
                    Some(scrubber) => {
                        let texts = string_column(batch, table, self.input, column_name)?;
                        let counts = scrub_counts
                            .entry(format!("{name}.{column_name}"))
                            .or_default();
                        let scrubbed: StringArray = (0..rows)
                            .map(|row| {
                                texts.is_valid(row).then(|| {
                                    let rule = match self.options.kind {
                                        ReleaseKind::Pseudonymized => {
                                            DateRule::Shift { days: offsets[row] }
                                        }
                                        ReleaseKind::Anonymized(_) => {
                                            DateRule::YearMonth { days: offsets[row] }
                                        }
                                    };
                                    scrubber.scrub_for(
                                        texts.value(row),
                                        &row_persons[row],
                                        rule,
                                        counts,
                                    )
                                })
                            })
                            .collect();
                        let scrubbed = match &fates {
                            Some(fates) => without_detail(&scrubbed, fates, |_| false),
                            None => scrubbed,
                        };
                        fields.push(Field::new(column_name, DataType::Utf8, true));
                        columns.push(Arc::new(scrubbed));
                        report.columns_scrubbed.push(column_name.to_owned());
                    }
                    None => report.columns_removed.push(column_name.to_owned()),
                }
                continue;
            }
            if let Some((_, _, referenced)) = REFERENCE_COLUMNS
                .iter()
                .find(|(t, c, _)| *t == table && *c == column_name)
            {
                // A reference into a table the release leaves out joins nothing, and its
                // distinct values per person would count that table's rows (visits): removed.
                if !self.options.tables.is_empty() && !self.options.tables.contains(referenced) {
                    report.columns_removed.push(column_name.to_owned());
                    continue;
                }
                let references = string_column(batch, table, self.input, column_name)?;
                let values: StringArray = (0..rows)
                    .map(|row| {
                        references.is_valid(row).then(|| {
                            pseudonymizer.record(
                                providers.value(row),
                                referenced.name(),
                                references.value(row),
                            )
                        })
                    })
                    .collect();
                fields.push(Field::new(column_name, DataType::Utf8, true));
                columns.push(Arc::new(values));
                report
                    .columns_pseudonymized
                    .push(format!("{column_name} → {column_name}"));
                continue;
            }
            match field.data_type() {
                DataType::Date32 => {
                    let dates = array.as_primitive::<Date32Type>();
                    let shifted: Date32Array = (0..rows)
                        .map(|row| {
                            dates
                                .is_valid(row)
                                .then(|| dates.value(row).saturating_add(offsets[row] as i32))
                        })
                        .collect();
                    fields.push(field.as_ref().clone());
                    columns.push(Arc::new(shifted));
                    report.columns_date_shifted.push(column_name.to_owned());
                    continue;
                }
                DataType::Timestamp(TimeUnit::Microsecond, zone) => {
                    let times = array.as_primitive::<TimestampMicrosecondType>();
                    let shifted: TimestampMicrosecondArray = (0..rows)
                        .map(|row| {
                            times.is_valid(row).then(|| {
                                times
                                    .value(row)
                                    .saturating_add(offsets[row] * MICROS_PER_DAY)
                            })
                        })
                        .collect::<TimestampMicrosecondArray>()
                        .with_timezone_opt(zone.clone());
                    fields.push(field.as_ref().clone());
                    columns.push(Arc::new(shifted));
                    report.columns_date_shifted.push(column_name.to_owned());
                    continue;
                }
                DataType::Date64 | DataType::Timestamp(..) => {
                    // A date the shift cannot handle must not be released unshifted.
                    return Err(table_error(
                        name,
                        self.input,
                        format!("date column `{column_name}` has an unsupported type"),
                    ));
                }
                _ => {}
            }
            if let (Some(fates), "icd10") = (&fates, column_name) {
                let released: StringArray = fates
                    .iter()
                    .map(|fate| match fate {
                        ConditionFate::Kept { icd10, .. } => icd10.clone(),
                        ConditionFate::Removed(_) => None,
                    })
                    .collect();
                fields.push(Field::new(column_name, DataType::Utf8, true));
                columns.push(Arc::new(released));
                report.columns_recoded.push(column_name.to_owned());
                continue;
            }
            // The cause of death is a diagnosis of the person: released only as an item the
            // person's diagnosis set in the person table already releases (the category,
            // block or chapter), so it tells no more than `persons.csv` (k^m rule).
            if let (ClinicalTable::Deaths, "cause_icd10", Some(recoding)) =
                (table, column_name, &self.options.diagnosis_recoding)
            {
                let causes = string_column(batch, table, self.input, column_name)?;
                let mut as_item = 0;
                let mut removed = 0;
                let released: StringArray = (0..rows)
                    .map(|row| {
                        if !causes.is_valid(row) {
                            return None;
                        }
                        let category = icd10_category(causes.value(row));
                        let item = recoding
                            .person(&person_pseudonyms[row])
                            .and_then(|plan| plan.released(&category).flatten())
                            .filter(|_| !category.is_empty())
                            .map(str::to_owned);
                        match item {
                            Some(_) => as_item += 1,
                            None => removed += 1,
                        }
                        item
                    })
                    .collect();
                if let Some(report) = diagnosis_report.as_deref_mut() {
                    report.death_causes_as_item += as_item;
                    report.death_causes_removed += removed;
                }
                fields.push(Field::new(column_name, DataType::Utf8, true));
                columns.push(Arc::new(released));
                report.columns_recoded.push(column_name.to_owned());
                continue;
            }
            if let Some(rare) = self.rare {
                if let Some(plan) = rare.codes.get(&(table, column_name)) {
                    let codes = string_column(batch, table, self.input, column_name)?;
                    let recoded: StringArray = (0..rows)
                        .map(|row| {
                            if codes.is_valid(row) {
                                plan.recode.get(codes.value(row)).cloned().flatten()
                            } else {
                                None
                            }
                        })
                        .collect();
                    let recoded = match (&fates, self.diagnoses, column_name) {
                        (Some(fates), Some(plan), "medis_code") => {
                            without_detail(&recoded, fates, |code| plan.medis_removed(code))
                        }
                        _ => recoded,
                    };
                    // An allergy released as its category loses its code.
                    let recoded = match (&item_fates, table, column_name) {
                        (Some(fates), ClinicalTable::Allergies, "code") => {
                            without_generalized(&recoded, fates)
                        }
                        _ => recoded,
                    };
                    fields.push(Field::new(column_name, DataType::Utf8, true));
                    columns.push(Arc::new(recoded));
                    report.columns_recoded.push(column_name.to_owned());
                    continue;
                }
                if table == ClinicalTable::LabObservations && column_name == "value" {
                    let codes = string_column(batch, table, self.input, "jlac10")?;
                    let values = float_column(batch, table, self.input, "value")?;
                    let mut bottom = 0;
                    let mut top = 0;
                    let coded: Float64Array = (0..rows)
                        .map(|row| {
                            if !values.is_valid(row) {
                                return None;
                            }
                            let value = values.value(row);
                            let limits = codes
                                .is_valid(row)
                                .then(|| rare.lab_limits.get(codes.value(row)))
                                .flatten();
                            Some(match limits {
                                Some(&(low, _)) if value < low => {
                                    bottom += 1;
                                    low
                                }
                                Some(&(_, high)) if value > high => {
                                    top += 1;
                                    high
                                }
                                _ => value,
                            })
                        })
                        .collect();
                    if let Some(r) = rare_report.as_deref_mut() {
                        r.lab_values.values_bottom_coded += bottom;
                        r.lab_values.values_top_coded += top;
                    }
                    fields.push(field.as_ref().clone());
                    columns.push(Arc::new(coded));
                    report.columns_recoded.push(column_name.to_owned());
                    continue;
                }
            }
            // The finer column of a generalized item: the allergy's code system (its code is
            // removed above), the infection marker's result.
            if let (
                Some(fates),
                (ClinicalTable::Allergies, "code_system") | (ClinicalTable::Infections, "result"),
            ) = (&item_fates, (table, column_name))
            {
                let values = string_column(batch, table, self.input, column_name)?;
                fields.push(Field::new(column_name, DataType::Utf8, true));
                columns.push(Arc::new(without_generalized(values, fates)));
                report.columns_recoded.push(column_name.to_owned());
                continue;
            }
            fields.push(field.as_ref().clone());
            columns.push(array.clone());
        }
        let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| table_error(name, self.input, e))?;
        let kept: Option<BooleanArray> = match (&fates, &item_fates) {
            (Some(fates), _) => Some(
                fates
                    .iter()
                    .map(|fate| Some(matches!(fate, ConditionFate::Kept { .. })))
                    .collect(),
            ),
            (None, Some(fates)) => Some(fates.iter().map(|f| Some(f.is_released())).collect()),
            (None, None) => None,
        };
        let out = match kept {
            Some(kept) => {
                filter_record_batch(&out, &kept).map_err(|e| table_error(name, self.input, e))?
            }
            None => out,
        };
        Ok((out, report))
    }
}

/// `values` with a null wherever the row's item is released as its coarser item.
fn without_generalized(values: &StringArray, fates: &[ItemFate]) -> StringArray {
    fates
        .iter()
        .enumerate()
        .map(|(row, fate)| {
            (*fate != ItemFate::Generalized && values.is_valid(row))
                .then(|| values.value(row).to_owned())
        })
        .collect()
}

/// `values` with a null wherever the row's fate removes its detail (MEDIS code, name) or
/// `remove` says so of the value.
fn without_detail(
    values: &StringArray,
    fates: &[ConditionFate],
    remove: impl Fn(&str) -> bool,
) -> StringArray {
    fates
        .iter()
        .enumerate()
        .map(|(row, fate)| {
            let keep = matches!(
                fate,
                ConditionFate::Kept {
                    detail_removed: false,
                    ..
                }
            );
            (keep && values.is_valid(row) && !remove(values.value(row)))
                .then(|| values.value(row).to_owned())
        })
        .collect()
}
