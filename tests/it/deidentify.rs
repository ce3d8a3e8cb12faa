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
    }
    // Matched as whole numbers outside keyed tokens (see `is_mention`): 8+ digit values turn
    // up inside random pseudonyms by chance.
    let needles: BTreeMap<String, &'static str> = needles
        .into_iter()
        .map(|n| (n, "identity needle of the privacy test"))
        .collect();
    let leaks = leaks_in(&first, &needles);
    assert!(
        leaks.is_empty(),
        "identity value released: {}",
        leaks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
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
        // A code finer than its category follows the rare-value rule; a category, block or
        // chapter is a diagnosis item of the k^m rule, held by at least k persons.
        let finer = code.len() > 3 && !code.contains('-');
        let least = if finer { 10 } else { 5 };
        assert!(
            persons.len() >= least,
            "{code} held by {} persons",
            persons.len()
        );
    }
    check_diagnosis_sets(&out, 5, 2);
    assert_eq!(
        clinical_item_set_violations(&out, 5, 2),
        Vec::<String>::new()
    );
    clinical_item_set_negative_control(&out, &f.root.join("anon-items"));
    // Every summary line is given in English and in Japanese, and one names the combined
    // item set's rule.
    let stdout = String::from_utf8_lossy(&run.stdout);
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let (english, japanese) = line
            .split_once(" / ")
            .unwrap_or_else(|| panic!("a summary line without Japanese: {line}"));
        assert!(english.is_ascii(), "{line}");
        assert!(!japanese.is_ascii(), "{line}");
    }
    assert!(
        stdout.contains("病名・処置・アレルギー・感染症"),
        "{stdout}"
    );

    // The person table: every combination of the quasi-identifiers occurs at least k times.
    let text = std::fs::read_to_string(out.join("persons.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    // The deaths table is released, so `deceased` is a quasi-identifier of the table.
    assert!(out.join("deaths.parquet").exists() && header.contains(&"deceased"));
    let qi = [
        at("age"),
        at("sex"),
        at("region"),
        at("visits"),
        at("deceased"),
    ];
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
    // The diagnosis rule as it holds in the released file, and what it did to conditions.
    let sets = &report["person_table"]["diagnosis_sets"];
    assert_eq!(sets["k"], 5);
    assert_eq!(sets["m"], 2);
    assert_eq!(sets["persons"].as_u64().unwrap() as usize, rows);
    let conditions = &report["release"]["diagnosis_sets"];
    assert!(
        conditions["rule"]
            .as_str()
            .unwrap()
            .contains("block or chapter")
    );
    assert!(conditions["rows_of_withheld_persons"].is_u64());
    // The combined item set's rule, and the rows it cost per table.
    let items = &report["release"]["clinical_item_sets"];
    assert_eq!(items["k"], 5);
    assert_eq!(items["m"], 2);
    assert_eq!(items["persons"].as_u64().unwrap() as usize, rows);
    for table in ["procedures", "allergies", "infections"] {
        if out.join(format!("{table}.parquet")).exists() {
            assert!(
                items["tables"][table]["rows_suppressed"].is_u64(),
                "{table}"
            );
        }
    }

    // Persons suppressed from persons.csv leave no row anywhere, and the report says how many
    // persons and rows were withheld: recomputed from the extraction and the release.
    assert_eq!(released_persons_violations(&out), Vec::<String>::new());
    let withheld = &report["release"]["withheld_persons"];
    let suppressed = report["person_table"]["anonymization"]["suppressed_records"]
        .as_u64()
        .unwrap();
    assert_eq!(withheld["persons"].as_u64().unwrap(), suppressed);
    // Without `kiban link` every (provider, patient key) of the extraction is a person.
    let mut extracted: BTreeSet<(String, String)> = BTreeSet::new();
    let mut rows_withheld = 0;
    for file in files_under(&f.extract) {
        if file.extension().and_then(|e| e.to_str()) != Some("parquet") {
            continue;
        }
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let providers = text_column(&file, "provider_id");
        let keys = text_column(&file, "patient_key");
        let input = keys.len() as u64;
        extracted.extend(providers.into_iter().zip(keys));
        let released = out.join(format!("{name}.parquet"));
        let output = if released.exists() {
            text_column(&released, "person").len() as u64
        } else {
            0
        };
        let counted = withheld["rows_per_table"][&name].as_u64().unwrap_or(0);
        rows_withheld += counted;
        // Conditions also lose rows to the diagnosis-set rule, procedures, allergies and
        // infections to the combined item set's rule (counted per table); other tables only
        // these.
        let items = &report["release"]["clinical_item_sets"]["tables"][&name];
        let removed_by_items = items["rows_suppressed"].as_u64().unwrap_or(0)
            + items["rows_code_below_min_persons"].as_u64().unwrap_or(0);
        if name != "conditions" {
            assert_eq!(
                input - output,
                counted + removed_by_items,
                "{name}: rows removed"
            );
        }
    }
    assert_eq!(withheld["rows"].as_u64().unwrap(), rows_withheld);
    assert_eq!(extracted.len(), rows + suppressed as usize);
    assert_eq!(
        report["release"]["persons"].as_u64().unwrap() as usize,
        rows
    );
    if suppressed > 0 {
        assert!(rows_withheld > 0, "suppressed persons without rows");
    }

    // Visits counted from the encounters table join the quasi-identifiers: classes of at
    // least k, and `visits` is the count itself.
    assert_eq!(class_violations(&out, 5), Vec::<String>::new());
    assert!(
        report["person_table"]["derivation"]["visits_rule"]
            .as_str()
            .unwrap()
            .contains("encounters")
    );

    // Negative controls: each check fails on a copy of the release with one defect.
    let copy = f.root.join("anon-defect");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(
        out.join("encounters.parquet"),
        copy.join("encounters.parquet"),
    )
    .unwrap();
    let person_at = at("person");
    let dropped_person = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(person_at).unwrap())
        .find(|p| persons_of(&out).contains(*p))
        .unwrap()
        .to_owned();
    let without_person: Vec<&str> = text
        .lines()
        .filter(|l| l.split(',').nth(person_at) != Some(dropped_person.as_str()))
        .collect();
    std::fs::write(copy.join("persons.csv"), without_person.join("\n") + "\n").unwrap();
    assert!(
        !released_persons_violations(&copy).is_empty(),
        "a person's rows without a persons.csv row went unnoticed"
    );
    std::fs::copy(out.join("persons.csv"), copy.join("persons.csv")).unwrap();
    assert!(class_violations(&copy, 5).is_empty());
    write_without_first_row(
        &out.join("encounters.parquet"),
        &copy.join("encounters.parquet"),
    );
    assert!(
        !class_violations(&copy, 5).is_empty(),
        "an encounter count other than the released visits went unnoticed"
    );
    deceased_negative_controls(&out, &f.root.join("anon-deceased"));
}

