//! End-to-end tests on a small synthetic population written as an extraction directory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use base64::Engine as _;
use chrono::{DateTime, Days, NaiveDate, Utc};
use kiban_model::{
    ConditionRow, DeathRow, DocumentRow, EncounterRow, IdentityRow, LabObservationRow,
    MedicationRequestRow, ProcedureRow, RowCommon, TableRow,
};
use kiban_store::KeyFile;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::rare::CODE_RULES;
use crate::*;

const PERSONS: usize = 200;
const PREFECTURE_POSTAL: [(&str, &str); 4] = [
    ("東京都", "10"),
    ("大阪府", "53"),
    ("北海道", "06"),
    ("福岡県", "81"),
];

/// A synthetic extraction: its directory plus what the test needs to know of it.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    extract: PathBuf,
    identities: Vec<IdentityRow>,
    persons: PersonMap,
    /// Strings that must never appear in a release: patient keys, source ids, intake ids,
    /// provider patient ids, names, document text.
    secrets: BTreeSet<String>,
    /// Original encounter starts by (provider, source id).
    encounter_starts: HashMap<(String, String), DateTime<Utc>>,
    /// Original condition onsets by (provider, source id).
    condition_onsets: HashMap<(String, String), NaiveDate>,
}

fn write_table<T: TableRow>(dir: &Path, rows: &[T]) {
    let batch = T::to_record_batch(rows).unwrap();
    let file = File::create(dir.join(format!("{}.parquet", T::TABLE))).unwrap();
    let mut writer = ArrowWriter::try_new(file, T::schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let extract = root.join("extract");
    fs::create_dir_all(&extract).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut persons = PersonMap::new();
    let mut secrets = BTreeSet::new();
    let mut identities = Vec::new();
    let mut encounters = Vec::new();
    let mut conditions = Vec::new();
    let mut medications = Vec::new();
    let mut labs = Vec::new();
    let mut procedures = Vec::new();
    let mut documents = Vec::new();
    let mut deaths = Vec::new();
    let mut encounter_starts = HashMap::new();
    let mut condition_onsets = HashMap::new();
    let mut serial = 0u32;
    let mut next_id = |kind: &str| {
        serial += 1;
        format!("{kind}-{serial:06}")
    };
    let common_icd = ["E11.9", "I10", "J45.9", "K21.0", "M54.5", "E78.5"];
    let common_yj = ["2189015F1022", "3969007F1024", "2149039F1020"];
    for i in 0..PERSONS {
        let birth = date(1925, 1, 1)
            .checked_add_days(Days::new(rng.random_range(0..32_000)))
            .unwrap();
        let sex = if rng.random_bool(0.5) {
            "male"
        } else {
            "female"
        };
        let (prefecture, postal_prefix) = PREFECTURE_POSTAL[rng.random_range(0..4)];
        let postal = format!(
            "{postal_prefix}{}-{:04}",
            rng.random_range(0..10),
            rng.random_range(0..10_000)
        );
        let address = match rng.random_range(0..10) {
            0 => None,
            1 => Some(format!("中央区{}-1", i % 9 + 1)),
            _ => Some(format!("{prefecture}中央区{}-{}", i % 9 + 1, i % 7 + 1)),
        };
        let providers: &[&str] = if i % 3 == 0 {
            &["prov-A", "prov-B"]
        } else {
            &["prov-A"]
        };
        for (r, provider) in providers.iter().enumerate() {
            let patient_key = format!("pk{}{:05}x", &provider[5..], i);
            let intake = format!("intake-{provider}-{}", i % 4);
            persons.insert(provider, &patient_key, &format!("person-{i:05}"));
            let name = format!("山田 太郎{i}");
            let provider_patient_id = format!("MRN{:07}", i * 10 + r);
            secrets.extend([
                patient_key.clone(),
                intake.clone(),
                name.clone(),
                provider_patient_id.clone(),
            ]);
            identities.push(IdentityRow {
                common: RowCommon::new(provider, &intake, &patient_key, &next_id("id")),
                provider_patient_id,
                name_kanji: Some(name.clone()),
                birth_date: Some(birth),
                sex: sex.to_owned(),
                postal_code: Some(postal.clone()),
                address: address.clone(),
                phone: Some(format!("03-1234-{i:04}")),
                ..Default::default()
            });
            let mut common = |kind: &str| {
                let source = next_id(kind);
                secrets.insert(source.clone());
                RowCommon::new(provider, &intake, &patient_key, &source)
            };
            let mut encounter_ids = Vec::new();
            for _ in 0..rng.random_range(1..6) {
                let start =
                    DateTime::from_timestamp(1_577_836_800 + rng.random_range(0..94_000_000i64), 0)
                        .unwrap();
                let c = common("enc");
                encounter_ids.push(c.source_id.clone());
                encounter_starts.insert((c.provider_id.clone(), c.source_id.clone()), start);
                encounters.push(EncounterRow {
                    common: c,
                    class: "outpatient".into(),
                    status: "finished".into(),
                    start: Some(start),
                    end: Some(start + chrono::Duration::hours(1)),
                    department_code: Some("01".into()),
                    department_name: Some("内科 山田医師".into()),
                });
            }
            let mut codes: Vec<&str> = (0..rng.random_range(1..4))
                .map(|_| common_icd[rng.random_range(0..common_icd.len())])
                .collect();
            // Rare codes: E11.2 and E11.3 pool into E11; Q87.1 stays rare and goes.
            if r == 0 && i % 30 == 1 {
                codes.push("E11.2");
            }
            if r == 0 && i % 30 == 2 {
                codes.push("E11.3");
            }
            if r == 0 && i % 40 == 0 {
                codes.push("Q87.1");
            }
            for code in codes {
                let c = common("cond");
                let onset = encounter_starts[&(c.provider_id.clone(), encounter_ids[0].clone())]
                    .date_naive();
                condition_onsets.insert((c.provider_id.clone(), c.source_id.clone()), onset);
                conditions.push(ConditionRow {
                    common: c,
                    icd10: Some(code.into()),
                    medis_code: Some(format!("M{code}")),
                    name: Some(format!("{code} 山田様")),
                    suspected: false,
                    onset_date: Some(onset),
                    recorded_date: Some(onset.checked_add_days(Days::new(3)).unwrap()),
                    encounter_id: Some(encounter_ids[0].clone()),
                    ..Default::default()
                });
            }
            let mut yj: Vec<&str> = vec![common_yj[i % 3]];
            if r == 0 && i % 30 == 3 {
                yj.push("1149019F1020");
            }
            if r == 0 && i % 30 == 4 {
                yj.push("1149019F2027");
            }
            if r == 0 && i % 100 == 5 {
                yj.push("4291010X1020");
            }
            for code in yj {
                medications.push(MedicationRequestRow {
                    common: common("med"),
                    yj_code: Some(code.into()),
                    name: Some("薬".into()),
                    dose: Some(1.0),
                    days: Some(14),
                    date: Some(date(2021, 3, 1)),
                    ..Default::default()
                });
            }
            for _ in 0..3 {
                let value = if r == 0 && i == 17 {
                    900.0
                } else {
                    80.0 + rng.random_range(0.0..60.0)
                };
                labs.push(LabObservationRow {
                    common: common("lab"),
                    jlac10: Some("3D010000001926101".into()),
                    name: Some("グルコース".into()),
                    value: Some(value),
                    effective: DateTime::from_timestamp(1_620_000_000, 0),
                    ..Default::default()
                });
            }
            if r == 0 && i % 70 == 9 {
                labs.push(LabObservationRow {
                    common: common("lab"),
                    jlac10: Some("5C070000002306201".into()),
                    value: Some(1.0),
                    ..Default::default()
                });
            }
            if i % 3 == 0 {
                procedures.push(ProcedureRow {
                    common: common("proc"),
                    code: Some("K546".into()),
                    performed: DateTime::from_timestamp(1_630_000_000, 0),
                    ..Default::default()
                });
            }
            if r == 0 && i % 90 == 11 {
                procedures.push(ProcedureRow {
                    common: common("proc"),
                    code: Some("K555".into()),
                    ..Default::default()
                });
            }
            let text = format!("{name} 様 ({patient_key}) 紹介状");
            documents.push(DocumentRow {
                common: common("doc"),
                kind: "referral".into(),
                title: Some(format!("{name} 紹介状")),
                date: DateTime::from_timestamp(1_640_000_000, 0),
                text: Some(text),
            });
            if r == 0 && i % 50 == 7 {
                deaths.push(DeathRow {
                    common: common("death"),
                    death_date: Some(date(2022, 5, 5)),
                    cause_icd10: Some("C34.1".into()),
                });
            }
        }
    }
    write_table(&extract, &encounters);
    write_table(&extract, &conditions);
    write_table(&extract, &medications);
    write_table(&extract, &labs);
    write_table(&extract, &procedures);
    write_table(&extract, &documents);
    write_table(&extract, &deaths);
    Fixture {
        _dir: dir,
        root,
        extract,
        identities,
        persons,
        secrets,
        encounter_starts,
        condition_onsets,
    }
}

/// The fixture's person table under `options`.
fn person_table(
    f: &Fixture,
    key: &ProjectKey,
    options: &QuasiIdentifierOptions,
) -> QuasiIdentifierTable {
    derive_quasi_identifiers(&f.extract, &f.identities, &f.persons, key, options).unwrap()
}

fn master_and_ring(root: &Path) -> KeyFile {
    KeyFile::generate(&root.join("keys/master.key")).unwrap()
}

fn read_batches(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Every text value of every table of a release, by `table.column`.
fn text_values(release: &Path) -> BTreeMap<String, Vec<Option<String>>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(release).unwrap() {
        let path = entry.unwrap().path();
        let table = path.file_stem().unwrap().to_string_lossy().into_owned();
        for batch in read_batches(&path) {
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                if field.data_type() == &DataType::Utf8 {
                    let strings = column.as_string::<i32>();
                    out.entry(format!("{table}.{}", field.name()))
                        .or_insert_with(Vec::new)
                        .extend(strings.iter().map(|s| s.map(str::to_owned)));
                }
            }
        }
    }
    out
}

