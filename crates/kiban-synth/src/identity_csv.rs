//! The identity records of the synthetic providers as one CSV, the interchange form of linkage
//! tools (issue 5): `identity_records.csv` with the header [`IDENTITY_CSV_HEADER`] and
//! `identity_truth.csv` (`record_id,person_id`).
//!
//! The records are exactly those of [`crate::generate`] for the same [`SynthConfig`] (the same
//! persons, providers, patient ids, spellings and typing errors); only the written form differs:
//! birth dates are typed in each provider's habitual form (Western or Japanese-era, with a share of
//! records typed by hand in another form), names with a full-width, half-width or no space, and
//! the providers that write full-width digits do so in addresses and card fields too.

use crate::providers::{self, Provider};
use crate::records::{Context, RecordedIdentity};
use crate::{CHUNK_BLOCKS, SynthConfig, SynthError, generate_block, io_error, stream_key};
use crate::{names, population::BLOCK_SIZE, population::World};
use chrono::{Datelike, NaiveDate};
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Header of the identity CSV.
pub const IDENTITY_CSV_HEADER: &str = "record_id,hospital_id,hospital_patient_id,name_kanji,name_kana,sex,birth_date,postal_code,address,insurer_number,insured_symbol,insured_number,insured_branch";

/// Header of the truth CSV.
pub const IDENTITY_TRUTH_HEADER: &str = "record_id,person_id";

/// File name of the identity records.
pub const IDENTITY_RECORDS_FILE: &str = "identity_records.csv";

/// File name of the truth.
pub const IDENTITY_TRUTH_FILE: &str = "identity_truth.csv";

/// What [`write_identity_csv`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityCsvSummary {
    /// Persons in the true population.
    pub persons: u64,
    /// Providers.
    pub providers: usize,
    /// Identity records (patient records over all providers).
    pub records: u64,
    /// Path of the identity records.
    pub records_path: PathBuf,
    /// Path of the truth file.
    pub truth_path: PathBuf,
}

/// How a birth date is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateStyle {
    /// `1980-01-02`
    Iso,
    /// `1980/01/02`
    Slash,
    /// `1980/1/2`
    SlashUnpadded,
    /// `19800102`
    Compact,
    /// `1980年1月2日`
    KanjiWestern,
    /// `昭和55年1月2日`, `平成元年1月8日`
    KanjiEra,
    /// `S55.01.02`
    InitialEraDots,
    /// `S55/1/2`
    InitialEraSlash,
}

const DATE_STYLES: [DateStyle; 8] = [
    DateStyle::Iso,
    DateStyle::Slash,
    DateStyle::SlashUnpadded,
    DateStyle::Compact,
    DateStyle::KanjiWestern,
    DateStyle::KanjiEra,
    DateStyle::InitialEraDots,
    DateStyle::InitialEraSlash,
];

/// The eras (name, initial, first day), written independently of any parser.
const ERAS: [(&str, char, (i32, u32, u32)); 5] = [
    ("明治", 'M', (1868, 1, 25)),
    ("大正", 'T', (1912, 7, 30)),
    ("昭和", 'S', (1926, 12, 25)),
    ("平成", 'H', (1989, 1, 8)),
    ("令和", 'R', (2019, 5, 1)),
];

/// (era name, initial, era year) of a date; `None` before 明治.
fn era_of(date: NaiveDate) -> Option<(&'static str, char, i32)> {
    ERAS.iter().rev().find_map(|(name, initial, (y, m, d))| {
        let start = NaiveDate::from_ymd_opt(*y, *m, *d)?;
        (date >= start).then_some((*name, *initial, date.year() - y + 1))
    })
}

fn format_birth_date(date: NaiveDate, style: DateStyle) -> String {
    let (y, m, d) = (date.year(), date.month(), date.day());
    let era = era_of(date);
    match (style, era) {
        (DateStyle::Iso, _) | (_, None) => format!("{y:04}-{m:02}-{d:02}"),
        (DateStyle::Slash, _) => format!("{y:04}/{m:02}/{d:02}"),
        (DateStyle::SlashUnpadded, _) => format!("{y}/{m}/{d}"),
        (DateStyle::Compact, _) => format!("{y:04}{m:02}{d:02}"),
        (DateStyle::KanjiWestern, _) => format!("{y}年{m}月{d}日"),
        (DateStyle::KanjiEra, Some((name, _, 1))) => format!("{name}元年{m}月{d}日"),
        (DateStyle::KanjiEra, Some((name, _, year))) => format!("{name}{year}年{m}月{d}日"),
        (DateStyle::InitialEraDots, Some((_, initial, year))) => {
            format!("{initial}{year:02}.{m:02}.{d:02}")
        }
        (DateStyle::InitialEraSlash, Some((_, initial, year))) => {
            format!("{initial}{year}/{m}/{d}")
        }
    }
}