/// The `deceased` checks of [`class_violations`] can fail: on copies of a release, a death
/// row removed, the column dropped, and (all consistent) one person made the only deceased
/// of a class that is k-anonymous without `deceased`.
fn deceased_negative_controls(out: &Path, copy: &Path) {
    std::fs::create_dir_all(copy).unwrap();
    for file in ["encounters.parquet", "deaths.parquet", "persons.csv"] {
        std::fs::copy(out.join(file), copy.join(file)).unwrap();
    }
    assert!(class_violations(copy, 5).is_empty());
    let (header, rows) = person_table(out);
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let dead: BTreeSet<String> = text_column(&out.join("deaths.parquet"), "person")
        .into_iter()
        .collect();
    assert!(!dead.is_empty(), "the release holds no death rows");
    let said_dead = rows.iter().filter(|r| r[at("deceased")] == "yes").count();
    assert_eq!(said_dead, dead.len());

    // A released death row that persons.csv does not say.
    write_without_first_row(&out.join("deaths.parquet"), &copy.join("deaths.parquet"));
    assert!(
        class_violations(copy, 5)
            .iter()
            .any(|v| v.contains("deceased differs")),
        "a death row other than the released deceased went unnoticed"
    );
    std::fs::copy(out.join("deaths.parquet"), copy.join("deaths.parquet")).unwrap();

    // persons.csv without the column, deaths released.
    let write_table = |header: &[String], rows: &[Vec<String>]| {
        let mut text = header.join(",") + "\n";
        for row in rows {
            text += &(row.join(",") + "\n");
        }
        std::fs::write(copy.join("persons.csv"), text).unwrap();
    };
    let drop_column = |row: &Vec<String>| -> Vec<String> {
        row.iter()
            .enumerate()
            .filter(|(i, _)| *i != at("deceased"))
            .map(|(_, c)| c.clone())
            .collect()
    };
    write_table(
        &drop_column(&header),
        &rows.iter().map(drop_column).collect::<Vec<_>>(),
    );
    assert!(
        class_violations(copy, 5)
            .iter()
            .any(|v| v.contains("no deceased column")),
        "a person table without deceased went unnoticed"
    );

    // One dead person left, alone in a class that holds k persons without `deceased`: the
    // file agrees with the deaths table, so only the k check over `deceased` can fail.
    let only = dead.iter().next().unwrap().clone();
    write_rows_of(
        &out.join("deaths.parquet"),
        &copy.join("deaths.parquet"),
        |p| p == only,
    );
    let consistent: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r[at("deceased")] = if r[at("person")] == only { "yes" } else { "no" }.to_owned();
            r
        })
        .collect();
    write_table(&header, &consistent);
    let violations = class_violations(copy, 5);
    assert!(
        violations.iter().all(|v| v.contains("below k")) && !violations.is_empty(),
        "a class made small by deceased went unnoticed: {violations:?}"
    );
}

