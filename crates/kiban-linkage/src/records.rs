//! Loading the identity CSV of issue 5 into compact normalized records.
//!
//! The CSV is read as a stream; each row is normalized (names, birth date, sex, postal code,
//! address, insurance card) and only the normalized comparison keys are kept, as ids into a
//! [`StringPool`] (a value shared by many records, such as a surname or a municipality, is stored
//! once). The raw row is not kept: a record costs a few dozen bytes plus its share of the pool.
//!
//! Errors name the line and the column, never the value.

use crate::compare::InsuranceCard;
use crate::normalize::address::{normalize_address, normalize_postal_code};
use crate::normalize::date::{DateError, parse_birth_date};
use crate::normalize::insurance::{
    normalize_branch, normalize_card_field, validate_insurer_number,
};
use crate::normalize::name::{normalize_kana_name, normalize_kanji_name};
use crate::normalize::sex::parse_sex;
use chrono::NaiveDate;
use kiban_model::Sex;
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};

/// The columns of the identity CSV, in the order of the header.
pub const IDENTITY_COLUMNS: [&str; 13] = [
    "record_id",
    "hospital_id",
    "hospital_patient_id",
    "name_kanji",
    "name_kana",
    "sex",
    "birth_date",
    "postal_code",
    "address",
    "insurer_number",
    "insured_symbol",
    "insured_number",
    "insured_branch",
];

/// Why the identity CSV could not be loaded. Messages name the file, line and column, never a
/// value.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The header lacks a required column.
    #[error("{path}: header: missing column `{column}`")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: &'static str,
    },
    /// A field is not valid UTF-8.
    #[error("{path}: line {line}: column `{column}`: text is not valid UTF-8")]
    InvalidText {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The column.
        column: &'static str,
    },
    /// A birth date is impossible, outside its era or not in a recognized form.
    #[error("{path}: line {line}: column `{column}`: {rule}")]
    InvalidDate {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The column.
        column: &'static str,
        /// The rule that failed.
        rule: DateError,
    },
    /// A row has another number of fields than the header.
    #[error("{path}: line {line}: {found} fields where the header has {expected}")]
    FieldCount {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Fields in the header.
        expected: u64,
        /// Fields in the row.
        found: u64,
    },
    /// The same record id appears twice.
    #[error(
        "{path}: line {line}: column `record_id`: duplicate record id (first on line {first_line})"
    )]
    DuplicateRecordId {
        /// The file.
        path: PathBuf,
        /// 1-based line number of the repeat.
        line: u64,
        /// 1-based line number of the first occurrence.
        first_line: u64,
    },
    /// A record id is empty.
    #[error("{path}: line {line}: column `record_id`: empty")]
    EmptyRecordId {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
    },
    /// Any other CSV syntax error.
    #[error("{path}: line {line}: malformed CSV")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when unknown).
        line: u64,
    },
}

/// Strings stored once, referred to by a `u32` id. Id 0 is the empty string. The strings lie
/// end to end in one buffer (a few bytes of overhead per string, not an allocation each); while
/// loading, an index from each string's 64-bit hash to its id finds repeats.
#[derive(Debug, Default)]
pub struct StringPool {
    text: String,
    /// Where each string starts in `text`, and one last entry where the last string ends.
    starts: Vec<u64>,
    index: FxHashMap<u64, u32>,
    /// Strings whose hash is another string's (rare): by their text.
    collisions: FxHashMap<Box<str>, u32>,
}

impl StringPool {
    /// An empty pool holding only the empty string (id 0).
    pub fn new() -> StringPool {
        let mut pool = StringPool {
            starts: vec![0],
            ..StringPool::default()
        };
        pool.intern("");
        pool
    }