/// SplitMix64: a stable hash for per-provider and per-record writing habits, so that the
/// generator's random streams (and so [`crate::generate`]'s output) are untouched.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The form a record's birth date is typed in: the provider's habit, or for 15 % of records
/// (typed by hand at the desk) any form.
fn date_style(seed: u64, provider: &Provider, record_no: u64) -> DateStyle {
    let habit =
        DATE_STYLES[(mix(seed ^ provider.index as u64) % DATE_STYLES.len() as u64) as usize];
    let h = mix(seed.rotate_left(17) ^ record_no);
    if h % 100 < 15 {
        DATE_STYLES[((h >> 8) % DATE_STYLES.len() as u64) as usize]
    } else {
        habit
    }
}

/// The separator a provider puts between family and given names: mostly a full-width space,
/// often a half-width one, sometimes none.
fn name_separator(seed: u64, provider: &Provider) -> &'static str {
    match mix(seed.rotate_left(31) ^ provider.index as u64) % 20 {
        0..10 => "\u{3000}",
        10..17 => " ",
        _ => "",
    }
}

/// One CSV row (without record id): the fields after `record_id`.
struct IdentityRow {
    provider: usize,
    patient_id: String,
    person_id: String,
    identity: RecordedIdentity,
}

fn write_row(
    out: &mut csv::Writer<BufWriter<File>>,
    record_no: u64,
    row: &IdentityRow,
    provider: &Provider,
    seed: u64,
) -> csv::Result<()> {
    let identity = &row.identity;
    let separator = name_separator(seed, provider);
    let wide = |s: &str| {
        if provider.full_width_member_id {
            names::to_full_width_digits(s)
        } else {
            s.to_owned()
        }
    };
    let kanji = format!(
        "{}{separator}{}",
        identity.family_kanji, identity.given_kanji
    );
    let kana = identity
        .kana
        .as_ref()
        .map(|(family, given)| format!("{family}{separator}{given}"))
        .unwrap_or_default();
    let birth_date = format_birth_date(identity.birth_date, date_style(seed, provider, record_no));
    let (insurer, symbol, number, branch) = identity.card.clone().unwrap_or_default();
    out.write_record([
        format!("r{record_no:010}").as_str(),
        provider.id.as_str(),
        row.patient_id.as_str(),
        kanji.as_str(),
        kana.as_str(),
        if identity.male { "1" } else { "2" },
        birth_date.as_str(),
        identity.postal_code.as_str(),
        wide(&identity.address).as_str(),
        wide(&insurer).as_str(),
        wide(&symbol).as_str(),
        wide(&number).as_str(),
        wide(&branch).as_str(),
    ])
}

fn csv_error(path: &Path) -> impl Fn(csv::Error) -> SynthError + '_ {
    move |e| SynthError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    }
}

