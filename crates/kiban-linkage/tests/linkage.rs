//! End-to-end linkage of identity CSVs: accuracy on a synthetic population, the household rule,
//! and bad input.

use kiban_linkage::evaluate::{evaluate_files, read_assignment};
use kiban_linkage::link::{LinkError, LinkOptions, link_csv};
use kiban_linkage::records::{LoadError, UnlinkableReason};
use kiban_synth::{SynthConfig, write_identity_csv};
use std::path::Path;

const HEADER: &str = "record_id,hospital_id,hospital_patient_id,name_kanji,name_kana,sex,birth_date,postal_code,address,insurer_number,insured_symbol,insured_number,insured_branch";

/// Smaller samples than the defaults keep the debug-build test quick.
fn test_options() -> LinkOptions {
    LinkOptions {
        random_pairs: 200_000,
        training_pairs: 500_000,
        ..LinkOptions::default()
    }
}

#[test]
fn a_synthetic_population_links_above_the_acceptance_floors() {
    let dir = tempfile::tempdir().unwrap();
    let config = SynthConfig {
        persons: 3_000,
        seed: 11,
        ..SynthConfig::default()
    };
    let summary = write_identity_csv(&config, dir.path(), &|_| {}).unwrap();
    let links = dir.path().join("links.csv");
    let report = link_csv(&summary.records_path, &links, &test_options()).unwrap();
    assert_eq!(report.records, summary.records);
    assert!(report.pairs_compared > 0);
    assert!(report.model.sessions.iter().all(|s| s.converged));
    assert!(
        report.model_warnings.is_empty(),
        "{:?}",
        report.model_warnings
    );
    let e = evaluate_files(&links, &summary.truth_path).unwrap();
    assert_eq!(e.records, summary.records);
    assert!(e.pairwise_precision >= 0.995, "{e:?}");
    assert!(e.pairwise_recall >= 0.985, "{e:?}");
    assert!(e.cluster_precision >= 0.99, "{e:?}");
    assert!(e.cluster_recall >= 0.99, "{e:?}");
    // Every record has a person and a probability in [0, 1].
    let text = std::fs::read_to_string(&links).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("record_id,person_id,match_probability"));
    for line in lines {
        let p: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&p));
    }
}

/// A background population (so that EM has data to learn from) plus hand-written rows.
fn population_with(rows: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = SynthConfig {
        persons: 1_500,
        seed: 5,
        ..SynthConfig::default()
    };
    let summary = write_identity_csv(&config, dir.path(), &|_| {}).unwrap();
    let mut text = std::fs::read_to_string(&summary.records_path).unwrap();
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    let path = dir.path().join("with_extra.csv");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn person_of(links: &Path) -> impl Fn(&str) -> String {
    let assignment = read_assignment(links).unwrap();
    move |record: &str| assignment[record].to_string()
}

#[test]
fn twins_on_one_card_with_other_branch_numbers_stay_apart() {
    // Twins: same birth date, surname, address, card; other branch numbers and given names.
    // Each is seen at two hospitals.
    let address = "東京都杉並区阿佐谷南9丁目9-9";
    let rows = [
        format!("tw-a1,hosp-x,9001,榊原　颯真,サカキバラ　ソウマ,1,2015-06-07,166-0004,{address},06139999,7777,123,02"),
        format!("tw-a2,hosp-y,9101,榊原 颯真,ｻｶｷﾊﾞﾗ ｿｳﾏ,1,H27.06.07,1660004,{address},06139999,7777,123,02"),
        format!("tw-b1,hosp-x,9002,榊原　颯太,サカキバラ　ソウタ,1,2015-06-07,166-0004,{address},06139999,7777,123,03"),
        format!("tw-b2,hosp-y,9102,榊原 颯太,ｻｶｷﾊﾞﾗ ｿｳﾀ,1,平成27年6月7日,1660004,{address},06139999,7777,123,03"),
        // The same person after a move: other address and postal code, no card at the second
        // hospital; name, birth date and sex agree.
        "mv-1,hosp-x,9003,五十嵐　琴音,イガラシ　コトネ,2,1988-02-29,166-0004,東京都杉並区阿佐谷南8丁目1-1,06139999,8888,55,01".to_owned(),
        "mv-2,hosp-y,9103,五十嵐　琴音,イガラシ　コトネ,2,S63.02.29,530-0001,大阪府大阪市北区梅田1丁目2-3,,,,".to_owned(),
    ];
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (dir, input) = population_with(&rows);
    let links = dir.path().join("links.csv");
    let report = link_csv(&input, &links, &test_options()).unwrap();
    let household = &report.model.fields[3];
    // EM learned that another branch on the same card is evidence against a match.
    assert!(household.weight(1) < 0.0, "{household:?}");
    assert!(household.weight(0) > 0.0, "{household:?}");
    let person = person_of(&links);
    assert_eq!(person("tw-a1"), person("tw-a2"));
    assert_eq!(person("tw-b1"), person("tw-b2"));
    assert_ne!(person("tw-a1"), person("tw-b1"));
    assert_ne!(person("tw-a1"), person("tw-b2"));
    assert_ne!(person("tw-a2"), person("tw-b1"));
    assert_eq!(person("mv-1"), person("mv-2"));
}

#[test]
fn unlinkable_rows_are_reported_and_kept() {
    let rows = [
        // No name at all.
        "ul-1,hosp-x,9201,,,1,1970-01-01,100-0001,東京都千代田区千代田1-1,,,,",
        // Neither birth date nor card.
        "ul-2,hosp-x,9202,山田　太郎,ヤマダ　タロウ,1,,100-0001,東京都千代田区千代田1-1,,,,",
    ];
    let (dir, input) = population_with(&rows);
    let links = dir.path().join("links.csv");
    let report = link_csv(&input, &links, &test_options()).unwrap();
    let reasons: Vec<UnlinkableReason> = report.unlinkable.iter().map(|u| u.reason).collect();
    assert_eq!(
        reasons,
        [
            UnlinkableReason::NoName,
            UnlinkableReason::NoBirthDateNorCard
        ]
    );
    let last_line = report.unlinkable[1].line;
    assert_eq!(last_line, report.records + 1);
    let text = std::fs::read_to_string(&links).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("ul-1,P") && l.ends_with(','))
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ul-2,P") && l.ends_with(','))
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_missing_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "in.csv",
        "record_id,hospital_id,name_kanji\nr1,h1,山田太郎\n".as_bytes(),
    );
    let out = dir.path().join("out.csv");
    let error = link_csv(&input, &out, &LinkOptions::default()).unwrap_err();
    assert!(
        matches!(
            error,
            LinkError::Load(LoadError::MissingColumn {
                column: "hospital_patient_id",
                ..
            })
        ),
        "{error}"
    );
    assert!(!out.exists(), "no output on error");
}