#[test]
fn an_anonymized_release_without_encounters_bands_visits_and_is_k_anonymous() {
    let f = fixture(300, 43);
    let out = f.root.join("anon-no-encounters");
    let run = deidentify(
        &f,
        &out,
        &[
            "--project",
            "study-e",
            "--kind",
            "anonymized",
            "--k",
            "5",
            "--without-encounters",
        ],
    );
    assert!(
        run.status.success(),
        "deidentify failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    // No encounters file, and no reference to encounters left in conditions.
    assert!(!out.join("encounters.parquet").exists());
    assert!(out.join("conditions.parquet").exists());
    for batch in read_parquet(&out.join("conditions.parquet")) {
        assert!(batch.column_by_name("encounter_id").is_none());
    }
    // Visits in bands: every value a label of the bands hierarchy, some generalized.
    let (header, rows) = person_table(&out);
    let visits_at = header.iter().position(|h| h == "visits").unwrap();
    assert!(header.iter().any(|h| h == "deceased"));
    let is_count = |v: &str| v.parse::<u64>().is_ok();
    let bands = ["2-3", "4-7", "8-15", "16+", "0-3", "4-15", "*"];
    assert!(
        rows.iter()
            .all(|r| is_count(&r[visits_at]) || bands.contains(&r[visits_at].as_str())),
        "a visits value that is neither a count nor a band"
    );
    assert!(
        rows.iter().any(|r| bands.contains(&r[visits_at].as_str())),
        "no visits value generalized to a band"
    );
    assert!(rows.len() > 150, "too few persons released: {}", rows.len());
    // k recomputed from the released files (persons.csv and the death rows).
    assert_eq!(class_violations(&out, 5), Vec::<String>::new());
    assert_eq!(released_persons_violations(&out), Vec::<String>::new());
    check_diagnosis_sets(&out, 5, 2);
    assert_eq!(
        clinical_item_set_violations(&out, 5, 2),
        Vec::<String>::new()
    );
    let report: Value = serde_json::from_slice(
        &std::fs::read(f.root.join("anon-no-encounters.report.json")).unwrap(),
    )
    .unwrap();
    assert!(
        report["person_table"]["derivation"]["visits_rule"]
            .as_str()
            .unwrap()
            .contains("bands")
    );
    assert!(report["release"]["tables"]["encounters"].is_null());

    // Negative control: one person's visits made unique in a copy breaks k.
    let copy = f.root.join("anon-no-encounters-defect");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(out.join("deaths.parquet"), copy.join("deaths.parquet")).unwrap();
    let mut tampered = rows.clone();
    tampered[0][visits_at] = "999".to_owned();
    let mut text = header.join(",") + "\n";
    for row in &tampered {
        text += &(row.join(",") + "\n");
    }
    std::fs::write(copy.join("persons.csv"), text).unwrap();
    assert!(
        class_violations(&copy, 5)
            .iter()
            .any(|v| v.contains("below k")),
        "a class of one went unnoticed"
    );
}

/// `persons.csv` of a release: its header and rows, split on commas (no cell holds one).
fn person_table(release: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(release.join("persons.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// Persons of an anonymized release who hold rows without being released in `persons.csv`
/// (the k-anonymization dropped their row, so they must be withheld everywhere): one message
/// per table, with a count, never a pseudonym.
fn released_persons_violations(release: &Path) -> Vec<String> {
    let (header, rows) = person_table(release);
    let person_at = header.iter().position(|h| h == "person").unwrap();
    let table: HashSet<&str> = rows.iter().map(|r| r[person_at].as_str()).collect();
    assert_eq!(table.len(), rows.len(), "a person twice in persons.csv");
    let mut violations = Vec::new();
    for file in files_under(release) {
        if file.extension().and_then(|e| e.to_str()) != Some("parquet") {
            continue;
        }
        let persons = text_column(&file, "person");
        assert!(!persons.is_empty(), "{}: no person column", file.display());
        let outside: BTreeSet<&String> = persons
            .iter()
            .filter(|p| !table.contains(p.as_str()))
            .collect();
        if !outside.is_empty() {
            violations.push(format!(
                "{}: {} persons not in persons.csv",
                file.file_name().unwrap().to_string_lossy(),
                outside.len()
            ));
        }
    }
    violations
}

/// The equivalence classes an attacker forms from `persons.csv`, the number of encounter
/// rows each person has in `encounters.parquet` (when the release holds it) and, when the
/// release holds `deaths.parquet`, whether the person has a death row: every class must hold
/// at least `k` persons, the released `visits` must be the count itself and the released
/// `deceased` the presence of a death row (the release claims no more). One message per
/// violation, with counts only.
fn class_violations(release: &Path, k: usize) -> Vec<String> {
    let (header, rows) = person_table(release);
    let at = |name: &str| header.iter().position(|h| h == name);
    let column = |name: &str| at(name).unwrap_or_else(|| panic!("no {name} column"));
    let encounters_file = release.join("encounters.parquet");
    let encounters: Option<HashMap<String, usize>> = encounters_file.exists().then(|| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for person in text_column(&encounters_file, "person") {
            *counts.entry(person).or_default() += 1;
        }
        counts
    });
    let deaths_file = release.join("deaths.parquet");
    let dead: Option<HashSet<String>> = deaths_file
        .exists()
        .then(|| text_column(&deaths_file, "person").into_iter().collect());
    let mut violations = Vec::new();
    if dead.is_some() && at("deceased").is_none() {
        violations.push("deaths released but persons.csv has no deceased column".to_owned());
    }
    let mut classes: HashMap<Vec<String>, usize> = HashMap::new();
    let mut visits_mismatched = 0;
    let mut deceased_mismatched = 0;
    for row in &rows {
        let mut class: Vec<String> = ["age", "sex", "region", "visits"]
            .iter()
            .map(|c| row[column(c)].clone())
            .collect();
        if let Some(encounters) = &encounters {
            let counted = encounters.get(&row[column("person")]).copied().unwrap_or(0);
            if row[column("visits")] != counted.to_string() {
                visits_mismatched += 1;
            }
            class.push(counted.to_string());
        }
        if let Some(dead) = &dead {
            let seen = if dead.contains(&row[column("person")]) {
                "yes"
            } else {
                "no"
            };
            if let Some(deceased) = at("deceased") {
                if row[deceased] != seen {
                    deceased_mismatched += 1;
                }
                class.push(row[deceased].clone());
            }
            class.push(seen.to_owned());
        }
        *classes.entry(class).or_default() += 1;
    }
    if visits_mismatched > 0 {
        violations.push(format!(
            "{visits_mismatched} persons whose visits differ from their encounter rows"
        ));
    }
    if deceased_mismatched > 0 {
        violations.push(format!(
            "{deceased_mismatched} persons whose deceased differs from their death rows"
        ));
    }
    let small = classes.values().filter(|n| **n < k).count();
    if small > 0 {
        violations.push(format!(
            "{small} classes of persons.csv, encounter counts and death rows below k = {k}"
        ));
    }
    violations
}

/// A copy of a Parquet file with only the rows whose `person` passes `keep`.
fn write_rows_of(from: &Path, to: &Path, keep: impl Fn(&str) -> bool) {
    let batches = read_parquet(from);
    let schema = batches[0].schema();
    let file = std::fs::File::create(to).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    for batch in &batches {
        let persons = batch.column_by_name("person").unwrap().as_string::<i32>();
        for i in 0..batch.num_rows() {
            if keep(persons.value(i)) {
                writer.write(&batch.slice(i, 1)).unwrap();
            }
        }
    }
    writer.close().unwrap();
}

/// A copy of a Parquet file without its first row.
fn write_without_first_row(from: &Path, to: &Path) {
    let batches = read_parquet(from);
    let schema = batches[0].schema();
    let file = std::fs::File::create(to).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    for (i, batch) in batches.iter().enumerate() {
        let batch = if i == 0 {
            batch.slice(1, batch.num_rows() - 1)
        } else {
            batch.clone()
        };
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
}

/// The diagnosis item a released `icd10` value stands for: a WHO block (`E10-E14`) or
/// chapter (`IV E00-E90`) as it is, a code by its 3-character category.
fn diagnosis_item(code: &str) -> String {
    if code.contains('-') {
        code.to_owned()
    } else {
        code.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(3)
            .collect::<String>()
            .to_ascii_uppercase()
    }
}

/// The k^m rule of the diagnosis set, recomputed from the released files alone: the items
/// of each person in `conditions.parquet` equal the person's `diagnoses` in `persons.csv`,
/// and every combination of at most `m` of a person's items is held by at least `k` persons.
fn check_diagnosis_sets(release: &Path, k: usize, m: usize) {
    let text = std::fs::read_to_string(release.join("persons.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let person_at = header.iter().position(|h| *h == "person").unwrap();
    let diagnoses_at = header.iter().position(|h| *h == "diagnoses").unwrap();
    let mut table: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let items = cells[diagnoses_at]
            .split(';')
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect();
        assert!(
            table.insert(cells[person_at].to_owned(), items).is_none(),
            "a person twice in persons.csv"
        );
    }
    let mut from_conditions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for batch in read_parquet(&release.join("conditions.parquet")) {
        let person = batch.column_by_name("person").unwrap().as_string::<i32>();
        let code = batch.column_by_name("icd10").unwrap().as_string::<i32>();
        let medis = batch
            .column_by_name("medis_code")
            .unwrap()
            .as_string::<i32>();
        for i in 0..batch.num_rows() {
            let items = from_conditions
                .entry(person.value(i).to_owned())
                .or_default();
            if code.is_valid(i) {
                items.insert(diagnosis_item(code.value(i)));
                if code.value(i).contains('-') {
                    assert!(medis.is_null(i), "a generalized row keeps its MEDIS code");
                }
            }
        }
    }
    // A released cause of death is one of the person's items in persons.csv.
    let deaths = release.join("deaths.parquet");
    if deaths.exists() {
        for batch in read_parquet(&deaths) {
            let person = batch.column_by_name("person").unwrap().as_string::<i32>();
            let cause = batch
                .column_by_name("cause_icd10")
                .unwrap()
                .as_string::<i32>();
            for i in 0..batch.num_rows() {
                if cause.is_valid(i) {
                    assert!(
                        table
                            .get(person.value(i))
                            .is_some_and(|items| items.contains(cause.value(i))),
                        "a cause of death outside the person's diagnosis set"
                    );
                }
            }
        }
    }
    // Every person of conditions is in the person table, with the same items.
    for (person, items) in &from_conditions {
        let released = table
            .get(person)
            .unwrap_or_else(|| panic!("a person of conditions is not in persons.csv"));
        assert_eq!(items, released, "conditions and persons.csv disagree");
    }
    for (person, items) in &table {
        if !from_conditions.contains_key(person) {
            assert!(
                items.is_empty(),
                "persons.csv holds diagnoses conditions lack"
            );
        }
    }
    // Support of every combination of at most m items, over the persons of the table, with
    // each person's items taken from conditions.
    let mut support: HashMap<Vec<&str>, usize> = HashMap::new();
    for person in table.keys() {
        let Some(items) = from_conditions.get(person) else {
            continue;
        };
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        let n = items.len();
        assert!(n < 20, "a set of {n} items");
        for mask in 1u32..(1 << n) {
            if mask.count_ones() as usize <= m {
                let subset: Vec<&str> = (0..n)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| items[i])
                    .collect();
                *support.entry(subset).or_default() += 1;
            }
        }
    }
    assert!(!support.is_empty(), "no diagnosis items released");
    for (combination, persons) in &support {
        assert!(
            *persons >= k,
            "{combination:?} held by {persons} persons, fewer than k = {k}"
        );
    }
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

/// Full-width digits and letters to ASCII, the way intake normalizes identifiers.
fn to_halfwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect()
}

/// Every identity value of the providers' Patient resources, in the forms text may hold,
/// each with the Patient field it came from (what a failure reports; the value is never
/// printed): the needles of the privacy test, plus names without their space (3+ characters)
/// and postal codes.
fn identity_values(input: &Path) -> BTreeMap<String, &'static str> {
    let mut values: BTreeMap<String, &'static str> = BTreeMap::new();
    // The privacy test's rule: digit strings of 8+ digits, other values of 4+ characters.
    let add = |s: &str, field: &'static str, values: &mut BTreeMap<String, &'static str>| {
        for form in [s.to_owned(), to_halfwidth(s)] {
            let digits_only = form.chars().all(|c| c.is_ascii_digit());
            if (digits_only && form.len() >= 8) || (!digits_only && form.chars().count() >= 4) {
                values.entry(form).or_insert(field);
            }
        }
    };
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
                    if let Some(text) = name["text"].as_str() {
                        add(text, "name.text", &mut values);
                    }
                    let family = name["family"].as_str().unwrap_or("");
                    let given: Vec<&str> = name["given"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    if !given.is_empty() {
                        let given_spaced = given.join(" ");
                        let joined = format!("{family}{}", given.concat());
                        add(
                            &format!("{family} {given_spaced}"),
                            "name.family+given",
                            &mut values,
                        );
                        add(
                            &format!("{family}\u{3000}{given_spaced}"),
                            "name.family+given",
                            &mut values,
                        );
                        if joined.chars().count() >= 3 {
                            values
                                .entry(joined)
                                .or_insert("name.family+given (no space)");
                        }
                    }
                }
                for id in res["identifier"].as_array().into_iter().flatten() {
                    let Some(v) = id["value"].as_str() else {
                        continue;
                    };
                    let field = if id["system"].as_str().unwrap_or("").contains("Insurance") {
                        "identifier (insurance card)"
                    } else {
                        "identifier (provider patient id)"
                    };
                    add(v, field, &mut values);
                    for part in v.split([':', '：']) {
                        add(part, field, &mut values);
                    }
                }
                for tel in res["telecom"].as_array().into_iter().flatten() {
                    if let Some(v) = tel["value"].as_str() {
                        add(v, "telecom", &mut values);
                        add(&v.replace('-', ""), "telecom (digits only)", &mut values);
                    }
                }
                for address in res["address"].as_array().into_iter().flatten() {
                    if let Some(text) = address["text"].as_str() {
                        add(text, "address.text", &mut values);
                    }
                    for line in address["line"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        add(line, "address.line", &mut values);
                    }
                    if let Some(postal) = address["postalCode"].as_str() {
                        values
                            .entry(postal.to_owned())
                            .or_insert("address.postalCode");
                    }
                }
            }
        }
    }
    // Never fewer values than the privacy test searches for.
    for needle in identity_needles(input) {
        values
            .entry(needle)
            .or_insert("identity needle of the privacy test");
    }
    values
}

