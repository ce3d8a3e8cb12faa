//! Job-level tests of the builders that need more than one column or a classification: age at
//! an event (derived from a birth date and an event date) and ICD-10 with its blocks, both
//! configured as a TOML job file would configure them. The release is re-measured by the
//! independent checker.

// Only some of the measured figures are compared here.
#[allow(dead_code)]
mod checker;

use std::path::Path;

use kiban_anonymize::{AnonymizeError, JobConfig, run};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn job_of(dir: &Path, toml: &str) -> JobConfig {
    let mut job: JobConfig = basic_toml::from_str(toml).unwrap();
    job.input = dir.join(&job.input);
    job.output = dir.join(&job.output);
    job.report = job.report.map(|r| dir.join(r));
    job
}

/// Persons admitted on various days: leap-day births, birthdays on the admission day, a
/// 95-year-old, an ICD-10 diagnosis each.
const ADMISSIONS: &str = "\
id;birth;admitted;sex;diagnosis
1;2000-02-29;2021-02-28;F;E11.9
2;2000-02-29;2021-03-01;F;E119
3;2000-03-01;2021-03-01;F;E10
4;1999-06-15;2021-06-15;F;E14.9
5;1999-06-16;2021-06-15;F;E11
6;1930-01-01;2025-01-01;M;I10
7;1931-05-05;2025-05-05;M;I12.9
8;1932-07-07;2025-07-06;M;I13
9;1928-12-31;2025-01-01;M;I11.9
10;1934-01-01;2025-01-01;M;I15
";

#[test]
fn age_at_event_is_derived_banded_and_the_birth_date_dropped() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("admissions.csv"), ADMISSIONS);
    let job = job_of(
        dir.path(),
        r#"
input = "admissions.csv"
output = "release.csv"
report = "report.json"
quasi_identifiers = ["age", "sex", "diagnosis"]
identifying = ["id"]

[privacy]
k = 5
max_suppression = 0.0

[hierarchies.age]
kind = "age_at_event"
birth_date = "birth"
event_date = "admitted"

[hierarchies.sex]
kind = "grouping"
levels = [{ "*" = ["F", "M"] }]

[hierarchies.diagnosis]
kind = "icd10"
"#,
    );
    let report = run(&job).unwrap();
    // Ages 20, 21, 21, 22, 21 and 95, 93, 92, 96, 91: the 5-year band 20-24 and 90+ (which
    // every level keeps) give classes of five with sex kept; the diagnoses need their block.
    assert_eq!(report.quasi_identifiers, ["age", "sex", "diagnosis"]);
    assert_eq!(report.levels, vec![1, 0, 2]);
    assert_eq!(report.k, 5);
    assert_eq!(report.suppressed_records, 0);
    let derived = &report.derived_ages[0];
    assert_eq!(derived.column, "age");
    assert_eq!(derived.top_coded_records, 5);
    assert_eq!(derived.missing_records, 0);
    let text = std::fs::read_to_string(dir.path().join("release.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("admitted;sex;diagnosis;age"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows[0], "2021-02-28;F;E10-E14;20-24");
    assert_eq!(rows[5], "2025-01-01;M;I10-I15;90+");
    assert!(rows[6].ends_with(";I10-I15;90+"), "{}", rows[6]);
    assert!(
        !text.contains("2000-02-29"),
        "the birth date is not released"
    );
    let json = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    assert!(json.contains("\"derived_ages\""), "{json}");
    // The independent checker agrees with the report.
    let measured = checker::measure(
        &dir.path().join("release.csv"),
        b';',
        &["age", "sex", "diagnosis"],
        &[],
    );
    assert_eq!(measured.k, report.k);
    assert_eq!(measured.classes, report.equivalence_classes);
}

#[test]
fn exact_ages_with_a_fixed_event_date_and_bad_input_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("persons.csv"),
        "birth;sex\n2000-04-01;F\n2000-04-02;F\n2000-03-31;F\n",
    );
    let toml = r#"
input = "persons.csv"
output = "release.csv"
quasi_identifiers = ["age"]

[privacy]
k = 1
max_suppression = 0.0

[hierarchies.age]
kind = "age_at_event"
birth_date = "birth"
event_on = "2020-04-01"
"#;
    let report = run(&job_of(dir.path(), toml)).unwrap();
    assert_eq!(report.levels, vec![0]);
    let text = std::fs::read_to_string(dir.path().join("release.csv")).unwrap();
    // Birthday on the event day counts; the day after does not.
    assert_eq!(text, "sex;age\nF;20\nF;19\nF;20\n");
    // A birth after the event date: typed error naming file, line and column, not the value.
    write(
        &dir.path().join("persons.csv"),
        "birth;sex\n2000-04-01;F\n\"2021-01-01\";F\n",
    );
    let err = run(&job_of(dir.path(), toml)).unwrap_err();
    match &err {
        AnonymizeError::InvalidValue { line, column, .. } => {
            assert_eq!((*line, column.as_str()), (3, "birth"));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!err.to_string().contains("2021-01-01"), "{err}");
    // Streaming cannot derive the column.
    let mut streamed = job_of(dir.path(), toml);
    streamed.streaming = Some(true);
    assert!(matches!(
        run(&streamed),
        Err(AnonymizeError::NotStreamable { .. })
    ));
    // Left to choose, the job is not streamed.
    let mut automatic = job_of(dir.path(), toml);
    automatic.streaming_row_threshold = 0;
    assert!(!automatic.streams().unwrap());
}

#[test]
fn icd10_code_outside_every_block_names_the_column_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("d.csv"), "diagnosis\nE11.9\nC27\nE11.9\n");
    let job = job_of(
        dir.path(),
        r#"
input = "d.csv"
output = "release.csv"
quasi_identifiers = ["diagnosis"]
[privacy]
k = 2
max_suppression = 0.5
[hierarchies.diagnosis]
kind = "icd10"
"#,
    );
    let err = run(&job).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`diagnosis`") || text.contains("diagnosis:"),
        "{text}"
    );
    assert!(text.contains("no block of ICD-10 (WHO 2019)"), "{text}");
    assert!(!dir.path().join("release.csv").exists());
}