fn person_values(release: &Path) -> BTreeSet<String> {
    text_values(release)
        .into_iter()
        .filter(|(k, _)| k.ends_with(".person"))
        .flat_map(|(_, v)| v.into_iter().flatten())
        .collect()
}

#[test]
fn same_project_same_pseudonyms_other_project_none_shared() {
    let f = fixture();
    let master = master_and_ring(&f.root);
    let ring = ProjectKeyRing::new(&f.root.join("project-keys"), &master);
    let options = ReleaseOptions::default();
    let key = ring.project_key("study-a").unwrap();
    let first = f.root.join("release-1");
    write_release(&f.extract, &first, &key, &f.persons, &options).unwrap();
    // A later delivery reloads the key from the key store.
    let reloaded = ProjectKeyRing::new(&f.root.join("project-keys"), &master)
        .project_key("study-a")
        .unwrap();
    let second = f.root.join("release-2");
    write_release(&f.extract, &second, &reloaded, &f.persons, &options).unwrap();
    let (one, two) = (text_values(&first), text_values(&second));
    assert_eq!(one, two, "repeated deliveries of a project are identical");
    assert_eq!(
        person_values(&first).len(),
        PERSONS,
        "linked records are one person"
    );

    let other = f.root.join("release-other");
    let other_key = ring.project_key("study-b").unwrap();
    write_release(&f.extract, &other, &other_key, &f.persons, &options).unwrap();
    let theirs = text_values(&other);
    for column in ["person", "record", "provider_id"] {
        let mine: HashSet<&String> = one
            .iter()
            .filter(|(k, _)| k.ends_with(&format!(".{column}")))
            .flat_map(|(_, v)| v.iter().flatten())
            .collect();
        let shared = theirs
            .iter()
            .filter(|(k, _)| k.ends_with(&format!(".{column}")))
            .flat_map(|(_, v)| v.iter().flatten())
            .filter(|v| mine.contains(v))
            .count();
        assert_eq!(shared, 0, "column {column} shares values across projects");
    }
    // Conditions still join to their encounters through the record pseudonym.
    let encounters: HashSet<&String> = one["encounters.record"].iter().flatten().collect();
    assert!(
        one["conditions.encounter_id"]
            .iter()
            .flatten()
            .all(|e| encounters.contains(e))
    );
}

