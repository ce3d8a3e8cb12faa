//! Re-identification test (再識別テスト, R-P4): a linkage attack against a released person
//! table by an attacker who knows, with realistic errors, the birth date, sex and address
//! region of every person — what the identity store holds — and whether the person died,
//! and, at higher knowledge levels, roughly how often the person was seen and some of the
//! person's diagnoses, or some of the person's diagnoses, procedures, allergies and infection
//! results (a neighbour, an employer, a relative). The test reports the re-identified share
//! for each level and blocks on the worst.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use chrono::Days;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::DeidentifyError;
use crate::clinical_items::{ITEM_TABLES, coarser_item, item_kind_of, row_item};
use crate::diagnosis_sets::{
    DiagnosisRecoding, DiagnosisSetOptions, DiagnosisSetReport, diagnosis_covers,
    protect_diagnosis_sets_with_plan,
};
use crate::io::{io_error, write_file_atomic};
use crate::quasi::{
    DECEASED_COLUMN, KnownIdentity, PREFECTURES, PersonQuasiIdentifiers, QuasiIdentifierTable,
    age_at, deceased_label, postal_digits, postal_region,
};
use crate::release::PERSON_COLUMN;

/// The quasi-identifier columns an attacker can match: identity data and whether the person
/// died, then visits, then diagnoses.
const MATCHABLE_COLUMNS: [&str; 6] = [
    "age",
    "sex",
    "region",
    DECEASED_COLUMN,
    "visits",
    "diagnoses",
];
/// The demographic columns (indices into [`MATCHABLE_COLUMNS`]): what every level matches.
const DEMOGRAPHICS: usize = 4;
const REGION: usize = 2;
const VISITS: usize = 4;
const DIAGNOSES: usize = 5;
/// Kind of a diagnosis item (diagnosis labels carry no kind prefix).
const DIAGNOSIS_KIND: &str = "diagnosis";

/// What the attacker knows of every person. Each level adds to the one before, except that
/// [`AttackerKnowledge::ClinicalItems`] adds to [`AttackerKnowledge::Visits`]: its items
/// replace the diagnoses of [`AttackerKnowledge::Diagnoses`], since the k^m rule bounds what
/// an attacker knows to m items of any kinds together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackerKnowledge {
    /// Birth date (hence age), sex and address region, and whether the person died (matched
    /// against [`DECEASED_COLUMN`] when the release has it): what an identity register, with
    /// its record of deaths (住民票の除票), holds.
    Demographics,
    /// Also the approximate number of visits (off by up to
    /// [`AttackerErrorModel::visits_relative_error`]).
    Visits,
    /// Also [`AttackerErrorModel::known_diagnoses`] of the person's diagnosis categories (some
    /// of them wrong, [`AttackerErrorModel::wrong_diagnosis`]).
    Diagnoses,
    /// Demographics and visits, and [`AttackerErrorModel::known_items`] of the person's items
    /// of any kinds together — diagnosis categories, procedures (`procedure:<code>`),
    /// allergies (`allergy:<category>:<code>`) and infection results
    /// (`infection:<code>:<result>`) — as the k^m rule of the combined item set assumes; some
    /// are wrong ([`AttackerErrorModel::wrong_diagnosis`]: another item of the same kind).
    /// Diagnoses are matched against `diagnoses`, the other items against the released item
    /// tables ([`ReleasedPersonTable::read_clinical_items`]).
    ClinicalItems,
}

impl AttackerKnowledge {
    /// Every level, weakest first.
    pub const ALL: [AttackerKnowledge; 4] = [
        AttackerKnowledge::Demographics,
        AttackerKnowledge::Visits,
        AttackerKnowledge::Diagnoses,
        AttackerKnowledge::ClinicalItems,
    ];

    /// The columns the level matches (indices into the matchable columns).
    fn columns(self) -> &'static [usize] {
        match self {
            AttackerKnowledge::Demographics => &[0, 1, 2, 3],
            AttackerKnowledge::Visits => &[0, 1, 2, 3, VISITS],
            AttackerKnowledge::Diagnoses | AttackerKnowledge::ClinicalItems => {
                &[0, 1, 2, 3, VISITS, DIAGNOSES]
            }
        }
    }
}

/// Errors injected into the attacker's knowledge, as in real auxiliary data. Fields left out
/// of a serialized model take their [`Default`] values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttackerErrorModel {
    /// Seed of the error generator: a test is reproducible.
    pub seed: u64,
    /// Share of postal codes with one wrong digit.
    pub wrong_postal_digit: f64,
    /// Share of birth dates one day off.
    pub birth_day_off_by_one: f64,
    /// Share of each known value (birth date, sex, postal code, address, visits) missing.
    pub missing_value: f64,
    /// The attacker's count of visits is off by up to this share of the true count (uniform);
    /// the attacker matches every count within this share of what they believe, plus one.
    #[serde(default = "default_visits_error")]
    pub visits_relative_error: f64,
    /// Diagnosis categories the attacker knows of each person (fewer when the person has
    /// fewer).
    #[serde(default = "default_known_diagnoses")]
    pub known_diagnoses: usize,
    /// Share of known diagnoses that are wrong (a category the person does not have); at the
    /// [`AttackerKnowledge::ClinicalItems`] level, share of known items that are wrong (an
    /// item of the same kind the person does not have).
    #[serde(default = "default_wrong_diagnosis")]
    pub wrong_diagnosis: f64,
    /// Items of any kinds (diagnosis categories, procedures, allergies, infection results)
    /// the attacker knows of each person at the [`AttackerKnowledge::ClinicalItems`] level
    /// (fewer when the person has fewer): the m of the k^m rule (`kiban deidentify` sets it
    /// to the rule's m).
    #[serde(default = "default_known_diagnoses")]
    pub known_items: usize,
    /// Knowledge levels tested; the release is judged on the worst. Empty: demographics only.
    #[serde(default = "default_knowledge")]
    pub knowledge: Vec<AttackerKnowledge>,
}

fn default_visits_error() -> f64 {
    0.2
}

fn default_known_diagnoses() -> usize {
    2
}

fn default_wrong_diagnosis() -> f64 {
    0.05
}

fn default_knowledge() -> Vec<AttackerKnowledge> {
    AttackerKnowledge::ALL.to_vec()
}

impl Default for AttackerErrorModel {
    fn default() -> Self {
        Self {
            seed: 20_170_512,
            wrong_postal_digit: 0.05,
            birth_day_off_by_one: 0.05,
            missing_value: 0.05,
            visits_relative_error: default_visits_error(),
            known_diagnoses: default_known_diagnoses(),
            wrong_diagnosis: default_wrong_diagnosis(),
            known_items: default_known_diagnoses(),
            knowledge: default_knowledge(),
        }
    }
}

/// The result of one knowledge level (counts only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeLevelReport {
    /// The level.
    pub knowledge: AttackerKnowledge,
    /// Released columns matched at this level; at [`AttackerKnowledge::ClinicalItems`], then
    /// the released item tables matched (`procedures`, `allergies`, `infections`).
    pub matched_columns: Vec<String>,
    /// Attacker records that matched exactly one released row.
    pub unique_matches: u64,
    /// Unique matches that are the attacker record's true person.
    pub correct_reidentifications: u64,
    /// `correct_reidentifications / attempts`.
    pub share: f64,
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

/// Result of a linkage attack (counts only). The top-level counts are those of the worst
/// knowledge level (the highest share); `levels` has each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReidentificationReport {
    /// The knowledge level with the highest share.
    pub worst_level: AttackerKnowledge,
    /// Per knowledge level tested.
    pub levels: Vec<KnowledgeLevelReport>,
    /// Released columns matched at the worst level.
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
    /// Whether the worst level's share exceeds the limit: the release must not be provided.
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

/// A released person table: a `person` column and any of `age`, `sex`, `region`, `visits`,
/// `deceased` (`yes`/`no`), `diagnoses` (categories joined by `;`), with generalized values
/// (`[30-40[`, `30-39`, `90+`, `*`, masked codes such as `postal-1*`); and, when read
/// ([`ReleasedPersonTable::read_clinical_items`]), each person's items in the released
/// procedure, allergy and infection tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedPersonTable {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    clinical_items: Option<ReleasedClinicalItems>,
}

/// What a release shows of each person's procedures, allergies and infection results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ReleasedClinicalItems {
    /// Kinds whose table is in the release (`procedure`, `allergy`, `infection`).
    kinds: BTreeSet<String>,
    /// Table names read, for the report (`procedures`, ...).
    tables: Vec<String>,
    /// Per person pseudonym: the items the released rows stand for.
    by_person: HashMap<String, HashSet<String>>,
    /// Every item the release shows for anyone.
    shown: HashSet<String>,
}

impl ReleasedClinicalItems {
    fn add(&mut self, person: &str, item: String) {
        self.shown.insert(item.clone());
        match self.by_person.get_mut(person) {
            Some(items) => {
                items.insert(item);
            }
            None => {
                self.by_person
                    .insert(person.to_owned(), HashSet::from([item]));
            }
        }
    }

