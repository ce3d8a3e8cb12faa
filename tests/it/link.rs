//! `kiban synth --identity-csv` then `kiban link`: the CSV interface shared with other linkage
//! tools, scored against the generator's truth; bad input named by row and column.

use crate::support::{kiban, run_ok};

#[test]
fn synthetic_identity_records_link_into_their_persons() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        kiban()
            .args([
                "synth",
                "--persons",
                "1500",
                "--seed",
                "11",
                "--identity-csv",
                "--out",
            ])
            .arg(dir.path()),
    );
    let records = dir.path().join("identity_records.csv");
    let links = dir.path().join("links.csv");
    let out = run_ok(
        kiban()
            .args(["link", "--csv"])
            .arg(&records)
            .arg("--out")
            .arg(&links)
            .arg("--truth")
            .arg(dir.path().join("identity_truth.csv")),
    );
    let text = std::fs::read_to_string(&links).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("record_id,person_id,match_probability"));
    let input_rows = std::fs::read_to_string(&records).unwrap().lines().count() - 1;
    assert_eq!(lines.count(), input_rows, "every record gets a person");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let precision: f64 = stdout
        .split("pairwise precision ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no score printed:\n{stdout}"));
    assert!(precision >= 0.99, "pairwise precision {precision}");
}

#[test]
fn a_csv_without_the_required_columns_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("bad.csv");
    std::fs::write(
        &records,
        "record_id,hospital_id,name_kanji\nr1,h1,山田太郎\n",
    )
    .unwrap();
    let out = kiban()
        .args(["link", "--csv"])
        .arg(&records)
        .arg("--out")
        .arg(dir.path().join("links.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hospital_patient_id"), "{stderr}");
    assert!(
        !stderr.contains("山田"),
        "values never appear in errors: {stderr}"
    );
    assert!(!dir.path().join("links.csv").exists());
}