#[test]
fn no_key_or_identifier_in_key_file_release_or_report() {
    let f = fixture();
    let master = master_and_ring(&f.root);
    let ring = ProjectKeyRing::new(&f.root.join("project-keys"), &master);
    let key = ring.project_key("study-a").unwrap();
    let key_hex = hex::encode(*key.key_bytes());
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(*key.key_bytes());
    let key_file = fs::read(ring.key_file("study-a").unwrap()).unwrap();
    let contains =
        |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    for needle in [key_hex.as_bytes(), key_b64.as_bytes(), &key.key_bytes()[..]] {
        assert!(
            !contains(&key_file, needle),
            "key file holds the key in clear"
        );
    }

    let release = f.root.join("release");
    let report = write_release(
        &f.extract,
        &release,
        &key,
        &f.persons,
        &ReleaseOptions::default(),
    )
    .unwrap();
    let report_json = serde_json::to_vec(&report).unwrap();
    let mut release_bytes = Vec::new();
    for entry in fs::read_dir(&release).unwrap() {
        release_bytes.extend(fs::read(entry.unwrap().path()).unwrap());
    }
    for bytes in [&report_json, &release_bytes] {
        for needle in [key_hex.as_bytes(), key_b64.as_bytes(), &key.key_bytes()[..]] {
            assert!(!contains(bytes, needle));
        }
    }
    let report_text = String::from_utf8(report_json).unwrap();
    for secret in &f.secrets {
        assert!(!report_text.contains(secret.as_str()));
    }
    for (column, values) in text_values(&release) {
        for value in values.iter().flatten() {
            for secret in &f.secrets {
                assert!(
                    !value.contains(secret.as_str()),
                    "{column} holds an identifier"
                );
            }
        }
    }
    // Identification codes and free text are gone from the schemas.
    for entry in fs::read_dir(&release).unwrap() {
        let batch = &read_batches(&entry.unwrap().path())[0];
        for gone in [
            "patient_key",
            "source_id",
            "intake_id",
            "name",
            "text",
            "title",
        ] {
            assert!(batch.schema().column_with_name(gone).is_none(), "{gone}");
        }
    }
    assert_eq!(
        report.tables["documents"].columns_removed,
        vec!["intake_id", "title", "text"]
    );
    assert!(report.free_text.contains("documents.text"));
    assert!(
        report.tables["conditions"]
            .columns_date_shifted
            .contains(&"onset_date".to_owned())
    );
    // No staging directory remains beside the release.
    let leftovers = fs::read_dir(&f.root)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("partial")
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn date_shift_keeps_each_persons_intervals() {
    let f = fixture();
    let key = ProjectKey::from_bytes("study-a", [3; 32]);
    let release = f.root.join("release");
    write_release(
        &f.extract,
        &release,
        &key,
        &f.persons,
        &ReleaseOptions::default(),
    )
    .unwrap();
    let pseudonymizer = key.pseudonymizer().unwrap();
    // Original date of each record pseudonym, in days since the epoch.
    let mut original: HashMap<String, i64> = HashMap::new();
    for ((provider, source), start) in &f.encounter_starts {
        original.insert(
            pseudonymizer.record(provider, "encounters", source),
            start.timestamp_micros(),
        );
    }
    let mut shift_of_person: HashMap<String, i64> = HashMap::new();
    let mut check = |person: &str, shift: i64| {
        assert_eq!(shift % 86_400_000_000, 0, "whole days");
        let days = shift / 86_400_000_000;
        assert!((-30..=30).contains(&days));
        let first = *shift_of_person.entry(person.to_owned()).or_insert(days);
        assert_eq!(first, days, "one offset per person");
    };
    for batch in read_batches(&release.join("encounters.parquet")) {
        let persons = batch.column_by_name("person").unwrap().as_string::<i32>();
        let records = batch.column_by_name("record").unwrap().as_string::<i32>();
        let starts = batch
            .column_by_name("start")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let ends = batch
            .column_by_name("end")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        for row in 0..batch.num_rows() {
            check(
                persons.value(row),
                starts.value(row) - original[records.value(row)],
            );
            assert_eq!(ends.value(row) - starts.value(row), 3_600_000_000);
        }
    }
    let mut onsets: HashMap<String, i64> = HashMap::new();
    for ((provider, source), onset) in &f.condition_onsets {
        onsets.insert(
            pseudonymizer.record(provider, "conditions", source),
            onset.signed_duration_since(date(1970, 1, 1)).num_days(),
        );
    }
    for batch in read_batches(&release.join("conditions.parquet")) {
        let persons = batch.column_by_name("person").unwrap().as_string::<i32>();
        let records = batch.column_by_name("record").unwrap().as_string::<i32>();
        let dates = batch
            .column_by_name("onset_date")
            .unwrap()
            .as_primitive::<Date32Type>();
        let recorded = batch
            .column_by_name("recorded_date")
            .unwrap()
            .as_primitive::<Date32Type>();
        for row in 0..batch.num_rows() {
            let days = i64::from(dates.value(row)) - onsets[records.value(row)];
            check(persons.value(row), days * 86_400_000_000);
            assert_eq!(recorded.value(row) - dates.value(row), 3);
        }
    }
    let distinct: HashSet<i64> = shift_of_person.values().copied().collect();
    assert!(distinct.len() > 10, "offsets differ between persons");
}

#[test]
fn anonymized_release_recodes_rare_values_until_every_code_is_common() {
    let f = fixture();
    let key = ProjectKey::from_bytes("study-a", [5; 32]);
    let release = f.root.join("release");
    let rare = RareValueOptions::default();
    let threshold = rare.min_persons;
    let options = ReleaseOptions {
        kind: ReleaseKind::Anonymized(rare),
        ..ReleaseOptions::default()
    };
    let report = write_release(&f.extract, &release, &key, &f.persons, &options).unwrap();
    // Recomputed from the output files alone.
    for rule in CODE_RULES {
        let path = release.join(format!("{}.parquet", rule.table.name()));
        if !path.exists() {
            continue;
        }
        let mut holders: HashMap<String, HashSet<String>> = HashMap::new();
        for batch in read_batches(&path) {
            let persons = batch.column_by_name("person").unwrap().as_string::<i32>();
            let codes = batch
                .column_by_name(rule.column)
                .unwrap()
                .as_string::<i32>();
            for row in 0..batch.num_rows() {
                if codes.is_valid(row) {
                    holders
                        .entry(codes.value(row).to_owned())
                        .or_default()
                        .insert(persons.value(row).to_owned());
                }
            }
        }
        for (code, persons) in &holders {
            assert!(
                persons.len() >= threshold,
                "{}.{} code {code} held by {} persons",
                rule.table.name(),
                rule.column,
                persons.len()
            );
        }
        if rule.table.name() == "conditions" && rule.column == "icd10" {
            assert!(holders.contains_key("E11"), "E11.2/E11.3 pooled into E11");
            assert!(!holders.contains_key("Q87.1") && !holders.contains_key("Q87"));
            assert!(holders.contains_key("E11.9"));
        }
        if rule.column == "yj_code" {
            assert!(holders.contains_key("1149019"));
            assert!(!holders.keys().any(|c| c.starts_with("4291010")));
        }
    }
    let rare_report = report.rare_values.as_ref().unwrap();
    let icd = &rare_report.code_columns["conditions.icd10"];
    assert_eq!((icd.codes_recoded, icd.codes_removed), (2, 1));
    assert_eq!(
        rare_report.code_columns["deaths.cause_icd10"].codes_removed,
        1
    );
    assert!(rare_report.lab_values.values_top_coded >= 1);
    let mut max_glucose = f64::MIN;
    for batch in read_batches(&release.join("lab_observations.parquet")) {
        let values = batch
            .column_by_name("value")
            .unwrap()
            .as_primitive::<Float64Type>();
        max_glucose = values.iter().flatten().fold(max_glucose, f64::max);
    }
    assert!(max_glucose < 200.0, "the extreme value was top coded");
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        !json.contains("Q87") && !json.contains("900"),
        "counts, not values"
    );

    // A pseudonymized release keeps rare values.
    let kept = f.root.join("pseudonymized");
    write_release(
        &f.extract,
        &kept,
        &key,
        &f.persons,
        &ReleaseOptions::default(),
    )
    .unwrap();
    assert!(
        text_values(&kept)["conditions.icd10"]
            .iter()
            .flatten()
            .any(|c| c == "Q87.1")
    );
}