    /// The id of `text`, storing it if new.
    pub fn intern(&mut self, text: &str) -> u32 {
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        let hash = {
            let mut hasher = rustc_hash::FxHasher::default();
            std::hash::Hasher::write(&mut hasher, text.as_bytes());
            std::hash::Hasher::finish(&hasher)
        };
        match self.index.get(&hash) {
            Some(&id) if self.get(id) == text => return id,
            Some(_) => {
                if let Some(&id) = self.collisions.get(text) {
                    return id;
                }
            }
            None => {}
        }
        let id = self.len() as u32;
        self.text.push_str(text);
        self.starts.push(self.text.len() as u64);
        match self.index.entry(hash) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.insert(text.into(), id);
            }
        }
        id
    }

    /// The string of an id (empty for an unknown id).
    pub fn get(&self, id: u32) -> &str {
        let id = id as usize;
        match (self.starts.get(id), self.starts.get(id + 1)) {
            (Some(&start), Some(&end)) => self.text.get(start as usize..end as usize).unwrap_or(""),
            _ => "",
        }
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Whether only the empty string is stored.
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }

    /// Drops the lookup index once loading is done (ids stay valid; no more interning).
    pub fn freeze(&mut self) {
        self.index = FxHashMap::default();
        self.collisions = FxHashMap::default();
        self.text.shrink_to_fit();
        self.starts.shrink_to_fit();
    }
}

/// A normalized name as pool ids: the whole key, the family and the given name (0 = empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameIds {
    /// Whole name without spaces.
    pub key: u32,
    /// Family name (氏).
    pub family: u32,
    /// Given name (名); 0 when the split was uncertain.
    pub given: u32,
}

/// A normalized address as pool ids (0 = absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressIds {
    /// The whole normalized address.
    pub key: u32,
    /// The prefecture.
    pub prefecture: u32,
    /// The municipality.
    pub municipality: u32,
    /// The rest (town, street numbers, building).
    pub rest: u32,
}

/// An insurance card as pool ids (0 = absent) and the branch number (枝番).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CardIds {
    /// 保険者番号.
    pub insurer: u32,
    /// 記号.
    pub symbol: u32,
    /// 番号.
    pub number: u32,
    /// 枝番 as a number, when present.
    pub branch: Option<u8>,
}

impl CardIds {
    /// Whether the card can be compared (insurer and number present).
    pub fn is_present(&self) -> bool {
        self.insurer != 0 && self.number != 0
    }
}

/// One identity record, normalized and compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRecord {
    /// The provider (hospital_id) as a pool id.
    pub hospital: u32,
    /// Kanji name.
    pub kanji: NameIds,
    /// Kana name.
    pub kana: NameIds,
    /// Birth date.
    pub birth_date: Option<NaiveDate>,
    /// Sex.
    pub sex: Sex,
    /// Postal code as a 7-digit number.
    pub postal_code: Option<u32>,
    /// Address.
    pub address: AddressIds,
    /// Insurance card.
    pub card: CardIds,
}

/// Why a row cannot be linked (it is kept as a person of its own and reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnlinkableReason {
    /// Neither a kanji nor a kana name.
    NoName,
    /// Neither a birth date nor an insurance card.
    NoBirthDateNorCard,
}

impl UnlinkableReason {
    /// A short English description.
    pub fn describe(self) -> &'static str {
        match self {
            UnlinkableReason::NoName => "no kanji or kana name",
            UnlinkableReason::NoBirthDateNorCard => "neither a birth date nor an insurance card",
        }
    }
}

/// A row that is not linked, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlinkableRow {
    /// 1-based line number in the CSV.
    pub line: u64,
    /// Index of the record in [`LoadedRecords`].
    pub record: u32,
    /// Why.
    pub reason: UnlinkableReason,
}

/// Values that were present but unusable and so treated as missing, counted per column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnusableValues {
    /// Sex codes not recognized.
    pub sex: u64,
    /// Postal codes that are not 7 digits.
    pub postal_code: u64,
    /// Insurer numbers whose form or check digit (検証番号) fails (still compared as typed).
    pub insurer_number: u64,
    /// Branch numbers that are not 1 or 2 digits.
    pub insured_branch: u64,
}