/// Lowercase hexadecimal digits in a row that mark a keyed token: pseudonyms and record ids
/// are 32 hex digits (128 bits of an HMAC). A keyed hash carries no identity value, but its
/// digits are random: a 7-11 digit identity value turns up inside one by chance (about one
/// release in fifty at 150 persons and ~3,300 tokens), which is what made this test fail at
/// random. Matches inside such a run are coincidences, not releases.
const KEYED_TOKEN_HEX_DIGITS: usize = 32;

/// An identity value found in released text. Says where and which kind, never the value.
#[derive(Debug)]
struct Leak {
    field: &'static str,
    file: String,
    column: String,
    row: usize,
    offset: usize,
    length: usize,
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in {} column {} row {} at byte {} ({} bytes)",
            self.field, self.file, self.column, self.row, self.offset, self.length
        )
    }
}

/// Whether `value` found at `start..end` of `text` is a mention of it, not a coincidence.
///
/// Names and addresses match anywhere. A number (digits, maybe with `-`) matches as a whole
/// number: not continued by another digit (`2520911` inside `12520911` is another number),
/// and not inside a keyed token (see [`KEYED_TOKEN_HEX_DIGITS`]). A number glued to letters
/// (`TEL0451044530`) or in a short hex-like string (`R0829372646`) still matches.
fn is_mention(text: &str, value: &str, start: usize, end: usize) -> bool {
    let numeric = value.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    if !numeric {
        return true;
    }
    let bytes = text.as_bytes();
    let before = start.checked_sub(1).map(|i| bytes[i]);
    let after = bytes.get(end).copied();
    if before.is_some_and(|b| b.is_ascii_digit()) || after.is_some_and(|b| b.is_ascii_digit()) {
        return false;
    }
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if !bytes[start..end].iter().all(hex) {
        return true;
    }
    let run_start = bytes[..start].iter().rev().take_while(|b| hex(b)).count();
    let run_end = bytes[end..].iter().take_while(|b| hex(b)).count();
    run_start + (end - start) + run_end < KEYED_TOKEN_HEX_DIGITS
}