#[test]
fn person_table_has_ages_regions_visits_and_top_codes_old_ages() {
    let f = fixture();
    let key = ProjectKey::from_bytes("study-a", [9; 32]);
    let exact = person_table(&f, &key, &QuasiIdentifierOptions::default());
    assert_eq!(exact.rows().len(), PERSONS);
    assert!(
        exact
            .rows()
            .iter()
            .all(|r| r.visits >= 1 && !r.age.is_empty())
    );
    assert!(exact.rows().iter().any(|r| r.region == "東京都"));
    assert!(exact.rows().iter().any(|r| r.region.starts_with("postal-")));
    assert!(
        exact
            .rows()
            .iter()
            .any(|r| r.diagnoses.contains("E11;") || r.diagnoses.ends_with("E11"))
    );
    let anonymized = person_table(
        &f,
        &key,
        &QuasiIdentifierOptions {
            index_date: Some(date(2024, 1, 1)),
            ..QuasiIdentifierOptions::anonymized(&RareValueOptions::default())
        },
    );
    assert!(anonymized.report().ages_top_coded > 0);
    assert!(anonymized.rows().iter().any(|r| r.age == "90+"));
    assert!(
        anonymized
            .rows()
            .iter()
            .all(|r| !r.diagnoses.contains("Q87"))
    );
    assert!(anonymized.report().diagnosis_categories_removed >= 1);
    // Person pseudonyms are those of the clinical release.
    let release = f.root.join("release");
    write_release(
        &f.extract,
        &release,
        &key,
        &f.persons,
        &ReleaseOptions::default(),
    )
    .unwrap();
    let released = person_values(&release);
    assert!(exact.rows().iter().all(|r| released.contains(&r.person)));

    // `deceased` (anonymized only): yes exactly for the persons with a released death row.
    assert!(exact.rows().iter().all(|r| r.deceased.is_none()));
    assert!(!exact.columns().contains(&DECEASED_COLUMN));
    let mut dead: BTreeSet<String> = BTreeSet::new();
    for batch in read_batches(&release.join("deaths.parquet")) {
        let persons = batch.column_by_name("person").unwrap().as_string::<i32>();
        dead.extend((0..batch.num_rows()).map(|i| persons.value(i).to_owned()));
    }
    assert!(!dead.is_empty());
    let said_dead: BTreeSet<String> = anonymized
        .rows()
        .iter()
        .filter(|r| r.deceased.expect("deceased derived"))
        .map(|r| r.person.clone())
        .collect();
    assert_eq!(said_dead, dead);
    assert_eq!(anonymized.report().persons_deceased, dead.len() as u64);
    assert!(anonymized.report().deceased_rule.is_some());

    let csv_path = f.root.join("persons.csv");
    exact.write_csv(&csv_path).unwrap();
    let text = fs::read_to_string(&csv_path).unwrap();
    assert!(text.starts_with("person,age,sex,region,visits,diagnoses\n"));
    fs::remove_file(&csv_path).unwrap();
    anonymized.write_csv(&csv_path).unwrap();
    let text = fs::read_to_string(&csv_path).unwrap();
    assert!(text.starts_with("person,age,sex,region,visits,deceased,diagnoses\n"));
    assert_eq!(
        text.lines().filter(|l| l.contains(",yes,")).count(),
        dead.len()
    );
    assert_eq!(text.lines().count(), PERSONS + 1);
    for secret in &f.secrets {
        assert!(!text.contains(secret.as_str()));
    }
    assert!(!format!("{anonymized:?}").contains("19"));
}

/// A simple k-anonymization for the test: 10-year age bands, region suppressed, classes
/// still below k fully suppressed.
fn k_anonymize(table: &QuasiIdentifierTable, k: usize) -> Vec<Vec<String>> {
    let generalized: Vec<Vec<String>> = table
        .rows()
        .iter()
        .map(|r| {
            let band = r
                .age
                .parse::<u32>()
                .map(|a| format!("[{}-{}[", a / 10 * 10, a / 10 * 10 + 10))
                .unwrap_or_else(|_| "*".to_owned());
            vec![r.person.clone(), band, r.sex.clone(), "*".to_owned()]
        })
        .collect();
    let mut sizes: HashMap<Vec<String>, usize> = HashMap::new();
    for row in &generalized {
        *sizes.entry(row[1..].to_vec()).or_default() += 1;
    }
    generalized
        .into_iter()
        .map(|row| {
            if sizes[&row[1..].to_vec()] < k {
                vec![row[0].clone(), "*".into(), "*".into(), "*".into()]
            } else {
                row
            }
        })
        .collect()
}

#[test]
fn linkage_attack_reidentifies_exact_quasi_identifiers_but_not_k_anonymous_ones() {
    let f = fixture();
    let key = ProjectKey::from_bytes("study-a", [11; 32]);
    let truth = person_table(&f, &key, &QuasiIdentifierOptions::default());
    let policy = ReidentificationPolicy { max_share: 0.05 };
    let errors = AttackerErrorModel::default();
    let exact = linkage_attack(
        &truth,
        &ReleasedPersonTable::from_quasi_identifiers(&truth),
        &errors,
        &policy,
    )
    .unwrap();
    assert_eq!(exact.attempts, PERSONS as u64);
    assert!(exact.share > 0.5, "share {}", exact.share);
    assert!(exact.blocked);
    assert!(matches!(
        exact.enforce(),
        Err(DeidentifyError::ReidentificationRiskTooHigh { .. })
    ));
    // The same seed gives the same result.
    let again = linkage_attack(
        &truth,
        &ReleasedPersonTable::from_quasi_identifiers(&truth),
        &errors,
        &policy,
    )
    .unwrap();
    assert_eq!(again, exact);

    let k = 5;
    let rows = k_anonymize(&truth, k);
    let path = f.root.join("k-anonymous.csv");
    let mut writer = csv::Writer::from_path(&path).unwrap();
    writer
        .write_record(["person", "age", "sex", "region"])
        .unwrap();
    for row in &rows {
        writer.write_record(row).unwrap();
    }
    writer.flush().unwrap();
    let released = ReleasedPersonTable::read_csv(&path, b',').unwrap();
    let anonymous = linkage_attack(
        &truth,
        &released,
        &errors,
        &ReidentificationPolicy { max_share: 0.2 },
    )
    .unwrap();
    assert!(
        anonymous.share <= 1.0 / k as f64,
        "share {}",
        anonymous.share
    );
    assert!(!anonymous.blocked);
    anonymous.enforce().unwrap();
    let json = serde_json::to_string(&anonymous).unwrap();
    assert!(truth.rows().iter().all(|r| !json.contains(&r.person)));
}