    /// Whether a released person's items are consistent with an item the attacker knows of
    /// a (non-diagnosis) kind: the person shows the item or its coarser item (a generalized
    /// allergy or infection). An item whose table is not released, or which the release shows
    /// for no one, neither as it is nor generalized (suppressed or removed as rare for every
    /// holder), tells the attacker nothing and excludes no one. An item the release shows for
    /// others but not for this person excludes the person, as a locally suppressed diagnosis
    /// does: that is the protection of local suppression.
    fn consistent(&self, person: &str, item: &str) -> bool {
        let kind = item_kind(item);
        if !self.kinds.contains(kind) {
            return true;
        }
        let coarser = coarser_item(item).flatten();
        let forms = std::iter::once(item).chain(coarser.as_deref());
        let shown: Vec<&str> = forms.filter(|f| self.shown.contains(*f)).collect();
        if shown.is_empty() {
            return true;
        }
        self.by_person
            .get(person)
            .is_some_and(|items| shown.iter().any(|f| items.contains(*f)))
    }
}

/// The kind of an item label: the prefix of a procedure, allergy or infection item, else a
/// diagnosis.
fn item_kind(item: &str) -> &str {
    match item.split_once(':') {
        Some((kind, _)) if coarser_item(item).is_some() => kind,
        _ => DIAGNOSIS_KIND,
    }
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
        Ok(Self {
            header,
            rows,
            clinical_items: None,
        })
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

    /// Applies the k^m rule of the diagnosis set ([`crate::protect_diagnosis_sets`]) to the
    /// `diagnoses` column, in place: to be run on the rows actually released (after the
    /// person table's k-anonymization dropped or generalized rows), so the rule holds in the
    /// file. Rows whose set is fully suppressed (`*`) are left out. `None` without such a
    /// column.
    pub fn protect_diagnoses(
        &mut self,
        options: &DiagnosisSetOptions,
    ) -> Result<Option<DiagnosisSetReport>, DeidentifyError> {
        Ok(self
            .protect_diagnoses_with_plan(options)?
            .map(|(report, _)| report))
    }

    /// [`ReleasedPersonTable::protect_diagnoses`], also returning each person's plan, keyed
    /// by the `person` column (persons whose set was `*` are left out). Without a `person`
    /// column the plans cannot be keyed: an error.
    pub fn protect_diagnoses_with_plan(
        &mut self,
        options: &DiagnosisSetOptions,
    ) -> Result<Option<(DiagnosisSetReport, DiagnosisRecoding)>, DeidentifyError> {
        let Some(column) = self.header.iter().position(|h| h == "diagnoses") else {
            return Ok(None);
        };
        let person_column = self
            .header
            .iter()
            .position(|h| h == PERSON_COLUMN)
            .ok_or_else(|| DeidentifyError::ReleasedTable {
                file: "person table".into(),
                line: 1,
                reason: format!("no `{PERSON_COLUMN}` column to key the diagnosis plans"),
            })?;
        let rows: Vec<usize> = (0..self.rows.len())
            .filter(|&r| self.rows[r][column].trim() != "*")
            .collect();
        let mut sets: Vec<String> = rows
            .iter()
            .map(|&r| std::mem::take(&mut self.rows[r][column]))
            .collect();
        let (report, plans) = protect_diagnosis_sets_with_plan(&mut sets, options)?;
        let mut recoding = DiagnosisRecoding::new();
        for ((&r, set), plan) in rows.iter().zip(sets).zip(plans) {
            self.rows[r][column] = set;
            recoding.insert(self.rows[r][person_column].clone(), plan);
        }
        Ok(Some((report, recoding)))
    }

    /// Writes the table as delimited text with its header, under a temporary name renamed
    /// into place.
    pub fn write_csv(&self, path: &Path, separator: u8) -> Result<(), DeidentifyError> {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(separator)
            .from_writer(Vec::new());
        writer
            .write_record(&self.header)
            .map_err(|e| io_error("write", path, e))?;
        for row in &self.rows {
            writer
                .write_record(row)
                .map_err(|e| io_error("write", path, e))?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| io_error("write", path, e.into_error()))?;
        write_file_atomic(path, &bytes)
    }

    /// The header.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The rows, in the header's column order.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    /// The person table as derived, ungeneralized (the worst case of a pseudonymized release).
    pub fn from_quasi_identifiers(table: &QuasiIdentifierTable) -> Self {
        Self {
            header: table.columns().iter().map(|c| (*c).to_owned()).collect(),
            rows: table
                .rows()
                .iter()
                .map(|r| crate::quasi::row_cells(r, table.columns()))
                .collect(),
            clinical_items: None,
        }
    }

    /// Reads what the release in `release_dir` shows of each person's procedures, allergies
    /// and infection results (`procedures.parquet`, `allergies.parquet`,
    /// `infections.parquet`, those present, keyed by their `person` column), for the
    /// [`AttackerKnowledge::ClinicalItems`] level. Each released row stands for the item its
    /// released columns give (`procedure:<code>`, `allergy:<category>:<code>` or
    /// `allergy:<category>` without a code, `infection:<code>:<result>` or `infection:<code>`
    /// without a result); rows removed by the release are simply absent. Without this call
    /// that level matches diagnoses only.
    pub fn read_clinical_items(&mut self, release_dir: &Path) -> Result<(), DeidentifyError> {
        let mut items = ReleasedClinicalItems::default();
        for (table, qualifier) in ITEM_TABLES {
            let path = release_dir.join(format!("{}.parquet", table.name()));
            if !path.is_file() {
                continue;
            }
            let released_error = |reason: String| DeidentifyError::ReleasedTable {
                file: path.clone(),
                line: 1,
                reason,
            };
            let file = File::open(&path).map_err(|e| io_error("open", &path, e))?;
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| released_error(format!("not a Parquet file: {e}")))?;
            let reader = crate::io::reader_of_columns(builder, |name| {
                name == PERSON_COLUMN || name == "code" || Some(name) == qualifier
            })
            .map_err(|e| released_error(format!("cannot be read: {e}")))?;
            items.kinds.insert(item_kind_of(table).to_owned());
            items.tables.push(table.name().to_owned());
            for batch in reader {
                let batch = batch.map_err(|e| released_error(format!("cannot be read: {e}")))?;
                let text = |name: &str| {
                    batch
                        .column_by_name(name)
                        .and_then(|c| arrow_array::cast::AsArray::as_string_opt::<i32>(c))
                        .ok_or_else(|| released_error(format!("no text column `{name}`")))
                };
                let persons = text(PERSON_COLUMN)?;
                let codes = text("code")?;
                let qualifiers = match qualifier {
                    Some(name) => Some(text(name)?),
                    None => None,
                };
                for row in 0..batch.num_rows() {
                    use arrow_array::Array;
                    if !persons.is_valid(row) {
                        continue;
                    }
                    let code = codes.is_valid(row).then(|| codes.value(row));
                    let qualifier = qualifiers.and_then(|q| q.is_valid(row).then(|| q.value(row)));
                    if let Some(item) = row_item(table, code, qualifier) {
                        items.add(persons.value(row), item);
                    }
                }
            }
        }
        self.clinical_items = Some(items);
        Ok(())
    }
}

/// What the attacker knows of one person, in released terms (`None`: unknown).
struct AttackerRecord {
    /// Age, sex, (unused: see `region`), deceased (`yes`/`no`).
    values: [Option<String>; DEMOGRAPHICS],
    /// What the attacker knows of the region, in every form the release may show it.
    region: RegionKnowledge,
    /// The range of visit counts the attacker accepts.
    visits: Option<(f64, f64)>,
    /// Diagnosis categories the attacker believes the person has.
    diagnoses: Vec<String>,
    /// Items of any kinds the attacker believes the person has
    /// ([`AttackerKnowledge::ClinicalItems`]).
    items: Vec<String>,
}

impl AttackerRecord {
    /// Whether a released value of demographic column `column` (index into the matchable
    /// columns) is consistent with what the attacker knows.
    fn demographic_consistent(&self, column: usize, released: &str) -> bool {
        if column == REGION {
            return self.region.consistent(released);
        }
        self.values[column]
            .as_deref()
            .is_none_or(|known| generalizes(released, known))
    }

    /// Every value of demographic column `column` a row of an ungeneralized release
    /// ([`is_plain`] values only) may show for this person, or `None` when any may.
    fn plain_values(&self, column: usize) -> Option<Vec<&str>> {
        if column == REGION {
            return self.region.plain_values();
        }
        self.values[column].as_deref().map(|v| vec![v])
    }
}

/// What the attacker knows of a person's region. The person table shows the prefecture of
/// the address when the identity store has one, else `postal-NN` of the postal code
/// ([`crate::region_of`]), both possibly generalized (地方区分 block, `postal-N*`, `*`): an
/// attacker who lacks the address but has the postal code must compare that code with a
/// prefecture, not its `postal-NN` with the prefecture's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RegionKnowledge {
    /// The prefecture of the address the attacker knows.
    prefecture: Option<String>,
    /// `postal-NN` of the postal code the attacker knows.
    postal_region: Option<String>,
    /// The prefectures of the postal code the attacker knows, looked up as in a public postal
    /// code dictionary ([`PostalDictionary`]), by the code's 3-digit postal area when the code
    /// is not found; empty when neither is.
    postal_prefectures: Vec<String>,
}