/// The loaded records: compact normalized records, their ids and lines, and the string pool.
#[derive(Debug)]
pub struct LoadedRecords {
    /// Records in file order.
    pub records: Vec<LinkRecord>,
    /// The `record_id` of each record.
    pub record_ids: Vec<Box<str>>,
    /// Whether each record takes part in linkage (false for [`UnlinkableRow`]s).
    pub linkable: Vec<bool>,
    /// The pool of normalized strings.
    pub pool: StringPool,
    /// Rows that cannot be linked.
    pub unlinkable: Vec<UnlinkableRow>,
    /// Present but unusable values.
    pub unusable: UnusableValues,
}

impl LoadedRecords {
    /// The indexes of the records that take part in linkage, in file order.
    pub fn linkable_indexes(&self) -> Vec<u32> {
        (0..self.records.len() as u32)
            .filter(|&i| self.linkable[i as usize])
            .collect()
    }

    /// The insurance card of a record in the form of [`crate::compare`].
    pub fn card(&self, record: &LinkRecord) -> InsuranceCard {
        InsuranceCard {
            insurer: self.pool.get(record.card.insurer).to_owned(),
            symbol: self.pool.get(record.card.symbol).to_owned(),
            number: self.pool.get(record.card.number).to_owned(),
            branch: record.card.branch.map(|b| format!("{b:02}")),
        }
    }
}

/// A row normalized to owned strings, before interning (done in parallel).
struct NormalizedRow {
    line: u64,
    record_id: String,
    hospital: String,
    kanji: [String; 3],
    kana: [String; 3],
    birth_date: Option<NaiveDate>,
    sex: Sex,
    sex_unusable: bool,
    postal_code: Option<u32>,
    postal_unusable: bool,
    address: [String; 4],
    insurer: String,
    insurer_unusable: bool,
    symbol: String,
    number: String,
    branch: Option<u8>,
    branch_unusable: bool,
}

/// Rows normalized per parallel batch.
const BATCH_ROWS: usize = 65_536;

/// Loads and normalizes the identity CSV at `path` (header as [`IDENTITY_COLUMNS`], any column
/// order, extra columns ignored).
pub fn load_identity_csv(path: &Path) -> Result<LoadedRecords, LoadError> {
    let file = std::fs::File::open(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    load_identity_reader(path, std::io::BufReader::with_capacity(1 << 20, file))
}

/// Loads and normalizes identity records in the CSV form of [`load_identity_csv`] from any
/// reader, e.g. records decrypted from the identity store into memory; `path` names the source
/// in errors.
pub fn load_identity_reader(
    path: &Path,
    input: impl std::io::Read,
) -> Result<LoadedRecords, LoadError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let headers = reader
        .byte_headers()
        .map_err(|e| csv_error(path, e))?
        .clone();
    let mut positions = [0usize; 13];
    for (slot, column) in positions.iter_mut().zip(IDENTITY_COLUMNS) {
        *slot = headers
            .iter()
            .position(|h| trim_bom(h) == column.as_bytes())
            .ok_or(LoadError::MissingColumn {
                path: path.to_owned(),
                column,
            })?;
    }
    let mut loaded = LoadedRecords {
        records: Vec::new(),
        record_ids: Vec::new(),
        linkable: Vec::new(),
        pool: StringPool::new(),
        unlinkable: Vec::new(),
        unusable: UnusableValues::default(),
    };
    // The line of each record, for the duplicate check after loading.
    let mut lines: Vec<u64> = Vec::new();
    let mut batch: Vec<csv::ByteRecord> = Vec::with_capacity(BATCH_ROWS);
    let mut record = csv::ByteRecord::new();
    loop {
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(path, e))?;
        if more {
            batch.push(record.clone());
        }
        if batch.len() == BATCH_ROWS || (!more && !batch.is_empty()) {
            let rows: Vec<NormalizedRow> = batch
                .par_iter()
                .map(|r| normalize_row(path, r, &positions))
                .collect::<Result<_, _>>()?;
            for row in rows {
                lines.push(row.line);
                add_row(path, &mut loaded, row)?;
            }
            batch.clear();
        }
        if !more {
            break;
        }
    }
    loaded.pool.freeze();
    check_unique_record_ids(path, &loaded.record_ids, &lines)?;
    Ok(loaded)
}