#[test]
fn a_failed_release_leaves_nothing_and_a_full_directory_is_refused() {
    let f = fixture();
    let key = ProjectKey::from_bytes("study-a", [1; 32]);
    fs::write(f.extract.join("procedures.parquet"), b"not parquet").unwrap();
    let release = f.root.join("release");
    let error = write_release(
        &f.extract,
        &release,
        &key,
        &f.persons,
        &ReleaseOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(error, DeidentifyError::Table { .. }), "{error}");
    assert!(!release.exists());
    let leftovers: Vec<_> = fs::read_dir(&f.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let full = f.root.join("full");
    fs::create_dir_all(&full).unwrap();
    fs::write(full.join("x"), b"x").unwrap();
    assert!(matches!(
        write_release(
            &f.extract,
            &full,
            &key,
            &f.persons,
            &ReleaseOptions::default()
        ),
        Err(DeidentifyError::OutputNotEmpty(_))
    ));
}

#[test]
fn scrubbed_free_text_is_released_without_identifiers_and_with_shifted_dates() {
    let f = fixture();
    let key = ProjectKey::from_bytes("study-a", [5; 32]);
    let scrubber = FreeTextScrubber::new(&f.identities, &f.persons).unwrap();
    let options = ReleaseOptions {
        free_text: FreeTextRule::Scrub,
        ..ReleaseOptions::default()
    };
    // Scrubbing without a scrubber is refused, and leaves nothing behind.
    let refused = f.root.join("refused");
    assert!(matches!(
        write_release(&f.extract, &refused, &key, &f.persons, &options),
        Err(DeidentifyError::InvalidOption {
            option: "free_text",
            ..
        })
    ));
    assert!(!refused.exists());

    let release = f.root.join("release");
    let report = write_release_with_scrubber(
        &f.extract,
        &release,
        &key,
        &f.persons,
        &options,
        Some(&scrubber),
    )
    .unwrap();
    let values = text_values(&release);
    let texts: Vec<&String> = values["documents.text"].iter().flatten().collect();
    assert_eq!(texts.len(), values["documents.text"].len());
    assert!(!texts.is_empty());
    for text in &texts {
        assert_eq!(text.as_str(), "［氏名］ 様 (［ID］) 紹介状");
    }
    for (column, values) in &values {
        for value in values.iter().flatten() {
            for secret in &f.secrets {
                assert!(
                    !value.contains(secret.as_str()),
                    "{column} holds an identifier"
                );
            }
        }
    }
    assert!(
        values["conditions.name"]
            .iter()
            .flatten()
            .all(|n| n.ends_with(" ［氏名］様"))
    );
    assert!(
        values["encounters.department_name"]
            .iter()
            .flatten()
            .all(|n| n == "内科 ［氏名］医師")
    );
    let scrub = report.free_text_scrub.as_ref().unwrap();
    assert_eq!(scrub.columns["documents.text"].texts, texts.len() as u64);
    assert!(scrub.columns["documents.text"].names >= texts.len() as u64);
    assert!(scrub.total.ids >= texts.len() as u64);
    assert!(
        report.tables["documents"]
            .columns_scrubbed
            .contains(&"text".to_owned())
    );
    assert!(
        !report.tables["documents"]
            .columns_removed
            .contains(&"text".to_owned())
    );
    let json = serde_json::to_string(&report).unwrap();
    for secret in &f.secrets {
        assert!(!json.contains(secret.as_str()));
    }
    assert!(scrub.opt_in.contains("pseudonymized"));

    // Anonymized, opted in: the report says so; dates in text are cut to year and month.
    let anonymized = ReleaseOptions {
        kind: ReleaseKind::Anonymized(RareValueOptions::default()),
        free_text: FreeTextRule::Scrub,
        ..ReleaseOptions::default()
    };
    let report = write_release_with_scrubber(
        &f.extract,
        &f.root.join("anonymized"),
        &key,
        &f.persons,
        &anonymized,
        Some(&scrubber),
    )
    .unwrap();
    let scrub = report.free_text_scrub.unwrap();
    assert!(scrub.opt_in.contains("opt-in"));
    assert!(scrub.date_rule.contains("year and month"));
}

#[test]
fn dates_in_text_move_with_the_persons_structured_dates() {
    // One person, one document whose text names the encounter's date: after release the
    // text's date and the shifted encounter start agree.
    let dir = tempfile::tempdir().unwrap();
    let extract = dir.path().join("extract");
    fs::create_dir_all(&extract).unwrap();
    let start = DateTime::from_timestamp(1_685_318_400, 0).unwrap(); // 2023-05-29
    let common = |source: &str| RowCommon::new("prov-A", "intake", "pk1", source);
    write_table(
        &extract,
        &[EncounterRow {
            common: common("enc-1"),
            class: "inpatient".into(),
            status: "finished".into(),
            start: Some(start),
            ..Default::default()
        }],
    );
    write_table(
        &extract,
        &[DocumentRow {
            common: common("doc-1"),
            kind: "discharge".into(),
            title: Some("退院時サマリー".into()),
            date: Some(start),
            text: Some("2023年05月29日に入院。".into()),
        }],
    );
    let persons = PersonMap::new();
    let scrubber = FreeTextScrubber::new(&[], &persons).unwrap();
    let key = ProjectKey::from_bytes("p", [9; 32]);
    let release = dir.path().join("release");
    write_release_with_scrubber(
        &extract,
        &release,
        &key,
        &persons,
        &ReleaseOptions {
            free_text: FreeTextRule::Scrub,
            ..ReleaseOptions::default()
        },
        Some(&scrubber),
    )
    .unwrap();
    let encounters = read_batches(&release.join("encounters.parquet"));
    let shifted = encounters[0]
        .column_by_name("start")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>()
        .value(0);
    let shifted = DateTime::from_timestamp_micros(shifted)
        .unwrap()
        .date_naive();
    let text = &text_values(&release)["documents.text"][0];
    assert_eq!(
        text.as_deref(),
        Some(format!("{}に入院。", shifted.format("%Y年%m月%d日")).as_str())
    );
}

/// Every combination of at most `m` items of the `diagnoses` column of a released person
/// file and the number of rows holding it; written apart from the engine: the file is read as
/// plain delimited text and subsets are enumerated by bit masks.
fn released_diagnosis_supports(path: &Path, m: usize) -> BTreeMap<Vec<String>, usize> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "diagnoses")
        .unwrap();
    let mut supports: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for record in reader.records() {
        let record = record.unwrap();
        let mut items: Vec<String> = record[column]
            .split(';')
            .filter(|d| !d.is_empty() && *d != "*")
            .map(str::to_owned)
            .collect();
        items.sort();
        items.dedup();
        assert!(items.len() < 31, "too many items for the bit-mask checker");
        for mask in 1u32..(1u32 << items.len()) {
            if mask.count_ones() as usize > m {
                continue;
            }
            let subset: Vec<String> = (0..items.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| items[i].clone())
                .collect();
            *supports.entry(subset).or_default() += 1;
        }
    }
    supports
}

/// A released person table: demographics k-anonymized by the test's simple rule, visits
/// exact, diagnoses as the table gives them.
fn released_with_diagnoses(
    demographics: &[Vec<String>],
    table: &QuasiIdentifierTable,
) -> ReleasedPersonTable {
    let header = ["person", "age", "sex", "region", "visits", "diagnoses"]
        .map(str::to_owned)
        .to_vec();
    let rows = demographics
        .iter()
        .zip(table.rows())
        .map(|(d, r)| {
            assert_eq!(d[0], r.person);
            let mut row = d.clone();
            row.push(r.visits.to_string());
            row.push(r.diagnoses.clone());
            row
        })
        .collect();
    ReleasedPersonTable::new(header, rows).unwrap()
}

/// The person table as released under the k^m rule: demographics k-anonymized, the rows
/// of the `withheld` persons suppressed and the rule applied again to the rows left; with
/// the table's diagnosis plan composed with that later one.
fn released_under_k_m(
    table: &QuasiIdentifierTable,
    k: usize,
    m: usize,
    withheld: &BTreeSet<String>,
) -> (ReleasedPersonTable, DiagnosisRecoding) {
    let demographics = k_anonymize(table, k);
    let full = released_with_diagnoses(&demographics, table);
    let rows: Vec<Vec<String>> = full
        .rows()
        .iter()
        .filter(|r| !withheld.contains(&r[0]))
        .cloned()
        .collect();
    let mut released = ReleasedPersonTable::new(full.header().to_vec(), rows).unwrap();
    let (_, later) = released
        .protect_diagnoses_with_plan(&DiagnosisSetOptions { k, m })
        .unwrap()
        .unwrap();
    let recoding = table.diagnosis_recoding().then(&later);
    (released, recoding)
}

/// The fixture's anonymized person table with the k^m rule on diagnosis sets.
fn person_table_under_k_m(
    f: &Fixture,
    key: &ProjectKey,
    rare: &RareValueOptions,
    k: usize,
    m: usize,
) -> QuasiIdentifierTable {
    person_table(
        f,
        key,
        &QuasiIdentifierOptions::anonymized(rare).with_diagnosis_sets(k, m),
    )
}

/// An anonymized release following the person table's diagnosis plan.
fn anonymized_with_plan(rare: RareValueOptions, recoding: DiagnosisRecoding) -> ReleaseOptions {
    ReleaseOptions {
        kind: ReleaseKind::Anonymized(rare),
        diagnosis_recoding: Some(recoding),
        ..ReleaseOptions::default()
    }
}