/// Generates the population of `config` and writes, under `out_dir`, its identity records as
/// [`IDENTITY_RECORDS_FILE`] (header [`IDENTITY_CSV_HEADER`]; sex 1 = male, 2 = female) and the
/// ground truth as [`IDENTITY_TRUTH_FILE`] (`record_id,person_id`).
///
/// Streams in chunks like [`crate::generate`]: memory stays bounded whatever the population.
/// `progress` is called with the number of persons written so far after each chunk.
pub fn write_identity_csv(
    config: &SynthConfig,
    out_dir: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<IdentityCsvSummary, SynthError> {
    if config.persons == 0 || config.persons > 500_000_000 {
        return Err(SynthError::InvalidConfig(
            "persons must be between 1 and 500,000,000".to_owned(),
        ));
    }
    let provider_count = config
        .providers
        .unwrap_or_else(|| providers::default_provider_count(config.persons));
    if provider_count == 0 {
        return Err(SynthError::InvalidConfig(
            "providers must be at least 1".to_owned(),
        ));
    }
    std::fs::create_dir_all(out_dir).map_err(io_error(out_dir))?;
    let providers = providers::build_providers(provider_count, config.seed);
    let records_path = out_dir.join(IDENTITY_RECORDS_FILE);
    let truth_path = out_dir.join(IDENTITY_TRUTH_FILE);
    let open = |path: &Path, header: &str| -> Result<csv::Writer<BufWriter<File>>, SynthError> {
        let mut file =
            BufWriter::with_capacity(256 * 1024, File::create(path).map_err(io_error(path))?);
        writeln!(file, "{header}").map_err(io_error(path))?;
        Ok(csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file))
    };
    let mut records = open(&records_path, IDENTITY_CSV_HEADER)?;
    let mut truth = open(&truth_path, IDENTITY_TRUTH_HEADER)?;

    let world = World::new(config.reference_date);
    let ctx = Context {
        world: &world,
        providers: &providers,
    };
    let key = stream_key(config.seed);
    let blocks = config.persons.div_ceil(BLOCK_SIZE);
    let mut summary = IdentityCsvSummary {
        persons: 0,
        providers: providers.len(),
        records: 0,
        records_path: records_path.clone(),
        truth_path: truth_path.clone(),
    };
    let mut start = 0;
    while start < blocks {
        let end = (start + CHUNK_BLOCKS).min(blocks);
        // Bundles are dropped block by block: a chunk holds only identities.
        let chunk: Vec<(u64, Vec<IdentityRow>)> = (start..end)
            .into_par_iter()
            .map(|block| {
                let output = generate_block(&ctx, key, config.persons, block);
                let persons = output.len() as u64;
                let rows = output
                    .into_iter()
                    .flat_map(|(person_id, outputs)| {
                        outputs.into_iter().map(move |record| IdentityRow {
                            provider: record.provider,
                            patient_id: record.patient_id,
                            person_id: person_id.clone(),
                            identity: record.identity,
                        })
                    })
                    .collect();
                (persons, rows)
            })
            .collect();
        for (persons, rows) in chunk {
            summary.persons += persons;
            for row in rows {
                summary.records += 1;
                let record_no = summary.records;
                write_row(
                    &mut records,
                    record_no,
                    &row,
                    &providers[row.provider],
                    config.seed,
                )
                .map_err(csv_error(&records_path))?;
                truth
                    .write_record([format!("r{record_no:010}").as_str(), row.person_id.as_str()])
                    .map_err(csv_error(&truth_path))?;
            }
        }
        progress(summary.persons);
        start = end;
    }
    records.flush().map_err(io_error(&records_path))?;
    truth.flush().map_err(io_error(&truth_path))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn era_forms_respect_the_era_boundaries() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(
            format_birth_date(d(1989, 1, 7), DateStyle::KanjiEra),
            "昭和64年1月7日"
        );
        assert_eq!(
            format_birth_date(d(1989, 1, 8), DateStyle::KanjiEra),
            "平成元年1月8日"
        );
        assert_eq!(
            format_birth_date(d(2019, 5, 1), DateStyle::KanjiEra),
            "令和元年5月1日"
        );
        assert_eq!(
            format_birth_date(d(1980, 1, 2), DateStyle::InitialEraDots),
            "S55.01.02"
        );
        assert_eq!(
            format_birth_date(d(1980, 1, 2), DateStyle::InitialEraSlash),
            "S55/1/2"
        );
        assert_eq!(
            format_birth_date(d(1980, 1, 2), DateStyle::Compact),
            "19800102"
        );
        assert_eq!(
            format_birth_date(d(1926, 12, 24), DateStyle::KanjiEra),
            "大正15年12月24日"
        );
    }

    #[test]
    fn identity_csv_matches_the_generated_records() {
        let dir = tempfile::tempdir().unwrap();
        let config = SynthConfig {
            persons: 300,
            ..SynthConfig::default()
        };
        let summary = write_identity_csv(&config, dir.path(), &|_| {}).unwrap();
        assert_eq!(summary.persons, 300);

        let text = std::fs::read_to_string(&summary.records_path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(IDENTITY_CSV_HEADER));
        let mut reader = csv::Reader::from_path(&summary.records_path).unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len() as u64, summary.records);
        assert!(rows.iter().all(|r| r.len() == 13));
        assert!(rows.iter().all(|r| matches!(&r[5], "1" | "2")));
        // Birth dates come in several forms, era forms among them.
        let forms: HashSet<bool> = rows
            .iter()
            .map(|r| r[6].chars().any(|c| "昭平令大明SHRTM".contains(c)))
            .collect();
        assert_eq!(forms.len(), 2);

        // The same records as `generate`: one row per patient record, same provider ids.
        let full = tempfile::tempdir().unwrap();
        let generated = crate::generate(&config, full.path(), &|_| {}).unwrap();
        assert_eq!(generated.patient_records, summary.records);
        let truth_fhir = std::fs::read_to_string(full.path().join("truth/truth.csv")).unwrap();
        let fhir_person: HashMap<(String, String), String> = truth_fhir
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                ((f[0].to_owned(), f[1].to_owned()), f[2].to_owned())
            })
            .collect();

        // Every record joins the truth file on record_id, and agrees with generate's truth.
        let truth = std::fs::read_to_string(&summary.truth_path).unwrap();
        let mut truth_lines = truth.lines();
        assert_eq!(truth_lines.next(), Some(IDENTITY_TRUTH_HEADER));
        let person_of: HashMap<&str, &str> =
            truth_lines.map(|l| l.split_once(',').unwrap()).collect();
        assert_eq!(person_of.len(), rows.len());
        for row in &rows {
            let person = person_of[&row[0]];
            assert_eq!(fhir_person[&(row[1].to_owned(), row[2].to_owned())], person);
        }
        // Persons with several records exist (the point of linkage).
        let distinct: HashSet<&&str> = person_of.values().collect();
        assert!(distinct.len() < rows.len());
    }
}
