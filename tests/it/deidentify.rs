//! `kiban deidentify` on a store made by `kiban synth` + `kiban ingest` + `kiban extract`:
//! project-scoped pseudonyms, no identity or store key in any release, rare codes recoded,
//! a k-anonymous person table, and a release blocked by its re-identification test.
//! Every claim is recomputed here from the released files alone.

use crate::privacy::identity_needles;
use crate::support::{files_under, kiban, run_ok, synth};
use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A synthetic store and its extraction, made once per test.
struct Fixture {
    _tmp: tempfile::TempDir,
    _keys: tempfile::TempDir,
    input: PathBuf,
    data: PathBuf,
    key_file: PathBuf,
    extract: PathBuf,
    root: PathBuf,
}

fn fixture(persons: u64, seed: u64) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let input = tmp.path().join("providers");
    let data = tmp.path().join("data");
    let key_file = keys.path().join("master.key");
    let extract = tmp.path().join("extract");
    synth(persons, seed, &input);
    run_ok(
        kiban()
            .arg("ingest")
            .arg(&input)
            .arg("--data")
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file),
    );
    run_ok(
        kiban()
            .args(["extract", "--data"])
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file)
            .arg("--out")
            .arg(&extract),
    );
    Fixture {
        root: tmp.path().to_owned(),
        _tmp: tmp,
        _keys: keys,
        input,
        data,
        key_file,
        extract,
    }
}