#[test]
fn diagnosis_sets_are_k_m_anonymous_and_the_attack_does_not_gain() {
    let f = fixture();
    let key = ProjectKey::from_bytes("study-a", [12; 32]);
    // The fixture's few common categories: every pair is held by 21 or more persons, some
    // triples by 7 only; an attacker knowing three categories against k = 10 needs the rule.
    let (k, m) = (10, 3);
    let options = QuasiIdentifierOptions::anonymized(&RareValueOptions::default());
    let verbatim = person_table(
        &f,
        &key,
        &QuasiIdentifierOptions {
            diagnosis_sets: None,
            ..options.clone()
        },
    );
    let protected = person_table(&f, &key, &options.with_diagnosis_sets(k, m));
    let rule = protected.report().diagnosis_sets.clone().unwrap();
    assert_eq!((rule.k, rule.m), (k, m));
    assert_eq!(rule.persons, PERSONS as u64);
    assert!(rule.loss >= 0.0 && rule.loss <= 1.0);
    assert!(verbatim.report().diagnosis_sets.is_none());

    // Demographics generalized alike for both releases; only the diagnosis set differs.
    let demographics = k_anonymize(&protected, k);
    let mut released = released_with_diagnoses(&demographics, &protected);
    // The post-pass on the rows as released changes nothing here (no row was dropped).
    let again = released
        .protect_diagnoses(&DiagnosisSetOptions { k, m })
        .unwrap()
        .unwrap();
    assert_eq!(again.items_suppressed, 0);
    assert!(again.generalized_to_block.is_empty() && again.generalized_to_chapter.is_empty());
    let path = f.root.join("persons.csv");
    released.write_csv(&path, b',').unwrap();

    // The independent check, from the file alone.
    let supports = released_diagnosis_supports(&path, m);
    assert!(!supports.is_empty(), "no diagnosis released");
    for (combination, support) in &supports {
        assert!(*support >= k, "{combination:?} held by {support} persons");
    }
    // The verbatim sets of the same population do break the rule (the test means something).
    let verbatim_release = released_with_diagnoses(&k_anonymize(&verbatim, k), &verbatim);
    let verbatim_path = f.root.join("persons-verbatim.csv");
    verbatim_release.write_csv(&verbatim_path, b',').unwrap();
    assert!(
        released_diagnosis_supports(&verbatim_path, m)
            .values()
            .any(|s| *s < k)
    );

    // The attacker, who knows true categories, gains nothing from the protected sets.
    let errors = AttackerErrorModel {
        known_diagnoses: m,
        ..AttackerErrorModel::default()
    };
    let policy = ReidentificationPolicy { max_share: 1.0 };
    let share_at_diagnoses = |table: &ReleasedPersonTable| {
        let report = linkage_attack(&protected, table, &errors, &policy).unwrap();
        report
            .levels
            .iter()
            .find(|l| l.knowledge == AttackerKnowledge::Diagnoses)
            .unwrap()
            .share
    };
    let released = ReleasedPersonTable::read_csv(&path, b',').unwrap();
    let protected_share = share_at_diagnoses(&released);
    let verbatim_share = share_at_diagnoses(&verbatim_release);
    assert!(
        protected_share <= verbatim_share,
        "protected {protected_share} > verbatim {verbatim_share}"
    );
    // Generalized values still match their categories: an attacker knowing a category is not
    // thrown off by its block.
    let report = serde_json::to_string(&rule).unwrap();
    assert!(protected.rows().iter().all(|r| !report.contains(&r.person)));
}

#[test]
fn conditions_follow_the_diagnosis_plan_of_the_released_person_table() {
    let f = fixture();
    let key = ProjectKey::from_bytes("study-a", [12; 32]);
    let (k, m) = (10, 3);
    let rare = RareValueOptions::default();
    let table = person_table_under_k_m(&f, &key, &rare, k, m);
    let rule = table.report().diagnosis_sets.clone().unwrap();
    assert!(rule.items_suppressed > 0 || !rule.generalized_to_block.is_empty());
    // The person table as released: one person's row suppressed (withheld), the rule applied
    // again to the rows left, the plans composed.
    let withheld = table.rows()[0].person.clone();
    let (released, recoding) =
        released_under_k_m(&table, k, m, &BTreeSet::from([withheld.clone()]));
    assert_eq!(recoding.len(), PERSONS - 1);
    assert!(recoding.person(&withheld).is_none());

    // A pseudonymized release keeps its diagnoses: the plan is refused there.
    let refused = ReleaseOptions {
        diagnosis_recoding: Some(recoding.clone()),
        ..ReleaseOptions::default()
    };
    assert!(matches!(
        write_release(&f.extract, &f.root.join("no"), &key, &f.persons, &refused),
        Err(DeidentifyError::InvalidOption { .. })
    ));
    assert!(!f.root.join("no").exists());

    let release = f.root.join("anonymized");
    let options = anonymized_with_plan(rare, recoding);
    let report = write_release(&f.extract, &release, &key, &f.persons, &options).unwrap();
    let conditions_report = report.diagnosis_sets.clone().unwrap();
    assert!(conditions_report.rows_of_withheld_persons > 0);
    assert!(conditions_report.rows_suppressed + conditions_report.rows_generalized > 0);

    // From the files alone: each person's items in conditions are the person's released set.
    let path = f.root.join("persons.csv");
    released.write_csv(&path, b',').unwrap();
    let mut table_sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut reader = csv::Reader::from_path(&path).unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        table_sets.insert(
            record[0].to_owned(),
            record[5]
                .split(';')
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect(),
        );
    }
    let mut condition_sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for batch in read_batches(&release.join("conditions.parquet")) {
        let person = batch.column_by_name("person").unwrap().as_string::<i32>();
        let code = batch.column_by_name("icd10").unwrap().as_string::<i32>();
        let medis = batch
            .column_by_name("medis_code")
            .unwrap()
            .as_string::<i32>();
        for i in 0..batch.num_rows() {
            let items = condition_sets
                .entry(person.value(i).to_owned())
                .or_default();
            if code.is_valid(i) {
                let value = code.value(i);
                if value.contains('-') {
                    assert!(medis.is_null(i), "a generalized row keeps its MEDIS code");
                }
                items.insert(diagnosis_item(value));
            }
        }
    }
    assert!(!condition_sets.contains_key(&withheld));
    for (person, items) in &condition_sets {
        assert_eq!(Some(items), table_sets.get(person), "conditions disagree");
    }
    for (person, items) in &table_sets {
        assert!(condition_sets.contains_key(person) || items.is_empty());
    }
    let mut supports: BTreeMap<Vec<&String>, usize> = BTreeMap::new();
    for items in condition_sets.values() {
        let items: Vec<&String> = items.iter().collect();
        for mask in 1u32..(1u32 << items.len()) {
            if mask.count_ones() as usize <= m {
                let subset = (0..items.len())
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| items[i])
                    .collect();
                *supports.entry(subset).or_default() += 1;
            }
        }
    }
    assert!(supports.values().all(|s| *s >= k), "{supports:?}");
}

/// A released `icd10` value as a diagnosis item: a block or chapter as it is, a code by its
/// category.
fn diagnosis_item(code: &str) -> String {
    if code.contains('-') {
        code.to_owned()
    } else {
        code.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(3)
            .collect()
    }
}

/// Rows of a Parquet file per value of a text column.
fn rows_per_value(path: &Path, column: &str) -> BTreeMap<String, u64> {
    let mut rows = BTreeMap::new();
    if !path.exists() {
        return rows;
    }
    for batch in read_batches(path) {
        let values = batch.column_by_name(column).unwrap().as_string::<i32>();
        for value in values.iter().flatten() {
            *rows.entry(value.to_owned()).or_default() += 1;
        }
    }
    rows
}