/// Every mention of an identity value in `text`: (field, byte offset, length).
fn mentions_in(
    text: &str,
    values: &BTreeMap<String, &'static str>,
) -> Vec<(&'static str, usize, usize)> {
    let mut found = Vec::new();
    for (value, field) in values {
        for (start, _) in text.match_indices(value.as_str()) {
            if is_mention(text, value, start, start + value.len()) {
                found.push((*field, start, value.len()));
            }
        }
    }
    found
}

/// Every mention of an identity value in the text cells of the Parquet files of `release`.
fn leaks_in(release: &Path, values: &BTreeMap<String, &'static str>) -> Vec<Leak> {
    let mut leaks = Vec::new();
    for file in files_under(release) {
        if file.extension().and_then(|e| e.to_str()) != Some("parquet") {
            continue;
        }
        let file_name = file.file_name().unwrap().to_string_lossy().to_string();
        let mut row_base = 0;
        for batch in read_parquet(&file) {
            for (field_at, column) in batch.columns().iter().enumerate() {
                if column.data_type() != &DataType::Utf8 {
                    continue;
                }
                let column_name = batch.schema().field(field_at).name().clone();
                let strings = column.as_string::<i32>();
                // One search per value over the whole column, cells joined by NUL (which no
                // value holds), instead of one per cell: the test stays fast in debug builds.
                let mut joined = String::new();
                let mut starts = Vec::with_capacity(strings.len());
                for i in 0..strings.len() {
                    starts.push(joined.len());
                    if !strings.is_null(i) {
                        joined.push_str(strings.value(i));
                    }
                    joined.push('\0');
                }
                for (field, at, length) in mentions_in(&joined, values) {
                    let row = starts.partition_point(|&s| s <= at) - 1;
                    leaks.push(Leak {
                        field,
                        file: file_name.clone(),
                        column: column_name.clone(),
                        row: row_base + row,
                        offset: at - starts[row],
                        length,
                    });
                }
            }
            row_base += batch.num_rows();
        }
    }
    leaks
}