/// A postal code dictionary standing in for the public one (郵便番号データ) an attacker
/// would use: every postal code of the identity store with the prefectures of the addresses
/// recorded with it, and every 3-digit postal area (the code's first 3 digits) with the
/// prefectures seen for any of its codes. A code not found falls back to its area, as the
/// public dictionary, which maps every code to its prefecture, would place it; a code whose
/// area is unknown too is compared at the `postal-NN` level only.
#[derive(Debug, Default)]
struct PostalDictionary {
    /// Prefectures per full code (its digits).
    prefectures: HashMap<String, BTreeSet<String>>,
    /// Prefectures per 3-digit postal area. An area lies almost always within one
    /// prefecture, but every prefecture seen is kept: picking one could exclude a person.
    area_prefectures: HashMap<String, BTreeSet<String>>,
}

/// Digits of a postal code that name its postal area (3-digit 郵便区番号).
const POSTAL_AREA_DIGITS: usize = 3;

/// The 3-digit postal area of a code's digits, `None` when it has fewer digits.
fn postal_area(digits: &str) -> Option<&str> {
    // `postal_digits` yields ASCII digits only, so byte indices are character indices.
    digits.get(..POSTAL_AREA_DIGITS)
}

impl PostalDictionary {
    fn of(truth: &QuasiIdentifierTable) -> Self {
        let mut dictionary = Self::default();
        for known in truth.known() {
            if let (Some(code), Some(prefecture)) = (&known.postal_code, &known.prefecture) {
                dictionary.insert(&postal_digits(code), prefecture);
            }
        }
        dictionary
    }

    fn insert(&mut self, digits: &str, prefecture: &str) {
        if digits.is_empty() {
            return;
        }
        if let Some(area) = postal_area(digits) {
            self.area_prefectures
                .entry(area.to_owned())
                .or_default()
                .insert(prefecture.to_owned());
        }
        self.prefectures
            .entry(digits.to_owned())
            .or_default()
            .insert(prefecture.to_owned());
    }