#[test]
fn persons_withheld_from_the_person_table_leave_no_row_in_any_table() {
    let f = fixture();
    let key = ProjectKey::from_bytes("study-a", [13; 32]);
    let (k, m) = (10, 2);
    let rare = RareValueOptions::default();
    let threshold = rare.min_persons;
    let table = person_table_under_k_m(&f, &key, &rare, k, m);

    // Holders of each YJ code, by pseudonym, in the extraction.
    let mut pseudonymizer = key.pseudonymizer().unwrap();
    let mut holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for batch in read_batches(&f.extract.join("medication_requests.parquet")) {
        let column = |name| batch.column_by_name(name).unwrap().as_string::<i32>();
        let (providers, keys, codes) = (
            column("provider_id"),
            column("patient_key"),
            column("yj_code"),
        );
        for row in 0..batch.num_rows() {
            if codes.is_valid(row) {
                let person = f.persons.person(providers.value(row), keys.value(row));
                holders
                    .entry(codes.value(row).to_owned())
                    .or_default()
                    .insert(pseudonymizer.person(&person).pseudonym.clone());
            }
        }
    }
    // The least common YJ code the rare-value rule keeps over all persons: withholding
    // enough of its holders leaves it rare among the persons released.
    let (code, code_holders) = holders
        .iter()
        .filter(|(c, h)| c.len() == 12 && h.len() >= threshold)
        .min_by_key(|(_, h)| h.len())
        .unwrap();
    let mut withheld: BTreeSet<String> = code_holders
        .iter()
        .take(code_holders.len() + 1 - threshold)
        .cloned()
        .collect();
    withheld.insert(table.rows()[0].person.clone());

    // The person table as released: the withheld persons' rows suppressed.
    let (released, recoding) = released_under_k_m(&table, k, m, &withheld);
    let release = f.root.join("anonymized");
    let options = anonymized_with_plan(rare, recoding);
    let report = write_release(&f.extract, &release, &key, &f.persons, &options).unwrap();

    // From the files: no row of a withheld person, every person of the release in the table.
    let table_persons: BTreeSet<String> = released.rows().iter().map(|r| r[0].clone()).collect();
    let release_persons = person_values(&release);
    assert!(
        release_persons.is_disjoint(&withheld),
        "a withheld person's row"
    );
    assert!(release_persons.is_subset(&table_persons));
    assert_eq!(report.persons, release_persons.len() as u64);

    // The report counts what was withheld: every non-conditions table lost exactly those rows.
    let counted = report.withheld_persons.clone().unwrap();
    assert_eq!(counted.persons, withheld.len() as u64);
    assert!(counted.rule.contains("every table"));
    let mut rows_withheld = 0;
    for entry in fs::read_dir(&f.extract).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let input: u64 = rows_per_value(&path, "provider_id").values().sum();
        let output: u64 = rows_per_value(&release.join(format!("{name}.parquet")), "person")
            .values()
            .sum();
        let counted_rows = counted.rows_per_table.get(&name).copied().unwrap_or(0);
        rows_withheld += counted_rows;
        if name != "conditions" {
            assert_eq!(input - output, counted_rows, "{name}");
        }
    }
    assert_eq!(counted.rows, rows_withheld);
    assert!(counted.rows_per_table["encounters"] > 0);
    assert_eq!(
        report
            .diagnosis_sets
            .as_ref()
            .unwrap()
            .rows_of_withheld_persons,
        counted.rows_per_table["conditions"]
    );

    // The rare-value rule counts the persons released: the code is no longer common.
    let released_codes = rows_per_value(&release.join("medication_requests.parquet"), "yj_code");
    assert!(
        !released_codes.contains_key(code),
        "a code held by too few persons released"
    );

    // Visits in the person table are the encounter rows the release holds for the person.
    let encounters = rows_per_value(&release.join("encounters.parquet"), "person");
    for row in table
        .rows()
        .iter()
        .filter(|r| table_persons.contains(&r.person))
    {
        assert_eq!(
            encounters.get(&row.person).copied().unwrap_or(0),
            row.visits
        );
    }

    // A released cause of death is an item of the person's released diagnosis set.
    let sets: BTreeMap<&str, BTreeSet<&str>> = released
        .rows()
        .iter()
        .map(|r| (r[0].as_str(), r[5].split(';').collect()))
        .collect();
    let mut causes = 0;
    for batch in read_batches(&release.join("deaths.parquet")) {
        let persons = batch.column_by_name("person").unwrap().as_string::<i32>();
        let cause = batch
            .column_by_name("cause_icd10")
            .unwrap()
            .as_string::<i32>();
        for row in 0..batch.num_rows() {
            causes += 1;
            if cause.is_valid(row) {
                assert!(sets[persons.value(row)].contains(cause.value(row)));
            }
        }
    }
    let conditions = report.diagnosis_sets.clone().unwrap();
    assert_eq!(
        conditions.death_causes_as_item + conditions.death_causes_removed,
        causes
    );
    // The fixture's cause (C34.1) is in nobody's diagnosis set.
    assert!(conditions.death_causes_removed > 0);

    // Without the person table's plans nobody is withheld (negative control of the check).
    let all = f.root.join("all");
    let options = ReleaseOptions {
        diagnosis_recoding: None,
        ..options
    };
    let report = write_release(&f.extract, &all, &key, &f.persons, &options).unwrap();
    assert!(report.withheld_persons.is_none());
    assert!(!person_values(&all).is_disjoint(&withheld));
}