/// A copy of `release`'s `documents.parquet` in `copy` with `plant` applied to each row's
/// `text` and `record` cells.
fn plant_into_documents(
    release: &Path,
    copy: &Path,
    plant: impl Fn(usize, &str, &str) -> (String, String),
) {
    use arrow_array::StringArray;
    std::fs::create_dir_all(copy).unwrap();
    let batches = read_parquet(&release.join("documents.parquet"));
    let schema = batches[0].schema();
    let out = std::fs::File::create(copy.join("documents.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), None).unwrap();
    let mut row = 0;
    for batch in batches {
        let text_at = schema.index_of("text").unwrap();
        let record_at = schema.index_of("record").unwrap();
        let texts = batch.column(text_at).as_string::<i32>();
        let records = batch.column(record_at).as_string::<i32>();
        let mut new_texts = Vec::new();
        let mut new_records = Vec::new();
        for i in 0..batch.num_rows() {
            let (text, record) = plant(row, texts.value(i), records.value(i));
            new_texts.push(text);
            new_records.push(record);
            row += 1;
        }
        let mut columns = batch.columns().to_vec();
        columns[text_at] = std::sync::Arc::new(StringArray::from(new_texts));
        columns[record_at] = std::sync::Arc::new(StringArray::from(new_records));
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
}

/// The check can fail: identity values planted into a copy of a released file, in the forms a
/// real leak takes, are each found; the same values inside a keyed token are not.
fn check_planted_values_are_found(
    release: &Path,
    copy: &Path,
    values: &BTreeMap<String, &'static str>,
) {
    let pick = |field: &str, digits: Option<usize>| -> String {
        values
            .iter()
            .find(|(v, f)| **f == field && digits.is_none_or(|n| v.len() == n))
            .map(|(v, _)| v.clone())
            .unwrap_or_else(|| panic!("no {field} value to plant"))
    };
    let name = pick("name.text", None);
    let phone_digits = pick("telecom (digits only)", None);
    let postal = pick("address.postalCode", Some(7));
    let patient_id = pick("identifier (provider patient id)", None);
    let card_part = values
        .iter()
        .find(|(v, f)| {
            **f == "identifier (insurance card)"
                && v.len() == 8
                && v.bytes().all(|b| b.is_ascii_digit())
        })
        .map(|(v, _)| v.clone())
        .expect("an 8-digit insurance card number part");
    plant_into_documents(release, copy, |row, text, record| match row {
        0 => (format!("{text}\n{name}様"), record.to_owned()),
        1 => (format!("{text}\nTEL{phone_digits}"), record.to_owned()),
        2 => (format!("{text}\n〒{postal}"), record.to_owned()),
        3 => (
            format!("{text}\n記号番号 {card_part}"),
            format!("R{patient_id}"),
        ),
        // Inside a keyed token: a coincidence, not a release.
        4 => (
            text.to_owned(),
            format!(
                "R{}{postal}",
                &record[1..=KEYED_TOKEN_HEX_DIGITS - postal.len()]
            ),
        ),
        _ => (text.to_owned(), record.to_owned()),
    });
    let leaks = leaks_in(copy, values);
    let at = |row: usize, column: &str| {
        leaks
            .iter()
            .filter(|l| l.row == row && l.column == column)
            .map(|l| l.field)
            .collect::<BTreeSet<_>>()
    };
    assert!(
        at(0, "text").iter().any(|f| f.starts_with("name")),
        "a planted name was not found"
    );
    assert!(
        at(1, "text").contains("telecom (digits only)"),
        "a planted phone number was not found"
    );
    assert!(
        at(2, "text").contains("address.postalCode"),
        "a planted postal code was not found"
    );
    assert!(
        !at(3, "text").is_empty(),
        "a planted insurance card number was not found"
    );
    assert!(
        !at(3, "record").is_empty(),
        "a planted patient id was not found"
    );
    assert!(
        at(4, "record").is_empty(),
        "a number inside a keyed token counted as a release"
    );
    let planted_rows: BTreeSet<usize> = leaks.iter().map(|l| l.row).collect();
    assert_eq!(
        planted_rows,
        BTreeSet::from([0, 1, 2, 3]),
        "leaks where nothing was planted"
    );
}

#[test]
fn scrubbed_free_text_is_released_without_any_identity_value() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let input = tmp.path().join("providers");
    let data = tmp.path().join("data");
    let key_file = keys.path().join("master.key");
    let extract = tmp.path().join("extract");
    // Another population can be drawn to hunt for a leak: KIBAN_IT_SCRUB_SEED=<n>.
    let seed = std::env::var("KIBAN_IT_SCRUB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(53);
    synth(150, seed, &input);
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
    let values = identity_values(&input);
    // The search finds what the providers sent: the original letters name their patients.
    let original_mentions: usize = originals
        .iter()
        .map(|t| mentions_in(t, &values).len())
        .sum();
    assert!(
        original_mentions > 0,
        "the check finds no name in the original letters"
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

        let report: Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join(format!("{name}.report.json"))).unwrap(),
        )
        .unwrap();
        // Documents keep their text, scrubbed, every row non-empty; an anonymized release
        // withholds those of persons suppressed from persons.csv, and says how many.
        let withheld = report["release"]["withheld_persons"]["rows_per_table"]["documents"]
            .as_u64()
            .unwrap_or(0) as usize;
        if name == "pseudo" {
            assert!(report["release"]["withheld_persons"].is_null());
        }
        let texts = text_column(&out.join("documents.parquet"), "text");
        assert_eq!(
            texts.len() + withheld,
            originals.len(),
            "{name}: document texts lost"
        );
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

        assert!(
            values.len() > 300,
            "too few identity values: {}",
            values.len()
        );
        let leaks = leaks_in(&out, &values);
        if !leaks.is_empty() {
            let kept = keep_for_replay(tmp.path(), keys.path());
            panic!(
                "{name}: {} identity value(s) released{kept}:\n{}",
                leaks.len(),
                leaks
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        if name == "pseudo" {
            check_planted_values_are_found(&out, &tmp.path().join("planted"), &values);
        }
        let scrub = &report["release"]["free_text_scrub"];
        assert!(scrub["total"]["names"].as_u64().unwrap() > 0);
        assert_eq!(
            scrub["columns"]["documents.text"]["texts"]
                .as_u64()
                .unwrap(),
            texts.len() as u64
        );
        let report_text = serde_json::to_string(&report).unwrap();
        let in_report: Vec<String> = mentions_in(&report_text, &values)
            .into_iter()
            .map(|(field, at, length)| format!("{field} at byte {at} ({length} bytes)"))
            .collect();
        assert!(
            in_report.is_empty(),
            "{name}: value in the report: {in_report:?}"
        );
        if name == "anon" {
            assert!(scrub["opt_in"].as_str().unwrap().contains("opt-in"));
            // Year and month only: no day is left in a date of the text.
            assert!(texts.iter().all(|t| !regex_like_full_date(t)));
        }
    }
}

/// With `KIBAN_IT_KEEP_LEAK=<dir>`, copies the run (synthetic providers, store, master key,
/// extraction, releases) under `<dir>` so the failing draw of keys can be replayed:
/// `kiban deidentify --data <dir>/run/data --key-file <dir>/keys/master.key ...` gives the
/// same release, the project key being kept in the store's key ring. Synthetic data only.
fn keep_for_replay(run: &Path, keys: &Path) -> String {
    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy_tree(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let Some(dir) = std::env::var_os("KIBAN_IT_KEEP_LEAK") else {
        return String::new();
    };
    let dir = PathBuf::from(dir).join(format!("leak-{}", std::process::id()));
    copy_tree(run, &dir.join("run"));
    copy_tree(keys, &dir.join("keys"));
    format!(" (run kept in {})", dir.display())
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

/// Each released person's combined item set, recomputed from the released files alone:
/// the diagnosis items of `conditions.parquet` ([`diagnosis_item`]), `procedure:<code>`,
/// `allergy:<category>:<code>` (`allergy:<category>` without a code) and
/// `infection:<code>:<result>` (`infection:<code>` without a result). Every person of
/// `persons.csv` is there, with an empty set when the person holds no item.
fn released_item_sets(release: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let (header, rows) = person_table(release);
    let person_at = header.iter().position(|h| h == "person").unwrap();
    let mut sets: BTreeMap<String, BTreeSet<String>> = rows
        .iter()
        .map(|r| (r[person_at].clone(), BTreeSet::new()))
        .collect();
    add_released_items(
        release,
        &["conditions", "procedures", "allergies", "infections"],
        &mut sets,
    );
    sets
}

/// A string cell, trimmed; `None` when null or blank.
fn text_cell(batch: &RecordBatch, name: &str, row: usize) -> Option<String> {
    let values = batch.column_by_name(name).unwrap().as_string::<i32>();
    values
        .is_valid(row)
        .then(|| values.value(row).trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Adds each person's items of the released `tables` (those present) to `sets`, named as
/// [`released_item_sets`] names them.
fn add_released_items(
    release: &Path,
    tables: &[&str],
    sets: &mut BTreeMap<String, BTreeSet<String>>,
) {
    for &table in tables {
        let path = release.join(format!("{table}.parquet"));
        if !path.exists() {
            continue;
        }
        for batch in read_parquet(&path) {
            for row in 0..batch.num_rows() {
                let cell = |name: &str| text_cell(&batch, name, row);
                let person = cell("person").unwrap();
                let item = match table {
                    "conditions" => cell("icd10").map(|c| diagnosis_item(&c)),
                    "procedures" => cell("code").map(|c| format!("procedure:{c}")),
                    "allergies" => {
                        let category = cell("category").unwrap_or("-".to_owned());
                        Some(match cell("code") {
                            Some(code) => format!("allergy:{category}:{code}"),
                            None => format!("allergy:{category}"),
                        })
                    }
                    _ => cell("code").map(|code| match cell("result") {
                        Some(result) => format!("infection:{code}:{result}"),
                        None => format!("infection:{code}"),
                    }),
                };
                sets.entry(person).or_default().extend(item);
            }
        }
    }
}

/// The k^m rule over the combined item set, recomputed from the released files alone: every
/// combination of at most `m` items held by a person is held by at least `k` persons. One
/// message per rare combination size, with counts only (never an item or a person).
fn clinical_item_set_violations(release: &Path, k: usize, m: usize) -> Vec<String> {
    fn combinations<'a>(
        items: &[&'a str],
        m: usize,
        start: usize,
        current: &mut Vec<&'a str>,
        each: &mut impl FnMut(&[&'a str]),
    ) {
        if !current.is_empty() {
            each(current);
        }
        if current.len() == m {
            return;
        }
        for (at, &item) in items.iter().enumerate().skip(start) {
            current.push(item);
            combinations(items, m, at + 1, current, each);
            current.pop();
        }
    }
    let sets = released_item_sets(release);
    let mut support: HashMap<Vec<&str>, usize> = HashMap::new();
    for items in sets.values() {
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        combinations(&items, m, 0, &mut Vec::new(), &mut |c| {
            *support.entry(c.to_vec()).or_default() += 1;
        });
    }
    assert!(
        support.keys().any(|c| c.iter().any(|i| i.contains(':'))),
        "no procedure, allergy or infection item released"
    );
    let mut rare_by_size: BTreeMap<usize, usize> = BTreeMap::new();
    for (combination, persons) in &support {
        if *persons < k {
            *rare_by_size.entry(combination.len()).or_default() += 1;
        }
    }
    rare_by_size
        .into_iter()
        .map(|(size, count)| {
            format!("{count} combinations of {size} items held by fewer than k = {k} persons")
        })
        .collect()
}

/// The checker fails on a tampered copy: one released procedure (or infection, or allergy)
/// row given a code no other person holds, as a release that skipped the rule could show.
fn clinical_item_set_negative_control(out: &Path, copy: &Path) {
    std::fs::create_dir_all(copy).unwrap();
    for file in files_under(out) {
        std::fs::copy(&file, copy.join(file.file_name().unwrap())).unwrap();
    }
    assert!(clinical_item_set_violations(copy, 5, 2).is_empty());
    let table = ["procedures", "infections", "allergies"]
        .into_iter()
        .find(|t| out.join(format!("{t}.parquet")).exists())
        .expect("an item table in the release");
    let from = out.join(format!("{table}.parquet"));
    let batches = read_parquet(&from);
    let schema = batches[0].schema();
    let file = std::fs::File::create(copy.join(format!("{table}.parquet"))).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    let code_at = schema.index_of("code").unwrap();
    for (i, batch) in batches.iter().enumerate() {
        let batch = if i == 0 {
            let codes = batch.column(code_at).as_string::<i32>();
            let tampered: arrow_array::StringArray = (0..batch.num_rows())
                .map(|row| {
                    if row == 0 {
                        Some("tampered-unique-code".to_owned())
                    } else {
                        codes.is_valid(row).then(|| codes.value(row).to_owned())
                    }
                })
                .collect();
            let mut columns = batch.columns().to_vec();
            columns[code_at] = std::sync::Arc::new(tampered);
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        } else {
            batch.clone()
        };
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
    assert!(
        !clinical_item_set_violations(copy, 5, 2).is_empty(),
        "a {table} item held by one person went unnoticed"
    );
}

/// What the re-identification test's `clinical_items` level finds, recomputed from files.
#[derive(Debug, Default, PartialEq)]
struct RecomputedAttack {
    /// Persons of the truth whose `persons.csv` row the release withheld (their attacker
    /// record may still match a row, wrongly).
    withheld: usize,
    /// Released persons whose exact attacker record matches exactly one row.
    unique: usize,
    /// Of these, the rows that are the person.
    correct: usize,
}

/// The coarser form of a procedure, allergy or infection item (`None` for a procedure).
fn coarser_item_label(item: &str) -> Option<String> {
    let (kind, rest) = item.split_once(':')?;
    match kind {
        "allergy" | "infection" => rest
            .split_once(':')
            .map(|(first, _)| format!("{kind}:{first}")),
        _ => None,
    }
}

/// Whether a released diagnosis label (category, block `E10-E14` or chapter `IV E00-E90`)
/// covers a category.
fn label_covers(label: &str, category: &str) -> bool {
    if label == category {
        return true;
    }
    let range = label.rsplit(' ').next().unwrap_or(label);
    match range.split_once('-') {
        Some((first, last)) if category.len() == 3 && first.len() == 3 && last.len() == 3 => {
            first <= category && category <= last
        }
        _ => false,
    }
}

/// The linkage attack of the `clinical_items` level by an exact attacker who knows every
/// item of every person, recomputed from files: the anonymized release `anonymized`, and as
/// the truth a pseudonymized release `truth` of the same project (the same `person`
/// pseudonyms; rare values kept, nothing withheld). The attacker knows each person's exact
/// age, sex and region, which the release generalizes globally (one level per column), so a
/// row covers them exactly when its cells equal the person's own row; whether the person
/// died (the truth's death rows); the number of visits (the truth's encounter rows; a row
/// matches within one); the common confirmed diagnosis categories (held by at least
/// `min_persons` persons), each covered by a label of the row's `diagnoses` (an empty or `*`
/// set excludes no one); and every
/// procedure, allergy and infection item, each shown by the row's person as it is or
/// generalized, unless the release shows it for no one.
fn recompute_clinical_items_attack(
    truth: &Path,
    anonymized: &Path,
    min_persons: usize,
) -> RecomputedAttack {
    let count_rows = |table: &str| -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        let path = truth.join(format!("{table}.parquet"));
        if path.exists() {
            for person in text_column(&path, "person") {
                *counts.entry(person).or_default() += 1;
            }
        }
        counts
    };
    let visits = count_rows("encounters");
    let deceased = count_rows("deaths");
    // Confirmed categories of each person, and the common ones.
    let mut categories: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for batch in read_parquet(&truth.join("conditions.parquet")) {
        let person = batch.column_by_name("person").unwrap().as_string::<i32>();
        let code = batch.column_by_name("icd10").unwrap().as_string::<i32>();
        let suspected = batch.column_by_name("suspected").unwrap().as_boolean();
        for i in 0..batch.num_rows() {
            let confirmed = !(suspected.is_valid(i) && suspected.value(i));
            if confirmed && code.is_valid(i) {
                let category = diagnosis_item(code.value(i));
                if !category.is_empty() {
                    categories
                        .entry(person.value(i).to_owned())
                        .or_default()
                        .insert(category);
                }
            }
        }
    }
    let mut holders: BTreeMap<&str, usize> = BTreeMap::new();
    for set in categories.values() {
        for category in set {
            *holders.entry(category.as_str()).or_default() += 1;
        }
    }
    // Items of the truth (true codes) and of the release, kind-prefixed as the rule names them.
    let true_items = released_item_sets_of(truth);
    let released_items = released_item_sets_of(anonymized);
    let shown: BTreeSet<&String> = released_items.values().flatten().collect();
    let released_kinds: BTreeSet<&str> = [
        ("procedures", "procedure"),
        ("allergies", "allergy"),
        ("infections", "infection"),
    ]
    .into_iter()
    .filter(|(table, _)| anonymized.join(format!("{table}.parquet")).exists())
    .map(|(_, kind)| kind)
    .collect();

    let (header, rows) = person_table(anonymized);
    let at = |name: &str| header.iter().position(|h| h == name);
    let person_at = at("person").unwrap();
    let demographic: Vec<usize> = ["age", "sex", "region"]
        .into_iter()
        .filter_map(&at)
        .collect();
    let row_of: HashMap<&str, &Vec<String>> =
        rows.iter().map(|r| (r[person_at].as_str(), r)).collect();
    let no_items = BTreeSet::new();
    let wildcard = |v: &str| v.is_empty() || v == "*";
    let mut result = RecomputedAttack::default();
    for (person, &true_visits) in &visits {
        let Some(own) = row_of.get(person.as_str()) else {
            result.withheld += 1;
            continue;
        };
        let known_deceased = if deceased.contains_key(person) {
            "yes"
        } else {
            "no"
        };
        let known_categories: Vec<&String> = categories
            .get(person)
            .into_iter()
            .flatten()
            .filter(|c| holders[c.as_str()] >= min_persons)
            .collect();
        let known_items: Vec<&String> = true_items
            .get(person)
            .into_iter()
            .flatten()
            .filter(|i| released_kinds.contains(i.split(':').next().unwrap()))
            .filter(|i| {
                shown.contains(i) || coarser_item_label(i).is_some_and(|c| shown.contains(&c))
            })
            .collect();
        let consistent: Vec<&str> = rows
            .iter()
            .filter(|row| {
                let demographics = demographic
                    .iter()
                    .all(|&c| wildcard(&own[c]) || wildcard(&row[c]) || own[c] == row[c]);
                let died =
                    at("deceased").is_none_or(|c| wildcard(&row[c]) || row[c] == known_deceased);
                let counted = at("visits").is_none_or(|c| {
                    wildcard(&row[c])
                        || row[c].parse::<i64>().unwrap().abs_diff(true_visits as i64) <= 1
                });
                let diagnoses = at("diagnoses").is_none_or(|c| {
                    // Nothing released (empty) or suppressed (`*`) excludes no one.
                    let labels = row[c].trim();
                    labels.is_empty()
                        || labels == "*"
                        || known_categories.iter().all(|category| {
                            labels.split(';').any(|l| label_covers(l.trim(), category))
                        })
                });
                let items = released_items.get(&row[person_at]).unwrap_or(&no_items);
                let items = known_items.iter().all(|item| {
                    items.contains(*item)
                        || coarser_item_label(item).is_some_and(|c| items.contains(&c))
                });
                demographics && died && counted && diagnoses && items
            })
            .map(|row| row[person_at].as_str())
            .collect();
        if consistent.len() == 1 {
            result.unique += 1;
            if consistent[0] == person {
                result.correct += 1;
            }
        }
    }
    result
}

/// Each person's procedure, allergy and infection items in a release (any kind), as
/// [`released_item_sets`] names them, for every person holding one.
fn released_item_sets_of(release: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut sets = BTreeMap::new();
    add_released_items(
        release,
        &["procedures", "allergies", "infections"],
        &mut sets,
    );
    sets
}

fn assert_succeeded(run: std::process::Output) {
    assert!(
        run.status.success(),
        "deidentify failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn the_clinical_items_attack_is_recomputed_from_the_released_files() {
    let f = fixture(300, 43);
    // The truth per pseudonym: a pseudonymized release of the same project.
    let truth = f.root.join("truth");
    assert_succeeded(deidentify(&f, &truth, &["--project", "study-r"]));
    // An attacker without errors who knows every item of every person: deterministic, so
    // the match counts can be recomputed here.
    let model = f.root.join("attacker.json");
    std::fs::write(
        &model,
        r#"{"seed": 7, "wrong_postal_digit": 0.0, "birth_day_off_by_one": 0.0,
            "missing_value": 0.0, "visits_relative_error": 0.0, "wrong_diagnosis": 0.0,
            "known_diagnoses": 1000, "known_items": 1000}"#,
    )
    .unwrap();
    let out = f.root.join("anon-attack");
    assert_succeeded(deidentify(
        &f,
        &out,
        &[
            "--project",
            "study-r",
            "--kind",
            "anonymized",
            "--k",
            "5",
            "--attacker-model",
            model.to_str().unwrap(),
            "--diagnosis-m",
            "2",
            "--attacker-knowledge",
            "demographics,visits,diagnoses,clinical-items",
            // Known in full, the items re-identify more than an anonymized release allows;
            // the release is kept so that the count can be checked.
            "--max-reidentification",
            "1",
        ],
    ));
    let truth_persons = persons_of(&truth);
    let released_persons = persons_of(&out);
    assert!(
        released_persons.is_subset(&truth_persons),
        "the two releases of one project share their pseudonyms"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(f.root.join("anon-attack.report.json")).unwrap())
            .unwrap();
    let test = &report["reidentification"];
    assert_eq!(test["error_model"]["known_items"], 1000);
    let level = test["levels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["knowledge"] == "clinical_items")
        .expect("the clinical items level is reported");
    let matched: Vec<&str> = level["matched_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(matched.contains(&"deceased") && matched.contains(&"diagnoses"));
    assert!(
        matched
            .iter()
            .any(|c| ["procedures", "allergies", "infections"].contains(c))
    );
    let demographics = &test["levels"][0];
    assert_eq!(demographics["knowledge"], "demographics");
    assert!(
        demographics["matched_columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "deceased")
    );

    let recomputed = recompute_clinical_items_attack(&truth, &out, 10);

    assert_eq!(
        test["attempts"].as_u64().unwrap() as usize,
        truth_persons.len()
    );
    let correct = level["correct_reidentifications"].as_u64().unwrap() as usize;
    let unique = level["unique_matches"].as_u64().unwrap() as usize;
    assert_eq!(correct, recomputed.correct, "{recomputed:?}");
    // Withheld persons' records may match one row (wrongly): recomputed for released ones.
    assert!(
        recomputed.unique <= unique && unique <= recomputed.unique + recomputed.withheld,
        "unique matches {unique}, recomputed {recomputed:?}"
    );
    assert!(
        correct > 0,
        "an attacker knowing every item re-identifies someone"
    );

    // Negative control: on a copy of the release whose item tables show every item as it
    // is (the truth's tables: no generalization, suppression or rare-code removal), the
    // recomputation finds more persons re-identified than the report, so the agreement
    // above rests on the item tables the release holds.
    let copy = f.root.join("anon-attack-exact-items");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(out.join("persons.csv"), copy.join("persons.csv")).unwrap();
    for table in ["procedures", "allergies", "infections"] {
        let from = truth.join(format!("{table}.parquet"));
        if from.exists() {
            std::fs::copy(&from, copy.join(format!("{table}.parquet"))).unwrap();
        }
    }
    let exact = recompute_clinical_items_attack(&truth, &copy, 10);
    assert!(exact.correct > correct, "{exact:?} against {correct}");
}
