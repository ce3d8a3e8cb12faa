//! `kiban anonymize` from the command line, in both forms (options and TOML job file), with the
//! release checked independently: k and the suppression limit recomputed from the file alone.

use crate::support::{kiban, run_ok};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn adult_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/adult")
}

const QIS: &str =
    "sex,age,race,marital-status,education,native-country,workclass,occupation,salary-class";

/// (rows, suppressed rows, smallest class among the released rows) of a `;` release.
fn recount(release: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(release).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert_eq!(header.split(';').count(), 9);
    let mut classes: HashMap<&str, usize> = HashMap::new();
    let (mut rows, mut suppressed) = (0, 0);
    for line in lines {
        rows += 1;
        if line.split(';').all(|v| v == "*") {
            suppressed += 1;
        } else {
            *classes.entry(line).or_insert(0) += 1;
        }
    }
    (
        rows,
        suppressed,
        classes.values().copied().min().unwrap_or(0),
    )
}

#[test]
fn options_form_releases_a_k_anonymous_table_and_a_report() {
    let out = tempfile::tempdir().unwrap();
    let release = out.path().join("release.csv");
    let report = out.path().join("report.json");
    run_ok(
        kiban()
            .arg("anonymize")
            .arg(adult_dir().join("adult_subset.csv"))
            .args(["--sep", ";", "--hierarchies"])
            .arg(adult_dir())
            .args(["--qi", QIS, "--k", "5", "--max-suppression", "0.04"])
            .args(["--metric", "entropy", "--out"])
            .arg(&release)
            .arg("--report")
            .arg(&report)
            .arg("--report-html")
            .arg(out.path().join("report.html")),
    );
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("情報損失"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let (rows, suppressed, smallest) = recount(&release);
    assert_eq!(json["levels"].as_array().unwrap().len(), 9);
    assert_eq!(
        json["suppressed_records"].as_u64().unwrap() as usize,
        suppressed
    );
    assert_eq!(json["k"].as_u64().unwrap() as usize, smallest);
    assert!(smallest >= 5, "a class of {smallest} rows was released");
    assert!(suppressed as f64 <= 0.04 * rows as f64);
    assert!(json["information_loss"].as_f64().unwrap() > 0.0);
}

#[test]
fn job_file_form_and_bad_input_leave_no_release() {
    let out = tempfile::tempdir().unwrap();
    let subset = adult_dir().join("adult_subset.csv");
    let job = out.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "input = {subset:?}\noutput = \"release.csv\"\nreport = \"report.json\"\n\
             quasi_identifiers = [\"sex\", \"age\", \"race\"]\nhierarchy_dir = {dir:?}\n\
             [privacy]\nk = 10\nmax_suppression = 0.0\n",
            dir = adult_dir()
        ),
    )
    .unwrap();
    run_ok(kiban().args(["anonymize", "--config"]).arg(&job));
    let (_, suppressed, smallest) = recount_three(&out.path().join("release.csv"));
    assert_eq!(suppressed, 0);
    assert!(smallest >= 10);

    // An unknown column: a clear error and no release file.
    let bad = kiban()
        .arg("anonymize")
        .arg(&subset)
        .args(["--hierarchies"])
        .arg(adult_dir())
        .args(["--qi", "sex,shoe-size", "--out"])
        .arg(out.path().join("bad.csv"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("shoe-size"));
    assert!(!out.path().join("bad.csv").exists());
}

/// Like [`recount`], for a release whose quasi-identifiers are the first three columns.
fn recount_three(release: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(release).unwrap();
    let mut classes: HashMap<String, usize> = HashMap::new();
    let (mut rows, mut suppressed) = (0, 0);
    for line in text.lines().skip(1) {
        rows += 1;
        let qi: Vec<&str> = line.split(';').take(3).collect();
        if qi.iter().all(|v| *v == "*") {
            suppressed += 1;
        } else {
            *classes.entry(qi.join(";")).or_insert(0) += 1;
        }
    }
    (
        rows,
        suppressed,
        classes.values().copied().min().unwrap_or(0),
    )
}