#[test]
fn a_release_without_encounters_drops_the_references_to_them() {
    let f = fixture();
    let key = ProjectKey::from_bytes("study-a", [9; 32]);
    let columns_of = |release: &Path| -> BTreeSet<String> {
        read_batches(&release.join("conditions.parquet"))[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    // With encounters, conditions keep their (pseudonymized) encounter reference.
    let whole = f.root.join("whole");
    write_release(
        &f.extract,
        &whole,
        &key,
        &f.persons,
        &ReleaseOptions::default(),
    )
    .unwrap();
    assert!(whole.join("encounters.parquet").exists());
    assert!(columns_of(&whole).contains("encounter_id"));
    let without = f.root.join("without");
    let report = write_release(
        &f.extract,
        &without,
        &key,
        &f.persons,
        &ReleaseOptions {
            tables: kiban_model::ClinicalTable::ALL
                .iter()
                .copied()
                .filter(|t| *t != kiban_model::ClinicalTable::Encounters)
                .collect(),
            ..ReleaseOptions::default()
        },
    )
    .unwrap();
    assert!(!without.join("encounters.parquet").exists());
    assert!(!columns_of(&without).contains("encounter_id"));
    assert!(
        report.tables["conditions"]
            .columns_removed
            .contains(&"encounter_id".to_owned())
    );
    // The person table's report says visits may be banded.
    let table = person_table(
        &f,
        &key,
        &QuasiIdentifierOptions::anonymized(&RareValueOptions::default()).without_encounters(),
    );
    assert!(table.report().visits_rule.contains("bands"));
}

/// Each released person's combined item set, from the release's files alone: diagnosis items
/// of `conditions.parquet` (block or chapter as it is, a code by its category), and the
/// kind-prefixed items of procedures, allergies and infections.
fn released_item_sets(release: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let column = |batch: &RecordBatch, name: &str, row: usize| {
        let values = batch.column_by_name(name).unwrap().as_string::<i32>();
        values
            .is_valid(row)
            .then(|| values.value(row).trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    for table in ["conditions", "procedures", "allergies", "infections"] {
        let path = release.join(format!("{table}.parquet"));
        if !path.exists() {
            continue;
        }
        for batch in read_batches(&path) {
            for row in 0..batch.num_rows() {
                let person = column(&batch, "person", row).unwrap();
                let item = match table {
                    "conditions" => column(&batch, "icd10", row).map(|code| diagnosis_item(&code)),
                    "procedures" => column(&batch, "code", row).map(|c| format!("procedure:{c}")),
                    "allergies" => {
                        let category =
                            column(&batch, "category", row).unwrap_or_else(|| "-".to_owned());
                        Some(match column(&batch, "code", row) {
                            Some(code) => format!("allergy:{category}:{code}"),
                            None => format!("allergy:{category}"),
                        })
                    }
                    _ => column(&batch, "code", row).map(|code| {
                        match column(&batch, "result", row) {
                            Some(result) => format!("infection:{code}:{result}"),
                            None => format!("infection:{code}"),
                        }
                    }),
                };
                let set = sets.entry(person).or_default();
                set.extend(item);
            }
        }
    }
    sets
}

/// The combinations of at most `m` items held by fewer than `k` persons.
fn rare_combinations(
    sets: &BTreeMap<String, BTreeSet<String>>,
    k: usize,
    m: usize,
) -> Vec<(Vec<String>, usize)> {
    let mut supports: HashMap<Vec<&String>, usize> = HashMap::new();
    for items in sets.values() {
        let items: Vec<&String> = items.iter().collect();
        let mut stack: Vec<(usize, Vec<&String>)> = vec![(0, Vec::new())];
        while let Some((start, combination)) = stack.pop() {
            if !combination.is_empty() {
                *supports.entry(combination.clone()).or_default() += 1;
            }
            if combination.len() == m {
                continue;
            }
            for (at, &item) in items.iter().enumerate().skip(start) {
                let mut next = combination.clone();
                next.push(item);
                stack.push((at + 1, next));
            }
        }
    }
    supports
        .into_iter()
        .filter(|(_, n)| *n < k)
        .map(|(c, n)| (c.into_iter().cloned().collect(), n))
        .collect()
}

#[test]
fn procedures_allergies_and_infections_join_the_k_m_rule() {
    use kiban_model::{AllergyRow, InfectionRow};
    let f = fixture();
    // Allergies and infection markers of the persons on prov-A (every person has a record
    // there): food allergens for a quarter each, one drug allergy alone, HBs antigen tests
    // for half (positive for a few), one HIV test.
    let mut allergies = Vec::new();
    let mut infections = Vec::new();
    for i in 0..PERSONS {
        let common = |kind: &str| {
            RowCommon::new(
                "prov-A",
                &format!("intake-prov-A-{}", i % 4),
                &format!("pkA{i:05}x"),
                &format!("{kind}-{i:05}"),
            )
        };
        let allergen = match i % 8 {
            0 | 1 => Some(("food", "J7F7111")),
            2 => Some(("food", "J7F7211")),
            3 if i % 16 == 3 => Some(("medication", "6131001M1210")),
            _ => None,
        };
        if let Some((category, code)) = allergen {
            allergies.push(AllergyRow {
                common: common("allergy"),
                category: category.to_owned(),
                code: Some(code.to_owned()),
                code_system: Some("urn:test".to_owned()),
                ..Default::default()
            });
        }
        if i % 2 == 0 {
            infections.push(InfectionRow {
                common: common("infection"),
                code: Some("5F016141002227101".to_owned()),
                result: Some(if i % 12 == 0 { "positive" } else { "negative" }.to_owned()),
                ..Default::default()
            });
        }
        if i == 3 {
            infections.push(InfectionRow {
                common: common("hiv"),
                code: Some("5F420150002227101".to_owned()),
                result: Some("positive".to_owned()),
                ..Default::default()
            });
        }
    }
    write_table(&f.extract, &allergies);
    write_table(&f.extract, &infections);

    let key = ProjectKey::from_bytes("study-items", [14; 32]);
    let (k, m) = (5, 2);
    let rare = RareValueOptions::default();
    let table = person_table_under_k_m(&f, &key, &rare, k, m);
    let (_, recoding) = released_under_k_m(&table, k, m, &BTreeSet::new());
    let rule = DiagnosisSetOptions { k, m };

    // Without the combined rule the item tables break k^m: the control shows the fixture
    // needs it.
    let before = f.root.join("diagnoses-only");
    let options = anonymized_with_plan(rare.clone(), recoding.clone());
    let plain = write_release(&f.extract, &before, &key, &f.persons, &options).unwrap();
    assert!(plain.clinical_item_sets.is_none());
    assert!(!rare_combinations(&released_item_sets(&before), k, m).is_empty());

    // The rule needs the person table's plans.
    let refused = ReleaseOptions {
        kind: ReleaseKind::Anonymized(rare.clone()),
        clinical_item_sets: Some(rule.clone()),
        ..ReleaseOptions::default()
    };
    assert!(matches!(
        write_release(&f.extract, &f.root.join("no"), &key, &f.persons, &refused),
        Err(DeidentifyError::InvalidOption { .. })
    ));

    let release = f.root.join("items");
    let options = ReleaseOptions {
        clinical_item_sets: Some(rule),
        ..options
    };
    let report = write_release(&f.extract, &release, &key, &f.persons, &options).unwrap();
    let items = report.clinical_item_sets.clone().unwrap();
    assert_eq!((items.k, items.m), (k, m));
    assert_eq!(items.persons as usize, recoding.len());
    assert!(items.items_suppressed > 0, "{items:?}");
    let sets = released_item_sets(&release);
    assert_eq!(
        rare_combinations(&sets, k, m),
        Vec::<(Vec<String>, usize)>::new()
    );
    // Diagnoses are released as without the rule: conditions are untouched.
    assert_eq!(
        rows_per_value(&release.join("conditions.parquet"), "icd10"),
        rows_per_value(&before.join("conditions.parquet"), "icd10")
    );
    // Per table, the rows removed are the rows the report counts; generalized rows lose
    // the finer column.
    for table_name in ["procedures", "allergies", "infections"] {
        let rows = |dir: &Path| {
            let path = dir.join(format!("{table_name}.parquet"));
            if path.exists() {
                read_batches(&path)
                    .iter()
                    .map(|b| b.num_rows() as u64)
                    .sum()
            } else {
                0
            }
        };
        let counts = items.tables.get(table_name).cloned().unwrap_or_default();
        assert_eq!(
            rows(&before) - rows(&release),
            counts.rows_suppressed + counts.rows_code_below_min_persons,
            "{table_name}"
        );
        assert_eq!(
            report.tables[table_name].rows,
            rows(&release),
            "{table_name}"
        );
    }
    let generalized_allergies = items
        .tables
        .get("allergies")
        .map_or(0, |t| t.rows_generalized);
    let without_code = read_batches(&release.join("allergies.parquet"))
        .iter()
        .map(|b| {
            let codes = b.column_by_name("code").unwrap();
            let systems = b.column_by_name("code_system").unwrap();
            (0..b.num_rows())
                .filter(|&i| codes.is_null(i) && systems.is_null(i))
                .count() as u64
        })
        .sum::<u64>();
    assert!(without_code >= generalized_allergies);
    // Reports name rules and codes, never persons.
    let json = serde_json::to_string(&report).unwrap();
    assert!(sets.keys().all(|person| !json.contains(person.as_str())));
}