fn deidentify(f: &Fixture, out: &Path, extra: &[&str]) -> std::process::Output {
    kiban()
        .arg("deidentify")
        .arg("--data")
        .arg(&f.data)
        .arg("--key-file")
        .arg(&f.key_file)
        .arg("--extract")
        .arg(&f.extract)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("kiban runs")
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// Every text cell of a column of a Parquet file (nulls left out).
fn text_column(path: &Path, column: &str) -> Vec<String> {
    let mut values = Vec::new();
    for batch in read_parquet(path) {
        let Some(array) = batch.column_by_name(column) else {
            continue;
        };
        let strings = array.as_string::<i32>();
        for i in 0..strings.len() {
            if !strings.is_null(i) {
                values.push(strings.value(i).to_owned());
            }
        }
    }
    values
}

/// Every text cell of every Parquet file of a folder.
fn all_text(dir: &Path) -> Vec<String> {
    let mut values = Vec::new();
    for file in files_under(dir) {
        if file.extension().and_then(|e| e.to_str()) != Some("parquet") {
            continue;
        }
        for batch in read_parquet(&file) {
            for column in batch.columns() {
                if column.data_type() == &DataType::Utf8 {
                    let strings = column.as_string::<i32>();
                    for i in 0..strings.len() {
                        if !strings.is_null(i) {
                            values.push(strings.value(i).to_owned());
                        }
                    }
                }
            }
        }
    }
    values
}

fn persons_of(release: &Path) -> BTreeSet<String> {
    text_column(&release.join("encounters.parquet"), "person")
        .into_iter()
        .collect()
}

#[test]
fn pseudonyms_are_stable_within_a_project_and_unlinkable_across_projects() {
    let f = fixture(200, 41);
    let first = f.root.join("a-1");
    let again = f.root.join("a-2");
    let other = f.root.join("b-1");
    // No limit by default: exact ages and regions re-identify many persons of a
    // pseudonymized release, which certified users receive under contract; the test is
    // still run and reported.
    for (out, project) in [
        (&first, "study-a"),
        (&again, "study-a"),
        (&other, "study-b"),
    ] {
        let run = deidentify(&f, out, &["--project", project]);
        assert!(
            run.status.success(),
            "deidentify failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let a1 = persons_of(&first);
    assert!(a1.len() > 100, "too few persons released: {}", a1.len());
    assert_eq!(a1, persons_of(&again), "one project, two deliveries");
    let b1 = persons_of(&other);
    assert_eq!(a1.len(), b1.len());
    assert!(a1.is_disjoint(&b1), "two projects share pseudonyms");

    // No identity value, patient key or source id of the extraction is in any release file,
    // and the report sits beside the release, not in it.
    let needles = identity_needles(&f.input);
    let patient_keys: HashSet<String> =
        text_column(&f.extract.join("encounters.parquet"), "patient_key")
            .into_iter()
            .collect();
    let source_ids: HashSet<String> =
        text_column(&f.extract.join("encounters.parquet"), "source_id")
            .into_iter()
            .collect();
    assert!(!patient_keys.is_empty() && !source_ids.is_empty());
    for value in all_text(&first) {
        assert!(!patient_keys.contains(&value), "a patient key was released");
        assert!(!source_ids.contains(&value), "a source id was released");
        for needle in &needles {
            assert!(!value.contains(needle.as_str()), "identity value released");
        }
    }
    for file in files_under(&first) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.ends_with(".parquet"),
            "unexpected file in the release: {name}"
        );
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(f.root.join("a-1.report.json")).unwrap()).unwrap();
    assert_eq!(report["kind"], "pseudonymized");
    let test = &report["reidentification"];
    assert!(test["attempts"].as_u64().unwrap() > 100);
    assert!(
        test["share"].as_f64().unwrap() > 0.0,
        "exact QIs re-identify someone"
    );
    assert_eq!(test["blocked"], false);

    // Dates move by one offset per person: the length of every encounter is kept.
    let lengths = |release: &Path| -> HashMap<i64, usize> {
        let mut out = HashMap::new();
        for batch in read_parquet(&release.join("encounters.parquet")) {
            let start = batch.column_by_name("start").unwrap();
            let end = batch.column_by_name("end").unwrap();
            let start = start.as_primitive::<arrow_array::types::TimestampMicrosecondType>();
            let end = end.as_primitive::<arrow_array::types::TimestampMicrosecondType>();
            for i in 0..batch.num_rows() {
                if start.is_valid(i) && end.is_valid(i) {
                    *out.entry(end.value(i) - start.value(i)).or_insert(0) += 1;
                }
            }
        }
        out
    };
    let kept = lengths(&f.extract);
    assert!(!kept.is_empty());
    assert_eq!(
        kept,
        lengths(&first),
        "encounter lengths changed by date shifting"
    );
}

#[test]
fn an_anonymized_release_recodes_rare_codes_and_is_k_anonymous() {
    let f = fixture(300, 43);
    let out = f.root.join("anon");
    let run = deidentify(
        &f,
        &out,
        &["--project", "study-c", "--kind", "anonymized", "--k", "5"],
    );
    assert!(
        run.status.success(),
        "deidentify failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );

    // Every ICD-10 code released is held by at least 10 persons (the default threshold).
    let conditions = out.join("conditions.parquet");
    let mut holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for batch in read_parquet(&conditions) {
        let person = batch.column_by_name("person").unwrap().as_string::<i32>();
        let code = batch.column_by_name("icd10").unwrap().as_string::<i32>();
        for i in 0..batch.num_rows() {
            if code.is_valid(i) {
                holders
                    .entry(code.value(i).to_owned())
                    .or_default()
                    .insert(person.value(i).to_owned());
            }
        }
    }
    assert!(!holders.is_empty(), "no diagnosis codes released");
    for (code, persons) in &holders {
        assert!(
            persons.len() >= 10,
            "{code} held by {} persons",
            persons.len()
        );
    }

    // The person table: every combination of the quasi-identifiers occurs at least k times.
    let text = std::fs::read_to_string(out.join("persons.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let qi = [at("age"), at("sex"), at("region"), at("visits")];
    let mut classes: HashMap<Vec<String>, usize> = HashMap::new();
    let mut rows = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        *classes
            .entry(qi.iter().map(|&c| cells[c].to_owned()).collect())
            .or_insert(0) += 1;
        rows += 1;
    }
    assert!(rows > 150, "too few persons released: {rows}");
    let smallest = classes.values().min().copied().unwrap();
    assert!(smallest >= 5, "a class of {smallest} persons");
    // No person of the table is missing from the clinical release, nor the other way.
    let table_persons: BTreeSet<String> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(at("person")).unwrap().to_owned())
        .collect();
    assert!(table_persons.is_subset(&persons_of(&out)));

    let report: Value =
        serde_json::from_slice(&std::fs::read(f.root.join("anon.report.json")).unwrap()).unwrap();
    let test = &report["reidentification"];
    assert_eq!(test["blocked"], false);
    assert!(test["share"].as_f64().unwrap() <= 0.05);
    assert_eq!(
        report["person_table"]["anonymization"]["k"]
            .as_u64()
            .unwrap() as usize,
        smallest
    );
}

#[test]
fn a_release_above_the_reidentification_limit_is_not_written() {
    let f = fixture(120, 47);
    let out = f.root.join("blocked");
    let run = deidentify(
        &f,
        &out,
        &["--project", "study-d", "--max-reidentification", "0.0001"],
    );
    assert!(!run.status.success(), "a blocked release succeeded");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("re-identification"), "{stderr}");
    assert!(!out.exists(), "a blocked release was written");
    let leftovers: Vec<_> = std::fs::read_dir(&f.root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind");
    let report: Value =
        serde_json::from_slice(&std::fs::read(f.root.join("blocked.report.json")).unwrap())
            .unwrap();
    assert_eq!(report["reidentification"]["blocked"], true);
}

/// Every identity value of the providers' Patient resources, in the forms text may hold:
/// the needles of the privacy test, plus names without their space (3+ characters) and
/// postal codes.
fn identity_values(input: &Path) -> BTreeSet<String> {
    let mut values = identity_needles(input);
    for file in files_under(input) {
        if file.extension().and_then(|e| e.to_str()) != Some("ndjson") {
            continue;
        }
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let bundle: Value = serde_json::from_str(line).unwrap();
            for entry in bundle["entry"].as_array().into_iter().flatten() {
                let res = &entry["resource"];
                if res["resourceType"] != "Patient" {
                    continue;
                }
                for name in res["name"].as_array().into_iter().flatten() {
                    let family = name["family"].as_str().unwrap_or("");
                    let given: String = name["given"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let full = format!("{family}{given}");
                    if full.chars().count() >= 3 {
                        values.insert(full);
                    }
                }
                for address in res["address"].as_array().into_iter().flatten() {
                    if let Some(postal) = address["postalCode"].as_str() {
                        values.insert(postal.to_owned());
                    }
                }
            }
        }
    }
    values
}

#[test]
fn scrubbed_free_text_is_released_without_any_identity_value() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let input = tmp.path().join("providers");
    let data = tmp.path().join("data");
    let key_file = keys.path().join("master.key");
    let extract = tmp.path().join("extract");
    synth(150, 53, &input);
    run_ok(
        kiban()
            .arg("ingest")
            .arg(&input)
            .arg("--data")
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file),
    );
    run_ok(
        kiban()
            .args(["link", "--data"])
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file),
    );
    run_ok(
        kiban()
            .args(["extract", "--data"])
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file)
            .arg("--out")
            .arg(&extract),
    );
    let originals = text_column(&extract.join("documents.parquet"), "text");
    assert!(
        !originals.is_empty(),
        "the synthetic providers sent no documents"
    );

    for (name, extra) in [
        ("pseudo", &["--project", "study-t"][..]),
        (
            "anon",
            &["--project", "study-t", "--kind", "anonymized"][..],
        ),
    ] {
        let out = tmp.path().join(name);
        let run = kiban()
            .arg("deidentify")
            .arg("--data")
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file)
            .arg("--extract")
            .arg(&extract)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .args(["--free-text", "scrub"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "deidentify failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );

        // Documents keep their text, scrubbed, every row non-empty.
        let texts = text_column(&out.join("documents.parquet"), "text");
        assert_eq!(texts.len(), originals.len(), "{name}: document texts lost");
        assert!(
            texts.iter().all(|t| !t.trim().is_empty()),
            "{name}: empty text"
        );
        assert!(
            texts.iter().any(|t| t.contains("［氏名］")),
            "{name}: no name removed"
        );
        assert!(
            texts.iter().any(|t| t.contains("ご紹介いたします")),
            "{name}: the letters' wording was removed"
        );

        let values = identity_values(&input);
        assert!(
            values.len() > 300,
            "too few identity values: {}",
            values.len()
        );
        for value in all_text(&out) {
            for needle in &values {
                assert!(
                    !value.contains(needle.as_str()),
                    "{name}: an identity value was released"
                );
            }
        }
        let report: Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join(format!("{name}.report.json"))).unwrap(),
        )
        .unwrap();
        let scrub = &report["release"]["free_text_scrub"];
        assert!(scrub["total"]["names"].as_u64().unwrap() > 0);
        assert_eq!(
            scrub["columns"]["documents.text"]["texts"]
                .as_u64()
                .unwrap(),
            originals.len() as u64
        );
        let report_text = serde_json::to_string(&report).unwrap();
        for needle in &values {
            assert!(
                !report_text.contains(needle.as_str()),
                "{name}: value in the report"
            );
        }
        if name == "anon" {
            assert!(scrub["opt_in"].as_str().unwrap().contains("opt-in"));
            // Year and month only: no day is left in a date of the text.
            assert!(texts.iter().all(|t| !regex_like_full_date(t)));
        }
    }
}

/// Whether a text holds a full `YYYY年MM月DD日` date.
fn regex_like_full_date(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    chars.windows(11).any(|w| {
        w[..4].iter().all(char::is_ascii_digit)
            && w[4] == '年'
            && w[5..7].iter().all(char::is_ascii_digit)
            && w[7] == '月'
            && w[8..10].iter().all(char::is_ascii_digit)
            && w[10] == '日'
    })
}