    /// The prefectures of a postal code, sorted: those of the code when it is found, else
    /// those of its 3-digit postal area, else none (unknown).
    ///
    /// The fallback never excludes a true person who gives a correct code: a person's row
    /// shows a prefecture only when the store has the person's address, and then the
    /// person's (code, prefecture) pair is in this dictionary, so the code is found with
    /// its prefecture (and its area holds that prefecture too, were it consulted). A person without an address is shown
    /// as `postal-NN`, which is compared with the code's digits, not its prefectures.
    fn lookup(&self, postal_code: &str) -> Vec<String> {
        let digits = postal_digits(postal_code);
        self.prefectures
            .get(&digits)
            .or_else(|| postal_area(&digits).and_then(|area| self.area_prefectures.get(area)))
            .map(|p| p.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Whether a released region is at the prefecture level: a prefecture or a 地方区分 block.
fn is_prefecture_level(released: &str) -> bool {
    PREFECTURES.contains(&released) || !kiban_model::block_prefectures(released).is_empty()
}

impl RegionKnowledge {
    /// Whether a released (possibly generalized) region may be the person's. A known address
    /// prefecture decides, since the release shows it whenever the store has it (a row in
    /// `postal-` form is then someone else's). Without it, a prefecture-level value is
    /// compared with the postal code's prefectures (by its postal area when the code is not
    /// found), and excludes no one when neither is found; a `postal-` value with the code's
    /// `postal-NN`.
    fn consistent(&self, released: &str) -> bool {
        let released = released.trim();
        if released.is_empty() || released == "*" {
            return true;
        }
        if let Some(prefecture) = &self.prefecture {
            return generalizes(released, prefecture);
        }
        if is_prefecture_level(released) {
            return self.postal_prefectures.is_empty()
                || self
                    .postal_prefectures
                    .iter()
                    .any(|p| generalizes(released, p));
        }
        self.postal_region
            .as_deref()
            .is_none_or(|postal| generalizes(released, postal))
    }

    /// The values an ungeneralized release may show for the person, or `None` when any
    /// prefecture may be (nothing known, or a postal code whose area is not found either).
    fn plain_values(&self) -> Option<Vec<&str>> {
        if let Some(prefecture) = &self.prefecture {
            return Some(vec![prefecture.as_str()]);
        }
        let postal = self.postal_region.as_deref()?;
        if self.postal_prefectures.is_empty() {
            return None;
        }
        Some(
            std::iter::once(postal)
                .chain(self.postal_prefectures.iter().map(String::as_str))
                .collect(),
        )
    }
}

/// Every true item of the truth table per kind (diagnosis categories and the kinds of
/// [`crate::clinical_items`]), sorted: where a wrong item is drawn from.
fn items_by_kind(truth: &QuasiIdentifierTable) -> HashMap<&str, Vec<&str>> {
    let mut by_kind: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for known in truth.known() {
        for item in known.diagnoses.iter().chain(&known.items) {
            by_kind
                .entry(item_kind(item))
                .or_default()
                .insert(item.as_str());
        }
    }
    by_kind
        .into_iter()
        .map(|(kind, items)| (kind, items.into_iter().collect()))
        .collect()
}

/// The attacker's knowledge of up to [`AttackerErrorModel::known_items`] of the person's true
/// items of any kinds, some replaced by a wrong item of the same kind.
fn item_knowledge(
    known: &KnownIdentity,
    by_kind: &HashMap<&str, Vec<&str>>,
    errors: &AttackerErrorModel,
    rng: &mut ChaCha8Rng,
) -> Vec<String> {
    let mut own: Vec<&str> = known
        .diagnoses
        .iter()
        .chain(&known.items)
        .map(String::as_str)
        .collect();
    own.sort_unstable();
    own.dedup();
    let holds = |item: &str| {
        known
            .diagnoses
            .iter()
            .chain(&known.items)
            .any(|i| i == item)
    };
    let mut believed = Vec::new();
    while believed.len() < errors.known_items && !own.is_empty() {
        let pick = own.swap_remove(rng.random_range(0..own.len()));
        let mut item = pick.to_owned();
        if rng.random_bool(errors.wrong_diagnosis.clamp(0.0, 1.0)) {
            let pool = by_kind.get(item_kind(pick)).map_or(&[][..], Vec::as_slice);
            // A few draws suffice unless the person holds nearly every item of the kind, in
            // which case the attacker keeps the true one.
            for _ in 0..32 {
                if pool.is_empty() {
                    break;
                }
                let other = pool[rng.random_range(0..pool.len())];
                if !holds(other) {
                    item = other.to_owned();
                    break;
                }
            }
        }
        believed.push(item);
    }
    believed
}

/// The attacker's approximate knowledge of visits and diagnoses.
fn clinical_knowledge(
    row: &PersonQuasiIdentifiers,
    true_diagnoses: &[String],
    categories: &[&str],
    errors: &AttackerErrorModel,
    rng: &mut ChaCha8Rng,
) -> (Option<(f64, f64)>, Vec<String>) {
    let e = errors.visits_relative_error.clamp(0.0, 0.95);
    let visits = if rng.random_bool(errors.missing_value.clamp(0.0, 1.0)) {
        None
    } else {
        let truth = row.visits as f64;
        let believed = (truth * (1.0 + rng.random_range(-1.0..=1.0) * e)).round();
        // The attacker knows their count may be off by the share either way. The rounding of
        // the belief (up to half a visit) is divided by the share too: with a large share it
        // exceeds the one visit of slack, and the true count must stay in the range.
        Some((
            ((believed / (1.0 + e)).floor() - 1.0).min(((believed - 0.5) / (1.0 + e)).floor()),
            ((believed / (1.0 - e)).ceil() + 1.0).max(((believed + 0.5) / (1.0 - e)).ceil()),
        ))
    };
    // The attacker knows the person's true categories, not the released (generalized) ones.
    let mut own: Vec<&str> = true_diagnoses.iter().map(String::as_str).collect();
    let mut known = Vec::new();
    while known.len() < errors.known_diagnoses && !own.is_empty() {
        let pick = own.swap_remove(rng.random_range(0..own.len()));
        let wrong = rng.random_bool(errors.wrong_diagnosis.clamp(0.0, 1.0));
        let others: Vec<&str> = categories
            .iter()
            .copied()
            .filter(|c| !true_diagnoses.iter().any(|d| d == c))
            .collect();
        if wrong && !others.is_empty() {
            known.push(others[rng.random_range(0..others.len())].to_owned());
        } else {
            known.push(pick.to_owned());
        }
    }
    (visits, known)
}

fn attacker_record(
    known: &KnownIdentity,
    row: &PersonQuasiIdentifiers,
    postal_dictionary: &PostalDictionary,
    categories: &[&str],
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
    // The region is derived as the release derives it (crate::region_of), keeping each form.
    let region = RegionKnowledge {
        prefecture,
        postal_region: postal.as_deref().and_then(postal_region),
        postal_prefectures: postal
            .as_deref()
            .map(|p| postal_dictionary.lookup(p))
            .unwrap_or_default(),
    };
    let (visits, diagnoses) = clinical_knowledge(row, &known.diagnoses, categories, errors, rng);
    AttackerRecord {
        values: [age, sex, None, None],
        region,
        visits,
        diagnoses,
        items: Vec::new(),
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

/// Whether a released value matches only itself (not empty, suppressed, masked, a range or
/// a 地方区分 block, which covers its prefectures).
fn is_plain(value: &str) -> bool {
    let value = value.trim();
    !value.is_empty()
        && !value.contains('*')
        && kiban_model::block_prefectures(value).is_empty()
        && (value.parse::<f64>().is_ok() || numeric_range_contains(value, 0.0).is_none())
}

/// A numeric range: low and high bounds, each with whether it is included.
#[derive(Debug, Clone, Copy, PartialEq)]
struct NumericRange {
    low: f64,
    low_inclusive: bool,
    high: f64,
    high_inclusive: bool,
}

impl NumericRange {
    fn contains(&self, number: f64) -> bool {
        let above = if self.low_inclusive {
            number >= self.low
        } else {
            number > self.low
        };
        let below = if self.high_inclusive {
            number <= self.high
        } else {
            number < self.high
        };
        above && below
    }

    /// Whether some number of `low..=high` lies in the range.
    fn meets(&self, low: f64, high: f64) -> bool {
        let above = if self.high_inclusive {
            low <= self.high
        } else {
            low < self.high
        };
        let below = if self.low_inclusive {
            high >= self.low
        } else {
            high > self.low
        };
        above && below
    }
}

/// `Some(whether number lies in it)` when `released` reads as a number or a numeric range.
fn numeric_range_contains(released: &str, number: f64) -> Option<bool> {
    numeric_range(released).map(|r| r.contains(number))
}

/// The range a released value stands for, when it reads as a number or a numeric range.
fn numeric_range(released: &str) -> Option<NumericRange> {
    let parse = |s: &str| s.trim().parse::<f64>().ok();
    let range = |low, low_inclusive, high, high_inclusive| NumericRange {
        low,
        low_inclusive,
        high,
        high_inclusive,
    };
    if let Some(value) = parse(released) {
        return Some(range(value, true, value, true));
    }
    for prefix in [">=", "≥"] {
        if let Some(low) = released.strip_prefix(prefix).and_then(parse) {
            return Some(range(low, true, f64::INFINITY, true));
        }
    }
    if let Some(low) = released.strip_suffix('+').and_then(parse) {
        return Some(range(low, true, f64::INFINITY, true));
    }
    if let Some(high) = released.strip_prefix('<').and_then(parse) {
        return Some(range(f64::NEG_INFINITY, true, high, false));
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
    Some(range(low, low_inclusive, high, high_inclusive))
}

/// Whether a released visits value is consistent with the attacker's range of counts.
fn visits_consistent(released: &str, low: f64, high: f64) -> bool {
    let released = released.trim();
    if released.is_empty() || released == "*" {
        return true;
    }
    match numeric_range(released) {
        Some(range) => range.meets(low, high),
        // A masked count (`1*`): any count of the range it could stand for.
        None => (low.max(0.0) as u64..=high.max(0.0) as u64)
            .take(10_000)
            .any(|n| generalizes(released, &n.to_string())),
    }
}

/// Whether a released diagnoses value holds every category the attacker believes in: the
/// category itself, or its WHO block or chapter when the k^m rule generalized it.
fn diagnoses_consistent(released: &str, known: &[String]) -> bool {
    let released = released.trim();
    if released == "*" {
        return true;
    }
    known.iter().all(|k| {
        released.split(';').any(|d| {
            let d = d.trim();
            d == k || diagnosis_covers(d, k) || generalizes(d, k)
        })
    })
}

/// Released rows grouped by their demographics (values → row indices), the attack's first
/// step. Without generalized values consistency is equality, and lookups find the groups.
struct DemographicIndex<'a> {
    /// The demographic columns present: (index into the matchable columns, released column).
    columns: Vec<(usize, usize)>,
    groups: HashMap<Vec<&'a str>, Vec<usize>>,
    /// Whether every value matches only itself ([`is_plain`]).
    plain: bool,
}

impl<'a> DemographicIndex<'a> {
    fn new(released: &'a ReleasedPersonTable, positions: &[Option<usize>]) -> Self {
        let columns: Vec<(usize, usize)> = (0..DEMOGRAPHICS)
            .filter_map(|c| positions[c].map(|j| (c, j)))
            .collect();
        let mut groups: HashMap<Vec<&str>, Vec<usize>> = HashMap::new();
        for (r, row) in released.rows.iter().enumerate() {
            let key = columns.iter().map(|&(_, j)| row[j].as_str()).collect();
            groups.entry(key).or_default().push(r);
        }
        let plain = groups
            .keys()
            .all(|values| values.iter().all(|v| is_plain(v)));
        Self {
            columns,
            groups,
            plain,
        }
    }

    /// Replaces `candidates` by the rows whose demographics are consistent with the
    /// attacker's.
    fn candidates(&self, attacker: &AttackerRecord, candidates: &mut Vec<usize>) {
        candidates.clear();
        let plain_values: Option<Vec<Vec<&str>>> = self
            .columns
            .iter()
            .map(|&(c, _)| attacker.plain_values(c))
            .collect();
        match plain_values.filter(|_| self.plain) {
            Some(alternatives) => {
                // Every combination of the values the person's row may show (only the
                // region may have several).
                let mut keys: Vec<Vec<&str>> = vec![Vec::new()];
                for values in &alternatives {
                    keys = keys
                        .iter()
                        .flat_map(|key| {
                            values.iter().map(move |v| {
                                let mut longer = key.clone();
                                longer.push(*v);
                                longer
                            })
                        })
                        .collect();
                }
                keys.sort_unstable();
                keys.dedup();
                for key in &keys {
                    if let Some(rows) = self.groups.get(key) {
                        candidates.extend_from_slice(rows);
                    }
                }
            }
            None => {
                for (values, rows) in &self.groups {
                    let consistent = values
                        .iter()
                        .zip(&self.columns)
                        .all(|(value, &(c, _))| attacker.demographic_consistent(c, value));
                    if consistent {
                        candidates.extend_from_slice(rows);
                    }
                }
            }
        }
    }
}

/// Runs the linkage attack: for every person of `truth` (the person table derived by the
/// operator, holding in memory what the identity store knows), an attacker record with
/// injected errors is matched against every released row; it re-identifies its person when it
/// matches exactly one row and that row carries the person's pseudonym. Each knowledge level
/// of `errors.knowledge` is tested with the same attacker records; the report's share is the
/// worst level's, and the policy judges that. Whether the person died and the items of the
/// [`AttackerKnowledge::ClinicalItems`] level come from the truth (the extraction's deaths,
/// diagnoses, procedures, allergies and infections) and are drawn from a random stream of
/// their own, so the other knowledge is the same whichever levels are tested.
///
/// Cost: released rows are indexed by their (age, sex, region, deceased) when those are not
/// generalized, so an attacker record knowing all of them looks at the rows sharing them
/// only; other records scan the rows. The item level adds, per candidate row, a hash lookup
/// per known item.
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
    // Index in the released header of each matchable column.
    let positions: Vec<Option<usize>> = MATCHABLE_COLUMNS
        .iter()
        .map(|name| released.header.iter().position(|h| h == name))
        .collect();
    if positions[..3].iter().all(Option::is_none) {
        return Err(DeidentifyError::ReleasedTable {
            file: "header".into(),
            line: 1,
            reason: "none of the columns age, sex, region".to_owned(),
        });
    }
    let mut levels: Vec<AttackerKnowledge> = if errors.knowledge.is_empty() {
        vec![AttackerKnowledge::Demographics]
    } else {
        errors.knowledge.clone()
    };
    levels.sort();
    levels.dedup();

    let index = DemographicIndex::new(released, &positions);
    let mut candidates: Vec<usize> = Vec::new();

    let mut categories: Vec<&str> = truth
        .known()
        .iter()
        .flat_map(|k| k.diagnoses.iter().map(String::as_str))
        .collect();
    categories.sort_unstable();
    categories.dedup();

    let by_kind = items_by_kind(truth);
    let postal_dictionary = PostalDictionary::of(truth);
    // A known diagnosis the release shows for no one, neither as it is nor generalized
    // (suppressed or removed for every holder), tells the attacker nothing: it must not
    // exclude the person's own row.
    let shown_diagnoses: BTreeSet<&str> = positions[DIAGNOSES]
        .map(|j| {
            released
                .rows
                .iter()
                .flat_map(|row| row[j].split(';').map(str::trim))
                .filter(|d| !d.is_empty() && *d != "*")
                .collect()
        })
        .unwrap_or_default();
    let mut diagnosis_shown: HashMap<String, bool> = HashMap::new();
    let mut is_shown = |category: &String| {
        if let Some(&shown) = diagnosis_shown.get(category) {
            return shown;
        }
        let shown = shown_diagnoses
            .iter()
            .any(|d| *d == category || diagnosis_covers(d, category) || generalizes(d, category));
        diagnosis_shown.insert(category.clone(), shown);
        shown
    };

    let mut rng = ChaCha8Rng::seed_from_u64(errors.seed);
    // Whether the person died and the items of any kinds are drawn from a stream of their
    // own, so the other knowledge is drawn as before they were modelled.
    let mut later_rng = ChaCha8Rng::seed_from_u64(errors.seed);
    later_rng.set_stream(1);
    let mut unique = vec![0u64; levels.len()];
    let mut correct = vec![0u64; levels.len()];
    for (row, known) in truth.rows().iter().zip(truth.known()) {
        let mut attacker = attacker_record(
            known,
            row,
            &postal_dictionary,
            &categories,
            errors,
            &mut rng,
        );
        // The truth: whether the person has a row in the extraction's deaths table.
        if !later_rng.random_bool(errors.missing_value.clamp(0.0, 1.0)) {
            attacker.values[3] = row.deceased.map(|d| deceased_label(d).to_owned());
        }
        attacker.items = item_knowledge(known, &by_kind, errors, &mut later_rng);
        // The known items split into diagnoses (matched against `diagnoses`) and the others
        // (matched against the released item tables).
        let (mut item_diagnoses, other_items): (Vec<String>, Vec<String>) = attacker
            .items
            .iter()
            .cloned()
            .partition(|i| item_kind(i) == DIAGNOSIS_KIND);
        if positions[DIAGNOSES].is_some() {
            attacker.diagnoses.retain(&mut is_shown);
            item_diagnoses.retain(&mut is_shown);
        }
        index.candidates(&attacker, &mut candidates);
        for (l, level) in levels.iter().enumerate() {
            let mut matches = 0usize;
            let mut only = None;
            for &r in &candidates {
                let values = &released.rows[r];
                // Demographics were matched by the candidate groups.
                let consistent = level.columns().iter().filter(|&&c| c >= VISITS).all(|&c| {
                    let Some(j) = positions[c] else {
                        return true;
                    };
                    let value = values[j].as_str();
                    match (c, level) {
                        (VISITS, _) => attacker
                            .visits
                            .is_none_or(|(low, high)| visits_consistent(value, low, high)),
                        (_, AttackerKnowledge::ClinicalItems) => {
                            diagnoses_consistent(value, &item_diagnoses)
                        }
                        _ => diagnoses_consistent(value, &attacker.diagnoses),
                    }
                }) && (*level != AttackerKnowledge::ClinicalItems
                    || released.clinical_items.as_ref().is_none_or(|shown| {
                        let person = values[person_column].as_str();
                        other_items
                            .iter()
                            .all(|item| shown.consistent(person, item))
                    }));
                if consistent {
                    matches += 1;
                    only = Some(values[person_column].as_str());
                    if matches > 1 {
                        break;
                    }
                }
            }
            if matches == 1 {
                unique[l] += 1;
                if only == Some(row.person.as_str()) {
                    correct[l] += 1;
                }
            }
        }
    }
    let attempts = truth.rows().len() as u64;
    let share_of = |n: u64| {
        if attempts == 0 {
            0.0
        } else {
            n as f64 / attempts as f64
        }
    };
    let level_reports: Vec<KnowledgeLevelReport> = levels
        .iter()
        .enumerate()
        .map(|(l, &knowledge)| KnowledgeLevelReport {
            knowledge,
            matched_columns: knowledge
                .columns()
                .iter()
                .filter(|&&c| positions[c].is_some())
                .map(|&c| MATCHABLE_COLUMNS[c].to_owned())
                .chain(
                    released
                        .clinical_items
                        .iter()
                        .filter(|_| knowledge == AttackerKnowledge::ClinicalItems)
                        .flat_map(|items| items.tables.iter().cloned()),
                )
                .collect(),
            unique_matches: unique[l],
            correct_reidentifications: correct[l],
            share: share_of(correct[l]),
        })
        .collect();
    // The first level with the highest share (ties go to the weaker knowledge).
    let worst = level_reports
        .iter()
        .fold(None::<&KnowledgeLevelReport>, |best, level| match best {
            Some(b) if b.share >= level.share => Some(b),
            _ => Some(level),
        })
        .cloned()
        .ok_or_else(|| DeidentifyError::InvalidOption {
            option: "knowledge",
            reason: "no knowledge level to test".to_owned(),
        })?;
    Ok(ReidentificationReport {
        worst_level: worst.knowledge,
        matched_columns: worst.matched_columns.clone(),
        released_rows: released.rows.len() as u64,
        attempts,
        unique_matches: worst.unique_matches,
        correct_reidentifications: worst.correct_reidentifications,
        share: worst.share,
        max_share: policy.max_share,
        blocked: worst.share > policy.max_share,
        levels: level_reports,
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

    use chrono::NaiveDate;

    /// (birth year, sex, prefecture, visits, diagnoses)
    const PERSONS: [(i32, &str, &str, u64, &str); 6] = [
        (1950, "male", "東京都", 3, "E11"),
        (1950, "male", "東京都", 3, "I10"),
        (1950, "male", "東京都", 10, "E11"),
        (1960, "female", "大阪府", 5, ""),
        (1970, "female", "大阪府", 2, "J45"),
        (1970, "female", "大阪府", 2, "J45"),
    ];

    /// One person of a hand-made truth, seen on 2020-01-01 and born on June 1st of
    /// `birth_year`.
    struct FixturePerson<'a> {
        birth_year: i32,
        sex: &'a str,
        prefecture: Option<&'a str>,
        postal_code: Option<&'a str>,
        /// The released region.
        region: String,
        visits: u64,
        deceased: Option<bool>,
        /// `;`-separated.
        diagnoses: &'a str,
        items: &'a [&'a str],
    }

    /// The truth of `persons`, named `P0`, `P1`, … in order: each person's row and what the
    /// attacker may know of the person.
    fn truth_table<'a>(
        persons: impl IntoIterator<Item = FixturePerson<'a>>,
    ) -> QuasiIdentifierTable {
        let at = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        let (rows, known) = persons
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let birth = NaiveDate::from_ymd_opt(p.birth_year, 6, 1).unwrap();
                (
                    PersonQuasiIdentifiers {
                        person: format!("P{i}"),
                        age: age_at(birth, at).unwrap().to_string(),
                        sex: p.sex.to_owned(),
                        region: p.region,
                        visits: p.visits,
                        deceased: p.deceased,
                        diagnoses: p.diagnoses.to_owned(),
                    },
                    KnownIdentity {
                        birth_date: Some(birth),
                        sex: Some(p.sex.to_owned()),
                        postal_code: p.postal_code.map(str::to_owned),
                        prefecture: p.prefecture.map(str::to_owned),
                        index_date: Some(at),
                        diagnoses: p
                            .diagnoses
                            .split(';')
                            .filter(|d| !d.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        items: p.items.iter().map(|s| (*s).to_owned()).collect(),
                    },
                )
            })
            .unzip();
        QuasiIdentifierTable::from_parts(rows, known)
    }

    fn constructed() -> QuasiIdentifierTable {
        truth_table(
            PERSONS.iter().map(
                |&(birth_year, sex, prefecture, visits, diagnoses)| FixturePerson {
                    birth_year,
                    sex,
                    prefecture: Some(prefecture),
                    postal_code: None,
                    region: prefecture.to_owned(),
                    visits,
                    deceased: None,
                    diagnoses,
                    items: &[],
                },
            ),
        )
    }

    fn exact_attacker() -> AttackerErrorModel {
        AttackerErrorModel {
            wrong_postal_digit: 0.0,
            birth_day_off_by_one: 0.0,
            missing_value: 0.0,
            visits_relative_error: 0.0,
            known_diagnoses: 1,
            wrong_diagnosis: 0.0,
            ..AttackerErrorModel::default()
        }
    }

    /// The share re-identified, recomputed by brute force: an attacker knowing a person's
    /// exact demographics, visits within one and (each person here has at most one) diagnosis
    /// singles the person out when no other person is consistent.
    fn brute_force_share(level: AttackerKnowledge) -> f64 {
        let mut singled_out = 0;
        for (i, a) in PERSONS.iter().enumerate() {
            let consistent = PERSONS
                .iter()
                .enumerate()
                .filter(|(_, b)| {
                    let demographics = a.0 == b.0 && a.1 == b.1 && a.2 == b.2;
                    let visits = level < AttackerKnowledge::Visits || a.3.abs_diff(b.3) <= 1;
                    let diagnoses =
                        level < AttackerKnowledge::Diagnoses || a.4.is_empty() || a.4 == b.4;
                    demographics && visits && diagnoses
                })
                .map(|(j, _)| j)
                .collect::<Vec<_>>();
            if consistent == [i] {
                singled_out += 1;
            }
        }
        singled_out as f64 / PERSONS.len() as f64
    }

    #[test]
    fn each_knowledge_level_is_reported_and_the_worst_decides() {
        let truth = constructed();
        let released = ReleasedPersonTable::from_quasi_identifiers(&truth);
        let report = linkage_attack(
            &truth,
            &released,
            &exact_attacker(),
            &ReidentificationPolicy { max_share: 0.5 },
        )
        .unwrap();
        assert_eq!(report.levels.len(), 4);
        for level in &report.levels[..3] {
            assert_eq!(
                level.share,
                brute_force_share(level.knowledge),
                "{:?}",
                level.knowledge
            );
        }
        // 1/6 by demographics, 2/6 with visits, 4/6 with a diagnosis; the items here are the
        // diagnoses alone, so the clinical items level finds the same.
        let shares: Vec<f64> = report.levels.iter().map(|l| l.share).collect();
        assert_eq!(shares, [1.0 / 6.0, 2.0 / 6.0, 4.0 / 6.0, 4.0 / 6.0]);
        assert_eq!(report.worst_level, AttackerKnowledge::Diagnoses);
        assert_eq!(report.share, 4.0 / 6.0);
        assert!(report.blocked);
        assert!(report.enforce().is_err());
        assert_eq!(
            report.levels[2].matched_columns,
            ["age", "sex", "region", "visits", "diagnoses"]
        );

        // Configured to demographics only, the same release passes.
        let demographics_only = AttackerErrorModel {
            knowledge: vec![AttackerKnowledge::Demographics],
            ..exact_attacker()
        };
        let report = linkage_attack(
            &truth,
            &released,
            &demographics_only,
            &ReidentificationPolicy { max_share: 0.5 },
        )
        .unwrap();
        assert_eq!(report.levels.len(), 1);
        assert!(!report.blocked);

        // Generalized visits and a suppressed diagnoses column: the ranges are matched.
        let rows: Vec<Vec<String>> = truth
            .rows()
            .iter()
            .map(|r| {
                let visits = if r.visits < 5 { "[0-5[" } else { "[5-15[" };
                vec![
                    r.person.clone(),
                    r.age.clone(),
                    r.sex.clone(),
                    r.region.clone(),
                    visits.to_owned(),
                    "*".to_owned(),
                ]
            })
            .collect();
        let header = ["person", "age", "sex", "region", "visits", "diagnoses"]
            .map(str::to_owned)
            .to_vec();
        let generalized = ReleasedPersonTable::new(header, rows).unwrap();
        let report = linkage_attack(
            &truth,
            &generalized,
            &exact_attacker(),
            &ReidentificationPolicy { max_share: 0.5 },
        )
        .unwrap();
        // P2 (10 visits) alone in [5-15[ among its demographics, and P3 alone: 2 of 6.
        let shares: Vec<f64> = report.levels.iter().map(|l| l.share).collect();
        assert_eq!(shares, [1.0 / 6.0, 2.0 / 6.0, 2.0 / 6.0, 2.0 / 6.0]);
        assert_eq!(report.worst_level, AttackerKnowledge::Visits);
    }

    #[test]
    fn visit_ranges_and_diagnosis_sets_are_matched_as_generalized() {
        assert!(visits_consistent("[0-5[", 3.0, 6.0));
        assert!(!visits_consistent("[0-5[", 5.0, 9.0));
        assert!(visits_consistent("5", 4.0, 6.0));
        assert!(!visits_consistent("7", 4.0, 6.0));
        assert!(visits_consistent("*", 100.0, 200.0));
        assert!(visits_consistent("10+", 8.0, 12.0));
        assert!(diagnoses_consistent("E11;I10", &["I10".to_owned()]));
        assert!(!diagnoses_consistent("E11;I10", &["J45".to_owned()]));
        assert!(diagnoses_consistent("", &[]));
        assert!(diagnoses_consistent("*", &["J45".to_owned()]));
        // Generalized by the k^m rule: a block or chapter covers its categories.
        assert!(diagnoses_consistent("E10-E14;I10", &["E11".to_owned()]));
        assert!(diagnoses_consistent("IX I00-I99", &["I10".to_owned()]));
        assert!(!diagnoses_consistent("E10-E14", &["E15".to_owned()]));
    }

    /// Four persons of the same demographics and visits, told apart only by whether they
    /// died and by their procedures, allergies and infection results.
    fn clinical_truth(deceased: [bool; 4], items: [&[&str]; 4]) -> QuasiIdentifierTable {
        truth_table((0..4).map(|i| FixturePerson {
            birth_year: 1950,
            sex: "male",
            prefecture: Some("東京都"),
            postal_code: None,
            region: "東京都".to_owned(),
            visits: 3,
            deceased: Some(deceased[i]),
            diagnoses: "",
            items: items[i],
        }))
    }

    /// The attacker knows everything exactly, every item included.
    fn knows_all_items() -> AttackerErrorModel {
        AttackerErrorModel {
            known_items: 4,
            ..exact_attacker()
        }
    }

    fn level_share(report: &ReidentificationReport, level: AttackerKnowledge) -> f64 {
        report
            .levels
            .iter()
            .find(|l| l.knowledge == level)
            .unwrap()
            .share
    }

    /// The truth table released as it is, with released items per person.
    fn released_with_items(
        truth: &QuasiIdentifierTable,
        tables: &[ClinicalTable],
        items: &[(&str, &str)],
    ) -> ReleasedPersonTable {
        let mut released = ReleasedPersonTable::from_quasi_identifiers(truth);
        let mut shown = ReleasedClinicalItems::default();
        for &table in tables {
            shown.kinds.insert(item_kind_of(table).to_owned());
            shown.tables.push(table.name().to_owned());
        }
        for (person, item) in items {
            shown.add(person, (*item).to_owned());
        }
        released.clinical_items = Some(shown);
        released
    }

    use kiban_model::ClinicalTable;

    #[test]
    fn a_deceased_mismatch_excludes_a_candidate() {
        // P0 alone died: an attacker who knows it singles P0 out by demographics alone.
        let truth = clinical_truth([true, false, false, false], [&[], &[], &[], &[]]);
        let released = ReleasedPersonTable::from_quasi_identifiers(&truth);
        assert!(released.header().iter().any(|h| h == DECEASED_COLUMN));
        let report = linkage_attack(
            &truth,
            &released,
            &exact_attacker(),
            &ReidentificationPolicy { max_share: 1.0 },
        )
        .unwrap();
        let demographics = &report.levels[0];
        assert_eq!(demographics.knowledge, AttackerKnowledge::Demographics);
        assert_eq!(
            demographics.matched_columns,
            ["age", "sex", "region", "deceased"]
        );
        // P0 is the only one matched uniquely (the three others share a class of three).
        assert_eq!(demographics.unique_matches, 1);
        assert_eq!(demographics.correct_reidentifications, 1);
        // Without the column (the attack before `deceased` was modelled), nobody is.
        let without = ReleasedPersonTable::new(
            released
                .header()
                .iter()
                .filter(|h| *h != DECEASED_COLUMN)
                .cloned()
                .collect(),
            released
                .rows()
                .iter()
                .map(|r| {
                    r.iter()
                        .zip(released.header())
                        .filter(|(_, h)| *h != DECEASED_COLUMN)
                        .map(|(c, _)| c.clone())
                        .collect()
                })
                .collect(),
        )
        .unwrap();
        let report = linkage_attack(
            &truth,
            &without,
            &exact_attacker(),
            &ReidentificationPolicy { max_share: 1.0 },
        )
        .unwrap();
        assert_eq!(report.levels[0].unique_matches, 0);
        // `*` (a generalized deceased) excludes no one.
        assert!(generalizes("*", "yes"));
        assert!(!generalizes("no", "yes"));
    }

    #[test]
    fn a_generalized_item_matches_its_generalization() {
        // P0 and P1 hold different food allergens, P2 a marker's result; P3 nothing.
        let truth = clinical_truth(
            [false; 4],
            [
                &["allergy:food:A"],
                &["allergy:food:B"],
                &["infection:5F0:positive"],
                &[],
            ],
        );
        // Exact release: each item tells its holder apart.
        let exact = released_with_items(
            &truth,
            &[ClinicalTable::Allergies, ClinicalTable::Infections],
            &[
                ("P0", "allergy:food:A"),
                ("P1", "allergy:food:B"),
                ("P2", "infection:5F0:positive"),
            ],
        );
        let policy = ReidentificationPolicy { max_share: 1.0 };
        let report = linkage_attack(&truth, &exact, &knows_all_items(), &policy).unwrap();
        assert_eq!(
            report.levels[3].matched_columns,
            [
                "age",
                "sex",
                "region",
                "deceased",
                "visits",
                "diagnoses",
                "allergies",
                "infections"
            ]
        );
        // P0, P1, P2 by their item; P3 knows no item and matches all four.
        assert_eq!(
            level_share(&report, AttackerKnowledge::ClinicalItems),
            3.0 / 4.0
        );
        assert_eq!(level_share(&report, AttackerKnowledge::Diagnoses), 0.0);
        assert_eq!(report.worst_level, AttackerKnowledge::ClinicalItems);

        // Allergens generalized to their category, the result withheld: P0's known
        // `allergy:food:A` matches both `allergy:food` holders, so neither is singled out;
        // P2's known result matches `infection:5F0` and P2 stays alone.
        let generalized = released_with_items(
            &truth,
            &[ClinicalTable::Allergies, ClinicalTable::Infections],
            &[
                ("P0", "allergy:food"),
                ("P1", "allergy:food"),
                ("P2", "infection:5F0"),
            ],
        );
        let report = linkage_attack(&truth, &generalized, &knows_all_items(), &policy).unwrap();
        let level = &report.levels[3];
        assert_eq!(level.unique_matches, 1);
        assert_eq!(level.correct_reidentifications, 1);
        let shown = generalized.clinical_items.as_ref().unwrap();
        assert!(shown.consistent("P0", "allergy:food:A"));
        assert!(shown.consistent("P1", "allergy:food:A"));
        assert!(!shown.consistent("P3", "allergy:food:A"));
        assert!(shown.consistent("P2", "infection:5F0:negative"));
    }

    #[test]
    fn a_suppressed_item_does_not_exclude_but_a_locally_suppressed_one_excludes_its_holder() {
        // P0 alone had the procedure; P1 and P2 share another.
        let truth = clinical_truth(
            [false; 4],
            [&["procedure:X"], &["procedure:Y"], &["procedure:Y"], &[]],
        );
        let policy = ReidentificationPolicy { max_share: 1.0 };
        // Procedure X suppressed (for its only holder, so for everyone): the release shows it
        // for no one, its absence tells nothing, and P0 matches all four persons.
        let suppressed = released_with_items(
            &truth,
            &[ClinicalTable::Procedures],
            &[("P1", "procedure:Y"), ("P2", "procedure:Y")],
        );
        let shown = suppressed.clinical_items.as_ref().unwrap();
        for person in ["P0", "P1", "P2", "P3"] {
            assert!(shown.consistent(person, "procedure:X"));
        }
        // A kind whose table is not released excludes no one either.
        assert!(shown.consistent("P3", "allergy:food:A"));
        let report = linkage_attack(&truth, &suppressed, &knows_all_items(), &policy).unwrap();
        assert_eq!(report.levels[3].unique_matches, 0);

        // Y suppressed for P2 only (local suppression), shown for P1: the attacker who knows
        // P2 had Y now finds P1 alone, a wrong match; and P1's own attacker, P1.
        let local = released_with_items(
            &truth,
            &[ClinicalTable::Procedures],
            &[("P1", "procedure:Y")],
        );
        let shown = local.clinical_items.as_ref().unwrap();
        assert!(!shown.consistent("P2", "procedure:Y"));
        let report = linkage_attack(&truth, &local, &knows_all_items(), &policy).unwrap();
        let level = &report.levels[3];
        assert_eq!(level.unique_matches, 2);
        assert_eq!(level.correct_reidentifications, 1);

        // Without the released item tables read, the level matches diagnoses only.
        let unread = ReleasedPersonTable::from_quasi_identifiers(&truth);
        let report = linkage_attack(&truth, &unread, &knows_all_items(), &policy).unwrap();
        assert_eq!(report.levels[3].unique_matches, 0);
    }

    #[test]
    fn known_items_are_drawn_from_every_kind_with_wrong_ones_of_the_same_kind() {
        let truth = clinical_truth(
            [false; 4],
            [
                &["procedure:X", "allergy:food:A", "infection:5F0:positive"],
                &["procedure:Y"],
                &["procedure:Z"],
                &[],
            ],
        );
        let by_kind = items_by_kind(&truth);
        assert_eq!(
            by_kind["procedure"],
            ["procedure:X", "procedure:Y", "procedure:Z"]
        );
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let two = AttackerErrorModel {
            known_items: 2,
            ..exact_attacker()
        };
        let known = &truth.known()[0];
        for _ in 0..20 {
            let drawn = item_knowledge(known, &by_kind, &two, &mut rng);
            assert_eq!(drawn.len(), 2);
            assert!(drawn.iter().all(|i| known.items.contains(i)));
            assert_ne!(drawn[0], drawn[1]);
        }
        // Always wrong: another procedure than the person's, never another kind.
        let wrong = AttackerErrorModel {
            known_items: 1,
            wrong_diagnosis: 1.0,
            ..exact_attacker()
        };
        let only_procedure = &truth.known()[1];
        for _ in 0..20 {
            let drawn = item_knowledge(only_procedure, &by_kind, &wrong, &mut rng);
            assert_eq!(drawn.len(), 1);
            assert!(drawn[0] == "procedure:X" || drawn[0] == "procedure:Z");
        }
    }

    /// One person of a hand-made truth: (address prefecture, postal code, visits,
    /// diagnoses); everyone is a man born on 1950-06-01. The released region is derived as
    /// the person table derives it ([`crate::region_of`]).
    type Person<'a> = (Option<&'a str>, Option<&'a str>, u64, &'a str);

    fn truth_of(persons: &[Person]) -> QuasiIdentifierTable {
        truth_table(
            persons.iter().map(
                |&(prefecture, postal_code, visits, diagnoses)| FixturePerson {
                    birth_year: 1950,
                    sex: "male",
                    prefecture,
                    postal_code,
                    region: crate::region_of(prefecture, postal_code).unwrap_or_default(),
                    visits,
                    deceased: None,
                    diagnoses,
                    items: &[],
                },
            ),
        )
    }

    /// The truth's person table with its region generalized to `level` of the release's
    /// region hierarchy (0: as derived, 1: 地方区分 block or `postal-N*`, 2: `*`).
    fn released_at_region_level(truth: &QuasiIdentifierTable, level: usize) -> ReleasedPersonTable {
        let regions: Vec<&str> = truth.rows().iter().map(|r| r.region.as_str()).collect();
        let hierarchy = crate::hierarchy_rows("region", regions.iter().copied()).unwrap();
        let mut released = ReleasedPersonTable::from_quasi_identifiers(truth);
        let column = released.header.iter().position(|h| h == "region").unwrap();
        for row in &mut released.rows {
            let ladder = hierarchy.iter().find(|h| h[0] == row[column]).unwrap();
            row[column] = ladder[level].clone();
        }
        released
    }

    /// The exact attacker's record of person `i`, with the address missing when
    /// `without_address` (what the error model's missing-value draw does).
    fn record_of(truth: &QuasiIdentifierTable, i: usize, without_address: bool) -> AttackerRecord {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut record = attacker_record(
            &truth.known()[i],
            &truth.rows()[i],
            &PostalDictionary::of(truth),
            &[],
            &exact_attacker(),
            &mut rng,
        );
        if without_address {
            record.region.prefecture = None;
        }
        record
    }

    fn candidates_of(released: &ReleasedPersonTable, attacker: &AttackerRecord) -> Vec<String> {
        let positions: Vec<Option<usize>> = MATCHABLE_COLUMNS
            .iter()
            .map(|name| released.header.iter().position(|h| h == name))
            .collect();
        let index = DemographicIndex::new(released, &positions);
        let mut rows = Vec::new();
        index.candidates(attacker, &mut rows);
        let mut persons: Vec<String> = rows.iter().map(|&r| released.rows[r][0].clone()).collect();
        persons.sort();
        persons
    }

    /// Every person of `truth`, known with the correct code and with or without the address,
    /// stays a candidate of `released` (the release at region `level`).
    fn assert_every_person_a_candidate(
        truth: &QuasiIdentifierTable,
        released: &ReleasedPersonTable,
        level: usize,
    ) {
        for person in 0..truth.rows().len() {
            for without_address in [false, true] {
                let attacker = record_of(truth, person, without_address);
                assert!(
                    candidates_of(released, &attacker).contains(&format!("P{person}")),
                    "P{person} (address known: {}) excluded at level {level}",
                    !without_address
                );
            }
        }
    }

    #[test]
    fn a_postal_code_without_the_address_keeps_the_person_at_every_region_level() {
        // P0 and P1 have an address (region: its prefecture), P2 a postal code only (region:
        // `postal-15`, sharing its first two digits with P0's code).
        let truth = truth_of(&[
            (Some("東京都"), Some("150-0001"), 1, ""),
            (Some("大阪府"), Some("530-0001"), 1, ""),
            (None, Some("１５１-0053"), 1, ""),
        ]);
        assert_eq!(truth.rows()[0].region, "東京都");
        assert_eq!(truth.rows()[2].region, "postal-15");
        let expected = [
            ["東京都", "大阪府", "postal-15"],
            ["関東地方", "近畿地方", "postal-1*"],
            ["*", "*", "*"],
        ];
        for (level, shown) in expected.iter().enumerate() {
            let released = released_at_region_level(&truth, level);
            let regions: Vec<&str> = released.rows.iter().map(|r| r[3].as_str()).collect();
            assert_eq!(&regions, shown, "level {level}");
            assert_every_person_a_candidate(&truth, &released, level);
        }
        // Without the address, P0's postal code is read as 東京都 (its prefecture in the
        // dictionary) and as `postal-15`: P2's row stays a candidate, P1's (大阪府) not.
        let p0 = record_of(&truth, 0, true);
        assert_eq!(p0.region.postal_prefectures, ["東京都"]);
        let exact = released_at_region_level(&truth, 0);
        assert_eq!(candidates_of(&exact, &p0), ["P0", "P2"]);
        // With the address, the release would show P0's prefecture: `postal-` rows are
        // someone else's.
        assert_eq!(candidates_of(&exact, &record_of(&truth, 0, false)), ["P0"]);
    }

    #[test]
    fn a_genuinely_different_prefecture_excludes() {
        let truth = truth_of(&[
            (Some("東京都"), Some("150-0001"), 1, ""),
            (Some("大阪府"), Some("530-0001"), 1, ""),
        ]);
        for without_address in [false, true] {
            // P1's attacker (大阪府, by address or by postal code) against P0's row.
            let p1 = record_of(&truth, 1, without_address);
            for (level, p0_excluded) in [(0, true), (1, true), (2, false)] {
                let released = released_at_region_level(&truth, level);
                let candidates = candidates_of(&released, &p1);
                assert_eq!(
                    !candidates.contains(&"P0".to_owned()),
                    p0_excluded,
                    "level {level}, address known: {}",
                    !without_address
                );
                assert!(candidates.contains(&"P1".to_owned()));
            }
        }
        // A postal code nobody's address gives (a wrong digit) says nothing of the
        // prefecture: no prefecture-level row is excluded, `postal-` rows are compared.
        let unknown_code = postal_only_record(&truth, "990-0001");
        assert!(unknown_code.region.postal_prefectures.is_empty());
        assert!(unknown_code.region.consistent("東京都"));
        assert!(unknown_code.region.consistent("近畿地方"));
        assert!(!unknown_code.region.consistent("postal-15"));
        assert!(unknown_code.region.consistent("postal-9*"));
        let exact = released_at_region_level(&truth, 0);
        assert_eq!(candidates_of(&exact, &unknown_code), ["P0", "P1"]);
    }

    /// A record knowing only the postal code `code` (no address), as the attacker of
    /// `truth` would read it.
    fn postal_only_record(truth: &QuasiIdentifierTable, code: &str) -> AttackerRecord {
        let mut record = record_of(truth, 0, true);
        record.region = RegionKnowledge {
            prefecture: None,
            postal_region: postal_region(code),
            postal_prefectures: PostalDictionary::of(truth).lookup(code),
        };
        record
    }

    #[test]
    fn a_code_not_found_falls_back_to_the_prefectures_of_its_postal_area() {
        // Area 150 lies in 東京都 only, area 151 (here) in 東京都 and 神奈川県, area 530 in
        // 大阪府; P4 has a postal code only, absent from the dictionary (no address).
        let truth = truth_of(&[
            (Some("東京都"), Some("150-0001"), 1, ""),
            (Some("大阪府"), Some("530-0001"), 1, ""),
            (Some("東京都"), Some("151-0001"), 1, ""),
            (Some("神奈川県"), Some("151-0002"), 1, ""),
            (None, Some("530-0099"), 1, ""),
        ]);
        let dictionary = PostalDictionary::of(&truth);
        assert_eq!(dictionary.lookup("150-0001"), ["東京都"]);
        // A found code is not widened by its area.
        assert_eq!(dictionary.lookup("151-0002"), ["神奈川県"]);
        assert_eq!(dictionary.lookup("１５０-9999"), ["東京都"]);
        assert_eq!(dictionary.lookup("151-9999"), ["東京都", "神奈川県"]);
        assert!(dictionary.lookup("990-0001").is_empty());
        assert!(dictionary.lookup("15").is_empty());

        let exact = released_at_region_level(&truth, 0);
        let blocks = released_at_region_level(&truth, 1);
        // Unknown code of a known area: narrowed to 東京都, 大阪府's row excluded.
        let one_prefecture = postal_only_record(&truth, "150-9999");
        assert_eq!(one_prefecture.region.postal_prefectures, ["東京都"]);
        assert!(!one_prefecture.region.consistent("大阪府"));
        assert!(!one_prefecture.region.consistent("近畿地方"));
        assert_eq!(candidates_of(&exact, &one_prefecture), ["P0", "P2"]);
        assert_eq!(candidates_of(&blocks, &one_prefecture), ["P0", "P2", "P3"]);
        // An area of two prefectures keeps both.
        let two_prefectures = postal_only_record(&truth, "151-9999");
        assert!(two_prefectures.region.consistent("東京都"));
        assert!(two_prefectures.region.consistent("神奈川県"));
        assert!(!two_prefectures.region.consistent("大阪府"));
        assert_eq!(candidates_of(&exact, &two_prefectures), ["P0", "P2", "P3"]);
        // An unknown area excludes no prefecture-level row.
        let unknown_area = postal_only_record(&truth, "990-0001");
        assert_eq!(
            candidates_of(&exact, &unknown_area),
            ["P0", "P1", "P2", "P3"]
        );
        assert_eq!(
            candidates_of(&blocks, &unknown_area),
            ["P0", "P1", "P2", "P3"]
        );
        // P4's own code is found by its area only (大阪府), yet P4's row (`postal-53`) stays.
        let p4 = record_of(&truth, 4, true);
        assert_eq!(p4.region.postal_prefectures, ["大阪府"]);
        assert_eq!(candidates_of(&exact, &p4), ["P1", "P4"]);

        // Every true person with a correct code stays a candidate at every region level,
        // with or without the address.
        for level in 0..3 {
            let released = released_at_region_level(&truth, level);
            assert_every_person_a_candidate(&truth, &released, level);
        }
    }

    #[test]
    fn a_release_generalized_to_regional_blocks_is_matched_through_them() {
        // Every region a block: the values are not plain (a block covers its prefectures),
        // so the person's row is found though its cell differs from the known prefecture.
        let truth = constructed();
        let mut released = ReleasedPersonTable::from_quasi_identifiers(&truth);
        for row in &mut released.rows {
            row[3] = crate::region_block(&row[3]).unwrap().to_owned();
        }
        let demographics_only = AttackerErrorModel {
            knowledge: vec![AttackerKnowledge::Demographics],
            ..exact_attacker()
        };
        let policy = ReidentificationPolicy { max_share: 1.0 };
        let report = linkage_attack(&truth, &released, &demographics_only, &policy).unwrap();
        // One block per prefecture here: the same share as the exact release (P3 alone).
        assert_eq!(report.share, 1.0 / 6.0);
        assert!(!is_plain("関東地方"));
    }

    #[test]
    fn a_diagnosis_shown_for_no_one_excludes_no_one() {
        // Same demographics; P0 alone holds X00, P1 alone Y00 and more visits.
        let truth = truth_of(&[
            (Some("東京都"), None, 3, "X00;Z00"),
            (Some("東京都"), None, 9, "Y00;Z00"),
        ]);
        let policy = ReidentificationPolicy { max_share: 1.0 };
        let knows_both = AttackerErrorModel {
            known_diagnoses: 2,
            ..exact_attacker()
        };
        let share_at_diagnoses = |released: &ReleasedPersonTable| {
            let report = linkage_attack(&truth, released, &knows_both, &policy).unwrap();
            level_share(&report, AttackerKnowledge::Diagnoses)
        };
        let exact = ReleasedPersonTable::from_quasi_identifiers(&truth);
        assert_eq!(share_at_diagnoses(&exact), 1.0);
        // X00 suppressed for its only holder: the release shows it for no one, so the
        // attacker who knows it still finds P0 (by visits and Z00).
        let mut suppressed = exact.clone();
        let column = suppressed
            .header
            .iter()
            .position(|h| h == "diagnoses")
            .unwrap();
        suppressed.rows[0][column] = "Z00".to_owned();
        assert_eq!(share_at_diagnoses(&suppressed), 1.0);
        // Y00 shown for P1 but left out of P0's row instead (local suppression) excludes P0
        // for an attacker who believes P0 holds Y00: the protection of suppression.
        assert!(!diagnoses_consistent("Z00", &["Y00".to_owned()]));
    }

    #[test]
    fn the_visits_range_holds_the_true_count_under_a_large_error() {
        let row = truth_of(&[(None, None, 29, "")]).rows()[0].clone();
        for e in [0.0, 0.2, 0.5, 0.8, 0.95] {
            let errors = AttackerErrorModel {
                visits_relative_error: e,
                ..exact_attacker()
            };
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            for _ in 0..200 {
                let (visits, _) = clinical_knowledge(&row, &[], &[], &errors, &mut rng);
                let (low, high) = visits.unwrap();
                assert!(low <= 29.0 && 29.0 <= high, "e {e}: {low}..={high}");
            }
        }
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