/// Fails on the first record (in file order) whose id an earlier record has. Sorting the
/// records by id finds repeats without a second copy of every id.
fn check_unique_record_ids(path: &Path, ids: &[Box<str>], lines: &[u64]) -> Result<(), LoadError> {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.par_sort_unstable_by(|&a, &b| ids[a as usize].cmp(&ids[b as usize]).then(a.cmp(&b)));
    // Per repeated id: its first record and its first repeat; the earliest repeat fails.
    let repeat = order
        .chunk_by(|&a, &b| ids[a as usize] == ids[b as usize])
        .filter(|group| group.len() >= 2)
        .map(|group| (group[1], group[0]))
        .min();
    match repeat {
        Some((repeat, first)) => Err(LoadError::DuplicateRecordId {
            path: path.to_owned(),
            line: lines.get(repeat as usize).copied().unwrap_or(0),
            first_line: lines.get(first as usize).copied().unwrap_or(0),
        }),
        None => Ok(()),
    }
}

fn trim_bom(header: &[u8]) -> &[u8] {
    header.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(header)
}

fn csv_error(path: &Path, error: csv::Error) -> LoadError {
    let line = error.position().map_or(0, |p| p.line());
    match error.into_kind() {
        csv::ErrorKind::Io(source) => LoadError::Io {
            path: path.to_owned(),
            source,
        },
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => LoadError::FieldCount {
            path: path.to_owned(),
            line: pos.map_or(line, |p| p.line()),
            expected: expected_len,
            found: len,
        },
        _ => LoadError::Syntax {
            path: path.to_owned(),
            line,
        },
    }
}

fn normalize_row(
    path: &Path,
    record: &csv::ByteRecord,
    positions: &[usize; 13],
) -> Result<NormalizedRow, LoadError> {
    let line = record.position().map_or(0, |p| p.line());
    let mut fields = [""; 13];
    for (i, (field, &at)) in fields.iter_mut().zip(positions).enumerate() {
        *field = std::str::from_utf8(record.get(at).unwrap_or_default()).map_err(|_| {
            LoadError::InvalidText {
                path: path.to_owned(),
                line,
                column: IDENTITY_COLUMNS[i],
            }
        })?;
    }
    let [
        record_id,
        hospital,
        _patient_id,
        kanji,
        kana,
        sex,
        birth_date,
        postal,
        address,
        insurer,
        symbol,
        number,
        branch,
    ] = fields;
    let birth_date = match parse_birth_date(birth_date) {
        Ok(date) => Some(date.date),
        Err(DateError::Empty) => None,
        Err(rule) => {
            return Err(LoadError::InvalidDate {
                path: path.to_owned(),
                line,
                column: "birth_date",
                rule,
            });
        }
    };
    let kanji = normalize_kanji_name(kanji);
    let kana = normalize_kana_name(kana);
    let (sex, sex_unusable) = match parse_sex(sex) {
        Ok(sex) => (sex, false),
        Err(_) => (Sex::Unknown, true),
    };
    let postal_present = !postal.trim().is_empty();
    let postal_code = normalize_postal_code(postal)
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    let address = normalize_address(address);
    let insurer_present = !insurer.trim().is_empty();
    let insurer_valid = validate_insurer_number(insurer).is_ok();
    let (branch, branch_unusable) = match normalize_branch(branch) {
        Ok(b) => (b.and_then(|b| b.parse::<u8>().ok()), false),
        Err(_) => (None, true),
    };
    Ok(NormalizedRow {
        line,
        record_id: record_id.trim().to_owned(),
        hospital: hospital.trim().to_owned(),
        kanji: [kanji.key, kanji.family, kanji.given],
        kana: [kana.key, kana.family, kana.given],
        birth_date,
        sex,
        sex_unusable,
        postal_code,
        postal_unusable: postal_present && postal_code.is_none(),
        address: [
            address.key,
            address.prefecture.unwrap_or_default(),
            address.municipality.unwrap_or_default(),
            address.rest,
        ],
        insurer: normalize_card_field(insurer),
        insurer_unusable: insurer_present && !insurer_valid,
        symbol: normalize_card_field(symbol),
        number: normalize_card_field(number),
        branch,
        branch_unusable,
    })
}