#[test]
fn undecodable_text_names_the_line_and_column_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = format!(
        "{HEADER}\nr1,h1,p1,山田　太郎,ヤマダ　タロウ,1,1980-01-02,1000001,東京都千代田区1-1,,,,\n"
    )
    .into_bytes();
    bytes.extend_from_slice(b"r2,h2,p2,\xff\xfe\xfa,,1,1980-01-02,1000001,x,,,,\n");
    let input = write(dir.path(), "in.csv", &bytes);
    let out = dir.path().join("out.csv");
    let error = link_csv(&input, &out, &LinkOptions::default()).unwrap_err();
    match &error {
        LinkError::Load(LoadError::InvalidText { line, column, .. }) => {
            assert_eq!((*line, *column), (3, "name_kanji"));
        }
        other => panic!("{other}"),
    }
    assert!(error.to_string().contains("line 3"));
    assert!(!out.exists());
}

#[test]
fn an_impossible_date_names_the_line_and_rule_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{HEADER}\nr1,h1,p1,山田　太郎,ヤマダ　タロウ,1,1980-01-02,1000001,東京都千代田区1-1,,,,\nr2,h2,p2,鈴木　花子,スズキ　ハナコ,2,2023-02-30,1000001,東京都千代田区1-1,,,,\n"
    );
    let input = write(dir.path(), "in.csv", text.as_bytes());
    let out = dir.path().join("out.csv");
    let error = link_csv(&input, &out, &LinkOptions::default()).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            LinkError::Load(LoadError::InvalidDate {
                line: 3,
                column: "birth_date",
                ..
            })
        ),
        "{message}"
    );
    assert!(!message.contains("2023"), "{message}");
    assert!(!message.contains("鈴木"), "{message}");
}

#[test]
fn a_row_with_a_wrong_field_count_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{HEADER}\nr1,h1,p1\n");
    let input = write(dir.path(), "in.csv", text.as_bytes());
    let error = link_csv(&input, &dir.path().join("out.csv"), &LinkOptions::default()).unwrap_err();
    assert!(
        matches!(
            error,
            LinkError::Load(LoadError::FieldCount { line: 2, .. })
        ),
        "{error}"
    );
}

#[test]
fn duplicate_record_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let row = "r1,h1,p1,山田　太郎,ヤマダ　タロウ,1,1980-01-02,1000001,東京都千代田区1-1,,,,";
    let text = format!("{HEADER}\n{row}\n{row}\n");
    let input = write(dir.path(), "in.csv", text.as_bytes());
    let error = link_csv(&input, &dir.path().join("out.csv"), &LinkOptions::default()).unwrap_err();
    assert!(
        matches!(
            error,
            LinkError::Load(LoadError::DuplicateRecordId {
                line: 3,
                first_line: 2,
                ..
            })
        ),
        "{error}"
    );
}