fn add_row(path: &Path, loaded: &mut LoadedRecords, row: NormalizedRow) -> Result<(), LoadError> {
    if row.record_id.is_empty() {
        return Err(LoadError::EmptyRecordId {
            path: path.to_owned(),
            line: row.line,
        });
    }
    let pool = &mut loaded.pool;
    let mut name = |parts: &[String; 3]| NameIds {
        key: pool.intern(&parts[0]),
        family: pool.intern(&parts[1]),
        given: pool.intern(&parts[2]),
    };
    let kanji = name(&row.kanji);
    let kana = name(&row.kana);
    let record = LinkRecord {
        hospital: pool.intern(&row.hospital),
        kanji,
        kana,
        birth_date: row.birth_date,
        sex: row.sex,
        postal_code: row.postal_code,
        address: AddressIds {
            key: pool.intern(&row.address[0]),
            prefecture: pool.intern(&row.address[1]),
            municipality: pool.intern(&row.address[2]),
            rest: pool.intern(&row.address[3]),
        },
        card: CardIds {
            insurer: pool.intern(&row.insurer),
            symbol: pool.intern(&row.symbol),
            number: pool.intern(&row.number),
            branch: row.branch,
        },
    };
    let unusable = &mut loaded.unusable;
    unusable.sex += u64::from(row.sex_unusable);
    unusable.postal_code += u64::from(row.postal_unusable);
    unusable.insurer_number += u64::from(row.insurer_unusable);
    unusable.insured_branch += u64::from(row.branch_unusable);
    let index = loaded.records.len() as u32;
    let reason = if record.kanji.key == 0 && record.kana.key == 0 {
        Some(UnlinkableReason::NoName)
    } else if record.birth_date.is_none() && !record.card.is_present() {
        Some(UnlinkableReason::NoBirthDateNorCard)
    } else {
        None
    };
    if let Some(reason) = reason {
        loaded.unlinkable.push(UnlinkableRow {
            line: row.line,
            record: index,
            reason,
        });
    }
    loaded.linkable.push(reason.is_none());
    loaded.records.push(record);
    loaded.record_ids.push(row.record_id.into_boxed_str());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_stores_each_string_once() {
        let mut pool = StringPool::new();
        assert_eq!(pool.get(0), "");
        let a = pool.intern("山田");
        let b = pool.intern("太郎");
        assert_eq!(pool.intern("山田"), a);
        assert_eq!(pool.intern(""), 0);
        assert_ne!(a, b);
        assert_eq!((pool.get(a), pool.get(b)), ("山田", "太郎"));
        assert_eq!(pool.len(), 3);
        pool.freeze();
        assert_eq!(pool.get(b), "太郎");
        assert_eq!(pool.get(99), "");
    }

    #[test]
    fn the_first_repeated_record_id_in_file_order_is_reported() {
        let ids: Vec<Box<str>> = ["a", "b", "c", "b", "a", "d"].map(Box::from).to_vec();
        let lines = [2, 3, 4, 5, 6, 7];
        let error = check_unique_record_ids(Path::new("x.csv"), &ids, &lines).unwrap_err();
        assert!(
            matches!(
                error,
                LoadError::DuplicateRecordId {
                    line: 5,
                    first_line: 3,
                    ..
                }
            ),
            "{error}"
        );
        check_unique_record_ids(Path::new("x.csv"), &ids[..3], &lines[..3]).unwrap();
    }
}
